//! The mount plan of one step (pure): every mount, file and link the helper makes,
//! in order, before it runs the step.

use std::path::{Path, PathBuf};

use crate::spec::{InputSource, StepSpec};

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
    /// A read-only overlay of lower dirs only (another stage's root).
    OverlayRo {
        /// Layers, topmost first (at least two: pad with an empty dir).
        lowers: Vec<PathBuf>,
        /// Mount point.
        target: PathBuf,
    },
    /// Bind `subpath` of `root`, resolved inside `root` (RESOLVE_IN_ROOT).
    BindBeneath {
        /// The root the subpath may not leave.
        root: PathBuf,
        /// Path inside it.
        subpath: String,
        /// Mount point.
        target: PathBuf,
        /// Remount read-only afterwards.
        readonly: bool,
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
/// merged root, without ever being created in the upper dir), relative to `/`.
pub fn scaffold_entries(spec: &StepSpec) -> (Vec<String>, Vec<String>) {
    let mut dirs: Vec<String> = ["proc", "dev", "sys", "etc", "tmp"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut files: Vec<String> = ["etc/hosts", "etc/resolv.conf", "etc/hostname"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for input in &spec.inputs {
        let rel = input.target.trim_start_matches('/').to_string();
        if input.is_file {
            files.push(rel);
        } else {
            dirs.push(rel);
        }
    }
    (dirs, files)
}

/// A mount-point stub the engine creates in a walk snapshotter's root before the
/// step (and removes after it, unless the step made it its own): see
/// [`stub_plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stub {
    /// Path relative to the root.
    pub path: String,
    /// A directory (else an empty file).
    pub dir: bool,
}

/// What a path of the root is, as [`stub_plan`] needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Nothing there.
    Missing,
    /// A directory (not a symlink to one).
    Dir,
    /// Anything else: a file, a symlink, a device.
    Other,
}

/// The stubs a walk snapshotter's root needs: every [`scaffold_entries`] path and
/// its parents that `existing` says are missing, parents first, each once. An
/// entry below a non-directory (a symlink above all) gets no stub: the stub would
/// be created through the link, and the mount that needs it is refused anyway
/// (as with an overlay root).
pub fn stub_plan(spec: &StepSpec, existing: &dyn Fn(&str) -> Existing) -> Vec<Stub> {
    let (dirs, files) = scaffold_entries(spec);
    let mut out: Vec<Stub> = Vec::new();
    let entries = dirs
        .into_iter()
        .map(|d| (d, true))
        .chain(files.into_iter().map(|f| (f, false)));
    'entry: for (entry, is_dir) in entries {
        let parts: Vec<&str> = entry.split('/').filter(|c| !c.is_empty()).collect();
        let mut planned = Vec::new();
        for i in 0..parts.len() {
            let path = parts[..=i].join("/");
            let last = i + 1 == parts.len();
            if let Some(s) = out.iter().find(|s| s.path == path) {
                if !s.dir && !last {
                    continue 'entry;
                }
                continue;
            }
            match existing(&path) {
                Existing::Dir => {}
                Existing::Other if last => {}
                Existing::Other => continue 'entry,
                Existing::Missing => planned.push(Stub {
                    path,
                    dir: !last || is_dir,
                }),
            }
        }
        out.extend(planned);
    }
    out
}

/// The empty directory that pads a one-layer read-only overlay.
pub fn empty_lower(spec: &StepSpec) -> PathBuf {
    spec.dirs.staging.join("empty")
}

/// Lists the operations that set up the step's root.
pub fn mount_plan(spec: &StepSpec) -> Vec<MountOp> {
    let root = &spec.dirs.rootfs;
    let at = |p: &str| -> PathBuf { root.join(p) };
    let root_op = match &spec.root_dir {
        // Walk snapshotter: the flattened copy itself is the root.
        Some(dir) => MountOp::Bind {
            source: dir.clone(),
            target: root.clone(),
            readonly: false,
        },
        None => {
            let mut lowers = spec.lowers.clone();
            lowers.push(spec.dirs.scaffold.clone());
            MountOp::Overlay {
                lowers,
                upper: spec.dirs.upper.clone(),
                work: spec.dirs.work.clone(),
                target: root.clone(),
            }
        }
    };
    let mut ops = vec![
        root_op,
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
    // Only a process needs the host's name resolution; a copy or a layer being
    // applied must be free to write /etc/hosts and friends like any other file.
    let provided: &[&str] = if matches!(spec.action, crate::spec::Action::Exec(_)) {
        &PROVIDED_FILES
    } else {
        &[]
    };
    for f in provided {
        ops.push(MountOp::Bind {
            source: spec.dirs.provided.join(f),
            target: at(&format!("etc/{f}")),
            readonly: false,
        });
    }
    for (n, input) in spec.inputs.iter().enumerate() {
        let target = at(input.target.trim_start_matches('/'));
        let readonly = input.readonly;
        match &input.source {
            InputSource::Tmpfs { size } => ops.push(MountOp::Tmpfs {
                target,
                data: match size {
                    Some(s) => format!("mode=1777,size={s}"),
                    None => "mode=1777".into(),
                },
            }),
            InputSource::Host(path) => ops.push(match &input.subpath {
                None => MountOp::Bind {
                    source: path.clone(),
                    target,
                    readonly,
                },
                Some(sub) => MountOp::BindBeneath {
                    root: path.clone(),
                    subpath: sub.clone(),
                    target,
                    readonly,
                },
            }),
            // Walk snapshotter: a flattened root needs no overlay (nor overlayfs).
            InputSource::Layers(layers) if layers.len() == 1 && spec.root_dir.is_some() => ops
                .push(MountOp::BindBeneath {
                    root: layers[0].clone(),
                    subpath: input.subpath.clone().unwrap_or_else(|| ".".into()),
                    target,
                    readonly: true,
                }),
            InputSource::Layers(layers) => {
                let view = spec.dirs.staging.join(n.to_string());
                let mut lowers = layers.clone();
                while lowers.len() < 2 {
                    lowers.push(empty_lower(spec));
                }
                ops.push(MountOp::OverlayRo {
                    lowers,
                    target: view.clone(),
                });
                ops.push(MountOp::BindBeneath {
                    root: view,
                    subpath: input.subpath.clone().unwrap_or_else(|| ".".into()),
                    target,
                    readonly: true,
                });
            }
        }
    }
    ops.push(MountOp::PivotRoot {
        new_root: root.clone(),
    });
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Action, Input, Network, StepDirs};

    fn spec(context: bool) -> StepSpec {
        StepSpec {
            lowers: vec!["/s/l2".into(), "/s/l1".into()],
            root_dir: None,
            dirs: StepDirs::under(Path::new("/s/step")),
            hostname: "h".into(),
            network: Network::Host,
            inputs: if context {
                vec![Input {
                    source: InputSource::Host("/ctx".into()),
                    subpath: None,
                    target: "/.cairn-in/0".into(),
                    is_file: false,
                    readonly: true,
                }]
            } else {
                vec![]
            },
            action: Action::Mkdir { path: "/a".into() },
        }
    }

    #[test]
    fn another_stage_is_a_read_only_overlay_bound_beneath_its_root() {
        let mut s = spec(false);
        s.inputs.push(Input {
            source: InputSource::Layers(vec!["/s/stage/l1".into()]),
            subpath: Some("/out".into()),
            target: "/mnt".into(),
            is_file: false,
            readonly: true,
        });
        let ops = mount_plan(&s);
        assert!(ops.contains(&MountOp::OverlayRo {
            lowers: vec!["/s/stage/l1".into(), "/s/step/staging/empty".into()],
            target: "/s/step/staging/0".into(),
        }));
        assert!(ops.contains(&MountOp::BindBeneath {
            root: "/s/step/staging/0".into(),
            subpath: "/out".into(),
            target: "/s/step/rootfs/mnt".into(),
            readonly: true,
        }));
        let (dirs, _) = scaffold_entries(&s);
        assert!(dirs.contains(&"mnt".to_string()));
    }

    #[test]
    fn walk_root_is_a_bind_of_the_flat_dir_and_one_layer_inputs_are_bound() {
        let mut s = spec(true);
        s.root_dir = Some("/s/flat".into());
        s.inputs.push(Input {
            source: InputSource::Layers(vec!["/s/other-flat".into()]),
            subpath: Some("/out".into()),
            target: "/mnt".into(),
            is_file: false,
            readonly: true,
        });
        let ops = mount_plan(&s);
        assert_eq!(
            ops[0],
            MountOp::Bind {
                source: "/s/flat".into(),
                target: "/s/step/rootfs".into(),
                readonly: false,
            }
        );
        assert!(
            !ops.iter()
                .any(|o| matches!(o, MountOp::Overlay { .. } | MountOp::OverlayRo { .. })),
            "no overlayfs in walk mode: {ops:?}"
        );
        assert!(ops.contains(&MountOp::BindBeneath {
            root: "/s/other-flat".into(),
            subpath: "/out".into(),
            target: "/s/step/rootfs/mnt".into(),
            readonly: true,
        }));
        assert!(matches!(ops.last(), Some(MountOp::PivotRoot { .. })));
        // Several layers still need a (read-only) overlay.
        s.inputs[1].source = InputSource::Layers(vec!["/a".into(), "/b".into()]);
        assert!(
            mount_plan(&s)
                .iter()
                .any(|o| matches!(o, MountOp::OverlayRo { .. }))
        );
    }

    #[test]
    fn stubs_only_for_missing_mount_points_parents_first() {
        let s = spec(true);
        // An image with /proc, /dev and /etc (no hosts file) and a /tmp symlink.
        let existing = |p: &str| match p {
            "proc" | "dev" | "etc" | "sys" => Existing::Dir,
            "etc/resolv.conf" | "tmp" => Existing::Other,
            _ => Existing::Missing,
        };
        let plan = stub_plan(&s, &existing);
        let stub = |path: &str, dir| Stub {
            path: path.into(),
            dir,
        };
        assert_eq!(
            plan,
            [
                stub(".cairn-in", true),
                stub(".cairn-in/0", true),
                stub("etc/hosts", false),
                stub("etc/hostname", false),
            ]
        );
        // Nothing below a non-directory (it may be a symlink out of the root).
        let etc_is_link = |p: &str| match p {
            "etc" => Existing::Other,
            _ => Existing::Dir,
        };
        assert!(stub_plan(&s, &etc_is_link).is_empty());
        // An empty root: every entry, each path once.
        let plan = stub_plan(&s, &|_| Existing::Missing);
        let paths: Vec<&str> = plan.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "proc",
                "dev",
                "sys",
                "etc",
                "tmp",
                ".cairn-in",
                ".cairn-in/0",
                "etc/hosts",
                "etc/resolv.conf",
                "etc/hostname"
            ]
        );
        assert!(plan[3].dir && !plan[7].dir);
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
    fn only_processes_get_the_provided_etc_files() {
        let binds_hosts = |ops: &[MountOp]| {
            ops.iter()
                .any(|o| matches!(o, MountOp::Bind { target, .. } if target.ends_with("etc/hosts")))
        };
        let mkdir = spec(false);
        assert!(!binds_hosts(&mount_plan(&mkdir)));
        let mut exec = spec(false);
        exec.action = Action::Exec(crate::spec::ExecSpec {
            argv: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            user: String::new(),
        });
        assert!(binds_hosts(&mount_plan(&exec)));
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
