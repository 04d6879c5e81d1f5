//! The registry client.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use oci_spec::image::{Digest, DigestAlgorithm};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue,
    LINK, LOCATION, RANGE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use crate::auth::{self, BearerRealm, RegistryAuthState, TokenResponse};
use crate::error::{Denied, parse_error_body};
use crate::media_types::MANIFEST_ACCEPT;
use crate::reference::DOCKER_HUB;
use crate::{Credential, CredentialSource, Error, Reference};

/// Attempts for idempotent requests (GET/HEAD) and whole uploads.
const MAX_ATTEMPTS: u32 = 3;
/// Most GETs for one blob download (resumes that made progress included).
const MAX_BLOB_ATTEMPTS: u32 = 20;
/// First retry delay; doubles each attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest `Retry-After` we honour.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Largest manifest we read into memory (the spec asks registries to accept 4 MiB).
const MAX_MANIFEST_BYTES: usize = 16 << 20;
/// Largest error/token body we read.
const MAX_SMALL_BODY: usize = 1 << 20;
/// Most `Link: rel="next"` pages followed by [`Client::list_tags`].
const MAX_TAG_PAGES: usize = 1000;
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// Settings for [`Client::new`].
#[derive(Clone)]
pub struct ClientOptions {
    /// Registries (`host[:port]`) spoken to over plain HTTP. Loopback hosts
    /// always are, without being listed (unless in [`ClientOptions::tls_registries`]).
    pub insecure_registries: Vec<String>,
    /// Registries (`host[:port]`) always spoken to over HTTPS, even on loopback.
    pub tls_registries: Vec<String>,
    /// `User-Agent` header value.
    pub user_agent: String,
    /// Username and password for basic auth and token requests, used for
    /// both pulling and pushing when the per-operation sources below have
    /// nothing for a registry. Never shown by `Debug` or in errors.
    pub credentials: Option<(String, String)>,
    /// Credentials for reading (`GET`/`HEAD`: manifests, blobs, tags).
    pub pull_credentials: CredentialSource,
    /// Credentials for writing (`POST`/`PUT`/`PATCH`/`DELETE`: uploads,
    /// mounts, manifests, deletes). Never used for reads, so a build with
    /// only pull credentials cannot write by accident.
    pub push_credentials: CredentialSource,
    /// Extra trusted CA certificates (PEM, one or more), in addition to the
    /// system roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Most blob uploads [`Client::push_image`] runs at once (at least 1).
    pub max_parallel_transfers: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            tls_registries: Vec::new(),
            user_agent: concat!("cairn/", env!("CARGO_PKG_VERSION")).to_owned(),
            credentials: None,
            pull_credentials: CredentialSource::Anonymous,
            push_credentials: CredentialSource::Anonymous,
            extra_ca_pem: None,
            max_parallel_transfers: 4,
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("insecure_registries", &self.insecure_registries)
            .field("tls_registries", &self.tls_registries)
            .field("user_agent", &self.user_agent)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("pull_credentials", &self.pull_credentials)
            .field("push_credentials", &self.push_credentials)
            .field(
                "extra_ca_pem",
                &self
                    .extra_ca_pem
                    .as_ref()
                    .map(|p| format!("{} bytes", p.len())),
            )
            .field("max_parallel_transfers", &self.max_parallel_transfers)
            .finish()
    }
}

/// Which credentials a request uses: reads pull, writes push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `GET`/`HEAD`.
    Pull,
    /// `POST`/`PUT`/`PATCH`/`DELETE`.
    Push,
}

impl Operation {
    fn of(method: &Method) -> Operation {
        if *method == Method::GET || *method == Method::HEAD {
            Operation::Pull
        } else {
            Operation::Push
        }
    }
}

/// A manifest as fetched: raw bytes (hash these, never re-serialise), media type, digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The exact bytes the registry sent.
    pub bytes: Vec<u8>,
    /// Media type from `Content-Type` (or the manifest's `mediaType` field).
    pub media_type: String,
    /// sha256 digest of `bytes` (verified against the reference's digest, if any).
    pub digest: Digest,
}

/// OCI distribution client. Cheap to clone (shared connection pool and token cache).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    insecure: Vec<String>,
    tls: Vec<String>,
    parallel: usize,
    pull: CredentialSource,
    push: CredentialSource,
    /// Credentials resolved per (registry, operation); `None` = anonymous.
    resolved: Mutex<HashMap<(String, Operation), Option<Credential>>>,
    auth: Mutex<HashMap<(String, Operation), RegistryAuthState>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("insecure_registries", &self.inner.insecure)
            .field("tls_registries", &self.inner.tls)
            .field("pull_credentials", &self.inner.pull)
            .field("push_credentials", &self.inner.push)
            .finish_non_exhaustive()
    }
}

/// A blob download in progress.
struct Partial {
    file: tokio::fs::File,
    hasher: Sha256,
    size: u64,
}

/// Builds a request; called once per attempt (so streamed bodies can be reopened).
type Build<'a> = &'a (dyn Fn(RequestBuilder) -> Result<RequestBuilder, Error> + Send + Sync);

fn no_body(b: RequestBuilder) -> Result<RequestBuilder, Error> {
    Ok(b)
}

impl Client {
    /// Creates a client (rustls with the ring provider, platform certificate
    /// verifier plus [`ClientOptions::extra_ca_pem`]).
    pub fn new(opts: ClientOptions) -> Result<Client, Error> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut extra = Vec::new();
        if let Some(pem) = &opts.extra_ca_pem {
            for cert in CertificateDer::pem_slice_iter(pem) {
                extra.push(cert.map_err(|e| {
                    Error::ClientSetup(format!("extra CA certificates: bad PEM: {e}"))
                })?);
            }
            if extra.is_empty() {
                return Err(Error::ClientSetup(
                    "extra CA certificates: no CERTIFICATE block in the PEM".into(),
                ));
            }
        }
        let verifier =
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
                .map_err(|e| Error::ClientSetup(e.to_string()))?;
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::ClientSetup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(opts.user_agent)
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| Error::ClientSetup(e.to_string()))?;
        let with_legacy = |src: CredentialSource| match &opts.credentials {
            Some((u, p)) => {
                CredentialSource::Chain(vec![src, CredentialSource::Fixed(Credential::basic(u, p))])
            }
            None => src,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                insecure: opts.insecure_registries.clone(),
                tls: opts.tls_registries.clone(),
                parallel: opts.max_parallel_transfers.max(1),
                pull: with_legacy(opts.pull_credentials.clone()),
                push: with_legacy(opts.push_credentials.clone()),
                resolved: Mutex::new(HashMap::new()),
                auth: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Fetches a manifest (OCI manifest/index, Docker v2s2 manifest/list).
    ///
    /// The digest is computed over the exact bytes and checked against the
    /// reference's digest when it has one (and against `Docker-Content-Digest`).
    pub async fn get_manifest(&self, r: &Reference) -> Result<FetchedManifest, Error> {
        if let Some(d) = &r.digest {
            require_sha256(d)?;
        }
        let url = self.url(r, &format!("manifests/{}", r.reference_str()))?;
        let scopes = [auth::repo_scope(&r.repository, "pull")];
        let accept = MANIFEST_ACCEPT.join(", ");
        let resp = self
            .send(Method::GET, &r.registry, url, &scopes, &|b| {
                Ok(b.header(ACCEPT, accept.as_str()))
            })
            .await?;
        let resp = self
            .check(resp, &r.registry, Method::GET, &[StatusCode::OK])
            .await?;
        let content_type = media_type_of(resp.headers());
        let announced = header_str(resp.headers(), DOCKER_CONTENT_DIGEST);
        let bytes = read_limited(resp, MAX_MANIFEST_BYTES, &r.registry).await?;
        let computed = sha256_digest(&bytes);
        if let Some(expected) = &r.digest {
            if *expected != computed {
                return Err(Error::DigestMismatch {
                    what: format!("manifest {r}"),
                    expected: expected.clone(),
                    actual: computed.to_string(),
                });
            }
        } else if let Some(announced) = announced
            && let Ok(a) = Digest::from_str(&announced)
            && *a.algorithm() == DigestAlgorithm::Sha256
            && a != computed
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest {r} (Docker-Content-Digest)"),
                expected: a,
                actual: computed.to_string(),
            });
        }
        let media_type =
            manifest_media_type(content_type, &bytes).ok_or_else(|| Error::Protocol {
                registry: r.registry.clone(),
                message: format!("manifest {r} has no media type"),
            })?;
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest: computed,
        })
    }

    /// `HEAD` on a manifest: `Some((digest, media type, size))`, or `None` if it does not exist.
    pub async fn head_manifest(
        &self,
        r: &Reference,
    ) -> Result<Option<(Digest, String, u64)>, Error> {
        let url = self.url(r, &format!("manifests/{}", r.reference_str()))?;
        let scopes = [auth::repo_scope(&r.repository, "pull")];
        let accept = MANIFEST_ACCEPT.join(", ");
        let resp = self
            .send(Method::HEAD, &r.registry, url, &scopes, &|b| {
                Ok(b.header(ACCEPT, accept.as_str()))
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = self
            .check(resp, &r.registry, Method::HEAD, &[StatusCode::OK])
            .await?;
        let headers = resp.headers();
        let digest = header_str(headers, DOCKER_CONTENT_DIGEST)
            .and_then(|d| Digest::from_str(&d).ok())
            .or_else(|| r.digest.clone());
        let media_type = media_type_of(headers);
        let size = header_str(headers, CONTENT_LENGTH.as_str()).and_then(|s| s.parse::<u64>().ok());
        match (digest, media_type, size) {
            (Some(d), Some(mt), Some(size)) => Ok(Some((d, mt, size))),
            _ => {
                // Registry without the headers: fall back to a GET.
                let m = self.get_manifest(r).await?;
                Ok(Some((m.digest, m.media_type, m.bytes.len() as u64)))
            }
        }
    }

    /// Whether the blob `d` exists in `repo`'s repository (`HEAD`).
    pub async fn blob_exists(&self, repo: &Reference, d: &Digest) -> Result<bool, Error> {
        let url = self.url(repo, &format!("blobs/{d}"))?;
        let scopes = [auth::repo_scope(&repo.repository, "pull")];
        let resp = self
            .send(Method::HEAD, &repo.registry, url, &scopes, &no_body)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        self.check(resp, &repo.registry, Method::HEAD, &[StatusCode::OK])
            .await?;
        Ok(true)
    }

    /// Downloads blob `d` to `dest`, streaming and verifying sha256 on the way.
    ///
    /// Data goes to a temp file beside `dest`, renamed over `dest` only once
    /// the digest matched. Returns the size. A connection cut mid-body is
    /// resumed with `Range: bytes=<received>-` when the registry answers
    /// `206` (else the download restarts); transient failures are retried
    /// with backoff, up to 3 attempts in a row without progress.
    pub async fn get_blob_to_file(
        &self,
        repo: &Reference,
        d: &Digest,
        dest: &Path,
    ) -> Result<u64, Error> {
        require_sha256(d)?;
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".cairn-blob-")
            .tempfile_in(parent)
            .map_err(Error::io(format!(
                "creating temp file in {}",
                parent.display()
            )))?;
        let (file, tmp_path) = tmp.into_parts();
        let mut part = Partial {
            file: tokio::fs::File::from_std(file),
            hasher: Sha256::new(),
            size: 0,
        };
        let mut failures = 0;
        let mut total_attempts = 0;
        loop {
            total_attempts += 1;
            let before = part.size;
            match self.get_blob_part(repo, d, &mut part, &tmp_path).await {
                Ok(()) => break,
                Err(e) if e.is_transient() && total_attempts < MAX_BLOB_ATTEMPTS => {
                    if part.size > before {
                        failures = 0;
                    } else {
                        failures += 1;
                    }
                    if failures >= MAX_ATTEMPTS {
                        return Err(e);
                    }
                    tracing::warn!(%e, received = part.size, "blob download interrupted, resuming");
                    tokio::time::sleep(backoff(failures.max(1))).await;
                }
                Err(e) => return Err(e),
            }
        }
        part.file
            .flush()
            .await
            .map_err(Error::io(format!("writing {}", tmp_path.display())))?;
        let Partial { file, hasher, size } = part;
        drop(file);
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != d.to_string() {
            return Err(Error::DigestMismatch {
                what: format!("blob {d} from {}", repo.name()),
                expected: d.clone(),
                actual,
            });
        }
        tmp_path.persist(dest).map_err(|e| Error::Io {
            what: format!("renaming blob into {}", dest.display()),
            source: e.error,
        })?;
        Ok(size)
    }

    /// One GET of the blob, from `part.size` on (restarting if the registry ignores `Range`).
    async fn get_blob_part(
        &self,
        repo: &Reference,
        d: &Digest,
        part: &mut Partial,
        tmp_path: &Path,
    ) -> Result<(), Error> {
        let url = self.url(repo, &format!("blobs/{d}"))?;
        let scopes = [auth::repo_scope(&repo.repository, "pull")];
        let offset = part.size;
        let range = format!("bytes={offset}-");
        let resp = self
            .send(Method::GET, &repo.registry, url.clone(), &scopes, &|b| {
                Ok(if offset > 0 {
                    b.header(RANGE, range.as_str())
                } else {
                    b
                })
            })
            .await?;
        let resp = self
            .check(
                resp,
                &repo.registry,
                Method::GET,
                &[StatusCode::OK, StatusCode::PARTIAL_CONTENT],
            )
            .await?;
        let write_err = || Error::io(format!("writing {}", tmp_path.display()));
        if resp.status() == StatusCode::PARTIAL_CONTENT {
            let cr = header_str(resp.headers(), CONTENT_RANGE.as_str()).unwrap_or_default();
            if offset == 0 || !cr.starts_with(&format!("bytes {offset}-")) {
                return Err(Error::Protocol {
                    registry: repo.registry.clone(),
                    message: format!("asked blob {d} from byte {offset}, got Content-Range {cr:?}"),
                });
            }
            tracing::debug!(%d, offset, "resuming blob download");
        } else if offset > 0 {
            // Range ignored: start over.
            part.file.set_len(0).await.map_err(write_err())?;
            part.file
                .seek(std::io::SeekFrom::Start(0))
                .await
                .map_err(write_err())?;
            part.hasher = Sha256::new();
            part.size = 0;
        }
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| http_err(&Method::GET, &url, e))?;
            part.file.write_all(&chunk).await.map_err(write_err())?;
            part.hasher.update(&chunk);
            part.size += chunk.len() as u64;
        }
        Ok(())
    }

    /// Uploads the file at `path` as blob `d`, unless the repository already has it.
    ///
    /// Monolithic upload (`POST uploads/`, then `PUT ?digest=`) with a streamed
    /// body and an explicit `Content-Length`; the file is never read into memory.
    /// Transient failures (5xx, 429, connection errors) restart the upload in
    /// a new session, up to 3 attempts; the registry verifies the digest.
    ///
    /// The existence check uses the pull credentials; if they are refused the
    /// upload goes ahead with the push credentials.
    pub async fn put_blob_from_file(
        &self,
        repo: &Reference,
        d: &Digest,
        path: &Path,
    ) -> Result<(), Error> {
        match self.blob_exists(repo, d).await {
            Ok(true) => {
                tracing::debug!(%d, repo = %repo.name(), "blob already present, skipping upload");
                return Ok(());
            }
            Ok(false) => {}
            Err(e) if e.is_unauthorized() => {
                tracing::debug!(%e, "existence check refused, uploading");
            }
            Err(e) => return Err(e),
        }
        let len = tokio::fs::metadata(path)
            .await
            .map_err(Error::io(format!("reading metadata of {}", path.display())))?
            .len();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.put_blob_once(repo, d, path, len).await {
                Err(e) if e.is_transient() && attempt < MAX_ATTEMPTS => {
                    tracing::warn!(%e, attempt, %d, "blob upload failed, retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn put_blob_once(
        &self,
        repo: &Reference,
        d: &Digest,
        path: &Path,
        len: u64,
    ) -> Result<(), Error> {
        let scopes = [auth::repo_scope(&repo.repository, "pull,push")];
        let start = self.url(repo, "blobs/uploads/")?;
        let resp = self
            .send(Method::POST, &repo.registry, start, &scopes, &no_body)
            .await?;
        let resp = self
            .check(resp, &repo.registry, Method::POST, &[StatusCode::ACCEPTED])
            .await?;
        let mut put_url = self.location(repo, &resp)?;
        put_url.query_pairs_mut().append_pair("digest", d.as_ref());
        let build = |b: RequestBuilder| -> Result<RequestBuilder, Error> {
            let file = std::fs::File::open(path)
                .map_err(Error::io(format!("opening {}", path.display())))?;
            let stream = ReaderStream::with_capacity(tokio::fs::File::from_std(file), 256 << 10);
            Ok(b.header(CONTENT_LENGTH, len)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(reqwest::Body::wrap_stream(stream)))
        };
        let result = match self
            .send(
                Method::PUT,
                &repo.registry,
                put_url.clone(),
                &scopes,
                &build,
            )
            .await
        {
            Ok(resp) => self
                .check(resp, &repo.registry, Method::PUT, &[StatusCode::CREATED])
                .await
                .map(drop),
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.cancel_upload(repo, put_url).await;
        }
        result
    }

    /// Pushes an image: uploads `blobs` (at most
    /// [`ClientOptions::max_parallel_transfers`] at once), then checks that
    /// every blob the manifest references is in the repository, and only
    /// then PUTs the manifest under `target`'s tag or digest. If any upload
    /// fails, the manifest is not pushed (so the tag never points at missing
    /// blobs) and the first error is returned.
    ///
    /// For an index, referenced child manifests must already exist.
    pub async fn push_image(
        &self,
        target: &Reference,
        blobs: &[(Digest, std::path::PathBuf)],
        media_type: &str,
        manifest: &[u8],
    ) -> Result<Digest, Error> {
        let refs = referenced_digests(manifest).map_err(|message| Error::Protocol {
            registry: target.registry.clone(),
            message: format!("manifest to push to {target}: {message}"),
        })?;
        let results: Vec<Result<(), Error>> = futures_util::stream::iter(blobs.iter())
            .map(|(d, p)| self.put_blob_from_file(target, d, p))
            .buffer_unordered(self.inner.parallel)
            .collect()
            .await;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(e);
        }
        for (kind, d) in &refs {
            let present = if *kind == RefKind::Manifest {
                self.head_manifest(&target.with_digest(d.clone()))
                    .await?
                    .is_some()
            } else {
                blobs.iter().any(|(b, _)| b == d) || self.blob_exists(target, d).await?
            };
            if !present {
                return Err(Error::Protocol {
                    registry: target.registry.clone(),
                    message: format!(
                        "not pushing {target}: its manifest references {d}, which is not in {}",
                        target.name()
                    ),
                });
            }
        }
        self.put_manifest(target, media_type, manifest).await
    }

    /// Cross-repository mount of `d` from `from_repo` (same registry) into `to`.
    ///
    /// `Ok(true)` when mounted (201). `Ok(false)` when the registry declined
    /// (202: blob unknown, not allowed, or mounting unsupported); the upload
    /// session it opened instead is cancelled, and the caller should upload.
    pub async fn mount_blob(
        &self,
        to: &Reference,
        from_repo: &str,
        d: &Digest,
    ) -> Result<bool, Error> {
        let mut url = self.url(to, "blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", d.as_ref())
            .append_pair("from", from_repo);
        let scopes = [
            auth::repo_scope(&to.repository, "pull,push"),
            auth::repo_scope(from_repo, "pull"),
        ];
        // A mount is idempotent: retry transient failures.
        let resp = retrying("blob mount", async || {
            let resp = self
                .send(Method::POST, &to.registry, url.clone(), &scopes, &no_body)
                .await?;
            if resp.status().is_server_error() {
                return self
                    .check(resp, &to.registry, Method::POST, &[StatusCode::CREATED])
                    .await;
            }
            Ok(resp)
        })
        .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Ok(session) = self.location(to, &resp) {
                    self.cancel_upload(to, session).await;
                }
                tracing::debug!(%d, from_repo, to = %to.name(), "mount declined");
                Ok(false)
            }
            _ => self
                .check(resp, &to.registry, Method::POST, &[StatusCode::CREATED])
                .await
                .map(|_| true),
        }
    }

    /// Uploads a manifest under `r`'s tag or digest; returns its digest.
    pub async fn put_manifest(
        &self,
        r: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, Error> {
        let digest = sha256_digest(bytes);
        if let Some(expected) = &r.digest
            && *expected != digest
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest to push to {r}"),
                expected: expected.clone(),
                actual: digest.to_string(),
            });
        }
        let url = self.url(r, &format!("manifests/{}", r.reference_str()))?;
        let scopes = [auth::repo_scope(&r.repository, "pull,push")];
        let body = bytes.to_vec();
        // PUT of the same bytes is idempotent: retry transient failures.
        let resp = retrying("manifest upload", async || {
            let resp = self
                .send(Method::PUT, &r.registry, url.clone(), &scopes, &|b| {
                    Ok(b.header(CONTENT_TYPE, media_type).body(body.clone()))
                })
                .await?;
            self.check(resp, &r.registry, Method::PUT, &[StatusCode::CREATED])
                .await
        })
        .await?;
        if let Some(announced) = header_str(resp.headers(), DOCKER_CONTENT_DIGEST)
            && let Ok(a) = Digest::from_str(&announced)
            && *a.algorithm() == DigestAlgorithm::Sha256
            && a != digest
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest pushed to {r} (Docker-Content-Digest)"),
                expected: digest,
                actual: a.to_string(),
            });
        }
        Ok(digest)
    }

    /// All tags of `repo`'s repository (follows `Link: rel="next"` pagination).
    pub async fn list_tags(&self, repo: &Reference) -> Result<Vec<String>, Error> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let scopes = [auth::repo_scope(&repo.repository, "pull")];
        let mut url = self.url(repo, "tags/list")?;
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let resp = self
                .send(Method::GET, &repo.registry, url.clone(), &scopes, &no_body)
                .await?;
            let resp = self
                .check(resp, &repo.registry, Method::GET, &[StatusCode::OK])
                .await?;
            let next = header_str(resp.headers(), LINK.as_str()).and_then(|l| next_link(&l));
            let body = read_limited(resp, MAX_MANIFEST_BYTES, &repo.registry).await?;
            let page: TagList = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                registry: repo.registry.clone(),
                message: format!("malformed tag list for {}: {e}", repo.name()),
            })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) => {
                    url = url.join(&n).map_err(|e| Error::Protocol {
                        registry: repo.registry.clone(),
                        message: format!("bad Link header {n:?}: {e}"),
                    })?;
                }
                None => return Ok(tags),
            }
        }
        Err(Error::Protocol {
            registry: repo.registry.clone(),
            message: format!(
                "more than {MAX_TAG_PAGES} pages of tags for {}",
                repo.name()
            ),
        })
    }

    /// Deletes the manifest `r` names by digest (tags cannot be deleted this way).
    pub async fn delete_manifest(&self, r: &Reference) -> Result<(), Error> {
        let Some(d) = &r.digest else {
            return Err(Error::Unsupported(format!(
                "delete_manifest needs a digest reference, got {r}"
            )));
        };
        let url = self.url(r, &format!("manifests/{d}"))?;
        let scopes = [auth::repo_scope(&r.repository, "delete")];
        let resp = self
            .send(Method::DELETE, &r.registry, url, &scopes, &no_body)
            .await?;
        self.check(
            resp,
            &r.registry,
            Method::DELETE,
            &[StatusCode::ACCEPTED, StatusCode::OK, StatusCode::NO_CONTENT],
        )
        .await?;
        Ok(())
    }

    // ---- plumbing -------------------------------------------------------

    fn base_url(&self, registry: &str) -> String {
        let scheme = if self.inner.tls.iter().any(|r| r == registry) {
            "https"
        } else if is_loopback(registry) || self.inner.insecure.iter().any(|r| r == registry) {
            "http"
        } else {
            "https"
        };
        let host = if registry == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            registry
        };
        format!("{scheme}://{host}")
    }

    fn url(&self, r: &Reference, rest: &str) -> Result<Url, Error> {
        let s = format!("{}/v2/{}/{rest}", self.base_url(&r.registry), r.repository);
        Url::parse(&s).map_err(|e| Error::Protocol {
            registry: r.registry.clone(),
            message: format!("cannot build URL {s:?}: {e}"),
        })
    }

    /// Resolves an upload session `Location` header against the registry URL.
    fn location(&self, r: &Reference, resp: &Response) -> Result<Url, Error> {
        let loc = header_str(resp.headers(), LOCATION.as_str()).ok_or_else(|| Error::Protocol {
            registry: r.registry.clone(),
            message: format!(
                "{} {} answered without Location",
                resp.status(),
                resp.url().path()
            ),
        })?;
        resp.url().join(&loc).map_err(|e| Error::Protocol {
            registry: r.registry.clone(),
            message: format!("bad Location {loc:?}: {e}"),
        })
    }

    /// Best-effort `DELETE` of an upload session.
    async fn cancel_upload(&self, r: &Reference, mut session: Url) {
        // keep the registry's own state parameters (e.g. `_state`), drop our `digest`
        let kept: Vec<(String, String)> = session
            .query_pairs()
            .filter(|(k, _)| k != "digest")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        session.set_query(None);
        if !kept.is_empty() {
            session.query_pairs_mut().extend_pairs(kept);
        }
        let scopes = [auth::repo_scope(&r.repository, "pull,push")];
        match self
            .send(Method::DELETE, &r.registry, session, &scopes, &no_body)
            .await
        {
            Ok(resp) if resp.status().is_success() => {}
            // distribution 2.8 refuses a DELETE whose `_state` predates a failed PUT
            // (BLOB_UPLOAD_INVALID); its upload purger collects such sessions.
            Ok(resp) => {
                tracing::debug!(status = %resp.status(), "cancelling upload session failed")
            }
            Err(e) => tracing::debug!(%e, "cancelling upload session failed"),
        }
    }

    /// The credential for `registry` and `op`, resolved once per client.
    async fn credential(&self, registry: &str, op: Operation) -> Result<Option<Credential>, Error> {
        let key = (registry.to_owned(), op);
        if let Some(c) = lock(&self.inner.resolved).get(&key) {
            return Ok(c.clone());
        }
        let source = match op {
            Operation::Pull => &self.inner.pull,
            Operation::Push => &self.inner.push,
        };
        let c = source.resolve(registry).await?;
        lock(&self.inner.resolved).insert(key, c.clone());
        Ok(c)
    }

    /// Sends with auth and bounded retries: 429 for every method (the
    /// request was not processed), 5xx and connection errors for GET/HEAD.
    /// Uploads retry at the operation level (a new upload session).
    async fn send(
        &self,
        method: Method,
        registry: &str,
        url: Url,
        scopes: &[String],
        build: Build<'_>,
    ) -> Result<Response, Error> {
        let idempotent = method == Method::GET || method == Method::HEAD;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .send_authed(method.clone(), registry, url.clone(), scopes, build)
                .await;
            let can_retry = attempt < MAX_ATTEMPTS;
            match result {
                Ok(resp)
                    if can_retry
                        && (resp.status() == StatusCode::TOO_MANY_REQUESTS
                            || (idempotent && resp.status().is_server_error())) =>
                {
                    let delay = retry_after(resp.headers()).unwrap_or_else(|| backoff(attempt));
                    tracing::warn!(status = %resp.status(), %method, path = url.path(), attempt, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) if can_retry && idempotent && e.is_transient() => {
                    tracing::warn!(%e, attempt, "retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn send_authed(
        &self,
        method: Method,
        registry: &str,
        url: Url,
        scopes: &[String],
        build: Build<'_>,
    ) -> Result<Response, Error> {
        let op = Operation::of(&method);
        let cred = self.credential(registry, op).await?;
        let key = (registry.to_owned(), op);
        let scope_key = scopes.join(" ");
        // Proactively fetch a token when we already know the registry wants one.
        let known_realm = self.with_auth(&key, |s| {
            s.bearer
                .clone()
                .filter(|_| s.token_for(&scope_key).is_none())
        });
        if let Some(realm) = known_realm {
            self.fetch_token(&key, &realm, scopes, cred.as_ref())
                .await?;
        }
        let sent_basic = self.with_auth(&key, |s| s.basic && s.token_for(&scope_key).is_none());
        let resp = self
            .send_once(&method, &key, &url, &scope_key, cred.as_ref(), build)
            .await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let Some(challenge) = header_str(resp.headers(), WWW_AUTHENTICATE.as_str())
            .as_deref()
            .and_then(auth::parse_challenge)
        else {
            return Ok(resp);
        };
        match challenge.scheme.as_str() {
            "bearer" => {
                let Some(realm) = challenge.params.get("realm").cloned() else {
                    return Ok(resp);
                };
                let realm = BearerRealm {
                    realm,
                    service: challenge.params.get("service").cloned(),
                };
                let mut wanted = scopes.to_vec();
                if let Some(extra) = challenge.params.get("scope") {
                    for s in extra.split(' ').filter(|s| !s.is_empty()) {
                        if !auth::scope_covered(&wanted, s) {
                            wanted.push(s.to_owned());
                        }
                    }
                }
                self.with_auth(&key, |s| {
                    s.bearer = Some(realm.clone());
                    s.tokens.remove(&scope_key);
                });
                self.fetch_token(&key, &realm, &wanted, cred.as_ref())
                    .await?;
                // Serve the caller's scope key from this token too.
                self.with_auth(&key, |s| {
                    if let Some(t) = s.tokens.get(&wanted.join(" ")).cloned() {
                        s.tokens.insert(scope_key.clone(), t);
                    }
                });
                self.send_once(&method, &key, &url, &scope_key, cred.as_ref(), build)
                    .await
            }
            "basic" if matches!(cred, Some(Credential::Basic { .. })) => {
                if sent_basic {
                    return Ok(resp); // credentials were sent and refused
                }
                self.with_auth(&key, |s| s.basic = true);
                self.send_once(&method, &key, &url, &scope_key, cred.as_ref(), build)
                    .await
            }
            _ => Ok(resp),
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        key: &(String, Operation),
        url: &Url,
        scope_key: &str,
        cred: Option<&Credential>,
        build: Build<'_>,
    ) -> Result<Response, Error> {
        let mut rb = self.inner.http.request(method.clone(), url.clone());
        let (token, basic) = self.with_auth(key, |s| (s.token_for(scope_key), s.basic));
        if let Some(t) = token {
            rb = rb.header(AUTHORIZATION, sensitive(&format!("Bearer {t}"))?);
        } else if basic && let Some(Credential::Basic { username, password }) = cred {
            rb = rb.basic_auth(username, Some(password));
        }
        let rb = build(rb)?;
        tracing::debug!(%method, url = %strip_query(url), "registry request");
        rb.send().await.map_err(|e| http_err(method, url, e))
    }

    /// Gets a token for `scopes` from the realm and caches it under the joined scope key.
    ///
    /// Basic credentials (or none) → `GET realm?service=…&scope=…`; an
    /// identity token → OAuth2 `POST` with `grant_type=refresh_token`; a
    /// registry token is used as is.
    async fn fetch_token(
        &self,
        key: &(String, Operation),
        realm: &BearerRealm,
        scopes: &[String],
        cred: Option<&Credential>,
    ) -> Result<String, Error> {
        let registry = key.0.as_str();
        let auth_err = |message: String| Error::Auth {
            registry: registry.to_owned(),
            message,
        };
        let cached = if let Some(Credential::RegistryToken(t)) = cred {
            auth::CachedToken {
                token: t.clone(),
                valid_until: std::time::Instant::now() + Duration::from_secs(3600),
            }
        } else {
            let mut url = Url::parse(&realm.realm)
                .map_err(|e| auth_err(format!("bad token realm {:?}: {e}", realm.realm)))?;
            let rb = if let Some(Credential::IdentityToken(refresh)) = cred {
                let mut form = Url::parse("http://form.invalid/").expect("static URL");
                {
                    let mut q = form.query_pairs_mut();
                    q.append_pair("grant_type", "refresh_token");
                    q.append_pair("refresh_token", refresh);
                    q.append_pair("client_id", "cairn");
                    if let Some(s) = &realm.service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", &scopes.join(" "));
                }
                let body = form.query().unwrap_or_default().to_owned();
                self.inner
                    .http
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            } else {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = &realm.service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                }
                let rb = self.inner.http.get(url.clone());
                match cred {
                    Some(Credential::Basic { username, password }) => {
                        rb.basic_auth(username, Some(password))
                    }
                    _ => rb,
                }
            };
            let resp = rb
                .send()
                .await
                .map_err(|e| http_err(&Method::GET, &url, e))?;
            let status = resp.status();
            if !status.is_success() {
                let body = read_limited(resp, MAX_SMALL_BODY, registry)
                    .await
                    .unwrap_or_default();
                let codes: Vec<String> = parse_error_body(&body)
                    .into_iter()
                    .map(|e| e.code)
                    .collect();
                let op = match key.1 {
                    Operation::Pull => "pull",
                    Operation::Push => "push",
                };
                return Err(auth_err(format!(
                    "token endpoint {} answered {status}{} for scope {:?} ({})",
                    strip_query(&url),
                    if codes.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", codes.join(", "))
                    },
                    scopes.join(" "),
                    match cred {
                        Some(c) => format!("{op} credentials: {}", credential_kind(c)),
                        None => format!("anonymous: no {op} credentials for {registry}"),
                    }
                )));
            }
            let body = read_limited(resp, MAX_SMALL_BODY, registry).await?;
            serde_json::from_slice::<TokenResponse>(&body)
                .ok()
                .and_then(TokenResponse::into_cached)
                .ok_or_else(|| auth_err("token endpoint answered without a token".into()))?
        };
        let token = cached.token.clone();
        self.with_auth(key, |s| {
            s.tokens.insert(scopes.join(" "), cached);
        });
        Ok(token)
    }

    fn with_auth<T>(
        &self,
        key: &(String, Operation),
        f: impl FnOnce(&mut RegistryAuthState) -> T,
    ) -> T {
        let mut map = lock(&self.inner.auth);
        f(map.entry(key.clone()).or_default())
    }

    /// Returns `resp` if its status is expected, else [`Error::Denied`] for
    /// 401/403 and [`Error::Registry`] otherwise, with the parsed body.
    async fn check(
        &self,
        resp: Response,
        registry: &str,
        method: Method,
        expected: &[StatusCode],
    ) -> Result<Response, Error> {
        if expected.contains(&resp.status()) {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let path = resp.url().path().to_owned();
        let body = read_limited(resp, MAX_SMALL_BODY, registry)
            .await
            .unwrap_or_default();
        let errors = parse_error_body(&body);
        if (status == 401 || status == 403)
            && let Some(repository) = repository_of_path(&path)
        {
            let op = Operation::of(&method);
            let action = match method {
                Method::GET | Method::HEAD => "pull",
                Method::DELETE => "delete",
                _ => "push",
            };
            let op_name = match op {
                Operation::Pull => "pull",
                Operation::Push => "push",
            };
            let had = lock(&self.inner.resolved)
                .get(&(registry.to_owned(), op))
                .and_then(|c| c.as_ref().map(credential_kind));
            let credentials = match had {
                Some(kind) => format!("with the {op_name} credentials ({kind})"),
                None => format!("anonymously (no {op_name} credentials for {registry})"),
            };
            return Err(Error::Denied(Box::new(Denied {
                registry: registry.to_owned(),
                repository,
                action: action.to_owned(),
                credentials,
                status,
                errors,
            })));
        }
        Err(Error::Registry {
            registry: registry.to_owned(),
            status,
            method: method.to_string(),
            path,
            errors,
        })
    }
}

/// Runs `f` up to [`MAX_ATTEMPTS`] times while it fails transiently.
async fn retrying<T>(what: &str, f: impl AsyncFn() -> Result<T, Error>) -> Result<T, Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Err(e) if e.is_transient() && attempt < MAX_ATTEMPTS => {
                tracing::warn!(%e, attempt, "{what} failed, retrying");
                tokio::time::sleep(backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

/// What a manifest points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefKind {
    /// config or layer
    Blob,
    /// child of an index
    Manifest,
}

/// Digests a manifest (config, layers) or index (manifests) references.
pub(crate) fn referenced_digests(manifest: &[u8]) -> Result<Vec<(RefKind, Digest)>, String> {
    #[derive(serde::Deserialize)]
    struct Desc {
        digest: String,
    }
    #[derive(serde::Deserialize)]
    struct Any {
        #[serde(default)]
        config: Option<Desc>,
        #[serde(default)]
        layers: Vec<Desc>,
        #[serde(default)]
        manifests: Vec<Desc>,
    }
    let m: Any = serde_json::from_slice(manifest).map_err(|e| format!("not a manifest: {e}"))?;
    let parse = |d: &Desc| {
        Digest::from_str(&d.digest).map_err(|e| format!("bad digest {:?}: {e}", d.digest))
    };
    let mut out = Vec::new();
    for d in m.config.iter().chain(&m.layers) {
        out.push((RefKind::Blob, parse(d)?));
    }
    for d in &m.manifests {
        out.push((RefKind::Manifest, parse(d)?));
    }
    Ok(out)
}

/// The manifest's media type: `Content-Type` if it is one we asked for,
/// else the manifest's own `mediaType` field, else whatever `Content-Type` said.
pub(crate) fn manifest_media_type(content_type: Option<String>, bytes: &[u8]) -> Option<String> {
    match content_type {
        Some(ct) if MANIFEST_ACCEPT.contains(&ct.as_str()) => Some(ct),
        other => serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned))
            .or(other),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn credential_kind(c: &Credential) -> &'static str {
    match c {
        Credential::Basic { .. } => "user name and password",
        Credential::IdentityToken(_) => "identity token",
        Credential::RegistryToken(_) => "registry token",
        #[allow(unreachable_patterns)]
        _ => "credential",
    }
}

/// `/v2/<name>/(blobs|manifests|tags)/…` → `<name>`.
pub(crate) fn repository_of_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    let cut = ["/blobs/", "/manifests/", "/tags/"]
        .iter()
        .filter_map(|m| rest.rfind(m))
        .max()?;
    (cut > 0).then(|| rest[..cut].to_owned())
}

async fn read_limited(resp: Response, limit: usize, registry: &str) -> Result<Vec<u8>, Error> {
    let url = resp.url().clone();
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| http_err(&Method::GET, &url, e))?;
        if out.len() + chunk.len() > limit {
            return Err(Error::Protocol {
                registry: registry.to_owned(),
                message: format!("response from {} larger than {limit} bytes", url.path()),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn http_err(method: &Method, url: &Url, source: reqwest::Error) -> Error {
    let source = source.without_url();
    let mut detail = source.to_string();
    let mut cause = std::error::Error::source(&source);
    while let Some(c) = cause {
        let text = c.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        cause = c.source();
    }
    Error::Http {
        method: method.to_string(),
        url: strip_query(url),
        detail,
        source,
    }
}

fn strip_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

fn sensitive(v: &str) -> Result<HeaderValue, Error> {
    let mut h = HeaderValue::from_str(v).map_err(|_| Error::Protocol {
        registry: String::new(),
        message: "token contains characters not allowed in a header".into(),
    })?;
    h.set_sensitive(true);
    Ok(h)
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)?.to_str().ok().map(|s| s.trim().to_owned())
}

fn media_type_of(h: &HeaderMap) -> Option<String> {
    let ct = header_str(h, CONTENT_TYPE.as_str())?;
    let mt = ct.split(';').next().unwrap_or("").trim().to_owned();
    (!mt.is_empty()).then_some(mt)
}

fn sha256_digest(bytes: &[u8]) -> Digest {
    let s = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    Digest::from_str(&s).expect("a sha256 hex digest is always valid")
}

fn require_sha256(d: &Digest) -> Result<(), Error> {
    if *d.algorithm() == DigestAlgorithm::Sha256 {
        Ok(())
    } else {
        Err(Error::Unsupported(format!(
            "digest algorithm {} (only sha256 is verified)",
            d.algorithm()
        )))
    }
}

/// Exponential backoff (250 ms, 500 ms, 1 s, …, at most 8 s) plus up to 25 % jitter.
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_BASE * 2u32.pow(attempt.saturating_sub(1).min(5));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let secs: u64 = header_str(h, RETRY_AFTER.as_str())?.parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// `<url>; rel="next"` → url
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_owned())
    })
}

/// `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn schemes() {
        let c = Client::new(ClientOptions {
            insecure_registries: vec!["reg.internal:5000".into()],
            ..ClientOptions::default()
        })
        .unwrap();
        assert_eq!(c.base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(c.base_url("reg.internal:5000"), "http://reg.internal:5000");
        assert_eq!(c.base_url("ghcr.io"), "https://ghcr.io");
        assert_eq!(c.base_url("docker.io"), "https://registry-1.docker.io");
    }

    #[test]
    fn link_header() {
        assert_eq!(
            next_link(r#"</v2/foo/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/foo/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"<http://x/y>; rel="prev""#), None);
    }

    #[test]
    fn credentials_not_in_debug() {
        let opts = ClientOptions {
            credentials: Some(("alice".into(), "s3cret".into())),
            ..ClientOptions::default()
        };
        let dbg = format!("{opts:?}");
        assert!(!dbg.contains("s3cret") && !dbg.contains("alice"), "{dbg}");
        let c = Client::new(opts).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cret") && !dbg.contains("alice"), "{dbg}");
    }
}
