//! The registry layer cache against a real registry: full hits from an empty
//! local state, partial rebuilds with `--explain`, `--cached-only`,
//! `--cache-readonly`, concurrent builders, corrupted entries, killed builds.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// Access-log lines the registry wrote since `from` (a byte offset).
fn requests_since(env: &Env, from: u64) -> Vec<String> {
    let log = std::fs::read(env.registry.log_path()).unwrap_or_default();
    String::from_utf8_lossy(&log[(from as usize).min(log.len())..])
        .lines()
        .filter(|l| {
            l.contains("\"GET /v2/")
                || l.contains("\"HEAD /v2/")
                || l.contains("\"PUT /v2/")
                || l.contains("\"POST /v2/")
                || l.contains("\"PATCH /v2/")
        })
        .map(str::to_string)
        .collect()
}

fn log_len(env: &Env) -> u64 {
    std::fs::metadata(env.registry.log_path())
        .map(|m| m.len())
        .unwrap_or(0)
}

/// A copy of an acceptance example that the test may change.
fn context_copy(env: &Env, example: &str, name: &str) -> std::path::PathBuf {
    let dst = env.path(name);
    run_ok(
        Command::new("cp")
            .arg("-r")
            .arg(testdata(&format!("acceptance/{example}")))
            .arg(&dst),
    );
    dst
}

fn build_in(env: &Env, ctx: &Path, state: &Path, extra: &[&str]) -> std::process::Output {
    run(Command::new(cairn_bin())
        .arg("build")
        .arg("-f")
        .arg(ctx.join("Dockerfile"))
        .arg(ctx)
        .args(["--build-arg", &format!("BASE={}", env.base)])
        .arg("--state-dir")
        .arg(state)
        .args(extra)
        .env_remove("SOURCE_DATE_EPOCH"))
}

fn ok(out: &std::process::Output) -> (String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "build failed:\n{stderr}");
    (String::from_utf8_lossy(&out.stdout).to_string(), stderr)
}

/// Cold build, then the same build from an empty local state: a full hit that
/// downloads no layer blob and costs a bounded number of requests.
#[test]
fn full_hit_from_empty_state_downloads_no_layer() {
    let env = Env::new();
    let cache = env.image("cache/basic");
    let ctx = testdata("acceptance/basic");
    let (out1, _) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s1"),
        &[
            "--cache-repo",
            &cache,
            "-t",
            &env.image("app/basic:v1"),
            "--push",
        ],
    ));
    let d1 = digest_of(&out1);
    let layers: Vec<String> = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}", env.image("app/basic:v1")),
    ])["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();

    let mark = log_len(&env);
    let (out2, err2) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s2"),
        &[
            "--cache-repo",
            &cache,
            "-t",
            &env.image("app/basic:v2"),
            "--push",
        ],
    ));
    assert_eq!(digest_of(&out2), d1, "a full hit must give the same image");
    assert!(err2.contains("Using cached image (saved ~"), "{err2}");
    assert!(!err2.contains(" | "), "a step ran on a full hit:\n{err2}");
    let reqs = requests_since(&env, mark);
    let layer_gets: Vec<&String> = reqs
        .iter()
        .filter(|r| r.contains("\"GET /v2/") && layers.iter().any(|l| r.contains(l.as_str())))
        .collect();
    assert!(
        layer_gets.is_empty(),
        "layer blobs downloaded on a full hit: {layer_gets:#?}"
    );
    // base resolution (index, manifest, config) + the cached image + its duration
    // + per-blob existence/mount checks and one manifest PUT for the destination.
    assert!(
        reqs.len() <= 12 + 2 * layers.len(),
        "{} requests on a full hit:\n{}",
        reqs.len(),
        reqs.join("\n")
    );
    eprintln!(
        "full hit: {} registry requests for {} layers",
        reqs.len(),
        layers.len()
    );
    let inspect = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}", env.image("app/basic:v2")),
    ]);
    assert_eq!(inspect["Digest"], d1.as_str());
}

/// Changing a middle step rebuilds from that step on; `--explain` names the
/// changed input; the result equals a cache-less build of the changed file.
#[test]
fn middle_step_change_rebuilds_only_the_suffix_and_explain_says_why() {
    let env = Env::new();
    let cache = env.image("cache/mid");
    let ctx = context_copy(&env, "basic", "ctx");
    ok(&build_in(
        &env,
        &ctx,
        &env.path("s1"),
        &["--cache-repo", &cache],
    ));
    // Line 6 of the basic Dockerfile: `RUN echo "cairn:x:1234:" >> /etc/group`.
    let df = read(&ctx.join("Dockerfile")).replace("cairn:x:1234:", "cairn:x:4321:");
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let (out, err) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s2"),
        &["--cache-repo", &cache, "--explain"],
    ));
    assert!(
        err.contains("hit   ") && err.contains(":4 [stage-0] COPY files/ /opt/app/"),
        "{err}"
    );
    assert!(
        err.contains(":5 [stage-0]") && err.contains("hit   "),
        "{err}"
    );
    let miss6 = err
        .lines()
        .find(|l| l.starts_with("miss") && l.contains(":6 [stage-0]"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(miss6.contains("changed: argv"), "{miss6}");
    let miss7 = err
        .lines()
        .find(|l| l.starts_with("miss") && l.contains(":7 [stage-0]"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(miss7.contains("an earlier step changed"), "{miss7}");
    assert!(err.contains("cache: 2 steps hit, 4 built"), "{err}");
    let cached_lines = err.lines().filter(|l| l.contains("] CACHED ")).count();
    assert_eq!(cached_lines, 2, "{err}");
    // The partially cached image equals one built without any cache.
    let (plain, _) = ok(&build_in(&env, &ctx, &env.path("s3"), &[]));
    assert_eq!(digest_of(&out), digest_of(&plain));
}

/// `--cached-only` fails naming the first missing step before a build, and
/// succeeds (printing the image) after one; it builds nothing either way.
#[test]
fn cached_only_both_ways() {
    let env = Env::new();
    let cache = env.image("cache/dry");
    let ctx = testdata("acceptance/basic");
    let out = build_in(
        &env,
        &ctx,
        &env.path("s0"),
        &["--cache-repo", &cache, "--cached-only"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("not cached: first missing step is") && err.contains(":4 [stage-0] COPY"),
        "{err}"
    );
    assert!(!err.contains(" | "), "--cached-only ran a step:\n{err}");
    ok(&build_in(
        &env,
        &ctx,
        &env.path("s1"),
        &["--cache-repo", &cache],
    ));
    let (stdout, err) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s2"),
        &["--cache-repo", &cache, "--cached-only"],
    ));
    let line = stdout
        .lines()
        .find(|l| l.starts_with("CAIRN_CACHED_IMAGE="))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.starts_with(&format!("CAIRN_CACHED_IMAGE={cache}@sha256:")),
        "{line}"
    );
    assert!(!err.contains(" | "), "--cached-only ran a step:\n{err}");
}

/// `--cache-readonly` uses the cache and writes nothing to it.
#[test]
fn cache_readonly_reads_and_never_writes() {
    let env = Env::new();
    let cache = env.image("cache/ro");
    let ctx = context_copy(&env, "basic", "ctx");
    ok(&build_in(
        &env,
        &ctx,
        &env.path("s1"),
        &["--cache-repo", &cache],
    ));
    let tags = |()| -> Vec<String> {
        let mut t: Vec<String> = skopeo_json(&[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{cache}"),
        ])["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    let before = tags(());
    let df = read(&ctx.join("Dockerfile")).replace("ENV GREETING=hi", "ENV GREETING=hello");
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let mark = log_len(&env);
    let (_, err) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s2"),
        &["--cache-repo", &cache, "--cache-readonly"],
    ));
    assert!(err.contains("CACHED"), "{err}");
    assert_eq!(tags(()), before, "a read-only build wrote cache tags");
    let writes: Vec<String> = requests_since(&env, mark)
        .into_iter()
        .filter(|r| {
            r.contains("\"PUT /v2/") || r.contains("\"POST /v2/") || r.contains("\"PATCH /v2/")
        })
        .collect();
    assert!(
        writes.is_empty(),
        "writes with --cache-readonly: {writes:#?}"
    );
}

/// Two builders on the same keys at once both succeed and agree.
#[test]
fn two_concurrent_builders_agree() {
    let env = Env::new();
    let cache = env.image("cache/race");
    let ctx = testdata("acceptance/basic");
    let spawn = |state: &str| {
        Command::new(cairn_bin())
            .arg("build")
            .arg("-f")
            .arg(ctx.join("Dockerfile"))
            .arg(&ctx)
            .args(["--build-arg", &format!("BASE={}", env.base)])
            .arg("--state-dir")
            .arg(env.path(state))
            .args(["--cache-repo", &cache])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("sa"), spawn("sb"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (oa, _) = ok(&a);
    let (ob, _) = ok(&b);
    assert_eq!(digest_of(&oa), digest_of(&ob));
    // And the cache they wrote serves a full hit with the same image.
    let (oc, ec) = ok(&build_in(
        &env,
        &ctx,
        &env.path("sc"),
        &["--cache-repo", &cache],
    ));
    assert_eq!(digest_of(&oc), digest_of(&oa));
    assert!(ec.contains("Using cached image"), "{ec}");
}

/// A cache entry whose blob is corrupted in the registry is ignored, with a
/// warning, and its step rebuilt; the image is still right.
#[test]
fn corrupted_cache_blob_is_ignored_and_rebuilt() {
    let env = Env::new();
    let cache = env.image("cache/corrupt");
    let ctx = context_copy(&env, "basic", "ctx");
    let (o1, _) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s1"),
        &["--cache-repo", &cache],
    ));
    // Corrupt every blob the registry stores for the cache repository's layers
    // (not the base image's): flip a byte in the middle of each data file.
    let layers: Vec<String> = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{cache}:{}", {
            let tags = skopeo_json(&[
                "list-tags",
                "--tls-verify=false",
                &format!("docker://{cache}"),
            ]);
            tags["Tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .find(|t| t.starts_with("cairn-v1-img-") && !t.ends_with("-meta"))
                .unwrap()
        }),
    ])["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string()
        })
        .collect();
    let base_layer = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}", env.base),
    ])["Layers"][0]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let mut corrupted = 0;
    for hex in layers.iter().filter(|h| **h != base_layer) {
        let data = env.registry.storage_dir().join(format!(
            "docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ));
        let mut bytes = std::fs::read(&data).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&data, bytes).unwrap();
        corrupted += 1;
    }
    assert!(corrupted >= 3);
    // A change in the last RUN: the earlier cached layers must be unpacked.
    let df = read(&ctx.join("Dockerfile"))
        .replace("\"$GREETING from $(pwd)\"", "\"$GREETING at $(pwd)\"");
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let (o2, err) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s2"),
        &["--cache-repo", &cache],
    ));
    assert!(err.contains("warning: ignoring cache entry"), "{err}");
    let (plain, _) = ok(&build_in(&env, &ctx, &env.path("s3"), &[]));
    assert_eq!(digest_of(&o2), digest_of(&plain));
    assert_ne!(digest_of(&o1), digest_of(&o2));
}

/// A build killed in the middle leaves only complete entries; the next build
/// succeeds and reuses them.
#[test]
fn killed_build_then_clean_rebuild() {
    let env = Env::new();
    let cache = env.image("cache/killed");
    let ctx = context_copy(&env, "basic", "ctx");
    // Make the last RUN slow, to kill the build there.
    let df = read(&ctx.join("Dockerfile")).replace(
        "RUN rm -rf /opt/other",
        "RUN echo slow-step && sleep 30 && rm -rf /opt/other",
    );
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let mut cmd = Command::new(cairn_bin());
    cmd.arg("build")
        .arg("-f")
        .arg(ctx.join("Dockerfile"))
        .arg(&ctx)
        .args(["--build-arg", &format!("BASE={}", env.base)])
        .arg("--state-dir")
        .arg(env.path("s1"))
        .args(["--cache-repo", &cache]);
    let (mut child, pgid, _) = spawn_until(&mut cmd, "| slow-step");
    signal_group(pgid, "KILL");
    let _ = child.wait();
    // Every entry written so far is complete: each tag's blobs are all there.
    let tags = skopeo_json(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{cache}"),
    ]);
    for t in tags["Tags"].as_array().unwrap() {
        let t = t.as_str().unwrap();
        let raw = run_ok(Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{cache}:{t}"),
        ]));
        let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
        for l in m["layers"].as_array().unwrap() {
            let hex = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
            let data = env.registry.storage_dir().join(format!(
                "docker/registry/v2/blobs/sha256/{}/{hex}/data",
                &hex[..2]
            ));
            assert!(data.is_file(), "tag {t} points at a missing blob {hex}");
        }
    }
    // The rebuild (same state dir) reuses the complete entries and finishes.
    let df = read(&ctx.join("Dockerfile")).replace("echo slow-step && sleep 30 && ", "");
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let (_, err) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s1"),
        &["--cache-repo", &cache],
    ));
    assert!(err.contains("CACHED"), "{err}");
}

/// With token auth: a writer fills the cache; a reader with pull-only
/// credentials gets a full hit with `--cache-readonly`, and is refused, clearly
/// and without its password in the message, when it tries to push.
#[test]
fn pull_only_credentials_run_a_cache_hit_build() {
    use cairn_testkit::{Grant, RegistryOptions, TestRegistry, TokenUser};
    let env = Env::new();
    let user = |name: &str, pass: &str, actions: &[&str]| TokenUser {
        username: name.into(),
        password: pass.into(),
        refresh_token: None,
        grants: vec![Grant::all(actions)],
    };
    let secure = TestRegistry::start_with(RegistryOptions::new().token_auth(vec![
        user("writer", "writer-pass-81", &["pull", "push"]),
        user("reader", "reader-pass-17", &["pull"]),
    ]))
    .expect("token registry");
    let cache = format!("{}/cache/app", secure.addr());
    let ctx = testdata("acceptance/basic");
    let (o1, _) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s1"),
        &["--cache-repo", &cache, "--creds", "writer:writer-pass-81"],
    ));
    let (o2, e2) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s2"),
        &[
            "--cache-repo",
            &cache,
            "--cache-readonly",
            "--pull-creds",
            "reader:reader-pass-17",
        ],
    ));
    assert_eq!(digest_of(&o1), digest_of(&o2));
    assert!(e2.contains("Using cached image"), "{e2}");
    let image = format!("{}/app/basic:v1", secure.addr());
    let out = build_in(
        &env,
        &ctx,
        &env.path("s3"),
        &[
            "--cache-repo",
            &cache,
            "--cache-readonly",
            "--pull-creds",
            "reader:reader-pass-17",
            "-t",
            &image,
            "--push",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a push with pull-only credentials succeeded:\n{err}"
    );
    assert!(err.contains("app/basic") && err.contains("push"), "{err}");
    assert!(
        !err.contains("reader-pass-17"),
        "password in the error:\n{err}"
    );
}

/// Killed at several points while a large layer is written and pushed (to the
/// cache and to the destination): after every kill each tag's blobs are all in
/// the registry, and a clean rebuild succeeds.
#[test]
fn killed_mid_push_never_leaves_a_tag_without_its_blobs() {
    let env = Env::new();
    let cache = env.image("cache/midpush");
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG BASE\nFROM ${BASE}\nARG ITER\nRUN echo \"$ITER\" && dd if=/dev/urandom of=/big bs=1M count=48 2>/dev/null && echo big-done\nRUN echo small > /small\n",
    )
    .unwrap();
    let dest = env.image("app/midpush:v1");
    let build = |state: &str| {
        let mut c = Command::new(cairn_bin());
        c.arg("build")
            .arg(&ctx)
            .args(["--build-arg", &format!("BASE={}", env.base)])
            // Each attempt its own key: an entry an earlier attempt finished must
            // not turn the big step into a hit.
            .args(["--build-arg", &format!("ITER={state}")])
            .arg("--state-dir")
            .arg(env.path(state))
            .args(["--cache-repo", &cache, "-t", &dest, "--push"]);
        c
    };
    let check_tags = |repo: &str| {
        let tags = run(Command::new("skopeo").args([
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{repo}"),
        ]));
        if !tags.status.success() {
            return; // no tag yet
        }
        let tags: serde_json::Value = serde_json::from_slice(&tags.stdout).unwrap();
        for t in tags["Tags"].as_array().unwrap() {
            let t = t.as_str().unwrap();
            let raw = run_ok(Command::new("skopeo").args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{repo}:{t}"),
            ]));
            let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
            let mut digests: Vec<&str> = m["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap())
                .collect();
            digests.push(m["config"]["digest"].as_str().unwrap());
            for d in digests {
                let hex = d.trim_start_matches("sha256:");
                let data = env.registry.storage_dir().join(format!(
                    "docker/registry/v2/blobs/sha256/{}/{hex}/data",
                    &hex[..2]
                ));
                assert!(data.is_file(), "{repo}:{t} points at a missing blob {d}");
            }
        }
    };
    for (i, delay_ms) in [300u64, 700, 1100, 1600].into_iter().enumerate() {
        let (mut child, pgid, _) = spawn_until(&mut build(&format!("k{i}")), "| big-done");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        signal_group(pgid, "KILL");
        let _ = child.wait();
        check_tags(&cache);
        check_tags(&env.image("app/midpush"));
    }
    let out = run(&mut build("clean"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_tags(&cache);
    check_tags(&env.image("app/midpush"));
}

/// BuildKit-style `--cache-to`/`--cache-from`: a build reads a second cache (e.g.
/// main's) after its own, and `--label` values land in the config and the key.
#[test]
fn cache_from_another_repository_and_labels() {
    let env = Env::new();
    let main_cache = env.image("cache/main");
    let branch_cache = env.image("cache/branch");
    let ctx = testdata("acceptance/basic");
    let to_main = format!("type=registry,ref={main_cache},mode=max");
    let (o1, _) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s1"),
        &["--cache-to", &to_main, "--label", "team=infra"],
    ));
    let to_branch = format!("type=registry,ref={branch_cache}");
    let from_main = format!("type=registry,ref={main_cache}");
    let (o2, e2) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s2"),
        &[
            "--cache-to",
            &to_branch,
            "--cache-from",
            &from_main,
            "--label",
            "team=infra",
        ],
    ));
    assert_eq!(digest_of(&o1), digest_of(&o2));
    assert!(e2.contains("Using cached image"), "{e2}");
    // Another label value is another final key: not a full hit, and every step
    // still comes from the cache.
    let oci = env.path("oci");
    let (_, e3) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s3"),
        &[
            "--cache-from",
            &from_main,
            "--label",
            "team=web",
            "--output",
            &format!("type=oci,dest={}", oci.display()),
        ],
    ));
    assert!(
        !e3.contains("Using cached image") && !e3.contains(" | "),
        "{e3}"
    );
    let config = layout_config(&oci);
    assert_eq!(config["config"]["Labels"]["team"], "web");
}

/// The layer compression is part of the keys: a zstd build never takes gzip
/// entries, writes zstd layers, and is reproducible itself.
#[test]
fn compression_is_part_of_the_key() {
    let env = Env::new();
    let cache = env.image("cache/codec");
    let ctx = testdata("acceptance/basic");
    ok(&build_in(
        &env,
        &ctx,
        &env.path("s1"),
        &["--cache-repo", &cache],
    ));
    let oci = env.path("oci");
    let (o2, e2) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s2"),
        &[
            "--cache-repo",
            &cache,
            "--layer-compression",
            "zstd",
            "--output",
            &format!("type=oci,dest={}", oci.display()),
        ],
    ));
    assert!(
        !e2.contains("CACHED") && !e2.contains("Using cached image"),
        "zstd took gzip entries:\n{e2}"
    );
    let manifest = layout_manifest(&oci);
    let types: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert!(
        types[1..]
            .iter()
            .all(|t| *t == "application/vnd.oci.image.layer.v1.tar+zstd"),
        "{types:?}"
    );
    let (o3, _) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s3"),
        &["--layer-compression", "zstd"],
    ));
    assert_eq!(digest_of(&o2), digest_of(&o3));
}

/// `--layer-cache-dir`: the same cache in a local directory (an OCI layout):
/// full hit from an empty state, partial rebuild, and readable by skopeo.
#[test]
fn local_directory_cache() {
    let env = Env::new();
    let dir = env.path("layer-cache");
    let ctx = context_copy(&env, "basic", "ctx");
    let d = dir.to_str().unwrap();
    let (o1, _) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s1"),
        &["--layer-cache-dir", d],
    ));
    let (o2, e2) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s2"),
        &["--layer-cache-dir", d],
    ));
    assert_eq!(digest_of(&o1), digest_of(&o2));
    assert!(e2.contains("Using cached image (saved ~"), "{e2}");
    assert!(!e2.contains(" | "), "a step ran on a full hit:\n{e2}");
    // An independent tool reads the recorded image out of the layout.
    let index: serde_json::Value = serde_json::from_str(&read(&dir.join("index.json"))).unwrap();
    let image_tag = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .find(|t| t.starts_with("cairn-v1-img-") && !t.ends_with("-meta"))
        .unwrap()
        .to_string();
    let inspect = skopeo_json(&["inspect", &format!("oci:{d}:{image_tag}")]);
    assert_eq!(inspect["Digest"], digest_of(&o1).as_str());
    // A change in the last RUN: the earlier steps come from the directory.
    let df = read(&ctx.join("Dockerfile"))
        .replace("\"$GREETING from $(pwd)\"", "\"$GREETING in $(pwd)\"");
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let (o3, e3) = ok(&build_in(
        &env,
        &ctx,
        &env.path("s3"),
        &["--layer-cache-dir", d],
    ));
    assert!(e3.contains("cache: 5 steps hit, 1 built"), "{e3}");
    let (plain, _) = ok(&build_in(&env, &ctx, &env.path("s4"), &[]));
    assert_eq!(digest_of(&o3), digest_of(&plain));
}
