//! The sandbox helper: `cairn` re-executed with [`HELPER_ENV`] set.
//!
//! ```text
//! engine ──spawn──▶ helper: read StepSpec (one JSON line on stdin)
//!                          unshare(NS | PID | UTS | IPC [| NET])
//!                          fork ─────────▶ PID 1: mount plan, pivot_root, hostname
//!                          │                      run the action, reap every child,
//!                          │                      write the status file, exit
//!                          └ wait PID 1; kill it if stdin closes (engine gone)
//! ```
//! PID 1 exiting makes the kernel kill every other process of the step, and the
//! mount namespace (with the overlay) disappears with its last process.

use std::io::{BufRead, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use rustix::process::{Pid, Signal, WaitOptions};
use serde::{Deserialize, Serialize};

use crate::builtin;
use crate::plan::mount_plan;
use crate::spec::{Action, ExecSpec, Network, StepSpec};

/// Environment variable that turns a `cairn` process into the sandbox helper.
pub const HELPER_ENV: &str = "CAIRN_SANDBOX_HELPER";

/// What PID 1 reports in the status file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// The process exited with a code.
    Exited(i32),
    /// The process was killed by a signal.
    Signaled(i32),
    /// The sandbox could not be set up.
    SetupFailed(String),
    /// A built-in action (COPY, WORKDIR) failed.
    ActionFailed(String),
}

/// Call first thing in `main`: if this process is a sandbox helper, run the step and
/// exit; otherwise return at once.
pub fn init_if_helper() {
    if std::env::var_os(HELPER_ENV).is_some() {
        std::process::exit(helper_main());
    }
}

fn write_status(file: &mut std::fs::File, status: &Status) {
    let _ = file.write_all(&serde_json::to_vec(status).unwrap_or_default());
    let _ = file.flush();
}

fn helper_main() -> i32 {
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.lock().read_line(&mut line).is_err() {
        return 120;
    }
    let spec: StepSpec = match serde_json::from_str(&line) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cairn sandbox helper: bad step spec: {e}");
            return 120;
        }
    };
    let mut status = match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&spec.dirs.status)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "cairn sandbox helper: open {}: {e}",
                spec.dirs.status.display()
            );
            return 120;
        }
    };
    use cairn_sys::UnshareFlags as F;
    let mut flags = F::NEWNS | F::NEWPID | F::NEWUTS | F::NEWIPC;
    if spec.network == Network::None {
        flags |= F::NEWNET;
    }
    if let Err(e) = cairn_sys::unshare(flags) {
        write_status(&mut status, &Status::SetupFailed(format!("unshare: {e}")));
        return 121;
    }
    match cairn_sys::fork() {
        Err(e) => {
            write_status(&mut status, &Status::SetupFailed(format!("fork: {e}")));
            121
        }
        Ok(cairn_sys::Fork::Child) => {
            let st = pid1(&spec);
            write_status(&mut status, &st);
            std::process::exit(0);
        }
        Ok(cairn_sys::Fork::Parent(pid)) => {
            drop(status);
            match Pid::from_raw(pid) {
                Some(pid) => watch_and_wait(pid),
                None => 122,
            }
        }
    }
}

/// Waits for PID 1; kills it (and so the whole step) when the engine closes our
/// stdin. No thread may be started here: after `unshare(CLONE_NEWPID)` the kernel
/// refuses new threads, so this is one `poll` over stdin and a pidfd of PID 1.
fn watch_and_wait(pid: Pid) -> i32 {
    use rustix::event::{PollFd, PollFlags, poll};
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok();
    let stdin = std::io::stdin();
    let mut engine_open = true;
    if let Some(pidfd) = &pidfd {
        loop {
            let mut fds = vec![PollFd::new(pidfd, PollFlags::IN)];
            if engine_open {
                fds.push(PollFd::new(&stdin, PollFlags::IN));
            }
            if poll(&mut fds, None).is_err() {
                continue;
            }
            if !fds[0].revents().is_empty() {
                break;
            }
            if engine_open && !fds[1].revents().is_empty() {
                let mut buf = [0u8; 64];
                if matches!(
                    std::io::Read::read(&mut stdin.lock(), &mut buf),
                    Ok(0) | Err(_)
                ) {
                    let _ = rustix::process::kill_process(pid, Signal::KILL);
                    engine_open = false;
                }
            }
        }
    }
    match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
        Ok(Some((_, st))) if st.exit_status() == Some(0) => 0,
        _ => 122,
    }
}

fn pid1(spec: &StepSpec) -> Status {
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    if let Err(e) = crate::apply::apply(&mount_plan(spec), &spec.dirs.rootfs) {
        return Status::SetupFailed(e.to_string());
    }
    let _ = rustix::system::sethostname(spec.hostname.as_bytes());
    if spec.network == Network::None
        && let Err(e) = cairn_sys::loopback_up()
    {
        return Status::SetupFailed(format!("bring up loopback in the step's network: {e}"));
    }
    match &spec.action {
        Action::Exec(exec) => run_exec(exec),
        Action::Copy(copy) => match builtin::copy(copy) {
            Ok(()) => Status::Exited(0),
            Err(e) => Status::ActionFailed(e),
        },
        Action::Mkdir { path } => match builtin::mkdir_p(Path::new(path), (0, 0)) {
            Ok(()) => Status::Exited(0),
            Err(e) => Status::ActionFailed(e),
        },
        Action::ApplyLayer { blob } => match builtin::apply_layer(Path::new(blob)) {
            Ok(()) => Status::Exited(0),
            Err(e) => Status::ActionFailed(e),
        },
    }
}

fn run_exec(exec: &ExecSpec) -> Status {
    let id = match builtin::identity(&exec.user) {
        Ok(id) => id,
        Err(e) => return Status::SetupFailed(e),
    };
    if let Err(e) = builtin::mkdir_p(Path::new(&exec.cwd), (0, 0)) {
        return Status::SetupFailed(format!("working directory: {e}"));
    }
    if let Err(e) = rustix::process::chdir(exec.cwd.as_str()) {
        return Status::SetupFailed(format!("chdir {}: {e}", exec.cwd));
    }
    if let Err(e) = drop_privileges(&id) {
        return Status::SetupFailed(e);
    }
    let Some((prog, args)) = exec.argv.split_first() else {
        return Status::SetupFailed("empty command".into());
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .envs(exec.env.iter().filter_map(|kv| kv.split_once('=')))
        .stdin(Stdio::null());
    // As Docker does: HOME from the user's passwd entry unless the image sets it.
    if !exec.env.iter().any(|kv| kv.starts_with("HOME=")) {
        cmd.env("HOME", id.home.as_deref().unwrap_or("/"));
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Status::SetupFailed(format!("cannot run `{prog}`: {e}")),
    };
    let main = child.id() as i32;
    // Reap every process of the namespace until the step's own process ends.
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((pid, st))) if pid.as_raw_nonzero().get() == main => {
                let raw = std::process::ExitStatus::from_raw(st.as_raw());
                return match (raw.code(), raw.signal()) {
                    (Some(c), _) => Status::Exited(c),
                    (None, Some(s)) => Status::Signaled(s),
                    _ => Status::Exited(255),
                };
            }
            Ok(_) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Status::SetupFailed(format!("wait: {e}")),
        }
    }
}

fn drop_privileges(id: &crate::users::Identity) -> Result<(), String> {
    use rustix::process::{Gid, Uid};
    rustix::thread::set_no_new_privs(true).map_err(|e| format!("no_new_privs: {e}"))?;
    let groups: Vec<Gid> = id.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    // setgroups is denied in a single-id namespace; then only the primary group counts.
    let denied = std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() == "deny")
        .unwrap_or(false);
    if !denied {
        rustix::thread::set_thread_groups(&groups).map_err(|e| format!("setgroups: {e}"))?;
    }
    let gid = Gid::from_raw(id.gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .map_err(|e| format!("setgid {}: {e}", id.gid))?;
    let uid = Uid::from_raw(id.uid);
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .map_err(|e| format!("setuid {}: {e}", id.uid))?;
    Ok(())
}
