//! Base images: resolve a reference (an index to the host platform), fetch config
//! and layers into the content store, and unpack them once into a snapshot keyed by
//! the layers' chain id.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use cairn_oci::{ApplyOptions, ContentStore, Digest, ImageConfig, media_types};
use cairn_registry::{Client, Reference};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::state::{ScratchDir, StateDir};
use crate::{Error, Platform};

/// A layer of an image being built, as it will appear in the manifest.
#[derive(Debug, Clone)]
pub struct LayerDesc {
    /// Media type (OCI).
    pub media_type: String,
    /// Compressed digest.
    pub digest: Digest,
    /// Compressed size.
    pub size: u64,
    /// Uncompressed digest.
    pub diff_id: Digest,
    /// Where the blob already is, for cross-repository mounts when pushing.
    pub source: Option<Reference>,
}

/// A base image resolved to its platform manifest: config and layer list, nothing
/// downloaded beyond the manifest and the config.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// Where it came from.
    pub reference: Reference,
    /// Digest of the platform manifest (what cache keys use).
    pub manifest_digest: Digest,
    /// Its config.
    pub config: ImageConfig,
    /// Its layers.
    pub layers: Vec<LayerDesc>,
}

/// A descriptor in a manifest or an index, as far as cairn reads it.
#[derive(Debug, Deserialize)]
pub(crate) struct DescDoc {
    #[serde(rename = "mediaType", default)]
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
    #[serde(default)]
    pub(crate) platform: Option<PlatformDoc>,
    #[serde(default)]
    pub(crate) annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PlatformDoc {
    pub(crate) os: String,
    pub(crate) architecture: String,
    #[serde(default)]
    pub(crate) variant: Option<String>,
}

/// A manifest or an index (either family), as far as cairn reads them.
#[derive(Debug, Deserialize)]
pub(crate) struct ManifestDoc {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<DescDoc>,
    #[serde(default)]
    layers: Vec<DescDoc>,
    #[serde(default)]
    pub(crate) manifests: Vec<DescDoc>,
}

pub(crate) fn digest(s: &str, what: &str) -> Result<Digest, Error> {
    Digest::from_str(s).map_err(|e| Error::Image(format!("{what}: bad digest {s:?}: {e}")))
}

impl ManifestDoc {
    /// Parses the manifest or index `bytes` of the image `name`.
    pub(crate) fn parse(bytes: &[u8], name: &str) -> Result<ManifestDoc, Error> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::Image(format!("`{name}`: bad manifest JSON: {e}")))
    }

    /// Whether it is an index: by the media type it was `served` as (may be
    /// empty), its own `mediaType`, or its shape.
    pub(crate) fn is_index(&self, served: &str) -> bool {
        media_types::is_index(served)
            || self
                .media_type
                .as_deref()
                .is_some_and(media_types::is_index)
            || (!self.manifests.is_empty() && self.config.is_none())
    }

    /// The digest of the index entry for `platform`.
    pub(crate) fn pick_platform(&self, platform: &Platform, name: &str) -> Result<Digest, Error> {
        let pick = self
            .manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
            })
            .ok_or_else(|| {
                let have: Vec<String> = self
                    .manifests
                    .iter()
                    .filter_map(|m| m.platform.as_ref())
                    .map(|p| format!("{}/{}", p.os, p.architecture))
                    .collect();
                Error::Image(format!(
                    "`{name}` has no image for {} (it has: {})",
                    platform.to_string_short(),
                    have.join(", ")
                ))
            })?;
        digest(&pick.digest, name)
    }

    /// The digest of the config blob.
    pub(crate) fn config_digest(&self, name: &str) -> Result<Digest, Error> {
        let config_desc = self
            .config
            .as_ref()
            .ok_or_else(|| Error::Image(format!("`{name}`: manifest has no config")))?;
        digest(&config_desc.digest, name)
    }

    /// The layers, with their diff ids from `config`; `source` is where their
    /// blobs are (for cross-repository mounts).
    pub(crate) fn layers(
        &self,
        config: &ImageConfig,
        source: Option<&Reference>,
        name: &str,
    ) -> Result<Vec<LayerDesc>, Error> {
        if config.rootfs.diff_ids.len() != self.layers.len() {
            return Err(Error::Image(format!(
                "`{name}`: the manifest lists {} layers but the config {} diff_ids",
                self.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        self.layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(l, diff_id)| {
                Ok(LayerDesc {
                    media_type: oci_layer_type(&l.media_type),
                    digest: digest(&l.digest, name)?,
                    size: l.size,
                    diff_id: diff_id.clone(),
                    source: source.cloned(),
                })
            })
            .collect()
    }
}

/// The OCI media type for a layer media type of either family.
pub fn oci_layer_type(mt: &str) -> String {
    match mt {
        media_types::DOCKER_LAYER_GZIP | "" => media_types::OCI_LAYER_GZIP.to_string(),
        "application/vnd.docker.image.rootfs.diff.tar" => media_types::OCI_LAYER_TAR.to_string(),
        other => other.to_string(),
    }
}

/// Layer chain ids as the OCI image spec defines them.
pub fn chain_id(diff_ids: &[Digest]) -> Option<Digest> {
    let mut it = diff_ids.iter();
    let mut chain = it.next()?.to_string();
    for d in it {
        let h = Sha256::digest(format!("{chain} {d}").as_bytes());
        chain = format!("sha256:{}", hex::encode(h));
    }
    Digest::from_str(&chain).ok()
}

/// Resolves `reference` for `platform`: manifest (through an index) and config.
pub async fn resolve(
    client: &Client,
    store: &ContentStore,
    reference: &Reference,
    platform: &Platform,
) -> Result<BaseImage, Error> {
    let name = reference.to_string();
    let mut fetched = client
        .get_manifest(reference)
        .await
        .map_err(Error::registry(format!("resolve `{name}`")))?;
    let mut doc = ManifestDoc::parse(&fetched.bytes, &name)?;
    if doc.is_index(&fetched.media_type) {
        let d = doc.pick_platform(platform, &name)?;
        fetched = client
            .get_manifest(&reference.with_digest(d))
            .await
            .map_err(Error::registry(format!(
                "fetch the platform manifest of `{name}`"
            )))?;
        doc = ManifestDoc::parse(&fetched.bytes, &name)?;
    }
    let config_digest = doc.config_digest(&name)?;
    fetch_blob(client, store, reference, &config_digest).await?;
    let config_bytes = store
        .read_bytes(&config_digest)
        .map_err(Error::oci(format!("read the config of `{name}`")))?;
    let config = ImageConfig::from_slice(&config_bytes)
        .map_err(Error::oci(format!("parse the config of `{name}`")))?;
    let layers = doc.layers(&config, Some(reference), &name)?;
    Ok(BaseImage {
        reference: reference.clone(),
        manifest_digest: fetched.digest.clone(),
        config,
        layers,
    })
}

/// Downloads the image's layers and unpacks them into a snapshot keyed by chain
/// id; `None` for an image without layers. Through [`apply_layers`]: downloads run
/// ahead while each layer is applied as soon as it and the layers below it are in.
pub async fn unpack_image(
    client: &Client,
    store: &ContentStore,
    state: &StateDir,
    image: &BaseImage,
) -> Result<Option<PathBuf>, Error> {
    let diff_ids: Vec<Digest> = image.layers.iter().map(|l| l.diff_id.clone()).collect();
    let Some(chain) = chain_id(&diff_ids) else {
        return Ok(None);
    };
    let dest = state.snapshots().join(chain.digest());
    if dest.is_dir() {
        return Ok(Some(dest));
    }
    let tmp = ScratchDir::create(&state.snapshots(), ".unpack")?;
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).map_err(|e| Error::io("create", &root, e))?;
    apply_layers(
        &image.layers,
        |l| fetch_blob(client, store, &image.reference, &l.digest),
        |d| store.blob_path(d),
        &root,
    )
    .await?;
    match std::fs::rename(&root, &dest) {
        Ok(()) => Ok(Some(dest)),
        // Another build unpacked the same chain meanwhile: use theirs.
        Err(_) if dest.is_dir() => Ok(Some(dest)),
        Err(e) => Err(Error::io("move snapshot into place", &dest, e)),
    }
}

/// Applies `layers`, bottom first, onto the directory `root` as a pipeline:
/// `fetch` brings each blob in (downloads run ahead, up to [`crate::TRANSFERS`]
/// at once, and must verify what they fetch), while each layer is applied from
/// `blob_path` as soon as it and every layer below it are in (decompression on
/// its own thread). The first error wins.
pub async fn apply_layers<'a, F, Fut>(
    layers: &'a [LayerDesc],
    fetch: F,
    blob_path: impl Fn(&Digest) -> PathBuf,
    root: &Path,
) -> Result<(), Error>
where
    F: Fn(&'a LayerDesc) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    use futures_util::StreamExt;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<usize>(layers.len().max(1));
    let download_all = async move {
        let fetch = &fetch;
        let mut downloads = futures_util::stream::iter(
            layers
                .iter()
                .enumerate()
                .map(|(i, l)| async move { fetch(l).await.map(|()| i) }),
        )
        .buffered(crate::TRANSFERS);
        while let Some(done) = downloads.next().await {
            if tx.send(done?).await.is_err() {
                break;
            }
        }
        Ok::<(), Error>(())
    };
    let apply_all = async {
        for _ in 0..layers.len() {
            let Some(i) = rx.recv().await else {
                return Err(Error::Image("a layer download failed".into()));
            };
            let (blob, root, digest) = (
                blob_path(&layers[i].digest),
                root.to_path_buf(),
                layers[i].digest.clone(),
            );
            tokio::task::spawn_blocking(move || apply_one(&blob, &root, &digest))
                .await
                .map_err(|e| Error::Image(format!("unpack task: {e}")))??;
        }
        Ok::<(), Error>(())
    };
    let (downloaded, applied) = tokio::join!(download_all, apply_all);
    downloaded?;
    applied
}

/// Applies one layer blob (at `blob`) onto `root`.
fn apply_one(blob: &Path, root: &Path, digest: &Digest) -> Result<(), Error> {
    let file = std::fs::File::open(blob).map_err(|e| Error::io("open layer", blob, e))?;
    let reader =
        cairn_oci::open_layer_reader(file).map_err(Error::oci(format!("read layer {digest}")))?;
    let opts = ApplyOptions {
        ignore_chown_errors: true,
    };
    let stats = cairn_oci::apply_layer(reader, root, &opts)
        .map_err(Error::oci(format!("unpack layer {digest}")))?;
    if stats.chown_errors_ignored > 0 {
        tracing::warn!(
            "layer {digest}: {} files keep the building user as owner (ids not mapped)",
            stats.chown_errors_ignored
        );
    }
    Ok(())
}

/// Downloads a blob into the store unless it is there (verified against its digest).
pub async fn fetch_blob(
    client: &Client,
    store: &ContentStore,
    reference: &Reference,
    d: &Digest,
) -> Result<(), Error> {
    if store.contains(d) {
        return Ok(());
    }
    client
        .get_blob_to_file(reference, d, &store.blob_path(d))
        .await
        .map_err(Error::registry(format!("download {d} from `{reference}`")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_follows_the_spec() {
        let a = cairn_oci::sha256_digest(b"a");
        let b = cairn_oci::sha256_digest(b"b");
        assert_eq!(chain_id(&[]), None);
        assert_eq!(chain_id(std::slice::from_ref(&a)).unwrap(), a);
        // ChainID(L0|L1) = sha256(ChainID(L0) + " " + DiffID(L1)), computed with coreutils:
        // printf 'sha256:ca97…bb sha256:3e23…2d' | sha256sum
        let expected = {
            let s = format!("{a} {b}");
            let out = std::process::Command::new("sha256sum")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin.take().unwrap().write_all(s.as_bytes())?;
                    c.wait_with_output()
                })
                .unwrap();
            let hex = String::from_utf8(out.stdout).unwrap();
            format!("sha256:{}", &hex[..64])
        };
        assert_eq!(chain_id(&[a, b]).unwrap().to_string(), expected);
    }
}
