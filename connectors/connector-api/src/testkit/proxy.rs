//! A small fault-injecting TCP proxy for the conformance suite: it sits between a connector and
//! its real server on 127.0.0.1, counts the requests that pass, and on command delays them,
//! drops the connection after a number of them, or answers them itself as the protocol says
//! "busy" (LDAP result code 51; HTTP 429 with `Retry-After`).
//!
//! It frames the byte streams it relays (LDAP messages by their BER length, HTTP/1.1 requests and
//! responses by their headers and `Content-Length`), so that a fault falls between two requests
//! and an answer it makes itself never lands inside one the server is sending. Over TLS
//! ([`FaultProxy::start_tls`]) it ends the client's TLS with a certificate of its own and opens
//! its own to the server, verified: it sees the messages it frames in the clear, as a fault
//! between the two would not, and the connector under test still speaks TLS.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// How the relayed protocol frames its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// LDAPv3: BER-encoded LDAPMessages, several in flight on one connection.
    Ldap,
    /// HTTP/1.1: one request, then its response.
    Http,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it arrived.
    pub at: Instant,
    /// A change (LDAP add, modify, delete, modrdn; HTTP POST, PUT, PATCH, DELETE), not a read.
    pub write: bool,
    /// The proxy answered it "busy" itself instead of passing it on.
    pub throttled: bool,
    /// For HTTP, the request line (`PATCH /Users/abc HTTP/1.1`); for LDAP, the operation's tag.
    pub what: String,
    /// Which client connection it came on: the proxy numbers them as it accepts them, from 0.
    pub connection: usize,
}

#[derive(Debug, Default)]
struct Faults {
    /// Pass this many more write requests, then close the connection the next one arrives on
    /// (once). Reads pass: the fault falls in the middle of an apply, not in its observe.
    drop_after: Option<usize>,
    /// Hold every request this long before passing it on.
    delay: Option<Duration>,
    /// Answer this many more write requests "busy" (HTTP: with this `Retry-After`).
    throttle: usize,
    retry_after: Option<Duration>,
    /// The status of the "busy" answer (HTTP; LDAP always answers 51).
    status: u16,
    /// Answer reads too, not only writes.
    reads_too: bool,
    /// Pass this many more write requests, then answer every read "busy" (a server that stops
    /// serving searches in the middle of an apply).
    reads_busy_after: Option<usize>,
    /// Empty the `Resources` of the listing that comes after this many more (HTTP).
    empty_list_after: Option<usize>,
    /// Every request seen, in order.
    seen: Vec<Seen>,
    /// Client connections accepted so far.
    accepted: usize,
}

/// A running proxy. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    faults: Arc<Mutex<Faults>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The two TLS ends of [`FaultProxy::start_tls`], as PEM files.
#[derive(Debug, Clone)]
pub struct TlsEnds {
    /// The certificate (chain) the proxy shows its clients, and its key.
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// The CA the server's certificate must be signed by.
    pub upstream_ca: std::path::PathBuf,
    /// The name (or IP) the server's certificate must carry.
    pub upstream_name: String,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and relays every connection to `upstream`.
    pub async fn start(upstream: SocketAddr, protocol: Protocol) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let faults = Arc::new(Mutex::new(Faults::default()));
        let shared = Arc::clone(&faults);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let faults = Arc::clone(&shared);
                let connection = next_connection(&faults);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, protocol, faults, connection).await;
                    }
                });
            }
        });
        Ok(FaultProxy { addr, faults, task })
    }

    /// The same over TLS at both ends (LDAPS, HTTPS): clients connect with TLS to the proxy's
    /// certificate, and the proxy connects with TLS to `upstream`, verifying its certificate.
    pub async fn start_tls(upstream: SocketAddr, protocol: Protocol, ends: TlsEnds) -> std::io::Result<FaultProxy> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        use tokio_rustls::rustls;
        let bad = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&ends.cert)
            .map_err(|e| bad(&e))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(&e))?;
        let key = PrivateKeyDer::from_pem_file(&ends.key).map_err(|e| bad(&e))?;
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| bad(&e))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&ends.upstream_ca).map_err(|e| bad(&e))? {
            roots.add(c.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(ends.upstream_name.clone()).map_err(|e| bad(&e))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let faults = Arc::new(Mutex::new(Faults::default()));
        let shared = Arc::clone(&faults);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let faults = Arc::clone(&shared);
                let connection = next_connection(&faults);
                let (acceptor, connector, name) = (acceptor.clone(), connector.clone(), name.clone());
                tokio::spawn(async move {
                    let Ok(client) = acceptor.accept(client).await else { return };
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    if let Ok(server) = connector.connect(name, server).await {
                        relay(client, server, protocol, faults, connection).await;
                    }
                });
            }
        });
        Ok(FaultProxy { addr, faults, task })
    }

    /// Where connectors connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn with<T>(&self, f: impl FnOnce(&mut Faults) -> T) -> T {
        let mut guard = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Passes `n` more write requests, then closes the connection the next one arrives on, once.
    pub fn drop_after(&self, n: usize) {
        self.with(|f| f.drop_after = Some(n));
    }

    /// Holds every request this long before passing it on.
    pub fn delay(&self, d: Duration) {
        self.with(|f| f.delay = Some(d));
    }

    /// Answers the next `n` write requests "busy" itself (HTTP 429 with this `Retry-After`, in
    /// whole seconds; LDAP result code 51).
    pub fn throttle(&self, n: usize, retry_after: Option<Duration>) {
        self.with(|f| {
            f.throttle = n;
            f.retry_after = retry_after;
            f.status = 429;
            f.reads_too = false;
        });
    }

    /// Answers the next `n` requests (reads too, when `reads_too`) itself with this HTTP status
    /// (a 5xx, or a 503 with `Retry-After`), as a failing or overloaded server would.
    pub fn answer(&self, n: usize, status: u16, retry_after: Option<Duration>, reads_too: bool) {
        self.with(|f| {
            f.throttle = n;
            f.retry_after = retry_after;
            f.status = status;
            f.reads_too = reads_too;
        });
    }

    /// Passes `n` more write requests, then answers every read "busy" until [`FaultProxy::clear`]
    /// (HTTP with this status; LDAP result code 51).
    pub fn reads_busy_after(&self, n: usize, status: u16) {
        self.with(|f| {
            f.reads_busy_after = Some(n);
            f.status = status;
        });
    }

    /// Lets `n` more listings (SCIM ListResponses) through, then empties the `Resources` of the
    /// next one, once: a listing that ends before its `totalResults`.
    pub fn empty_list_after(&self, n: usize) {
        self.with(|f| f.empty_list_after = Some(n));
    }

    /// Back to relaying everything as it comes.
    pub fn clear(&self) {
        self.with(|f| {
            f.drop_after = None;
            f.delay = None;
            f.throttle = 0;
            f.empty_list_after = None;
            f.reads_busy_after = None;
        });
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.with(|f| f.seen.clone())
    }

    /// Forgets the requests seen so far.
    pub fn reset_seen(&self) {
        self.with(|f| f.seen.clear());
    }
}

/// What to do with one request.
enum Verdict {
    Pass(Option<Duration>),
    Drop,
    Busy(Option<Duration>),
}

/// The number of the connection just accepted.
fn next_connection(faults: &Mutex<Faults>) -> usize {
    faults
        .lock()
        .map(|mut f| {
            f.accepted += 1;
            f.accepted - 1
        })
        .unwrap_or(0)
}

async fn relay<C, S>(client: C, server: S, protocol: Protocol, faults: Arc<Mutex<Faults>>, connection: usize)
where
    C: AsyncRead + AsyncWrite + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut client_read, client_write) = tokio::io::split(client);
    let (server_read, mut server_write) = tokio::io::split(server);
    let client_write = Arc::new(tokio::sync::Mutex::new(client_write));
    let back = tokio::spawn(relay_back(server_read, Arc::clone(&client_write), protocol, Arc::clone(&faults)));
    let mut buf = Vec::new();
    'outer: loop {
        while let Some(len) = frame_len(&buf, protocol) {
            let msg: Vec<u8> = buf.drain(..len).collect();
            let (write, what) = describe(&msg, protocol);
            let verdict = {
                let mut f = faults.lock().unwrap_or_else(|e| e.into_inner());
                if write && let Some(n) = f.reads_busy_after.filter(|n| *n > 0) {
                    f.reads_busy_after = Some(n - 1);
                }
                let verdict = match f.drop_after {
                    _ if !write && f.reads_too && f.throttle > 0 => {
                        f.throttle -= 1;
                        Verdict::Busy(f.retry_after)
                    }
                    _ if !write && f.reads_busy_after == Some(0) => Verdict::Busy(None),
                    _ if !write => Verdict::Pass(f.delay),
                    Some(0) => {
                        f.drop_after = None;
                        Verdict::Drop
                    }
                    Some(n) => {
                        f.drop_after = Some(n - 1);
                        Verdict::Pass(f.delay)
                    }
                    None if f.throttle > 0 => {
                        f.throttle -= 1;
                        Verdict::Busy(f.retry_after)
                    }
                    None => Verdict::Pass(f.delay),
                };
                let throttled = matches!(verdict, Verdict::Busy(_));
                f.seen.push(Seen { at: Instant::now(), write, throttled, what, connection });
                verdict
            };
            match verdict {
                Verdict::Drop => break 'outer,
                Verdict::Busy(retry_after) => {
                    let status = faults.lock().map(|f| f.status).unwrap_or(429);
                    let answer = busy(&msg, protocol, retry_after, status);
                    if client_write.lock().await.write_all(&answer).await.is_err() {
                        break 'outer;
                    }
                }
                Verdict::Pass(delay) => {
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    if server_write.write_all(&msg).await.is_err() {
                        break 'outer;
                    }
                }
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        match client_read.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    back.abort();
    let _ = server_write.shutdown().await;
    let _ = client_write.lock().await.shutdown().await;
}

/// Copies the server's answers back, whole messages at a time, so that an answer the proxy
/// makes itself never lands inside one of them.
async fn relay_back<C: AsyncWrite, S: AsyncRead>(
    mut server: ReadHalf<S>,
    client: Arc<tokio::sync::Mutex<WriteHalf<C>>>,
    protocol: Protocol,
    faults: Arc<Mutex<Faults>>,
) {
    let mut buf = Vec::new();
    let mut pending: VecDeque<Vec<u8>> = VecDeque::new();
    loop {
        while let Some(len) = response_len(&buf, protocol) {
            let msg: Vec<u8> = buf.drain(..len).collect();
            pending.push_back(if protocol == Protocol::Http { tamper(msg, &faults) } else { msg });
        }
        if !pending.is_empty() {
            let mut w = client.lock().await;
            while let Some(msg) = pending.pop_front() {
                if w.write_all(&msg).await.is_err() {
                    return;
                }
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        match server.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                // A response that runs to the end of the connection (HTTP/1.0) goes as it is.
                let mut w = client.lock().await;
                let _ = w.write_all(&buf).await;
                let _ = w.shutdown().await;
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A listing with its `Resources` emptied, when that fault is due.
fn tamper(msg: Vec<u8>, faults: &Mutex<Faults>) -> Vec<u8> {
    let Some(split) = msg.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) else { return msg };
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&msg[split..]) else { return msg };
    let is_list = body["schemas"]
        .as_array()
        .is_some_and(|s| s.iter().any(|x| x.as_str().is_some_and(|x| x.ends_with(":ListResponse"))));
    if !is_list {
        return msg;
    }
    {
        let mut f = faults.lock().unwrap_or_else(|e| e.into_inner());
        match f.empty_list_after {
            Some(0) => f.empty_list_after = None,
            Some(n) => {
                f.empty_list_after = Some(n - 1);
                return msg;
            }
            None => return msg,
        }
    }
    body["Resources"] = serde_json::json!([]);
    let new_body = body.to_string();
    let head = String::from_utf8_lossy(&msg[..split]).to_string();
    let head: String = head
        .split("\r\n")
        .map(|l| {
            if l.to_ascii_lowercase().starts_with("content-length:") {
                format!("Content-Length: {}", new_body.len())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(new_body.as_bytes());
    out
}

/// The length of the first whole request in `buf`, if it has one.
fn frame_len(buf: &[u8], protocol: Protocol) -> Option<usize> {
    match protocol {
        Protocol::Ldap => ber_len(buf),
        Protocol::Http => http_len(buf, false),
    }
}

/// The length of the first whole response in `buf`, if it has one.
fn response_len(buf: &[u8], protocol: Protocol) -> Option<usize> {
    match protocol {
        Protocol::Ldap => ber_len(buf),
        Protocol::Http => http_len(buf, true),
    }
}

/// A BER TLV's total length (tag, length octets and content), if `buf` holds it whole.
fn ber_len(buf: &[u8]) -> Option<usize> {
    let first = *buf.get(1)?;
    let (header, len) = if first & 0x80 == 0 {
        (2, first as usize)
    } else {
        let n = (first & 0x7f) as usize;
        let bytes = buf.get(2..2 + n)?;
        (2 + n, bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize))
    };
    (buf.len() >= header + len).then_some(header + len)
}

/// An HTTP/1.1 message's length (headers and a `Content-Length` body; a chunked body up to its
/// last chunk), if `buf` holds it whole.
fn http_len(buf: &[u8], response: bool) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim_start_matches(':').trim().to_string()))
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let body = &buf[end..];
        let last = body.windows(5).position(|w| w == b"0\r\n\r\n")?;
        return Some(end + last + 5);
    }
    // Without a length a request has no body, and so has a response to it that ends at its
    // headers (204); one that runs to the end of the connection is passed on when it ends.
    let _ = response;
    let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    (buf.len() >= end + len).then_some(end + len)
}

/// Whether a request changes something, and what it is, for the record.
fn describe(msg: &[u8], protocol: Protocol) -> (bool, String) {
    match protocol {
        Protocol::Ldap => match ldap_op(msg) {
            Some((_, op)) => (matches!(op, 0x68 | 0x66 | 0x4a | 0x6c), format!("LDAP op 0x{op:02x}")),
            None => (false, "LDAP (unreadable)".into()),
        },
        Protocol::Http => {
            let line = String::from_utf8_lossy(msg).lines().next().unwrap_or("").to_string();
            let method = line.split(' ').next().unwrap_or("");
            (matches!(method, "POST" | "PUT" | "PATCH" | "DELETE"), line)
        }
    }
}

/// The message id and the protocolOp tag of an LDAPMessage.
fn ldap_op(msg: &[u8]) -> Option<(Vec<u8>, u8)> {
    // SEQUENCE { messageID INTEGER, protocolOp [APPLICATION n] ... }
    let header = if msg.get(1)? & 0x80 == 0 { 2 } else { 2 + (msg[1] & 0x7f) as usize };
    let rest = msg.get(header..)?;
    if *rest.first()? != 0x02 {
        return None;
    }
    let id_len = *rest.get(1)? as usize;
    let id = rest.get(2..2 + id_len)?.to_vec();
    let op = *rest.get(2 + id_len)?;
    Some((id, op))
}

/// The protocol's "busy, try later" answer to this request.
fn busy(msg: &[u8], protocol: Protocol, retry_after: Option<Duration>, status: u16) -> Vec<u8> {
    match protocol {
        Protocol::Ldap => {
            let Some((id, op)) = ldap_op(msg) else { return Vec::new() };
            // The response tag of each request: add 8→9, modify 6→7, delete 10→11, modrdn 12→13.
            let response = match op {
                0x68 => 0x69,
                0x66 => 0x67,
                0x4a => 0x6b,
                0x6c => 0x6d,
                _ => 0x65,
            };
            let text = b"server busy (fault proxy)";
            let mut result = vec![0x0a, 0x01, 51, 0x04, 0x00, 0x04, text.len() as u8];
            result.extend_from_slice(text);
            let mut op_part = vec![response, result.len() as u8];
            op_part.extend(result);
            let mut body = vec![0x02, id.len() as u8];
            body.extend(id);
            body.extend(op_part);
            let mut out = vec![0x30, body.len() as u8];
            out.extend(body);
            out
        }
        Protocol::Http => {
            let status = if status == 0 { 429 } else { status };
            let reason = match status {
                429 => "Too Many Requests",
                409 => "Conflict",
                400 => "Bad Request",
                500 => "Internal Server Error",
                502 => "Bad Gateway",
                503 => "Service Unavailable",
                _ => "Error",
            };
            let scim_type = match status {
                409 => r#","scimType":"uniqueness""#,
                400 => r#","scimType":"invalidValue""#,
                _ => "",
            };
            let body = format!(
                r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"{status}"{scim_type},"detail":"{reason} (fault proxy)"}}"#
            );
            let retry = retry_after.map(|d| format!("Retry-After: {}\r\n", d.as_secs().max(1))).unwrap_or_default();
            format!(
                "HTTP/1.1 {status} {reason}\r\n{retry}Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_found_whole_or_not_at_all() {
        assert_eq!(ber_len(&[0x30, 0x03, 1, 2, 3, 9]), Some(5));
        assert_eq!(ber_len(&[0x30, 0x03, 1, 2]), None);
        assert_eq!(ber_len(&[0x30, 0x82, 0x00, 0x01, 7]), Some(5));
        let req = b"POST /Users HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET";
        assert_eq!(http_len(req, false), Some(req.len() - 3));
        assert_eq!(http_len(b"GET / HTTP/1.1\r\nHost: x\r\n", false), None);
        assert!(describe(b"PATCH /Users/1 HTTP/1.1\r\n\r\n", Protocol::Http).0);
    }

    #[test]
    fn a_busy_ldap_answer_is_a_response_to_the_same_message() {
        // messageID 5, AddRequest (empty, enough for the envelope).
        let add = [0x30, 0x05, 0x02, 0x01, 0x05, 0x68, 0x00];
        let answer = busy(&add, Protocol::Ldap, None, 0);
        assert_eq!(ldap_op(&answer), Some((vec![5], 0x69)));
        assert_eq!(ber_len(&answer), Some(answer.len()));
        // resultCode ENUMERATED 51.
        assert!(answer.windows(3).any(|w| w == [0x0a, 0x01, 51]));
    }
}
