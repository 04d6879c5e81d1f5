use std::collections::BTreeMap;
use std::path::PathBuf;

use cairn_registry::Reference;
use cairn_sandbox::Network;

use crate::StateDir;

/// Where the finished image goes besides the local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// An OCI image layout directory.
    OciLayout {
        /// Directory to write (created).
        dest: PathBuf,
    },
}

/// Everything a build needs to know.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The Dockerfile.
    pub dockerfile: PathBuf,
    /// The build context directory.
    pub context: PathBuf,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target` stage (default: the last).
    pub target: Option<String>,
    /// `-t` references.
    pub tags: Vec<Reference>,
    /// Push the tags to their registries.
    pub push: bool,
    /// Extra outputs.
    pub outputs: Vec<Output>,
    /// Local state.
    pub state: StateDir,
    /// Upper bound of every timestamp written (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: u64,
    /// Registries reached over plain HTTP (loopback ones always are).
    pub insecure_registries: Vec<String>,
    /// Default network of RUN steps.
    pub network: Network,
    /// A RUN step running longer is killed and fails the build.
    pub step_timeout: Option<std::time::Duration>,
}
