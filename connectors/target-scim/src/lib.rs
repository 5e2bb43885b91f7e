//! Target connector for SCIM 2.0 platforms (RFC 7643 schema, RFC 7644 protocol): learning
//! platforms, EGIL-profile services and edtech SaaS that take accounts by SCIM.
//!
//! Users are `/Users` resources: the core schema and the enterprise extension; the key and the
//! anchor are the server's `id`; the owner marker is `externalId` (the enid id); `userName` is
//! the username inside the target's `user_name` pattern; `active = false` disables. Changes go by
//! PATCH with only what differs (`If-Match` with the version the server last gave, when it gives
//! ETags); deletes by DELETE. Groups are `/Groups`: created with their members, members added and
//! removed value by value by PATCH (never a full replace). Listings page with `startIndex` and
//! `count`, and a listing that ends early is an error, never a short list.
//!
//! Everything goes through the shared HTTP client (`connector-http`): TLS, tokens, the rate
//! limit, retries, `Retry-After`, errors by what the engine must do.
//!
//! `config` holds the settings and what they declare; `json` how values look in SCIM JSON.

mod config;
mod json;

pub use config::ScimConfig;

use connector_api::{
    Capabilities, Field, Lookup, ObservedAccount, ObservedGroup, OpOutcome, Target, TargetError, TargetOp,
};
use connector_http::{Auth, HttpClient, HttpSettings, Method, Request};
use json::{BULK_REQUEST, GROUP, LIST, PATCH, Place, USER};
use serde_json::{Map, Value as Json, json};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

/// A SCIM 2.0 service as an enid target.
#[derive(Debug)]
pub struct ScimTarget {
    config: ScimConfig,
    http: HttpClient,
    caps: Capabilities,
    /// The text around the username in `userName`.
    user_name: (String, String),
    /// The version (`meta.version`, an ETag) the server last gave each resource, for `If-Match`.
    versions: Mutex<HashMap<String, String>>,
}

impl ScimTarget {
    /// Builds the connector; contacts nothing.
    pub fn new(config: ScimConfig, auth: Auth) -> Result<ScimTarget, TargetError> {
        let settings = HttpSettings {
            url: config.url.clone(),
            tls_ca_file: config.tls_ca_file.clone(),
            tls_insecure_skip_verify: config.tls_insecure_skip_verify,
            tls_cert_file: None,
            tls_key_file: None,
            max_requests_per_second: config.max_requests_per_second,
            max_in_flight: config.max_in_flight,
            timeout: Duration::from_secs(config.timeout_secs),
            max_attempts: config.max_attempts,
            max_wait: Duration::from_secs(config.max_wait_secs),
            content_type: "application/scim+json",
        };
        let http = HttpClient::new(settings, auth)?;
        let caps = config.capabilities();
        let user_name = config.user_name_parts();
        Ok(ScimTarget { config, http, caps, user_name, versions: Mutex::new(HashMap::new()) })
    }

    pub fn config(&self) -> &ScimConfig {
        &self.config
    }

    /// The `userName` of a username.
    fn user_name_of(&self, username: &str) -> String {
        format!("{}{username}{}", self.user_name.0, self.user_name.1)
    }

    /// Whether a `userName` has the pattern's shape (the text around the username).
    fn fits(&self, user_name: &str) -> bool {
        let (pre, post) = (&self.user_name.0, &self.user_name.1);
        let lower = user_name.to_lowercase();
        lower.len() > pre.len() + post.len()
            && lower.starts_with(&pre.to_lowercase())
            && lower.ends_with(&post.to_lowercase())
    }

    /// The username in a `userName`; the whole value when it does not have the pattern's shape
    /// (the account is then reported `username_outdated`, and the engine renames it into the
    /// pattern).
    fn username_in(&self, user_name: &str) -> String {
        if self.fits(user_name) {
            let (pre, post) = (&self.user_name.0, &self.user_name.1);
            return user_name[pre.len()..user_name.len() - post.len()].to_string();
        }
        user_name.to_string()
    }

    fn remember(&self, id: &str, version: Option<String>) {
        if let (Some(v), Ok(mut m)) = (version, self.versions.lock()) {
            m.insert(id.to_string(), v);
        }
    }

    fn version(&self, id: &str) -> Option<String> {
        self.versions.lock().ok().and_then(|m| m.get(id).cloned())
    }

    /// Every resource of a listing, page by page; a listing that ends before `totalResults`,
    /// that changes its total, or that gives one resource twice is an error.
    async fn list(
        &self,
        resource: &str,
        attributes: &str,
        filter: Option<&str>,
    ) -> Result<Vec<Map<String, Json>>, TargetError> {
        let mut out: Vec<Map<String, Json>> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut total: Option<u64> = None;
        let page = self.config.page_size;
        loop {
            let start = out.len() + 1;
            let what = format!("list {resource} from {start}");
            let mut req = Request::new(Method::GET, resource, &what)
                .query("startIndex", start.to_string())
                .query("count", page.to_string());
            if !attributes.is_empty() {
                req = req.query("attributes", attributes);
            }
            if let Some(f) = filter {
                req = req.query("filter", f);
            }
            let resp = self.http.send(&req).await.map_err(|e| e.into_target())?;
            let body = resp.body;
            let broken =
                |why: String| TargetError::unavailable(format!("{what}: {why}; nothing is planned on a partial list"));
            if body.get("schemas").and_then(Json::as_array).is_some_and(|s| !s.iter().any(|x| x == LIST)) {
                return Err(broken("the answer is not a ListResponse".into()));
            }
            let t = body.get("totalResults").and_then(Json::as_u64).ok_or_else(|| broken("no totalResults".into()))?;
            if total.is_some_and(|x| x != t) {
                return Err(broken(format!("the total changed from {} to {t} while reading", total.unwrap_or(0))));
            }
            total = Some(t);
            let items = body.get("Resources").and_then(Json::as_array).cloned().unwrap_or_default();
            if items.is_empty() && (out.len() as u64) < t {
                return Err(broken(format!("the list ended after {} of {t}", out.len())));
            }
            for item in items {
                let Json::Object(o) = item else { return Err(broken("a resource that is not an object".into())) };
                let id = o.get("id").and_then(Json::as_str).ok_or_else(|| broken("a resource without an id".into()))?;
                if !seen.insert(id.to_string()) {
                    return Err(broken(format!("resource {id} came twice")));
                }
                out.push(o);
            }
            if out.len() as u64 >= t {
                if out.len() as u64 > t {
                    return Err(broken(format!("{} resources, more than totalResults {t}", out.len())));
                }
                return Ok(out);
            }
        }
    }

    /// The account a SCIM User is, with the attributes `attrs` names (shared by every account).
    fn user(&self, o: &Map<String, Json>, attrs: &[connector_api::Name]) -> ObservedAccount {
        let id = o.get("id").and_then(Json::as_str).unwrap_or_default().to_string();
        self.remember(&id, o.get("meta").and_then(|m| m.get("version")).and_then(Json::as_str).map(str::to_string));
        let user_name = o.get("userName").and_then(Json::as_str);
        let username = user_name.map(|u| self.username_in(u));
        let username_outdated = user_name.is_some_and(|u| !self.fits(u));
        let disabled = o.get("active").and_then(Json::as_bool) == Some(false);
        let mut mapped = connector_api::Attrs::new();
        for a in attrs {
            if let Some(v) = json::read(o, a) {
                mapped.insert(a.clone(), v);
            }
        }
        let mut account = ObservedAccount::new(&id, Some(&id), username.as_deref(), mapped.into());
        account.disabled = disabled;
        account.username_outdated = username_outdated;
        account
    }

    /// PATCH with these operations, `If-Match` the version last seen; the new version kept.
    async fn patch(&self, resource: &str, id: &str, ops: Vec<Json>, what: String) -> Result<(), TargetError> {
        let body = json!({ "schemas": [PATCH], "Operations": ops });
        let req = Request::new(Method::PATCH, format!("{resource}/{id}"), what).json(body).if_match(self.version(id));
        let resp = self.http.send(&req).await.map_err(|e| e.into_target())?;
        let v = resp.etag.or_else(|| {
            resp.body.get("meta").and_then(|m| m.get("version")).and_then(Json::as_str).map(str::to_string)
        });
        self.remember(id, v);
        Ok(())
    }

    async fn delete(&self, resource: &str, id: &str, what: String) -> Result<OpOutcome, TargetError> {
        let req = Request::new(Method::DELETE, format!("{resource}/{id}"), what).if_match(self.version(id));
        match self.http.send(&req).await {
            Ok(_) => Ok(OpOutcome::Deleted),
            // Gone already: what a delete was for.
            Err(e) if e.status() == Some(404) => Ok(OpOutcome::Deleted),
            Err(e) => Err(e.into_target()),
        }
    }

    /// A new user's JSON.
    fn user_body(&self, account: &connector_api::AccountSpec) -> Map<String, Json> {
        let mut body = Map::new();
        body.insert("schemas".into(), json!([USER]));
        body.insert("userName".into(), Json::String(self.user_name_of(&account.username)));
        body.insert("active".into(), Json::Bool(account.enabled));
        json::write(&mut body, &account.attrs.as_attrs());
        body
    }

    async fn create_user(&self, account: &connector_api::AccountSpec) -> Result<OpOutcome, TargetError> {
        let body = self.user_body(account);
        let req = Request::new(Method::POST, "Users", format!("create user {}", account.id)).json(Json::Object(body));
        let resp = self.http.send(&req).await.map_err(|e| e.into_target())?;
        let id = resp
            .body
            .get("id")
            .and_then(Json::as_str)
            .ok_or_else(|| TargetError::unavailable(format!("create user {}: the answer has no id", account.id)))?;
        self.remember(id, resp.etag);
        Ok(OpOutcome::Created { key: id.to_string(), anchor: Some(id.to_string()) })
    }

    async fn apply_inner(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        match op {
            TargetOp::Create { account } => self.create_user(account).await,
            TargetOp::Rename { key, username } => {
                let ops = vec![json!({"op": "replace", "path": "userName", "value": self.user_name_of(username)})];
                self.patch("Users", key, ops, format!("rename user {key}")).await?;
                Ok(OpOutcome::Renamed { key: key.clone() })
            }
            TargetOp::Move { key, .. } => Err(TargetError::rejected(
                connector_api::RejectKind::Other,
                format!("move user {key}: a SCIM service does not place accounts"),
            )),
            TargetOp::Update { key, changes } => {
                let ops: Vec<Json> = changes
                    .iter()
                    .map(|c| {
                        let place = Place::of(&c.attr);
                        if c.values.is_empty() {
                            json!({"op": "remove", "path": place.path()})
                        } else {
                            json!({"op": "replace", "path": place.path(), "value": json::to_json(&place, &c.values)})
                        }
                    })
                    .collect();
                self.patch("Users", key, ops, format!("update user {key}")).await?;
                Ok(OpOutcome::Updated)
            }
            TargetOp::Disable { key } => {
                let ops = vec![json!({"op": "replace", "path": "active", "value": false})];
                self.patch("Users", key, ops, format!("disable user {key}")).await?;
                Ok(OpOutcome::Disabled { key: key.clone() })
            }
            TargetOp::Enable { key } => {
                let ops = vec![json!({"op": "replace", "path": "active", "value": true})];
                self.patch("Users", key, ops, format!("enable user {key}")).await?;
                Ok(OpOutcome::Enabled { key: key.clone() })
            }
            TargetOp::Delete { key } => self.delete("Users", key, format!("delete user {key}")).await,
            TargetOp::CreateGroup { name, members } => {
                let body = json!({
                    "schemas": [GROUP],
                    "displayName": name,
                    "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>(),
                });
                let req = Request::new(Method::POST, "Groups", format!("create group {name}")).json(body);
                let resp = self.http.send(&req).await.map_err(|e| e.into_target())?;
                let id =
                    resp.body.get("id").and_then(Json::as_str).ok_or_else(|| {
                        TargetError::unavailable(format!("create group {name}: the answer has no id"))
                    })?;
                self.remember(id, resp.etag);
                Ok(OpOutcome::Created { key: id.to_string(), anchor: Some(id.to_string()) })
            }
            TargetOp::AddMembers { key, members } => {
                let value: Vec<Json> = members.iter().map(|m| json!({"value": m})).collect();
                let ops = vec![json!({"op": "add", "path": "members", "value": value})];
                self.patch("Groups", key, ops, format!("add members to group {key}")).await?;
                Ok(OpOutcome::Updated)
            }
            TargetOp::RemoveMembers { key, members } => {
                let ops: Vec<Json> = members
                    .iter()
                    .map(|m| json!({"op": "remove", "path": format!("members[value eq {}]", Json::String(m.clone()))}))
                    .collect();
                self.patch("Groups", key, ops, format!("remove members from group {key}")).await?;
                Ok(OpOutcome::Updated)
            }
            TargetOp::DeleteGroup { key } => self.delete("Groups", key, format!("delete group {key}")).await,
        }
    }
}

/// The `attributes` a read of users asks for: what the connector reads itself, the engine's
/// attributes, and `more` (what a lookup matches on).
fn user_attributes(attrs: &[String], more: Option<&str>) -> String {
    let mut wanted: Vec<String> = vec!["userName".into(), "active".into(), "externalId".into(), "meta".into()];
    wanted.extend(attrs.iter().map(|a| Place::of(a).path()));
    wanted.extend(more.map(str::to_string));
    wanted.sort();
    wanted.dedup();
    wanted.join(",")
}

/// The string values at a dotted path of a resource (`name.familyName`; a multi-valued
/// attribute gives each element's value at the rest of the path).
fn values_at(o: &Map<String, Json>, path: &str) -> Vec<String> {
    fn walk(v: &Json, rest: &[&str], out: &mut Vec<String>) {
        match (v, rest.split_first()) {
            (Json::Array(items), _) => items.iter().for_each(|i| walk(i, rest, out)),
            (Json::String(s), None) => out.push(s.clone()),
            (Json::Object(m), Some((first, more))) => {
                if let Some(next) = m.iter().find(|(k, _)| k.eq_ignore_ascii_case(first)).map(|(_, v)| v) {
                    walk(next, more, out);
                }
            }
            _ => {}
        }
    }
    let parts: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    walk(&Json::Object(o.clone()), &parts, &mut out);
    out
}

impl Target for ScimTarget {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn scope(&self) -> String {
        format!("{}/Users", self.http.base())
    }

    fn group_scope(&self) -> String {
        format!("{}/Groups", self.http.base())
    }

    async fn check(&self) -> Result<String, TargetError> {
        let req = Request::new(Method::GET, "ServiceProviderConfig", "read the ServiceProviderConfig");
        let spc = self.http.send(&req).await.map_err(|e| e.into_target())?.body;
        let supported = |k: &str| spc.get(k).and_then(|v| v.get("supported")).and_then(Json::as_bool).unwrap_or(false);
        if !supported("patch") {
            return Err(TargetError::config(format!(
                "{} does not support PATCH; enid changes SCIM accounts by PATCH only",
                self.config.url
            )));
        }
        let req = Request::new(Method::GET, "Users", "list users").query("count", "1");
        self.http.send(&req).await.map_err(|e| e.into_target())?;
        Ok(format!(
            "connected to {}, authenticated, PATCH supported, ETags {}",
            self.config.url,
            if supported("etag") { "supported" } else { "not supported" }
        ))
    }

    async fn observe(&self, attrs: &[String]) -> Result<Vec<ObservedAccount>, TargetError> {
        let users = self.list("Users", &user_attributes(attrs, None), None).await?;
        let names = connector_api::Name::all(attrs);
        Ok(users.iter().map(|u| self.user(u, &names)).collect())
    }

    async fn observe_where(
        &self,
        field: Field<'_>,
        values: &[String],
        attrs: &[String],
    ) -> Result<Option<Vec<ObservedAccount>>, TargetError> {
        let path = match field {
            Field::Owner => "externalId".to_string(),
            Field::Username => "userName".to_string(),
            // A filtered multi-valued attribute (`emails[type eq "work"].value`) is not looked
            // up: the engine reads everything instead.
            Field::Attribute(a) if a.contains('[') => return Ok(None),
            Field::Attribute(a) => a.to_string(),
        };
        let wanted = user_attributes(attrs, Some(path.split('.').next().unwrap_or(&path)));
        // userName compares without case (RFC 7643 §4.1.1); the rest as the server stores them.
        let fold = field == Field::Username;
        let wanted_values: HashSet<String> =
            values.iter().map(|v| if fold { v.to_lowercase() } else { v.clone() }).collect();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let names = connector_api::Name::all(attrs);
        for chunk in values.chunks(20) {
            let filter =
                chunk.iter().map(|v| format!("{path} eq {}", Json::String(v.clone()))).collect::<Vec<_>>().join(" or ");
            // A server that ignores the filter answers with everyone: only what matches counts.
            for u in self.list("Users", &wanted, Some(&filter)).await? {
                let matches = values_at(&u, &path)
                    .into_iter()
                    .any(|v| wanted_values.contains(&if fold { v.to_lowercase() } else { v }));
                let id = u.get("id").and_then(Json::as_str).unwrap_or_default().to_string();
                if matches && seen.insert(id) {
                    out.push(self.user(&u, &names));
                }
            }
        }
        Ok(Some(out))
    }

    async fn observe_groups(&self) -> Result<Vec<ObservedGroup>, TargetError> {
        let groups = self.list("Groups", "displayName,members,meta", None).await?;
        Ok(groups
            .into_iter()
            .map(|g| {
                let id = g.get("id").and_then(Json::as_str).unwrap_or_default().to_string();
                self.remember(
                    &id,
                    g.get("meta").and_then(|m| m.get("version")).and_then(Json::as_str).map(str::to_string),
                );
                let members = g
                    .get("members")
                    .and_then(Json::as_array)
                    .map(|m| {
                        m.iter().filter_map(|x| x.get("value").and_then(Json::as_str).map(str::to_string)).collect()
                    })
                    .unwrap_or_default();
                ObservedGroup {
                    key: id.clone(),
                    anchor: Some(id),
                    name: g.get("displayName").and_then(Json::as_str).unwrap_or_default().to_string(),
                    members,
                }
            })
            .collect())
    }

    async fn find_outside_scope(
        &self,
        _lookup: Lookup,
        _values: &[String],
    ) -> Result<Vec<(String, String)>, TargetError> {
        // The scope is every user the service holds: there is no outside.
        Ok(Vec::new())
    }

    async fn apply(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        self.apply_inner(op).await
    }

    /// Creates go together in one `/Bulk` request (RFC 7644 §3.7); anything else one by one.
    async fn apply_batch(&self, ops: &[TargetOp]) -> Vec<Result<OpOutcome, TargetError>> {
        if ops.len() < 2 || !ops.iter().all(|o| matches!(o, TargetOp::Create { .. })) {
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                out.push(self.apply_inner(op).await);
            }
            return out;
        }
        self.bulk_create(ops).await
    }
}

impl ScimTarget {
    async fn bulk_create(&self, ops: &[TargetOp]) -> Vec<Result<OpOutcome, TargetError>> {
        let mut operations = Vec::with_capacity(ops.len());
        let mut ids = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let TargetOp::Create { account } = op else { continue };
            operations.push(json!({
                "method": "POST",
                "path": "/Users",
                "bulkId": format!("b{i}"),
                "data": Json::Object(self.user_body(account)),
            }));
            ids.push(account.id.clone());
        }
        let body = json!({ "schemas": [BULK_REQUEST], "Operations": operations });
        let what = format!("create {} users in one bulk request", ops.len());
        let req = Request::new(Method::POST, "Bulk", &what).json(body);
        let resp = match self.http.send(&req).await {
            Ok(r) => r,
            Err(e) => {
                // The request as a whole failed: every create in it did.
                let text = e.to_string();
                let e = e.into_target();
                return ids.iter().map(|id| Err(e.retold(format!("create user {id} ({text})")))).collect();
            }
        };
        let answers: Vec<Json> = resp.body.get("Operations").and_then(Json::as_array).cloned().unwrap_or_default();
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                let bulk_id = format!("b{i}");
                let Some(a) = answers.iter().find(|a| a.get("bulkId").and_then(Json::as_str) == Some(&bulk_id)) else {
                    return Err(TargetError::unavailable(format!("create user {id}: the bulk answer does not say")));
                };
                let status: u16 = a
                    .get("status")
                    .and_then(|s| s.as_str().and_then(|s| s.parse().ok()).or(s.as_u64().map(|n| n as u16)))
                    .unwrap_or(0);
                if (200..300).contains(&status) {
                    let key = a
                        .get("location")
                        .and_then(Json::as_str)
                        .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
                        .map(str::to_string)
                        .ok_or_else(|| {
                            TargetError::unavailable(format!("create user {id}: the bulk answer has no location"))
                        })?;
                    self.remember(&key, a.get("version").and_then(Json::as_str).map(str::to_string));
                    return Ok(OpOutcome::Created { key: key.clone(), anchor: Some(key) });
                }
                let body = a.get("response").map(|r| r.to_string()).unwrap_or_default();
                Err(connector_http::HttpFailure::from_status(status, None, body.as_bytes())
                    .with(&format!("create user {id}"))
                    .into_target())
            })
            .collect()
    }
}
