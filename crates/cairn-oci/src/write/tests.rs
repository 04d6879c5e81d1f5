use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use rustix::fs::{CWD, FileType, Mode};

use super::*;

/// One tar entry as seen by the tar crate's reader (fine for tests).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seen {
    pub path: String,
    pub kind: EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub link: Option<String>,
    pub data: Vec<u8>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

pub(crate) fn read_entries(tar_bytes: &[u8]) -> Vec<Seen> {
    let mut ar = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut xattrs = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                xattrs.insert(x.key().unwrap().to_string(), x.value_bytes().to_vec());
            }
        }
        let h = e.header().clone();
        assert_eq!(h.username_bytes().unwrap_or_default(), b"");
        assert_eq!(h.groupname_bytes().unwrap_or_default(), b"");
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8(l.into_owned()).unwrap());
        let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(Seen {
            path,
            kind: h.entry_type(),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            mtime: h.mtime().unwrap(),
            link,
            data,
            xattrs,
        });
    }
    out
}

pub(crate) fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Try to set a user xattr; false when the filesystem refuses.
pub(crate) fn try_xattr(p: &Path, name: &str, value: &[u8]) -> bool {
    xattr::set(p, name, value).is_ok()
}

/// A tree with a file, a dir, a symlink, a hardlink, a fifo, setuid bits and an xattr.
pub(crate) fn sample_tree(root: &Path) -> bool {
    fs::write(root.join("a"), b"hello").unwrap();
    fs::write(root.join("a-b"), b"x").unwrap();
    fs::hard_link(root.join("a"), root.join("a2")).unwrap();
    fs::create_dir(root.join("d")).unwrap();
    fs::write(root.join("d/f"), b"setuid").unwrap();
    fs::set_permissions(root.join("d/f"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(root.join("d"), fs::Permissions::from_mode(0o1750)).unwrap();
    symlink("a", root.join("s")).unwrap();
    rustix::fs::mknodat(
        CWD,
        root.join("p"),
        FileType::Fifo,
        Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    fs::set_permissions(root.join("p"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::lchown(root.join("a-b"), Some(1000), Some(1001)).unwrap();
    try_xattr(&root.join("a"), "user.cairn", b"v1")
}

fn layer_bytes(dir: &Path, kind: SourceKind, opts: &LayerOptions) -> (LayerInfo, Vec<u8>) {
    let mut out = Vec::new();
    let info = write_layer(dir, kind, &mut out, opts).unwrap();
    (info, out)
}

#[test]
fn plain_tree_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let has_xattr = sample_tree(root);
    let opts = LayerOptions {
        source_date_epoch: 1_000_000,
        ..LayerOptions::default()
    };
    let (info, gz) = layer_bytes(root, SourceKind::Plain, &opts);
    assert_eq!(info.size, gz.len() as u64);
    assert_eq!(info.digest, crate::sha256_digest(&gz));
    assert_eq!(info.media_type, media_types::OCI_LAYER_GZIP);
    let tar_bytes = gunzip(&gz);
    assert_eq!(info.diff_id, crate::sha256_digest(&tar_bytes));

    let entries = read_entries(&tar_bytes);
    let paths: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["a", "a-b", "a2", "d/", "d/f", "p", "s"]);
    let by = |p: &str| entries.iter().find(|e| e.path == p).unwrap().clone();

    let a = by("a");
    assert_eq!(a.kind, EntryType::Regular);
    assert_eq!(a.data, b"hello");
    assert_eq!(a.mtime, 1_000_000, "mtime clamped to epoch");
    if has_xattr {
        assert_eq!(a.xattrs.get("SCHILY.xattr.user.cairn").unwrap(), b"v1");
    }
    let ab = by("a-b");
    assert_eq!((ab.uid, ab.gid), (1000, 1001));
    let a2 = by("a2");
    assert_eq!(a2.kind, EntryType::Link);
    assert_eq!(a2.link.as_deref(), Some("a"));
    let d = by("d/");
    assert_eq!(d.kind, EntryType::Directory);
    assert_eq!(d.mode, 0o1750);
    assert_eq!(by("d/f").mode, 0o4755);
    assert_eq!(by("p").kind, EntryType::Fifo);
    assert_eq!(by("p").mode, 0o640);
    let s = by("s");
    assert_eq!(s.kind, EntryType::Symlink);
    assert_eq!(s.link.as_deref(), Some("a"));
}

#[test]
fn reproducible_and_epoch_clamped() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    sample_tree(root);
    // Long names exercise the GNU long-name path.
    let long = "x".repeat(150);
    fs::create_dir(root.join(&long)).unwrap();
    fs::write(root.join(&long).join("y".repeat(120)), b"deep").unwrap();

    let opts = LayerOptions::default();
    let (one, gz1) = layer_bytes(root, SourceKind::Plain, &opts);
    let (two, gz2) = layer_bytes(root, SourceKind::Plain, &opts);
    assert_eq!(one, two);
    assert_eq!(gz1, gz2);

    // Touch everything to "now": epoch 0 clamps every mtime, digest unchanged.
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.unwrap();
        rustix::fs::utimensat(
            CWD,
            e.path(),
            &rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: 2_000_000_000,
                    tv_nsec: 5,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: 2_000_000_000,
                    tv_nsec: 5,
                },
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
    let (three, _) = layer_bytes(root, SourceKind::Plain, &opts);
    assert_eq!(one, three);

    let entries = read_entries(&gunzip(&gz1));
    assert!(entries.iter().all(|e| e.mtime == 0));
    assert!(entries.iter().any(|e| e.path == format!("{long}/")));
    assert!(
        entries
            .iter()
            .any(|e| e.path == format!("{long}/{}", "y".repeat(120)))
    );

    // A different epoch that does not clamp gives a different layer.
    let later = LayerOptions {
        source_date_epoch: u64::MAX,
        ..LayerOptions::default()
    };
    let (four, _) = layer_bytes(root, SourceKind::Plain, &later);
    assert_ne!(one.diff_id, four.diff_id);
}

#[test]
fn overlay_upper_whiteouts_and_opaque() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // char device 0/0 = overlay whiteout (needs CAP_MKNOD; tests run as root).
    if rustix::fs::mknodat(
        CWD,
        root.join("gone"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0),
        rustix::fs::makedev(0, 0),
    )
    .is_err()
    {
        eprintln!("skipping: mknod not permitted");
        return;
    }
    fs::create_dir(root.join("op")).unwrap();
    fs::write(root.join("op/keep"), b"k").unwrap();
    if !try_xattr(&root.join("op"), "trusted.overlay.opaque", b"y") {
        // Unprivileged overlay uses the user.* namespace.
        assert!(try_xattr(&root.join("op"), "user.overlay.opaque", b"y"));
    }
    fs::create_dir(root.join("plain")).unwrap();
    let _ = try_xattr(&root.join("plain"), "trusted.overlay.origin", b"junk");
    let _ = try_xattr(&root.join("plain"), "user.overlay.origin", b"junk");
    let _ = try_xattr(&root.join("plain"), "user.keep", b"1");
    // "x" means "not opaque, has whiteouts" in newer kernels.
    fs::create_dir(root.join("notopq")).unwrap();
    let _ = try_xattr(&root.join("notopq"), "user.overlay.opaque", b"x");

    let (_, gz) = layer_bytes(root, SourceKind::OverlayUpper, &LayerOptions::default());
    let entries = read_entries(&gunzip(&gz));
    let paths: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            ".wh.gone",
            "notopq/",
            "op/",
            "op/.wh..wh..opq",
            "op/keep",
            "plain/"
        ]
    );
    let wh = &entries[0];
    assert_eq!(wh.kind, EntryType::Regular);
    assert!(wh.data.is_empty());
    for e in &entries {
        assert!(
            e.xattrs.keys().all(|k| !k.contains(".overlay.")),
            "overlay xattr leaked on {}: {:?}",
            e.path,
            e.xattrs
        );
    }

    // The same tree as Plain keeps the char device as a device.
    let (_, gz) = layer_bytes(root, SourceKind::Plain, &LayerOptions::default());
    let entries = read_entries(&gunzip(&gz));
    assert_eq!(entries[0].path, "gone");
    assert_eq!(entries[0].kind, EntryType::Char);
}

#[test]
fn empty_upper() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(layer_is_empty(tmp.path()).unwrap());
    fs::write(tmp.path().join("f"), b"").unwrap();
    assert!(!layer_is_empty(tmp.path()).unwrap());
    let (info, gz) = layer_bytes(tmp.path(), SourceKind::Plain, &LayerOptions::default());
    assert_eq!(read_entries(&gunzip(&gz)).len(), 1);
    assert_eq!(info.size as usize, gz.len());
    let _ = fs::metadata(tmp.path()).unwrap().ino();
}

/// A tree big enough for zstd's multi-threaded encoder to cut several jobs
/// (about 24 MiB: text-like and pseudo-random blocks) plus small files.
pub(crate) fn big_tree(root: &Path) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words: [&[u8]; 8] = [
        b"layer ", b"image ", b"cairn ", b"digest ", b"zstd ", b"tar\n", b"{ ", b"} ",
    ];
    for f in 0..3 {
        let mut data = Vec::with_capacity(8 << 20);
        while data.len() < 8 << 20 {
            if (data.len() >> 16) % 2 == 0 {
                data.extend_from_slice(&next().to_le_bytes());
            } else {
                data.extend_from_slice(words[(next() % 8) as usize]);
            }
        }
        fs::write(root.join(format!("big{f}")), &data).unwrap();
    }
    fs::create_dir(root.join("small")).unwrap();
    for i in 0..200 {
        let n = (next() % 5000) as usize;
        let body: Vec<u8> = (0..n).map(|j| words[(j * 7 + i) % 8][0]).collect();
        fs::write(root.join(format!("small/f{i:03}")), body).unwrap();
    }
}

/// The single-threaded writer cairn shipped before the threaded pipeline:
/// tar builder → sha256 → gzip → sha256, all in one thread. zlib-rs' output
/// depends on how its input is split into writes, so this is the oracle for
/// "the default output bytes did not change".
fn sequential_gzip_layer(dir: &Path, level: u32) -> (Digest, Digest, Vec<u8>) {
    let compressed = HashingWriter::new(Vec::new());
    let gz = GzEncoder::new(compressed, Compression::new(level));
    let mut builder = Builder::new(HashingWriter::new(gz));
    let mut w = LayerWriter {
        root: dir,
        kind: SourceKind::Plain,
        epoch: 0,
        links: HashMap::new(),
        builder: &mut builder,
    };
    w.walk().unwrap();
    builder.finish().unwrap();
    let (gz, diff_id, _) = builder.into_inner().unwrap().finish();
    let (bytes, digest, _) = gz.finish().unwrap().finish();
    (diff_id, digest, bytes)
}

#[test]
fn default_gzip_equals_the_sequential_writer() {
    let tmp = tempfile::tempdir().unwrap();
    sample_tree(tmp.path());
    big_tree(tmp.path());
    for level in [6, 1] {
        let opts = LayerOptions {
            gzip_level: level,
            ..LayerOptions::default()
        };
        let (info, gz) = layer_bytes(tmp.path(), SourceKind::Plain, &opts);
        assert_eq!(info.media_type, media_types::OCI_LAYER_GZIP);
        let (diff_id, digest, bytes) = sequential_gzip_layer(tmp.path(), level);
        assert_eq!(info.diff_id, diff_id);
        assert_eq!(info.digest, digest, "level {level}");
        assert_eq!(gz, bytes);
    }
}

#[test]
fn digests_do_not_depend_on_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    sample_tree(tmp.path());
    big_tree(tmp.path());
    let mut diff_ids = Vec::new();
    for compression in [
        LayerCompression::Gzip,
        LayerCompression::ParallelGzip,
        LayerCompression::Zstd { level: 3 },
        LayerCompression::Zstd { level: 1 },
    ] {
        let mut seen = Vec::new();
        for threads in [1, 2, 1, 2, 0] {
            let opts = LayerOptions {
                compression,
                compression_threads: threads,
                ..LayerOptions::default()
            };
            let (info, blob) = layer_bytes(tmp.path(), SourceKind::Plain, &opts);
            assert_eq!(info.digest, crate::sha256_digest(&blob));
            assert_eq!(info.size, blob.len() as u64);
            seen.push((threads, info));
        }
        let first = &seen[0].1;
        for (threads, info) in &seen {
            assert_eq!(
                info, first,
                "{compression:?}: {threads} threads gave another layer"
            );
        }
        diff_ids.push(first.diff_id.clone());
        if let LayerCompression::Zstd { .. } = compression {
            assert_eq!(first.media_type, media_types::OCI_LAYER_ZSTD);
        }
    }
    // Same tar whatever the compression.
    assert!(diff_ids.iter().all(|d| *d == diff_ids[0]));
}

#[test]
fn zstd_layer_decodes_to_the_same_tar() {
    let tmp = tempfile::tempdir().unwrap();
    sample_tree(tmp.path());
    let gz = layer_bytes(tmp.path(), SourceKind::Plain, &LayerOptions::default());
    let opts = LayerOptions {
        compression: LayerCompression::Zstd { level: 3 },
        ..LayerOptions::default()
    };
    let (info, zst) = layer_bytes(tmp.path(), SourceKind::Plain, &opts);
    assert_eq!(&zst[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    let tar = zstd::stream::decode_all(zst.as_slice()).unwrap();
    assert_eq!(tar, gunzip(&gz.1));
    assert_eq!(info.diff_id, gz.0.diff_id);
    assert_ne!(info.digest, gz.0.digest);
}

/// The tar stream of the single-threaded writer (tar builder straight into a
/// buffer, file data through the builder's own copy).
fn sequential_tar(dir: &Path) -> Vec<u8> {
    let mut builder = Builder::new(HashingWriter::new(Vec::new()));
    let mut w = LayerWriter {
        root: dir,
        kind: SourceKind::Plain,
        epoch: 0,
        links: HashMap::new(),
        builder: &mut builder,
    };
    w.walk().unwrap();
    builder.finish().unwrap();
    builder.into_inner().unwrap().finish().0
}

#[test]
fn zstd_and_pgzip_read_files_directly_yet_write_the_sequential_tar() {
    // zstd and parallel gzip take file contents straight into their chunks
    // (not through the tar builder); the tar must still be the sequential
    // writer's, and the zstd blob what zstd's worker mode makes of it in one
    // call (its bytes do not depend on how the input is split).
    let tmp = tempfile::tempdir().unwrap();
    sample_tree(tmp.path());
    big_tree(tmp.path());
    // A file whose name needs a GNU long-name entry, and one of exactly one block.
    let long = "n".repeat(150);
    fs::write(tmp.path().join(&long), vec![b'z'; 700]).unwrap();
    fs::write(tmp.path().join("block"), vec![b'b'; 512]).unwrap();
    let tar = sequential_tar(tmp.path());
    for threads in [1, 2] {
        let opts = LayerOptions {
            compression: LayerCompression::Zstd { level: 3 },
            compression_threads: threads,
            ..LayerOptions::default()
        };
        let (info, zst) = layer_bytes(tmp.path(), SourceKind::Plain, &opts);
        assert_eq!(info.diff_id, crate::sha256_digest(&tar));
        assert_eq!(zstd::stream::decode_all(zst.as_slice()).unwrap(), tar);
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.multithread(1).unwrap();
        enc.include_checksum(true).unwrap();
        enc.write_all(&tar).unwrap();
        let oracle = enc.finish().unwrap();
        assert_eq!(
            info.digest,
            crate::sha256_digest(&oracle),
            "{threads} threads"
        );
    }
    let opts = LayerOptions {
        compression: LayerCompression::ParallelGzip,
        ..LayerOptions::default()
    };
    let (info, gz) = layer_bytes(tmp.path(), SourceKind::Plain, &opts);
    assert_eq!(info.diff_id, crate::sha256_digest(&tar));
    assert_eq!(gunzip(&gz), tar);
}

#[test]
fn a_file_that_shrinks_is_an_error_on_the_direct_path() {
    // The direct path reads exactly the lstat size; a short file must fail,
    // not pad the entry with garbage.
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    fs::write(&f, b"0123456789").unwrap();
    let meta = fs::symlink_metadata(&f).unwrap();
    fs::write(&f, b"01234").unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel(8);
    let (_ret_tx, ret_rx) = std::sync::mpsc::sync_channel(1);
    let mut sender = ChunkSender::new(false, tx, ret_rx);
    let mut file = fs::File::open(&f).unwrap();
    let err = sender.file_data(&mut file, meta.len()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    drop(rx);
}

#[test]
fn walk_errors_reach_the_caller_through_the_prefetching_walker() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    for compression in [LayerCompression::Zstd { level: 3 }, LayerCompression::Gzip] {
        let opts = LayerOptions {
            compression,
            ..LayerOptions::default()
        };
        let err = write_layer(&missing, SourceKind::Plain, std::io::sink(), &opts).unwrap_err();
        assert!(
            matches!(&err, Error::Io { path, .. } if path == &missing),
            "{compression:?}: {err}"
        );
    }
}

/// Accepts `left` bytes, then fails every write.
struct FailingWriter {
    left: usize,
}

impl std::io::Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("disk full"));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_output_error_stops_every_thread_and_is_the_reported_cause() {
    let tmp = tempfile::tempdir().unwrap();
    big_tree(tmp.path());
    for compression in [
        LayerCompression::Zstd { level: 1 },
        LayerCompression::ParallelGzip,
        LayerCompression::Gzip,
    ] {
        let opts = LayerOptions {
            compression,
            gzip_level: 1,
            ..LayerOptions::default()
        };
        let out = FailingWriter { left: 100_000 };
        let err = write_layer(tmp.path(), SourceKind::Plain, out, &opts).unwrap_err();
        assert!(
            matches!(&err, Error::Io { op: "write layer", source, .. } if source.to_string() == "disk full"),
            "{compression:?}: {err}"
        );
    }
}
