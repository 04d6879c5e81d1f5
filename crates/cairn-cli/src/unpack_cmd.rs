//! `cairn unpack IMAGE DIR`: writes an image's root file system into a directory
//! (envbuilder-style) and its environment into a file a shell can source. The
//! engine does the work (`cairn_engine::unpack`); this parses the flags and runs it
//! inside the build user namespace, so file owners are kept for ordinary users too.

use std::path::PathBuf;

use crate::{CommonArgs, credential_sources, in_build_namespace, progress};

/// `cairn unpack`.
#[derive(Debug, clap::Args)]
pub struct UnpackArgs {
    /// The image: `REGISTRY/REPO[:TAG|@DIGEST]`, or `oci:DIR[:TAG]` for an OCI image
    /// layout (without TAG: its only image, else the one tagged `latest`).
    #[arg(value_name = "IMAGE")]
    image: String,
    /// The directory to write the root file system into. Created if missing; if it
    /// exists (`/` included) the image's layers are applied on top of what is there:
    /// the image's files replace those of the same path, its deletions delete,
    /// everything else stays.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Where to write the image's environment, as POSIX-shell `export NAME='value'`
    /// lines (plus unexported `CAIRN_IMAGE_WORKDIR` and `CAIRN_IMAGE_USER`);
    /// default `DIR/.cairn-image.env`. Its directory must exist.
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
    /// The log: `auto` (bars on a terminal, else plain lines), `plain`, `tty`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "tty"])]
    progress: String,
    #[command(flatten)]
    common: CommonArgs,
}

/// Runs `cairn unpack`; prints the unpacked manifest's digest on stdout.
pub fn run(a: UnpackArgs) -> anyhow::Result<()> {
    let source = cairn_engine::UnpackSource::parse(&a.image)?;
    let registries = match &source {
        cairn_engine::UnpackSource::Registry(r) => vec![r.registry.clone()],
        cairn_engine::UnpackSource::OciLayout { .. } => Vec::new(),
    };
    let (pull_credentials, _) = credential_sources(&a.common, &registries)?;
    let opts = cairn_engine::UnpackOptions {
        source,
        dest: a.dir,
        env_file: a.env_file,
        state: cairn_engine::StateDir::resolve(a.common.state_dir)?,
        insecure_registries: a.common.insecure_registries,
        pull_credentials,
        progress: progress::choose(&a.progress),
    };
    let result = in_build_namespace(async { Ok(cairn_engine::unpack(&opts).await?) })?;
    #[allow(clippy::print_stdout)]
    {
        println!("{}", result.manifest_digest);
    }
    Ok(())
}
