//! `WWW-Authenticate` parsing and the per-registry token cache.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Lower-cased scheme (`bearer`, `basic`).
    pub scheme: String,
    /// Parameters with lower-cased keys.
    pub params: HashMap<String, String>,
}

/// Parses the first challenge of a `WWW-Authenticate` header value.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.find(char::is_whitespace) {
        Some(i) => (&header[..i], header[i..].trim_start()),
        None => (header, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            // token68 or a second challenge: stop here
            break;
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.to_ascii_lowercase(), value);
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// Where to get bearer tokens for one registry.
#[derive(Debug, Clone)]
pub(crate) struct BearerRealm {
    pub realm: String,
    pub service: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct CachedToken {
    pub token: String,
    pub valid_until: Instant,
}

/// What we learned about one registry's auth.
#[derive(Debug, Default)]
pub(crate) struct RegistryAuthState {
    /// Set once the registry sent a `Bearer` challenge.
    pub bearer: Option<BearerRealm>,
    /// Set once the registry sent a `Basic` challenge (and we have credentials).
    pub basic: bool,
    /// Tokens by their space-joined scope list.
    pub tokens: HashMap<String, CachedToken>,
}

impl RegistryAuthState {
    pub fn token_for(&self, scope_key: &str) -> Option<String> {
        self.tokens
            .get(scope_key)
            .filter(|t| t.valid_until > Instant::now())
            .map(|t| t.token.clone())
    }
}

/// Token endpoint answer (Docker token spec; `access_token` is the OAuth2 spelling).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long to trust it (spec default 60 s, minus a safety margin).
    pub fn into_cached(self) -> Option<CachedToken> {
        let token = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        let secs = self.expires_in.unwrap_or(60).max(60);
        Some(CachedToken {
            token,
            valid_until: Instant::now() + Duration::from_secs(secs.saturating_sub(10)),
        })
    }
}

/// `repository:<name>:<actions>`
pub(crate) fn repo_scope(repo: &str, actions: &str) -> String {
    format!("repository:{repo}:{actions}")
}

/// Whether `scope` (`type:name:actions`) asks for nothing beyond `held`'s scopes
/// (registries build the action list from a map, so `push,pull` = `pull,push`).
pub(crate) fn scope_covered(held: &[String], scope: &str) -> bool {
    let Some((head, actions)) = scope.rsplit_once(':') else {
        return held.iter().any(|h| h == scope);
    };
    actions.split(',').all(|a| {
        held.iter().any(|h| {
            h.rsplit_once(':')
                .is_some_and(|(hh, ha)| hh == head && ha.split(',').any(|x| x == a || x == "*"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_coverage() {
        let held = [repo_scope("a/b", "pull,push"), repo_scope("c", "pull")];
        assert!(scope_covered(&held, "repository:a/b:push,pull"));
        assert!(scope_covered(&held, "repository:c:pull"));
        assert!(!scope_covered(&held, "repository:c:push"));
        assert!(!scope_covered(&held, "repository:d:pull"));
        assert!(!scope_covered(&held, "registry:catalog:*"));
    }

    #[test]
    fn bearer_challenge_with_commas_in_quotes() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:samalba/my-app:pull,push");
    }

    #[test]
    fn basic_and_odd_spacing() {
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
        let c = parse_challenge(r#"bearer  Realm = "r\"x" , service=svc"#).unwrap();
        assert_eq!(c.params["realm"], "r\"x");
        assert_eq!(c.params["service"], "svc");
        assert!(parse_challenge("").is_none());
    }

    #[test]
    fn token_response() {
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"abc","expires_in":300}"#).unwrap();
        let c = t.into_cached().unwrap();
        assert_eq!(c.token, "abc");
        let t: TokenResponse = serde_json::from_str(r#"{}"#).unwrap();
        assert!(t.into_cached().is_none());
    }
}
