//! The registry layer cache: one immutable manifest per step key in a cache
//! repository (`--cache-repo`), and whole images recorded under their final key.
//!
//! An entry is an OCI image manifest tagged `cairn-v1-<key>`: its layers are the
//! step's layer (none for an empty change), its config the empty JSON blob, and its
//! annotation `dev.cairn.cache.entry` the [`EntryMeta`] — so a lookup is one GET
//! of a small manifest and never a blob download. Entries are never overwritten:
//! a tag that exists already is left alone (two builders racing on the same key
//! write the same content anyway). Blobs go first, the tag last, so a tag never
//! points at a missing blob.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_oci::{Digest, media_types};
use cairn_registry::{Client, Reference};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::keys::StepKey;

/// Annotation that carries an entry's metadata.
pub const ENTRY_ANNOTATION: &str = "dev.cairn.cache.entry";
/// Annotation on recorded images: the build's duration in milliseconds.
pub const IMAGE_DURATION_ANNOTATION: &str = "dev.cairn.cache.build-duration-ms";
/// The empty JSON config blob (`{}`) of the OCI image spec.
pub const EMPTY_JSON: &[u8] = b"{}";
/// Its media type.
pub const EMPTY_JSON_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// A layer as a cache entry records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Media type.
    pub media_type: String,
    /// Compressed digest.
    pub digest: String,
    /// Compressed size.
    pub size: u64,
    /// Uncompressed digest.
    pub diff_id: String,
}

/// What an entry records about a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    /// `cairn-cache-entry/v1`.
    pub scheme: String,
    /// The step key (hex).
    pub key: String,
    /// The layer; `None` when the step changed nothing.
    pub layer: Option<LayerRecord>,
    /// The history line of the step.
    pub created_by: String,
    /// How long the step took when it ran.
    pub duration_ms: u64,
    /// Digests of the key's inputs, by name, for `--explain`.
    pub inputs: BTreeMap<String, String>,
    /// When the entry was written (seconds since the epoch; metadata for pruning,
    /// never part of a key).
    #[serde(default)]
    pub created_unix: u64,
}

/// The registry cache backend.
#[derive(Debug, Clone)]
pub struct RegistryCache {
    client: Client,
    repo: Reference,
    /// Never write (`--cache-readonly`).
    pub readonly: bool,
}

/// The manifest of a cache entry: the empty config, `layers`, and one annotation.
fn entry_manifest(
    empty: &Digest,
    layers: Vec<serde_json::Value>,
    annotation: (&str, String),
) -> Result<Vec<u8>, Error> {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": { "mediaType": EMPTY_JSON_MEDIA_TYPE, "digest": empty.to_string(), "size": EMPTY_JSON.len() },
        "layers": layers,
        "annotations": { annotation.0: annotation.1 },
    });
    cairn_oci::canonical_json(&manifest).map_err(Error::oci("cache entry"))
}

/// The layer of an entry as a manifest descriptor.
fn layer_json(l: &LayerRecord) -> serde_json::Value {
    serde_json::json!({ "mediaType": l.media_type, "digest": l.digest, "size": l.size })
}

fn json_err(what: &str, e: serde_json::Error) -> Error {
    Error::Image(format!("cache {what}: {e}"))
}

impl RegistryCache {
    /// A cache in `repo` (`REGISTRY/REPOSITORY`, any tag ignored).
    pub fn new(client: Client, repo: Reference, readonly: bool) -> RegistryCache {
        RegistryCache {
            client,
            repo,
            readonly,
        }
    }

    /// The repository (for blob mounts).
    pub fn repo(&self) -> &Reference {
        &self.repo
    }

    fn at(&self, tag: &str) -> Reference {
        self.repo.with_tag(tag)
    }

    async fn meta_at(&self, tag: &str) -> Result<Option<Option<EntryMeta>>, Error> {
        let fetched = match self.client.get_manifest(&self.at(tag)).await {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(Error::registry(format!("look up cache entry {tag}"))(e)),
        };
        let doc: serde_json::Value =
            serde_json::from_slice(&fetched.bytes).map_err(|e| json_err("entry manifest", e))?;
        Ok(Some(
            doc["annotations"][ENTRY_ANNOTATION]
                .as_str()
                .and_then(|s| serde_json::from_str::<EntryMeta>(s).ok()),
        ))
    }

    /// The entry a (position) tag points at, if any (errors count as none).
    pub async fn get_tag(&self, tag: &str) -> Option<EntryMeta> {
        self.meta_at(tag).await.ok().flatten().flatten()
    }

    /// Points `tag` at the entry of `key` (a mutable hint tag, not an entry).
    pub async fn retag(&self, key: &StepKey, tag: &str) -> Result<(), Error> {
        if self.readonly {
            return Ok(());
        }
        let f = self
            .client
            .get_manifest(&self.at(&key.tag()))
            .await
            .map_err(Error::registry("read a cache entry"))?;
        self.client
            .put_manifest(&self.at(tag), &f.media_type, &f.bytes)
            .await
            .map_err(Error::registry("tag a cache entry"))?;
        Ok(())
    }

    /// Looks a step up: `Ok(None)` on a miss. A malformed entry is a miss, with a
    /// warning.
    pub async fn get(&self, key: &StepKey) -> Result<Option<EntryMeta>, Error> {
        let Some(meta) = self.meta_at(&key.tag()).await? else {
            return Ok(None);
        };
        match meta {
            Some(m) if m.key == key.hex() => Ok(Some(m)),
            _ => {
                tracing::warn!("cache entry {} is malformed; ignoring it", key.tag());
                Ok(None)
            }
        }
    }

    /// Records a step: the layer blob (from `layer_path`) first, then the tag.
    pub async fn put(
        &self,
        key: &StepKey,
        meta: &EntryMeta,
        layer_path: Option<&Path>,
        store: &cairn_oci::ContentStore,
    ) -> Result<(), Error> {
        if self.readonly {
            return Ok(());
        }
        let tag = self.at(&key.tag());
        if self
            .client
            .head_manifest(&tag)
            .await
            .map_err(Error::registry("look up a cache tag"))?
            .is_some()
        {
            return Ok(()); // immutable: somebody wrote it first
        }
        let empty = self.ensure_empty_config(store).await?;
        let mut layers = Vec::new();
        if let (Some(l), Some(path)) = (&meta.layer, layer_path) {
            let d: Digest = l
                .digest
                .parse()
                .map_err(|e| Error::Image(format!("cache layer digest: {e}")))?;
            self.client
                .put_blob_from_file(&self.repo, &d, path)
                .await
                .map_err(Error::registry(format!("push layer {d} to the cache")))?;
            layers.push(layer_json(l));
        }
        let meta_json = serde_json::to_string(meta).map_err(|e| json_err("entry", e))?;
        let bytes = entry_manifest(&empty, layers, (ENTRY_ANNOTATION, meta_json))?;
        self.client
            .put_manifest(&tag, media_types::OCI_MANIFEST, &bytes)
            .await
            .map_err(Error::registry(format!("write cache entry {}", key.tag())))?;
        Ok(())
    }

    async fn ensure_empty_config(&self, store: &cairn_oci::ContentStore) -> Result<Digest, Error> {
        let d = store
            .put_bytes(EMPTY_JSON)
            .map_err(Error::oci("store the empty config"))?;
        self.client
            .put_blob_from_file(&self.repo, &d, &store.blob_path(&d))
            .await
            .map_err(Error::registry("push the empty config to the cache"))?;
        Ok(d)
    }

    /// The manifest of an image recorded under `key`, if any.
    pub async fn get_image(
        &self,
        key: &StepKey,
    ) -> Result<Option<cairn_registry::FetchedManifest>, Error> {
        match self.client.get_manifest(&self.at(&key.image_tag())).await {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(Error::registry("look up the cached image")(e)),
        }
    }

    /// The tag under which the image of `key` is recorded.
    pub fn image_ref(&self, key: &StepKey) -> Reference {
        self.at(&key.image_tag())
    }

    /// Records how long the build of the image `key` took (a small side entry, so
    /// that the image manifest itself stays byte-identical to the one pushed).
    pub async fn put_image_duration(
        &self,
        key: &StepKey,
        duration_ms: u64,
        store: &cairn_oci::ContentStore,
    ) -> Result<(), Error> {
        if self.readonly {
            return Ok(());
        }
        let at = self.at(&format!("{}-meta", key.image_tag()));
        put_duration_entry(&self.client, store, &at, duration_ms).await
    }

    /// How long the image `key` took to build, if recorded.
    pub async fn image_duration(&self, key: &StepKey) -> Option<u64> {
        let f = self
            .client
            .get_manifest(&self.at(&format!("{}-meta", key.image_tag())))
            .await
            .ok()?;
        let doc: serde_json::Value = serde_json::from_slice(&f.bytes).ok()?;
        doc["annotations"][IMAGE_DURATION_ANNOTATION]
            .as_str()?
            .parse()
            .ok()
    }
}

/// Pushes the side entry `at` that records a build's duration in its
/// [`IMAGE_DURATION_ANNOTATION`] (an empty-config manifest with no layers).
pub(crate) async fn put_duration_entry(
    client: &Client,
    store: &cairn_oci::ContentStore,
    at: &Reference,
    duration_ms: u64,
) -> Result<(), Error> {
    let empty = store
        .put_bytes(EMPTY_JSON)
        .map_err(Error::oci("store the empty config"))?;
    client
        .put_blob_from_file(at, &empty, &store.blob_path(&empty))
        .await
        .map_err(Error::registry("push the empty config"))?;
    let bytes = entry_manifest(
        &empty,
        vec![],
        (IMAGE_DURATION_ANNOTATION, duration_ms.to_string()),
    )?;
    client
        .put_manifest(at, media_types::OCI_MANIFEST, &bytes)
        .await
        .map_err(Error::registry("record the build duration"))?;
    Ok(())
}

/// A cache in a local directory (`--layer-cache-dir`), laid out as an OCI image
/// layout: `blobs/sha256/…` hold layers, configs and entry manifests;
/// `index.json` lists every entry with its tag as `org.opencontainers.image.ref.name`;
/// `entries/<tag>` points at an entry's manifest for O(1) lookups. Writers take an
/// exclusive `flock` on the directory; entries are immutable as in the registry.
#[derive(Debug, Clone)]
pub struct DirCache {
    root: std::path::PathBuf,
    /// Never write.
    pub readonly: bool,
}

fn io_err(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::Image(format!("layer cache dir: {what} `{}`: {e}", p.display()))
}

impl DirCache {
    /// A cache at `root` (created on first write).
    pub fn new(root: impl Into<std::path::PathBuf>, readonly: bool) -> DirCache {
        DirCache {
            root: root.into(),
            readonly,
        }
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives.
    pub fn blob_path(&self, d: &Digest) -> std::path::PathBuf {
        self.root.join("blobs/sha256").join(d.digest())
    }

    fn entry_path(&self, tag: &str) -> std::path::PathBuf {
        self.root.join("entries").join(tag)
    }

    /// The manifest bytes and digest recorded under `tag`, if any.
    pub fn manifest(&self, tag: &str) -> Option<(Vec<u8>, Digest)> {
        let digest: Digest = std::fs::read_to_string(self.entry_path(tag))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let bytes = std::fs::read(self.blob_path(&digest)).ok()?;
        (cairn_oci::sha256_digest(&bytes) == digest).then_some((bytes, digest))
    }

    /// An entry's metadata.
    pub fn get(&self, key: &StepKey) -> Option<EntryMeta> {
        self.get_tag(&key.tag()).filter(|m| m.key == key.hex())
    }

    /// The entry a tag points at.
    pub fn get_tag(&self, tag: &str) -> Option<EntryMeta> {
        let (bytes, _) = self.manifest(tag)?;
        let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        serde_json::from_str(doc["annotations"][ENTRY_ANNOTATION].as_str()?).ok()
    }

    /// Copies (hardlinks where possible) a blob from the store into the cache.
    fn put_blob(&self, store: &cairn_oci::ContentStore, d: &Digest) -> Result<(), Error> {
        let dest = self.blob_path(d);
        if dest.is_file() {
            return Ok(());
        }
        let src = store.blob_path(d);
        let dir = dest.parent().expect("blob paths have a parent");
        std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
        let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), d.digest()));
        if std::fs::hard_link(&src, &tmp).is_err() {
            std::fs::copy(&src, &tmp).map_err(|e| io_err("copy", &src, e))?;
        }
        std::fs::rename(&tmp, &dest).map_err(|e| io_err("rename", &dest, e))
    }

    /// Copies a blob of the cache into the store (verified).
    pub fn get_blob(&self, store: &cairn_oci::ContentStore, d: &Digest) -> Result<(), Error> {
        if store.contains(d) {
            return Ok(());
        }
        let src = self.blob_path(d);
        let f = std::fs::File::open(&src).map_err(|e| io_err("open", &src, e))?;
        store
            .ingest_verified(f, d)
            .map(drop)
            .map_err(Error::oci(format!("read {d} from the layer cache dir")))
    }

    /// Records `manifest` (whose blobs are in `store`) under `tag`, unless the tag
    /// exists: blobs first, then the manifest, then the tag and the index.
    pub fn put_manifest(
        &self,
        store: &cairn_oci::ContentStore,
        tag: &str,
        blobs: &[Digest],
        manifest: &[u8],
    ) -> Result<(), Error> {
        if self.readonly || self.entry_path(tag).is_file() {
            return Ok(());
        }
        std::fs::create_dir_all(self.root.join("entries"))
            .map_err(|e| io_err("create", &self.root, e))?;
        let lock = std::fs::File::open(&self.root).map_err(|e| io_err("open", &self.root, e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err("lock", &self.root, e.into()))?;
        for d in blobs {
            self.put_blob(store, d)?;
        }
        let digest = store
            .put_bytes(manifest)
            .map_err(Error::oci("store a cache manifest"))?;
        self.put_blob(store, &digest)?;
        let layout = self.root.join("oci-layout");
        if !layout.is_file() {
            std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
                .map_err(|e| io_err("write", &layout, e))?;
        }
        let index_path = self.root.join("index.json");
        let mut index: serde_json::Value = std::fs::read(&index_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| serde_json::json!({"schemaVersion": 2, "mediaType": media_types::OCI_INDEX, "manifests": []}));
        if let Some(list) = index["manifests"].as_array_mut() {
            list.push(serde_json::json!({
                "mediaType": media_types::OCI_MANIFEST,
                "digest": digest.to_string(),
                "size": manifest.len(),
                "annotations": { "org.opencontainers.image.ref.name": tag },
            }));
        }
        let tmp = self.root.join(format!(".index-{}", std::process::id()));
        std::fs::write(
            &tmp,
            serde_json::to_vec(&index).map_err(|e| json_err("index", e))?,
        )
        .map_err(|e| io_err("write", &tmp, e))?;
        std::fs::rename(&tmp, &index_path).map_err(|e| io_err("write", &index_path, e))?;
        let entry = self.entry_path(tag);
        let tmp = entry.with_extension("tmp");
        std::fs::write(&tmp, digest.to_string()).map_err(|e| io_err("write", &tmp, e))?;
        std::fs::rename(&tmp, &entry).map_err(|e| io_err("write", &entry, e))
    }

    /// Records a step, as [`RegistryCache::put`] does.
    pub fn put(
        &self,
        key: &StepKey,
        meta: &EntryMeta,
        store: &cairn_oci::ContentStore,
    ) -> Result<(), Error> {
        let empty = store
            .put_bytes(EMPTY_JSON)
            .map_err(Error::oci("store the empty config"))?;
        let mut blobs = vec![empty.clone()];
        let mut layers = Vec::new();
        if let Some(l) = &meta.layer {
            let d: Digest = l
                .digest
                .parse()
                .map_err(|e| Error::Image(format!("cache layer digest: {e}")))?;
            blobs.push(d);
            layers.push(layer_json(l));
        }
        let meta_json = serde_json::to_string(meta).map_err(|e| json_err("entry", e))?;
        let bytes = entry_manifest(&empty, layers, (ENTRY_ANNOTATION, meta_json))?;
        self.put_manifest(store, &key.tag(), &blobs, &bytes)
    }
}

/// A cache backend: a registry repository or a local directory.
#[derive(Debug, Clone)]
pub enum Cache {
    /// `--cache-repo`, `--cache-to`, `--cache-from`.
    Registry(RegistryCache),
    /// `--layer-cache-dir`.
    Dir(DirCache),
}

impl Cache {
    /// Never written.
    pub fn readonly(&self) -> bool {
        match self {
            Cache::Registry(c) => c.readonly,
            Cache::Dir(c) => c.readonly,
        }
    }

    /// The repository its blobs can be mounted or pulled from (registries only).
    pub fn repo(&self) -> Option<&Reference> {
        match self {
            Cache::Registry(c) => Some(c.repo()),
            Cache::Dir(_) => None,
        }
    }

    /// How to name it in messages (`REG/REPO` or the directory).
    pub fn name(&self) -> String {
        match self {
            Cache::Registry(c) => c.repo().name(),
            Cache::Dir(c) => c.root().display().to_string(),
        }
    }

    /// A step lookup.
    pub async fn get(&self, key: &StepKey) -> Result<Option<EntryMeta>, Error> {
        match self {
            Cache::Registry(c) => c.get(key).await,
            Cache::Dir(c) => Ok(c.get(key)),
        }
    }

    /// The entry a position tag points at.
    pub async fn get_tag(&self, tag: &str) -> Option<EntryMeta> {
        match self {
            Cache::Registry(c) => c.get_tag(tag).await,
            Cache::Dir(c) => c.get_tag(tag),
        }
    }

    /// Records a step (its layer blob from `store`).
    pub async fn put(
        &self,
        key: &StepKey,
        meta: &EntryMeta,
        layer_path: Option<&Path>,
        store: &cairn_oci::ContentStore,
    ) -> Result<(), Error> {
        match self {
            Cache::Registry(c) => c.put(key, meta, layer_path, store).await,
            Cache::Dir(c) => c.put(key, meta, store),
        }
    }

    /// Points a position tag at the entry of `key` (registries; directories keep
    /// no position hints).
    pub async fn retag(&self, key: &StepKey, tag: &str) -> Result<(), Error> {
        match self {
            Cache::Registry(c) => c.retag(key, tag).await,
            Cache::Dir(_) => Ok(()),
        }
    }

    /// The image recorded under `key`.
    pub async fn get_image(
        &self,
        key: &StepKey,
    ) -> Result<Option<cairn_registry::FetchedManifest>, Error> {
        match self {
            Cache::Registry(c) => c.get_image(key).await,
            Cache::Dir(c) => Ok(c.manifest(&key.image_tag()).map(|(bytes, digest)| {
                cairn_registry::FetchedManifest {
                    bytes,
                    media_type: media_types::OCI_MANIFEST.to_string(),
                    digest,
                }
            })),
        }
    }

    /// How long the image of `key` took to build.
    pub async fn image_duration(&self, key: &StepKey) -> Option<u64> {
        match self {
            Cache::Registry(c) => c.image_duration(key).await,
            Cache::Dir(c) => {
                let (bytes, _) = c.manifest(&format!("{}-meta", key.image_tag()))?;
                let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
                doc["annotations"][IMAGE_DURATION_ANNOTATION]
                    .as_str()?
                    .parse()
                    .ok()
            }
        }
    }

    /// Records the build duration of the image of `key`.
    pub async fn put_image_duration(
        &self,
        key: &StepKey,
        duration_ms: u64,
        store: &cairn_oci::ContentStore,
    ) -> Result<(), Error> {
        match self {
            Cache::Registry(c) => c.put_image_duration(key, duration_ms, store).await,
            Cache::Dir(c) => {
                let empty = store
                    .put_bytes(EMPTY_JSON)
                    .map_err(Error::oci("store the empty config"))?;
                let bytes = entry_manifest(
                    &empty,
                    vec![],
                    (IMAGE_DURATION_ANNOTATION, duration_ms.to_string()),
                )?;
                c.put_manifest(
                    store,
                    &format!("{}-meta", key.image_tag()),
                    &[empty],
                    &bytes,
                )
            }
        }
    }

    /// Copies (directory) or downloads (registry) a blob of this cache into the store.
    pub async fn fetch_blob(
        &self,
        client: &Client,
        store: &cairn_oci::ContentStore,
        d: &Digest,
    ) -> Result<(), Error> {
        match self {
            Cache::Registry(c) => crate::pull::fetch_blob(client, store, c.repo(), d).await,
            Cache::Dir(c) => c.get_blob(store, d),
        }
    }
}
