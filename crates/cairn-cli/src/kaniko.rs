//! kaniko executor compatibility: `cairn build` accepts kaniko's spelling
//! (`--context`, `--dockerfile`, `--destination`, `--cache=true`, …) so a CI job
//! switches builders by changing the image name. Every kaniko flag is either mapped
//! onto cairn's options, accepted and ignored (with a warning saying why), or
//! rejected naming `docs/kaniko-flags.md`; that page is the contract.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cairn_engine::{BuildResult, Output};
use cairn_registry::Reference;

use crate::BuildArgs;

/// The page mapping every kaniko flag to cairn's.
pub const DOC: &str = "docs/kaniko-flags.md";

/// kaniko's executor flags (those `cairn build` does not already have under the
/// same name: `--build-arg`, `--target`, `--cache-repo`, `--insecure-registry`).
/// Booleans take kaniko's forms: `--flag`, `--flag=true`, `--flag=false`.
#[derive(Debug, Default, clap::Args)]
#[command(next_help_heading = "kaniko executor flags (see docs/kaniko-flags.md)")]
pub struct KanikoArgs {
    /// The build context: a directory, optionally `dir://DIR` (instead of CONTEXT).
    #[arg(
        id = "kaniko_context",
        long = "context",
        short = 'c',
        value_name = "DIR"
    )]
    pub context: Option<String>,
    /// A subdirectory of the context to use as the context.
    #[arg(long, value_name = "PATH")]
    pub context_sub_path: Option<PathBuf>,
    /// Name and push the image (`REGISTRY/REPO:TAG`); repeatable; implies `--push`
    /// unless `--no-push`.
    #[arg(long = "destination", short = 'd', value_name = "REF")]
    pub destinations: Vec<String>,
    /// Use the registry layer cache (`--cache-repo`, default `<first destination
    /// repository>/cache`); `--cache=false` turns it off.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub cache: Option<bool>,
    /// Accepted: cairn's entries are immutable and never expire on read; apply an
    /// age limit with `cairn cache prune --older-than`.
    #[arg(long, value_name = "DURATION")]
    pub cache_ttl: Option<String>,
    /// Do not push the destinations (they still name the image).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_push: Option<bool>,
    /// Read the cache, never write it (cairn's `--cache-readonly`).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_push_cache: Option<bool>,
    /// Also write the image as a tar: an OCI image layout plus a docker
    /// `manifest.json`, loadable by `docker load` and as `oci-archive:`.
    #[arg(long, alias = "tarPath", value_name = "PATH")]
    pub tar_path: Option<PathBuf>,
    /// Also write the image as an OCI image layout directory.
    #[arg(long, value_name = "DIR")]
    pub oci_layout_path: Option<PathBuf>,
    /// Write the image manifest digest (`sha256:…`) to this file.
    #[arg(long, value_name = "PATH")]
    pub digest_file: Option<PathBuf>,
    /// Write `REPO@sha256:…` per destination to this file.
    #[arg(long, value_name = "PATH")]
    pub image_name_with_digest_file: Option<PathBuf>,
    /// Write `REPO:TAG@sha256:…` per destination to this file.
    #[arg(long, value_name = "PATH")]
    pub image_name_tag_with_digest_file: Option<PathBuf>,
    /// Accepted: cairn's images are always reproducible (timestamps are
    /// `SOURCE_DATE_EPOCH`, default 0).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub reproducible: Option<bool>,
    /// Speak plain HTTP to the destination and cache registries.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure: Option<bool>,
    /// As `--insecure` (plain HTTP; cairn cannot skip certificate verification).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub skip_tls_verify: Option<bool>,
    /// As `--insecure-registry HOST` (plain HTTP).
    #[arg(long, value_name = "HOST")]
    pub skip_tls_verify_registry: Vec<String>,
    /// Only the host's platform is accepted.
    #[arg(long, alias = "customPlatform", value_name = "OS/ARCH")]
    pub custom_platform: Option<String>,
    /// Only `gzip` (cairn's layer compression) is accepted.
    #[arg(long, value_name = "ALGO")]
    pub compression: Option<String>,

    // ---- accepted and ignored (each says why, once, on stderr) ----------
    #[arg(long, alias = "snapshotMode", hide = true)]
    pub snapshot_mode: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub use_new_run: Option<bool>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub cleanup: Option<bool>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub force: Option<bool>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub compressed_caching: Option<bool>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub cache_copy_layers: Option<bool>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub cache_run_layers: Option<bool>,
    #[arg(long, hide = true)]
    pub cache_dir: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub ignore_var_run: Option<bool>,
    #[arg(long, hide = true)]
    pub ignore_path: Vec<String>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub skip_unused_stages: Option<bool>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub skip_push_permission_check: Option<bool>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub force_build_metadata: Option<bool>,
    #[arg(long, hide = true)]
    pub compression_level: Option<String>,
    #[arg(long, hide = true)]
    pub kaniko_dir: Option<String>,
    #[arg(long, hide = true)]
    pub push_retry: Option<String>,
    #[arg(long, hide = true)]
    pub image_fs_extract_retry: Option<String>,
    #[arg(long, hide = true)]
    pub image_download_retry: Option<String>,
    #[arg(long, hide = true)]
    pub log_format: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub log_timestamp: Option<bool>,
    #[arg(long, short = 'v', hide = true)]
    pub verbosity: Option<String>,

    // ---- rejected (each error names the doc page) -------------------------
    #[arg(long, hide = true)]
    pub label: Vec<String>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub single_snapshot: Option<bool>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure_pull: Option<bool>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub skip_tls_verify_pull: Option<bool>,
    #[arg(long, hide = true)]
    pub registry_mirror: Vec<String>,
    #[arg(long, hide = true)]
    pub registry_map: Vec<String>,
    #[arg(long, hide = true)]
    pub registry_certificate: Vec<String>,
    #[arg(long, hide = true)]
    pub registry_client_cert: Vec<String>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub skip_default_registry_fallback: Option<bool>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub push_ignore_immutable_tag_errors: Option<bool>,
    #[arg(long, hide = true)]
    pub git: Option<String>,
    #[arg(long, short = 'b', hide = true)]
    pub bucket: Option<String>,
}

/// What to do after the build: kaniko's digest files and tarball.
#[derive(Debug, Default)]
pub struct After {
    /// Outputs the engine writes besides the `--output`s.
    pub outputs: Vec<Output>,
    digest_file: Option<PathBuf>,
    name_digest_file: Option<PathBuf>,
    name_tag_digest_file: Option<PathBuf>,
    /// `--tar-path`, and the OCI layout it is made from (removed after when temporary).
    tar: Option<(PathBuf, PathBuf, bool)>,
    destinations: Vec<Reference>,
}

fn rejected(flag: &str, why: &str) -> anyhow::Error {
    anyhow::anyhow!("kaniko flag `--{flag}` is not supported: {why} (see {DOC})")
}

fn ignored(flag: &str, why: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("warning: ignoring kaniko flag `--{flag}`: {why}");
    }
}

/// Parses a duration: one or more `<number><unit>` with units `ns us ms s m h`
/// (Go's, as kaniko's `--cache-ttl=336h0m0s`) and `d`, `w`.
pub fn parse_duration(text: &str) -> anyhow::Result<std::time::Duration> {
    let t = text.trim();
    if t.is_empty() {
        bail!("empty duration");
    }
    if t == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut secs = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let n: f64 = num
            .parse()
            .map_err(|_| anyhow::anyhow!("duration `{text}`: bad number `{num}`"))?;
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 7.0 * 86400.0,
            "" => bail!("duration `{text}`: a unit is required (s, m, h, d, w)"),
            u => bail!("duration `{text}`: unknown unit `{u}` (s, m, h, d, w)"),
        };
        secs += n * scale;
        rest = tail;
    }
    std::time::Duration::try_from_secs_f64(secs).with_context(|| format!("duration `{text}`"))
}

fn on(b: Option<bool>) -> bool {
    b.unwrap_or(false)
}

/// Maps the kaniko flags onto `a` (context, Dockerfile, tags, push, cache,
/// insecure registries); returns what to do besides the build.
pub fn apply(a: &mut BuildArgs) -> anyhow::Result<After> {
    let k = std::mem::take(&mut a.kaniko);
    check_unsupported(&k)?;
    a.labels.extend(k.label.iter().cloned());
    warn_ignored(&k);

    // Context: CONTEXT or --context (kaniko's `dir://` prefix accepted).
    let flag_ctx = match k.context.as_deref() {
        None => None,
        Some(c) => {
            let c = c.strip_prefix("dir://").unwrap_or(c);
            if c.contains("://") {
                return Err(rejected(
                    "context",
                    &format!(
                        "`{c}`: only local directories (plain or `dir://`) are build contexts; \
                         fetch remote contexts (gs://, s3://, git://, https://, tar://) first"
                    ),
                ));
            }
            Some(PathBuf::from(c))
        }
    };
    let mut context = match (a.context.take(), flag_ctx) {
        (Some(p), Some(f)) if p != f => {
            bail!(
                "two build contexts: `{}` and --context `{}`",
                p.display(),
                f.display()
            )
        }
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => bail!("no build context: give CONTEXT or --context=DIR"),
    };
    if let Some(sub) = &k.context_sub_path {
        context = context.join(sub);
    }
    if !context.is_dir() {
        bail!("build context `{}` is not a directory", context.display());
    }
    // kaniko: `--dockerfile` as given if it exists, else relative to the context.
    a.file = Some(match a.file.take() {
        Some(f) if !f.exists() && context.join(&f).exists() => context.join(f),
        Some(f) => f,
        None => context.join("Dockerfile"),
    });
    a.context = Some(context);

    // Destinations name the image and are pushed unless --no-push.
    let destinations = k
        .destinations
        .iter()
        .map(|d| {
            d.parse::<Reference>()
                .with_context(|| format!("invalid --destination `{d}`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let no_push = on(k.no_push);
    if no_push && a.push {
        bail!("--push and --no-push contradict each other");
    }
    a.tags.extend(k.destinations.iter().cloned());
    a.push = a.push || (!destinations.is_empty() && !no_push);

    // The cache.
    if let Some(r) = &a.cache_repo
        && r.starts_with("oci:")
    {
        return Err(rejected(
            "cache-repo",
            "an `oci:` (local OCI layout) cache repository; give a registry repository",
        ));
    }
    if k.cache == Some(false) && a.cache_repo.take().is_some() {
        ignored("cache-repo", "`--cache=false` turns the cache off");
    }
    if k.cache == Some(true) && a.cache_repo.is_none() {
        let Some(first) = destinations.first().filter(|_| !no_push) else {
            bail!(
                "--cache without --cache-repo takes the cache repository from the first \
                 --destination (`<repo>/cache`), so it needs one, without --no-push \
                 (as kaniko); give --cache-repo"
            );
        };
        a.cache_repo = Some(format!("{}/cache", first.name()));
    }
    if let Some(ttl) = &k.cache_ttl {
        parse_duration(ttl).context("--cache-ttl")?;
        tracing::info!(
            "--cache-ttl={ttl}: cairn cache entries never expire on read; \
             `cairn cache prune --older-than` applies an age limit"
        );
    }
    if on(k.no_push_cache) {
        a.cache_readonly = true;
    }

    // Plain HTTP for the registries written to.
    if on(k.insecure) || on(k.skip_tls_verify) {
        let mut hosts: Vec<String> = destinations.iter().map(|d| d.registry.clone()).collect();
        if let Some(r) = &a.cache_repo
            && let Ok(r) = r.parse::<Reference>()
        {
            hosts.push(r.registry);
        }
        a.common.insecure_registries.extend(hosts);
    }
    a.common
        .insecure_registries
        .extend(k.skip_tls_verify_registry.iter().cloned());
    a.common.insecure_registries.sort();
    a.common.insecure_registries.dedup();

    if let Some(p) = &k.custom_platform {
        let host = cairn_engine::Platform::host();
        let mut parts = p.split('/');
        let (os, arch, variant) = (parts.next(), parts.next(), parts.next());
        if !matches!((os, arch), (Some(os), Some(arch)) if host.matches(os, arch, variant)) {
            return Err(rejected(
                "custom-platform",
                &format!(
                    "`{p}`: cairn builds for the host platform ({}) only",
                    host.to_string_short()
                ),
            ));
        }
    }
    if let Some(c) = &k.compression {
        a.layer_compression = c.clone();
    }
    if let Some(l) = &k.compression_level {
        a.layer_compression_level = Some(
            l.parse()
                .map_err(|_| rejected("compression-level", &format!("`{l}` is not a number")))?,
        );
    }

    // Outputs.
    let mut after = After {
        digest_file: k.digest_file,
        name_digest_file: k.image_name_with_digest_file,
        name_tag_digest_file: k.image_name_tag_with_digest_file,
        destinations,
        ..After::default()
    };
    if let Some(dest) = &k.oci_layout_path {
        after.outputs.push(Output::OciLayout { dest: dest.clone() });
    }
    if let Some(tar) = k.tar_path {
        let (layout, temporary) = match &k.oci_layout_path {
            Some(l) => (l.clone(), false),
            None => {
                let name = tar
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "image.tar".into());
                let dir = tar
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let layout = dir.join(format!(".{name}.cairn-layout-{}", std::process::id()));
                after.outputs.push(Output::OciLayout {
                    dest: layout.clone(),
                });
                (layout, true)
            }
        };
        after.tar = Some((tar, layout, temporary));
    }
    Ok(after)
}

fn check_unsupported(k: &KanikoArgs) -> anyhow::Result<()> {
    if on(k.single_snapshot) {
        return Err(rejected(
            "single-snapshot",
            "cairn writes one layer per step (each a cache entry); squashing is not implemented",
        ));
    }
    if on(k.insecure_pull) || on(k.skip_tls_verify_pull) {
        return Err(rejected(
            "insecure-pull",
            "the registries pulled from are known only from the Dockerfile; \
             name them with `--insecure-registry HOST` (plain HTTP)",
        ));
    }
    let unsupported: [(&str, bool, &str); 8] = [
        (
            "registry-mirror",
            !k.registry_mirror.is_empty(),
            "registry mirrors are not implemented; name the mirror in FROM (`--build-arg`)",
        ),
        (
            "registry-map",
            !k.registry_map.is_empty(),
            "registry maps are not implemented; name the mirror in FROM (`--build-arg`)",
        ),
        (
            "registry-certificate",
            !k.registry_certificate.is_empty(),
            "per-registry CA certificates are not implemented; add the CA to the system trust store",
        ),
        (
            "registry-client-cert",
            !k.registry_client_cert.is_empty(),
            "mutual TLS with registries is not implemented",
        ),
        (
            "skip-default-registry-fallback",
            on(k.skip_default_registry_fallback),
            "registry mirrors are not implemented",
        ),
        (
            "push-ignore-immutable-tag-errors",
            on(k.push_ignore_immutable_tag_errors),
            "a refused push fails the build",
        ),
        (
            "git",
            k.git.is_some(),
            "git build contexts are not supported; clone first and pass the directory",
        ),
        (
            "bucket",
            k.bucket.is_some(),
            "bucket build contexts are not supported; download and unpack first",
        ),
    ];
    for (flag, given, why) in unsupported {
        if given {
            return Err(rejected(flag, why));
        }
    }
    Ok(())
}

fn warn_ignored(k: &KanikoArgs) {
    let list: [(&str, bool, &str); 18] = [
        (
            "snapshot-mode",
            k.snapshot_mode.is_some(),
            "cairn takes each step's changes from its overlay upper directory; there is no snapshot to tune",
        ),
        (
            "use-new-run",
            k.use_new_run.is_some(),
            "cairn's RUN never scans the file system",
        ),
        (
            "cleanup",
            k.cleanup.is_some(),
            "cairn builds in a scratch directory it always removes",
        ),
        (
            "force",
            k.force.is_some(),
            "cairn runs anywhere (rootless, in or out of a container)",
        ),
        (
            "compressed-caching",
            k.compressed_caching.is_some(),
            "cached layers are the image's own compressed layers",
        ),
        (
            "cache-copy-layers",
            k.cache_copy_layers.is_some(),
            "every step (COPY and ADD included) is a cache entry",
        ),
        (
            "cache-run-layers",
            k.cache_run_layers.is_some(),
            "every step is a cache entry",
        ),
        (
            "cache-dir",
            k.cache_dir.is_some(),
            "base images are cached in cairn's state dir (--state-dir)",
        ),
        (
            "ignore-var-run",
            k.ignore_var_run.is_some(),
            "cairn's steps run in a sandbox; nothing of the host's /var/run enters the image",
        ),
        (
            "ignore-path",
            !k.ignore_path.is_empty(),
            "cairn's steps run in a sandbox; no host path enters the image",
        ),
        (
            "skip-unused-stages",
            k.skip_unused_stages.is_some(),
            "cairn builds only the stages the target needs",
        ),
        (
            "skip-push-permission-check",
            k.skip_push_permission_check.is_some(),
            "cairn does no push permission check before building",
        ),
        (
            "force-build-metadata",
            k.force_build_metadata.is_some(),
            "metadata-only steps never add layers",
        ),
        (
            "kaniko-dir",
            k.kaniko_dir.is_some(),
            "cairn keeps its state in --state-dir",
        ),
        (
            "push-retry",
            k.push_retry.is_some(),
            "cairn retries registry requests itself",
        ),
        (
            "image-fs-extract-retry",
            k.image_fs_extract_retry.is_some(),
            "cairn retries registry requests itself",
        ),
        (
            "image-download-retry",
            k.image_download_retry.is_some(),
            "cairn retries registry requests itself",
        ),
        (
            "log-format",
            k.log_format.is_some() || k.log_timestamp.is_some() || k.verbosity.is_some(),
            "set CAIRN_LOG (e.g. CAIRN_LOG=info) for more output (also --log-timestamp, --verbosity)",
        ),
    ];
    for (flag, given, why) in list {
        if given {
            ignored(flag, why);
        }
    }
    if k.reproducible.is_some() {
        tracing::info!("--reproducible: cairn's images are always reproducible");
    }
}

impl After {
    /// Writes the digest files and the tarball.
    pub fn finish(self, result: &BuildResult) -> anyhow::Result<()> {
        let digest = result.manifest_digest.to_string();
        if let Some(p) = &self.digest_file {
            write_file(p, digest.as_bytes())?;
        }
        if let Some(p) = &self.name_digest_file {
            let text: String = self
                .destinations
                .iter()
                .map(|d| format!("{}@{digest}\n", d.name()))
                .collect();
            write_file(p, text.as_bytes())?;
        }
        if let Some(p) = &self.name_tag_digest_file {
            let text: String = self
                .destinations
                .iter()
                .map(|d| {
                    let tag = d.tag.as_deref().unwrap_or("latest");
                    format!("{}:{tag}@{digest}\n", d.name())
                })
                .collect();
            write_file(p, text.as_bytes())?;
        }
        if let Some((tar, layout, temporary)) = &self.tar {
            let repo_tags: Vec<String> = self
                .destinations
                .iter()
                .filter(|d| d.digest.is_none())
                .map(|d| format!("{}:{}", d.name(), d.tag.as_deref().unwrap_or("latest")))
                .collect();
            let written = write_image_tar(layout, tar, &repo_tags);
            if *temporary {
                let _ = std::fs::remove_dir_all(layout);
            }
            written.with_context(|| format!("write --tar-path `{}`", tar.display()))?;
            #[allow(clippy::print_stderr)]
            {
                eprintln!("wrote image tarball {}", tar.display());
            }
        }
        Ok(())
    }

    /// Removes the temporary layout (after a failed build).
    pub fn discard(&self) {
        if let Some((_, layout, true)) = &self.tar {
            let _ = std::fs::remove_dir_all(layout);
        }
    }
}

fn write_file(p: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create `{}`", dir.display()))?;
    }
    std::fs::write(p, bytes).with_context(|| format!("write `{}`", p.display()))
}

/// Tars an OCI image layout (`oci-layout`, `index.json`, `blobs/`) and adds a
/// docker `manifest.json` naming the same config and layer blobs, so that one file
/// is both an OCI archive and a docker archive (`docker load` reads
/// `manifest.json` and decompresses the gzip layers; Docker 25's `docker save`
/// writes the same shape).
fn write_image_tar(layout: &Path, tar: &Path, repo_tags: &[String]) -> anyhow::Result<()> {
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("index.json")).context("read the layout's index.json")?,
    )
    .context("parse index.json")?;
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .context("index.json names no manifest")?;
    let blob = |d: &str| -> anyhow::Result<String> {
        let hex = d
            .strip_prefix("sha256:")
            .with_context(|| format!("unsupported digest `{d}`"))?;
        Ok(format!("blobs/sha256/{hex}"))
    };
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join(blob(manifest_digest)?)).context("read the image manifest")?,
    )
    .context("parse the image manifest")?;
    let config = blob(
        manifest["config"]["digest"]
            .as_str()
            .context("manifest without config")?,
    )?;
    let layers = manifest["layers"]
        .as_array()
        .context("manifest without layers")?
        .iter()
        .map(|l| blob(l["digest"].as_str().unwrap_or_default()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let docker_manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config,
        "RepoTags": repo_tags,
        "Layers": layers,
    }]))?;

    let mut blobs: Vec<PathBuf> = std::fs::read_dir(layout.join("blobs/sha256"))
        .context("read the layout's blobs")?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    blobs.sort();

    if let Some(dir) = tar.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let part = tar.with_extension("tar.part");
    let file =
        std::fs::File::create(&part).with_context(|| format!("create `{}`", part.display()))?;
    let mut w = TarWriter(std::io::BufWriter::new(file));
    w.file("oci-layout", &std::fs::read(layout.join("oci-layout"))?)?;
    w.file("index.json", &std::fs::read(layout.join("index.json"))?)?;
    w.file("manifest.json", &docker_manifest)?;
    w.dir("blobs/")?;
    w.dir("blobs/sha256/")?;
    for b in &blobs {
        let name = format!(
            "blobs/sha256/{}",
            b.file_name().unwrap_or_default().to_string_lossy()
        );
        let mut f = std::fs::File::open(b)?;
        let size = f.metadata()?.len();
        w.entry(&name, b'0', 0o644, size)?;
        let copied = std::io::copy(&mut f, &mut w.0)?;
        if copied != size {
            bail!("`{}` changed while being written", b.display());
        }
        w.pad(size)?;
    }
    w.finish()?;
    std::fs::rename(&part, tar).with_context(|| format!("rename to `{}`", tar.display()))?;
    Ok(())
}

/// A minimal ustar writer: regular files and directories, owner 0, mtime 0.
struct TarWriter<W: Write>(W);

impl<W: Write> TarWriter<W> {
    fn entry(&mut self, name: &str, kind: u8, mode: u32, size: u64) -> anyhow::Result<()> {
        let mut h = [0u8; 512];
        if name.len() > 100 {
            bail!("tar entry name too long: {name}");
        }
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        if size < 0o777_7777_7777 {
            octal(&mut h[124..136], size);
        } else {
            // GNU base-256 for sizes beyond 8 GiB.
            h[124] = 0x80;
            h[128..136].copy_from_slice(&size.to_be_bytes());
        }
        octal(&mut h[136..148], 0);
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.0.write_all(&h)?;
        Ok(())
    }

    fn pad(&mut self, size: u64) -> anyhow::Result<()> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.0.write_all(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    fn file(&mut self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.entry(name, b'0', 0o644, bytes.len() as u64)?;
        self.0.write_all(bytes)?;
        self.pad(bytes.len() as u64)
    }

    fn dir(&mut self, name: &str) -> anyhow::Result<()> {
        self.entry(name, b'5', 0o755, 0)
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.0.write_all(&[0u8; 1024])?;
        self.0.flush()?;
        Ok(())
    }
}

/// Writes `v` as NUL-terminated zero-padded octal filling `field`.
fn octal(field: &mut [u8], v: u64) {
    let s = format!("{v:0width$o}\0", width = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s| parse_duration(s).unwrap().as_secs();
        assert_eq!(d("0s"), 0);
        assert_eq!(d("0"), 0);
        assert_eq!(d("30d"), 30 * 86400);
        assert_eq!(d("336h0m0s"), 336 * 3600);
        assert_eq!(d("1h30m"), 5400);
        assert_eq!(d("2w"), 14 * 86400);
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("").is_err());
    }
}
