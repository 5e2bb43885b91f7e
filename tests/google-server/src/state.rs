//! What the server holds and how it answers: users, org units, groups and their members, the
//! tokens it gave, the request log; one `State::handle` decides every request, so that
//! authentication, the rate limit, faults and unknown paths are answered in one place. Times are
//! `Instant`s of the server's clock, so a test can move it.

use crate::{Config, Fault, Logged};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// The directory API's path prefix.
pub const API: &str = "/admin/directory/v1/";

/// Scopes, as Google names them, and what each grants.
pub const USER_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user";
pub const GROUP_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group";
pub const MEMBER_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group.member";
pub const ORGUNIT_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.orgunit";

/// An answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: u16, v: &Value) -> Reply {
        Reply { status, body: v.to_string(), headers: Vec::new() }
    }

    fn empty() -> Reply {
        Reply { status: 204, body: String::new(), headers: Vec::new() }
    }
}

/// Google's error body: `{"error": {"code", "message", "errors": [{"message", "domain", "reason"}]}}`.
pub(crate) fn error(status: u16, reason: &str, message: &str) -> Reply {
    let domain = if reason.contains("RateLimit") || reason == "quotaExceeded" { "usageLimits" } else { "global" };
    Reply::json(
        status,
        &json!({"error": {"code": status, "message": message,
                "errors": [{"message": message, "domain": domain, "reason": reason}]}}),
    )
}

/// A user as the server keeps it: the resource, when it was made, whether it is deleted.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub resource: Value,
    pub created: Instant,
    pub deleted: bool,
}

/// A group: its resource and members (`email` → member resource).
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    pub resource: Value,
    pub members: BTreeMap<String, Value>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub config: Config,
    /// The server's clock: real time plus what a test advanced it by.
    pub skew: Duration,
    /// Users by immutable id.
    pub users: BTreeMap<String, User>,
    /// Org unit paths (`/` always).
    pub orgunits: BTreeSet<String>,
    /// Groups by email.
    pub groups: BTreeMap<String, Group>,
    /// Access tokens: token → (subject, scopes, expiry).
    pub tokens: BTreeMap<String, (String, BTreeSet<String>, Instant)>,
    /// Times of the API requests of the last quota window (the rate limit).
    pub recent: VecDeque<Instant>,
    pub log: Vec<Logged>,
    pub faults: Vec<(String, Fault)>,
    next_id: u64,
}

impl State {
    pub(crate) fn new(config: Config) -> State {
        State {
            config,
            skew: Duration::ZERO,
            users: BTreeMap::new(),
            orgunits: BTreeSet::from(["/".to_string()]),
            groups: BTreeMap::new(),
            tokens: BTreeMap::new(),
            recent: VecDeque::new(),
            log: Vec::new(),
            faults: Vec::new(),
            next_id: 100_000_000_000_000_000,
        }
    }

    pub(crate) fn now(&self) -> Instant {
        Instant::now() + self.skew
    }

    pub(crate) fn new_id(&mut self) -> String {
        self.next_id += 7919;
        self.next_id.to_string()
    }

    /// A user by key: the immutable id or the primary email (any case), not deleted.
    pub(crate) fn user_key(&self, key: &str) -> Option<String> {
        if self.users.get(key).is_some_and(|u| !u.deleted) {
            return Some(key.to_string());
        }
        let key = key.to_lowercase();
        self.users
            .iter()
            .find(|(_, u)| !u.deleted && u.resource["primaryEmail"].as_str().is_some_and(|e| e.to_lowercase() == key))
            .map(|(id, _)| id.clone())
    }

    /// Whether an email is taken by a user (not deleted) or a group.
    pub(crate) fn email_taken(&self, email: &str) -> bool {
        let email = email.to_lowercase();
        self.user_key(&email).is_some() || self.groups.contains_key(&email)
    }

    /// Every request: log, faults, token endpoint, authentication, rate limit, then the API.
    /// Every request, logged with when it came and how it was answered.
    pub(crate) fn handle(&mut self, method: &str, path: &str, query: &str, auth: Option<&str>, body: &[u8]) -> Reply {
        let at = self.now();
        let i = self.log.len();
        self.log.push(Logged { method: method.into(), path: path.into(), query: query.into(), at, status: 0 });
        let reply = self.answer(method, path, query, auth, body);
        if let Some(l) = self.log.get_mut(i) {
            l.status = reply.status;
        }
        reply
    }

    fn answer(&mut self, method: &str, path: &str, query: &str, auth: Option<&str>, body: &[u8]) -> Reply {
        let now = self.now();
        if let Some(i) = self.faults.iter().position(|(p, _)| path.starts_with(p.as_str())) {
            let (_, fault) = self.faults.remove(i);
            return match fault {
                Fault::Status(status, reason) => error(status, &reason, "injected"),
                Fault::RetryAfter(status, secs) => {
                    let mut r = error(status, "rateLimitExceeded", "injected: too many requests");
                    r.headers.push(("retry-after", secs.to_string()));
                    r
                }
            };
        }
        if path == "/token" {
            return if method == "POST" {
                crate::auth::token(self, body, now)
            } else {
                error(405, "badRequest", "POST")
            };
        }
        let Some(rest) = path.strip_prefix(API) else {
            return error(404, "notFound", "Not Found");
        };
        // Authentication: a bearer token this server gave, not expired.
        let token = auth.and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
        let scopes = match self.tokens.get(token) {
            Some((_, scopes, until)) if *until > now => scopes.clone(),
            _ => {
                let mut r = Reply::json(
                    401,
                    &json!({"error": {"code": 401, "status": "UNAUTHENTICATED",
                        "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                        "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError"}]}}),
                );
                r.headers.push(("www-authenticate", "Bearer realm=\"https://accounts.google.com/\"".into()));
                return r;
            }
        };
        // The per-minute quota (Google: 2,400 queries a minute per user per project): over it,
        // 403 userRateLimitExceeded, without Retry-After.
        if let Some(limit) = self.config.queries_per_window {
            let window = self.config.quota_window;
            while self.recent.front().is_some_and(|t| now.duration_since(*t) >= window) {
                self.recent.pop_front();
            }
            if self.recent.len() >= limit {
                return error(
                    403,
                    "userRateLimitExceeded",
                    "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'",
                );
            }
            self.recent.push_back(now);
        }
        let params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(_) => return error(400, "parseError", "Parse Error"),
            }
        };
        let parts: Vec<String> = rest.split('/').map(pct_decode).collect();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let need = |scope: &str| {
            if scopes.contains(scope) {
                None
            } else {
                Some(error(403, "insufficientPermissions", "Request had insufficient authentication scopes."))
            }
        };
        match parts.as_slice() {
            ["users"] => need(USER_SCOPE).unwrap_or_else(|| match method {
                "POST" => crate::users::insert(self, &body, now),
                "GET" => crate::users::list(self, &params),
                _ => error(405, "badRequest", "method"),
            }),
            ["users", key] => need(USER_SCOPE).unwrap_or_else(|| match method {
                "GET" => crate::users::get(self, key, now),
                "PUT" | "PATCH" => crate::users::update(self, key, &body, method == "PUT", now),
                "DELETE" => crate::users::delete(self, key, now),
                _ => error(405, "badRequest", "method"),
            }),
            ["customer", customer, "orgunits", path @ ..] => need(ORGUNIT_SCOPE).unwrap_or_else(|| {
                if !self.customer_ok(customer) {
                    return error(400, "invalid", "Invalid Input: customer");
                }
                crate::groups::orgunits(self, method, &path.join("/"), &params, &body)
            }),
            ["groups"] => need(GROUP_SCOPE).unwrap_or_else(|| match method {
                "POST" => crate::groups::insert(self, &body),
                "GET" => crate::groups::list(self, &params),
                _ => error(405, "badRequest", "method"),
            }),
            ["groups", key] => need(GROUP_SCOPE).unwrap_or_else(|| crate::groups::one(self, method, key, &body)),
            ["groups", key, "members", rest @ ..] => {
                let scope = if scopes.contains(GROUP_SCOPE) { None } else { need(MEMBER_SCOPE) };
                scope.unwrap_or_else(|| {
                    crate::groups::members(self, method, key, rest.first().copied(), &params, &body, now)
                })
            }
            _ => error(404, "notFound", "Not Found"),
        }
    }

    /// `my_customer` or this customer's id.
    pub(crate) fn customer_ok(&self, customer: &str) -> bool {
        customer == "my_customer" || customer == self.config.customer_id
    }

    /// Whether the user was made so recently that Google is still making it.
    pub(crate) fn still_creating(&self, id: &str, now: Instant) -> bool {
        self.users.get(id).is_some_and(|u| now.duration_since(u.created) < self.config.propagation)
    }

    /// An empty reply (a delete).
    pub(crate) fn done() -> Reply {
        Reply::empty()
    }

    pub(crate) fn ok(v: &Value) -> Reply {
        Reply::json(200, v)
    }
}

/// A path segment, percent-decoded.
fn pct_decode(s: &str) -> String {
    let decoded: String = form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    decoded
}
