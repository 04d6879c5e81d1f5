use std::path::PathBuf;

/// Errors of a build. Each names what the user must look at: the Dockerfile line,
/// the image reference, the path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Dockerfile could not be parsed.
    #[error(transparent)]
    Dockerfile(Box<cairn_dockerfile::Error>),
    /// An instruction is invalid in context (bad expansion, unknown stage, …).
    #[error("{file}:{line}:{column}: {message}{snippet}")]
    Instruction {
        /// Dockerfile name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column of the instruction.
        column: usize,
        /// What is wrong.
        message: String,
        /// The line with a caret under the instruction (starts with a newline), or empty.
        snippet: String,
    },
    /// A RUN step exited unsuccessfully.
    #[error("{file}:{line}: `{instruction}` failed: {outcome}")]
    StepFailed {
        /// Dockerfile name.
        file: String,
        /// 1-based line.
        line: usize,
        /// The instruction as written (shortened).
        instruction: String,
        /// "exit code 3" or "killed by signal 9".
        outcome: String,
    },
    /// A step's sandbox failed.
    #[error("{file}:{line}: {source}")]
    Sandbox {
        /// Dockerfile name.
        file: String,
        /// 1-based line.
        line: usize,
        /// The cause.
        #[source]
        source: Box<cairn_sandbox::Error>,
    },
    /// A registry operation failed.
    #[error("{context}: {source}")]
    Registry {
        /// What cairn was doing.
        context: String,
        /// The cause.
        #[source]
        source: Box<cairn_registry::Error>,
    },
    /// Image or layer I/O failed.
    #[error("{context}: {source}")]
    Oci {
        /// What cairn was doing.
        context: String,
        /// The cause.
        #[source]
        source: Box<cairn_oci::Error>,
    },
    /// File I/O failed.
    #[error("{op} `{path}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A cache entry's blob is missing or fails verification (the stage is then
    /// rebuilt without that entry).
    #[error("cache entry {key} is unusable: {reason}")]
    CacheCorrupt {
        /// The entry's key (hex).
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The options are inconsistent.
    #[error("{0}")]
    Usage(String),
    /// An image cannot be used (no manifest for this platform, bad JSON, …).
    #[error("{0}")]
    Image(String),
    /// A Feature's install step failed.
    #[error("Feature `{feature}` failed to install: {source}")]
    FeatureInstall {
        /// The Feature's reference as written.
        feature: String,
        /// The step's failure.
        #[source]
        source: Box<Error>,
    },
    /// A devcontainer.json, Feature or lockfile is invalid (the message names the
    /// file or reference).
    #[error(transparent)]
    DevContainer(Box<cairn_devcontainer::Error>),
}

impl From<cairn_devcontainer::Error> for Error {
    fn from(e: cairn_devcontainer::Error) -> Self {
        Error::DevContainer(Box::new(e))
    }
}

impl From<cairn_dockerfile::Error> for Error {
    fn from(e: cairn_dockerfile::Error) -> Self {
        Error::Dockerfile(Box::new(e))
    }
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
    pub(crate) fn oci(context: impl Into<String>) -> impl FnOnce(cairn_oci::Error) -> Error {
        let context = context.into();
        move |source| Error::Oci {
            context,
            source: Box::new(source),
        }
    }
    pub(crate) fn registry(
        context: impl Into<String>,
    ) -> impl FnOnce(cairn_registry::Error) -> Error {
        let context = context.into();
        move |source| Error::Registry {
            context,
            source: Box::new(source),
        }
    }
}
