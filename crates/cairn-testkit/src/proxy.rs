//! A fault-injecting HTTP/1.1 proxy on loopback, to sit in front of a real
//! registry ([`crate::TestRegistry`]).
//!
//! Each client connection carries one request: the proxy reads the request
//! head, applies the first matching [`Rule`] (if any), forwards the request
//! to the upstream with `Connection: close`, and streams the answer back
//! with `Connection: close`, so response framing is simply "until EOF".
//! Request bodies must carry `Content-Length` (cairn's client always sends
//! it). Threads are bounded ([`MAX_CONNECTIONS`]), sockets time out, and the
//! proxy stops on drop. It only ever connects to the upstream address it was
//! given (a loopback registry).

use std::fmt;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEAD: usize = 64 << 10;

/// What to do to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection after reading the request head, without answering.
    Drop,
    /// Answer this status without forwarding (`Retry-After: <secs>` if given).
    Status {
        /// HTTP status, e.g. 500, 503, 429.
        status: u16,
        /// `Retry-After` seconds.
        retry_after: Option<u32>,
    },
    /// Forward, then pass on the response head and only the first `after`
    /// body bytes, and close (the `Content-Length` still announces all).
    Truncate {
        /// Body bytes passed on.
        after: usize,
    },
    /// Forward, flipping the response body byte at `offset`.
    CorruptResponseByte {
        /// Body offset.
        offset: usize,
    },
    /// Forward, flipping the request body byte at `offset` (a corrupted upload).
    CorruptRequestByte {
        /// Body offset.
        offset: usize,
    },
}

/// When to inject a [`Fault`].
#[derive(Debug, Clone)]
pub struct Rule {
    /// Method to match (`None`: any).
    pub method: Option<String>,
    /// Substring the request path must contain (`""`: any).
    pub path_contains: String,
    /// The fault.
    pub fault: Fault,
    /// How many matching requests get the fault (then the rule is spent).
    pub times: usize,
}

impl Rule {
    /// `fault` for the next `times` `method` requests whose path contains `path_contains`.
    pub fn new(method: &str, path_contains: &str, fault: Fault, times: usize) -> Rule {
        Rule {
            method: Some(method.to_owned()),
            path_contains: path_contains.to_owned(),
            fault,
            times,
        }
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    /// HTTP method.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
    /// Status passed to the client (`None` when dropped before a status).
    pub status: Option<u16>,
}

struct Shared {
    upstream: SocketAddr,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<ProxiedRequest>>,
    stop: AtomicBool,
    active: AtomicUsize,
}

/// A running proxy; stops on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FaultProxy {
    /// Starts a proxy on a free `127.0.0.1` port in front of `upstream`
    /// (which must be a loopback address).
    pub fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        if !upstream.ip().is_loopback() {
            return Err(std::io::Error::other(
                "FaultProxy only forwards to loopback",
            ));
        }
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
        });
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || accept_loop(listener, s2))?;
        Ok(FaultProxy {
            addr,
            shared,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT`, for image references.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Adds a rule (rules are tried in the order added).
    pub fn add_rule(&self, rule: Rule) {
        lock(&self.shared.rules).push(rule);
    }

    /// Removes all rules.
    pub fn clear_rules(&self) {
        lock(&self.shared.rules).clear();
    }

    /// Requests seen so far.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Forgets the request log.
    pub fn clear_log(&self) {
        lock(&self.shared.log).clear();
    }
}

impl Drop for FaultProxy {
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
            continue;
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || {
                let _ = serve(stream, &s);
                s.active.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            shared.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Reads up to the end of an HTTP head; returns (head, bytes read past it).
fn read_head(s: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("HTTP head too large"));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed in HTTP head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Splits a head into its first line and headers, dropping `Connection`/`Keep-Alive`.
fn parse_head(head: &[u8]) -> (String, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("").to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| {
            !k.eq_ignore_ascii_case("connection") && !k.eq_ignore_ascii_case("keep-alive")
        })
        .collect();
    (first, headers)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn write_head(
    out: &mut TcpStream,
    first: &str,
    headers: &[(String, String)],
) -> std::io::Result<()> {
    let mut head = format!("{first}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    out.write_all(head.as_bytes())
}

fn serve(mut client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let (head, mut body_start) = read_head(&mut client)?;
    let (first, headers) = parse_head(&head);
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let path = target.split('?').next().unwrap_or("").to_owned();
    let fault = {
        let mut rules = lock(&shared.rules);
        let found = rules.iter_mut().find(|r| {
            r.times > 0
                && r.method.as_ref().is_none_or(|m| *m == method)
                && path.contains(&r.path_contains)
        });
        found.map(|r| {
            r.times -= 1;
            r.fault.clone()
        })
    };
    let mut entry = ProxiedRequest {
        method: method.clone(),
        path,
        range: header(&headers, "range").map(str::to_owned),
        fault: fault.clone(),
        status: None,
    };
    let record = |e: ProxiedRequest| lock(&shared.log).push(e);
    match &fault {
        Some(Fault::Drop) => {
            record(entry);
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        Some(Fault::Status {
            status,
            retry_after,
        }) => {
            entry.status = Some(*status);
            record(entry);
            let body = format!(
                r#"{{"errors":[{{"code":"UNKNOWN","message":"injected by FaultProxy: {status}"}}]}}"#
            );
            let mut h = vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("Content-Length".to_owned(), body.len().to_string()),
            ];
            if let Some(s) = retry_after {
                h.push(("Retry-After".to_owned(), s.to_string()));
            }
            write_head(&mut client, &format!("HTTP/1.1 {status} Injected"), &h)?;
            client.write_all(body.as_bytes())?;
            return client.flush();
        }
        _ => {}
    }
    if header(&headers, "transfer-encoding").is_some() {
        entry.status = Some(501);
        record(entry);
        write_head(
            &mut client,
            "HTTP/1.1 501 Not Implemented",
            &[("Content-Length".to_owned(), "0".to_owned())],
        )?;
        return Ok(());
    }
    let body_len: usize = header(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);

    // Forward the request.
    let mut up = TcpStream::connect_timeout(&shared.upstream, IO_TIMEOUT)?;
    up.set_read_timeout(Some(IO_TIMEOUT))?;
    up.set_write_timeout(Some(IO_TIMEOUT))?;
    write_head(&mut up, &first, &headers)?;
    let corrupt_req = match fault {
        Some(Fault::CorruptRequestByte { offset }) => Some(offset),
        _ => None,
    };
    let mut sent = 0usize;
    body_start.truncate(body_len);
    let mut buf = vec![0u8; 64 << 10];
    let mut pending = body_start;
    loop {
        if let Some(off) = corrupt_req
            && off >= sent
            && off < sent + pending.len()
        {
            pending[off - sent] ^= 0xff;
        }
        up.write_all(&pending)?;
        sent += pending.len();
        if sent >= body_len {
            break;
        }
        let want = (body_len - sent).min(buf.len());
        let n = client.read(&mut buf[..want])?;
        if n == 0 {
            record(entry);
            return Ok(()); // client went away mid-body
        }
        pending = buf[..n].to_vec();
    }
    up.flush()?;

    // Relay the answer.
    let (resp_head, mut resp_rest) = match read_head(&mut up) {
        Ok(x) => x,
        Err(e) => {
            record(entry);
            return Err(e);
        }
    };
    let (status_line, resp_headers) = parse_head(&resp_head);
    entry.status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok());
    record(entry);
    write_head(&mut client, &status_line, &resp_headers)?;
    let (limit, corrupt) = match fault {
        Some(Fault::Truncate { after }) => (Some(after), None),
        Some(Fault::CorruptResponseByte { offset }) => (None, Some(offset)),
        _ => (None, None),
    };
    let mut passed = 0usize;
    loop {
        if !resp_rest.is_empty() {
            if let Some(off) = corrupt
                && off >= passed
                && off < passed + resp_rest.len()
            {
                resp_rest[off - passed] ^= 0xff;
            }
            let take = match limit {
                Some(l) => resp_rest.len().min(l.saturating_sub(passed)),
                None => resp_rest.len(),
            };
            client.write_all(&resp_rest[..take])?;
            passed += take;
            if limit.is_some_and(|l| passed >= l) {
                client.flush()?;
                let _ = client.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
        let n = up.read(&mut buf)?;
        if n == 0 {
            break;
        }
        resp_rest = buf[..n].to_vec();
    }
    client.flush()?;
    let _ = client.shutdown(Shutdown::Write);
    Ok(())
}
