//! `cairn-sys` — every `unsafe` block of cairn lives here, and nowhere else.
//!
//! The sandbox needs two system calls that cannot be made safe in general:
//!
//! * [`unshare`] — moving the calling process into new namespaces changes
//!   what the *whole process* sees (mounts, pids, ids). It is only sound while
//!   the process is single-threaded, which is why cairn calls it from a freshly
//!   re-executed helper process (see `cairn-sandbox`), never from the tokio
//!   runtime.
//! * [`fork`] — after a fork only async-signal-safe work is sound in the child
//!   of a multi-threaded parent. cairn forks only in the single-threaded helper,
//!   so that the child can become PID 1 of a new PID namespace.
//!
//! Each wrapper checks that the process is single-threaded (via
//! `/proc/self/task`) before making the call and refuses otherwise, turning the
//! safety contract into a runtime error instead of undefined behaviour.
#![allow(unsafe_code)]

use std::io;

pub use rustix::thread::UnshareFlags;

/// What [`fork`] returned in the current process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    /// We are the parent; the child has this pid.
    Parent(i32),
    /// We are the child.
    Child,
}

/// Number of threads of the calling process, from `/proc/self/task`.
pub fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

fn ensure_single_threaded(what: &str) -> io::Result<()> {
    let n = thread_count()?;
    if n == 1 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{what} refused: the process has {n} threads, it must be single-threaded"
        )))
    }
}

/// `unshare(2)` for a single-threaded process.
///
/// Fails with an error (and does nothing) when the process has more than one thread.
pub fn unshare(flags: UnshareFlags) -> io::Result<()> {
    ensure_single_threaded("unshare")?;
    // SAFETY: the process is single-threaded (checked above), so changing the
    // namespaces of this thread changes those of the whole process and no other
    // thread can observe a half-changed state.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(io::Error::from)
}

/// `fork(2)` for a single-threaded process.
///
/// Fails with an error (and does nothing) when the process has more than one thread.
pub fn fork() -> io::Result<Fork> {
    ensure_single_threaded("fork")?;
    // SAFETY: the process is single-threaded (checked above): no lock can be held
    // by another thread at the time of the fork, so the child may run ordinary code.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// Adopts a file descriptor inherited from the parent process, by number.
///
/// Fails if `fd` is a standard stream or not open. Must be called once per number,
/// in a single-threaded process, before anything else could have taken ownership.
pub fn take_inherited_fd(fd: i32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    ensure_single_threaded("adopting an inherited fd")?;
    if fd < 3 {
        return Err(io::Error::other(format!("fd {fd} is a standard stream")));
    }
    // SAFETY: a borrowed probe of the number; it is only used for fcntl(F_GETFD).
    let probe = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(probe).map_err(io::Error::from)?;
    // SAFETY: the fd is open (checked above), was inherited through exec, and the
    // process is single-threaded, so nothing else in this process owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Removes an environment variable of this process.
///
/// Refused unless the process is single-threaded (the reason `remove_var` is unsafe).
pub fn remove_env(key: &str) -> io::Result<()> {
    ensure_single_threaded("removing an environment variable")?;
    // SAFETY: single-threaded (checked above): no other thread reads the environment.
    unsafe { std::env::remove_var(key) };
    Ok(())
}

/// Sets the IFF_UP flag of the loopback interface of the current network
/// namespace (a new network namespace starts with `lo` down).
pub fn loopback_up() -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket(2); the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, valid fd that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: a valid socket fd and a properly initialised `ifreq` for these requests.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ignores a signal in this process (`SIG_IGN`). Note that an ignored disposition is
/// inherited by children across exec, so call it after spawning them.
pub fn ignore_signal(signal: i32) -> io::Result<()> {
    // SAFETY: installing SIG_IGN runs no code in signal context.
    if unsafe { libc::signal(signal, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SIGINT`, re-exported for callers of [`ignore_signal`].
pub const SIGINT: i32 = libc::SIGINT;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_when_multi_threaded() {
        // The test harness itself runs tests on worker threads, so there are ≥ 2.
        let _keep = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(2)));
        let err = fork().unwrap_err();
        assert!(err.to_string().contains("single-threaded"), "{err}");
        let err = unshare(UnshareFlags::NEWNS).unwrap_err();
        assert!(err.to_string().contains("single-threaded"), "{err}");
    }
}
