//! A local Google Workspace Admin SDK Directory API (v1) server for enid's tests and
//! benchmarks, written from Google's published API reference because the real service cannot be
//! reached here. It serves `/admin/directory/v1/` users, org units, groups and members behind a
//! service-account token endpoint (`/token`) that verifies the JWT bearer grant as Google does
//! (signature, `kid`, issuer, audience, an hour at most, a delegated subject, granted scopes),
//! with Google's error bodies, paging (`nextPageToken`), 409 for a taken email, the propagation
//! after an insert (404 by id, 412 "User creation is not complete." to changes), a per-window
//! query quota answered with 403 `userRateLimitExceeded`, and injected faults. Tests start it
//! in-process on 127.0.0.1:0 ([`start`]) and look at and change it through a [`Handle`].

mod auth;
mod groups;
mod state;
mod users;

pub use state::{API, GROUP_SCOPE, MEMBER_SCOPE, ORGUNIT_SCOPE, USER_SCOPE};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use state::State;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The service account whose grants `/token` takes.
#[derive(Debug, Clone, Default)]
pub struct ServiceAccount {
    pub client_email: String,
    /// Its key's id (`private_key_id`: the JWT's `kid`).
    pub key_id: String,
    /// The public half of its key, PEM.
    pub public_key_pem: String,
}

/// What the server is.
#[derive(Debug, Clone)]
pub struct Config {
    /// The customer's primary domain: users' and groups' emails end with it.
    pub domain: String,
    /// The customer's id (`my_customer` names it too).
    pub customer_id: String,
    pub service_account: ServiceAccount,
    /// Administrators the domain-wide delegation lets the service account act as.
    pub admins: Vec<String>,
    /// Scopes the delegation grants.
    pub granted_scopes: Vec<String>,
    /// What a grant's `aud` must be: the token endpoint's URL (set by [`start`] when empty).
    pub token_audience: String,
    pub token_lifetime: Duration,
    /// API queries allowed per `quota_window` (Google: 2,400 a minute); `None`: no limit.
    pub queries_per_window: Option<usize>,
    pub quota_window: Duration,
    /// How long after an insert the user is still being made.
    pub propagation: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            domain: "skola.example.org".into(),
            customer_id: "C03az79cb".into(),
            service_account: ServiceAccount::default(),
            admins: vec!["admin@skola.example.org".into()],
            granted_scopes: vec![USER_SCOPE.into(), GROUP_SCOPE.into(), MEMBER_SCOPE.into(), ORGUNIT_SCOPE.into()],
            token_audience: String::new(),
            token_lifetime: auth::TOKEN_LIFETIME,
            queries_per_window: None,
            quota_window: Duration::from_secs(60),
            propagation: Duration::ZERO,
        }
    }
}

/// A fault injected for the next request to a path prefix.
#[derive(Debug, Clone)]
pub enum Fault {
    /// An error with this status and Google's `reason` (`backendError` for a 503, say).
    Status(u16, String),
    /// An error with this status and `Retry-After` seconds.
    RetryAfter(u16, u64),
}

/// A request the server saw.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    /// When it came (the server's clock).
    pub at: std::time::Instant,
    /// The status it was answered with.
    pub status: u16,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    url: String,
    handle: Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Starts a server on 127.0.0.1 and a free port.
pub async fn start(mut config: Config) -> std::io::Result<Server> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}", listener.local_addr()?);
    if config.token_audience.is_empty() {
        config.token_audience = format!("{url}/token");
    }
    let shared: Shared = Arc::new(Mutex::new(State::new(config)));
    let app = {
        let shared = Arc::clone(&shared);
        axum::Router::new().fallback(move |req: Request| serve(Arc::clone(&shared), req))
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(Server { url, handle: Handle { shared }, stop: Some(stop) })
}

async fn serve(shared: Shared, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let auth = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let reply =
        lock(&shared).handle(parts.method.as_str(), parts.uri.path(), parts.uri.query().unwrap_or(""), auth, &body);
    let mut resp = Response::new(Body::from(reply.body));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
    for (k, v) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

impl Server {
    /// `http://127.0.0.1:<port>`: the API is below `/admin/directory/v1/`, the token endpoint
    /// at `/token`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Looks at and changes a running server.
#[derive(Debug, Clone)]
pub struct Handle {
    shared: Shared,
}

impl Handle {
    /// Every user not deleted, as the API shows them.
    pub fn users(&self) -> Vec<serde_json::Value> {
        let s = lock(&self.shared);
        s.users.values().filter(|u| !u.deleted).map(|u| u.resource.clone()).collect()
    }

    /// A user made outside enid (by hand in the Admin console, say), already propagated.
    pub fn add_user(&self, resource: serde_json::Value) -> String {
        let mut s = lock(&self.shared);
        let id = s.new_id();
        let mut r = resource;
        r["id"] = id.clone().into();
        let created = s.now() - s.config.propagation;
        s.users.insert(id.clone(), state::User { resource: r, created, deleted: false });
        id
    }

    /// An org unit made by hand (and those above it).
    pub fn add_orgunit(&self, path: &str) {
        let mut s = lock(&self.shared);
        let mut p = String::new();
        for name in path.trim_matches('/').split('/').filter(|n| !n.is_empty()) {
            p = format!("{p}/{name}");
            s.orgunits.insert(p.clone());
        }
    }

    /// Org units, by path.
    pub fn orgunits(&self) -> Vec<String> {
        lock(&self.shared).orgunits.iter().cloned().collect()
    }

    /// A group's members' emails.
    pub fn members(&self, group: &str) -> Vec<String> {
        let s = lock(&self.shared);
        s.groups.get(&group.to_lowercase()).map(|g| g.members.keys().cloned().collect()).unwrap_or_default()
    }

    /// The next request to a path starting with `prefix` gets `fault`.
    pub fn fault(&self, prefix: &str, fault: Fault) {
        lock(&self.shared).faults.push((prefix.to_string(), fault));
    }

    /// The requests seen so far.
    pub fn log(&self) -> Vec<Logged> {
        lock(&self.shared).log.clone()
    }

    /// Moves the server's clock (propagation, token expiry, the quota window).
    pub fn advance(&self, by: Duration) {
        lock(&self.shared).skew += by;
    }
}
