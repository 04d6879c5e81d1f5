//! Steps cairn carries out itself inside the sandbox (after `pivot_root`, so every
//! path — and every absolute symlink in the image — resolves inside the image root).

use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown};
use std::path::{Path, PathBuf};

use crate::spec::{CONTEXT_MOUNT, CopySpec};
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

/// COPY from the context bound at [`CONTEXT_MOUNT`].
pub fn copy(spec: &CopySpec) -> Result<(), String> {
    let owner = match &spec.chown {
        Some(c) => {
            let id = identity(c)?;
            (id.uid, id.gid)
        }
        None => (0, 0),
    };
    let dest = PathBuf::from(&spec.dest);
    let dest_is_dir = spec.dest.ends_with('/')
        || spec.sources.len() > 1
        || fs::metadata(&dest).map(|m| m.is_dir()).unwrap_or(false);
    for source in &spec.sources {
        let src = Path::new(CONTEXT_MOUNT).join(source);
        let meta = fs::symlink_metadata(&src)
            .map_err(|_| format!("COPY source `{source}` not found in the build context"))?;
        if meta.is_dir() {
            mkdir_p(&dest, owner)?;
            copy_dir_contents(&src, &dest, owner, spec.chmod)?;
        } else {
            let target = if dest_is_dir {
                mkdir_p(&dest, owner)?;
                dest.join(src.file_name().unwrap_or_default())
            } else {
                if let Some(parent) = dest.parent() {
                    mkdir_p(parent, owner)?;
                }
                dest.clone()
            };
            copy_entry(&src, &target, owner, spec.chmod)?;
        }
    }
    Ok(())
}

fn copy_dir_contents(
    src: &Path,
    dst: &Path,
    owner: (u32, u32),
    chmod: Option<u32>,
) -> Result<(), String> {
    let mut names: Vec<_> = fs::read_dir(src)
        .map_err(|e| err("read directory", src, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    for n in names {
        copy_entry(&src.join(&n), &dst.join(&n), owner, chmod)?;
    }
    Ok(())
}

fn copy_entry(src: &Path, dst: &Path, owner: (u32, u32), chmod: Option<u32>) -> Result<(), String> {
    let meta = fs::symlink_metadata(src).map_err(|e| err("stat", src, e))?;
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
        copy_dir_contents(src, dst, owner, chmod)?;
        let mode = chmod.unwrap_or(meta.permissions().mode() & 0o7777);
        fs::set_permissions(dst, fs::Permissions::from_mode(mode))
            .map_err(|e| err("chmod", dst, e))?;
    } else {
        if let Some(m) = existing {
            if m.is_dir() {
                return Err(format!(
                    "cannot copy file `{}` over directory `{}`",
                    src.strip_prefix(CONTEXT_MOUNT).unwrap_or(src).display(),
                    dst.display()
                ));
            }
            fs::remove_file(dst).map_err(|e| err("replace", dst, e))?;
        }
        if ft.is_symlink() {
            let to = fs::read_link(src).map_err(|e| err("read link", src, e))?;
            std::os::unix::fs::symlink(&to, dst).map_err(|e| err("symlink", dst, e))?;
        } else if ft.is_file() {
            let mut r = fs::File::open(src).map_err(|e| err("open", src, e))?;
            let mut w = fs::File::create(dst).map_err(|e| err("create", dst, e))?;
            std::io::copy(&mut r, &mut w).map_err(|e| err("copy to", dst, e))?;
            // chown before chmod: chown clears setuid/setgid bits.
            lchown(dst, Some(owner.0), Some(owner.1)).map_err(|e| err("chown", dst, e))?;
            let mode = chmod.unwrap_or(meta.permissions().mode() & 0o7777);
            return fs::set_permissions(dst, fs::Permissions::from_mode(mode))
                .map_err(|e| err("chmod", dst, e));
        } else {
            // Sockets, fifos and devices in a context are skipped, as BuildKit does.
            return Ok(());
        }
    }
    lchown(dst, Some(owner.0), Some(owner.1)).map_err(|e| err("chown", dst, e))
}
