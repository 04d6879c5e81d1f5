//! Fuzz target: image reference parsing must never panic, and a parsed
//! reference prints to text that parses back to the same reference.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = text.parse::<cairn_registry::Reference>() {
        let printed = r.to_string();
        let again: cairn_registry::Reference = printed
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} → {printed:?} does not parse: {e}"));
        assert_eq!(again, r, "{text:?} → {printed:?}");
        let _ = r.name();
        let _ = r.reference_str();
    }
});
