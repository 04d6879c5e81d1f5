//! The pure core of `cairn devcontainer`: everything about a dev container
//! configuration that can be decided without a network, a registry or a
//! build engine.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | finding devcontainer.json, JSONC parsing, the typed [`DevContainerConfig`] |
//! | [`substitute`] | `${localEnv:…}`, `${localWorkspaceFolder}` and the other build-time variables |
//! | [`features`] | Feature references, `devcontainer-feature.json`, options → environment |
//! | [`lockfile`] | `devcontainer-lock.json`: path, parse, render as the CLI does, `--frozen-lockfile` |
//! | [`order`] | `dependsOn` resolution (which Features must be fetched) and the install order |
//! | [`metadata`] | the `devcontainer.metadata` image label |
//! | [`cache_key`] | the config hash used to find a pre-built image |
//!
//! Fetching Features, building and pushing belong to the engine and CLI;
//! this crate only reads files it is pointed at (the config itself and
//! fixtures in tests) and never reads the process environment.
//!
//! # Install order
//!
//! [`order::install_order`] follows the spec's round-based algorithm: each
//! round takes every remaining Feature whose `dependsOn` (hard) and
//! `installsAfter` (soft, only towards Features that are actually installed)
//! dependencies are all installed. Like the reference CLI
//! (`computeDependsOnInstallationOrder`), only the candidates with the
//! highest `overrideFeatureInstallOrder` priority (`len - index`, 0 when not
//! listed) are committed in a round; the rest wait for the next round. A
//! round is then sorted as the reference CLI sorts it: by reference kind
//! and id without version, then tag oldest → newest (`latest` newest), then
//! options (fewer user options first — the reference CLI's behaviour; the
//! spec prose says the opposite), then the canonical id (digest). Strings
//! compare bytewise (the CLI uses `localeCompare`; bytewise is
//! locale-independent and identical for the lowercase ASCII ids Features
//! use). A round with no candidates is a cycle, reported with one concrete
//! cycle path.
//!
//! # Cache key
//!
//! [`cache_key::cache_key`] hashes (SHA-256, hex) a canonical text of:
//! a format version (`cairn-devcontainer-cache-v1`); the devcontainer.json
//! document after substitution as canonical JSON (sorted keys, no
//! whitespace — comments and formatting do not count); the SHA-256 of the
//! Dockerfile's bytes and a digest of its build context that the caller
//! computes (Dockerfile configs: a changed `COPY` source is a miss, where
//! Ona's prebuild hash, which leaves the context out, would reuse a stale
//! image); the base image's manifest digest (`image` configs, or the
//! Dockerfile's resolved `FROM`); and for every Feature in install order its
//! reference as written, resolved digest and user options. Host-path
//! substitutions (`${localWorkspaceFolder}`) make the key host-specific,
//! which costs hits, never correctness.

pub mod cache_key;
pub mod config;
mod error;
pub mod features;
pub mod lockfile;
pub mod metadata;
pub mod order;
pub mod substitute;

pub use config::{Base, BuildConfig, DevContainerConfig, find_config, load_config, parse_config};
pub use error::{Error, Result};
pub use features::{FeatureMetadata, FeatureRef};
