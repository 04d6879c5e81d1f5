use std::path::PathBuf;

/// Errors of the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a path.
    #[error("{op} `{path}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{0}: {1}")]
    Sys(String, #[source] std::io::Error),
    /// Setting up the user namespace failed.
    #[error("cannot enter a user namespace: {0}")]
    UserNs(String),
    /// The step's sandbox could not be set up (reported by the helper).
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    /// A built-in action (COPY, WORKDIR) failed.
    #[error("{0}")]
    Action(String),
    /// The helper process ended without reporting a result.
    #[error("sandbox helper ended without a result ({0})")]
    HelperDied(String),
    /// An invalid step specification.
    #[error("invalid step: {0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
    pub(crate) fn sys(what: impl Into<String>, e: impl Into<std::io::Error>) -> Self {
        Error::Sys(what.into(), e.into())
    }
}
