//! Helpers shared by the integration tests (each test file uses a subset).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::str::FromStr;

use cairn_registry::{Client, Digest, Reference, media_types};
use sha2::{Digest as _, Sha256};

pub fn reference(addr: &str, rest: &str) -> Reference {
    format!("{addr}/{rest}").parse().expect("reference")
}

pub fn digest_of(bytes: &[u8]) -> Digest {
    Digest::from_str(&format!("sha256:{}", hex::encode(Sha256::digest(bytes)))).unwrap()
}

/// Deterministic pseudo-random bytes (incompressible enough, no RNG dependency).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub struct Image {
    pub layer: (Digest, PathBuf, u64),
    pub config: (Digest, PathBuf, u64),
    pub manifest: Vec<u8>,
}

impl Image {
    /// `(digest, path)` of config and layer, as [`Client::push_image`] wants them.
    pub fn blobs(&self) -> Vec<(Digest, PathBuf)> {
        vec![
            (self.layer.0.clone(), self.layer.1.clone()),
            (self.config.0.clone(), self.config.1.clone()),
        ]
    }
}

/// Writes a layer (`layer_len` bytes) and config to `dir` and builds an OCI manifest for them.
pub fn make_image(dir: &Path, layer_len: usize, note: &str) -> Image {
    let layer = pseudo_random(layer_len, layer_len as u64 ^ note.len() as u64);
    let layer_digest = digest_of(&layer);
    let layer_path = dir.join(format!("layer-{note}.bin"));
    std::fs::write(&layer_path, &layer).unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
        "history": [{"created_by": format!("cairn-registry test {note}")}],
    }))
    .unwrap();
    let config_digest = digest_of(&config);
    let config_path = dir.join(format!("config-{note}.json"));
    std::fs::write(&config_path, &config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest.to_string(),
            "size": layer.len(),
        }],
        "annotations": {"org.example.note": note},
    }))
    .unwrap();
    Image {
        layer: (layer_digest, layer_path, layer.len() as u64),
        config: (config_digest, config_path, config.len() as u64),
        manifest,
    }
}

/// Blobs then manifest, with the low-level calls.
pub async fn push(client: &Client, r: &Reference, img: &Image) -> Digest {
    client
        .put_blob_from_file(r, &img.layer.0, &img.layer.1)
        .await
        .expect("push layer");
    client
        .put_blob_from_file(r, &img.config.0, &img.config.1)
        .await
        .expect("push config");
    client
        .put_manifest(r, media_types::OCI_MANIFEST, &img.manifest)
        .await
        .expect("push manifest")
}

/// Writes an executable script (closed before it is run).
pub fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
