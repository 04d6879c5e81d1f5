//! The end of a build: config and manifest into the store, then push and outputs.

use cairn_oci::oci_spec::image::{DescriptorBuilder, ImageManifestBuilder, MediaType};
use cairn_oci::{ContentStore, Digest, media_types};
use cairn_registry::{Client, Reference};

use crate::pull::LayerDesc;
use crate::stage::StageState;
use crate::time::rfc3339;
use crate::{BuildOptions, Error, Output};

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
}

fn spec_err(e: impl std::fmt::Display) -> Error {
    Error::Image(format!("cannot assemble the manifest: {e}"))
}

pub(crate) async fn finish(
    client: &Client,
    store: &ContentStore,
    opts: &BuildOptions,
    mut st: StageState,
) -> Result<BuildResult, Error> {
    st.config.created = Some(rfc3339(opts.source_date_epoch));
    let config_bytes = st
        .config
        .to_canonical_json()
        .map_err(Error::oci("serialise the image config"))?;
    let config_digest = store
        .put_bytes(&config_bytes)
        .map_err(Error::oci("store the image config"))?;
    let layers = st
        .layers
        .iter()
        .map(|l| {
            DescriptorBuilder::default()
                .media_type(MediaType::from(l.media_type.as_str()))
                .digest(l.digest.clone())
                .size(l.size)
                .build()
                .map_err(spec_err)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(
            DescriptorBuilder::default()
                .media_type(MediaType::ImageConfig)
                .digest(config_digest.clone())
                .size(config_bytes.len() as u64)
                .build()
                .map_err(spec_err)?,
        )
        .layers(layers)
        .build()
        .map_err(spec_err)?;
    let manifest_bytes =
        cairn_oci::canonical_json(&manifest).map_err(Error::oci("serialise the manifest"))?;
    let manifest_digest = store
        .put_bytes(&manifest_bytes)
        .map_err(Error::oci("store the manifest"))?;
    let manifest_size = manifest_bytes.len() as u64;

    for out in &opts.outputs {
        match out {
            Output::OciLayout { dest } => {
                let ref_name = Some(
                    opts.tags
                        .first()
                        .and_then(|t| t.tag.clone())
                        .unwrap_or_else(|| "latest".into()),
                );
                cairn_oci::write_oci_layout(
                    store,
                    &manifest_digest,
                    media_types::OCI_MANIFEST,
                    manifest_size,
                    dest,
                    ref_name.as_deref(),
                )
                .map_err(Error::oci(format!(
                    "write the OCI layout `{}`",
                    dest.display()
                )))?;
                eprintln!("wrote OCI layout {}", dest.display());
            }
        }
    }
    let mut pushed = Vec::new();
    if opts.push {
        for tag in &opts.tags {
            push(
                client,
                store,
                tag,
                &st.layers,
                &config_digest,
                &manifest_bytes,
                &manifest_digest,
            )
            .await?;
            let name = format!("{}@{manifest_digest}", tag.name());
            eprintln!("pushed {tag} ({manifest_digest})");
            pushed.push(name);
        }
    }
    Ok(BuildResult {
        manifest_digest,
        manifest_size,
        config_digest,
        layers: st.layers.len(),
        pushed,
    })
}

/// Blobs first, the manifest (and so the tag) last: a tag only ever points at
/// complete content.
async fn push(
    client: &Client,
    store: &ContentStore,
    tag: &Reference,
    layers: &[LayerDesc],
    config: &Digest,
    manifest: &[u8],
    manifest_digest: &Digest,
) -> Result<(), Error> {
    let ctx = |what: String| format!("push {what} to `{}`", tag.name());
    futures_util::future::try_join_all(layers.iter().map(|l| async move {
        if client
            .blob_exists(tag, &l.digest)
            .await
            .map_err(Error::registry(ctx(l.digest.to_string())))?
        {
            return Ok(());
        }
        if let Some(src) = &l.source
            && src.registry == tag.registry
            && src.repository != tag.repository
            && client
                .mount_blob(tag, &src.repository, &l.digest)
                .await
                .map_err(Error::registry(ctx(l.digest.to_string())))?
        {
            return Ok(());
        }
        client
            .put_blob_from_file(tag, &l.digest, &store.blob_path(&l.digest))
            .await
            .map_err(Error::registry(ctx(l.digest.to_string())))
    }))
    .await?;
    client
        .put_blob_from_file(tag, config, &store.blob_path(config))
        .await
        .map_err(Error::registry(ctx("the config".into())))?;
    let got = client
        .put_manifest(tag, media_types::OCI_MANIFEST, manifest)
        .await
        .map_err(Error::registry(ctx("the manifest".into())))?;
    if &got != manifest_digest {
        return Err(Error::Image(format!(
            "the registry stored the manifest as {got}, cairn computed {manifest_digest}"
        )));
    }
    Ok(())
}
