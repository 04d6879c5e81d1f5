//! The config hash for Ona-style pre-built image reuse.
//!
//! [`cache_key`] is SHA-256 (lower-case hex, usable as a tag) over
//! [`cache_key_input`], a line-oriented text whose every line is a JSON
//! value so no field can forge another:
//!
//! ```text
//! "cairn-devcontainer-cache-v1"
//! ["config", <devcontainer.json after substitution, canonical JSON>]
//! ["dockerfile", "sha256:<hex of the Dockerfile bytes>" | null]
//! ["context", "<tree digest of the build context>" | null]
//! ["base", "<base image manifest digest>" | null]
//! ["feature", "<reference as written>", "<resolved digest>", <options as written>]   (one per Feature, install order)
//! ```
//!
//! Canonical JSON sorts object keys (bytewise) and drops all optional
//! whitespace, so comments, trailing commas, key order and formatting in
//! devcontainer.json never change the key; any value does.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::order::FeatureNode;

/// One Feature as it enters the key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyFeature {
    /// The reference as written (or the `dependsOn` key).
    pub user_id: String,
    /// The resolved digest (canonical id).
    pub digest: String,
    /// Options as written.
    pub options: Value,
}

/// Everything the key covers.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheKeyInput<'a> {
    /// devcontainer.json after substitution ([`crate::DevContainerConfig::document`]).
    pub config: &'a Value,
    /// The Dockerfile's bytes, for Dockerfile-based configs.
    pub dockerfile: Option<&'a [u8]>,
    /// A digest of the Dockerfile's build context (what `COPY` may read), as the
    /// caller computes it; `None` for image configs.
    pub build_context: Option<&'a str>,
    /// The base image's manifest digest, when known.
    pub base_image_digest: Option<&'a str>,
    /// The Features in install order.
    pub features: Vec<KeyFeature>,
}

/// The Features of a resolved plan, in install order, as key entries.
pub fn key_features(nodes: &[FeatureNode], order: &[usize]) -> Vec<KeyFeature> {
    order
        .iter()
        .map(|&i| KeyFeature {
            user_id: nodes[i].user_id.clone(),
            digest: nodes[i].canonical_id.clone(),
            options: nodes[i].options.clone(),
        })
        .collect()
}

/// `value` as canonical JSON: keys sorted, no whitespace. Independent of
/// whether serde_json preserves insertion order in this build.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The text the key hashes (see the module documentation).
pub fn cache_key_input(input: &CacheKeyInput<'_>) -> String {
    let mut lines = vec![
        "\"cairn-devcontainer-cache-v1\"".to_string(),
        format!("[\"config\",{}]", canonical_json(input.config)),
        canonical_json(&serde_json::json!([
            "dockerfile",
            input
                .dockerfile
                .map(|d| format!("sha256:{}", hex::encode(Sha256::digest(d))))
        ])),
        canonical_json(&serde_json::json!(["context", input.build_context])),
        canonical_json(&serde_json::json!(["base", input.base_image_digest])),
    ];
    for f in &input.features {
        lines.push(format!(
            "[\"feature\",{},{},{}]",
            Value::String(f.user_id.clone()),
            Value::String(f.digest.clone()),
            canonical_json(&f.options)
        ));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// The config hash: SHA-256 of [`cache_key_input`], 64 lower-case hex digits.
pub fn cache_key(input: &CacheKeyInput<'_>) -> String {
    hex::encode(Sha256::digest(cache_key_input(input).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_jsonc;
    use serde_json::json;

    fn input<'a>(config: &'a Value, dockerfile: Option<&'a [u8]>) -> CacheKeyInput<'a> {
        CacheKeyInput {
            config,
            dockerfile,
            build_context: dockerfile.map(|_| "sha256:cccc"),
            base_image_digest: Some("sha256:aaaa"),
            features: vec![KeyFeature {
                user_id: "ghcr.io/devcontainers/features/node:1".into(),
                digest: "ghcr.io/devcontainers/features/node@sha256:bbbb".into(),
                options: json!({"version": "18", "nvm": false}),
            }],
        }
    }

    #[test]
    fn canonical_json_sorts_and_strips() {
        let v = parse_jsonc(
            "{ \"b\": [1, {\"z\": 1, \"a\": \"é\\n\"}], // c\n \"a\": null, }",
            "t",
        )
        .unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":null,"b":[1,{"a":"é\n","z":1}]}"#
        );
    }

    #[test]
    fn input_text_is_stable() {
        let cfg = json!({"image": "debian", "features": {}});
        assert_eq!(
            cache_key_input(&input(&cfg, Some(b"FROM debian\n"))),
            concat!(
                "\"cairn-devcontainer-cache-v1\"\n",
                "[\"config\",{\"features\":{},\"image\":\"debian\"}]\n",
                "[\"dockerfile\",\"sha256:2e82491658394d2a150ac8f92efb200f230f6f97b7a6d5b7707893fa495c0b63\"]\n",
                "[\"context\",\"sha256:cccc\"]\n",
                "[\"base\",\"sha256:aaaa\"]\n",
                "[\"feature\",\"ghcr.io/devcontainers/features/node:1\",\"ghcr.io/devcontainers/features/node@sha256:bbbb\",{\"nvm\":false,\"version\":\"18\"}]\n",
            )
        );
        // Checked with `sha256sum` over the text above.
        assert_eq!(
            cache_key(&input(&cfg, Some(b"FROM debian\n"))),
            "393f5b1abd48912afbc3d5ecf77d03d3f8b2911648393bdf3a1b58b59a41039c"
        );
    }

    #[test]
    fn formatting_does_not_change_the_key_but_content_does() {
        let a = parse_jsonc("{\"image\": \"debian\", \"features\": {}}", "a").unwrap();
        let b = parse_jsonc(
            "// comment\n{\n  \"features\": {},\n  \"image\": \"debian\",\n}\n",
            "b",
        )
        .unwrap();
        let key = cache_key(&input(&a, None));
        assert_eq!(key.len(), 64);
        assert_eq!(key, cache_key(&input(&b, None)));
        let c = json!({"image": "debian:12", "features": {}});
        assert_ne!(key, cache_key(&input(&c, None)));
        assert_ne!(key, cache_key(&input(&a, Some(b"FROM x"))));
        let mut i = input(&a, None);
        i.base_image_digest = Some("sha256:cccc");
        assert_ne!(key, cache_key(&i));
        let with_context = input(&a, Some(b"FROM x"));
        let mut i = input(&a, Some(b"FROM x"));
        i.build_context = Some("sha256:dddd");
        assert_ne!(cache_key(&with_context), cache_key(&i));
        let mut i = input(&a, None);
        i.features[0].options = json!({"version": "20", "nvm": false});
        assert_ne!(key, cache_key(&i));
        let mut i = input(&a, None);
        i.features[0].digest = "ghcr.io/devcontainers/features/node@sha256:dddd".into();
        assert_ne!(key, cache_key(&i));
    }
}
