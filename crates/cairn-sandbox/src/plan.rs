//! The mount plan of one step (pure): every mount, file and link the helper makes,
//! in order, before it runs the step.

use std::path::{Path, PathBuf};

use crate::spec::{CONTEXT_MOUNT, StepSpec};

/// One operation of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// overlayfs with `userxattr` over `lowers` (topmost first).
    Overlay {
        /// Read-only layers, topmost first.
        lowers: Vec<PathBuf>,
        /// Upper dir.
        upper: PathBuf,
        /// Work dir.
        work: PathBuf,
        /// Mount point.
        target: PathBuf,
    },
    /// A fresh procfs (the step is PID 1's child in a new PID namespace).
    Proc {
        /// Mount point.
        target: PathBuf,
    },
    /// A tmpfs.
    Tmpfs {
        /// Mount point.
        target: PathBuf,
        /// Mount data, e.g. `mode=755`.
        data: String,
    },
    /// A devpts instance of its own.
    Devpts {
        /// Mount point.
        target: PathBuf,
    },
    /// Creates an empty directory (inside a tmpfs, never in the upper dir).
    Mkdir {
        /// Path.
        path: PathBuf,
    },
    /// Creates an empty file to bind over (inside a tmpfs, never in the upper dir).
    Touch {
        /// Path.
        path: PathBuf,
    },
    /// A bind mount.
    Bind {
        /// Source on the host.
        source: PathBuf,
        /// Mount point.
        target: PathBuf,
        /// Remount read-only afterwards.
        readonly: bool,
    },
    /// A symbolic link.
    Symlink {
        /// Where the link is created.
        link: PathBuf,
        /// What it points to.
        to: String,
    },
    /// `pivot_root` into the directory and detach the old root.
    PivotRoot {
        /// The new root.
        new_root: PathBuf,
    },
}

/// Host devices bound into the step's `/dev`.
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Files the sandbox provides, bound over stubs in `/etc`.
pub const PROVIDED_FILES: [&str; 3] = ["hosts", "resolv.conf", "hostname"];

/// Directories and files of the scaffold lower (mount points that must exist in the
/// merged root, without ever being created in the upper dir).
pub fn scaffold_entries(with_context: bool) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut dirs = vec!["proc", "dev", "sys", "etc", "tmp"];
    if with_context {
        dirs.push(CONTEXT_MOUNT.trim_start_matches('/'));
    }
    let files = vec!["etc/hosts", "etc/resolv.conf", "etc/hostname"];
    (dirs, files)
}

/// Lists the operations that set up the step's root.
pub fn mount_plan(spec: &StepSpec) -> Vec<MountOp> {
    let root = &spec.dirs.rootfs;
    let at = |p: &str| -> PathBuf { root.join(p) };
    let mut lowers = spec.lowers.clone();
    lowers.push(spec.dirs.scaffold.clone());
    let mut ops = vec![
        MountOp::Overlay {
            lowers,
            upper: spec.dirs.upper.clone(),
            work: spec.dirs.work.clone(),
            target: root.clone(),
        },
        MountOp::Proc { target: at("proc") },
        MountOp::Tmpfs {
            target: at("dev"),
            data: "mode=755,size=65536k".into(),
        },
    ];
    for dev in DEVICES {
        ops.push(MountOp::Touch {
            path: at(&format!("dev/{dev}")),
        });
        ops.push(MountOp::Bind {
            source: Path::new("/dev").join(dev),
            target: at(&format!("dev/{dev}")),
            readonly: false,
        });
    }
    ops.push(MountOp::Mkdir {
        path: at("dev/pts"),
    });
    ops.push(MountOp::Devpts {
        target: at("dev/pts"),
    });
    ops.push(MountOp::Symlink {
        link: at("dev/ptmx"),
        to: "pts/ptmx".into(),
    });
    ops.push(MountOp::Mkdir {
        path: at("dev/shm"),
    });
    ops.push(MountOp::Tmpfs {
        target: at("dev/shm"),
        data: "mode=1777,size=65536k".into(),
    });
    for (name, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        ops.push(MountOp::Symlink {
            link: at(&format!("dev/{name}")),
            to: to.into(),
        });
    }
    for f in PROVIDED_FILES {
        ops.push(MountOp::Bind {
            source: spec.dirs.provided.join(f),
            target: at(&format!("etc/{f}")),
            readonly: false,
        });
    }
    if let Some(ctx) = &spec.context {
        ops.push(MountOp::Bind {
            source: ctx.clone(),
            target: at(CONTEXT_MOUNT.trim_start_matches('/')),
            readonly: true,
        });
    }
    ops.push(MountOp::PivotRoot {
        new_root: root.clone(),
    });
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Action, Network, StepDirs};

    fn spec(context: bool) -> StepSpec {
        StepSpec {
            lowers: vec!["/s/l2".into(), "/s/l1".into()],
            dirs: StepDirs::under(Path::new("/s/step")),
            hostname: "h".into(),
            network: Network::Host,
            context: context.then(|| PathBuf::from("/ctx")),
            action: Action::Mkdir { path: "/a".into() },
        }
    }

    #[test]
    fn overlay_first_pivot_last_scaffold_lowest() {
        let ops = mount_plan(&spec(false));
        match &ops[0] {
            MountOp::Overlay { lowers, target, .. } => {
                let l: Vec<_> = lowers.iter().map(|p| p.to_str().unwrap()).collect();
                assert_eq!(l, ["/s/l2", "/s/l1", "/s/step/scaffold"]);
                assert_eq!(target, Path::new("/s/step/rootfs"));
            }
            other => panic!("first op is {other:?}"),
        }
        assert!(matches!(ops.last(), Some(MountOp::PivotRoot { .. })));
        assert!(ops.contains(&MountOp::Proc {
            target: "/s/step/rootfs/proc".into()
        }));
    }

    #[test]
    fn every_mount_target_is_inside_the_root_and_host_dirs_are_not_bound() {
        for ctx in [false, true] {
            for op in mount_plan(&spec(ctx)) {
                if let MountOp::Bind { source, target, .. } = &op {
                    assert!(target.starts_with("/s/step/rootfs/"), "{op:?}");
                    let s = source.to_str().unwrap();
                    assert!(
                        s.starts_with("/dev/") || s.starts_with("/s/step/provided/") || s == "/ctx",
                        "unexpected host path bound: {op:?}"
                    );
                    assert!(!s.starts_with("/proc") && !s.starts_with("/sys"));
                }
            }
        }
    }

    #[test]
    fn context_is_bound_read_only_only_when_asked() {
        let has_ctx = |ops: &[MountOp]| {
            ops.iter().any(|o| {
                matches!(o, MountOp::Bind { source, readonly: true, .. } if source == Path::new("/ctx"))
            })
        };
        assert!(!has_ctx(&mount_plan(&spec(false))));
        assert!(has_ctx(&mount_plan(&spec(true))));
    }
}
