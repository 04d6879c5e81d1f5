use std::fs;

use serde_json::json;

use super::*;
use crate::{LayerOptions, SourceKind, write_layer};

#[test]
fn put_read_contains() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path()).unwrap();
    let d = store.put_bytes(b"hello").unwrap();
    assert_eq!(d, sha256_digest(b"hello"));
    assert!(store.contains(&d));
    assert_eq!(
        store.blob_path(&d),
        tmp.path().join("blobs/sha256").join(d.digest())
    );
    assert_eq!(store.read_bytes(&d).unwrap(), b"hello");
    // Idempotent.
    assert_eq!(store.put_bytes(b"hello").unwrap(), d);
    let missing = sha256_digest(b"nope");
    assert!(!store.contains(&missing));
    assert!(matches!(
        store.read_bytes(&missing),
        Err(Error::BlobNotFound { .. })
    ));
}

#[test]
fn ingest_verified_rejects_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path()).unwrap();
    let expected = sha256_digest(b"expected content");
    let err = store
        .ingest_verified(&b"other content"[..], &expected)
        .unwrap_err();
    match err {
        Error::DigestMismatch {
            expected: e,
            actual,
        } => {
            assert_eq!(e, expected);
            assert_eq!(actual, sha256_digest(b"other content"));
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(!store.contains(&expected));
    assert_eq!(
        fs::read_dir(tmp.path().join("ingest")).unwrap().count(),
        0,
        "temp file left behind"
    );
    assert_eq!(
        fs::read_dir(tmp.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );

    assert_eq!(
        store
            .ingest_verified(&b"expected content"[..], &expected)
            .unwrap(),
        16
    );
    assert!(store.contains(&expected));
}

#[test]
fn corrupted_blob_is_detected_on_read() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path()).unwrap();
    let d = store.put_bytes(b"good").unwrap();
    fs::write(store.blob_path(&d), b"bad").unwrap();
    assert!(matches!(
        store.read_bytes(&d),
        Err(Error::DigestMismatch { .. })
    ));
}

/// Build config + layer + manifest in the store; returns (manifest digest, size, layer digest).
fn sample_image(store: &ContentStore, src: &std::path::Path) -> (Digest, u64, Digest, Digest) {
    fs::write(src.join("hello.txt"), b"hi").unwrap();
    let mut info = None;
    let (layer_digest, layer_size) = store
        .write_blob(|w| {
            info = Some(write_layer(
                src,
                SourceKind::Plain,
                w,
                &LayerOptions::default(),
            )?);
            Ok(())
        })
        .unwrap();
    let info = info.unwrap();
    assert_eq!(info.digest, layer_digest);
    assert_eq!(info.size, layer_size);

    let mut cfg = crate::ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    };
    cfg.rootfs.diff_ids.push(info.diff_id.clone());
    let cfg_bytes = cfg.to_canonical_json().unwrap();
    let cfg_digest = store.put_bytes(&cfg_bytes).unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": {"mediaType": media_types::OCI_CONFIG, "digest": cfg_digest.to_string(), "size": cfg_bytes.len()},
        "layers": [{"mediaType": info.media_type, "digest": layer_digest.to_string(), "size": layer_size}],
    });
    let mbytes = canonical_json(&manifest).unwrap();
    // oci-spec parses what we produce.
    let parsed: crate::ImageManifest = serde_json::from_slice(&mbytes).unwrap();
    assert_eq!(parsed.layers().len(), 1);
    let md = store.put_bytes(&mbytes).unwrap();
    (md, mbytes.len() as u64, layer_digest, cfg_digest)
}

#[test]
fn oci_layout_export() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path().join("store")).unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let (md, msize, ld, cd) = sample_image(&store, &src);

    let dest = tmp.path().join("out");
    write_oci_layout(
        &store,
        &md,
        media_types::OCI_MANIFEST,
        msize,
        &dest,
        Some("latest"),
    )
    .unwrap();
    // Exporting twice is fine.
    write_oci_layout(
        &store,
        &md,
        media_types::OCI_MANIFEST,
        msize,
        &dest,
        Some("latest"),
    )
    .unwrap();

    let layout: Value =
        serde_json::from_slice(&fs::read(dest.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: crate::ImageIndex =
        serde_json::from_slice(&fs::read(dest.join("index.json")).unwrap()).unwrap();
    let m = &index.manifests()[0];
    assert_eq!(m.digest(), &md);
    assert_eq!(m.size(), msize);
    assert_eq!(
        m.annotations().as_ref().unwrap()["org.opencontainers.image.ref.name"],
        "latest"
    );
    for d in [&md, &ld, &cd] {
        let p = dest.join("blobs/sha256").join(d.digest());
        assert_eq!(sha256_digest(&fs::read(&p).unwrap()), *d);
    }
    assert_eq!(fs::read_dir(dest.join("blobs/sha256")).unwrap().count(), 3);

    // Without a ref name there is no annotation.
    let dest2 = tmp.path().join("out2");
    write_oci_layout(&store, &md, media_types::OCI_MANIFEST, msize, &dest2, None).unwrap();
    let index: Value =
        serde_json::from_slice(&fs::read(dest2.join("index.json")).unwrap()).unwrap();
    assert!(index["manifests"][0].get("annotations").is_none());

    // A missing layer is reported.
    fs::remove_file(store.blob_path(&ld)).unwrap();
    let dest3 = tmp.path().join("out3");
    assert!(matches!(
        write_oci_layout(&store, &md, media_types::OCI_MANIFEST, msize, &dest3, None),
        Err(Error::BlobNotFound { .. })
    ));
}

#[test]
fn oci_layout_rejects_wrong_manifest_size() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ContentStore::open(tmp.path().join("store")).unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let (md, msize, _, _) = sample_image(&store, &src);
    let dest = tmp.path().join("out");
    assert!(
        write_oci_layout(
            &store,
            &md,
            media_types::OCI_MANIFEST,
            msize + 1,
            &dest,
            None
        )
        .is_err()
    );
}
