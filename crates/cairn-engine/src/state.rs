use std::path::{Path, PathBuf};

use crate::Error;

/// cairn's local state directory.
///
/// ```text
/// <state>/
///   content-v1/blobs/sha256/<hex>   blobs by digest (layers, configs, manifests)
///   snapshots-v1/<chain-id-hex>/    unpacked base images, keyed by layer chain id
///   tmp-v1/<build>/                 scratch of a running build (step upper dirs, …)
/// ```
/// The `-v1` suffixes version the layout: a new layout gets a new name instead of
/// a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A state dir at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// `--state-dir`, else `$CAIRN_STATE_DIR`, else `$XDG_CACHE_HOME/cairn`, else
    /// `~/.cache/cairn`.
    pub fn resolve(flag: Option<PathBuf>) -> Result<StateDir, Error> {
        let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let root = flag
            .or_else(|| non_empty("CAIRN_STATE_DIR").map(PathBuf::from))
            .or_else(|| non_empty("XDG_CACHE_HOME").map(|p| PathBuf::from(p).join("cairn")))
            .or_else(|| non_empty("HOME").map(|p| PathBuf::from(p).join(".cache/cairn")))
            .ok_or_else(|| {
                Error::Usage(
                    "no state directory: pass --state-dir or set CAIRN_STATE_DIR or HOME".into(),
                )
            })?;
        Ok(StateDir::new(root))
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Blob store root.
    pub fn content(&self) -> PathBuf {
        self.root.join("content-v1")
    }

    /// Opens the blob store.
    pub(crate) fn store(&self) -> Result<cairn_oci::ContentStore, Error> {
        cairn_oci::ContentStore::open(self.content()).map_err(Error::oci("open the content store"))
    }

    /// Unpacked snapshots.
    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots-v1")
    }

    /// Scratch space of running builds.
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp-v1")
    }

    /// Creates the layout and removes what killed builds left behind.
    pub fn ensure(&self) -> Result<(), Error> {
        for d in [self.content(), self.snapshots(), self.tmp()] {
            std::fs::create_dir_all(&d).map_err(|e| Error::io("create state dir", &d, e))?;
        }
        for d in [self.tmp(), self.snapshots()] {
            recover_stale(&d);
        }
        Ok(())
    }
}

/// A scratch directory removed when dropped (success, error or panic alike).
///
/// While it exists its owner holds an exclusive `flock` on it; a scratch dir
/// whose lock can be taken belongs to a build that died ([`recover_stale`]).
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    _lock: std::fs::File,
}

fn try_lock(dir: &Path) -> Option<std::fs::File> {
    let f = std::fs::File::open(dir).ok()?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).ok()?;
    Some(f)
}

impl ScratchDir {
    /// Creates a fresh, uniquely named directory under `parent`.
    pub fn create(parent: &Path, prefix: &str) -> Result<ScratchDir, Error> {
        let pid = std::process::id();
        for n in 0..1000u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let name = format!("{prefix}-{pid}-{nanos:x}-{n}");
            // Made under a name recovery ignores, locked, then renamed: another
            // build's recovery can never take it between mkdir and flock.
            let fresh = parent.join(format!(".new-{name}"));
            match std::fs::create_dir(&fresh) {
                Ok(()) => {
                    let Some(_lock) = try_lock(&fresh) else {
                        continue; // removed by a concurrent recovery: take another name
                    };
                    let path = parent.join(&name);
                    std::fs::rename(&fresh, &path)
                        .map_err(|e| Error::io("rename scratch dir", &path, e))?;
                    return Ok(ScratchDir { path, _lock });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create scratch dir", &fresh, e)),
            }
        }
        Err(Error::Usage(format!(
            "cannot create a scratch dir in `{}`",
            parent.display()
        )))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = remove_all(&self.path) {
            tracing::warn!("could not remove `{}`: {e}", self.path.display());
        }
    }
}

/// Removes scratch dirs (made by [`ScratchDir::create`]) that no live build holds
/// locked: a build killed with SIGKILL cannot clean up after itself, the next one
/// does. Mounts need no recovery: they lived in the dead process's mount namespace.
pub fn recover_stale(parent: &Path) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let scratch =
            name.starts_with("build-") || name.starts_with(".unpack-") || name.starts_with(".new-");
        if scratch && try_lock(&e.path()).is_some() {
            tracing::info!("removing `{}` left by a killed build", e.path().display());
            let _ = remove_all(&e.path());
        }
    }
}

/// Removes a tree, making directories writable first where needed (RUN steps can
/// leave read-only directories behind).
pub fn remove_all(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Ok(m) if !m.is_dir() => return std::fs::remove_file(path),
        _ => {}
    }
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            use std::os::unix::fs::PermissionsExt;
            for entry in walk_dirs(path) {
                let _ = std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o700));
            }
            std::fs::remove_dir_all(path)
        }
    }
}

fn walk_dirs(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = std::fs::read_dir(&out[i]) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_scratch_of_dead_processes_is_removed_live_ones_kept() {
        let parent = tempfile::tempdir().unwrap();
        let live = ScratchDir::create(parent.path(), "build").unwrap();
        // Left by a build that died: nobody holds its lock.
        let dead = parent.path().join("build-4194305-abc-0");
        std::fs::create_dir_all(dead.join("step-1/upper")).unwrap();
        let unrelated = parent.path().join("notes");
        std::fs::create_dir(&unrelated).unwrap();
        recover_stale(parent.path());
        assert!(!dead.exists());
        assert!(live.path().exists());
        assert!(unrelated.exists());
    }

    #[test]
    fn scratch_dir_is_removed_even_when_read_only_inside() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let path = {
            let s = ScratchDir::create(parent.path(), "b").unwrap();
            let ro = s.path().join("a/b");
            std::fs::create_dir_all(&ro).unwrap();
            std::fs::write(ro.join("f"), "x").unwrap();
            std::fs::set_permissions(s.path().join("a"), std::fs::Permissions::from_mode(0o500))
                .unwrap();
            s.path().to_path_buf()
        };
        assert!(!path.exists());
    }
}
