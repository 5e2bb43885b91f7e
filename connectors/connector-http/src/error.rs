//! What went wrong with a request, and how it maps to the errors the engine acts on: the HTTP
//! status, the server's own message (a SCIM `detail`, a Graph or Google `error.message`, an
//! OAuth `error_description`; civic numbers in it masked), and the cause.

use connector_api::civic::mask_civic_in_text;
use connector_api::{BoxError, RejectKind, SourceError, TargetError};
use std::time::Duration;

/// Why one attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The request may not have reached the server (connection refused, reset, DNS).
    Connect,
    /// The request was sent, and no answer came in time, or the connection broke after it.
    Timeout,
    /// The server answered with this status.
    Status(u16),
    /// The server answered with this status and said, in its body, that the client sent too
    /// many requests (Google's 403 `userRateLimitExceeded`, `rateLimitExceeded`, `quotaExceeded`):
    /// the request was not carried out, and may be sent again after a while.
    RateLimited(u16),
    /// Credentials were refused or could not be obtained (a token endpoint's answer).
    Auth,
    /// TLS failed: the server's certificate, the CA file.
    Tls,
    /// The answer could not be read (not the JSON it should be).
    Decode,
}

/// A failed attempt, or a request that failed in the end.
#[derive(Debug)]
pub struct HttpFailure {
    pub kind: FailureKind,
    /// How long the server asked us to wait (429, 503 with `Retry-After`).
    pub retry_after: Option<Duration>,
    /// The server's message, or what went wrong, civic numbers masked.
    pub message: String,
    /// SCIM's `scimType` (`uniqueness`, `invalidValue`, ...), when the server gave one.
    pub scim_type: Option<String>,
    pub source: Option<BoxError>,
}

/// A request that failed in the end: the last attempt's [`HttpFailure`], with what the request
/// was for.
#[derive(Debug)]
pub struct HttpError {
    pub what: String,
    pub failure: HttpFailure,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.failure.describe())
    }
}

impl std::error::Error for HttpError {}

impl HttpFailure {
    pub(crate) fn transport(message: &str) -> HttpFailure {
        HttpFailure {
            kind: FailureKind::Connect,
            retry_after: None,
            message: message.into(),
            scim_type: None,
            source: None,
        }
    }

    /// Not sent: the fence passed (`connector_api::fence`); the target is reported unavailable.
    pub(crate) fn fenced() -> HttpFailure {
        HttpFailure::transport(&connector_api::fence::fenced().to_string())
    }

    pub(crate) fn auth(message: &str) -> HttpFailure {
        HttpFailure {
            kind: FailureKind::Auth,
            retry_after: None,
            message: message.into(),
            scim_type: None,
            source: None,
        }
    }

    pub(crate) fn from_reqwest(e: reqwest::Error) -> HttpFailure {
        let text = crate::error::chain(&e);
        let kind = if text.contains("certificate") || text.contains("tls") || text.contains("TLS") {
            FailureKind::Tls
        } else if e.is_connect() {
            FailureKind::Connect
        } else if e.is_decode() {
            FailureKind::Decode
        } else {
            // Timed out, or the connection broke once the request was on its way.
            FailureKind::Timeout
        };
        let message = if e.is_timeout() { "no answer in time".to_string() } else { text };
        HttpFailure { kind, retry_after: None, message, scim_type: None, source: Some(Box::new(e)) }
    }

    /// The failure a response with an error status is: the server's message from its body.
    pub fn from_status(status: u16, retry_after: Option<Duration>, body: &[u8]) -> HttpFailure {
        let (message, scim_type) = server_message(body);
        let kind = if status == 403 && rate_limited(body) {
            FailureKind::RateLimited(403)
        } else {
            FailureKind::Status(status)
        };
        HttpFailure { kind, retry_after, message, scim_type, source: None }
    }

    /// The status, for a failure the server answered.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            FailureKind::Status(s) | FailureKind::RateLimited(s) => Some(s),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        let mut s = match self.kind {
            FailureKind::Status(code) => format!("HTTP {code}"),
            FailureKind::RateLimited(code) => format!("HTTP {code} (too many requests)"),
            FailureKind::Connect => "cannot connect".into(),
            FailureKind::Timeout => "no answer".into(),
            FailureKind::Auth => "authentication".into(),
            FailureKind::Tls => "TLS".into(),
            FailureKind::Decode => "unreadable answer".into(),
        };
        if let Some(t) = &self.scim_type {
            s.push_str(&format!(" {t}"));
        }
        if !self.message.is_empty() {
            s.push_str(&format!(": {}", self.message));
        }
        s
    }

    pub fn with(self, what: &str) -> HttpError {
        HttpError { what: what.to_string(), failure: self }
    }
}

impl HttpError {
    /// The status, for a failure the server answered.
    pub fn status(&self) -> Option<u16> {
        self.failure.status()
    }

    /// As a target's error, by what the engine must do: stop for the run (unreachable,
    /// throttled, refused credentials, a configuration that cannot work) or leave this one
    /// operation (a rejection, with its kind).
    pub fn into_target(self) -> TargetError {
        let text = self.to_string();
        let f = &self.failure;
        let e = match f.kind {
            FailureKind::Connect | FailureKind::Timeout | FailureKind::Decode => TargetError::unavailable(text),
            FailureKind::Tls => TargetError::config(format!("{text}; check tls_ca_file")),
            FailureKind::Auth => TargetError::auth(text),
            FailureKind::Status(401) => TargetError::auth(format!("{text}; check the token or the client credentials")),
            FailureKind::Status(429) | FailureKind::RateLimited(_) => TargetError::throttled(text, f.retry_after),
            FailureKind::Status(503) if f.retry_after.is_some() => TargetError::throttled(text, f.retry_after),
            FailureKind::Status(s) if s >= 500 => TargetError::unavailable(text),
            FailureKind::Status(403) => {
                TargetError::rejected(RejectKind::Access, format!("{text}; give the client the right"))
            }
            FailureKind::Status(404) => TargetError::rejected(RejectKind::NotFound, text),
            FailureKind::Status(409) => TargetError::rejected(RejectKind::Exists, text),
            FailureKind::Status(412) => TargetError::rejected(
                RejectKind::Other,
                format!("{text}; it changed on the server since it was read, the next run reads it again"),
            ),
            FailureKind::Status(413) => TargetError::rejected(RejectKind::Constraint, text),
            FailureKind::Status(400 | 422) => TargetError::rejected(RejectKind::Schema, text),
            FailureKind::Status(_) => TargetError::rejected(RejectKind::Other, text),
        };
        match self.failure.source {
            Some(s) => e.with_source(s),
            None => e,
        }
    }

    /// As a source's error: a source that cannot be read is unavailable, whatever the reason;
    /// an answer that is not what the API promises is malformed.
    pub fn into_source(self) -> SourceError {
        let reason = self.failure.describe();
        match self.failure.kind {
            FailureKind::Decode => SourceError::Malformed { location: self.what, reason, source: self.failure.source },
            _ => SourceError::Unavailable { what: self.what, reason, source: self.failure.source },
        }
    }
}

/// Whether an error body says the client sent too many requests, in Google's words: a reason
/// `userRateLimitExceeded`, `rateLimitExceeded` or `quotaExceeded` in `error.errors`, or the
/// status `RESOURCE_EXHAUSTED`. (Another 403 is a missing right: not tried again.)
fn rate_limited(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return false };
    let e = &v["error"];
    e["status"] == "RESOURCE_EXHAUSTED"
        || e["errors"].as_array().is_some_and(|list| {
            list.iter().any(|x| {
                matches!(x["reason"].as_str(), Some("userRateLimitExceeded" | "rateLimitExceeded" | "quotaExceeded"))
            })
        })
}

/// The error and its causes on one line.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    connector_api::one_line(e)
}

/// The server's own words in an error body, civic numbers masked, at most 300 characters; and
/// SCIM's `scimType`.
pub(crate) fn server_message(body: &[u8]) -> (String, Option<String>) {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => {
            let scim_type = v.get("scimType").and_then(|t| t.as_str()).map(str::to_string);
            let said = ["detail", "error_description", "message"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|m| m.as_str()).map(str::to_string))
                .or_else(|| {
                    let e = v.get("error")?;
                    e.get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                        .or_else(|| e.as_str().map(str::to_string))
                })
                .unwrap_or_default();
            return (clip(&mask_civic_in_text(&said)), scim_type);
        }
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    (clip(&mask_civic_in_text(&text)), None)
}

fn clip(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ");
    if s.chars().count() > 300 { format!("{}…", s.chars().take(300).collect::<String>()) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_words_come_through_masked() {
        let scim = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","scimType":"uniqueness","detail":"userName 19870704-9996 is taken"}"#;
        let (m, t) = server_message(scim);
        assert_eq!(t.as_deref(), Some("uniqueness"));
        assert_eq!(m, "userName 19870704-**** is taken");
        let graph = br#"{"error":{"code":"Request_BadRequest","message":"Another object with the same value"}}"#;
        assert_eq!(server_message(graph).0, "Another object with the same value");
        let oauth = br#"{"error":"invalid_client","error_description":"bad secret"}"#;
        assert_eq!(server_message(oauth).0, "bad secret");
        assert_eq!(server_message(b"<html>Bad Gateway</html>").0, "<html>Bad Gateway</html>");
    }

    #[test]
    fn statuses_map_to_what_the_engine_must_do() {
        let e = |status, retry| HttpFailure::from_status(status, retry, b"{}").with("create user x").into_target();
        assert!(matches!(e(401, None), TargetError::Auth { .. }));
        assert!(matches!(e(429, Some(Duration::from_secs(3))), TargetError::Throttled { retry_after: Some(_), .. }));
        assert!(matches!(e(503, Some(Duration::from_secs(3))), TargetError::Throttled { .. }));
        assert!(matches!(e(503, None), TargetError::Unavailable { .. }));
        assert!(matches!(e(500, None), TargetError::Unavailable { .. }));
        assert_eq!(e(409, None).reject_kind(), Some(RejectKind::Exists));
        assert_eq!(e(404, None).reject_kind(), Some(RejectKind::NotFound));
        assert_eq!(e(400, None).reject_kind(), Some(RejectKind::Schema));
        assert_eq!(e(403, None).reject_kind(), Some(RejectKind::Access));
        assert_eq!(e(412, None).reject_kind(), Some(RejectKind::Other));
        let shown = HttpFailure::from_status(409, None, br#"{"scimType":"uniqueness","detail":"taken"}"#)
            .with("create user 0f8f")
            .to_string();
        assert_eq!(shown, "create user 0f8f: HTTP 409 uniqueness: taken");
    }

    #[test]
    fn googles_403_for_too_many_requests_is_throttling_and_another_403_is_a_missing_right() {
        let limited = br#"{"error":{"code":403,"message":"Quota exceeded for quota metric","errors":[{"message":"Quota exceeded","domain":"usageLimits","reason":"userRateLimitExceeded"}]}}"#;
        let f = HttpFailure::from_status(403, None, limited);
        assert_eq!((f.kind, f.status()), (FailureKind::RateLimited(403), Some(403)));
        assert!(matches!(f.with("create user x").into_target(), TargetError::Throttled { .. }));
        let exhausted = br#"{"error":{"code":403,"status":"RESOURCE_EXHAUSTED","message":"slow down"}}"#;
        assert_eq!(HttpFailure::from_status(403, None, exhausted).kind, FailureKind::RateLimited(403));
        let denied = br#"{"error":{"code":403,"message":"Not Authorized to access this resource/api","errors":[{"reason":"forbidden"}]}}"#;
        let f = HttpFailure::from_status(403, None, denied);
        assert_eq!(f.kind, FailureKind::Status(403));
        assert_eq!(f.with("list users").into_target().reject_kind(), Some(RejectKind::Access));
    }
}
