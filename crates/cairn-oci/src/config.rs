//! cairn's own image config type (OCI + Docker fields, unknown fields preserved).

use std::collections::BTreeMap;

use oci_spec::image::Digest;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `null` or missing → `Default::default()` (Docker writes `"Env": null` etc.).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An image configuration (`application/vnd.oci.image.config.v1+json` or the
/// Docker equivalent).
///
/// Unlike oci-spec's `ImageConfiguration`, all maps are `BTreeMap` (stable
/// order), Docker-only fields are kept, and any field this type does not know
/// is preserved in `extra` and written back unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author of the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture (GOARCH spelling, e.g. `amd64`).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (GOOS spelling, e.g. `linux`).
    #[serde(default)]
    pub os: String,
    /// OS version (`os.version`), mostly for Windows.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features (`os.features`).
    #[serde(
        rename = "os.features",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub os_features: Vec<String>,
    /// CPU variant (e.g. `v8` for arm64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Default runtime configuration of containers started from the image.
    #[serde(default, deserialize_with = "null_default")]
    pub config: ContainerConfig,
    /// Layer diff IDs.
    #[serde(default)]
    pub rootfs: RootFs,
    /// Build history, one record per instruction.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history: Vec<History>,
    /// Fields not modelled above (e.g. Docker's `container_config`, `docker_version`).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The `config` object of an image config: OCI fields plus Docker ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// `USER`: `user[:group]`.
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `EXPOSE`: keys like `80/tcp`, values are `{}`.
    #[serde(
        rename = "ExposedPorts",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, Value>,
    /// `ENV`: `KEY=value` strings in order.
    #[serde(
        rename = "Env",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// `ENTRYPOINT`.
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`: keys are paths, values are `{}`.
    #[serde(
        rename = "Volumes",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub volumes: BTreeMap<String, Value>,
    /// `WORKDIR`.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    /// `LABEL`.
    #[serde(
        rename = "Labels",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`.
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
    /// `HEALTHCHECK` (Docker only).
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<HealthConfig>,
    /// `SHELL` (Docker only).
    #[serde(rename = "Shell", default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// `ONBUILD` triggers (Docker only).
    #[serde(
        rename = "OnBuild",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub on_build: Vec<String>,
    /// Windows-only flag kept for round-tripping Docker configs.
    #[serde(
        rename = "ArgsEscaped",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub args_escaped: Option<bool>,
    /// Unknown fields (e.g. `Hostname`, `StopTimeout`), preserved as-is.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Docker's `Healthcheck` object. Durations are nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args..]` or `["CMD-SHELL", command]`.
    #[serde(
        rename = "Test",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test: Vec<String>,
    /// Time between checks (ns).
    #[serde(rename = "Interval", default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Time before a check is considered hung (ns).
    #[serde(rename = "Timeout", default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Start period (ns).
    #[serde(
        rename = "StartPeriod",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_period: Option<i64>,
    /// Interval during the start period (ns).
    #[serde(
        rename = "StartInterval",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_interval: Option<i64>,
    /// Consecutive failures before unhealthy.
    #[serde(rename = "Retries", default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// Unknown fields, preserved.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The `rootfs` object: the ordered uncompressed layer digests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `"layers"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `sha256` of each uncompressed layer tar, bottom first.
    #[serde(default, deserialize_with = "null_default")]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

/// One `history` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Free-form comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when this step produced no layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
    /// Unknown fields, preserved.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ImageConfig {
    /// Parse from JSON bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, crate::Error> {
        serde_json::from_slice(bytes).map_err(|source| crate::Error::Json {
            what: "image config".into(),
            source,
        })
    }

    /// Canonical JSON bytes (what gets hashed and stored).
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, crate::Error> {
        crate::canonical_json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_CFG: &str = r#"{
      "architecture": "amd64",
      "os": "linux",
      "docker_version": "24.0.7",
      "container_config": {"Hostname": "abc"},
      "config": {
        "Hostname": "",
        "Env": ["PATH=/usr/bin"],
        "Cmd": ["sh"],
        "Entrypoint": null,
        "OnBuild": null,
        "Labels": null,
        "Volumes": {"/data": {}},
        "ExposedPorts": {"80/tcp": {}},
        "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000, "Retries": 3},
        "Shell": ["/bin/bash", "-c"],
        "ArgsEscaped": true,
        "StopTimeout": 10
      },
      "rootfs": {"type": "layers", "diff_ids": ["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},
      "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "CMD", "empty_layer": true}]
    }"#;

    #[test]
    fn docker_fields_and_unknowns_round_trip() {
        let cfg = ImageConfig::from_slice(DOCKER_CFG.as_bytes()).unwrap();
        assert_eq!(cfg.config.shell.as_deref().unwrap(), ["/bin/bash", "-c"]);
        assert_eq!(cfg.config.healthcheck.as_ref().unwrap().retries, Some(3));
        assert_eq!(cfg.config.args_escaped, Some(true));
        assert!(cfg.config.entrypoint.is_none());
        assert!(cfg.extra.contains_key("docker_version"));
        assert!(cfg.config.extra.contains_key("StopTimeout"));
        assert!(cfg.config.extra.contains_key("Hostname"));

        let bytes = cfg.to_canonical_json().unwrap();
        let again = ImageConfig::from_slice(&bytes).unwrap();
        assert_eq!(again, cfg);
        // Canonical output is stable and key-sorted.
        assert_eq!(again.to_canonical_json().unwrap(), bytes);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains(r#""Shell":["/bin/bash","-c"]"#), "{text}");
        assert!(!text.contains(r#""OnBuild""#));
        assert!(text.contains(r#""container_config":{"Hostname":"abc"}"#));
    }

    #[test]
    fn minimal_config() {
        let cfg = ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            ..Default::default()
        };
        let text = String::from_utf8(cfg.to_canonical_json().unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"architecture":"amd64","config":{},"os":"linux","rootfs":{"diff_ids":[],"type":"layers"}}"#
        );
    }
}
