//! Push and pull an OCI image layout with cairn's registry client, for
//! `benches/registry-vs-skopeo.sh` (side-by-side timing against `skopeo copy`).
//!
//! ```text
//! regbench push DIR REF [-j N]   # OCI layout DIR (first manifest in index.json) -> REF
//! regbench pull REF DIR [-j N]   # REF -> new OCI layout DIR (ref name = REF's tag)
//! ```
//!
//! `push` uses [`Client::push_image`] (existence check per blob, parallel
//! monolithic uploads, manifest PUT last). `pull` fetches the manifest, then
//! the config and every layer with [`Client::get_blob_to_file`] (streamed,
//! sha256-verified), at most N at once (default 4, like `push`), and writes
//! `index.json` and `oci-layout`. Both print the elapsed wall time in seconds
//! on the last line (`elapsed 1.234`). Loopback registries use plain HTTP.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Instant;

use cairn_registry::{Client, ClientOptions, Digest, Reference, media_types};
use futures_util::StreamExt;
use serde_json::Value;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn usage() -> ExitCode {
    eprintln!("usage: regbench push DIR REF [-j N] | regbench pull REF DIR [-j N]");
    ExitCode::from(2)
}

fn blob_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(d.algorithm().as_ref())
        .join(d.digest())
}

/// Config and layer digests of an image manifest (OCI or Docker v2s2).
fn manifest_blobs(manifest: &[u8]) -> Res<Vec<Digest>> {
    let v: Value = serde_json::from_slice(manifest)?;
    let mut out = Vec::new();
    let config = v
        .get("config")
        .and_then(|c| c.get("digest"))
        .and_then(Value::as_str)
        .ok_or("manifest has no config digest (an index? pass a platform manifest)")?;
    out.push(Digest::from_str(config)?);
    for l in v
        .get("layers")
        .and_then(Value::as_array)
        .ok_or("manifest has no layers array")?
    {
        let d = l
            .get("digest")
            .and_then(Value::as_str)
            .ok_or("layer without digest")?;
        out.push(Digest::from_str(d)?);
    }
    Ok(out)
}

async fn push(dir: &Path, target: &Reference, parallel: usize) -> Res<()> {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json"))?)?;
    let desc = index
        .get("manifests")
        .and_then(Value::as_array)
        .and_then(|m| m.first())
        .ok_or("index.json has no manifests")?;
    let mdigest = Digest::from_str(
        desc.get("digest")
            .and_then(Value::as_str)
            .ok_or("manifest descriptor without digest")?,
    )?;
    let manifest = std::fs::read(blob_path(dir, &mdigest))?;
    let media_type = serde_json::from_slice::<Value>(&manifest)?
        .get("mediaType")
        .and_then(Value::as_str)
        .or_else(|| desc.get("mediaType").and_then(Value::as_str))
        .unwrap_or(media_types::OCI_MANIFEST)
        .to_owned();
    let blobs: Vec<(Digest, PathBuf)> = manifest_blobs(&manifest)?
        .into_iter()
        .map(|d| {
            let p = blob_path(dir, &d);
            (d, p)
        })
        .collect();
    let client = Client::new(ClientOptions {
        max_parallel_transfers: parallel,
        ..Default::default()
    })?;
    let pushed = client
        .push_image(target, &blobs, &media_type, &manifest)
        .await?;
    if pushed != mdigest {
        return Err(format!("registry answered digest {pushed}, expected {mdigest}").into());
    }
    eprintln!("pushed {target}@{pushed} ({} blobs)", blobs.len());
    Ok(())
}

async fn pull(source: &Reference, dir: &Path, parallel: usize) -> Res<()> {
    let client = Client::new(ClientOptions {
        max_parallel_transfers: parallel,
        ..Default::default()
    })?;
    let m = client.get_manifest(source).await?;
    if m.media_type == media_types::OCI_INDEX || m.media_type == media_types::DOCKER_MANIFEST_LIST {
        return Err(format!(
            "{source} is an index ({}); pull a platform manifest",
            m.media_type
        )
        .into());
    }
    let blobs = manifest_blobs(&m.bytes)?;
    let sha_dir = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&sha_dir)?;
    let results: Vec<Result<u64, cairn_registry::Error>> = futures_util::stream::iter(blobs.iter())
        .map(|d| {
            let dest = blob_path(dir, d);
            let client = &client;
            async move { client.get_blob_to_file(source, d, &dest).await }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let mut total = 0;
    for r in results {
        total += r?;
    }
    std::fs::write(blob_path(dir, &m.digest), &m.bytes)?;
    let mut desc = serde_json::json!({
        "mediaType": m.media_type,
        "digest": m.digest.to_string(),
        "size": m.bytes.len(),
    });
    if let Some(tag) = &source.tag {
        desc["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": tag });
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": [desc],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    eprintln!(
        "pulled {source}@{} ({} blobs, {total} bytes)",
        m.digest,
        blobs.len()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut pos, mut parallel) = (Vec::new(), 4usize);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-j" {
            match it.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => parallel = n,
                _ => return usage(),
            }
        } else {
            pos.push(a.as_str());
        }
    }
    let start = Instant::now();
    let result: Res<()> = match pos.as_slice() {
        ["push", dir, r] => match r.parse::<Reference>() {
            Ok(r) => push(Path::new(dir), &r, parallel).await,
            Err(e) => Err(e.into()),
        },
        ["pull", r, dir] => match r.parse::<Reference>() {
            Ok(r) => pull(&r, Path::new(dir), parallel).await,
            Err(e) => Err(e.into()),
        },
        _ => return usage(),
    };
    match result {
        Ok(()) => {
            println!("elapsed {:.3}", start.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("regbench: {e}");
            ExitCode::FAILURE
        }
    }
}
