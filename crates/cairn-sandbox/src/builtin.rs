//! Steps cairn carries out itself inside the sandbox (after `pivot_root`, so every
//! path — and every absolute symlink in the image — resolves inside the image root).

use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown};
use std::path::{Path, PathBuf};

use crate::spec::CopySpec;
use crate::users::{Identity, resolve_user};

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Resolves a `USER`/`--chown` value against the current root's passwd and group files.
pub fn identity(spec: &str) -> Result<Identity, String> {
    resolve_user(spec, &read("/etc/passwd"), &read("/etc/group"))
}

fn err(what: &str, p: &Path, e: std::io::Error) -> String {
    format!("{what} `{}`: {e}", p.display())
}

/// Creates `path` and missing parents (mode 0755), owned by `owner`.
pub fn mkdir_p(path: &Path, owner: (u32, u32)) -> Result<(), String> {
    let mut cur = PathBuf::from("/");
    for c in path.components().skip_while(|c| c.as_os_str() == "/") {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => continue,
            // A symlink to a directory is followed, as with `mkdir -p`.
            Ok(m) if m.file_type().is_symlink() && cur.is_dir() => continue,
            Ok(_) => return Err(format!("`{}` exists and is not a directory", cur.display())),
            Err(_) => {
                fs::create_dir(&cur).map_err(|e| err("create directory", &cur, e))?;
                fs::set_permissions(&cur, fs::Permissions::from_mode(0o755))
                    .map_err(|e| err("chmod", &cur, e))?;
                lchown(&cur, Some(owner.0), Some(owner.1)).map_err(|e| err("chown", &cur, e))?;
            }
        }
    }
    Ok(())
}

/// Who owns what a copy writes.
#[derive(Debug, Clone, Copy)]
enum Owner {
    /// These ids (`--chown`, or 0:0).
    Fixed(u32, u32),
    /// The source's own ids (extracted archives).
    Keep,
}

impl Owner {
    fn ids(self, meta: &fs::Metadata) -> (u32, u32) {
        use std::os::unix::fs::MetadataExt;
        match self {
            Owner::Fixed(u, g) => (u, g),
            Owner::Keep => (meta.uid(), meta.gid()),
        }
    }
    fn for_new_dirs(self) -> (u32, u32) {
        match self {
            Owner::Fixed(u, g) => (u, g),
            Owner::Keep => (0, 0),
        }
    }
}

struct Copier<'a> {
    owner: Owner,
    chmod: Option<u32>,
    skip: std::collections::HashSet<&'a Path>,
}

/// Where a sandbox path came from, for messages: `/.cairn-in/0/a/b` → `a/b`.
fn shown(p: &Path) -> String {
    let s = p.to_string_lossy();
    match s.strip_prefix(crate::spec::INPUT_ROOT) {
        Some(rest) => rest
            .trim_start_matches('/')
            .split_once('/')
            .map_or(".", |(_, r)| r)
            .to_string(),
        None => s.to_string(),
    }
}

/// COPY/ADD: sources under the step's inputs (and inline heredoc files) to `dest`.
pub fn copy(spec: &CopySpec) -> Result<(), String> {
    let owner = match &spec.chown {
        Some(c) => {
            let id = identity(c)?;
            Owner::Fixed(id.uid, id.gid)
        }
        None => Owner::Fixed(0, 0),
    };
    let skip: std::collections::HashSet<&Path> = spec.skip.iter().map(Path::new).collect();
    let dest = PathBuf::from(&spec.dest);
    let dest_is_dir = spec.dest.ends_with('/')
        || spec.sources.len() + spec.inline.len() > 1
        || fs::metadata(&dest).map(|m| m.is_dir()).unwrap_or(false);
    let target_for = |name: &std::ffi::OsStr| -> Result<PathBuf, String> {
        if dest_is_dir {
            mkdir_p(&dest, owner.for_new_dirs())?;
            Ok(dest.join(name))
        } else {
            if let Some(parent) = dest.parent() {
                mkdir_p(parent, owner.for_new_dirs())?;
            }
            Ok(dest.clone())
        }
    };
    for source in &spec.sources {
        let c = Copier {
            owner: if source.keep_owner && spec.chown.is_none() {
                Owner::Keep
            } else {
                owner
            },
            chmod: spec.chmod,
            skip: skip.clone(),
        };
        let src = Path::new(&source.path);
        let meta =
            fs::symlink_metadata(src).map_err(|_| format!("source `{}` not found", shown(src)))?;
        if let Some(under) = &source.under {
            // --parents: the source keeps its path below the destination.
            let into = dest.join(under.trim_start_matches('/'));
            mkdir_p(&into, owner.for_new_dirs())?;
            if meta.is_dir() {
                c.dir_contents(src, &into)?;
            } else {
                c.entry(src, &into.join(src.file_name().unwrap_or_default()))?;
            }
        } else if meta.is_dir() {
            mkdir_p(&dest, owner.for_new_dirs())?;
            c.dir_contents(src, &dest)?;
        } else {
            let target = target_for(src.file_name().unwrap_or_default())?;
            c.entry(src, &target)?;
        }
    }
    for f in &spec.inline {
        let target = target_for(std::ffi::OsStr::new(&f.name))?;
        if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
            return Err(format!(
                "cannot copy `{}` over directory `{}`",
                f.name,
                target.display()
            ));
        }
        fs::write(&target, &f.content).map_err(|e| err("write", &target, e))?;
        let (u, g) = owner.for_new_dirs();
        lchown(&target, Some(u), Some(g)).map_err(|e| err("chown", &target, e))?;
        fs::set_permissions(
            &target,
            fs::Permissions::from_mode(spec.chmod.unwrap_or(0o644)),
        )
        .map_err(|e| err("chmod", &target, e))?;
    }
    Ok(())
}

impl Copier<'_> {
    fn dir_contents(&self, src: &Path, dst: &Path) -> Result<(), String> {
        let mut names: Vec<_> = fs::read_dir(src)
            .map_err(|e| err("read directory", src, e))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        for n in names {
            let from = src.join(&n);
            if self.skip.contains(from.as_path()) {
                continue;
            }
            self.entry(&from, &dst.join(&n))?;
        }
        Ok(())
    }

    fn entry(&self, src: &Path, dst: &Path) -> Result<(), String> {
        let meta = fs::symlink_metadata(src).map_err(|e| err("stat", src, e))?;
        let (uid, gid) = self.owner.ids(&meta);
        let ft = meta.file_type();
        let existing = fs::symlink_metadata(dst).ok();
        if ft.is_dir() {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    fs::remove_file(dst).map_err(|e| err("replace", dst, e))?;
                    fs::create_dir(dst).map_err(|e| err("create directory", dst, e))?;
                }
                None => fs::create_dir(dst).map_err(|e| err("create directory", dst, e))?,
            }
            self.dir_contents(src, dst)?;
            lchown(dst, Some(uid), Some(gid)).map_err(|e| err("chown", dst, e))?;
            let mode = self.chmod.unwrap_or(meta.permissions().mode() & 0o7777);
            return fs::set_permissions(dst, fs::Permissions::from_mode(mode))
                .map_err(|e| err("chmod", dst, e));
        }
        if let Some(m) = existing {
            if m.is_dir() {
                return Err(format!(
                    "cannot copy file `{}` over directory `{}`",
                    shown(src),
                    dst.display()
                ));
            }
            fs::remove_file(dst).map_err(|e| err("replace", dst, e))?;
        }
        if ft.is_symlink() {
            let to = fs::read_link(src).map_err(|e| err("read link", src, e))?;
            std::os::unix::fs::symlink(&to, dst).map_err(|e| err("symlink", dst, e))?;
            lchown(dst, Some(uid), Some(gid)).map_err(|e| err("chown", dst, e))
        } else if ft.is_file() {
            let mut r = fs::File::open(src).map_err(|e| err("open", src, e))?;
            let mut w = fs::File::create(dst).map_err(|e| err("create", dst, e))?;
            std::io::copy(&mut r, &mut w).map_err(|e| err("copy to", dst, e))?;
            // chown before chmod: chown clears setuid/setgid bits.
            lchown(dst, Some(uid), Some(gid)).map_err(|e| err("chown", dst, e))?;
            let mode = self.chmod.unwrap_or(meta.permissions().mode() & 0o7777);
            fs::set_permissions(dst, fs::Permissions::from_mode(mode))
                .map_err(|e| err("chmod", dst, e))
        } else {
            // Sockets, fifos and devices in a context are skipped, as BuildKit does.
            Ok(())
        }
    }
}

/// Applies a layer blob onto `/` (whiteouts delete, through the overlay).
pub fn apply_layer(blob: &Path) -> Result<(), String> {
    let file = fs::File::open(blob).map_err(|e| err("open layer", blob, e))?;
    let reader = cairn_oci::open_layer_reader(file).map_err(|e| e.to_string())?;
    cairn_oci::apply_layer(reader, Path::new("/"), &cairn_oci::ApplyOptions::default())
        .map(drop)
        .map_err(|e| format!("apply layer: {e}"))
}
