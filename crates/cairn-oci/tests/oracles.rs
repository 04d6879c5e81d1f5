//! External oracles for what cairn writes: an image (layers + config +
//! manifest) exported with `write_oci_layout` must be unpacked by
//! `umoci unpack --rootless` to the same tree, and accepted by
//! `oci-image-tool validate --type image` (this Debian version's name for
//! an image layout; `imageLayout` is unimplemented there). Both are Debian packages
//! (`umoci`, `oci-image-tool`); a tool that is not installed is skipped with
//! a printed reason.
#![allow(missing_docs)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use cairn_oci::{
    ContentStore, ImageConfig, LayerCompression, LayerOptions, SourceKind, canonical_json,
    media_types, write_layer, write_oci_layout,
};
use serde_json::json;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null"))
        .status()
        .is_ok_and(|s| s.success())
}

fn tree(root: &Path) {
    fs::create_dir_all(root.join("etc/conf.d")).unwrap();
    fs::write(root.join("etc/hostname"), b"cairn\n").unwrap();
    fs::write(root.join("etc/conf.d/a.conf"), b"x=1\n".repeat(1000)).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool2")).unwrap();
    symlink("tool", root.join("usr/bin/alias")).unwrap();
    symlink("/etc/hostname", root.join("hostname-link")).unwrap();
    let long = "n".repeat(130);
    fs::write(root.join(&long), b"long name").unwrap();
    let mut big = Vec::new();
    let mut x = 7u64;
    for _ in 0..300_000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        big.extend_from_slice(&x.to_le_bytes()[..4]);
    }
    fs::write(root.join("usr/big.bin"), &big).unwrap();
}

/// One layer of `src`, config and manifest in a store, exported as a layout.
fn export(tmp: &Path, src: &Path, compression: LayerCompression) -> std::path::PathBuf {
    let store = ContentStore::open(tmp.join("store")).unwrap();
    let opts = LayerOptions {
        compression,
        compression_threads: 2,
        ..LayerOptions::default()
    };
    let mut info = None;
    let (ld, lsize) = store
        .write_blob(|w| {
            info = Some(write_layer(src, SourceKind::Plain, w, &opts)?);
            Ok(())
        })
        .unwrap();
    let info = info.unwrap();
    let mut cfg = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    };
    cfg.rootfs.diff_ids.push(info.diff_id.clone());
    let cfg_bytes = cfg.to_canonical_json().unwrap();
    let cd = store.put_bytes(&cfg_bytes).unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": {"mediaType": media_types::OCI_CONFIG, "digest": cd.to_string(), "size": cfg_bytes.len()},
        "layers": [{"mediaType": info.media_type, "digest": ld.to_string(), "size": lsize}],
    });
    let mbytes = canonical_json(&manifest).unwrap();
    let md = store.put_bytes(&mbytes).unwrap();
    let dest = tmp.join("layout");
    write_oci_layout(
        &store,
        &md,
        media_types::OCI_MANIFEST,
        mbytes.len() as u64,
        &dest,
        Some("latest"),
    )
    .unwrap();
    dest
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_same_tree(src: &Path, got: &Path) {
    for e in walkdir::WalkDir::new(src).min_depth(1) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(src).unwrap();
        let a = e.path().symlink_metadata().unwrap();
        let b = got
            .join(rel)
            .symlink_metadata()
            .unwrap_or_else(|_| panic!("{} missing", rel.display()));
        assert_eq!(a.mode(), b.mode(), "{}", rel.display());
        if a.is_file() {
            assert_eq!(
                fs::read(e.path()).unwrap(),
                fs::read(got.join(rel)).unwrap()
            );
        } else if a.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(e.path()).unwrap(),
                fs::read_link(got.join(rel)).unwrap()
            );
        }
    }
    assert_eq!(
        fs::metadata(got.join("usr/bin/tool")).unwrap().ino(),
        fs::metadata(got.join("usr/bin/tool2")).unwrap().ino(),
        "hardlink lost"
    );
}

fn oracle(compression: LayerCompression) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    tree(&src);
    let layout = export(tmp.path(), &src, compression);

    if have("umoci") {
        let bundle = tmp.path().join("bundle");
        run(Command::new("umoci")
            .arg("unpack")
            .arg("--rootless")
            .arg("--image")
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle));
        assert_same_tree(&src, &bundle.join("rootfs"));
    } else {
        eprintln!("skipped umoci: not installed (apt-get install umoci)");
    }

    if have("oci-image-tool") {
        // Debian's oci-image-tool (1.0.0-rc1) calls the layout type "image"
        // (`--type imageLayout` is "unimplemented" there); it checks the
        // layout, index, manifest, config and layer blobs of the ref.
        run(Command::new("oci-image-tool")
            .args(["validate", "--type", "image", "--ref", "name=latest"])
            .arg(&layout));
        // And the manifest and config on their own, against the schemas.
        let blobs = layout.join("blobs/sha256");
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let md = index["manifests"][0]["digest"].as_str().unwrap();
        let mpath = blobs.join(md.trim_start_matches("sha256:"));
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(&mpath).unwrap()).unwrap();
        let cd = manifest["config"]["digest"].as_str().unwrap();
        run(Command::new("oci-image-tool")
            .args(["validate", "--type", "manifest"])
            .arg(&mpath));
        run(Command::new("oci-image-tool")
            .args(["validate", "--type", "config"])
            .arg(blobs.join(cd.trim_start_matches("sha256:"))));
        // Not a vacuous oracle: a corrupted layer blob is refused.
        let ld = manifest["layers"][0]["digest"].as_str().unwrap();
        let lpath = blobs.join(ld.trim_start_matches("sha256:"));
        fs::remove_file(&lpath).unwrap();
        fs::write(&lpath, b"not a layer").unwrap();
        let out = Command::new("oci-image-tool")
            .args(["validate", "--type", "image", "--ref", "name=latest"])
            .arg(&layout)
            .output()
            .unwrap();
        assert!(!out.status.success(), "corrupted layer accepted");
    } else {
        eprintln!("skipped oci-image-tool: not installed (apt-get install oci-image-tool)");
    }
}

#[test]
fn gzip_image_accepted_by_umoci_and_oci_image_tool() {
    oracle(LayerCompression::Gzip);
}

#[test]
fn parallel_gzip_image_accepted_by_umoci_and_oci_image_tool() {
    oracle(LayerCompression::ParallelGzip);
}

#[test]
fn zstd_layer_accepted_by_zstd_and_tar() {
    // Debian's umoci (0.4.7) refuses zstd layers ("blob is not correct
    // mediatype") and its oci-image-tool predates them, so the oracle for
    // zstd layers is the zstd CLI plus GNU tar.
    if !have("zstd") || !have("tar") {
        eprintln!("skipped: zstd or tar not installed (apt-get install zstd tar)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    tree(&src);
    let layout = export(tmp.path(), &src, LayerCompression::Zstd { level: 3 });
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blobs = layout.join("blobs/sha256");
    let md = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blobs.join(md.trim_start_matches("sha256:"))).unwrap())
            .unwrap();
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], media_types::OCI_LAYER_ZSTD);
    let blob = blobs.join(
        layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    run(Command::new("zstd").arg("-t").arg(&blob));
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    run(Command::new("sh").arg("-c").arg(format!(
        "zstd -dc {} | tar -x -C {}",
        blob.display(),
        out.display()
    )));
    assert_same_tree(&src, &out);
}
