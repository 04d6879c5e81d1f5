//! Shared fixtures: a real registry seeded with the busybox base, the `cairn`
//! binary, and the independent tools used as oracles.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cairn_testkit::TestRegistry;

/// A registry with `busybox:latest` pushed, and a scratch dir.
pub struct Env {
    pub registry: TestRegistry,
    pub base: String,
    pub tmp: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let registry = TestRegistry::start().expect("start docker-registry");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let seeded = rt
            .block_on(cairn_testkit::seed_busybox(
                &registry.addr(),
                "busybox",
                "latest",
            ))
            .expect("seed busybox");
        Env {
            base: seeded.reference,
            registry,
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn image(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.addr())
    }
}

pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

pub fn cairn_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cairn"))
}

/// `cairn build` of an acceptance example with `BASE` set.
pub fn build_cmd(env: &Env, example: &str, state: &Path) -> Command {
    let dir = testdata(&format!("acceptance/{example}"));
    let mut c = Command::new(cairn_bin());
    c.arg("build")
        .arg("-f")
        .arg(dir.join("Dockerfile"))
        .arg(&dir)
        .arg("--build-arg")
        .arg(format!("BASE={}", env.base))
        .arg("--state-dir")
        .arg(state)
        .env_remove("SOURCE_DATE_EPOCH");
    c
}

/// Runs and requires success; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// The digest cairn printed (last stdout line).
pub fn digest_of(stdout: &str) -> String {
    let d = stdout.lines().last().unwrap_or_default().trim().to_string();
    assert!(
        d.starts_with("sha256:") && d.len() == 71,
        "no digest in {stdout:?}"
    );
    d
}

pub fn skopeo_json(args: &[&str]) -> serde_json::Value {
    let out = run_ok(Command::new("skopeo").args(args));
    serde_json::from_str(&out).unwrap()
}

/// `skopeo copy` an image from the registry into an OCI layout, then `umoci
/// unpack` it: a root file system extracted by tools cairn did not write.
pub fn unpack_with_umoci(image: &str, work: &Path) -> PathBuf {
    std::fs::create_dir_all(work).unwrap();
    let layout = work.join("layout");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{image}"),
        &format!("oci:{}:img", layout.display()),
    ]));
    umoci_unpack(&layout, "img", work)
}

pub fn umoci_unpack(layout: &Path, tag: &str, work: &Path) -> PathBuf {
    let bundle = work.join("bundle");
    run_ok(Command::new("umoci").args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:{tag}", layout.display()),
        bundle.to_str().unwrap(),
    ]));
    bundle.join("rootfs")
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

pub fn is_root() -> bool {
    rustix_like_geteuid() == 0
}

fn rustix_like_geteuid() -> u32 {
    // /proc/self/status: "Uid:\treal\teffective\t…"
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

/// Every mount of this (the host's) mount namespace that mentions `path`.
pub fn mounts_mentioning(path: &Path) -> Vec<String> {
    let p = path.to_str().unwrap();
    read(Path::new("/proc/self/mountinfo"))
        .lines()
        .filter(|l| l.contains(p))
        .map(str::to_string)
        .collect()
}

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

/// Runs `cairn build` of an acceptance example as an ordinary user: as root, as
/// the test user `cairn-rootless` (created with subordinate id ranges); otherwise
/// as the current user. Files the user needs are copied into a tree it owns,
/// `env.path("user")`, with its state dir in `user/state`.
pub fn run_as_user(env: &Env, example: &str, args: &[String]) -> Output {
    let home = env.path("user");
    let ctx = home.join("ctx");
    let mut all: Vec<std::ffi::OsString> = vec!["build".into(), "-f".into()];
    all.push(ctx.join("Dockerfile").into());
    all.push(ctx.clone().into());
    all.push("--build-arg".into());
    all.push(format!("BASE={}", env.base).into());
    all.extend(args.iter().map(Into::into));
    cairn_as_user(
        env,
        &[(&testdata(&format!("acceptance/{example}")), "ctx")],
        &all,
    )
}

/// Runs the `cairn` binary with `args` as an ordinary user (see [`run_as_user`]),
/// after copying each `(tree, name)` to `env.path("user")/name`; `--state-dir
/// user/state` is appended.
pub fn cairn_as_user(env: &Env, copies: &[(&Path, &str)], args: &[std::ffi::OsString]) -> Output {
    use std::os::unix::fs::PermissionsExt;
    let home = env.path("user");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(env.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = home.join("cairn");
    std::fs::copy(cairn_bin(), &bin).unwrap();
    for (tree, name) in copies {
        run_ok(Command::new("cp").arg("-a").arg(tree).arg(home.join(name)));
    }
    let mut cmd = if is_root() {
        let (uid, gid) = ensure_user();
        chown_tree(&home, uid, gid);
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "--reset-env",
        ])
        .arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    cmd.env("HOME", &home)
        .args(args)
        .arg("--state-dir")
        .arg(home.join("state"));
    run(&mut cmd)
}

/// Starts `cmd` in a process group of its own and reads its stderr until a line
/// contains `needle` (panics if it never does); returns the child, its process
/// group and the rest of its stderr.
pub fn spawn_until(
    cmd: &mut Command,
    needle: &str,
) -> (
    std::process::Child,
    u32,
    std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
) {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .process_group(0)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pgid = child.id();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let seen = lines
        .by_ref()
        .take(400)
        .any(|l| l.map(|l| l.contains(needle)).unwrap_or(false));
    assert!(seen, "`{needle}` never appeared");
    (child, pgid, lines)
}

/// Sends `signal` (e.g. `KILL`, `INT`) to a whole process group.
pub fn signal_group(pgid: u32, signal: &str) {
    run_ok(Command::new("kill").args([&format!("-{signal}"), "--", &format!("-{pgid}")]));
}

/// The manifest of the (single) image in an OCI layout.
pub fn layout_manifest(layout: &Path) -> serde_json::Value {
    let index: serde_json::Value = serde_json::from_str(&read(&layout.join("index.json"))).unwrap();
    serde_json::from_str(&layout_blob(layout, &index["manifests"][0]["digest"])).unwrap()
}

/// The image config of the (single) image in an OCI layout.
pub fn layout_config(layout: &Path) -> serde_json::Value {
    let manifest = layout_manifest(layout);
    serde_json::from_str(&layout_blob(layout, &manifest["config"]["digest"])).unwrap()
}

/// A blob of an OCI layout, as text.
pub fn layout_blob(layout: &Path, digest: &serde_json::Value) -> String {
    let hex = digest.as_str().unwrap().trim_start_matches("sha256:");
    read(&layout.join("blobs/sha256").join(hex))
}
