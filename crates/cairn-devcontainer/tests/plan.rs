//! The modules together on the image fixture: config → dependsOn resolution
//! → install order → options env → metadata label → cache key, with the OCI
//! Features faked and the local Feature read from testdata.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_devcontainer::cache_key::{CacheKeyInput, cache_key, key_features};
use cairn_devcontainer::features::{builtin_env, feature_env};
use cairn_devcontainer::metadata::{build_label, config_entry, feature_entry, merge_entries};
use cairn_devcontainer::order::{ResolvedFeature, install_order, resolve_features};
use cairn_devcontainer::substitute::SubstitutionContext;
use cairn_devcontainer::{Error, FeatureMetadata, FeatureRef, find_config, load_config};
use serde_json::{Value, json};

fn fake_oci(reference: &FeatureRef) -> Value {
    match reference.id_without_version().as_str() {
        "ghcr.io/devcontainers/features/node" => json!({
            "id": "node", "version": "1.6.0",
            "options": {"version": {"type": "string", "default": "lts"}, "nvmVersion": {"type": "string", "default": "latest"}},
            "dependsOn": {"ghcr.io/devcontainers/features/common-utils:2": {"installZsh": false}},
            "containerEnv": {"NVM_DIR": "/usr/local/share/nvm"}
        }),
        "ghcr.io/devcontainers/features/common-utils" => json!({
            "id": "common-utils", "version": "2.5.0",
            "options": {"installZsh": {"type": "boolean", "default": true}, "username": {"type": "string", "default": "automatic"}}
        }),
        other => panic!("unexpected fetch of {other}"),
    }
}

#[test]
fn image_fixture_end_to_end() -> Result<(), Error> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/devcontainer/image");
    let config_path = find_config(&workspace)?;
    let env = BTreeMap::from([("USER".to_string(), "alice".to_string())]);
    let config = load_config(&config_path, &SubstitutionContext::new(env, &workspace))?;
    let config_dir = config_path.parent().unwrap().to_path_buf();

    let mut fetched = Vec::new();
    let nodes = resolve_features(&config.features, |p| {
        fetched.push((p.user_id.clone(), p.required_by.clone()));
        let (text, canonical_id) = match &p.reference {
            FeatureRef::Local { path } => {
                let dir = config_dir.join(path);
                let text = std::fs::read_to_string(dir.join("devcontainer-feature.json")).unwrap();
                (text, dir.display().to_string())
            }
            r => (
                fake_oci(r).to_string(),
                format!("{}@sha256:{}", r.id_without_version(), "0".repeat(64)),
            ),
        };
        Ok::<_, Error>(ResolvedFeature {
            canonical_id,
            metadata: FeatureMetadata::parse(&text, &p.user_id)?,
        })
    })?;
    // common-utils:2 is user-defined with {"installZsh": false}; node's
    // dependsOn asks for the same options, so it is the same node.
    assert_eq!(nodes.len(), 3);
    assert!(fetched.contains(&(
        "ghcr.io/devcontainers/features/common-utils:2".to_string(),
        Some("ghcr.io/devcontainers/features/node:1".to_string())
    )));

    let order = install_order(&nodes, &config.override_feature_install_order)?;
    let ids: Vec<&str> = order.iter().map(|&i| nodes[i].user_id.as_str()).collect();
    // Round 1: common-utils (priority 0) and nothing else is ready, since
    // local-feature installs after node and node depends on common-utils.
    assert_eq!(
        ids,
        vec![
            "ghcr.io/devcontainers/features/common-utils:2",
            "ghcr.io/devcontainers/features/node:1",
            "./local-feature"
        ]
    );

    let local = &nodes[order[2]];
    assert_eq!(
        feature_env(&local.metadata, &local.options),
        vec![
            ("GREETING".to_string(), "hi".to_string()),
            ("LOUD".to_string(), "true".to_string()),
            ("TARGET_DIR".to_string(), "/opt/greeting".to_string()),
        ]
    );
    let node = &nodes[order[1]];
    assert!(
        feature_env(&node.metadata, &node.options)
            .contains(&("VERSION".to_string(), "18".to_string()))
    );
    let users = builtin_env(
        config.container_user.as_deref(),
        config.remote_user.as_deref(),
        "",
    );
    assert_eq!(users.remote_user_home, "/home/vscode");

    let entries: Vec<Value> = order
        .iter()
        .map(|&i| feature_entry(&nodes[i].user_id, &nodes[i].metadata))
        .collect();
    let label = build_label(
        Some(r#"[{"remoteUser":"root"}]"#),
        &entries,
        config_entry(&config),
    )?;
    let parsed: Vec<Value> = serde_json::from_str(&label).unwrap();
    assert_eq!(parsed.len(), 5);
    let merged = merge_entries(&parsed);
    assert_eq!(merged.remote_user.as_deref(), Some("vscode"));
    assert_eq!(merged.container_env["GREETING_DIR"], "/opt/greeting");
    assert_eq!(merged.lifecycle["postCreateCommand"].len(), 2);

    let features = key_features(&nodes, &order);
    let key = cache_key(&CacheKeyInput {
        config: &config.document,
        dockerfile: None,
        build_context: None,
        base_image_digest: Some("sha256:1111"),
        features: features.clone(),
    });
    let mut changed = features;
    changed[2].options = json!({"greeting": "yo", "loud": true});
    assert_ne!(
        key,
        cache_key(&CacheKeyInput {
            config: &config.document,
            dockerfile: None,
            build_context: None,
            base_image_digest: Some("sha256:1111"),
            features: changed
        })
    );
    Ok(())
}
