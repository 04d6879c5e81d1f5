//! Local base images, since nothing can be pulled from the internet: a minimal
//! busybox image made from the `busybox-static` Debian package's `/bin/busybox`.
//!
//! The image is written with cairn's own layer writer (reproducible: same busybox
//! binary, same digests) and pushed as an OCI index with one `linux/<host arch>`
//! manifest, so that pulling it exercises index resolution.

use std::path::{Path, PathBuf};

use cairn_oci::oci_spec::image::{
    DescriptorBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType, PlatformBuilder,
};
use cairn_oci::{
    ContainerConfig, Digest, History, ImageConfig, LayerOptions, RootFs, SourceKind, media_types,
};
use cairn_registry::{Client, ClientOptions, Reference};

/// Where the busybox binary comes from.
pub const BUSYBOX: &str = "/bin/busybox";

/// Errors while making or pushing a seed image.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// busybox is missing.
    #[error("`{0}` not found: install the busybox-static Debian package")]
    NoBusybox(PathBuf),
    /// File system trouble.
    #[error("{0} `{1}`: {2}")]
    Io(&'static str, PathBuf, #[source] std::io::Error),
    /// Layer or JSON trouble.
    #[error(transparent)]
    Oci(#[from] cairn_oci::Error),
    /// Registry trouble.
    #[error(transparent)]
    Registry(#[from] cairn_registry::Error),
    /// Manifest assembly trouble.
    #[error("assemble the image: {0}")]
    Spec(String),
}

fn io(op: &'static str, p: &Path) -> impl FnOnce(std::io::Error) -> SeedError {
    let p = p.to_path_buf();
    move |e| SeedError::Io(op, p, e)
}

/// What [`seed_busybox`] pushed.
#[derive(Debug, Clone)]
pub struct SeededImage {
    /// `REGISTRY/REPO:TAG` of the index.
    pub reference: String,
    /// Digest of the index.
    pub index_digest: Digest,
    /// Digest of the platform manifest.
    pub manifest_digest: Digest,
    /// diff_id of its single layer.
    pub diff_id: Digest,
}

/// Lays out a busybox root file system in `root`: `/bin/busybox`, a symlink per
/// applet (`busybox --list-full`), `/etc/passwd`, `/etc/group`, `/etc/motd`,
/// `/usr/share/seed/{a,b}.txt`, `/tmp`, `/root`.
pub fn busybox_rootfs(root: &Path) -> Result<(), SeedError> {
    use std::os::unix::fs::PermissionsExt;
    let busybox = Path::new(BUSYBOX);
    if !busybox.is_file() {
        return Err(SeedError::NoBusybox(busybox.into()));
    }
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).map_err(io("create", &bin))?;
    let dst = bin.join("busybox");
    std::fs::copy(busybox, &dst).map_err(io("copy busybox to", &dst))?;
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755))
        .map_err(io("chmod", &dst))?;
    let list = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(io("run", busybox))?;
    let mut applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && l != "bin/busybox" && !l.contains(".."))
        .collect();
    applets.push("bin/sh".into());
    applets.sort();
    applets.dedup();
    for a in applets {
        let link = root.join(&a);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink("/bin/busybox", &link).map_err(io("symlink", &link))?;
        }
    }
    let etc = root.join("etc");
    std::fs::create_dir_all(&etc).map_err(io("create", &etc))?;
    for (name, text) in [
        (
            "passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("group", "root:x:0:\nnogroup:x:65534:\n"),
    ] {
        let p = etc.join(name);
        std::fs::write(&p, text).map_err(io("write", &p))?;
    }
    // A plain file and a directory tree that tests can modify and delete.
    let seed_doc = root.join("usr/share/seed");
    std::fs::create_dir_all(&seed_doc).map_err(io("create", &seed_doc))?;
    for (p, text) in [
        (etc.join("motd"), "welcome to the cairn busybox seed\n"),
        (seed_doc.join("a.txt"), "seed file a\n"),
        (seed_doc.join("b.txt"), "seed file b\n"),
    ] {
        std::fs::write(&p, text).map_err(io("write", &p))?;
    }
    for (dir, mode) in [("tmp", 0o1777), ("root", 0o700)] {
        let p = root.join(dir);
        std::fs::create_dir_all(&p).map_err(io("create", &p))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(io("chmod", &p))?;
    }
    Ok(())
}

/// The OCI architecture name of this machine.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn spec_err(e: impl std::fmt::Display) -> SeedError {
    SeedError::Spec(e.to_string())
}

fn desc(mt: MediaType, d: &Digest, size: u64) -> Result<cairn_oci::Descriptor, SeedError> {
    DescriptorBuilder::default()
        .media_type(mt)
        .digest(d.clone())
        .size(size)
        .build()
        .map_err(spec_err)
}

/// Builds the busybox image and pushes it to `registry` (`host:port`) as
/// `REPO:TAG`, an OCI index over one manifest for the host platform.
pub async fn seed_busybox(registry: &str, repo: &str, tag: &str) -> Result<SeededImage, SeedError> {
    let tmp = tempfile::tempdir().map_err(io("create temp dir", Path::new("/tmp")))?;
    let rootfs = tmp.path().join("rootfs");
    busybox_rootfs(&rootfs)?;
    push_rootfs_image(
        registry,
        repo,
        tag,
        &rootfs,
        "cairn dev seed: busybox from busybox-static",
    )
    .await
}

/// Makes a Debian root file system with `debootstrap --variant=minbase` (needs
/// root and the Debian mirror). Writes into `dest` atomically: a half-made tree
/// is never left at `dest`.
pub fn debootstrap_rootfs(dest: &Path, suite: &str, mirror: &str) -> Result<(), SeedError> {
    let parent = dest.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".debootstrap-")
        .tempdir_in(parent)
        .map_err(io("create temp dir in", parent))?;
    let out = std::process::Command::new("debootstrap")
        .args(["--variant=minbase", suite])
        .arg(tmp.path())
        .arg(mirror)
        .output()
        .map_err(io("run debootstrap into", tmp.path()))?;
    if !out.status.success() {
        return Err(SeedError::Io(
            "debootstrap",
            dest.to_path_buf(),
            std::io::Error::other(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .chain(String::from_utf8_lossy(&out.stderr).lines())
                    .last()
                    .unwrap_or_default()
            )),
        ));
    }
    let made = tmp.keep();
    std::fs::rename(&made, dest).map_err(io("move into place", dest))
}

/// Pushes the tree `rootfs` as a one-layer image `REPO:TAG` (an OCI index over
/// one manifest for the host platform), written by cairn's reproducible layer
/// writer.
pub async fn push_rootfs_image(
    registry: &str,
    repo: &str,
    tag: &str,
    rootfs: &Path,
    created_by: &str,
) -> Result<SeededImage, SeedError> {
    let tmp = tempfile::tempdir().map_err(io("create temp dir", Path::new("/tmp")))?;
    let store = cairn_oci::ContentStore::open(tmp.path().join("store"))?;
    let mut info = None;
    let (layer_digest, layer_size) = store.write_blob(|w| {
        info = Some(cairn_oci::write_layer(
            rootfs,
            SourceKind::Plain,
            w,
            &LayerOptions::default(),
        )?);
        Ok(())
    })?;
    let diff_id = info.expect("layer written").diff_id;
    let config = ImageConfig {
        created: Some("1970-01-01T00:00:00Z".into()),
        architecture: host_arch().into(),
        os: "linux".into(),
        config: ContainerConfig {
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id.clone()],
        },
        history: vec![History {
            created: Some("1970-01-01T00:00:00Z".into()),
            created_by: Some(created_by.into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let config_bytes = config.to_canonical_json()?;
    let config_digest = store.put_bytes(&config_bytes)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(desc(
            MediaType::ImageConfig,
            &config_digest,
            config_bytes.len() as u64,
        )?)
        .layers(vec![desc(
            MediaType::ImageLayerGzip,
            &layer_digest,
            layer_size,
        )?])
        .build()
        .map_err(spec_err)?;
    let manifest_bytes = cairn_oci::canonical_json(&manifest)?;
    let manifest_digest = cairn_oci::sha256_digest(&manifest_bytes);
    let mut entry = desc(
        MediaType::ImageManifest,
        &manifest_digest,
        manifest_bytes.len() as u64,
    )?;
    entry.set_platform(Some(
        PlatformBuilder::default()
            .os(cairn_oci::oci_spec::image::Os::Linux)
            .architecture(cairn_oci::oci_spec::image::Arch::from(host_arch()))
            .build()
            .map_err(spec_err)?,
    ));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![entry])
        .build()
        .map_err(spec_err)?;
    let index_bytes = cairn_oci::canonical_json(&index)?;

    let client = Client::new(ClientOptions::default())?;
    let reference: Reference = format!("{registry}/{repo}:{tag}").parse()?;
    client
        .put_blob_from_file(&reference, &layer_digest, &store.blob_path(&layer_digest))
        .await?;
    client
        .put_blob_from_file(&reference, &config_digest, &store.blob_path(&config_digest))
        .await?;
    let by_digest = reference.with_digest(manifest_digest.clone());
    client
        .put_manifest(&by_digest, media_types::OCI_MANIFEST, &manifest_bytes)
        .await?;
    let index_digest = client
        .put_manifest(&reference, media_types::OCI_INDEX, &index_bytes)
        .await?;
    Ok(SeededImage {
        reference: reference.to_string(),
        index_digest,
        manifest_digest,
        diff_id,
    })
}
