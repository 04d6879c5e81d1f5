//! The end of a build: config and manifest into the store, then push and outputs.

use cairn_oci::{BlobRef, ContentStore, Digest, media_types};
use cairn_registry::{Client, Reference};

use crate::cache::Cache;
use crate::keys::StepKey;
use crate::pull::LayerDesc;
use crate::stage::{Build, StageState};
use crate::time::rfc3339;
use crate::{Error, Output};

/// What a finished build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// Digest of the image manifest.
    pub manifest_digest: Digest,
    /// Its size in bytes.
    pub manifest_size: u64,
    /// Digest of the image config.
    pub config_digest: Digest,
    /// Number of layers of the image.
    pub layers: usize,
    /// References pushed, `name@digest`.
    pub pushed: Vec<String>,
    /// A full cache hit: nothing was built; how long the recorded build took,
    /// when the cache says.
    pub cached: Option<Option<u64>>,
}

pub(crate) async fn finish(
    b: &Build<'_>,
    mut st: StageState,
    final_key: &StepKey,
) -> Result<BuildResult, Error> {
    let (client, store, opts) = (&b.client, &b.store, b.opts);
    st.config.created = Some(rfc3339(opts.source_date_epoch));
    let config_bytes = st
        .config
        .to_canonical_json()
        .map_err(Error::oci("serialise the image config"))?;
    let config_digest = store
        .put_bytes(&config_bytes)
        .map_err(Error::oci("store the image config"))?;
    // The manifest in the chosen format (OCI: the same bytes as before formats).
    let format = opts.image_format;
    let layers: Vec<BlobRef> = st
        .layers
        .iter()
        .map(|l| BlobRef {
            media_type: l.media_type.clone(),
            digest: l.digest.clone(),
            size: l.size,
        })
        .collect();
    let manifest_bytes =
        cairn_oci::image_manifest(format, &config_digest, config_bytes.len() as u64, &layers)
            .map_err(Error::oci(format!("assemble the {format} manifest")))?;
    let manifest_digest = store
        .put_bytes(&manifest_bytes)
        .map_err(Error::oci("store the manifest"))?;
    let manifest_size = manifest_bytes.len() as u64;

    if !opts.outputs.is_empty() {
        // Layers taken from a cache or a base image are not local until now.
        fetch_missing(client, store, &st.layers).await?;
    }
    let manifest_type = format.manifest_media_type();
    write_outputs(store, opts, &manifest_digest, manifest_type, manifest_size)?;
    let config_layer = LayerDesc {
        media_type: format.config_media_type().to_string(),
        digest: config_digest.clone(),
        size: config_bytes.len() as u64,
        diff_id: config_digest.clone(),
        source: None,
    };
    let mut blobs: Vec<LayerDesc> = st.layers.clone();
    blobs.push(config_layer);
    let mut pushed = Vec::new();
    if opts.push {
        for tag in &opts.tags {
            push(
                client,
                store,
                tag,
                &blobs,
                (&manifest_bytes, manifest_type),
                &manifest_digest,
            )
            .await?;
            let name = format!("{}@{manifest_digest}", tag.name());
            b.opts
                .progress
                .line(&format!("pushed {tag} ({manifest_digest})"));
            pushed.push(name);
        }
    }
    if let Some(cache) = &b.cache
        && !cache.readonly()
    {
        // The whole image under its image key (the final key and the format):
        // the next identical build is a constant number of requests and no
        // layer download.
        let image_key = crate::keys::image_key(final_key, format);
        let recorded = match cache {
            Cache::Registry(rc) => {
                let at = rc.image_ref(&image_key);
                push(
                    client,
                    store,
                    &at,
                    &blobs,
                    (&manifest_bytes, manifest_type),
                    &manifest_digest,
                )
                .await
            }
            Cache::Dir(dc) => {
                let local = fetch_missing(client, store, &blobs).await;
                local.and_then(|()| {
                    let digests: Vec<Digest> = blobs.iter().map(|l| l.digest.clone()).collect();
                    dc.put_manifest(store, &image_key.image_tag(), &digests, &manifest_bytes)
                })
            }
        };
        match recorded {
            Ok(()) => {
                let ms = u64::try_from(b.started.elapsed().as_millis()).unwrap_or(u64::MAX);
                if let Err(e) = cache.put_image_duration(&image_key, ms, store).await {
                    tracing::warn!("could not record the build duration: {e}");
                }
            }
            Err(e) => tracing::warn!("could not record the image in the cache: {e}"),
        }
    }
    Ok(BuildResult {
        manifest_digest,
        manifest_size,
        config_digest,
        layers: st.layers.len(),
        pushed,
        cached: None,
    })
}

/// Downloads the blobs that are not in the store from where they came from.
async fn fetch_missing(
    client: &Client,
    store: &ContentStore,
    blobs: &[LayerDesc],
) -> Result<(), Error> {
    crate::at_most(
        crate::TRANSFERS,
        blobs
            .iter()
            .filter(|l| !store.contains(&l.digest))
            .map(|l| async move {
                let src = l.source.as_ref().ok_or_else(|| {
                    Error::Image(format!(
                        "layer {} is neither local nor in a registry",
                        l.digest
                    ))
                })?;
                crate::pull::fetch_blob(client, store, src, &l.digest).await
            }),
    )
    .await
    .map(drop)
}

fn write_outputs(
    store: &ContentStore,
    opts: &crate::BuildOptions,
    manifest_digest: &Digest,
    manifest_media_type: &str,
    manifest_size: u64,
) -> Result<(), Error> {
    for out in &opts.outputs {
        match out {
            Output::OciLayout { dest } => {
                let ref_name = opts
                    .tags
                    .first()
                    .and_then(|t| t.tag.clone())
                    .unwrap_or_else(|| "latest".into());
                cairn_oci::write_oci_layout(
                    store,
                    manifest_digest,
                    manifest_media_type,
                    manifest_size,
                    dest,
                    Some(&ref_name),
                )
                .map_err(Error::oci(format!(
                    "write the OCI layout `{}`",
                    dest.display()
                )))?;
                opts.progress
                    .line(&format!("wrote OCI layout {}", dest.display()));
            }
        }
    }
    Ok(())
}

/// Makes a blob present in `to`: already there, mounted from the repository it
/// came from (same registry), or uploaded from the local store (downloaded from
/// its source first when it is not local).
async fn ensure_blob(
    client: &Client,
    store: &ContentStore,
    to: &Reference,
    l: &LayerDesc,
) -> Result<(), Error> {
    let ctx = |what: &str| format!("{what} {} for `{}`", l.digest, to.name());
    if client
        .blob_exists(to, &l.digest)
        .await
        .map_err(Error::registry(ctx("look up")))?
    {
        return Ok(());
    }
    if let Some(src) = &l.source
        && src.registry == to.registry
        && src.repository != to.repository
        && client
            .mount_blob(to, &src.repository, &l.digest)
            .await
            .map_err(Error::registry(ctx("mount")))?
    {
        return Ok(());
    }
    if !store.contains(&l.digest) {
        let src = l.source.as_ref().ok_or_else(|| {
            Error::Image(format!(
                "blob {} is neither local nor in a registry",
                l.digest
            ))
        })?;
        crate::pull::fetch_blob(client, store, src, &l.digest).await?;
    }
    client
        .put_blob_from_file(to, &l.digest, &store.blob_path(&l.digest))
        .await
        .map_err(Error::registry(ctx("push")))
}

/// Blobs first, the manifest (its bytes and media type) and so the tag last: a
/// tag only ever points at complete content.
async fn push(
    client: &Client,
    store: &ContentStore,
    tag: &Reference,
    blobs: &[LayerDesc],
    (manifest, manifest_media_type): (&[u8], &str),
    manifest_digest: &Digest,
) -> Result<(), Error> {
    crate::at_most(
        crate::TRANSFERS,
        blobs.iter().map(|l| ensure_blob(client, store, tag, l)),
    )
    .await?;
    let got = client
        .put_manifest(tag, manifest_media_type, manifest)
        .await
        .map_err(Error::registry(format!(
            "push the manifest to `{}`",
            tag.name()
        )))?;
    if &got != manifest_digest {
        return Err(Error::Image(format!(
            "the registry stored the manifest as {got}, cairn computed {manifest_digest}"
        )));
    }
    Ok(())
}

/// A full cache hit: the image recorded under the final key goes to the
/// destinations (blob mounts, no layer download) and the outputs.
pub(crate) async fn from_cache(
    b: &Build<'_>,
    cache: &Cache,
    key: &StepKey,
    image: cairn_registry::FetchedManifest,
    deliver: bool,
) -> Result<BuildResult, Error> {
    #[derive(serde::Deserialize)]
    struct Desc {
        #[serde(rename = "mediaType")]
        media_type: String,
        digest: Digest,
        size: u64,
    }
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        config: Desc,
        layers: Vec<Desc>,
    }
    let m: Manifest = serde_json::from_slice(&image.bytes)
        .map_err(|e| Error::Image(format!("cached image manifest: {e}")))?;
    let as_layer = |d: &Desc| LayerDesc {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        diff_id: d.digest.clone(),
        source: cache.repo().cloned(),
    };
    let mut blobs: Vec<LayerDesc> = m.layers.iter().map(as_layer).collect();
    blobs.push(as_layer(&m.config));
    // The recorded image's own format (the image key includes the format).
    let manifest_type = m.media_type.as_deref().unwrap_or(media_types::OCI_MANIFEST);
    if deliver && matches!(cache, Cache::Dir(_)) {
        // A directory cache's blobs go through the store.
        for l in &blobs {
            cache.fetch_blob(&b.client, &b.store, &l.digest).await?;
        }
    }
    let mut pushed = Vec::new();
    let mut saved = None;
    if deliver {
        if b.opts.push {
            for tag in &b.opts.tags {
                push(
                    &b.client,
                    &b.store,
                    tag,
                    &blobs,
                    (&image.bytes, manifest_type),
                    &image.digest,
                )
                .await?;
                b.opts
                    .progress
                    .line(&format!("pushed {tag} ({})", image.digest));
                pushed.push(format!("{}@{}", tag.name(), image.digest));
            }
        }
        if !b.opts.outputs.is_empty() {
            for l in &blobs {
                cache.fetch_blob(&b.client, &b.store, &l.digest).await?;
            }
            let d = b
                .store
                .put_bytes(&image.bytes)
                .map_err(Error::oci("store the cached manifest"))?;
            write_outputs(
                &b.store,
                b.opts,
                &d,
                manifest_type,
                image.bytes.len() as u64,
            )?;
        }
        saved = cache.image_duration(key).await;
        b.opts.progress.line(&crate::plan::saved_line(saved));
    }
    Ok(BuildResult {
        manifest_digest: image.digest.clone(),
        manifest_size: image.bytes.len() as u64,
        config_digest: m.config.digest.clone(),
        layers: m.layers.len(),
        pushed,
        cached: Some(saved),
    })
}
