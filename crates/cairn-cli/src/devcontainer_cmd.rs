//! `cairn devcontainer build|plan`: flags to [`cairn_engine::devcontainer`].

use std::path::PathBuf;

use anyhow::{Context, bail};
use cairn_engine::devcontainer::{DevcontainerOptions, LockfileMode};
use cairn_engine::{BuildOptions, StateDir};
use cairn_sandbox::Network;

use crate::{CommonArgs, credential_sources, in_build_namespace, progress};

/// `cairn devcontainer …`.
#[derive(Debug, clap::Subcommand)]
pub enum DevcontainerCommand {
    /// Build a dev container image from devcontainer.json, Features included.
    Build(Box<DevBuildArgs>),
    /// Print what a build would use: config hash, base and Features in install order.
    Plan(Box<PlanArgs>),
}

/// Where the config is and how Features are found.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// The project folder (`${localWorkspaceFolder}`); the config is looked for in
    /// `.devcontainer/devcontainer.json`, `.devcontainer.json` and
    /// `.devcontainer/NAME/devcontainer.json`.
    #[arg(long, value_name = "DIR", default_value = ".")]
    workspace_folder: PathBuf,
    /// The devcontainer.json to use instead of the standard locations.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Resolve OCI and tarball Features from this directory, never the network:
    /// `DIR/oci/<registry>/<namespace…>/<id>/` and `DIR/tarball/<percent-encoded URL>/`.
    #[arg(long, env = "CAIRN_FEATURE_MIRROR", value_name = "DIR")]
    feature_mirror: Option<PathBuf>,
    /// Fail unless devcontainer-lock.json exists and already pins what is resolved.
    #[arg(long, conflicts_with = "no_lockfile")]
    frozen_lockfile: bool,
    /// Neither read nor write devcontainer-lock.json.
    #[arg(long)]
    no_lockfile: bool,
    #[command(flatten)]
    common: CommonArgs,
}

/// `cairn devcontainer build`.
#[derive(Debug, clap::Args)]
pub struct DevBuildArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The image name `REGISTRY/REPO:TAG`; its repository also holds the
    /// config-hash tags (`REPO:<hash>`) that let an unchanged config skip the build.
    #[arg(long, value_name = "REF")]
    image_name: Option<String>,
    /// Push the image (and its config-hash tag). Without it nothing is pushed.
    #[arg(long)]
    push: bool,
    /// Registry layer cache: one immutable entry per step (a Feature is a step).
    #[arg(long, value_name = "REPO")]
    cache_repo: Option<String>,
    /// Also read this registry cache (repeatable).
    #[arg(long = "cache-from", value_name = "REPO")]
    cache_from: Vec<String>,
    /// Read the caches but never write them.
    #[arg(long)]
    cache_readonly: bool,
    /// Use a local directory (an OCI image layout) as the layer cache.
    #[arg(long, value_name = "DIR")]
    layer_cache_dir: Option<PathBuf>,
    /// Write the final image's root filesystem into DIR (envbuilder-style).
    #[arg(long, value_name = "DIR")]
    unpack_to: Option<PathBuf>,
    /// With --unpack-to: where the image's environment is written (a file to source).
    #[arg(long, value_name = "PATH", requires = "unpack_to")]
    env_file: Option<PathBuf>,
    /// Print, per step, cache hit or miss and why.
    #[arg(long)]
    explain: bool,
    /// Dry run: exit 0 and print `CAIRN_CACHED_IMAGE=REF@DIGEST` if the image
    /// exists already (pre-built under the config hash, or whole in the step
    /// cache), else fail. Builds and pushes nothing.
    #[arg(long, conflicts_with_all = ["push", "unpack_to"])]
    cached_only: bool,
    /// Network of the Features' install steps: `host` or `none`.
    #[arg(long, default_value = "host", value_parser = ["host", "none"])]
    network: String,
    /// Layer compression: `gzip` (default), `gzip-single` or `zstd`.
    #[arg(long, value_name = "CODEC", default_value = "gzip")]
    layer_compression: String,
    /// Upper bound of every timestamp written into the image.
    #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
    source_date_epoch: u64,
    /// The build log: `auto`, `plain` or `tty`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "tty"])]
    progress: String,
}

/// `cairn devcontainer plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// A devcontainer.json (shorthand for `--config`).
    file: Option<PathBuf>,
    #[command(flatten)]
    config: ConfigArgs,
    /// Output format (only `json`).
    #[arg(long, default_value = "json", value_parser = ["json"])]
    format: String,
}

fn parse_ref(what: &str, r: &str) -> anyhow::Result<cairn_registry::Reference> {
    r.parse().with_context(|| format!("invalid {what} `{r}`"))
}

/// The options both subcommands share; `build` fills in its own on top.
fn options(c: ConfigArgs, registries: &[String]) -> anyhow::Result<DevcontainerOptions> {
    let (pull_credentials, push_credentials) = credential_sources(&c.common, registries)?;
    let lockfile = match (c.frozen_lockfile, c.no_lockfile) {
        (true, _) => LockfileMode::Frozen,
        (_, true) => LockfileMode::Off,
        _ => LockfileMode::ReadWrite,
    };
    let build = BuildOptions {
        dockerfile: PathBuf::new(),
        dockerfile_text: None,
        named_contexts: Default::default(),
        context: PathBuf::new(),
        build_args: Default::default(),
        target: None,
        tags: Vec::new(),
        push: false,
        outputs: Vec::new(),
        state: StateDir::resolve(c.common.state_dir)?,
        source_date_epoch: 0,
        insecure_registries: c.common.insecure_registries,
        network: Network::Host,
        step_timeout: None,
        secrets: Default::default(),
        ca_cert: None,
        cache_repo: None,
        progress: progress::choose("auto"),
        compression: Default::default(),
        image_format: Default::default(),
        labels: Vec::new(),
        layer_cache_dir: None,
        cache_from: Vec::new(),
        cache_readonly: false,
        cached_only: false,
        explain: false,
        pull_credentials,
        push_credentials,
        snapshotter: Default::default(),
    };
    Ok(DevcontainerOptions {
        workspace_folder: c.workspace_folder,
        config: c.config,
        image_name: None,
        local_env: std::env::vars().collect(),
        feature_mirror: c.feature_mirror,
        lockfile,
        unpack_to: None,
        env_file: None,
        cached_only: false,
        build,
    })
}

/// Runs `cairn devcontainer …`.
pub fn run(cmd: DevcontainerCommand) -> anyhow::Result<()> {
    match cmd {
        DevcontainerCommand::Plan(a) => {
            let a = *a;
            let mut c = a.config;
            if let Some(f) = a.file {
                if c.config.is_some() {
                    bail!("give the devcontainer.json as FILE or --config, not both");
                }
                c.config = Some(f);
            }
            let opts = options(c, &[])?;
            let plan =
                in_build_namespace(async { Ok(cairn_engine::devcontainer::plan(&opts).await?) })?;
            #[allow(clippy::print_stdout)]
            {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            }
            Ok(())
        }
        DevcontainerCommand::Build(a) => {
            let a = *a;
            let image_name = a
                .image_name
                .as_deref()
                .map(|r| parse_ref("--image-name", r))
                .transpose()?;
            let cache_repo = a
                .cache_repo
                .as_deref()
                .map(|r| parse_ref("--cache-repo", r))
                .transpose()?;
            let cache_from = a
                .cache_from
                .iter()
                .map(|r| parse_ref("--cache-from", r))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut registries: Vec<String> = image_name
                .iter()
                .chain(&cache_repo)
                .chain(&cache_from)
                .map(|r| r.registry.clone())
                .collect();
            registries.sort();
            registries.dedup();
            let mut opts = options(a.config, &registries)?;
            opts.image_name = image_name;
            opts.unpack_to = a.unpack_to;
            opts.env_file = a.env_file;
            opts.cached_only = a.cached_only;
            let b = &mut opts.build;
            b.push = a.push;
            b.cache_repo = cache_repo;
            b.cache_from = cache_from;
            b.cache_readonly = a.cache_readonly;
            b.layer_cache_dir = a.layer_cache_dir;
            b.explain = a.explain;
            b.source_date_epoch = a.source_date_epoch;
            b.progress = progress::choose(&a.progress);
            b.network = if a.network == "none" {
                Network::None
            } else {
                Network::Host
            };
            b.compression = cairn_engine::LayerCompression::parse(&a.layer_compression, None)
                .map_err(anyhow::Error::msg)?;
            let result =
                in_build_namespace(async { Ok(cairn_engine::devcontainer::build(&opts).await?) })?;
            if !opts.cached_only {
                #[allow(clippy::print_stdout)]
                {
                    println!("{}", result.manifest_digest);
                }
            }
            Ok(())
        }
    }
}
