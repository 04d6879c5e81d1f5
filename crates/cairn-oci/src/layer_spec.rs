//! The reproducible layer format written by [`write_layer`](crate::write_layer).
//!
//! This module holds no code; it is the specification the writer follows and
//! the tests check. Same input tree + same [`LayerOptions`](crate::LayerOptions)
//! + same cairn version ⇒ byte-identical tar, and byte-identical gzip or zstd
//!   (the compressed bytes also depend on the pinned backend, flate2 + zlib-rs
//!   or libzstd, but not on the number of threads).
//!
//! # Entries
//!
//! 1. **Order.** Depth-first, a directory immediately before its children;
//!    siblings sorted by the raw bytes of their names (so `a/`, `a/x`, `a-b`).
//! 2. **The root directory itself is not an entry.**
//! 3. **Paths** are relative, without a leading `./` or `/`. Directories end
//!    with `/`. Names longer than the 100-byte header field use the GNU
//!    `././@LongLink` extension (what the `tar` crate writes); link targets
//!    longer than 100 bytes use GNU `././@LongLink` type `K`.
//! 4. **Header format:** GNU (`ustar␠␠\0` magic), one header per entry.
//! 5. **Owner:** numeric uid/gid from `lstat`; `uname`/`gname` empty.
//! 6. **mtime:** `min(lstat mtime, source_date_epoch)` in whole seconds (negative
//!    mtimes become 0). No atime/ctime are written.
//! 7. **Mode:** the low 12 bits of `st_mode` (permissions plus setuid, setgid, sticky).
//! 8. **Types:** regular files, directories (size 0), symlinks (target stored
//!    as read by `readlink`), hardlinks, FIFOs, char and block devices (major/minor
//!    in the header). Sockets are skipped with a warning.
//! 9. **Hardlinks:** for every non-directory with `nlink > 1`, the first
//!    occurrence in entry order is written as a normal entry; each later path of
//!    the same `(dev, ino)` becomes a hardlink entry (type `1`) pointing at that
//!    first path, size 0.
//! 10. **Xattrs** are written as one PAX extended header (type `x`) before the
//!     entry, with records `SCHILY.xattr.<name>=<value>` sorted by name bytes.
//!     Never written: `trusted.overlay.*`, `user.overlay.*` (overlayfs
//!     bookkeeping) and `security.selinux` (host labelling). Names that are
//!     not UTF-8 are skipped with a warning. No other PAX records are written.
//! 11. The archive ends with the two zero blocks the `tar` crate writes; no
//!     further padding.
//!
//! # Overlay upper directories ([`SourceKind::OverlayUpper`](crate::SourceKind))
//!
//! * A character device `0:0` (or a regular file carrying a
//!   `trusted.overlay.whiteout`/`user.overlay.whiteout` xattr) named `n` is
//!   written as the OCI whiteout `.wh.n`: a regular file, size 0, mode `0600`,
//!   uid/gid and (clamped) mtime of the original. Whiteouts never take part in
//!   hardlink detection (overlayfs shares one whiteout inode).
//! * A directory with `trusted.overlay.opaque=y` or `user.overlay.opaque=y` is
//!   written as the directory entry immediately followed by the opaque marker
//!   `<dir>/.wh..wh..opq` (regular file, size 0, mode `0600`, the dir's
//!   uid/gid/mtime), then its children.
//! * Upper dirs must come from mounts without `metacopy=on` and with
//!   `redirect_dir=off`: metacopy-only files and redirected directories are
//!   not understood and would be written incompletely.
//!
//! # Compression
//!
//! * **gzip** ([`LayerCompression::Gzip`](crate::LayerCompression), the
//!   default): flate2 (zlib-rs backend), level
//!   [`LayerOptions::gzip_level`](crate::LayerOptions) (default 6), one gzip
//!   member, default gzip header (no name, mtime 0), media type
//!   `application/vnd.oci.image.layer.v1.tar+gzip`. zlib-rs' output depends
//!   on how its input is split into `write` calls, so the writer feeds it
//!   exactly the calls the `tar` crate's builder makes (the compressor runs
//!   on another thread but replays them one by one); the bytes are those of
//!   the single-threaded writer of earlier cairn versions.
//! * **parallel gzip** ([`LayerCompression::ParallelGzip`](crate::LayerCompression),
//!   opt-in): the tar stream is cut at fixed offsets into 1 MiB blocks; each
//!   is compressed by flate2 + zlib-rs at `gzip_level` as raw deflate with the
//!   previous 32 KiB of input as preset dictionary and ends with a sync flush
//!   (the last piece, possibly empty, ends the stream); one gzip member with
//!   the same 10-byte header as above, then CRC-32 and length. The pigz
//!   scheme: slightly larger than single-stream gzip, and the same bytes for
//!   any number of threads.
//! * **zstd** ([`LayerCompression::Zstd`](crate::LayerCompression)): the
//!   `zstd` crate (libzstd 1.5.7) at the given level, one frame with a content
//!   checksum and no content size, media type
//!   `application/vnd.oci.image.layer.v1.tar+zstd`. Always compressed by
//!   zstd's multi-threaded encoder with at least one worker
//!   ([`LayerOptions::compression_threads`](crate::LayerOptions), 0 = host
//!   parallelism): its bytes do not depend on the worker count, while
//!   zstd's single-threaded mode (0 workers) would write different bytes.
//!
//! The layer `diff_id` is the sha256 of the tar stream, the `digest` the
//! sha256 of the compressed stream. Both are computed while streaming.
