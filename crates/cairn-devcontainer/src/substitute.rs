//! `${…}` variable substitution in devcontainer.json, for build time.
//!
//! Supported, as the Dev Container reference defines them:
//!
//! | variable | value |
//! |---|---|
//! | `${localEnv:VAR}` / `${env:VAR}` | `VAR` from the caller's environment map, empty when unset |
//! | `${localEnv:VAR:default}` | `default` when `VAR` is unset (everything after the second `:`, colons included) |
//! | `${localWorkspaceFolder}` | the workspace folder on the host |
//! | `${localWorkspaceFolderBasename}` | its last path component |
//! | `${containerWorkspaceFolder}` | `workspaceFolder` from the config, else `/workspaces/<basename>` |
//! | `${containerWorkspaceFolderBasename}` | its last path component |
//! | `${devcontainerId}` | [`devcontainer_id`] of the id labels, when the caller supplies one |
//!
//! Anything else (`${containerEnv:…}`, which only exists at run time, an
//! unknown name, `${devcontainerId}` without an id) is left exactly as written,
//! the way the reference CLI leaves variables it cannot resolve yet. The
//! environment is always passed in as a map; the process environment is never
//! read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// What the variables resolve to.
#[derive(Debug, Clone, Default)]
pub struct SubstitutionContext {
    /// The host environment (`${localEnv:…}`).
    pub local_env: BTreeMap<String, String>,
    /// The workspace folder on the host.
    pub local_workspace_folder: PathBuf,
    /// The workspace folder in the container; `None` means the default
    /// `/workspaces/<basename of local_workspace_folder>`.
    pub container_workspace_folder: Option<String>,
    /// The dev container id, when known (see [`devcontainer_id`]).
    pub devcontainer_id: Option<String>,
}

impl SubstitutionContext {
    /// A context with the given environment and workspace folder, the default
    /// container workspace folder and no dev container id.
    pub fn new(
        local_env: BTreeMap<String, String>,
        local_workspace_folder: impl Into<PathBuf>,
    ) -> Self {
        Self {
            local_env,
            local_workspace_folder: local_workspace_folder.into(),
            container_workspace_folder: None,
            devcontainer_id: None,
        }
    }

    fn local_basename(&self) -> String {
        basename(&self.local_workspace_folder.to_string_lossy())
    }

    /// The container workspace folder: the configured one or
    /// `/workspaces/<local basename>`.
    pub fn container_workspace_folder(&self) -> String {
        match &self.container_workspace_folder {
            Some(folder) => folder.clone(),
            None => format!("/workspaces/{}", self.local_basename()),
        }
    }

    fn lookup(&self, expr: &str) -> Option<String> {
        let mut parts = expr.splitn(3, ':');
        let name = parts.next()?;
        match name {
            "localEnv" | "env" => {
                let var = parts.next()?;
                let default = parts.next();
                Some(match self.local_env.get(var) {
                    Some(v) => v.clone(),
                    None => default.unwrap_or("").to_string(),
                })
            }
            _ if expr.contains(':') => None,
            "localWorkspaceFolder" => {
                Some(self.local_workspace_folder.to_string_lossy().into_owned())
            }
            "localWorkspaceFolderBasename" => Some(self.local_basename()),
            "containerWorkspaceFolder" => Some(self.container_workspace_folder()),
            "containerWorkspaceFolderBasename" => {
                Some(basename(&self.container_workspace_folder()))
            }
            "devcontainerId" => self.devcontainer_id.clone(),
            _ => None,
        }
    }
}

fn basename(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Substitutes every `${…}` in `text` that the context resolves.
pub fn substitute_str(ctx: &SubstitutionContext, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let expr = &after[..end];
                match ctx.lookup(expr) {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Substitutes in every string value of a JSON document (object keys are left
/// alone, as the reference CLI does).
pub fn substitute_value(ctx: &SubstitutionContext, value: &mut Value) {
    match value {
        Value::String(s) => *s = substitute_str(ctx, s),
        Value::Array(items) => items.iter_mut().for_each(|v| substitute_value(ctx, v)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute_value(ctx, v)),
        _ => {}
    }
}

/// The dev container id computed from the labels identifying the container,
/// as the spec's "Label-based Computation" defines it: the labels as a JSON
/// object with sorted keys and no whitespace, SHA-256, the 256-bit number
/// written in base 32 (digits `0-9a-v`) and left-padded with `0` to 52
/// characters. The reference CLI uses the labels `devcontainer.local_folder`
/// and `devcontainer.config_file`.
pub fn devcontainer_id(labels: &BTreeMap<String, String>) -> String {
    let input = serde_json::to_string(labels).unwrap_or_default();
    let hash = Sha256::digest(input.as_bytes());
    const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    // 256 bits = 51 full 5-bit groups + 1 leftover bit: read the number as
    // bits from the most significant end, padded to 260 bits.
    let mut bits = Vec::with_capacity(260);
    bits.extend([false; 4]);
    for byte in hash.iter() {
        for i in (0..8).rev() {
            bits.push(byte >> i & 1 == 1);
        }
    }
    let digits: String = bits
        .chunks(5)
        .map(|c| DIGITS[c.iter().fold(0usize, |acc, &b| acc << 1 | usize::from(b))] as char)
        .collect();
    // BigInt.toString(32) drops leading zeros, padStart(52) puts them back:
    // the result is exactly the 52-digit form.
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> SubstitutionContext {
        let env = BTreeMap::from([
            ("HOME".to_string(), "/home/me".to_string()),
            ("EMPTY".to_string(), String::new()),
        ]);
        SubstitutionContext::new(env, "/src/my-project")
    }

    #[test]
    fn local_env_with_and_without_default() {
        let c = ctx();
        assert_eq!(substitute_str(&c, "${localEnv:HOME}/x"), "/home/me/x");
        assert_eq!(substitute_str(&c, "${env:HOME}"), "/home/me");
        assert_eq!(substitute_str(&c, "[${localEnv:NOPE}]"), "[]");
        assert_eq!(substitute_str(&c, "${localEnv:NOPE:fallback}"), "fallback");
        assert_eq!(substitute_str(&c, "${localEnv:NOPE:a:b}"), "a:b");
        // Set but empty is not unset: the default does not apply.
        assert_eq!(substitute_str(&c, "${localEnv:EMPTY:d}"), "");
    }

    #[test]
    fn workspace_folders() {
        let mut c = ctx();
        assert_eq!(
            substitute_str(&c, "${localWorkspaceFolder}"),
            "/src/my-project"
        );
        assert_eq!(
            substitute_str(&c, "${localWorkspaceFolderBasename}"),
            "my-project"
        );
        assert_eq!(
            substitute_str(&c, "${containerWorkspaceFolder}"),
            "/workspaces/my-project"
        );
        c.container_workspace_folder = Some("/work/app".into());
        assert_eq!(
            substitute_str(&c, "${containerWorkspaceFolder}"),
            "/work/app"
        );
        assert_eq!(
            substitute_str(&c, "${containerWorkspaceFolderBasename}"),
            "app"
        );
    }

    #[test]
    fn unresolvable_left_alone() {
        let c = ctx();
        assert_eq!(
            substitute_str(&c, "${containerEnv:PATH}:/x"),
            "${containerEnv:PATH}:/x"
        );
        assert_eq!(substitute_str(&c, "${devcontainerId}"), "${devcontainerId}");
        assert_eq!(substitute_str(&c, "${unknown} and ${"), "${unknown} and ${");
        assert_eq!(
            substitute_str(&c, "$HOME ${ localEnv:HOME}"),
            "$HOME ${ localEnv:HOME}"
        );
    }

    #[test]
    fn substitutes_nested_values_not_keys() {
        let c = ctx();
        let mut v =
            serde_json::json!({"${localEnv:HOME}": ["${localWorkspaceFolderBasename}", 1, true]});
        substitute_value(&c, &mut v);
        assert_eq!(
            v,
            serde_json::json!({"${localEnv:HOME}": ["my-project", 1, true]})
        );
    }

    #[test]
    fn devcontainer_id_matches_js_reference() {
        // Computed with the spec's JavaScript (node 20) for these labels.
        let labels = BTreeMap::from([
            (
                "devcontainer.local_folder".to_string(),
                "/src/my-project".to_string(),
            ),
            (
                "devcontainer.config_file".to_string(),
                "/src/my-project/.devcontainer/devcontainer.json".to_string(),
            ),
        ]);
        let id = devcontainer_id(&labels);
        assert_eq!(id, "0m89uuvlsttq5asnlg0l44d1vbrbpvk77665abhf0framsm5ckff");
        let mut c = ctx();
        c.devcontainer_id = Some(id.clone());
        assert_eq!(
            substitute_str(&c, "vol-${devcontainerId}"),
            format!("vol-{id}")
        );
    }
}
