//! What each Dockerfile instruction does to the image being built.

use std::collections::HashMap;

use cairn_dockerfile::{CommandForm, Healthcheck, Instruction};
use cairn_oci::{HealthConfig, History};
use cairn_sandbox::{Action, ExecSpec, Input, InputSource, Network};

use crate::Error;
use crate::mounts::{MountKind, parse_mount};
use crate::stage::{
    Build, DEFAULT_PATH, Site, StageState, StageVars, argv_of, clean_abs, env_get, env_set,
    form_to_json,
};
use crate::time::rfc3339;

/// Docker's predefined proxy build arguments.
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

fn pairs_text(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn nanos(d: Option<std::time::Duration>) -> Option<i64> {
    d.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl Build<'_> {
    pub(crate) fn history(&self, created_by: String) -> History {
        History {
            created: Some(rfc3339(self.opts.source_date_epoch)),
            created_by: Some(created_by),
            comment: Some("buildkit.dockerfile.v0".into()),
            ..Default::default()
        }
    }

    /// A config-only instruction: a history line, and the key moves on (so the
    /// image key covers CMD, LABEL, …).
    fn config_only(&self, st: &mut StageState, h: History) {
        let text = h.created_by.clone().unwrap_or_default();
        st.key = crate::keys::step_key(
            &st.key,
            &self.platform.to_string_short(),
            &serde_json::json!({ "kind": "config", "instruction": text }),
        );
        st.config.history.push(History {
            empty_layer: Some(true),
            ..h
        });
    }

    pub(crate) fn workdir(st: &StageState) -> String {
        st.config
            .config
            .working_dir
            .clone()
            .unwrap_or_else(|| "/".into())
    }

    /// Applies one instruction (expanded here, with the stage's ENV and ARGs).
    pub(crate) async fn instruction(
        &self,
        st: &mut StageState,
        vars: &mut StageVars,
        site: &Site,
        node: &Instruction,
        done: &HashMap<usize, crate::stage::StageState>,
    ) -> Result<(), Error> {
        let env = st.config.config.env.clone();
        let args = vars.args.clone();
        let lookup = |k: &str| {
            env_get(&env, k)
                .map(str::to_string)
                .or_else(|| args.get(k).cloned())
        };
        let expanded = node
            .expanded(&lookup, self.df.escape)
            .map_err(|e| self.err_at(site.line, e.to_string()))?;
        let cc = &mut st.config.config;
        match expanded {
            Instruction::Env(pairs) => {
                for (k, v) in &pairs {
                    env_set(&mut cc.env, k, v);
                }
                self.config_only(st, self.history(format!("ENV {}", pairs_text(&pairs))));
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
                        vars.args.insert(a.name.clone(), v);
                    }
                }
            }
            Instruction::Label(pairs) => {
                for (k, v) in &pairs {
                    cc.labels.insert(k.clone(), v.clone());
                }
                self.config_only(st, self.history(format!("LABEL {}", pairs_text(&pairs))));
            }
            Instruction::Maintainer(m) => {
                st.config.author = Some(m.clone());
                self.config_only(st, self.history(format!("MAINTAINER {m}")));
            }
            Instruction::User(u) => {
                cc.user = Some(u.clone());
                self.config_only(st, self.history(format!("USER {u}")));
            }
            Instruction::Cmd(form) => {
                cc.cmd = Some(argv_of(cc.shell.as_deref(), &form));
                vars.cmd_set = true;
                self.config_only(st, self.history(format!("CMD {}", form_to_json(&form))));
            }
            Instruction::Entrypoint(form) => {
                cc.entrypoint = Some(argv_of(cc.shell.as_deref(), &form));
                if !vars.cmd_set {
                    cc.cmd = None;
                }
                self.config_only(
                    st,
                    self.history(format!("ENTRYPOINT {}", form_to_json(&form))),
                );
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
                self.config_only(st, self.history(format!("EXPOSE {}", ports.join(" "))));
            }
            Instruction::Volume(vols) => {
                for v in &vols {
                    cc.volumes.insert(v.clone(), serde_json::json!({}));
                }
                self.config_only(st, self.history(format!("VOLUME {}", vols.join(" "))));
            }
            Instruction::StopSignal(s) => {
                cc.stop_signal = Some(s.clone());
                self.config_only(st, self.history(format!("STOPSIGNAL {s}")));
            }
            Instruction::Shell(argv) => {
                cc.shell = Some(argv.clone());
                let text = serde_json::to_string(&argv).unwrap_or_default();
                self.config_only(st, self.history(format!("SHELL {text}")));
            }
            Instruction::Healthcheck(h) => {
                cc.healthcheck = Some(match &h {
                    Healthcheck::None => HealthConfig {
                        test: vec!["NONE".into()],
                        ..Default::default()
                    },
                    Healthcheck::Check(c) => HealthConfig {
                        test: c.test(),
                        interval: nanos(c.interval),
                        timeout: nanos(c.timeout),
                        start_period: nanos(c.start_period),
                        start_interval: nanos(c.start_interval),
                        retries: c.retries.map(i64::from),
                        ..Default::default()
                    },
                });
                let text = site
                    .source
                    .split_once(char::is_whitespace)
                    .map_or("", |x| x.1);
                self.config_only(st, self.history(format!("HEALTHCHECK {}", text.trim())));
            }
            Instruction::Onbuild(_) => {
                // The trigger as written (unexpanded): it is expanded in the child.
                let trigger = site
                    .source
                    .trim_start()
                    .split_once(char::is_whitespace)
                    .map_or("", |x| x.1)
                    .trim()
                    .to_string();
                cc.on_build.push(trigger.clone());
                self.config_only(st, self.history(format!("ONBUILD {trigger}")));
            }
            Instruction::Workdir(w) => {
                let path = clean_abs(&Self::workdir(st), &w);
                st.config.config.working_dir = Some(path.clone());
                let h = self.history(format!("WORKDIR {path}"));
                let material = serde_json::json!({ "kind": "workdir", "path": path });
                self.step(
                    st,
                    site,
                    Action::Mkdir { path },
                    Network::None,
                    vec![],
                    h,
                    material,
                )
                .await?;
            }
            Instruction::Copy(c) => {
                let req = crate::copy::CopyRequest {
                    sources: c.sources,
                    dest: c.dest,
                    from: c.from,
                    chown: c.chown,
                    chmod: c.chmod,
                    heredocs: c.heredocs,
                    exclude: c.exclude,
                    parents: c.parents,
                    add: None,
                };
                self.copy(st, site, req, done).await?;
            }
            Instruction::Add(a) => {
                if a.keep_git_dir {
                    return Err(self.err_at(
                        site.line,
                        "ADD --keep-git-dir (git sources) is not supported yet",
                    ));
                }
                let req = crate::copy::CopyRequest {
                    sources: a.sources,
                    dest: a.dest,
                    from: None,
                    chown: a.chown,
                    chmod: a.chmod,
                    heredocs: a.heredocs,
                    exclude: a.exclude,
                    parents: a.parents,
                    add: Some(crate::copy::AddOptions {
                        checksum: a.checksum,
                    }),
                };
                self.copy(st, site, req, done).await?;
            }
            Instruction::Run(r) => {
                let network = match r.network.as_deref() {
                    None | Some("default") => self.opts.network,
                    Some("none") => Network::None,
                    Some("host") => Network::Host,
                    Some(other) => {
                        return Err(self
                            .err_at(site.line, format!("unknown RUN --network value `{other}`")));
                    }
                };
                if r.security.as_deref().is_some_and(|s| s != "sandbox") {
                    return Err(self.err_at(
                        site.line,
                        "RUN --security=insecure is not allowed: a step never gets more than the user running cairn",
                    ));
                }
                let shell = st.config.config.shell.clone();
                let mut inputs = Vec::new();
                let mut mounts_key = Vec::new();
                for m in &r.mounts {
                    let (input, key) = self.run_mount(st, site, m, done).await?;
                    inputs.extend(input);
                    mounts_key.push(key);
                }
                let mut script = None;
                let argv = if r.heredocs.is_empty() {
                    argv_of(shell.as_deref(), &r.command)
                } else {
                    self.heredoc_argv(
                        site,
                        shell.as_deref(),
                        &r.command,
                        &r.heredocs,
                        &mut inputs,
                        &mut script,
                    )?
                };
                let mut env = st.config.config.env.clone();
                for (k, v) in vars.args.iter() {
                    if env_get(&env, k).is_none() {
                        env.push(format!("{k}={v}"));
                    }
                }
                // Docker's predefined proxy ARGs: usable without an ARG line, passed
                // to RUN, and (like all ARGs) never written into the image.
                for k in PROXY_ARGS {
                    if let Some(v) = self.opts.build_args.get(*k)
                        && env_get(&env, k).is_none()
                    {
                        env.push(format!("{k}={v}"));
                    }
                }
                if env_get(&env, "PATH").is_none() {
                    env.push(format!("PATH={DEFAULT_PATH}"));
                }
                let exec = ExecSpec {
                    argv: argv.clone(),
                    env,
                    cwd: Self::workdir(st),
                    user: st.config.config.user.clone().unwrap_or_default(),
                };
                let text = match &r.command {
                    CommandForm::Exec(v) if r.heredocs.is_empty() => format!(
                        "RUN {} # buildkit",
                        serde_json::to_string(v).unwrap_or_default()
                    ),
                    _ => format!("RUN {} # buildkit", argv.join(" ")),
                };
                let h = self.history(text);
                let mut env_sorted = exec.env.clone();
                env_sorted.sort();
                let material = serde_json::json!({
                    "kind": "run",
                    "argv": exec.argv,
                    "env": env_sorted,
                    "network": if network == Network::None { "none" } else { "host" },
                    "user": exec.user,
                    "workdir": exec.cwd,
                    "mounts": mounts_key,
                    "script": script,
                });
                self.step(st, site, Action::Exec(exec), network, inputs, h, material)
                    .await?;
            }
        }
        Ok(())
    }

    /// The argv of a RUN with heredocs (BuildKit's rules): a command that is only a
    /// heredoc runs its body (as a script file when it starts with `#!`, else with
    /// the shell); otherwise the shell gets the line and the bodies, as written.
    fn heredoc_argv(
        &self,
        site: &Site,
        shell: Option<&[String]>,
        command: &CommandForm,
        heredocs: &[cairn_dockerfile::Heredoc],
        inputs: &mut Vec<Input>,
        script_digest: &mut Option<String>,
    ) -> Result<Vec<String>, Error> {
        let CommandForm::Shell(line) = command else {
            return Err(self.err_at(site.line, "heredocs need the shell form of RUN"));
        };
        let sh = shell.map_or_else(|| vec!["/bin/sh".into(), "-c".into()], <[String]>::to_vec);
        let only_heredoc = heredocs.len() == 1
            && line
                .trim()
                .trim_start_matches("<<")
                .trim_start_matches('-')
                .trim_matches(['"', '\''])
                == heredocs[0].name;
        if only_heredoc {
            let body = heredocs[0].chomped();
            if body.starts_with("#!") {
                use sha2::Digest as _;
                *script_digest = Some(hex::encode(sha2::Sha256::digest(body.as_bytes())));
                let dir = self.scratch_dir("heredoc")?;
                let script = dir.join("script");
                std::fs::write(&script, &body).map_err(|e| Error::io("write", &script, e))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| Error::io("chmod", &script, e))?;
                let target = format!("{}/heredoc-{}", cairn_sandbox::INPUT_ROOT, inputs.len());
                inputs.push(Input {
                    source: InputSource::Host(script),
                    subpath: None,
                    target: target.clone(),
                    is_file: true,
                    readonly: true,
                });
                return Ok(vec![target]);
            }
            let mut argv = sh;
            argv.push(body);
            return Ok(argv);
        }
        let mut script = line.clone();
        for h in heredocs {
            script.push('\n');
            script.push_str(&h.content);
            script.push_str(&h.name);
        }
        script.push('\n');
        let mut argv = sh;
        argv.push(script);
        Ok(argv)
    }

    /// One `RUN --mount`: the sandbox input (`None`: an optional secret not given,
    /// or the planning pass) and what the cache key takes from it.
    async fn run_mount(
        &self,
        st: &StageState,
        site: &Site,
        value: &str,
        done: &HashMap<usize, StageState>,
    ) -> Result<(Option<Input>, serde_json::Value), Error> {
        let m = parse_mount(value).map_err(|e| self.err_at(site.line, e))?;
        let target = clean_abs(&Self::workdir(st), m.target.as_deref().unwrap_or("/"));
        let mut key = serde_json::json!({
            "type": format!("{:?}", m.kind).to_lowercase(),
            "target": target,
            "id": m.id,
            "source": m.source,
            "mode": m.mode,
            "uid": m.uid,
            "gid": m.gid,
            "size": m.size,
            "required": m.required,
        });
        if m.kind == MountKind::Bind {
            let sub = m.source.clone().unwrap_or_else(|| "/".into());
            key["from"] = serde_json::Value::String(match &m.from {
                Some(from) => {
                    self.source_identity(site.stage, from, done, site.line)
                        .await?
                }
                None => {
                    let rel = crate::stage::context_relative(&sub).unwrap_or_else(|| ".".into());
                    let ignore = &self.ignore;
                    format!(
                        "context:{}",
                        crate::keys::tree_digest(&self.context, &rel, &|p| ignore.ignores(p))
                            .map_err(
                                |e| self.err_at(site.line, format!("mount source `{sub}`: {e}"))
                            )?
                    )
                }
            });
        }
        if st.planning {
            return Ok((None, key));
        }
        let input = self.mount_input(st, site, m, target, done).await?;
        Ok((input, key))
    }

    async fn mount_input(
        &self,
        _st: &StageState,
        site: &Site,
        m: crate::mounts::MountSpec,
        target: String,
        done: &HashMap<usize, StageState>,
    ) -> Result<Option<Input>, Error> {
        match m.kind {
            MountKind::Tmpfs => Ok(Some(Input {
                source: InputSource::Tmpfs { size: m.size },
                subpath: None,
                target,
                is_file: false,
                readonly: false,
            })),
            MountKind::Cache => {
                use sha2::Digest as _;
                let id = m.id.clone().unwrap_or_else(|| target.clone());
                let key = hex::encode(sha2::Sha256::digest(id.as_bytes()));
                let dir = self.opts.state.root().join("cache-v1").join(&key[..32]);
                if !dir.is_dir() {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| Error::io("create cache", &dir, e))?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(
                        &dir,
                        std::fs::Permissions::from_mode(m.mode.unwrap_or(0o755)),
                    )
                    .map_err(|e| Error::io("chmod", &dir, e))?;
                    std::os::unix::fs::chown(&dir, m.uid, m.gid)
                        .map_err(|e| Error::io("chown", &dir, e))?;
                }
                Ok(Some(Input {
                    source: InputSource::Host(dir),
                    subpath: None,
                    target,
                    is_file: false,
                    readonly: false,
                }))
            }
            MountKind::Secret => {
                let id = m.id.clone().unwrap_or_default();
                let Some(src) = self.opts.secrets.get(&id) else {
                    if m.required {
                        return Err(self.err_at(
                            site.line,
                            format!("secret `{id}` is required: pass --secret id={id},src=PATH"),
                        ));
                    }
                    return Ok(None);
                };
                let value = src
                    .read()
                    .map_err(|e| self.err_at(site.line, format!("secret `{id}`: {e}")))?;
                let dir = self.scratch_dir("secret")?;
                let file = dir.join("value");
                std::fs::write(&file, value).map_err(|e| Error::io("write secret", &dir, e))?;
                use std::os::unix::fs::PermissionsExt;
                std::os::unix::fs::chown(&file, Some(m.uid.unwrap_or(0)), Some(m.gid.unwrap_or(0)))
                    .map_err(|e| Error::io("chown", &file, e))?;
                std::fs::set_permissions(
                    &file,
                    std::fs::Permissions::from_mode(m.mode.unwrap_or(0o400)),
                )
                .map_err(|e| Error::io("chmod", &file, e))?;
                Ok(Some(Input {
                    source: InputSource::Host(file),
                    subpath: None,
                    target,
                    is_file: true,
                    readonly: true,
                }))
            }
            MountKind::Bind => {
                if m.rw {
                    return Err(
                        self.err_at(site.line, "RUN --mount=type=bind,rw is not supported yet")
                    );
                }
                let sub = m.source.clone().unwrap_or_else(|| "/".into());
                let (source, is_file) = match &m.from {
                    Some(from) => {
                        let layers = self
                            .source_layers(site.stage, from, done, site.line)
                            .await?;
                        let rel = sub.trim_start_matches('/');
                        let is_file = layers
                            .iter()
                            .find_map(|l| std::fs::symlink_metadata(l.join(rel)).ok())
                            .is_some_and(|m| !m.is_dir());
                        (InputSource::Layers(layers), is_file)
                    }
                    None => {
                        let rel = crate::stage::context_relative(&sub).ok_or_else(|| {
                            self.err_at(
                                site.line,
                                format!("mount source `{sub}` is outside the build context"),
                            )
                        })?;
                        let is_file = std::fs::metadata(self.context.join(&rel))
                            .map(|m| !m.is_dir())
                            .map_err(|_| {
                                self.err_at(
                                    site.line,
                                    format!("mount source `{sub}` not found in the build context"),
                                )
                            })?;
                        (InputSource::Host(self.context.clone()), is_file)
                    }
                };
                Ok(Some(Input {
                    source,
                    subpath: Some(sub),
                    target,
                    is_file,
                    readonly: true,
                }))
            }
        }
    }
}
