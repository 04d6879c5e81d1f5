//! Fuzz target: docker `config.json` / podman `auth.json` parsing must never
//! panic, and its error messages must never quote the file (they could
//! carry secrets): no error contains a 12-byte window of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let errors = cairn_registry::fuzzing::parse_auth_file(data);
    for e in &errors {
        for w in data.windows(12) {
            if let Ok(s) = std::str::from_utf8(w)
                && s.chars().all(|c| c.is_ascii_alphanumeric())
            {
                assert!(!e.contains(s), "error {e:?} quotes the input");
            }
        }
    }
});
