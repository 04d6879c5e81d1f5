//! Feature references, `devcontainer-feature.json`, and options → environment.
//!
//! * [`FeatureRef::parse`]: `REG/NS…/NAME[:TAG]`, `REG/NS…/NAME@sha256:…`
//!   (OCI, lower-cased as the reference CLI does), `https://…` / `http://…`
//!   (a tarball), `./path` / `../path` (a local folder, relative to the
//!   config file's folder). Bare legacy ids (`node`) and absolute paths are
//!   refused.
//! * [`FeatureMetadata::parse`]: the Feature's own JSON(C) file.
//! * [`option_env_name`], [`feature_env`]: options as environment variables
//!   exactly as the spec's Option Resolution says — names through
//!   `replace(/[^\w_]/g,'_')`, `replace(/^[\d_]+/g,'_')`, upper-cased;
//!   defaults applied for omitted options; user options the Feature does not
//!   declare still passed; booleans as `true`/`false`; a non-object value in
//!   devcontainer.json sets the `version` option when the Feature declares
//!   one and is otherwise ignored (the reference CLI's
//!   `getFeatureValueObject`).
//! * [`builtin_env`]: `_REMOTE_USER`, `_CONTAINER_USER`, `_REMOTE_USER_HOME`,
//!   `_CONTAINER_USER_HOME`, homes looked up in the image's `/etc/passwd`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{check_feature_options, parse_jsonc};
use crate::error::{Error, Result};

/// Where a Feature comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FeatureRef {
    /// An OCI artifact.
    Oci {
        /// Registry host (and port).
        registry: String,
        /// Repository path under the registry: namespace segments and the
        /// Feature id, e.g. `devcontainers/features/node`.
        path: String,
        /// Tag, when given (`latest` is implied otherwise).
        tag: Option<String>,
        /// Digest (`sha256:…`), when given.
        digest: Option<String>,
    },
    /// A tarball fetched over HTTP(S).
    Tarball {
        /// The URL.
        url: String,
    },
    /// A folder next to the config.
    Local {
        /// The path as written (`./my-feature`).
        path: String,
    },
}

impl FeatureRef {
    /// Parses a reference as written in `features` or `dependsOn`.
    pub fn parse(reference: &str) -> Result<Self> {
        let err = |message: &str| Error::FeatureRef {
            reference: reference.to_string(),
            message: message.to_string(),
        };
        if reference.starts_with("https://") || reference.starts_with("http://") {
            return Ok(FeatureRef::Tarball {
                url: reference.to_string(),
            });
        }
        if reference.starts_with("./") || reference.starts_with("../") {
            return Ok(FeatureRef::Local {
                path: reference.trim_end_matches('/').to_string(),
            });
        }
        if reference.starts_with('/') {
            return Err(err(
                "a local Feature must be a relative path starting with ./ or ../",
            ));
        }
        let lower = reference.to_ascii_lowercase();
        let (name, digest) = match lower.split_once('@') {
            Some((n, d)) => {
                if !d.starts_with("sha256:")
                    || d.len() != 71
                    || !d[7..].bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(err("the digest must be sha256: followed by 64 hex digits"));
                }
                (n, Some(d.to_string()))
            }
            None => (lower.as_str(), None),
        };
        let last_slash = name.rfind('/').ok_or_else(|| {
            err("not a Feature reference: expected REGISTRY/NAMESPACE/ID[:TAG], https://…, or ./path (legacy bare ids are not supported)")
        })?;
        let (repo, tag) = match name[last_slash..].find(':') {
            Some(i) => (
                &name[..last_slash + i],
                Some(name[last_slash + i + 1..].to_string()),
            ),
            None => (name, None),
        };
        if digest.is_some() && tag.is_some() {
            return Err(err("give a tag or a digest, not both"));
        }
        let (registry, path) = repo.split_once('/').unwrap_or(("", repo));
        if registry.is_empty() || !path.contains('/') || path.split('/').any(str::is_empty) {
            return Err(err(
                "expected REGISTRY/NAMESPACE/ID (at least one namespace segment)",
            ));
        }
        let ok = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if !registry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b))
            || !path.split('/').all(ok)
        {
            return Err(err("invalid characters in the registry or repository path"));
        }
        if let Some(t) = &tag
            && (t.is_empty() || !ok(t))
        {
            return Err(err("invalid tag"));
        }
        Ok(FeatureRef::Oci {
            registry: registry.to_string(),
            path: path.to_string(),
            tag,
            digest,
        })
    }

    /// The reference without tag or digest: what `installsAfter` and
    /// `overrideFeatureInstallOrder` name (`ghcr.io/devcontainers/features/node`).
    pub fn id_without_version(&self) -> String {
        match self {
            FeatureRef::Oci { registry, path, .. } => format!("{registry}/{path}"),
            FeatureRef::Tarball { url } => url.clone(),
            FeatureRef::Local { path } => path.clone(),
        }
    }

    /// The Feature's short id: the last path segment for OCI and local
    /// Features, the file name (minus `devcontainer-feature-` and `.tgz`) for
    /// a tarball.
    pub fn short_id(&self) -> String {
        let s = self.id_without_version();
        let last = s.rsplit('/').next().unwrap_or(&s).to_string();
        match self {
            FeatureRef::Tarball { .. } => last
                .trim_end_matches(".tgz")
                .trim_end_matches(".tar.gz")
                .trim_start_matches("devcontainer-feature-")
                .to_string(),
            _ => last,
        }
    }

    /// The tag an OCI reference resolves (`latest` when none and no digest).
    pub fn tag(&self) -> Option<&str> {
        match self {
            FeatureRef::Oci { tag: Some(t), .. } => Some(t),
            FeatureRef::Oci { digest: None, .. } => Some("latest"),
            _ => None,
        }
    }

    /// Where an offline mirror keeps this Feature's unpacked folder, relative
    /// to the mirror root: `oci/<registry>/<path>` (tag and digest dropped) or
    /// `tarball/<percent-encoded URL>`. `None` for local Features.
    pub fn mirror_path(&self) -> Option<String> {
        match self {
            FeatureRef::Oci { registry, path, .. } => Some(format!("oci/{registry}/{path}")),
            FeatureRef::Tarball { url } => {
                let mut enc = String::from("tarball/");
                for b in url.bytes() {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        enc.push(b as char);
                    } else {
                        enc.push_str(&format!("%{b:02X}"));
                    }
                }
                Some(enc)
            }
            FeatureRef::Local { .. } => None,
        }
    }
}

/// An option's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionType {
    /// `"boolean"`.
    Boolean,
    /// `"string"`.
    String,
}

/// One entry of a Feature's `options`.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionSpec {
    /// `type`.
    pub kind: OptionType,
    /// `default` (a string or a boolean).
    pub default: Option<Value>,
    /// `proposals`: suggested values, free-form allowed.
    pub proposals: Vec<String>,
    /// `enum`: the only allowed values.
    pub allowed: Vec<String>,
    /// `description`.
    pub description: Option<String>,
}

/// Lifecycle hook names a Feature (or devcontainer.json) may carry.
pub const LIFECYCLE_HOOKS: &[&str] = &[
    "onCreateCommand",
    "updateContentCommand",
    "postCreateCommand",
    "postStartCommand",
    "postAttachCommand",
];

/// A parsed `devcontainer-feature.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMetadata {
    /// `id`.
    pub id: String,
    /// `version`.
    pub version: String,
    /// `name`.
    pub name: Option<String>,
    /// `options`.
    pub options: BTreeMap<String, OptionSpec>,
    /// `containerEnv`.
    pub container_env: BTreeMap<String, String>,
    /// `dependsOn`: reference → options, as written.
    pub depends_on: BTreeMap<String, Value>,
    /// `installsAfter`: ids without version.
    pub installs_after: Vec<String>,
    /// `legacyIds`.
    pub legacy_ids: Vec<String>,
    /// `privileged`.
    pub privileged: Option<bool>,
    /// `init`.
    pub init: Option<bool>,
    /// `capAdd`.
    pub cap_add: Vec<String>,
    /// `securityOpt`.
    pub security_opt: Vec<String>,
    /// `mounts` (strings or mount objects, as written).
    pub mounts: Vec<Value>,
    /// `entrypoint`.
    pub entrypoint: Option<String>,
    /// `customizations`.
    pub customizations: Option<Value>,
    /// Lifecycle hooks present ([`LIFECYCLE_HOOKS`]), as written.
    pub lifecycle: BTreeMap<String, Value>,
    /// The whole document.
    pub document: Value,
}

impl FeatureMetadata {
    /// Parses a `devcontainer-feature.json`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self> {
        let document = parse_jsonc(text, file)?;
        let f = |field: &str, message: &str| Error::Field {
            file: file.to_string(),
            field: field.to_string(),
            message: message.to_string(),
        };
        let Value::Object(top) = &document else {
            return Err(f("(top level)", "expected a JSON object"));
        };
        let string = |key: &str| -> Result<Option<String>> {
            match top.get(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(f(key, "expected a string")),
            }
        };
        let boolean = |key: &str| -> Result<Option<bool>> {
            match top.get(key) {
                None => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(f(key, "expected a boolean")),
            }
        };
        let strings = |key: &str| -> Result<Vec<String>> {
            match top.get(key) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| f(&format!("{key}[{i}]"), "expected a string"))
                    })
                    .collect(),
                Some(_) => Err(f(key, "expected an array of strings")),
            }
        };
        let id = string("id")?.ok_or_else(|| f("id", "missing (required)"))?;
        let version = string("version")?.ok_or_else(|| f("version", "missing (required)"))?;
        let mut options = BTreeMap::new();
        match top.get("options") {
            None => {}
            Some(Value::Object(map)) => {
                for (name, spec) in map {
                    options.insert(name.clone(), option_spec(file, name, spec)?);
                }
            }
            Some(_) => return Err(f("options", "expected an object")),
        }
        let container_env = match top.get("containerEnv") {
            None => BTreeMap::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|s| (k.clone(), s.to_string()))
                        .ok_or_else(|| f(&format!("containerEnv.{k}"), "expected a string"))
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(f("containerEnv", "expected an object of strings")),
        };
        let depends_on = match top.get("dependsOn") {
            None => BTreeMap::new(),
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    check_feature_options(file, &format!("dependsOn.{k}"), v)?;
                }
                map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            }
            Some(_) => return Err(f("dependsOn", "expected an object")),
        };
        let mounts = match top.get("mounts") {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                for (i, m) in items.iter().enumerate() {
                    if !matches!(m, Value::String(_) | Value::Object(_)) {
                        return Err(f(
                            &format!("mounts[{i}]"),
                            "expected a string or a mount object",
                        ));
                    }
                }
                items.clone()
            }
            Some(_) => return Err(f("mounts", "expected an array")),
        };
        let lifecycle = LIFECYCLE_HOOKS
            .iter()
            .filter_map(|h| top.get(*h).map(|v| (h.to_string(), v.clone())))
            .collect();
        Ok(FeatureMetadata {
            id,
            version,
            name: string("name")?,
            options,
            container_env,
            depends_on,
            installs_after: strings("installsAfter")?,
            legacy_ids: strings("legacyIds")?,
            privileged: boolean("privileged")?,
            init: boolean("init")?,
            cap_add: strings("capAdd")?,
            security_opt: strings("securityOpt")?,
            mounts,
            entrypoint: string("entrypoint")?,
            customizations: top.get("customizations").cloned(),
            lifecycle,
            document: document.clone(),
        })
    }
}

fn option_spec(file: &str, name: &str, spec: &Value) -> Result<OptionSpec> {
    let f = |field: &str, message: &str| Error::Field {
        file: file.to_string(),
        field: format!("options.{name}{field}"),
        message: message.to_string(),
    };
    let Value::Object(o) = spec else {
        return Err(f("", "expected an object"));
    };
    let kind = match o.get("type").and_then(Value::as_str) {
        Some("boolean") => OptionType::Boolean,
        Some("string") => OptionType::String,
        _ => return Err(f(".type", "expected \"boolean\" or \"string\"")),
    };
    let default = match o.get("default") {
        None => None,
        Some(v @ (Value::String(_) | Value::Bool(_))) => Some(v.clone()),
        Some(_) => return Err(f(".default", "expected a string or a boolean")),
    };
    let list = |key: &str| -> Result<Vec<String>> {
        match o.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Bool(b) => Ok(b.to_string()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(f(&format!(".{key}"), "expected an array of strings")),
                })
                .collect(),
            Some(_) => Err(f(&format!(".{key}"), "expected an array of strings")),
        }
    };
    Ok(OptionSpec {
        kind,
        default,
        proposals: list("proposals")?,
        allowed: list("enum")?,
        description: o
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// An option id as an environment variable name, per the spec:
/// `str.replace(/[^\w_]/g, '_').replace(/^[\d_]+/g, '_').toUpperCase()`.
/// JavaScript counts UTF-16 code units, so a character outside the BMP
/// becomes two underscores, as it does in the reference CLI.
pub fn option_env_name(id: &str) -> String {
    let mut s = String::with_capacity(id.len());
    for c in id.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            s.push(c);
        } else {
            (0..c.len_utf16()).for_each(|_| s.push('_'));
        }
    }
    let trimmed = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '_');
    let s = if trimmed.len() < s.len() {
        format!("_{trimmed}")
    } else {
        s
    };
    s.to_ascii_uppercase()
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The option values a Feature installs with: its declared defaults,
/// overridden by what the user gave (see the module doc for non-object
/// values). Keys are the option ids as declared/written.
pub fn resolved_options(metadata: &FeatureMetadata, user: &Value) -> BTreeMap<String, Value> {
    let mut values: BTreeMap<String, Value> = metadata
        .options
        .iter()
        .filter_map(|(k, spec)| spec.default.clone().map(|d| (k.clone(), d)))
        .collect();
    match user {
        Value::Object(map) => values.extend(map.iter().map(|(k, v)| (k.clone(), v.clone()))),
        other if metadata.options.contains_key("version") => {
            values.insert("version".to_string(), other.clone());
        }
        _ => {}
    }
    values
}

/// The environment a Feature's `install.sh` sees for its options, sorted by
/// variable name: `(NAME, value)`.
pub fn feature_env(metadata: &FeatureMetadata, user: &Value) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = resolved_options(metadata, user)
        .iter()
        .map(|(k, v)| (option_env_name(k), value_text(v)))
        .collect();
    env.sort();
    env.dedup_by(|a, b| a.0 == b.0);
    env
}

/// The user variables passed to every Feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEnv {
    /// `_CONTAINER_USER`.
    pub container_user: String,
    /// `_REMOTE_USER` (the container user when `remoteUser` is unset).
    pub remote_user: String,
    /// `_CONTAINER_USER_HOME`.
    pub container_user_home: String,
    /// `_REMOTE_USER_HOME`.
    pub remote_user_home: String,
}

impl UserEnv {
    /// As `(NAME, value)` pairs, in the order the reference CLI writes them.
    pub fn pairs(&self) -> Vec<(String, String)> {
        vec![
            ("_CONTAINER_USER".into(), self.container_user.clone()),
            ("_REMOTE_USER".into(), self.remote_user.clone()),
            (
                "_CONTAINER_USER_HOME".into(),
                self.container_user_home.clone(),
            ),
            ("_REMOTE_USER_HOME".into(), self.remote_user_home.clone()),
        ]
    }
}

/// The user variables. `container_user` is `containerUser` from the config
/// (or metadata), else the image's `USER`, else `root`; `remote_user` is
/// `remoteUser`, else the container user. Homes come from `passwd` (the
/// image's `/etc/passwd`, matched by name or uid); a user missing from it
/// gets `/root` for root and `/home/NAME` otherwise.
pub fn builtin_env(
    container_user: Option<&str>,
    remote_user: Option<&str>,
    passwd: &str,
) -> UserEnv {
    let container = container_user.filter(|u| !u.is_empty()).unwrap_or("root");
    // `USER name:group` → the user part.
    let container = container.split(':').next().unwrap_or(container).to_string();
    let remote = remote_user
        .filter(|u| !u.is_empty())
        .map(|u| u.split(':').next().unwrap_or(u).to_string());
    let remote = remote.unwrap_or_else(|| container.clone());
    UserEnv {
        container_user_home: home_of(&container, passwd),
        remote_user_home: home_of(&remote, passwd),
        container_user: container,
        remote_user: remote,
    }
}

fn home_of(user: &str, passwd: &str) -> String {
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 6 && (fields[0] == user || fields[2] == user) {
            return fields[5].to_string();
        }
    }
    if user == "root" || user == "0" {
        "/root".into()
    } else {
        format!("/home/{user}")
    }
}

/// Renders variables as a file `install.sh`'s wrapper sources:
/// `NAME="value"` lines, with `\`, `"`, `$` and `` ` `` escaped so a value
/// reaches the script verbatim.
pub fn render_env_file(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            if matches!(c, '\\' | '"' | '$' | '`') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push_str("\"\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_spec_reference_examples() {
        let r = FeatureRef::parse("ghcr.io/user/repo/go").unwrap();
        assert_eq!(
            r,
            FeatureRef::Oci {
                registry: "ghcr.io".into(),
                path: "user/repo/go".into(),
                tag: None,
                digest: None
            }
        );
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.short_id(), "go");
        let r = FeatureRef::parse("ghcr.io/user/repo1/go:1").unwrap();
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.id_without_version(), "ghcr.io/user/repo1/go");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = FeatureRef::parse(&format!("localhost:5000/NS/Feat@{d}")).unwrap();
        assert_eq!(
            r,
            FeatureRef::Oci {
                registry: "localhost:5000".into(),
                path: "ns/feat".into(),
                tag: None,
                digest: Some(d)
            }
        );
        assert_eq!(r.tag(), None);
        let r =
            FeatureRef::parse("https://github.com/user/repo/releases/devcontainer-feature-go.tgz")
                .unwrap();
        assert!(matches!(r, FeatureRef::Tarball { .. }));
        assert_eq!(r.short_id(), "go");
        let r = FeatureRef::parse("./myGoFeature").unwrap();
        assert_eq!(
            r,
            FeatureRef::Local {
                path: "./myGoFeature".into()
            }
        );
        assert_eq!(r.short_id(), "myGoFeature");
    }

    #[test]
    fn refuses_malformed_references() {
        for bad in [
            "node",
            "ghcr.io/node",
            "/abs/feature",
            "ghcr.io/a/b@sha256:12",
            "ghcr.io/a/b:1@sha256:".to_string().as_str(),
            "ghcr.io//b",
            "ghcr.io/a/b:",
        ] {
            let e = FeatureRef::parse(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn mirror_paths() {
        let r = FeatureRef::parse("ghcr.io/devcontainers/features/node:1").unwrap();
        assert_eq!(
            r.mirror_path().unwrap(),
            "oci/ghcr.io/devcontainers/features/node"
        );
        let r = FeatureRef::parse("https://example.com/f.tgz?x=1").unwrap();
        assert_eq!(
            r.mirror_path().unwrap(),
            "tarball/https%3A%2F%2Fexample.com%2Ff.tgz%3Fx%3D1"
        );
        assert_eq!(FeatureRef::parse("./x").unwrap().mirror_path(), None);
    }

    #[test]
    fn env_names_match_the_spec_regexes() {
        // Expected values computed with the spec's JavaScript in node.
        let cases = [
            ("version", "VERSION"),
            ("installZsh", "INSTALLZSH"),
            ("2fa", "_FA"),
            ("__x", "_X"),
            ("my-opt.v", "MY_OPT_V"),
            ("a😀b", "A__B"),
            ("9_9z", "_Z"),
            ("é", "_"),
        ];
        for (id, want) in cases {
            assert_eq!(option_env_name(id), want, "{id}");
        }
    }

    fn python() -> FeatureMetadata {
        FeatureMetadata::parse(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../testdata/devcontainer/features/python/devcontainer-feature.json"
            ))
            .unwrap(),
            "python/devcontainer-feature.json",
        )
        .unwrap()
    }

    #[test]
    fn spec_option_resolution_example() {
        // The spec's "Option resolution example".
        let m = python();
        let env = feature_env(&m, &json!({"version": "3.10", "pip": false}));
        assert_eq!(
            env,
            vec![
                ("OPTIMIZE".into(), "true".into()),
                ("PIP".into(), "false".into()),
                ("VERSION".into(), "3.10".into())
            ]
        );
        assert_eq!(
            render_env_file(&env),
            "OPTIMIZE=\"true\"\nPIP=\"false\"\nVERSION=\"3.10\"\n"
        );
    }

    #[test]
    fn shorthand_values_and_undeclared_options() {
        let m = python();
        let env = feature_env(&m, &json!("3.9"));
        assert!(env.contains(&("VERSION".into(), "3.9".into())));
        let env = feature_env(&m, &json!(true));
        assert!(env.contains(&("VERSION".into(), "true".into())));
        let env = feature_env(&m, &json!({"extra-thing": "x"}));
        assert!(env.contains(&("EXTRA_THING".into(), "x".into())));
        assert!(env.contains(&("VERSION".into(), "latest".into())));
        // No `version` option: a non-object value leaves only the defaults.
        let mut m2 = m.clone();
        m2.options.remove("version");
        let env = feature_env(&m2, &json!("3.9"));
        assert_eq!(env.len(), 2);
    }

    #[test]
    fn parses_feature_metadata_fields() {
        let m = python();
        assert_eq!(m.id, "python");
        assert_eq!(m.version, "1.2.0");
        assert_eq!(m.options["version"].kind, OptionType::String);
        assert_eq!(m.options["version"].allowed[0], "latest");
        assert_eq!(m.options["pip"].default, Some(json!(true)));
        assert_eq!(m.container_env["PYTHON_PATH"], "/usr/local/python");
        assert_eq!(
            m.depends_on["ghcr.io/devcontainers/features/common-utils:2"],
            json!({"installZsh": false})
        );
        assert_eq!(
            m.installs_after,
            vec!["ghcr.io/devcontainers/features/git".to_string()]
        );
        assert_eq!(m.privileged, Some(true));
        assert_eq!(m.init, Some(true));
        assert_eq!(m.cap_add, vec!["SYS_PTRACE".to_string()]);
        assert_eq!(m.mounts.len(), 1);
        assert_eq!(m.entrypoint.as_deref(), Some("/usr/local/share/py-init.sh"));
        assert!(m.customizations.is_some());
        assert_eq!(m.lifecycle["postCreateCommand"], json!("python --version"));
    }

    #[test]
    fn metadata_errors_name_file_and_field() {
        let e =
            FeatureMetadata::parse(r#"{"id": "x"}"#, "x/devcontainer-feature.json").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x/devcontainer-feature.json: field `version`: missing (required)"
        );
        let e = FeatureMetadata::parse(
            r#"{"id": "x", "version": "1", "options": {"o": {"type": "number"}}}"#,
            "f",
        )
        .unwrap_err();
        assert!(e.to_string().contains("`options.o.type`"), "{e}");
    }

    #[test]
    fn user_env_defaults_and_passwd_homes() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nvscode:x:1000:1000::/home/vscode:/bin/bash\nsvc:x:998:998::/srv/svc:/bin/false\n";
        let u = builtin_env(None, None, passwd);
        assert_eq!(
            u.pairs(),
            vec![
                ("_CONTAINER_USER".into(), "root".into()),
                ("_REMOTE_USER".into(), "root".into()),
                ("_CONTAINER_USER_HOME".into(), "/root".into()),
                ("_REMOTE_USER_HOME".into(), "/root".into()),
            ]
        );
        let u = builtin_env(Some("998:998"), Some("vscode"), passwd);
        assert_eq!(
            (u.container_user.as_str(), u.container_user_home.as_str()),
            ("998", "/srv/svc")
        );
        assert_eq!(
            (u.remote_user.as_str(), u.remote_user_home.as_str()),
            ("vscode", "/home/vscode")
        );
        let u = builtin_env(Some("ghost"), None, passwd);
        assert_eq!(u.remote_user_home, "/home/ghost");
    }

    #[test]
    fn env_file_escapes_shell_specials() {
        let s = render_env_file(&[("A".into(), "say \"hi\" $HOME `x` \\".into())]);
        assert_eq!(s, "A=\"say \\\"hi\\\" \\$HOME \\`x\\` \\\\\"\n");
    }
}
