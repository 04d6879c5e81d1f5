//! `cairn cache prune`: age-based cleanup of a registry cache repository, for
//! registries without lifecycle policies (see docs/cache-prune.md).
//!
//! Step entries (`cairn-v1-<key>`) carry their creation time in the entry
//! annotation; whole-image records (`cairn-v1-img-<key>` and `…-meta`) carry none,
//! so they take the age of the step entry of the same key (the image's last step,
//! written by the same build or an earlier one). A manifest is deleted by digest,
//! which removes every tag pointing at it: digests that a kept tag also points at
//! (e.g. the destination image in the same repository) are left alone.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use cairn_engine::{ENTRY_ANNOTATION, EntryMeta};
use cairn_registry::{Client, ClientOptions, Reference};

use crate::CommonArgs;

/// Registry cache maintenance.
#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// Delete cache entries older than a cutoff from a cache repository.
    Prune(PruneArgs),
}

/// `cairn cache prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// The cache repository (`REGISTRY/REPO`), as given to `build --cache-repo`.
    #[arg(long, value_name = "REPO")]
    cache_repo: String,
    /// Delete entries created longer ago than this (`30d`, `12h`, `90m`, `0s`, `2w`).
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    older_than: String,
    /// Print what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also delete entries without a creation time (written before cairn recorded
    /// one) and image records whose age cannot be told.
    #[arg(long)]
    include_undated: bool,
    #[command(flatten)]
    common: CommonArgs,
}

/// What a tag is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `cairn-v1-<64 hex>`.
    Step(String),
    /// `cairn-v1-img-<64 hex>`.
    Image(String),
    /// `cairn-v1-img-<64 hex>-meta`.
    ImageMeta(String),
    /// `cairn-v1-pos-<hex>`: a mutable hint pointing at a step entry.
    Position,
    /// Anything else (never deleted; protects the manifests it points at).
    Other,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn classify(tag: &str) -> Kind {
    if let Some(rest) = tag.strip_prefix("cairn-v1-img-") {
        if let Some(key) = rest.strip_suffix("-meta")
            && is_hex64(key)
        {
            return Kind::ImageMeta(key.to_string());
        }
        if is_hex64(rest) {
            return Kind::Image(rest.to_string());
        }
        return Kind::Other;
    }
    if tag.starts_with("cairn-v1-pos-") {
        return Kind::Position;
    }
    match tag.strip_prefix("cairn-v1-") {
        Some(key) if is_hex64(key) => Kind::Step(key.to_string()),
        _ => Kind::Other,
    }
}

/// A tag, resolved.
#[derive(Debug)]
struct Tagged {
    tag: String,
    kind: Kind,
    digest: String,
    /// For step entries: `created_unix` (0 = undated).
    created: Option<u64>,
    /// Step entries: their layer; image records: the image's layers.
    layers: Vec<String>,
}

/// Resolves every tag: step entries are fetched (their annotation has the
/// creation time), the rest only HEADed for their digest. Tags deleted meanwhile
/// are skipped.
async fn resolve(
    client: &Client,
    repo: &Reference,
    tags: Vec<String>,
) -> anyhow::Result<Vec<Tagged>> {
    let limit = Arc::new(tokio::sync::Semaphore::new(16));
    let mut set = tokio::task::JoinSet::new();
    for tag in tags {
        let (client, r, limit) = (client.clone(), repo.with_tag(&tag), limit.clone());
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let kind = classify(&tag);
            if let Kind::Step(_) | Kind::Image(_) = kind {
                let f = match client.get_manifest(&r).await {
                    Ok(f) => f,
                    Err(e) if e.is_not_found() => return Ok(None),
                    Err(e) => return Err(anyhow::Error::new(e).context(format!("read {tag}"))),
                };
                let doc: serde_json::Value = serde_json::from_slice(&f.bytes).unwrap_or_default();
                let (created, layers) = if let Kind::Step(_) = kind {
                    let meta = doc["annotations"][ENTRY_ANNOTATION]
                        .as_str()
                        .and_then(|s| serde_json::from_str::<EntryMeta>(s).ok());
                    (
                        Some(meta.as_ref().map_or(0, |m| m.created_unix)),
                        meta.and_then(|m| m.layer)
                            .map(|l| l.digest)
                            .into_iter()
                            .collect(),
                    )
                } else {
                    let layers = doc["layers"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|l| l["digest"].as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    (None, layers)
                };
                Ok(Some(Tagged {
                    tag,
                    kind,
                    digest: f.digest.to_string(),
                    created,
                    layers,
                }))
            } else {
                match client.head_manifest(&r).await {
                    Ok(Some((d, _, _))) => Ok(Some(Tagged {
                        tag,
                        kind,
                        digest: d.to_string(),
                        created: None,
                        layers: Vec::new(),
                    })),
                    Ok(None) => Ok(None),
                    Err(e) => Err(anyhow::Error::new(e).context(format!("look up {tag}"))),
                }
            }
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Some(t) = r.context("lookup task")?? {
            out.push(t);
        }
    }
    out.sort_by(|a, b| a.tag.cmp(&b.tag));
    Ok(out)
}

fn age_text(now: u64, created: u64) -> String {
    if created == 0 {
        return "undated".into();
    }
    let s = now.saturating_sub(created);
    if s >= 2 * 86400 {
        format!("{}d old", s / 86400)
    } else if s >= 2 * 3600 {
        format!("{}h old", s / 3600)
    } else if s >= 120 {
        format!("{}m old", s / 60)
    } else {
        format!("{s}s old")
    }
}

/// A deletion: one manifest digest, the tags it removes, why.
#[derive(Debug)]
struct Deletion {
    digest: String,
    tags: Vec<String>,
    age: String,
}

fn plan(
    tagged: &[Tagged],
    now: u64,
    cutoff: u64,
    include_undated: bool,
) -> (Vec<Deletion>, Vec<String>) {
    let expired = |created: u64| -> bool {
        if created == 0 {
            include_undated
        } else {
            created <= cutoff
        }
    };
    // An image record is as old as the newest step entry it stands on: the entry
    // of its own key, or one whose layer it contains (its last step is often a
    // config step without an entry of its own). Undated when there is none.
    let step_created: BTreeMap<&str, u64> = tagged
        .iter()
        .filter_map(|t| match &t.kind {
            Kind::Step(k) => Some((k.as_str(), t.created.unwrap_or(0))),
            _ => None,
        })
        .collect();
    let mut layer_created: BTreeMap<&str, u64> = BTreeMap::new();
    for t in tagged {
        if let (Kind::Step(_), Some(c)) = (&t.kind, t.created)
            && c != 0
        {
            for l in &t.layers {
                let e = layer_created.entry(l.as_str()).or_insert(0);
                *e = (*e).max(c);
            }
        }
    }
    let image_created: BTreeMap<&str, u64> = tagged
        .iter()
        .filter_map(|t| match &t.kind {
            Kind::Image(k) => {
                let own = step_created.get(k.as_str()).copied();
                let by_layer = t
                    .layers
                    .iter()
                    .filter_map(|l| layer_created.get(l.as_str()).copied());
                let newest = own.into_iter().chain(by_layer).max().unwrap_or(0);
                Some((k.as_str(), newest))
            }
            _ => None,
        })
        .collect();
    let mut doomed: BTreeMap<&str, String> = BTreeMap::new(); // tag -> age text
    for t in tagged {
        match &t.kind {
            Kind::Step(_) => {
                let c = t.created.unwrap_or(0);
                if expired(c) {
                    doomed.insert(&t.tag, age_text(now, c));
                }
            }
            Kind::Image(k) | Kind::ImageMeta(k) => {
                let c = image_created
                    .get(k.as_str())
                    .or_else(|| step_created.get(k.as_str()))
                    .copied()
                    .unwrap_or(0);
                if c == 0 && include_undated {
                    doomed.insert(&t.tag, "undated".into());
                } else if c != 0 && expired(c) {
                    doomed.insert(
                        &t.tag,
                        format!("{}, by its newest step entry", age_text(now, c)),
                    );
                }
            }
            Kind::Position | Kind::Other => {}
        }
    }
    // A digest also named by a tag that stays (other than a position hint) stays.
    let protected: BTreeMap<&str, &str> = tagged
        .iter()
        .filter(|t| !doomed.contains_key(t.tag.as_str()) && t.kind != Kind::Position)
        .map(|t| (t.digest.as_str(), t.tag.as_str()))
        .collect();
    let mut by_digest: BTreeMap<&str, Deletion> = BTreeMap::new();
    let mut kept = Vec::new();
    for t in tagged {
        let Some(age) = doomed.get(t.tag.as_str()) else {
            continue;
        };
        if let Some(other) = protected.get(t.digest.as_str()) {
            kept.push(format!(
                "{} ({age}): kept, its manifest {} is also tagged `{other}`",
                t.tag, t.digest
            ));
            continue;
        }
        by_digest
            .entry(t.digest.as_str())
            .or_insert_with(|| Deletion {
                digest: t.digest.clone(),
                tags: Vec::new(),
                age: age.clone(),
            })
            .tags
            .push(t.tag.clone());
    }
    // Position hints pointing at a deleted manifest go with it.
    for t in tagged {
        if t.kind == Kind::Position
            && let Some(d) = by_digest.get_mut(t.digest.as_str())
        {
            d.tags.push(t.tag.clone());
        }
    }
    (by_digest.into_values().collect(), kept)
}

/// Runs `cairn cache prune`.
pub fn run(cmd: CacheCommand) -> anyhow::Result<()> {
    let CacheCommand::Prune(a) = cmd;
    let older = crate::kaniko::parse_duration(&a.older_than).context("--older-than")?;
    let repo: Reference = a
        .cache_repo
        .parse()
        .with_context(|| format!("invalid --cache-repo `{}`", a.cache_repo))?;
    if repo.digest.is_some() {
        bail!("--cache-repo names a repository, not a digest");
    }
    let (pull_credentials, push_credentials) =
        crate::credential_sources(&a.common, std::slice::from_ref(&repo.registry))?;
    let client = Client::new(ClientOptions {
        insecure_registries: a.common.insecure_registries.clone(),
        pull_credentials,
        push_credentials,
        ..ClientOptions::default()
    })
    .context("set up the registry client")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let cutoff = now.saturating_sub(older.as_secs());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(async {
        let tags = client
            .list_tags(&repo)
            .await
            .with_context(|| format!("list the tags of {}", repo.name()))?;
        let total = tags.len();
        let tagged = resolve(&client, &repo, tags).await?;
        let (deletions, kept) = plan(&tagged, now, cutoff, a.include_undated);
        for k in &kept {
            #[allow(clippy::print_stdout)]
            {
                println!("{k}");
            }
        }
        let verb = if a.dry_run { "would delete" } else { "deleted" };
        let mut removed_tags = 0;
        let mut failures = Vec::new();
        for d in &deletions {
            if !a.dry_run {
                let digest = d.digest.parse().context("manifest digest")?;
                // Gone already (another prune): nothing to do.
                if let Err(e) = client.delete_manifest(&repo.with_digest(digest)).await
                    && !e.is_not_found()
                {
                    failures.push(format!(
                        "{}: {}",
                        d.tags.join(", "),
                        crate::error_text(&e.into())
                    ));
                    continue;
                }
            }
            removed_tags += d.tags.len();
            #[allow(clippy::print_stdout)]
            {
                println!("{verb} {} ({}, {})", d.tags.join(" "), d.digest, d.age);
            }
        }
        #[allow(clippy::print_stdout)]
        {
            println!(
                "{} {} manifests ({removed_tags} of {total} tags) in {} older than {}",
                if a.dry_run { "would delete" } else { "deleted" },
                deletions.len() - failures.len(),
                repo.name(),
                a.older_than
            );
        }
        if !failures.is_empty() {
            bail!(
                "{} deletions failed (the registry must allow DELETE, e.g. \
                 REGISTRY_STORAGE_DELETE_ENABLED=true for distribution): {}",
                failures.len(),
                failures.join("; ")
            );
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tag: &str, digest: &str, created: Option<u64>) -> Tagged {
        Tagged {
            tag: tag.into(),
            kind: classify(tag),
            digest: digest.into(),
            created,
            layers: Vec::new(),
        }
    }

    #[test]
    fn plans_by_age_and_protects_shared_manifests() {
        let k1 = "a".repeat(64);
        let k2 = "b".repeat(64);
        let tagged = vec![
            t(&format!("cairn-v1-{k1}"), "sha256:1", Some(100)),
            t(&format!("cairn-v1-{k2}"), "sha256:2", Some(1000)),
            t(&format!("cairn-v1-img-{k1}"), "sha256:img", None),
            t(&format!("cairn-v1-img-{k1}-meta"), "sha256:meta", None),
            t(&format!("cairn-v1-img-{k2}-meta"), "sha256:meta", None),
            t("cairn-v1-pos-0123", "sha256:1", None),
            t("latest", "sha256:img", None),
        ];
        let (del, kept) = plan(&tagged, 2000, 500, false);
        let digests: Vec<&str> = del.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:1"]);
        assert_eq!(
            del[0].tags.len(),
            2,
            "the position hint goes with its entry"
        );
        // The image is also `latest`; the meta entry is shared with k2's.
        assert_eq!(kept.len(), 2, "{kept:?}");
        let (del, _) = plan(&tagged, 2000, 5000, false);
        // Both entries, and the meta manifest both images share; the image stays
        // (also `latest`).
        let digests: Vec<&str> = del.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:1", "sha256:2", "sha256:meta"], "{del:?}");
        let (del, _) = plan(&tagged, 2000, 0, false);
        assert!(del.is_empty());
    }

    #[test]
    fn image_records_age_with_the_newest_step_entry_whose_layer_they_hold() {
        let (k1, k2, img) = ("1".repeat(64), "2".repeat(64), "9".repeat(64));
        let mut s1 = t(&format!("cairn-v1-{k1}"), "sha256:s1", Some(100));
        s1.layers = vec!["sha256:l1".into()];
        let mut s2 = t(&format!("cairn-v1-{k2}"), "sha256:s2", Some(1000));
        s2.layers = vec!["sha256:l2".into()];
        let mut image = t(&format!("cairn-v1-img-{img}"), "sha256:img", None);
        image.layers = vec!["sha256:base".into(), "sha256:l1".into(), "sha256:l2".into()];
        let tagged = vec![s1, s2, image];
        let deleted = |cutoff| -> Vec<String> {
            plan(&tagged, 2000, cutoff, false)
                .0
                .into_iter()
                .map(|d| d.digest)
                .collect()
        };
        assert_eq!(deleted(500), ["sha256:s1"]);
        assert_eq!(deleted(1000), ["sha256:img", "sha256:s1", "sha256:s2"]);
    }

    #[test]
    fn undated_entries_stay_unless_asked() {
        let k = "c".repeat(64);
        let tagged = vec![t(&format!("cairn-v1-{k}"), "sha256:1", Some(0))];
        assert!(plan(&tagged, 2000, 1999, false).0.is_empty());
        assert_eq!(plan(&tagged, 2000, 1999, true).0.len(), 1);
    }
}
