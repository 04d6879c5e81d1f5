//! `--snapshotter walk`: steps without overlayfs (a copy of the root compared with
//! its parent) give the same image, digest included, as the overlay path.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn assert_no_mount_or_scratch_left(state: &Path) {
    assert!(
        mounts_mentioning(state).is_empty(),
        "{:?}",
        mounts_mentioning(state)
    );
    let left: Vec<_> = std::fs::read_dir(state.join("tmp-v1"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "scratch left: {left:?}");
}

/// The acceptance build (COPY, RUNs that create, modify and delete base content,
/// a directory removed and made again, WORKDIR) with the walk snapshotter: the
/// digest equals the overlay build's and umoci sees every change.
#[test]
fn walk_build_equals_the_overlay_build() {
    let env = Env::new();
    let overlay = env.image("snap/basic:overlay");
    let walk = env.image("snap/basic:walk");
    let t = std::time::Instant::now();
    let out = run_ok(build_cmd(&env, "basic", &env.path("s-overlay")).args([
        "-t",
        &overlay,
        "--push",
        "--snapshotter",
        "overlay",
    ]));
    let overlay_time = t.elapsed();
    let overlay_digest = digest_of(&out);
    let state = env.path("s-walk");
    let t = std::time::Instant::now();
    let out = run(build_cmd(&env, "basic", &state).args([
        "-t",
        &walk,
        "--push",
        "--snapshotter",
        "walk",
    ]));
    let walk_time = t.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    eprintln!("acceptance build: overlay {overlay_time:?}, walk {walk_time:?}");
    assert_eq!(digest_of(&stdout), overlay_digest, "{stderr}");
    assert_no_mount_or_scratch_left(&state);

    let root = unpack_with_umoci(&walk, &env.path("umoci"));
    assert_eq!(
        read(&root.join("opt/app/hello.txt")),
        "hello from the context\n"
    );
    assert_eq!(read(&root.join("created.txt")), "created\n");
    assert_eq!(read(&root.join("var/lib/cairn/state")), "data\n");
    let group = read(&root.join("etc/group"));
    assert!(group.ends_with("cairn:x:1234:\n"), "{group}");
    assert!(!root.join("etc/motd").exists(), "deleted file came back");
    assert!(
        !root.join("usr/share/seed").exists(),
        "deleted dir came back"
    );
    assert!(root.join("usr/share").is_dir());
    assert!(!root.join("opt/other/old").exists(), "recreated dir leaked");
    assert_eq!(read(&root.join("opt/other/fresh")), "hi from /work\n");
    assert!(root.join("work").is_dir());
    // No mount-point stub of the sandbox reached a layer.
    assert!(!root.join(".cairn-in").exists());
    for f in ["hosts", "resolv.conf", "hostname"] {
        assert!(!root.join("etc").join(f).exists(), "stub /etc/{f} leaked");
    }
}

/// Several stages, `COPY --from` and `RUN --mount=from` of a stage, and a layer
/// cache: a second walk build after a change rebuilds from cached layers (applied
/// onto a flat copy) and still equals the overlay build.
#[test]
fn walk_multi_stage_and_cached_layers() {
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let dockerfile = |last: &str| {
        std::fs::write(
            ctx.join("Dockerfile"),
            format!(
                "ARG BASE\nFROM ${{BASE}} AS tools\nRUN mkdir /out && echo tool > /out/t && rm /etc/motd\n\
                 FROM ${{BASE}}\nRUN echo one > /one && rm -r /usr/share/seed\n\
                 COPY --from=tools /out /from-tools\n\
                 RUN --mount=type=bind,from=tools,target=/mnt/t cat /mnt/t/out/t > /mounted\n\
                 RUN {last}\n"
            ),
        )
        .unwrap();
    };
    let build = |snap: &str, state: &str, cache: &str| {
        let mut c = Command::new(cairn_bin());
        c.args(["build", "-f"])
            .arg(ctx.join("Dockerfile"))
            .arg(&ctx)
            .args(["--build-arg", &format!("BASE={}", env.base)])
            .args(["--snapshotter", snap])
            .arg("--layer-cache-dir")
            .arg(env.path(cache))
            .arg("--state-dir")
            .arg(env.path(state))
            .env_remove("SOURCE_DATE_EPOCH");
        let out = run(&mut c);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        (digest_of(&String::from_utf8_lossy(&out.stdout)), stderr)
    };
    dockerfile("echo a > /last");
    let (walk1, _) = build("walk", "s-walk", "c-walk");
    let (overlay1, _) = build("overlay", "s-overlay", "c-overlay");
    assert_eq!(walk1, overlay1);
    dockerfile("echo b > /last && rm /one");
    let (walk2, err) = build("walk", "s-walk", "c-walk");
    assert!(err.contains("CACHED"), "{err}");
    let (overlay2, _) = build("overlay", "s-overlay", "c-overlay");
    assert_eq!(walk2, overlay2);
    assert_ne!(walk1, walk2);
    assert_no_mount_or_scratch_left(&env.path("s-walk"));

    let layout = env.path("layout");
    let mut c = Command::new(cairn_bin());
    c.args(["build", "-f"])
        .arg(ctx.join("Dockerfile"))
        .arg(&ctx)
        .args(["--build-arg", &format!("BASE={}", env.base)])
        .args(["--snapshotter", "walk", "--state-dir"])
        .arg(env.path("s-walk"))
        .arg("--output")
        .arg(format!("type=oci,dest={}", layout.display()))
        .env_remove("SOURCE_DATE_EPOCH");
    run_ok(&mut c);
    let root = umoci_unpack(&layout, "latest", &env.path("u"));
    assert_eq!(read(&root.join("from-tools/t")), "tool\n");
    assert_eq!(read(&root.join("mounted")), "tool\n");
    assert_eq!(read(&root.join("last")), "b\n");
    assert!(!root.join("one").exists());
    assert!(!root.join("usr/share/seed").exists());
    assert!(
        root.join("etc/motd").exists(),
        "the other stage's delete leaked"
    );
}

/// `--snapshotter auto` where overlayfs works takes the overlay path (no notice).
#[test]
fn auto_takes_overlay_where_it_works() {
    let env = Env::new();
    let out = run(build_cmd(&env, "basic", &env.path("s")).args(["--snapshotter", "auto"]));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("walk snapshotter"), "{stderr}");
    let bad = run(build_cmd(&env, "basic", &env.path("s")).args(["--snapshotter", "zfs"]));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("snapshotter"));
}

/// The case the walk snapshotter is for: the state dir on overlayfs (cairn in a
/// container), where an overlay's upper dir cannot be. `--snapshotter overlay`
/// fails there; `auto` notices, walks, and gives the overlay build's digest.
/// Needs root (to mount the outer overlay); says so and passes otherwise.
#[test]
fn auto_walks_where_the_state_dir_is_on_overlayfs() {
    if !is_root() {
        eprintln!("skipped: mounting the outer overlay needs root");
        return;
    }
    let env = Env::new();
    let reference = digest_of(&run_ok(&mut build_cmd(&env, "basic", &env.path("plain"))));
    let outer = env.path("outer");
    for d in ["l", "u", "w", "m"] {
        std::fs::create_dir_all(outer.join(d)).unwrap();
    }
    let o = |d: &str| outer.join(d).display().to_string();
    run_ok(Command::new("mount").args([
        "-t",
        "overlay",
        "overlay",
        "-o",
        &format!("lowerdir={},upperdir={},workdir={}", o("l"), o("u"), o("w")),
        &o("m"),
    ]));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _outer = Unmount(outer.join("m"));
    let state = outer.join("m/state");
    let failed =
        run(build_cmd(&env, "basic", &outer.join("m/state-overlay"))
            .args(["--snapshotter", "overlay"]));
    assert!(!failed.status.success(), "overlay on overlayfs worked here");
    let out = run(&mut build_cmd(&env, "basic", &state));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("using the walk snapshotter"), "{stderr}");
    assert_eq!(digest_of(&String::from_utf8_lossy(&out.stdout)), reference);
    assert_no_mount_or_scratch_left(&state);
}
