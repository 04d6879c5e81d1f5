//! `cairn` — the command line. Parses arguments, enters the build user namespace
//! for commands that build, and calls the engine. Errors are reported here, with
//! their whole chain of causes; nothing below this crate knows about the CLI.

mod cache_cmd;
mod dev;
mod devcontainer_cmd;
mod frontend;
mod kaniko;
mod progress;
mod unpack_cmd;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use cairn_engine::{BuildOptions, Output, StateDir};
use cairn_sandbox::Network;
use clap::{Parser, Subcommand};

/// Daemonless, rootless container image builder with a registry-backed layer cache.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a Dockerfile. Also takes kaniko's executor flags
    /// (`--context`, `--dockerfile`, `--destination`, …; docs/kaniko-flags.md).
    Build(Box<BuildArgs>),
    /// Registry cache maintenance (`cairn cache prune`).
    #[command(subcommand)]
    Cache(cache_cmd::CacheCommand),
    /// Developer tooling: a local registry with seed base images, a demo build.
    #[command(subcommand)]
    Dev(dev::DevCommand),
    /// Print a Dockerfile's instructions as JSON (BuildKit's raw parse).
    Parse(frontend::ParseArgs),
    /// Expand a word as a Dockerfile instruction would (BuildKit's shell lexer).
    Expand(frontend::ExpandArgs),
    /// Write an image's root file system into a directory (envbuilder-style) and
    /// its environment into a file to source (default `DIR/.cairn-image.env`).
    Unpack(Box<unpack_cmd::UnpackArgs>),
    /// Dev containers: build devcontainer.json (with Features) or print its plan.
    #[command(subcommand)]
    Devcontainer(devcontainer_cmd::DevcontainerCommand),
}

/// Options shared by commands that build.
#[derive(Debug, clap::Args)]
struct CommonArgs {
    /// Local state (content store, snapshots); default `$CAIRN_STATE_DIR`,
    /// `$XDG_CACHE_HOME/cairn` or `~/.cache/cairn`.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Reach this registry (`host[:port]`) over plain HTTP; loopback registries always are.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure_registries: Vec<String>,
    /// Credentials for pulling, `[REGISTRY=]USER:PASSWORD` (without REGISTRY: for
    /// the registries of `-t` and `--cache-repo`); else `--authfile`, `$REGISTRY_AUTH_FILE`
    /// or `~/.docker/config.json`.
    #[arg(
        long,
        env = "CAIRN_PULL_CREDS",
        value_name = "CREDS",
        hide_env_values = true
    )]
    pull_creds: Vec<String>,
    /// Credentials for pushing (images and cache entries), same form; never used to pull.
    #[arg(
        long,
        env = "CAIRN_PUSH_CREDS",
        value_name = "CREDS",
        hide_env_values = true
    )]
    push_creds: Vec<String>,
    /// Credentials for both pulling and pushing, same form.
    #[arg(
        long,
        env = "CAIRN_CREDS",
        value_name = "CREDS",
        hide_env_values = true
    )]
    creds: Vec<String>,
    /// A docker `config.json` or podman `auth.json` to read credentials from.
    #[arg(long, value_name = "PATH")]
    authfile: Option<PathBuf>,
}

/// Credentials per operation: the flags first (per registry), then the auth file.
fn credential_sources(
    common: &CommonArgs,
    registries: &[String],
) -> anyhow::Result<(
    cairn_registry::CredentialSource,
    cairn_registry::CredentialSource,
)> {
    use cairn_registry::{AuthFile, Credential, CredentialSource};
    let file = match &common.authfile {
        Some(p) => CredentialSource::AuthFile(AuthFile::new(p.clone())),
        None => CredentialSource::from_env(),
    };
    let parse = |flags: &[&String]| -> anyhow::Result<CredentialSource> {
        let mut map = std::collections::BTreeMap::new();
        for spec in flags {
            let (regs, userpass): (Vec<String>, &str) = match spec.split_once('=') {
                Some((r, up))
                    if !r.contains(':') || r.contains('.') || r.starts_with("localhost") =>
                {
                    (vec![r.to_string()], up)
                }
                _ => (registries.to_vec(), spec.as_str()),
            };
            let (user, pass) = userpass
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("credentials must be [REGISTRY=]USER:PASSWORD"))?;
            for r in regs {
                map.insert(r, Credential::basic(user, pass));
            }
        }
        Ok(CredentialSource::Chain(vec![
            CredentialSource::PerRegistry(map),
            file.clone(),
        ]))
    };
    let pull: Vec<&String> = common.creds.iter().chain(&common.pull_creds).collect();
    let push: Vec<&String> = common.creds.iter().chain(&common.push_creds).collect();
    Ok((parse(&pull)?, parse(&push)?))
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// The build context directory (or `--context=DIR`).
    context: Option<PathBuf>,
    /// The Dockerfile (default: `CONTEXT/Dockerfile`; a relative path that does
    /// not exist is taken relative to the context, as kaniko does).
    #[arg(
        short = 'f',
        long = "file",
        visible_alias = "dockerfile",
        value_name = "PATH"
    )]
    file: Option<PathBuf>,
    /// Name the image (`REGISTRY/REPO:TAG`); repeatable.
    #[arg(short = 't', long = "tag", value_name = "REF")]
    tags: Vec<String>,
    /// Push the tags to their registries.
    #[arg(long)]
    push: bool,
    /// Extra output: `type=oci,dest=PATH` (an OCI image layout directory).
    #[arg(long = "output", short = 'o', value_name = "SPEC")]
    outputs: Vec<String>,
    /// A build argument `NAME=VALUE` (or `NAME` to take it from the environment).
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    build_args: Vec<String>,
    /// Build this stage instead of the last one.
    #[arg(long)]
    target: Option<String>,
    /// A named build context `NAME=DIR` for `COPY --from=NAME` and
    /// `RUN --mount=from=NAME` (BuildKit's `--build-context`; directories only).
    #[arg(long = "build-context", value_name = "NAME=DIR")]
    build_contexts: Vec<String>,
    /// Network of RUN steps: `host` (default, as `docker build`) or `none`.
    #[arg(long, default_value = "host", value_parser = ["host", "none", "default"])]
    network: String,
    /// Registry layer cache: one immutable entry per step key in `REGISTRY/REPO`.
    #[arg(long, value_name = "REPO")]
    cache_repo: Option<String>,
    /// Read the cache but never write it (builds with pull-only credentials).
    #[arg(long)]
    cache_readonly: bool,
    /// Dry run: exit 0 and print `CAIRN_CACHED_IMAGE=…` if every step is cached,
    /// else fail naming the first missing step. Builds nothing.
    #[arg(long)]
    cached_only: bool,
    /// Print, per step, cache hit or miss and, for a miss, which input changed.
    #[arg(long)]
    explain: bool,
    /// A secret for `RUN --mount=type=secret`: `id=ID,src=PATH` or `id=ID,env=VAR`.
    #[arg(long = "secret", value_name = "SPEC")]
    secrets: Vec<String>,
    /// An extra CA certificate (PEM) to trust for ADD downloads.
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Kill a RUN step (and fail the build) after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    step_timeout: Option<f64>,
    /// How a step's changes become its layer: `overlay` (its overlay upper dir),
    /// `walk` (a copy of its root compared with its parent: for systems without
    /// overlayfs in a user namespace, such as cairn inside a container; slower,
    /// the same layers) or `auto` (overlay if a probe overlay mounts, else walk).
    #[arg(long, value_name = "auto|overlay|walk", default_value = "auto")]
    snapshotter: String,
    /// Upper bound of every timestamp written into the image.
    #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
    source_date_epoch: u64,
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    kaniko: kaniko::KanikoArgs,
    /// `--label K=V` values (taken from the kaniko-style flag).
    #[arg(skip)]
    labels: Vec<String>,
    /// The build log: `auto` (bars on a terminal, else plain lines), `plain`, `tty`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "tty"])]
    progress: String,
    /// Layer compression: `gzip` (parallel, the same bytes on any number of cores;
    /// the default), `gzip-single` (one stream) or `zstd`. Part of every cache key.
    /// Kaniko's `--compression` sets it too.
    #[arg(long, value_name = "CODEC", default_value = "gzip")]
    layer_compression: String,
    /// Compression level (gzip 1–9, default 6; zstd 1–19, default 3); kaniko's
    /// `--compression-level` sets it too.
    #[arg(long, value_name = "N")]
    layer_compression_level: Option<u32>,
    /// Image format (buildah's flag): `oci` (the default) or `docker` (schema2
    /// manifest and config media types; needs gzip layers).
    #[arg(long, value_name = "FORMAT", default_value = "oci", value_parser = ["oci", "docker"])]
    format: String,
    /// Use a local directory (an OCI image layout) as the layer cache instead of a
    /// registry repository.
    #[arg(long, value_name = "DIR")]
    layer_cache_dir: Option<PathBuf>,
    /// Also read this cache: `type=registry,ref=REG/REPO` or just `REG/REPO`
    /// (repeatable; e.g. a branch's cache, then main's).
    #[arg(long = "cache-from", value_name = "SPEC")]
    cache_from: Vec<String>,
    /// Write the cache here: `type=registry,ref=REG/REPO[,mode=max]` (same as
    /// `--cache-repo`; cairn always records every step, as mode=max does).
    #[arg(long = "cache-to", value_name = "SPEC")]
    cache_to: Option<String>,
}

fn parse_output(spec: &str) -> anyhow::Result<Output> {
    let mut kind = None;
    let mut dest = None;
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            _ => bail!("--output `{spec}`: unknown part `{part}` (expected type=oci,dest=PATH)"),
        }
    }
    match (kind.as_deref(), dest) {
        (Some("oci"), Some(dest)) => Ok(Output::OciLayout { dest }),
        (Some("oci"), None) => bail!("--output `{spec}`: `dest=` is required"),
        (other, _) => bail!(
            "--output `{spec}`: unsupported type {:?} (supported: oci)",
            other.unwrap_or("")
        ),
    }
}

/// A BuildKit-style cache spec (`type=registry,ref=R[,mode=…]`) or a plain reference.
fn cache_ref(spec: &str) -> anyhow::Result<cairn_registry::Reference> {
    let mut reference = None;
    if !spec.contains('=') {
        reference = Some(spec.to_string());
    } else {
        for part in spec.split(',') {
            match part.split_once('=') {
                Some(("type", "registry")) => {}
                Some(("type", other)) => {
                    bail!("cache `{spec}`: type `{other}` is not supported (only `registry`)")
                }
                Some(("ref", r)) => reference = Some(r.to_string()),
                Some(("mode", "max" | "min")) | Some(("ignore-error", _)) => {}
                Some((k, _)) => bail!("cache `{spec}`: unknown option `{k}`"),
                None => bail!("cache `{spec}`: expected KEY=VALUE parts"),
            }
        }
    }
    let r = reference.ok_or_else(|| anyhow::anyhow!("cache `{spec}`: `ref=` is required"))?;
    r.parse()
        .with_context(|| format!("cache `{spec}`: invalid reference `{r}`"))
}

/// The engine's options; `a` has been through [`kaniko::apply`] (context and
/// Dockerfile resolved).
fn build_options(a: BuildArgs, extra_outputs: Vec<Output>) -> anyhow::Result<BuildOptions> {
    let context = a
        .context
        .clone()
        .context("no build context: give CONTEXT or --context=DIR")?;
    let mut build_args = BTreeMap::new();
    for kv in &a.build_args {
        match kv.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_string(), v.to_string()),
            None => match std::env::var(kv) {
                Ok(v) => build_args.insert(kv.clone(), v),
                Err(_) => continue,
            },
        };
    }
    let tags = a
        .tags
        .iter()
        .map(|t| t.parse().with_context(|| format!("invalid tag `{t}`")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut registries: Vec<String> = tags
        .iter()
        .map(|t: &cairn_registry::Reference| t.registry.clone())
        .collect();
    if let Some(r) = &a.cache_repo {
        let r: cairn_registry::Reference = r
            .parse()
            .with_context(|| format!("invalid --cache-repo `{r}`"))?;
        registries.push(r.registry);
    }
    for spec in a.cache_to.iter().chain(&a.cache_from) {
        registries.push(cache_ref(spec)?.registry);
    }
    registries.sort();
    registries.dedup();
    let (pull_credentials, push_credentials) = credential_sources(&a.common, &registries)?;
    let mut outputs = a
        .outputs
        .iter()
        .map(|o| parse_output(o))
        .collect::<anyhow::Result<Vec<_>>>()?;
    outputs.extend(extra_outputs);
    let named_contexts = a
        .build_contexts
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), PathBuf::from(v))),
            _ => bail!("--build-context `{kv}`: expected NAME=DIR"),
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(BuildOptions {
        dockerfile: a.file.unwrap_or_else(|| context.join("Dockerfile")),
        dockerfile_text: None,
        named_contexts,
        context,
        build_args,
        target: a.target,
        tags,
        push: a.push,
        outputs,
        state: StateDir::resolve(a.common.state_dir)?,
        source_date_epoch: a.source_date_epoch,
        insecure_registries: a.common.insecure_registries,
        secrets: a
            .secrets
            .iter()
            .map(|s| cairn_engine::SecretSource::parse(s).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?,
        ca_cert: a.ca_cert,
        cache_repo: match (a.cache_repo.as_deref(), a.cache_to.as_deref()) {
            (Some(_), Some(_)) => bail!("give --cache-repo or --cache-to, not both"),
            (Some(r), None) => Some(
                r.parse()
                    .with_context(|| format!("invalid --cache-repo `{r}`"))?,
            ),
            (None, Some(spec)) => Some(cache_ref(spec)?),
            (None, None) => None,
        },
        cache_readonly: a.cache_readonly,
        layer_cache_dir: a.layer_cache_dir,
        cache_from: a
            .cache_from
            .iter()
            .map(|s| cache_ref(s))
            .collect::<anyhow::Result<_>>()?,
        progress: progress::choose(&a.progress),
        compression: cairn_engine::LayerCompression::parse(
            &a.layer_compression,
            a.layer_compression_level,
        )
        .map_err(anyhow::Error::msg)?,
        image_format: a.format.parse().map_err(anyhow::Error::msg)?,
        labels: a
            .labels
            .iter()
            .map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| anyhow::anyhow!("--label `{l}`: expected KEY=VALUE"))
            })
            .collect::<anyhow::Result<_>>()?,
        cached_only: a.cached_only,
        explain: a.explain,
        pull_credentials,
        push_credentials,
        snapshotter: cairn_engine::Snapshotter::parse(&a.snapshotter)
            .map_err(|e| anyhow::anyhow!("--snapshotter: {e}"))?,
        step_timeout: a
            .step_timeout
            .map(std::time::Duration::try_from_secs_f64)
            .transpose()
            .context("--step-timeout")?,
        network: if a.network == "none" {
            Network::None
        } else {
            Network::Host
        },
    })
}

/// Enters the build user namespace, then runs `f` on a fresh tokio runtime.
fn in_build_namespace<F, T>(f: F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let ns = cairn_sandbox::userns::enter_build_namespace()
        .context("cannot set up the rootless build namespace")?;
    tracing::debug!(?ns, "in the build namespace");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("install the SIGTERM handler")?;
        // Dropping the build on a signal kills its sandboxes (their helpers are
        // killed on drop) and removes its scratch dir; mounts die with the namespace.
        tokio::select! {
            r = f => r,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
            _ = term.recv() => bail!("terminated"),
        }
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(mut args) => {
            let mut after = kaniko::apply(&mut args)?;
            let opts = build_options(*args, std::mem::take(&mut after.outputs))?;
            let result = match in_build_namespace(async { Ok(cairn_engine::build(&opts).await?) }) {
                Ok(r) => r,
                Err(e) => {
                    after.discard();
                    return Err(e);
                }
            };
            after.finish(&result)?;
            #[allow(clippy::print_stdout)]
            {
                println!("{}", result.manifest_digest);
            }
            Ok(())
        }
        Command::Cache(cmd) => cache_cmd::run(cmd),
        Command::Dev(cmd) => dev::run(cmd),
        Command::Parse(args) => frontend::parse(args),
        Command::Expand(args) => frontend::expand(args),
        Command::Unpack(args) => unpack_cmd::run(*args),
        Command::Devcontainer(cmd) => devcontainer_cmd::run(cmd),
    }
}

/// The error and its causes on one line, leaving out causes whose text the
/// message already carries (library errors include their source in Display).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.contains(&c) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    text
}

/// Parses the command line. Invoked as `executor` (a link named like kaniko's
/// `/kaniko/executor`), `cairn build` is implied. An unknown flag of `build` points
/// at the page that maps kaniko's flags.
fn parse_args() -> Cli {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let as_executor = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == "executor");
    if as_executor {
        args.insert(1, "build".into());
    }
    let is_build = args.get(1).is_some_and(|a| a == "build");
    match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            if is_build && e.kind() == clap::error::ErrorKind::UnknownArgument {
                let _ = e.print();
                #[allow(clippy::print_stderr)]
                {
                    eprintln!(
                        "note: `cairn build` takes kaniko's executor flags; {} lists every \
                         kaniko flag and what cairn does with it",
                        kaniko::DOC
                    );
                }
                std::process::exit(2);
            }
            e.exit()
        }
    }
}

fn main() -> ExitCode {
    // A sandbox helper never returns from here.
    cairn_sandbox::init_if_helper();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = parse_args();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn kaniko_spelling_parses() {
        let cli = Cli::try_parse_from([
            "cairn",
            "build",
            "--context=dir:///ws",
            "--dockerfile=Dockerfile",
            "--destination=r.example/a:1",
            "-d",
            "r.example/a:2",
            "--cache=true",
            "--no-push",
            "--snapshot-mode=redo",
            "--tarPath=/tmp/x.tar",
            "--cache-ttl=336h0m0s",
        ])
        .unwrap();
        let Command::Build(b) = cli.command else {
            panic!("not build")
        };
        assert_eq!(b.kaniko.context.as_deref(), Some("dir:///ws"));
        assert_eq!(b.kaniko.destinations.len(), 2);
        assert_eq!(b.kaniko.cache, Some(true));
        assert_eq!(b.kaniko.no_push, Some(true));
        assert!(b.context.is_none());
        // A bare boolean flag does not swallow the positional context.
        let cli = Cli::try_parse_from(["cairn", "build", "--no-push", "ctx"]).unwrap();
        let Command::Build(b) = cli.command else {
            panic!("not build")
        };
        assert_eq!(b.context.as_deref(), Some(std::path::Path::new("ctx")));
        assert_eq!(b.kaniko.no_push, Some(true));
        let cli = Cli::try_parse_from(["cairn", "build", "ctx", "--cache=false"]).unwrap();
        let Command::Build(b) = cli.command else {
            panic!("not build")
        };
        assert_eq!(b.kaniko.cache, Some(false));
    }
}
