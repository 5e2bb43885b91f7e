//! A local Microsoft Graph (v1.0) server for enid's tests and benchmarks, written from
//! Microsoft's published Graph reference because the real service cannot be reached here. It
//! serves users (create, get by id or UPN, patch, soft delete with restore and purge through
//! `directory/deletedItems`, listing with `$top`, `$filter` on one property, `@odata.nextLink`),
//! security groups (create with `members@odata.bind`, at most 20 a request; members by `$ref`),
//! the delta query of users and groups (`deltaLink`s that expire on demand: 410), and `$batch`
//! (at most 20 requests, each answered on its own, in any order), behind an Entra token endpoint
//! (client secret or certificate assertion). As Graph does, it holds a soft-deleted user's UPN,
//! refuses to write a user synchronised from on-premises AD (`onPremisesSyncEnabled`), answers
//! a taken UPN with 400 "Another object with the same value …", and past its write quota answers
//! 429 with `Retry-After`, inside `$batch` too. Tests start it in-process on 127.0.0.1:0.

mod delta;
mod state;
mod token;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use state::State;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The certificate an app registration holds: its thumbprint and public key.
#[derive(Debug, Clone, Default)]
pub struct Certificate {
    /// Base64url SHA-1 of the certificate (the assertion's `x5t`).
    pub x5t: String,
    pub public_key_pem: String,
}

/// What the server is.
#[derive(Debug, Clone)]
pub struct Config {
    pub tenant_id: String,
    pub client_id: String,
    /// The client secret the token endpoint takes; `None`: none.
    pub client_secret: Option<String>,
    /// The certificate whose key signs client assertions; `None`: none.
    pub certificate: Option<Certificate>,
    /// The verified domain UPNs end with.
    pub domain: String,
    pub token_lifetime: Duration,
    /// Writes allowed per `write_window` (Graph: 3,000 per 150 s); `None`: no limit.
    pub writes_per_window: Option<usize>,
    pub write_window: Duration,
    /// Set by [`start`]: the server's URL (links are absolute) and the token endpoint.
    pub base_url: String,
    pub token_audience: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            tenant_id: "7e5f0c1a-0000-4000-8000-00000000e1d0".into(),
            client_id: "3c2b1a00-0000-4000-8000-0000000000a1".into(),
            client_secret: Some("graph-test-secret".into()),
            certificate: None,
            domain: "skola.example.org".into(),
            token_lifetime: Duration::from_secs(3599),
            writes_per_window: None,
            write_window: Duration::from_secs(150),
            base_url: String::new(),
            token_audience: String::new(),
        }
    }
}

/// A fault injected for the next request to a path prefix.
#[derive(Debug, Clone)]
pub enum Fault {
    /// An error with this status and Graph's error code.
    Status(u16, String),
    /// 429 with `Retry-After` seconds.
    RetryAfter(u64),
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

/// A running server; stopped when dropped.
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
    config.base_url = url.clone();
    config.token_audience = format!("{url}/{}/oauth2/v2.0/token", config.tenant_id);
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
    let body = axum::body::to_bytes(body, 4 << 20).await.unwrap_or_default();
    let auth = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let reply =
        lock(&shared).handle(parts.method.as_str(), parts.uri.path(), parts.uri.query().unwrap_or(""), auth, &body);
    let mut resp = Response::new(Body::from(reply.body));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (k, v) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

impl Server {
    /// `http://127.0.0.1:<port>`: Graph below `/v1.0/`, the token endpoint at
    /// `/{tenant}/oauth2/v2.0/token`.
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
    /// Users not deleted.
    pub fn users(&self) -> Vec<serde_json::Value> {
        lock(&self.shared).users.values().filter(|u| !u.deleted).map(|u| u.resource.clone()).collect()
    }

    /// Soft-deleted users.
    pub fn deleted_users(&self) -> Vec<serde_json::Value> {
        lock(&self.shared).users.values().filter(|u| u.deleted).map(|u| u.resource.clone()).collect()
    }

    /// A cloud user made by hand (in the admin center): `resource` as Graph shows it, an id
    /// given.
    pub fn add_user(&self, resource: serde_json::Value) -> String {
        let mut s = lock(&self.shared);
        let id = s.new_id();
        let c = s.tick();
        let mut resource = resource;
        resource["id"] = id.clone().into();
        s.users.insert(
            id.clone(),
            state::Obj { resource, deleted: false, changed: c, members: Default::default(), member_log: Vec::new() },
        );
        id
    }

    /// A user synchronised from on-premises AD (Entra Connect made it; Graph will not write it).
    pub fn add_synced_user(&self, upn: &str, display_name: &str) -> String {
        let mut s = lock(&self.shared);
        let id = s.new_id();
        let c = s.tick();
        let resource = serde_json::json!({"id": id, "userPrincipalName": upn.to_lowercase(), "displayName": display_name,
            "accountEnabled": true, "onPremisesSyncEnabled": true});
        s.users.insert(
            id.clone(),
            state::Obj { resource, deleted: false, changed: c, members: Default::default(), member_log: Vec::new() },
        );
        id
    }

    /// The password profile a user was created with: (password, change at the next sign-in).
    pub fn password(&self, id: &str) -> Option<(String, bool)> {
        lock(&self.shared).passwords.get(id).cloned()
    }

    /// Groups not deleted.
    pub fn groups(&self) -> Vec<serde_json::Value> {
        lock(&self.shared).groups.values().filter(|g| !g.deleted).map(|g| g.resource.clone()).collect()
    }

    /// A group's member ids.
    pub fn members(&self, group_id: &str) -> Vec<String> {
        lock(&self.shared).groups.get(group_id).map(|g| g.members.iter().cloned().collect()).unwrap_or_default()
    }

    /// Every delta link given so far expires: the next round from one answers 410.
    pub fn expire_delta_links(&self) {
        let mut s = lock(&self.shared);
        s.delta_floor = s.counter + 1;
    }

    /// The next request to a path starting with `prefix` gets `fault`.
    pub fn fault(&self, prefix: &str, fault: Fault) {
        lock(&self.shared).faults.push((prefix.to_string(), fault));
    }

    /// When each write was carried out (in `$batch` too), and how many were refused 429 (with a
    /// write quota set).
    pub fn writes(&self) -> (Vec<std::time::Instant>, usize) {
        let s = lock(&self.shared);
        (s.accepted.clone(), s.refused)
    }

    pub fn log(&self) -> Vec<Logged> {
        lock(&self.shared).log.clone()
    }

    /// Moves the server's clock (token expiry, the quota window).
    pub fn advance(&self, by: Duration) {
        lock(&self.shared).skew += by;
    }
}
