//! The `devcontainer.metadata` image label.
//!
//! The label is a JSON array of objects (a single object is accepted when
//! reading, as the reference CLI does). A build appends, in this order, to the
//! base image's entries: one entry per Feature in install order
//! ([`feature_entry`]: `id` — the reference as written — then whichever of
//! `containerEnv`, `privileged`, `init`, `capAdd`, `securityOpt`, `mounts`,
//! `entrypoint`, `customizations` and the lifecycle hooks the Feature sets),
//! then one entry for devcontainer.json itself ([`config_entry`]: the
//! properties the metadata reference marks as storable in the label).
//! Entries are never merged into each other in the label; consumers merge
//! them with [`merge_entries`] following the spec's merge logic. The
//! reference CLI bakes a Feature's `containerEnv` into `ENV` and leaves it
//! out of its label entry; cairn records it in the entry as well so the label
//! alone describes the Features.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::config::DevContainerConfig;
use crate::error::{Error, Result};
use crate::features::{FeatureMetadata, LIFECYCLE_HOOKS};

/// The label's name.
pub const LABEL: &str = "devcontainer.metadata";

/// devcontainer.json properties stored in the label.
pub const CONFIG_PROPERTIES: &[&str] = &[
    "onCreateCommand",
    "updateContentCommand",
    "postCreateCommand",
    "postStartCommand",
    "postAttachCommand",
    "waitFor",
    "customizations",
    "mounts",
    "containerEnv",
    "containerUser",
    "init",
    "privileged",
    "capAdd",
    "securityOpt",
    "remoteUser",
    "userEnvProbe",
    "remoteEnv",
    "overrideCommand",
    "portsAttributes",
    "otherPortsAttributes",
    "forwardPorts",
    "shutdownAction",
    "updateRemoteUserUID",
    "hostRequirements",
    "entrypoint",
];

/// The label entry for one installed Feature.
pub fn feature_entry(user_id: &str, m: &FeatureMetadata) -> Value {
    let mut e = Map::new();
    e.insert("id".into(), Value::String(user_id.to_string()));
    if !m.container_env.is_empty() {
        e.insert(
            "containerEnv".into(),
            serde_json::to_value(&m.container_env).unwrap_or_default(),
        );
    }
    if let Some(p) = m.privileged {
        e.insert("privileged".into(), Value::Bool(p));
    }
    if let Some(i) = m.init {
        e.insert("init".into(), Value::Bool(i));
    }
    if !m.cap_add.is_empty() {
        e.insert("capAdd".into(), m.cap_add.clone().into());
    }
    if !m.security_opt.is_empty() {
        e.insert("securityOpt".into(), m.security_opt.clone().into());
    }
    if !m.mounts.is_empty() {
        e.insert("mounts".into(), Value::Array(m.mounts.clone()));
    }
    if let Some(ep) = &m.entrypoint {
        e.insert("entrypoint".into(), Value::String(ep.clone()));
    }
    if let Some(c) = &m.customizations {
        e.insert("customizations".into(), c.clone());
    }
    for (hook, v) in &m.lifecycle {
        e.insert(hook.clone(), v.clone());
    }
    Value::Object(e)
}

/// The label entry for devcontainer.json, `None` when it sets none of
/// [`CONFIG_PROPERTIES`].
pub fn config_entry(config: &DevContainerConfig) -> Option<Value> {
    let Value::Object(doc) = &config.document else {
        return None;
    };
    let e: Map<String, Value> = CONFIG_PROPERTIES
        .iter()
        .filter_map(|k| doc.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    (!e.is_empty()).then_some(Value::Object(e))
}

/// Parses a base image's label value into its entries (empty for no label).
pub fn parse_label(label: Option<&str>) -> Result<Vec<Value>> {
    let Some(text) = label.filter(|t| !t.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let v: Value = serde_json::from_str(text).map_err(|e| Error::BaseMetadata {
        message: format!("not JSON: {e}"),
    })?;
    let entries = match v {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        _ => {
            return Err(Error::BaseMetadata {
                message: "expected an array of objects".into(),
            });
        }
    };
    if let Some(i) = entries.iter().position(|e| !e.is_object()) {
        return Err(Error::BaseMetadata {
            message: format!("entry {i} is not an object"),
        });
    }
    Ok(entries)
}

/// The label value for the built image: the base's entries, the Features'
/// entries (already in install order), then the config's.
pub fn build_label(
    base_label: Option<&str>,
    features: &[Value],
    config: Option<Value>,
) -> Result<String> {
    let mut entries = parse_label(base_label)?;
    entries.extend(features.iter().cloned());
    entries.extend(config);
    Ok(Value::Array(entries).to_string())
}

/// The label's entries merged, following the spec's merge logic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergedMetadata {
    /// True if any entry sets it.
    pub privileged: bool,
    /// True if any entry sets it.
    pub init: bool,
    /// Union, first occurrence order.
    pub cap_add: Vec<String>,
    /// Union, first occurrence order.
    pub security_opt: Vec<String>,
    /// Later entries win per variable.
    pub container_env: BTreeMap<String, String>,
    /// Mounts; a later mount with the same `target` replaces an earlier one.
    pub mounts: Vec<Value>,
    /// Every entrypoint, in order.
    pub entrypoints: Vec<String>,
    /// Per lifecycle hook, every command, in order.
    pub lifecycle: BTreeMap<String, Vec<Value>>,
    /// Last one set.
    pub remote_user: Option<String>,
    /// Last one set.
    pub container_user: Option<String>,
    /// Last one set.
    pub update_remote_user_uid: Option<bool>,
}

fn mount_target(m: &Value) -> Option<String> {
    match m {
        Value::Object(o) => o.get("target").and_then(Value::as_str).map(str::to_string),
        Value::String(s) => s.split(',').find_map(|part| {
            let (k, v) = part.split_once('=')?;
            matches!(k.trim(), "target" | "dst" | "destination").then(|| v.trim().to_string())
        }),
        _ => None,
    }
}

/// Merges label entries (base image, Features, config — in that order).
pub fn merge_entries(entries: &[Value]) -> MergedMetadata {
    let mut m = MergedMetadata::default();
    let push_unique = |list: &mut Vec<String>, v: Option<&Value>| {
        for s in v
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !list.iter().any(|x| x == s) {
                list.push(s.to_string());
            }
        }
    };
    for e in entries {
        let Value::Object(o) = e else { continue };
        m.privileged |= o
            .get("privileged")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        m.init |= o.get("init").and_then(Value::as_bool).unwrap_or(false);
        push_unique(&mut m.cap_add, o.get("capAdd"));
        push_unique(&mut m.security_opt, o.get("securityOpt"));
        if let Some(env) = o.get("containerEnv").and_then(Value::as_object) {
            for (k, v) in env {
                if let Some(s) = v.as_str() {
                    m.container_env.insert(k.clone(), s.to_string());
                }
            }
        }
        for mount in o
            .get("mounts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let target = mount_target(mount);
            if target.is_some() {
                m.mounts.retain(|x| mount_target(x) != target);
            }
            m.mounts.push(mount.clone());
        }
        if let Some(ep) = o.get("entrypoint").and_then(Value::as_str) {
            m.entrypoints.push(ep.to_string());
        }
        for hook in LIFECYCLE_HOOKS {
            if let Some(v) = o.get(*hook) {
                m.lifecycle
                    .entry(hook.to_string())
                    .or_default()
                    .push(v.clone());
            }
        }
        if let Some(u) = o.get("remoteUser").and_then(Value::as_str) {
            m.remote_user = Some(u.to_string());
        }
        if let Some(u) = o.get("containerUser").and_then(Value::as_str) {
            m.container_user = Some(u.to_string());
        }
        if let Some(b) = o.get("updateRemoteUserUID").and_then(Value::as_bool) {
            m.update_remote_user_uid = Some(b);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::substitute::SubstitutionContext;
    use serde_json::json;
    use std::path::Path;

    fn meta(doc: Value) -> FeatureMetadata {
        FeatureMetadata::parse(&doc.to_string(), "f").unwrap()
    }

    #[test]
    fn feature_entry_carries_runtime_properties() {
        let m = meta(json!({
            "id": "dind", "version": "1.0.0",
            "containerEnv": {"DOCKER_BUILDKIT": "1"},
            "privileged": true, "init": true, "capAdd": ["NET_ADMIN"],
            "mounts": [{"source": "dind-${devcontainerId}", "target": "/var/lib/docker", "type": "volume"}],
            "entrypoint": "/usr/local/share/docker-init.sh",
            "postStartCommand": "echo started",
            "options": {"v": {"type": "string", "default": "x"}}
        }));
        let e = feature_entry("ghcr.io/devcontainers/features/docker-in-docker:2", &m);
        assert_eq!(
            e,
            json!({
                "id": "ghcr.io/devcontainers/features/docker-in-docker:2",
                "containerEnv": {"DOCKER_BUILDKIT": "1"},
                "privileged": true, "init": true, "capAdd": ["NET_ADMIN"],
                "mounts": [{"source": "dind-${devcontainerId}", "target": "/var/lib/docker", "type": "volume"}],
                "entrypoint": "/usr/local/share/docker-init.sh",
                "postStartCommand": "echo started"
            })
        );
        // A Feature with nothing to carry still gets its id.
        assert_eq!(
            feature_entry("./x", &meta(json!({"id": "x", "version": "1"}))),
            json!({"id": "./x"})
        );
    }

    #[test]
    fn label_appends_features_then_config_to_the_base() {
        let base =
            r#"[{"id":"ghcr.io/devcontainers/features/common-utils:2"},{"remoteUser":"vscode"}]"#;
        let config = crate::parse_config(
            r#"{"image": "x", "remoteUser": "dev", "postCreateCommand": "make", "name": "not in label"}"#,
            Path::new("/w/.devcontainer.json"),
            &SubstitutionContext::default(),
        )
        .unwrap();
        let f = feature_entry(
            "./a",
            &meta(json!({"id": "a", "version": "1", "init": true})),
        );
        let label = build_label(Some(base), &[f], config_entry(&config)).unwrap();
        let v: Value = serde_json::from_str(&label).unwrap();
        assert_eq!(
            v,
            json!([
                {"id": "ghcr.io/devcontainers/features/common-utils:2"},
                {"remoteUser": "vscode"},
                {"id": "./a", "init": true},
                {"postCreateCommand": "make", "remoteUser": "dev"}
            ])
        );
        let merged = merge_entries(v.as_array().unwrap());
        assert_eq!(merged.remote_user.as_deref(), Some("dev"));
        assert!(merged.init);
    }

    #[test]
    fn base_label_forms() {
        assert!(parse_label(None).unwrap().is_empty());
        assert_eq!(
            parse_label(Some(r#"{"remoteUser":"a"}"#)).unwrap(),
            vec![json!({"remoteUser": "a"})]
        );
        let e = parse_label(Some("[1]")).unwrap_err();
        assert!(e.to_string().contains("devcontainer.metadata"), "{e}");
        assert!(parse_label(Some("nope")).is_err());
    }

    #[test]
    fn merge_logic() {
        let entries = vec![
            json!({"capAdd": ["SYS_PTRACE"], "containerEnv": {"A": "1", "B": "1"}, "mounts": ["type=volume,source=x,target=/data"], "postCreateCommand": "one"}),
            json!({"privileged": true, "capAdd": ["SYS_PTRACE", "NET_ADMIN"], "containerEnv": {"B": "2"}, "mounts": [{"source": "y", "target": "/data", "type": "volume"}], "postCreateCommand": ["two"], "entrypoint": "/e.sh"}),
            json!({"containerUser": "root", "updateRemoteUserUID": false}),
        ];
        let m = merge_entries(&entries);
        assert!(m.privileged && !m.init);
        assert_eq!(m.cap_add, vec!["SYS_PTRACE", "NET_ADMIN"]);
        assert_eq!(
            m.container_env,
            BTreeMap::from([("A".into(), "1".into()), ("B".into(), "2".into())])
        );
        assert_eq!(
            m.mounts,
            vec![json!({"source": "y", "target": "/data", "type": "volume"})]
        );
        assert_eq!(
            m.lifecycle["postCreateCommand"],
            vec![json!("one"), json!(["two"])]
        );
        assert_eq!(m.entrypoints, vec!["/e.sh"]);
        assert_eq!(m.container_user.as_deref(), Some("root"));
        assert_eq!(m.update_remote_user_uid, Some(false));
    }
}
