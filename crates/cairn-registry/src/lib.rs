//! `cairn-registry`: a small OCI distribution client owned by cairn.
//!
//! # Why our own client
//!
//! We evaluated `oci-client` 0.18 (see `shared/research/crates.md` §3). It
//! streams fine, but three gaps matter for a builder that pushes caches and
//! images to real registries:
//!
//! * a **declined cross-repository mount** (`202 Accepted`, which the spec
//!   allows: the registry just opens a normal upload session) is reported as
//!   an error instead of "not mounted, upload instead";
//! * there are **no retries** for transient failures (5xx, 429, resets);
//! * bearer tokens are **scoped to one repository**, so a mount (push on the
//!   target *and* pull on the source) cannot be authorised with one token.
//!
//! The protocol surface a builder needs is small (manifests GET/HEAD/PUT/
//! DELETE, blobs HEAD/GET, monolithic upload, mount, tag list), so cairn owns
//! it: one streaming code path we control, on `reqwest` 0.13 with `rustls`
//! 0.23 and the `ring` provider (no aws-lc/cmake in the build), with
//! certificates checked by `rustls-platform-verifier` (system roots).
//!
//! # Behaviour
//!
//! * Loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`) are spoken to
//!   over plain HTTP, as Docker does, unless listed in
//!   [`ClientOptions::tls_registries`]; others over HTTPS unless listed in
//!   [`ClientOptions::insecure_registries`]. HTTPS trusts the system roots
//!   plus [`ClientOptions::extra_ca_pem`].
//! * Auth: anonymous first; on `401` with a `Bearer` challenge a token is
//!   requested from the realm for all scopes the operation needs (one token
//!   for both repositories of a cross-repository mount), with basic
//!   credentials, an identity token (OAuth2 refresh-token grant) or none; a
//!   registry token is sent as is; on a `Basic` challenge basic credentials
//!   are sent. Tokens are cached per registry, operation and scope set.
//! * Credentials come from a [`CredentialSource`] per operation:
//!   [`ClientOptions::pull_credentials`] for GET/HEAD and
//!   [`ClientOptions::push_credentials`] for POST/PUT/PATCH/DELETE (see
//!   [`credentials`](crate::CredentialSource) for docker `config.json`,
//!   podman `auth.json` and `docker-credential-*` helpers). Credentials never
//!   appear in `Debug`, `Display` or errors; refusals are [`Error::Denied`],
//!   naming registry, repository, action and which credentials were used.
//! * Retries with exponential backoff and jitter: GET/HEAD on 5xx, 429 and
//!   connection errors; every method on 429 (honouring `Retry-After`, at
//!   most 10 s); blob uploads restart in a new session, manifest PUTs and
//!   mounts are repeated (both idempotent). At most 3 attempts.
//! * Blobs are streamed both ways and never held in memory; downloads are
//!   sha256-verified while written to a temp file beside the destination,
//!   resumed with `Range` after a dropped connection, and renamed into place
//!   only once verified. [`Client::push_image`] uploads blobs (bounded
//!   parallelism) and PUTs the manifest only when every blob it references
//!   is in the repository.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), cairn_registry::Error> {
//! use cairn_registry::{Client, ClientOptions, Reference, media_types};
//! let client = Client::new(ClientOptions::default())?;
//! let r: Reference = "127.0.0.1:5000/app:v1".parse()?;
//! let m = client.get_manifest(&r).await?;
//! let copy = r.with_tag("v2");
//! let digest = client.put_manifest(&copy, &m.media_type, &m.bytes).await?;
//! assert_eq!(digest, m.digest);
//! # Ok(()) }
//! ```
//!
//! Endpoints follow the OCI distribution spec v1.1 (`/v2/<name>/manifests/…`,
//! `/v2/<name>/blobs/…`, `/v2/<name>/blobs/uploads/`, `/v2/<name>/tags/list`).

mod auth;
mod client;
mod credentials;
mod error;
mod reference;

pub use client::{Client, ClientOptions, FetchedManifest, Operation};
pub use credentials::{AuthFile, Credential, CredentialSource};
pub use error::{Denied, Error, RegistryErrorDetail};
pub use oci_spec::image::Digest;
pub use reference::Reference;

/// Media types the client accepts for manifests.
pub mod media_types {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// Docker image manifest v2 schema 2.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// All four, in preference order (for `Accept`).
    pub const MANIFEST_ACCEPT: [&str; 4] = [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
    ];
}

/// Entry points for the fuzz targets in `fuzz/` (not a stable API).
#[doc(hidden)]
pub mod fuzzing {
    use crate::auth;

    /// `WWW-Authenticate` → (scheme, params), as the client parses it.
    pub fn parse_www_authenticate(header: &str) -> Option<(String, Vec<(String, String)>)> {
        auth::parse_challenge(header).map(|c| {
            let mut params: Vec<_> = c.params.into_iter().collect();
            params.sort();
            (c.scheme, params)
        })
    }

    /// `/v2/<name>/…` → `<name>` (used to name the repository in denials).
    pub fn repository_of_path(path: &str) -> Option<String> {
        crate::client::repository_of_path(path)
    }

    /// Whether `scope` is covered by `held` (challenge scope de-duplication).
    pub fn scope_covered(held: &[String], scope: &str) -> bool {
        auth::scope_covered(held, scope)
    }

    /// Everything the client parses out of a manifest/index/config/error/token body.
    /// Returns the sniffed media type.
    pub fn parse_bodies(content_type: Option<String>, bytes: &[u8]) -> Option<String> {
        let _ = crate::client::referenced_digests(bytes);
        let _ = crate::error::parse_error_body(bytes);
        let _ = serde_json::from_slice::<auth::TokenResponse>(bytes)
            .ok()
            .and_then(auth::TokenResponse::into_cached);
        let _ = serde_json::from_slice::<oci_spec::image::ImageManifest>(bytes);
        let _ = serde_json::from_slice::<oci_spec::image::ImageIndex>(bytes);
        let _ = serde_json::from_slice::<oci_spec::image::ImageConfiguration>(bytes);
        crate::client::manifest_media_type(content_type, bytes)
    }

    /// Parses a docker `config.json` / podman `auth.json` and every `auths`
    /// entry; returns the error messages (which must never quote the input).
    pub fn parse_auth_file(bytes: &[u8]) -> Vec<String> {
        crate::credentials::parse_for_fuzzing(bytes)
    }
}
