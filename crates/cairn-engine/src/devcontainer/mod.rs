//! `cairn devcontainer build` and `plan`: a dev container configuration turned
//! into one ordinary cached build.
//!
//! ```text
//! devcontainer.json ─(cairn-devcontainer: parse, substitute)─▶ Features fetched
//! (feature_fetch: OCI, tarball, local, mirror; dependsOn) ─▶ install order ─▶
//! base read (image config, or the Dockerfile's target stage) ─▶ config hash
//! ─▶ REPO:<hash> exists? → "Using pre-built dev container", no build
//!                 else  → generated Dockerfile (generate.rs) built by the engine
//!                         with its step cache, pushed as REPO:TAG and REPO:<hash>
//! ```
//!
//! # The config-hash image cache
//!
//! The hash is [`cairn_devcontainer::cache_key`] of the substituted
//! devcontainer.json, the Dockerfile's bytes and a tree digest of its build
//! context (Dockerfile configs; the context makes a changed `COPY` source a miss
//! where Ona's hash would reuse a stale image), the digest of the base image the
//! Features stand on, and every Feature's reference, resolved digest and options
//! in install order. The image is looked for as `REPO:<hash>` in the
//! repository of `--image-name`; its build time is recorded in the side tag
//! `REPO:<hash>-meta` (so the image manifest itself stays reproducible). A hit
//! costs the base resolution, the Feature lookups and two manifest GETs — no
//! layer is downloaded — and pushes nothing unless `--push` asked for the
//! `--image-name` tag (then one manifest PUT). A miss runs the generated build,
//! whose steps the engine's step cache (`--cache-repo`) may still serve, then,
//! with `--push` only, pushes `REPO:TAG` and `REPO:<hash>`.

mod base;
mod generate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cairn_devcontainer::cache_key::{CacheKeyInput, cache_key, key_features};
use cairn_devcontainer::features::{builtin_env, feature_env, render_env_file};
use cairn_devcontainer::lockfile::{Lockfile, check_frozen, lockfile_path};
use cairn_devcontainer::metadata::{
    build_label, config_entry, feature_entry, merge_entries, parse_label,
};
use cairn_devcontainer::order::{FeatureNode, install_order, plan_features};
use cairn_devcontainer::substitute::SubstitutionContext;
use cairn_devcontainer::{Base, DevContainerConfig, find_config, load_config};
use cairn_oci::Digest;
use cairn_registry::{Client, Reference};
use serde_json::{Value, json};

use crate::feature_fetch::{FeatureFetchOptions, FeatureFetcher, lockfile_for, resolve_all};
use crate::{BuildOptions, Error, Output};

pub(crate) use cairn_devcontainer::metadata::LABEL as LABEL_NAME;

/// How `devcontainer-lock.json` is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockfileMode {
    /// Read it when present (locked Features are fetched by their digest) and
    /// write it after resolving.
    #[default]
    ReadWrite,
    /// It must exist and already say what resolving finds (`--frozen-lockfile`).
    Frozen,
    /// Neither read nor write it (`--no-lockfile`).
    Off,
}

/// A `cairn devcontainer build` or `plan`.
#[derive(Debug, Clone)]
pub struct DevcontainerOptions {
    /// `--workspace-folder`: where the config is looked for and what
    /// `${localWorkspaceFolder}` is.
    pub workspace_folder: PathBuf,
    /// `--config`: the devcontainer.json (default: the standard locations).
    pub config: Option<PathBuf>,
    /// `--image-name REG/REPO:TAG`: the image's name and the repository that
    /// holds the config-hash tags.
    pub image_name: Option<Reference>,
    /// The variables `${localEnv:…}` reads (the CLI passes its environment).
    pub local_env: BTreeMap<String, String>,
    /// `--feature-mirror DIR`: Features from this directory, never the network.
    pub feature_mirror: Option<PathBuf>,
    /// The lockfile.
    pub lockfile: LockfileMode,
    /// `--unpack-to DIR`: write the final image's root filesystem there.
    pub unpack_to: Option<PathBuf>,
    /// Where the image's environment goes with `--unpack-to` (default: see
    /// [`crate::unpack`]).
    pub env_file: Option<PathBuf>,
    /// Dry run (`--cached-only`, envbuilder's "get cached image"): succeed only
    /// when the image exists already — pre-built under the config hash, or whole
    /// in the step cache — printing `CAIRN_CACHED_IMAGE=REF@DIGEST`; build and
    /// push nothing.
    pub cached_only: bool,
    /// Engine options (state, caches, credentials, compression, progress, `push`).
    /// The Dockerfile, context, build args, target and tags are set from the
    /// config.
    pub build: BuildOptions,
}

/// What a devcontainer build did.
#[derive(Debug, Clone)]
pub struct DevcontainerResult {
    /// The config hash.
    pub config_hash: String,
    /// A pre-built image was found: nothing was built.
    pub prebuilt: bool,
    /// The image's manifest digest.
    pub manifest_digest: Digest,
    /// References pushed, `name@digest`.
    pub pushed: Vec<String>,
    /// Where the image was unpacked, and its environment file.
    pub unpacked: Option<(PathBuf, PathBuf)>,
}

/// What the base image of the Features is.
#[derive(Debug, Clone)]
struct BaseFacts {
    /// The external image the Features stand on (`None`: scratch).
    image: Option<String>,
    /// Its platform manifest digest.
    digest: Option<Digest>,
    /// Its `devcontainer.metadata` label.
    label: Option<String>,
    /// The image user before the Features.
    user: Option<String>,
    /// Dockerfile configs: the user's Dockerfile (`None`: an `image` config).
    dockerfile: Option<DockerfileFacts>,
}

/// The user's Dockerfile, as the generated one extends it.
#[derive(Debug, Clone)]
struct DockerfileFacts {
    /// Its text, as read.
    text: String,
    /// Its escape token.
    escape: char,
    /// How the appended stage names the target stage.
    stage_ref: String,
}

/// Everything decided before a build.
#[derive(Debug)]
struct Prepared {
    config: DevContainerConfig,
    nodes: Vec<FeatureNode>,
    /// What was fetched for each node (OCI layers still deferred).
    fetched: Vec<crate::feature_fetch::FetchedFeature>,
    fetcher: FeatureFetcher,
    order: Vec<usize>,
    base: BaseFacts,
    hash: String,
    client: Client,
    scratch: crate::state::ScratchDir,
    /// The lockfile's path, what resolving found, and whether that differs
    /// from the file.
    lock: (PathBuf, Lockfile, bool),
}

async fn prepare(opts: &DevcontainerOptions) -> Result<Prepared, Error> {
    let workspace = opts
        .workspace_folder
        .canonicalize()
        .map_err(|e| Error::io("open the workspace folder", &opts.workspace_folder, e))?;
    let config_path = match &opts.config {
        Some(p) => p.clone(),
        None => find_config(&workspace)?,
    };
    let ctx = SubstitutionContext::new(opts.local_env.clone(), &workspace);
    let config = load_config(&config_path, &ctx)?;
    if let Base::Dockerfile(b) = &config.base
        && !b.options.is_empty()
    {
        return Err(Error::Usage(format!(
            "{}: build.options ({}) are `docker build` flags cairn does not take; \
             remove them",
            config_path.display(),
            b.options.join(" ")
        )));
    }
    opts.build.state.ensure()?;
    let client = opts.build.registry_client()?;
    let scratch = crate::state::ScratchDir::create(&opts.build.state.tmp(), "devcontainer")?;
    let config_dir = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));

    // Features, with their dependsOn, then the install order.
    let lock_path = lockfile_path(&config_path);
    let previous = match opts.lockfile {
        LockfileMode::Off => None,
        _ => Lockfile::read(&lock_path)?,
    };
    let local_root = config_dir
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == ".devcontainer"))
        .unwrap_or(&config_dir)
        .to_path_buf();
    let fetcher = FeatureFetcher::new(
        client.clone(),
        FeatureFetchOptions {
            config_file: config_path.clone(),
            local_root,
            work_dir: scratch.path().join("fetched"),
            mirror: opts.feature_mirror.clone(),
            lockfile: previous.clone(),
            ca_cert: opts.build.ca_cert.clone(),
            defer_layers: true,
        },
    )?;
    // The Features and the base, concurrently (a few manifest GETs each).
    let (resolved, base) = tokio::try_join!(
        resolve_all(&fetcher, &config.features),
        base_facts(&config.base, &client, &opts.build.state),
    )?;
    let lock = lockfile_for(&resolved.fetched, previous.as_ref());
    if opts.lockfile == LockfileMode::Frozen {
        check_frozen(&lock_path, previous.as_ref(), &lock)?;
    }
    let nodes = resolved.nodes;
    let fetched = resolved.features;
    let order = install_order(&nodes, &config.override_feature_install_order)?;

    // The config hash.
    let context_digest = match &config.base {
        Base::Dockerfile(b) => Some(context_digest(b)?),
        Base::Image(_) => None,
    };
    let base_digest = base.digest.as_ref().map(|d| d.to_string());
    let hash = cache_key(&CacheKeyInput {
        config: &config.document,
        dockerfile: base.dockerfile.as_ref().map(|d| d.text.as_bytes()),
        build_context: context_digest.as_deref(),
        base_image_digest: base_digest.as_deref(),
        features: key_features(&nodes, &order),
    });
    Ok(Prepared {
        config,
        nodes,
        fetched,
        fetcher,
        order,
        base,
        hash,
        client,
        scratch,
        lock: {
            let changed = previous.as_ref() != Some(&lock);
            (lock_path, lock, changed)
        },
    })
}

/// What the Features stand on: the image config of `image`, or of the
/// external image under the Dockerfile's target stage, and that stage's user.
async fn base_facts(
    config_base: &Base,
    client: &Client,
    state: &crate::StateDir,
) -> Result<BaseFacts, Error> {
    let store = state.store()?;
    let platform = crate::Platform::host();
    let resolve = |image: String| {
        let (store, platform) = (&store, &platform);
        async move {
            let r: Reference = image
                .parse()
                .map_err(|e| Error::Usage(format!("invalid image `{image}`: {e}")))?;
            crate::pull::resolve(client, store, &r, platform).await
        }
    };
    Ok(match config_base {
        Base::Image(image) => {
            let img = resolve(image.clone()).await?;
            BaseFacts {
                image: Some(image.clone()),
                digest: Some(img.manifest_digest.clone()),
                label: img.config.config.labels.get(LABEL_NAME).cloned(),
                user: img.config.config.user.clone(),
                dockerfile: None,
            }
        }
        Base::Dockerfile(b) => {
            let text = std::fs::read_to_string(&b.dockerfile)
                .map_err(|e| Error::io("read Dockerfile", &b.dockerfile, e))?;
            let df = cairn_dockerfile::parse(&b.dockerfile.display().to_string(), &text)?;
            let found = base::dockerfile_base(&df, b.target.as_deref(), &b.args)?;
            let img = match &found.image {
                Some(i) => Some(resolve(i.clone()).await?),
                None => None,
            };
            BaseFacts {
                image: found.image.clone(),
                digest: img.as_ref().map(|i| i.manifest_digest.clone()),
                label: img
                    .as_ref()
                    .and_then(|i| i.config.config.labels.get(LABEL_NAME).cloned()),
                user: found
                    .user
                    .clone()
                    .or_else(|| img.as_ref().and_then(|i| i.config.config.user.clone())),
                dockerfile: Some(DockerfileFacts {
                    text,
                    escape: df.escape,
                    stage_ref: found.stage_ref,
                }),
            }
        }
    })
}

/// Writes the lockfile when resolving changed it (not with `--no-lockfile` or
/// `--frozen-lockfile`, and not an empty one where there was none).
fn write_lockfile(opts: &DevcontainerOptions, p: &Prepared) -> Result<(), Error> {
    let (path, lock, changed) = &p.lock;
    if opts.lockfile != LockfileMode::ReadWrite || !changed {
        return Ok(());
    }
    if lock.features.is_empty() && !path.exists() {
        return Ok(());
    }
    std::fs::write(path, lock.render()).map_err(|e| Error::io("write", path, e))
}

/// Tree digest of a Dockerfile config's build context (after `.dockerignore`).
fn context_digest(b: &cairn_devcontainer::BuildConfig) -> Result<String, Error> {
    let ignore = crate::dockerignore::DockerIgnore::load(&b.dockerfile, &b.context)
        .map_err(|e| Error::io("read .dockerignore of", &b.context, e))?;
    crate::keys::tree_digest(&b.context, ".", &|p| ignore.ignores(p))
        .map_err(|e| Error::io("hash the build context", &b.context, e))
}

/// `cairn devcontainer plan --format json`.
pub async fn plan(opts: &DevcontainerOptions) -> Result<Value, Error> {
    let p = prepare(opts).await?;
    let base = match &p.config.base {
        Base::Image(image) => json!({
            "kind": "image",
            "image": image,
            "digest": p.base.digest.as_ref().map(|d| d.to_string()),
            "user": p.base.user,
        }),
        Base::Dockerfile(b) => json!({
            "kind": "dockerfile",
            "dockerfile": b.dockerfile.display().to_string(),
            "context": b.context.display().to_string(),
            "target": b.target,
            "image": p.base.image,
            "digest": p.base.digest.as_ref().map(|d| d.to_string()),
            "user": p.base.user,
        }),
    };
    Ok(json!({
        "config_hash": p.hash,
        "base": base,
        "features": plan_features(&p.nodes, &p.order),
    }))
}

/// The pre-built image of `hash`, if `repo` has one: its manifest bytes and
/// media type, and the recorded build time.
async fn prebuilt(
    client: &Client,
    repo: &Reference,
    hash: &str,
) -> Result<Option<(cairn_registry::FetchedManifest, Option<u64>)>, Error> {
    let at = repo.with_tag(hash);
    match client.get_manifest(&at).await {
        Ok(f) => {
            let meta = client
                .get_manifest(&repo.with_tag(&format!("{hash}-meta")))
                .await
                .ok()
                .and_then(|m| serde_json::from_slice::<Value>(&m.bytes).ok())
                .and_then(|doc| {
                    doc["annotations"][crate::cache::IMAGE_DURATION_ANNOTATION]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                });
            Ok(Some((f, meta)))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(Error::registry(format!(
            "look up the pre-built image `{at}`"
        ))(e)),
    }
}

/// `cairn devcontainer build`.
pub async fn build(opts: &DevcontainerOptions) -> Result<DevcontainerResult, Error> {
    let started = Instant::now();
    let b = &opts.build;
    if b.push && opts.image_name.is_none() {
        return Err(Error::Usage("--push needs --image-name".into()));
    }
    let p = prepare(opts).await?;
    let progress = &b.progress;
    progress.line(&format!("devcontainer config hash {}", p.hash));

    // The config-hash cache.
    if let Some(name) = &opts.image_name
        && let Some((found, saved)) = prebuilt(&p.client, name, &p.hash).await?
    {
        if opts.cached_only {
            #[allow(clippy::print_stdout)]
            {
                println!("CAIRN_CACHED_IMAGE={}@{}", name.name(), found.digest);
            }
            return Ok(DevcontainerResult {
                config_hash: p.hash,
                prebuilt: true,
                manifest_digest: found.digest,
                pushed: Vec::new(),
                unpacked: None,
            });
        }
        return use_prebuilt(opts, p, name, found, saved).await;
    }
    if opts.cached_only && b.cache_repo.is_none() && b.layer_cache_dir.is_none() {
        return Err(Error::Usage(format!(
            "--cached-only: no pre-built image for config hash {} and no step cache \
             (--cache-repo) to look in",
            p.hash
        )));
    }

    // Build: one named context per Feature, a generated Dockerfile. The
    // Features' layers were not needed so far (their manifests carried the
    // metadata): download them now, at most four at a time.
    crate::at_most(
        crate::TRANSFERS,
        p.order
            .iter()
            .map(|&i| p.fetcher.materialize(&p.fetched[i])),
    )
    .await?;
    let users = users_of(&p);
    let mut contexts = BTreeMap::new();
    let mut steps = Vec::new();
    let mut entries = Vec::new();
    for (n, &i) in p.order.iter().enumerate() {
        let node = &p.nodes[i];
        let dir = p.scratch.path().join(format!("feature-{n}"));
        copy_tree(&p.fetched[i].dir, &dir)?;
        let mut env = feature_env(&node.metadata, &node.options);
        env.push(("_CONTAINER_USER".into(), users.container_user.clone()));
        env.push(("_REMOTE_USER".into(), users.remote_user.clone()));
        let env_path = dir.join("devcontainer-features.env");
        std::fs::write(&env_path, render_env_file(&env))
            .map_err(|e| Error::io("write", &env_path, e))?;
        let short: String = node
            .reference
            .short_id()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let name = format!("cairn-feature-{n}-{short}");
        contexts.insert(name.clone(), dir);
        steps.push(generate::FeatureStep {
            context: name,
            id: node.user_id.clone(),
            container_env: node.metadata.container_env.clone(),
        });
        entries.push(feature_entry(&node.user_id, &node.metadata));
    }
    let label = build_label(p.base.label.as_deref(), &entries, config_entry(&p.config))?;
    let (gen_base, escape) = match (&p.base.dockerfile, &p.config.base) {
        (Some(d), _) => (
            generate::GenBase::Dockerfile {
                text: &d.text,
                stage_ref: d.stage_ref.clone(),
            },
            d.escape,
        ),
        (None, Base::Image(image)) => (generate::GenBase::Image(image), '\\'),
        (None, Base::Dockerfile(b)) => {
            return Err(Error::Usage(format!(
                "{}: the Dockerfile was not read",
                b.dockerfile.display()
            )));
        }
    };
    let ids: Vec<String> = steps.iter().map(|s| s.id.clone()).collect();
    let (text, run_lines) = generate::generate(&generate::Generation {
        base: gen_base,
        features: steps,
        image_user: p.base.user.clone(),
        label,
        escape,
    })
    .map_err(|e| Error::Usage(format!("{}: {e}", p.config.config_file.display())))?;
    tracing::debug!("generated Dockerfile:\n{text}");

    let mut build = b.clone();
    let empty = p.scratch.path().join("empty-context");
    match &p.config.base {
        Base::Dockerfile(cfg) => {
            build.dockerfile = cfg.dockerfile.clone();
            build.context = cfg.context.clone();
            build.build_args = cfg.args.clone();
            for r in &cfg.cache_from {
                let r: Reference = r.parse().map_err(|e| {
                    Error::Usage(format!(
                        "{}: build.cacheFrom `{r}`: {e}",
                        p.config.config_file.display()
                    ))
                })?;
                build.cache_from.push(r);
            }
        }
        Base::Image(_) => {
            std::fs::create_dir_all(&empty).map_err(|e| Error::io("create", &empty, e))?;
            // Names the generated text in messages (nothing is read from it).
            let mut name = p.config.config_file.clone().into_os_string();
            name.push(" (generated Dockerfile)");
            build.dockerfile = PathBuf::from(name);
            build.context = empty.clone();
            build.build_args = BTreeMap::new();
        }
    }
    build.dockerfile_text = Some(text);
    build.cached_only = opts.cached_only;
    if opts.cached_only {
        build.push = false;
    }
    build.named_contexts = contexts;
    build.target = None;
    build.tags = Vec::new();
    if let Some(name) = &opts.image_name {
        build.tags.push(name.clone());
        if b.push {
            build.tags.push(name.with_tag(&p.hash));
        }
    }
    let layout = p.scratch.path().join("image-layout");
    if opts.unpack_to.is_some() && !b.push {
        build.outputs.push(Output::OciLayout {
            dest: layout.clone(),
        });
    }
    let result = crate::build(&build).await.map_err(|e| {
        let line = match &e {
            Error::StepFailed { line, .. } | Error::Sandbox { line, .. } => Some(*line),
            _ => None,
        };
        match line.and_then(|l| run_lines.iter().position(|r| *r == l)) {
            Some(n) => Error::FeatureInstall {
                feature: ids[n].clone(),
                source: Box::new(e),
            },
            None => e,
        }
    })?;
    if opts.cached_only {
        // The engine found the whole image in the step cache (and said so).
        return Ok(DevcontainerResult {
            config_hash: p.hash,
            prebuilt: false,
            manifest_digest: result.manifest_digest,
            pushed: Vec::new(),
            unpacked: None,
        });
    }
    let duration = started.elapsed();
    write_lockfile(opts, &p)?;
    if b.push
        && let Some(name) = &opts.image_name
    {
        // An image the step cache had whole took as long as its recorded build.
        let ms = match result.cached {
            Some(Some(recorded)) => recorded,
            _ => duration.as_millis() as u64,
        };
        record_duration(&p.client, &b.state, name, &p.hash, ms).await?;
    }
    let unpacked = match &opts.unpack_to {
        Some(dest) => {
            let source = match (&opts.image_name, b.push) {
                (Some(name), true) => crate::unpack::UnpackSource::Registry(
                    name.with_digest(result.manifest_digest.clone()),
                ),
                _ => crate::unpack::UnpackSource::OciLayout {
                    dir: layout.clone(),
                    tag: None,
                },
            };
            Some(unpack_into(opts, source, dest).await?)
        }
        None => None,
    };
    Ok(DevcontainerResult {
        config_hash: p.hash,
        prebuilt: false,
        manifest_digest: result.manifest_digest,
        pushed: result.pushed,
        unpacked,
    })
}

/// A config-hash hit: tag `--image-name` (with `--push`), unpack if asked.
async fn use_prebuilt(
    opts: &DevcontainerOptions,
    p: Prepared,
    name: &Reference,
    found: cairn_registry::FetchedManifest,
    saved_ms: Option<u64>,
) -> Result<DevcontainerResult, Error> {
    let saved = saved_ms.map_or_else(|| "?".to_string(), |ms| ms.div_ceil(1000).to_string());
    opts.build.progress.line(&format!(
        "Using pre-built dev container {}@{} (saved ~{saved}s build time)",
        name.name(),
        found.digest
    ));
    write_lockfile(opts, &p)?;
    let mut pushed = Vec::new();
    if opts.build.push {
        p.client
            .put_manifest(name, &found.media_type, &found.bytes)
            .await
            .map_err(Error::registry(format!("tag `{name}`")))?;
        pushed.push(format!("{}@{}", name.name(), found.digest));
    }
    let unpacked = match &opts.unpack_to {
        Some(dest) => {
            let source =
                crate::unpack::UnpackSource::Registry(name.with_digest(found.digest.clone()));
            Some(unpack_into(opts, source, dest).await?)
        }
        None => None,
    };
    Ok(DevcontainerResult {
        config_hash: p.hash,
        prebuilt: true,
        manifest_digest: found.digest,
        pushed,
        unpacked,
    })
}

/// `_CONTAINER_USER` and `_REMOTE_USER`: the config's, else the base label's,
/// else the image user, else root.
fn users_of(p: &Prepared) -> cairn_devcontainer::features::UserEnv {
    let merged = parse_label(p.base.label.as_deref())
        .map(|e| merge_entries(&e))
        .unwrap_or_default();
    let container = p
        .config
        .container_user
        .clone()
        .or(merged.container_user)
        .or_else(|| p.base.user.clone().filter(|u| !u.is_empty()));
    let remote = p.config.remote_user.clone().or(merged.remote_user);
    builtin_env(container.as_deref(), remote.as_deref(), "")
}

/// Copies a fetched Feature folder (small: scripts and metadata).
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    for entry in walkdir::WalkDir::new(from).sort_by_file_name() {
        let entry = entry.map_err(|e| Error::io("read", from, std::io::Error::other(e)))?;
        let rel = entry.path().strip_prefix(from).expect("under its root");
        let dest = to.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&dest).map_err(|e| Error::io("create", &dest, e))?;
        } else if ft.is_symlink() {
            let target =
                std::fs::read_link(entry.path()).map_err(|e| Error::io("read", entry.path(), e))?;
            std::os::unix::fs::symlink(target, &dest).map_err(|e| Error::io("link", &dest, e))?;
        } else if ft.is_file() {
            std::fs::copy(entry.path(), &dest).map_err(|e| Error::io("copy", entry.path(), e))?;
        }
    }
    Ok(())
}

/// Records the build time of the image of `hash` as `REPO:<hash>-meta`.
async fn record_duration(
    client: &Client,
    state: &crate::StateDir,
    repo: &Reference,
    hash: &str,
    duration_ms: u64,
) -> Result<(), Error> {
    let store = state.store()?;
    crate::cache::put_duration_entry(
        client,
        &store,
        &repo.with_tag(&format!("{hash}-meta")),
        duration_ms,
    )
    .await
}

async fn unpack_into(
    opts: &DevcontainerOptions,
    source: crate::unpack::UnpackSource,
    dest: &Path,
) -> Result<(PathBuf, PathBuf), Error> {
    let b = &opts.build;
    let r = crate::unpack::unpack(&crate::unpack::UnpackOptions {
        source,
        dest: dest.to_path_buf(),
        env_file: opts.env_file.clone(),
        state: b.state.clone(),
        insecure_registries: b.insecure_registries.clone(),
        pull_credentials: b.pull_credentials.clone(),
        progress: b.progress.clone(),
    })
    .await?;
    Ok((dest.to_path_buf(), r.env_file))
}
