//! End-to-end tests of the `cairn` binary against a real registry
//! (`docker-registry`), checked with independent tools (skopeo, umoci).

mod build;
mod cache;
mod debian;
mod devcontainer;
mod format;
mod frontend_build;
mod isolation;
mod kaniko_cli;
mod rootless;
mod sandbox;
mod snapshotter;
mod support;
mod unpack;
