//! Entering the build user namespace (the application of an [`IdMapPlan`]).
//!
//! ```text
//!  cairn (parent, host ids)                 cairn (child, same argv)
//!  ───────────────────────                  ─────────────────────────
//!  plan_id_maps()                           
//!  spawn /proc/self/exe  ───────────────▶   unshare(USER | NS)
//!                         ◀── "u" ───────   
//!  write uid_map/gid_map                    
//!  (or newuidmap/newgidmap)                 
//!                         ─── "k" ──────▶   make / private; uid is now 0
//!  wait, exit with the child's status       go on with the command
//! ```
//! The parent stays single-threaded and only waits. The child must call
//! [`enter_build_namespace`] before any thread starts (first thing in `main`).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::Command;

use rustix::mount::{MountPropagationFlags, mount_change};
use rustix::pipe::{PipeFlags, pipe_with};

use crate::Error;
use crate::idmap::{HostIds, IdMapPlan, MapMethod, plan_id_maps};

/// Environment variable through which the parent hands the sync pipes to the child.
pub const SYNC_ENV: &str = "CAIRN_USERNS_SYNC";
/// Environment variable carrying the plan (JSON) to the child, for its warnings.
pub const PLAN_ENV: &str = "CAIRN_USERNS_PLAN";

/// Where the process stands after [`enter_build_namespace`].
#[derive(Debug, Clone)]
pub struct BuildNamespace {
    /// The mapping in force.
    pub plan: IdMapPlan,
}

fn read_file(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn which(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
        || ["/usr/bin", "/bin", "/usr/sbin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(name).is_file())
}

fn user_name(uid: u32) -> Option<String> {
    crate::users::parse_passwd(&read_file("/etc/passwd"))
        .into_iter()
        .find(|u| u.uid == uid)
        .map(|u| u.name)
}

/// The plan for the current process and host.
pub fn current_plan() -> IdMapPlan {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let name = user_name(uid);
    let (subuid, subgid) = (read_file("/etc/subuid"), read_file("/etc/subgid"));
    let (cur_u, cur_g) = (
        read_file("/proc/self/uid_map"),
        read_file("/proc/self/gid_map"),
    );
    plan_id_maps(&HostIds {
        uid,
        gid,
        user_name: name.as_deref(),
        subuid: &subuid,
        subgid: &subgid,
        have_newidmap: which("newuidmap") && which("newgidmap"),
        current_uid_map: &cur_u,
        current_gid_map: &cur_g,
    })
}

/// Re-executes the current command inside a new user + mount namespace in which
/// it is uid 0, and returns in that child. The original process never returns: it
/// waits for the child and exits with its status.
pub fn enter_build_namespace() -> Result<BuildNamespace, Error> {
    if let Some(fds) = std::env::var_os(SYNC_ENV) {
        return child_side(&fds.to_string_lossy());
    }
    let plan = current_plan();
    let status = parent_side(&plan)?;
    std::process::exit(status);
}

fn parse_fds(s: &str) -> Option<(i32, i32)> {
    let (r, w) = s.split_once(',')?;
    Some((r.parse().ok()?, w.parse().ok()?))
}

fn child_side(fds: &str) -> Result<BuildNamespace, Error> {
    let (rfd, wfd) =
        parse_fds(fds).ok_or_else(|| Error::UserNs(format!("bad {SYNC_ENV} value {fds:?}")))?;
    let mut from_parent = std::fs::File::from(adopt(rfd)?);
    let mut to_parent = std::fs::File::from(adopt(wfd)?);
    let plan: IdMapPlan = std::env::var(PLAN_ENV)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .ok_or_else(|| Error::UserNs(format!("missing {PLAN_ENV}")))?;
    // We are single-threaded (first thing in main); cairn-sys checks it.
    cairn_sys::unshare(cairn_sys::UnshareFlags::NEWUSER | cairn_sys::UnshareFlags::NEWNS)
        .map_err(|e| Error::UserNs(format!("unshare(CLONE_NEWUSER|CLONE_NEWNS): {e}")))?;
    to_parent
        .write_all(b"u")
        .map_err(|e| Error::UserNs(format!("sync with parent: {e}")))?;
    let mut answer = [0u8; 1];
    match from_parent.read(&mut answer) {
        Ok(1) if answer[0] == b'k' => {}
        _ => return Err(Error::UserNs("the parent could not map ids".into())),
    }
    drop((from_parent, to_parent));
    // If the waiting parent dies (SIGKILL), end the build as if interrupted.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    for key in [SYNC_ENV, PLAN_ENV] {
        cairn_sys::remove_env(key).map_err(|e| Error::UserNs(e.to_string()))?;
    }
    mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| Error::UserNs(format!("make / private: {e}")))?;
    Ok(BuildNamespace { plan })
}

fn adopt(fd: i32) -> Result<OwnedFd, Error> {
    let fd = cairn_sys::take_inherited_fd(fd)
        .map_err(|e| Error::UserNs(format!("inherited sync fd {fd}: {e}")))?;
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
        .map_err(|e| Error::sys("fcntl", e))?;
    Ok(fd)
}

fn parent_side(plan: &IdMapPlan) -> Result<i32, Error> {
    if let Some(w) = &plan.warning {
        // Printed once, by the parent; the child does not repeat it.
        tracing::warn!("{w}");
    }
    // Pipes without CLOEXEC so that the child inherits them.
    let (p2c_r, p2c_w) = pipe_with(PipeFlags::empty()).map_err(|e| Error::sys("pipe", e))?;
    let (c2p_r, c2p_w) = pipe_with(PipeFlags::empty()).map_err(|e| Error::sys("pipe", e))?;
    let child_fds = format!("{},{}", raw(&p2c_r), raw(&c2p_w));
    let exe = std::env::current_exe().map_err(|e| Error::sys("current_exe", e))?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(SYNC_ENV, child_fds)
        .env(
            PLAN_ENV,
            serde_json::to_string(plan).map_err(|e| Error::UserNs(e.to_string()))?,
        );
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::UserNs(format!("re-execute cairn: {e}")))?;
    drop((p2c_r, c2p_w));
    // Ctrl-C reaches the child through the terminal's process group; the parent
    // only waits for it to clean up and exit.
    let _ = cairn_sys::ignore_signal(cairn_sys::SIGINT);
    let mut from_child = std::fs::File::from(c2p_r);
    let mut to_child = std::fs::File::from(p2c_w);
    let mut b = [0u8; 1];
    let mapped = match from_child.read(&mut b) {
        Ok(1) => write_maps(child.id(), plan),
        _ => Err(Error::UserNs(
            "the child ended before asking for its id map".into(),
        )),
    };
    let _ = to_child.write_all(if mapped.is_ok() { b"k" } else { b"e" });
    drop(to_child);
    let status = child
        .wait()
        .map_err(|e| Error::UserNs(format!("wait: {e}")))?;
    mapped?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

fn raw(fd: &OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

fn write_maps(pid: u32, plan: &IdMapPlan) -> Result<(), Error> {
    let proc = format!("/proc/{pid}");
    let write = |file: &str, text: &str| {
        std::fs::write(format!("{proc}/{file}"), text)
            .map_err(|e| Error::UserNs(format!("write {proc}/{file} ({}): {e}", text.trim())))
    };
    match plan.method {
        MapMethod::WriteDirect => {
            write("uid_map", &IdMapPlan::map_file(&plan.uids))?;
            write("gid_map", &IdMapPlan::map_file(&plan.gids))?;
        }
        MapMethod::SingleId => {
            write("setgroups", "deny")?;
            write("uid_map", &IdMapPlan::map_file(&plan.uids))?;
            write("gid_map", &IdMapPlan::map_file(&plan.gids))?;
        }
        MapMethod::NewIdMap => {
            for (tool, ranges) in [("newuidmap", &plan.uids), ("newgidmap", &plan.gids)] {
                let out = Command::new(tool)
                    .arg(pid.to_string())
                    .args(IdMapPlan::helper_args(ranges))
                    .output()
                    .map_err(|e| Error::UserNs(format!("run {tool}: {e}")))?;
                if !out.status.success() {
                    return Err(Error::UserNs(format!(
                        "{tool} failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
            }
        }
    }
    Ok(())
}
