//! Cache keys: the versioned, documented contract of `docs/cache-keys.md`.
//!
//! A step's key is the sha256 of the canonical JSON of
//! `{"parent": …, "platform": …, "scheme": "cairn-step-key/v1", "step": …}`, where
//! `parent` is the previous step's key (or the base's key), and `step` is the
//! normalised, fully expanded instruction with exactly the inputs it can see.
//! Keys depend only on inputs, never on outputs or on the machine: no absolute
//! paths, host names, timestamps, owners of context files, or cairn's version.

use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The key scheme; bump it (and the docs) for any change in what keys cover.
pub const KEY_SCHEME: &str = "cairn-step-key/v1";

/// A cache key (64 lowercase hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepKey(String);

impl StepKey {
    /// The hex digits.
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// The registry tag of the cache entry for this key (`cairn-v1-<hex>`).
    pub fn tag(&self) -> String {
        format!("cairn-v1-{}", self.0)
    }

    /// The tag under which a whole image built to this key is recorded.
    pub fn image_tag(&self) -> String {
        format!("cairn-v1-img-{}", &self.0[..64.min(self.0.len())])
    }

    /// From hex (as stored in cache entries).
    pub fn from_hex(hex: &str) -> Option<StepKey> {
        (hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .then(|| StepKey(hex.to_string()))
    }
}

impl std::fmt::Display for StepKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn hash(v: &Value) -> StepKey {
    let bytes = cairn_oci::canonical_json(v).expect("JSON values always serialise");
    StepKey(hex::encode(Sha256::digest(&bytes)))
}

/// The key of a stage's base: `image:<platform manifest digest>`, `scratch`, or
/// (for a base that is another stage) that stage's last key; with the layer
/// compression, so that layers of other bytes never share keys.
pub fn base_key(base: &str, platform: &str, compression: &str) -> StepKey {
    hash(&json!({
        "scheme": KEY_SCHEME,
        "base": base,
        "platform": platform,
        "compression": compression,
    }))
}

/// The key a whole image is recorded under (tag `cairn-v1-img-<key>`): for the
/// OCI format the final step's key itself (as before formats existed), for
/// another format the hash of the final key and the format's name, so an image
/// recorded in one format is never taken for a build in another.
pub fn image_key(final_key: &StepKey, format: cairn_oci::ImageFormat) -> StepKey {
    match format {
        cairn_oci::ImageFormat::Oci => final_key.clone(),
        other => hash(&json!({
            "scheme": KEY_SCHEME,
            "image": final_key.hex(),
            "format": other.name(),
        })),
    }
}

/// The key of one step after `parent`.
pub fn step_key(parent: &StepKey, platform: &str, step: &Value) -> StepKey {
    hash(&json!({
        "scheme": KEY_SCHEME,
        "parent": parent.hex(),
        "platform": platform,
        "step": step,
    }))
}

/// Digest of a source tree as COPY reads it: every entry under `root/rel` that is
/// not skipped, by relative path, type, permission bits and content (files) or
/// target (symlinks). Not mtimes, not owners (COPY sets them), not the absolute
/// location.
pub fn tree_digest(
    root: &Path,
    rel: &str,
    skipped: &dyn Fn(&str) -> bool,
) -> std::io::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let base = root.join(rel);
    let mut h = Sha256::new();
    let meta = std::fs::symlink_metadata(&base)?;
    let mut entries: Vec<(String, std::fs::Metadata)> = Vec::new();
    if meta.is_dir() {
        let mut it = walkdir::WalkDir::new(&base)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter();
        while let Some(e) = it.next() {
            let e = e.map_err(std::io::Error::other)?;
            let inner = e
                .path()
                .strip_prefix(&base)
                .expect("walkdir stays under its root")
                .to_string_lossy()
                .to_string();
            let in_ctx = if rel == "." {
                inner.clone()
            } else {
                format!("{rel}/{inner}")
            };
            if skipped(&in_ctx) {
                if e.file_type().is_dir() {
                    it.skip_current_dir();
                }
                continue;
            }
            entries.push((inner, e.path().symlink_metadata()?));
        }
    } else {
        entries.push((String::new(), meta));
    }
    for (path, m) in entries {
        let mode = m.permissions().mode() & 0o7777;
        let ft = m.file_type();
        let full = if path.is_empty() {
            base.clone()
        } else {
            base.join(&path)
        };
        let what = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("link {}", std::fs::read_link(&full)?.to_string_lossy())
        } else if ft.is_file() {
            use std::io::Read;
            let mut f = std::fs::File::open(&full)?;
            let mut fh = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                fh.update(&buf[..n]);
            }
            format!("file {}", hex::encode(fh.finalize()))
        } else {
            continue;
        };
        h.update(format!("{path}\0{mode:o}\0{what}\n").as_bytes());
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256sum(text: &str) -> String {
        use std::io::Write;
        let mut c = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()[..64].to_string()
    }

    /// Golden keys: the canonical JSON is written out by hand here and hashed by
    /// coreutils, so any change in what a key covers, or how, fails this test
    /// (and must come with a new KEY_SCHEME and docs/cache-keys.md).
    #[test]
    fn golden_keys() {
        let base = base_key(
            "image:sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "linux/amd64",
            "gzip-parallel/6",
        );
        assert_eq!(
            base.hex(),
            sha256sum(
                r#"{"base":"image:sha256:1111111111111111111111111111111111111111111111111111111111111111","compression":"gzip-parallel/6","platform":"linux/amd64","scheme":"cairn-step-key/v1"}"#
            )
        );
        let step = json!({
            "kind": "run",
            "argv": ["/bin/sh", "-c", "echo hi\n"],
            "env": ["A=1", "PATH=/bin"],
            "network": "host",
            "user": "",
            "workdir": "/",
            "mounts": [],
        });
        let key = step_key(&base, "linux/amd64", &step);
        let expected_json = format!(
            r#"{{"parent":"{}","platform":"linux/amd64","scheme":"cairn-step-key/v1","step":{{"argv":["/bin/sh","-c","echo hi\n"],"env":["A=1","PATH=/bin"],"kind":"run","mounts":[],"network":"host","user":"","workdir":"/"}}}}"#,
            base.hex()
        );
        assert_eq!(key.hex(), sha256sum(&expected_json));
        assert_eq!(key.tag().len(), "cairn-v1-".len() + 64);
        // The whole-image key: the final key for OCI images, derived for Docker.
        assert_eq!(image_key(&key, cairn_oci::ImageFormat::Oci), key);
        let docker = image_key(&key, cairn_oci::ImageFormat::Docker);
        assert_eq!(
            docker.hex(),
            sha256sum(&format!(
                r#"{{"format":"docker","image":"{}","scheme":"cairn-step-key/v1"}}"#,
                key.hex()
            ))
        );
        assert_ne!(docker.image_tag(), key.image_tag());
    }

    #[test]
    fn tree_digest_covers_paths_modes_content_not_mtimes() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let ctx = d.path();
        std::fs::create_dir_all(ctx.join("src/sub")).unwrap();
        std::fs::write(ctx.join("src/a"), "A").unwrap();
        std::fs::write(ctx.join("src/sub/b"), "B").unwrap();
        let none = |_: &str| false;
        let d1 = tree_digest(ctx, "src", &none).unwrap();
        // mtime only: same digest
        let f = std::fs::File::options()
            .write(true)
            .open(ctx.join("src/a"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(tree_digest(ctx, "src", &none).unwrap(), d1);
        // same content under another path: different digest (kaniko's collision)
        std::fs::rename(ctx.join("src/sub/b"), ctx.join("src/b")).unwrap();
        let d2 = tree_digest(ctx, "src", &none).unwrap();
        assert_ne!(d1, d2);
        // mode change: different
        std::fs::set_permissions(ctx.join("src/a"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert_ne!(tree_digest(ctx, "src", &none).unwrap(), d2);
        // skipped entries do not count
        let skip_a = |p: &str| p == "src/a";
        let without_a = tree_digest(ctx, "src", &skip_a).unwrap();
        std::fs::write(ctx.join("src/a"), "changed").unwrap();
        assert_eq!(tree_digest(ctx, "src", &skip_a).unwrap(), without_a);
        // the location of the context does not count
        let other = tempfile::tempdir().unwrap();
        std::process::Command::new("cp")
            .arg("-a")
            .arg(ctx.join("src"))
            .arg(other.path())
            .status()
            .unwrap();
        assert_eq!(
            tree_digest(other.path(), "src", &none).unwrap(),
            tree_digest(ctx, "src", &none).unwrap()
        );
    }
}
