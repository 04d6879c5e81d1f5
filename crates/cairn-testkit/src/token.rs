//! A small token issuer for the registry's `auth: token` mode (Docker/distribution
//! token authentication), on loopback, for tests.
//!
//! `GET /token?service=…&scope=…` with HTTP basic credentials (or none), or
//! `POST /token` with an OAuth2 `grant_type=refresh_token` (or `password`)
//! form, answers `{"token", "access_token", "expires_in", "issued_at"}`. The
//! token is a JWT signed with ES256 by a key whose self-signed certificate
//! is the registry's `rootcertbundle`; its header carries that certificate
//! in `x5c`, which is how distribution 2.8 finds the trusted key. The
//! granted `access` is the intersection of the requested scopes and the
//! user's [`Grant`]s: like real issuers, a user who asks for more than
//! allowed gets a token with less, and the registry then refuses the request.
//!
//! Every request is recorded ([`TokenIssuer::requests`]) so tests can check
//! which scopes were asked for together.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

/// `service` the registry is configured with (the token's audience).
pub const TOKEN_SERVICE: &str = "cairn-test-registry";
/// `issuer` the registry is configured with (the token's `iss`).
pub const TOKEN_ISSUER: &str = "cairn-test-issuer";
/// Most connections handled at once.
const MAX_CONNECTIONS: usize = 32;

/// Actions a user may get on repositories whose name starts with `repository_prefix`.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Repository name prefix (`""` for all).
    pub repository_prefix: String,
    /// Actions, e.g. `["pull"]` or `["pull", "push"]`.
    pub actions: Vec<String>,
}

impl Grant {
    /// `actions` on every repository.
    pub fn all(actions: &[&str]) -> Grant {
        Grant {
            repository_prefix: String::new(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }
}

/// A user the issuer knows.
#[derive(Clone)]
pub struct TokenUser {
    /// User name.
    pub username: String,
    /// Password (basic auth or `grant_type=password`).
    pub password: String,
    /// Refresh token accepted with `grant_type=refresh_token` (docker's `identitytoken`).
    pub refresh_token: Option<String>,
    /// What the user may do.
    pub grants: Vec<Grant>,
}

impl fmt::Debug for TokenUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenUser")
            .field("username", &self.username)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

/// One request the issuer answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// Authenticated user, `None` for anonymous.
    pub user: Option<String>,
    /// Requested scopes, in order.
    pub scopes: Vec<String>,
    /// Granted scopes (`repository:<name>:<actions>`), empty when refused or nothing allowed.
    pub granted: Vec<String>,
    /// HTTP status answered.
    pub status: u16,
}

struct Shared {
    users: Vec<TokenUser>,
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    log: Mutex<Vec<TokenRequest>>,
    stop: AtomicBool,
    active: AtomicUsize,
    rng: SystemRandom,
    next_id: AtomicUsize,
}

/// A running token issuer; stops on drop.
pub struct TokenIssuer {
    addr: SocketAddr,
    cert_pem: String,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Errors from starting a [`TokenIssuer`].
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Key or certificate generation failed.
    #[error("generating the token signing key: {0}")]
    Key(String),
    /// Binding the listener failed.
    #[error("binding the token issuer: {0}")]
    Io(#[from] std::io::Error),
}

impl TokenIssuer {
    /// Starts an issuer on a free `127.0.0.1` port for `users`.
    pub fn start(users: Vec<TokenUser>) -> Result<TokenIssuer, TokenError> {
        let kp = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| TokenError::Key(e.to_string()))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| TokenError::Key(e.to_string()))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "cairn test token signer");
        let cert = params
            .self_signed(&kp)
            .map_err(|e| TokenError::Key(e.to_string()))?;
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &kp.serialize_der(), &rng)
                .map_err(|e| TokenError::Key(e.to_string()))?;
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            users,
            key,
            cert_der: cert.der().to_vec(),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            rng,
            next_id: AtomicUsize::new(0),
        });
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("token-issuer".into())
            .spawn(move || accept_loop(listener, s2))?;
        Ok(TokenIssuer {
            addr,
            cert_pem: cert.pem(),
            shared,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/token`: the registry's `realm`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// PEM of the signing certificate: the registry's `rootcertbundle`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Requests answered so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = conn else { continue };
        if shared.active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            continue; // dropped: the client sees a reset and may retry
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("token-conn".into())
            .spawn(move || {
                let _ = handle(stream, &s);
                s.active.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            shared.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn handle(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut params = parse_form(query);
    if method == "POST" {
        let len: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0)
            .min(1 << 16);
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        params.extend(parse_form(&String::from_utf8_lossy(&body)));
    }
    let (status, body) = if path != "/token" {
        (404, r#"{"errors":[{"code":"NOT_FOUND"}]}"#.to_owned())
    } else {
        answer(shared, &method, &headers, &params)
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

fn answer(
    shared: &Shared,
    method: &str,
    headers: &HashMap<String, String>,
    params: &[(String, String)],
) -> (u16, String) {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    // Who is asking?
    let user: Result<Option<&TokenUser>, ()> = if method == "POST" {
        match get("grant_type").as_deref() {
            Some("refresh_token") => {
                let t = get("refresh_token").unwrap_or_default();
                shared
                    .users
                    .iter()
                    .find(|u| u.refresh_token.as_deref() == Some(t.as_str()))
                    .map(Some)
                    .ok_or(())
            }
            Some("password") => {
                let (u, p) = (get("username"), get("password"));
                shared
                    .users
                    .iter()
                    .find(|x| Some(&x.username) == u.as_ref() && Some(&x.password) == p.as_ref())
                    .map(Some)
                    .ok_or(())
            }
            _ => Err(()),
        }
    } else {
        match headers.get("authorization") {
            None => Ok(None),
            Some(h) => basic_user(h)
                .and_then(|(u, p)| {
                    shared
                        .users
                        .iter()
                        .find(|x| x.username == u && x.password == p)
                })
                .map(Some)
                .ok_or(()),
        }
    };
    let record = |user: Option<&TokenUser>, granted: Vec<String>, status: u16| {
        shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(TokenRequest {
                method: method.to_owned(),
                user: user.map(|u| u.username.clone()),
                scopes: scopes.clone(),
                granted,
                status,
            });
    };
    let Ok(user) = user else {
        record(None, Vec::new(), 401);
        return (
            401,
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid credentials"}]}"#.to_owned(),
        );
    };
    if get("service").as_deref() != Some(TOKEN_SERVICE) {
        record(user, Vec::new(), 400);
        return (
            400,
            r#"{"errors":[{"code":"INVALID_REQUEST","message":"unknown service"}]}"#.to_owned(),
        );
    }
    let mut access = Vec::new();
    let mut granted = Vec::new();
    for scope in &scopes {
        // repository:<name>:<actions>; names may not contain ':' (ports are not part of names)
        let mut it = scope.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if kind != "repository" {
            continue;
        }
        let allowed: Vec<&str> = actions
            .split(',')
            .filter(|a| {
                user.is_some_and(|u| {
                    u.grants.iter().any(|g| {
                        name.starts_with(&g.repository_prefix) && g.actions.iter().any(|x| x == a)
                    })
                })
            })
            .collect();
        if !allowed.is_empty() {
            granted.push(format!("repository:{name}:{}", allowed.join(",")));
            access
                .push(serde_json::json!({"type": "repository", "name": name, "actions": allowed}));
        }
    }
    let token = sign(
        shared,
        user.map(|u| u.username.as_str()).unwrap_or(""),
        access,
    );
    record(user, granted, 200);
    let now = now_secs();
    (
        200,
        serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": 300,
            "issued_at": format!("{now}"),
        })
        .to_string(),
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn sign(shared: &Shared, subject: &str, access: Vec<serde_json::Value>) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let std_b64 = base64::engine::general_purpose::STANDARD;
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [std_b64.encode(&shared.cert_der)],
    });
    let now = now_secs();
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER,
        "sub": subject,
        "aud": TOKEN_SERVICE,
        "exp": now + 300,
        "nbf": now.saturating_sub(10),
        "iat": now,
        "jti": format!("cairn-{}", shared.next_id.fetch_add(1, Ordering::SeqCst)),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let sig = shared
        .key
        .sign(&shared.rng, signing_input.as_bytes())
        .expect("ECDSA signing does not fail");
    format!("{signing_input}.{}", b64.encode(sig.as_ref()))
}

fn basic_user(header: &str) -> Option<(String, String)> {
    let b = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(
            parse_form("scope=repository%3Aa%2Fb%3Apull%2Cpush&x=a+b&y=%zz"),
            [
                ("scope".to_owned(), "repository:a/b:pull,push".to_owned()),
                ("x".to_owned(), "a b".to_owned()),
                ("y".to_owned(), "%zz".to_owned()),
            ]
        );
        assert_eq!(percent_decode("%4"), "%4");
    }
}
