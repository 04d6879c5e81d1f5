//! `cairn devcontainer build|plan` against a real registry: Features published
//! into it as OCI artifacts by the test (cairn-testkit, cairn's own client),
//! image- and Dockerfile-based configs, install order and options seen in the
//! built filesystem, the metadata label read with skopeo, the config-hash
//! image cache, one Feature changed, `--unpack-to` compared with `umoci unpack`,
//! the lockfile, the offline mirror and the error paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::*;

/// Publishes the test Features of `testdata/devcontainer/published` into the
/// registry as `features/<id>` under their semver tags.
fn publish_features(env: &Env) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for id in ["base-tools", "hello", "after"] {
        let src = testdata(&format!("devcontainer/published/{id}"));
        let dir = env.path(&format!("published-{id}"));
        copy_templated(&src, &dir, &env.registry.addr());
        let meta: Value =
            serde_json::from_str(&read(&dir.join("devcontainer-feature.json"))).unwrap();
        let tags = cairn_testkit::features::semver_tags(meta["version"].as_str().unwrap());
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        rt.block_on(cairn_testkit::features::publish_feature(
            &env.registry.addr(),
            &format!("features/{id}"),
            &dir,
            &tags,
        ))
        .expect("publish Feature");
    }
}

/// Copies a fixture tree, replacing `{{REGISTRY}}` in its JSON files.
fn copy_templated(src: &Path, dst: &Path, registry: &str) {
    run_ok(Command::new("cp").arg("-a").arg(src).arg(dst));
    for e in walkdir::WalkDir::new(dst) {
        let e = e.unwrap();
        if e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "json") {
            let text = read(e.path()).replace("{{REGISTRY}}", registry);
            std::fs::write(e.path(), text).unwrap();
        }
    }
}

/// A workspace made from `testdata/devcontainer/<fixture>`.
fn workspace(env: &Env, fixture: &str, name: &str) -> PathBuf {
    let dst = env.path(name);
    copy_templated(
        &testdata(&format!("devcontainer/{fixture}")),
        &dst,
        &env.registry.addr(),
    );
    dst
}

fn cairn_dev(sub: &str, ws: &Path, state: &Path) -> Command {
    let mut c = Command::new(cairn_bin());
    c.args(["devcontainer", sub, "--workspace-folder"])
        .arg(ws)
        .arg("--state-dir")
        .arg(state)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("CAIRN_FEATURE_MIRROR")
        .env("CAIRN_TEST_GREETING", "hello world");
    c
}

fn ok(out: &Output) -> (String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "cairn failed:\n{stderr}");
    (String::from_utf8_lossy(&out.stdout).to_string(), stderr)
}

fn failed(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "cairn should have failed:\n{stderr}");
    stderr
}

/// Every entry under `root` (but `skip`): type, mode, owner, size, content
/// digest or link target.
fn tree(root: &Path, skip: &[&str]) -> BTreeMap<String, String> {
    use sha2::Digest as _;
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().display().to_string();
        if skip.iter().any(|s| rel == *s) {
            continue;
        }
        let m = e.path().symlink_metadata().unwrap();
        let what = if m.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(e.path()).unwrap().display())
        } else if m.is_file() {
            let bytes = std::fs::read(e.path()).unwrap();
            format!(
                "file {} {}",
                m.len(),
                hex::encode(sha2::Sha256::digest(&bytes))
            )
        } else if m.is_dir() {
            "dir".to_string()
        } else {
            format!("other {:o}", m.mode() & 0o170000)
        };
        out.insert(
            rel,
            format!(
                "{what} mode {:o} owner {}:{}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid()
            ),
        );
    }
    out
}

/// The tags of `repo` (none when the repository does not exist).
fn tags_of(repo: &str) -> Vec<String> {
    let out = run(Command::new("skopeo").args([
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{repo}"),
    ]));
    if !out.status.success() {
        return Vec::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Tags"]
        .as_array()
        .map(|t| t.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn requests_since(env: &Env, from: usize) -> Vec<String> {
    let log = std::fs::read(env.registry.log_path()).unwrap_or_default();
    String::from_utf8_lossy(&log[from.min(log.len())..])
        .lines()
        .filter(|l| l.contains(" /v2/"))
        .map(str::to_string)
        .collect()
}

fn log_len(env: &Env) -> usize {
    std::fs::read(env.registry.log_path()).map_or(0, |l| l.len())
}

fn plan(ws: &Path, state: &Path) -> Value {
    let (out, _) = ok(&run(cairn_dev("plan", ws, state).args(["--format", "json"])));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("plan JSON: {e}\n{out}"))
}

fn short(id: &str) -> &str {
    let last = id.rsplit('/').next().unwrap();
    last.split(':').next().unwrap()
}

/// Image config: Features from the registry (with a dependsOn the config does
/// not list and an installsAfter), a local Feature, options from the config
/// and from `${localEnv}`; order and options in the built filesystem; label;
/// `--unpack-to` equals umoci; a second build from an empty state is a
/// pre-built hit that downloads no layer; a changed option rebuilds from that
/// Feature's step only.
#[test]
fn image_config_with_features_end_to_end() {
    let env = Env::new();
    publish_features(&env);
    let ws = workspace(&env, "build-image", "ws");
    let reg = env.registry.addr();

    // The plan: install order and what each Feature resolved to.
    let p = plan(&ws, &env.path("s0"));
    let ids: Vec<String> = p["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    let pos = |name: &str| ids.iter().position(|i| short(i) == name).unwrap();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(pos("base-tools") < pos("hello"), "dependsOn first: {ids:?}");
    assert!(pos("hello") < pos("after"), "installsAfter: {ids:?}");
    assert_eq!(
        ids[pos("base-tools")],
        format!("{reg}/features/base-tools:1")
    );
    let hello = &p["features"][pos("hello")];
    assert_eq!(hello["version"], "2.0.1");
    assert_eq!(
        hello["options"],
        serde_json::json!({"greeting": "hello world"})
    );
    assert!(
        hello["digest"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{reg}/features/hello@sha256:")),
        "{hello}"
    );
    let hash = p["config_hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64);
    assert!(p["base"]["digest"].as_str().unwrap().starts_with("sha256:"));

    // Build, push, unpack.
    let image = env.image("dev/image:latest");
    let cache = env.image("dev/cache");
    let unpacked = env.path("unpacked");
    let args = [
        "--image-name",
        &image,
        "--push",
        "--cache-repo",
        &cache,
        "--progress",
        "plain",
    ];
    let (out, err) = ok(&run(cairn_dev("build", &ws, &env.path("s1"))
        .args(args)
        .arg("--unpack-to")
        .arg(&unpacked)));
    let digest = digest_of(&out);
    assert!(err.contains(&hash), "the log names the config hash:\n{err}");
    let order: Vec<String> = read(&unpacked.join("opt/features/order"))
        .lines()
        .map(str::to_string)
        .collect();
    let expected: Vec<&str> = ids.iter().map(|i| short(i)).collect();
    assert_eq!(order, expected, "installed in the planned order");
    assert_eq!(read(&unpacked.join("opt/hello/greeting")), "hello world\n");
    assert_eq!(read(&unpacked.join("opt/hello/loud")), "false\n");
    assert_eq!(
        read(&unpacked.join("opt/base-tools/flavour")),
        "fancy\n",
        "dependsOn options"
    );
    assert_eq!(
        read(&unpacked.join("opt/features/note")),
        "from devcontainer.json\n"
    );
    assert_eq!(
        read(&unpacked.join("opt/features/after-saw-hello")),
        "/opt/hello/bin/hello\n",
        "hello's containerEnv PATH is set for later Features"
    );
    assert_eq!(
        read(&unpacked.join("opt/hello/users")),
        "root /root root /root\n"
    );
    assert!(
        !unpacked.join("tmp/cairn-feature/run/install.sh").exists()
            && !unpacked.join("tmp/cairn-feature/src/install.sh").exists(),
        "Feature files never reach a layer"
    );
    let env_file = read(&unpacked.join(cairn_engine::ENV_FILE_NAME));
    assert!(env_file.contains("HELLO_HOME='/opt/hello'"), "{env_file}");

    // The label, read by skopeo.
    let config = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        &format!("docker://{image}"),
    ]);
    let label = config["config"]["Labels"]["devcontainer.metadata"]
        .as_str()
        .unwrap_or_else(|| panic!("no label in {config}"));
    let entries: Vec<Value> = serde_json::from_str(label).unwrap();
    let label_ids: Vec<&str> = entries.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(
        label_ids,
        ids.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let hello_entry = entries
        .iter()
        .find(|e| e["id"] == ids[pos("hello")])
        .unwrap();
    assert_eq!(hello_entry["postCreateCommand"], "hello --check");
    let last = entries.last().unwrap();
    assert_eq!(last["remoteUser"], "root");
    assert_eq!(last["postCreateCommand"], "echo created");
    assert_eq!(last["containerEnv"]["FROM_CONFIG"], "yes");
    let env_list = config["config"]["Env"].to_string();
    assert!(env_list.contains("HELLO_HOME=/opt/hello"), "{env_list}");
    assert!(env_list.contains("PATH=/opt/hello/bin:"), "{env_list}");

    // The lockfile pins every OCI Feature.
    let lock: Value =
        serde_json::from_str(&read(&ws.join(".devcontainer/devcontainer-lock.json"))).unwrap();
    assert_eq!(lock["features"].as_object().unwrap().len(), 3, "{lock}");

    // --unpack-to equals umoci unpack of the pushed image.
    let umoci = unpack_with_umoci(&image, &env.path("umoci"));
    assert_eq!(
        tree(&unpacked, &[cairn_engine::ENV_FILE_NAME]),
        tree(&umoci, &[]),
        "cairn --unpack-to and umoci unpack differ"
    );

    // Unchanged config, empty local state: the pre-built image, no layer download.
    let layers: Vec<String> = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{image}"),
    ])["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    let from = log_len(&env);
    let (out2, err2) = ok(&run(cairn_dev("build", &ws, &env.path("s2")).args(args)));
    assert_eq!(digest_of(&out2), digest);
    assert!(err2.contains("Using pre-built dev container"), "{err2}");
    assert!(err2.contains("build time)"), "{err2}");
    let reqs = requests_since(&env, from);
    // The only blob read is the base image's config (its user and label);
    // neither image layers nor the Features' layers are downloaded.
    let raw = |r: &str| {
        skopeo_json(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{r}"),
        ])
    };
    let index = raw(&env.base);
    let platform = index["manifests"][0]["digest"].as_str().unwrap();
    let base_config = raw(&env.image(&format!("busybox@{platform}")))["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob_gets: Vec<&String> = reqs
        .iter()
        .filter(|r| r.contains("\"GET /v2/") && r.contains("/blobs/"))
        .collect();
    assert!(
        blob_gets.iter().all(|r| r.contains(&base_config)),
        "blobs downloaded on a pre-built hit:\n{blob_gets:#?}"
    );
    assert!(
        reqs.len() <= 12,
        "a hit takes a few requests:\n{}",
        reqs.join("\n")
    );
    for l in &layers {
        assert!(
            !reqs
                .iter()
                .any(|r| r.contains("GET") && r.contains(l.as_str())),
            "layer {l} downloaded on a pre-built hit:\n{}",
            reqs.join("\n")
        );
    }
    assert!(
        !reqs
            .iter()
            .any(|r| r.contains("PUT") && r.contains("/blobs/")),
        "a hit uploads no blob"
    );

    // A changed option of one Feature: the steps before it hit, it and the
    // ones after it are rebuilt.
    let (_, err3) = ok(&run(cairn_dev("build", &ws, &env.path("s3"))
        .args(args)
        .arg("--explain")
        .env("CAIRN_TEST_GREETING", "changed")));
    assert!(!err3.contains("Using pre-built dev container"), "{err3}");
    for (n, id) in ids.iter().enumerate() {
        let step = format!("from=cairn-feature-{n}-{}", short(id));
        let cached = err3
            .lines()
            .any(|l| l.contains("CACHED") && l.contains(&step));
        assert_eq!(
            cached,
            n < pos("hello"),
            "step {step}: cached={cached}\n{err3}"
        );
    }

    // A property that is in the config hash but not in the image (`name`):
    // no pre-built image for the new hash, but the step cache has the whole
    // image; the new hash is recorded, and the next build is a pre-built hit.
    let cfg = ws.join(".devcontainer/devcontainer.json");
    std::fs::write(&cfg, read(&cfg).replace("cairn test (image)", "renamed")).unwrap();
    let (out4, err4) = ok(&run(cairn_dev("build", &ws, &env.path("s4")).args(args)));
    assert!(!err4.contains("Using pre-built dev container"), "{err4}");
    assert!(err4.contains("Using cached image"), "{err4}");
    assert_eq!(digest_of(&out4), digest, "the same image");
    let (_, err5) = ok(&run(cairn_dev("build", &ws, &env.path("s5")).args(args)));
    assert!(err5.contains("Using pre-built dev container"), "{err5}");

    // --cached-only: a pre-built image is reported, nothing is built or pushed.
    let dry = [
        "--image-name",
        &image,
        "--cache-repo",
        &cache,
        "--cached-only",
    ];
    let before = tags_of(&env.image("dev/image"));
    let (out6, _) = ok(&run(cairn_dev("build", &ws, &env.path("s6")).args(dry)));
    assert!(
        out6.contains(&format!(
            "CAIRN_CACHED_IMAGE={}@{digest}",
            env.image("dev/image")
        )),
        "{out6}"
    );
    // An option never built: neither the config hash nor the step cache has it.
    let err7 = failed(&run(cairn_dev("build", &ws, &env.path("s7"))
        .args(dry)
        .env("CAIRN_TEST_GREETING", "never built")));
    assert!(err7.contains("cached"), "{err7}");
    let err8 = failed(&run(cairn_dev("build", &ws, &env.path("s8"))
        .args(["--image-name", &image, "--cached-only"])
        .env("CAIRN_TEST_GREETING", "never built")));
    assert!(
        err8.contains("no pre-built image for config hash"),
        "{err8}"
    );
    assert_eq!(
        tags_of(&env.image("dev/image")),
        before,
        "a dry run pushes nothing"
    );
}

/// Dockerfile config: the target stage is built with the context, the
/// Features run as root on top of it, and its user is restored after them.
#[test]
fn dockerfile_config_features_on_the_target_stage() {
    let env = Env::new();
    publish_features(&env);
    let ws = workspace(&env, "build-dockerfile", "ws");
    // One more Feature, as a tarball from a loopback HTTP server.
    let served = env.path("served");
    std::fs::create_dir_all(&served).unwrap();
    cairn_testkit::features::package_feature(
        &testdata("devcontainer/build-image/.devcontainer/local-note"),
        &served.join("devcontainer-feature-local-note.tgz"),
    )
    .unwrap();
    let server = cairn_testkit::features::FileServer::start(&served).unwrap();
    let url = server.url("devcontainer-feature-local-note.tgz");
    let cfg = ws.join(".devcontainer/devcontainer.json");
    let mut doc: Value = serde_json::from_str(&read(&cfg)).unwrap();
    doc["features"][url.as_str()] = serde_json::json!({"note": "from a tarball"});
    std::fs::write(&cfg, doc.to_string()).unwrap();
    let image = env.image("dev/df:latest");
    let unpacked = env.path("unpacked");
    let p = plan(&ws, &env.path("s0"));
    let h1 = p["config_hash"].clone();
    let tarball = p["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == url.as_str())
        .unwrap_or_else(|| panic!("{p}"));
    assert!(
        tarball["digest"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{url}@sha256:")),
        "{tarball}"
    );
    ok(&run(cairn_dev("build", &ws, &env.path("s1"))
        .args(["--image-name", &image, "--push", "--unpack-to"])
        .arg(&unpacked)));
    assert_eq!(read(&unpacked.join("opt/marker.txt")), "context file v1\n");
    assert_eq!(
        read(&unpacked.join("home/dev/from-dockerfile")),
        "built by the Dockerfile\n"
    );
    let order = read(&unpacked.join("opt/features/order"));
    let order: Vec<&str> = order.lines().collect();
    let planned: Vec<&str> = p["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| match f["id"].as_str().unwrap() {
            id if id == url => "local-note",
            id => short(id),
        })
        .collect();
    assert_eq!(order, planned);
    assert!(order.contains(&"base-tools") && order.contains(&"hello"));
    assert_eq!(
        read(&unpacked.join("opt/features/note")),
        "from a tarball\n"
    );
    assert_eq!(
        read(&unpacked.join("opt/hello/greeting")),
        "from a Dockerfile build\n"
    );
    assert_eq!(
        read(&unpacked.join("opt/hello/users")),
        "dev /home/dev dev /home/dev\n",
        "the image user and its home from /etc/passwd"
    );
    let config = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        &format!("docker://{image}"),
    ]);
    assert_eq!(config["config"]["User"], "dev", "the user is restored");

    // A changed file of the build context changes the config hash.
    std::fs::write(ws.join(".devcontainer/marker.txt"), "context file v2\n").unwrap();
    let h2 = plan(&ws, &env.path("s0"))["config_hash"].clone();
    assert_ne!(h1, h2);
}

/// Bad configs fail with a message naming the file or Feature, and push nothing.
#[test]
fn bad_configs_fail_clearly() {
    let env = Env::new();
    let reg = env.registry.addr();
    // Docker Compose.
    let ws = workspace(&env, "compose", "compose");
    let err = failed(&run(&mut cairn_dev("build", &ws, &env.path("s"))));
    assert!(
        err.contains("dockerComposeFile") && err.contains("not supported"),
        "{err}"
    );

    // A dependsOn cycle.
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (id, dep) in [("cyc-a", "cyc-b"), ("cyc-b", "cyc-a")] {
        let dir = env.path(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("devcontainer-feature.json"),
            format!(r#"{{"id": "{id}", "version": "1.0.0", "dependsOn": {{"{reg}/features/{dep}:1": {{}}}}}}"#),
        )
        .unwrap();
        std::fs::write(dir.join("install.sh"), "#!/bin/sh\n").unwrap();
        rt.block_on(cairn_testkit::features::publish_feature(
            &reg,
            &format!("features/{id}"),
            &dir,
            &["1"],
        ))
        .unwrap();
    }
    let ws = env.path("cycle");
    std::fs::create_dir_all(ws.join(".devcontainer")).unwrap();
    std::fs::write(
        ws.join(".devcontainer/devcontainer.json"),
        format!(
            r#"{{"image": "{}", "features": {{"{reg}/features/cyc-a:1": {{}}}}}}"#,
            env.base
        ),
    )
    .unwrap();
    let err = failed(&run(&mut cairn_dev("plan", &ws, &env.path("s"))));
    assert!(err.contains("cyc-a") && err.contains("cyc-b"), "{err}");
    assert!(err.to_lowercase().contains("cycle"), "{err}");

    // A Feature whose install fails: named, with the exit code; nothing pushed.
    let broken = ws.join(".devcontainer/broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("devcontainer-feature.json"),
        r#"{"id": "broken", "version": "1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        broken.join("install.sh"),
        "#!/bin/sh\necho about to fail\nexit 3\n",
    )
    .unwrap();
    std::fs::write(
        ws.join(".devcontainer/devcontainer.json"),
        format!(
            r#"{{"image": "{}", "features": {{"./broken": {{}}}}}}"#,
            env.base
        ),
    )
    .unwrap();
    let err = failed(&run(cairn_dev("build", &ws, &env.path("s")).args([
        "--image-name",
        &env.image("dev/bad:1"),
        "--push",
    ])));
    assert!(
        err.contains("Feature `./broken` failed to install"),
        "{err}"
    );
    assert!(err.contains("exit code 3"), "{err}");
    assert!(
        mounts_mentioning(&env.path("s")).is_empty(),
        "no mount left"
    );

    // A Feature that does not exist.
    std::fs::write(
        ws.join(".devcontainer/devcontainer.json"),
        format!(
            r#"{{"image": "{}", "features": {{"{reg}/features/nope:1": {{}}}}}}"#,
            env.base
        ),
    )
    .unwrap();
    let err = failed(&run(cairn_dev("build", &ws, &env.path("s")).args([
        "--image-name",
        &env.image("dev/bad:1"),
        "--push",
    ])));
    assert!(err.contains("features/nope"), "{err}");
    assert_eq!(
        tags_of(&env.image("dev/bad")),
        Vec::<String>::new(),
        "nothing pushed"
    );
}

/// The lockfile: written by a build, `--frozen-lockfile` refuses a config
/// whose Features changed; the offline mirror resolves Features without the
/// network.
#[test]
fn lockfile_and_feature_mirror() {
    let env = Env::new();
    publish_features(&env);
    let ws = workspace(&env, "build-image", "ws");
    let state = env.path("s");
    let lock_path = ws.join(".devcontainer/devcontainer-lock.json");
    plan(&ws, &state);
    assert!(!lock_path.exists(), "plan only reads the lockfile");
    ok(&run(&mut cairn_dev("build", &ws, &state)));
    assert!(lock_path.is_file(), "a build writes the lockfile");
    ok(&run(cairn_dev("plan", &ws, &state).arg("--frozen-lockfile")));
    let cfg = ws.join(".devcontainer/devcontainer.json");
    std::fs::write(
        &cfg,
        read(&cfg).replace("features/after:0", "features/after:0.1"),
    )
    .unwrap();
    let err = failed(&run(cairn_dev("plan", &ws, &state).arg("--frozen-lockfile")));
    assert!(err.contains("after"), "{err}");
    assert!(err.contains("lockfile") || err.contains("lock"), "{err}");

    // Mirror: references to a registry that does not answer, folders on disk.
    let mirror = env.path("mirror");
    let dead = "127.0.0.1:9";
    for id in ["base-tools", "hello", "after"] {
        let dst = mirror.join(format!("oci/{dead}/features/{id}"));
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        copy_templated(
            &testdata(&format!("devcontainer/published/{id}")),
            &dst,
            dead,
        );
    }
    let ws2 = workspace(&env, "build-image", "ws-mirror");
    let cfg = ws2.join(".devcontainer/devcontainer.json");
    let text = read(&cfg).replace(
        &format!("{}/features", env.registry.addr()),
        &format!("{dead}/features"),
    );
    std::fs::write(&cfg, text).unwrap();
    let out = run(cairn_dev("plan", &ws2, &state)
        .arg("--no-lockfile")
        .arg("--feature-mirror")
        .arg(&mirror));
    let (stdout, _) = ok(&out);
    let p: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(p["features"].as_array().unwrap().len(), 4, "{p}");
    assert!(
        !ws2.join(".devcontainer/devcontainer-lock.json").exists(),
        "--no-lockfile writes none"
    );
    let missing = env.path("empty-mirror");
    std::fs::create_dir_all(&missing).unwrap();
    let err = failed(&run(cairn_dev("plan", &ws2, &state)
        .arg("--no-lockfile")
        .arg("--feature-mirror")
        .arg(&missing)));
    assert!(
        err.contains("features/"),
        "names the missing Feature: {err}"
    );
}

/// A base image that is itself a dev container: its `devcontainer.metadata`
/// entries come first in the new label, the new image's after them. Without
/// `--push` nothing reaches the registry.
#[test]
fn base_label_is_merged_and_nothing_is_pushed_unasked() {
    let env = Env::new();
    let ws = env.path("first");
    let feature = |ws: &Path, id: &str| {
        let dir = ws.join(format!(".devcontainer/{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("devcontainer-feature.json"),
            format!(r#"{{"id": "{id}", "version": "1.0.0", "init": true}}"#),
        )
        .unwrap();
        std::fs::write(
            dir.join("install.sh"),
            format!("#!/bin/sh\nmkdir -p /opt/features && echo {id} >> /opt/features/order\n"),
        )
        .unwrap();
    };
    feature(&ws, "one");
    std::fs::write(
        ws.join(".devcontainer/devcontainer.json"),
        format!(
            r#"{{"image": "{}", "features": {{"./one": {{}}}}, "remoteUser": "first"}}"#,
            env.base
        ),
    )
    .unwrap();
    let first = env.image("dev/first:1");
    ok(&run(cairn_dev("build", &ws, &env.path("s")).args([
        "--image-name",
        &first,
        "--push",
    ])));

    let ws2 = env.path("second");
    feature(&ws2, "two");
    std::fs::write(
        ws2.join(".devcontainer/devcontainer.json"),
        format!(r#"{{"image": "{first}", "features": {{"./two": {{}}}}, "remoteUser": "second"}}"#),
    )
    .unwrap();
    let second = env.image("dev/second:1");
    // Not pushed: no tag appears, not even the config-hash one.
    let layout_unpack = env.path("unpacked");
    ok(&run(cairn_dev("build", &ws2, &env.path("s"))
        .args(["--image-name", &second, "--unpack-to"])
        .arg(&layout_unpack)));
    assert_eq!(
        read(&layout_unpack.join("opt/features/order")),
        "one\ntwo\n"
    );
    assert_eq!(
        tags_of(&env.image("dev/second")),
        Vec::<String>::new(),
        "pushed without --push"
    );
    ok(&run(cairn_dev("build", &ws2, &env.path("s")).args([
        "--image-name",
        &second,
        "--push",
    ])));
    let config = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        &format!("docker://{second}"),
    ]);
    let entries: Vec<Value> = serde_json::from_str(
        config["config"]["Labels"]["devcontainer.metadata"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let summary: Vec<String> = entries
        .iter()
        .map(|e| {
            e["id"]
                .as_str()
                .map(str::to_string)
                .or_else(|| e["remoteUser"].as_str().map(|u| format!("user {u}")))
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(summary, ["./one", "user first", "./two", "user second"]);
    assert_eq!(entries[0]["init"], true);
}

/// An ordinary user (with subordinate ids) builds, pushes and unpacks a dev
/// container with Features, and gets the image root gets from the same inputs.
#[test]
fn ordinary_user_builds_the_same_dev_container_as_root() {
    let env = Env::new();
    publish_features(&env);
    let ws = workspace(&env, "build-image", "ws");
    let home = env.path("user");
    let image = env.image("rootless/dev:1");
    let args: Vec<std::ffi::OsString> = vec![
        "devcontainer".into(),
        "build".into(),
        "--workspace-folder".into(),
        home.join("ws").into(),
        "--image-name".into(),
        image.clone().into(),
        "--push".into(),
        "--unpack-to".into(),
        home.join("unpacked").into(),
    ];
    let out = cairn_as_user(&env, &[(&ws, "ws")], &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "rootless devcontainer build failed:\n{stderr}"
    );
    assert!(!stderr.contains("only id 0 is mapped"), "{stderr}");
    let rootless = digest_of(&String::from_utf8_lossy(&out.stdout));
    let order = read(&home.join("unpacked/opt/features/order"));
    assert_eq!(order.lines().count(), 4, "{order}");
    // `setpriv --reset-env` leaves CAIRN_TEST_GREETING unset: `${localEnv:…}` is empty.
    assert_eq!(read(&home.join("unpacked/opt/hello/greeting")), "\n");
    if !is_root() {
        return;
    }
    let (out, _) = ok(&run(cairn_dev("build", &ws, &env.path("root-state"))
        .env("CAIRN_TEST_GREETING", "")
        .args(["--image-name", &env.image("root/dev:1")])));
    assert_eq!(
        digest_of(&out),
        rootless,
        "rootless and root dev containers differ"
    );
}

/// Real-world Features on a Debian base (debootstrap): one creates the remote
/// user, the next runs `apt-get install` through the host network and sees that
/// user's home (looked up at build time, after the first Feature ran).
#[test]
fn debian_features_add_a_user_and_apt_get_install() {
    let mut env = Env::new();
    if crate::debian::with_debian_base(&mut env).is_none() {
        return;
    }
    let ws = env.path("ws");
    let dc = ws.join(".devcontainer");
    for (id, script) in [
        (
            "add-user",
            "#!/bin/sh\nset -e\nuseradd --create-home --uid 1000 --shell /bin/sh \"$USERNAME\"\n",
        ),
        (
            "tools",
            "#!/bin/sh\nset -e\nexport DEBIAN_FRONTEND=noninteractive\napt-get update -qq\n\
             apt-get install -y -qq --no-install-recommends jq >/dev/null\nrm -rf /var/lib/apt/lists/*\n\
             printf '%s %s\\n' \"$_REMOTE_USER\" \"$_REMOTE_USER_HOME\" > /etc/tools-saw\n",
        ),
    ] {
        let dir = dc.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("devcontainer-feature.json"),
            format!(
                r#"{{"id": "{id}", "version": "1.0.0", "options": {{"username": {{"type": "string", "default": "vscode"}}}}}}"#
            ),
        )
        .unwrap();
        std::fs::write(dir.join("install.sh"), script).unwrap();
    }
    std::fs::write(
        dc.join("devcontainer.json"),
        format!(
            r#"{{
  "image": "{}",
  "features": {{ "./tools": {{}}, "./add-user": {{}} }},
  "overrideFeatureInstallOrder": ["./add-user"],
  "remoteUser": "vscode"
}}"#,
            env.base
        ),
    )
    .unwrap();
    let unpacked = env.path("unpacked");
    ok(&run(cairn_dev("build", &ws, &env.path("s"))
        .args([
            "--image-name",
            &env.image("dev/debian:1"),
            "--push",
            "--unpack-to",
        ])
        .arg(&unpacked)));
    assert!(unpacked.join("usr/bin/jq").is_file(), "jq installed");
    assert_eq!(
        read(&unpacked.join("etc/tools-saw")),
        "vscode /home/vscode\n"
    );
    use std::os::unix::fs::MetadataExt;
    let home = std::fs::metadata(unpacked.join("home/vscode")).unwrap();
    assert_eq!((home.uid(), home.gid()), (1000, 1000));
    assert!(
        !unpacked.join("var/lib/apt/lists/lock").exists(),
        "the Feature's cleanup reached the layer"
    );
}
