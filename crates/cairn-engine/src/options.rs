use std::collections::BTreeMap;
use std::path::PathBuf;

use cairn_registry::Reference;

pub use cairn_oci::LayerCompression as OciCompression;

/// Layer compression: the codec and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerCompression {
    /// The codec.
    pub codec: OciCompression,
    /// Level (gzip 1–9, zstd 1–19).
    pub level: u32,
}

impl Default for LayerCompression {
    /// gzip level 6 compressed in parallel (pigz-style): one gzip member whose bytes
    /// do not depend on the number of cores.
    fn default() -> Self {
        LayerCompression {
            codec: OciCompression::ParallelGzip,
            level: 6,
        }
    }
}

impl LayerCompression {
    /// The identity cache keys record (`gzip-parallel/6`, `gzip/6`, `zstd/3`).
    pub fn key_id(&self) -> String {
        match self.codec {
            OciCompression::Gzip => format!("gzip/{}", self.level),
            OciCompression::ParallelGzip => format!("gzip-parallel/{}", self.level),
            OciCompression::Zstd { .. } => format!("zstd/{}", self.level),
            _ => format!("other/{}", self.level),
        }
    }

    /// Parses `gzip`, `gzip-single` or `zstd`, with a level (default 6 for gzip,
    /// 3 for zstd).
    pub fn parse(codec: &str, level: Option<u32>) -> Result<LayerCompression, String> {
        let (codec, default) = match codec {
            "gzip" | "gzip-parallel" => (OciCompression::ParallelGzip, 6),
            "gzip-single" => (OciCompression::Gzip, 6),
            "zstd" => (OciCompression::Zstd { level: 3 }, 3),
            other => {
                return Err(format!(
                    "unknown layer compression `{other}` (gzip, gzip-single, zstd)"
                ));
            }
        };
        let level = level.unwrap_or(default);
        let codec = match codec {
            OciCompression::Zstd { .. } if (1..=19).contains(&level) => OciCompression::Zstd {
                level: i32::try_from(level).unwrap_or(3),
            },
            OciCompression::Zstd { .. } => return Err(format!("zstd level {level} is not 1–19")),
            c if (1..=9).contains(&level) => c,
            _ => return Err(format!("gzip level {level} is not 1–9")),
        };
        Ok(LayerCompression { codec, level })
    }
}
use cairn_sandbox::Network;

use crate::StateDir;

/// Where the finished image goes besides the local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// An OCI image layout directory.
    OciLayout {
        /// Directory to write (created).
        dest: PathBuf,
    },
}

/// Where a `--secret` value comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file (`src=PATH`).
    File(PathBuf),
    /// An environment variable of cairn's process (`env=NAME`).
    Env(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Where it comes from, never its value.
        match self {
            SecretSource::File(p) => write!(f, "File({})", p.display()),
            SecretSource::Env(n) => write!(f, "Env({n})"),
        }
    }
}

impl SecretSource {
    /// Parses `id=ID,src=PATH` / `id=ID,env=NAME` (also `source=`, `type=file|env`);
    /// without `src`/`env` the value comes from the env var named by the id.
    pub fn parse(spec: &str) -> Result<(String, SecretSource), String> {
        let (mut id, mut src, mut env) = (None, None, None);
        for field in spec.split(',') {
            match field.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
                Some(("env", v)) => env = Some(v.to_string()),
                Some(("type", "file" | "env")) => {}
                _ => return Err(format!("--secret `{spec}`: unknown part `{field}`")),
            }
        }
        let id = id.ok_or_else(|| format!("--secret `{spec}`: `id=` is required"))?;
        let source = match (src, env) {
            (Some(p), None) => SecretSource::File(p),
            (None, Some(e)) => SecretSource::Env(e),
            (None, None) => SecretSource::Env(id.clone()),
            (Some(_), Some(_)) => {
                return Err(format!("--secret `{spec}`: give src= or env=, not both"));
            }
        };
        Ok((id, source))
    }

    /// The secret's value.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            SecretSource::File(p) => {
                std::fs::read(p).map_err(|e| format!("read `{}`: {e}", p.display()))
            }
            SecretSource::Env(n) => std::env::var_os(n)
                .map(|v| v.into_encoded_bytes())
                .ok_or_else(|| format!("environment variable `{n}` is not set")),
        }
    }
}

/// How a step's changes become its layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Snapshotter {
    /// `Overlay` when a probe overlay mounts in the build namespace (once per
    /// build), else `Walk` with a notice.
    #[default]
    Auto,
    /// The step's root is an overlay; its upper dir is the layer.
    Overlay,
    /// For systems without overlayfs in a user namespace (cairn inside a
    /// container): the step runs in a copy of its flattened parent root and the
    /// layer is the difference of the two trees. Slower; the same layers.
    Walk,
}

impl Snapshotter {
    /// `auto`, `overlay` or `walk`.
    pub fn parse(s: &str) -> Result<Snapshotter, String> {
        match s {
            "auto" => Ok(Snapshotter::Auto),
            "overlay" => Ok(Snapshotter::Overlay),
            "walk" => Ok(Snapshotter::Walk),
            other => Err(format!(
                "unknown snapshotter `{other}` (expected auto, overlay or walk)"
            )),
        }
    }
}

/// Everything a build needs to know.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The Dockerfile.
    pub dockerfile: PathBuf,
    /// The Dockerfile's text, when it is not read from `dockerfile` (a generated
    /// build such as a devcontainer's); `dockerfile` then names it in messages and
    /// locates its `.dockerignore`.
    pub dockerfile_text: Option<String>,
    /// Named build contexts (`--build-context NAME=DIR`, BuildKit's): `COPY
    /// --from=NAME` and `RUN --mount=from=NAME` read the directory; a name given
    /// here wins over a stage or image of that name.
    pub named_contexts: BTreeMap<String, PathBuf>,
    /// The build context directory.
    pub context: PathBuf,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target` stage (default: the last).
    pub target: Option<String>,
    /// `-t` references.
    pub tags: Vec<Reference>,
    /// Push the tags to their registries.
    pub push: bool,
    /// Extra outputs.
    pub outputs: Vec<Output>,
    /// Local state.
    pub state: StateDir,
    /// Upper bound of every timestamp written (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: u64,
    /// Registries reached over plain HTTP (loopback ones always are).
    pub insecure_registries: Vec<String>,
    /// Default network of RUN steps.
    pub network: Network,
    /// A RUN step running longer is killed and fails the build.
    pub step_timeout: Option<std::time::Duration>,
    /// `--secret` values for `RUN --mount=type=secret`, by id.
    pub secrets: BTreeMap<String, SecretSource>,
    /// An extra CA certificate (PEM) trusted for ADD downloads.
    pub ca_cert: Option<PathBuf>,
    /// The registry cache repository (`--cache-repo`).
    pub cache_repo: Option<Reference>,
    /// Where the build log goes.
    pub progress: std::sync::Arc<dyn crate::Progress>,
    /// How layers are compressed (part of every cache key: other bytes, other keys).
    pub compression: LayerCompression,
    /// Manifest and config media types of the image (`--format oci|docker`); part
    /// of the whole-image cache key (not of step keys: layers are the same bytes).
    pub image_format: cairn_oci::ImageFormat,
    /// `--label K=V`: labels added after the target stage's last instruction (they
    /// are part of its final cache key, like a LABEL line).
    pub labels: Vec<(String, String)>,
    /// A local directory used as the cache (`--layer-cache-dir`), an OCI layout.
    pub layer_cache_dir: Option<PathBuf>,
    /// More caches to read, after `cache_repo` (`--cache-from type=registry,ref=…`).
    pub cache_from: Vec<Reference>,
    /// Read the cache, never write it (`--cache-readonly`).
    pub cache_readonly: bool,
    /// Dry run: succeed only if everything is cached (`--cached-only`).
    pub cached_only: bool,
    /// Print, per step, hit or miss and why (`--explain`).
    pub explain: bool,
    /// Credentials for reading registries (GET/HEAD).
    pub pull_credentials: cairn_registry::CredentialSource,
    /// Credentials for writing (pushes, cache entries); never used to read.
    pub push_credentials: cairn_registry::CredentialSource,
    /// How steps' layers are taken (`--snapshotter`).
    pub snapshotter: Snapshotter,
}

impl BuildOptions {
    /// The registry client of a build: its insecure registries and its separate
    /// pull and push credentials.
    pub(crate) fn registry_client(&self) -> Result<cairn_registry::Client, crate::Error> {
        cairn_registry::Client::new(cairn_registry::ClientOptions {
            insecure_registries: self.insecure_registries.clone(),
            pull_credentials: self.pull_credentials.clone(),
            push_credentials: self.push_credentials.clone(),
            ..Default::default()
        })
        .map_err(crate::Error::registry("set up the registry client"))
    }
}
