//! Target connector for Google Workspace (for Education): accounts and groups through the Admin
//! SDK Directory API (v1), as a service account with domain-wide delegation acting as an
//! administrator.
//!
//! Users are `users` resources: the key and the anchor are Google's immutable user id (a rename
//! keeps it); the username is the local part of `primaryEmail` (`username@domain`); the owner
//! marker is an `externalIds` entry of the custom type `enid` holding the enid id (attribute
//! `externalId` to the engine); where an account lives is its `orgUnitPath`, rendered from the
//! `org_unit` template below `base_org_unit` (missing org units are made); `suspended` disables.
//! A create sends the first password the engine made (`changePasswordAtNextLogin` when it is
//! handed out). Reads list `users` with `orgUnitPath='<base>'` a page at a time; a read that
//! fails on any page is an error, never a short list. A username held anywhere in the domain (by
//! a user in another org unit or by a group's address) is looked up before it is given.
//!
//! Google makes a new user over a few seconds: until then it answers changes with 412 "User
//! creation is not complete.", which is waited out here, not reported. Groups are `groups`
//! with an address made from the group's name; members are users by id, added one by one (a
//! member already in is success) and removed one by one.
//!
//! Everything goes through the shared HTTP client (`connector-http`): the service account's JWT
//! grant, TLS, the rate limit, Google's 403 rate limits waited out with jittered backoff.

mod config;

pub use config::{GoogleConfig, GoogleGroupsConfig, InitialPassword};

use config::{ou_problem, trim_ou, under, under_ou};
use connector_api::{
    AccountSpec, Attrs, Capabilities, Field, Lookup, ObservedAccount, ObservedGroup, OpOutcome, RejectKind, Target,
    TargetError, TargetOp, Value,
};
use connector_http::{
    Assertion, Auth, Credentials, HttpClient, HttpSettings, Method, OAuthSettings, Request, path_segment,
};
use serde_json::{Map, Value as Json, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The attribute that carries the enid id, to the engine: the `externalIds` entry of custom
/// type [`CUSTOM_TYPE`].
pub(crate) const OWNER: &str = "externalId";
/// The custom type of enid's `externalIds` entry.
const CUSTOM_TYPE: &str = "enid";
/// Complex attributes of a user that hold one object (every other holds a list).
const SINGULAR: [&str; 1] = ["name"];
/// A user's boolean fields: a template's `true` or `false` goes as the boolean.
const BOOLEANS: [&str; 3] = ["includeInGlobalAddressList", "ipWhitelisted", "archived"];
/// More values than this are looked up by reading the whole listing once instead of one query
/// per value.
const LOOKUP_ONE_BY_ONE: usize = 40;

/// A Google Workspace domain as an enid target.
#[derive(Debug)]
pub struct GoogleTarget {
    config: GoogleConfig,
    http: HttpClient,
    caps: Capabilities,
    /// The org unit whose users enid reads (with every org unit below it).
    base: String,
    /// Org units known to exist (lowercase paths); made one at a time.
    orgunits: tokio::sync::Mutex<HashSet<String>>,
    /// Each user's primary email by id, as last read or made (a member is added by address).
    emails: std::sync::Mutex<HashMap<String, String>>,
}

impl GoogleTarget {
    /// Builds the connector around the service account's key; contacts nothing.
    pub fn new(config: GoogleConfig, key: connector_http::ServiceAccountKey) -> Result<GoogleTarget, TargetError> {
        let auth = Auth::OAuth(OAuthSettings {
            token_url: key.token_uri.clone(),
            scope: Some(config.scopes()),
            credentials: Credentials::Assertion(Assertion::Grant { key, subject: Some(config.admin_email.clone()) }),
        });
        let settings = HttpSettings {
            url: format!("{}/admin/directory/v1", config.api_url.trim_end_matches('/')),
            tls_ca_file: config.tls_ca_file.clone(),
            tls_insecure_skip_verify: config.tls_insecure_skip_verify,
            tls_cert_file: None,
            tls_key_file: None,
            max_requests_per_second: Some(config.max_requests_per_second),
            max_in_flight: config.max_in_flight,
            timeout: Duration::from_secs(config.timeout_secs),
            max_attempts: config.max_attempts,
            max_wait: Duration::from_secs(config.max_wait_secs),
            content_type: "application/json",
        };
        let http = HttpClient::new(settings, auth)?;
        let caps = config.capabilities();
        let base = config.base();
        Ok(GoogleTarget {
            config,
            http,
            caps,
            base,
            orgunits: tokio::sync::Mutex::new(HashSet::new()),
            emails: std::sync::Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &GoogleConfig {
        &self.config
    }

    fn email_of(&self, username: &str) -> String {
        format!("{username}@{}", self.config.domain)
    }

    fn remember_email(&self, id: &str, email: &str) {
        if let Ok(mut m) = self.emails.lock() {
            m.insert(id.to_string(), email.to_string());
        }
    }

    /// A request, failing the run's way; waits out Google still making a user it was just
    /// asked to make (412 "User creation is not complete.") within the request budget.
    async fn send(&self, req: &Request) -> Result<Json, connector_http::HttpError> {
        let mut wait = Duration::from_millis(500);
        let started = std::time::Instant::now();
        loop {
            match self.http.send(req).await {
                Ok(r) => return Ok(r.body),
                Err(e)
                    if e.status() == Some(412)
                        && e.to_string().contains("not complete")
                        && started.elapsed() + wait < Duration::from_secs(self.config.max_wait_secs)
                        && !connector_api::fence::outlasts(wait) =>
                {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(8));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn call(&self, req: &Request) -> Result<Json, TargetError> {
        self.send(req).await.map_err(|e| e.into_target())
    }

    /// Every page of a listing: `field` holds each page's items. An error on any page fails the
    /// read; a page token that comes back, or an item twice, too.
    async fn pages(&self, req: Request, field: &str) -> Result<Vec<Map<String, Json>>, TargetError> {
        let mut out = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut tokens: HashSet<String> = HashSet::new();
        let mut token: Option<String> = None;
        loop {
            let mut r = req.clone();
            if let Some(t) = &token {
                r = r.query("pageToken", t.clone());
            }
            let body = self.call(&r).await?;
            let broken = |why: String| {
                TargetError::unavailable(format!("{}: {why}; nothing is planned on a partial list", req.what))
            };
            if !body.is_object() {
                return Err(broken("the answer is not a list".into()));
            }
            for item in body.get(field).and_then(Json::as_array).into_iter().flatten() {
                let Json::Object(o) = item else { return Err(broken("an item that is not an object".into())) };
                let id = o
                    .get("id")
                    .or_else(|| o.get("orgUnitPath"))
                    .and_then(Json::as_str)
                    .ok_or_else(|| broken("an item without an id".into()))?;
                if !seen.insert(id.to_string()) {
                    return Err(broken(format!("{id} came twice")));
                }
                out.push(o.clone());
            }
            match body.get("nextPageToken").and_then(Json::as_str) {
                Some(t) if !t.is_empty() => {
                    if !tokens.insert(t.to_string()) {
                        return Err(broken("the same page came twice".into()));
                    }
                    token = Some(t.to_string());
                }
                _ => return Ok(out),
            }
        }
    }

    /// The users whose every query word matches: in the base org unit (and below), or in the
    /// whole domain.
    async fn list_users(&self, words: &[String], whole_domain: bool) -> Result<Vec<Map<String, Json>>, TargetError> {
        let mut query: Vec<String> = Vec::new();
        if !whole_domain {
            query.push(format!("orgUnitPath={}", quoted(&self.base)));
        }
        query.extend(words.iter().cloned());
        let what =
            if whole_domain { "list users in the domain".to_string() } else { format!("list users in {}", self.base) };
        let mut req = Request::new(Method::GET, "users", what)
            .query("customer", self.config.customer.clone())
            .query("maxResults", self.config.page_size.to_string());
        if !query.is_empty() {
            req = req.query("query", query.join(" "));
        }
        self.pages(req, "users").await
    }

    fn account(&self, u: &Map<String, Json>, attrs: &[connector_api::Name]) -> ObservedAccount {
        let id = u.get("id").and_then(Json::as_str).unwrap_or_default().to_string();
        let email = u.get("primaryEmail").and_then(Json::as_str).unwrap_or_default();
        self.remember_email(&id, email);
        let (username, outdated) = match email.rsplit_once('@') {
            Some((local, d)) if d.eq_ignore_ascii_case(&self.config.domain) => (local.to_string(), false),
            // An address at another of the customer's domains: a rename writes it at this one.
            _ => (email.to_string(), true),
        };
        let mut mapped = Attrs::new();
        for a in attrs {
            if let Some(v) = read(u, a) {
                mapped.insert(a.clone(), v);
            }
        }
        let mut account = ObservedAccount::new(&id, Some(&id), Some(&username), mapped.into());
        account.disabled = u.get("suspended").and_then(Json::as_bool) == Some(true);
        account.username_outdated = outdated;
        account.set_placement(u.get("orgUnitPath").and_then(Json::as_str).map(str::to_string));
        account
    }

    /// The org unit's request path (`customer/<c>/orgunits/Elever/7A`).
    fn orgunit_path(&self, ou: &str) -> String {
        let segments: Vec<String> = ou.trim_start_matches('/').split('/').map(path_segment).collect();
        format!("customer/{}/orgunits/{}", path_segment(&self.config.customer), segments.join("/"))
    }

    /// Whether an org unit exists.
    async fn orgunit_exists(&self, ou: &str) -> Result<bool, TargetError> {
        if ou == "/" {
            return Ok(true);
        }
        let req = Request::new(Method::GET, self.orgunit_path(ou), format!("read org unit {ou}"));
        match self.send(&req).await {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e.into_target()),
        }
    }

    /// Makes the org unit and every missing one above it, below the base (which must exist).
    async fn ensure_orgunit(&self, ou: &str) -> Result<(), TargetError> {
        if let Some(why) = ou_problem(ou) {
            return Err(TargetError::rejected(RejectKind::Schema, format!("org unit {ou:?} {why}")));
        }
        let mut known = self.orgunits.lock().await;
        if known.contains(&ou.to_lowercase()) {
            return Ok(());
        }
        let mut path = String::from("/");
        for name in ou.trim_start_matches('/').split('/') {
            let parent = path.clone();
            path = under(&parent, name);
            if known.contains(&path.to_lowercase()) {
                continue;
            }
            if self.orgunit_exists(&path).await? {
                known.insert(path.to_lowercase());
                continue;
            }
            if !under_ou(&path, &self.base) || path.eq_ignore_ascii_case(&self.base) {
                return Err(TargetError::config(format!(
                    "org unit {path} does not exist; enid makes org units only below base_org_unit {}",
                    self.base
                )));
            }
            let body = json!({"name": name, "parentOrgUnitPath": parent,
                              "description": "Made by enid for the accounts it manages"});
            let req = Request::new(
                Method::POST,
                format!("customer/{}/orgunits", path_segment(&self.config.customer)),
                format!("create org unit {path}"),
            )
            .json(body);
            match self.send(&req).await {
                Ok(_) => {}
                // Made meanwhile by someone else: there now, which is what was wanted.
                Err(e) if e.status() == Some(400) && self.orgunit_exists(&path).await? => {}
                Err(e) => return Err(e.into_target()),
            }
            tracing::info!(org_unit = %path, "created the org unit");
            known.insert(path.to_lowercase());
        }
        Ok(())
    }

    /// A new user's JSON.
    fn user_body(&self, account: &AccountSpec) -> Result<Json, TargetError> {
        let Some(password) = &account.initial_password else {
            return Err(TargetError::rejected(
                RejectKind::Other,
                format!(
                    "create user {}: no first password was made for it (Google takes no user without one)",
                    account.id
                ),
            ));
        };
        let mut body = Map::new();
        write(&mut body, &account.attrs.as_attrs());
        if !body.get("name").is_some_and(|n| n.get("givenName").is_some() && n.get("familyName").is_some()) {
            // Google takes no user without both names.
            body.insert("name".into(), json!({"givenName": account.given_name, "familyName": account.family_name}));
        }
        body.insert("primaryEmail".into(), Json::String(self.email_of(&account.username)));
        body.insert("password".into(), Json::String(password.expose().to_string()));
        let handed_out = self.caps.initial_password.is_some_and(|p| p.handed_out);
        body.insert("changePasswordAtNextLogin".into(), Json::Bool(handed_out && self.config.force_password_change));
        body.insert("suspended".into(), Json::Bool(!account.enabled));
        if let Some(p) = &account.placement {
            body.insert("orgUnitPath".into(), Json::String(p.to_string()));
        }
        body.insert("externalIds".into(), json!([{"type": "custom", "customType": CUSTOM_TYPE, "value": account.id}]));
        Ok(Json::Object(body))
    }

    async fn create_user(&self, account: &AccountSpec) -> Result<OpOutcome, TargetError> {
        if let Some(p) = &account.placement {
            self.ensure_orgunit(p).await?;
        }
        let body = self.user_body(account)?;
        let req = Request::new(Method::POST, "users", format!("create user {}", account.id)).json(body);
        let answer = self.call(&req).await?;
        let id = answer
            .get("id")
            .and_then(Json::as_str)
            .ok_or_else(|| TargetError::unavailable(format!("create user {}: the answer has no id", account.id)))?;
        self.remember_email(id, &self.email_of(&account.username));
        Ok(OpOutcome::Created { key: id.to_string(), anchor: Some(id.to_string()) })
    }

    async fn patch_user(&self, key: &str, body: Json, what: String) -> Result<(), TargetError> {
        let req = Request::new(Method::PATCH, format!("users/{}", path_segment(key)), what).json(body);
        let answer = self.call(&req).await?;
        if let Some(e) = answer.get("primaryEmail").and_then(Json::as_str) {
            self.remember_email(key, e);
        }
        Ok(())
    }

    /// The changes of an update as one PATCH body. The owner marker is written into the
    /// user's `externalIds`, keeping the entries others made.
    async fn update_body(&self, key: &str, changes: &[connector_api::AttrChange]) -> Result<Json, TargetError> {
        let mut body = Map::new();
        for c in changes {
            if c.attr.eq_ignore_ascii_case(OWNER) {
                let req = Request::new(Method::GET, format!("users/{}", path_segment(key)), format!("read user {key}"));
                let user = self.call(&req).await?;
                let mut ids: Vec<Json> = user
                    .get("externalIds")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|x| !is_enid(x))
                    .cloned()
                    .collect();
                if let Some(v) = c.values.first() {
                    ids.push(json!({"type": "custom", "customType": CUSTOM_TYPE, "value": v}));
                }
                body.insert("externalIds".into(), Json::Array(ids));
                continue;
            }
            let (top, rest) = c.attr.split_once('.').unwrap_or((c.attr.as_str(), ""));
            let value = if c.values.is_empty() { Json::Null } else { to_json(&c.attr, &c.values) };
            if rest.is_empty() {
                body.insert(top.to_string(), value);
            } else {
                let o = body.entry(top.to_string()).or_insert_with(|| Json::Object(Map::new()));
                if let Some(o) = o.as_object_mut() {
                    o.insert(rest.to_string(), value);
                }
            }
        }
        Ok(Json::Object(body))
    }

    /// A group's address, from its name: the prefix, and the name in lowercase ASCII with
    /// anything an address cannot hold as `-`.
    fn group_email(&self, name: &str) -> String {
        let prefix = self.config.groups.as_ref().map(|g| g.email_prefix.as_str()).unwrap_or("");
        format!("{}@{}", group_local(prefix, name), self.config.domain)
    }

    /// A user's primary email by id: as last seen, else read.
    async fn member_email(&self, id: &str) -> Result<String, TargetError> {
        if let Some(e) = self.emails.lock().ok().and_then(|m| m.get(id).cloned()) {
            return Ok(e);
        }
        let req = Request::new(Method::GET, format!("users/{}", path_segment(id)), format!("read user {id}"));
        let user = self.call(&req).await?;
        let e = user
            .get("primaryEmail")
            .and_then(Json::as_str)
            .ok_or_else(|| TargetError::unavailable(format!("read user {id}: the answer has no primaryEmail")))?;
        self.remember_email(id, e);
        Ok(e.to_string())
    }

    async fn add_member(&self, group: &str, member: &str) -> Result<(), TargetError> {
        let email = self.member_email(member).await?;
        let req = Request::new(
            Method::POST,
            format!("groups/{}/members", path_segment(group)),
            format!("add user {member} to group {group}"),
        )
        .json(json!({"email": email, "role": "MEMBER"}));
        match self.send(&req).await {
            Ok(_) => Ok(()),
            // "Member already exists.": what the add was for.
            Err(e) if e.status() == Some(409) => Ok(()),
            Err(e) => Err(e.into_target()),
        }
    }

    async fn delete(&self, path: String, what: String) -> Result<OpOutcome, TargetError> {
        let req = Request::new(Method::DELETE, path, what);
        match self.send(&req).await {
            Ok(_) => Ok(OpOutcome::Deleted),
            // Gone already: what a delete was for.
            Err(e) if e.status() == Some(404) => Ok(OpOutcome::Deleted),
            Err(e) => Err(e.into_target()),
        }
    }

    async fn apply_inner(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        match op {
            TargetOp::Create { account } => self.create_user(account).await,
            TargetOp::Rename { key, username } => {
                let body = json!({"primaryEmail": self.email_of(username)});
                self.patch_user(key, body, format!("rename user {key}")).await?;
                Ok(OpOutcome::Renamed { key: key.clone() })
            }
            TargetOp::Move { key, placement } => {
                self.ensure_orgunit(placement).await?;
                let body = json!({"orgUnitPath": placement});
                self.patch_user(key, body, format!("move user {key} to {placement}")).await?;
                Ok(OpOutcome::Moved { key: key.clone() })
            }
            TargetOp::Update { key, changes } => {
                let body = self.update_body(key, changes).await?;
                self.patch_user(key, body, format!("update user {key}")).await?;
                Ok(OpOutcome::Updated)
            }
            TargetOp::Disable { key } => {
                self.patch_user(key, json!({"suspended": true}), format!("suspend user {key}")).await?;
                Ok(OpOutcome::Disabled { key: key.clone() })
            }
            TargetOp::Enable { key } => {
                self.patch_user(key, json!({"suspended": false}), format!("unsuspend user {key}")).await?;
                Ok(OpOutcome::Enabled { key: key.clone() })
            }
            TargetOp::Delete { key } => {
                self.delete(format!("users/{}", path_segment(key)), format!("delete user {key}")).await
            }
            TargetOp::CreateGroup { name, members } => {
                let email = self.group_email(name);
                let body = json!({"email": email, "name": name, "description": "Made by enid"});
                let req = Request::new(Method::POST, "groups", format!("create group {name} ({email})")).json(body);
                let answer = self.call(&req).await?;
                let id = answer
                    .get("id")
                    .and_then(Json::as_str)
                    .ok_or_else(|| TargetError::unavailable(format!("create group {name}: the answer has no id")))?
                    .to_string();
                // A member that fails leaves the group made; the next run adds what is missing.
                for m in members {
                    self.add_member(&id, m).await?;
                }
                Ok(OpOutcome::Created { key: id.clone(), anchor: Some(id) })
            }
            TargetOp::AddMembers { key, members } => {
                for m in members {
                    self.add_member(key, m).await?;
                }
                Ok(OpOutcome::Updated)
            }
            TargetOp::RemoveMembers { key, members } => {
                for m in members {
                    let path = format!("groups/{}/members/{}", path_segment(key), path_segment(m));
                    let req = Request::new(Method::DELETE, path, format!("remove user {m} from group {key}"));
                    match self.send(&req).await {
                        Ok(_) => {}
                        Err(e) if e.status() == Some(404) => {}
                        Err(e) => return Err(e.into_target()),
                    }
                }
                Ok(OpOutcome::Updated)
            }
            TargetOp::DeleteGroup { key } => {
                self.delete(format!("groups/{}", path_segment(key)), format!("delete group {key}")).await
            }
        }
    }

    /// Whether a user lives outside the base org unit.
    fn outside(&self, u: &Map<String, Json>) -> bool {
        !under_ou(u.get("orgUnitPath").and_then(Json::as_str).unwrap_or("/"), &self.base)
    }

    /// Users anywhere in the domain holding these addresses (lowercase) → (id, address).
    async fn users_by_email(&self, emails: &[String]) -> Result<Vec<Map<String, Json>>, TargetError> {
        let wanted: HashSet<String> = emails.iter().map(|e| e.to_lowercase()).collect();
        let all = if emails.len() > LOOKUP_ONE_BY_ONE {
            self.list_users(&[], true).await?
        } else {
            let mut out = Vec::new();
            for e in emails {
                out.extend(self.list_users(&[format!("email={}", quoted(e))], true).await?);
            }
            out
        };
        Ok(all
            .into_iter()
            .filter(|u| {
                u.get("primaryEmail").and_then(Json::as_str).is_some_and(|e| wanted.contains(&e.to_lowercase()))
            })
            .collect())
    }

    /// Groups holding these addresses: (group id, address).
    async fn groups_by_email(&self, emails: &[String]) -> Result<Vec<(String, String)>, TargetError> {
        if self.config.groups.is_none() && emails.len() > LOOKUP_ONE_BY_ONE {
            // Without the group scope, a group's address is found when a create is refused.
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for e in emails {
            if self.config.groups.is_none() {
                break;
            }
            let req = Request::new(Method::GET, format!("groups/{}", path_segment(e)), format!("look up group {e}"));
            match self.send(&req).await {
                Ok(g) => out.push((g.get("id").and_then(Json::as_str).unwrap_or(e).to_string(), e.clone())),
                Err(err) if err.status() == Some(404) => {}
                Err(err) => return Err(err.into_target()),
            }
        }
        Ok(out)
    }
}

/// A value in a users query, in single quotes.
fn quoted(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A group address's local part: the prefix and the name in lowercase ASCII, anything else `-`.
fn group_local(prefix: &str, name: &str) -> String {
    let ascii = deunicode::deunicode(name).to_lowercase();
    let mut local = String::new();
    for c in ascii.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') { c } else { '-' };
        if c == '-' && local.ends_with('-') {
            continue;
        }
        local.push(c);
    }
    let local = local.trim_matches(['-', '.']).replace("..", ".");
    let local = if local.is_empty() { "group".to_string() } else { local };
    format!("{}{local}", prefix.to_lowercase())
}

/// Whether an `externalIds` entry is enid's.
fn is_enid(x: &Json) -> bool {
    x.get("customType").and_then(Json::as_str) == Some(CUSTOM_TYPE)
}

/// A user's attribute as enid's value: the owner marker from `externalIds`, anything else at its
/// path (`name`, `name.givenName`, `includeInGlobalAddressList`).
fn read(u: &Map<String, Json>, attr: &str) -> Option<Value> {
    if attr.eq_ignore_ascii_case(OWNER) {
        let v = u.get("externalIds")?.as_array()?.iter().find(|x| is_enid(x))?.get("value")?.as_str()?;
        return Some(Value::text(v));
    }
    let mut parts = attr.split('.');
    let mut here = u.get(parts.next()?)?;
    for p in parts {
        here = here.get(p)?;
    }
    connector_http::json::to_value(here)
}

/// enid's value as the JSON of a user's attribute.
fn to_json(attr: &str, v: &Value) -> Json {
    let (top, rest) = attr.split_once('.').unwrap_or((attr, ""));
    if let (Some(b), true) = (v.first(), BOOLEANS.iter().any(|x| x.eq_ignore_ascii_case(top)) && rest.is_empty())
        && let Ok(b) = b.trim().to_lowercase().parse::<bool>()
    {
        return Json::Bool(b);
    }
    connector_http::json::to_json(v, SINGULAR.contains(&top) || !rest.is_empty())
}

/// Puts enid's attributes into a user's JSON body (not the owner marker: the connector writes
/// `externalIds` itself).
fn write(body: &mut Map<String, Json>, attrs: &Attrs) {
    for (attr, v) in attrs {
        if v.is_empty() || attr.eq_ignore_ascii_case(OWNER) {
            continue;
        }
        let (top, rest) = attr.split_once('.').unwrap_or((attr.as_str(), ""));
        let j = to_json(attr, v);
        if rest.is_empty() {
            body.insert(top.to_string(), j);
        } else if let Some(o) = body.entry(top.to_string()).or_insert_with(|| Json::Object(Map::new())).as_object_mut()
        {
            o.insert(rest.to_string(), j);
        }
    }
}

impl Target for GoogleTarget {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn scope(&self) -> String {
        format!("org unit {} of {}", self.base, self.config.domain)
    }

    fn group_scope(&self) -> String {
        let prefix = self.config.groups.as_ref().map(|g| g.email_prefix.as_str()).unwrap_or("");
        format!("groups {prefix}*@{}", self.config.domain)
    }

    async fn check(&self) -> Result<String, TargetError> {
        if !self.orgunit_exists(&self.base).await? {
            return Err(TargetError::config(format!(
                "org unit {} does not exist in {}: create it in the Admin console, or fix base_org_unit",
                self.base, self.config.domain
            )));
        }
        let req = Request::new(Method::GET, "users", "list users")
            .query("customer", self.config.customer.clone())
            .query("maxResults", "1");
        self.call(&req).await?;
        Ok(format!(
            "connected to {}, acting as {}, org unit {} found",
            self.config.api_url, self.config.admin_email, self.base
        ))
    }

    async fn observe(&self, attrs: &[String]) -> Result<Vec<ObservedAccount>, TargetError> {
        // A base org unit that is gone is a changed scope, never "no accounts".
        if !self.orgunit_exists(&self.base).await? {
            return Err(TargetError::config(format!(
                "org unit {} does not exist in {}: nothing is planned; create it, or fix base_org_unit",
                self.base, self.config.domain
            )));
        }
        let users = self.list_users(&[], false).await?;
        let mut known = self.orgunits.lock().await;
        for u in &users {
            if let Some(ou) = u.get("orgUnitPath").and_then(Json::as_str) {
                known.insert(trim_ou(ou).to_lowercase());
            }
        }
        drop(known);
        let names = connector_api::Name::all(attrs);
        Ok(users.iter().map(|u| self.account(u, &names)).collect())
    }

    async fn observe_at(&self, key: &str, attrs: &[String]) -> Result<Option<ObservedAccount>, TargetError> {
        let req = Request::new(Method::GET, format!("users/{}", path_segment(key)), format!("read user {key}"));
        match self.send(&req).await {
            Ok(Json::Object(u)) => Ok(Some(self.account(&u, &connector_api::Name::all(attrs)))),
            Ok(_) => Err(TargetError::unavailable(format!("read user {key}: the answer is not a user"))),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e.into_target()),
        }
    }

    async fn observe_where(
        &self,
        field: Field<'_>,
        values: &[String],
        attrs: &[String],
    ) -> Result<Option<Vec<ObservedAccount>>, TargetError> {
        if matches!(field, Field::Attribute(_)) {
            // Google searches few fields: the engine reads everything instead.
            return Ok(None);
        }
        if values.len() > LOOKUP_ONE_BY_ONE {
            return Ok(None);
        }
        let want: HashSet<String> = match field {
            Field::Username => values.iter().map(|v| v.to_lowercase()).collect(),
            _ => values.iter().cloned().collect(),
        };
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let names = connector_api::Name::all(attrs);
        for v in values {
            let word = match field {
                Field::Username => format!("email={}", quoted(&self.email_of(v))),
                _ => format!("externalId={}", quoted(v)),
            };
            for u in self.list_users(&[word], false).await? {
                let id = u.get("id").and_then(Json::as_str).unwrap_or_default().to_string();
                let hit = match field {
                    Field::Username => {
                        u.get("primaryEmail").and_then(Json::as_str).and_then(|e| e.rsplit_once('@')).is_some_and(
                            |(l, d)| d.eq_ignore_ascii_case(&self.config.domain) && want.contains(&l.to_lowercase()),
                        )
                    }
                    _ => read(&u, OWNER).and_then(|v| v.first().map(str::to_string)).is_some_and(|v| want.contains(&v)),
                };
                if hit && seen.insert(id) {
                    out.push(self.account(&u, &names));
                }
            }
        }
        Ok(Some(out))
    }

    async fn observe_groups(&self) -> Result<Vec<ObservedGroup>, TargetError> {
        let Some(g) = &self.config.groups else { return Ok(Vec::new()) };
        let prefix = g.email_prefix.to_lowercase();
        let req = Request::new(Method::GET, "groups", "list groups")
            .query("customer", self.config.customer.clone())
            .query("maxResults", "200");
        let groups = self.pages(req, "groups").await?;
        let mut out = Vec::new();
        for g in groups {
            let email = g.get("email").and_then(Json::as_str).unwrap_or_default().to_lowercase();
            if !email.starts_with(&prefix) {
                continue;
            }
            let id = g.get("id").and_then(Json::as_str).unwrap_or_default().to_string();
            let req = Request::new(
                Method::GET,
                format!("groups/{}/members", path_segment(&id)),
                format!("list members of {email}"),
            )
            .query("maxResults", "200");
            let members = self.pages(req, "members").await?;
            out.push(ObservedGroup {
                key: id.clone(),
                anchor: Some(id),
                name: g.get("name").and_then(Json::as_str).unwrap_or(&email).to_string(),
                members: members
                    .iter()
                    .filter(|m| m.get("type").and_then(Json::as_str).is_none_or(|t| t == "USER"))
                    .filter_map(|m| m.get("id").and_then(Json::as_str).map(str::to_string))
                    .collect(),
            });
        }
        Ok(out)
    }

    async fn find_outside_scope(
        &self,
        lookup: Lookup,
        values: &[String],
    ) -> Result<Vec<(String, String)>, TargetError> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        match lookup {
            Lookup::Owner => {
                let want: HashSet<&str> = values.iter().map(String::as_str).collect();
                let mut out = Vec::new();
                let users = if values.len() > LOOKUP_ONE_BY_ONE {
                    self.list_users(&[], true).await?
                } else {
                    let mut all = Vec::new();
                    for v in values {
                        all.extend(self.list_users(&[format!("externalId={}", quoted(v))], true).await?);
                    }
                    all
                };
                for u in users.iter().filter(|u| self.outside(u)) {
                    if let Some(v) = read(u, OWNER).and_then(|v| v.first().map(str::to_string))
                        && want.contains(v.as_str())
                    {
                        out.push((u.get("id").and_then(Json::as_str).unwrap_or_default().to_string(), v));
                    }
                }
                Ok(out)
            }
            Lookup::Anchor => {
                let mut out = Vec::new();
                for id in values {
                    let req =
                        Request::new(Method::GET, format!("users/{}", path_segment(id)), format!("read user {id}"));
                    match self.send(&req).await {
                        Ok(Json::Object(u)) if self.outside(&u) => out.push((id.clone(), id.clone())),
                        Ok(_) => {}
                        Err(e) if e.status() == Some(404) => {}
                        Err(e) => return Err(e.into_target()),
                    }
                }
                Ok(out)
            }
            Lookup::Username => {
                let emails: Vec<String> = values.iter().map(|v| self.email_of(v)).collect();
                let by_local: HashMap<String, &String> = values.iter().map(|v| (v.to_lowercase(), v)).collect();
                let mut out = Vec::new();
                for u in self.users_by_email(&emails).await? {
                    if !self.outside(&u) {
                        continue;
                    }
                    let e = u.get("primaryEmail").and_then(Json::as_str).unwrap_or_default().to_lowercase();
                    let local = e.rsplit_once('@').map(|(l, _)| l.to_string()).unwrap_or(e);
                    if let Some(v) = by_local.get(&local) {
                        out.push((u.get("id").and_then(Json::as_str).unwrap_or_default().to_string(), (*v).clone()));
                    }
                }
                // A group's address is a username taken too.
                for (id, e) in self.groups_by_email(&emails).await? {
                    let local = e.rsplit_once('@').map(|(l, _)| l.to_lowercase()).unwrap_or_default();
                    if let Some(v) = by_local.get(&local) {
                        out.push((id, (*v).clone()));
                    }
                }
                Ok(out)
            }
            Lookup::GroupName => {
                let emails: Vec<(String, &String)> = values.iter().map(|n| (self.group_email(n), n)).collect();
                let wanted: Vec<String> = emails.iter().map(|(e, _)| e.clone()).collect();
                let by_email: HashMap<String, &String> = emails.iter().map(|(e, n)| (e.to_lowercase(), *n)).collect();
                let mut out = Vec::new();
                for u in self.users_by_email(&wanted).await? {
                    let e = u.get("primaryEmail").and_then(Json::as_str).unwrap_or_default().to_lowercase();
                    if let Some(n) = by_email.get(&e) {
                        out.push((u.get("id").and_then(Json::as_str).unwrap_or_default().to_string(), (*n).clone()));
                    }
                }
                Ok(out)
            }
        }
    }

    async fn apply(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        self.apply_inner(op).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_addresses_are_made_from_names_in_ascii() {
        assert_eq!(group_local("", "S1-7A"), "s1-7a");
        assert_eq!(group_local("klass-", "Åkerö skola 7 B"), "klass-akero-skola-7-b");
        assert_eq!(group_local("", "--"), "group");
        assert_eq!(group_local("", "a..b"), "a.b");
        assert_eq!(path_segment("/Elever/Ö 7"), "%2FElever%2F%C3%96%207");
        assert_eq!(quoted("o'hara"), "'o\\'hara'");
    }

    #[test]
    fn attributes_read_and_write_as_google_keeps_them() {
        let mut attrs = Attrs::new();
        let mut name = connector_api::Fields::new();
        name.insert("givenName".into(), Value::text("Anna"));
        name.insert("familyName".into(), Value::text("Berg"));
        attrs.insert("name", Value::Complex(Box::new(vec![name])));
        attrs.insert("includeInGlobalAddressList", Value::Bool(false));
        attrs.insert(OWNER, Value::text("0f8f"));
        let mut body = Map::new();
        write(&mut body, &attrs);
        let j = Json::Object(body.clone());
        assert_eq!(j["name"]["givenName"], "Anna", "{j}");
        assert_eq!(j["includeInGlobalAddressList"], false);
        assert!(j.get(OWNER).is_none(), "the owner marker is the connector's to write: {j}");
        body.insert(
            "externalIds".into(),
            json!([{"type": "organization", "value": "x"},
            {"type": "custom", "customType": "enid", "value": "0f8f"}]),
        );
        for (attr, want) in &attrs {
            let got = read(&body, attr).unwrap();
            assert!(want.satisfied_by(&got), "{attr}: {want:?} vs {got:?}");
        }
        assert_eq!(read(&body, "name.givenName"), Some(Value::text("Anna")));
    }
}
