//! Fuzz target: what the registry client parses out of response bodies
//! (manifest/index media-type sniffing, referenced digests, OCI manifest/
//! index/config JSON, `{"errors":[…]}` bodies, token answers) must never
//! panic. Input: an optional `Content-Type` line, a NUL, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (ct, body) = match data.iter().position(|b| *b == 0) {
        Some(i) => (
            Some(String::from_utf8_lossy(&data[..i]).into_owned()),
            &data[i + 1..],
        ),
        None => (None, data),
    };
    let known = ct
        .as_deref()
        .is_some_and(|c| cairn_registry::media_types::MANIFEST_ACCEPT.contains(&c));
    let mt = cairn_registry::fuzzing::parse_bodies(ct.clone(), body);
    if known {
        // a Content-Type we asked for always wins
        assert_eq!(mt, ct);
    }
});
