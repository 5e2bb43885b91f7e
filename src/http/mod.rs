//! The HTTP API of `enid run` (`[server] listen`): a front end like the CLI. It shows what the
//! engine's queries return (runs, the sync log, a person explained, saved plans), each for the
//! token's `Viewer`, and decides nothing the engine decides.
//!
//! Every `/api/v1` request carries `Authorization: Bearer TOKEN` (`enid token add`); no token, an
//! unknown or a revoked one is 401. A school admin's token sees the runs, log rows and persons of
//! their own school units only: another school's person is 404, exactly as a person who does not
//! exist. A person with protected personal data is found by enid id only. Keys that can be civic
//! numbers (source keys, external identifiers) go in the body of `POST /persons/lookup`, never in
//! a URL; a URL that holds one is refused. The access log names the route's template (never the
//! path as sent, a query string or a body) and the token's name.
//!
//! Files: `mod.rs` (the server, its state, authentication, the access log, errors), `api.rs`
//! (the handlers), `metrics.rs` (`/metrics`, behind a token too), `tls.rs` (HTTPS served by
//! enid itself, when `[server] tls_cert_file` is set), `web.rs` (the web page: sessions signed
//! in with a token, CSRF on every form, Swedish and English).

use crate::config::ServerConfig;
use crate::daemon::DaemonHandle;
use crate::engine::{Engine, EngineError, LookupError, Principal};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod api;
mod metrics;
mod tls;
mod web;

/// What every handler reaches: the engine in force (a reload swaps it) and the settings.
#[derive(Debug, Clone)]
pub struct ApiState {
    handle: DaemonHandle,
    settings: ServerConfig,
}

impl ApiState {
    pub fn new(handle: DaemonHandle, settings: ServerConfig) -> ApiState {
        ApiState { handle, settings }
    }

    /// The engine in force now; a request keeps the one it started with.
    fn engine(&self) -> Arc<Engine> {
        Arc::clone(&self.handle.engine.borrow())
    }
}

/// The routes: `/healthz` open, `/api/v1/*` behind a token.
pub fn router(state: ApiState) -> Router {
    let state = Arc::new(state);
    let api = Router::new()
        .route("/runs", get(api::runs))
        .route("/runs/{id}", get(api::run))
        .route("/needs-action", get(api::needs_action))
        .route("/runs/{id}/approve", post(api::approve_run))
        .route("/log", get(api::log))
        .route("/persons/lookup", post(api::lookup))
        .route("/persons/{id}", get(api::person))
        .route("/plans", post(api::new_plan))
        .route("/plans/{id}", get(api::plan))
        .route("/plans/{id}/view", get(api::plan_view))
        .route("/conflicts", get(api::conflicts))
        .route("/conflicts/{id}/decision", post(api::decide))
        .route("/renames", get(api::renames))
        .route("/renames/{person}/approve", post(api::approve_rename))
        .route("/passwords/claims", post(api::claim_passwords))
        .route("/passwords/claims/{claim}/confirm", post(api::confirm_claim))
        .route("/passwords/claims/{claim}", get(api::show_claim).delete(api::release_claim))
        .route("/passwords/forget", post(api::forget_passwords))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), authenticate))
        .layer(middleware::from_fn(json_errors));
    let web = Router::new()
        .route("/", get(web::home))
        .route("/sign-in", get(web::sign_in_form).post(web::sign_in))
        .route("/sign-out", post(web::sign_out))
        .route("/runs", get(web::runs))
        .route("/runs/{id}/approve", post(web::approve))
        .route("/log", get(web::log))
        .route("/search", post(web::search))
        .route("/plans", post(web::dry_run))
        .route("/plans/{id}", get(web::saved_plan))
        .route("/conflicts", get(web::conflicts))
        .route("/conflicts/{id}/decision", post(web::decide))
        .route("/persons/{id}", get(web::person))
        .route("/renames", get(web::renames))
        .route("/renames/{person}/approve", post(web::approve_rename))
        .route("/passwords", get(web::passwords::list))
        .route("/passwords/claims", post(web::passwords::claim))
        .route("/passwords/claims/{claim}", get(web::passwords::show))
        .route("/passwords/claims/{claim}/confirm", post(web::passwords::confirm))
        .route("/passwords/claims/{claim}/give-back", post(web::passwords::give_back))
        .route("/static/enid.css", get(web::style));
    Router::new()
        .merge(web)
        .route("/healthz", get(healthz))
        .route(
            "/metrics",
            get(metrics::metrics).route_layer(middleware::from_fn_with_state(Arc::clone(&state), authenticate)),
        )
        .nest("/api/v1", api)
        .fallback(|| async { ApiError::NotFound })
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

/// `ok` while the service's last run got through; 503 `degraded` while it stopped (a source or
/// target down, a guard): the details are in the journal and `systemctl status`, not here,
/// where no token is asked for.
///
/// With a state in PostgreSQL (two nodes), a second line and the `X-Enid-Role` header say
/// whether this node leads (`leader`) or waits (`follower`), and which node leads.
async fn healthz(State(state): State<Arc<ApiState>>) -> Response {
    let status = state.handle.status.borrow().clone();
    let mut text = String::from(if status.healthy { "ok\n" } else { "degraded\n" });
    let role = match status.role {
        crate::daemon::Role::Single => None,
        crate::daemon::Role::Leader => Some("leader"),
        crate::daemon::Role::Follower => Some("follower"),
    };
    if let Some(role) = role {
        text.push_str(&format!("role: {role} (node {})\n", crate::daemon::node_name()));
        if let Some(leader) = status.leader.as_deref().filter(|_| role == "follower") {
            text.push_str(&format!("leader: {leader}\n"));
        }
    }
    let code = if status.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut response = (code, text).into_response();
    if let Some(role) = role {
        response.headers_mut().insert("x-enid-role", axum::http::HeaderValue::from_static(role));
    }
    response
}

/// The API being served; [`Server::stop`] ends it.
#[derive(Debug)]
pub struct Server {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// How long a stopping server waits for the requests in flight.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl Server {
    /// Binds `[server] listen` (an address in use fails the start) and serves in a task.
    pub async fn start(settings: ServerConfig, handle: DaemonHandle) -> std::io::Result<Server> {
        // The TLS files are read before the port is taken: a bad one fails the start.
        let acceptor = match (&settings.tls_cert_file, &settings.tls_key_file) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        let listener = tokio::net::TcpListener::bind(settings.listen).await?;
        tracing::info!(listen = %settings.listen, https = acceptor.is_some(), "HTTP API: listening");
        let app = router(ApiState::new(handle, settings));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        let task = match acceptor {
            Some(acceptor) => {
                let listener = tls::TlsListener::new(listener, acceptor)?;
                tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stopped).await })
            }
            None => tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stopped).await }),
        };
        Ok(Server { stop, task })
    }

    /// Stops taking requests and waits a little for those in flight.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(STOP_GRACE, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP API: stopped with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP API: the server task failed"),
            Err(_) => tracing::warn!("HTTP API: requests still in flight were dropped at stop"),
        }
    }
}

/// The token's name, put on the response for the access log.
#[derive(Debug, Clone)]
struct TokenName(String);

/// `Authorization: Bearer TOKEN` → the [`Principal`], in the request's extensions; 401 otherwise.
async fn authenticate(State(state): State<Arc<ApiState>>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        // The scheme is case-insensitive (RFC 9110 section 11.1): `BEARER` is as good.
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    let Some(token) = token else { return ApiError::Unauthorized.into_response() };
    let principal = match state.engine().authenticate(token).await {
        Ok(Some(p)) => p,
        Ok(None) => return ApiError::Unauthorized.into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let name = TokenName(principal.name.clone());
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    response.extensions_mut().insert(name);
    response
}

/// One line per request: method, the route's template (never the path as sent: it can hold a
/// username; never a query string or a body), status, time, and the token's name.
async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let response = next.run(request).await;
    let token = response.extensions().get::<TokenName>().map(|t| t.0.as_str()).unwrap_or("-");
    tracing::info!(
        method = %method,
        route = route.as_deref().unwrap_or("(no route)"),
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        token,
        "HTTP request"
    );
    response
}

/// A refusal made before a handler ran (axum's own: a path segment or a body that does not
/// parse, a body too large, a method the route does not take) as the API's JSON error. axum's
/// plain text echoes the path segment, which can be a civic number, and is no JSON to a client.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => "this route does not take that method",
        StatusCode::PAYLOAD_TOO_LARGE => "the body is too large",
        StatusCode::NOT_FOUND => "not found",
        s if s.is_server_error() => "the request failed",
        _ => "the request is malformed: a number where the route takes one, a JSON body, UTF-8",
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, axum::body::Body::from(serde_json::json!({ "error": message }).to_string()))
}

/// Why a request is refused, as the caller sees it.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// No token, or one that is not (or no longer) valid.
    Unauthorized,
    /// Not there, or not the caller's to see: the same answer.
    NotFound,
    /// The caller's role may not do this.
    Forbidden(&'static str),
    /// The request is malformed: the message says how to fix it (and never echoes a value).
    BadRequest(String),
    /// The engine failed: its message (which names the component and never a civic number).
    Internal(String),
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match e {
            // A protected person asked for by another key than the enid id is no one.
            EngineError::Lookup(LookupError::NotFound(_) | LookupError::ProtectedByIdOnly) => ApiError::NotFound,
            EngineError::Lookup(e @ LookupError::Ambiguous(..)) => ApiError::BadRequest(e.to_string()),
            e => {
                let line = connector_api::one_line(&e);
                tracing::error!(error = %line, "HTTP API: the engine failed");
                ApiError::Internal(line)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Unauthorized => {
                (StatusCode::UNAUTHORIZED, "a valid token is needed: Authorization: Bearer TOKEN".into())
            }
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not found".to_string()),
            ApiError::Forbidden(why) => (StatusCode::FORBIDDEN, why.to_string()),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        };
        let mut response = (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// An admin's request only.
fn admin_only(p: &Principal) -> Result<(), ApiError> {
    match p.role {
        crate::engine::TokenRole::Admin => Ok(()),
        crate::engine::TokenRole::SchoolAdmin => Err(ApiError::Forbidden("this needs an admin token")),
    }
}
