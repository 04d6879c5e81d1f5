//! The one error type of this crate.

use oci_spec::image::Digest;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An image reference could not be parsed.
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidReference {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry answered with an unexpected HTTP status.
    #[error(
        "registry {registry} answered {status}{} for {method} {path}",
        describe_codes(.errors)
    )]
    Registry {
        /// `host[:port]` of the registry.
        registry: String,
        /// HTTP status code.
        status: u16,
        /// HTTP method of the failed request.
        method: String,
        /// Request path (query string removed).
        path: String,
        /// Errors parsed from the body (`{"errors":[…]}`), possibly empty.
        errors: Vec<RegistryErrorDetail>,
    },
    /// The HTTP request itself failed (connection, TLS, timeout, body…).
    #[error("{method} {url} failed: {detail}")]
    Http {
        /// HTTP method.
        method: String,
        /// Request URL (without query string).
        url: String,
        /// The error and its causes, joined with `: ` (e.g. "…: Connection refused").
        detail: String,
        /// Underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// Content did not hash to the expected digest.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being verified.
        what: String,
        /// Digest we expected.
        expected: Digest,
        /// Digest actually computed (or announced by the registry).
        actual: String,
    },
    /// The registry answered something that violates the protocol.
    #[error("registry {registry}: {message}")]
    Protocol {
        /// `host[:port]` of the registry.
        registry: String,
        /// What was wrong.
        message: String,
    },
    /// Obtaining a bearer token failed.
    #[error("authentication with registry {registry} failed: {message}")]
    Auth {
        /// `host[:port]` of the registry.
        registry: String,
        /// What failed (never contains credentials).
        message: String,
    },
    /// The registry refused an operation (401/403, e.g. `DENIED`, `UNAUTHORIZED`).
    #[error("{0}")]
    Denied(Box<Denied>),
    /// Reading credentials (auth file, credential helper) failed.
    #[error("credentials from {source_name}: {message}")]
    Credentials {
        /// The auth file or helper.
        source_name: String,
        /// What failed (never contains a secret).
        message: String,
    },
    /// A local I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The caller asked for something unsupported (e.g. a non-sha256 digest).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The HTTP client could not be built.
    #[error("building the HTTP client failed: {0}")]
    ClientSetup(String),
}

/// Details of [`Error::Denied`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "registry {registry} refused to {action} repository {repository} {credentials}: {status}{}",
    describe_codes(.errors)
)]
pub struct Denied {
    /// `host[:port]` of the registry.
    pub registry: String,
    /// Repository the request was for.
    pub repository: String,
    /// `pull`, `push` or `delete`.
    pub action: String,
    /// Which credentials were used, e.g. "with the pull credentials (…)" or "anonymously (…)".
    pub credentials: String,
    /// HTTP status code (401 or 403).
    pub status: u16,
    /// Errors parsed from the body.
    pub errors: Vec<RegistryErrorDetail>,
}

/// One entry of a registry's `{"errors":[…]}` body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct RegistryErrorDetail {
    /// Error code, e.g. `MANIFEST_UNKNOWN`.
    pub code: String,
    /// Human message, if any.
    #[serde(default)]
    pub message: String,
}

fn describe_codes(errors: &[RegistryErrorDetail]) -> String {
    errors
        .iter()
        .map(|e| {
            if e.message.is_empty() {
                format!(" {}", e.code)
            } else {
                format!(" {} ({})", e.code, e.message)
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

impl Error {
    /// True when the registry said the manifest, blob or repository does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Registry { status, errors, .. } => {
                *status == 404
                    || errors.iter().any(|e| {
                        matches!(
                            e.code.as_str(),
                            "MANIFEST_UNKNOWN" | "BLOB_UNKNOWN" | "NAME_UNKNOWN"
                        )
                    })
            }
            _ => false,
        }
    }

    /// True for 401/403 answers or token failures.
    pub fn is_unauthorized(&self) -> bool {
        match self {
            Error::Registry { status, .. } => *status == 401 || *status == 403,
            Error::Auth { .. } | Error::Denied(_) => true,
            _ => false,
        }
    }

    /// The registry error codes carried by this error, if any.
    pub fn registry_codes(&self) -> Vec<&str> {
        match self {
            Error::Registry { errors, .. } => errors.iter().map(|e| e.code.as_str()).collect(),
            Error::Denied(d) => d.errors.iter().map(|e| e.code.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether retrying the same idempotent request may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Error::Registry { status, .. } => *status == 429 || *status >= 500,
            // A certificate will not become valid by asking again.
            Error::Http { detail, .. } if detail.contains("certificate") => false,
            Error::Http { source, .. } => {
                source.is_connect()
                    || source.is_timeout()
                    || source.is_request()
                    || source.is_body()
                    // a body cut short surfaces as a decode error wrapping a body error
                    || source.is_decode()
            }
            _ => false,
        }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// Parses a registry error body; tolerant of anything that is not the standard shape.
pub(crate) fn parse_error_body(body: &[u8]) -> Vec<RegistryErrorDetail> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<RegistryErrorDetail>,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| b.errors)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_registry_error() {
        let e = Error::Registry {
            registry: "127.0.0.1:5000".into(),
            status: 404,
            method: "GET".into(),
            path: "/v2/a/manifests/x".into(),
            errors: parse_error_body(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#,
            ),
        };
        assert_eq!(
            e.to_string(),
            "registry 127.0.0.1:5000 answered 404 MANIFEST_UNKNOWN (manifest unknown) for GET /v2/a/manifests/x"
        );
        assert!(e.is_not_found());
        assert_eq!(parse_error_body(b"<html>"), vec![]);
    }
}
