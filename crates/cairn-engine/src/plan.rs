//! Between the planning pass and the build: the full-hit fast path, concurrent
//! lookups of every planned key, `--cached-only`, `--explain`, and the report.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use cairn_oci::Digest;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::cache::{Cache, EntryMeta, LayerRecord};
use crate::export::BuildResult;
use crate::keys::StepKey;
use crate::pull::LayerDesc;
use crate::stage::Build;

/// What the planning pass decided.
#[derive(Debug)]
pub(crate) enum AfterPlan {
    /// Build (the cache lookups are in `Build::hits`).
    Build,
    /// Nothing to build: the result is final.
    Done(BuildResult),
}

/// Digests of the parts of a step's key material, for `--explain`.
pub(crate) fn input_digests(parent: &StepKey, material: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("parent".to_string(), parent.hex().to_string());
    if let Some(obj) = material.as_object() {
        for (k, v) in obj {
            let bytes = cairn_oci::canonical_json(v).unwrap_or_default();
            out.insert(
                k.clone(),
                hex::encode(Sha256::digest(&bytes))[..16].to_string(),
            );
        }
    }
    out
}

/// What explains a miss: the inputs that differ from the nearest entry.
fn explain(now: &BTreeMap<String, String>, before: &BTreeMap<String, String>) -> String {
    let changed: Vec<&str> = now
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k.as_str())
        .collect();
    match changed.as_slice() {
        [] => "same inputs as the last build here (the entry was removed?)".into(),
        ["parent"] => "an earlier step changed".into(),
        c => format!(
            "changed: {}",
            c.iter()
                .filter(|k| **k != "parent")
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The tag that points at the latest entry for a step's position (a hint for
/// `--explain`, never used to decide a hit).
fn position_tag(label: &str, line: usize) -> String {
    let h = hex::encode(Sha256::digest(format!("{label}\0{line}").as_bytes()));
    format!("cairn-v1-pos-{}", &h[..32])
}

/// Points the position tag of a step at its entry.
pub(crate) async fn record_position(cache: &Cache, label: &str, line: usize, key: &StepKey) {
    let _ = cache.retag(key, &position_tag(label, line)).await;
}

/// A cached layer as a manifest layer (its blob lives in the cache repository).
pub(crate) fn layer_desc(
    l: &LayerRecord,
    repo: Option<cairn_registry::Reference>,
) -> Result<LayerDesc, Error> {
    let parse = |s: &str| -> Result<Digest, Error> {
        s.parse()
            .map_err(|e| Error::Image(format!("cache entry: bad digest {s:?}: {e}")))
    };
    Ok(LayerDesc {
        media_type: l.media_type.clone(),
        digest: parse(&l.digest)?,
        size: l.size,
        diff_id: parse(&l.diff_id)?,
        source: repo,
    })
}

fn human(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}.{:01}s", s, (ms % 1000) / 100)
    }
}

/// After planning: the full-hit fast path, or the lookups of every step.
pub(crate) async fn after_planning(b: &Build<'_>, final_key: &StepKey) -> Result<AfterPlan, Error> {
    // Before anything runs: Docker schema2 has no zstd layer media type.
    if b.opts.image_format == cairn_oci::ImageFormat::Docker
        && matches!(
            b.opts.compression.codec,
            cairn_oci::LayerCompression::Zstd { .. }
        )
    {
        return Err(Error::Usage(
            "--format docker needs gzip layers (Docker schema2 has no zstd layer type): \
             use --layer-compression gzip, or --format oci"
                .into(),
        ));
    }
    let caches: Vec<&Cache> = b.caches();
    let Some(&cache) = caches.first() else {
        if b.opts.cached_only {
            return Err(Error::Usage("--cached-only needs --cache-repo".into()));
        }
        let _ = b.hits.set(HashMap::new());
        return Ok(AfterPlan::Build);
    };
    // The whole image is recorded under the final key and the image format.
    let image_key = crate::keys::image_key(final_key, b.opts.image_format);
    for &c in &caches {
        if let Some(image) = c.get_image(&image_key).await? {
            if b.opts.cached_only {
                println!("CAIRN_CACHED_IMAGE={}@{}", c.name(), image.digest);
            }
            let deliver = !b.opts.cached_only;
            return Ok(AfterPlan::Done(
                crate::export::from_cache(b, c, &image_key, image, deliver).await?,
            ));
        }
    }
    let planned = b.planned.lock().expect("not poisoned").clone();
    // Every key at once (bounded), in any order: keys never depend on outputs.
    // Each key is looked up in the caches in order (e.g. this branch, then main).
    use futures_util::StreamExt;
    let caches = &caches;
    let found: Vec<(StepKey, Option<(EntryMeta, usize)>)> =
        futures_util::stream::iter(planned.iter().map(|p| p.key.clone()))
            .map(|k| async move {
                for (i, c) in caches.iter().enumerate() {
                    match c.get(&k).await {
                        Ok(Some(m)) => return Ok((k, Some((m, i)))),
                        Ok(None) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Ok((k, None))
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
    let hits: HashMap<StepKey, (EntryMeta, usize)> = found
        .into_iter()
        .filter_map(|(k, m)| m.map(|m| (k, m)))
        .collect();
    if b.opts.explain || b.opts.cached_only {
        for p in &planned {
            let line = format!(
                "{}:{} [{}] {}",
                b.df.file_name,
                p.line,
                p.label,
                crate::stage::shorten(&p.source)
            );
            if hits.contains_key(&p.key) {
                if b.opts.explain {
                    b.opts.progress.line(&format!("hit   {line}"));
                }
                continue;
            }
            let why = match cache.get_tag(&position_tag(&p.label, p.line)).await {
                Some(before) => explain(&p.inputs, &before.inputs),
                None => "never built with this cache".into(),
            };
            if b.opts.cached_only {
                return Err(Error::Usage(format!(
                    "not cached: first missing step is {line} ({why})"
                )));
            }
            b.opts.progress.line(&format!("miss  {line}: {why}"));
        }
        if b.opts.cached_only {
            return Err(Error::Usage(
                "not cached: every step is, but the image itself was never recorded".into(),
            ));
        }
    }
    let _ = b.hits.set(hits);
    Ok(AfterPlan::Build)
}

/// The end-of-build report.
pub(crate) fn report(b: &Build<'_>, result: &BuildResult) {
    let hits = b.stats.hits.load(Ordering::Relaxed);
    let misses = b.stats.misses.load(Ordering::Relaxed);
    let saved = b.stats.saved_ms.load(Ordering::Relaxed);
    let pulled = b.stats.pulled_bytes.load(Ordering::Relaxed);
    let pushed = b.stats.pushed_bytes.load(Ordering::Relaxed);
    if b.cache.is_some() {
        b.opts.progress.line(&format!(
            "cache: {hits} steps hit, {misses} built; {} of cached layers pulled, {} of new layers cached; built in {:.2}s{}",
            bytes(pulled),
            bytes(pushed),
            b.started.elapsed().as_secs_f64(),
            if saved > 0 {
                format!(" (cached steps saved ~{})", human(saved))
            } else {
                String::new()
            }
        ));
    }
    let _ = result;
}

pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// "Using cached image (saved ~…)" line of a full hit.
pub(crate) fn saved_line(ms: Option<u64>) -> String {
    match ms {
        Some(ms) => format!("Using cached image (saved ~{} build time)", human(ms)),
        None => "Using cached image".to_string(),
    }
}
