//! Writing image manifests and indexes, in either format: OCI (image manifest,
//! image index) or Docker (schema2 image manifest, manifest list).
//!
//! Both formats have the same shape, so one serializer writes both; what
//! differs is the media types ([`ImageFormat`]). The output is canonical JSON
//! ([`crate::canonical_json`]): the digest of a manifest depends only on its
//! content. An OCI manifest comes out byte for byte as oci-spec's
//! `ImageManifest` serialized canonically (a test checks it), so existing OCI
//! images keep their digests.
//!
//! Docker schema2 knows gzip layers only: a zstd (or uncompressed) layer cannot
//! be described in a Docker manifest and is refused with
//! [`Error::Unsupported`].

use std::fmt;
use std::str::FromStr;

use oci_spec::image::Digest;
use serde::Serialize;

use crate::{Error, canonical_json, media_types};

/// OCI non-distributable gzip layer (deprecated in OCI, still met in images).
const OCI_LAYER_NONDIST_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// Docker foreign (non-distributable) gzip layer.
const DOCKER_LAYER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The manifest family an image is written in (`--format`, as buildah names it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// OCI image manifest / index / config media types. The default.
    #[default]
    Oci,
    /// Docker schema2 manifest / manifest list / container config media types.
    Docker,
}

impl ImageFormat {
    /// `oci` or `docker`, as parsed and as cache keys record it.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Oci => "oci",
            ImageFormat::Docker => "docker",
        }
    }

    /// Media type of an image manifest in this format.
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            ImageFormat::Oci => media_types::OCI_MANIFEST,
            ImageFormat::Docker => media_types::DOCKER_MANIFEST,
        }
    }

    /// Media type of an index (OCI) / manifest list (Docker).
    pub fn index_media_type(self) -> &'static str {
        match self {
            ImageFormat::Oci => media_types::OCI_INDEX,
            ImageFormat::Docker => media_types::DOCKER_MANIFEST_LIST,
        }
    }

    /// Media type of the image config.
    pub fn config_media_type(self) -> &'static str {
        match self {
            ImageFormat::Oci => media_types::OCI_CONFIG,
            ImageFormat::Docker => media_types::DOCKER_CONFIG,
        }
    }

    /// The media type a layer of `media_type` has in a manifest of this
    /// format. OCI keeps what it is given (as cairn always has). Docker maps
    /// OCI gzip to Docker gzip (the same bytes) and non-distributable to
    /// foreign, and refuses anything Docker schema2 cannot describe (zstd,
    /// uncompressed).
    pub fn layer_media_type(self, media_type: &str) -> Result<&str, Error> {
        match self {
            ImageFormat::Oci => Ok(media_type),
            ImageFormat::Docker => match media_type {
                media_types::OCI_LAYER_GZIP | media_types::DOCKER_LAYER_GZIP => {
                    Ok(media_types::DOCKER_LAYER_GZIP)
                }
                OCI_LAYER_NONDIST_GZIP | DOCKER_LAYER_FOREIGN_GZIP => Ok(DOCKER_LAYER_FOREIGN_GZIP),
                other => Err(Error::Unsupported {
                    what: format!(
                        "layer media type {other} in a Docker schema2 manifest (Docker images \
                         have gzip layers only: use gzip compression or the OCI format)"
                    ),
                    path: "<manifest>".into(),
                }),
            },
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ImageFormat {
    type Err = String;

    /// `oci` or `docker` (any case).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "oci" => Ok(ImageFormat::Oci),
            "docker" => Ok(ImageFormat::Docker),
            _ => Err(format!("unknown image format `{s}` (oci, docker)")),
        }
    }
}

/// A blob a manifest points at: the config or a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// Its media type as cairn knows it (mapped per format on writing).
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// The platform of an index / manifest list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Platform {
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `linux`, …
    pub os: String,
    /// `v8`, … when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// One entry of an index / manifest list: an image manifest and its platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Digest of the manifest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The platform it is for.
    pub platform: Option<Platform>,
}

#[derive(Serialize)]
struct Desc<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: &'a str,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<&'a Platform>,
}

#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: Desc<'a>,
    layers: Vec<Desc<'a>>,
}

#[derive(Serialize)]
struct Index<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    manifests: Vec<Desc<'a>>,
}

/// The canonical JSON of an image manifest in `format` for the config blob
/// `config_digest` (`config_size` bytes) and `layers` in order, bottom first.
/// Errors when a layer cannot be described in `format` (see
/// [`ImageFormat::layer_media_type`]).
pub fn image_manifest(
    format: ImageFormat,
    config_digest: &Digest,
    config_size: u64,
    layers: &[BlobRef],
) -> Result<Vec<u8>, Error> {
    let config_digest = config_digest.to_string();
    let layer_digests: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
    let mut descs = Vec::with_capacity(layers.len());
    for (l, d) in layers.iter().zip(&layer_digests) {
        descs.push(Desc {
            media_type: format.layer_media_type(&l.media_type)?,
            digest: d,
            size: l.size,
            platform: None,
        });
    }
    canonical_json(&Manifest {
        schema_version: 2,
        media_type: format.manifest_media_type(),
        config: Desc {
            media_type: format.config_media_type(),
            digest: &config_digest,
            size: config_size,
            platform: None,
        },
        layers: descs,
    })
}

/// The canonical JSON of an OCI image index or a Docker manifest list whose
/// entries are image manifests of the same `format`.
pub fn image_index(format: ImageFormat, manifests: &[IndexEntry]) -> Result<Vec<u8>, Error> {
    let digests: Vec<String> = manifests.iter().map(|m| m.digest.to_string()).collect();
    canonical_json(&Index {
        schema_version: 2,
        media_type: format.index_media_type(),
        manifests: manifests
            .iter()
            .zip(&digests)
            .map(|(m, d)| Desc {
                media_type: format.manifest_media_type(),
                digest: d,
                size: m.size,
                platform: m.platform.as_ref(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests;
