//! OCI image plumbing for cairn.
//!
//! This crate owns everything cairn does with the OCI image format on disk:
//!
//! * the image **types**: oci-spec's manifest, index and descriptor types are
//!   re-exported, while the image **config** is cairn's own [`ImageConfig`]
//!   (it keeps Docker-only fields such as `Healthcheck`, `Shell`, `OnBuild`
//!   and passes unknown fields through), serialized with [`canonical_json`];
//! * **reproducible layer writing** ([`write_layer`]): a directory tree (plain or an
//!   overlayfs upper dir) streamed to tar → gzip with both digests computed on the
//!   fly (gzip by default; parallel gzip and zstd as options); the byte-level rules are documented in [`layer_spec`];
//! * **safe layer application** ([`apply_layer`]): OCI whiteouts, ownership, modes,
//!   xattrs and times, with every path resolved beneath the root directory fd
//!   (`openat2(RESOLVE_IN_ROOT)`), never with string prefix checks;
//! * **manifests and indexes** in OCI or Docker schema2 form ([`image_manifest`],
//!   [`image_index`], [`ImageFormat`]);
//! * a **walk-and-compare snapshotter** ([`write_diff_layer`]): the layer between a
//!   parent and a child rootfs directory, for systems without overlayfs;
//! * a local **content store** ([`ContentStore`], `blobs/sha256/<hex>`) and
//!   **OCI image-layout export** ([`write_oci_layout`]).
//!
//! It does not talk to registries and does not run containers.

pub use oci_spec;
pub use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest, MediaType};

mod apply;
mod config;
mod error;
mod hash;
pub mod layer_spec;
mod manifest;
pub mod media_types;
mod snapshot;
mod store;
mod write;

pub use apply::{ApplyOptions, ApplyStats, apply_layer, open_layer_reader};
pub use config::{ContainerConfig, HealthConfig, History, ImageConfig, RootFs};
pub use error::Error;
pub use hash::{HashingWriter, canonical_json, sha256_digest, sha256_digest_from_hex};
pub use manifest::{BlobRef, ImageFormat, IndexEntry, Platform, image_index, image_manifest};
pub use snapshot::{diff_is_empty, write_diff_layer, write_diff_layer_with};
pub use store::{ContentStore, write_oci_layout};
pub use write::{
    LayerCompression, LayerInfo, LayerOptions, SourceKind, layer_is_empty, write_layer,
};

/// Result alias used throughout this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
