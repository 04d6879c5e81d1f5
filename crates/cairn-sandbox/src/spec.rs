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
    /// Mount points of inputs that need a view of their own (overlays of layers).
    pub staging: PathBuf,
}

impl StepDirs {
    /// The dirs a finished step no longer needs (all but the upper dir).
    pub fn scratch(&self) -> [&PathBuf; 6] {
        [
            &self.work,
            &self.rootfs,
            &self.scaffold,
            &self.provided,
            &self.staging,
            &self.status,
        ]
    }

    /// The layout under `dir` (nothing is created).
    pub fn under(dir: &Path) -> StepDirs {
        StepDirs {
            upper: dir.join("upper"),
            work: dir.join("work"),
            rootfs: dir.join("rootfs"),
            scaffold: dir.join("scaffold"),
            provided: dir.join("provided"),
            status: dir.join("status.json"),
            staging: dir.join("staging"),
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

/// Where an input mounted into a step comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputSource {
    /// A host directory or file (the build context, a cache dir, a secret file).
    Host(PathBuf),
    /// The merged, read-only view of a stack of snapshot dirs, topmost first (another
    /// stage or image); an empty stack is an empty directory.
    Layers(Vec<PathBuf>),
    /// A fresh tmpfs.
    Tmpfs {
        /// `size=` in bytes, if limited.
        size: Option<u64>,
    },
}

/// Something mounted into a step: the context for COPY, another stage for
/// `COPY --from`, or a `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// Where it comes from.
    pub source: InputSource,
    /// A path inside the source to mount instead of its root, resolved inside the
    /// source (its symlinks cannot leave it).
    pub subpath: Option<String>,
    /// Absolute mount point inside the step (never created in the upper dir).
    pub target: String,
    /// Whether the target is a file (a stub file) rather than a directory.
    pub is_file: bool,
    /// Read-only.
    pub readonly: bool,
}

/// A file written by the copy action itself (a heredoc source).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InlineFile {
    /// File name.
    pub name: String,
    /// Content.
    pub content: String,
}

/// One source of a copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopySource {
    /// Absolute path inside the sandbox (under an [`Input`] target).
    pub path: String,
    /// Keep the ownership of what is copied (extracted archives) unless `--chown`.
    pub keep_owner: bool,
    /// `COPY --parents`: copy into this path below the destination (the source's own
    /// path for a directory, its parent's for a file).
    pub under: Option<String>,
}

/// A COPY, done inside the sandbox so that every path of the destination resolves
/// inside the image root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopySpec {
    /// Sources, in order.
    pub sources: Vec<CopySource>,
    /// Absolute sandbox paths not to copy (`.dockerignore`, `--exclude`).
    pub skip: Vec<String>,
    /// Files given inline (heredocs).
    pub inline: Vec<InlineFile>,
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
    /// Copy (COPY, ADD).
    Copy(CopySpec),
    /// Create a directory and its parents (WORKDIR).
    Mkdir {
        /// Absolute path inside the image.
        path: String,
    },
    /// Apply an image layer (a tar blob under an input) onto `/`: turns a cached
    /// layer into an overlay upper dir, whiteouts included, for the next step.
    ApplyLayer {
        /// Absolute sandbox path of the layer blob.
        blob: String,
    },
}

/// One step of a build, as the sandbox runs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepSpec {
    /// Read-only lower dirs, topmost first (may be empty for `FROM scratch`).
    pub lowers: Vec<PathBuf>,
    /// The walk snapshotter's root: when set, the step runs in this writable
    /// directory itself (bound on [`StepDirs::rootfs`]) instead of an overlay of
    /// `lowers` (then unused), and a one-directory [`InputSource::Layers`] is bound
    /// instead of overlaid. Mount points missing in it are created as stubs by the
    /// engine ([`crate::walk`]), never by the helper.
    #[serde(default)]
    pub root_dir: Option<PathBuf>,
    /// The step's directories.
    pub dirs: StepDirs,
    /// Host name inside the step.
    pub hostname: String,
    /// Network.
    pub network: Network,
    /// Mounted inputs, in order.
    pub inputs: Vec<Input>,
    /// What to do.
    pub action: Action,
}

/// Where inputs of built-in steps are mounted: `/.cairn-in/<n>`.
pub const INPUT_ROOT: &str = "/.cairn-in";
