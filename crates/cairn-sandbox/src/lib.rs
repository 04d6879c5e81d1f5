//! `cairn-sandbox` — runs one build step in a rootless sandbox; no daemon, no root needed.
//!
//! # What it owns
//! * **The build user namespace** ([`userns`]): before any thread starts, `cairn`
//!   re-executes itself into a new user + mount namespace in which it is uid 0.
//!   As host root the namespace maps the full id range; as an ordinary user it maps
//!   the user's `/etc/subuid`/`/etc/subgid` ranges through `newuidmap`/`newgidmap`,
//!   else only the user's own id (with a warning naming what will fail). Everything
//!   the engine does afterwards — unpacking layers with their owners, reading overlay
//!   upper dirs, running steps — happens in there. Every mount cairn makes lives in
//!   a private mount namespace, so the kernel removes it when the process ends, even
//!   after `kill -9`: no mount is ever left behind on the host.
//! * **Step sandboxes** ([`run_step`]): each RUN/COPY/WORKDIR step runs in a helper
//!   process (`/proc/self/exe` re-executed with [`HELPER_ENV`] set; `main` must call
//!   [`init_if_helper`] first) that unshares mount, PID, UTS and IPC namespaces, forks
//!   PID 1 of the new PID namespace, mounts overlayfs (`userxattr`) over the read-only
//!   lower snapshots with a fresh upper dir as `/`, a fresh `/proc`, a minimal `/dev`,
//!   and the host's `resolv.conf`/`hosts` bound over stubs that never reach the upper
//!   dir, then `pivot_root`s and runs the step. When PID 1 exits the kernel kills every
//!   process of the step.
//!
//! # Plan, then apply
//! Privileged work is split into a pure *plan* and its application: [`idmap::plan_id_maps`]
//! decides the id mappings and [`plan::mount_plan`] lists every mount of a step; both are
//! unit-tested without privileges. [`apply`] and [`userns`] carry the plans out.
//! The only `unsafe` (fork, unshare) is in `cairn-sys`.
//!
//! # Without overlayfs
//! Where no overlay can be mounted in the build namespace (cairn in a container),
//! the engine's walk snapshotter gives a step a flattened copy of its root as
//! [`StepSpec::root_dir`]: the plan then binds that directory as `/` instead of
//! mounting an overlay; [`walk`] has the probe, the copy and the mount-point stubs.

pub mod apply;
pub mod builtin;
mod error;
pub mod helper;
pub mod idmap;
pub mod plan;
mod run;
pub mod spec;
pub mod userns;
pub mod users;
pub mod walk;

pub use error::Error;
pub use helper::{HELPER_ENV, init_if_helper};
pub use run::{StepOutcome, Stream, prepare, run_step};
pub use spec::{
    Action, CopySource, CopySpec, ExecSpec, INPUT_ROOT, InlineFile, Input, InputSource, Network,
    StepDirs, StepSpec,
};
