//! Executing a Dockerfile: stages, instructions, sandboxed steps, layers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use cairn_dockerfile::{CommandForm, Dockerfile, Instruction, Located};
use cairn_oci::{ContentStore, History, ImageConfig, LayerOptions, SourceKind};
use cairn_registry::{Client, ClientOptions, Reference};
use cairn_sandbox::{Action, CopySpec, ExecSpec, Network, StepDirs, StepOutcome, StepSpec};

use crate::export::{self, BuildResult};
use crate::pull::{self, LayerDesc};
use crate::state::{ScratchDir, remove_all};
use crate::time::rfc3339;
use crate::{BuildOptions, Error, Platform};

/// The PATH a step gets when the image sets none (as Docker does).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The image a stage is building, as it goes.
#[derive(Debug, Clone)]
pub(crate) struct StageState {
    pub config: ImageConfig,
    pub layers: Vec<LayerDesc>,
    /// Read-only dirs for the next step, topmost first.
    pub lowers: Vec<PathBuf>,
}

/// One build in progress.
pub(crate) struct Build<'a> {
    opts: &'a BuildOptions,
    df: Dockerfile,
    client: Client,
    store: ContentStore,
    platform: Platform,
    scratch: ScratchDir,
    context: PathBuf,
    global: BTreeMap<String, String>,
    built: HashMap<usize, StageState>,
    steps: usize,
}

fn loc_err<T>(df: &Dockerfile, l: &Located<T>, message: impl Into<String>) -> Error {
    Error::Instruction {
        file: df.file_name.clone(),
        line: l.line,
        message: message.into(),
    }
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

fn env_get<'e>(env: &'e [String], key: &str) -> Option<&'e str> {
    env.iter().find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
    })
}

fn env_set(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|kv| kv.split_once('=').is_some_and(|(k, _)| k == key))
    {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

fn form_to_json(f: &CommandForm) -> String {
    match f {
        CommandForm::Exec(v) => serde_json::to_string(v).unwrap_or_default(),
        CommandForm::Shell(s) => s.clone(),
    }
}

fn shorten(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 80 {
        format!("{}…", one_line.chars().take(79).collect::<String>())
    } else {
        one_line
    }
}

impl<'a> Build<'a> {
    pub async fn run(opts: &'a BuildOptions) -> Result<BuildResult, Error> {
        let text = std::fs::read_to_string(&opts.dockerfile)
            .map_err(|e| Error::io("read Dockerfile", &opts.dockerfile, e))?;
        let name = opts.dockerfile.display().to_string();
        let df = cairn_dockerfile::parse(&name, &text)?;
        if opts.push && opts.tags.is_empty() {
            return Err(Error::Usage("--push needs at least one -t/--tag".into()));
        }
        let context = opts
            .context
            .canonicalize()
            .map_err(|e| Error::io("open build context", &opts.context, e))?;
        opts.state.ensure()?;
        let store = ContentStore::open(opts.state.content())
            .map_err(Error::oci("open the content store"))?;
        let client = Client::new(ClientOptions {
            insecure_registries: opts.insecure_registries.clone(),
            ..Default::default()
        })
        .map_err(Error::registry("set up the registry client"))?;
        let platform = Platform::host();
        let scratch = ScratchDir::create(&opts.state.tmp(), "build")?;
        let mut b = Build {
            opts,
            global: BTreeMap::new(),
            df,
            client,
            store,
            platform,
            scratch,
            context,
            built: HashMap::new(),
            steps: 0,
        };
        b.global = b.global_args()?;
        let target = match &opts.target {
            Some(t) => {
                b.df.stages
                    .iter()
                    .find(|s| s.name.as_deref() == Some(t.to_lowercase().as_str()))
                    .map(|s| s.index)
                    .ok_or_else(|| Error::Usage(format!("target stage `{t}` not found")))?
            }
            None => b.df.stages.len().saturating_sub(1),
        };
        let state = b.stage(target).await?;
        export::finish(&b.client, &b.store, b.opts, state).await
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
                        .map_err(|e| loc_err(&self.df, decl, e.to_string()))?,
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

    async fn stage(&mut self, index: usize) -> Result<StageState, Error> {
        if let Some(s) = self.built.get(&index) {
            return Ok(s.clone());
        }
        let stage = self.df.stages[index].clone();
        let global = self.global.clone();
        let from = stage
            .from
            .node
            .expanded(&|k| global.get(k).cloned(), self.df.escape)
            .map_err(|e| loc_err(&self.df, &stage.from, e.to_string()))?;
        if from.platform.is_some() {
            tracing::warn!(
                "{}:{}: FROM --platform is not supported yet; building for {}",
                self.df.file_name,
                stage.from.line,
                self.platform.to_string_short()
            );
        }
        let image = from.image.clone();
        let earlier = self.df.stages[..index]
            .iter()
            .find(|s| s.name.as_deref() == Some(image.to_lowercase().as_str()))
            .map(|s| s.index);
        eprintln!("[{}] FROM {image}", self.stage_label(index));
        let mut state = if let Some(dep) = earlier {
            Box::pin(self.stage(dep)).await?
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
            }
        } else {
            let reference: Reference = image.parse().map_err(|e| {
                loc_err(
                    &self.df,
                    &stage.from,
                    format!("invalid image `{image}`: {e}"),
                )
            })?;
            let base = pull::pull(
                &self.client,
                &self.store,
                &self.opts.state,
                &reference,
                &self.platform,
            )
            .await
            .map_err(|e| loc_err(&self.df, &stage.from, e.to_string()))?;
            StageState {
                config: base.config,
                layers: base.layers,
                lowers: base.snapshot.into_iter().collect(),
            }
        };
        let mut args: BTreeMap<String, String> = BTreeMap::new();
        let mut cmd_set = false;
        let total = stage.instructions.len();
        for (i, ins) in stage.instructions.iter().enumerate() {
            eprintln!(
                "[{} {}/{}] {}",
                self.stage_label(index),
                i + 1,
                total,
                shorten(&ins.source)
            );
            self.instruction(&mut state, &mut args, &mut cmd_set, ins)
                .await?;
        }
        self.built.insert(index, state.clone());
        Ok(state)
    }

    fn stage_label(&self, index: usize) -> String {
        match &self.df.stages[index].name {
            Some(n) => n.clone(),
            None => format!("stage-{index}"),
        }
    }

    async fn instruction(
        &mut self,
        st: &mut StageState,
        args: &mut BTreeMap<String, String>,
        cmd_set: &mut bool,
        ins: &Located<Instruction>,
    ) -> Result<(), Error> {
        let escape = self.df.escape;
        let env = st.config.config.env.clone();
        let lookup = |k: &str| {
            env_get(&env, k)
                .map(str::to_string)
                .or_else(|| args.get(k).cloned())
        };
        let expanded = ins
            .node
            .expanded(&lookup, escape)
            .map_err(|e| loc_err(&self.df, ins, e.to_string()))?;
        let created_by = |s: String| History {
            created: Some(rfc3339(self.opts.source_date_epoch)),
            created_by: Some(s),
            comment: Some("buildkit.dockerfile.v0".into()),
            ..Default::default()
        };
        let cc = &mut st.config.config;
        let empty = |h: History| History {
            empty_layer: Some(true),
            ..h
        };
        match expanded {
            Instruction::Env(pairs) => {
                for (k, v) in &pairs {
                    env_set(&mut cc.env, k, v);
                }
                let text = pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                st.config
                    .history
                    .push(empty(created_by(format!("ENV {text}"))));
            }
            Instruction::Arg(decls) => {
                for a in decls {
                    let v = self
                        .opts
                        .build_args
                        .get(&a.name)
                        .cloned()
                        .or(a.default.clone())
                        .or_else(|| self.global.get(&a.name).cloned());
                    if let Some(v) = v {
                        args.insert(a.name.clone(), v);
                    }
                }
            }
            Instruction::Label(pairs) => {
                for (k, v) in &pairs {
                    cc.labels.insert(k.clone(), v.clone());
                }
                let text = pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                st.config
                    .history
                    .push(empty(created_by(format!("LABEL {text}"))));
            }
            Instruction::User(u) => {
                cc.user = Some(u.clone());
                st.config
                    .history
                    .push(empty(created_by(format!("USER {u}"))));
            }
            Instruction::Cmd(form) => {
                cc.cmd = Some(argv_of(cc.shell.as_deref(), &form));
                *cmd_set = true;
                st.config
                    .history
                    .push(empty(created_by(format!("CMD {}", form_to_json(&form)))));
            }
            Instruction::Entrypoint(form) => {
                cc.entrypoint = Some(argv_of(cc.shell.as_deref(), &form));
                if !*cmd_set {
                    cc.cmd = None;
                }
                st.config.history.push(empty(created_by(format!(
                    "ENTRYPOINT {}",
                    form_to_json(&form)
                ))));
            }
            Instruction::Expose(ports) => {
                for p in &ports {
                    let key = if p.contains('/') {
                        p.clone()
                    } else {
                        format!("{p}/tcp")
                    };
                    cc.exposed_ports.insert(key, serde_json::json!({}));
                }
                st.config
                    .history
                    .push(empty(created_by(format!("EXPOSE {}", ports.join(" ")))));
            }
            Instruction::Volume(vols) => {
                for v in &vols {
                    cc.volumes.insert(v.clone(), serde_json::json!({}));
                }
                st.config
                    .history
                    .push(empty(created_by(format!("VOLUME {}", vols.join(" ")))));
            }
            Instruction::StopSignal(s) => {
                cc.stop_signal = Some(s.clone());
                st.config
                    .history
                    .push(empty(created_by(format!("STOPSIGNAL {s}"))));
            }
            Instruction::Shell(argv) => {
                cc.shell = Some(argv.clone());
                st.config.history.push(empty(created_by(format!(
                    "SHELL {}",
                    serde_json::to_string(&argv).unwrap_or_default()
                ))));
            }
            Instruction::Workdir(w) => {
                let current = cc.working_dir.clone().unwrap_or_else(|| "/".into());
                let path = clean_abs(&current, &w);
                cc.working_dir = Some(path.clone());
                self.step(
                    st,
                    ins,
                    Action::Mkdir { path: path.clone() },
                    Network::None,
                    false,
                    created_by(format!("WORKDIR {path}")),
                )
                .await?;
            }
            Instruction::Copy(c) => {
                if c.from.is_some() || !c.heredocs.is_empty() || c.parents || !c.exclude.is_empty()
                {
                    return Err(loc_err(
                        &self.df,
                        ins,
                        "COPY --from, --parents, --exclude and heredoc sources are not supported yet",
                    ));
                }
                let chmod = match &c.chmod {
                    Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| {
                        loc_err(
                            &self.df,
                            ins,
                            format!("invalid --chmod value `{m}` (octal expected)"),
                        )
                    })?),
                    None => None,
                };
                let mut sources = Vec::new();
                for s in &c.sources {
                    sources.extend(self.context_sources(ins, s)?);
                }
                let workdir = cc.working_dir.clone().unwrap_or_else(|| "/".into());
                let mut dest = clean_abs(&workdir, &c.dest);
                if c.dest.ends_with('/') && dest != "/" {
                    dest.push('/');
                }
                let text = format!("COPY {} {} # buildkit", c.sources.join(" "), c.dest);
                self.step(
                    st,
                    ins,
                    Action::Copy(CopySpec {
                        sources,
                        dest,
                        chown: c.chown.clone(),
                        chmod,
                    }),
                    Network::None,
                    true,
                    created_by(text),
                )
                .await?;
            }
            Instruction::Run(r) => {
                if !r.mounts.is_empty() || !r.heredocs.is_empty() {
                    return Err(loc_err(
                        &self.df,
                        ins,
                        "RUN --mount and RUN heredocs are not supported yet",
                    ));
                }
                let network = match r.network.as_deref() {
                    None | Some("default") => self.opts.network,
                    Some("none") => Network::None,
                    Some("host") => Network::Host,
                    Some(other) => {
                        return Err(loc_err(
                            &self.df,
                            ins,
                            format!("unknown RUN --network value `{other}`"),
                        ));
                    }
                };
                let argv = argv_of(st.config.config.shell.as_deref(), &r.command);
                let mut env = st.config.config.env.clone();
                for (k, v) in args.iter() {
                    if env_get(&env, k).is_none() {
                        env.push(format!("{k}={v}"));
                    }
                }
                if env_get(&env, "PATH").is_none() {
                    env.push(format!("PATH={DEFAULT_PATH}"));
                }
                let exec = ExecSpec {
                    argv: argv.clone(),
                    env,
                    cwd: st
                        .config
                        .config
                        .working_dir
                        .clone()
                        .unwrap_or_else(|| "/".into()),
                    user: st.config.config.user.clone().unwrap_or_default(),
                };
                let text = match &r.command {
                    CommandForm::Shell(_) => format!("RUN {} # buildkit", argv.join(" ")),
                    CommandForm::Exec(v) => format!(
                        "RUN {} # buildkit",
                        serde_json::to_string(v).unwrap_or_default()
                    ),
                };
                self.step(
                    st,
                    ins,
                    Action::Exec(exec),
                    network,
                    false,
                    created_by(text),
                )
                .await?;
            }
            other => {
                return Err(loc_err(
                    &self.df,
                    ins,
                    format!("{} is not supported yet", other.keyword()),
                ));
            }
        }
        Ok(())
    }

    /// Resolves one COPY source (with `*`/`?` wildcards) to paths relative to the context.
    fn context_sources(&self, ins: &Located<Instruction>, src: &str) -> Result<Vec<String>, Error> {
        let rel = context_relative(src).ok_or_else(|| {
            loc_err(
                &self.df,
                ins,
                format!("COPY source `{src}` is outside the build context"),
            )
        })?;
        if !rel.contains(['*', '?', '[']) {
            if std::fs::symlink_metadata(self.context.join(&rel)).is_err() {
                return Err(loc_err(
                    &self.df,
                    ins,
                    format!("COPY source `{src}` not found in the build context"),
                ));
            }
            return Ok(vec![rel]);
        }
        let mut found = vec![String::new()];
        for part in rel.split('/') {
            let mut next = Vec::new();
            for base in &found {
                let dir = self.context.join(base);
                let mut names: Vec<String> = std::fs::read_dir(&dir)
                    .map(|rd| {
                        rd.flatten()
                            .filter_map(|e| e.file_name().into_string().ok())
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort();
                for n in names.into_iter().filter(|n| wildcard(part, n)) {
                    next.push(if base.is_empty() {
                        n
                    } else {
                        format!("{base}/{n}")
                    });
                }
            }
            found = next;
        }
        if found.is_empty() {
            return Err(loc_err(
                &self.df,
                ins,
                format!("COPY source `{src}` matches no file in the build context"),
            ));
        }
        Ok(found)
    }

    /// Runs one step in the sandbox and turns its upper dir into a layer.
    async fn step(
        &mut self,
        st: &mut StageState,
        ins: &Located<Instruction>,
        action: Action,
        network: Network,
        with_context: bool,
        history: History,
    ) -> Result<(), Error> {
        self.steps += 1;
        let n = self.steps;
        let dir = self.scratch.path().join(format!("step-{n}"));
        let spec = StepSpec {
            lowers: st.lowers.clone(),
            dirs: StepDirs::under(&dir),
            hostname: "cairn".into(),
            network,
            context: with_context.then(|| self.context.clone()),
            action,
        };
        let log = |_s: cairn_sandbox::Stream, line: &str| eprintln!("  | {line}");
        let outcome = cairn_sandbox::run_step(&spec, &log, self.opts.step_timeout)
            .await
            .map_err(|source| Error::Sandbox {
                file: self.df.file_name.clone(),
                line: ins.line,
                source: Box::new(source),
            })?;
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
                line: ins.line,
                instruction: shorten(&ins.source),
                outcome,
            });
        }
        // Only the upper dir is kept: it is the next step's lower.
        for d in [
            &spec.dirs.work,
            &spec.dirs.rootfs,
            &spec.dirs.scaffold,
            &spec.dirs.provided,
        ] {
            remove_all(d).map_err(|e| Error::io("remove", d, e))?;
        }
        let upper = spec.dirs.upper.clone();
        if cairn_oci::layer_is_empty(&upper).map_err(Error::oci("read the step's changes"))? {
            st.config.history.push(History {
                empty_layer: Some(true),
                ..history
            });
            return Ok(());
        }
        let layer = self.write_layer(&upper)?;
        st.config.rootfs.diff_ids.push(layer.diff_id.clone());
        st.layers.push(layer);
        st.config.history.push(history);
        st.lowers.insert(0, upper);
        Ok(())
    }

    fn write_layer(&self, upper: &Path) -> Result<LayerDesc, Error> {
        let opts = LayerOptions {
            source_date_epoch: self.opts.source_date_epoch,
            ..Default::default()
        };
        let mut info = None;
        let (digest, size) = tokio::task::block_in_place(|| {
            self.store.write_blob(|w| {
                info = Some(cairn_oci::write_layer(
                    upper,
                    SourceKind::OverlayUpper,
                    w,
                    &opts,
                )?);
                Ok(())
            })
        })
        .map_err(Error::oci(format!(
            "write the layer of `{}`",
            upper.display()
        )))?;
        let info = info.expect("write_blob ran the closure");
        debug_assert_eq!(info.digest, digest);
        Ok(LayerDesc {
            media_type: info.media_type.to_string(),
            digest,
            size,
            diff_id: info.diff_id,
            source: None,
        })
    }
}

/// The argv of a command: exec form as written, shell form through SHELL
/// (default `/bin/sh -c`).
fn argv_of(shell: Option<&[String]>, form: &CommandForm) -> Vec<String> {
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
