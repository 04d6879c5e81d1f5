//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong reading a dev container configuration, its
/// Features, or ordering them. Each variant names the file, field or Feature
/// involved and the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No configuration was found in the standard locations.
    #[error("no devcontainer.json found in {}; looked for {}", workspace.display(), tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound {
        /// The workspace folder searched.
        workspace: PathBuf,
        /// Every path tried.
        tried: Vec<PathBuf>,
    },
    /// Several `.devcontainer/NAME/devcontainer.json` exist and none of the
    /// unnamed locations does; the caller must pick one.
    #[error("several dev container configurations found, pick one with --config: {}", found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Ambiguous {
        /// The candidates.
        found: Vec<PathBuf>,
    },
    /// The file is not valid JSONC.
    #[error("{file}: {message}")]
    Syntax {
        /// The file (or a description of the text's origin).
        file: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field has the wrong shape.
    #[error("{file}: field `{field}`: {message}")]
    Field {
        /// The file.
        file: String,
        /// The field, as a dotted path (`build.args.FOO`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The configuration uses something cairn does not build.
    #[error("{file}: field `{field}`: {message}")]
    Unsupported {
        /// The file.
        file: String,
        /// The field.
        field: String,
        /// Why, and what to do instead.
        message: String,
    },
    /// A Feature reference (a key of `features` or `dependsOn`) is malformed.
    #[error("Feature reference `{reference}`: {message}")]
    FeatureRef {
        /// The reference as written.
        reference: String,
        /// What is wrong with it.
        message: String,
    },
    /// `overrideFeatureInstallOrder` names a Feature that is not installed.
    #[error(
        "overrideFeatureInstallOrder: `{id}` is not one of the Features to install (known: {})",
        known.join(", ")
    )]
    OverrideNotFound {
        /// The entry as written.
        id: String,
        /// The Features that are installed, without versions.
        known: Vec<String>,
    },
    /// The Features' `dependsOn`/`installsAfter` form a cycle.
    #[error("Feature dependency cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// The Features on the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// Resolving `dependsOn` kept discovering new Features.
    #[error("more than {limit} Features after resolving dependsOn; last added `{last}`")]
    TooManyFeatures {
        /// The limit.
        limit: usize,
        /// The reference that crossed it.
        last: String,
    },
    /// A base image's `devcontainer.metadata` label is not what the spec
    /// says (a JSON array of objects, or one object).
    #[error("base image label devcontainer.metadata: {message}")]
    BaseMetadata {
        /// What is wrong with it.
        message: String,
    },
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
