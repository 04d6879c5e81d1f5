//! Fetching Dev Container Features: OCI artifacts, HTTPS tarballs, local
//! folders and an offline mirror, each into a folder holding
//! `devcontainer-feature.json` and `install.sh`.
//!
//! * **OCI** (`REG/NS/ID[:TAG]`, `…@sha256:…`): the manifest is pulled with
//!   the cairn-registry client (loopback registries over plain HTTP), its
//!   single layer of media type `application/vnd.devcontainers.layer.v1+tar`
//!   (a gzip'd tar, `…+tar+gzip`, is accepted too) is downloaded, verified
//!   and unpacked with cairn-oci's safe unpacker into a fresh folder under
//!   the work dir. Tags are resolved as given (`:1` is a tag the publisher
//!   pushes, as `devcontainer features publish` does). Identity:
//!   `REG/PATH@sha256:<manifest digest>`, which is also the lockfile's
//!   `resolved`; `integrity` is the manifest digest, as the reference CLI
//!   records them. With a lockfile entry for the reference as written, the
//!   manifest is fetched by the locked digest (`integrity`, as the CLI
//!   does) instead of the tag; a reference with its own digest uses that.
//! * **Tarball** (`https://…`; `http://` only to loopback hosts): streamed
//!   to a file while hashed, checked against the lockfile's `integrity`
//!   when there is an entry, unpacked safely (plain or gzip'd tar).
//!   Identity `URL@sha256:<hex of the file>`; `resolved` the URL,
//!   `integrity` `sha256:<hex>`.
//! * **Local** (`./path`, `../path`): resolved against the config file's
//!   folder and, as in the reference CLI, refused unless it lies (lexically)
//!   inside the workspace's `.devcontainer` folder
//!   ([`FeatureFetchOptions::local_root`]). Used in place, not copied.
//!   Identity `<path as written>@tree:sha256:<hex>`, a digest of the
//!   folder's paths, modes and contents, so editing the folder changes it.
//!   Never locked.
//! * **Mirror** ([`FeatureFetchOptions::mirror`], `--feature-mirror` /
//!   `CAIRN_FEATURE_MIRROR`): OCI and tarball Features come from
//!   `MIRROR/<FeatureRef::mirror_path()>/` (already unpacked folders, used
//!   in place), never from the network; a missing folder is an error naming
//!   the path expected. The mirror holds no manifest, so the identity is
//!   `<REG/PATH or URL>@tree:sha256:<hex>` of the folder: **a mirrored build
//!   gets other cache keys than the same Feature fetched from its
//!   registry**. Mirrored Features keep the lockfile entry they had
//!   ([`lockfile_for`]); it is not verified against the folder.
//!
//! [`resolve_all`] is the async counterpart of
//! `cairn_devcontainer::order::resolve_features`: it fetches every Feature
//! and the `dependsOn` Features they pull in, level by level, the Features
//! of one level concurrently (at most four at a time).

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_devcontainer::FeatureMetadata;
use cairn_devcontainer::FeatureRef;
use cairn_devcontainer::lockfile::{LockEntry, Lockfile};
use cairn_devcontainer::order::{DependencyResolver, FeatureNode, PendingFeature, ResolvedFeature};
use cairn_registry::{Digest, Reference};
use serde_json::Value;

use crate::Error;

/// The layer media type of a Feature published by the devcontainer CLI.
pub const FEATURE_LAYER_MEDIA_TYPE: &str = "application/vnd.devcontainers.layer.v1+tar";
/// A gzip'd variant, accepted too.
pub const FEATURE_LAYER_MEDIA_TYPE_GZIP: &str = "application/vnd.devcontainers.layer.v1+tar+gzip";

/// Where Features come from and go to.
#[derive(Debug, Clone)]
pub struct FeatureFetchOptions {
    /// The devcontainer.json (local Features resolve against its folder).
    pub config_file: PathBuf,
    /// The workspace's `.devcontainer` folder: local Features must lie in it.
    pub local_root: PathBuf,
    /// Fetched Features are unpacked into fresh folders here (created when
    /// missing); the caller removes it.
    pub work_dir: PathBuf,
    /// The offline mirror, when set: no network at all.
    pub mirror: Option<PathBuf>,
    /// The lockfile read beside the config (pins OCI digests and tarball
    /// integrity), `None` for none or `--no-lockfile`.
    pub lockfile: Option<Lockfile>,
    /// An extra CA certificate (PEM file) for tarball downloads.
    pub ca_cert: Option<PathBuf>,
    /// Resolve OCI Features from their manifest alone when it carries the
    /// `dev.containers.metadata` annotation (as `devcontainer features publish`
    /// writes it), and download the layer only in
    /// [`FeatureFetcher::materialize`]: planning and a config-hash hit then cost a
    /// manifest GET per Feature and no blob.
    pub defer_layers: bool,
}

/// Where a fetched Feature came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureSource {
    /// An OCI registry.
    Oci,
    /// An HTTP(S) tarball.
    Tarball,
    /// A folder beside the config.
    Local,
    /// The offline mirror.
    Mirror,
}

/// A Feature ready to install.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedFeature {
    /// The reference as written (in `features` or a `dependsOn`).
    pub user_id: String,
    /// The folder with `devcontainer-feature.json`, `install.sh`, ….
    pub dir: PathBuf,
    /// Its identity (see the module doc).
    pub canonical_id: String,
    /// `version` from its metadata.
    pub version: String,
    /// The lockfile's `resolved` (OCI and tarball Features fetched from the
    /// network), else `None`.
    pub resolved: Option<String>,
    /// The lockfile's `integrity` (`sha256:…`), else `None`.
    pub integrity: Option<String>,
    /// Where it came from.
    pub source: FeatureSource,
    /// Its parsed `devcontainer-feature.json`.
    pub metadata: FeatureMetadata,
    /// The keys of its `dependsOn` in the file's order (what the lockfile
    /// lists; `metadata.depends_on` is sorted).
    pub depends_on: Vec<String>,
    /// The layer still to download into `dir` (see
    /// [`FeatureFetchOptions::defer_layers`]); `None` once `dir` is filled.
    pub deferred: Option<DeferredLayer>,
}

/// An OCI Feature's layer not downloaded yet.
#[derive(Debug, Clone, PartialEq)]
pub struct DeferredLayer {
    /// The manifest it belongs to (by digest).
    pub reference: Reference,
    /// The layer's digest.
    pub digest: Digest,
}

/// The manifest annotation that carries a Feature's `devcontainer-feature.json`.
pub const METADATA_ANNOTATION: &str = "dev.containers.metadata";

/// Fetches Features; remembers what it fetched (a reference is fetched once).
#[derive(Debug)]
pub struct FeatureFetcher {
    registry: cairn_registry::Client,
    http: reqwest::Client,
    opts: FeatureFetchOptions,
    config_dir: PathBuf,
    seq: AtomicUsize,
    done: Mutex<HashMap<String, FetchedFeature>>,
}

fn feature_err(reference: &str, message: impl std::fmt::Display) -> Error {
    Error::Image(format!("Feature `{reference}`: {message}"))
}

/// `.` and `..` removed without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn absolute(p: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(p)
        .map(|p| normalize(&p))
        .map_err(|e| Error::io("resolve", p, e))
}

impl FeatureFetcher {
    /// A fetcher pulling OCI Features with `registry` (its credentials and
    /// insecure-registry settings apply).
    pub fn new(
        registry: cairn_registry::Client,
        opts: FeatureFetchOptions,
    ) -> Result<FeatureFetcher, Error> {
        let http = crate::fetch::http_client(opts.ca_cert.as_deref())?;
        let config_dir = absolute(opts.config_file.parent().unwrap_or(Path::new(".")))?;
        std::fs::create_dir_all(&opts.work_dir)
            .map_err(|e| Error::io("create", &opts.work_dir, e))?;
        Ok(FeatureFetcher {
            registry,
            http,
            opts,
            config_dir,
            seq: AtomicUsize::new(0),
            done: Mutex::new(HashMap::new()),
        })
    }

    /// Fetches one Feature (once per reference as written).
    pub async fn fetch(&self, pending: &PendingFeature) -> Result<FetchedFeature, Error> {
        if let Some(f) = self
            .done
            .lock()
            .expect("fetch cache lock")
            .get(&pending.user_id)
        {
            return Ok(f.clone());
        }
        let id = pending.user_id.as_str();
        let fetched = match (&pending.reference, &self.opts.mirror) {
            (FeatureRef::Local { path }, _) => self.local(id, path)?,
            (r, Some(mirror)) => self.mirrored(id, r, mirror)?,
            (
                FeatureRef::Oci {
                    registry,
                    path,
                    tag,
                    digest,
                },
                None,
            ) => {
                let reference = Reference {
                    registry: registry.clone(),
                    repository: path.clone(),
                    tag: tag.clone(),
                    digest: None,
                };
                self.oci(id, &pending.reference, reference, digest.as_deref())
                    .await?
            }
            (FeatureRef::Tarball { url }, None) => self.tarball(id, url).await?,
        };
        self.done
            .lock()
            .expect("fetch cache lock")
            .insert(pending.user_id.clone(), fetched.clone());
        Ok(fetched)
    }

    /// Downloads and unpacks a Feature's deferred layer into its `dir`, and
    /// checks that the folder says what the manifest's annotation said (the
    /// build installs from the folder; the plan was made from the annotation).
    pub async fn materialize(&self, f: &FetchedFeature) -> Result<(), Error> {
        let Some(layer) = &f.deferred else {
            return Ok(());
        };
        if f.dir.join("devcontainer-feature.json").exists() {
            return Ok(());
        }
        let id = f.user_id.as_str();
        self.download_layer(id, layer, &f.dir).await?;
        let (metadata, _) = read_feature(id, &f.dir)?;
        if metadata != f.metadata {
            return Err(feature_err(
                id,
                format!(
                    "the manifest's {METADATA_ANNOTATION} annotation and the layer's devcontainer-feature.json differ"
                ),
            ));
        }
        Ok(())
    }

    /// Downloads `layer` (verified) and unpacks it into the folder `dir` (made
    /// when missing); on failure `dir` is removed.
    async fn download_layer(
        &self,
        id: &str,
        layer: &DeferredLayer,
        dir: &Path,
    ) -> Result<(), Error> {
        let blob = dir.with_extension("layer");
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        let result = async {
            self.registry
                .get_blob_to_file(&layer.reference, &layer.digest, &blob)
                .await
                .map_err(Error::registry(format!(
                    "Feature `{id}`: download the layer {}",
                    layer.digest
                )))?;
            unpack(id, &blob, dir).await
        }
        .await;
        let _ = std::fs::remove_file(&blob);
        if result.is_err() {
            // Nothing of a failed download is left behind.
            let _ = std::fs::remove_dir_all(dir);
        }
        result
    }

    fn lock_entry(&self, id: &str) -> Option<&LockEntry> {
        self.opts.lockfile.as_ref()?.features.get(id)
    }

    /// A fresh folder under the work dir for `reference`.
    fn fresh_dir(&self, reference: &FeatureRef) -> Result<PathBuf, Error> {
        let name: String = reference
            .short_id()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        loop {
            let n = self.seq.fetch_add(1, Ordering::SeqCst);
            let dir = self.opts.work_dir.join(format!("feature-{n:03}-{name}"));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create", &dir, e)),
            }
        }
    }

    /// `reference` is `r` without its digest; `digest` is the one written.
    async fn oci(
        &self,
        id: &str,
        r: &FeatureRef,
        mut reference: Reference,
        digest: Option<&str>,
    ) -> Result<FetchedFeature, Error> {
        let pinned = match (digest, self.lock_entry(id)) {
            (Some(d), _) => Some(d.to_string()),
            (None, Some(entry)) => Some(entry.integrity.clone()),
            (None, None) => None,
        };
        let digest = pinned
            .map(|d| {
                Digest::from_str(&d).map_err(|e| feature_err(id, format!("bad digest `{d}`: {e}")))
            })
            .transpose()?;
        reference.digest = digest;
        let manifest = self
            .registry
            .get_manifest(&reference)
            .await
            .map_err(Error::registry(format!(
                "Feature `{id}`: fetch the manifest {reference}"
            )))?;
        let doc: Value = serde_json::from_slice(&manifest.bytes)
            .map_err(|e| feature_err(id, format!("the manifest is not JSON: {e}")))?;
        let layers = doc["layers"].as_array().cloned().unwrap_or_default();
        let wanted: Vec<&Value> = layers
            .iter()
            .filter(|l| {
                matches!(
                    l["mediaType"].as_str(),
                    Some(FEATURE_LAYER_MEDIA_TYPE | FEATURE_LAYER_MEDIA_TYPE_GZIP)
                )
            })
            .collect();
        let [layer] = wanted.as_slice() else {
            let found: Vec<&str> = layers
                .iter()
                .map(|l| l["mediaType"].as_str().unwrap_or("?"))
                .collect();
            return Err(feature_err(
                id,
                format!(
                    "{reference} is not a Dev Container Feature: expected one layer of media type {FEATURE_LAYER_MEDIA_TYPE}, found [{}] (manifest media type {})",
                    found.join(", "),
                    manifest.media_type
                ),
            ));
        };
        let layer_digest = layer["digest"]
            .as_str()
            .and_then(|d| Digest::from_str(d).ok())
            .ok_or_else(|| feature_err(id, "the layer has no valid digest"))?;
        let dir = self.fresh_dir(r)?;
        let canonical_id = format!("{}@{}", reference.name(), manifest.digest);
        reference.digest = Some(manifest.digest.clone());
        let layer = DeferredLayer {
            reference: reference.clone(),
            digest: layer_digest,
        };
        let annotated = doc["annotations"][METADATA_ANNOTATION].as_str();
        let (metadata, depends_on, deferred) = match annotated {
            Some(text) if self.opts.defer_layers => {
                let metadata = FeatureMetadata::parse(
                    text,
                    &format!("the {METADATA_ANNOTATION} annotation of Feature `{id}`"),
                )?;
                let keys = cairn_devcontainer::lockfile::depends_on_keys(text);
                (metadata, keys, Some(layer))
            }
            _ => {
                self.download_layer(id, &layer, &dir).await?;
                let (metadata, keys) = read_feature(id, &dir)?;
                (metadata, keys, None)
            }
        };
        Ok(FetchedFeature {
            user_id: id.to_string(),
            dir,
            resolved: Some(canonical_id.clone()),
            integrity: Some(manifest.digest.to_string()),
            canonical_id,
            version: metadata.version.clone(),
            source: FeatureSource::Oci,
            metadata,
            depends_on,
            deferred,
        })
    }

    async fn tarball(&self, id: &str, url: &str) -> Result<FetchedFeature, Error> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| feature_err(id, format!("bad URL: {e}")))?;
        if parsed.scheme() != "https" && !is_loopback_url(&parsed) {
            return Err(feature_err(
                id,
                "tarball Features are fetched over https:// (http:// only from a loopback host)",
            ));
        }
        let expected = self.lock_entry(id).map(|e| e.integrity.clone());
        let dir = self.fresh_dir(&FeatureRef::Tarball {
            url: url.to_string(),
        })?;
        let file = dir.with_extension("tgz");
        let result = async {
            let got = self.download(id, url, &file).await?;
            if let Some(want) = &expected
                && *want != got
            {
                return Err(feature_err(
                    id,
                    format!(
                        "the download's digest {got} does not match the lockfile's integrity {want}"
                    ),
                ));
            }
            unpack(id, &file, &dir).await?;
            Ok(got)
        }
        .await;
        let _ = std::fs::remove_file(&file);
        let integrity = match result {
            Ok(d) => d,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let (metadata, depends_on) = read_feature(id, &dir)?;
        Ok(FetchedFeature {
            user_id: id.to_string(),
            canonical_id: format!("{url}@{integrity}"),
            dir,
            resolved: Some(url.to_string()),
            integrity: Some(integrity),
            version: metadata.version.clone(),
            source: FeatureSource::Tarball,
            metadata,
            depends_on,
            deferred: None,
        })
    }

    /// Streams `url` into `dest`; returns `sha256:<hex>` of the bytes.
    async fn download(&self, id: &str, url: &str, dest: &Path) -> Result<String, Error> {
        let fail = |m: String| feature_err(id, format!("download: {m}"));
        let only_https = |end: &reqwest::Url| {
            if end.scheme() != "https" && !is_loopback_url(end) {
                Err(format!(
                    "redirected to {end}: only https:// (or http:// on loopback) is followed"
                ))
            } else {
                Ok(())
            }
        };
        let hex = crate::fetch::fetch_to_file(&self.http, url, dest, &fail, &only_https).await?;
        Ok(format!("sha256:{hex}"))
    }

    fn local(&self, id: &str, path: &str) -> Result<FetchedFeature, Error> {
        let dir = normalize(&self.config_dir.join(path));
        let root = absolute(&self.opts.local_root)?;
        if !dir.starts_with(&root) || dir == root {
            return Err(feature_err(
                id,
                format!(
                    "a local Feature must be a folder inside {} (it resolves to {})",
                    root.display(),
                    dir.display()
                ),
            ));
        }
        if !dir.is_dir() {
            return Err(feature_err(
                id,
                format!("{} is not a folder", dir.display()),
            ));
        }
        self.in_place(id, path, dir, FeatureSource::Local)
    }

    fn mirrored(&self, id: &str, r: &FeatureRef, mirror: &Path) -> Result<FetchedFeature, Error> {
        let rel = r
            .mirror_path()
            .expect("only OCI and tarball Features are mirrored");
        let dir = mirror.join(&rel);
        if !dir.is_dir() {
            return Err(feature_err(
                id,
                format!(
                    "not in the offline mirror: expected the unpacked Feature folder at {}",
                    dir.display()
                ),
            ));
        }
        self.in_place(id, &r.id_without_version(), dir, FeatureSource::Mirror)
    }

    fn in_place(
        &self,
        id: &str,
        name: &str,
        dir: PathBuf,
        source: FeatureSource,
    ) -> Result<FetchedFeature, Error> {
        let (metadata, depends_on) = read_feature(id, &dir)?;
        let tree = crate::keys::tree_digest(&dir, ".", &|_| false)
            .map_err(|e| Error::io("read", &dir, e))?;
        Ok(FetchedFeature {
            user_id: id.to_string(),
            canonical_id: format!("{name}@tree:{tree}"),
            dir,
            resolved: None,
            integrity: None,
            version: metadata.version.clone(),
            source,
            metadata,
            depends_on,
            deferred: None,
        })
    }
}

/// `http://` to `localhost` or a loopback address.
fn is_loopback_url(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    url.scheme() == "http"
        && (host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()))
}

/// Unpacks the (plain or gzip'd) tar `archive` into `dir`, never outside it.
async fn unpack(id: &str, archive: &Path, dir: &Path) -> Result<(), Error> {
    let (archive, dir) = (archive.to_path_buf(), dir.to_path_buf());
    let context = format!("Feature `{id}`: unpack {}", archive.display());
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&archive).map_err(|e| Error::io("open", &archive, e))?;
        let reader = cairn_oci::open_layer_reader(file).map_err(Error::oci(context.clone()))?;
        let opts = cairn_oci::ApplyOptions {
            ignore_chown_errors: true,
        };
        cairn_oci::apply_layer(reader, &dir, &opts).map_err(Error::oci(context))?;
        Ok(())
    })
    .await
    .map_err(|e| feature_err(id, format!("unpack task failed: {e}")))?
}

/// Checks `dir` holds a Feature; its metadata and `dependsOn` keys in order.
fn read_feature(id: &str, dir: &Path) -> Result<(FeatureMetadata, Vec<String>), Error> {
    let meta = dir.join("devcontainer-feature.json");
    let text = match std::fs::read_to_string(&meta) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(feature_err(id, format!("{} is missing", meta.display())));
        }
        Err(e) => return Err(Error::io("read", &meta, e)),
    };
    let metadata = FeatureMetadata::parse(
        &text,
        &format!("devcontainer-feature.json of Feature `{id}`"),
    )
    .map_err(Error::from)?;
    let install = dir.join("install.sh");
    if !install.is_file() {
        return Err(feature_err(
            id,
            format!(
                "{} is missing (every Feature needs an install.sh entrypoint)",
                install.display()
            ),
        ));
    }
    Ok((
        metadata,
        cairn_devcontainer::lockfile::depends_on_keys(&text),
    ))
}

/// Every Feature to install, with what was fetched for it.
#[derive(Debug, Clone)]
pub struct ResolvedFeatures {
    /// The dependency graph (`cairn_devcontainer::order::install_order`
    /// takes it).
    pub nodes: Vec<FeatureNode>,
    /// What was fetched for each node, indexed like `nodes`.
    pub features: Vec<FetchedFeature>,
    /// Every reference fetched (one per reference as written, in fetch
    /// order): what the lockfile is made from.
    pub fetched: Vec<FetchedFeature>,
}

/// Fetches `features` (devcontainer.json's, reference → options) and every
/// Feature their `dependsOn` pulls in.
pub async fn resolve_all(
    fetcher: &FeatureFetcher,
    features: &BTreeMap<String, Value>,
) -> Result<ResolvedFeatures, Error> {
    use futures_util::{StreamExt, TryStreamExt};
    let mut resolver = DependencyResolver::new(features)?;
    let mut fetched: Vec<FetchedFeature> = Vec::new();
    loop {
        // Everything pending now is fetched concurrently (each reference
        // once), then supplied in queue order, so the result does not
        // depend on which download finishes first.
        let batch: Vec<PendingFeature> = std::iter::from_fn(|| resolver.next_pending()).collect();
        if batch.is_empty() {
            break;
        }
        let mut unique: Vec<&PendingFeature> = Vec::new();
        for p in &batch {
            if !unique.iter().any(|u| u.user_id == p.user_id) {
                unique.push(p);
            }
        }
        let got: Vec<FetchedFeature> =
            futures_util::stream::iter(unique.iter().map(|p| fetcher.fetch(p)))
                .buffered(crate::TRANSFERS)
                .try_collect()
                .await?;
        for f in &got {
            if !fetched.iter().any(|x| x.user_id == f.user_id) {
                fetched.push(f.clone());
            }
        }
        for pending in batch {
            let f = got
                .iter()
                .find(|f| f.user_id == pending.user_id)
                .expect("every pending reference was fetched");
            let resolved = ResolvedFeature {
                canonical_id: f.canonical_id.clone(),
                metadata: f.metadata.clone(),
            };
            resolver.supply(pending, resolved)?;
        }
    }
    let nodes = resolver.finish();
    let features = nodes
        .iter()
        .map(|n| {
            fetched
                .iter()
                .find(|f| f.canonical_id == n.canonical_id)
                .cloned()
                .expect("every node was fetched")
        })
        .collect();
    Ok(ResolvedFeatures {
        nodes,
        features,
        fetched,
    })
}

/// The lockfile for `fetched` as the devcontainer CLI writes it: one entry
/// per OCI or tarball Feature fetched from the network, keyed by the
/// reference as written; mirrored Features keep their entry from
/// `previous`; local Features are not locked.
pub fn lockfile_for(fetched: &[FetchedFeature], previous: Option<&Lockfile>) -> Lockfile {
    let mut lock = Lockfile::default();
    for f in fetched {
        let entry = match (f.source, &f.resolved, &f.integrity) {
            (FeatureSource::Oci | FeatureSource::Tarball, Some(resolved), Some(integrity)) => {
                LockEntry {
                    version: f.version.clone(),
                    resolved: resolved.clone(),
                    integrity: integrity.clone(),
                    depends_on: f.depends_on.clone(),
                }
            }
            (FeatureSource::Mirror, _, _) => {
                match previous.and_then(|p| p.features.get(&f.user_id)) {
                    Some(e) => e.clone(),
                    None => continue,
                }
            }
            _ => continue,
        };
        lock.features.insert(f.user_id.clone(), entry);
    }
    lock
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(
            normalize(Path::new("/w/.devcontainer/./a/../b")),
            Path::new("/w/.devcontainer/b")
        );
        assert_eq!(
            normalize(Path::new("/w/.devcontainer/../../x")),
            Path::new("/x")
        );
    }
}
