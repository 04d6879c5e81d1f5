//! The rootless path: an ordinary user (with subordinate id ranges) builds an
//! image with RUN steps, and gets the same image as root does.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::*;

const USER: &str = "cairn-rootless";
/// Subordinate range given to the test user when it has none.
const SUBID_RANGE: &str = "400000:65536";

fn id_of(flag: &str) -> u32 {
    let out = run_ok(Command::new("id").args([flag, USER]));
    out.trim().parse().unwrap()
}

/// Creates the test user and its /etc/subuid and /etc/subgid ranges (as root).
fn ensure_user() -> (u32, u32) {
    if !run(Command::new("id").arg(USER)).status.success() {
        run_ok(Command::new("useradd").args(["--no-create-home", "--shell", "/bin/sh", USER]));
    }
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if !text.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
            let mut text = text;
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!("{USER}:{SUBID_RANGE}\n"));
            std::fs::write(file, text).unwrap();
        }
    }
    (id_of("-u"), id_of("-g"))
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(p),
    );
}

/// An ordinary user builds the acceptance Dockerfile (RUN steps that chown via
/// apt-like writes to /etc, delete base files, …) and pushes it; the image is
/// identical to the one root builds.
#[test]
fn ordinary_user_builds_the_same_image_as_root() {
    let env = Env::new();
    if !is_root() {
        // Already an ordinary user: the whole suite is rootless; build directly.
        run_ok(&mut build_cmd(&env, "basic", &env.path("state")));
        return;
    }
    let (uid, gid) = ensure_user();
    // Everything the user needs, in a tree it owns (the checkout may be in a
    // directory it cannot enter).
    let home = env.path("user");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(env.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = home.join("cairn");
    std::fs::copy(cairn_bin(), &bin).unwrap();
    let ctx = home.join("ctx");
    run_ok(
        Command::new("cp")
            .arg("-r")
            .arg(testdata("acceptance/basic"))
            .arg(&ctx),
    );
    chown_tree(&home, uid, gid);

    let image = env.image("rootless/basic:v1");
    let out = run(Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "--reset-env",
        ])
        .env("HOME", &home)
        .arg(&bin)
        .args(["build", "-f"])
        .arg(ctx.join("Dockerfile"))
        .arg(&ctx)
        .args(["--build-arg", &format!("BASE={}", env.base)])
        .args(["-t", &image, "--push", "--state-dir"])
        .arg(home.join("state")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rootless build failed:\n{stderr}");
    assert!(
        !stderr.contains("only id 0 is mapped"),
        "expected the subuid mapping, got the single-id fallback:\n{stderr}"
    );
    let rootless_digest = digest_of(&String::from_utf8_lossy(&out.stdout));
    // The state dir belongs to the user, not root: the build did not need root.
    let meta = std::fs::metadata(home.join("state/content-v1")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), uid);

    let root_digest = digest_of(&run_ok(&mut build_cmd(
        &env,
        "basic",
        &env.path("state-root"),
    )));
    assert_eq!(
        rootless_digest, root_digest,
        "rootless and root builds differ"
    );
    let inspect = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]);
    assert_eq!(inspect["Digest"], rootless_digest.as_str());
}
