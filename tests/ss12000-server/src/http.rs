//! The axum side: one fallback handler that hands every request to `State::handle` (so that
//! faults, the log and unknown paths are decided in one place) and turns its reply into a
//! response, waiting first when the reply is slow and cutting the body off when it is to drop.

use crate::server::{Reply, State};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub(crate) type Shared = Arc<Mutex<State>>;

/// The lock; a panic while holding it (a bug in a test's closure) must not stop the server.
pub(crate) fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn router(shared: Shared) -> Router {
    Router::new().fallback(move |req: Request| handle(Arc::clone(&shared), req))
}

async fn handle(shared: Shared, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let reply = lock(&shared).handle(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        authorization,
        &body,
    );
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    response(reply)
}

fn response(r: Reply) -> Response {
    let body = if r.drop_mid_body {
        // Half the body, a pause so that it reaches the client, then an error: hyper then
        // aborts the connection without the final chunk, as a dropped connection looks.
        let half = Bytes::from(r.body[..r.body.len() / 2].to_vec());
        let first = futures::stream::iter([Ok::<Bytes, std::io::Error>(half)]);
        let cut = futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(std::io::Error::other("ss12000-server: injected: connection dropped mid-body"))
        });
        Body::from_stream(first.chain(cut))
    } else {
        Body::from(r.body)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    for (k, v) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}
