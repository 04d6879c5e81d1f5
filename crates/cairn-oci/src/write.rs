//! Reproducible layer writing; see [`crate::layer_spec`] for the rules.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io::{self, Read, Write};
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
/// Chunks in flight between the archiving and the compressing thread.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Size of the compressed buffers handed from the compressing thread to the
/// calling thread, and how many may be in flight.
const OUT_BUF: usize = 256 * 1024;
/// See [`OUT_BUF`].
const OUT_BUFS_IN_FLIGHT: usize = 8;

/// Media type of a layer written with `opts`.
fn media_type_of(opts: &LayerOptions) -> &'static str {
    match opts.compression {
        LayerCompression::Gzip | LayerCompression::ParallelGzip => media_types::OCI_LAYER_GZIP,
        LayerCompression::Zstd { .. } => media_types::OCI_LAYER_ZSTD,
    }
}

/// Whether the compressor's output depends on how the input is split into
/// writes, so the tar builder's writes must be replayed one by one (see
/// [`Chunk`]). zlib-rs' single stream does; parallel gzip cuts fixed blocks
/// and zstd's multi-threaded encoder fixed jobs, so they take whole chunks.
fn needs_write_replay(opts: &LayerOptions) -> bool {
    matches!(opts.compression, LayerCompression::Gzip)
}

/// The compressing stage of the pipeline (its own thread; see [`write_layer`]).
enum Compressor<W: Write> {
    Gzip(GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    ParallelGzip(pgzip::ParallelGzip<W>),
}

impl<W: Write> Compressor<W> {
    fn new(compressed: W, opts: &LayerOptions) -> io::Result<Self> {
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

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.write_all(buf),
            Compressor::Zstd(e) => e.write_all(buf),
            Compressor::ParallelGzip(e) => e.write_all(buf),
        }
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
            Compressor::ParallelGzip(e) => e.finish(),
        }
    }
}

/// A run of the tar stream. `data[..len]` holds the bytes; `data` itself is
/// allocated (zeroed) once at [`CHUNK_CAP`] and reused, so file contents can
/// be read straight into it. `writes` are the lengths of the `write` calls
/// that made the run, kept only when the compressor must replay them:
/// zlib-rs' output depends on how its input is split into writes, and the
/// default gzip bytes must stay those of the single-threaded writer.
struct Chunk {
    data: Vec<u8>,
    len: usize,
    writes: Vec<usize>,
}

/// Allocated size of a [`Chunk`]: a chunk is sent once it holds [`CHUNK`]
/// bytes; the slack takes the tar builder's last write (headers, padding)
/// without growing. A larger write (a long PAX header) grows that chunk only.
const CHUNK_CAP: usize = CHUNK + 64 * 1024;

impl Chunk {
    fn new() -> Self {
        Chunk {
            data: vec![0; CHUNK_CAP],
            len: 0,
            writes: Vec::new(),
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }

    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if end > self.data.len() {
            self.data.resize(end, 0);
        }
        self.data[self.len..end].copy_from_slice(bytes);
        self.len = end;
    }
}

/// The archiving end: collects the tar stream into chunks of about [`CHUNK`]
/// bytes, hashes it (the diff_id) and sends the chunks to the compressor.
pub(crate) struct ChunkSender {
    buf: Chunk,
    /// Record write lengths for the compressor to replay (see [`Chunk`]).
    replay: bool,
    /// Chunks to the compressor; `None` after the last one says the tar
    /// stream is complete.
    tx: std::sync::mpsc::SyncSender<Option<Chunk>>,
    /// Chunks the compressor is done with, for reuse.
    recycled: std::sync::mpsc::Receiver<Chunk>,
    /// The diff_id hasher.
    hasher: sha2::Sha256,
}

fn pipeline_closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "layer compressor stopped")
}

impl ChunkSender {
    fn new(
        replay: bool,
        tx: std::sync::mpsc::SyncSender<Option<Chunk>>,
        recycled: std::sync::mpsc::Receiver<Chunk>,
    ) -> Self {
        ChunkSender {
            buf: Chunk::new(),
            replay,
            tx,
            recycled,
            hasher: sha2::Sha256::new(),
        }
    }

    /// Hash the current chunk and hand it to the compressor.
    fn send(&mut self) -> io::Result<()> {
        if self.buf.len == 0 {
            return Ok(());
        }
        self.hasher.update(self.buf.bytes());
        let next = self.recycled.try_recv().unwrap_or_else(|_| Chunk::new());
        let full = std::mem::replace(&mut self.buf, next);
        self.tx.send(Some(full)).map_err(|_| pipeline_closed())
    }

    /// Send the last chunk and the end marker; the diff_id hasher.
    fn finish(mut self) -> io::Result<sha2::Sha256> {
        self.send()?;
        self.tx.send(None).map_err(|_| pipeline_closed())?;
        Ok(self.hasher)
    }

    /// Read exactly `size` bytes of `file` straight into the chunks, then the
    /// zero padding to the next 512-byte block: the data part of a tar entry
    /// whose header was already written. Only for compressors that do not
    /// replay writes. An early end of file is an error (the file shrank).
    fn file_data(&mut self, file: &mut fs::File, size: u64) -> io::Result<()> {
        debug_assert!(!self.replay, "direct reads are not replayable");
        let mut remaining = size;
        while remaining > 0 {
            if self.buf.len >= CHUNK {
                self.send()?;
            }
            let room = CHUNK - self.buf.len;
            let want = room.min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let at = self.buf.len;
            let n = match file.read(&mut self.buf.data[at..at + want]) {
                Ok(0) => {
                    return Err(shrank());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.buf.len += n;
            remaining -= n as u64;
        }
        let pad = (512 - size % 512) % 512;
        self.buf.put(&[0; 512][..pad as usize]);
        if self.buf.len >= CHUNK {
            self.send()?;
        }
        Ok(())
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // Always take the whole write (see [`Chunk`]).
        self.buf.put(data);
        if self.replay {
            self.buf.writes.push(data.len());
        }
        if self.buf.len >= CHUNK {
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
/// A pipeline of scoped threads, each stage bounded:
///
/// 1. with zstd and parallel gzip, a **walker** lists the tree and reads
///    files up to 64 KiB whole, in batches, a few batches ahead (trees of
///    small files are bound by these system calls);
/// 2. the **archiver** writes the tar stream into 1 MiB chunks (larger files
///    read straight into them, not through the tar builder's copy) and
///    hashes it for the diff_id — with single-stream gzip it also walks;
/// 3. the **compressor** feeds the chunks to the encoder (zstd's and
///    parallel gzip's own worker threads do the compressing);
/// 4. the **calling thread** hashes the compressed stream and writes it to
///    `out` (which need not be `Send`).
///
/// Nothing is buffered beyond a few chunks, batches and compressed buffers
/// and the encoder's window; the output bytes do not depend on the thread
/// split or the core count.
pub fn write_layer(
    dir: &Path,
    kind: SourceKind,
    out: impl Write,
    opts: &LayerOptions,
) -> Result<LayerInfo, Error> {
    write_entries(dir, kind, out, opts, |w| {
        if w.builder.get_ref().direct() {
            w.walk_prefetched()
        } else {
            w.walk()
        }
    })
}

/// The pipeline of [`write_layer`] with the entries chosen by `entries`,
/// which runs on the archiving thread and adds them through the
/// [`LayerWriter`] it is given (in layer order: see [`crate::layer_spec`]).
pub(crate) fn write_entries<F>(
    dir: &Path,
    kind: SourceKind,
    out: impl Write,
    opts: &LayerOptions,
    entries: F,
) -> Result<LayerInfo, Error>
where
    F: FnOnce(&mut LayerWriter<'_, ChunkSender>) -> Result<(), Error> + Send,
{
    use std::sync::mpsc::sync_channel;

    let media_type = media_type_of(opts);
    let replay = needs_write_replay(opts);
    let (tx, rx) = sync_channel::<Option<Chunk>>(CHUNKS_IN_FLIGHT);
    let (ret_tx, ret_rx) = sync_channel::<Chunk>(CHUNKS_IN_FLIGHT + 2);
    let (out_tx, out_rx) = sync_channel::<Vec<u8>>(OUT_BUFS_IN_FLIGHT);
    let epoch = opts.source_date_epoch;
    let mut out = HashingWriter::new(out);

    let (archived, compressed, written) = std::thread::scope(|s| {
        let spawned = |name: &str| std::thread::Builder::new().name(name.into());
        let archiver = spawned("cairn-layer-tar")
            .spawn_scoped(s, move || -> Result<sha2::Sha256, Error> {
                let sender = ChunkSender::new(replay, tx, ret_rx);
                let mut builder = Builder::new(sender);
                let mut w = LayerWriter {
                    root: dir,
                    kind,
                    epoch,
                    links: HashMap::new(),
                    builder: &mut builder,
                };
                entries(&mut w)?;
                builder.finish().ctx("finish tar", dir)?;
                let sender = builder.into_inner().ctx("finish tar", dir)?;
                sender.finish().ctx("finish tar", dir)
            })
            .map_err(|e| Error::io("spawn layer thread", dir, e));
        // `None`: the archiver stopped before the end of the tar stream.
        let compressor = spawned("cairn-layer-compress").spawn_scoped(
            s,
            move || -> Result<(), Option<io::Error>> {
                let mut comp = Compressor::new(OutSender::new(out_tx), opts)?;
                let mut complete = false;
                for msg in rx.iter() {
                    let Some(mut chunk) = msg else {
                        complete = true;
                        break;
                    };
                    if !replay {
                        comp.write_all(chunk.bytes())?;
                    } else {
                        let mut at = 0;
                        for &len in &chunk.writes {
                            comp.write_all(&chunk.data[at..at + len])?;
                            at += len;
                        }
                    }
                    chunk.len = 0;
                    chunk.writes.clear();
                    let _ = ret_tx.try_send(chunk);
                }
                if !complete {
                    return Err(None);
                }
                comp.finish()?.finish()?;
                Ok(())
            },
        );
        // This thread hashes the compressed stream and writes it to `out`. A
        // write error drops `out_rx`, which stops the compressor, whose
        // dropped `rx` stops the archiver; any other failure ends the stream.
        let mut written = Ok(());
        if compressor.is_ok() {
            for buf in out_rx {
                if let Err(e) = out.write_all(&buf) {
                    written = Err(e);
                    break;
                }
            }
        }
        let compressed = match compressor {
            Ok(c) => joined(c.join()),
            Err(e) => Err(Some(e)),
        };
        let archived = match archiver {
            Ok(a) => joined(a.join()),
            Err(e) => Err(e),
        };
        (archived, compressed, written)
    });
    // The first failure in the pipeline's order is the cause: output, then
    // compression, then the tar stream (the others only saw a closed pipe).
    written.ctx("write layer", dir)?;
    match compressed {
        Err(Some(e)) if archived.is_ok() || e.kind() != io::ErrorKind::BrokenPipe => {
            return Err(Error::io("compress layer", dir, e));
        }
        _ => {}
    }
    let diff_hasher = archived?;
    let diff_id = crate::hash::sha256_digest_from_hex(&hex::encode(diff_hasher.finalize()));
    let (mut out, digest, size) = out.finish();
    out.flush().ctx("flush layer output", dir)?;
    Ok(LayerInfo {
        digest,
        diff_id,
        size,
        media_type,
    })
}

/// A joined thread's result; its panic goes on in the caller.
fn joined<T>(r: std::thread::Result<T>) -> T {
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// The compressor's output: compressed bytes in buffers of [`OUT_BUF`] to the
/// calling thread.
struct OutSender {
    buf: Vec<u8>,
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl OutSender {
    fn new(tx: std::sync::mpsc::SyncSender<Vec<u8>>) -> Self {
        OutSender {
            buf: Vec::with_capacity(OUT_BUF),
            tx,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(OUT_BUF));
        self.tx.send(full).map_err(|_| pipeline_closed())
    }

    /// Send what is left.
    fn finish(mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

impl Write for OutSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= OUT_BUF {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where the tar builder writes. A sink may take file contents directly
/// ([`ChunkSender::file_data`]) instead of through the builder's 8 KiB copy.
pub(crate) trait TarSink: Write {
    /// Whether [`Self::file_data`] reads straight into the sink.
    fn direct(&self) -> bool {
        false
    }

    /// Write `data` and the padding to the next tar block, as the data of an
    /// entry whose header was already written.
    fn file_bytes(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_all(data)?;
        let pad = (512 - data.len() % 512) % 512;
        self.write_all(&[0; 512][..pad])
    }

    /// Write exactly `size` bytes of `file` and the padding to the next tar
    /// block, as the data of an entry whose header was already written.
    fn file_data(&mut self, file: &mut fs::File, size: u64) -> io::Result<()> {
        let mut reader = ExactReader {
            inner: file,
            remaining: size,
        };
        let n = io::copy(&mut reader, self)?;
        if n != size {
            return Err(shrank());
        }
        let pad = (512 - size % 512) % 512;
        self.write_all(&[0; 512][..pad as usize])
    }
}

impl TarSink for ChunkSender {
    fn direct(&self) -> bool {
        !self.replay
    }

    fn file_data(&mut self, file: &mut fs::File, size: u64) -> io::Result<()> {
        ChunkSender::file_data(self, file, size)
    }
}

impl<W: Write> TarSink for HashingWriter<W> {}

/// Writes entries of the tree under `root` into the tar builder.
pub(crate) struct LayerWriter<'a, W: TarSink> {
    root: &'a Path,
    kind: SourceKind,
    epoch: u64,
    /// (dev, ino) → first archive path (without trailing slash).
    links: HashMap<(u64, u64), PathBuf>,
    builder: &'a mut Builder<W>,
}

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// The xattrs a layer records for `full` as PAX records (`SCHILY.xattr.<name>`,
/// sorted), read through `file` when it is open
/// (one path lookup less per regular file).
pub(crate) fn recorded_xattrs(
    full: &Path,
    file: Option<&fs::File>,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    use xattr::FileExt as _;
    let listed = match file {
        Some(f) => f.list_xattr(),
        None => xattr::list(full),
    };
    let names = match listed {
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
        let value = match file {
            Some(f) => f.get_xattr(&name),
            None => xattr::get(full, &name),
        };
        match value {
            Ok(Some(v)) => out.push((format!("SCHILY.xattr.{name_str}"), v)),
            Ok(None) => {}
            Err(e) => return Err(Error::io("read xattr", full, e)),
        }
    }
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}

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

impl<W: TarSink> LayerWriter<'_, W> {
    fn walk(&mut self) -> Result<(), Error> {
        for entry in sorted_walk(self.root) {
            let (full, rel, meta) = walked(self.root, entry)?;
            self.add(&full, &rel, &meta)?;
        }
        Ok(())
    }

    /// [`Self::walk`] with the system calls on a second thread: it walks the
    /// tree (`getdents`, `lstat`) and reads small regular files whole (open,
    /// xattrs, read, close) a bounded number of entries ahead, while this
    /// thread writes the tar. Trees of small files are bound by those calls.
    /// Only for sinks that take file data directly: the tar crate's copy of
    /// in-memory data would make other `write` calls than its copy of a file.
    fn walk_prefetched(&mut self) -> Result<(), Error> {
        use std::sync::mpsc::sync_channel;
        let root = self.root;
        std::thread::scope(|s| {
            let (tx, rx) = sync_channel::<Vec<Result<Walked, Error>>>(PREFETCH_BATCHES);
            std::thread::Builder::new()
                .name("cairn-layer-walk".into())
                .spawn_scoped(s, move || prefetch(root, &tx))
                .map_err(|e| Error::io("spawn layer thread", root, e))?;
            // An early return drops `rx`, which stops the walker.
            for batch in rx {
                for item in batch {
                    let w = item?;
                    self.add_with(&w.full, &w.rel, &w.meta, w.pre)?;
                }
            }
            Ok(())
        })
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

    fn append_pax(&mut self, full: &Path, file: Option<&fs::File>) -> Result<(), Error> {
        let xattrs = recorded_xattrs(full, file)?;
        self.append_pax_records(full, &xattrs)
    }

    fn append_pax_records(
        &mut self,
        full: &Path,
        xattrs: &[(String, Vec<u8>)],
    ) -> Result<(), Error> {
        if !xattrs.is_empty() {
            self.builder
                .append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .ctx("write pax header", full)?;
        }
        Ok(())
    }

    /// The whiteout `.wh.<name>` in the directory of `rel`, with the owner
    /// and (clamped) mtime of `meta`.
    pub(crate) fn whiteout_entry(
        &mut self,
        rel: &Path,
        meta: &Metadata,
        name: &[u8],
    ) -> Result<(), Error> {
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

    /// The opaque marker `<rel>/.wh..wh..opq` of directory `rel` (metadata
    /// `meta`); goes right after the directory's own entry.
    pub(crate) fn opaque_marker(&mut self, rel: &Path, meta: &Metadata) -> Result<(), Error> {
        let mut h = self.base_header(meta);
        h.set_mode(0o600);
        h.set_entry_type(EntryType::Regular);
        let marker = rel.join(OPAQUE_MARKER);
        self.builder
            .append_data(&mut h, &marker, io::empty())
            .ctx("write opaque marker", &marker)
    }

    /// The entry of `full` (at `rel` in the layer, `lstat` metadata `meta`).
    pub(crate) fn add(&mut self, full: &Path, rel: &Path, meta: &Metadata) -> Result<(), Error> {
        self.add_with(full, rel, meta, None)
    }

    /// [`Self::add`], with the contents and xattrs of a regular file already
    /// read by [`prefetch`] when `pre` is given.
    fn add_with(
        &mut self,
        full: &Path,
        rel: &Path,
        meta: &Metadata,
        pre: Option<PreRead>,
    ) -> Result<(), Error> {
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
            self.append_pax(full, None)?;
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
                self.opaque_marker(rel, meta)?;
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
            self.append_pax(full, None)?;
            self.builder
                .append_link(&mut h, rel, &target)
                .ctx("write symlink", rel)?;
        } else if ft.is_file() {
            h.set_entry_type(EntryType::Regular);
            h.set_size(meta.len());
            if let Some(pre) = pre {
                self.append_pax_records(full, &pre.xattrs)?;
                self.builder
                    .append_data(&mut h, rel, io::empty())
                    .ctx("write file", full)?;
                return self
                    .builder
                    .get_mut()
                    .file_bytes(&pre.data)
                    .ctx("write file", full);
            }
            let mut file = open_source_file(full)?;
            self.append_pax(full, Some(&file))?;
            if self.builder.get_ref().direct() {
                // The builder writes the header (and any GNU long-name
                // entry) for `size` bytes but copies nothing; the sink then
                // reads the contents straight into its buffers.
                self.builder
                    .append_data(&mut h, rel, io::empty())
                    .ctx("write file", full)?;
                self.builder
                    .get_mut()
                    .file_data(&mut file, meta.len())
                    .ctx("read", full)?;
                return Ok(());
            }
            let mut reader = ExactReader {
                inner: file,
                remaining: meta.len(),
            };
            self.builder
                .append_data(&mut h, rel, &mut reader)
                .ctx("write file", full)?;
            if reader.remaining != 0 {
                return Err(Error::io("read", full, shrank()));
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
            self.append_pax(full, None)?;
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

/// Regular files up to this size are read whole by [`prefetch`].
const PREFETCH_MAX_FILE: u64 = 64 * 1024;
/// [`prefetch`] hands entries over in batches of up to this many entries or
/// [`PREFETCH_BATCH_BYTES`] of file contents (one wake-up per batch, not per
/// file), at most [`PREFETCH_BATCHES`] batches ahead of the tar writer.
const PREFETCH_BATCH_ENTRIES: usize = 128;
/// See [`PREFETCH_BATCH_ENTRIES`].
const PREFETCH_BATCH_BYTES: usize = 1 << 20;
/// See [`PREFETCH_BATCH_ENTRIES`].
const PREFETCH_BATCHES: usize = 4;

/// The tree below `root` in layer order (see [`crate::layer_spec`]).
fn sorted_walk(root: &Path) -> walkdir::IntoIter {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()))
        .into_iter()
}

/// Full path, path in the layer and `lstat` metadata of a walked entry.
fn walked(
    root: &Path,
    entry: walkdir::Result<walkdir::DirEntry>,
) -> Result<(PathBuf, PathBuf, Metadata), Error> {
    let entry = entry.map_err(|e| {
        let path = e.path().unwrap_or(root).to_path_buf();
        Error::io("walk", path, e.into())
    })?;
    let full = entry.path();
    let rel = full
        .strip_prefix(root)
        .expect("walkdir yields paths under its root")
        .to_path_buf();
    let meta = entry
        .metadata()
        .map_err(|e| Error::io("lstat", full, e.into()))?;
    Ok((full.to_path_buf(), rel, meta))
}

/// A walked entry on its way to the tar writer.
struct Walked {
    full: PathBuf,
    rel: PathBuf,
    meta: Metadata,
    pre: Option<PreRead>,
}

/// A small regular file read whole: contents and the xattrs to record.
struct PreRead {
    data: Vec<u8>,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Walk `root` in layer order and send every entry, small single-link regular
/// files with their contents and xattrs; stops at the first error (sent) or
/// when the receiver is gone.
fn prefetch(root: &Path, tx: &std::sync::mpsc::SyncSender<Vec<Result<Walked, Error>>>) {
    let mut batch = Vec::with_capacity(PREFETCH_BATCH_ENTRIES);
    let mut bytes = 0;
    for entry in sorted_walk(root) {
        let item = match entry {
            Ok(e) if e.file_type().is_file() => walked_file(root, &e),
            other => walked(root, other).map(|(full, rel, meta)| Walked {
                full,
                rel,
                meta,
                pre: None,
            }),
        };
        let failed = item.is_err();
        if let Ok(Walked { pre: Some(p), .. }) = &item {
            bytes += p.data.len();
        }
        batch.push(item);
        if failed || batch.len() >= PREFETCH_BATCH_ENTRIES || bytes >= PREFETCH_BATCH_BYTES {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(PREFETCH_BATCH_ENTRIES));
            bytes = 0;
            if tx.send(full).is_err() || failed {
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
}

/// An entry the directory listing says is a regular file: opened first and
/// its metadata taken from the open file (`fstat`: one path lookup instead of
/// two), read whole when it is small and has one link. When the open fails
/// (the entry changed since the listing, or is unreadable) it goes the
/// general way (`lstat`, then the archiver opens it and reports the error).
fn walked_file(root: &Path, e: &walkdir::DirEntry) -> Result<Walked, Error> {
    let general = || {
        walked(root, Ok(e.clone())).map(|(full, rel, meta)| Walked {
            full,
            rel,
            meta,
            pre: None,
        })
    };
    // O_NONBLOCK: never wait on a FIFO swapped in since the listing.
    let Ok(mut file) = open_source_file_with(e.path(), rustix::fs::OFlags::NONBLOCK) else {
        return general();
    };
    let full = e.path().to_path_buf();
    let rel = full
        .strip_prefix(root)
        .expect("walkdir yields paths under its root")
        .to_path_buf();
    let meta = file.metadata().ctx("fstat", &full)?;
    let pre = if meta.is_file() && meta.len() <= PREFETCH_MAX_FILE && meta.nlink() == 1 {
        Some(pre_read(&full, &mut file, meta.len())?)
    } else {
        None
    };
    Ok(Walked {
        full,
        rel,
        meta,
        pre,
    })
}

/// Read exactly `size` bytes of the open regular file `full`, and its xattrs.
fn pre_read(full: &Path, file: &mut fs::File, size: u64) -> Result<PreRead, Error> {
    let xattrs = recorded_xattrs(full, Some(file))?;
    let mut data = vec![0; usize::try_from(size).unwrap_or(usize::MAX)];
    let mut n = 0;
    while n < data.len() {
        match file.read(&mut data[n..]) {
            Ok(0) => {
                return Err(Error::io("read", full, shrank()));
            }
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", full, e)),
        }
    }
    Ok(PreRead { data, xattrs })
}

/// Open a regular file of the tree for reading, without following a
/// symlink swapped in after the walk, and with `O_NOATIME` where allowed
/// (the file's owner or `CAP_FOWNER`) so archiving does not dirty inodes
/// with atime updates; retried without it on `EPERM`.
fn open_source_file(full: &Path) -> Result<fs::File, Error> {
    open_source_file_with(full, rustix::fs::OFlags::empty())
}

/// [`open_source_file`] with `extra` open flags.
fn open_source_file_with(full: &Path, extra: rustix::fs::OFlags) -> Result<fs::File, Error> {
    use rustix::fs::OFlags;
    let open = |flags: OFlags| {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags((flags | extra).bits() as i32)
            .open(full)
    };
    match open(OFlags::NOFOLLOW | OFlags::NOATIME) {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
            open(OFlags::NOFOLLOW).ctx("open", full)
        }
        r => r.ctx("open", full),
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

/// The error of a file that got shorter while its bytes were being archived
/// (its size was already in the tar header).
fn shrank() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "file shrank while being archived",
    )
}

#[cfg(test)]
pub(crate) mod tests;
