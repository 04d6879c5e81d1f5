//! `cairn dev …`: a local registry seeded with a busybox base image, and a demo
//! build against it — so a fresh machine can run cairn's main job with nothing
//! pulled from the internet.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cairn_engine::{BuildOptions, Output, StateDir};
use cairn_testkit::{TestRegistry, seed_busybox};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Run a local registry (CNCF distribution) in the foreground, seeded with
    /// `busybox:latest`, until interrupted.
    Registry {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:5000")]
        addr: SocketAddr,
        /// Storage directory (kept between runs).
        #[arg(long, default_value = "./.cairn-registry")]
        storage: PathBuf,
    },
    /// Push the busybox base image (from the busybox-static package) to a registry.
    Seed {
        /// Registry `host:port`.
        #[arg(long, default_value = "127.0.0.1:5000")]
        registry: String,
    },
    /// The main job on an embedded default: start a registry on a free port, seed
    /// it, build `testdata/examples/hello`, push it, and show what was pushed;
    /// then build the dev container `testdata/examples/devcontainer` twice, the
    /// second time from an empty local state (a pre-built hit).
    Demo {
        /// The example to build.
        #[arg(long, default_value = "testdata/examples/hello")]
        context: PathBuf,
        /// The dev container example (`-` to skip it).
        #[arg(long, default_value = "testdata/examples/devcontainer")]
        devcontainer: PathBuf,
        /// Also write the image as an OCI layout here.
        #[arg(long)]
        oci: Option<PathBuf>,
        /// Local state; default: a temporary directory.
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
}

#[allow(clippy::print_stdout)]
pub fn run(cmd: DevCommand) -> anyhow::Result<()> {
    match cmd {
        DevCommand::Registry { addr, storage } => {
            std::fs::create_dir_all(&storage)
                .with_context(|| format!("create `{}`", storage.display()))?;
            let reg = TestRegistry::start_at(addr, &storage)?;
            let rt = tokio::runtime::Runtime::new()?;
            let seeded = rt.block_on(seed_busybox(&reg.addr(), "busybox", "latest"))?;
            println!("registry on {} (storage {})", reg.addr(), storage.display());
            println!("seeded {} ({})", seeded.reference, seeded.index_digest);
            println!("press Ctrl-C to stop");
            // Ctrl-C or SIGTERM: return, so that dropping `reg` stops the registry
            // (a SIGTERM that killed cairn outright would orphan it).
            rt.block_on(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                tokio::select! {
                    r = tokio::signal::ctrl_c() => r,
                    _ = term.recv() => Ok(()),
                }
            })?;
            drop(reg);
            Ok(())
        }
        DevCommand::Seed { registry } => {
            let rt = tokio::runtime::Runtime::new()?;
            let seeded = rt.block_on(seed_busybox(&registry, "busybox", "latest"))?;
            println!("seeded {} ({})", seeded.reference, seeded.index_digest);
            Ok(())
        }
        DevCommand::Demo {
            context,
            devcontainer,
            oci,
            state_dir,
        } => crate::in_build_namespace(async move {
            let reg = TestRegistry::start()?;
            let seeded = seed_busybox(&reg.addr(), "busybox", "latest").await?;
            println!(
                "local registry {} seeded with {}",
                reg.addr(),
                seeded.reference
            );
            let tmp = tempfile_dir()?;
            let state = StateDir::new(state_dir.unwrap_or_else(|| tmp.join("state")));
            let tag = format!("{}/demo/hello:latest", reg.addr());
            let opts = BuildOptions {
                dockerfile: context.join("Dockerfile"),
                dockerfile_text: None,
                named_contexts: Default::default(),
                context: context.clone(),
                build_args: [("BASE".to_string(), format!("{}/busybox:latest", reg.addr()))]
                    .into_iter()
                    .collect(),
                target: None,
                tags: vec![tag.parse()?],
                push: true,
                outputs: oci
                    .into_iter()
                    .map(|dest| Output::OciLayout { dest })
                    .collect(),
                state,
                source_date_epoch: 0,
                insecure_registries: vec![],
                network: cairn_sandbox::Network::Host,
                step_timeout: None,
                secrets: Default::default(),
                ca_cert: None,
                cache_repo: None,
                cache_readonly: false,
                cache_from: Vec::new(),
                layer_cache_dir: None,
                labels: Vec::new(),
                compression: Default::default(),
                image_format: Default::default(),
                progress: crate::progress::choose("auto"),
                cached_only: false,
                explain: false,
                pull_credentials: Default::default(),
                push_credentials: Default::default(),
                snapshotter: Default::default(),
            };
            let started = std::time::Instant::now();
            let result = cairn_engine::build(&opts).await?;
            println!(
                "built and pushed {tag} in {:.2}s: manifest {}, {} layers",
                started.elapsed().as_secs_f64(),
                result.manifest_digest,
                result.layers
            );
            if devcontainer != std::path::Path::new("-") {
                demo_devcontainer(&devcontainer, &reg.addr(), &opts, &tmp).await?;
            }
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        }),
    }
}

/// Builds the dev container example twice: cold (pushed with its config-hash
/// tag), then from an empty local state, where the config hash finds the image.
async fn demo_devcontainer(
    workspace: &std::path::Path,
    registry: &str,
    base: &BuildOptions,
    tmp: &std::path::Path,
) -> anyhow::Result<()> {
    let image = format!("{registry}/demo/devcontainer:latest");
    for (n, what) in ["cold", "again, empty local state"].iter().enumerate() {
        let mut build = base.clone();
        build.state = StateDir::new(tmp.join(format!("dc-state-{n}")));
        build.outputs = Vec::new();
        let opts = cairn_engine::devcontainer::DevcontainerOptions {
            workspace_folder: workspace.to_path_buf(),
            config: None,
            image_name: Some(image.parse()?),
            // Only what the example's `${localEnv:…}` needs, not cairn's environment.
            local_env: [("CAIRN_DEMO_REGISTRY".to_string(), registry.to_string())].into(),
            feature_mirror: None,
            lockfile: cairn_engine::devcontainer::LockfileMode::Off,
            unpack_to: None,
            env_file: None,
            cached_only: false,
            build,
        };
        let started = std::time::Instant::now();
        let r = cairn_engine::devcontainer::build(&opts).await?;
        println!(
            "dev container {image} ({what}): {:.2}s, {}, config hash {}",
            started.elapsed().as_secs_f64(),
            if r.prebuilt {
                "pre-built image used"
            } else {
                "built and pushed"
            },
            r.config_hash
        );
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("cairn-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create `{}`", dir.display()))?;
    Ok(dir)
}
