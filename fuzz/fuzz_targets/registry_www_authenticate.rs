//! Fuzz target: the registry client's `WWW-Authenticate` parser and scope
//! handling must never panic; a parsed challenge has a lower-case scheme and
//! lower-case parameter names.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some((scheme, params)) = cairn_registry::fuzzing::parse_www_authenticate(&text) {
        assert!(!scheme.is_empty());
        assert_eq!(scheme, scheme.to_ascii_lowercase());
        for (k, _) in &params {
            assert_eq!(*k, k.to_ascii_lowercase());
        }
        if let Some((_, scope)) = params.iter().find(|(k, _)| k == "scope") {
            let held = vec![scope.clone()];
            // a scope always covers itself
            if scope.rsplit_once(':').is_some_and(|(_, a)| !a.is_empty()) {
                assert!(
                    cairn_registry::fuzzing::scope_covered(&held, scope),
                    "{scope:?}"
                );
            }
        }
    }
    let _ = cairn_registry::fuzzing::repository_of_path(&text);
});
