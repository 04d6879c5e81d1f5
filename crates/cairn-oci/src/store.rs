//! Local content-addressed blob store and OCI image-layout export.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Digest, DigestAlgorithm};
use serde_json::{Value, json};

use crate::error::IoCtx;
use crate::hash::HashingWriter;
use crate::{Error, canonical_json, media_types, sha256_digest};

/// A content-addressed blob store laid out as `<root>/blobs/sha256/<hex>`.
///
/// Blobs are written to a temporary file under `<root>/ingest/` and renamed into
/// place once complete, so a blob path either holds the full content or does not
/// exist. Writes are idempotent.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

fn check_sha256(d: &Digest) -> Result<(), Error> {
    if *d.algorithm() == DigestAlgorithm::Sha256 {
        Ok(())
    } else {
        Err(Error::InvalidDigest {
            digest: d.to_string(),
            reason: "only sha256 is supported".into(),
        })
    }
}

impl ContentStore {
    /// Open (creating if needed) the store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).ctx("create", &blobs)?;
        let ingest = root.join("ingest");
        fs::create_dir_all(&ingest).ctx("create", &ingest)?;
        Ok(ContentStore { root })
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_ref())
            .join(digest.digest())
    }

    /// True if the blob is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    fn temp(&self) -> Result<tempfile::NamedTempFile, Error> {
        let dir = self.root.join("ingest");
        tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&dir)
            .ctx("create temp file in", &dir)
    }

    fn commit(&self, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<(), Error> {
        let dest = self.blob_path(digest);
        if dest.is_file() {
            // Already present: content-addressed, so identical. Drop the temp file.
            return Ok(());
        }
        tmp.as_file().sync_all().ctx("fsync", tmp.path())?;
        tmp.persist(&dest)
            .map_err(|e| Error::io("rename blob into", &dest, e.error))?;
        Ok(())
    }

    /// Write a blob produced by `f`, hashing it on the way; returns its digest and size.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), cairn_oci::Error> {
    /// let store = cairn_oci::ContentStore::open("/tmp/store")?;
    /// let mut info = None;
    /// let (digest, size) = store.write_blob(|w| {
    ///     info = Some(cairn_oci::write_layer(
    ///         std::path::Path::new("/tmp/rootfs"),
    ///         cairn_oci::SourceKind::Plain,
    ///         w,
    ///         &Default::default(),
    ///     )?);
    ///     Ok(())
    /// })?;
    /// # let _ = (digest, size); Ok(()) }
    /// ```
    pub fn write_blob<F>(&self, f: F) -> Result<(Digest, u64), Error>
    where
        F: FnOnce(&mut dyn Write) -> Result<(), Error>,
    {
        let mut tmp = self.temp()?;
        let tmp_path = tmp.path().to_path_buf();
        let (digest, size) = {
            let mut w = HashingWriter::new(BufWriter::with_capacity(128 * 1024, tmp.as_file_mut()));
            f(&mut w)?;
            w.flush().ctx("write", &tmp_path)?;
            let (_, d, n) = w.finish();
            (d, n)
        };
        self.commit(tmp, &digest)?;
        Ok((digest, size))
    }

    /// Copy `reader` into the store, verifying it hashes to `expected`.
    /// On mismatch nothing is stored (the temp file is deleted) and
    /// [`Error::DigestMismatch`] is returned.
    pub fn ingest_verified(&self, mut reader: impl Read, expected: &Digest) -> Result<u64, Error> {
        check_sha256(expected)?;
        let mut tmp = self.temp()?;
        let tmp_path = tmp.path().to_path_buf();
        let (actual, size) = {
            let mut w = HashingWriter::new(BufWriter::with_capacity(128 * 1024, tmp.as_file_mut()));
            io::copy(&mut reader, &mut w).ctx("ingest into", &tmp_path)?;
            w.flush().ctx("write", &tmp_path)?;
            let (_, d, n) = w.finish();
            (d, n)
        };
        if actual != *expected {
            drop(tmp); // deletes the temp file
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        self.commit(tmp, expected)?;
        Ok(size)
    }

    /// Store `bytes`; returns their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, Error> {
        let digest = sha256_digest(bytes);
        if !self.contains(&digest) {
            self.ingest_verified(bytes, &digest)?;
        }
        Ok(digest)
    }

    /// Open a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, Error> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::BlobNotFound {
                    digest: digest.clone(),
                    store: self.root.clone(),
                }
            } else {
                Error::io("open blob", &path, e)
            }
        })
    }

    /// Read a (small) blob fully, verifying its digest.
    pub fn read_bytes(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        check_sha256(digest)?;
        let mut buf = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut buf)
            .ctx("read blob", self.blob_path(digest))?;
        let actual = sha256_digest(&buf);
        if actual != *digest {
            return Err(Error::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(buf)
    }
}

fn json_err(what: &str) -> impl FnOnce(serde_json::Error) -> Error + '_ {
    move |source| Error::Json {
        what: what.to_string(),
        source,
    }
}

fn parse_digest(v: &Value, ctx: &Path) -> Result<Digest, Error> {
    let s = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Unsupported {
            what: "descriptor without digest".into(),
            path: ctx.to_path_buf(),
        })?;
    Digest::try_from(s).map_err(|e| Error::InvalidDigest {
        digest: s.to_string(),
        reason: e.to_string(),
    })
}

/// Collect the blobs reachable from a manifest or index (including itself).
fn collect_blobs(
    store: &ContentStore,
    digest: &Digest,
    media_type: &str,
    out: &mut Vec<Digest>,
) -> Result<(), Error> {
    if out.contains(digest) {
        return Ok(());
    }
    out.push(digest.clone());
    let bytes = store.read_bytes(digest)?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(json_err("manifest"))?;
    let path = store.blob_path(digest);
    // Trust the document's own mediaType when present.
    let mt = doc
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or(media_type);
    if media_types::is_index(mt) || (doc.get("manifests").is_some() && doc.get("layers").is_none())
    {
        for m in doc
            .get("manifests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let d = parse_digest(m, &path)?;
            let child_mt = m
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or(media_types::OCI_MANIFEST);
            collect_blobs(store, &d, child_mt, out)?;
        }
    } else {
        let config = doc.get("config").ok_or_else(|| Error::Unsupported {
            what: "manifest without config".into(),
            path: path.clone(),
        })?;
        let d = parse_digest(config, &path)?;
        if !out.contains(&d) {
            out.push(d);
        }
        for l in doc
            .get("layers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let d = parse_digest(l, &path)?;
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    Ok(())
}

/// Export an image as an OCI image layout at `dest`: writes `oci-layout`,
/// `index.json` (one descriptor for the manifest, annotated with
/// `org.opencontainers.image.ref.name` when `ref_name` is given) and every blob
/// reachable from the manifest (itself, config, layers; for an index, all child
/// manifests) into `dest/blobs/sha256/`, hardlinked when possible, copied
/// otherwise. An existing `index.json` is replaced.
pub fn write_oci_layout(
    store: &ContentStore,
    manifest_digest: &Digest,
    manifest_media_type: &str,
    manifest_size: u64,
    dest: &Path,
    ref_name: Option<&str>,
) -> Result<(), Error> {
    check_sha256(manifest_digest)?;
    let stored = fs::metadata(store.blob_path(manifest_digest))
        .map_err(|_| Error::BlobNotFound {
            digest: manifest_digest.clone(),
            store: store.root().to_path_buf(),
        })?
        .len();
    if stored != manifest_size {
        return Err(Error::Unsupported {
            what: format!("manifest size {manifest_size} (stored blob has {stored} bytes)"),
            path: store.blob_path(manifest_digest),
        });
    }
    let mut blobs = Vec::new();
    collect_blobs(store, manifest_digest, manifest_media_type, &mut blobs)?;

    let blob_dir = dest.join("blobs").join("sha256");
    fs::create_dir_all(&blob_dir).ctx("create", &blob_dir)?;
    for d in &blobs {
        check_sha256(d)?;
        let src = store.blob_path(d);
        if !src.is_file() {
            return Err(Error::BlobNotFound {
                digest: d.clone(),
                store: store.root().to_path_buf(),
            });
        }
        let dst = blob_dir.join(d.digest());
        if dst.is_file() {
            continue;
        }
        if fs::hard_link(&src, &dst).is_err() {
            // Different filesystem or no link permission: copy via a temp name.
            let tmp = blob_dir.join(format!(".tmp-{}", d.digest()));
            fs::copy(&src, &tmp).ctx("copy blob to", &tmp)?;
            fs::rename(&tmp, &dst).ctx("rename blob to", &dst)?;
        }
    }

    write_file(
        &dest.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let mut desc = json!({
        "mediaType": manifest_media_type,
        "digest": manifest_digest.to_string(),
        "size": manifest_size,
    });
    if let Some(r) = ref_name {
        desc["annotations"] = json!({ "org.opencontainers.image.ref.name": r });
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": [desc],
    });
    write_file(&dest.join("index.json"), &canonical_json(&index)?)?;
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).ctx("create temp file in", dir)?;
    tmp.write_all(bytes).ctx("write", tmp.path())?;
    tmp.persist(path)
        .map_err(|e| Error::io("rename into", path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests;
