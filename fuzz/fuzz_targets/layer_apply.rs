//! Fuzz target: `apply_layer` (and `open_layer_reader`'s gzip/zstd sniffing)
//! on arbitrary bytes must never panic and never write outside the root: the
//! target extracts into `tmp/root` next to a sentinel `tmp/outside` and
//! checks the sentinel afterwards.
#![no_main]

use std::fs;
use std::io::Write;

use cairn_oci::{ApplyOptions, apply_layer, open_layer_reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    fs::create_dir(&root).expect("root");
    fs::create_dir(&outside).expect("outside");
    fs::write(outside.join("secret"), b"secret").expect("sentinel");
    let opts = ApplyOptions {
        ignore_chown_errors: true,
    };

    // As an uncompressed tar stream.
    let _ = apply_layer(data, &root, &opts);

    // Through the blob reader, which picks gzip, zstd or plain by magic bytes.
    let mut blob = tempfile::tempfile().expect("blob");
    blob.write_all(data).expect("write blob");
    if let Ok(reader) = open_layer_reader(blob) {
        let _ = apply_layer(reader, &root, &opts);
    }

    let mut names: Vec<_> = fs::read_dir(tmp.path())
        .expect("read tmp")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["outside", "root"],
        "something appeared next to the root"
    );
    let inside: Vec<_> = fs::read_dir(&outside)
        .expect("read outside")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(inside, ["secret"], "something was written outside the root");
    assert_eq!(
        fs::read(outside.join("secret")).expect("sentinel"),
        b"secret"
    );
});
