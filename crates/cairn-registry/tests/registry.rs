//! Integration tests against a real `docker-registry` (CNCF distribution) on loopback.

mod common;

use std::path::PathBuf;
use std::process::Command;

use cairn_registry::{Client, ClientOptions, Digest, Error, Reference, media_types};
use cairn_testkit::TestRegistry;
use common::{digest_of, make_image, push};

fn client() -> Client {
    Client::new(ClientOptions::default()).expect("client")
}

fn reference(reg: &TestRegistry, rest: &str) -> Reference {
    common::reference(&reg.addr(), rest)
}

/// Path of a blob's data file inside the registry's filesystem storage.
fn blob_data_path(reg: &TestRegistry, d: &Digest) -> PathBuf {
    let hex = d.digest();
    reg.storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

/// Number of live upload sessions the registry holds for `repo`.
fn open_upload_sessions(reg: &TestRegistry, repo: &str) -> usize {
    let dir = reg
        .storage_dir()
        .join("docker/registry/v2/repositories")
        .join(repo)
        .join("_uploads");
    // A cancelled session loses its `startedat` and `data` (2.8 leaves `hashstates`).
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| e.as_ref().unwrap().path().join("startedat").exists())
            .count()
    })
}

#[tokio::test]
async fn push_pull_roundtrip_mount_tags_delete() {
    let reg = TestRegistry::start().expect("start registry");
    let c = client();
    let tmp = tempfile::tempdir().unwrap();
    let img = make_image(tmp.path(), 8 << 20, "first");
    let r = reference(&reg, "cairn/test:v1");

    // blob push (8 MiB, streamed from a file) + skip when present
    assert!(!c.blob_exists(&r, &img.layer.0).await.unwrap());
    let digest = push(&c, &r, &img).await;
    assert_eq!(digest, digest_of(&img.manifest));
    assert!(c.blob_exists(&r, &img.layer.0).await.unwrap());
    assert!(c.blob_exists(&r, &img.config.0).await.unwrap());
    c.put_blob_from_file(&r, &img.layer.0, &img.layer.1)
        .await
        .expect("second push of an existing blob is a no-op");
    let unknown = digest_of(b"never pushed");
    assert!(!c.blob_exists(&r, &unknown).await.unwrap());

    // head / get manifest by tag and by digest
    let (hd, hmt, hsize) = c.head_manifest(&r).await.unwrap().expect("manifest exists");
    assert_eq!(hd, digest);
    assert_eq!(hmt, media_types::OCI_MANIFEST);
    assert_eq!(hsize, img.manifest.len() as u64);
    let m = c.get_manifest(&r).await.unwrap();
    assert_eq!(m.bytes, img.manifest);
    assert_eq!(m.media_type, media_types::OCI_MANIFEST);
    assert_eq!(m.digest, digest);
    let by_digest = c
        .get_manifest(&r.with_digest(digest.clone()))
        .await
        .unwrap();
    assert_eq!(by_digest.bytes, img.manifest);
    assert!(
        c.head_manifest(&r.with_tag("absent"))
            .await
            .unwrap()
            .is_none()
    );

    // blob download, verified and compared
    let dest = tmp.path().join("out/layer.copy");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let n = c.get_blob_to_file(&r, &img.layer.0, &dest).await.unwrap();
    assert_eq!(n, img.layer.2);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&img.layer.1).unwrap()
    );
    let leftovers: Vec<_> = std::fs::read_dir(dest.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temp files left beside dest");

    // cross-repository mount: known blob → true, unknown digest → false (not an error)
    let other = reference(&reg, "cairn/other:latest");
    assert!(!c.blob_exists(&other, &img.layer.0).await.unwrap());
    assert!(
        c.mount_blob(&other, "cairn/test", &img.layer.0)
            .await
            .unwrap()
    );
    assert!(c.blob_exists(&other, &img.layer.0).await.unwrap());
    assert!(!c.mount_blob(&other, "cairn/test", &unknown).await.unwrap());
    assert!(
        !c.mount_blob(&other, "cairn/nonexistent", &img.config.0)
            .await
            .unwrap()
    );
    assert!(!c.blob_exists(&other, &unknown).await.unwrap());
    assert_eq!(
        open_upload_sessions(&reg, "cairn/other"),
        0,
        "declined mounts cancelled"
    );

    // tags
    c.put_manifest(&r.with_tag("v2"), media_types::OCI_MANIFEST, &img.manifest)
        .await
        .unwrap();
    let mut tags = c.list_tags(&r).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);

    // an independent tool can read what we pushed
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}/cairn/test:v1", reg.addr()))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspected["Digest"], digest.to_string());
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(inspected["Layers"][0], img.layer.0.to_string());

    // delete by digest: both tags go away
    let by_digest = r.with_digest(digest.clone());
    c.delete_manifest(&by_digest).await.unwrap();
    assert!(c.head_manifest(&by_digest).await.unwrap().is_none());
    let err = c.get_manifest(&r).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    // deleting needs a digest
    assert!(matches!(
        c.delete_manifest(&r).await.unwrap_err(),
        Error::Unsupported(_)
    ));
}

#[tokio::test]
async fn missing_tag_is_not_found_with_registry_code() {
    let reg = TestRegistry::start().expect("start registry");
    let c = client();
    let tmp = tempfile::tempdir().unwrap();
    let img = make_image(tmp.path(), 1024, "x");
    let r = reference(&reg, "cairn/missing:present");
    push(&c, &r, &img).await;

    let err = c.get_manifest(&r.with_tag("nope")).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.registry_codes(), ["MANIFEST_UNKNOWN"]);
    assert_eq!(
        err.to_string(),
        format!(
            "registry {} answered 404 MANIFEST_UNKNOWN (manifest unknown) for GET /v2/cairn/missing/manifests/nope",
            reg.addr()
        )
    );
    // a repository that does not exist at all
    let err = c
        .list_tags(&reference(&reg, "cairn/never"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    // a missing blob
    let dest = tmp.path().join("never");
    let err = c
        .get_blob_to_file(&r, &digest_of(b"nothing"), &dest)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("BLOB_UNKNOWN"), "{err}");
    assert!(!dest.exists());
}

#[tokio::test]
async fn corrupted_content_fails_verification() {
    let reg = TestRegistry::start().expect("start registry");
    let c = client();
    let tmp = tempfile::tempdir().unwrap();
    let img = make_image(tmp.path(), 64 << 10, "aaaa");
    let r = reference(&reg, "cairn/corrupt:v1");
    let digest = push(&c, &r, &img).await;

    // Flip bytes in the registry's stored copies (same length, still valid JSON).
    let layer_file = blob_data_path(&reg, &img.layer.0);
    let mut data = std::fs::read(&layer_file).unwrap();
    data[100] ^= 0xff;
    std::fs::write(&layer_file, &data).unwrap();
    let manifest_file = blob_data_path(&reg, &digest);
    let text = std::fs::read_to_string(&manifest_file).unwrap();
    std::fs::write(&manifest_file, text.replace("aaaa", "bbbb")).unwrap();

    let dest = tmp.path().join("dl/layer");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let err = c
        .get_blob_to_file(&r, &img.layer.0, &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    assert!(!dest.exists(), "unverified data must not reach dest");
    assert_eq!(
        std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
        0,
        "temp file removed"
    );

    let err = c
        .get_manifest(&r.with_digest(digest.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(&digest.to_string()), "{err}");
    // by tag: the registry announces the digest in Docker-Content-Digest
    let err = c.get_manifest(&r).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");

    // asking for the wrong digest before pushing is refused locally
    let wrong = r.with_digest(digest_of(b"other"));
    let err = c
        .put_manifest(&wrong, media_types::OCI_MANIFEST, &img.manifest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn upload_with_wrong_digest_is_rejected_by_registry() {
    let reg = TestRegistry::start().expect("start registry");
    let c = client();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("blob");
    std::fs::write(&path, b"some content").unwrap();
    let r = reference(&reg, "cairn/wrong");
    let claimed = digest_of(b"different content");
    let err = c.put_blob_from_file(&r, &claimed, &path).await.unwrap_err();
    assert!(err.registry_codes().contains(&"DIGEST_INVALID"), "{err}");
    assert!(!c.blob_exists(&r, &claimed).await.unwrap());
    // No assertion on leftover sessions here: distribution 2.8 rejects the DELETE of a
    // session whose `_state` predates the failed PUT; its purger collects it later.
}

#[tokio::test]
async fn connection_errors_are_reported_after_retries() {
    // Bind then drop: nothing listens on this loopback port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r: Reference = format!("127.0.0.1:{port}/x/y:z").parse().unwrap();
    let started = std::time::Instant::now();
    let err = client().head_manifest(&r).await.unwrap_err();
    assert!(matches!(err, Error::Http { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    // two backoff sleeps (250 ms + 500 ms) happened
    assert!(started.elapsed() >= std::time::Duration::from_millis(700));
}

#[tokio::test]
async fn basic_auth_with_credentials_from_options() {
    let reg = TestRegistry::start_with_basic_auth().expect("start registry");
    let tmp = tempfile::tempdir().unwrap();
    let img = make_image(tmp.path(), 4096, "auth");
    let r = reference(&reg, "cairn/private:v1");

    let anonymous = client();
    let err = anonymous.blob_exists(&r, &img.layer.0).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");

    let wrong = Client::new(ClientOptions {
        credentials: Some((cairn_testkit::TEST_USER.into(), "wrong-horse".into())),
        ..ClientOptions::default()
    })
    .unwrap();
    let err = wrong.get_manifest(&r).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
    assert!(
        !err.to_string().contains("wrong-horse") && !format!("{err:?}").contains("wrong-horse")
    );

    let c = Client::new(ClientOptions {
        credentials: Some((
            cairn_testkit::TEST_USER.into(),
            cairn_testkit::TEST_PASSWORD.into(),
        )),
        ..ClientOptions::default()
    })
    .unwrap();
    assert!(!format!("{c:?}").contains(cairn_testkit::TEST_PASSWORD));
    let digest = push(&c, &r, &img).await;
    let m = c.get_manifest(&r).await.unwrap();
    assert_eq!(m.digest, digest);
    assert_eq!(c.list_tags(&r).await.unwrap(), ["v1"]);
}
