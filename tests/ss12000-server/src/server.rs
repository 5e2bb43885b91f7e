//! The request logic, without sockets: one call per request under the server's lock, from
//! method, path, query, `Authorization` and body to a reply. Faults are decided first, then the
//! token endpoint or the bearer check, then the endpoint; every request is logged.

use crate::Config;
use crate::fault::*;
use crate::model::Kind;
use crate::query::{self, ListQuery, Listing, QueryError};
use crate::rng::Rng;
use crate::store::Store;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The server's clock: the wall clock, or a time a test sets and moves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clock {
    System,
    Manual(DateTime<Utc>),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            // The one place this crate reads the wall clock.
            Clock::System => Utc::now(),
            Clock::Manual(t) => *t,
        }
    }
}

/// Where a follow-up page continues.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    /// The endpoint it belongs to.
    listing: Listing,
    /// The first page's filters.
    query: ListQuery,
    /// The row (or deletion) the next page starts at.
    pos: usize,
    /// When it was given out, for `page_token_ttl`.
    issued: DateTime<Utc>,
}

/// What to send back.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Extra headers (`Retry-After`, `WWW-Authenticate`).
    pub headers: Vec<(&'static str, String)>,
    /// The body's type.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Send half the body, then drop the connection.
    pub drop_mid_body: bool,
}

fn reply(status: u16, body: serde_json::Value) -> Reply {
    Reply { status, content_type: "application/json", body: body.to_string().into_bytes(), ..Reply::default() }
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    reply(status, serde_json::json!({ "code": code, "message": message }))
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct State {
    /// The configuration; `bump_group_on_membership` may change while the server runs.
    pub cfg: Config,
    /// The data.
    pub store: Store,
    /// The time every `meta`, token and page token is measured by.
    pub clock: Clock,
    /// Where bearer and page tokens come from.
    pub rng: Rng,
    /// Issued bearer tokens and when each expires; kept for the server's life, so that an
    /// expired token is told apart from a forged one in the log.
    pub tokens: HashMap<String, DateTime<Utc>>,
    /// Page tokens and where each continues; kept for the server's life (a retried page must
    /// work), expired by age when used.
    pub cursors: HashMap<String, Cursor>,
    /// Fault rules in order; `Next` rules leave when used up.
    pub faults: Vec<FaultRule>,
    /// Requests so far per path, for `When::Nth`.
    pub counts: HashMap<String, u64>,
    /// Requests so far, all paths.
    pub seq: u64,
    /// Every request answered.
    pub requests: Vec<RequestRecord>,
    /// Every protocol violation.
    pub violations: Vec<Violation>,
}

impl State {
    pub fn new(cfg: Config, store: Store, faults: Vec<FaultRule>) -> State {
        let clock = match cfg.clock {
            Some(t) => Clock::Manual(t),
            None => Clock::System,
        };
        let rng = Rng::new(cfg.token_seed);
        State {
            cfg,
            store,
            clock,
            rng,
            tokens: HashMap::new(),
            cursors: HashMap::new(),
            faults,
            counts: HashMap::new(),
            seq: 0,
            requests: Vec::new(),
            violations: Vec::new(),
        }
    }

    fn take_fault(&mut self, path: &str, count: u64, has_page_token: bool) -> Option<Fault> {
        for i in 0..self.faults.len() {
            let r = &self.faults[i];
            if r.path.as_deref().is_some_and(|p| p != path) {
                continue;
            }
            if matches!(r.fault, Fault::PageTokenExpired { .. }) && !has_page_token {
                continue;
            }
            let n = if r.path.is_some() { count } else { self.seq };
            match r.when {
                When::Always => return Some(r.fault.clone()),
                When::Nth(k) if k == n => return Some(r.fault.clone()),
                When::Nth(_) => {}
                When::Next(left) => {
                    let fault = r.fault.clone();
                    if left <= 1 {
                        self.faults.remove(i);
                    } else {
                        self.faults[i].when = When::Next(left - 1);
                    }
                    return Some(fault);
                }
            }
        }
        None
    }

    /// Answers one request.
    pub fn handle(
        &mut self,
        method: &str,
        path: &str,
        raw_query: &str,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Reply {
        self.seq += 1;
        let count = {
            let c = self.counts.entry(path.to_string()).or_default();
            *c += 1;
            *c
        };
        let pairs = query::pairs(raw_query);
        let has_page_token = pairs.iter().any(|(k, _)| k == "pageToken");
        let fault = self.take_fault(path, count, has_page_token);
        let mut rec = RequestRecord {
            seq: self.seq,
            method: method.to_string(),
            path: path.to_string(),
            query: raw_query.to_string(),
            auth: AuthOutcome::NotChecked,
            status: 0,
            fault: fault.clone(),
        };
        let mut delay = None;
        let (mut drop_mid_body, mut end_early, mut expire) = (false, false, None);
        let early = match &fault {
            Some(Fault::TooManyRequests { retry_after_secs }) => {
                let mut r = error(429, "too_many_requests", "slow down");
                r.headers.push(("retry-after", retry_after_secs.to_string()));
                Some(r)
            }
            Some(Fault::ServerError) => Some(error(500, "internal_error", "injected server error")),
            Some(Fault::Unavailable { retry_after_secs }) => {
                let mut r = error(503, "unavailable", "injected: service unavailable");
                if let Some(s) = retry_after_secs {
                    r.headers.push(("retry-after", s.to_string()));
                }
                Some(r)
            }
            Some(Fault::NotImplemented) => Some(error(404, "not_found", "injected: no such endpoint")),
            Some(Fault::Unauthorized) => Some(unauthorized("injected: the token is no longer accepted")),
            Some(Fault::Garbage) => Some(Reply {
                status: 200,
                content_type: "text/html",
                body: b"<html><body>Gateway says hello</body></html>".to_vec(),
                ..Reply::default()
            }),
            Some(Fault::Slow { delay: d }) => {
                delay = Some(*d);
                None
            }
            Some(Fault::DropMidBody) => {
                drop_mid_body = true;
                None
            }
            Some(Fault::EndEarly) => {
                end_early = true;
                None
            }
            Some(Fault::PageTokenExpired { status }) => {
                expire = Some(*status);
                None
            }
            None => None,
        };
        let mut r = match early {
            Some(r) => r,
            None => self.route(method, path, &pairs, authorization, body, &mut rec, end_early, expire),
        };
        r.delay = delay;
        r.drop_mid_body = drop_mid_body && r.status == 200;
        rec.status = r.status;
        self.requests.push(rec);
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        method: &str,
        path: &str,
        pairs: &[(String, String)],
        authorization: Option<&str>,
        body: &[u8],
        rec: &mut RequestRecord,
        end_early: bool,
        expire: Option<u16>,
    ) -> Reply {
        if path == "/token" {
            if method != "POST" {
                return error(405, "method_not_allowed", "the token endpoint takes POST");
            }
            return self.token(authorization, body);
        }
        rec.auth = self.check(authorization);
        match rec.auth {
            AuthOutcome::Ok | AuthOutcome::NotChecked => {}
            AuthOutcome::Missing => return unauthorized("a bearer token is required"),
            AuthOutcome::Bad => return unauthorized("unknown token"),
            AuthOutcome::Expired => return unauthorized("the token has expired"),
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let kind = match segments[0] {
            "organisations" => Some(Kind::Organisation),
            "persons" => Some(Kind::Person),
            "duties" => Some(Kind::Duty),
            "groups" => Some(Kind::Group),
            "activities" => Some(Kind::Activity),
            "placements" => Some(Kind::Placement),
            _ => None,
        };
        match (method, kind, segments.as_slice()) {
            ("GET", Some(k), [_]) => self.list(Listing::Entities(k), pairs, rec, end_early, expire),
            ("POST", Some(k), [_, "lookup"]) => self.lookup(k, pairs, body, rec),
            ("GET", Some(k), [_, id]) => self.one(k, id, pairs, rec),
            ("GET", None, ["deletedEntities"]) => self.list(Listing::Deleted, pairs, rec, end_early, expire),
            ("GET", _, _) => error(404, "not_found", "this endpoint is not implemented by this test server"),
            _ => error(405, "method_not_allowed", "this server serves GET, POST to /token and to /<entities>/lookup"),
        }
    }

    /// `POST /<entities>/lookup` with `{"ids": [...]}` (and `"civicNos"` for persons): the
    /// entities found, as a plain array (no `data`, no paging); ids not found are left out.
    /// More than `max_lookup` values is refused with 503, as the specification's overload answer.
    fn lookup(&mut self, kind: Kind, pairs: &[(String, String)], body: &[u8], rec: &RequestRecord) -> Reply {
        if let Some((k, _)) = pairs.iter().find(|(k, _)| k != "expand" && k != "expandReferenceNames") {
            return self.violation(rec, &QueryError::Unknown(k.clone()));
        }
        let q = match query::parse(Listing::Entities(kind), pairs, self.cfg.dialect) {
            Ok(q) => q,
            Err(e) => return self.violation(rec, &e),
        };
        let strings = |v: &serde_json::Value, key: &str| -> Result<Vec<String>, String> {
            match v.get(key) {
                None => Ok(Vec::new()),
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string).ok_or_else(|| format!("{key} holds a non-string")))
                    .collect(),
                Some(_) => Err(format!("{key} is not an array")),
            }
        };
        let parsed = serde_json::from_slice::<serde_json::Value>(body).map_err(|e| e.to_string()).and_then(|v| {
            if kind != Kind::Person && v.get("civicNos").is_some() {
                return Err("civicNos is for /persons/lookup only".into());
            }
            Ok((strings(&v, "ids")?, strings(&v, "civicNos")?))
        });
        let (ids, civic_nos) = match parsed {
            Ok(x) => x,
            Err(why) => {
                return self.violation_of(rec, ViolationKind::InvalidValue, format!("lookup body: {why}"));
            }
        };
        if ids.len() + civic_nos.len() > self.cfg.max_lookup {
            return error(503, "overload", "too many values in one lookup; ask for fewer");
        }
        let mut rows: Vec<usize> = Vec::new();
        for id in &ids {
            let pos = match kind {
                Kind::Organisation => self.store.organisations.position(id),
                Kind::Person => self.store.persons.position(id),
                Kind::Duty => self.store.duties.position(id),
                Kind::Group => self.store.groups.position(id),
                Kind::Activity => self.store.activities.position(id),
                Kind::Placement => self.store.placements.position(id),
            };
            rows.extend(pos);
        }
        if !civic_nos.is_empty() {
            let p = &self.store.persons;
            rows.extend(
                (0..p.rows.len())
                    .filter(|&i| !p.deleted[i] && p.rows[i].civic_no.as_ref().is_some_and(|c| civic_nos.contains(c))),
            );
        }
        let mut seen = std::collections::HashSet::new();
        rows.retain(|i| seen.insert(*i));
        let rev = self.store.reverse_for(&q);
        let mut out = b"[".to_vec();
        for (n, &i) in rows.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            self.store.write(&mut out, kind, i, &q, rev.as_deref(), self.cfg.dialect);
        }
        out.push(b']');
        Reply { status: 200, content_type: "application/json", body: out, ..Reply::default() }
    }

    fn check(&self, authorization: Option<&str>) -> AuthOutcome {
        if !self.cfg.auth.required {
            return AuthOutcome::NotChecked;
        }
        let Some(h) = authorization else { return AuthOutcome::Missing };
        let Some(token) = h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")) else {
            return AuthOutcome::Bad;
        };
        if self.cfg.auth.static_token.as_deref() == Some(token) {
            return AuthOutcome::Ok;
        }
        match self.tokens.get(token) {
            Some(exp) if self.clock.now() < *exp => AuthOutcome::Ok,
            Some(_) => AuthOutcome::Expired,
            None => AuthOutcome::Bad,
        }
    }

    /// The OAuth2 client credentials grant (RFC 6749 §4.4): client authentication by HTTP Basic
    /// (each part form-encoded first, §2.3.1) or in the form body.
    fn token(&mut self, authorization: Option<&str>, body: &[u8]) -> Reply {
        let form = query::pairs(&String::from_utf8_lossy(body));
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match field("grant_type").as_deref() {
            Some("client_credentials") => {}
            Some(_) => return reply(400, serde_json::json!({ "error": "unsupported_grant_type" })),
            None => return reply(400, serde_json::json!({ "error": "invalid_request" })),
        }
        let basic = authorization.and_then(|h| h.strip_prefix("Basic ")).and_then(|b| {
            let raw = base64::engine::general_purpose::STANDARD.decode(b.trim()).ok()?;
            let raw = String::from_utf8(raw).ok()?;
            let (id, secret) = raw.split_once(':')?;
            let dec = |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
            Some((dec(id)?, dec(secret)?))
        });
        let (id, secret) = match basic {
            Some(c) => c,
            None => (field("client_id").unwrap_or_default(), field("client_secret").unwrap_or_default()),
        };
        if id != self.cfg.auth.client_id || secret != self.cfg.auth.client_secret {
            let mut r = reply(401, serde_json::json!({ "error": "invalid_client" }));
            r.headers.push(("www-authenticate", "Basic realm=\"ss12000\"".into()));
            return r;
        }
        let token = self.rng.token();
        let lifetime = self.cfg.auth.token_lifetime;
        let expires = self.clock.now() + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::MAX);
        self.tokens.insert(token.clone(), expires);
        reply(
            200,
            serde_json::json!({ "access_token": token, "token_type": "Bearer", "expires_in": lifetime.as_secs() }),
        )
    }

    fn violation(&mut self, rec: &RequestRecord, e: &QueryError) -> Reply {
        let kind = match e {
            QueryError::Unknown(_) => ViolationKind::UnknownParameter,
            QueryError::FilterWithPageToken(_) => ViolationKind::FilterWithPageToken,
            QueryError::Invalid { .. } => ViolationKind::InvalidValue,
            QueryError::Unsupported(_) => ViolationKind::Unsupported,
        };
        self.violation_of(rec, kind, e.to_string())
    }

    fn violation_of(&mut self, rec: &RequestRecord, kind: ViolationKind, message: String) -> Reply {
        self.violations.push(Violation {
            seq: rec.seq,
            path: rec.path.clone(),
            query: rec.query.clone(),
            kind,
            message: message.clone(),
        });
        error(400, "invalid_filter", &message)
    }

    fn list(
        &mut self,
        l: Listing,
        pairs: &[(String, String)],
        rec: &RequestRecord,
        end_early: bool,
        expire: Option<u16>,
    ) -> Reply {
        let now = self.clock.now();
        let limit = match query::limit(pairs) {
            Ok(l) => l.unwrap_or(self.cfg.default_limit).min(self.cfg.max_limit),
            Err(e) => return self.violation(rec, &e),
        };
        let (q, pos) = match query::page_token(pairs) {
            Err(e) => return self.violation(rec, &e),
            Ok(Some(token)) => {
                if let Some(status) = expire {
                    return error(
                        status,
                        "page_token_expired",
                        "injected: the page token has expired; start the listing again",
                    );
                }
                let Some(c) = self.cursors.get(&token) else {
                    return self.violation_of(rec, ViolationKind::UnknownPageToken, "unknown pageToken".into());
                };
                if c.listing != l {
                    return self.violation_of(
                        rec,
                        ViolationKind::UnknownPageToken,
                        "pageToken of another endpoint".into(),
                    );
                }
                let ttl = chrono::Duration::from_std(self.cfg.page_token_ttl).unwrap_or(chrono::Duration::MAX);
                if now > c.issued + ttl {
                    return error(
                        self.cfg.expired_page_token_status,
                        "page_token_expired",
                        "the page token has expired; start the listing again",
                    );
                }
                (c.query.clone(), c.pos)
            }
            Ok(None) => match query::parse(l, pairs, self.cfg.dialect) {
                Ok(q) => (q, 0),
                Err(e) => return self.violation(rec, &e),
            },
        };
        let dialect = self.cfg.dialect;
        let mut out = Vec::with_capacity(limit.min(10_000) * 900 + 64);
        let next = match l {
            Listing::Entities(kind) => {
                out.extend_from_slice(b"{\"data\":[");
                let rev = self.store.reverse_for(&q);
                let n = self.store.len(kind);
                let candidates = self.store.candidates(kind, &q);
                let rows: Box<dyn Iterator<Item = usize>> = match &candidates {
                    Some(c) => Box::new(c[c.partition_point(|&r| r < pos)..].iter().copied()),
                    None => Box::new(pos..n),
                };
                let (mut taken, mut next) = (0usize, None);
                for i in rows {
                    if self.store.matches(kind, i, &q, rev.as_deref(), dialect) {
                        if taken == limit {
                            next = Some(i);
                            break;
                        }
                        if taken > 0 {
                            out.push(b',');
                        }
                        self.store.write(&mut out, kind, i, &q, rev.as_deref(), dialect);
                        taken += 1;
                    }
                }
                out.push(b']');
                next
            }
            Listing::Deleted => {
                let matching = self.store.deletions_matching(&q);
                let mut data: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                for k in Kind::ALL {
                    if q.entities.is_empty() || q.entities.iter().any(|e| e == k.object_type()) {
                        data.insert(k.deleted_key(), Vec::new());
                    }
                }
                let (mut i, mut taken, mut next) = (pos, 0usize, None);
                while i < self.store.deletions.len() {
                    if matching(i) {
                        if taken == limit {
                            next = Some(i);
                            break;
                        }
                        let d = &self.store.deletions[i];
                        data.entry(d.kind.deleted_key()).or_default().push(&d.id);
                        taken += 1;
                    }
                    i += 1;
                }
                out.extend_from_slice(b"{\"data\":");
                let _ = serde_json::to_writer(&mut out, &data);
                next
            }
        };
        let next = if end_early { None } else { next };
        out.extend_from_slice(b",\"pageToken\":");
        match next {
            Some(pos) => {
                let token = self.rng.token();
                out.extend_from_slice(format!("\"{token}\"}}").as_bytes());
                self.cursors.insert(token, Cursor { listing: l, query: q, pos, issued: now });
            }
            None => out.extend_from_slice(b"null}"),
        }
        Reply { status: 200, content_type: "application/json", body: out, ..Reply::default() }
    }

    fn one(&mut self, kind: Kind, id: &str, pairs: &[(String, String)], rec: &RequestRecord) -> Reply {
        let q = match query::parse(Listing::Entities(kind), pairs, self.cfg.dialect) {
            Ok(q) => q,
            Err(e) => return self.violation(rec, &e),
        };
        let pos = match kind {
            Kind::Organisation => self.store.organisations.position(id),
            Kind::Person => self.store.persons.position(id),
            Kind::Duty => self.store.duties.position(id),
            Kind::Group => self.store.groups.position(id),
            Kind::Activity => self.store.activities.position(id),
            Kind::Placement => self.store.placements.position(id),
        };
        let Some(i) = pos else { return error(404, "not_found", "no such id") };
        let rev = self.store.reverse_for(&q);
        let mut out = Vec::new();
        self.store.write(&mut out, kind, i, &q, rev.as_deref(), self.cfg.dialect);
        Reply { status: 200, content_type: "application/json", body: out, ..Reply::default() }
    }
}

fn unauthorized(message: &str) -> Reply {
    let mut r = error(401, "unauthorized", message);
    r.headers.push(("www-authenticate", "Bearer error=\"invalid_token\"".into()));
    r
}
