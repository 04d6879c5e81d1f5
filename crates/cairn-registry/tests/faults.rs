//! Push and pull through the testkit's fault-injecting proxy in front of a
//! real `docker-registry`: every operation either completes with verified
//! digests or fails with a clear error, retries really happen, and a tag is
//! never pushed when one of its blobs failed.

mod common;

use std::time::{Duration, Instant};

use cairn_registry::{Client, ClientOptions, Error, media_types};
use cairn_testkit::{Fault, FaultProxy, ProxiedRequest, Rule, TestRegistry};
use common::{make_image, reference};

fn client() -> Client {
    Client::new(ClientOptions::default()).unwrap()
}

fn count(log: &[ProxiedRequest], method: &str, path_part: &str) -> usize {
    log.iter()
        .filter(|r| r.method == method && r.path.contains(path_part))
        .count()
}

fn status(status: u16, retry_after: Option<u32>) -> Fault {
    Fault::Status {
        status,
        retry_after,
    }
}

#[tokio::test]
async fn pull_through_faults() {
    let reg = TestRegistry::start().expect("start registry");
    let proxy = FaultProxy::start(reg.socket_addr()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let img = make_image(tmp.path(), 1 << 20, "pull");
    let direct = reference(&reg.addr(), "cairn/faults:v1");
    let d = common::push(&client(), &direct, &img).await;
    let r = reference(&proxy.addr(), "cairn/faults:v1");
    let c = client();
    let layer = img.layer.0.to_string();
    let original = std::fs::read(&img.layer.1).unwrap();
    let dest = tmp.path().join("layer.out");

    // 500 twice, then the manifest comes through
    proxy.add_rule(Rule::new("GET", "/manifests/", status(500, None), 2));
    assert_eq!(c.get_manifest(&r).await.unwrap().digest, d);
    assert_eq!(count(&proxy.requests(), "GET", "/manifests/"), 3);

    // 429 with Retry-After: 1 is honoured
    proxy.clear_log();
    proxy.add_rule(Rule::new("GET", &layer, status(429, Some(1)), 1));
    let started = Instant::now();
    c.get_blob_to_file(&r, &img.layer.0, &dest).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert_eq!(count(&proxy.requests(), "GET", &layer), 2);
    assert_eq!(std::fs::read(&dest).unwrap(), original);

    // dropped connection, then fine
    proxy.clear_log();
    proxy.add_rule(Rule::new("GET", &layer, Fault::Drop, 1));
    c.get_blob_to_file(&r, &img.layer.0, &dest).await.unwrap();
    assert_eq!(count(&proxy.requests(), "GET", &layer), 2);
    assert_eq!(std::fs::read(&dest).unwrap(), original);

    // truncated twice mid-stream: resumed by Range, the registry answers 206
    proxy.clear_log();
    proxy.add_rule(Rule::new(
        "GET",
        &layer,
        Fault::Truncate { after: 300_000 },
        1,
    ));
    proxy.add_rule(Rule::new(
        "GET",
        &layer,
        Fault::Truncate { after: 200_000 },
        1,
    ));
    std::fs::remove_file(&dest).unwrap();
    let n = c.get_blob_to_file(&r, &img.layer.0, &dest).await.unwrap();
    assert_eq!(n, original.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), original);
    let log = proxy.requests();
    let gets: Vec<_> = log.iter().filter(|q| q.path.contains(&layer)).collect();
    assert_eq!(gets.len(), 3, "{log:#?}");
    assert_eq!(gets[0].range, None);
    assert_eq!(gets[1].range.as_deref(), Some("bytes=300000-"), "{log:#?}");
    assert_eq!(gets[1].status, Some(206));
    assert_eq!(gets[2].range.as_deref(), Some("bytes=500000-"), "{log:#?}");

    // a corrupted byte is caught by the digest check; nothing reaches dest
    proxy.clear_log();
    proxy.add_rule(Rule::new(
        "GET",
        &layer,
        Fault::CorruptResponseByte { offset: 4242 },
        1,
    ));
    let dest2 = tmp.path().join("corrupt.out");
    let err = c
        .get_blob_to_file(&r, &img.layer.0, &dest2)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(&layer), "{err}");
    assert!(!dest2.exists());
    // … and a corrupted manifest too (by tag, against Docker-Content-Digest)
    proxy.add_rule(Rule::new(
        "GET",
        "/manifests/",
        Fault::CorruptResponseByte { offset: 10 },
        1,
    ));
    let err = c.get_manifest(&r).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");

    // a registry that keeps failing: a clear error after bounded retries
    proxy.clear_log();
    proxy.add_rule(Rule::new("GET", "/manifests/", status(503, None), 100));
    let err = c.get_manifest(&r).await.unwrap_err();
    assert!(
        err.to_string().contains("answered 503") && err.to_string().contains("cairn/faults"),
        "{err}"
    );
    assert_eq!(count(&proxy.requests(), "GET", "/manifests/"), 3);
    proxy.clear_rules();
    // the registry itself is intact
    assert_eq!(client().get_manifest(&direct).await.unwrap().digest, d);
}

#[tokio::test]
async fn push_through_faults() {
    let reg = TestRegistry::start().expect("start registry");
    let proxy = FaultProxy::start(reg.socket_addr()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let c = client();

    // transient faults on every step of a push are retried, and the image is complete
    let img = make_image(tmp.path(), 512 << 10, "push-ok");
    let r = reference(&proxy.addr(), "cairn/push:ok");
    proxy.add_rule(Rule::new(
        "POST",
        "/blobs/uploads/",
        status(429, Some(0)),
        1,
    ));
    proxy.add_rule(Rule::new("PUT", "/blobs/uploads/", status(500, None), 1));
    proxy.add_rule(Rule::new("PUT", "/blobs/uploads/", Fault::Drop, 1));
    proxy.add_rule(Rule::new("PUT", "/manifests/", status(502, None), 1));
    let d = c
        .push_image(&r, &img.blobs(), media_types::OCI_MANIFEST, &img.manifest)
        .await
        .expect("push through transient faults");
    let log = proxy.requests();
    assert!(count(&log, "POST", "/blobs/uploads/") >= 3, "{log:#?}");
    assert!(count(&log, "PUT", "/blobs/uploads/") >= 4, "{log:#?}");
    assert_eq!(count(&log, "PUT", "/manifests/"), 2, "{log:#?}");
    let direct = reference(&reg.addr(), "cairn/push:ok");
    let verify = client();
    assert_eq!(verify.get_manifest(&direct).await.unwrap().digest, d);
    for (digest, path) in img.blobs() {
        let out = tmp.path().join("verify.out");
        verify
            .get_blob_to_file(&direct, &digest, &out)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&path).unwrap());
    }

    // an upload corrupted on the way: the registry refuses the digest,
    // push_image fails clearly, and the tag is never pushed
    let img2 = make_image(tmp.path(), 256 << 10, "push-corrupt");
    let r2 = reference(&proxy.addr(), "cairn/push:corrupt");
    proxy.clear_log();
    proxy.add_rule(Rule::new(
        "PUT",
        "/blobs/uploads/",
        Fault::CorruptRequestByte { offset: 1000 },
        100,
    ));
    let err = c
        .push_image(
            &r2,
            &img2.blobs(),
            media_types::OCI_MANIFEST,
            &img2.manifest,
        )
        .await
        .unwrap_err();
    assert!(err.registry_codes().contains(&"DIGEST_INVALID"), "{err}");
    assert_eq!(count(&proxy.requests(), "PUT", "/manifests/"), 0);
    let direct2 = reference(&reg.addr(), "cairn/push:corrupt");
    assert!(verify.head_manifest(&direct2).await.unwrap().is_none());
    proxy.clear_rules();

    // a registry that keeps failing uploads: bounded retries, a clear error, no tag
    let img3 = make_image(tmp.path(), 64 << 10, "push-down");
    let r3 = reference(&proxy.addr(), "cairn/push:down");
    proxy.clear_log();
    proxy.add_rule(Rule::new("PUT", "/blobs/uploads/", status(500, None), 100));
    let err = c
        .push_image(
            &r3,
            &img3.blobs(),
            media_types::OCI_MANIFEST,
            &img3.manifest,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("answered 500"), "{err}");
    let log = proxy.requests();
    assert_eq!(count(&log, "PUT", "/manifests/"), 0, "{log:#?}");
    assert!(count(&log, "PUT", "/blobs/uploads/") >= 3, "{log:#?}");
    assert!(
        verify
            .head_manifest(&reference(&reg.addr(), "cairn/push:down"))
            .await
            .unwrap()
            .is_none()
    );
    proxy.clear_rules();

    // a manifest that references a blob nobody uploaded is not pushed either
    let img4 = make_image(tmp.path(), 4096, "push-missing");
    let r4 = reference(&proxy.addr(), "cairn/push:missing");
    let only_config = vec![(img4.config.0.clone(), img4.config.1.clone())];
    let err = c
        .push_image(&r4, &only_config, media_types::OCI_MANIFEST, &img4.manifest)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not pushing")
            && err.to_string().contains(&img4.layer.0.to_string()),
        "{err}"
    );
    assert!(
        verify
            .head_manifest(&reference(&reg.addr(), "cairn/push:missing"))
            .await
            .unwrap()
            .is_none()
    );
}
