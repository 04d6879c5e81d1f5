//! Sandbox isolation, as root and as an ordinary user: other ids, processes, host
//! paths, background processes, environment, network.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// Lines of `tar -tv --numeric-owner` over every layer of an OCI layout: an
/// independent reading of the owners cairn wrote.
pub fn tar_listing(layout: &Path) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let out = run(Command::new("tar")
            .args(["-tvzf"])
            .arg(e.path())
            .arg("--numeric-owner"));
        if out.status.success() {
            all.push_str(&String::from_utf8_lossy(&out.stdout));
        }
    }
    all
}

pub fn owner_of(listing: &str, path: &str) -> String {
    listing
        .lines()
        .find(|l| l.ends_with(&format!(" {path}")))
        .unwrap_or_else(|| panic!("{path} not in any layer:\n{listing}"))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

fn check_isolation(as_user: bool) {
    let env = Env::new();
    let marker = env.path("host-marker-dir");
    // The ordinary user writes its output into the tree it owns.
    let oci = env.path(if as_user { "user/oci" } else { "oci" });
    let args = [
        "--build-arg".to_string(),
        format!("HOST_MARKER={}", marker.display()),
        "--output".to_string(),
        format!("type=oci,dest={}", oci.display()),
    ];
    let out = if as_user {
        run_as_user(&env, "isolation", &args)
    } else {
        run(build_cmd(&env, "isolation", &env.path("state"))
            .args(&args)
            .args(["--build-arg", "HTTP_PROXY=http://proxy.invalid:3128"])
            .env("CAIRN_TEST_SECRET", "hunter2")
            .env("REGISTRY_AUTH_FILE", "/nonexistent/auth.json"))
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "build failed:\n{stderr}");

    // Owners other than root, from chown and from a step run as USER app.
    let listing = tar_listing(&oci);
    assert_eq!(owner_of(&listing, "data/owned"), "1234/2345", "{listing}");
    assert_eq!(
        owner_of(&listing, "home/app/by-app"),
        "1234/2345",
        "{listing}"
    );

    let root = umoci_unpack(&oci, "latest", &env.path("umoci"));
    assert_eq!(read(&root.join("tmp/as-user")), "1234\n");

    // Only the step's own processes: a new PID namespace, PID 1 is cairn's init.
    let pids: Vec<u32> = read(&root.join("procs"))
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(pids.contains(&1) && pids.len() <= 6, "pids: {pids:?}");
    assert!(pids.iter().all(|p| *p < 20), "pids: {pids:?}");
    let ps = read(&root.join("ps.txt"));
    assert!(
        !ps.contains("docker-registry") && !ps.contains("cargo"),
        "host processes visible:\n{ps}"
    );

    // Host paths are neither visible nor writable.
    assert!(
        !marker.exists(),
        "a step wrote to the host path {}",
        marker.display()
    );

    // A background process does not outlive its step.
    assert!(stderr.contains("background started"), "{stderr}");
    assert!(
        processes_mentioning("7654321").is_empty(),
        "background process survived: {:?}",
        processes_mentioning("7654321")
    );

    // Nothing of cairn's own environment reaches a step.
    let step_env = read(&root.join("env.txt"));
    for bad in ["CAIRN_", "hunter2", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG"] {
        assert!(
            !step_env.contains(bad),
            "`{bad}` leaked into the step env:\n{step_env}"
        );
    }
    assert!(step_env.contains("HOME=/root\n"), "{step_env}");
    if !as_user {
        // A predefined proxy ARG reaches RUN without an ARG line …
        assert!(
            step_env.contains("HTTP_PROXY=http://proxy.invalid:3128\n"),
            "{step_env}"
        );
        // … and is not written into the image.
        let config = layout_config(&oci).to_string();
        assert!(!config.contains("proxy.invalid"), "{config}");
    }

    // --network=none: loopback only, and up.
    let netdev = read(&root.join("netdev"));
    let ifaces: Vec<&str> = netdev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "{netdev}");
    assert!(read(&root.join("lo.txt")).contains(",UP"), "lo is down");
}

/// As root.
#[test]
fn isolation_as_root() {
    if !is_root() {
        eprintln!("skipped: not root (the ordinary-user variant covers this run)");
        return;
    }
    check_isolation(false);
}

/// As an ordinary user with subordinate ids.
#[test]
fn isolation_as_ordinary_user() {
    check_isolation(true);
}

/// SIGKILL in the middle of a RUN: nothing keeps running, no mount remains, and
/// the next run removes the scratch dir the killed one left.
#[test]
fn sigkill_mid_run_leaves_no_mount_and_next_run_recovers() {
    let env = Env::new();
    let state = env.path("state");
    let (mut child, pgid, _) = spawn_until(&mut build_cmd(&env, "killed", &state), "step-started");
    signal_group(pgid, "KILL");
    let _ = child.wait();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !processes_mentioning("7777777").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        processes_mentioning("7777777").is_empty(),
        "the step survived SIGKILL"
    );
    assert!(
        mounts_mentioning(&state).is_empty(),
        "{:?}",
        mounts_mentioning(&state)
    );
    let stale = std::fs::read_dir(state.join("tmp-v1")).unwrap().count();
    assert_eq!(
        stale, 1,
        "the killed build left its scratch dir (it cannot clean up)"
    );

    // The next run recovers the stale state.
    run_ok(&mut build_cmd(&env, "basic", &state));
    let left: Vec<_> = std::fs::read_dir(state.join("tmp-v1"))
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "stale scratch not recovered: {left:?}");
    assert!(mounts_mentioning(&state).is_empty());
}

/// A step that outlives --step-timeout is killed, with all its processes.
#[test]
fn step_timeout_kills_the_step() {
    let env = Env::new();
    let out = run(build_cmd(&env, "killed", &env.path("state")).args(["--step-timeout", "1"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("Dockerfile:4:") && stderr.contains("timed out after 1s"),
        "{stderr}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        processes_mentioning("7777777").is_empty(),
        "the step survived its timeout"
    );
}

/// Ctrl-C mid-RUN (SIGINT to cairn's process group, as a terminal sends it): the
/// build stops with "interrupted", the step's processes are gone, and its scratch
/// dir is removed by the interrupted run itself.
#[test]
fn ctrl_c_mid_run_cancels_cleanly() {
    let env = Env::new();
    let state = env.path("state");
    let (mut child, pgid, lines) =
        spawn_until(&mut build_cmd(&env, "killed", &state), "step-started");
    signal_group(pgid, "INT");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:?}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        processes_mentioning("7777777").is_empty(),
        "the step survived Ctrl-C"
    );
    assert!(mounts_mentioning(&state).is_empty());
    let left: Vec<_> = std::fs::read_dir(state.join("tmp-v1"))
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "scratch left after Ctrl-C: {left:?}");
}
