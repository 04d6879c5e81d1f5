//! `cairn` — the command line. Parses arguments, enters the build user namespace
//! for commands that build, and calls the engine. Errors are reported here, with
//! their whole chain of causes; nothing below this crate knows about the CLI.

mod dev;
mod frontend;

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
    /// Build an image from a Dockerfile.
    Build(Box<BuildArgs>),
    /// Developer tooling: a local registry with seed base images, a demo build.
    #[command(subcommand)]
    Dev(dev::DevCommand),
    /// Print a Dockerfile's instructions as JSON (BuildKit's raw parse).
    Parse(frontend::ParseArgs),
    /// Expand a word as a Dockerfile instruction would (BuildKit's shell lexer).
    Expand(frontend::ExpandArgs),
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
    /// The build context directory.
    context: PathBuf,
    /// The Dockerfile (default: `CONTEXT/Dockerfile`).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
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
    /// Upper bound of every timestamp written into the image.
    #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
    source_date_epoch: u64,
    #[command(flatten)]
    common: CommonArgs,
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

fn build_options(a: BuildArgs) -> anyhow::Result<BuildOptions> {
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
    registries.sort();
    registries.dedup();
    let (pull_credentials, push_credentials) = credential_sources(&a.common, &registries)?;
    let outputs = a
        .outputs
        .iter()
        .map(|o| parse_output(o))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(BuildOptions {
        dockerfile: a.file.unwrap_or_else(|| a.context.join("Dockerfile")),
        context: a.context,
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
        cache_repo: a
            .cache_repo
            .as_deref()
            .map(|r| {
                r.parse()
                    .with_context(|| format!("invalid --cache-repo `{r}`"))
            })
            .transpose()?,
        cache_readonly: a.cache_readonly,
        cached_only: a.cached_only,
        explain: a.explain,
        pull_credentials,
        push_credentials,
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
        Command::Build(args) => {
            let opts = build_options(*args)?;
            let result = in_build_namespace(async { Ok(cairn_engine::build(&opts).await?) })?;
            #[allow(clippy::print_stdout)]
            {
                println!("{}", result.manifest_digest);
            }
            Ok(())
        }
        Command::Dev(cmd) => dev::run(cmd),
        Command::Parse(args) => frontend::parse(args),
        Command::Expand(args) => frontend::expand(args),
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
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}
