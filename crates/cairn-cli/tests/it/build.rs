//! The acceptance build: pushed to a real registry, inspected with skopeo, and
//! unpacked with umoci.

use crate::support::*;

/// A 9-step Dockerfile (COPY, RUNs that create, modify and delete base content,
/// ENV, WORKDIR, a directory replaced by a RUN, CMD) builds, pushes, and reads
/// back right through tools cairn did not write.
#[test]
fn build_push_and_check_with_skopeo_and_umoci() {
    let env = Env::new();
    let image = env.image("acceptance/basic:v1");
    let out = run_ok(build_cmd(&env, "basic", &env.path("state")).args(["-t", &image, "--push"]));
    let digest = digest_of(&out);

    let inspect = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]);
    assert_eq!(inspect["Digest"], digest.as_str(), "{inspect:#}");
    // base + COPY + 3 RUNs + WORKDIR + RUN
    assert_eq!(
        inspect["Layers"].as_array().unwrap().len(),
        7,
        "{inspect:#}"
    );

    let config = skopeo_json(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]);
    let cfg = &config["config"];
    let env_list: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env_list.contains(&"GREETING=hi"), "{env_list:?}");
    assert!(env_list.contains(&"SECOND=two words"), "{env_list:?}");
    assert!(
        env_list.iter().any(|e| e.starts_with("PATH=")),
        "base PATH kept: {env_list:?}"
    );
    assert_eq!(
        cfg["Cmd"],
        serde_json::json!(["sh", "-c", "cat /opt/other/fresh"])
    );
    assert_eq!(cfg["WorkingDir"], "/work");
    // one history entry for the base, one per instruction after FROM
    assert_eq!(
        config["history"].as_array().unwrap().len(),
        1 + 8,
        "{config:#}"
    );
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 7);
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");

    let root = unpack_with_umoci(&image, &env.path("umoci"));
    // COPY of a directory's contents
    assert_eq!(
        read(&root.join("opt/app/hello.txt")),
        "hello from the context\n"
    );
    assert_eq!(read(&root.join("opt/app/sub/nested.txt")), "nested\n");
    // created by a RUN
    assert_eq!(read(&root.join("created.txt")), "created\n");
    assert_eq!(read(&root.join("var/lib/cairn/state")), "data\n");
    // a base file modified by a RUN
    let group = read(&root.join("etc/group"));
    assert!(group.starts_with("root:x:0:\n"), "{group}");
    assert!(group.ends_with("cairn:x:1234:\n"), "{group}");
    // a base file and a base directory deleted by a RUN: whiteouts honoured by umoci
    assert!(!root.join("etc/motd").exists(), "deleted file came back");
    assert!(
        !root.join("usr/share/seed").exists(),
        "deleted dir came back"
    );
    assert!(
        root.join("usr/share").is_dir(),
        "parent of the deleted dir is kept"
    );
    assert!(root.join("etc/passwd").is_file());
    // a directory removed and made again: opaque, the old content is gone
    assert!(
        !root.join("opt/other/old").exists(),
        "opaque dir leaked old content"
    );
    assert_eq!(read(&root.join("opt/other/fresh")), "hi from /work\n");
    assert!(root.join("work").is_dir(), "WORKDIR created");
    assert!(root.join("bin/busybox").is_file());
}

/// Two builds from two fresh state directories give the same manifest digest,
/// and the same as the registry reports for the pushed one.
#[test]
fn same_inputs_same_digest_from_fresh_state_dirs() {
    let env = Env::new();
    let image = env.image("acceptance/repro:a");
    let first = digest_of(&run_ok(
        build_cmd(&env, "basic", &env.path("state-a")).args(["-t", &image, "--push"]),
    ));
    let oci = env.path("oci-b");
    let second = digest_of(&run_ok(
        build_cmd(&env, "basic", &env.path("state-b"))
            .args(["--output", &format!("type=oci,dest={}", oci.display())]),
    ));
    assert_eq!(first, second, "fresh state dirs gave different images");
    let inspect = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]);
    assert_eq!(inspect["Digest"], first.as_str());
    // The OCI layout output names the same manifest.
    let index: serde_json::Value = serde_json::from_str(&read(&oci.join("index.json"))).unwrap();
    assert_eq!(index["manifests"][0]["digest"], first.as_str());
    // And a third build with a different SOURCE_DATE_EPOCH differs (the clamp is real).
    let third = digest_of(&run_ok(
        build_cmd(&env, "basic", &env.path("state-c")).env("SOURCE_DATE_EPOCH", "1700000000"),
    ));
    assert_ne!(first, third);
}

/// `--progress tty` draws a spinner per stage with the current step (here under
/// `script`, which gives cairn a terminal); plain output has no escape codes.
#[test]
fn progress_bars_on_a_terminal_plain_lines_otherwise() {
    let env = Env::new();
    let cmd = build_cmd(&env, "basic", &env.path("tty"));
    let argv: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', r"'\''")))
        .collect();
    let out = run(std::process::Command::new("script").args([
        "-qec",
        &format!("{} --progress tty", argv.join(" ")),
        "/dev/null",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1/8 COPY files/ /opt/app/"), "{text}");
    assert!(text.contains("\x1b[2K"), "no bar drawn:\n{text}");
    assert!(text.contains("[stage-0] done"), "{text}");

    let plain = run(&mut build_cmd(&env, "basic", &env.path("plain")));
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(plain.status.success());
    assert!(
        !err.contains('\x1b'),
        "escape codes in plain output:\n{err}"
    );
    assert!(err.contains("[stage-0 1/8] COPY files/ /opt/app/"), "{err}");
}

/// A base image of several layers (whiteouts and an opaque directory among them)
/// is downloaded and unpacked layer by layer: a step on top sees the same tree
/// as umoci does.
#[test]
fn multi_layer_base_is_unpacked_in_order() {
    let env = Env::new();
    let base = env.image("layers/base:v1");
    run_ok(build_cmd(&env, "basic", &env.path("s1")).args(["-t", &base, "--push"]));
    let dir = env.path("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {base}\nRUN (cat /opt/other/fresh /created.txt; ls /opt/other; test ! -e /etc/motd && echo motd-gone; test ! -e /usr/share/seed && echo seed-gone) > /seen\n"
        ),
    )
    .unwrap();
    let oci = env.path("oci");
    run_ok(
        std::process::Command::new(cairn_bin())
            .args(["build", dir.to_str().unwrap(), "--state-dir"])
            .arg(env.path("s2"))
            .args(["--output", &format!("type=oci,dest={}", oci.display())]),
    );
    let root = umoci_unpack(&oci, "latest", &env.path("umoci"));
    assert_eq!(
        read(&root.join("seen")),
        "hi from /work\ncreated\nfresh\nmotd-gone\nseed-gone\n"
    );
}

/// `--build-context NAME=DIR`: `COPY --from=NAME` and `RUN --mount=from=NAME` read
/// the directory; its contents are part of the keys, its location is not.
#[test]
fn named_build_contexts() {
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG BASE\nFROM ${BASE}\nCOPY --from=extra greeting /copied\n\
         RUN --mount=type=bind,from=extra,target=/mnt/extra cat /mnt/extra/greeting > /mounted\n",
    )
    .unwrap();
    let extra = |name: &str, text: &str| {
        let d = env.path(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("greeting"), text).unwrap();
        d
    };
    let cache = env.path("cache");
    let build = |dir: &std::path::Path, out: &str| {
        let layout = env.path(out);
        let mut c = std::process::Command::new(cairn_bin());
        c.args(["build", "-f"])
            .arg(ctx.join("Dockerfile"))
            .arg(&ctx)
            .args(["--build-arg", &format!("BASE={}", env.base)])
            .arg("--build-context")
            .arg(format!("extra={}", dir.display()))
            .arg("--layer-cache-dir")
            .arg(&cache)
            .arg("--state-dir")
            .arg(env.path("state"))
            .arg("--output")
            .arg(format!("type=oci,dest={}", layout.display()));
        let out = run(&mut c);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        let root = umoci_unpack(
            &layout,
            "latest",
            &env.path(&format!("{out:?}-u").replace(['"', ' '], "")),
        );
        (stderr, root)
    };
    let (_, root) = build(&extra("a", "one\n"), "o1");
    assert_eq!(read(&root.join("copied")), "one\n");
    assert_eq!(read(&root.join("mounted")), "one\n");
    // The same contents elsewhere: the whole image is a hit.
    let (err, _) = build(&extra("b", "one\n"), "o2");
    assert!(err.contains("Using cached image"), "{err}");
    // Other contents: both steps rebuild.
    let (err, root) = build(&extra("c", "two\n"), "o3");
    assert!(!err.contains("Using cached image"), "{err}");
    assert_eq!(err.matches("CACHED").count(), 0, "{err}");
    assert_eq!(read(&root.join("mounted")), "two\n");
    // A name that is not a directory is refused.
    let out = run(std::process::Command::new(cairn_bin())
        .args(["build", "-f"])
        .arg(ctx.join("Dockerfile"))
        .arg(&ctx)
        .args(["--build-context", "extra=/nonexistent-dir", "--state-dir"])
        .arg(env.path("state")));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("build context `extra`"));
}

/// The README's main command, `cairn dev demo`: its own registry, the Dockerfile
/// example built and pushed, then the dev container example built and found
/// pre-built from an empty local state.
#[test]
fn dev_demo_runs_the_main_job() {
    let out = run(std::process::Command::new(cairn_bin())
        .args(["dev", "demo", "--context"])
        .arg(testdata("examples/hello"))
        .arg("--devcontainer")
        .arg(testdata("examples/devcontainer")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("built and pushed"), "{stdout}");
    assert!(
        stdout.contains("(cold)") && stdout.contains("built and pushed, config hash"),
        "{stdout}"
    );
    assert!(stdout.contains("pre-built image used"), "{stdout}");
}
