use std::io;
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;

/// The single error type of `cairn-oci`; every variant names the path or digest involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on `path` failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (e.g. "open", "write layer").
        op: &'static str,
        /// The path involved (inside a layer or on the host).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// JSON (de)serialization failed.
    #[error("JSON {what}: {source}")]
    Json {
        /// What was being (de)serialized.
        what: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// Content did not hash to the expected digest.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest that was asked for.
        expected: Digest,
        /// The digest of the bytes actually seen.
        actual: Digest,
    },
    /// A digest string could not be parsed or uses an unsupported algorithm.
    #[error("invalid or unsupported digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The offending digest text.
        digest: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A blob is missing from the content store.
    #[error("blob {digest} not found in content store {}", store.display())]
    BlobNotFound {
        /// The missing blob.
        digest: Digest,
        /// The store root.
        store: PathBuf,
    },
    /// A layer entry would escape the root or is otherwise unsafe.
    #[error("unsafe layer entry {}: {reason}", path.display())]
    UnsafePath {
        /// The entry path as written in the tar.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// An input we do not support (file type, compression, manifest shape).
    #[error("unsupported {what}: {}", path.display())]
    Unsupported {
        /// What is unsupported.
        what: String,
        /// The path (or blob path) involved.
        path: PathBuf,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

/// Attach an operation name and path to `io::Result`s.
pub(crate) trait IoCtx<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T, Error>;
}

impl<T> IoCtx<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T, Error> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

impl<T> IoCtx<T> for rustix::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T, Error> {
        self.map_err(|e| Error::io(op, path, e.into()))
    }
}
