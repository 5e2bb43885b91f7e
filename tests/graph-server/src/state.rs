//! What the server holds and how it answers. One `State::handle` decides every request (log,
//! faults, the token endpoint, authentication, the write quota, then Graph), and `$batch`
//! feeds each of its requests back through the same dispatch. Every change stamps the object
//! with the next value of a change counter; a delta link is that counter, so a delta read
//! returns exactly what changed after it.

use crate::{Config, Fault, Logged};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// An answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub(crate) fn raw(status: u16, body: String) -> Reply {
        Reply { status, body, headers: Vec::new() }
    }

    fn json(status: u16, v: &Value) -> Reply {
        Reply::raw(status, v.to_string())
    }

    fn none() -> Reply {
        Reply::raw(204, String::new())
    }
}

/// Graph's error body.
pub(crate) fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"code": code, "message": message,
                "innerError": {"date": "2026-12-04T00:00:00", "request-id": "00000000-0000-0000-0000-000000000000"}}}),
    )
}

#[derive(Debug, Clone)]
pub(crate) struct Obj {
    pub resource: Value,
    /// Soft-deleted (users: restorable, their UPN still held).
    pub deleted: bool,
    /// The change counter when it last changed.
    pub changed: u64,
    /// A group's members (user ids).
    pub members: BTreeSet<String>,
    /// A group's member changes: (change counter, user id, added), for `members@delta`.
    pub member_log: Vec<(u64, String, bool)>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub config: Config,
    pub skew: Duration,
    pub users: BTreeMap<String, Obj>,
    pub groups: BTreeMap<String, Obj>,
    pub tokens: BTreeMap<String, Instant>,
    /// The change counter.
    pub counter: u64,
    /// Delta links older than this have expired (410).
    pub delta_floor: u64,
    /// Times of the writes of the quota window.
    pub writes: VecDeque<Instant>,
    /// Every write carried out (in `$batch` too), and how many were refused 429.
    pub accepted: Vec<Instant>,
    pub refused: usize,
    pub log: Vec<Logged>,
    pub faults: Vec<(String, Fault)>,
    /// Each user's password profile as given (never returned by Graph): (password, change at
    /// the next sign-in).
    pub passwords: BTreeMap<String, (String, bool)>,
    next_id: u64,
}

const USER_FIELDS: [&str; 14] = [
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mailNickname",
    "accountEnabled",
    "employeeId",
    "usageLocation",
    "showInAddressList",
    "onPremisesSyncEnabled",
    "department",
    "jobTitle",
    "onPremisesExtensionAttributes",
];

impl State {
    pub(crate) fn new(config: Config) -> State {
        State {
            config,
            skew: Duration::ZERO,
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            tokens: BTreeMap::new(),
            counter: 1,
            delta_floor: 0,
            writes: VecDeque::new(),
            accepted: Vec::new(),
            refused: 0,
            log: Vec::new(),
            faults: Vec::new(),
            passwords: BTreeMap::new(),
            next_id: 0,
        }
    }

    pub(crate) fn now(&self) -> Instant {
        Instant::now() + self.skew
    }

    pub(crate) fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{:08x}-0000-4000-8000-{:012x}", self.next_id * 2654435761 % 0xffff_ffff, self.next_id)
    }

    pub(crate) fn tick(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// A user by id or UPN (any case); soft-deleted ones only when `deleted`.
    fn user(&self, key: &str, deleted: bool) -> Option<String> {
        if self.users.get(key).is_some_and(|u| u.deleted == deleted) {
            return Some(key.to_string());
        }
        let key = key.to_lowercase();
        self.users
            .iter()
            .find(|(_, u)| {
                u.deleted == deleted
                    && u.resource["userPrincipalName"].as_str().is_some_and(|x| x.to_lowercase() == key)
            })
            .map(|(id, _)| id.clone())
    }

    /// Whether a UPN is held, by a user soft-deleted too.
    fn upn_taken(&self, upn: &str, but: Option<&str>) -> bool {
        let upn = upn.to_lowercase();
        self.users.iter().any(|(id, u)| {
            Some(id.as_str()) != but
                && u.resource["userPrincipalName"].as_str().is_some_and(|x| x.to_lowercase() == upn)
        })
    }

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
                Fault::Status(status, code) => error(status, &code, "injected"),
                Fault::RetryAfter(secs) => {
                    let mut r = error(429, "TooManyRequests", "injected: too many requests");
                    r.headers.push(("retry-after", secs.to_string()));
                    r
                }
            };
        }
        if let Some(rest) = path.strip_prefix('/')
            && let Some((tenant, "oauth2/v2.0/token")) = rest.split_once('/')
        {
            return if method == "POST" {
                crate::token::token(self, tenant, body, now)
            } else {
                error(405, "x", "POST")
            };
        }
        let Some(rest) = path.strip_prefix("/v1.0/") else {
            return error(404, "UnknownError", "Not Found");
        };
        let token = auth.and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
        if self.tokens.get(token).is_none_or(|until| *until <= now) {
            return error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.");
        }
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(_) => return error(400, "BadRequest", "Unable to read JSON request payload."),
            }
        };
        if rest == "$batch" && method == "POST" {
            return self.batch(&body, now);
        }
        self.dispatch(method, rest, query, &body, now)
    }

    /// The write quota: a write past it is 429 with `Retry-After` (whole seconds until the
    /// window has room).
    fn throttled(&mut self, now: Instant) -> Option<Reply> {
        let limit = self.config.writes_per_window?;
        let window = self.config.write_window;
        while self.writes.front().is_some_and(|t| now.duration_since(*t) >= window) {
            self.writes.pop_front();
        }
        if self.writes.len() >= limit {
            let oldest = self.writes.front().copied().unwrap_or(now);
            let wait = window.saturating_sub(now.duration_since(oldest));
            let mut r = error(429, "TooManyRequests", "Too many requests. Please retry later.");
            r.headers.push(("retry-after", wait.as_secs_f64().ceil().max(1.0).to_string()));
            self.refused += 1;
            return Some(r);
        }
        self.writes.push_back(now);
        self.accepted.push(now);
        None
    }

    fn dispatch(&mut self, method: &str, rest: &str, query: &str, body: &Value, now: Instant) -> Reply {
        if method != "GET"
            && let Some(r) = self.throttled(now)
        {
            return r;
        }
        let params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let parts: Vec<&str> = rest.split('/').collect();
        match (method, parts.as_slice()) {
            ("GET", ["users"]) => self.list_users(&params),
            ("POST", ["users"]) => self.create_user(body),
            ("GET", ["users", "delta"]) => crate::delta::users(self, &params),
            ("GET", ["users", key]) => match self.user(key, false) {
                Some(id) => Reply::json(200, &self.users[&id].resource),
                None => not_found(key),
            },
            ("PATCH", ["users", key]) => self.patch_user(key, body),
            ("DELETE", ["users", key]) => match self.user(key, false) {
                Some(id) => {
                    let c = self.tick();
                    if let Some(u) = self.users.get_mut(&id) {
                        u.deleted = true;
                        u.changed = c;
                    }
                    for g in self.groups.values_mut() {
                        if g.members.remove(&id) {
                            g.member_log.push((c, id.clone(), false));
                            g.changed = c;
                        }
                    }
                    Reply::none()
                }
                None => not_found(key),
            },
            ("GET", ["directory", "deletedItems", "microsoft.graph.user"]) => {
                let list: Vec<Value> = self.users.values().filter(|u| u.deleted).map(|u| u.resource.clone()).collect();
                Reply::json(200, &json!({"value": list}))
            }
            ("POST", ["directory", "deletedItems", id, "restore"]) => match self.user(id, true) {
                Some(id) => {
                    let c = self.tick();
                    let u = self.users.get_mut(&id).map(|u| {
                        u.deleted = false;
                        u.changed = c;
                        u.resource.clone()
                    });
                    Reply::json(200, &u.unwrap_or_default())
                }
                None => not_found(id),
            },
            ("DELETE", ["directory", "deletedItems", id]) => match self.user(id, true) {
                Some(id) => {
                    self.users.remove(&id);
                    Reply::none()
                }
                None => not_found(id),
            },
            ("GET", ["groups"]) => {
                let list: Vec<Value> =
                    self.groups.values().filter(|g| !g.deleted).map(|g| g.resource.clone()).collect();
                Reply::json(200, &json!({"value": list}))
            }
            ("POST", ["groups"]) => self.create_group(body),
            ("GET", ["groups", "delta"]) => crate::delta::groups(self, &params),
            ("GET", ["groups", id]) => match self.groups.get(*id).filter(|g| !g.deleted) {
                Some(g) => Reply::json(200, &g.resource),
                None => not_found(id),
            },
            ("PATCH", ["groups", id]) => self.patch_group(id, body),
            ("DELETE", ["groups", id]) => match self.groups.get_mut(*id).filter(|g| !g.deleted) {
                Some(g) => {
                    g.deleted = true;
                    g.changed = self.counter + 1;
                    self.counter += 1;
                    Reply::none()
                }
                None => not_found(id),
            },
            ("GET", ["groups", id, "members"]) => match self.groups.get(*id).filter(|g| !g.deleted) {
                Some(g) => {
                    let list: Vec<Value> = g
                        .members
                        .iter()
                        .filter_map(|m| self.users.get(m))
                        .map(|u| {
                            json!({"@odata.type": "#microsoft.graph.user", "id": u.resource["id"],
                                        "userPrincipalName": u.resource["userPrincipalName"]})
                        })
                        .collect();
                    Reply::json(200, &json!({"value": list}))
                }
                None => not_found(id),
            },
            ("POST", ["groups", id, "members", "$ref"]) => {
                let Some(member) = body["@odata.id"].as_str().and_then(|r| r.rsplit('/').next()).map(str::to_string)
                else {
                    return error(400, "Request_BadRequest", "Invalid object identifier.");
                };
                self.add_members(id, &[member])
            }
            ("DELETE", ["groups", id, "members", member, "$ref"]) => {
                let c = self.tick();
                let Some(g) = self.groups.get_mut(*id).filter(|g| !g.deleted) else { return not_found(id) };
                if !g.members.remove(*member) {
                    return not_found(member);
                }
                g.member_log.push((c, member.to_string(), false));
                g.changed = c;
                Reply::none()
            }
            _ => error(
                400,
                "BadRequest",
                &format!("Resource not found for the segment '{}'.", parts.last().unwrap_or(&"")),
            ),
        }
    }

    fn list_users(&self, params: &BTreeMap<String, String>) -> Reply {
        let top = match params.get("$top").map(|t| t.parse::<usize>()) {
            None => 100,
            Some(Ok(n)) if (1..=999).contains(&n) => n,
            Some(_) => return error(400, "Request_BadRequest", "Invalid page size specified: '$top'."),
        };
        let filter = params.get("$filter").map(String::as_str);
        let wanted = |u: &Value| match filter {
            None => true,
            Some(f) => f.split_once(" eq ").is_some_and(|(field, value)| {
                let value = value.trim().trim_matches('\'').to_lowercase();
                // A property of a complex one by its path (`onPremisesExtensionAttributes/extensionAttribute15`).
                u.pointer(&format!("/{}", field.trim()))
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.to_lowercase() == value)
            }),
        };
        let skip: usize = params.get("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
        let all: Vec<&Obj> = self.users.values().filter(|u| !u.deleted && wanted(&u.resource)).collect();
        let page: Vec<Value> = all.iter().skip(skip).take(top).map(|u| u.resource.clone()).collect();
        let mut out = json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "value": page});
        if skip + top < all.len() {
            let mut next = format!("{}/v1.0/users?$top={top}&$skiptoken={}", self.config.base_url, skip + top);
            if let Some(f) = filter {
                next.push_str(&format!(
                    "&$filter={}",
                    form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>()
                ));
            }
            out["@odata.nextLink"] = next.into();
        }
        Reply::json(200, &out)
    }

    fn create_user(&mut self, body: &Value) -> Reply {
        for field in ["accountEnabled", "displayName", "mailNickname", "userPrincipalName"] {
            if body.get(field).is_none_or(Value::is_null) {
                return error(400, "Request_BadRequest", &format!("Property '{field}' is required."));
            }
        }
        if body["passwordProfile"]["password"].as_str().is_none_or(|p| p.len() < 8) {
            return error(
                400,
                "Request_BadRequest",
                "The specified password does not comply with password complexity requirements.",
            );
        }
        let upn = body["userPrincipalName"].as_str().unwrap_or_default().to_lowercase();
        if let Some(r) = self.upn_invalid(&upn) {
            return r;
        }
        if self.upn_taken(&upn, None) {
            return error(
                400,
                "Request_BadRequest",
                "Another object with the same value for property userPrincipalName already exists.",
            );
        }
        let id = self.new_id();
        let mut r = json!({"id": id});
        for f in USER_FIELDS.iter().skip(1) {
            if let Some(v) = body.get(*f) {
                r[*f] = v.clone();
            }
        }
        r["userPrincipalName"] = upn.into();
        r["onPremisesSyncEnabled"] = Value::Null;
        let profile = &body["passwordProfile"];
        self.passwords.insert(
            id.clone(),
            (
                profile["password"].as_str().unwrap_or_default().to_string(),
                profile["forceChangePasswordNextSignIn"].as_bool().unwrap_or(true),
            ),
        );
        let c = self.tick();
        self.users.insert(
            id,
            Obj { resource: r.clone(), deleted: false, changed: c, members: BTreeSet::new(), member_log: Vec::new() },
        );
        Reply::json(201, &r)
    }

    fn upn_invalid(&self, upn: &str) -> Option<Reply> {
        let Some((alias, domain)) = upn.rsplit_once('@') else {
            return Some(error(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'userPrincipalName' of resource 'User'.",
            ));
        };
        if !domain.eq_ignore_ascii_case(&self.config.domain) {
            return Some(error(
                400,
                "Request_BadRequest",
                "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.",
            ));
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || "'.-_!#^~".contains(c);
        if alias.is_empty() || !alias.chars().all(ok) || alias.starts_with('.') || alias.ends_with('.') {
            return Some(error(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'userPrincipalName' of resource 'User'.",
            ));
        }
        None
    }

    fn patch_user(&mut self, key: &str, body: &Value) -> Reply {
        let Some(id) = self.user(key, false) else { return not_found(key) };
        if self.users[&id].resource["onPremisesSyncEnabled"] == true {
            return error(
                400,
                "Request_BadRequest",
                "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.",
            );
        }
        if let Some(upn) = body["userPrincipalName"].as_str().map(str::to_lowercase) {
            if let Some(r) = self.upn_invalid(&upn) {
                return r;
            }
            if self.upn_taken(&upn, Some(&id)) {
                return error(
                    400,
                    "Request_BadRequest",
                    "Another object with the same value for property userPrincipalName already exists.",
                );
            }
        }
        let c = self.tick();
        let Some(u) = self.users.get_mut(&id) else { return not_found(key) };
        for (k, v) in body.as_object().into_iter().flatten() {
            if k == "onPremisesExtensionAttributes" && v.is_object() {
                // Each extension attribute on its own: those not named keep their values.
                if !u.resource[k].is_object() {
                    u.resource[k] = json!({});
                }
                for (a, x) in v.as_object().into_iter().flatten() {
                    u.resource[k][a] = x.clone();
                }
            } else if k != "id" && k != "passwordProfile" {
                u.resource[k] = if k == "userPrincipalName" {
                    v.as_str().unwrap_or_default().to_lowercase().into()
                } else {
                    v.clone()
                };
            }
        }
        u.changed = c;
        Reply::none()
    }

    fn binds(body: &Value) -> Result<Vec<String>, Reply> {
        let binds: Vec<String> = body["members@odata.bind"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b.as_str()?.rsplit('/').next().map(str::to_string))
            .collect();
        if binds.len() > 20 {
            return Err(error(
                400,
                "Request_BadRequest",
                "The request exceeds the maximum of 20 members that can be added in one request.",
            ));
        }
        Ok(binds)
    }

    fn create_group(&mut self, body: &Value) -> Reply {
        for field in ["displayName", "mailNickname", "securityEnabled", "mailEnabled"] {
            if body.get(field).is_none_or(Value::is_null) {
                return error(400, "Request_BadRequest", &format!("Property '{field}' is required."));
            }
        }
        let binds = match State::binds(body) {
            Ok(b) => b,
            Err(r) => return r,
        };
        if let Some(b) = binds.iter().find(|b| self.user(b, false).is_none()) {
            return not_found(b);
        }
        let id = self.new_id();
        let mut r = body.clone();
        if let Some(o) = r.as_object_mut() {
            o.remove("members@odata.bind");
        }
        r["id"] = id.clone().into();
        let c = self.tick();
        let member_log = binds.iter().map(|m| (c, m.clone(), true)).collect();
        self.groups.insert(
            id,
            Obj { resource: r.clone(), deleted: false, changed: c, members: binds.into_iter().collect(), member_log },
        );
        Reply::json(201, &r)
    }

    fn patch_group(&mut self, id: &str, body: &Value) -> Reply {
        let binds = match State::binds(body) {
            Ok(b) => b,
            Err(r) => return r,
        };
        if self.groups.get(id).is_none_or(|g| g.deleted) {
            return not_found(id);
        }
        if !binds.is_empty() {
            let r = self.add_members(id, &binds);
            if r.status >= 300 {
                return r;
            }
        }
        let c = self.tick();
        let Some(g) = self.groups.get_mut(id) else { return not_found(id) };
        for (k, v) in body.as_object().into_iter().flatten() {
            if k != "id" && k != "members@odata.bind" {
                g.resource[k] = v.clone();
            }
        }
        g.changed = c;
        Reply::none()
    }

    fn add_members(&mut self, id: &str, members: &[String]) -> Reply {
        if let Some(m) = members.iter().find(|m| self.user(m, false).is_none()) {
            return not_found(m);
        }
        let c = self.tick();
        let Some(g) = self.groups.get_mut(id).filter(|g| !g.deleted) else { return not_found(id) };
        if members.iter().any(|m| g.members.contains(m)) {
            return error(
                400,
                "Request_BadRequest",
                "One or more added object references already exist for the following modified properties: 'members'.",
            );
        }
        g.members.extend(members.iter().cloned());
        g.member_log.extend(members.iter().map(|m| (c, m.clone(), true)));
        g.changed = c;
        Reply::none()
    }

    /// `$batch`: at most 20 requests, each answered on its own (its status, headers and
    /// body), a throttled one with its own `Retry-After`.
    fn batch(&mut self, body: &Value, now: Instant) -> Reply {
        let Some(requests) = body["requests"].as_array() else {
            return error(400, "BadRequest", "Invalid batch payload format.");
        };
        if requests.len() > 20 {
            return error(400, "BadRequest", "Number of requests in a batch should not exceed 20.");
        }
        let mut responses = Vec::new();
        for r in requests {
            let url = r["url"].as_str().unwrap_or_default().trim_start_matches('/');
            let (path, query) = url.split_once('?').unwrap_or((url, ""));
            let reply = self.dispatch(r["method"].as_str().unwrap_or("GET"), path, query, &r["body"], now);
            let headers: serde_json::Map<String, Value> =
                reply.headers.iter().map(|(k, v)| (k.to_string(), Value::String(v.clone()))).collect();
            let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
            responses.push(json!({"id": r["id"], "status": reply.status, "headers": headers, "body": body}));
        }
        // Graph answers in any order: the last first, so that a client never counts on it.
        responses.reverse();
        Reply::json(200, &json!({"responses": responses}))
    }
}

fn not_found(key: &str) -> Reply {
    error(
        404,
        "Request_ResourceNotFound",
        &format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."),
    )
}
