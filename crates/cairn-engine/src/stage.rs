//! Executing a Dockerfile: the stage graph (independent stages run concurrently),
//! stage bases (images, earlier stages, ONBUILD triggers), sandboxed steps and
//! their layers. Instruction semantics live in `instr.rs`, COPY/ADD inputs in
//! `copy.rs`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use cairn_dockerfile::{CommandForm, Dockerfile, Instruction};
use cairn_oci::{ContentStore, History, ImageConfig, LayerOptions, SourceKind};
use cairn_registry::{Client, Reference};
use cairn_sandbox::{Action, Input, Network, StepDirs, StepOutcome, StepSpec};

use crate::cache::{Cache, DirCache, EntryMeta, LayerRecord, RegistryCache};
use crate::dockerignore::DockerIgnore;
use crate::export::{self, BuildResult};
use crate::keys::{StepKey, base_key, step_key};
use crate::pull::{self, BaseImage, LayerDesc};
use crate::state::{ScratchDir, remove_all};
use crate::{BuildOptions, Error, Platform};

/// The PATH a step gets when the image sets none (as Docker does).
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A read-only layer of a stage's root, unpacked only when a step needs it.
#[derive(Debug, Clone)]
pub(crate) enum Lower {
    /// A directory: a step's upper dir or an unpacked snapshot.
    Dir(PathBuf),
    /// A base image, unpacked on first use.
    Image(Arc<BaseImage>),
    /// A complete root made by the walk snapshotter (a step's copy): everything
    /// below it is in it already.
    Flat(PathBuf),
    /// A layer from the cache, applied on first use.
    Cached {
        /// The key of the step that made it.
        key: StepKey,
        /// The layer.
        layer: LayerRecord,
        /// Which cache has the blob (index into [`Build::caches`]).
        cache: usize,
    },
}

/// The image a stage is building, as it goes.
#[derive(Debug, Clone)]
pub(crate) struct StageState {
    pub config: ImageConfig,
    pub layers: Vec<LayerDesc>,
    /// Read-only layers for the next step, topmost first.
    pub lowers: Vec<Lower>,
    /// The cache key of everything so far.
    pub key: StepKey,
    /// The planning pass: compute keys, run nothing.
    pub planning: bool,
}

/// A step as the planning pass saw it.
#[derive(Debug, Clone)]
pub(crate) struct PlannedStep {
    pub key: StepKey,
    pub label: String,
    pub line: usize,
    pub source: String,
    pub inputs: BTreeMap<String, String>,
}

/// Per-stage variables while its instructions run.
#[derive(Debug, Default)]
pub(crate) struct StageVars {
    /// ARG values in scope.
    pub args: BTreeMap<String, String>,
    /// Whether CMD was set in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

/// Where a step's instruction is, for messages and history.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub stage: usize,
    pub line: usize,
    pub source: String,
}

/// One build in progress. Shared by the concurrently running stages.
pub(crate) struct Build<'a> {
    pub opts: &'a BuildOptions,
    pub df: Dockerfile,
    /// The Dockerfile's text (for error snippets).
    text: String,
    /// The stage being built (set once known).
    target: Option<usize>,
    pub client: Client,
    pub http: reqwest::Client,
    pub store: ContentStore,
    pub platform: Platform,
    pub scratch: ScratchDir,
    pub context: PathBuf,
    pub ignore: DockerIgnore,
    pub global: BTreeMap<String, String>,
    pub cache: Option<Cache>,
    /// Read-only caches consulted after `cache`.
    pub cache_from: Vec<Cache>,
    steps: AtomicUsize,
    pub started: Instant,
    images: tokio::sync::Mutex<HashMap<String, Arc<BaseImage>>>,
    /// ADD URLs downloaded in this build.
    pub downloads: tokio::sync::Mutex<HashMap<String, PathBuf>>,
    /// Unpacked lowers, by image manifest digest or cache key.
    pub(crate) unpacked: tokio::sync::Mutex<HashMap<String, PathBuf>>,
    /// Whether steps use the walk snapshotter (decided on first use).
    pub(crate) walk: std::sync::OnceLock<bool>,
    /// Steps seen by the planning pass, in order.
    pub planned: std::sync::Mutex<Vec<PlannedStep>>,
    /// Cache entries found for planned keys.
    /// (by index into [`Build::caches`]).
    pub hits: std::sync::OnceLock<HashMap<StepKey, (EntryMeta, usize)>>,
    /// Cache entries found unusable during this build.
    bad: std::sync::Mutex<std::collections::HashSet<StepKey>>,
    /// Report counters.
    pub stats: Stats,
}

/// Counters for the end-of-build report.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub hits: AtomicUsize,
    pub misses: AtomicUsize,
    pub saved_ms: std::sync::atomic::AtomicU64,
    pub pulled_bytes: std::sync::atomic::AtomicU64,
    pub pushed_bytes: std::sync::atomic::AtomicU64,
}

/// The line of `text` with a caret under its first word (the instruction).
fn caret_snippet(text: &str, line: usize) -> (usize, String) {
    let Some(src) = text.lines().nth(line.wrapping_sub(1)) else {
        return (1, String::new());
    };
    let indent = src.len() - src.trim_start().len();
    let word = src.split_whitespace().next().unwrap_or("").len().max(1);
    let gutter = " ".repeat(line.to_string().len());
    let snippet = format!(
        "\n {line} | {src}\n {gutter} | {}{}",
        " ".repeat(indent),
        "^".repeat(word)
    );
    (indent + 1, snippet)
}

/// Joins `path` onto `base` lexically (no file system access); `..` stops at `/`.
pub(crate) fn clean_abs(base: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{base}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A COPY source made relative to the context root; `None` if it leaves the context.
pub(crate) fn context_relative(src: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(src).components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(n) => parts.push(n.to_str()?),
        }
    }
    Some(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

pub(crate) fn env_get<'e>(env: &'e [String], key: &str) -> Option<&'e str> {
    env.iter().find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
    })
}

pub(crate) fn env_set(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|kv| kv.split_once('=').is_some_and(|(k, _)| k == key))
    {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

pub(crate) fn form_to_json(f: &CommandForm) -> String {
    match f {
        CommandForm::Exec(v) => serde_json::to_string(v).unwrap_or_default(),
        CommandForm::Shell(s) => s.clone(),
    }
}

pub(crate) fn shorten(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 80 {
        format!("{}…", one_line.chars().take(79).collect::<String>())
    } else {
        one_line
    }
}

impl<'a> Build<'a> {
    pub async fn run(opts: &'a BuildOptions) -> Result<BuildResult, Error> {
        let text = match &opts.dockerfile_text {
            Some(t) => t.clone(),
            None => std::fs::read_to_string(&opts.dockerfile)
                .map_err(|e| Error::io("read Dockerfile", &opts.dockerfile, e))?,
        };
        for (name, dir) in &opts.named_contexts {
            if !dir.is_dir() {
                return Err(Error::Usage(format!(
                    "build context `{name}`: `{}` is not a directory",
                    dir.display()
                )));
            }
        }
        let name = opts.dockerfile.display().to_string();
        let df = cairn_dockerfile::parse(&name, &text)?;
        if opts.push && opts.tags.is_empty() {
            return Err(Error::Usage("--push needs at least one -t/--tag".into()));
        }
        let context = opts
            .context
            .canonicalize()
            .map_err(|e| Error::io("open build context", &opts.context, e))?;
        let ignore = DockerIgnore::load(&opts.dockerfile, &context)
            .map_err(|e| Error::io("read .dockerignore of", &context, e))?;
        opts.state.ensure()?;
        let store = opts.state.store()?;
        let client = opts.registry_client()?;
        let http = crate::fetch::http_client(opts.ca_cert.as_deref())?;
        let scratch = ScratchDir::create(&opts.state.tmp(), "build")?;
        let cache = match (&opts.cache_repo, &opts.layer_cache_dir) {
            (Some(_), Some(_)) => {
                return Err(Error::Usage(
                    "give --cache-repo/--cache-to or --layer-cache-dir, not both".into(),
                ));
            }
            (Some(repo), None) => Some(Cache::Registry(RegistryCache::new(
                client.clone(),
                repo.clone(),
                opts.cache_readonly,
            ))),
            (None, Some(dir)) => Some(Cache::Dir(DirCache::new(dir.clone(), opts.cache_readonly))),
            (None, None) => None,
        };
        let cache_from = opts
            .cache_from
            .iter()
            .map(|repo| Cache::Registry(RegistryCache::new(client.clone(), repo.clone(), true)))
            .collect();
        let mut b = Build {
            opts,
            df,
            text,
            target: None,
            client,
            http,
            store,
            platform: Platform::host(),
            scratch,
            context,
            ignore,
            global: BTreeMap::new(),
            cache,
            cache_from,
            steps: AtomicUsize::new(0),
            started: Instant::now(),
            images: tokio::sync::Mutex::new(HashMap::new()),
            unpacked: tokio::sync::Mutex::new(HashMap::new()),
            walk: std::sync::OnceLock::new(),
            downloads: tokio::sync::Mutex::new(HashMap::new()),
            planned: std::sync::Mutex::new(Vec::new()),
            hits: std::sync::OnceLock::new(),
            stats: Stats::default(),
            bad: std::sync::Mutex::new(std::collections::HashSet::new()),
        };
        b.global = b.global_args()?;
        let target = match &opts.target {
            Some(t) => b
                .stage_ref(b.df.stages.len(), t)
                .ok_or_else(|| Error::Usage(format!("target stage `{t}` not found")))?,
            None => b.df.stages.len().saturating_sub(1),
        };
        b.target = Some(target);
        // Only the stages the target needs, in waves: every stage whose
        // dependencies are built runs concurrently with the others of its wave.
        let mut needed = vec![target];
        let mut i = 0;
        while i < needed.len() {
            for d in b.deps(needed[i])? {
                if !needed.contains(&d) {
                    needed.push(d);
                }
            }
            i += 1;
        }
        // Pass 1: every key, before anything runs.
        let planned = b.schedule(&needed, target, true).await?;
        let final_key = planned.key.clone();
        if let crate::plan::AfterPlan::Done(result) =
            crate::plan::after_planning(&b, &final_key).await?
        {
            return Ok(result);
        }
        // Pass 2: build what the cache does not have.
        let state = b.schedule(&needed, target, false).await?;
        let result = export::finish(&b, state, &final_key).await?;
        crate::plan::report(&b, &result);
        Ok(result)
    }

    /// Builds (or plans) the needed stages in waves of independent stages.
    async fn schedule(
        &self,
        needed: &[usize],
        target: usize,
        planning: bool,
    ) -> Result<StageState, Error> {
        let mut done: HashMap<usize, StageState> = HashMap::new();
        while !done.contains_key(&target) {
            let mut ready = Vec::new();
            for &s in needed {
                if !done.contains_key(&s) && self.deps(s)?.iter().all(|d| done.contains_key(d)) {
                    ready.push(s);
                }
            }
            if ready.is_empty() {
                return Err(Error::Usage(
                    "the stages depend on each other in a cycle".into(),
                ));
            }
            let built = futures_util::future::try_join_all(
                ready
                    .iter()
                    .map(|&s| self.stage_retrying(s, &done, planning)),
            )
            .await?;
            done.extend(ready.into_iter().zip(built));
        }
        Ok(done.remove(&target).expect("target built"))
    }

    /// Every cache, the written one first.
    pub fn caches(&self) -> Vec<&Cache> {
        self.cache.iter().chain(&self.cache_from).collect()
    }

    /// A log line with the time since the build started.
    fn stamped(&self, msg: impl std::fmt::Display) -> String {
        format!("[{:7.3}s] {msg}", self.started.elapsed().as_secs_f64())
    }

    /// Prints a build-log line with the time since the build started.
    pub fn log(&self, msg: impl std::fmt::Display) {
        self.opts.progress.line(&self.stamped(msg));
    }

    /// An error at a Dockerfile line: `file:line:col: message` and the line with a caret.
    pub fn err_at(&self, line: usize, message: impl Into<String>) -> Error {
        let (column, snippet) = caret_snippet(&self.text, line);
        Error::Instruction {
            file: self.df.file_name.clone(),
            line,
            column,
            message: message.into(),
            snippet,
        }
    }

    fn platform_args(&self) -> BTreeMap<String, String> {
        let p = &self.platform;
        let mut m = BTreeMap::new();
        for prefix in ["TARGET", "BUILD"] {
            m.insert(format!("{prefix}PLATFORM"), p.to_string_short());
            m.insert(format!("{prefix}OS"), p.os.clone());
            m.insert(format!("{prefix}ARCH"), p.architecture.clone());
            m.insert(
                format!("{prefix}VARIANT"),
                p.variant.clone().unwrap_or_default(),
            );
        }
        m
    }

    /// Global ARGs (before the first FROM) with `--build-arg` overrides.
    fn global_args(&self) -> Result<BTreeMap<String, String>, Error> {
        let mut scope = self.platform_args();
        for decl in &self.df.global_args {
            let a = &decl.node;
            let value = match self.opts.build_args.get(&a.name) {
                Some(v) => Some(v.clone()),
                None => match &a.default {
                    Some(d) => Some(
                        cairn_dockerfile::expand_word(
                            d,
                            &|k| scope.get(k).cloned(),
                            self.df.escape,
                        )
                        .map_err(|e| self.err_at(decl.line, e.to_string()))?,
                    ),
                    None => None,
                },
            };
            if let Some(v) = value {
                scope.insert(a.name.clone(), v);
            }
        }
        Ok(scope)
    }

    fn expand_global(&self, word: &str) -> String {
        cairn_dockerfile::expand_word(word, &|k| self.global.get(k).cloned(), self.df.escape)
            .unwrap_or_else(|_| word.to_string())
    }

    /// A stage named `name` (or numbered) among the first `before` stages.
    pub fn stage_ref(&self, before: usize, name: &str) -> Option<usize> {
        let lower = name.to_lowercase();
        self.df.stages[..before.min(self.df.stages.len())]
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .map(|s| s.index)
            .or_else(|| name.parse::<usize>().ok().filter(|&i| i < before))
    }

    /// The earlier stages stage `idx` reads: its FROM, `COPY --from`, `RUN --mount from=`.
    fn deps(&self, idx: usize) -> Result<Vec<usize>, Error> {
        let stage = &self.df.stages[idx];
        let mut refs = vec![self.expand_global(&stage.from.node.image)];
        for ins in &stage.instructions {
            match &ins.node {
                Instruction::Copy(c) => refs.extend(c.from.iter().map(|f| self.expand_global(f))),
                Instruction::Run(r) => {
                    for m in &r.mounts {
                        let spec = crate::mounts::parse_mount(&self.expand_global(m))
                            .map_err(|e| self.err_at(ins.line, e))?;
                        refs.extend(spec.from);
                    }
                }
                _ => {}
            }
        }
        let mut deps: Vec<usize> = refs
            .iter()
            .filter(|r| !self.opts.named_contexts.contains_key(*r))
            .filter_map(|r| self.stage_ref(idx, r))
            .collect();
        deps.sort_unstable();
        deps.dedup();
        Ok(deps)
    }

    fn stage_label(&self, index: usize) -> String {
        match &self.df.stages[index].name {
            Some(n) => n.clone(),
            None => format!("stage-{index}"),
        }
    }

    /// Resolves (once per build) an image: manifest and config, no layers.
    pub async fn image(&self, reference: &str, line: usize) -> Result<Arc<BaseImage>, Error> {
        let mut images = self.images.lock().await;
        if let Some(i) = images.get(reference) {
            return Ok(i.clone());
        }
        let parsed: Reference = reference
            .parse()
            .map_err(|e| self.err_at(line, format!("invalid image `{reference}`: {e}")))?;
        let image = pull::resolve(&self.client, &self.store, &parsed, &self.platform)
            .await
            .map_err(|e| self.err_at(line, e.to_string()))?;
        let image = Arc::new(image);
        images.insert(reference.to_string(), image.clone());
        Ok(image)
    }

    /// The cache-key identity of what `--from` names: a stage's key or an
    /// image's manifest digest.
    pub async fn source_identity(
        &self,
        stage: usize,
        from: &str,
        done: &HashMap<usize, StageState>,
        line: usize,
    ) -> Result<String, Error> {
        if let Some(dir) = self.opts.named_contexts.get(from) {
            let digest = crate::keys::tree_digest(dir, ".", &|_| false)
                .map_err(|e| self.err_at(line, format!("build context `{from}`: {e}")))?;
            return Ok(format!("context:{digest}"));
        }
        if let Some(dep) = self.stage_ref(stage, from) {
            let st = done
                .get(&dep)
                .ok_or_else(|| self.err_at(line, format!("stage `{from}` is not built")))?;
            return Ok(format!("stage:{}", st.key));
        }
        Ok(format!(
            "image:{}",
            self.image(from, line).await?.manifest_digest
        ))
    }

    /// The read-only view of a stage or image named by `--from`, unpacked.
    pub async fn source_layers(
        &self,
        stage: usize,
        from: &str,
        done: &HashMap<usize, StageState>,
        line: usize,
    ) -> Result<Vec<PathBuf>, Error> {
        if let Some(dir) = self.opts.named_contexts.get(from) {
            return Ok(vec![dir.clone()]);
        }
        let lowers = if let Some(dep) = self.stage_ref(stage, from) {
            done.get(&dep)
                .ok_or_else(|| self.err_at(line, format!("stage `{from}` is not built")))?
                .lowers
                .clone()
        } else {
            vec![Lower::Image(self.image(from, line).await?)]
        };
        if self.walk_mode() {
            // One flat directory: bound into the step, no overlay.
            return Ok(vec![self.flatten(&lowers, line).await?]);
        }
        self.materialize(&lowers, line).await
    }

    /// Makes every lower a directory: unpacks base images and applies cached
    /// layers (each on top of the ones below it), once per build; returns them
    /// topmost first.
    pub async fn materialize(&self, lowers: &[Lower], line: usize) -> Result<Vec<PathBuf>, Error> {
        // A flat root holds everything below it.
        let lowers = match lowers.iter().position(|l| matches!(l, Lower::Flat(_))) {
            Some(i) => &lowers[..=i],
            None => lowers,
        };
        // Download every cached layer this needs at once; apply them in order below.
        let wanted: Vec<(&StepKey, &LayerRecord, usize)> = {
            let memo = self.unpacked.lock().await;
            lowers
                .iter()
                .filter_map(|l| match l {
                    Lower::Cached { key, layer, cache } if !memo.contains_key(key.hex()) => {
                        Some((key, layer, *cache))
                    }
                    _ => None,
                })
                .collect()
        };
        crate::at_most(
            crate::TRANSFERS,
            wanted
                .into_iter()
                .map(|(key, layer, cache)| self.fetch_cached(key, layer, cache)),
        )
        .await?;
        let mut dirs: Vec<PathBuf> = Vec::new(); // bottom first
        for lower in lowers.iter().rev() {
            let dir = match lower {
                Lower::Dir(p) | Lower::Flat(p) => p.clone(),
                Lower::Image(img) => {
                    let id = img.manifest_digest.to_string();
                    let mut memo = self.unpacked.lock().await;
                    if let Some(p) = memo.get(&id) {
                        p.clone()
                    } else {
                        let Some(p) =
                            pull::unpack_image(&self.client, &self.store, &self.opts.state, img)
                                .await
                                .map_err(|e| self.err_at(line, e.to_string()))?
                        else {
                            continue;
                        };
                        memo.insert(id, p.clone());
                        p
                    }
                }
                Lower::Cached { key, layer, cache } => {
                    let mut memo = self.unpacked.lock().await;
                    if let Some(p) = memo.get(key.hex()) {
                        p.clone()
                    } else {
                        let p = self.apply_cached(key, layer, *cache, &dirs, line).await?;
                        memo.insert(key.hex().to_string(), p.clone());
                        p
                    }
                }
            };
            dirs.push(dir);
        }
        dirs.reverse();
        Ok(dirs)
    }

    /// Downloads (verified) a cached layer's blob into the store, unless it is there.
    pub(crate) async fn fetch_cached(
        &self,
        key: &StepKey,
        layer: &LayerRecord,
        cache: usize,
    ) -> Result<cairn_oci::Digest, Error> {
        let corrupt = |reason: String| Error::CacheCorrupt {
            key: key.hex().to_string(),
            reason,
        };
        let digest: cairn_oci::Digest = layer
            .digest
            .parse()
            .map_err(|e| corrupt(format!("bad digest: {e}")))?;
        if !self.store.contains(&digest) {
            self.caches()[cache]
                .fetch_blob(&self.client, &self.store, &digest)
                .await
                .map_err(|e| corrupt(e.to_string()))?;
            self.stats
                .pulled_bytes
                .fetch_add(layer.size, Ordering::Relaxed);
        }
        Ok(digest)
    }

    /// Downloads a cached layer and applies it in a sandbox over `below` (bottom
    /// first): the upper dir is the layer in overlay form.
    async fn apply_cached(
        &self,
        key: &StepKey,
        layer: &LayerRecord,
        cache: usize,
        below: &[PathBuf],
        line: usize,
    ) -> Result<PathBuf, Error> {
        let digest = self.fetch_cached(key, layer, cache).await?;
        let dir = self.scratch_dir("cached")?;
        let blob = self.store.blob_path(&digest);
        let spec = StepSpec {
            lowers: below.iter().rev().cloned().collect(),
            root_dir: None,
            dirs: StepDirs::under(&dir),
            hostname: "cairn".into(),
            network: Network::None,
            inputs: vec![Input {
                source: cairn_sandbox::InputSource::Host(blob),
                subpath: None,
                target: format!("{}/layer", cairn_sandbox::INPUT_ROOT),
                is_file: true,
                readonly: true,
            }],
            action: Action::ApplyLayer {
                blob: format!("{}/layer", cairn_sandbox::INPUT_ROOT),
            },
        };
        let log = |_s: cairn_sandbox::Stream, l: &str| {
            self.opts.progress.line(&format!("  apply | {l}"));
        };
        match cairn_sandbox::run_step(&spec, &log, None).await {
            Ok(StepOutcome::Exited(0)) => {}
            other => {
                return Err(self.err_at(
                    line,
                    format!("cannot apply cached layer {digest}: {other:?}"),
                ));
            }
        }
        remove_step_scratch(&spec.dirs)?;
        Ok(spec.dirs.upper)
    }

    /// A stage; rebuilt without an entry when that cache entry turns out to be
    /// corrupt or incomplete.
    async fn stage_retrying(
        &self,
        index: usize,
        done: &HashMap<usize, StageState>,
        planning: bool,
    ) -> Result<StageState, Error> {
        let limit = self.planned.lock().expect("not poisoned").len() + 2;
        for _ in 0..limit {
            match self.stage(index, done, planning).await {
                Err(Error::CacheCorrupt { key, reason }) => {
                    tracing::warn!("ignoring cache entry {key} ({reason}); rebuilding its step");
                    self.opts.progress.line(&format!(
                        "warning: ignoring cache entry {key}: {reason}; rebuilding"
                    ));
                    if let Some(k) = StepKey::from_hex(&key) {
                        self.bad.lock().expect("not poisoned").insert(k);
                    }
                }
                other => return other,
            }
        }
        self.stage(index, done, planning).await
    }

    async fn stage(
        &self,
        index: usize,
        done: &HashMap<usize, StageState>,
        planning: bool,
    ) -> Result<StageState, Error> {
        let stage = &self.df.stages[index];
        let label = self.stage_label(index);
        let global = &self.global;
        let from = stage
            .from
            .node
            .expanded(&|k| global.get(k).cloned(), self.df.escape)
            .map_err(|e| self.err_at(stage.from.line, e.to_string()))?;
        if from.platform.is_some() {
            tracing::warn!(
                "{}:{}: FROM --platform is not supported yet; building for {}",
                self.df.file_name,
                stage.from.line,
                self.platform.to_string_short()
            );
        }
        let image = from.image.clone();
        if !planning {
            self.log(format_args!("[{label}] FROM {image}"));
        }
        let platform = self.platform.to_string_short();
        let compression = self.opts.compression.key_id();
        let mut state = if let Some(dep) = self.stage_ref(index, &image) {
            let mut st = done
                .get(&dep)
                .cloned()
                .expect("dependencies are built first");
            st.key = base_key(&format!("stage:{}", st.key), &platform, &compression);
            st
        } else if image == "scratch" {
            StageState {
                config: ImageConfig {
                    architecture: self.platform.architecture.clone(),
                    os: self.platform.os.clone(),
                    variant: self.platform.variant.clone(),
                    ..Default::default()
                },
                layers: vec![],
                lowers: vec![],
                key: base_key("scratch", &platform, &compression),
                planning,
            }
        } else {
            let base = self.image(&image, stage.from.line).await?;
            StageState {
                config: base.config.clone(),
                layers: base.layers.clone(),
                key: base_key(
                    &format!("image:{}", base.manifest_digest),
                    &platform,
                    &compression,
                ),
                lowers: vec![Lower::Image(base)],
                planning,
            }
        };
        state.planning = planning;
        let mut vars = StageVars::default();
        // ONBUILD triggers of the base run first, then are gone from the image.
        let triggers = std::mem::take(&mut state.config.config.on_build);
        for (t, trigger) in triggers.iter().enumerate() {
            let what = format!(
                "{} (ONBUILD trigger {} of `{image}`)",
                self.df.file_name,
                t + 1
            );
            let parsed = cairn_dockerfile::parse(&what, &format!("FROM scratch\n{trigger}\n"))
                .map_err(|e| self.err_at(stage.from.line, e.to_string()))?;
            for ins in &parsed.stages[0].instructions {
                let site = Site {
                    stage: index,
                    line: stage.from.line,
                    source: format!("ONBUILD {}", ins.source),
                };
                if !planning {
                    self.log(format_args!("[{label} onbuild] {}", shorten(&ins.source)));
                }
                self.instruction(&mut state, &mut vars, &site, &ins.node, done)
                    .await?;
            }
        }
        let total = stage.instructions.len();
        for (i, ins) in stage.instructions.iter().enumerate() {
            let site = Site {
                stage: index,
                line: ins.line,
                source: ins.source.clone(),
            };
            if !planning {
                let text = shorten(&ins.source);
                let line = self.stamped(format_args!("[{label} {}/{total}] {text}", i + 1));
                self.opts.progress.step(&label, i + 1, total, &text, &line);
            }
            self.instruction(&mut state, &mut vars, &site, &ins.node, done)
                .await?;
        }
        if Some(index) == self.target && !self.opts.labels.is_empty() {
            let site = Site {
                stage: index,
                line: 0,
                source: "--label".into(),
            };
            let labels = Instruction::Label(self.opts.labels.clone());
            self.instruction(&mut state, &mut vars, &site, &labels, done)
                .await?;
        }
        if !planning {
            let line = self.stamped(format_args!("[{label}] done"));
            self.opts.progress.stage_done(&label, &line);
        }
        Ok(state)
    }

    /// A fresh directory in the build's scratch space.
    pub fn scratch_dir(&self, kind: &str) -> Result<PathBuf, Error> {
        let n = self.steps.fetch_add(1, Ordering::Relaxed) + 1;
        let dir = self.scratch.path().join(format!("{kind}-{n}"));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        Ok(dir)
    }

    /// One sandboxed step: keyed by `material` after the stage's key so far; in
    /// the planning pass only recorded; a cache hit reuses the entry's layer
    /// (unpacked only if a later step needs it); otherwise it runs in the sandbox,
    /// its upper dir becomes a layer and, with a writable cache, an entry.
    #[allow(clippy::too_many_arguments)]
    pub async fn step(
        &self,
        st: &mut StageState,
        site: &Site,
        action: Action,
        network: Network,
        inputs: Vec<Input>,
        history: History,
        material: serde_json::Value,
    ) -> Result<(), Error> {
        let key = step_key(&st.key, &self.platform.to_string_short(), &material);
        let label = self.stage_label(site.stage);
        if st.planning {
            let inputs = crate::plan::input_digests(&st.key, &material);
            self.planned
                .lock()
                .expect("not poisoned")
                .push(PlannedStep {
                    key: key.clone(),
                    label,
                    line: site.line,
                    source: site.source.clone(),
                    inputs,
                });
            st.key = key;
            return Ok(());
        }
        let bad = self.bad.lock().expect("not poisoned").contains(&key);
        if let Some((entry, cache)) = self.hits.get().and_then(|h| h.get(&key)).filter(|_| !bad) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            self.stats
                .saved_ms
                .fetch_add(entry.duration_ms, Ordering::Relaxed);
            self.log(format_args!("[{label}] CACHED {}", shorten(&site.source)));
            st.key = key.clone();
            match &entry.layer {
                None => st.config.history.push(History {
                    empty_layer: Some(true),
                    ..history
                }),
                Some(l) => {
                    let source = self.caches()[*cache].repo().cloned();
                    let desc = crate::plan::layer_desc(l, source)?;
                    if source_is_local(self.caches()[*cache]) {
                        // A directory cache's blob is copied in now: pushes and
                        // outputs then find it in the store.
                        self.fetch_cached(&key, l, *cache).await?;
                    }
                    st.config.rootfs.diff_ids.push(desc.diff_id.clone());
                    st.layers.push(desc);
                    st.config.history.push(history);
                    st.lowers.insert(
                        0,
                        Lower::Cached {
                            key,
                            layer: l.clone(),
                            cache: *cache,
                        },
                    );
                }
            }
            return Ok(());
        }
        if self.cache.is_some() {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
        }
        let started = Instant::now();
        let sandbox_err = |source| Error::Sandbox {
            file: self.df.file_name.clone(),
            line: site.line,
            source: Box::new(source),
        };
        let walk = self.walk_mode();
        let (lowers, walk_dirs) = if walk {
            let parent = self.flatten(&st.lowers, site.line).await?;
            let child = self.walk_copy(&parent, site.line)?;
            (Vec::new(), Some((parent, child)))
        } else {
            (self.materialize(&st.lowers, site.line).await?, None)
        };
        let dir = self.scratch_dir("step")?;
        let spec = StepSpec {
            lowers,
            root_dir: walk_dirs.as_ref().map(|(_, child)| child.clone()),
            dirs: StepDirs::under(&dir),
            hostname: "cairn".into(),
            network,
            inputs,
            action,
        };
        let walk_root = match walk_dirs {
            Some((parent, child)) => Some(crate::walk::WalkRoot::prepare(
                &spec,
                parent,
                child,
                &sandbox_err,
            )?),
            None => None,
        };
        let log = |_s: cairn_sandbox::Stream, line: &str| {
            self.opts.progress.line(&format!("  {label} | {line}"));
        };
        let outcome = cairn_sandbox::run_step(&spec, &log, self.opts.step_timeout)
            .await
            .map_err(sandbox_err)?;
        let failed = match outcome {
            StepOutcome::Exited(0) => None,
            StepOutcome::Exited(c) => Some(format!("exit code {c}")),
            StepOutcome::Signaled(s) => Some(format!("killed by signal {s}")),
            StepOutcome::TimedOut(d) => Some(format!(
                "timed out after {}s (--step-timeout); all its processes were killed",
                d.as_secs_f64()
            )),
        };
        if let Some(outcome) = failed {
            return Err(Error::StepFailed {
                file: self.df.file_name.clone(),
                line: site.line,
                instruction: shorten(&site.source),
                outcome,
            });
        }
        // Only the upper dir is kept (the walk's copy instead, in walk mode): it
        // is the next step's lower.
        remove_step_scratch(&spec.dirs)?;
        let upper = spec.dirs.upper.clone();
        let made = match walk_root {
            Some(w) => {
                remove_all(&upper).map_err(|e| Error::io("remove", &upper, e))?;
                let (parent, child, recreated) = w.finish(&sandbox_err)?;
                let empty = tokio::task::block_in_place(|| {
                    cairn_oci::diff_is_empty(&parent, &child, &recreated)
                })
                .map_err(Error::oci("compare the step's root with its parent"))?;
                if empty {
                    remove_all(&child).map_err(|e| Error::io("remove", &child, e))?;
                    None
                } else {
                    let layer = self.write_layer(&child, Some((&parent, &recreated)))?;
                    Some((layer, Lower::Flat(child)))
                }
            }
            None if cairn_oci::layer_is_empty(&upper)
                .map_err(Error::oci("read the step's changes"))? =>
            {
                None
            }
            None => Some((self.write_layer(&upper, None)?, Lower::Dir(upper))),
        };
        let layer = match made {
            None => {
                st.config.history.push(History {
                    empty_layer: Some(true),
                    ..history.clone()
                });
                None
            }
            Some((layer, lower)) => {
                st.config.rootfs.diff_ids.push(layer.diff_id.clone());
                st.layers.push(layer.clone());
                st.config.history.push(history.clone());
                st.lowers.insert(0, lower);
                Some(layer)
            }
        };
        if let Some(cache) = &self.cache {
            let meta = EntryMeta {
                scheme: "cairn-cache-entry/v1".into(),
                key: key.hex().to_string(),
                layer: layer.as_ref().map(|l| LayerRecord {
                    media_type: l.media_type.clone(),
                    digest: l.digest.to_string(),
                    size: l.size,
                    diff_id: l.diff_id.to_string(),
                }),
                created_by: history.created_by.clone().unwrap_or_default(),
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                inputs: crate::plan::input_digests(&st.key, &material),
                created_unix: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            };
            let path = layer.as_ref().map(|l| self.store.blob_path(&l.digest));
            match cache.put(&key, &meta, path.as_deref(), &self.store).await {
                Err(e) => {
                    tracing::warn!("could not write the cache entry of line {}: {e}", site.line)
                }
                Ok(()) if !cache.readonly() => {
                    let size = layer.as_ref().map_or(0, |l| l.size);
                    self.stats.pushed_bytes.fetch_add(size, Ordering::Relaxed);
                    crate::plan::record_position(cache, &label, site.line, &key).await;
                }
                Ok(()) => {}
            }
        }
        st.key = key;
        Ok(())
    }

    /// The layer of an overlay upper dir, or (`diff`: the parent tree and the
    /// recreated directories) of a walk step's root.
    fn write_layer(
        &self,
        upper: &Path,
        diff: Option<(&Path, &std::collections::HashSet<PathBuf>)>,
    ) -> Result<LayerDesc, Error> {
        let opts = LayerOptions {
            source_date_epoch: self.opts.source_date_epoch,
            gzip_level: self.opts.compression.level,
            compression: self.opts.compression.codec,
            ..Default::default()
        };
        let mut info = None;
        let (digest, size) = tokio::task::block_in_place(|| {
            self.store.write_blob(|w| {
                info = Some(match diff {
                    Some((parent, recreated)) => {
                        cairn_oci::write_diff_layer_with(parent, upper, w, &opts, recreated)?
                    }
                    None => cairn_oci::write_layer(upper, SourceKind::OverlayUpper, w, &opts)?,
                });
                Ok(())
            })
        })
        .map_err(Error::oci(format!(
            "write the layer of `{}`",
            upper.display()
        )))?;
        let info = info.expect("write_blob ran the closure");
        Ok(LayerDesc {
            media_type: info.media_type.to_string(),
            digest,
            size,
            diff_id: info.diff_id,
            source: None,
        })
    }
}

fn source_is_local(c: &Cache) -> bool {
    matches!(c, Cache::Dir(_))
}

/// Removes what a finished step leaves besides its upper dir.
fn remove_step_scratch(dirs: &StepDirs) -> Result<(), Error> {
    for d in dirs.scratch() {
        remove_all(d).map_err(|e| Error::io("remove", d, e))?;
    }
    Ok(())
}

/// The argv of a command: exec form as written, shell form through SHELL
/// (default `/bin/sh -c`).
pub(crate) fn argv_of(shell: Option<&[String]>, form: &CommandForm) -> Vec<String> {
    match form {
        CommandForm::Exec(v) => v.clone(),
        CommandForm::Shell(s) => {
            let mut argv =
                shell.map_or_else(|| vec!["/bin/sh".into(), "-c".into()], <[String]>::to_vec);
            argv.push(s.clone());
            argv
        }
    }
}

/// Go `filepath.Match`-style matching of one path component (`*`, `?`, `[...]`).
pub(crate) fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some(('[', rest)) => {
                let Some(end) = rest.iter().position(|&c| c == ']') else {
                    return n.first() == Some(&'[') && go(rest, &n[1..]);
                };
                let (class, after) = (&rest[..end], &rest[end + 1..]);
                let Some(&c) = n.first() else { return false };
                let (neg, class) = match class.split_first() {
                    Some(('^' | '!', cl)) => (true, cl),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != neg && go(after, &n[1..])
            }
            Some(('\\', rest)) if !rest.is_empty() => {
                n.first() == Some(&rest[0]) && go(&rest[1..], &n[1..])
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean_abs("/", "app"), "/app");
        assert_eq!(clean_abs("/app", "../x/./y/"), "/x/y");
        assert_eq!(clean_abs("/app", "/abs"), "/abs");
        assert_eq!(clean_abs("/", "../../.."), "/");
    }

    #[test]
    fn context_paths_never_leave_the_context() {
        assert_eq!(context_relative("a/b").as_deref(), Some("a/b"));
        assert_eq!(context_relative("/a/./b").as_deref(), Some("a/b"));
        assert_eq!(context_relative(".").as_deref(), Some("."));
        assert_eq!(context_relative("a/../b").as_deref(), Some("b"));
        assert_eq!(context_relative("../etc/passwd"), None);
        assert_eq!(context_relative("a/../../x"), None);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*.txt", "a.txt"));
        assert!(!wildcard("*.txt", "a.txt.bak"));
        assert!(wildcard("f?le", "file"));
        assert!(wildcard("[a-c]x", "bx"));
        assert!(!wildcard("[^a-c]x", "bx"));
        assert!(wildcard("\\*", "*"));
        assert!(!wildcard("\\*", "a"));
    }

    #[test]
    fn env_updates_in_place() {
        let mut env = vec!["A=1".to_string(), "PATH=/bin".to_string()];
        env_set(&mut env, "A", "2");
        env_set(&mut env, "B", "x=y");
        assert_eq!(env, ["A=2", "PATH=/bin", "B=x=y"]);
        assert_eq!(env_get(&env, "B"), Some("x=y"));
        assert_eq!(env_get(&env, "C"), None);
    }
}
