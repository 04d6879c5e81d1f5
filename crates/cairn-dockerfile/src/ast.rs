//! The typed syntax tree produced by [`crate::parse`].
//!
//! Every string field holds the text *as written* (after continuation
//! joining), not expanded: expansion depends on ARG/ENV scoping, which the
//! engine owns. Call [`Instruction::expanded`] / [`From::expanded`] to
//! expand exactly the fields the Docker builder expands.

use std::time::Duration;

use serde::Serialize;

use crate::error::Warning;
use crate::expand::{ExpandError, expand_heredoc, expand_word, expand_words};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    /// The name given to [`crate::parse`], used in error messages.
    pub file_name: String,
    /// The escape token (`\` unless `# escape=` says otherwise).
    pub escape: char,
    /// Value of the `# syntax=` directive, if present.
    pub syntax: Option<String>,
    /// Value of the `# check=` directive, if present.
    pub check: Option<String>,
    /// ARGs declared before the first FROM (usable in FROM lines).
    pub global_args: Vec<Located<ArgDecl>>,
    /// Build stages in file order.
    pub stages: Vec<Stage>,
    /// Non-fatal findings (deprecated forms, empty continuation lines).
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// Finds a stage by name (case-insensitive) or by numeric index.
    pub fn stage(&self, name_or_index: &str) -> Option<&Stage> {
        let lower = name_or_index.to_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| {
                name_or_index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| self.stages.get(i))
            })
    }
}

/// One build stage: a FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// 0-based position in the file.
    pub index: usize,
    /// Lower-cased `AS` name.
    pub name: Option<String>,
    /// The FROM instruction.
    pub from: Located<From>,
    /// The stage's instructions, in order.
    pub instructions: Vec<Located<Instruction>>,
}

/// A FROM instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct From {
    /// Base image reference or stage name (unexpanded word).
    pub image: String,
    /// `--platform` value (unexpanded).
    pub platform: Option<String>,
    /// The `AS` name as written (see [`Stage::name`] for the normalised one).
    pub alias: Option<String>,
}

impl From {
    /// Expands `image` and `platform` (the alias is never expanded).
    ///
    /// # Errors
    /// Any [`ExpandError`].
    pub fn expanded(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
        escape: char,
    ) -> Result<From, ExpandError> {
        Ok(From {
            image: expand_word(&self.image, lookup, escape)?,
            platform: opt(&self.platform, lookup, escape)?,
            alias: self.alias.clone(),
        })
    }
}

/// A node with its position in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located<T> {
    /// 1-based first line.
    pub line: usize,
    /// 1-based last line, including continuation lines and heredoc bodies.
    pub end_line: usize,
    /// The logical line as written: continuation lines joined (escape
    /// tokens removed), comments dropped, heredoc bodies not included.
    /// Useful for image history (`created_by`) and ONBUILD triggers.
    pub source: String,
    /// The node.
    pub node: T,
}

/// One ARG declaration (`NAME` or `NAME=default`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    /// Variable name (unexpanded word).
    pub name: String,
    /// Default value as written, quotes included; `None` for `ARG NAME`.
    pub default: Option<String>,
}

/// Exec form (JSON array) or shell form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CommandForm {
    /// `["prog", "arg"]`.
    Exec(Vec<String>),
    /// Everything after the keyword (and flags), as written.
    Shell(String),
}

/// A here-document attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// Delimiter with quotes removed (also the file name for COPY/ADD).
    pub name: String,
    /// The body, each line followed by `\n`, exactly as written (leading
    /// tabs are kept even for `<<-`; see [`Heredoc::chomped`]).
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`).
    pub expand: bool,
    /// True for `<<-`: leading tabs are stripped from body lines.
    pub strip_tabs: bool,
}

impl Heredoc {
    /// The body with leading tabs removed from each line when
    /// `strip_tabs` is set; otherwise the body unchanged.
    pub fn chomped(&self) -> String {
        if !self.strip_tabs {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// RUN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// Raw `--mount` values (quotes removed, unexpanded), in order.
    pub mounts: Vec<String>,
    /// `--network` value.
    pub network: Option<String>,
    /// `--security` value.
    pub security: Option<String>,
    /// The command. With heredocs this is the shell-form line that refers
    /// to them, e.g. `<<EOF` or `python3 <<EOF`.
    pub command: CommandForm,
    /// Heredocs, in the order they appear on the line.
    pub heredocs: Vec<Heredoc>,
}

/// COPY.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// Source paths (heredoc sources are in `heredocs` instead).
    pub sources: Vec<String>,
    /// Destination.
    pub dest: String,
    /// `--from` (stage name, index or image).
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns, in order.
    pub exclude: Vec<String>,
    /// Inline sources (`COPY <<EOF /dest`); each becomes a file named
    /// after its delimiter.
    pub heredocs: Vec<Heredoc>,
}

/// ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Add {
    /// Source paths or URLs (heredoc sources are in `heredocs` instead).
    pub sources: Vec<String>,
    /// Destination.
    pub dest: String,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns, in order.
    pub exclude: Vec<String>,
    /// `--checksum`.
    pub checksum: Option<String>,
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// Inline sources.
    pub heredocs: Vec<Heredoc>,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    /// `HEALTHCHECK [options] CMD command`.
    Check(HealthcheckConfig),
}

/// Options and command of `HEALTHCHECK CMD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthcheckConfig {
    /// The probe command.
    pub command: CommandForm,
    /// `--interval` (`Some(0)` means "default", as in Docker).
    pub interval: Option<Duration>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--start-period`.
    pub start_period: Option<Duration>,
    /// `--start-interval`.
    pub start_interval: Option<Duration>,
    /// `--retries`.
    pub retries: Option<u32>,
}

impl HealthcheckConfig {
    /// The OCI/Docker `Healthcheck.Test` value:
    /// `["CMD", args...]` for exec form, `["CMD-SHELL", cmd]` for shell form.
    pub fn test(&self) -> Vec<String> {
        match &self.command {
            CommandForm::Exec(args) => std::iter::once("CMD".to_string())
                .chain(args.iter().cloned())
                .collect(),
            CommandForm::Shell(cmd) => vec!["CMD-SHELL".to_string(), cmd.clone()],
        }
    }
}

/// Any instruction that may appear inside a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Instruction {
    /// RUN.
    Run(Run),
    /// CMD.
    Cmd(CommandForm),
    /// ENTRYPOINT.
    Entrypoint(CommandForm),
    /// ENV key/value pairs (raw words).
    Env(Vec<(String, String)>),
    /// LABEL key/value pairs (raw words).
    Label(Vec<(String, String)>),
    /// WORKDIR.
    Workdir(String),
    /// USER.
    User(String),
    /// COPY.
    Copy(Copy),
    /// ADD.
    Add(Add),
    /// ARG.
    Arg(Vec<ArgDecl>),
    /// EXPOSE ports (raw words).
    Expose(Vec<String>),
    /// VOLUME paths.
    Volume(Vec<String>),
    /// STOPSIGNAL.
    StopSignal(String),
    /// SHELL (always exec form).
    Shell(Vec<String>),
    /// HEALTHCHECK.
    Healthcheck(Healthcheck),
    /// ONBUILD trigger (its text is in [`Located::source`] after `ONBUILD`).
    Onbuild(Box<Instruction>),
    /// MAINTAINER (deprecated).
    Maintainer(String),
}

fn opt(
    v: &Option<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Option<String>, ExpandError> {
    v.as_deref()
        .map(|w| expand_word(w, lookup, escape))
        .transpose()
}

fn each(
    v: &[String],
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<String>, ExpandError> {
    v.iter().map(|w| expand_word(w, lookup, escape)).collect()
}

fn pairs(
    v: &[(String, String)],
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<(String, String)>, ExpandError> {
    v.iter()
        .map(|(k, val)| {
            Ok((
                expand_word(k, lookup, escape)?,
                expand_word(val, lookup, escape)?,
            ))
        })
        .collect()
}

fn heredocs(
    v: &[Heredoc],
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<Heredoc>, ExpandError> {
    v.iter()
        .map(|h| {
            let mut h = h.clone();
            if h.expand {
                h.content = expand_heredoc(&h.content, lookup, escape)?;
            }
            Ok(h)
        })
        .collect()
}

impl Instruction {
    /// The keyword in upper case (`"RUN"`, `"STOPSIGNAL"`, ...).
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Env(_) => "ENV",
            Instruction::Label(_) => "LABEL",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::User(_) => "USER",
            Instruction::Copy(_) => "COPY",
            Instruction::Add(_) => "ADD",
            Instruction::Arg(_) => "ARG",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Volume(_) => "VOLUME",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Shell(_) => "SHELL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Maintainer(_) => "MAINTAINER",
        }
    }

    /// Returns a copy with the builder's word expansion applied to exactly
    /// the fields Docker expands:
    ///
    /// * ADD / COPY: sources, dest, `--from`, `--chown`, `--chmod`,
    ///   `--exclude`, `--checksum`, and heredoc bodies whose delimiter was
    ///   unquoted ([`expand_heredoc`]);
    /// * ENV / LABEL: keys and values; ARG: names and defaults;
    /// * EXPOSE: each word, with field splitting ([`expand_words`]);
    /// * VOLUME, WORKDIR, USER, STOPSIGNAL: each word;
    /// * RUN: only `--mount` values (the command is left to the shell).
    ///
    /// CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER and ONBUILD (whose
    /// trigger is expanded when it fires in a child build) are returned
    /// unchanged.
    ///
    /// # Errors
    /// The first [`ExpandError`] met.
    pub fn expanded(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
        escape: char,
    ) -> Result<Instruction, ExpandError> {
        let l = lookup;
        let e = escape;
        Ok(match self {
            Instruction::Run(r) => Instruction::Run(Run {
                mounts: each(&r.mounts, l, e)?,
                ..r.clone()
            }),
            Instruction::Env(p) => Instruction::Env(pairs(p, l, e)?),
            Instruction::Label(p) => Instruction::Label(pairs(p, l, e)?),
            Instruction::Workdir(w) => Instruction::Workdir(expand_word(w, l, e)?),
            Instruction::User(w) => Instruction::User(expand_word(w, l, e)?),
            Instruction::StopSignal(w) => Instruction::StopSignal(expand_word(w, l, e)?),
            Instruction::Volume(v) => Instruction::Volume(each(v, l, e)?),
            Instruction::Expose(v) => {
                let mut out = Vec::new();
                for w in v {
                    out.extend(expand_words(w, l, e)?);
                }
                Instruction::Expose(out)
            }
            Instruction::Arg(decls) => Instruction::Arg(
                decls
                    .iter()
                    .map(|d| {
                        Ok(ArgDecl {
                            name: expand_word(&d.name, l, e)?,
                            default: opt(&d.default, l, e)?,
                        })
                    })
                    .collect::<Result<_, ExpandError>>()?,
            ),
            Instruction::Copy(c) => Instruction::Copy(Copy {
                sources: each(&c.sources, l, e)?,
                dest: expand_word(&c.dest, l, e)?,
                from: opt(&c.from, l, e)?,
                chown: opt(&c.chown, l, e)?,
                chmod: opt(&c.chmod, l, e)?,
                link: c.link,
                parents: c.parents,
                exclude: each(&c.exclude, l, e)?,
                heredocs: heredocs(&c.heredocs, l, e)?,
            }),
            Instruction::Add(a) => Instruction::Add(Add {
                sources: each(&a.sources, l, e)?,
                dest: expand_word(&a.dest, l, e)?,
                chown: opt(&a.chown, l, e)?,
                chmod: opt(&a.chmod, l, e)?,
                link: a.link,
                parents: a.parents,
                exclude: each(&a.exclude, l, e)?,
                checksum: opt(&a.checksum, l, e)?,
                keep_git_dir: a.keep_git_dir,
                heredocs: heredocs(&a.heredocs, l, e)?,
            }),
            Instruction::Cmd(_)
            | Instruction::Entrypoint(_)
            | Instruction::Shell(_)
            | Instruction::Healthcheck(_)
            | Instruction::Onbuild(_)
            | Instruction::Maintainer(_) => self.clone(),
        })
    }
}
