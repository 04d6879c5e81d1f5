//! `cairn-engine` — one build, end to end: the only crate that wires the others.
//!
//! ```text
//!  Dockerfile ──cairn-dockerfile──▶ stages ──▶ for the target stage (and the stages it
//!  stands on): FROM → cairn-registry pull (index → host platform) → cairn-oci apply
//!  into a snapshot keyed by chain id → for each instruction: config changes (ENV,
//!  CMD, …) or a sandboxed step (RUN, COPY, WORKDIR; cairn-sandbox) whose overlay
//!  upper dir becomes a reproducible layer (cairn-oci) and the next step's lower
//!  ──▶ config + manifest (canonical JSON) ──▶ push (cairn-registry) / OCI layout.
//! ```
//!
//! All local state lives in one state directory ([`StateDir`]): `content-v1/` (blobs
//! by digest), `snapshots-v1/` (unpacked base images by chain id) and `tmp-v1/` (one
//! scratch dir per running build, removed when the build ends, failed or not).
//!
//! The engine must run inside the build user namespace
//! (`cairn_sandbox::userns::enter_build_namespace`), which the CLI enters first.

pub mod cache;
mod copy;
pub mod devcontainer;
mod dockerignore;
mod error;
mod export;
pub mod feature_fetch;
mod fetch;
mod instr;
mod keys;
mod mounts;
mod options;
mod plan;
mod platform;
mod progress;
mod pull;
mod stage;
mod state;
mod time;
mod unpack;
mod walk;

pub use cache::{ENTRY_ANNOTATION, EntryMeta};
pub use error::Error;
pub use export::BuildResult;
pub use keys::{KEY_SCHEME, StepKey};
pub use options::{BuildOptions, LayerCompression, Output, SecretSource, Snapshotter};
pub use platform::Platform;
pub use progress::{PlainProgress, Progress};
pub use state::StateDir;
pub use unpack::{ENV_FILE_NAME, UnpackOptions, UnpackResult, UnpackSource, unpack};

/// Runs `futures` at most `n` at a time (transfers to and from registries: more
/// buys nothing on loopback or on a 2-core builder); the first error wins.
pub(crate) async fn at_most<T>(
    n: usize,
    futures: impl IntoIterator<Item = impl std::future::Future<Output = Result<T, Error>>>,
) -> Result<Vec<T>, Error> {
    use futures_util::{StreamExt, TryStreamExt};
    futures_util::stream::iter(futures)
        .buffer_unordered(n)
        .try_collect()
        .await
}

/// Blob transfers at once.
pub(crate) const TRANSFERS: usize = 4;

/// Runs a build.
pub async fn build(opts: &BuildOptions) -> Result<BuildResult, Error> {
    stage::Build::run(opts).await
}
