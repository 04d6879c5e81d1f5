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
            layers.push(serde_json::json!({
                "mediaType": l.media_type, "digest": l.digest, "size": l.size,
            }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "config": { "mediaType": EMPTY_JSON_MEDIA_TYPE, "digest": empty.to_string(), "size": EMPTY_JSON.len() },
            "layers": layers,
            "annotations": { ENTRY_ANNOTATION: serde_json::to_string(meta).map_err(|e| json_err("entry", e))? },
        });
        let bytes = cairn_oci::canonical_json(&manifest).map_err(Error::oci("cache entry"))?;
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
        let empty = self.ensure_empty_config(store).await?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "config": { "mediaType": EMPTY_JSON_MEDIA_TYPE, "digest": empty.to_string(), "size": EMPTY_JSON.len() },
            "layers": [],
            "annotations": { IMAGE_DURATION_ANNOTATION: duration_ms.to_string() },
        });
        let bytes = cairn_oci::canonical_json(&manifest).map_err(Error::oci("cache entry"))?;
        self.client
            .put_manifest(
                &self.at(&format!("{}-meta", key.image_tag())),
                media_types::OCI_MANIFEST,
                &bytes,
            )
            .await
            .map_err(Error::registry("record the build duration"))?;
        Ok(())
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
