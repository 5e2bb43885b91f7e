//! Faults a test can inject, and the request log a test reads back. A rule names a path (or
//! every path, the token endpoint included), when it fires (always, on the n-th request to that
//! path, or on the next n requests) and what goes wrong.

use std::time::Duration;

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After: <secs>`.
    TooManyRequests {
        /// The `Retry-After` value in seconds.
        retry_after_secs: u64,
    },
    /// 500.
    ServerError,
    /// 503, with `Retry-After` when given.
    Unavailable {
        /// The `Retry-After` value in seconds, if any.
        retry_after_secs: Option<u64>,
    },
    /// A follow-up page is refused as if its token had expired, with this status (400 or 410).
    /// It fires only on requests that carry a `pageToken`; a rule waits for one.
    PageTokenExpired {
        /// 400 or 410.
        status: u16,
    },
    /// The response starts (status 200, part of the body) and the connection drops.
    DropMidBody,
    /// The page is served with `pageToken: null` although more data follows: the listing
    /// silently ends early, as a broken server does (only a count guard can notice).
    EndEarly,
    /// 404, as for an endpoint the server does not implement.
    NotImplemented,
    /// 401, as for a token the server no longer accepts.
    Unauthorized,
    /// 200 with an HTML body (a proxy's error page where JSON was expected).
    Garbage,
    /// The answer comes after this delay (and is otherwise normal).
    Slow {
        /// How long to wait before answering.
        delay: Duration,
    },
}

/// When a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// On every matching request.
    Always,
    /// On the n-th request (1-based, counted since the server started) to the rule's path, or
    /// to any path when the rule has none.
    Nth(u64),
    /// On the next n matching requests, then the rule is gone.
    Next(u32),
}

/// One fault rule. The first rule that matches a request applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// The exact path (`/persons`, `/token`), or every path when `None`.
    pub path: Option<String>,
    /// When it fires.
    pub when: When,
    /// What goes wrong.
    pub fault: Fault,
}

impl FaultRule {
    /// A rule for one path.
    pub fn on(path: &str, when: When, fault: Fault) -> FaultRule {
        FaultRule { path: Some(path.to_string()), when, fault }
    }
}

/// Whether a request's bearer token was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// A valid token.
    Ok,
    /// No `Authorization` header.
    Missing,
    /// A token the server never issued, or another scheme.
    Bad,
    /// A token the server issued that has expired.
    Expired,
    /// The server requires no token, or the request did not get as far as the check (the
    /// token endpoint, an injected fault).
    NotChecked,
}

/// One request the server answered.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// 1-based order of arrival.
    pub seq: u64,
    /// `GET`, `POST` ...
    pub method: String,
    /// The path.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// Whether the token was accepted.
    pub auth: AuthOutcome,
    /// The status answered (200 for a body that was then cut off).
    pub status: u16,
    /// The fault injected, if one was.
    pub fault: Option<Fault>,
}

/// What rule of the protocol a client broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    /// A query parameter the endpoint does not take.
    UnknownParameter,
    /// `pageToken` sent together with another parameter than `limit`.
    FilterWithPageToken,
    /// A value that does not parse or is outside its enumeration.
    InvalidValue,
    /// A page token the server never gave out, or gave out for another endpoint.
    UnknownPageToken,
    /// A parameter of the specification this server does not implement (`sortkey`).
    Unsupported,
}

/// A client's protocol error, as the server recorded it (every one was answered with 400).
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The request's `seq`.
    pub seq: u64,
    /// The path.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// What was wrong.
    pub kind: ViolationKind,
    /// In words.
    pub message: String,
}
