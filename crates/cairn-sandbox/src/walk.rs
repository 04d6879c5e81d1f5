//! The walk snapshotter's side of the sandbox: for systems where overlayfs cannot
//! be mounted in the build namespace (cairn inside a container, where the state dir
//! is itself on overlayfs), a step runs in a writable flattened copy of its parent
//! root instead of an overlay ([`crate::StepSpec::root_dir`]), and the engine takes
//! the layer by comparing the copy with its parent
//! (`cairn_oci::snapshot::write_diff_layer_with`).
//!
//! This module has the file-system work around such a step, carried out by the
//! engine (in the build namespace, before and after [`crate::run_step`]):
//! * [`overlay_works`]: the probe that decides between the two snapshotters;
//! * [`copy_tree`]: the copy (`cp -a`: owners, modes, xattrs, hardlinks, reflinks
//!   where the file system has them);
//! * [`Stubs`]: the mount points the step needs (`/proc`, `/etc/hosts`, inputs, …;
//!   the plan is [`crate::plan::stub_plan`], pure) created in the copy and removed
//!   after the step unless the step made them its own, with their directories'
//!   mtimes put back, so that they never show up in the layer.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::mount::{MountFlags, UnmountFlags, mount, unmount};

use crate::Error;
use crate::plan::{Existing, Stub, stub_plan};
use crate::spec::StepSpec;

/// Whether an overlay with `userxattr` (the options of every step's root) can be
/// mounted here: mounts one over directories made in `dir` (which should be on the
/// file system of the build's scratch), unmounts it and removes what it made. Must
/// run in the build namespace (see [`crate::userns`]), which owns its mount
/// namespace; the error says why not.
pub fn overlay_works(dir: &Path) -> Result<(), Error> {
    let sub = |n: &str| dir.join(n);
    for n in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(sub(n)).map_err(|e| Error::io("create dir", sub(n), e))?;
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        sub("lower").display(),
        sub("upper").display(),
        sub("work").display()
    );
    let data = std::ffi::CString::new(data).map_err(|e| Error::Setup(e.to_string()))?;
    let merged = sub("merged");
    let mounted = mount(
        "overlay",
        &merged,
        "overlay",
        MountFlags::empty(),
        Some(data.as_c_str()),
    );
    let result = match mounted {
        Ok(()) => {
            // Writing through it is what fails on some stacks (e.g. overlay on overlay).
            let probe = merged.join("probe");
            let written = std::fs::write(&probe, b"x")
                .map_err(|e| Error::io("write through the probe overlay", &probe, e));
            unmount(&merged, UnmountFlags::DETACH)
                .map_err(|e| Error::sys("unmount the probe overlay", e))
                .and(written)
        }
        Err(e) => Err(Error::Setup(format!(
            "mount overlay (userxattr) on {}: {e}",
            merged.display()
        ))),
    };
    std::fs::remove_dir_all(dir).map_err(|e| Error::io("remove", dir, e))?;
    result
}

/// Copies the tree `from` to `to` (which must not exist) with `cp -a`: owners,
/// modes, timestamps, xattrs and hardlinks kept, reflinks where possible.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg("--")
        .arg(from)
        .arg(to)
        .output()
        .map_err(|e| Error::sys("run `cp -a`", e))?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "`cp -a {} {}` failed ({}): {}",
            from.display(),
            to.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn existing(root: &Path, rel: &str) -> Existing {
    match std::fs::symlink_metadata(root.join(rel)) {
        Err(_) => Existing::Missing,
        Ok(m) if m.file_type().is_dir() => Existing::Dir,
        Ok(_) => Existing::Other,
    }
}

/// A created stub: its path, whether it is a directory, its inode.
#[derive(Debug)]
struct Made {
    path: PathBuf,
    dir: bool,
    ino: u64,
}

/// A directory a stub was created in: its mtime before and right after.
#[derive(Debug)]
struct Touched {
    path: PathBuf,
    before: SystemTime,
    after: SystemTime,
}

/// The stubs made in a walk root for one step; [`Stubs::remove`] undoes them.
#[derive(Debug)]
pub struct Stubs {
    made: Vec<Made>,
    touched: Vec<Touched>,
}

fn mtime(p: &Path) -> Result<SystemTime, Error> {
    std::fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .map_err(|e| Error::io("lstat", p, e))
}

impl Stubs {
    /// Creates the stubs `spec` needs in `root` (its [`StepSpec::root_dir`]).
    pub fn create(spec: &StepSpec, root: &Path) -> Result<Stubs, Error> {
        let plan: Vec<Stub> = stub_plan(spec, &|rel| existing(root, rel));
        let mut touched: Vec<Touched> = Vec::new();
        let mut made = Vec::new();
        for stub in &plan {
            let path = root.join(&stub.path);
            let parent = path.parent().unwrap_or(root).to_path_buf();
            // Only directories that were there before: a stub's own parent stub goes.
            if !made.iter().any(|m: &Made| m.path == parent)
                && !touched.iter().any(|t| t.path == parent)
            {
                let before = mtime(&parent)?;
                touched.push(Touched {
                    path: parent,
                    before,
                    after: before,
                });
            }
            if stub.dir {
                std::fs::create_dir(&path).map_err(|e| Error::io("create stub", &path, e))?;
            } else {
                std::fs::File::create_new(&path).map_err(|e| Error::io("create stub", &path, e))?;
            }
            let ino = std::fs::symlink_metadata(&path)
                .map_err(|e| Error::io("lstat", &path, e))?
                .ino();
            made.push(Made {
                path,
                dir: stub.dir,
                ino,
            });
        }
        for t in &mut touched {
            t.after = mtime(&t.path)?;
        }
        Ok(Stubs { made, touched })
    }

    /// Removes every stub the step left as it was made (an empty directory, an
    /// empty file, same inode), children first, then gives the directories they
    /// were made in their mtimes back unless the step changed them too.
    pub fn remove(self) -> Result<(), Error> {
        // Decided before removing: a removal changes the mtime itself.
        let mut untouched = Vec::new();
        for t in &self.touched {
            if mtime(&t.path)? == t.after {
                untouched.push(t);
            }
        }
        for m in self.made.iter().rev() {
            let Ok(meta) = std::fs::symlink_metadata(&m.path) else {
                continue;
            };
            if meta.ino() != m.ino || meta.is_dir() != m.dir {
                continue;
            }
            if m.dir {
                // Not empty: the step wrote into it, it is the step's now.
                let _ = std::fs::remove_dir(&m.path);
            } else if meta.len() == 0 {
                std::fs::remove_file(&m.path).map_err(|e| Error::io("remove stub", &m.path, e))?;
            }
        }
        for t in untouched.into_iter().rev() {
            let dir = std::fs::File::open(&t.path).map_err(|e| Error::io("open", &t.path, e))?;
            dir.set_times(std::fs::FileTimes::new().set_modified(t.before))
                .map_err(|e| Error::io("set the mtime of", &t.path, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Action, Input, InputSource, Network, StepDirs};

    fn spec(root: &Path) -> StepSpec {
        StepSpec {
            lowers: vec![],
            root_dir: Some(root.to_path_buf()),
            dirs: StepDirs::under(Path::new("/nonexistent/step")),
            hostname: "h".into(),
            network: Network::None,
            inputs: vec![Input {
                source: InputSource::Host("/ctx".into()),
                subpath: None,
                target: "/.cairn-in/0".into(),
                is_file: false,
                readonly: true,
            }],
            action: Action::Mkdir { path: "/a".into() },
        }
    }

    #[test]
    fn stubs_go_again_with_their_directories_mtimes_unless_the_step_used_them() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        for d in ["proc", "dev", "sys", "etc"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let etc = std::fs::File::open(root.join("etc")).unwrap();
        etc.set_times(std::fs::FileTimes::new().set_modified(old))
            .unwrap();
        let stubs = Stubs::create(&spec(&root), &root).unwrap();
        assert!(root.join("etc/hosts").is_file());
        assert!(root.join(".cairn-in/0").is_dir());
        assert!(root.join("tmp").is_dir());
        assert_ne!(mtime(&root.join("etc")).unwrap(), old);
        // The step writes into the /tmp stub: that one is its own now.
        std::fs::write(root.join("tmp/kept"), b"x").unwrap();
        stubs.remove().unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["dev", "etc", "proc", "sys", "tmp"]);
        assert_eq!(std::fs::read_dir(root.join("etc")).unwrap().count(), 0);
        assert_eq!(mtime(&root.join("etc")).unwrap(), old);
    }

    #[test]
    fn a_stub_the_step_changed_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let stubs = Stubs::create(&spec(&root), &root).unwrap();
        // A COPY that wrote /etc/hosts (no provided file is bound over it then).
        std::fs::write(root.join("etc/hosts"), b"127.0.0.1 x\n").unwrap();
        stubs.remove().unwrap();
        assert_eq!(
            std::fs::read(root.join("etc/hosts")).unwrap(),
            b"127.0.0.1 x\n"
        );
        assert!(!root.join("etc/hostname").exists());
    }
}
