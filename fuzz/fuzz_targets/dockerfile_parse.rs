//! Fuzz target: `parse_raw`, `parse`, instruction expansion and the word expanders must
//! never panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lookup = |name: &str| (name.len() % 3 != 0).then(|| format!("v {name}*"));
    // The typed parser is built on the raw one: if it accepts a file, so
    // does the raw parser.
    let raw = cairn_dockerfile::parse_raw("Dockerfile", &text);
    if let Ok(df) = cairn_dockerfile::parse("Dockerfile", &text) {
        assert!(raw.is_ok(), "{raw:?}");
        for stage in &df.stages {
            let _ = stage.from.node.expanded(&lookup, df.escape);
            for ins in &stage.instructions {
                let _ = ins.node.expanded(&lookup, df.escape);
            }
        }
    }
    for escape in ['\\', '`'] {
        let _ = cairn_dockerfile::expand_word(&text, &lookup, escape);
        let _ = cairn_dockerfile::expand_words(&text, &lookup, escape);
        let _ = cairn_dockerfile::expand_heredoc(&text, &lookup, escape);
    }
});
