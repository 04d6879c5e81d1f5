//! kaniko's executor spelling of `cairn build` (docs/kaniko-flags.md) and
//! `cairn cache prune`, against a real registry, checked with skopeo.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn cairn() -> Command {
    let mut c = Command::new(cairn_bin());
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

fn tags(repo: &str) -> Vec<String> {
    let v = skopeo_json(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{repo}"),
    ]);
    let mut t: Vec<String> = v["Tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    t.sort();
    t
}

fn remote_digest(image: &str) -> String {
    let v = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]);
    v["Digest"].as_str().unwrap().to_string()
}

/// A kaniko-style build of `acceptance/basic` with the given extra flags.
fn kaniko_build(env: &Env, state: &Path, extra: &[String]) -> String {
    let ctx = testdata("acceptance/basic");
    run_ok(
        cairn()
            .arg("build")
            .arg(format!("--context=dir://{}", ctx.display()))
            // Relative and not found from the working directory: taken relative
            // to the context, as kaniko does.
            .arg("--dockerfile=Dockerfile")
            .arg(format!("--build-arg=BASE={}", env.base))
            .arg(format!("--state-dir={}", state.display()))
            .args(extra),
    )
}

#[test]
fn kaniko_invocation_pushes_every_destination_and_writes_the_digest_files() {
    let env = Env::new();
    let (d1, d2) = (env.image("kaniko/app:one"), env.image("kaniko/app:two"));
    let cache = env.image("kaniko/cache");
    let digest_file = env.path("out/digest");
    let names_file = env.path("out/names");
    let out = kaniko_build(
        &env,
        &env.path("state"),
        &[
            format!("--destination={d1}"),
            "-d".into(),
            d2.clone(),
            "--cache=true".into(),
            format!("--cache-repo={cache}"),
            "--cache-ttl=336h0m0s".into(),
            format!("--digest-file={}", digest_file.display()),
            format!("--image-name-with-digest-file={}", names_file.display()),
            // Accepted, with a warning or silently (docs/kaniko-flags.md).
            "--reproducible".into(),
            "--snapshot-mode=redo".into(),
            "--use-new-run".into(),
        ],
    );
    let digest = digest_of(&out);
    assert_eq!(read(&digest_file), digest, "kaniko writes the bare digest");
    assert_eq!(remote_digest(&d1), digest);
    assert_eq!(remote_digest(&d2), digest);
    let repo = env.image("kaniko/app");
    assert_eq!(
        read(&names_file),
        format!("{repo}@{digest}\n{repo}@{digest}\n")
    );
    let cache_tags = tags(&cache);
    assert!(
        cache_tags.iter().any(|t| t.starts_with("cairn-v1-img-")),
        "{cache_tags:?}"
    );
    assert!(
        cache_tags
            .iter()
            .filter(|t| t.starts_with("cairn-v1-") && t.len() == "cairn-v1-".len() + 64)
            .count()
            >= 5,
        "{cache_tags:?}"
    );

    // `--cache` without `--cache-repo`: kaniko's `<first destination repo>/cache`;
    // a fresh state dir, and the image is the same.
    let d3 = env.image("kaniko/other:three");
    let out = kaniko_build(
        &env,
        &env.path("state2"),
        &[format!("--destination={d3}"), "--cache".into()],
    );
    assert_eq!(digest_of(&out), digest);
    let inferred = tags(&env.image("kaniko/other/cache"));
    assert!(
        inferred.iter().any(|t| t.starts_with("cairn-v1-")),
        "{inferred:?}"
    );
}

#[test]
fn no_push_with_tar_path_writes_a_loadable_tarball_and_pushes_nothing() {
    let env = Env::new();
    let dest = env.image("kaniko/tarred:v1");
    let tar = env.path("out/image.tar");
    let out = kaniko_build(
        &env,
        &env.path("state"),
        &[
            format!("--destination={dest}"),
            "--no-push".into(),
            format!("--tar-path={}", tar.display()),
        ],
    );
    let digest = digest_of(&out);
    assert!(tar.is_file());
    // Nothing pushed.
    let inspect = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{dest}"),
    ]));
    assert!(!inspect.status.success(), "{dest} was pushed");
    // The temporary OCI layout is gone.
    let leftovers: Vec<_> = std::fs::read_dir(env.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["image.tar"]);

    // An OCI archive: the very manifest cairn printed.
    let oci = skopeo_json(&["inspect", &format!("oci-archive:{}", tar.display())]);
    assert_eq!(oci["Digest"], digest.as_str(), "{oci:#}");
    let layers = oci["Layers"].as_array().unwrap().len();
    // And a docker archive (what `docker load` reads), named after the destination.
    // (skopeo finds the image by its `RepoTags` name.)
    let docker = skopeo_json(&[
        "inspect",
        &format!("docker-archive:{}:{dest}", tar.display()),
    ]);
    assert_eq!(
        docker["Layers"].as_array().unwrap().len(),
        layers,
        "{docker:#}"
    );
    // Its layers decompress into a root file system.
    let layout = env.path("copied");
    run_ok(Command::new("skopeo").args([
        "copy",
        &format!("docker-archive:{}", tar.display()),
        &format!("oci:{}:img", layout.display()),
    ]));
    let rootfs = umoci_unpack(&layout, "img", &env.path("unpacked"));
    assert_eq!(read(&rootfs.join("created.txt")), "created\n");
}

#[test]
fn unsupported_and_unknown_flags_name_the_doc_page() {
    let ctx = testdata("acceptance/basic");
    let squash = run(cairn()
        .arg("build")
        .arg(&ctx)
        .args(["--single-snapshot", "--no-push"]));
    assert!(!squash.status.success());
    let err = String::from_utf8_lossy(&squash.stderr);
    assert!(
        err.contains("--single-snapshot") && err.contains("docs/kaniko-flags.md"),
        "{err}"
    );

    let unknown = run(cairn().arg("build").arg(&ctx).arg("--frobnicate=1"));
    assert_eq!(unknown.status.code(), Some(2));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("--frobnicate") && err.contains("docs/kaniko-flags.md"),
        "{err}"
    );

    let remote = run(cairn().args(["build", "--context=git://example.com/x.git"]));
    assert!(!remote.status.success());
    let err = String::from_utf8_lossy(&remote.stderr);
    assert!(err.contains("docs/kaniko-flags.md"), "{err}");
}

fn prune(repo: &str, extra: &[&str]) -> String {
    run_ok(
        cairn()
            .args(["cache", "prune", "--cache-repo", repo])
            .args(extra),
    )
}

#[test]
fn cache_prune_deletes_entries_by_age() {
    let env = Env::new();
    let cache = env.image("prune/cache");
    let image = env.image("prune/app:v1");
    run_ok(build_cmd(&env, "basic", &env.path("state")).args([
        "-t",
        &image,
        "--push",
        "--cache-repo",
        &cache,
    ]));
    let before = tags(&cache);
    let steps = before
        .iter()
        .filter(|t| t.starts_with("cairn-v1-") && t.len() == "cairn-v1-".len() + 64)
        .count();
    assert!(steps >= 5, "{before:?}");

    // Nothing is 30 days old.
    let out = prune(&cache, &["--older-than", "30d"]);
    assert!(out.contains("deleted 0 manifests"), "{out}");
    assert_eq!(tags(&cache), before);

    // A dry run deletes nothing but says what it would.
    let out = prune(&cache, &["--older-than", "0s", "--dry-run"]);
    assert!(out.contains("would delete cairn-v1-"), "{out}");
    assert_eq!(tags(&cache), before);

    // Everything is older than 0s: every entry, image record and hint goes.
    let out = prune(&cache, &["--older-than", "0s"]);
    assert!(out.contains("deleted cairn-v1-"), "{out}");
    let after = tags(&cache);
    assert!(
        after.iter().all(|t| !t.starts_with("cairn-v1-")),
        "left: {after:?}\n{out}"
    );
    // The destination image (another repository) is untouched.
    let digest = remote_digest(&image);
    assert!(digest.starts_with("sha256:"));

    // A rebuild repopulates the cache (the deleted tags were only links).
    run_ok(build_cmd(&env, "basic", &env.path("state2")).args(["--cache-repo", &cache]));
    assert!(tags(&cache).iter().any(|t| t.starts_with("cairn-v1-img-")));
}
