//! Dev Container Features for tests: publishing a Feature folder to a
//! registry the way `devcontainer features publish` does, packaging it as a
//! tarball, and serving files over loopback HTTP (for tarball Features).
//!
//! What [`publish_feature`] pushes, as the reference CLI does
//! (`containerCollectionsOCIPush.ts`):
//! * one layer, media type `application/vnd.devcontainers.layer.v1+tar`: an
//!   uncompressed tar of the folder's contents (entries relative to the
//!   folder), annotated `org.opencontainers.image.title:
//!   devcontainer-feature-<id>.tgz`;
//! * the config: an empty blob of media type `application/vnd.devcontainers`
//!   (the CLI pushes zero bytes, digest `sha256:e3b0c442…`);
//! * manifest annotations `dev.containers.metadata` (the
//!   `devcontainer-feature.json` compacted; keys sorted, where the CLI keeps
//!   the file's order) and `com.github.package.type:
//!   devcontainer_feature`;
//! * the manifest under every tag given (the CLI pushes `1`, `1.2`, `1.2.3`
//!   and `latest` for version `1.2.3`: [`semver_tags`]).
//!
//! Everything goes through cairn's own registry client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cairn_oci::Digest;
use cairn_registry::{Client, ClientOptions, Reference, media_types};

use crate::seed::SeedError;

/// The layer media type of a Feature.
pub const FEATURE_LAYER_MEDIA_TYPE: &str = "application/vnd.devcontainers.layer.v1+tar";
/// The config media type of a Feature.
pub const FEATURE_CONFIG_MEDIA_TYPE: &str = "application/vnd.devcontainers";

fn io(op: &'static str, p: &Path) -> impl FnOnce(std::io::Error) -> SeedError {
    let p = p.to_path_buf();
    move |e| SeedError::Io(op, p, e)
}

/// What a publish pushed.
#[derive(Debug, Clone)]
pub struct PublishedFeature {
    /// `REGISTRY/REPO` (no tag).
    pub repository: String,
    /// Digest of the manifest (the same under every tag).
    pub manifest_digest: Digest,
    /// Digest of the layer.
    pub layer_digest: Digest,
}

/// The tags the devcontainer CLI publishes version `1.2.3` under: `1`,
/// `1.2`, `1.2.3`, `latest`.
pub fn semver_tags(version: &str) -> Vec<String> {
    let parts: Vec<&str> = version.split('.').collect();
    let mut tags: Vec<String> = (1..=parts.len()).map(|n| parts[..n].join(".")).collect();
    tags.push("latest".into());
    tags
}

/// Writes a tar of the contents of `folder` to `dest` (what `devcontainer
/// features package` puts in `devcontainer-feature-<id>.tgz`, which despite
/// its name is not compressed). Entries are sorted, owned by 0:0, mtime 0.
pub fn package_feature(folder: &Path, dest: &Path) -> Result<(), SeedError> {
    let file = std::fs::File::create(dest).map_err(io("create", dest))?;
    let mut b = tar::Builder::new(file);
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Deterministic);
    let mut paths = Vec::new();
    collect(folder, Path::new(""), &mut paths).map_err(io("read", folder))?;
    paths.sort();
    for rel in paths {
        b.append_path_with_name(folder.join(&rel), &rel)
            .map_err(io("add to tar", &folder.join(&rel)))?;
    }
    b.into_inner()
        .and_then(|mut f| f.flush())
        .map_err(io("write", dest))
}

fn collect(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(root.join(rel))? {
        let e = e?;
        let r = rel.join(e.file_name());
        out.push(r.clone());
        if e.file_type()?.is_dir() {
            collect(root, &r, out)?;
        }
    }
    Ok(())
}

/// Writes a tar whose entry names are taken verbatim (no checks: `../x`,
/// `/abs` are written as given), each a regular file of mode 0644. For tests
/// of unpackers that must refuse such entries.
pub fn raw_tar(dest: &Path, entries: &[(&str, &[u8])]) -> Result<(), SeedError> {
    let file = std::fs::File::create(dest).map_err(io("create", dest))?;
    let mut b = tar::Builder::new(file);
    for (name, data) in entries {
        let mut h = tar::Header::new_ustar();
        let bytes = name.as_bytes();
        let field = &mut h.as_old_mut().name;
        if bytes.len() > field.len() {
            return Err(SeedError::Spec(format!(
                "raw tar entry name too long: {name}"
            )));
        }
        field[..bytes.len()].copy_from_slice(bytes);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, *data).map_err(io("write", dest))?;
    }
    b.into_inner()
        .and_then(|mut f| f.flush())
        .map_err(io("write", dest))
}

/// Publishes the Feature in `folder` (it must hold
/// `devcontainer-feature.json`) as `REGISTRY/REPO:TAG` for every tag.
pub async fn publish_feature(
    registry: &str,
    repo: &str,
    folder: &Path,
    tags: &[&str],
) -> Result<PublishedFeature, SeedError> {
    let meta_path = folder.join("devcontainer-feature.json");
    let metadata = std::fs::read_to_string(&meta_path).map_err(io("read", &meta_path))?;
    let tmp = tempfile::tempdir().map_err(io("create temp dir", Path::new("/tmp")))?;
    let layer = tmp.path().join("layer.tar");
    package_feature(folder, &layer)?;
    publish_feature_layer(registry, repo, &layer, &metadata, tags).await
}

/// Publishes an already made layer file (a tar, or anything a test wants
/// to serve as one) with `metadata` as the `dev.containers.metadata`
/// annotation (compacted when it is JSON) under every tag.
pub async fn publish_feature_layer(
    registry: &str,
    repo: &str,
    layer: &Path,
    metadata: &str,
    tags: &[&str],
) -> Result<PublishedFeature, SeedError> {
    let layer_bytes = std::fs::read(layer).map_err(io("read", layer))?;
    let layer_digest = cairn_oci::sha256_digest(&layer_bytes);
    let tmp = tempfile::tempdir().map_err(io("create temp dir", Path::new("/tmp")))?;
    let config = tmp.path().join("config");
    std::fs::write(&config, b"").map_err(io("write", &config))?;
    let config_digest = cairn_oci::sha256_digest(b"");
    let compact = serde_json::from_str::<serde_json::Value>(metadata)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| metadata.to_string());
    let id = serde_json::from_str::<serde_json::Value>(metadata)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .unwrap_or_else(|| repo.rsplit('/').next().unwrap_or(repo).to_string());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": {
            "mediaType": FEATURE_CONFIG_MEDIA_TYPE,
            "digest": config_digest.to_string(),
            "size": 0,
        },
        "layers": [{
            "mediaType": FEATURE_LAYER_MEDIA_TYPE,
            "digest": layer_digest.to_string(),
            "size": layer_bytes.len(),
            "annotations": {"org.opencontainers.image.title": format!("devcontainer-feature-{id}.tgz")},
        }],
        "annotations": {
            "dev.containers.metadata": compact,
            "com.github.package.type": "devcontainer_feature",
        },
    });
    let manifest_bytes = serde_json::to_vec(&manifest)
        .map_err(|e| SeedError::Spec(format!("manifest JSON: {e}")))?;
    let client = Client::new(ClientOptions::default())?;
    let base: Reference = format!("{registry}/{repo}").parse()?;
    client
        .put_blob_from_file(&base, &layer_digest, layer)
        .await?;
    client
        .put_blob_from_file(&base, &config_digest, &config)
        .await?;
    let mut manifest_digest = cairn_oci::sha256_digest(&manifest_bytes);
    for tag in tags {
        manifest_digest = client
            .put_manifest(
                &base.with_tag(tag),
                media_types::OCI_MANIFEST,
                &manifest_bytes,
            )
            .await?;
    }
    Ok(PublishedFeature {
        repository: base.name(),
        manifest_digest,
        layer_digest,
    })
}

/// A tiny HTTP/1.1 server on `127.0.0.1` serving the files of a directory
/// (`GET /NAME`; 404 for anything else). Stopped on drop.
#[derive(Debug)]
pub struct FileServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    /// Serves the files directly in `root`.
    pub fn start(root: &Path) -> std::io::Result<FileServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (s, r, root) = (stop.clone(), requests.clone(), root.to_path_buf());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                r.fetch_add(1, Ordering::SeqCst);
                let _ = serve(conn, &root);
            }
        });
        Ok(FileServer {
            addr,
            stop,
            requests,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let mut conn = conn;
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let name = path.trim_start_matches('/');
    let file = (!name.is_empty() && !name.contains('/') && !name.contains(".."))
        .then(|| std::fs::File::open(root.join(name)).ok())
        .flatten();
    match file {
        Some(mut f) => {
            let len = f.metadata()?.len();
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
            )?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                conn.write_all(&buf[..n])?;
            }
        }
        None => {
            write!(
                conn,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
        }
    }
    conn.flush()
}
