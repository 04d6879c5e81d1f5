//! A real OCI distribution registry for tests (`docker-registry serve`).

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tls::TestCa;
use crate::token::{TOKEN_ISSUER, TOKEN_SERVICE, TokenIssuer, TokenUser};

/// Name of the registry binary looked up on `PATH`.
pub const REGISTRY_BINARY: &str = "docker-registry";

/// How long [`TestRegistry::start`] waits for `GET /v2/` to answer 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// User name accepted by [`TestRegistry::start_with_basic_auth`].
pub const TEST_USER: &str = "cairn";
/// Password accepted by [`TestRegistry::start_with_basic_auth`].
pub const TEST_PASSWORD: &str = "cairn-test-password";
/// bcrypt (cost 5) of [`TEST_PASSWORD`], as the registry's htpasswd auth wants it.
const TEST_PASSWORD_BCRYPT: &str = "$2b$05$08qrBdXjmUX9RHjTICcqOum6E9h1YAg6i/1g6JEf.vSHicr2ketLy";

/// Errors from starting a [`TestRegistry`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `docker-registry` is not on `PATH`.
    #[error(
        "`{REGISTRY_BINARY}` was not found on PATH; install the docker-registry Debian package \
         (`apt-get install docker-registry`)"
    )]
    BinaryMissing,
    /// An I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The registry process exited or did not become ready in time.
    #[error(
        "registry at {addr} did not become ready: {reason}\n--- registry log tail ---\n{log_tail}"
    )]
    NotReady {
        /// Address the registry was told to listen on.
        addr: SocketAddr,
        /// Why we gave up.
        reason: String,
        /// Last lines of the registry's log.
        log_tail: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// How [`TestRegistry::start_with`] configures the registry.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RegistryOptions {
    /// htpasswd basic auth with [`TEST_USER`] / [`TEST_PASSWORD`].
    pub basic_auth: bool,
    /// Serve HTTPS with a certificate from a fresh [`TestCa`] (see [`TestRegistry::ca_pem`]).
    pub tls: bool,
    /// `auth: token` with a [`TokenIssuer`] for these users (see [`TestRegistry::token_issuer`]).
    pub token_users: Option<Vec<TokenUser>>,
}

impl RegistryOptions {
    /// Plain registry, no auth, no TLS.
    pub fn new() -> RegistryOptions {
        RegistryOptions::default()
    }
    /// With htpasswd basic auth.
    pub fn basic_auth(mut self) -> RegistryOptions {
        self.basic_auth = true;
        self
    }
    /// With TLS.
    pub fn tls(mut self) -> RegistryOptions {
        self.tls = true;
        self
    }
    /// With token auth for `users`.
    pub fn token_auth(mut self, users: Vec<TokenUser>) -> RegistryOptions {
        self.token_users = Some(users);
        self
    }
}

/// A running `docker-registry` process; killed (and its temp dir removed) on drop.
pub struct TestRegistry {
    basic_auth: bool,
    tls: bool,
    ca_pem: Option<String>,
    token: Option<TokenIssuer>,
    child: Option<Child>,
    addr: SocketAddr,
    storage: PathBuf,
    log_path: PathBuf,
    /// Holds config, log and (for [`TestRegistry::start`]) storage; deleted on drop.
    _tempdir: tempfile::TempDir,
}

impl fmt::Debug for TestRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestRegistry")
            .field("addr", &self.addr)
            .field("basic_auth", &self.basic_auth)
            .field("tls", &self.tls)
            .field("token", &self.token)
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("storage", &self.storage)
            .field("log", &self.log_path)
            .finish()
    }
}

impl TestRegistry {
    /// Starts a registry on a free `127.0.0.1` port with storage in a fresh temp dir.
    ///
    /// Retries a few times with a new port if the registry fails to come up
    /// (for example because another process grabbed the port meanwhile).
    pub fn start() -> Result<TestRegistry, Error> {
        Self::start_with(RegistryOptions::new())
    }

    /// Like [`TestRegistry::start`], but the registry demands HTTP basic auth
    /// (htpasswd) with [`TEST_USER`] / [`TEST_PASSWORD`] on every request.
    pub fn start_with_basic_auth() -> Result<TestRegistry, Error> {
        Self::start_with(RegistryOptions::new().basic_auth())
    }

    /// Starts a registry configured by `opts` on a free `127.0.0.1` port.
    pub fn start_with(opts: RegistryOptions) -> Result<TestRegistry, Error> {
        find_binary()?;
        let mut opts = opts;
        let mut last_err = None;
        for _ in 0..4 {
            let tempdir = make_tempdir()?;
            let storage = tempdir.path().join("storage");
            std::fs::create_dir(&storage).map_err(io_err("creating registry storage dir"))?;
            let port = free_port()?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            match Self::spawn(addr, storage, tempdir, &mut opts) {
                Ok(r) => return Ok(r),
                Err(e @ Error::NotReady { .. }) => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.expect("loop ran at least once"))
    }

    /// Starts a registry listening on `addr` and storing into `storage` (kept
    /// after drop; created if missing). Used by `cairn dev registry`.
    pub fn start_at(addr: SocketAddr, storage: &Path) -> Result<TestRegistry, Error> {
        find_binary()?;
        std::fs::create_dir_all(storage).map_err(io_err(format!(
            "creating registry storage dir {}",
            storage.display()
        )))?;
        let storage = std::path::absolute(storage).map_err(io_err("resolving storage dir"))?;
        Self::spawn(addr, storage, make_tempdir()?, &mut RegistryOptions::new())
    }

    fn spawn(
        addr: SocketAddr,
        storage: PathBuf,
        tempdir: tempfile::TempDir,
        opts: &mut RegistryOptions,
    ) -> Result<TestRegistry, Error> {
        let config_path = tempdir.path().join("config.yml");
        let log_path = tempdir.path().join("registry.log");
        let mut config = config_yaml(addr, &storage);
        let write = |name: &str, text: &str| -> Result<String, Error> {
            let p = tempdir.path().join(name);
            std::fs::write(&p, text).map_err(io_err(format!("writing {name}")))?;
            Ok(format!("{:?}", p.display().to_string()))
        };
        let mut ca_pem = None;
        if opts.tls {
            let ca = TestCa::new().map_err(|e| Error::Io {
                what: "generating TLS certificates".into(),
                source: std::io::Error::other(e),
            })?;
            let server = ca.server_cert().map_err(|e| Error::Io {
                what: "generating TLS certificates".into(),
                source: std::io::Error::other(e),
            })?;
            let cert = write("server.crt", &server.cert_pem)?;
            let key = write("server.key", &server.key_pem)?;
            // continues the `http:` section config_yaml ends with
            config.push_str(&format!(
                "  tls:\n    certificate: {cert}\n    key: {key}\n"
            ));
            ca_pem = Some(ca.cert_pem().to_owned());
        }
        if opts.basic_auth {
            let htpasswd = write("htpasswd", &format!("{TEST_USER}:{TEST_PASSWORD_BCRYPT}\n"))?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: cairn-test\n    path: {htpasswd}\n"
            ));
        }
        let mut token = None;
        if let Some(users) = opts.token_users.take() {
            let issuer = TokenIssuer::start(users.clone()).map_err(|e| Error::Io {
                what: "starting the token issuer".into(),
                source: std::io::Error::other(e),
            })?;
            let bundle = write("token-root.pem", issuer.cert_pem())?;
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {:?}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {bundle}\n",
                issuer.realm()
            ));
            // kept for a retry on another port
            opts.token_users = Some(users);
            token = Some(issuer);
        }
        std::fs::write(&config_path, config).map_err(io_err("writing registry config.yml"))?;
        let log = File::create(&log_path).map_err(io_err("creating registry log file"))?;
        let log2 = log
            .try_clone()
            .map_err(io_err("duplicating registry log fd"))?;
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::BinaryMissing
                } else {
                    Error::Io {
                        what: format!("spawning {REGISTRY_BINARY}"),
                        source: e,
                    }
                }
            })?;
        let mut reg = TestRegistry {
            basic_auth: opts.basic_auth || token.is_some(),
            tls: opts.tls,
            ca_pem,
            token,
            child: Some(child),
            addr,
            storage,
            log_path,
            _tempdir: tempdir,
        };
        reg.wait_ready()?;
        Ok(reg)
    }

    fn wait_ready(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(self.not_ready(format!("process exited with {status}")));
            }
            let last = match http_get_status(self.addr, "/v2/") {
                Ok(200) => return Ok(()),
                // with auth an anonymous /v2/ is refused once the server is up
                Ok(401) if self.basic_auth => return Ok(()),
                // Go's TLS server answers a plain HTTP request with 400
                Ok(400) if self.tls => return Ok(()),
                Ok(code) => format!("GET /v2/ answered {code}"),
                Err(e) => format!("GET /v2/ failed: {e}"),
            };
            if Instant::now() >= deadline {
                return Err(
                    self.not_ready(format!("timed out after {READY_TIMEOUT:?}; last: {last}"))
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn not_ready(&mut self, reason: String) -> Error {
        self.stop();
        Error::NotReady {
            addr: self.addr,
            reason,
            log_tail: self.log_tail(30),
        }
    }

    /// `"127.0.0.1:PORT"`: the registry's `host:port`, usable in image references.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// `https://…` base URL when serving TLS, else `http://…`.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// PEM of the CA that signed the registry's certificate (TLS registries only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The token issuer (token-auth registries only).
    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.token.as_ref()
    }

    /// The socket address the registry listens on.
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The filesystem storage root of the registry.
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// Path of the registry's combined stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the registry log (for diagnostics).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn find_binary() -> Result<PathBuf, Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(REGISTRY_BINARY))
        .find(|p| p.is_file())
        .ok_or(Error::BinaryMissing)
}

fn make_tempdir() -> Result<tempfile::TempDir, Error> {
    tempfile::Builder::new()
        .prefix("cairn-test-registry-")
        .tempdir()
        .map_err(io_err("creating registry temp dir"))
}

fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind(("127.0.0.1", 0)).map_err(io_err("binding 127.0.0.1:0"))?;
    Ok(l.local_addr().map_err(io_err("reading bound port"))?.port())
}

fn config_yaml(addr: SocketAddr, storage: &Path) -> String {
    // YAML double-quoted scalars accept JSON string escapes.
    let root = format!("{:?}", storage.display().to_string());
    format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: {addr}\n  headers:\n    X-Content-Type-Options: [nosniff]\n"
    )
}

/// Minimal HTTP/1.0 GET returning the status code (keeps the testkit free of an HTTP client).
fn http_get_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = Vec::new();
    s.take(4096).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("malformed HTTP answer: {text:.80}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_and_answers_v2() {
        let reg = TestRegistry::start().expect("start registry");
        assert!(reg.addr().starts_with("127.0.0.1:"));
        assert_eq!(http_get_status(reg.socket_addr(), "/v2/").unwrap(), 200);
        let tmp = reg._tempdir.path().to_path_buf();
        drop(reg);
        assert!(!tmp.exists(), "temp dir removed on drop");
    }

    #[test]
    fn basic_auth_registry_refuses_anonymous() {
        let reg = TestRegistry::start_with_basic_auth().expect("start registry");
        assert_eq!(http_get_status(reg.socket_addr(), "/v2/").unwrap(), 401);
    }

    #[test]
    fn start_at_uses_given_storage_and_port() {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("store");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
        let reg = TestRegistry::start_at(addr, &storage).expect("start_at");
        assert_eq!(reg.addr(), addr.to_string());
        assert_eq!(reg.storage_dir(), storage.as_path());
        drop(reg);
        assert!(storage.exists(), "persistent storage kept");
    }

    #[test]
    fn busy_port_gives_not_ready_with_log() {
        let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = l.local_addr().unwrap();
        // Something is listening but it is not a registry: the registry itself fails to bind.
        let dir = tempfile::tempdir().unwrap();
        let err = TestRegistry::start_at(addr, dir.path()).unwrap_err();
        assert!(matches!(err, Error::NotReady { .. }), "{err}");
        assert!(err.to_string().contains("log tail"), "{err}");
    }
}
