//! Registry credentials: explicit ones, docker `config.json`, podman
//! `auth.json` and `docker-credential-*` helpers.
//!
//! # Why not the `docker_credential` crate
//!
//! `docker_credential` 1.4 reads `$DOCKER_CONFIG` and runs helpers found on
//! the process `PATH`, both fixed at call time from the environment. cairn
//! needs the file and the helper directories as *values* (a pull source and a
//! push source side by side, tests with their own files and helper scripts,
//! which cannot set environment variables: `set_var` is `unsafe` and the
//! workspace denies unsafe code), and it must never let a secret reach an
//! error message (serde errors quote the offending value). The format is
//! small, so it is parsed here (~250 lines with the helper protocol).
//!
//! # Lookup order (per registry)
//!
//! For one auth file: `credHelpers[registry]` → `credsStore` → `auths[registry]`
//! (Docker's order; with a `credsStore` the `auths` entries are still used
//! when the store has nothing). Keys may carry a scheme and a path
//! (`https://index.docker.io/v1/`); only the host part is compared, and
//! `docker.io`, `index.docker.io` and `registry-1.docker.io` are one registry.
//! Namespaced podman keys (`quay.io/org`) are not matched.
//!
//! [`CredentialSource::from_env`] chains `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json` and `$DOCKER_CONFIG/config.json`
//! (or `~/.docker/config.json`); the first that has an entry wins.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine as _;
use tokio::io::AsyncWriteExt;

use crate::Error;

/// A secret for one registry. `Debug` shows only the kind.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// User name and password: HTTP basic auth, or sent to a token realm.
    Basic {
        /// User name.
        username: String,
        /// Password or access token used as one.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in docker's config.json;
    /// helpers return it with user name `<token>`): exchanged at the token
    /// realm with `grant_type=refresh_token`.
    IdentityToken(String),
    /// A bearer token sent as is (`registrytoken` in docker's config.json).
    RegistryToken(String),
}

impl Credential {
    /// `Credential::Basic` from a user name and password.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Credential {
        Credential::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Credential::Basic { .. } => "basic",
            Credential::IdentityToken(_) => "identity token",
            Credential::RegistryToken(_) => "registry token",
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}, <redacted>)", self.kind())
    }
}

/// Where a [`Client`](crate::Client) gets credentials for one kind of
/// operation (see [`ClientOptions::pull_credentials`](crate::ClientOptions::pull_credentials)
/// and `push_credentials`). `Debug` never shows secrets.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum CredentialSource {
    /// No credentials: anonymous access (anonymous tokens where the registry issues them).
    #[default]
    Anonymous,
    /// The same credential for every registry (e.g. from a `--creds` flag).
    Fixed(Credential),
    /// Credentials by registry (`host[:port]`, `docker.io` for Docker Hub).
    PerRegistry(BTreeMap<String, Credential>),
    /// A docker `config.json` or podman `auth.json`, read at lookup time.
    AuthFile(AuthFile),
    /// The first source that has a credential for the registry.
    Chain(Vec<CredentialSource>),
}

impl fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Anonymous => f.write_str("Anonymous"),
            CredentialSource::Fixed(c) => f.debug_tuple("Fixed").field(c).finish(),
            CredentialSource::PerRegistry(m) => f
                .debug_tuple("PerRegistry")
                .field(&m.keys().collect::<Vec<_>>())
                .finish(),
            CredentialSource::AuthFile(a) => f.debug_tuple("AuthFile").field(a).finish(),
            CredentialSource::Chain(v) => f.debug_tuple("Chain").field(v).finish(),
        }
    }
}

impl CredentialSource {
    /// The auth files a `docker`/`podman` user would expect, in podman's
    /// order: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
    /// then `$DOCKER_CONFIG/config.json` or `$HOME/.docker/config.json`.
    /// Files that do not exist are skipped at lookup time.
    pub fn from_env() -> CredentialSource {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let mut files = Vec::new();
        if let Some(p) = var("REGISTRY_AUTH_FILE") {
            files.push(PathBuf::from(p));
        }
        if let Some(d) = var("XDG_RUNTIME_DIR") {
            files.push(Path::new(&d).join("containers/auth.json"));
        }
        if let Some(d) = var("DOCKER_CONFIG") {
            files.push(Path::new(&d).join("config.json"));
        } else if let Some(h) = var("HOME") {
            files.push(Path::new(&h).join(".docker/config.json"));
        }
        CredentialSource::Chain(
            files
                .into_iter()
                .map(|p| CredentialSource::AuthFile(AuthFile::new(p)))
                .collect(),
        )
    }

    /// True for [`CredentialSource::Anonymous`] (and an empty chain).
    pub fn is_anonymous(&self) -> bool {
        match self {
            CredentialSource::Anonymous => true,
            CredentialSource::Chain(v) => v.iter().all(CredentialSource::is_anonymous),
            _ => false,
        }
    }

    /// The credential for `registry` (`host[:port]`), if this source has one.
    ///
    /// May run a credential helper. Errors name the file or helper, never a secret.
    pub async fn resolve(&self, registry: &str) -> Result<Option<Credential>, Error> {
        match self {
            CredentialSource::Anonymous => Ok(None),
            CredentialSource::Fixed(c) => Ok(Some(c.clone())),
            CredentialSource::PerRegistry(m) => Ok(m
                .iter()
                .find(|(k, _)| same_registry(&normalize_key(k), registry))
                .map(|(_, c)| c.clone())),
            CredentialSource::AuthFile(a) => a.lookup(registry).await,
            CredentialSource::Chain(v) => {
                for s in v {
                    if let Some(c) = Box::pin(s.resolve(registry)).await? {
                        return Ok(Some(c));
                    }
                }
                Ok(None)
            }
        }
    }
}

/// A docker `config.json` or podman/containers `auth.json` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthFile {
    path: PathBuf,
    helper_dirs: Option<Vec<PathBuf>>,
}

#[derive(serde::Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

#[derive(serde::Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

impl AuthFile {
    /// The file at `path` (it need not exist: a missing file has no credentials).
    pub fn new(path: impl Into<PathBuf>) -> AuthFile {
        AuthFile {
            path: path.into(),
            helper_dirs: None,
        }
    }

    /// Look `docker-credential-<name>` helpers up in these directories
    /// instead of `$PATH`.
    pub fn with_helper_dirs(mut self, dirs: Vec<PathBuf>) -> AuthFile {
        self.helper_dirs = Some(dirs);
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential for `registry`, following `credHelpers`, `credsStore`, `auths`.
    pub async fn lookup(&self, registry: &str) -> Result<Option<Credential>, Error> {
        let text = match tokio::fs::read(&self.path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Io {
                    what: format!("reading auth file {}", self.path.display()),
                    source: e,
                });
            }
        };
        let file = parse_config(&text).map_err(|message| Error::Credentials {
            source_name: self.path.display().to_string(),
            message,
        })?;
        let helper = file
            .cred_helpers
            .iter()
            .find(|(k, _)| same_registry(&normalize_key(k), registry))
            .map(|(_, h)| h.clone());
        if let Some(h) = helper
            .or(file.creds_store.clone())
            .filter(|h| !h.is_empty())
            && let Some(c) = self.run_helper(&h, registry).await?
        {
            return Ok(Some(c));
        }
        let entry = file
            .auths
            .iter()
            .find(|(k, _)| same_registry(&normalize_key(k), registry));
        match entry {
            Some((key, e)) => e.credential().map_err(|message| Error::Credentials {
                source_name: format!("{} (auths entry {key:?})", self.path.display()),
                message,
            }),
            None => Ok(None),
        }
    }

    fn helper_path(&self, helper: &str) -> Result<PathBuf, Error> {
        let name = format!("docker-credential-{helper}");
        let not_found = || Error::Credentials {
            source_name: self.path.display().to_string(),
            message: format!("credential helper {name} not found"),
        };
        if helper.contains('/') || helper.is_empty() {
            return Err(not_found());
        }
        let dirs: Vec<PathBuf> = match &self.helper_dirs {
            Some(d) => d.clone(),
            None => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect(),
        };
        dirs.iter()
            .map(|d| d.join(&name))
            .find(|p| p.is_file())
            .ok_or_else(not_found)
    }

    /// `docker-credential-<helper> get` with the server URL on stdin.
    async fn run_helper(&self, helper: &str, registry: &str) -> Result<Option<Credential>, Error> {
        let program = self.helper_path(helper)?;
        let name = format!("docker-credential-{helper}");
        let err = |message: String| Error::Credentials {
            source_name: name.clone(),
            message,
        };
        let mut tries = 0;
        let mut child = loop {
            tries += 1;
            match tokio::process::Command::new(&program)
                .arg("get")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
            {
                Ok(c) => break c,
                // A helper written just now may still be open in a forked process.
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 5 => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => return Err(err(format!("cannot run {}: {e}", program.display()))),
            }
        };
        let server = helper_server_url(registry);
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading stdin is fine.
            let _ = stdin.write_all(server.as_bytes()).await;
        }
        let out =
            tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
                .await
                .map_err(|_| err("timed out after 60 s".into()))?
                .map_err(|e| err(format!("waiting for it failed: {e}")))?;
        if !out.status.success() {
            // The protocol's "not found" answer is on stdout (no secret in it).
            let stdout = String::from_utf8_lossy(&out.stdout);
            if stdout.contains("credentials not found") {
                return Ok(None);
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stderr: String = stderr.trim().chars().take(200).collect();
            return Err(err(format!(
                "`get` for {server} failed ({}){}",
                out.status,
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr}")
                }
            )));
        }
        let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
            .map_err(|e| err(format!("malformed answer ({})", json_error_position(&e))))?;
        if answer.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(if answer.username == "<token>" {
            Credential::IdentityToken(answer.secret)
        } else {
            Credential::Basic {
                username: answer.username,
                password: answer.secret,
            }
        }))
    }
}

impl AuthEntry {
    fn credential(&self) -> Result<Option<Credential>, String> {
        if let Some(t) = self.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken(t.clone())));
        }
        if let Some(t) = self.registrytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::RegistryToken(t.clone())));
        }
        if let Some(a) = self.auth.as_ref().filter(|a| !a.is_empty()) {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|_| "`auth` is not valid base64".to_owned())?;
            let text = String::from_utf8(raw).map_err(|_| "`auth` is not UTF-8".to_owned())?;
            let (u, p) = text
                .split_once(':')
                .ok_or_else(|| "`auth` is not base64 of `user:password`".to_owned())?;
            return Ok(Some(Credential::basic(u, p)));
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credential::basic(u, p))),
            _ => Ok(None),
        }
    }
}

/// [`crate::fuzzing::parse_auth_file`]: parse, then turn every entry into a credential.
pub(crate) fn parse_for_fuzzing(bytes: &[u8]) -> Vec<String> {
    match parse_config(bytes) {
        Err(e) => vec![e],
        Ok(f) => {
            for k in f.auths.keys().chain(f.cred_helpers.keys()) {
                let _ = same_registry(&normalize_key(k), "docker.io");
            }
            f.auths
                .values()
                .filter_map(|e| e.credential().err())
                .collect()
        }
    }
}

/// Parses a config.json/auth.json; errors carry only a position, never file content.
fn parse_config(text: &[u8]) -> Result<ConfigFile, String> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(ConfigFile::default());
    }
    serde_json::from_slice(text)
        .map_err(|e| format!("malformed JSON ({})", json_error_position(&e)))
}

fn json_error_position(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value",
        serde_json::error::Category::Eof => "unexpected end",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `reg:5000` → `reg:5000`.
pub(crate) fn normalize_key(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    k.split('/').next().unwrap_or("").to_ascii_lowercase()
}

fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    )
}

fn same_registry(key_host: &str, registry: &str) -> bool {
    let registry = registry.to_ascii_lowercase();
    key_host == registry || (is_docker_hub(key_host) && is_docker_hub(&registry))
}

/// What docker passes to helpers on stdin.
fn helper_server_url(registry: &str) -> String {
    if is_docker_hub(&registry.to_ascii_lowercase()) {
        "https://index.docker.io/v1/".to_owned()
    } else {
        registry.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            normalize_key("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(normalize_key("http://Reg:5000"), "reg:5000");
        assert_eq!(normalize_key("reg:5000/v2/"), "reg:5000");
        assert!(same_registry(
            &normalize_key("https://index.docker.io/v1/"),
            "docker.io"
        ));
        assert!(!same_registry("reg:5000", "reg:5001"));
        assert_eq!(
            helper_server_url("docker.io"),
            "https://index.docker.io/v1/"
        );
    }

    #[test]
    fn parse_errors_do_not_quote_content() {
        let e = parse_config(br#"{"auths": {"r": "c2VjcmV0OnBhc3N3b3Jk"}}"#)
            .err()
            .unwrap();
        assert!(!e.contains("c2Vj"), "{e}");
        let entry = AuthEntry {
            auth: Some("!!!not base64 s3cret".into()),
            ..AuthEntry::default()
        };
        let e = entry.credential().unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn debug_is_redacted() {
        let c = Credential::basic("alice", "s3cret");
        let s = CredentialSource::Chain(vec![
            CredentialSource::Fixed(c.clone()),
            CredentialSource::PerRegistry([("r:1".to_owned(), c)].into()),
        ]);
        let d = format!("{s:?}");
        assert!(!d.contains("alice") && !d.contains("s3cret"), "{d}");
        assert!(d.contains("r:1"), "{d}");
    }
}
