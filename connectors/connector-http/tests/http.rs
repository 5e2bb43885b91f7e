//! The shared HTTP client against a local test server written from RFC 6749 (the OAuth2 client
//! credentials grant: a token endpoint cannot run here otherwise) and RFC 9110 (statuses,
//! `Retry-After`): tokens cached, refreshed before they expire and once on a 401; client
//! authentication by HTTP Basic and in the form; the rate limit; retries and their limits.
//! The SCIM target's tests run the same client against the real scim2-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use connector_api::{Secret, TargetError};
use connector_http::{Auth, ClientAuth, Credentials, HttpClient, HttpSettings, Method, OAuthSettings, Request};
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
        scope: Some("users.write".into()),
        credentials: Credentials::Secret {
            client_id: "enid client".into(),
            client_secret: Secret::new("s3cret:x"),
            client_auth,
        },
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
        scope: None,
        credentials: Credentials::Secret {
            client_id: "enid client".into(),
            client_secret: Secret::new("wrong-secret"),
            client_auth: ClientAuth::Basic,
        },
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

/// An RSA key and a self-signed certificate made by openssl for one test, in a directory of its
/// own: (directory, key PEM (PKCS#8, as Google's key files hold it), public key PEM, cert file).
fn key_pair(name: &str) -> (std::path::PathBuf, String, String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("enid-http-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=enid-test"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (apt-get install openssl)");
    assert!(ok.success());
    let public =
        std::process::Command::new("openssl").args(["x509", "-pubkey", "-noout", "-in"]).arg(&cert).output().unwrap();
    (dir, std::fs::read_to_string(&key).unwrap(), String::from_utf8(public.stdout).unwrap(), cert)
}

/// Claims a token endpoint reads from an assertion, verified against `public` (RS256, the
/// audience `aud`); the header too. `None` for one whose signature or claims do not verify.
fn verified(assertion: &str, public: &str, aud: &str) -> Option<(jsonwebtoken::Header, serde_json::Value)> {
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).ok()?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[aud]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &v).ok()?;
    Some((data.header, data.claims))
}

/// A form field of a request body, decoded.
fn field(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            let v = v.replace('+', " ");
            let mut out = Vec::new();
            let b = v.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' && i + 2 < b.len() + 1 {
                    out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap_or(b'?'));
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8_lossy(&out).to_string()
        })
    })
}

/// A Google service account's grant (RFC 7523 §2.1), checked as Google checks it: the signature
/// against the key's public half, `kid`, the issuer, the audience (the token endpoint), the
/// scope, an hour at most, and the subject (an administrator the delegation covers; another is
/// `unauthorized_client`). The token is fetched once and used; a refused subject is an
/// authentication error that shows neither the key nor the assertion.
#[tokio::test]
async fn a_service_accounts_signed_grant_gets_a_token_and_a_subject_without_delegation_is_refused() {
    let (dir, private, public, _) = key_pair("grant");
    let server_public = public.clone();
    let server = Server::start(Box::new(move |req, n| {
        if req.path == "/token" {
            let aud = format!("http://{}/token", req.header("host").unwrap_or(""));
            let refuse = |e: &str| (400, vec![], format!(r#"{{"error":"{e}"}}"#));
            if field(&req.body, "grant_type").as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
                return refuse("unsupported_grant_type");
            }
            let Some((header, claims)) = verified(&field(&req.body, "assertion").unwrap_or_default(), &server_public, &aud)
            else {
                return refuse("invalid_grant");
            };
            let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
            if header.kid.as_deref() != Some("key-1")
                || claims["iss"] != "enid@school.iam.gserviceaccount.com"
                || claims["scope"] != "https://www.googleapis.com/auth/admin.directory.user"
                || !(1..=3600).contains(&lifetime)
            {
                return refuse("invalid_grant");
            }
            if claims["sub"] != "admin@school.example" {
                return (401, vec![], r#"{"error":"unauthorized_client","error_description":"Client is unauthorized to retrieve access tokens using this method"}"#.into());
            }
            return (200, vec![], format!(r#"{{"access_token":"g{}","expires_in":3599,"token_type":"Bearer"}}"#, n + 1));
        }
        match req.header("authorization") {
            Some(t) if t.starts_with("Bearer g") => (200, vec![], r#"{"ok":true}"#.into()),
            _ => (401, vec![], "{}".into()),
        }
    }))
    .await;
    let key_file = dir.join("sa.json");
    let json = serde_json::json!({
        "type": "service_account", "project_id": "school", "private_key_id": "key-1", "private_key": private,
        "client_email": "enid@school.iam.gserviceaccount.com", "client_id": "1234567890",
        "token_uri": server.url("/token"),
    });
    std::fs::write(&key_file, json.to_string()).unwrap();
    let key = connector_http::ServiceAccountKey::load(&key_file, "credentials_file").unwrap();
    assert!(!format!("{key:?}").contains("PRIVATE"), "the key in Debug");
    let auth = |subject: &str| {
        Auth::OAuth(OAuthSettings {
            token_url: key.token_uri.clone(),
            scope: Some("https://www.googleapis.com/auth/admin.directory.user".into()),
            credentials: Credentials::Assertion(connector_http::Assertion::Grant {
                key: key.clone(),
                subject: Some(subject.into()),
            }),
        })
    };
    let client = HttpClient::new(settings(server.url("/api")), auth("admin@school.example")).unwrap();
    for _ in 0..2 {
        client.send(&get("users")).await.unwrap();
    }
    assert_eq!(server.seen("/token").len(), 1, "one token for both");

    let refused = HttpClient::new(settings(server.url("/api")), auth("teacher@school.example")).unwrap();
    let e = refused.send(&get("users")).await.unwrap_err().into_target();
    assert!(matches!(e, TargetError::Auth { .. }), "{e}");
    let text = connector_api::one_line(&e);
    let assertion = field(&server.seen("/token").last().unwrap().body, "assertion").unwrap();
    assert!(text.contains("Client is unauthorized"), "the server's reason: {text}");
    assert!(!text.contains(&assertion[..40]) && !text.contains("PRIVATE KEY"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Client credentials with a certificate, as Entra takes them (RFC 7523 §2.2): the assertion
/// verifies against the certificate's public key, names the certificate by its SHA-1 and
/// SHA-256 thumbprints (as openssl computes them), has `iss` = `sub` = the client id, the
/// token endpoint as audience and a `jti` of its own each time.
#[tokio::test]
async fn a_certificates_client_assertion_names_the_certificate_and_gets_a_token() {
    let (dir, private, public, cert) = key_pair("cert");
    let thumb = |alg: &str| {
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", alg, "-in"])
            .arg(&cert)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let hex: String = text.split('=').nth(1).unwrap().trim().replace(':', "");
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let (x5t, x5t_s256) = (thumb("-sha1"), thumb("-sha256"));
    let jtis = Arc::new(Mutex::new(Vec::new()));
    let seen_jtis = Arc::clone(&jtis);
    let server = Server::start(Box::new(move |req, n| {
        if req.path == "/token" {
            let aud = format!("http://{}/token", req.header("host").unwrap_or(""));
            let refuse = |e: &str| (401, vec![], format!(r#"{{"error":"{e}"}}"#));
            if field(&req.body, "client_assertion_type").as_deref()
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                || field(&req.body, "grant_type").as_deref() != Some("client_credentials")
                || field(&req.body, "client_id").as_deref() != Some("app-1")
                || field(&req.body, "client_secret").is_some()
            {
                return refuse("invalid_request");
            }
            let Some((header, claims)) =
                verified(&field(&req.body, "client_assertion").unwrap_or_default(), &public, &aud)
            else {
                return refuse("invalid_client");
            };
            if header.x5t.as_deref() != Some(x5t.as_str())
                || header.x5t_s256.as_deref() != Some(x5t_s256.as_str())
                || claims["iss"] != "app-1"
                || claims["sub"] != "app-1"
                || field(&req.body, "scope").as_deref() != Some("https://graph.microsoft.com/.default")
            {
                return refuse("invalid_client");
            }
            seen_jtis.lock().unwrap().push(claims["jti"].as_str().unwrap_or_default().to_string());
            return (
                200,
                vec![],
                format!(r#"{{"access_token":"e{}","expires_in":3599,"token_type":"Bearer"}}"#, n + 1),
            );
        }
        match req.header("authorization") {
            // The first token is refused once (revoked, say): the client asks for another.
            Some("Bearer e1") if n == 0 => (401, vec![], "{}".into()),
            Some(t) if t.starts_with("Bearer e") => (200, vec![], r#"{"ok":true}"#.into()),
            _ => (401, vec![], "{}".into()),
        }
    }))
    .await;
    let key_file = dir.join("key.pem");
    std::fs::write(&key_file, &private).unwrap();
    let key = connector_http::CertificateKey::load(&cert, &key_file, "client_cert_file of [targets.entra]").unwrap();
    let auth = Auth::OAuth(OAuthSettings {
        token_url: server.url("/token"),
        scope: Some("https://graph.microsoft.com/.default".into()),
        credentials: Credentials::Assertion(connector_http::Assertion::ClientCertificate {
            client_id: "app-1".into(),
            key,
        }),
    });
    let mut s = settings(server.url("/api"));
    s.max_attempts = 1;
    let client = HttpClient::new(s, auth).unwrap();
    client.send(&get("users")).await.unwrap();
    // The 401 got a fresh token, with a fresh assertion: two token requests, two jti.
    let jtis_now = jtis.lock().unwrap().clone();
    assert_eq!(jtis_now.len(), 2, "{jtis_now:?}");
    assert!(jtis_now[0].len() >= 32 && jtis_now[0] != jtis_now[1], "{jtis_now:?}");
    // Not a certificate: refused when the connector is built, naming the file.
    let e = connector_http::CertificateKey::load(&key_file, &key_file, "client_cert_file").unwrap_err();
    assert!(e.contains("holds no certificate"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Google's rate limit is a 403 that says so in its body, with no `Retry-After`: the request,
/// a create too (it was not carried out), is sent again after a backoff step with jitter, and
/// goes through; a 403 for a missing right is not sent again.
#[tokio::test]
async fn a_403_rate_limit_is_waited_out_with_jitter_and_a_403_for_a_missing_right_is_not() {
    let server = Server::start(Box::new(|req, n| {
        if req.path == "/api/users" && n < 2 {
            let body =
                r#"{"error":{"code":403,"message":"Quota exceeded","errors":[{"reason":"userRateLimitExceeded"}]}}"#;
            return (403, vec![], body.into());
        }
        if req.path == "/api/groups" {
            return (
                403,
                vec![],
                r#"{"error":{"code":403,"message":"Not Authorized","errors":[{"reason":"forbidden"}]}}"#.into(),
            );
        }
        (200, vec![], r#"{"id":"1"}"#.into())
    }))
    .await;
    let client = HttpClient::new(settings(server.url("/api")), Auth::None).unwrap();
    let create = Request::new(Method::POST, "users", "create user x").json(serde_json::json!({"primaryEmail": "x"}));
    client.send(&create).await.unwrap();
    let tries = server.seen("/api/users");
    assert_eq!(tries.len(), 3, "two refusals and the create");
    assert!(tries[1].at.duration_since(tries[0].at) >= Duration::from_millis(150), "a backoff step between");
    let e = client.send(&get("groups")).await.unwrap_err().into_target();
    assert_eq!(server.seen("/api/groups").len(), 1, "a missing right is asked once");
    assert_eq!(e.reject_kind(), Some(connector_api::RejectKind::Access), "{e}");
}
