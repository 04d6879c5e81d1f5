//! What a RUN step sees, and what a failing one leaves behind (nothing).

use std::process::Command;

use crate::support::*;

/// A RUN step is uid 0 in its own user namespace, in a new PID namespace, and
/// sees the image root only: a file that exists on the host is invisible.
#[test]
fn run_step_sees_only_the_image_as_uid_0() {
    let env = Env::new();
    let host_only = env.path("host-only-file");
    std::fs::write(&host_only, "secret").unwrap();
    let oci = env.path("oci");
    let out = run_ok(build_cmd(&env, "probe", &env.path("state")).args([
        "--build-arg",
        &format!("HOST_ONLY={}", host_only.display()),
        "--output",
        &format!("type=oci,dest={}", oci.display()),
    ]));
    digest_of(&out);
    let root = umoci_unpack(&oci, "latest", &env.path("umoci"));
    assert_eq!(read(&root.join("uid")), "0\n");
    assert_eq!(read(&root.join("gid")), "0\n");
    assert_eq!(read(&root.join("hostname")), "cairn\n");
    let listing = read(&root.join("rootlist"));
    let entries: Vec<&str> = listing.lines().collect();
    for host_dir in ["work", "home", "boot", "lib64"] {
        assert!(
            !entries.contains(&host_dir),
            "host dir /{host_dir} visible: {entries:?}"
        );
    }
    for image_dir in ["bin", "etc", "usr", "proc", "dev"] {
        assert!(
            entries.contains(&image_dir),
            "/{image_dir} missing: {entries:?}"
        );
    }
    // PID 1 of the step's PID namespace is cairn's sandbox init, not the host's init.
    let pid1 = read(&root.join("pid1"));
    assert!(pid1.contains("cairn"), "PID 1 is {pid1:?}");
}

/// A failing RUN stops the build with the Dockerfile line and exit code, runs no
/// later step, and leaves no mount and no scratch directory behind.
#[test]
fn failing_run_names_line_and_exit_code_and_leaves_nothing() {
    let env = Env::new();
    let state = env.path("state");
    let out = run(&mut build_cmd(&env, "failing", &state));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "build should fail:\n{stderr}");
    assert!(
        stderr.contains("Dockerfile:4:"),
        "no file:line in:\n{stderr}"
    );
    assert!(stderr.contains("exit code 3"), "no exit code in:\n{stderr}");
    assert!(
        stderr.contains("about to fail"),
        "step output not streamed:\n{stderr}"
    );
    assert!(
        !stderr.contains("this must never run"),
        "later step ran:\n{stderr}"
    );
    assert!(
        mounts_mentioning(&state).is_empty(),
        "mounts left: {:?}",
        mounts_mentioning(&state)
    );
    let tmp: Vec<_> = std::fs::read_dir(state.join("tmp-v1")).unwrap().collect();
    assert!(tmp.is_empty(), "scratch left behind: {tmp:?}");
    let leftovers: Vec<_> = std::fs::read_dir(state.join("snapshots-v1"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "partial snapshots left: {leftovers:?}"
    );
}

/// Bad input gets a clear error naming file and line, and nothing is pushed.
#[test]
fn dockerfile_error_names_file_and_line_and_pushes_nothing() {
    let env = Env::new();
    let dir = env.path("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {}\nRUN true\nRUNN oops\n", env.base),
    )
    .unwrap();
    let image = env.image("bad/input:v1");
    let out = run(Command::new(cairn_bin())
        .args([
            "build",
            dir.to_str().unwrap(),
            "-t",
            &image,
            "--push",
            "--state-dir",
        ])
        .arg(env.path("state")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("Dockerfile:3:"), "{stderr}");
    assert!(stderr.contains("RUNN"), "{stderr}");
    let tags = run(Command::new("skopeo").args([
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}", env.image("bad/input")),
    ]));
    assert!(!tags.status.success() || !String::from_utf8_lossy(&tags.stdout).contains("v1"));
}

/// An instruction that cannot work in context (a COPY source that is not in the
/// context) fails before anything runs, naming file, line and column, with the
/// line and a caret under the instruction.
#[test]
fn engine_errors_show_the_line_with_a_caret() {
    let env = Env::new();
    let dir = env.path("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo must-not-run\n  COPY nope.txt /x\n",
            env.base
        ),
    )
    .unwrap();
    let out = run(Command::new(cairn_bin())
        .args(["build", dir.to_str().unwrap(), "--state-dir"])
        .arg(env.path("state")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("Dockerfile:3:3: COPY source `nope.txt` not found in the build context"),
        "{stderr}"
    );
    assert!(
        stderr.contains(" 3 |   COPY nope.txt /x\n   |   ^^^^"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("| must-not-run"),
        "a step ran before the error:\n{stderr}"
    );
}

/// COPY may write /etc/hosts, /etc/hostname and /etc/resolv.conf (a root file
/// system copied in); only RUN gets the host's versions bound over them.
#[test]
fn copy_can_write_the_files_run_gets_from_the_host() {
    let env = Env::new();
    let dir = env.path("ctx");
    std::fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
    for f in ["hostname", "hosts", "resolv.conf"] {
        std::fs::write(dir.join("rootfs/etc").join(f), format!("image {f}\n")).unwrap();
    }
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY rootfs/ /\nRUN cat /etc/hostname > /seen-by-run\n",
            env.base
        ),
    )
    .unwrap();
    let oci = env.path("oci");
    run_ok(
        Command::new(cairn_bin())
            .args(["build", dir.to_str().unwrap(), "--state-dir"])
            .arg(env.path("state"))
            .args(["--output", &format!("type=oci,dest={}", oci.display())]),
    );
    let root = umoci_unpack(&oci, "latest", &env.path("umoci"));
    assert_eq!(read(&root.join("etc/hostname")), "image hostname\n");
    assert_eq!(read(&root.join("etc/resolv.conf")), "image resolv.conf\n");
    // RUN sees the sandbox's host name, not the file the image carries.
    assert_eq!(read(&root.join("seen-by-run")), "cairn\n");
}
