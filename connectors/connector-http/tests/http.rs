//! The shared HTTP client against a local test server written from RFC 6749 (the OAuth2 client
//! credentials grant: a token endpoint cannot run here otherwise) and RFC 9110 (statuses,
//! `Retry-After`): tokens cached, refreshed before they expire and once on a 401; client
//! authentication by HTTP Basic and in the form; the rate limit; retries and their limits.
//! The SCIM target's tests run the same client against the real scim2-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use connector_api::{Secret, TargetError};
use connector_http::{Auth, ClientAuth, HttpClient, HttpSettings, Method, OAuthSettings, Request};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request the test server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
    at: Instant,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

type Handler = Box<dyn Fn(&Seen, usize) -> (u16, Vec<(String, String)>, String) + Send + Sync>;

/// A test server: every request goes to `handler` with its number among requests to its path.
struct Server {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn start(handler: Handler) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let handler = Arc::clone(&handler);
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        let n = match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let mut lines = head.split("\r\n");
                        let first: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
                        let headers: Vec<(String, String)> = lines
                            .filter_map(|l| {
                                l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                            })
                            .collect();
                        let len: usize = headers
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                            .and_then(|(_, v)| v.parse().ok())
                            .unwrap_or(0);
                        if buf.len() < end + 4 + len {
                            continue;
                        }
                        let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                        buf.drain(..end + 4 + len);
                        let req = Seen {
                            method: first.first().unwrap_or(&"").to_string(),
                            path: first.get(1).unwrap_or(&"").to_string(),
                            headers,
                            body,
                            at: Instant::now(),
                        };
                        let n = {
                            let mut r = record.lock().unwrap();
                            let path = req.path.split('?').next().unwrap_or("").to_string();
                            let n = r.iter().filter(|s: &&Seen| s.path.split('?').next() == Some(&path)).count();
                            r.push(req.clone());
                            n
                        };
                        let (status, extra, body) = handler(&req, n);
                        let mut out = format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\n",
                            body.len()
                        );
                        for (k, v) in extra {
                            out.push_str(&format!("{k}: {v}\r\n"));
                        }
                        out.push_str("\r\n");
                        out.push_str(&body);
                        if sock.write_all(out.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Server { addr, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen.lock().unwrap().iter().filter(|s| s.path.starts_with(path)).cloned().collect()
    }
}

fn settings(url: String) -> HttpSettings {
    HttpSettings {
        url,
        tls_ca_file: None,
        tls_insecure_skip_verify: false,
        tls_cert_file: None,
        tls_key_file: None,
        max_requests_per_second: None,
        max_in_flight: 4,
        timeout: Duration::from_secs(5),
        max_attempts: 4,
        max_wait: Duration::from_secs(10),
        content_type: "application/json",
    }
}

fn oauth(server: &Server, client_auth: ClientAuth) -> Auth {
    Auth::OAuth(OAuthSettings {
        token_url: server.url("/token"),
        client_id: "enid client".into(),
        client_secret: Secret::new("s3cret:x"),
        scope: Some("users.write".into()),
        client_auth,
    })
}

/// A token endpoint (tokens `t1`, `t2`, ... living `lifetime` seconds) and an API that takes a
/// token the endpoint gave; `refuse_first` API requests with the first token get a 401.
fn token_and_api(lifetime: u64, refuse_first: usize) -> Handler {
    Box::new(move |req, n| {
        if req.path == "/token" {
            let ok_basic = req.header("authorization").is_some_and(|v| {
                let enc = v.strip_prefix("Basic ").unwrap_or("");
                let dec = base64::engine::general_purpose::STANDARD.decode(enc).unwrap_or_default();
                String::from_utf8_lossy(&dec) == "enid+client:s3cret%3Ax"
            });
            let ok_form = req.body.contains("client_id=enid+client") && req.body.contains("client_secret=s3cret%3Ax");
            if !(ok_basic || ok_form) || !req.body.contains("grant_type=client_credentials") {
                return (401, vec![], r#"{"error":"invalid_client","error_description":"unknown client"}"#.into());
            }
            let body = format!(r#"{{"access_token":"t{}","token_type":"Bearer","expires_in":{lifetime}}}"#, n + 1);
            return (200, vec![], body);
        }
        let token = req.header("authorization").unwrap_or("").to_string();
        if token == "Bearer t1" && n < refuse_first {
            return (401, vec![], r#"{"detail":"token expired"}"#.into());
        }
        if token.starts_with("Bearer t") {
            (200, vec![], r#"{"ok":true}"#.into())
        } else {
            (401, vec![], r#"{"detail":"no token"}"#.into())
        }
    })
}

fn get(path: &str) -> Request {
    Request::new(Method::GET, path, format!("read {path}"))
}

#[tokio::test]
async fn an_oauth_token_is_fetched_once_and_reused_with_basic_or_form_client_auth() {
    for how in [ClientAuth::Basic, ClientAuth::Form] {
        let server = Server::start(token_and_api(3600, 0)).await;
        let client = HttpClient::new(settings(server.url("/api")), oauth(&server, how)).unwrap();
        for _ in 0..3 {
            client.send(&get("users")).await.unwrap();
        }
        assert_eq!(server.seen("/token").len(), 1, "{how:?}: one token for three requests");
        let t = &server.seen("/token")[0];
        assert!(t.body.contains("scope=users.write"), "{}", t.body);
        assert_eq!(how == ClientAuth::Form, t.header("authorization").is_none());
        assert!(server.seen("/api").iter().all(|s| s.header("authorization") == Some("Bearer t1")));
    }
}

#[tokio::test]
async fn a_token_about_to_expire_is_renewed_before_it_is_used() {
    // A token is renewed a minute before it expires: one that lives a minute is renewed each time.
    let server = Server::start(token_and_api(60, 0)).await;
    let client = HttpClient::new(settings(server.url("/api")), oauth(&server, ClientAuth::Basic)).unwrap();
    for _ in 0..3 {
        client.send(&get("users")).await.unwrap();
    }
    assert_eq!(server.seen("/token").len(), 3);
    let used: Vec<String> =
        server.seen("/api").iter().map(|s| s.header("authorization").unwrap_or("").to_string()).collect();
    assert_eq!(used, ["Bearer t1", "Bearer t2", "Bearer t3"]);
}

#[tokio::test]
async fn a_401_gets_one_fresh_token_and_no_more() {
    let server = Server::start(token_and_api(3600, 1)).await;
    let client = HttpClient::new(settings(server.url("/api")), oauth(&server, ClientAuth::Basic)).unwrap();
    client.send(&get("users")).await.unwrap();
    assert_eq!(server.seen("/token").len(), 2, "refreshed once");
    // An API that refuses every token: one refresh, then the error, naming the fix.
    let always = Server::start(Box::new(|req, _| {
        if req.path == "/token" {
            (200, vec![], r#"{"access_token":"t1","token_type":"Bearer","expires_in":3600}"#.into())
        } else {
            (401, vec![], r#"{"detail":"revoked"}"#.into())
        }
    }))
    .await;
    let client = HttpClient::new(settings(always.url("/api")), oauth(&always, ClientAuth::Basic)).unwrap();
    let e = client.send(&get("users")).await.unwrap_err().into_target();
    assert!(matches!(e, TargetError::Auth { .. }), "{e}");
    assert_eq!(always.seen("/token").len(), 2);
    assert_eq!(always.seen("/api").len(), 2);
    let text = connector_api::one_line(&e);
    assert!(text.contains("HTTP 401") && text.contains("revoked"), "{text}");
    assert!(!text.contains("s3cret") && !text.contains("t1"), "no secret or token shown: {text}");
}

#[tokio::test]
async fn refused_client_credentials_are_an_authentication_error_without_the_secret() {
    let server = Server::start(token_and_api(3600, 0)).await;
    let bad = Auth::OAuth(OAuthSettings {
        token_url: server.url("/token"),
        client_id: "enid client".into(),
        client_secret: Secret::new("wrong-secret"),
        scope: None,
        client_auth: ClientAuth::Basic,
    });
    let client = HttpClient::new(settings(server.url("/api")), bad).unwrap();
    let e = client.send(&get("users")).await.unwrap_err().into_target();
    assert!(matches!(e, TargetError::Auth { .. }), "{e}");
    let text = connector_api::one_line(&e);
    assert!(text.contains("unknown client") && !text.contains("wrong-secret"), "{text}");
    assert!(server.seen("/api").is_empty(), "nothing sent without a token");
}

#[tokio::test]
async fn the_rate_limit_is_never_exceeded() {
    let server = Server::start(Box::new(|_, _| (200, vec![], "{}".into()))).await;
    let mut s = settings(server.url("/api"));
    s.max_requests_per_second = Some(20.0);
    let client = Arc::new(HttpClient::new(s, Auth::None).unwrap());
    let started = Instant::now();
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let c = Arc::clone(&client);
            tokio::spawn(async move { c.send(&get("x")).await.map(|_| ()) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(started.elapsed() >= Duration::from_millis(1400), "30 at 20/s: {:?}", started.elapsed());
    let times: Vec<Instant> = server.seen("/api").iter().map(|s| s.at).collect();
    for w in times.windows(21) {
        assert!(w[20] - w[0] >= Duration::from_millis(950), "21 requests within a second");
    }
}

#[tokio::test]
async fn retry_after_is_waited_for_and_never_cut_short() {
    let server = Server::start(Box::new(|req, n| {
        if req.path.starts_with("/api/busy") && n == 0 {
            (429, vec![("Retry-After".into(), "1".into())], r#"{"detail":"slow down"}"#.into())
        } else if req.path.starts_with("/api/long") {
            (503, vec![("Retry-After".into(), "30".into())], r#"{"detail":"maintenance"}"#.into())
        } else {
            (200, vec![], "{}".into())
        }
    }))
    .await;
    let client = HttpClient::new(settings(server.url("/api")), Auth::None).unwrap();
    let started = Instant::now();
    client.send(&Request::new(Method::POST, "busy", "create x")).await.unwrap();
    let tries = server.seen("/api/busy");
    assert_eq!(tries.len(), 2, "a 429 is tried again, a POST too (it was not processed)");
    assert!(tries.iter().all(|t| t.method == "POST"));
    assert!(tries[1].at - tries[0].at >= Duration::from_secs(1), "{:?}", tries[1].at - tries[0].at);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Longer than the budget: no wait at all, the run is told when to come back.
    let started = Instant::now();
    let e = client.send(&get("long")).await.unwrap_err().into_target();
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)), "{e}");
    assert_eq!(server.seen("/api/long").len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_for_reads_and_not_for_creates() {
    let server = Server::start(Box::new(|_, n| {
        if n < 2 { (502, vec![], "<html>Bad Gateway</html>".into()) } else { (200, vec![], "{}".into()) }
    }))
    .await;
    let client = HttpClient::new(settings(server.url("/api")), Auth::None).unwrap();
    client.send(&get("read")).await.unwrap();
    assert_eq!(server.seen("/api/read").len(), 3, "two 502s, then the answer");
    let e = client.send(&Request::new(Method::POST, "create", "create user 0f8f")).await.unwrap_err();
    assert_eq!(server.seen("/api/create").len(), 1, "a create that may have arrived is not sent again");
    let text = e.to_string();
    assert_eq!(text, "create user 0f8f: HTTP 502: <html>Bad Gateway</html>");
    assert!(matches!(e.into_target(), TargetError::Unavailable { .. }));
}

#[tokio::test]
async fn a_server_that_is_not_there_is_unavailable_after_the_retries() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut s = settings(format!("http://127.0.0.1:{port}"));
    s.max_attempts = 2;
    let client = HttpClient::new(s, Auth::Bearer(Secret::new("tok"))).unwrap();
    let e = client.send(&get("x")).await.unwrap_err().into_target();
    assert!(matches!(e, TargetError::Unavailable { .. }), "{e}");
    // A CA file that is not there is a configuration error, before anything is sent.
    let mut s = settings("https://127.0.0.1:1".into());
    s.tls_ca_file = Some("/nonexistent/ca.pem".into());
    let e = HttpClient::new(s, Auth::None).unwrap_err();
    assert!(matches!(e, TargetError::Config { .. }) && e.to_string().contains("tls_ca_file"), "{e}");
}

/// An HTTPS server that asks for a client certificate signed by the test CA and answers every
/// request `200 {"ok":true}`; a handshake without a good certificate fails on the server's side.
async fn mtls_server() -> std::net::SocketAddr {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mtls");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
        .build()
        .unwrap();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("server.pem")).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else { return };
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"ok":true}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn mutual_tls_sends_the_client_certificate_and_a_server_that_wants_one_refuses_a_client_without() {
    let addr = mtls_server().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mtls");
    let mut s = settings(format!("https://localhost:{}", addr.port()));
    s.tls_ca_file = Some(dir.join("ca.pem"));
    s.max_attempts = 1;
    let without = HttpClient::new(s.clone(), Auth::None).unwrap();
    let e = without.send(&get("x")).await.unwrap_err();
    assert_eq!(e.status(), None, "no answer without a certificate: {e}");
    s.tls_cert_file = Some(dir.join("client.pem"));
    s.tls_key_file = Some(dir.join("client.key"));
    let with = HttpClient::new(s.clone(), Auth::None).unwrap();
    let r = with.send(&get("x")).await.unwrap();
    assert_eq!(r.body, serde_json::json!({"ok": true}));
    // Half a pair, or a key that is not a key, is a configuration error before anything is sent.
    let mut half = s.clone();
    half.tls_key_file = None;
    let e = HttpClient::new(half, Auth::None).unwrap_err();
    assert!(
        matches!(e, TargetError::Config { .. }) && e.to_string().contains("both tls_cert_file and tls_key_file"),
        "{e}"
    );
    let mut wrong = s;
    wrong.tls_key_file = Some(dir.join("ca.pem"));
    let e = HttpClient::new(wrong, Auth::None).unwrap_err();
    assert!(e.to_string().contains("tls_key_file"), "{e}");
}
