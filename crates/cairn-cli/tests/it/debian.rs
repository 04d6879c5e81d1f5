//! Real-world steps (`useradd`, `apt-get install`) on a Debian base image made
//! with `debootstrap --variant=minbase`, as root and as an ordinary user.

use std::path::PathBuf;
use std::sync::Mutex;

use crate::isolation::{owner_of, tar_listing};
use crate::support::*;

/// debootstrap runs once per target dir; both tests wait for it.
static DEBOOTSTRAP: Mutex<()> = Mutex::new(());

fn mirror() -> String {
    std::env::var("CAIRN_DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into())
}

/// Pushes a debootstrapped bookworm to the test registry and makes it `env.base`;
/// `None` (with the reason printed) when it cannot be made here.
pub(crate) fn with_debian_base(env: &mut Env) -> Option<()> {
    if !is_root() {
        eprintln!("skipped: debootstrap needs root");
        return None;
    }
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("debian-bookworm-minbase");
    {
        let _guard = DEBOOTSTRAP.lock().unwrap_or_else(|p| p.into_inner());
        if !cache.is_dir()
            && let Err(e) = cairn_testkit::debootstrap_rootfs(&cache, "bookworm", &mirror())
        {
            eprintln!("skipped: debootstrap cannot make a Debian base here: {e}");
            return None;
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let image = rt
        .block_on(cairn_testkit::push_rootfs_image(
            &env.registry.addr(),
            "debian",
            "bookworm",
            &cache,
            "debootstrap --variant=minbase bookworm",
        ))
        .expect("push the Debian base");
    env.base = image.reference;
    Some(())
}

/// As an ordinary user with subordinate ids: useradd, chown and a real apt-get
/// install through the host network.
#[test]
fn apt_get_install_and_useradd_as_ordinary_user() {
    let mut env = Env::new();
    if with_debian_base(&mut env).is_none() {
        return;
    }
    let oci = env.path("user/oci");
    let out = run_as_user(
        &env,
        "debian",
        &[
            "--output".into(),
            format!("type=oci,dest={}", oci.display()),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "build failed:\n{stderr}");
    let listing = tar_listing(&oci);
    assert_eq!(owner_of(&listing, "srv/dev/file"), "1500/1500", "{stderr}");
    assert_eq!(owner_of(&listing, "home/dev/"), "1500/1500");
    let root = umoci_unpack(&oci, "latest", &env.path("umoci"));
    let version = read(&root.join("git-version"));
    assert!(version.starts_with("git version "), "{version}");
    assert!(root.join("usr/bin/git").is_file());
}

/// As root: the same user and owners.
#[test]
fn useradd_as_root() {
    let mut env = Env::new();
    if with_debian_base(&mut env).is_none() {
        return;
    }
    let oci = env.path("oci");
    run_ok(build_cmd(&env, "debian", &env.path("state")).args([
        "--build-arg",
        "INSTALL=0",
        "--output",
        &format!("type=oci,dest={}", oci.display()),
    ]));
    let listing = tar_listing(&oci);
    assert_eq!(owner_of(&listing, "srv/dev/file"), "1500/1500");
    assert!(listing.contains(" home/dev/"));
}
