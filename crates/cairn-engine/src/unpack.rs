//! `cairn unpack`: an image's root file system written into a directory,
//! envbuilder-style, and its environment into a file a shell can source.
//!
//! ```text
//!  REG/REPO[:TAG|@DIGEST] ─ cairn-registry ─┐                      ┌▶ DEST/ (the rootfs)
//!                                           ├▶ manifest for the ──▶ pipeline: blobs fetched
//!  oci:DIR[:TAG] ── index.json, blobs/ ─────┘   host platform        ahead (verified), layers
//!                                               + config             applied in order
//!                                                                    └▶ env file (export …)
//! ```
//!
//! - **Sources.** A registry image is resolved through an index to the host
//!   platform and its blobs are downloaded (verified) into the state dir's content
//!   store, so a second unpack downloads nothing. An OCI image layout is read in
//!   place (nothing is written to it): `index.json` names the image by its
//!   `org.opencontainers.image.ref.name` tag (without a tag: the only image, else
//!   `latest`), nested indexes are followed to the host platform, and every blob is
//!   checked against its digest before it is used.
//! - **Destination.** Created (with its parents) if missing. An existing directory
//!   is fine, empty or not, `/` included: the image's layers are applied on top of
//!   what is there, exactly as they are applied on top of each other: a file of the
//!   image replaces a file of the same path, whiteouts delete, an opaque directory
//!   is emptied first, everything else is left alone. Every path resolves beneath
//!   DEST (cairn-oci's safe unpacker), so no layer can write outside it. Nothing is
//!   created before the image is resolved: an unknown image leaves no trace. A
//!   layer that fails (a corrupt blob, a full disk) or an interrupt leaves DEST
//!   with the layers applied so far and no env file; unpacking again applies every
//!   layer again on top.
//! - **Owners.** Kept when the caller runs in the build user namespace (the CLI
//!   enters it): as root every id is itself; as an ordinary user the ids of the
//!   image are the user's subordinate ids on the host. Ids outside the mapping keep
//!   the caller as owner (a warning says how many files).
//! - **Environment file.** Default `DEST/.cairn-image.env` ([`ENV_FILE_NAME`]),
//!   else the given path (its directory must exist). Written last and atomically
//!   (a temporary name, then a rename), so it exists only for a complete unpack.
//!   POSIX shell, to be sourced (`. FILE`): a comment naming the image, one
//!   `export NAME='value'` per `Env` entry in the config's order (single-quoted,
//!   `'` written as `'\''`: no expansion, any byte but NUL survives), then the
//!   config's working directory and user as *unexported* shell variables
//!   `CAIRN_IMAGE_WORKDIR` and `CAIRN_IMAGE_USER` (they describe how to run the
//!   image, they are not part of its environment; absent when the config has
//!   none). An `Env` entry whose name is not a shell name (`A-B=x`) is left out
//!   with a comment and a warning.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_oci::{ContentStore, Digest, ImageConfig};
use cairn_registry::{Client, ClientOptions, CredentialSource, Reference};
use sha2::{Digest as _, Sha256};

use crate::pull::{self, LayerDesc, ManifestDoc};
use crate::{Error, Platform, Progress, StateDir};

/// The environment file's name in DEST when no other path is given.
pub const ENV_FILE_NAME: &str = ".cairn-image.env";

/// The OCI annotation that tags an image in a layout's `index.json`.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Where the image to unpack is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnpackSource {
    /// An image in a registry.
    Registry(Reference),
    /// An image in an OCI image layout directory.
    OciLayout {
        /// The layout (holds `index.json`, `blobs/`).
        dir: PathBuf,
        /// Its `org.opencontainers.image.ref.name`; `None`: the only image, else
        /// the one tagged `latest`.
        tag: Option<String>,
    },
}

impl UnpackSource {
    /// Parses `oci:DIR[:TAG]` (an OCI layout; a last `:PART` without `/` is the
    /// tag) or `REG/REPO[:TAG|@DIGEST]`.
    pub fn parse(s: &str) -> Result<UnpackSource, Error> {
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = match rest.rsplit_once(':') {
                Some((d, t)) if !t.contains('/') && !d.is_empty() => (d, Some(t)),
                _ => (rest, None),
            };
            if dir.is_empty() {
                return Err(Error::Usage(format!(
                    "`{s}`: expected oci:DIR[:TAG], the directory is missing"
                )));
            }
            if tag == Some("") {
                return Err(Error::Usage(format!(
                    "`{s}`: the tag after the last `:` is empty"
                )));
            }
            return Ok(UnpackSource::OciLayout {
                dir: PathBuf::from(dir),
                tag: tag.map(str::to_string),
            });
        }
        s.parse()
            .map(UnpackSource::Registry)
            .map_err(|e| Error::Usage(format!("invalid image `{s}`: {e}")))
    }
}

impl std::fmt::Display for UnpackSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnpackSource::Registry(r) => write!(f, "{r}"),
            UnpackSource::OciLayout { dir, tag: None } => write!(f, "oci:{}", dir.display()),
            UnpackSource::OciLayout { dir, tag: Some(t) } => {
                write!(f, "oci:{}:{t}", dir.display())
            }
        }
    }
}

/// What [`unpack`] needs.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// The image.
    pub source: UnpackSource,
    /// The directory to write the root file system into (created if missing;
    /// existing content stays unless the image replaces or deletes it).
    pub dest: PathBuf,
    /// Where to write the environment; default `DEST/`[`ENV_FILE_NAME`].
    pub env_file: Option<PathBuf>,
    /// Local state (the content store that registry blobs are downloaded into).
    pub state: StateDir,
    /// Registries reached over plain HTTP (loopback ones always are).
    pub insecure_registries: Vec<String>,
    /// Credentials for pulling from registries.
    pub pull_credentials: CredentialSource,
    /// Where progress lines go.
    pub progress: Arc<dyn Progress>,
}

/// What [`unpack`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackResult {
    /// Digest of the platform manifest that was unpacked.
    pub manifest_digest: Digest,
    /// Layers applied.
    pub layers: usize,
    /// The config's `Env`, as in the image (`NAME=value`).
    pub env: Vec<String>,
    /// The config's working directory, if any.
    pub working_dir: Option<String>,
    /// The config's user, if any.
    pub user: Option<String>,
    /// Where the environment file was written.
    pub env_file: PathBuf,
}

/// An image resolved to its platform manifest, with where its layer blobs are.
struct Resolved {
    manifest_digest: Digest,
    config: ImageConfig,
    layers: Vec<LayerDesc>,
}

/// Where the layer blobs come from.
enum Blobs<'a> {
    /// Downloaded (verified) into the content store.
    Registry(Client, ContentStore, &'a Reference),
    /// Read in place from an OCI layout, each verified before it is applied.
    Layout(&'a Path),
}

/// Unpacks `opts.source` into `opts.dest` and writes its environment file (see
/// the module doc). Must run inside the build user namespace for owners to be kept.
pub async fn unpack(opts: &UnpackOptions) -> Result<UnpackResult, Error> {
    let started = std::time::Instant::now();
    let platform = Platform::host();
    let name = opts.source.to_string();
    let env_file = opts
        .env_file
        .clone()
        .unwrap_or_else(|| opts.dest.join(ENV_FILE_NAME));
    if let Some(dir) = opts.env_file.as_deref().and_then(Path::parent)
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return Err(Error::Usage(format!(
            "env file `{}`: its directory does not exist",
            env_file.display()
        )));
    }
    let (image, blobs) = match &opts.source {
        UnpackSource::Registry(reference) => {
            opts.state.ensure()?;
            let store = opts.state.store()?;
            let client = Client::new(ClientOptions {
                insecure_registries: opts.insecure_registries.clone(),
                pull_credentials: opts.pull_credentials.clone(),
                ..Default::default()
            })
            .map_err(Error::registry("set up the registry client"))?;
            let base = pull::resolve(&client, &store, reference, &platform).await?;
            let image = Resolved {
                manifest_digest: base.manifest_digest,
                config: base.config,
                layers: base.layers,
            };
            (image, Blobs::Registry(client, store, reference))
        }
        UnpackSource::OciLayout { dir, tag } => {
            let (d, tag, platform, name) =
                (dir.clone(), tag.clone(), platform.clone(), name.clone());
            let image = tokio::task::spawn_blocking(move || {
                layout::resolve(&d, tag.as_deref(), &platform, &name)
            })
            .await
            .map_err(|e| Error::Image(format!("resolve task: {e}")))??;
            (image, Blobs::Layout(dir))
        }
    };
    let total: u64 = image.layers.iter().map(|l| l.size).sum();
    opts.progress.line(&format!(
        "unpacking {name} ({}, {} layers, {:.1} MiB compressed) into {}",
        image.manifest_digest,
        image.layers.len(),
        total as f64 / (1024.0 * 1024.0),
        opts.dest.display()
    ));
    prepare_dest(&opts.dest)?;
    match &blobs {
        Blobs::Registry(client, store, reference) => {
            pull::apply_layers(
                &image.layers,
                |l| pull::fetch_blob(client, store, reference, &l.digest),
                |d| store.blob_path(d),
                &opts.dest,
            )
            .await?
        }
        Blobs::Layout(dir) => {
            pull::apply_layers(
                &image.layers,
                |l| layout::verify_layer(dir, l, &name),
                |d| layout::blob_path(dir, d),
                &opts.dest,
            )
            .await?
        }
    }
    let text = env_file::render(&name, &image.manifest_digest, &image.config, |skipped| {
        opts.progress.line(&format!(
            "warning: {name}: Env entry {skipped:?} is not a shell variable name; left out of the env file"
        ))
    });
    env_file::write(&env_file, &text)?;
    opts.progress.line(&format!(
        "unpacked {name} into {} in {:.2}s; environment in {}",
        opts.dest.display(),
        started.elapsed().as_secs_f64(),
        env_file.display()
    ));
    Ok(UnpackResult {
        manifest_digest: image.manifest_digest,
        layers: image.layers.len(),
        env: image.config.config.env.clone(),
        working_dir: image.config.config.working_dir.clone(),
        user: image.config.config.user.clone(),
        env_file,
    })
}

/// Creates `dest` (and its parents) unless it is a directory already.
fn prepare_dest(dest: &Path) -> Result<(), Error> {
    match std::fs::metadata(dest) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Usage(format!(
            "destination `{}` exists and is not a directory",
            dest.display()
        ))),
        Err(_) => {
            std::fs::create_dir_all(dest).map_err(|e| Error::io("create the destination", dest, e))
        }
    }
}

/// Reading an image from an OCI image layout in place, every blob verified.
mod layout {
    use super::*;

    /// Where the blob `d` of the layout `dir` is; only sha256 digests (whose hex
    /// part cannot name another path) are accepted by the callers.
    pub(super) fn blob_path(dir: &Path, d: &Digest) -> PathBuf {
        dir.join("blobs").join("sha256").join(d.digest())
    }

    fn check_sha256(d: &Digest, name: &str) -> Result<(), Error> {
        let hex = d.digest();
        if d.algorithm().as_ref() == "sha256"
            && hex.len() == 64
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            Ok(())
        } else {
            Err(Error::Image(format!(
                "`{name}`: digest {d} is not supported (only sha256)"
            )))
        }
    }

    /// A small blob (index, manifest, config), verified against its digest.
    fn read_blob(dir: &Path, d: &Digest, name: &str) -> Result<Vec<u8>, Error> {
        check_sha256(d, name)?;
        let path = blob_path(dir, d);
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read blob", &path, e))?;
        let got = cairn_oci::sha256_digest(&bytes);
        if got != *d {
            return Err(Error::Image(format!(
                "`{name}`: blob `{}` is corrupt: its content hashes to {got}",
                path.display()
            )));
        }
        Ok(bytes)
    }

    /// Resolves the image tagged `tag` for `platform`: `index.json` → (nested
    /// indexes) → manifest → config.
    pub(super) fn resolve(
        dir: &Path,
        tag: Option<&str>,
        platform: &Platform,
        name: &str,
    ) -> Result<Resolved, Error> {
        let index_path = dir.join("index.json");
        let bytes = std::fs::read(&index_path).map_err(|e| {
            Error::Image(format!(
                "`{name}` is not an OCI image layout: read `{}`: {e}",
                index_path.display()
            ))
        })?;
        let index = ManifestDoc::parse(&bytes, name)?;
        let tag_of = |m: &pull::DescDoc| m.annotations.get(REF_NAME).cloned();
        let tags: Vec<String> = index.manifests.iter().filter_map(tag_of).collect();
        let wanted = match tag {
            Some(t) => Some(t),
            None if index.manifests.len() > 1 => Some("latest"),
            None => None,
        };
        let candidates: Vec<&pull::DescDoc> = index
            .manifests
            .iter()
            .filter(|m| wanted.is_none() || tag_of(m).as_deref() == wanted)
            .collect();
        let desc = match candidates.as_slice() {
            [] if tag.is_none() && wanted.is_some() => {
                return Err(Error::Image(format!(
                    "`{name}` holds {} images and none is tagged `latest`: name one as \
                     oci:DIR:TAG (tags: {})",
                    index.manifests.len(),
                    tags.join(", ")
                )));
            }
            [] => {
                return Err(Error::Image(format!(
                    "`{name}`: the layout has no image{} (tags: {})",
                    wanted.map(|t| format!(" tagged `{t}`")).unwrap_or_default(),
                    if tags.is_empty() {
                        "none".to_string()
                    } else {
                        tags.join(", ")
                    }
                )));
            }
            [one] => *one,
            several => several
                .iter()
                .find(|m| {
                    m.platform.as_ref().is_some_and(|p| {
                        platform.matches(&p.os, &p.architecture, p.variant.as_deref())
                    })
                })
                .copied()
                .ok_or_else(|| {
                    Error::Image(format!(
                        "`{name}`: {} images have that tag and none is for {}",
                        several.len(),
                        platform.to_string_short()
                    ))
                })?,
        };
        let mut digest = pull::digest(&desc.digest, name)?;
        let mut media_type = desc.media_type.clone();
        // An index may point at further indexes; four levels is more than any tool writes.
        for _ in 0..4 {
            let bytes = read_blob(dir, &digest, name)?;
            let doc = ManifestDoc::parse(&bytes, name)?;
            if doc.is_index(&media_type) {
                digest = doc.pick_platform(platform, name)?;
                media_type = String::new();
                continue;
            }
            let config_digest = doc.config_digest(name)?;
            let config_bytes = read_blob(dir, &config_digest, name)?;
            let config = ImageConfig::from_slice(&config_bytes)
                .map_err(Error::oci(format!("parse the config of `{name}`")))?;
            let layers = doc.layers(&config, None, name)?;
            for l in &layers {
                check_sha256(&l.digest, name)?;
            }
            return Ok(Resolved {
                manifest_digest: digest,
                config,
                layers,
            });
        }
        Err(Error::Image(format!(
            "`{name}`: indexes nested more than four deep"
        )))
    }

    /// Checks a layer blob's size and digest (streamed, on a blocking thread).
    pub(super) async fn verify_layer(
        dir: &Path,
        layer: &LayerDesc,
        name: &str,
    ) -> Result<(), Error> {
        let path = blob_path(dir, &layer.digest);
        let (want, size, name) = (layer.digest.clone(), layer.size, name.to_string());
        tokio::task::spawn_blocking(move || {
            let mut f =
                std::fs::File::open(&path).map_err(|e| Error::io("open layer blob", &path, e))?;
            let mut hash = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut n: u64 = 0;
            loop {
                let k = f
                    .read(&mut buf)
                    .map_err(|e| Error::io("read layer blob", &path, e))?;
                if k == 0 {
                    break;
                }
                hash.update(&buf[..k]);
                n += k as u64;
            }
            let got = format!("sha256:{}", hex::encode(hash.finalize()));
            if n != size || got != want.to_string() {
                return Err(Error::Image(format!(
                    "`{name}`: layer blob `{}` is corrupt: {n} bytes hashing to {got}, \
                     the manifest says {size} bytes, {want}",
                    path.display()
                )));
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Image(format!("verify task: {e}")))?
    }
}

/// The environment file: POSIX shell, safe to source.
mod env_file {
    use super::*;

    /// `s` as one single-quoted shell word: nothing in it is expanded.
    pub(super) fn quote(s: &str) -> String {
        format!("'{}'", s.replace('\'', r"'\''"))
    }

    /// Whether `s` is a POSIX shell variable name.
    pub(super) fn is_name(s: &str) -> bool {
        let mut b = s.bytes();
        b.next()
            .is_some_and(|c| c == b'_' || c.is_ascii_alphabetic())
            && b.all(|c| c == b'_' || c.is_ascii_alphanumeric())
    }

    /// The file's text; `skipped` is told each `Env` entry left out.
    pub(super) fn render(
        name: &str,
        digest: &Digest,
        config: &ImageConfig,
        mut skipped: impl FnMut(&str),
    ) -> String {
        let mut out = format!(
            "# The environment of {} ({digest}), written by `cairn unpack`.\n\
             # Source it from a POSIX shell: . FILE\n",
            name.replace('\n', " ")
        );
        for entry in &config.config.env {
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            if is_name(k) {
                out.push_str(&format!("export {k}={}\n", quote(v)));
            } else {
                skipped(k);
                out.push_str(&format!("# left out, not a shell variable name: {k:?}\n"));
            }
        }
        let c = &config.config;
        if c.working_dir.is_some() || c.user.is_some() {
            out.push_str("# How the image runs (not part of its environment, not exported):\n");
        }
        if let Some(w) = &c.working_dir {
            out.push_str(&format!("CAIRN_IMAGE_WORKDIR={}\n", quote(w)));
        }
        if let Some(u) = &c.user {
            out.push_str(&format!("CAIRN_IMAGE_USER={}\n", quote(u)));
        }
        out
    }

    /// Writes `text` to `path` atomically: a temporary file beside it, renamed.
    pub(super) fn write(path: &Path, text: &str) -> Result<(), Error> {
        let file_name = path.file_name().ok_or_else(|| {
            Error::Usage(format!("env file `{}` has no file name", path.display()))
        })?;
        let tmp = path.with_file_name(format!(
            ".{}.tmp-{}",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        let written = std::fs::write(&tmp, text)
            .map_err(|e| Error::io("write the env file", &tmp, e))
            .and_then(|()| {
                std::fs::rename(&tmp, path).map_err(|e| Error::io("write the env file", path, e))
            });
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(
            UnpackSource::parse("oci:/a/b:v1").unwrap(),
            UnpackSource::OciLayout {
                dir: "/a/b".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            UnpackSource::parse("oci:./lay").unwrap(),
            UnpackSource::OciLayout {
                dir: "./lay".into(),
                tag: None
            }
        );
        // A colon inside the path is not a tag separator.
        assert_eq!(
            UnpackSource::parse("oci:/a:b/c").unwrap(),
            UnpackSource::OciLayout {
                dir: "/a:b/c".into(),
                tag: None
            }
        );
        assert!(UnpackSource::parse("oci:").is_err());
        assert!(UnpackSource::parse("oci:dir:").is_err());
        let UnpackSource::Registry(r) = UnpackSource::parse("127.0.0.1:5000/a/b:t").unwrap() else {
            panic!("not a registry source");
        };
        assert_eq!(r.tag.as_deref(), Some("t"));
        assert_eq!(
            UnpackSource::parse("oci:/x:y").unwrap().to_string(),
            "oci:/x:y"
        );
    }

    #[test]
    fn env_file_quotes_and_skips() {
        let mut config = ImageConfig::default();
        config.config.env = vec![
            "PATH=/usr/bin:/bin".into(),
            r#"Q=it's "two words" $HOME `x` \n"#.into(),
            "BAD-NAME=x".into(),
            "EMPTY=".into(),
        ];
        config.config.working_dir = Some("/w d".into());
        let d = cairn_oci::sha256_digest(b"x");
        let mut skipped = Vec::new();
        let text = env_file::render("img", &d, &config, |k| skipped.push(k.to_string()));
        assert_eq!(skipped, ["BAD-NAME"]);
        assert!(text.contains("export PATH='/usr/bin:/bin'\n"), "{text}");
        assert!(
            text.contains(r#"export Q='it'\''s "two words" $HOME `x` \n'"#),
            "{text}"
        );
        assert!(text.contains("CAIRN_IMAGE_WORKDIR='/w d'\n"), "{text}");
        assert!(!text.contains("CAIRN_IMAGE_USER"), "{text}");
        assert!(!text.contains("export BAD-NAME"), "{text}");
        assert!(env_file::is_name("_a1") && !env_file::is_name("1a") && !env_file::is_name(""));
    }

    /// Writes `bytes` as a blob of the layout `dir`; returns its digest.
    fn put(dir: &Path, bytes: &[u8]) -> Digest {
        let d = cairn_oci::sha256_digest(bytes);
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join(d.digest()), bytes).unwrap();
        d
    }

    fn desc(mt: &str, d: &Digest, len: usize, extra: serde_json::Value) -> serde_json::Value {
        let mut v = serde_json::json!({"mediaType": mt, "digest": d.to_string(), "size": len});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    }

    /// A layout with two layer-less images: `one` (a manifest) and `multi` (an
    /// index of the host's image and another platform's).
    #[test]
    fn layout_images_are_found_by_tag_and_platform_and_verified() {
        use cairn_oci::media_types::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let host = Platform::host();
        let manifest = |env: &str| {
            let mut c = ImageConfig::default();
            c.config.env = vec![env.to_string()];
            let bytes = c.to_canonical_json().unwrap();
            let cd = put(dir, &bytes);
            let m = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": desc(OCI_CONFIG, &cd, bytes.len(), serde_json::json!({})), "layers": []});
            let m = serde_json::to_vec(&m).unwrap();
            (put(dir, &m), m.len())
        };
        let (m_host, n_host) = manifest("WHO=host");
        let (m_other, n_other) = manifest("WHO=other");
        let platform = |os: &str, arch: &str| serde_json::json!({"platform": {"os": os, "architecture": arch}});
        let nested = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [desc(OCI_MANIFEST, &m_other, n_other, platform("plan9", "mips")),
                          desc(OCI_MANIFEST, &m_host, n_host, platform(&host.os, &host.architecture))]}))
        .unwrap();
        let nested_d = put(dir, &nested);
        let tag = |t: &str| serde_json::json!({"annotations": {REF_NAME: t}});
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [
            desc(OCI_MANIFEST, &m_other, n_other, tag("one")),
            desc(OCI_INDEX, &nested_d, nested.len(), tag("multi"))]});
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();

        let got = |t: Option<&str>| layout::resolve(dir, t, &host, "test");
        let one = got(Some("one")).unwrap();
        assert_eq!(one.manifest_digest, m_other);
        assert_eq!(one.config.config.env, ["WHO=other"]);
        let multi = got(Some("multi")).unwrap();
        assert_eq!(
            multi.manifest_digest, m_host,
            "the host's entry of the nested index"
        );
        let e = got(None).err().unwrap().to_string();
        assert!(
            e.contains("none is tagged `latest`") && e.contains("one, multi"),
            "{e}"
        );
        let e = got(Some("zz")).err().unwrap().to_string();
        assert!(e.contains("no image tagged `zz`"), "{e}");
        // A blob whose content does not match its digest is refused.
        std::fs::write(dir.join("blobs/sha256").join(m_host.digest()), b"{}").unwrap();
        let e = got(Some("multi")).err().unwrap().to_string();
        assert!(e.contains("is corrupt"), "{e}");
    }
}
