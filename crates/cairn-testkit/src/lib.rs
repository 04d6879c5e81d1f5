//! Test helpers for cairn.
//!
//! Everything here starts *real* things (no mocks): [`registry::TestRegistry`]
//! runs the CNCF distribution registry (`docker-registry` from Debian) on a
//! loopback port with storage in a temporary directory.
//!
//! Modules are independent; add new ones (`pub mod seed;`, …) next to
//! `registry` and re-export their main types below.

pub mod features;
pub mod proxy;
pub mod registry;
pub mod seed;
pub mod tls;
pub mod token;

pub use features::{FileServer, PublishedFeature, publish_feature, semver_tags};
pub use proxy::{Fault, FaultProxy, ProxiedRequest, Rule};
pub use registry::{
    Error as RegistryError, RegistryOptions, TEST_PASSWORD, TEST_USER, TestRegistry,
};
pub use seed::{
    SeedError, SeededImage, busybox_rootfs, debootstrap_rootfs, push_rootfs_image, seed_busybox,
};
pub use tls::TestCa;
pub use token::{Grant, TokenIssuer, TokenRequest, TokenUser};
