//! The walk snapshotter: steps without overlayfs.
//!
//! Where no overlay can be mounted in the build namespace — cairn running inside
//! a container (CI runners, envbuilder-style dev environments), where the state dir
//! is itself on overlayfs — a step cannot have an overlay root with an upper dir to
//! take its layer from. With [`Snapshotter::Walk`] (or [`Snapshotter::Auto`] when
//! the probe overlay does not mount) each RUN/COPY/ADD/WORKDIR step instead:
//!
//! 1. gets its parent root as one flat directory ([`Build::flatten`]): the base
//!    image's snapshot (already flat), the previous walk step's root, or a copy of
//!    either with the stage's cached layers applied by cairn-oci's safe unpacker;
//! 2. runs in a writable copy of it (`cp -a`, [`cairn_sandbox::walk::copy_tree`]),
//!    bound as its root ([`cairn_sandbox::StepSpec::root_dir`]) with the mount
//!    points it needs created as stubs and removed afterwards
//!    ([`cairn_sandbox::walk::Stubs`]);
//! 3. gets as its layer the difference of the two trees
//!    ([`cairn_oci::write_diff_layer_with`], the same reproducible writer as the
//!    overlay path): directories whose inode (number, birth time) changed during the step were
//!    deleted and made again and are written opaque, as an overlay upper holds
//!    them, so the layers (and digests) equal the overlay path's for the same steps;
//! 4. leaves the copy as the stage's topmost lower ([`Lower::Flat`]): the next
//!    step's parent, and what `COPY --from`/`RUN --mount=from` of the stage bind.
//!
//! Each step copies the whole root, so walk mode is slower and needs more scratch
//! space; everything lives in the build's scratch dir and goes with it.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cairn_sandbox::StepSpec;
use cairn_sandbox::walk::Stubs;

use crate::stage::{Build, Lower};
use crate::{Error, Snapshotter};

/// Who a directory is: its inode number and birth time. The number alone is not
/// enough, `rm -rf d && mkdir d` often gets the freed inode back; the birth time
/// (statx, where the file system keeps it) of a directory made by the step is
/// later than the copy's.
type DirId = (u64, Option<std::time::SystemTime>);

/// [`DirId`]s of every directory of a tree, by path relative to its root.
fn dir_inodes(root: &Path) -> Result<HashMap<PathBuf, DirId>, Error> {
    let mut out = HashMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.map_err(|e| Error::io("walk", root, e.into()))?;
        if e.file_type().is_dir() {
            let meta = e
                .metadata()
                .map_err(|e| Error::io("lstat", root, e.into()))?;
            let ino = (meta.ino(), meta.created().ok());
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap_or(e.path())
                .to_path_buf();
            out.insert(rel, ino);
        }
    }
    Ok(out)
}

/// A walk step's root, made ready before the step runs.
#[derive(Debug)]
pub(crate) struct WalkRoot {
    /// The flattened parent (read only).
    pub parent: PathBuf,
    /// The step's copy (its root).
    pub child: PathBuf,
    stubs: Stubs,
    inodes: HashMap<PathBuf, DirId>,
}

impl WalkRoot {
    /// Creates the stubs `spec` needs in the copy and records its directories.
    pub fn prepare(
        spec: &StepSpec,
        parent: PathBuf,
        child: PathBuf,
        err: &dyn Fn(cairn_sandbox::Error) -> Error,
    ) -> Result<Self, Error> {
        let stubs = Stubs::create(spec, &child).map_err(err)?;
        let inodes = dir_inodes(&child)?;
        Ok(WalkRoot {
            parent,
            child,
            stubs,
            inodes,
        })
    }

    /// After the step: removes the stubs it did not make its own and returns the
    /// directories it deleted and made again (same path, another [`DirId`]).
    pub fn finish(
        self,
        err: &dyn Fn(cairn_sandbox::Error) -> Error,
    ) -> Result<(PathBuf, PathBuf, HashSet<PathBuf>), Error> {
        self.stubs.remove().map_err(err)?;
        let now = dir_inodes(&self.child)?;
        let recreated = now
            .into_iter()
            .filter(|(rel, ino)| self.inodes.get(rel).is_some_and(|old| old != ino))
            .map(|(rel, _)| rel)
            .collect();
        Ok((self.parent, self.child, recreated))
    }
}

impl Build<'_> {
    /// Whether steps use the walk snapshotter; for [`Snapshotter::Auto`] decided
    /// once per build by mounting a probe overlay in the scratch dir.
    pub(crate) fn walk_mode(&self) -> bool {
        *self.walk.get_or_init(|| match self.opts.snapshotter {
            Snapshotter::Overlay => false,
            Snapshotter::Walk => true,
            Snapshotter::Auto => {
                let dir = self.scratch.path().join("overlay-probe");
                match cairn_sandbox::walk::overlay_works(&dir) {
                    Ok(()) => false,
                    Err(e) => {
                        self.opts.progress.line(&format!(
                            "notice: no overlayfs here ({e}); using the walk snapshotter \
                             (slower, same layers; --snapshotter to choose)"
                        ));
                        true
                    }
                }
            }
        })
    }

    /// The root `lowers` (topmost first) make, as one directory that must not be
    /// written: a flat lower as it is, a base snapshot as it is, otherwise (cached
    /// layers on top) a copy with those layers applied, once per build.
    pub(crate) async fn flatten(&self, lowers: &[Lower], line: usize) -> Result<PathBuf, Error> {
        let base_at = lowers
            .iter()
            .position(|l| !matches!(l, Lower::Cached { .. }))
            .unwrap_or(lowers.len());
        let base = match lowers.get(base_at) {
            Some(Lower::Flat(p)) => p.clone(),
            Some(Lower::Image(_)) => match self
                .materialize(&lowers[base_at..=base_at], line)
                .await?
                .pop()
            {
                Some(p) => p,
                None => self.empty_root()?,
            },
            Some(Lower::Dir(p)) if base_at + 1 == lowers.len() => p.clone(),
            Some(Lower::Dir(_)) => {
                return Err(self.err_at(
                    line,
                    "the walk snapshotter cannot flatten overlay upper dirs (a stage built \
                     with the overlay snapshotter)",
                ));
            }
            Some(Lower::Cached { .. }) => unreachable!("position() skips cached lowers"),
            None => self.empty_root()?,
        };
        let above = &lowers[..base_at];
        let Some(Lower::Cached { key: top, .. }) = above.first() else {
            return Ok(base);
        };
        let memo_key = format!("flat:{}", top.hex());
        let mut memo = self.unpacked.lock().await;
        if let Some(p) = memo.get(&memo_key) {
            return Ok(p.clone());
        }
        let mut blobs = Vec::new();
        for l in above.iter().rev() {
            if let Lower::Cached { key, layer, cache } = l {
                let digest = self.fetch_cached(key, layer, *cache).await?;
                blobs.push((digest.clone(), self.store.blob_path(&digest)));
            }
        }
        let dest = self.scratch_dir("flat")?.join("root");
        tokio::task::block_in_place(|| -> Result<(), Error> {
            cairn_sandbox::walk::copy_tree(&base, &dest)
                .map_err(|e| self.err_at(line, e.to_string()))?;
            for (digest, blob) in &blobs {
                let file = std::fs::File::open(blob).map_err(|e| Error::io("open", blob, e))?;
                let reader = cairn_oci::open_layer_reader(file)
                    .map_err(Error::oci(format!("read cached layer {digest}")))?;
                let opts = cairn_oci::ApplyOptions {
                    ignore_chown_errors: true,
                };
                cairn_oci::apply_layer(reader, &dest, &opts)
                    .map_err(Error::oci(format!("apply cached layer {digest}")))?;
            }
            Ok(())
        })?;
        memo.insert(memo_key, dest.clone());
        Ok(dest)
    }

    /// An empty root (`FROM scratch`).
    fn empty_root(&self) -> Result<PathBuf, Error> {
        let dir = self.scratch_dir("flat")?.join("root");
        std::fs::create_dir(&dir).map_err(|e| Error::io("create", &dir, e))?;
        Ok(dir)
    }

    /// The writable copy of `parent` a walk step runs in.
    pub(crate) fn walk_copy(&self, parent: &Path, line: usize) -> Result<PathBuf, Error> {
        let child = self.scratch_dir("root")?.join("root");
        tokio::task::block_in_place(|| cairn_sandbox::walk::copy_tree(parent, &child))
            .map_err(|e| self.err_at(line, e.to_string()))?;
        Ok(child)
    }
}
