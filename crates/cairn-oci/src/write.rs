//! Reproducible layer writing; see [`crate::layer_spec`] for the rules.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use oci_spec::image::Digest;
use tar::{Builder, EntryType, Header};

use crate::error::IoCtx;
use crate::hash::HashingWriter;
use crate::{Error, media_types};
use sha2::Digest as _;

/// How [`write_layer`] compresses the tar stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayerCompression {
    /// gzip at [`LayerOptions::gzip_level`]: one gzip member from flate2 +
    /// zlib-rs, media type [`media_types::OCI_LAYER_GZIP`]. The default.
    #[default]
    Gzip,
    /// gzip at [`LayerOptions::gzip_level`], compressed in parallel: 1 MiB
    /// blocks, each raw deflate with the previous 32 KiB as dictionary and a
    /// sync flush, as pigz does; still one ordinary gzip member, media type
    /// [`media_types::OCI_LAYER_GZIP`]. Other bytes than [`Self::Gzip`]
    /// (slightly larger), but they do not depend on
    /// [`LayerOptions::compression_threads`].
    ParallelGzip,
    /// zstd at `level` (1–19; 3 is zstd's default), one frame with a content
    /// checksum written by zstd's multi-threaded encoder with at least one
    /// worker, media type [`media_types::OCI_LAYER_ZSTD`]. The bytes do not
    /// depend on [`LayerOptions::compression_threads`].
    Zstd {
        /// zstd compression level.
        level: i32,
    },
}

/// Knobs for [`write_layer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOptions {
    /// Upper bound for every entry's mtime (`SOURCE_DATE_EPOCH`). Default 0.
    pub source_date_epoch: u64,
    /// gzip level 0–9, used with [`LayerCompression::Gzip`]. Default 6.
    pub gzip_level: u32,
    /// Compression of the blob. Default [`LayerCompression::Gzip`].
    pub compression: LayerCompression,
    /// Worker threads for compressors that have them (parallel gzip, zstd); 0 (the
    /// default) means the host's available parallelism. Never changes the
    /// output bytes: zstd always runs with at least one worker, whose output
    /// differs from zstd's single-threaded mode but not between worker counts.
    pub compression_threads: usize,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            source_date_epoch: 0,
            gzip_level: 6,
            compression: LayerCompression::Gzip,
            compression_threads: 0,
        }
    }
}

impl LayerOptions {
    /// Compression workers for these options: `compression_threads`, or the
    /// host's parallelism when 0, and never less than 1.
    fn workers(&self) -> u32 {
        let n = match self.compression_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        u32::try_from(n).unwrap_or(u32::MAX).clamp(1, 256)
    }
}

/// What [`write_layer`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// sha256 of the compressed blob.
    pub digest: Digest,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the compressed blob in bytes.
    pub size: u64,
    /// Media type of the blob ([`media_types::OCI_LAYER_GZIP`] or
    /// [`media_types::OCI_LAYER_ZSTD`]).
    pub media_type: &'static str,
}

/// How to interpret the directory given to [`write_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A directory tree taken as-is.
    Plain,
    /// An overlayfs upper dir: char dev 0/0 → `.wh.<name>`, opaque dirs
    /// (`trusted.overlay.opaque=y` / `user.overlay.opaque=y`) → dir +
    /// `.wh..wh..opq`; overlay xattrs are dropped.
    OverlayUpper,
}

/// True if the (upper) directory has no entries at all.
pub fn layer_is_empty(upper: &Path) -> Result<bool, Error> {
    let mut rd = fs::read_dir(upper).ctx("read dir", upper)?;
    Ok(rd.next().is_none())
}

/// Size of the tar chunks handed from the archiving thread to the compressor.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the two threads.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The compressing end of the pipeline (runs on the caller's thread, which
/// owns `out`).
enum Compressor<W: Write> {
    Gzip(GzEncoder<HashingWriter<BufWriter<W>>>),
    Zstd(zstd::stream::write::Encoder<'static, HashingWriter<BufWriter<W>>>),
    ParallelGzip(pgzip::ParallelGzip<HashingWriter<BufWriter<W>>>),
}

impl<W: Write> Compressor<W> {
    fn new(out: W, opts: &LayerOptions) -> io::Result<Self> {
        let compressed = HashingWriter::new(BufWriter::with_capacity(256 * 1024, out));
        Ok(match opts.compression {
            LayerCompression::Gzip => Compressor::Gzip(GzEncoder::new(
                compressed,
                Compression::new(opts.gzip_level.min(9)),
            )),
            LayerCompression::ParallelGzip => Compressor::ParallelGzip(pgzip::ParallelGzip::new(
                compressed,
                opts.gzip_level,
                opts.workers() as usize,
            )?),
            LayerCompression::Zstd { level } => {
                let mut enc = zstd::stream::write::Encoder::new(compressed, level)?;
                // Never 0 workers: single-threaded zstd writes other bytes.
                enc.multithread(opts.workers())?;
                enc.include_checksum(true)?;
                Compressor::Zstd(enc)
            }
        })
    }

    fn media_type(&self) -> &'static str {
        match self {
            Compressor::Gzip(_) | Compressor::ParallelGzip(_) => media_types::OCI_LAYER_GZIP,
            Compressor::Zstd(_) => media_types::OCI_LAYER_ZSTD,
        }
    }

    /// Whether the output depends on how the input is split into writes, so
    /// the tar builder's writes must be replayed one by one (see [`Chunk`]).
    /// zlib-rs' single stream does; parallel gzip cuts fixed blocks and zstd's
    /// multi-threaded encoder fixed jobs, so they take whole chunks.
    fn needs_write_replay(&self) -> bool {
        matches!(self, Compressor::Gzip(_))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.write_all(buf),
            Compressor::Zstd(e) => e.write_all(buf),
            Compressor::ParallelGzip(e) => e.write_all(buf),
        }
    }

    fn finish(self) -> io::Result<HashingWriter<BufWriter<W>>> {
        match self {
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
            Compressor::ParallelGzip(e) => e.finish(),
        }
    }
}

/// A run of the tar stream plus the lengths of the `write` calls that made
/// it, so the compressor can replay exactly the same calls: zlib-rs' output
/// depends on how its input is split into writes, and the default gzip
/// bytes must stay those of the single-threaded writer.
#[derive(Default)]
struct Chunk {
    data: Vec<u8>,
    writes: Vec<usize>,
}

/// The archiving end: collects the tar stream into chunks of about [`CHUNK`]
/// bytes, hashes it (the diff_id) and sends the chunks to the compressor.
struct ChunkSender {
    buf: Chunk,
    tx: std::sync::mpsc::SyncSender<Chunk>,
    /// Chunks the compressor is done with, for reuse.
    recycled: std::sync::mpsc::Receiver<Chunk>,
    hasher: sha2::Sha256,
    count: u64,
}

fn pipeline_closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "layer compressor stopped")
}

impl ChunkSender {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.data.is_empty() {
            return Ok(());
        }
        let next = self.recycled.try_recv().unwrap_or_else(|_| Chunk {
            data: Vec::with_capacity(CHUNK + 64 * 1024),
            writes: Vec::new(),
        });
        let full = std::mem::replace(&mut self.buf, next);
        self.tx.send(full).map_err(|_| pipeline_closed())
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // Always take the whole write (see [`Chunk`]).
        self.buf.data.extend_from_slice(data);
        self.buf.writes.push(data.len());
        self.hasher.update(data);
        self.count += data.len() as u64;
        if self.buf.data.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Stream `dir` as a reproducible tar → gzip (or zstd) into `out`, computing
/// the diff_id and compressed digest on the fly. See [`crate::layer_spec`].
///
/// Two threads share the work: a scoped thread walks the tree, writes the
/// tar stream and hashes it, handing 1 MiB chunks (at most a few in flight)
/// to the calling thread, which compresses, hashes and writes to `out`.
/// Nothing is buffered beyond those chunks and the encoder's window; the
/// output bytes do not depend on the thread split.
pub fn write_layer(
    dir: &Path,
    kind: SourceKind,
    out: impl Write,
    opts: &LayerOptions,
) -> Result<LayerInfo, Error> {
    use std::sync::mpsc::sync_channel;

    let mut comp = Compressor::new(out, opts).ctx("start compressor", dir)?;
    let media_type = comp.media_type();
    let (tx, rx) = sync_channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let (ret_tx, ret_rx) = sync_channel::<Chunk>(CHUNKS_IN_FLIGHT + 2);
    let epoch = opts.source_date_epoch;

    let (archived, compressed) = std::thread::scope(|s| {
        let archiver = std::thread::Builder::new()
            .name("cairn-layer-tar".into())
            .spawn_scoped(s, move || -> Result<(Digest, u64), Error> {
                let sender = ChunkSender {
                    buf: Chunk::default(),
                    tx,
                    recycled: ret_rx,
                    hasher: sha2::Sha256::new(),
                    count: 0,
                };
                let mut builder = Builder::new(sender);
                let mut w = LayerWriter {
                    root: dir,
                    kind,
                    epoch,
                    links: HashMap::new(),
                    builder: &mut builder,
                };
                w.walk()?;
                builder.finish().ctx("finish tar", dir)?;
                let mut sender = builder.into_inner().ctx("finish tar", dir)?;
                sender.send().ctx("finish tar", dir)?;
                let hex = hex::encode(sha2::Digest::finalize(sender.hasher));
                Ok((crate::hash::sha256_digest_from_hex(&hex), sender.count))
            })
            .map_err(|e| Error::io("spawn layer thread", dir, e));
        let archiver = match archiver {
            Ok(a) => a,
            Err(e) => return (Err(e), Err(pipeline_closed())),
        };
        let mut result = Ok(());
        let replay = comp.needs_write_replay();
        'chunks: for mut chunk in rx.iter() {
            if !replay {
                if let Err(e) = comp.write_all(&chunk.data) {
                    result = Err(e);
                    break 'chunks;
                }
            } else {
                let mut at = 0;
                for &len in &chunk.writes {
                    if let Err(e) = comp.write_all(&chunk.data[at..at + len]) {
                        result = Err(e);
                        break 'chunks;
                    }
                    at += len;
                }
            }
            chunk.data.clear();
            chunk.writes.clear();
            let _ = ret_tx.try_send(chunk);
        }
        // On a compressor error, dropping `rx` makes the archiver stop.
        drop(rx);
        let archived = archiver
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (archived, result)
    });
    // The compressor's error is the cause when both failed.
    if let Err(e) = compressed {
        return Err(Error::io("compress layer", dir, e));
    }
    let (diff_id, _tar_len) = archived?;
    let compressed = comp.finish().ctx("finish compression", dir)?;
    let (mut buf, digest, size) = compressed.finish();
    buf.flush().ctx("flush layer output", dir)?;
    Ok(LayerInfo {
        digest,
        diff_id,
        size,
        media_type,
    })
}

struct LayerWriter<'a, W: Write> {
    root: &'a Path,
    kind: SourceKind,
    epoch: u64,
    /// (dev, ino) → first archive path (without trailing slash).
    links: HashMap<(u64, u64), PathBuf>,
    builder: &'a mut Builder<W>,
}

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

fn xattr_is(path: &Path, names: &[&str], want: &[u8]) -> bool {
    names
        .iter()
        .any(|n| matches!(xattr::get(path, n), Ok(Some(v)) if v == want))
}

fn xattr_present(path: &Path, names: &[&str]) -> bool {
    names
        .iter()
        .any(|n| matches!(xattr::get(path, n), Ok(Some(_))))
}

impl<W: Write> LayerWriter<'_, W> {
    fn walk(&mut self) -> Result<(), Error> {
        let walker = walkdir::WalkDir::new(self.root)
            .min_depth(1)
            .follow_links(false)
            .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
        for entry in walker {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(self.root).to_path_buf();
                Error::io("walk", path, e.into())
            })?;
            let full = entry.path();
            let rel = full
                .strip_prefix(self.root)
                .expect("walkdir yields paths under its root")
                .to_path_buf();
            let meta = entry
                .metadata()
                .map_err(|e| Error::io("lstat", full, e.into()))?;
            self.add(full, &rel, &meta)?;
        }
        Ok(())
    }

    fn mtime(&self, meta: &Metadata) -> u64 {
        let m = u64::try_from(meta.mtime()).unwrap_or(0);
        m.min(self.epoch)
    }

    fn base_header(&self, meta: &Metadata) -> Header {
        let mut h = Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(u64::from(meta.uid()));
        h.set_gid(u64::from(meta.gid()));
        h.set_mtime(self.mtime(meta));
        h.set_size(0);
        h
    }

    fn xattrs(&self, full: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let names = match xattr::list(full) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTSUP.raw_os_error()) => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(Error::io("list xattrs", full, e)),
        };
        let mut out = Vec::new();
        for name in names {
            let nb = name.as_bytes();
            if is_overlay_xattr(nb) || nb == b"security.selinux" {
                continue;
            }
            let Some(name_str) = name.to_str() else {
                tracing::warn!(path = %full.display(), "skipping non-UTF-8 xattr name");
                continue;
            };
            match xattr::get(full, &name) {
                Ok(Some(v)) => out.push((format!("SCHILY.xattr.{name_str}"), v)),
                Ok(None) => {}
                Err(e) => return Err(Error::io("read xattr", full, e)),
            }
        }
        out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(out)
    }

    fn append_pax(&mut self, full: &Path) -> Result<(), Error> {
        let xattrs = self.xattrs(full)?;
        if !xattrs.is_empty() {
            self.builder
                .append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .ctx("write pax header", full)?;
        }
        Ok(())
    }

    fn whiteout_entry(&mut self, rel: &Path, meta: &Metadata, name: &[u8]) -> Result<(), Error> {
        let mut h = self.base_header(meta);
        h.set_mode(0o600);
        h.set_entry_type(EntryType::Regular);
        let mut wh = OsString::from_vec(WHITEOUT_PREFIX.to_vec());
        wh.push(std::ffi::OsStr::from_bytes(name));
        let path = match rel.parent() {
            Some(p) => p.join(wh),
            None => PathBuf::from(wh),
        };
        self.builder
            .append_data(&mut h, &path, io::empty())
            .ctx("write whiteout", &path)
    }

    fn add(&mut self, full: &Path, rel: &Path, meta: &Metadata) -> Result<(), Error> {
        let ft = meta.file_type();
        let name = rel.file_name().map(|n| n.as_bytes()).unwrap_or_default();

        if self.kind == SourceKind::OverlayUpper {
            let whiteout_xattrs = ["trusted.overlay.whiteout", "user.overlay.whiteout"];
            let is_whiteout = (ft.is_char_device() && meta.rdev() == 0)
                || (ft.is_file() && meta.len() == 0 && xattr_present(full, &whiteout_xattrs));
            if is_whiteout {
                return self.whiteout_entry(rel, meta, name);
            }
        }

        if ft.is_dir() {
            let mut h = self.base_header(meta);
            h.set_entry_type(EntryType::Directory);
            let mut p = rel.as_os_str().to_owned().into_vec();
            p.push(b'/');
            let p = PathBuf::from(OsString::from_vec(p));
            self.append_pax(full)?;
            self.builder
                .append_data(&mut h, &p, io::empty())
                .ctx("write dir entry", &p)?;
            if self.kind == SourceKind::OverlayUpper
                && xattr_is(
                    full,
                    &["trusted.overlay.opaque", "user.overlay.opaque"],
                    b"y",
                )
            {
                let mut h = self.base_header(meta);
                h.set_mode(0o600);
                h.set_entry_type(EntryType::Regular);
                let marker = rel.join(OPAQUE_MARKER);
                self.builder
                    .append_data(&mut h, &marker, io::empty())
                    .ctx("write opaque marker", &marker)?;
            }
            return Ok(());
        }

        if ft.is_socket() {
            tracing::warn!(path = %full.display(), "skipping socket in layer");
            return Ok(());
        }

        // Hardlinks: second and later paths of an inode.
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                let mut h = self.base_header(meta);
                h.set_entry_type(EntryType::Link);
                self.builder
                    .append_link(&mut h, rel, &first)
                    .ctx("write hardlink", rel)?;
                return Ok(());
            }
            self.links.insert(key, rel.to_path_buf());
        }

        let mut h = self.base_header(meta);
        if ft.is_symlink() {
            let target = fs::read_link(full).ctx("readlink", full)?;
            h.set_entry_type(EntryType::Symlink);
            self.append_pax(full)?;
            self.builder
                .append_link(&mut h, rel, &target)
                .ctx("write symlink", rel)?;
        } else if ft.is_file() {
            h.set_entry_type(EntryType::Regular);
            h.set_size(meta.len());
            let file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(full)
                .ctx("open", full)?;
            self.append_pax(full)?;
            let mut reader = ExactReader {
                inner: file,
                remaining: meta.len(),
            };
            self.builder
                .append_data(&mut h, rel, &mut reader)
                .ctx("write file", full)?;
            if reader.remaining != 0 {
                return Err(Error::io(
                    "read",
                    full,
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being archived",
                    ),
                ));
            }
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            let et = if ft.is_fifo() {
                EntryType::Fifo
            } else if ft.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            };
            h.set_entry_type(et);
            if !ft.is_fifo() {
                let rdev = meta.rdev();
                h.set_device_major(rustix::fs::major(rdev))
                    .ctx("device major", full)?;
                h.set_device_minor(rustix::fs::minor(rdev))
                    .ctx("device minor", full)?;
            }
            self.append_pax(full)?;
            self.builder
                .append_data(&mut h, rel, io::empty())
                .ctx("write special file", full)?;
        } else {
            return Err(Error::Unsupported {
                what: "file type".into(),
                path: full.to_path_buf(),
            });
        }
        Ok(())
    }
}

/// Reads at most `remaining` bytes; the caller checks that all were read.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

mod pgzip;
#[cfg(test)]
pub(crate) mod tests;
