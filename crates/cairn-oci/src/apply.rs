//! Layer application: unpack a layer tar into a rootfs directory, safely.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! relative to a directory fd of the root, so `..` and absolute symlinks inside
//! the tree resolve as if `root` were `/`. The final component of an entry is
//! never followed (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `unlinkat`, `linkat`
//! without `AT_SYMLINK_FOLLOW`). Entry names containing `..` are rejected.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{
    AtFlags, CWD, Dir, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags,
};
use rustix::io::Errno;
use tar::EntryType;

use crate::Error;
use crate::error::IoCtx;

/// Knobs for [`apply_layer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// When `chown` fails with `EINVAL` or `EPERM` (an id not mapped in the
    /// current user namespace), keep the file owned by the current user and
    /// go on instead of failing.
    pub ignore_chown_errors: bool,
}

/// Counters returned by [`apply_layer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Tar entries read (after long-name / PAX processing).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hardlinks created.
    pub hardlinks: u64,
    /// FIFOs and device nodes created.
    pub special: u64,
    /// Whiteouts (`.wh.*`) and opaque markers applied.
    pub whiteouts: u64,
    /// Entries skipped (devices without mknod permission, unknown types).
    pub skipped: u64,
    /// Chown failures ignored because of [`ApplyOptions::ignore_chown_errors`].
    pub chown_errors_ignored: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
}

/// Wrap a layer blob in the right decompressor, chosen by magic bytes:
/// gzip (`1f 8b`, any number of members), zstd (`28 b5 2f fd`, any number of
/// frames), plain tar otherwise. The file is read from its start.
pub fn open_layer_reader(file: File) -> Result<Box<dyn Read>, Error> {
    let mut file = file;
    file.seek(SeekFrom::Start(0)).ctx("seek layer", "<layer>")?;
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        match file.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read layer", "<layer>", e)),
        }
    }
    file.seek(SeekFrom::Start(0)).ctx("seek layer", "<layer>")?;
    let reader = BufReader::with_capacity(256 * 1024, file);
    if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        threaded(flate2::read::MultiGzDecoder::new(reader))
    } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        let dec = zstd::stream::read::Decoder::with_buffer(reader)
            .ctx("start zstd decoder", "<layer>")?;
        threaded(dec)
    } else {
        Ok(Box::new(reader))
    }
}

/// Size of the decompressed buffers handed from the decompressing thread.
const INFLATE_CHUNK: usize = 256 * 1024;
/// Buffers in flight between the decompressing thread and the reader.
const INFLATE_IN_FLIGHT: usize = 8;

/// Run `dec` on its own thread, so decompression overlaps with whatever
/// consumes the returned reader (tar parsing and file writes in
/// [`apply_layer`]). At most [`INFLATE_IN_FLIGHT`] buffers are queued; when
/// the reader is dropped the thread stops at its next send.
fn threaded(mut dec: impl Read + Send + 'static) -> Result<Box<dyn Read>, Error> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(INFLATE_IN_FLIGHT);
    let (ret_tx, ret_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(INFLATE_IN_FLIGHT + 2);
    std::thread::Builder::new()
        .name("cairn-inflate".into())
        .spawn(move || {
            loop {
                let mut buf = ret_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(INFLATE_CHUNK));
                buf.resize(INFLATE_CHUNK, 0);
                let mut filled = 0;
                let res = loop {
                    match dec.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(true),
                        Ok(k) => {
                            filled += k;
                            if filled == buf.len() {
                                break Ok(false);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(filled);
                if filled > 0 && tx.send(Ok(buf)).is_err() {
                    return;
                }
                match res {
                    Ok(false) => {}
                    Ok(true) => {
                        // An empty buffer marks the clean end of the stream.
                        let _ = tx.send(Ok(Vec::new()));
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        })
        .ctx("spawn decompression thread", "<layer>")?;
    Ok(Box::new(ChannelReader {
        rx,
        recycle: ret_tx,
        cur: Vec::new(),
        pos: 0,
        done: false,
        failed: None,
    }))
}

/// The consuming end of [`threaded`].
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    recycle: std::sync::mpsc::SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    /// The end marker was seen.
    done: bool,
    /// A decompression error, repeated on every later read.
    failed: Option<(io::ErrorKind, String)>,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.cur.len() {
            if let Some((kind, msg)) = &self.failed {
                return Err(io::Error::new(*kind, msg.clone()));
            }
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(buf)) if buf.is_empty() => self.done = true,
                Ok(Ok(buf)) => {
                    let old = std::mem::replace(&mut self.cur, buf);
                    self.pos = 0;
                    let _ = self.recycle.try_send(old);
                }
                Ok(Err(e)) => {
                    self.failed = Some((e.kind(), e.to_string()));
                    return Err(e);
                }
                // Closed without the end marker: the thread died.
                Err(_) => {
                    let e = io::Error::other("decompression thread stopped");
                    self.failed = Some((e.kind(), e.to_string()));
                    return Err(e);
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

const OPAQUE: &[u8] = b".wh..wh..opq";
const WH_PREFIX: &[u8] = b".wh.";

/// Split a tar path into normal components; rejects `..`.
fn clean_path(raw: &[u8]) -> Result<Vec<OsString>, Error> {
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::UnsafePath {
                    path: PathBuf::from(OsStr::from_bytes(raw)),
                    reason: "path contains a `..` component".into(),
                });
            }
            _ => out.push(OsString::from_vec(c.to_vec())),
        }
    }
    Ok(out)
}

fn join(comps: &[OsString]) -> PathBuf {
    let mut p = PathBuf::new();
    for c in comps {
        p.push(c);
    }
    p
}

fn key(comps: &[OsString]) -> Vec<u8> {
    let mut k = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            k.push(b'/');
        }
        k.extend_from_slice(c.as_bytes());
    }
    k
}

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

fn dir_oflags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

struct Applier<'a> {
    root: OwnedFd,
    root_path: &'a Path,
    opts: &'a ApplyOptions,
    stats: ApplyStats,
    /// Paths (and all their ancestors) that this layer put in place.
    layer_paths: HashSet<Vec<u8>>,
    /// Directories whose mtime is fixed after the whole layer.
    dir_times: Vec<(Vec<OsString>, u64)>,
    /// The parent directory of the previous entry, reused while consecutive
    /// entries are created in the same directory (see [`Applier::parent_dir`]).
    parent_cache: Option<ParentDir>,
    /// Copy buffer for file contents.
    buf: Vec<u8>,
    /// Owner a new file gets without chown (fsuid, fsgid).
    own_ids: (u64, u64),
}

/// An open directory beneath the root, keyed by its entry-path components.
struct ParentDir {
    comps: Vec<OsString>,
    fd: Rc<OwnedFd>,
    /// The gid new files inherit (setgid directory), if any.
    inherited_gid: Option<u64>,
}

/// Apply one layer (an uncompressed tar stream) onto `root`.
///
/// Handles OCI whiteouts (`.wh.<name>` deletes `<name>`; `.wh..wh..opq`
/// deletes what earlier layers put in the directory, keeping this layer's
/// entries), regular files (streamed), directories, symlinks, hardlinks
/// (target must already exist inside `root`), FIFOs and device nodes (skipped
/// with a warning when `mknod` is not permitted), numeric ownership, mode
/// (set after content), xattrs (best effort, overlay ones dropped) and mtimes
/// (directories after the whole layer). Nothing is ever created outside
/// `root`: see the module docs.
pub fn apply_layer(tar: impl Read, root: &Path, opts: &ApplyOptions) -> Result<ApplyStats, Error> {
    let root_fd =
        rustix::fs::openat(CWD, root, dir_oflags(), Mode::empty()).ctx("open root", root)?;
    let mut a = Applier::new(root_fd, root, opts);
    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().ctx("read layer", root)?;
    for entry in entries {
        let entry = entry.ctx("read layer entry", root)?;
        a.entry(entry)?;
    }
    a.fix_dir_times()?;
    Ok(a.stats)
}

impl<'a> Applier<'a> {
    fn new(root: OwnedFd, root_path: &'a Path, opts: &'a ApplyOptions) -> Self {
        Applier {
            root,
            root_path,
            opts,
            stats: ApplyStats::default(),
            layer_paths: HashSet::new(),
            dir_times: Vec::new(),
            parent_cache: None,
            buf: vec![0; 1 << 20],
            own_ids: (
                u64::from(rustix::process::geteuid().as_raw()),
                u64::from(rustix::process::getegid().as_raw()),
            ),
        }
    }

    /// The directory `comps` (created if missing), from the cache when the
    /// previous entry used the same one.
    ///
    /// The cache is only kept across entries that cannot change how `comps`
    /// resolves: regular files, hardlinks and special files that did not
    /// replace a directory or a symlink (see [`Applier::entry`]). Even a stale
    /// fd would stay inside the root: it was opened with `RESOLVE_IN_ROOT`
    /// and the applier never moves directories.
    fn parent_dir(&mut self, comps: &[OsString]) -> Result<(Rc<OwnedFd>, Option<u64>), Error> {
        if let Some(c) = &self.parent_cache
            && c.comps == comps
        {
            return Ok((c.fd.clone(), c.inherited_gid));
        }
        self.parent_cache = None;
        let fd = Rc::new(self.open_dir(comps, true)?);
        let st = rustix::fs::fstat(&*fd).ctx("stat dir", self.host_path(comps))?;
        let inherited_gid = (st.st_mode & 0o2000 != 0).then_some(u64::from(st.st_gid));
        self.parent_cache = Some(ParentDir {
            comps: comps.to_vec(),
            fd: fd.clone(),
            inherited_gid,
        });
        Ok((fd, inherited_gid))
    }

    fn host_path(&self, comps: &[OsString]) -> PathBuf {
        self.root_path.join(join(comps))
    }

    /// Open directory `comps` beneath the root (following symlinks inside the
    /// root). With `create`, missing directories are created (mode 0755).
    fn open_dir(&self, comps: &[OsString], create: bool) -> Result<OwnedFd, Error> {
        if comps.is_empty() {
            return rustix::fs::openat(&self.root, ".", dir_oflags(), Mode::empty())
                .ctx("open root", self.root_path);
        }
        let path = join(comps);
        match rustix::fs::openat2(
            &self.root,
            &path,
            dir_oflags(),
            Mode::empty(),
            resolve_flags(),
        ) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) if create => {}
            Err(Errno::NOSYS) => {
                return Err(Error::Unsupported {
                    what: "kernel without openat2 (Linux >= 5.6 required)".into(),
                    path: self.host_path(comps),
                });
            }
            Err(e) => return Err(Error::io("open dir", self.host_path(comps), e.into())),
        }
        // Create missing components one at a time.
        let mut parent = rustix::fs::openat(&self.root, ".", dir_oflags(), Mode::empty())
            .ctx("open root", self.root_path)?;
        for i in 0..comps.len() {
            let prefix = join(&comps[..=i]);
            let fd = match rustix::fs::openat2(
                &self.root,
                &prefix,
                dir_oflags(),
                Mode::empty(),
                resolve_flags(),
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(
                        &parent,
                        comps[i].as_os_str(),
                        Mode::from_raw_mode(0o755),
                    ) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(Error::io("mkdir", self.host_path(&comps[..=i]), e.into()));
                        }
                    }
                    rustix::fs::openat2(
                        &self.root,
                        &prefix,
                        dir_oflags(),
                        Mode::empty(),
                        resolve_flags(),
                    )
                    .ctx("open dir", self.host_path(&comps[..=i]))?
                }
                Err(e) => {
                    return Err(Error::io(
                        "open dir",
                        self.host_path(&comps[..=i]),
                        e.into(),
                    ));
                }
            };
            parent = fd;
        }
        Ok(parent)
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), Error> {
        self.stats.entries += 1;
        let raw = entry.path_bytes().into_owned();
        let comps = clean_path(&raw)?;
        let Some((name, parent_comps)) = comps.split_last() else {
            // The root directory itself: leave the host directory alone.
            return Ok(());
        };
        let name_b = name.as_bytes();

        if name_b == OPAQUE || name_b.starts_with(WH_PREFIX) {
            self.parent_cache = None;
        }
        if name_b == OPAQUE {
            let dir = self.open_dir(parent_comps, true)?;
            self.mark_layer_path(parent_comps);
            let prefix = key(parent_comps);
            self.opaque(&dir, &prefix, parent_comps)?;
            self.stats.whiteouts += 1;
            return Ok(());
        }
        if let Some(target) = name_b.strip_prefix(WH_PREFIX) {
            if target.is_empty() || target == b"." || target == b".." {
                return Err(Error::UnsafePath {
                    path: PathBuf::from(OsStr::from_bytes(&raw)),
                    reason: "invalid whiteout name".into(),
                });
            }
            match self.open_dir(parent_comps, false) {
                Ok(dir) => {
                    let target = OsStr::from_bytes(target);
                    let mut tc = parent_comps.to_vec();
                    tc.push(target.to_owned());
                    remove_all_at(&dir, target).ctx("remove (whiteout)", self.host_path(&tc))?;
                }
                // Nothing to delete when the parent is missing or not a directory.
                Err(Error::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound
                        || source.raw_os_error() == Some(Errno::NOTDIR.raw_os_error()) => {}
                Err(e) => return Err(e),
            }
            self.stats.whiteouts += 1;
            return Ok(());
        }

        let host = self.host_path(&comps);
        let header = entry.header().clone();
        let et = header.entry_type();
        let mode = header.mode().ctx("read mode", &host)? & 0o7777;
        let uid = header.uid().ctx("read uid", &host)?;
        let gid = header.gid().ctx("read gid", &host)?;
        let mtime = header.mtime().ctx("read mtime", &host)?;
        let xattrs = pax_xattrs(&mut entry).ctx("read pax headers", &host)?;

        let (parent, inherited_gid) = self.parent_dir(parent_comps)?;
        let parent: &OwnedFd = &parent;
        let name = name.as_os_str();
        // Whether the next entry may reuse `parent` (see `parent_dir`).
        let mut keep_parent = matches!(
            et,
            EntryType::Regular
                | EntryType::Continuous
                | EntryType::GNUSparse
                | EntryType::Link
                | EntryType::Fifo
                | EntryType::Char
                | EntryType::Block
        );
        let mut removed = |r: Option<FileType>| {
            if matches!(r, Some(FileType::Directory | FileType::Symlink)) {
                keep_parent = false;
            }
        };

        match et {
            EntryType::Directory => {
                match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                    Ok(_) => {
                        rustix::fs::unlinkat(parent, name, AtFlags::empty()).ctx("remove", &host)?
                    }
                    Err(Errno::NOENT) => {}
                    Err(e) => return Err(Error::io("lstat", &host, e.into())),
                }
                match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(Error::io("mkdir", &host, e.into())),
                }
                let fd = rustix::fs::openat(
                    parent,
                    name,
                    dir_oflags() | OFlags::NOFOLLOW,
                    Mode::empty(),
                )
                .ctx("open dir", &host)?;
                self.chown_fd(&fd, uid, gid, &host)?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).ctx("chmod", &host)?;
                set_xattrs_fd(&fd, &xattrs, &host);
                self.dir_times.push((comps.clone(), mtime));
                self.stats.dirs += 1;
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let create = || {
                    rustix::fs::openat(
                        parent,
                        name,
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o600),
                    )
                };
                // Try first, remove whatever is in the way only on EEXIST:
                // saves an lstat per file on fresh trees.
                let fd = match create() {
                    Err(Errno::EXIST) => {
                        removed(replace(parent, name).ctx("remove existing", &host)?);
                        create()
                    }
                    r => r,
                }
                .ctx("create", &host)?;
                let mut file = File::from(fd);
                let want = entry.size();
                let mut buf = std::mem::take(&mut self.buf);
                let copied = copy_entry(&mut entry, &mut file, &mut buf);
                self.buf = buf;
                let n = copied.ctx("write", &host)?;
                if n != want && et != EntryType::GNUSparse {
                    return Err(Error::io(
                        "read layer entry",
                        &host,
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("archive truncated: {n} of {want} bytes of file data"),
                        ),
                    ));
                }
                // A new file is already owned by (fsuid, fsgid or the setgid
                // parent's gid): skip the chown when that is what we want.
                if (uid, gid) != (self.own_ids.0, inherited_gid.unwrap_or(self.own_ids.1)) {
                    self.chown_fd(&file, uid, gid, &host)?;
                }
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).ctx("chmod", &host)?;
                set_xattrs_fd(&file, &xattrs, &host);
                rustix::fs::futimens(&file, &times(mtime)).ctx("set times", &host)?;
                self.stats.files += 1;
                self.stats.bytes += n;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::UnsafePath {
                        path: host.clone(),
                        reason: "symlink without target".into(),
                    })?
                    .into_owned();
                let target = OsStr::from_bytes(&target);
                match rustix::fs::symlinkat(target, parent, name) {
                    Err(Errno::EXIST) => {
                        replace(parent, name).ctx("remove existing", &host)?;
                        rustix::fs::symlinkat(target, parent, name)
                    }
                    r => r,
                }
                .ctx("symlink", &host)?;
                self.chown_at(parent, name, uid, gid, &host)?;
                set_xattrs_at(parent, name, &xattrs, &host);
                rustix::fs::utimensat(parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .ctx("set times", &host)?;
                self.stats.symlinks += 1;
            }
            EntryType::Link => {
                let target_raw = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::UnsafePath {
                        path: host.clone(),
                        reason: "hardlink without target".into(),
                    })?
                    .into_owned();
                let tcomps = clean_path(&target_raw)?;
                let Some((tname, tparent_comps)) = tcomps.split_last() else {
                    return Err(Error::UnsafePath {
                        path: host,
                        reason: "hardlink to the root directory".into(),
                    });
                };
                if tcomps == comps {
                    return Ok(());
                }
                let thost = self.host_path(&tcomps);
                let tparent = match self.open_dir(tparent_comps, false) {
                    Ok(fd) => fd,
                    Err(Error::Io { source, .. }) => {
                        return Err(Error::UnsafePath {
                            path: host,
                            reason: format!(
                                "hardlink target {} not present in the root ({source})",
                                String::from_utf8_lossy(&target_raw)
                            ),
                        });
                    }
                    Err(e) => return Err(e),
                };
                match rustix::fs::statat(&tparent, tname.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                        return Err(Error::UnsafePath {
                            path: host,
                            reason: format!("hardlink to directory {}", thost.display()),
                        });
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(Error::UnsafePath {
                            path: host,
                            reason: format!(
                                "hardlink target {} not present in the root ({e})",
                                String::from_utf8_lossy(&target_raw)
                            ),
                        });
                    }
                }
                let link = || {
                    rustix::fs::linkat(&tparent, tname.as_os_str(), parent, name, AtFlags::empty())
                };
                match link() {
                    Err(Errno::EXIST) => {
                        removed(replace(parent, name).ctx("remove existing", &host)?);
                        link()
                    }
                    r => r,
                }
                .ctx("hardlink", &host)?;
                self.stats.hardlinks += 1;
            }
            EntryType::Fifo | EntryType::Char | EntryType::Block => {
                let (ft, dev) = match et {
                    EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let major = header
                            .device_major()
                            .ctx("read device", &host)?
                            .unwrap_or(0);
                        let minor = header
                            .device_minor()
                            .ctx("read device", &host)?
                            .unwrap_or(0);
                        let ft = if et == EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rustix::fs::makedev(major, minor))
                    }
                };
                removed(replace(parent, name).ctx("remove existing", &host)?);
                match rustix::fs::mknodat(parent, name, ft, Mode::from_raw_mode(0o600), dev) {
                    Ok(()) => {}
                    Err(e @ (Errno::PERM | Errno::ACCESS)) if ft != FileType::Fifo => {
                        tracing::warn!(path = %host.display(), error = %e, "cannot create device node, skipping");
                        self.stats.skipped += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(Error::io("mknod", &host, e.into())),
                }
                self.chown_at(parent, name, uid, gid, &host)?;
                // The node was just created by us and is not a symlink.
                rustix::fs::chmodat(parent, name, Mode::from_raw_mode(mode), AtFlags::empty())
                    .ctx("chmod", &host)?;
                set_xattrs_at(parent, name, &xattrs, &host);
                rustix::fs::utimensat(parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .ctx("set times", &host)?;
                self.stats.special += 1;
            }
            other => {
                tracing::warn!(path = %host.display(), entry_type = ?other, "skipping unsupported tar entry type");
                self.stats.skipped += 1;
                return Ok(());
            }
        }
        if !keep_parent {
            self.parent_cache = None;
        }
        self.mark_layer_path(&comps);
        Ok(())
    }

    fn mark_layer_path(&mut self, comps: &[OsString]) {
        // Longest prefix first: once one is present, so are its ancestors.
        for i in (1..=comps.len()).rev() {
            if !self.layer_paths.insert(key(&comps[..i])) {
                break;
            }
        }
    }

    /// Remove everything in `dir` that this layer did not put there.
    fn opaque(&self, dir: &OwnedFd, prefix: &[u8], comps: &[OsString]) -> Result<(), Error> {
        let host = self.host_path(comps);
        for name in list_dir(dir).ctx("read dir", &host)? {
            let mut k = prefix.to_vec();
            if !k.is_empty() {
                k.push(b'/');
            }
            k.extend_from_slice(name.as_bytes());
            let mut child = comps.to_vec();
            child.push(name.clone());
            if self.layer_paths.contains(&k) {
                let st = rustix::fs::statat(dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .ctx("lstat", self.host_path(&child))?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    let sub = rustix::fs::openat(
                        dir,
                        name.as_os_str(),
                        dir_oflags() | OFlags::NOFOLLOW,
                        Mode::empty(),
                    )
                    .ctx("open dir", self.host_path(&child))?;
                    self.opaque(&sub, &k, &child)?;
                }
            } else {
                remove_all_at(dir, &name).ctx("remove (opaque)", self.host_path(&child))?;
            }
        }
        Ok(())
    }

    fn chown_result(&mut self, r: rustix::io::Result<()>, host: &Path) -> Result<(), Error> {
        match r {
            Ok(()) => Ok(()),
            Err(e @ (Errno::INVAL | Errno::PERM)) if self.opts.ignore_chown_errors => {
                tracing::debug!(path = %host.display(), error = %e, "ignoring chown failure");
                self.stats.chown_errors_ignored += 1;
                Ok(())
            }
            Err(e) => Err(Error::io("chown", host, e.into())),
        }
    }

    fn ids(uid: u64, gid: u64, host: &Path) -> Result<(rustix::fs::Uid, rustix::fs::Gid), Error> {
        let bad = || Error::UnsafePath {
            path: host.to_path_buf(),
            reason: format!("uid/gid {uid}/{gid} out of range"),
        };
        let u = u32::try_from(uid)
            .ok()
            .filter(|&u| u != u32::MAX)
            .ok_or_else(bad)?;
        let g = u32::try_from(gid)
            .ok()
            .filter(|&g| g != u32::MAX)
            .ok_or_else(bad)?;
        Ok((rustix::fs::Uid::from_raw(u), rustix::fs::Gid::from_raw(g)))
    }

    fn chown_fd(&mut self, fd: impl AsFd, uid: u64, gid: u64, host: &Path) -> Result<(), Error> {
        let (u, g) = Self::ids(uid, gid, host)?;
        let r = rustix::fs::fchown(fd, Some(u), Some(g));
        self.chown_result(r, host)
    }

    fn chown_at(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        uid: u64,
        gid: u64,
        host: &Path,
    ) -> Result<(), Error> {
        let (u, g) = Self::ids(uid, gid, host)?;
        let r = rustix::fs::chownat(dir, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW);
        self.chown_result(r, host)
    }

    fn fix_dir_times(&mut self) -> Result<(), Error> {
        let dirs = std::mem::take(&mut self.dir_times);
        // Consecutive directories often share a parent: reuse its fd.
        let mut cached: Option<(&[OsString], OwnedFd)> = None;
        for (comps, mtime) in dirs.iter().rev() {
            let Some((name, parent)) = comps.split_last() else {
                continue;
            };
            let host = self.host_path(comps);
            if cached.as_ref().is_none_or(|(c, _)| *c != parent) {
                // A later entry of the layer may have removed or replaced it.
                cached = match self.open_dir(parent, false) {
                    Ok(fd) => Some((parent, fd)),
                    Err(_) => continue,
                };
            }
            let Some((_, pfd)) = &cached else { continue };
            match rustix::fs::statat(pfd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                _ => continue,
            }
            rustix::fs::utimensat(
                pfd,
                name.as_os_str(),
                &times(*mtime),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .ctx("set times", &host)?;
        }
        Ok(())
    }
}

fn times(mtime: u64) -> Timestamps {
    let ts = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: ts,
        last_modification: ts,
    }
}

fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            // The tar crate falls back to the header's size when the PAX
            // `size` does not parse; another reader would not. Refuse the
            // ambiguity instead of picking a side.
            if ext.key_bytes() == b"size"
                && std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_none()
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "invalid PAX size {:?}",
                        String::from_utf8_lossy(ext.value_bytes())
                    ),
                ));
            }
            let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                continue;
            }
            out.push((
                OsString::from_vec(name.to_vec()),
                ext.value_bytes().to_vec(),
            ));
        }
    }
    Ok(out)
}

fn set_xattrs_fd(fd: impl AsFd, xattrs: &[(OsString, Vec<u8>)], host: &Path) {
    for (name, value) in xattrs {
        if let Err(e) =
            rustix::fs::fsetxattr(fd.as_fd(), name.as_os_str(), value, XattrFlags::empty())
        {
            tracing::warn!(path = %host.display(), xattr = ?name, error = %e, "cannot set xattr");
        }
    }
}

/// xattrs on a symlink or special file: address it as
/// `/proc/self/fd/<dirfd>/<name>` with `lsetxattr` (no follow of `name`).
fn set_xattrs_at(dir: &OwnedFd, name: &OsStr, xattrs: &[(OsString, Vec<u8>)], host: &Path) {
    if xattrs.is_empty() {
        return;
    }
    let fd: BorrowedFd<'_> = dir.as_fd();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let path = Path::new("/proc/self/fd").join(raw.to_string()).join(name);
    for (xname, value) in xattrs {
        if let Err(e) = rustix::fs::lsetxattr(&path, xname.as_os_str(), value, XattrFlags::empty())
        {
            tracing::warn!(path = %host.display(), xattr = ?xname, error = %e, "cannot set xattr");
        }
    }
}

fn list_dir(dir: &OwnedFd) -> rustix::io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for ent in Dir::read_from(dir)? {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        names.push(OsString::from_vec(n.to_vec()));
    }
    Ok(names)
}

/// Remove `name` in `dir` (recursively for directories). Missing is fine.
fn remove_all_at(dir: &OwnedFd, name: &OsStr) -> rustix::io::Result<()> {
    remove_all_at_typed(dir, name).map(|_| ())
}

/// [`remove_all_at`], returning the type of what was removed.
fn remove_all_at_typed(dir: &OwnedFd, name: &OsStr) -> rustix::io::Result<Option<FileType>> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let ft = FileType::from_raw_mode(st.st_mode);
    if ft == FileType::Directory {
        let sub = rustix::fs::openat(dir, name, dir_oflags() | OFlags::NOFOLLOW, Mode::empty())?;
        for child in list_dir(&sub)? {
            remove_all_at(&sub, &child)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(Some(ft))
}

/// Make room for a new non-directory entry `name`: remove whatever is there
/// and say what it was.
fn replace(dir: &OwnedFd, name: &OsStr) -> rustix::io::Result<Option<FileType>> {
    remove_all_at_typed(dir, name)
}

/// Copy an entry's data into `file` through `buf`; returns the bytes copied.
fn copy_entry(entry: &mut impl Read, file: &mut File, buf: &mut [u8]) -> io::Result<u64> {
    let mut n = 0u64;
    loop {
        let k = match entry.read(buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        io::Write::write_all(file, &buf[..k])?;
        n += k as u64;
    }
}

#[cfg(test)]
mod malicious;
#[cfg(test)]
mod tests;
