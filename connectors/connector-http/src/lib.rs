//! The HTTP plumbing every HTTP connector shares (SCIM now; the SS 12000 source, Google and
//! Microsoft Graph next), written once:
//!
//! - reqwest over rustls, certificate verification on (the system's trust store, or a
//!   `tls_ca_file`; `tls_insecure_skip_verify` only for tests, and warned about); mutual TLS
//!   with a client certificate (`tls_cert_file`, `tls_key_file`) for servers that want one;
//! - authentication: a bearer token from a file or the environment, or OAuth2 client
//!   credentials (`oauth`: HTTP Basic or form-body client authentication, or a signed assertion
//!   (`assertion`: a Google service account's JWT bearer grant, an Entra certificate), the token
//!   cached and refreshed before it expires, and once when the server answers 401), from the
//!   keys every HTTP connector's table spells the same way ([`AuthKeys`]);
//! - a per-target request rate (governor) and a bound on requests in flight;
//! - retries with backoff (backon) for 5xx and timeouts, for requests that may be repeated
//!   (everything but a POST that may have arrived); 429 and 503 with `Retry-After` wait exactly as
//!   long as the server said, never less, and within the retry budget, else the request ends as
//!   `Throttled { retry_after }`;
//! - errors mapped to [`TargetError`] / [`SourceError`] by what the caller must do, with the
//!   status and the server's own message (civic numbers in it masked), keeping the cause.
//!
//! Secrets (tokens, client secrets) live in [`Secret`]s and are sent as sensitive headers: never
//! logged, never in an error.

mod assertion;
mod auth;
mod error;
pub mod json;
mod oauth;
mod retry;
mod tls;

pub use assertion::{Assertion, CertificateKey, ServiceAccountKey};
pub use auth::AuthKeys;
pub use error::{HttpError, HttpFailure};
pub use oauth::{ClientAuth, Credentials, OAuthSettings};
pub use reqwest::Method;

use connector_api::Secret;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderValue};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How a connector reaches its HTTP server, from the connector's settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The base URL requests are relative to (`https://lms.example.org/scim/v2`).
    pub url: String,
    /// PEM file with the CA certificates that sign the server's certificate; the system's
    /// trust store when left out.
    pub tls_ca_file: Option<PathBuf>,
    /// Turns certificate verification off. Only for tests.
    pub tls_insecure_skip_verify: bool,
    /// PEM file with the client's own certificate (and its chain) for mutual TLS; given
    /// together with `tls_key_file` or not at all.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file with the private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Requests per second at most; `None`: no limit.
    pub max_requests_per_second: Option<f64>,
    /// Requests outstanding at once.
    pub max_in_flight: usize,
    /// Time allowed for one request, connection included.
    pub timeout: Duration,
    /// Tries of one request at most, the first included.
    pub max_attempts: usize,
    /// The longest a request waits in all before it gives up (retries and `Retry-After`).
    pub max_wait: Duration,
    /// The media type of bodies (`application/scim+json`, `application/json`).
    pub content_type: &'static str,
}

/// How the client authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A bearer token read once (from a file or the environment).
    Bearer(Secret),
    /// OAuth2 client credentials.
    OAuth(OAuthSettings),
    /// No authentication (a test server).
    None,
}

/// A request, relative to the base URL.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: reqwest::Method,
    /// A path below the base URL (`Users`, `Users/abc`), or an absolute URL.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
    /// `If-Match`, when the caller knows the version it changes.
    pub if_match: Option<String>,
    /// More headers (Graph's `ConsistencyLevel`).
    pub headers: Vec<(&'static str, String)>,
    /// What the request is for, in a few words, for messages (`create user 0f8f...`).
    pub what: String,
}

impl Request {
    pub fn new(method: reqwest::Method, path: impl Into<String>, what: impl Into<String>) -> Request {
        Request {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            if_match: None,
            headers: Vec::new(),
            what: what.into(),
        }
    }

    pub fn json(mut self, body: serde_json::Value) -> Request {
        self.body = Some(body);
        self
    }

    pub fn query(mut self, k: &str, v: impl Into<String>) -> Request {
        self.query.push((k.to_string(), v.into()));
        self
    }

    /// With this header too.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }

    pub fn if_match(mut self, version: Option<String>) -> Request {
        self.if_match = version;
        self
    }

    /// Whether sending it twice does no harm: everything but a POST (a create that arrived and
    /// whose answer was lost must not be sent again; the next run finds it by its owner marker).
    fn repeatable(&self) -> bool {
        self.method != reqwest::Method::POST
    }
}

/// A successful response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The `ETag` header, when the server sent one.
    pub etag: Option<String>,
    /// The body, parsed as JSON; `Null` when there is none (204).
    pub body: serde_json::Value,
}

/// A successful response whose body the caller reads itself (a large listing parsed straight
/// into its own types, without a JSON tree in between).
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// The `ETag` header, when the server sent one.
    pub etag: Option<String>,
    /// The body as the server sent it.
    pub bytes: Vec<u8>,
}

/// The shared client of one connector.
#[derive(Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    base: String,
    auth: AuthState,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    in_flight: Semaphore,
    settings: HttpSettings,
}

#[derive(Debug)]
enum AuthState {
    Bearer(Secret),
    OAuth(Box<oauth::TokenSource>),
    None,
}

impl HttpClient {
    /// Builds the client: TLS, the rate limiter, the token source. Contacts nothing.
    pub fn new(settings: HttpSettings, auth: Auth) -> Result<HttpClient, connector_api::TargetError> {
        let client_cert = match (&settings.tls_cert_file, &settings.tls_key_file) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => {
                return Err(connector_api::TargetError::config(
                    "mutual TLS needs both tls_cert_file and tls_key_file, or neither",
                ));
            }
        };
        let tls = tls::client_config(settings.tls_ca_file.as_deref(), settings.tls_insecure_skip_verify, client_cert)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("enid/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| connector_api::TargetError::config("cannot build the HTTP client").with_source(e))?;
        let limiter = match settings.max_requests_per_second {
            Some(r) if r > 0.0 => {
                let period = Duration::from_secs_f64(1.0 / r);
                Quota::with_period(period).map(|q| Arc::new(RateLimiter::direct(q)))
            }
            _ => None,
        };
        let auth = match auth {
            Auth::Bearer(s) => AuthState::Bearer(s),
            Auth::OAuth(o) => AuthState::OAuth(Box::new(oauth::TokenSource::new(o))),
            Auth::None => AuthState::None,
        };
        let base = settings.url.trim_end_matches('/').to_string();
        let in_flight = Semaphore::new(settings.max_in_flight.max(1));
        Ok(HttpClient { client, base, auth, limiter, in_flight, settings })
    }

    /// Whether a 401 can be answered with a fresh token.
    fn refreshes(&self) -> bool {
        matches!(self.auth, AuthState::OAuth(_))
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    /// Sends a request: waits for the rate limit and a place in flight, authenticates, retries
    /// what may be retried, and returns the response of a 2xx, or the error.
    pub async fn send(&self, req: &Request) -> Result<Response, HttpError> {
        retry::send(self, req).await
    }

    /// As [`HttpClient::send`], with the body left unparsed. A body that is not what the caller
    /// expects is the caller's to report.
    pub async fn send_raw(&self, req: &Request) -> Result<RawResponse, HttpError> {
        retry::send_raw(self, req).await
    }

    /// One attempt, with the token `refresh` says (a fresh one after a 401).
    async fn attempt(&self, req: &Request, refresh: bool) -> Result<reqwest::Response, HttpFailure> {
        if let Some(l) = &self.limiter {
            l.until_ready().await;
        }
        let _slot = self.in_flight.acquire().await.map_err(|_| HttpFailure::transport("the client is closed"))?;
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::ACCEPT, HeaderValue::from_static(self.settings.content_type));
        match &self.auth {
            AuthState::Bearer(token) => headers.insert(reqwest::header::AUTHORIZATION, bearer(token)?),
            AuthState::OAuth(source) => {
                let token = source.token(&self.client, refresh).await?;
                headers.insert(reqwest::header::AUTHORIZATION, bearer(&token)?)
            }
            AuthState::None => None,
        };
        if let Some(v) = &req.if_match {
            let v =
                HeaderValue::from_str(v).map_err(|_| HttpFailure::transport("a version that is no header value"))?;
            headers.insert(reqwest::header::IF_MATCH, v);
        }
        for (name, value) in &req.headers {
            let v =
                HeaderValue::from_str(value).map_err(|_| HttpFailure::transport("a header value it cannot send"))?;
            headers.insert(*name, v);
        }
        // No request outlasts this node's lease on the state (see `connector_api::fence`).
        let mut builder = self
            .client
            .request(req.method.clone(), self.url(&req.path))
            .headers(headers)
            .timeout(connector_api::fence::cap(self.settings.timeout));
        if !req.query.is_empty() {
            builder = builder.query(&req.query);
        }
        if let Some(body) = &req.body {
            let bytes = serde_json::to_vec(body).map_err(|e| HttpFailure::transport(&e.to_string()))?;
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, HeaderValue::from_static(self.settings.content_type))
                .body(bytes);
        }
        // Checked again right before sending: the rate limiter, a free slot or a token may have
        // taken the time that was left.
        if connector_api::fence::check().is_err() || connector_api::fence::remaining().is_some_and(|l| l.is_zero()) {
            return Err(HttpFailure::fenced());
        }
        builder.send().await.map_err(HttpFailure::from_reqwest)
    }
}

/// An `Authorization: Bearer` header that is never shown.
fn bearer(token: &Secret) -> Result<HeaderValue, HttpFailure> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| HttpFailure::auth("the token holds characters a header cannot"))?;
    v.set_sensitive(true);
    Ok(v)
}

/// One segment of a request path, percent-encoded: everything but the unreserved characters
/// and `@` (which the keys of Google and Graph hold: an email, a UPN).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a configured URL may be used: `https://`, or `http://` to this machine only (a test
/// server): tokens and client secrets never cross a network in the clear.
pub fn url_allowed(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Credentials in the authority (`user@host`) are no test server's.
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in
            ["https://graph.microsoft.com/v1.0", "http://127.0.0.1:8080/v1.0", "http://localhost/x", "http://[::1]:9/"]
        {
            assert!(super::url_allowed(ok), "{ok}");
        }
        for no in [
            "http://graph.microsoft.com/v1.0",
            "http://login.microsoftonline.com/t/oauth2/v2.0/token",
            "http://127.0.0.1@evil.example/",
            "http://10.0.0.1/",
            "ftp://x",
        ] {
            assert!(!super::url_allowed(no), "{no}");
        }
    }
}
