//! `dependsOn` resolution and the Feature install order.
//!
//! Resolution is driven by the caller, who does the fetching:
//!
//! ```
//! # use cairn_devcontainer::order::*;
//! # use cairn_devcontainer::FeatureMetadata;
//! # use std::collections::BTreeMap;
//! let features = BTreeMap::from([("ghcr.io/acme/f/a:1".to_string(), serde_json::json!({}))]);
//! let mut resolver = DependencyResolver::new(&features)?;
//! while let Some(pending) = resolver.next_pending() {
//!     // fetch pending.reference (concurrently, if you batch several)…
//!     let metadata = FeatureMetadata::parse(r#"{"id": "a", "version": "1.0.0"}"#, "a")?;
//!     let canonical_id = format!("{}@sha256:{}", pending.reference.id_without_version(), "0".repeat(64));
//!     resolver.supply(pending, ResolvedFeature { canonical_id, metadata })?;
//! }
//! let nodes = resolver.finish();
//! let order = install_order(&nodes, &[])?;
//! assert_eq!(nodes[order[0]].user_id, "ghcr.io/acme/f/a:1");
//! # Ok::<(), cairn_devcontainer::Error>(())
//! ```
//!
//! Every `dependsOn` entry of a supplied Feature comes back from
//! [`DependencyResolver::next_pending`] with `required_by` set: these are the
//! Features that must be fetched in addition to the user's. Two Features are
//! the same node when their canonical ids (the resolved digest for OCI, the
//! tarball's content hash, the folder for local Features) and their options
//! are equal; local Features are deduplicated the same way so that a cycle of
//! local Features ends in a cycle error rather than endless expansion.
//!
//! [`install_order`] implements the spec's rounds; see the crate
//! documentation for the tie-breaking.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::features::{FeatureMetadata, FeatureRef};

/// At most this many Features after resolving `dependsOn`.
pub const MAX_FEATURES: usize = 500;

/// A Feature whose metadata the caller must fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingFeature {
    /// The reference as written in `features` or in the `dependsOn` that
    /// pulled it in.
    pub user_id: String,
    /// The parsed reference.
    pub reference: FeatureRef,
    /// Its options as written.
    pub options: Value,
    /// `None` for a user-defined Feature; the `user_id` of the Feature whose
    /// `dependsOn` added it otherwise.
    pub required_by: Option<String>,
    parent: Option<usize>,
}

/// What fetching a [`PendingFeature`] established.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedFeature {
    /// The Feature's identity: `REG/PATH@sha256:…` for OCI (the manifest
    /// digest), the tarball's SHA-256 for HTTPS, the resolved folder for a
    /// local Feature.
    pub canonical_id: String,
    /// Its `devcontainer-feature.json`.
    pub metadata: FeatureMetadata,
}

/// A Feature to install.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureNode {
    /// See [`PendingFeature::user_id`].
    pub user_id: String,
    /// The parsed reference.
    pub reference: FeatureRef,
    /// Options as written.
    pub options: Value,
    /// See [`PendingFeature::required_by`].
    pub required_by: Option<String>,
    /// See [`ResolvedFeature::canonical_id`].
    pub canonical_id: String,
    /// Its metadata.
    pub metadata: FeatureMetadata,
    /// Indices (into the node list) of its `dependsOn` Features.
    pub depends_on: Vec<usize>,
}

/// Builds the node list from the user's Features and their `dependsOn`.
#[derive(Debug)]
pub struct DependencyResolver {
    nodes: Vec<FeatureNode>,
    queue: VecDeque<PendingFeature>,
}

impl DependencyResolver {
    /// Starts from `features` (devcontainer.json's, reference → options).
    pub fn new(features: &BTreeMap<String, Value>) -> Result<Self> {
        let queue = features
            .iter()
            .map(|(id, options)| {
                Ok(PendingFeature {
                    user_id: id.clone(),
                    reference: FeatureRef::parse(id)?,
                    options: options.clone(),
                    required_by: None,
                    parent: None,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            nodes: Vec::new(),
            queue,
        })
    }

    /// The next Feature to fetch, or `None` when everything is resolved.
    pub fn next_pending(&mut self) -> Option<PendingFeature> {
        self.queue.pop_front()
    }

    /// Records what fetching `pending` found and queues its `dependsOn`.
    pub fn supply(&mut self, pending: PendingFeature, resolved: ResolvedFeature) -> Result<()> {
        let existing = self
            .nodes
            .iter()
            .position(|n| n.canonical_id == resolved.canonical_id && n.options == pending.options);
        let index = match existing {
            Some(i) => i,
            None => {
                if self.nodes.len() >= MAX_FEATURES {
                    return Err(Error::TooManyFeatures {
                        limit: MAX_FEATURES,
                        last: pending.user_id,
                    });
                }
                let index = self.nodes.len();
                for (dep, options) in &resolved.metadata.depends_on {
                    self.queue.push_back(PendingFeature {
                        user_id: dep.clone(),
                        reference: FeatureRef::parse(dep)?,
                        options: options.clone(),
                        required_by: Some(pending.user_id.clone()),
                        parent: Some(index),
                    });
                }
                self.nodes.push(FeatureNode {
                    user_id: pending.user_id.clone(),
                    reference: pending.reference.clone(),
                    options: pending.options.clone(),
                    required_by: pending.required_by.clone(),
                    canonical_id: resolved.canonical_id,
                    metadata: resolved.metadata,
                    depends_on: Vec::new(),
                });
                index
            }
        };
        if let Some(parent) = pending.parent
            && !self.nodes[parent].depends_on.contains(&index)
        {
            self.nodes[parent].depends_on.push(index);
        }
        Ok(())
    }

    /// The resolved nodes (call when [`Self::next_pending`] returns `None`).
    pub fn finish(self) -> Vec<FeatureNode> {
        self.nodes
    }
}

/// Resolves everything with a synchronous fetch function.
pub fn resolve_features<E: From<Error>>(
    features: &BTreeMap<String, Value>,
    mut fetch: impl FnMut(&PendingFeature) -> std::result::Result<ResolvedFeature, E>,
) -> std::result::Result<Vec<FeatureNode>, E> {
    let mut resolver = DependencyResolver::new(features)?;
    while let Some(pending) = resolver.next_pending() {
        let resolved = fetch(&pending)?;
        resolver.supply(pending, resolved)?;
    }
    Ok(resolver.finish())
}

/// The `features` array of `cairn devcontainer plan --format json`: one
/// object per Feature in install order with `id` (the reference as written,
/// or the `dependsOn` key that pulled it in), `version` (from its metadata),
/// `digest` (its canonical id) and `options` (as the user gave them).
pub fn plan_features(nodes: &[FeatureNode], order: &[usize]) -> Value {
    Value::Array(
        order
            .iter()
            .map(|&i| {
                let n = &nodes[i];
                serde_json::json!({
                    "id": n.user_id,
                    "version": n.metadata.version,
                    "digest": n.canonical_id,
                    "options": n.options,
                })
            })
            .collect(),
    )
}

/// The id an `installsAfter` or `overrideFeatureInstallOrder` entry names,
/// normalized like a reference (lower-cased, tag and digest dropped).
fn normalize_id(entry: &str) -> String {
    FeatureRef::parse(entry)
        .map(|r| r.id_without_version())
        .unwrap_or_else(|_| entry.to_string())
}

fn names(node: &FeatureNode, entry: &str) -> bool {
    if node.user_id == entry {
        return true;
    }
    let wanted = normalize_id(entry);
    if node.reference.id_without_version() == wanted {
        return true;
    }
    // legacyIds are bare ids within the Feature's own registry/namespace.
    if let FeatureRef::Oci { registry, path, .. } = &node.reference {
        let ns = path.rsplit_once('/').map(|(ns, _)| ns).unwrap_or("");
        return node
            .metadata
            .legacy_ids
            .iter()
            .any(|l| format!("{registry}/{ns}/{}", l.to_ascii_lowercase()) == wanted);
    }
    false
}

/// The install order: indices into `nodes`, first to install first.
/// `override_order` is devcontainer.json's `overrideFeatureInstallOrder`.
pub fn install_order(nodes: &[FeatureNode], override_order: &[String]) -> Result<Vec<usize>> {
    let n = nodes.len();
    // Soft edges only towards Features that are installed.
    let soft: Vec<Vec<usize>> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let mut deps: Vec<usize> = node
                .metadata
                .installs_after
                .iter()
                .flat_map(|entry| (0..n).filter(move |&j| j != i && names(&nodes[j], entry)))
                .collect();
            deps.sort_unstable();
            deps.dedup();
            deps
        })
        .collect();
    let mut priority = vec![0usize; n];
    for (idx, entry) in override_order.iter().enumerate() {
        let matching: Vec<usize> = (0..n).filter(|&j| names(&nodes[j], entry)).collect();
        if matching.is_empty() {
            let mut known: Vec<String> = nodes
                .iter()
                .map(|x| x.reference.id_without_version())
                .collect();
            known.sort();
            known.dedup();
            return Err(Error::OverrideNotFound {
                id: entry.clone(),
                known,
            });
        }
        for j in matching {
            priority[j] = priority[j].max(override_order.len() - idx);
        }
    }
    let mut installed = vec![false; n];
    let mut remaining: Vec<usize> = (0..n).collect();
    let mut order = Vec::with_capacity(n);
    while !remaining.is_empty() {
        let mut round: Vec<usize> = remaining
            .iter()
            .copied()
            .filter(|&i| {
                nodes[i]
                    .depends_on
                    .iter()
                    .chain(&soft[i])
                    .all(|&d| installed[d])
            })
            .collect();
        if round.is_empty() {
            return Err(Error::Cycle {
                cycle: find_cycle(nodes, &soft, &remaining),
            });
        }
        let top = round.iter().map(|&i| priority[i]).max().unwrap_or(0);
        round.retain(|&i| priority[i] == top);
        round.sort_by(|&a, &b| compare(&nodes[a], &nodes[b]).then(a.cmp(&b)));
        for &i in &round {
            installed[i] = true;
        }
        remaining.retain(|i| !installed[*i]);
        order.extend(round);
    }
    Ok(order)
}

fn find_cycle(nodes: &[FeatureNode], soft: &[Vec<usize>], remaining: &[usize]) -> Vec<String> {
    let in_rest = |i: usize| remaining.contains(&i);
    let edges = |i: usize| {
        nodes[i]
            .depends_on
            .iter()
            .chain(&soft[i])
            .copied()
            .filter(move |&d| in_rest(d))
    };
    // Every remaining node has a remaining dependency, so walking always
    // continues; the first repeated node closes a cycle.
    let mut path = vec![remaining[0]];
    loop {
        let last = *path.last().unwrap_or(&remaining[0]);
        let Some(next) = edges(last).next() else {
            break;
        };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<String> = path[pos..]
                .iter()
                .map(|&i| nodes[i].user_id.clone())
                .collect();
            cycle.push(nodes[next].user_id.clone());
            return cycle;
        }
        path.push(next);
    }
    path.iter().map(|&i| nodes[i].user_id.clone()).collect()
}

fn kind_rank(r: &FeatureRef) -> u8 {
    match r {
        FeatureRef::Oci { .. } => 0,
        FeatureRef::Tarball { .. } => 1,
        FeatureRef::Local { .. } => 2,
    }
}

/// The round sort (see the crate documentation).
fn compare(a: &FeatureNode, b: &FeatureNode) -> Ordering {
    if kind_rank(&a.reference) != kind_rank(&b.reference) {
        return a.user_id.cmp(&b.user_id);
    }
    a.reference
        .id_without_version()
        .cmp(&b.reference.id_without_version())
        .then_with(|| compare_tags(a.reference.tag(), b.reference.tag()))
        .then_with(|| compare_options(&a.options, &b.options))
        .then_with(|| a.canonical_id.cmp(&b.canonical_id))
        .then_with(|| a.user_id.cmp(&b.user_id))
}

/// Oldest to newest: numeric dotted versions by number, other strings
/// lexically before them, `latest` (or no tag) last.
fn compare_tags(a: Option<&str>, b: Option<&str>) -> Ordering {
    fn key(t: Option<&str>) -> (u8, Vec<u64>, String) {
        match t {
            None | Some("latest") => (2, Vec::new(), String::new()),
            Some(t) => match t
                .split('.')
                .map(str::parse::<u64>)
                .collect::<std::result::Result<Vec<_>, _>>()
            {
                Ok(nums) => (1, nums, t.to_string()),
                Err(_) => (0, Vec::new(), t.to_string()),
            },
        }
    }
    key(a).cmp(&key(b))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "boolean",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Null => "undefined",
        _ => "object",
    }
}

fn compare_scalar(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(x), Some(y)) => type_name(x)
            .cmp(type_name(y))
            .then_with(|| x.to_string().cmp(&y.to_string())),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The reference CLI's `optionsCompareTo`: strings and booleans directly,
/// objects by size (fewer first) then key by key, differing kinds by their
/// JavaScript `typeof` names.
fn compare_options(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            if x.len() != y.len() {
                return x.len().cmp(&y.len());
            }
            for ((ka, va), (kb, vb)) in x.iter().zip(y.iter()) {
                let c = ka.cmp(kb).then_with(|| compare_scalar(Some(va), Some(vb)));
                if c != Ordering::Equal {
                    return c;
                }
            }
            Ordering::Equal
        }
        _ => compare_scalar(Some(a), Some(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type FakeEntry = (
        Vec<(&'static str, Value)>,
        Vec<&'static str>,
        Vec<&'static str>,
    );

    /// A registry of fake Features: id → (dependsOn, installsAfter, legacyIds).
    struct Fake(BTreeMap<String, FakeEntry>);

    impl Fake {
        fn new() -> Self {
            Fake(BTreeMap::new())
        }
        fn add(
            mut self,
            id: &str,
            depends: Vec<(&'static str, Value)>,
            after: Vec<&'static str>,
        ) -> Self {
            self.0.insert(id.to_string(), (depends, after, vec![]));
            self
        }
        fn legacy(mut self, id: &str, legacy: Vec<&'static str>) -> Self {
            self.0.get_mut(id).unwrap().2 = legacy;
            self
        }
        fn fetch(&self, p: &PendingFeature) -> Result<ResolvedFeature> {
            let key = p.reference.id_without_version();
            let (deps, after, legacy) = self.0.get(&key).cloned().unwrap_or_default();
            let doc = json!({
                "id": p.reference.short_id(),
                "version": "1.0.0",
                "dependsOn": deps.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<serde_json::Map<_, _>>(),
                "installsAfter": after,
                "legacyIds": legacy,
            });
            Ok(ResolvedFeature {
                canonical_id: format!("{key}@{}", p.reference.tag().unwrap_or("digest")),
                metadata: FeatureMetadata::parse(&doc.to_string(), &key)?,
            })
        }
    }

    fn run(fake: &Fake, user: &[(&str, Value)], over: &[&str]) -> Result<Vec<String>> {
        let features = user
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let nodes = resolve_features(&features, |p| fake.fetch(p))?;
        let over: Vec<String> = over.iter().map(|s| s.to_string()).collect();
        Ok(install_order(&nodes, &over)?
            .into_iter()
            .map(|i| nodes[i].user_id.clone())
            .collect())
    }

    const A: &str = "ghcr.io/t/f/a";
    const B: &str = "ghcr.io/t/f/b";
    const C: &str = "ghcr.io/t/f/c";
    const D: &str = "ghcr.io/t/f/d";

    #[test]
    fn independent_features_sort_by_id() {
        let fake = Fake::new();
        let got = run(
            &fake,
            &[(C, json!({})), (A, json!({})), (B, json!({}))],
            &[],
        )
        .unwrap();
        assert_eq!(got, vec![A, B, C]);
    }

    #[test]
    fn depends_on_chain_adds_and_orders_dependencies() {
        // a → b → c, only a is user-defined.
        let fake = Fake::new()
            .add(A, vec![("ghcr.io/t/f/b:1", json!({}))], vec![])
            .add(B, vec![("ghcr.io/t/f/c:2", json!({"x": true}))], vec![]);
        let features = BTreeMap::from([(A.to_string(), json!({}))]);
        let nodes = resolve_features(&features, |p| fake.fetch(p)).unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[1].required_by.as_deref(), Some(A));
        assert_eq!(nodes[2].required_by.as_deref(), Some("ghcr.io/t/f/b:1"));
        assert_eq!(nodes[2].options, json!({"x": true}));
        let order: Vec<&str> = install_order(&nodes, &[])
            .unwrap()
            .into_iter()
            .map(|i| nodes[i].user_id.as_str())
            .collect();
        assert_eq!(order, vec!["ghcr.io/t/f/c:2", "ghcr.io/t/f/b:1", A]);
    }

    #[test]
    fn shared_dependency_is_installed_once_unless_options_differ() {
        let fake = Fake::new()
            .add(A, vec![("ghcr.io/t/f/c:1", json!({}))], vec![])
            .add(B, vec![("ghcr.io/t/f/c:1", json!({}))], vec![])
            .add(D, vec![("ghcr.io/t/f/c:1", json!({"v": "2"}))], vec![]);
        let got = run(&fake, &[(A, json!({})), (B, json!({}))], &[]).unwrap();
        assert_eq!(got, vec!["ghcr.io/t/f/c:1", A, B]);
        let got = run(&fake, &[(A, json!({})), (D, json!({}))], &[]).unwrap();
        // Two c's: fewer options first (the reference CLI's optionsCompareTo).
        assert_eq!(got, vec!["ghcr.io/t/f/c:1", "ghcr.io/t/f/c:1", A, D]);
    }

    #[test]
    fn installs_after_is_soft_and_ignored_when_absent() {
        let fake = Fake::new().add(A, vec![], vec![C, "ghcr.io/t/f/zzz"]);
        assert_eq!(
            run(
                &fake,
                &[(A, json!({})), (B, json!({})), (C, json!({}))],
                &[]
            )
            .unwrap(),
            vec![B, C, A]
        );
        // c absent: installsAfter does not pull it in.
        assert_eq!(
            run(&fake, &[(A, json!({})), (B, json!({}))], &[]).unwrap(),
            vec![A, B]
        );
    }

    #[test]
    fn installs_after_matches_legacy_ids() {
        let fake = Fake::new()
            .add(A, vec![], vec!["ghcr.io/t/f/old-c"])
            .add(C, vec![], vec![])
            .legacy(C, vec!["old-c"]);
        assert_eq!(
            run(&fake, &[(A, json!({})), (C, json!({}))], &[]).unwrap(),
            vec![C, A]
        );
    }

    #[test]
    fn hard_cycle_is_an_error_naming_the_features() {
        let fake =
            Fake::new()
                .add(A, vec![(B, json!({}))], vec![])
                .add(B, vec![(A, json!({}))], vec![]);
        let e = run(&fake, &[(A, json!({}))], &[]).unwrap_err();
        let Error::Cycle { cycle } = &e else {
            panic!("{e}")
        };
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 3);
        assert!(
            e.to_string().contains(&format!("{A} -> {B} -> {A}"))
                || e.to_string().contains(&format!("{B} -> {A} -> {B}")),
            "{e}"
        );
    }

    #[test]
    fn soft_cycle_is_an_error() {
        let fake = Fake::new().add(A, vec![], vec![B]).add(B, vec![], vec![A]);
        let e = run(&fake, &[(A, json!({})), (B, json!({}))], &[]).unwrap_err();
        assert!(
            e.to_string().starts_with("Feature dependency cycle: "),
            "{e}"
        );
    }

    #[test]
    fn override_order_pulls_features_forward() {
        let fake = Fake::new();
        let user = [(A, json!({})), (B, json!({})), (C, json!({}))];
        assert_eq!(run(&fake, &user, &[C, B]).unwrap(), vec![C, B, A]);
        // Entries may carry a tag and match case-insensitively.
        assert_eq!(
            run(&fake, &user, &["GHCR.io/t/f/b:1"]).unwrap(),
            vec![B, A, C]
        );
        let e = run(&fake, &user, &["ghcr.io/t/f/nope"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("`ghcr.io/t/f/nope` is not one of the Features"),
            "{e}"
        );
    }

    #[test]
    fn override_cannot_pull_before_dependencies() {
        // c depends on a: even with c first in the override, a goes first,
        // and b (ready in the same round as a) is committed with it; c comes
        // in the next round, as in the reference CLI.
        let fake = Fake::new().add(C, vec![(A, json!({}))], vec![]);
        assert_eq!(
            run(
                &fake,
                &[(A, json!({})), (B, json!({})), (C, json!({}))],
                &[C]
            )
            .unwrap(),
            vec![A, B, C]
        );
        // With b depending on a too, c (override priority) goes before b.
        let fake = fake.add(B, vec![(A, json!({}))], vec![]);
        assert_eq!(
            run(
                &fake,
                &[(A, json!({})), (B, json!({})), (C, json!({}))],
                &[C]
            )
            .unwrap(),
            vec![A, C, B]
        );
    }

    #[test]
    fn override_priority_per_round_like_the_reference_cli() {
        // devcontainers/cli#1200: use-tr depends on common; override
        // [use-tr, remove-tr]. Round 1's candidates are common (priority 0)
        // and remove-tr (1): only remove-tr is committed, then common, then
        // use-tr. This is the reference CLI's behaviour, kept on purpose.
        let fake = Fake::new().add(A, vec![(C, json!({}))], vec![]);
        assert_eq!(
            run(&fake, &[(A, json!({})), (B, json!({}))], &[A, B]).unwrap(),
            vec![B, C, A]
        );
    }

    #[test]
    fn round_sort_by_tag_and_kind() {
        let fake = Fake::new();
        let user = [
            ("ghcr.io/t/f/a:latest", json!({})),
            ("ghcr.io/t/f/a:1.10", json!({})),
            ("ghcr.io/t/f/a:1.9", json!({})),
            ("./local", json!({})),
            ("https://example.com/x.tgz", json!({})),
        ];
        let got = run(&fake, &user, &[]).unwrap();
        assert_eq!(
            got,
            vec![
                "./local",
                "ghcr.io/t/f/a:1.9",
                "ghcr.io/t/f/a:1.10",
                "ghcr.io/t/f/a:latest",
                "https://example.com/x.tgz"
            ]
        );
    }

    #[test]
    fn options_comparison() {
        assert_eq!(
            compare_options(&json!({}), &json!({"a": "1"})),
            Ordering::Less
        );
        assert_eq!(
            compare_options(&json!({"a": "1"}), &json!({"b": "0"})),
            Ordering::Less
        );
        assert_eq!(
            compare_options(&json!({"a": "2"}), &json!({"a": "10"})),
            Ordering::Greater
        );
        assert_eq!(compare_options(&json!(false), &json!(true)), Ordering::Less);
        assert_eq!(compare_options(&json!(true), &json!("1.0")), Ordering::Less);
        assert_eq!(compare_options(&json!({}), &json!("1.0")), Ordering::Less);
    }

    #[test]
    fn plan_lists_features_in_install_order() {
        let fake = Fake::new().add(A, vec![("ghcr.io/t/f/b:1", json!({"x": "y"}))], vec![]);
        let features = BTreeMap::from([(A.to_string(), json!("2"))]);
        let nodes = resolve_features(&features, |p| fake.fetch(p)).unwrap();
        let order = install_order(&nodes, &[]).unwrap();
        assert_eq!(
            plan_features(&nodes, &order),
            json!([
                {"id": "ghcr.io/t/f/b:1", "version": "1.0.0", "digest": "ghcr.io/t/f/b@1", "options": {"x": "y"}},
                {"id": A, "version": "1.0.0", "digest": "ghcr.io/t/f/a@latest", "options": "2"},
            ])
        );
    }

    #[test]
    fn bad_dependency_reference_is_reported() {
        let fake = Fake::new().add(A, vec![("node", json!({}))], vec![]);
        let e = run(&fake, &[(A, json!({}))], &[]).unwrap_err();
        assert!(
            matches!(e, Error::FeatureRef { ref reference, .. } if reference == "node"),
            "{e}"
        );
    }
}
