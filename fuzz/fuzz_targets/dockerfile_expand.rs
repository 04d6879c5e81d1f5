//! Fuzz target: the word expanders must never panic, and their results
//! must be consistent. Input: `NAME=value` lines, a NUL, then the word (no
//! NUL: the whole input is the word and no variable is set).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (vars, word) = text.split_once('\0').unwrap_or(("", &text));
    let env: BTreeMap<&str, &str> = vars.lines().filter_map(|l| l.split_once('=')).collect();
    let lookup = |name: &str| env.get(name).map(|v| v.to_string());
    for escape in ['\\', '`'] {
        let one = cairn_dockerfile::expand_word(word, &lookup, escape);
        let fields = cairn_dockerfile::expand_words(word, &lookup, escape);
        // Both run the same lexer: they fail on the same inputs.
        assert_eq!(one.is_ok(), fields.is_ok(), "{word:?}");
        if let Ok(fields) = fields {
            assert!(fields.iter().all(|f| !f.is_empty()), "{word:?}: {fields:?}");
        }
        let _ = cairn_dockerfile::expand_heredoc(word, &lookup, escape);
    }
});
