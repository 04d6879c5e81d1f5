//! Walk-and-compare snapshotter: the layer between a parent rootfs directory
//! and a child rootfs directory, for systems without overlayfs (where there is
//! no upper dir to take the layer from).
//!
//! [`write_diff_layer`] compares two trees and writes the layer. The engine's
//! walk snapshotter (`cairn build --snapshotter walk`, or `auto` where no
//! overlay can be mounted) runs each step in a copy of its parent tree and
//! calls [`write_diff_layer_with`], naming the directories the step removed
//! and created again (the copy's inodes tell), so that the layer is the one
//! an overlay upper dir gives for the same step; it also keeps the sandbox's
//! mount-point stubs out of the child tree.
//!
//! # What is compared
//!
//! Entries are matched by path. An entry counts as **changed** when its file
//! type, permission bits (low 12 bits of the mode), uid, gid, mtime (seconds
//! and nanoseconds), xattrs (those a layer records, see
//! [`crate::layer_spec`]), size (regular files), symlink target or device
//! numbers differ. When all of that is equal the metadata is ambiguous for a
//! regular file (a rewrite that kept size and mtime), so its **contents** are
//! compared byte by byte.
//!
//! # What is written
//!
//! The layer has the format of [`crate::write_layer`] (sorted entries,
//! clamped mtimes, numeric owners, PAX xattrs, the same compression options):
//!
//! * every added or changed entry, with its metadata in the child;
//! * every directory on the way to such an entry, as the child has it (as an
//!   overlay upper dir holds the copied-up parents);
//! * a whiteout `.wh.<name>` for every entry of the parent missing in the
//!   child (one for a whole deleted directory), at the position of `<name>`;
//! * a directory that replaced a non-directory is written with the opaque
//!   marker `.wh..wh..opq` right after it, then all its contents; a
//!   non-directory that replaced a directory is written as the entry alone:
//!   the OCI applier (cairn's included) replaces a directory by a
//!   non-directory entry, removing the directory's contents;
//! * hardlinks within the layer: when any path of a child inode with several
//!   links is written, all its paths in the child are, the first as the file
//!   and the others as hardlinks to it, so the links survive application.
//!
//! * a directory named in `recreated` ([`write_diff_layer_with`]: deleted and
//!   made again, as by `rm -rf d && mkdir d`) is written as an overlay upper
//!   holds it: the directory, its opaque marker, then all its contents, with
//!   no whiteouts for what it had before.
//!
//! Sockets are skipped (as by [`crate::write_layer`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::IoCtx;
use crate::write::{SourceKind, recorded_xattrs, write_entries};
use crate::{Error, LayerInfo, LayerOptions};

/// Write the layer that turns the tree `parent` into the tree `child` into
/// `out` (see the module docs), with both digests as [`crate::write_layer`]
/// computes them.
pub fn write_diff_layer(
    parent: &Path,
    child: &Path,
    out: impl Write,
    opts: &LayerOptions,
) -> Result<LayerInfo, Error> {
    write_diff_layer_with(parent, child, out, opts, &HashSet::new())
}

/// [`write_diff_layer`], with `recreated` the directories (paths relative to
/// the roots) that are directories in both trees but were deleted and made
/// again in the child: each is written opaque (see the module docs).
pub fn write_diff_layer_with(
    parent: &Path,
    child: &Path,
    out: impl Write,
    opts: &LayerOptions,
    recreated: &HashSet<PathBuf>,
) -> Result<LayerInfo, Error> {
    let items = changes(parent, child, recreated)?;
    write_entries(child, SourceKind::Plain, out, opts, |w| {
        for (comps, item) in &items {
            let rel: PathBuf = comps.iter().collect();
            match item {
                Item::Whiteout => {
                    // Owner and mtime of the whiteout: those of the directory
                    // it is in, in the child.
                    let dir = rel
                        .parent()
                        .map_or_else(|| child.to_path_buf(), |p| child.join(p));
                    let meta = fs::symlink_metadata(&dir).ctx("lstat", &dir)?;
                    let name = comps.last().map(|n| n.as_bytes()).unwrap_or_default();
                    w.whiteout_entry(&rel, &meta, name)?;
                }
                Item::Entry { opaque } => {
                    let full = child.join(&rel);
                    let meta = fs::symlink_metadata(&full).ctx("lstat", &full)?;
                    w.add(&full, &rel, &meta)?;
                    if *opaque {
                        w.opaque_marker(&rel, &meta)?;
                    }
                }
            }
        }
        Ok(())
    })
}

/// One path of the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// The child's entry; `opaque` adds the opaque marker after a directory.
    Entry { opaque: bool },
    /// `.wh.<name>`: the parent's entry is gone.
    Whiteout,
}

/// Path components; their order (component by component, raw bytes) is the
/// layer order: a directory right before its children, `a/`, `a/x`, `a-b`.
type Key = Vec<OsString>;

/// Whether `child` is `parent` unchanged: the layer
/// [`write_diff_layer_with`] would write has no entry.
pub fn diff_is_empty(
    parent: &Path,
    child: &Path,
    recreated: &HashSet<PathBuf>,
) -> Result<bool, Error> {
    Ok(changes(parent, child, recreated)?.is_empty())
}

/// Everything the layer must hold, in layer order.
fn changes(
    parent: &Path,
    child: &Path,
    recreated: &HashSet<PathBuf>,
) -> Result<BTreeMap<Key, Item>, Error> {
    let mut cmp = Compare {
        recreated,
        items: BTreeMap::new(),
        links: HashMap::new(),
        buf_p: vec![0; 64 * 1024],
        buf_c: vec![0; 64 * 1024],
    };
    cmp.dir(Some(parent), child, &mut Vec::new())?;
    // Complete hardlink sets: one written path of an inode brings the others.
    let mut extra = Vec::new();
    for paths in cmp.links.values() {
        if paths.iter().any(|p| cmp.items.contains_key(p)) {
            extra.extend(
                paths
                    .iter()
                    .filter(|p| !cmp.items.contains_key(*p))
                    .cloned(),
            );
        }
    }
    for k in extra {
        cmp.items.insert(k, Item::Entry { opaque: false });
    }
    // The directories on the way to every entry.
    let mut parents = Vec::new();
    for k in cmp.items.keys() {
        for i in 1..k.len() {
            if !cmp.items.contains_key(&k[..i]) {
                parents.push(k[..i].to_vec());
            }
        }
    }
    for k in parents {
        cmp.items.entry(k).or_insert(Item::Entry { opaque: false });
    }
    Ok(cmp.items)
}

struct Compare<'r> {
    recreated: &'r HashSet<PathBuf>,
    items: BTreeMap<Key, Item>,
    /// (dev, ino) of child non-directories with several links → their paths.
    links: HashMap<(u64, u64), Vec<Key>>,
    buf_p: Vec<u8>,
    buf_c: Vec<u8>,
}

/// Names in `dir`, sorted by bytes.
fn names(dir: &Path) -> Result<Vec<OsString>, Error> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).ctx("read dir", dir)? {
        out.push(e.ctx("read dir", dir)?.file_name());
    }
    out.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(out)
}

fn lstat_opt(path: &Path) -> Result<Option<Metadata>, Error> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("lstat", path, e)),
    }
}

impl Compare<'_> {
    /// Compare child directory `c` with parent directory `p` (`None`: the
    /// parent has no directory here, everything in `c` is new).
    fn dir(&mut self, p: Option<&Path>, c: &Path, key: &mut Key) -> Result<(), Error> {
        let c_names = names(c)?;
        let p_names = match p {
            Some(p) => names(p)?,
            None => Vec::new(),
        };
        // Deleted: in the parent, not in the child.
        for name in &p_names {
            if c_names
                .binary_search_by(|n| n.as_bytes().cmp(name.as_bytes()))
                .is_err()
            {
                let mut k = key.clone();
                k.push(name.clone());
                self.items.insert(k, Item::Whiteout);
            }
        }
        for name in c_names {
            let cf = c.join(&name);
            let cm = fs::symlink_metadata(&cf).ctx("lstat", &cf)?;
            let in_parent = p_names
                .binary_search_by(|n| n.as_bytes().cmp(name.as_bytes()))
                .is_ok();
            let pf = p.filter(|_| in_parent).map(|p| p.join(&name));
            let pm = match &pf {
                Some(pf) => lstat_opt(pf)?,
                None => None,
            };
            key.push(name);
            self.entry(pf.as_deref().zip(pm.as_ref()), &cf, &cm, key)?;
            key.pop();
        }
        Ok(())
    }

    fn entry(
        &mut self,
        parent: Option<(&Path, &Metadata)>,
        cf: &Path,
        cm: &Metadata,
        key: &mut Key,
    ) -> Result<(), Error> {
        let ct = cm.file_type();
        if ct.is_socket() {
            return Ok(());
        }
        if !ct.is_dir() && cm.nlink() > 1 {
            self.links
                .entry((cm.dev(), cm.ino()))
                .or_default()
                .push(key.clone());
        }
        match parent {
            None => {
                self.items
                    .insert(key.clone(), Item::Entry { opaque: false });
                if ct.is_dir() {
                    self.dir(None, cf, key)?;
                }
            }
            Some(_)
                if ct.is_dir()
                    && !self.recreated.is_empty()
                    && self.recreated.contains(&key.iter().collect::<PathBuf>()) =>
            {
                // Deleted and made again: opaque, as in an overlay upper.
                self.items.insert(key.clone(), Item::Entry { opaque: true });
                self.dir(None, cf, key)?;
            }
            Some((pf, pm)) if ct.is_dir() && pm.is_dir() => {
                if self.differs(pf, pm, cf, cm)? {
                    self.items
                        .insert(key.clone(), Item::Entry { opaque: false });
                }
                self.dir(Some(pf), cf, key)?;
            }
            Some(_) if ct.is_dir() => {
                // A directory replaced a non-directory.
                self.items.insert(key.clone(), Item::Entry { opaque: true });
                self.dir(None, cf, key)?;
            }
            Some((pf, pm)) => {
                // A non-directory; if it replaced a directory the types differ.
                if self.differs(pf, pm, cf, cm)? {
                    self.items
                        .insert(key.clone(), Item::Entry { opaque: false });
                }
            }
        }
        Ok(())
    }

    /// Whether the child entry differs from the parent entry (module docs).
    fn differs(
        &mut self,
        pf: &Path,
        pm: &Metadata,
        cf: &Path,
        cm: &Metadata,
    ) -> Result<bool, Error> {
        let (pt, ct) = (pm.file_type(), cm.file_type());
        let same_type = (pt.is_dir() == ct.is_dir())
            && (pt.is_file() == ct.is_file())
            && (pt.is_symlink() == ct.is_symlink())
            && (pt.is_fifo() == ct.is_fifo())
            && (pt.is_char_device() == ct.is_char_device())
            && (pt.is_block_device() == ct.is_block_device());
        if !same_type
            || pm.mode() & 0o7777 != cm.mode() & 0o7777
            || pm.uid() != cm.uid()
            || pm.gid() != cm.gid()
            || pm.mtime() != cm.mtime()
            || pm.mtime_nsec() != cm.mtime_nsec()
        {
            return Ok(true);
        }
        if (ct.is_file() && pm.len() != cm.len())
            || ((ct.is_char_device() || ct.is_block_device()) && pm.rdev() != cm.rdev())
        {
            return Ok(true);
        }
        if ct.is_symlink()
            && fs::read_link(pf).ctx("readlink", pf)? != fs::read_link(cf).ctx("readlink", cf)?
        {
            return Ok(true);
        }
        // `llistxattr`: a symlink's own xattrs, never its target's.
        if recorded_xattrs(pf, None)? != recorded_xattrs(cf, None)? {
            return Ok(true);
        }
        if ct.is_file() {
            // Same size and mtime: only the bytes can tell.
            return self.contents_differ(pf, cf);
        }
        Ok(false)
    }

    fn contents_differ(&mut self, pf: &Path, cf: &Path) -> Result<bool, Error> {
        let mut a = File::open(pf).ctx("open", pf)?;
        let mut b = File::open(cf).ctx("open", cf)?;
        loop {
            let n = read_full(&mut a, &mut self.buf_p).ctx("read", pf)?;
            let m = read_full(&mut b, &mut self.buf_c).ctx("read", cf)?;
            if n != m || self.buf_p[..n] != self.buf_c[..m] {
                return Ok(true);
            }
            if n == 0 {
                return Ok(false);
            }
        }
    }
}

/// Fill `buf` as far as the file goes; the count is short only at the end.
fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
