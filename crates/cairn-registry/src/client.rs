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
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LINK, LOCATION,
    RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use crate::auth::{self, BearerRealm, RegistryAuthState, TokenResponse};
use crate::error::parse_error_body;
use crate::media_types::MANIFEST_ACCEPT;
use crate::reference::DOCKER_HUB;
use crate::{Error, Reference};

/// Attempts for idempotent requests (GET/HEAD).
const MAX_ATTEMPTS: u32 = 3;
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
    /// always are, without being listed.
    pub insecure_registries: Vec<String>,
    /// `User-Agent` header value.
    pub user_agent: String,
    /// Username and password for basic auth and token requests. Never shown
    /// by `Debug` or in errors.
    pub credentials: Option<(String, String)>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            user_agent: concat!("cairn/", env!("CARGO_PKG_VERSION")).to_owned(),
            credentials: None,
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("insecure_registries", &self.insecure_registries)
            .field("user_agent", &self.user_agent)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
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
    credentials: Option<(String, String)>,
    auth: Mutex<HashMap<String, RegistryAuthState>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("insecure_registries", &self.inner.insecure)
            .field("has_credentials", &self.inner.credentials.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a request; called once per attempt (so streamed bodies can be reopened).
type Build<'a> = &'a (dyn Fn(RequestBuilder) -> Result<RequestBuilder, Error> + Send + Sync);

fn no_body(b: RequestBuilder) -> Result<RequestBuilder, Error> {
    Ok(b)
}

impl Client {
    /// Creates a client (rustls with the ring provider, platform certificate verifier).
    pub fn new(opts: ClientOptions) -> Result<Client, Error> {
        use rustls_platform_verifier::BuilderVerifierExt;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::ClientSetup(e.to_string()))?
            .with_platform_verifier()
            .map_err(|e| Error::ClientSetup(e.to_string()))?
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(opts.user_agent)
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| Error::ClientSetup(e.to_string()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                insecure: opts.insecure_registries,
                credentials: opts.credentials,
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
        let resp = check(resp, &r.registry, Method::GET, &[StatusCode::OK]).await?;
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
        let media_type = match content_type {
            Some(ct) if MANIFEST_ACCEPT.contains(&ct.as_str()) => ct,
            other => serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned))
                .or(other)
                .ok_or_else(|| Error::Protocol {
                    registry: r.registry.clone(),
                    message: format!("manifest {r} has no media type"),
                })?,
        };
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
        let resp = check(resp, &r.registry, Method::HEAD, &[StatusCode::OK]).await?;
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
        check(resp, &repo.registry, Method::HEAD, &[StatusCode::OK]).await?;
        Ok(true)
    }

    /// Downloads blob `d` to `dest`, streaming and verifying sha256 on the way.
    ///
    /// Data goes to a temp file beside `dest`, renamed over `dest` only once
    /// the digest matched. Returns the size. Transient failures (including a
    /// connection cut mid-body) restart the download, up to 3 attempts.
    pub async fn get_blob_to_file(
        &self,
        repo: &Reference,
        d: &Digest,
        dest: &Path,
    ) -> Result<u64, Error> {
        require_sha256(d)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.get_blob_once(repo, d, dest).await {
                Err(e) if e.is_transient() && attempt < MAX_ATTEMPTS => {
                    tracing::warn!(%e, attempt, "blob download failed, retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn get_blob_once(&self, repo: &Reference, d: &Digest, dest: &Path) -> Result<u64, Error> {
        let url = self.url(repo, &format!("blobs/{d}"))?;
        let scopes = [auth::repo_scope(&repo.repository, "pull")];
        let resp = self
            .send(Method::GET, &repo.registry, url.clone(), &scopes, &no_body)
            .await?;
        let resp = check(resp, &repo.registry, Method::GET, &[StatusCode::OK]).await?;
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
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| http_err(&Method::GET, &url, e))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(Error::io(format!("writing {}", tmp_path.display())))?;
        }
        file.flush()
            .await
            .map_err(Error::io(format!("writing {}", tmp_path.display())))?;
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

    /// Uploads the file at `path` as blob `d`, unless the repository already has it.
    ///
    /// Monolithic upload (`POST uploads/`, then `PUT ?digest=`) with a streamed
    /// body and an explicit `Content-Length`; the file is never read into memory.
    pub async fn put_blob_from_file(
        &self,
        repo: &Reference,
        d: &Digest,
        path: &Path,
    ) -> Result<(), Error> {
        if self.blob_exists(repo, d).await? {
            tracing::debug!(%d, repo = %repo.name(), "blob already present, skipping upload");
            return Ok(());
        }
        let len = tokio::fs::metadata(path)
            .await
            .map_err(Error::io(format!("reading metadata of {}", path.display())))?
            .len();
        let scopes = [auth::repo_scope(&repo.repository, "pull,push")];
        let start = self.url(repo, "blobs/uploads/")?;
        let resp = self
            .send(Method::POST, &repo.registry, start, &scopes, &no_body)
            .await?;
        let resp = check(resp, &repo.registry, Method::POST, &[StatusCode::ACCEPTED]).await?;
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
            Ok(resp) => check(resp, &repo.registry, Method::PUT, &[StatusCode::CREATED])
                .await
                .map(drop),
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.cancel_upload(repo, put_url).await;
        }
        result
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
        let resp = self
            .send(Method::POST, &to.registry, url, &scopes, &no_body)
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
            _ => check(resp, &to.registry, Method::POST, &[StatusCode::CREATED])
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
        let resp = self
            .send(Method::PUT, &r.registry, url, &scopes, &|b| {
                Ok(b.header(CONTENT_TYPE, media_type).body(body.clone()))
            })
            .await?;
        let resp = check(resp, &r.registry, Method::PUT, &[StatusCode::CREATED]).await?;
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
            let resp = check(resp, &repo.registry, Method::GET, &[StatusCode::OK]).await?;
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
        check(
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
        let scheme = if is_loopback(registry) || self.inner.insecure.iter().any(|r| r == registry) {
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

    /// Sends with auth and, for GET/HEAD, bounded retries on 5xx/429/connection errors.
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
            let can_retry = idempotent && attempt < MAX_ATTEMPTS;
            match result {
                Ok(resp)
                    if can_retry
                        && (resp.status().is_server_error()
                            || resp.status() == StatusCode::TOO_MANY_REQUESTS) =>
                {
                    let delay = retry_after(resp.headers()).unwrap_or_else(|| backoff(attempt));
                    tracing::warn!(status = %resp.status(), %method, path = url.path(), attempt, "retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) if can_retry && e.is_transient() => {
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
        let scope_key = scopes.join(" ");
        // Proactively fetch a token when we already know the registry wants one.
        let known_realm = self.with_auth(registry, |s| {
            s.bearer
                .clone()
                .filter(|_| s.token_for(&scope_key).is_none())
        });
        if let Some(realm) = known_realm {
            self.fetch_token(registry, &realm, scopes).await?;
        }
        let resp = self
            .send_once(&method, registry, &url, &scope_key, build)
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
                if let Some(s) = challenge.params.get("scope")
                    && !wanted.contains(s)
                {
                    wanted.push(s.clone());
                }
                self.with_auth(registry, |s| {
                    s.bearer = Some(realm.clone());
                    s.tokens.remove(&scope_key);
                });
                let token = self.fetch_token(registry, &realm, &wanted).await?;
                // Serve the caller's scope key from this token too.
                self.with_auth(registry, |s| {
                    if let Some(t) = s.tokens.get(&wanted.join(" ")).cloned() {
                        debug_assert_eq!(t.token, token);
                        s.tokens.insert(scope_key.clone(), t);
                    }
                });
                self.send_once(&method, registry, &url, &scope_key, build)
                    .await
            }
            "basic" if self.inner.credentials.is_some() => {
                let already = self.with_auth(registry, |s| std::mem::replace(&mut s.basic, true));
                if already {
                    return Ok(resp); // credentials were sent and refused
                }
                self.send_once(&method, registry, &url, &scope_key, build)
                    .await
            }
            _ => Ok(resp),
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        registry: &str,
        url: &Url,
        scope_key: &str,
        build: Build<'_>,
    ) -> Result<Response, Error> {
        let mut rb = self.inner.http.request(method.clone(), url.clone());
        let (token, basic) = self.with_auth(registry, |s| (s.token_for(scope_key), s.basic));
        if let Some(t) = token {
            rb = rb.header(AUTHORIZATION, sensitive(&format!("Bearer {t}"))?);
        } else if basic && let Some((u, p)) = &self.inner.credentials {
            rb = rb.basic_auth(u, Some(p));
        }
        let rb = build(rb)?;
        tracing::debug!(%method, url = %strip_query(url), "registry request");
        rb.send().await.map_err(|e| http_err(method, url, e))
    }

    /// Gets a token for `scopes` from the realm and caches it under the joined scope key.
    async fn fetch_token(
        &self,
        registry: &str,
        realm: &BearerRealm,
        scopes: &[String],
    ) -> Result<String, Error> {
        let auth_err = |message: String| Error::Auth {
            registry: registry.to_owned(),
            message,
        };
        let mut url = Url::parse(&realm.realm)
            .map_err(|e| auth_err(format!("bad token realm {:?}: {e}", realm.realm)))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = &realm.service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        let mut rb = self.inner.http.get(url.clone());
        if let Some((u, p)) = &self.inner.credentials {
            rb = rb.basic_auth(u, Some(p));
        }
        let resp = rb
            .send()
            .await
            .map_err(|e| http_err(&Method::GET, &url, e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(auth_err(format!(
                "token endpoint {} answered {status}",
                strip_query(&url)
            )));
        }
        let body = read_limited(resp, MAX_SMALL_BODY, registry).await?;
        let cached = serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::into_cached)
            .ok_or_else(|| auth_err("token endpoint answered without a token".into()))?;
        let token = cached.token.clone();
        self.with_auth(registry, |s| {
            s.tokens.insert(scopes.join(" "), cached);
        });
        Ok(token)
    }

    fn with_auth<T>(&self, registry: &str, f: impl FnOnce(&mut RegistryAuthState) -> T) -> T {
        let mut map = self
            .inner
            .auth
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(map.entry(registry.to_owned()).or_default())
    }
}

/// Returns `resp` if its status is expected, else a [`Error::Registry`] with the parsed body.
async fn check(
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
    let method = method.to_string();
    let body = read_limited(resp, MAX_SMALL_BODY, registry)
        .await
        .unwrap_or_default();
    Err(Error::Registry {
        registry: registry.to_owned(),
        status,
        method,
        path,
        errors: parse_error_body(&body),
    })
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

fn backoff(attempt: u32) -> Duration {
    BACKOFF_BASE * 2u32.pow(attempt.saturating_sub(1))
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
