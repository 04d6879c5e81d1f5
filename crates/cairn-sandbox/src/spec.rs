//! What the engine asks the sandbox to do: one step, described as data.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The network a step sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Network {
    /// The host's network (the default, as with `docker build`).
    #[default]
    Host,
    /// A new, empty network namespace.
    None,
}

/// The directories of one step, all inside the step's scratch dir.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepDirs {
    /// The overlay upper dir: after the step, the changes.
    pub upper: PathBuf,
    /// The overlay work dir.
    pub work: PathBuf,
    /// The mount point of the merged root.
    pub rootfs: PathBuf,
    /// Stubs for mount points (`/proc`, `/dev`, `/etc/hosts`, …), the lowest lower,
    /// so that mount targets never have to be created in the upper dir.
    pub scaffold: PathBuf,
    /// Files the sandbox provides (`hosts`, `resolv.conf`, `hostname`).
    pub provided: PathBuf,
    /// Where the helper writes the outcome (JSON).
    pub status: PathBuf,
}

impl StepDirs {
    /// The layout under `dir` (nothing is created).
    pub fn under(dir: &Path) -> StepDirs {
        StepDirs {
            upper: dir.join("upper"),
            work: dir.join("work"),
            rootfs: dir.join("rootfs"),
            scaffold: dir.join("scaffold"),
            provided: dir.join("provided"),
            status: dir.join("status.json"),
        }
    }
}

/// A process to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSpec {
    /// argv; `argv[0]` is looked up in `PATH` of `env` when it has no `/`.
    pub argv: Vec<String>,
    /// `KEY=value` entries, the whole environment of the step.
    pub env: Vec<String>,
    /// Working directory (absolute, inside the image); created if missing.
    pub cwd: String,
    /// The Dockerfile `USER` value (`name`, `uid`, `name:group`, … ; empty = root).
    pub user: String,
}

/// A COPY from the build context, done inside the sandbox so that every path of the
/// destination resolves inside the image root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopySpec {
    /// Sources relative to the context root (already checked not to leave it).
    pub sources: Vec<String>,
    /// Destination (absolute, inside the image). A trailing `/` means a directory.
    pub dest: String,
    /// `--chown` value; files are owned by 0:0 without it.
    pub chown: Option<String>,
    /// `--chmod` value (octal).
    pub chmod: Option<u32>,
}

/// What the step does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Action {
    /// Run a process (RUN).
    Exec(ExecSpec),
    /// Copy from the build context (COPY).
    Copy(CopySpec),
    /// Create a directory and its parents (WORKDIR).
    Mkdir {
        /// Absolute path inside the image.
        path: String,
    },
}

/// One step of a build, as the sandbox runs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepSpec {
    /// Read-only lower dirs, topmost first (may be empty for `FROM scratch`).
    pub lowers: Vec<PathBuf>,
    /// The step's directories.
    pub dirs: StepDirs,
    /// Host name inside the step.
    pub hostname: String,
    /// Network.
    pub network: Network,
    /// The build context, bound read-only at [`CONTEXT_MOUNT`] for COPY.
    pub context: Option<PathBuf>,
    /// What to do.
    pub action: Action,
}

/// Where the build context appears inside a COPY step's sandbox.
pub const CONTEXT_MOUNT: &str = "/.cairn-context";
