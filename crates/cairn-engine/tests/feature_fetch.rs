//! Fetching Dev Container Features against a real registry (docker-registry
//! from cairn-testkit), a loopback file server, local folders and a mirror.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_devcontainer::FeatureRef;
use cairn_devcontainer::lockfile::{self, Lockfile};
use cairn_devcontainer::order::{DependencyResolver, PendingFeature, install_order};
use cairn_engine::feature_fetch::{
    FeatureFetchOptions, FeatureFetcher, FeatureSource, FetchedFeature, lockfile_for, resolve_all,
};
use cairn_testkit::TestRegistry;
use cairn_testkit::features::{
    FileServer, package_feature, publish_feature, publish_feature_layer, raw_tar, semver_tags,
};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// A workspace with `.devcontainer/devcontainer.json` and a work dir.
struct Ws {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Ws {
    fn new() -> Ws {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join(".devcontainer")).unwrap();
        std::fs::write(root.join(".devcontainer/devcontainer.json"), "{}").unwrap();
        Ws { _tmp: tmp, root }
    }
    fn opts(&self) -> FeatureFetchOptions {
        FeatureFetchOptions {
            config_file: self.root.join(".devcontainer/devcontainer.json"),
            local_root: self.root.join(".devcontainer"),
            work_dir: self.root.join("work"),
            mirror: None,
            lockfile: None,
            ca_cert: None,
            defer_layers: false,
        }
    }
    fn fetcher(&self, opts: FeatureFetchOptions) -> FeatureFetcher {
        let client = cairn_registry::Client::new(cairn_registry::ClientOptions::default()).unwrap();
        FeatureFetcher::new(client, opts).unwrap()
    }
}

/// Writes a Feature folder `dir` (id, version, dependsOn, a marker in install.sh).
fn feature(dir: &Path, id: &str, version: &str, depends_on: Value, marker: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let meta = json!({
        "id": id,
        "version": version,
        "name": format!("the {id} Feature"),
        "options": {"greeting": {"type": "string", "default": "hi"}},
        "dependsOn": depends_on,
    });
    std::fs::write(
        dir.join("devcontainer-feature.json"),
        serde_json::to_string_pretty(&meta).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("install.sh"),
        format!("#!/bin/sh\necho {marker} > /{id}.txt\n"),
    )
    .unwrap();
    dir.to_path_buf()
}

fn pending(reference: &str) -> PendingFeature {
    let features = BTreeMap::from([(reference.to_string(), json!({}))]);
    DependencyResolver::new(&features)
        .unwrap()
        .next_pending()
        .unwrap()
}

fn install_sh(f: &FetchedFeature) -> String {
    std::fs::read_to_string(f.dir.join("install.sh")).unwrap()
}

fn tags(version: &str) -> Vec<String> {
    semver_tags(version)
}

#[tokio::test]
async fn oci_by_tag_semver_major_tag_and_digest() {
    let reg = TestRegistry::start().unwrap();
    let ws = Ws::new();
    let src = feature(
        &ws.root.join("src/hello"),
        "hello",
        "1.2.3",
        json!({}),
        "v123",
    );
    let t = tags("1.2.3");
    assert_eq!(t, vec!["1", "1.2", "1.2.3", "latest"]);
    let t: Vec<&str> = t.iter().map(String::as_str).collect();
    let published = publish_feature(&reg.addr(), "acme/features/hello", &src, &t)
        .await
        .unwrap();
    let fetcher = ws.fetcher(ws.opts());
    let base = format!("{}/acme/features/hello", reg.addr());
    let want_id = format!("{base}@{}", published.manifest_digest);
    for reference in [
        format!("{base}:1.2.3"),
        format!("{base}:1"),
        base.clone(),
        format!("{base}@{}", published.manifest_digest),
    ] {
        let f = fetcher.fetch(&pending(&reference)).await.unwrap();
        assert_eq!(f.user_id, reference);
        assert_eq!(f.canonical_id, want_id, "{reference}");
        assert_eq!(f.resolved.as_deref(), Some(want_id.as_str()));
        assert_eq!(
            f.integrity.as_deref(),
            Some(published.manifest_digest.to_string().as_str())
        );
        assert_eq!(f.version, "1.2.3");
        assert_eq!(f.source, FeatureSource::Oci);
        assert_eq!(f.metadata.id, "hello");
        assert!(install_sh(&f).contains("v123"));
        assert!(
            f.dir.starts_with(ws.root.join("work")),
            "{}",
            f.dir.display()
        );
    }
    // A tag that was never pushed names the reference.
    let e = fetcher
        .fetch(&pending(&format!("{base}:9")))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("Feature `{base}:9`")), "{e}");
}

#[tokio::test]
async fn depends_on_is_fetched_and_locked() {
    let reg = TestRegistry::start().unwrap();
    let ws = Ws::new();
    let base_ref = format!("{}/acme/features/base:1", reg.addr());
    let b = feature(
        &ws.root.join("src/base"),
        "base",
        "1.0.0",
        json!({}),
        "base",
    );
    let a = feature(
        &ws.root.join("src/app"),
        "app",
        "2.0.0",
        json!({ base_ref.clone(): {"greeting": "yo"} }),
        "app",
    );
    // A second dependency listed first in the file: the lockfile keeps the
    // file's order (as the CLI's Object.keys does), not the sorted one.
    let zeta_ref = format!("{}/acme/features/zeta:1", reg.addr());
    let z = feature(
        &ws.root.join("src/zeta"),
        "zeta",
        "1.0.0",
        json!({}),
        "zeta",
    );
    std::fs::write(
        a.join("devcontainer-feature.json"),
        format!(
            r#"{{"id": "app", "version": "2.0.0", "dependsOn": {{"{zeta_ref}": {{}}, "{base_ref}": {{"greeting": "yo"}}}}}}"#
        ),
    )
    .unwrap();
    publish_feature(&reg.addr(), "acme/features/zeta", &z, &["1"])
        .await
        .unwrap();
    publish_feature(&reg.addr(), "acme/features/base", &b, &["1", "latest"])
        .await
        .unwrap();
    publish_feature(&reg.addr(), "acme/features/app", &a, &["2", "latest"])
        .await
        .unwrap();
    let app_ref = format!("{}/acme/features/app:2", reg.addr());
    let fetcher = ws.fetcher(ws.opts());
    let features = BTreeMap::from([(app_ref.clone(), json!({}))]);
    let resolved = resolve_all(&fetcher, &features).await.unwrap();
    assert_eq!(resolved.nodes.len(), 3);
    assert_eq!(resolved.features.len(), 3);
    for (n, f) in resolved.nodes.iter().zip(&resolved.features) {
        assert_eq!(n.canonical_id, f.canonical_id);
    }
    let order = install_order(&resolved.nodes, &[]).unwrap();
    let ids: Vec<&str> = order
        .iter()
        .map(|&i| resolved.nodes[i].user_id.as_str())
        .collect();
    assert_eq!(
        ids,
        vec![base_ref.as_str(), zeta_ref.as_str(), app_ref.as_str()]
    );
    let dep = &resolved.features[order[0]];
    assert_eq!(dep.metadata.id, "base");
    assert_eq!(resolved.nodes[order[0]].options, json!({"greeting": "yo"}));
    assert!(install_sh(dep).contains("base"));

    let lock = lockfile_for(&resolved.fetched, None);
    assert_eq!(lock.features.len(), 3);
    assert_eq!(
        lock.features[&app_ref].depends_on,
        vec![zeta_ref.clone(), base_ref.clone()]
    );
    assert_eq!(lock.features[&app_ref].version, "2.0.0");
    assert!(lock.features[&base_ref].depends_on.is_empty());
    let text = lock.render();
    assert_eq!(Lockfile::parse(&text, "lock").unwrap(), lock);
    assert!(text.contains("\"dependsOn\": [\n"), "{text}");
}

#[tokio::test]
async fn shared_dependency_is_fetched_once() {
    let reg = TestRegistry::start().unwrap();
    let ws = Ws::new();
    let base_ref = format!("{}/acme/features/base:1", reg.addr());
    let b = feature(
        &ws.root.join("src/base"),
        "base",
        "1.0.0",
        json!({}),
        "base",
    );
    publish_feature(&reg.addr(), "acme/features/base", &b, &["1"])
        .await
        .unwrap();
    let mut features = BTreeMap::new();
    for name in ["one", "two", "three"] {
        let dir = feature(
            &ws.root.join("src").join(name),
            name,
            "1.0.0",
            json!({ base_ref.clone(): {} }),
            name,
        );
        publish_feature(&reg.addr(), &format!("acme/features/{name}"), &dir, &["1"])
            .await
            .unwrap();
        features.insert(format!("{}/acme/features/{name}:1", reg.addr()), json!({}));
    }
    let fetcher = ws.fetcher(ws.opts());
    let resolved = resolve_all(&fetcher, &features).await.unwrap();
    assert_eq!(resolved.nodes.len(), 4);
    assert_eq!(resolved.fetched.len(), 4);
    // One folder per reference: the shared dependency was downloaded once.
    let dirs = std::fs::read_dir(ws.root.join("work")).unwrap().count();
    assert_eq!(dirs, 4);
    let order = install_order(&resolved.nodes, &[]).unwrap();
    assert_eq!(resolved.nodes[order[0]].user_id, base_ref);
    for (n, f) in resolved.nodes.iter().zip(&resolved.features) {
        assert_eq!(n.canonical_id, f.canonical_id);
        assert_eq!(n.metadata.id, f.metadata.id);
    }
}

#[tokio::test]
async fn lockfile_pins_the_digest_after_the_tag_moves() {
    let reg = TestRegistry::start().unwrap();
    let ws = Ws::new();
    let v1 = feature(&ws.root.join("src/v1"), "pin", "1.0.0", json!({}), "first");
    let first = publish_feature(&reg.addr(), "acme/features/pin", &v1, &["1", "latest"])
        .await
        .unwrap();
    let reference = format!("{}/acme/features/pin:1", reg.addr());
    let fetched = ws
        .fetcher(ws.opts())
        .fetch(&pending(&reference))
        .await
        .unwrap();
    let lock = lockfile_for(std::slice::from_ref(&fetched), None);
    assert_eq!(
        lock.features[&reference].integrity,
        first.manifest_digest.to_string()
    );
    // The publisher moves the tag.
    let v2 = feature(&ws.root.join("src/v2"), "pin", "1.1.0", json!({}), "second");
    let second = publish_feature(&reg.addr(), "acme/features/pin", &v2, &["1", "latest"])
        .await
        .unwrap();
    assert_ne!(first.manifest_digest, second.manifest_digest);

    let mut opts = ws.opts();
    opts.lockfile = Some(lock.clone());
    let pinned = ws.fetcher(opts).fetch(&pending(&reference)).await.unwrap();
    assert_eq!(pinned.version, "1.0.0");
    assert!(install_sh(&pinned).contains("first"));
    assert_eq!(pinned.canonical_id, fetched.canonical_id);

    let unpinned = ws
        .fetcher(ws.opts())
        .fetch(&pending(&reference))
        .await
        .unwrap();
    assert_eq!(unpinned.version, "1.1.0");
    assert!(install_sh(&unpinned).contains("second"));
    // --frozen-lockfile against the moved tag names the Feature.
    let new = lockfile_for(std::slice::from_ref(&unpinned), None);
    let path = lockfile::lockfile_path(&ws.root.join(".devcontainer/devcontainer.json"));
    let e = lockfile::check_frozen(&path, Some(&lock), &new)
        .unwrap_err()
        .to_string();
    assert!(e.contains("the lockfile would change"), "{e}");
    assert!(
        e.contains(&format!("`{reference}`: version 1.0.0 -> 1.1.0")),
        "{e}"
    );
}

#[tokio::test]
async fn tarball_with_integrity_check() {
    let ws = Ws::new();
    let src = feature(&ws.root.join("src/tb"), "tb", "0.3.0", json!({}), "tarball");
    let served = ws.root.join("served");
    std::fs::create_dir_all(&served).unwrap();
    let tgz = served.join("devcontainer-feature-tb.tgz");
    package_feature(&src, &tgz).unwrap();
    let want = format!(
        "sha256:{}",
        hex::encode(Sha256::digest(std::fs::read(&tgz).unwrap()))
    );
    // gzip'd too, with `./`-prefixed entries and a `./` root entry, as
    // `tar -C DIR .` (and the CLI's packaging) writes them.
    let gz = served.join("devcontainer-feature-tbgz.tgz");
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&gz)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let server = FileServer::start(&served).unwrap();
    let url = server.url("devcontainer-feature-tb.tgz");

    let f = ws.fetcher(ws.opts()).fetch(&pending(&url)).await.unwrap();
    assert_eq!(f.source, FeatureSource::Tarball);
    assert_eq!(f.canonical_id, format!("{url}@{want}"));
    assert_eq!(f.resolved.as_deref(), Some(url.as_str()));
    assert_eq!(f.integrity.as_deref(), Some(want.as_str()));
    assert!(install_sh(&f).contains("tarball"));
    let gz_url = server.url("devcontainer-feature-tbgz.tgz");
    let g = ws
        .fetcher(ws.opts())
        .fetch(&pending(&gz_url))
        .await
        .unwrap();
    assert!(install_sh(&g).contains("tarball"));

    // The lockfile's integrity is honoured.
    let mut lock = lockfile_for(std::slice::from_ref(&f), None);
    let mut opts = ws.opts();
    opts.lockfile = Some(lock.clone());
    ws.fetcher(opts).fetch(&pending(&url)).await.unwrap();
    let bad = format!("sha256:{}", "0".repeat(64));
    lock.features.get_mut(&url).unwrap().integrity = bad.clone();
    let mut opts = ws.opts();
    opts.lockfile = Some(lock);
    let e = ws
        .fetcher(opts)
        .fetch(&pending(&url))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("Feature `{url}`"))
            && e.contains(&format!(
                "the download's digest {want} does not match the lockfile's integrity {bad}"
            )),
        "{e}"
    );
    // Plain HTTP only to loopback.
    let e = ws
        .fetcher(ws.opts())
        .fetch(&pending("http://example.com/devcontainer-feature-x.tgz"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("https://"), "{e}");
    // A missing file is the server's 404.
    let e = ws
        .fetcher(ws.opts())
        .fetch(&pending(&server.url("nope.tgz")))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("404"), "{e}");
}

#[tokio::test]
async fn local_folder_inside_the_devcontainer_folder() {
    let ws = Ws::new();
    let dir = feature(
        &ws.root.join(".devcontainer/local-f"),
        "local-f",
        "0.0.1",
        json!({}),
        "local",
    );
    let f = ws
        .fetcher(ws.opts())
        .fetch(&pending("./local-f"))
        .await
        .unwrap();
    assert_eq!(f.source, FeatureSource::Local);
    assert_eq!(f.dir, dir);
    assert!(
        f.canonical_id.starts_with("./local-f@tree:sha256:"),
        "{}",
        f.canonical_id
    );
    assert_eq!(f.resolved, None);
    assert!(
        lockfile_for(std::slice::from_ref(&f), None)
            .features
            .is_empty()
    );
    // Editing the folder changes the identity.
    std::fs::write(dir.join("install.sh"), "#!/bin/sh\necho changed\n").unwrap();
    let g = ws
        .fetcher(ws.opts())
        .fetch(&pending("./local-f"))
        .await
        .unwrap();
    assert_ne!(f.canonical_id, g.canonical_id);
    // Outside .devcontainer: refused, as the reference CLI does.
    feature(&ws.root.join("outside"), "outside", "1.0.0", json!({}), "x");
    let e = ws
        .fetcher(ws.opts())
        .fetch(&pending("../outside"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Feature `../outside`: a local Feature must be a folder inside"),
        "{e}"
    );
    let e = ws
        .fetcher(ws.opts())
        .fetch(&pending("./nope"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a folder"), "{e}");
}

#[tokio::test]
async fn mirror_serves_oci_and_tarball_features_offline() {
    let ws = Ws::new();
    let mirror = ws.root.join("mirror");
    // Port 9 on loopback: nothing listens, the network would fail.
    let oci = "127.0.0.1:9/acme/features/offline:1";
    let url = "https://unreachable.invalid/devcontainer-feature-off.tgz";
    for r in [oci, url] {
        let rel = FeatureRef::parse(r).unwrap().mirror_path().unwrap();
        feature(&mirror.join(rel), "offline", "1.0.0", json!({}), "mirrored");
    }
    let mut opts = ws.opts();
    opts.mirror = Some(mirror.clone());
    let old = Lockfile::parse(
        &format!(
            r#"{{"features": {{"{oci}": {{"version": "1.0.0", "resolved": "127.0.0.1:9/acme/features/offline@sha256:{d}", "integrity": "sha256:{d}"}}}}}}"#,
            d = "1".repeat(64)
        ),
        "lock",
    )
    .unwrap();
    opts.lockfile = Some(old.clone());
    let fetcher = ws.fetcher(opts);
    let mut all = Vec::new();
    for r in [oci, url] {
        let f = fetcher.fetch(&pending(r)).await.unwrap();
        assert_eq!(f.source, FeatureSource::Mirror);
        assert!(f.dir.starts_with(&mirror));
        assert!(install_sh(&f).contains("mirrored"));
        let name = FeatureRef::parse(r).unwrap().id_without_version();
        assert!(
            f.canonical_id.starts_with(&format!("{name}@tree:sha256:")),
            "{}",
            f.canonical_id
        );
        all.push(f);
    }
    // The mirrored OCI Feature keeps its lockfile entry; the tarball had none.
    assert_eq!(lockfile_for(&all, Some(&old)), old);
    // A Feature missing from the mirror names the path expected.
    let e = fetcher
        .fetch(&pending("127.0.0.1:9/acme/features/absent:1"))
        .await
        .unwrap_err()
        .to_string();
    let expected = mirror.join("oci/127.0.0.1:9/acme/features/absent");
    assert!(
        e.contains(&format!(
            "not in the offline mirror: expected the unpacked Feature folder at {}",
            expected.display()
        )),
        "{e}"
    );
}

#[tokio::test]
async fn layer_with_path_traversal_is_rejected() {
    let reg = TestRegistry::start().unwrap();
    let ws = Ws::new();
    let meta = r#"{"id": "evil", "version": "1.0.0"}"#;
    let layer = ws.root.join("evil.tar");
    raw_tar(
        &layer,
        &[
            ("devcontainer-feature.json", meta.as_bytes()),
            ("install.sh", b"#!/bin/sh\n"),
            ("../evil", b"escaped"),
            ("../../evil2", b"escaped"),
        ],
    )
    .unwrap();
    publish_feature_layer(&reg.addr(), "acme/features/evil", &layer, meta, &["1"])
        .await
        .unwrap();
    let reference = format!("{}/acme/features/evil:1", reg.addr());
    let e = ws
        .fetcher(ws.opts())
        .fetch(&pending(&reference))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("Feature `{reference}`: unpack")), "{e}");
    assert!(e.contains(".."), "{e}");
    let work = ws.root.join("work");
    assert!(!work.join("evil").exists());
    assert!(!ws.root.join("evil").exists());
    assert!(!ws.root.join("evil2").exists());
    // Nothing is left behind in the work dir either.
    let left: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn missing_install_sh_is_a_clear_error() {
    let reg = TestRegistry::start().unwrap();
    let ws = Ws::new();
    let src = feature(
        &ws.root.join("src/noinst"),
        "noinst",
        "1.0.0",
        json!({}),
        "x",
    );
    std::fs::remove_file(src.join("install.sh")).unwrap();
    publish_feature(&reg.addr(), "acme/features/noinst", &src, &["1"])
        .await
        .unwrap();
    let reference = format!("{}/acme/features/noinst:1", reg.addr());
    let e = ws
        .fetcher(ws.opts())
        .fetch(&pending(&reference))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("Feature `{reference}`: "))
            && e.contains("install.sh is missing (every Feature needs an install.sh entrypoint)"),
        "{e}"
    );
    // A broken devcontainer-feature.json names the reference too.
    let bad = feature(&ws.root.join("src/bad"), "bad", "1.0.0", json!({}), "x");
    std::fs::write(bad.join("devcontainer-feature.json"), r#"{"id": "bad"}"#).unwrap();
    publish_feature(&reg.addr(), "acme/features/bad", &bad, &["1"])
        .await
        .unwrap();
    let reference = format!("{}/acme/features/bad:1", reg.addr());
    let e = ws
        .fetcher(ws.opts())
        .fetch(&pending(&reference))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "devcontainer-feature.json of Feature `{reference}`: field `version`: missing"
        )),
        "{e}"
    );
}

/// With `defer_layers`, an OCI Feature resolves from its manifest's
/// `dev.containers.metadata` annotation (no blob downloaded); `materialize`
/// downloads the layer later and refuses one whose devcontainer-feature.json
/// says something else than the annotation.
#[tokio::test]
async fn deferred_layers_download_on_materialize() {
    let reg = TestRegistry::start().unwrap();
    let ws = Ws::new();
    let src = feature(
        &ws.root.join("src/lazy"),
        "lazy",
        "1.0.0",
        json!({}),
        "lazy!",
    );
    publish_feature(&reg.addr(), "acme/features/lazy", &src, &["1"])
        .await
        .unwrap();
    let mut opts = ws.opts();
    opts.defer_layers = true;
    let fetcher = ws.fetcher(opts);
    let blob_gets = || {
        let log = std::fs::read_to_string(reg.log_path()).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("GET /v2/") && l.contains("/blobs/"))
            .count()
    };
    let before = blob_gets();
    let f = fetcher
        .fetch(&pending(&format!("{}/acme/features/lazy:1", reg.addr())))
        .await
        .unwrap();
    assert_eq!(f.metadata.id, "lazy");
    assert!(f.deferred.is_some());
    assert!(!f.dir.join("install.sh").exists(), "nothing downloaded yet");
    assert_eq!(blob_gets(), before, "resolving downloads no blob");
    fetcher.materialize(&f).await.unwrap();
    assert!(install_sh(&f).contains("lazy!"));
    assert!(blob_gets() > before);

    // An annotation that disagrees with the layer.
    let layer = ws.root.join("lazy.tar");
    package_feature(&src, &layer).unwrap();
    let lie = r#"{"id": "lazy", "version": "9.9.9"}"#;
    publish_feature_layer(&reg.addr(), "acme/features/liar", &layer, lie, &["1"])
        .await
        .unwrap();
    let f = fetcher
        .fetch(&pending(&format!("{}/acme/features/liar:1", reg.addr())))
        .await
        .unwrap();
    assert_eq!(f.version, "9.9.9");
    let e = fetcher.materialize(&f).await.unwrap_err().to_string();
    assert!(e.contains("annotation") && e.contains("differ"), "{e}");
}
