//! Carrying out a [`MountOp`] list (inside the helper's private mount namespace).

use std::path::{Component, Path};

use rustix::mount::{
    MountFlags, MountPropagationFlags, UnmountFlags, mount, mount_bind, mount_change,
    mount_remount, unmount,
};

use crate::Error;
use crate::plan::MountOp;

/// Refuses a mount target when any component below `root` is a symlink: a symlink
/// in the image would otherwise redirect the mount onto a host path.
fn check_no_symlink(root: &Path, target: &Path) -> Result<(), Error> {
    let Ok(rel) = target.strip_prefix(root) else {
        return Ok(());
    };
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        if let Component::Normal(n) = c {
            cur.push(n);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Error::Setup(format!(
                        "`/{}` is a symbolic link in the image; cairn will not mount over it",
                        cur.strip_prefix(root).unwrap_or(&cur).display()
                    )));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn cdata(s: &str) -> Result<std::ffi::CString, Error> {
    std::ffi::CString::new(s).map_err(|_| Error::Setup(format!("NUL byte in mount data {s:?}")))
}

fn overlay_path(p: &Path) -> Result<String, Error> {
    let s = p
        .to_str()
        .ok_or_else(|| Error::Setup(format!("non UTF-8 path {}", p.display())))?;
    if s.contains([',', ':', '\\']) {
        return Err(Error::Setup(format!(
            "path `{s}` contains `,`, `:` or `\\`, which overlayfs options cannot carry"
        )));
    }
    Ok(s.to_string())
}

/// Makes a bind mount read-only (and nosuid, nodev).
fn remount_read_only(target: &Path) -> Result<(), Error> {
    mount_remount(
        target,
        MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
        "",
    )
    .map_err(|e| Error::Setup(format!("remount read-only {}: {e}", target.display())))
}

/// Applies the operations in order. `root` is the merged root (for symlink checks).
pub fn apply(ops: &[MountOp], root: &Path) -> Result<(), Error> {
    for op in ops {
        apply_one(op, root)?;
    }
    Ok(())
}

fn apply_one(op: &MountOp, root: &Path) -> Result<(), Error> {
    let what = || format!("{op:?}");
    match op {
        MountOp::Overlay {
            lowers,
            upper,
            work,
            target,
        } => {
            let lowers = lowers
                .iter()
                .map(|p| overlay_path(p))
                .collect::<Result<Vec<_>, _>>()?;
            let data = format!(
                "lowerdir={},upperdir={},workdir={},userxattr",
                lowers.join(":"),
                overlay_path(upper)?,
                overlay_path(work)?
            );
            mount(
                "overlay",
                target,
                "overlay",
                MountFlags::empty(),
                Some(cdata(&data)?.as_c_str()),
            )
            .map_err(|e| Error::Setup(format!("mount overlay on {}: {e}", target.display())))
        }
        MountOp::OverlayRo { lowers, target } => {
            std::fs::create_dir_all(target).map_err(|e| Error::io("create dir", target, e))?;
            let lowers = lowers
                .iter()
                .map(|p| overlay_path(p))
                .collect::<Result<Vec<_>, _>>()?;
            let data = format!("lowerdir={},userxattr", lowers.join(":"));
            mount(
                "overlay",
                target,
                "overlay",
                MountFlags::RDONLY,
                Some(cdata(&data)?.as_c_str()),
            )
            .map_err(|e| {
                Error::Setup(format!(
                    "mount read-only overlay on {}: {e}",
                    target.display()
                ))
            })
        }
        MountOp::BindBeneath {
            root: beneath,
            subpath,
            target,
            readonly,
        } => {
            use rustix::fs::{Mode, OFlags, ResolveFlags, openat2};
            check_no_symlink(root, target)?;
            let dir = rustix::fs::open(
                beneath,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::Setup(format!("open {}: {e}", beneath.display())))?;
            let sub = subpath.trim_start_matches('/');
            let sub = if sub.is_empty() { "." } else { sub };
            let fd = openat2(
                &dir,
                sub,
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            )
            .map_err(|e| Error::Setup(format!("`{subpath}` in the mount source: {e}")))?;
            use std::os::fd::AsRawFd;
            let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
            mount_bind(source.as_str(), target).map_err(|e| {
                Error::Setup(format!("bind `{subpath}` on {}: {e}", target.display()))
            })?;
            if *readonly {
                remount_read_only(target)?;
            }
            Ok(())
        }
        MountOp::Proc { target } => {
            check_no_symlink(root, target)?;
            mount(
                "proc",
                target,
                "proc",
                MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                None,
            )
            .map_err(|e| Error::Setup(format!("mount proc on {}: {e}", target.display())))
        }
        MountOp::Tmpfs { target, data } => {
            check_no_symlink(root, target)?;
            mount(
                "tmpfs",
                target,
                "tmpfs",
                MountFlags::NOSUID | MountFlags::NODEV,
                Some(cdata(data)?.as_c_str()),
            )
            .map_err(|e| Error::Setup(format!("mount tmpfs on {}: {e}", target.display())))
        }
        MountOp::Devpts { target } => mount(
            "devpts",
            target,
            "devpts",
            MountFlags::NOSUID | MountFlags::NOEXEC,
            Some(c"newinstance,ptmxmode=0666,mode=0620"),
        )
        .map_err(|e| Error::Setup(format!("mount devpts on {}: {e}", target.display()))),
        MountOp::Mkdir { path } => {
            std::fs::create_dir_all(path).map_err(|e| Error::io("create dir", path, e))
        }
        MountOp::Touch { path } => std::fs::File::create(path)
            .map(drop)
            .map_err(|e| Error::io("create file", path, e)),
        MountOp::Symlink { link, to } => {
            std::os::unix::fs::symlink(to, link).map_err(|e| Error::io("symlink", link, e))
        }
        MountOp::Bind {
            source,
            target,
            readonly,
        } => {
            check_no_symlink(root, target)?;
            mount_bind(source, target).map_err(|e| {
                Error::Setup(format!(
                    "bind {} on {}: {e}",
                    source.display(),
                    target.display()
                ))
            })?;
            if *readonly {
                remount_read_only(target)?;
            }
            Ok(())
        }
        MountOp::PivotRoot { new_root } => {
            rustix::process::chdir(new_root).map_err(|e| Error::sys(what(), e))?;
            rustix::process::pivot_root(".", ".").map_err(|e| Error::sys(what(), e))?;
            // The old root is now stacked on top of the new one: make it private so its
            // unmount does not propagate, then detach it.
            mount_change(
                ".",
                MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
            )
            .map_err(|e| Error::sys("make old root private", e))?;
            unmount(".", UnmountFlags::DETACH).map_err(|e| Error::sys("detach old root", e))?;
            rustix::process::chdir("/").map_err(|e| Error::sys("chdir /", e))
        }
    }
}
