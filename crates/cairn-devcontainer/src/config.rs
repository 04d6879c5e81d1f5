//! Finding and reading devcontainer.json.
//!
//! [`find_config`] looks in the standard locations; [`load_config`] and
//! [`parse_config`] read JSONC (comments and trailing commas, nothing looser)
//! into a [`DevContainerConfig`], after `${…}` substitution (see
//! [`crate::substitute`]). Paths (`build.dockerfile`, `build.context`) are
//! resolved relative to the folder holding the config file. A Docker Compose
//! configuration is refused with [`Error::Unsupported`] naming
//! `dockerComposeFile`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::substitute::{SubstitutionContext, substitute_str, substitute_value};

/// Parses JSONC text: JSON plus `//` and `/* */` comments and trailing
/// commas. `file` names the text's origin in errors.
pub fn parse_jsonc(text: &str, file: &str) -> Result<Value> {
    let options = jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    jsonc_parser::parse_to_serde_value::<Value>(text, &options).map_err(|e| Error::Syntax {
        file: file.to_string(),
        message: e.to_string(),
    })
}

/// Finds the configuration of a workspace, in the order the reference CLI
/// tries: `.devcontainer/devcontainer.json`, `.devcontainer.json`, then
/// `.devcontainer/NAME/devcontainer.json` when exactly one such folder has
/// one (several → [`Error::Ambiguous`]).
pub fn find_config(workspace: &Path) -> Result<PathBuf> {
    let candidates = [
        workspace.join(".devcontainer").join("devcontainer.json"),
        workspace.join(".devcontainer.json"),
    ];
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    let mut named = Vec::new();
    let dir = workspace.join(".devcontainer");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let p = entry.path().join("devcontainer.json");
            if entry.path().is_dir() && p.is_file() {
                named.push(p);
            }
        }
    }
    named.sort();
    match named.len() {
        1 => Ok(named.remove(0)),
        0 => {
            let mut tried = candidates.to_vec();
            tried.push(dir.join("<NAME>").join("devcontainer.json"));
            Err(Error::NotFound {
                workspace: workspace.to_path_buf(),
                tried,
            })
        }
        _ => Err(Error::Ambiguous { found: named }),
    }
}

/// How the base image is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `image`: a reference to pull.
    Image(String),
    /// `build`: a Dockerfile to build.
    Dockerfile(BuildConfig),
}

/// The `build` object (or the legacy top-level `dockerFile`/`context`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildConfig {
    /// `build.dockerfile`, resolved against the config file's folder.
    pub dockerfile: PathBuf,
    /// `build.context` (default `.`), resolved against the config file's folder.
    pub context: PathBuf,
    /// `build.args`.
    pub args: BTreeMap<String, String>,
    /// `build.target`.
    pub target: Option<String>,
    /// `build.cacheFrom` (a string or an array in the file).
    pub cache_from: Vec<String>,
    /// `build.options`: extra `docker build` flags, kept for the caller to
    /// accept or reject.
    pub options: Vec<String>,
}

/// A parsed devcontainer.json (image- or Dockerfile-based).
#[derive(Debug, Clone, PartialEq)]
pub struct DevContainerConfig {
    /// The config file, as given.
    pub config_file: PathBuf,
    /// `image` or `build`.
    pub base: Base,
    /// `features`: reference as written → options as written (a boolean, a
    /// string — shorthand for the `version` option — or an object).
    pub features: BTreeMap<String, Value>,
    /// `overrideFeatureInstallOrder`.
    pub override_feature_install_order: Vec<String>,
    /// `containerEnv`.
    pub container_env: BTreeMap<String, String>,
    /// `remoteUser`.
    pub remote_user: Option<String>,
    /// `containerUser`.
    pub container_user: Option<String>,
    /// `updateRemoteUserUID`.
    pub update_remote_user_uid: Option<bool>,
    /// `workspaceFolder`.
    pub workspace_folder: Option<String>,
    /// Every other top-level field, after substitution (lifecycle hooks,
    /// `customizations`, `mounts`, `forwardPorts`, …), kept for the image
    /// metadata label and for the caller.
    pub other: BTreeMap<String, Value>,
    /// The whole document after substitution.
    pub document: Value,
}

/// Reads and parses a config file (see [`parse_config`]).
pub fn load_config(path: &Path, ctx: &SubstitutionContext) -> Result<DevContainerConfig> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_config(&text, path, ctx)
}

const KNOWN: &[&str] = &[
    "image",
    "build",
    "dockerFile",
    "context",
    "features",
    "overrideFeatureInstallOrder",
    "containerEnv",
    "remoteUser",
    "containerUser",
    "updateRemoteUserUID",
    "workspaceFolder",
];

/// Parses devcontainer.json text. `config_file` locates relative paths and
/// names the file in errors. `workspaceFolder` from the file (itself
/// substituted) becomes the context's container workspace folder before the
/// rest is substituted.
pub fn parse_config(
    text: &str,
    config_file: &Path,
    ctx: &SubstitutionContext,
) -> Result<DevContainerConfig> {
    let file = config_file.display().to_string();
    let mut document = parse_jsonc(text, &file)?;
    let Value::Object(top) = &document else {
        return Err(Error::Field {
            file,
            field: "(top level)".into(),
            message: "expected a JSON object".into(),
        });
    };
    if top.contains_key("dockerComposeFile") {
        return Err(Error::Unsupported {
            file,
            field: "dockerComposeFile".into(),
            message: "Docker Compose configurations are not supported by cairn; use `image` or `build.dockerfile`"
                .into(),
        });
    }
    let mut ctx = ctx.clone();
    let workspace_folder = match top.get("workspaceFolder") {
        None => None,
        Some(Value::String(s)) => Some(substitute_str(&ctx, s)),
        Some(_) => return Err(field_err(&file, "workspaceFolder", "expected a string")),
    };
    if workspace_folder.is_some() {
        ctx.container_workspace_folder = workspace_folder.clone();
    }
    substitute_value(&ctx, &mut document);
    let Value::Object(top) = &document else {
        // Substitution only rewrites strings inside the object.
        return Err(field_err(&file, "(top level)", "expected a JSON object"));
    };
    let base_dir = config_file.parent().unwrap_or(Path::new("."));

    let image = opt_string(&file, top, "image")?;
    let build = build_config(&file, top, base_dir)?;
    let base = match (image, build) {
        (Some(_), Some(_)) => {
            return Err(Error::Field {
                file,
                field: "image".into(),
                message: "both `image` and `build.dockerfile` are set; use one".into(),
            });
        }
        (Some(i), None) => Base::Image(i),
        (None, Some(b)) => Base::Dockerfile(b),
        (None, None) => {
            return Err(Error::Field {
                file,
                field: "image".into(),
                message: "neither `image` nor `build.dockerfile` is set".into(),
            });
        }
    };

    let mut features = BTreeMap::new();
    match top.get("features") {
        None => {}
        Some(Value::Object(map)) => {
            for (id, options) in map {
                check_feature_options(&file, &format!("features.{id}"), options)?;
                features.insert(id.clone(), options.clone());
            }
        }
        Some(_) => return Err(field_err(&file, "features", "expected an object")),
    }

    let override_feature_install_order = match top.get("overrideFeatureInstallOrder") {
        None => Vec::new(),
        Some(v) => string_array(&file, "overrideFeatureInstallOrder", v)?,
    };
    let container_env = string_map(&file, top, "containerEnv")?;
    let remote_user = opt_string(&file, top, "remoteUser")?;
    let container_user = opt_string(&file, top, "containerUser")?;
    let update_remote_user_uid = match top.get("updateRemoteUserUID") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(field_err(
                &file,
                "updateRemoteUserUID",
                "expected a boolean",
            ));
        }
    };
    let other = top
        .iter()
        .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    Ok(DevContainerConfig {
        config_file: config_file.to_path_buf(),
        base,
        features,
        override_feature_install_order,
        container_env,
        remote_user,
        container_user,
        update_remote_user_uid,
        workspace_folder,
        other,
        document,
    })
}

fn field_err(file: &str, field: &str, message: &str) -> Error {
    Error::Field {
        file: file.to_string(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

fn opt_string(file: &str, obj: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(field_err(file, key, "expected a string")),
    }
}

fn string_array(file: &str, field: &str, v: &Value) -> Result<Vec<String>> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(field_err(
                    file,
                    &format!("{field}[{i}]"),
                    "expected a string",
                )),
            })
            .collect(),
        _ => Err(field_err(
            file,
            field,
            "expected a string or an array of strings",
        )),
    }
}

fn string_map(file: &str, obj: &Map<String, Value>, key: &str) -> Result<BTreeMap<String, String>> {
    match obj.get(key) {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(field_err(file, &format!("{key}.{k}"), "expected a string")),
            })
            .collect(),
        Some(_) => Err(field_err(file, key, "expected an object of strings")),
    }
}

/// A Feature's options in devcontainer.json (or `dependsOn`): a boolean, a
/// string, or an object whose values are strings, booleans or numbers.
pub(crate) fn check_feature_options(file: &str, field: &str, options: &Value) -> Result<()> {
    match options {
        Value::Bool(_) | Value::String(_) => Ok(()),
        Value::Object(map) => {
            for (k, v) in map {
                if !matches!(v, Value::Bool(_) | Value::String(_) | Value::Number(_)) {
                    return Err(field_err(
                        file,
                        &format!("{field}.{k}"),
                        "an option value must be a string or a boolean",
                    ));
                }
            }
            Ok(())
        }
        _ => Err(field_err(
            file,
            field,
            "expected an object of options, a string (the version) or a boolean",
        )),
    }
}

fn build_config(
    file: &str,
    top: &Map<String, Value>,
    base_dir: &Path,
) -> Result<Option<BuildConfig>> {
    let build = match top.get("build") {
        None => None,
        Some(Value::Object(b)) => Some(b),
        Some(_) => return Err(field_err(file, "build", "expected an object")),
    };
    let dockerfile = match build
        .map(|b| opt_string(file, b, "dockerfile"))
        .transpose()?
        .flatten()
    {
        Some(d) => Some(d),
        None => opt_string(file, top, "dockerFile")?,
    };
    let Some(dockerfile) = dockerfile else {
        if build.is_some() {
            return Err(field_err(
                file,
                "build.dockerfile",
                "missing: `build` needs a `dockerfile`",
            ));
        }
        return Ok(None);
    };
    let context = match build
        .map(|b| opt_string(file, b, "context"))
        .transpose()?
        .flatten()
    {
        Some(c) => Some(c),
        None => opt_string(file, top, "context")?,
    }
    .unwrap_or_else(|| ".".to_string());
    let empty = Map::new();
    let b = build.unwrap_or(&empty);
    let args = match b.get("args") {
        None => BTreeMap::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                Value::Bool(x) => Ok((k.clone(), x.to_string())),
                _ => Err(field_err(
                    file,
                    &format!("build.args.{k}"),
                    "expected a string",
                )),
            })
            .collect::<Result<_>>()?,
        Some(_) => {
            return Err(field_err(
                file,
                "build.args",
                "expected an object of strings",
            ));
        }
    };
    let target = opt_string(file, b, "target")
        .map_err(|_| field_err(file, "build.target", "expected a string"))?;
    let cache_from = match b.get("cacheFrom") {
        None => Vec::new(),
        Some(v) => string_array(file, "build.cacheFrom", v)?,
    };
    let options = match b.get("options") {
        None => Vec::new(),
        Some(v) => string_array(file, "build.options", v)?,
    };
    Ok(Some(BuildConfig {
        dockerfile: normalize(&base_dir.join(dockerfile)),
        context: normalize(&base_dir.join(context)),
        args,
        target,
        cache_from,
        options,
    }))
}

/// Lexically removes `.` and `..` components (no filesystem access).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/devcontainer")
            .join(name)
    }

    fn ctx() -> SubstitutionContext {
        SubstitutionContext::new(
            BTreeMap::from([("USER".into(), "alice".into())]),
            "/src/proj",
        )
    }

    #[test]
    fn jsonc_comments_and_trailing_commas() {
        let v = parse_jsonc(
            "{\n // c\n \"a\": [1, 2,], /* x */ \"b\": {\"c\": true,},\n}",
            "t",
        )
        .unwrap();
        assert_eq!(v, json!({"a": [1, 2], "b": {"c": true}}));
    }

    #[test]
    fn jsonc_syntax_error_names_file_and_position() {
        let e = parse_jsonc("{\"a\": 1 \"b\": 2}", "x/devcontainer.json").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("x/devcontainer.json: "), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
        // Looser JSON5 syntax stays an error.
        assert!(parse_jsonc("{'a': 1}", "t").is_err());
        assert!(parse_jsonc("{a: 1}", "t").is_err());
    }

    #[test]
    fn image_config_fixture() {
        let path = fixture("image/.devcontainer/devcontainer.json");
        let c = load_config(&path, &ctx()).unwrap();
        assert_eq!(c.base, Base::Image("debian:bookworm".into()));
        assert_eq!(c.features.len(), 3);
        assert_eq!(
            c.features["ghcr.io/devcontainers/features/node:1"],
            json!("18")
        );
        assert_eq!(
            c.features["./local-feature"],
            json!({"greeting": "hi", "loud": true})
        );
        assert_eq!(
            c.override_feature_install_order,
            vec!["./local-feature".to_string()]
        );
        assert_eq!(c.container_env["WHO"], "alice");
        assert_eq!(c.container_env["WS"], "/workspaces/proj");
        assert_eq!(c.remote_user.as_deref(), Some("vscode"));
        assert_eq!(c.container_user.as_deref(), Some("root"));
        assert_eq!(c.update_remote_user_uid, Some(false));
        assert_eq!(c.other["postCreateCommand"], json!("echo proj"));
        assert_eq!(c.other["name"], json!("image fixture"));
    }

    #[test]
    fn dockerfile_config_fixture_resolves_paths() {
        let path = fixture("dockerfile/.devcontainer/devcontainer.json");
        let c = load_config(&path, &ctx()).unwrap();
        let Base::Dockerfile(b) = c.base else {
            panic!("expected a Dockerfile config")
        };
        let dir = fixture("dockerfile/.devcontainer");
        assert_eq!(b.dockerfile, normalize(&dir.join("Dockerfile")));
        assert_eq!(b.context, normalize(&fixture("dockerfile")));
        assert_eq!(b.args["VARIANT"], "bookworm");
        assert_eq!(b.args["WHO"], "alice");
        assert_eq!(b.target.as_deref(), Some("dev"));
        assert_eq!(b.cache_from, vec!["registry.example/cache:dev".to_string()]);
        assert_eq!(c.workspace_folder.as_deref(), Some("/work/proj"));
    }

    #[test]
    fn legacy_top_level_dockerfile() {
        let c = parse_config(
            r#"{"dockerFile": "../Dockerfile", "context": ".."}"#,
            Path::new("/w/.devcontainer/devcontainer.json"),
            &ctx(),
        )
        .unwrap();
        let Base::Dockerfile(b) = c.base else {
            panic!()
        };
        assert_eq!(b.dockerfile, PathBuf::from("/w/Dockerfile"));
        assert_eq!(b.context, PathBuf::from("/w"));
    }

    #[test]
    fn compose_is_refused_naming_the_field() {
        let path = fixture("compose/.devcontainer.json");
        let e = load_config(&path, &ctx()).unwrap_err();
        assert!(matches!(&e, Error::Unsupported { field, .. } if field == "dockerComposeFile"));
        assert!(e.to_string().contains("dockerComposeFile"), "{e}");
        assert!(e.to_string().contains("not supported"), "{e}");
    }

    #[test]
    fn field_errors_name_the_field() {
        let p = Path::new("/w/.devcontainer.json");
        let e = parse_config(r#"{"image": 3}"#, p, &ctx()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/w/.devcontainer.json: field `image`: expected a string"
        );
        let e = parse_config(
            r#"{"image": "x", "build": {"dockerfile": "D", "args": {"A": []}}}"#,
            p,
            &ctx(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`build.args.A`"), "{e}");
        let e = parse_config(r#"{"image": "x", "features": {"f": [1]}}"#, p, &ctx()).unwrap_err();
        assert!(e.to_string().contains("`features.f`"), "{e}");
        let e = parse_config(r#"{"image": "x", "containerEnv": {"A": 1}}"#, p, &ctx()).unwrap_err();
        assert!(e.to_string().contains("`containerEnv.A`"), "{e}");
        let e = parse_config(r#"{"features": {}}"#, p, &ctx()).unwrap_err();
        assert!(
            e.to_string()
                .contains("neither `image` nor `build.dockerfile`"),
            "{e}"
        );
    }

    #[test]
    fn finds_standard_locations_in_order() {
        let t = tempfile::tempdir().unwrap();
        let w = t.path();
        assert!(matches!(find_config(w), Err(Error::NotFound { .. })));
        std::fs::create_dir_all(w.join(".devcontainer/python")).unwrap();
        std::fs::write(w.join(".devcontainer/python/devcontainer.json"), "{}").unwrap();
        assert_eq!(
            find_config(w).unwrap(),
            w.join(".devcontainer/python/devcontainer.json")
        );
        std::fs::create_dir_all(w.join(".devcontainer/go")).unwrap();
        std::fs::write(w.join(".devcontainer/go/devcontainer.json"), "{}").unwrap();
        assert!(matches!(find_config(w), Err(Error::Ambiguous { found }) if found.len() == 2));
        std::fs::write(w.join(".devcontainer.json"), "{}").unwrap();
        assert_eq!(find_config(w).unwrap(), w.join(".devcontainer.json"));
        std::fs::write(w.join(".devcontainer/devcontainer.json"), "{}").unwrap();
        assert_eq!(
            find_config(w).unwrap(),
            w.join(".devcontainer/devcontainer.json")
        );
    }
}
