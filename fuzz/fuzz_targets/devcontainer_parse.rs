//! Fuzz target: the parsers of dev container input never panic: devcontainer.json
//! (JSONC, substitution, the typed config), devcontainer-feature.json, Feature
//! references, devcontainer-lock.json and the `devcontainer.metadata` label.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use cairn_devcontainer::lockfile::Lockfile;
use cairn_devcontainer::metadata::{merge_entries, parse_label};
use cairn_devcontainer::substitute::SubstitutionContext;
use cairn_devcontainer::{FeatureMetadata, FeatureRef, parse_config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env = BTreeMap::from([("HOME".to_string(), "/home/f".to_string())]);
    let ctx = SubstitutionContext::new(env, "/work/project");
    if let Ok(config) = parse_config(&text, Path::new("/work/project/.devcontainer/devcontainer.json"), &ctx) {
        // Every Feature key of an accepted config is a reference or an error, never a panic.
        for id in config.features.keys() {
            let _ = FeatureRef::parse(id);
        }
    }
    if let Ok(m) = FeatureMetadata::parse(&text, "fuzz") {
        let user = serde_json::json!({"version": "1", "x": true});
        let _ = cairn_devcontainer::features::feature_env(&m, &user);
        let _ = cairn_devcontainer::metadata::feature_entry("fuzz", &m);
    }
    if let Ok(r) = FeatureRef::parse(&text) {
        let _ = (r.short_id(), r.mirror_path(), r.tag());
    }
    if let Ok(lock) = Lockfile::parse(&text, "devcontainer-lock.json") {
        // What is rendered parses again to the same lockfile.
        let again = Lockfile::parse(&lock.render(), "again").expect("rendered lockfile parses");
        assert_eq!(again, lock);
    }
    if let Ok(entries) = parse_label(Some(&text)) {
        let _ = merge_entries(&entries);
    }
});
