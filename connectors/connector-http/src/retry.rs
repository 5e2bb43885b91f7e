//! Retries: what may be tried again, and when. A 429 or 503 with `Retry-After` waits exactly as
//! long as the server said (never less), while that fits the request's budget; otherwise the
//! request ends `Throttled` and says when to come back. A 429, a 503 or a 403 that says it is a
//! rate limit (Google's) without `Retry-After` waits a backoff step with jitter. 5xx, timeouts and broken connections are
//! tried again with exponential backoff (backon), for requests that may be repeated; a POST is
//! repeated only when it cannot have arrived (a refused connection, a 429 or 503). A 401 gets
//! one fresh token.

use crate::error::{FailureKind, HttpFailure};
use crate::{HttpClient, HttpError, RawResponse, Request, Response};
use backon::BackoffBuilder;
use std::time::{Duration, Instant};

pub(crate) async fn send(client: &HttpClient, req: &Request) -> Result<Response, HttpError> {
    let raw = send_raw(client, req).await?;
    let body = json(&raw.bytes).map_err(|f| f.with(&req.what))?;
    Ok(Response { status: raw.status, etag: raw.etag, body })
}

pub(crate) async fn send_raw(client: &HttpClient, req: &Request) -> Result<RawResponse, HttpError> {
    let started = Instant::now();
    let budget = client.settings.max_wait;
    let mut backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(client.settings.max_attempts.saturating_sub(1))
        .with_jitter()
        .build();
    let mut refreshed = false;
    loop {
        // Nothing is sent once this node's lease on the state is no longer certain.
        if connector_api::fence::check().is_err() {
            return Err(HttpFailure::fenced().with(&req.what));
        }
        let failure = match client.attempt(req, false).await {
            Ok(resp) => match finish(resp).await {
                Ok(r) => return Ok(r),
                Err(f) => f,
            },
            Err(f) => f,
        };
        // One fresh token for a 401 (an expired or revoked one), once.
        let failure = if failure.status() == Some(401) && !refreshed && client.refreshes() {
            refreshed = true;
            match client.attempt(req, true).await {
                Ok(resp) => match finish(resp).await {
                    Ok(r) => return Ok(r),
                    Err(f) => f,
                },
                Err(f) => f,
            }
        } else {
            failure
        };
        let Some(wait) = next_wait(&failure, req.repeatable()) else {
            return Err(failure.with(&req.what));
        };
        // Every try again uses one of the attempts, whoever chose the wait.
        let Some(step) = backoff.next() else {
            return Err(failure.with(&req.what));
        };
        let wait = match wait {
            Wait::Told(d) => d,
            Wait::Backoff => step,
        };
        if started.elapsed() + wait > budget || connector_api::fence::outlasts(wait) {
            // Never sooner than told: past the budget (or past this node's lease on the state),
            // the request ends, saying when to retry.
            return Err(failure.with(&req.what));
        }
        tracing::debug!(what = %req.what, wait_ms = wait.as_millis() as u64, "retrying");
        tokio::time::sleep(wait).await;
    }
}

enum Wait {
    /// As long as the server said.
    Told(Duration),
    /// The next step of the backoff.
    Backoff,
}

/// Whether (and how long) to wait before trying again; `None`: not again.
fn next_wait(f: &HttpFailure, repeatable: bool) -> Option<Wait> {
    match f.kind {
        // Not carried out: tried again whatever the method, after the server's wait or a backoff
        // with jitter (Google sends no `Retry-After` with its 403 rate limits).
        FailureKind::Status(429 | 503) | FailureKind::RateLimited(_) => {
            Some(f.retry_after.map_or(Wait::Backoff, Wait::Told))
        }
        FailureKind::Status(s) if s >= 500 && repeatable => Some(Wait::Backoff),
        FailureKind::Timeout if repeatable => Some(Wait::Backoff),
        FailureKind::Connect => Some(Wait::Backoff),
        _ => None,
    }
}

/// A response: its bytes for a 2xx, else the failure it says.
async fn finish(resp: reqwest::Response) -> Result<RawResponse, HttpFailure> {
    let status = resp.status().as_u16();
    let retry_after =
        resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
    let etag = resp.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
    // A body that breaks off is a connection that broke after the request was sent (tried again
    // when the request may be repeated), not an answer that does not decode.
    let bytes =
        resp.bytes().await.map_err(|e| HttpFailure { kind: FailureKind::Timeout, ..HttpFailure::from_reqwest(e) })?;
    if !(200..300).contains(&status) {
        return Err(HttpFailure::from_status(status, retry_after, &bytes));
    }
    Ok(RawResponse { status, etag, bytes: Vec::from(bytes) })
}

/// A 2xx body as JSON; `Null` when there is none (204).
fn json(bytes: &[u8]) -> Result<serde_json::Value, HttpFailure> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|e| HttpFailure {
        kind: FailureKind::Decode,
        retry_after: None,
        message: format!("the answer is not JSON ({e})"),
        scim_type: None,
        source: None,
    })
}

/// `Retry-After`: seconds, or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        assert_eq!(parse_retry_after("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "in the past: now");
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        let d = parse_retry_after(&soon).unwrap();
        assert!(d > Duration::from_secs(110) && d <= Duration::from_secs(120), "{d:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn a_post_that_may_have_arrived_is_not_sent_again() {
        let f = |kind| HttpFailure { kind, retry_after: None, message: String::new(), scim_type: None, source: None };
        assert!(next_wait(&f(FailureKind::Timeout), false).is_none());
        assert!(next_wait(&f(FailureKind::Status(502)), false).is_none());
        assert!(next_wait(&f(FailureKind::Connect), false).is_some(), "a refused connection sent nothing");
        assert!(next_wait(&f(FailureKind::Status(429)), false).is_some(), "a 429 was not processed");
        assert!(next_wait(&f(FailureKind::RateLimited(403)), false).is_some(), "nor a rate-limited 403");
        assert!(next_wait(&f(FailureKind::Status(403)), true).is_none(), "a missing right is not tried again");
        assert!(next_wait(&f(FailureKind::Timeout), true).is_some());
        assert!(next_wait(&f(FailureKind::Status(400)), true).is_none());
        assert!(next_wait(&f(FailureKind::Status(401)), true).is_none());
    }
}
