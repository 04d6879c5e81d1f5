//! `devcontainer-lock.json`: the Feature lockfile the devcontainer CLI reads
//! and writes (`src/spec-configuration/lockfile.ts`).
//!
//! * Where: [`lockfile_path`] — beside the config file, named
//!   `.devcontainer-lock.json` when the config's file name starts with a dot
//!   (`.devcontainer.json`), `devcontainer-lock.json` otherwise.
//! * What: `{"features": {"<reference as written>": {"version", "resolved",
//!   "integrity", "dependsOn"?}}}`, one entry per OCI or tarball Feature
//!   (local Features are never locked). For OCI Features `resolved` is
//!   `REG/PATH@sha256:<manifest digest>` and `integrity` the manifest digest;
//!   for tarballs `resolved` is the URL and `integrity` `sha256:<hex of the
//!   file>`. `dependsOn` lists the keys of the Feature's own `dependsOn`
//!   and is left out when empty.
//! * [`Lockfile::render`]: byte-for-byte what the CLI writes —
//!   `JSON.stringify(lockfile, null, 2) + "\n"`, entries sorted by id the way
//!   `String.prototype.localeCompare` sorts (see [`locale_cmp`]), each entry's
//!   keys in the CLI's order (`version`, `resolved`, `integrity`,
//!   `dependsOn`). `dependsOn` is listed in the order the Feature's
//!   `devcontainer-feature.json` has them ([`depends_on_keys`]), as the
//!   CLI's `Object.keys` lists them.
//! * [`Lockfile::parse`]: an empty (or all-blank) file is an empty lockfile,
//!   which the CLI uses as "start locking"; anything else must be the JSON
//!   above, errors name the file.
//! * [`check_frozen`]: `--frozen-lockfile` — the lockfile a build would write
//!   must equal the one on disk (compared as data, so formatting and key
//!   order on disk do not matter, as the CLI normalises through
//!   `JSON.parse`), else an error listing every Feature that would change.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// One locked Feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    /// The Feature's `version` (from its `devcontainer-feature.json`).
    pub version: String,
    /// `REG/PATH@sha256:…` (OCI) or the URL (tarball).
    pub resolved: String,
    /// `sha256:…`: the manifest digest (OCI) or the tarball's digest.
    pub integrity: String,
    /// The keys of the Feature's `dependsOn` (empty: not written).
    pub depends_on: Vec<String>,
}

/// A whole `devcontainer-lock.json`: reference as written → entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lockfile {
    /// The `features` object.
    pub features: BTreeMap<String, LockEntry>,
}

/// The lockfile that goes with the config file `config_file`.
pub fn lockfile_path(config_file: &Path) -> PathBuf {
    let dotted = config_file
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'));
    let dir = config_file.parent().unwrap_or(Path::new(""));
    dir.join(if dotted {
        ".devcontainer-lock.json"
    } else {
        "devcontainer-lock.json"
    })
}

impl Lockfile {
    /// Parses a lockfile's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Lockfile> {
        if text.trim().is_empty() {
            return Ok(Lockfile::default());
        }
        let doc: Value = serde_json::from_str(text).map_err(|e| Error::Syntax {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        let field = |field: String, message: &str| Error::Field {
            file: file.to_string(),
            field,
            message: message.to_string(),
        };
        let Value::Object(top) = &doc else {
            return Err(field("(top level)".into(), "expected a JSON object"));
        };
        let mut features = BTreeMap::new();
        match top.get("features") {
            None => {}
            Some(Value::Object(map)) => {
                for (id, entry) in map {
                    let Value::Object(e) = entry else {
                        return Err(field(format!("features.{id}"), "expected an object"));
                    };
                    let string = |key: &str| -> Result<String> {
                        match e.get(key) {
                            Some(Value::String(s)) => Ok(s.clone()),
                            None => Err(field(format!("features.{id}.{key}"), "missing")),
                            Some(_) => {
                                Err(field(format!("features.{id}.{key}"), "expected a string"))
                            }
                        }
                    };
                    let depends_on = match e.get("dependsOn") {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::Array(items)) => items
                            .iter()
                            .map(|v| {
                                v.as_str().map(str::to_string).ok_or_else(|| {
                                    field(
                                        format!("features.{id}.dependsOn"),
                                        "expected an array of strings",
                                    )
                                })
                            })
                            .collect::<Result<_>>()?,
                        Some(_) => {
                            return Err(field(
                                format!("features.{id}.dependsOn"),
                                "expected an array of strings",
                            ));
                        }
                    };
                    features.insert(
                        id.clone(),
                        LockEntry {
                            version: string("version")?,
                            resolved: string("resolved")?,
                            integrity: string("integrity")?,
                            depends_on,
                        },
                    );
                }
            }
            Some(_) => return Err(field("features".into(), "expected an object")),
        }
        Ok(Lockfile { features })
    }

    /// Reads `path`: `Ok(None)` when it does not exist.
    pub fn read(path: &Path) -> Result<Option<Lockfile>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Lockfile::parse(&text, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The file's text exactly as the devcontainer CLI writes it.
    pub fn render(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut ids: Vec<&String> = self.features.keys().collect();
        ids.sort_by(|a, b| locale_cmp(a, b));
        if ids.is_empty() {
            return "{\n  \"features\": {}\n}\n".to_string();
        }
        let mut out = String::from("{\n  \"features\": {\n");
        for (i, id) in ids.iter().enumerate() {
            let e = &self.features[*id];
            out.push_str(&format!("    {}: {{\n", q(id)));
            out.push_str(&format!("      \"version\": {},\n", q(&e.version)));
            out.push_str(&format!("      \"resolved\": {},\n", q(&e.resolved)));
            out.push_str(&format!("      \"integrity\": {}", q(&e.integrity)));
            if !e.depends_on.is_empty() {
                out.push_str(",\n      \"dependsOn\": [\n");
                let items: Vec<String> = e
                    .depends_on
                    .iter()
                    .map(|d| format!("        {}", q(d)))
                    .collect();
                out.push_str(&items.join(",\n"));
                out.push_str("\n      ]");
            }
            out.push_str("\n    }");
            out.push_str(if i + 1 < ids.len() { ",\n" } else { "\n" });
        }
        out.push_str("  }\n}\n");
        out
    }

    /// What turning `self` into `new` changes, one line per Feature, in id
    /// order; empty when they are equal.
    pub fn changes(&self, new: &Lockfile) -> Vec<String> {
        let mut ids: Vec<&String> = self.features.keys().chain(new.features.keys()).collect();
        ids.sort_by(|a, b| locale_cmp(a, b));
        ids.dedup();
        let mut out = Vec::new();
        for id in ids {
            match (self.features.get(id), new.features.get(id)) {
                (None, Some(n)) => out.push(format!("`{id}` would be added ({})", n.resolved)),
                (Some(_), None) => out.push(format!("`{id}` would be removed")),
                (Some(o), Some(n)) if o != n => {
                    let mut what = Vec::new();
                    if o.version != n.version {
                        what.push(format!("version {} -> {}", o.version, n.version));
                    }
                    if o.resolved != n.resolved {
                        what.push(format!("resolved {} -> {}", o.resolved, n.resolved));
                    } else if o.integrity != n.integrity {
                        what.push(format!("integrity {} -> {}", o.integrity, n.integrity));
                    }
                    if o.depends_on != n.depends_on {
                        what.push(format!(
                            "dependsOn [{}] -> [{}]",
                            o.depends_on.join(", "),
                            n.depends_on.join(", ")
                        ));
                    }
                    out.push(format!("`{id}`: {}", what.join(", ")));
                }
                _ => {}
            }
        }
        out
    }
}

/// `--frozen-lockfile`: fails unless the lockfile at `path` (read into
/// `existing`, `None` when there is no file) already is `new`.
pub fn check_frozen(path: &Path, existing: Option<&Lockfile>, new: &Lockfile) -> Result<()> {
    let file = path.display().to_string();
    let Some(old) = existing else {
        return Err(Error::Field {
            file,
            field: "(file)".into(),
            message: "--frozen-lockfile: the lockfile does not exist".into(),
        });
    };
    let changes = old.changes(new);
    if changes.is_empty() {
        return Ok(());
    }
    Err(Error::Field {
        file,
        field: "features".into(),
        message: format!(
            "--frozen-lockfile: the lockfile would change: {}",
            changes.join("; ")
        ),
    })
}

/// The keys of the `dependsOn` object of a `devcontainer-feature.json`
/// text in the file's order (the last `dependsOn` wins, a repeated key
/// keeps its first place, as with `JSON.parse` and `Object.keys`); empty
/// when there is none or the text does not parse.
pub fn depends_on_keys(feature_json: &str) -> Vec<String> {
    use jsonc_parser::ast::Value as Ast;
    let Ok(parsed) = jsonc_parser::parse_to_ast(
        feature_json,
        &jsonc_parser::CollectOptions::default(),
        &jsonc_parser::ParseOptions::default(),
    ) else {
        return Vec::new();
    };
    let Some(Ast::Object(top)) = parsed.value else {
        return Vec::new();
    };
    let Some(Ast::Object(deps)) = top
        .properties
        .into_iter()
        .rev()
        .find(|p| p.name.as_str() == "dependsOn")
        .map(|p| p.value)
    else {
        return Vec::new();
    };
    let mut keys: Vec<String> = Vec::new();
    for p in &deps.properties {
        let k = p.name.as_str().to_string();
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// Orders strings as JavaScript's `a.localeCompare(b)` does (ICU root
/// collation) for ASCII text: first by characters with case ignored, where
/// punctuation and symbols sort before digits and digits before letters in
/// the Unicode collation order (`_ - , ; : ! ? . ' " ( ) [ ] { } @ * / \ & #
/// % ` ^ + < = > | ~ $`), then lower case before upper case. Other
/// characters sort after ASCII by code point.
pub fn locale_cmp(a: &str, b: &str) -> Ordering {
    fn primary(c: char) -> (u32, u32) {
        const PUNCT: &str = "\t\n\u{b}\u{c}\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$";
        if let Some(i) = PUNCT.find(c) {
            return (0, i as u32);
        }
        if c.is_ascii_digit() {
            return (1, c as u32);
        }
        if c.is_ascii_alphabetic() {
            return (2, c.to_ascii_lowercase() as u32);
        }
        if (c as u32) < 0x20 || c as u32 == 0x7f {
            // Control characters are ignorable; keep them lowest.
            return (0, 0);
        }
        (3, c as u32)
    }
    let pa = a.chars().map(primary);
    let pb = b.chars().map(primary);
    pa.cmp(pb).then_with(|| {
        // Tertiary: lower case first, position by position.
        let ta = a.chars().map(|c| c.is_ascii_uppercase());
        let tb = b.chars().map(|c| c.is_ascii_uppercase());
        ta.cmp(tb)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: &str, d: &str, deps: &[&str]) -> LockEntry {
        LockEntry {
            version: v.into(),
            resolved: format!("ghcr.io/acme/f/x@sha256:{}", d.repeat(64)),
            integrity: format!("sha256:{}", d.repeat(64)),
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn path_beside_the_config() {
        assert_eq!(
            lockfile_path(Path::new("/w/.devcontainer/devcontainer.json")),
            Path::new("/w/.devcontainer/devcontainer-lock.json")
        );
        assert_eq!(
            lockfile_path(Path::new("/w/.devcontainer.json")),
            Path::new("/w/.devcontainer-lock.json")
        );
        assert_eq!(
            lockfile_path(Path::new("/w/.devcontainer/py/devcontainer.json")),
            Path::new("/w/.devcontainer/py/devcontainer-lock.json")
        );
    }

    #[test]
    fn renders_like_the_cli_and_round_trips() {
        let mut lock = Lockfile::default();
        lock.features
            .insert("ghcr.io/acme/f/node:1".into(), entry("1.2.3", "a", &[]));
        lock.features.insert(
            "ghcr.io/acme/f/go:1".into(),
            entry(
                "1.0.0",
                "b",
                &["ghcr.io/acme/f/common:2", "ghcr.io/acme/f/git:1"],
            ),
        );
        lock.features.insert(
            "https://example.com/devcontainer-feature-t.tgz".into(),
            LockEntry {
                version: "0.1.0".into(),
                resolved: "https://example.com/devcontainer-feature-t.tgz".into(),
                integrity: format!("sha256:{}", "c".repeat(64)),
                depends_on: vec![],
            },
        );
        let text = lock.render();
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let c = "c".repeat(64);
        let want = format!(
            r#"{{
  "features": {{
    "ghcr.io/acme/f/go:1": {{
      "version": "1.0.0",
      "resolved": "ghcr.io/acme/f/x@sha256:{b}",
      "integrity": "sha256:{b}",
      "dependsOn": [
        "ghcr.io/acme/f/common:2",
        "ghcr.io/acme/f/git:1"
      ]
    }},
    "ghcr.io/acme/f/node:1": {{
      "version": "1.2.3",
      "resolved": "ghcr.io/acme/f/x@sha256:{a}",
      "integrity": "sha256:{a}"
    }},
    "https://example.com/devcontainer-feature-t.tgz": {{
      "version": "0.1.0",
      "resolved": "https://example.com/devcontainer-feature-t.tgz",
      "integrity": "sha256:{c}"
    }}
  }}
}}
"#
        );
        assert_eq!(text, want);
        // serde_json's pretty printer agrees with JSON.stringify(…, null, 2)
        // on the structure (ours only fixes the entry key order).
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["features"].as_object().unwrap().len(), 3);
        assert_eq!(Lockfile::parse(&text, "l.json").unwrap(), lock);
        assert_eq!(Lockfile::default().render(), "{\n  \"features\": {}\n}\n");
    }

    #[test]
    fn sorts_ids_like_locale_compare() {
        // The expected order is node 20's `.sort((x, y) => x.localeCompare(y))`.
        let want = vec![
            "./local",
            "a",
            "A",
            "a_b",
            "a-b",
            "a:b",
            "a.b",
            "a/b",
            "a1",
            "b:1",
            "ghcr.io/A/b",
            "ghcr.io/a/b-c:1",
            "ghcr.io/a/b:1",
            "ghcr.io/a/b@sha256:0",
            "ghcr.io/a/b/c",
            "https://x",
        ];
        let mut ids = want.clone();
        ids.reverse();
        ids.sort_by(|a, b| locale_cmp(a, b));
        assert_eq!(ids, want);
    }

    #[test]
    fn empty_file_is_an_empty_lockfile_and_errors_name_the_file() {
        assert_eq!(
            Lockfile::parse("  \n", "x/devcontainer-lock.json").unwrap(),
            Lockfile::default()
        );
        let e = Lockfile::parse("{\"features\": ", "x/devcontainer-lock.json").unwrap_err();
        assert!(
            e.to_string().starts_with("x/devcontainer-lock.json: "),
            "{e}"
        );
        let e = Lockfile::parse(
            r#"{"features": {"ghcr.io/a/b/c": {"version": "1", "resolved": "r"}}}"#,
            "l.json",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "l.json: field `features.ghcr.io/a/b/c.integrity`: missing"
        );
    }

    #[test]
    fn depends_on_keys_keep_the_file_order() {
        let text = r#"{
            // comment
            "id": "x", "version": "1",
            "dependsOn": {"ghcr.io/z/f/zed:1": {}, "ghcr.io/a/f/ay:2": {"o": true}, "ghcr.io/z/f/zed:1": {},},
        }"#;
        assert_eq!(
            depends_on_keys(text),
            vec!["ghcr.io/z/f/zed:1", "ghcr.io/a/f/ay:2"]
        );
        assert!(depends_on_keys(r#"{"id": "x"}"#).is_empty());
        assert!(depends_on_keys("{").is_empty());
    }

    #[test]
    fn read_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("devcontainer-lock.json");
        assert_eq!(Lockfile::read(&p).unwrap(), None);
        std::fs::write(&p, Lockfile::default().render()).unwrap();
        assert_eq!(Lockfile::read(&p).unwrap(), Some(Lockfile::default()));
    }

    #[test]
    fn frozen_lockfile_names_what_would_change() {
        let p = Path::new("/w/.devcontainer/devcontainer-lock.json");
        let mut old = Lockfile::default();
        old.features
            .insert("ghcr.io/acme/f/node:1".into(), entry("1.2.3", "a", &[]));
        old.features
            .insert("ghcr.io/acme/f/gone:1".into(), entry("1.0.0", "e", &[]));
        // Same data, other formatting on disk: no change.
        let compact =
            serde_json::to_string(&serde_json::from_str::<Value>(&old.render()).unwrap()).unwrap();
        let reparsed = Lockfile::parse(&compact, "l").unwrap();
        check_frozen(p, Some(&reparsed), &old).unwrap();

        let mut new = Lockfile::default();
        new.features
            .insert("ghcr.io/acme/f/node:1".into(), entry("1.3.0", "d", &[]));
        new.features
            .insert("ghcr.io/acme/f/new:2".into(), entry("2.0.0", "f", &[]));
        let e = check_frozen(p, Some(&old), &new).unwrap_err().to_string();
        assert!(
            e.starts_with("/w/.devcontainer/devcontainer-lock.json: "),
            "{e}"
        );
        assert!(e.contains("the lockfile would change: "), "{e}");
        assert!(
            e.contains("`ghcr.io/acme/f/gone:1` would be removed"),
            "{e}"
        );
        assert!(e.contains("`ghcr.io/acme/f/new:2` would be added"), "{e}");
        assert!(
            e.contains("`ghcr.io/acme/f/node:1`: version 1.2.3 -> 1.3.0, resolved "),
            "{e}"
        );
        let e = check_frozen(p, None, &new).unwrap_err().to_string();
        assert!(e.contains("the lockfile does not exist"), "{e}");
    }
}
