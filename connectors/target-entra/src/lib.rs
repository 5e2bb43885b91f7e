//! Target connector for Microsoft Entra ID (Microsoft 365): cloud users and security groups
//! through Microsoft Graph v1.0, as an app registration with a client secret or a certificate.
//!
//! Users: the key and the anchor are the object id (a rename keeps it); the username is the
//! local part of `userPrincipalName` (`username@upn_suffix`, `mailNickname` the same); the owner
//! marker is one of the fifteen extension attributes (`onPremisesExtensionAttributes`, 15 by
//! default): a cloud user's are written through Graph, hold 1,024 characters (an enid id is 36;
//! `employeeId` holds 16) and can be searched. `accountEnabled = false` disables. A create sends
//! the engine's first password (`passwordProfile`). A user synchronised from on-premises AD
//! (`onPremisesSyncEnabled`) is reported [`ObservedAccount::foreign`]: never written or claimed,
//! and a person whose username it holds is blocked with that reason.
//!
//! A deleted user stays in `directory/deletedItems` for 30 days holding its UPN: a person whose
//! enid id such a user carries is restored (`restore`) and brought up to date, never created
//! anew beside the old object; and a new username is looked up among them before it is given.
//!
//! Reads use the delta query (`users/delta`, `groups/delta`) when `delta` is on: the first run
//! reads everything and keeps the delta link with what it read (the engine keeps it for the
//! connector after an apply that succeeded, [`Target::saved_state`]); later runs read only what
//! changed since. A link Graph says has expired (410), or settings that changed what is read,
//! mean a full read. Writes go in `$batch` requests of up to 20, each sub-response's status and
//! `Retry-After` honoured. Everything goes through the shared HTTP client (`connector-http`).

mod batch;
mod config;
mod snapshot;

pub use config::{EntraConfig, EntraGroupsConfig, InitialPassword};

use connector_api::{
    AccountSpec, AttrChange, Attrs, Capabilities, Lookup, ObservedAccount, ObservedGroup, OpOutcome, RejectKind,
    Target, TargetError, TargetOp, Value,
};
use connector_http::{Auth, HttpClient, HttpError, HttpSettings, Method, OAuthSettings, Request, path_segment};
use serde_json::{Map, Value as Json, json};
use snapshot::{Round, Saved};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

/// Why a synchronised user is left alone.
const SYNCED: &str = "is synchronised from on-premises AD (onPremisesSyncEnabled; Entra Connect writes it)";
/// Graph's words for a UPN another object holds (a 400, not a 409).
const TAKEN: &str = "Another object with the same value";
/// More values than this are looked up by reading everything instead.
const LOOKUP_ONE_BY_ONE: usize = 40;
/// Members one request may add.
const BIND_MAX: usize = 20;

/// One request: method, path, body, and what it is for.
type OneRequest = (Method, String, Option<Json>, String);

/// A Microsoft Entra tenant as an enid target.
#[derive(Debug)]
pub struct EntraTarget {
    config: EntraConfig,
    http: HttpClient,
    caps: Capabilities,
    /// The owner marker's attribute as the engine names it, and its name in Graph.
    owner: String,
    extension: String,
    /// What the engine kept from the last apply that succeeded.
    resumed: Mutex<Option<Saved>>,
    /// What this run read, to keep after an apply that succeeds.
    current: Mutex<Option<Saved>>,
    /// Soft-deleted users, read once when first needed.
    deleted: tokio::sync::Mutex<Option<Vec<Map<String, Json>>>>,
}

impl EntraTarget {
    /// Builds the connector; contacts nothing.
    pub fn new(config: EntraConfig, credentials: connector_http::Credentials) -> Result<EntraTarget, TargetError> {
        let auth =
            Auth::OAuth(OAuthSettings { token_url: config.token_endpoint(), scope: Some(config.scope()), credentials });
        let settings = HttpSettings {
            url: config.graph_url.trim_end_matches('/').to_string(),
            tls_ca_file: config.tls_ca_file.clone(),
            tls_insecure_skip_verify: config.tls_insecure_skip_verify,
            tls_cert_file: None,
            tls_key_file: None,
            max_requests_per_second: config.max_requests_per_second,
            max_in_flight: config.max_in_flight,
            timeout: Duration::from_secs(config.timeout_secs),
            max_attempts: config.max_attempts,
            max_wait: Duration::from_secs(config.max_wait_secs),
            content_type: "application/json",
        };
        let http = HttpClient::new(settings, auth)?;
        let caps = config.capabilities();
        let owner = config.owner_attribute();
        let extension = format!("extensionAttribute{}", config.owner_extension_attribute);
        Ok(EntraTarget {
            config,
            http,
            caps,
            owner,
            extension,
            resumed: Mutex::new(None),
            current: Mutex::new(None),
            deleted: tokio::sync::Mutex::new(None),
        })
    }

    pub fn config(&self) -> &EntraConfig {
        &self.config
    }

    fn upn(&self, username: &str) -> String {
        format!("{username}@{}", self.config.upn_suffix)
    }

    async fn call(&self, req: &Request) -> Result<Json, TargetError> {
        self.http.send(req).await.map(|r| r.body).map_err(into_target)
    }

    /// Every page of a listing or a delta round, following `@odata.nextLink`; the delta link
    /// the round ended with, if any. An error on any page fails the whole read.
    async fn pages(&self, first: Request) -> Result<(Vec<Map<String, Json>>, Option<String>), HttpError> {
        let what = first.what.clone();
        let mut out = Vec::new();
        let mut req = first;
        let mut links: HashSet<String> = HashSet::new();
        loop {
            let body = self.http.send(&req).await?.body;
            let Some(items) = body.get("value").and_then(Json::as_array) else {
                return Err(broken(&what, "the answer has no value list"));
            };
            for item in items {
                let Json::Object(o) = item else { return Err(broken(&what, "an item that is not an object")) };
                if o.get("id").and_then(Json::as_str).is_none() {
                    return Err(broken(&what, "an item without an id"));
                }
                out.push(o.clone());
            }
            if let Some(next) = body.get("@odata.nextLink").and_then(Json::as_str) {
                let Some(next) = self.at_graph(next) else {
                    return Err(broken(&what, "the next page is not a Graph address"));
                };
                if !links.insert(next.clone()) {
                    return Err(broken(&what, "the same page came twice"));
                }
                req = Request::new(Method::GET, next, what.clone());
                continue;
            }
            let delta = match body.get("@odata.deltaLink").and_then(Json::as_str) {
                Some(d) => {
                    Some(self.at_graph(d).ok_or_else(|| broken(&what, "the delta link is not a Graph address"))?)
                }
                None => None,
            };
            return Ok((out, delta));
        }
    }

    /// Where an absolute link Graph gave (a next page, a delta link, or one kept between runs) is
    /// sent: at graph_url's scheme, host and port as it is; a link to another host (Graph's own
    /// behind a graph_url that is a gateway, or a kept link someone changed) is sent to graph_url
    /// with the part after the API version (`/v1.0/`); the token never goes anywhere else.
    fn at_graph(&self, link: &str) -> Option<String> {
        fn split(u: &str) -> Option<(String, &str)> {
            let (scheme, rest) = u.split_once("://")?;
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            (!authority.is_empty()).then(|| (format!("{}://{}", scheme.to_lowercase(), authority.to_lowercase()), path))
        }
        let base = self.config.graph_url.trim_end_matches('/');
        let (origin, base_path) = split(base)?;
        let (link_origin, link_path) = split(link)?;
        if link_origin == origin {
            return Some(link.to_string());
        }
        let version = base_path.rsplit('/').next().filter(|v| !v.is_empty())?;
        let (_, rest) = link_path.split_once(&format!("/{version}/"))?;
        Some(format!("{base}/{rest}"))
    }

    /// What a kept delta round is for: the tenant and app that read it, where, and what: a
    /// round read for another tenant (one config reused for another) is never resumed.
    fn fingerprint(&self, what: &str, select: &str) -> String {
        let c = &self.config;
        format!(
            "{what} {} tenant {} app {} {select}",
            c.graph_url,
            c.tenant_id.to_lowercase(),
            c.client_id.to_lowercase()
        )
    }

    /// The properties a read of users selects.
    fn user_select(&self, attrs: &[String]) -> String {
        let mut s: Vec<String> = ["id", "userPrincipalName", "accountEnabled", "onPremisesSyncEnabled"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        s.extend(attrs.iter().map(|a| a.split('.').next().unwrap_or(a).to_string()));
        s.push("onPremisesExtensionAttributes".into());
        s.sort();
        s.dedup();
        s.join(",")
    }

    /// Every user, by the delta query from where the last kept read ended (or in full).
    async fn read_users(&self, select: &str) -> Result<BTreeMap<String, Json>, TargetError> {
        let fingerprint = self.fingerprint("users", select);
        if !self.config.delta {
            let req = Request::new(Method::GET, "users", "list users").query("$select", select).query("$top", "999");
            let (items, _) = self.pages(req).await.map_err(into_target)?;
            return Ok(items.into_iter().map(|u| (id_of(&u), Json::Object(u))).collect());
        }
        let prior = self.resumed.lock().ok().and_then(|r| r.as_ref().and_then(|s| s.users.clone()));
        let round = self.delta_round(prior, fingerprint, "users", select, false).await?;
        let items = round.items.clone();
        if let Ok(mut c) = self.current.lock() {
            c.get_or_insert_with(Saved::default).users = Some(round);
        }
        Ok(items)
    }

    /// One delta round: from the kept link when it is for this read, else from the start; a
    /// link Graph says has expired is read again from the start.
    async fn delta_round(
        &self,
        prior: Option<Round>,
        fingerprint: String,
        what: &str,
        select: &str,
        groups: bool,
    ) -> Result<Round, TargetError> {
        let prior = prior.filter(|p| p.fingerprint == fingerprint).filter(|p| {
            let intact = p.intact();
            if !intact {
                tracing::warn!(
                    what,
                    "the kept delta state does not hold what its read ended with: reading everything again"
                );
            }
            intact
        });
        let prior = match prior {
            Some(p) => match self.at_graph(&p.link) {
                Some(link) => Some(Round { link, ..p }),
                None => {
                    tracing::warn!(what, "the kept delta link is not a Graph address: reading everything again");
                    None
                }
            },
            None => None,
        };
        if let Some(p) = prior {
            let req = Request::new(Method::GET, p.link.clone(), format!("read the {what} changed since the last run"));
            match self.pages(req).await {
                Ok((changes, Some(link))) => {
                    let mut items = p.items;
                    snapshot::merge(&mut items, changes, groups);
                    tracing::debug!(what, "read by the delta query");
                    return Ok(Round::new(fingerprint, link, items));
                }
                Ok((_, None)) => {
                    return Err(TargetError::unavailable(format!(
                        "read the {what} changed since the last run: the round ended without a delta link; nothing is \
                         planned on a partial read"
                    )));
                }
                Err(e) if e.status() == Some(410) => {
                    tracing::info!(what, "the delta link expired (410): reading everything again");
                }
                Err(e) => return Err(into_target(e)),
            }
        }
        let req = Request::new(Method::GET, format!("{what}/delta"), format!("read every one of the {what}"))
            .query("$select", select);
        let (all, link) = self.pages(req).await.map_err(into_target)?;
        let Some(link) = link else {
            return Err(TargetError::unavailable(format!(
                "read every one of the {what}: the round ended without a delta link; nothing is planned on a partial read"
            )));
        };
        let mut items = BTreeMap::new();
        snapshot::merge(&mut items, all, groups);
        Ok(Round::new(fingerprint, link, items))
    }

    fn account(&self, u: &Map<String, Json>, attrs: &[connector_api::Name]) -> ObservedAccount {
        let id = id_of(u);
        let upn = u.get("userPrincipalName").and_then(Json::as_str).unwrap_or_default();
        let (username, outdated) = match upn.rsplit_once('@') {
            Some((local, d)) if d.eq_ignore_ascii_case(&self.config.upn_suffix) => (local.to_string(), false),
            _ => (upn.to_string(), true),
        };
        let synced = u.get("onPremisesSyncEnabled").and_then(Json::as_bool) == Some(true);
        let mut mapped = Attrs::new();
        for a in attrs {
            // A synchronised user's extension attributes come from AD: never read as enid's mark.
            if synced && a.eq_ignore_ascii_case(&self.owner) {
                continue;
            }
            if let Some(v) = read(u, a) {
                mapped.insert(a.clone(), v);
            }
        }
        let mut account = ObservedAccount::new(&id, Some(&id), Some(&username), mapped.into());
        account.disabled = u.get("accountEnabled").and_then(Json::as_bool) == Some(false);
        account.username_outdated = outdated && !synced;
        account.set_foreign(synced.then(|| SYNCED.to_string()));
        account
    }

    /// The soft-deleted users, read once.
    async fn deleted_users(&self) -> Result<Vec<Map<String, Json>>, TargetError> {
        let mut d = self.deleted.lock().await;
        if let Some(list) = d.as_ref() {
            return Ok(list.clone());
        }
        let select = "id,userPrincipalName,onPremisesSyncEnabled,onPremisesExtensionAttributes,deletedDateTime";
        let req = Request::new(Method::GET, "directory/deletedItems/microsoft.graph.user", "list deleted users")
            .query("$select", select)
            .query("$top", "999");
        let (list, _) = self.pages(req).await.map_err(into_target)?;
        *d = Some(list.clone());
        Ok(list)
    }

    /// The enid id a user carries.
    fn owner_of(&self, u: &Map<String, Json>) -> Option<String> {
        u.get("onPremisesExtensionAttributes")?.get(&self.extension)?.as_str().map(str::to_string)
    }

    /// A new user's JSON.
    fn user_body(&self, account: &AccountSpec) -> Result<Json, TargetError> {
        let Some(password) = &account.initial_password else {
            return Err(TargetError::rejected(
                RejectKind::Other,
                format!("create user {}: no first password was made for it", account.id),
            ));
        };
        let mut body = self.fields(account);
        let handed_out = self.caps.initial_password.is_some_and(|p| p.handed_out);
        body.insert(
            "passwordProfile".into(),
            json!({"password": password.expose(),
                   "forceChangePasswordNextSignIn": handed_out && self.config.force_password_change}),
        );
        Ok(Json::Object(body))
    }

    /// What a user should hold, but the password: for a create, or to bring a restored user
    /// up to date.
    fn fields(&self, account: &AccountSpec) -> Map<String, Json> {
        let mut body = Map::new();
        write(&mut body, &account.attrs.as_attrs());
        if !body.contains_key("displayName") {
            body.insert("displayName".into(), Json::String(account.display_name.to_string()));
        }
        body.insert("userPrincipalName".into(), Json::String(self.upn(&account.username)));
        body.insert("mailNickname".into(), Json::String(mail_nickname(&account.username)));
        body.insert("accountEnabled".into(), Json::Bool(account.enabled));
        body.insert("usageLocation".into(), Json::String(self.config.usage_location.clone()));
        let ext = body.entry("onPremisesExtensionAttributes").or_insert_with(|| Json::Object(Map::new()));
        if let Some(o) = ext.as_object_mut() {
            o.insert(self.extension.clone(), Json::String(account.id.to_string()));
        }
        body
    }

    /// A soft-deleted user carrying this person's enid id, to restore in place of a create. Of
    /// two such (one a copy made by hand), the one holding the person's UPN; else the one
    /// deleted last (Graph lists `deletedDateTime`).
    async fn deleted_with(&self, account: &AccountSpec) -> Result<Option<String>, TargetError> {
        // A synchronised user's extension attributes come from AD: never enid's mark, and it is
        // never restored or written by enid (Entra Connect owns it).
        let deleted = self.deleted_users().await?;
        let mut theirs: Vec<&Map<String, Json>> = deleted
            .iter()
            .filter(|u| u.get("onPremisesSyncEnabled").and_then(Json::as_bool) != Some(true))
            .filter(|u| self.owner_of(u).as_deref() == Some(&*account.id))
            .collect();
        let upn = self.upn(&account.username).to_lowercase();
        let holds_upn = |u: &Map<String, Json>| {
            u.get("userPrincipalName").and_then(Json::as_str).is_some_and(|x| x.to_lowercase().ends_with(&upn))
        };
        let when = |u: &Map<String, Json>| u.get("deletedDateTime").and_then(Json::as_str).unwrap_or("").to_string();
        theirs.sort_by(|a, b| holds_upn(b).cmp(&holds_upn(a)).then_with(|| when(b).cmp(&when(a))));
        if theirs.len() > 1 {
            tracing::warn!(
                identity = %account.id,
                users = theirs.len(),
                "several deleted users carry this enid id; the one holding the person's UPN (else the last deleted) is \
                 restored"
            );
        }
        Ok(theirs.first().map(|u| id_of(u)))
    }

    async fn restore(&self, old: &str, account: &AccountSpec) -> Result<OpOutcome, TargetError> {
        let req = Request::new(
            Method::POST,
            format!("directory/deletedItems/{}/restore", path_segment(old)),
            format!("restore deleted user {old} for {}", account.id),
        );
        self.call(&req).await?;
        if let Some(list) = self.deleted.lock().await.as_mut() {
            list.retain(|u| id_of(u) != old);
        }
        tracing::info!(user = %old, identity = %account.id, "restored the deleted user instead of making a new one");
        let req =
            Request::new(Method::PATCH, format!("users/{}", path_segment(old)), format!("update restored user {old}"))
                .json(Json::Object(self.fields(account)));
        self.call(&req).await?;
        Ok(OpOutcome::Created { key: old.to_string(), anchor: Some(old.to_string()) })
    }

    /// The one request an account operation is, with what its success means; `None` for an
    /// operation that is not one request.
    fn request_of(&self, op: &TargetOp) -> Result<Option<OneRequest>, TargetError> {
        let user = |k: &str| format!("users/{}", path_segment(k));
        Ok(Some(match op {
            TargetOp::Create { account } => {
                (Method::POST, "users".into(), Some(self.user_body(account)?), format!("create user {}", account.id))
            }
            TargetOp::Rename { key, username } => (
                Method::PATCH,
                user(key),
                Some(json!({"userPrincipalName": self.upn(username), "mailNickname": mail_nickname(username)})),
                format!("rename user {key}"),
            ),
            TargetOp::Update { key, changes } => {
                (Method::PATCH, user(key), Some(self.update_body(changes)), format!("update user {key}"))
            }
            TargetOp::Disable { key } => {
                (Method::PATCH, user(key), Some(json!({"accountEnabled": false})), format!("disable user {key}"))
            }
            TargetOp::Enable { key } => {
                (Method::PATCH, user(key), Some(json!({"accountEnabled": true})), format!("enable user {key}"))
            }
            TargetOp::Delete { key } => (Method::DELETE, user(key), None, format!("delete user {key}")),
            _ => return Ok(None),
        }))
    }

    fn update_body(&self, changes: &[AttrChange]) -> Json {
        let mut body = Map::new();
        for c in changes {
            let (top, rest) = c.attr.split_once('.').unwrap_or((c.attr.as_str(), ""));
            let value = if c.values.is_empty() { Json::Null } else { to_json(&c.values) };
            if rest.is_empty() {
                body.insert(top.to_string(), value);
            } else if let Some(o) =
                body.entry(top.to_string()).or_insert_with(|| Json::Object(Map::new())).as_object_mut()
            {
                o.insert(rest.to_string(), value);
            }
        }
        Json::Object(body)
    }

    /// What an account operation's success is.
    fn outcome(op: &TargetOp, body: &Json) -> Result<OpOutcome, TargetError> {
        Ok(match op {
            TargetOp::Create { account } => {
                let id = body.get("id").and_then(Json::as_str).ok_or_else(|| {
                    TargetError::unavailable(format!("create user {}: the answer has no id", account.id))
                })?;
                OpOutcome::Created { key: id.to_string(), anchor: Some(id.to_string()) }
            }
            TargetOp::Rename { key, .. } => OpOutcome::Renamed { key: key.clone() },
            TargetOp::Disable { key } => OpOutcome::Disabled { key: key.clone() },
            TargetOp::Enable { key } => OpOutcome::Enabled { key: key.clone() },
            TargetOp::Delete { .. } => OpOutcome::Deleted,
            _ => OpOutcome::Updated,
        })
    }

    async fn apply_one(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        if let TargetOp::Create { account } = op
            && let Some(old) = self.deleted_with(account).await?
        {
            return self.restore(&old, account).await;
        }
        if let Some((method, path, body, what)) = self.request_of(op)? {
            let mut req = Request::new(method, path, what);
            if let Some(b) = body {
                req = req.json(b);
            }
            return match self.http.send(&req).await {
                Ok(r) => Self::outcome(op, &r.body),
                Err(e) if e.status() == Some(404) && matches!(op, TargetOp::Delete { .. }) => Ok(OpOutcome::Deleted),
                Err(e) => Err(into_target(e)),
            };
        }
        self.group_op(op).await
    }

    async fn group_op(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        match op {
            TargetOp::CreateGroup { name, members } => {
                let prefix = self.config.groups.as_ref().map(|g| g.mail_nickname_prefix.as_str()).unwrap_or("");
                let (first, rest) = members.split_at(members.len().min(BIND_MAX));
                let body = json!({
                    "displayName": name, "mailNickname": format!("{prefix}{}", mail_nickname(name)),
                    "securityEnabled": true, "mailEnabled": false, "description": "Made by enid",
                    "members@odata.bind": first.iter().map(|m| self.bind(m)).collect::<Vec<_>>(),
                });
                let req = Request::new(Method::POST, "groups", format!("create group {name}")).json(body);
                let answer = self.call(&req).await?;
                let id = answer
                    .get("id")
                    .and_then(Json::as_str)
                    .ok_or_else(|| TargetError::unavailable(format!("create group {name}: the answer has no id")))?
                    .to_string();
                // The rest of the members; one that fails leaves the group made, completed next run.
                self.add_members(&id, rest).await?;
                Ok(OpOutcome::Created { key: id.clone(), anchor: Some(id) })
            }
            TargetOp::AddMembers { key, members } => {
                self.add_members(key, members).await?;
                Ok(OpOutcome::Updated)
            }
            TargetOp::RemoveMembers { key, members } => {
                for m in members {
                    let path = format!("groups/{}/members/{}/$ref", path_segment(key), path_segment(m));
                    let req = Request::new(Method::DELETE, path, format!("remove {m} from group {key}"));
                    match self.http.send(&req).await {
                        Ok(_) => {}
                        Err(e) if e.status() == Some(404) => {}
                        Err(e) => return Err(into_target(e)),
                    }
                }
                Ok(OpOutcome::Updated)
            }
            TargetOp::DeleteGroup { key } => {
                let req = Request::new(
                    Method::DELETE,
                    format!("groups/{}", path_segment(key)),
                    format!("delete group {key}"),
                );
                match self.http.send(&req).await {
                    Ok(_) => Ok(OpOutcome::Deleted),
                    Err(e) if e.status() == Some(404) => Ok(OpOutcome::Deleted),
                    Err(e) => Err(into_target(e)),
                }
            }
            other => Err(TargetError::rejected(
                RejectKind::Other,
                format!("{other:?}: Entra places no accounts (there are no containers to move between)"),
            )),
        }
    }

    /// A member reference for `members@odata.bind`.
    fn bind(&self, id: &str) -> String {
        format!("{}/directoryObjects/{}", self.config.graph_url.trim_end_matches('/'), path_segment(id))
    }

    /// Adds members, 20 a request; when one of them is in already, one by one (one in already is
    /// what the add was for).
    async fn add_members(&self, group: &str, members: &[String]) -> Result<(), TargetError> {
        for chunk in members.chunks(BIND_MAX) {
            let body = json!({"members@odata.bind": chunk.iter().map(|m| self.bind(m)).collect::<Vec<_>>()});
            let req = Request::new(
                Method::PATCH,
                format!("groups/{}", path_segment(group)),
                format!("add members to group {group}"),
            )
            .json(body);
            match self.http.send(&req).await {
                Ok(_) => continue,
                Err(e) if e.status() == Some(400) && e.to_string().contains("already exist") => {}
                Err(e) => return Err(into_target(e)),
            }
            for m in chunk {
                let req = Request::new(
                    Method::POST,
                    format!("groups/{}/members/$ref", path_segment(group)),
                    format!("add {m} to group {group}"),
                )
                .json(json!({"@odata.id": self.bind(m)}));
                match self.http.send(&req).await {
                    Ok(_) => {}
                    Err(e) if e.status() == Some(400) && e.to_string().contains("already exist") => {}
                    Err(e) => return Err(into_target(e)),
                }
            }
        }
        Ok(())
    }
}

/// A failure of the shared client as the engine's error; a UPN another object holds is an
/// existing entry (Graph says so with a 400).
fn into_target(e: HttpError) -> TargetError {
    if e.status() == Some(400) && e.to_string().contains(TAKEN) {
        return TargetError::rejected(RejectKind::Exists, e.to_string());
    }
    e.into_target()
}

fn broken(what: &str, why: &str) -> HttpError {
    connector_http::HttpFailure::from_status(
        502,
        None,
        format!("{why}; nothing is planned on a partial read").as_bytes(),
    )
    .with(what)
}

fn id_of(u: &Map<String, Json>) -> String {
    u.get("id").and_then(Json::as_str).unwrap_or_default().to_string()
}

/// A `mailNickname` from a name: ASCII letters, digits and `. - _`, at most 64.
fn mail_nickname(name: &str) -> String {
    let mut s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '-' }).collect();
    s.truncate(64);
    if s.is_empty() { "user".into() } else { s }
}

/// enid's value as Graph JSON: texts of one value as a string, several as a list.
fn to_json(v: &Value) -> Json {
    connector_http::json::to_json(v, true)
}

/// A user's attribute as enid's value, at its path (`onPremisesExtensionAttributes.extensionAttribute15`).
fn read(u: &Map<String, Json>, attr: &str) -> Option<Value> {
    let mut parts = attr.split('.');
    let first = parts.next()?;
    let mut here = u.get(first).or_else(|| u.iter().find(|(k, _)| k.eq_ignore_ascii_case(first)).map(|(_, v)| v))?;
    for p in parts {
        here = here.get(p)?;
    }
    connector_http::json::to_value(here)
}

/// Puts enid's attributes into a user's JSON body, a dotted name into its complex property.
fn write(body: &mut Map<String, Json>, attrs: &Attrs) {
    for (attr, v) in attrs {
        if v.is_empty() {
            continue;
        }
        let (top, rest) = attr.split_once('.').unwrap_or((attr.as_str(), ""));
        if rest.is_empty() {
            body.insert(top.to_string(), to_json(v));
        } else if let Some(o) = body.entry(top.to_string()).or_insert_with(|| Json::Object(Map::new())).as_object_mut()
        {
            o.insert(rest.to_string(), to_json(v));
        }
    }
}

impl Target for EntraTarget {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn scope(&self) -> String {
        format!("the users of tenant {}", self.config.tenant_id)
    }

    fn group_scope(&self) -> String {
        let prefix = self.config.groups.as_ref().map(|g| g.mail_nickname_prefix.as_str()).unwrap_or("");
        format!("the security groups {prefix}* of tenant {}", self.config.tenant_id)
    }

    async fn check(&self) -> Result<String, TargetError> {
        let req = Request::new(Method::GET, "users", "list users").query("$top", "1").query("$select", "id");
        self.call(&req).await?;
        Ok(format!(
            "connected to {}, token for app {} in tenant {}",
            self.config.graph_url, self.config.client_id, self.config.tenant_id
        ))
    }

    fn resume(&self, state: Option<String>) {
        let saved = state.and_then(|s| match serde_json::from_str::<Saved>(&s) {
            Ok(v) if v.version == snapshot::VERSION => Some(v),
            _ => {
                tracing::info!("the kept delta state does not read: reading everything again");
                None
            }
        });
        if let Ok(mut r) = self.resumed.lock() {
            *r = saved;
        }
        if let Ok(mut c) = self.current.lock() {
            *c = None;
        }
    }

    fn saved_state(&self) -> Option<String> {
        let current = self.current.lock().ok()?.clone()?;
        // A read of users alone keeps the groups' round it did not redo.
        let resumed = self.resumed.lock().ok()?.clone();
        let mut keep = current;
        if keep.groups.is_none() {
            keep.groups = resumed.as_ref().and_then(|s| s.groups.clone());
        }
        // Nothing changed since what is kept (a no-op run of the service): the state is not
        // written again, whole, for nothing.
        let same = |a: &Option<Round>, b: &Option<Round>| match (a, b) {
            (Some(a), Some(b)) => a.fingerprint == b.fingerprint && a.link == b.link && a.digest == b.digest,
            (None, None) => true,
            _ => false,
        };
        if let Some(r) = &resumed
            && same(&keep.users, &r.users)
            && same(&keep.groups, &r.groups)
        {
            return None;
        }
        serde_json::to_string(&keep).ok()
    }

    async fn observe(&self, attrs: &[String]) -> Result<Vec<ObservedAccount>, TargetError> {
        // Deleted users are read again when a create needs them.
        *self.deleted.lock().await = None;
        let users = self.read_users(&self.user_select(attrs)).await?;
        let names = connector_api::Name::all(attrs);
        Ok(users.values().filter_map(Json::as_object).map(|u| self.account(u, &names)).collect())
    }

    async fn observe_at(&self, key: &str, attrs: &[String]) -> Result<Option<ObservedAccount>, TargetError> {
        let req = Request::new(Method::GET, format!("users/{}", path_segment(key)), format!("read user {key}"))
            .query("$select", self.user_select(attrs));
        match self.http.send(&req).await {
            Ok(r) => Ok(r.body.as_object().map(|u| self.account(u, &connector_api::Name::all(attrs)))),
            Err(e) if e.status() == Some(404) || e.status() == Some(400) => Ok(None),
            Err(e) => Err(into_target(e)),
        }
    }

    async fn observe_where(
        &self,
        field: connector_api::Field<'_>,
        values: &[String],
        attrs: &[String],
    ) -> Result<Option<Vec<ObservedAccount>>, TargetError> {
        use connector_api::Field;
        let (path, fold) = match field {
            Field::Owner => (format!("onPremisesExtensionAttributes/{}", self.extension), false),
            Field::Username => ("userPrincipalName".to_string(), true),
            // Graph filters few properties on their own: the engine reads everything instead.
            Field::Attribute(_) => return Ok(None),
        };
        if values.len() > LOOKUP_ONE_BY_ONE {
            return Ok(None);
        }
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let names = connector_api::Name::all(attrs);
        for v in values {
            let value = if fold { self.upn(v) } else { v.clone() };
            let filter = format!("{path} eq '{}'", value.replace('\'', "''"));
            // An extension attribute is filtered by Graph's advanced queries only.
            let req = Request::new(Method::GET, "users", format!("look up users by {path}"))
                .query("$filter", filter)
                .query("$select", self.user_select(attrs))
                .query("$count", "true")
                .header("ConsistencyLevel", "eventual");
            let (users, _) = self.pages(req).await.map_err(into_target)?;
            for u in users {
                let a = self.account(&u, &names);
                let hit = match field {
                    Field::Username => a.username().is_some_and(|x| x.eq_ignore_ascii_case(v)),
                    _ => a.attrs.texts(&self.owner).next() == Some(v.as_str()),
                };
                if hit && seen.insert(a.key().to_owned()) {
                    out.push(a);
                }
            }
        }
        Ok(Some(out))
    }

    async fn observe_groups(&self) -> Result<Vec<ObservedGroup>, TargetError> {
        let Some(g) = &self.config.groups else { return Ok(Vec::new()) };
        let prefix = g.mail_nickname_prefix.to_lowercase();
        let select = "id,displayName,mailNickname,members";
        let groups: BTreeMap<String, Json> = if self.config.delta {
            let fingerprint = self.fingerprint("groups", select);
            let prior = self.resumed.lock().ok().and_then(|r| r.as_ref().and_then(|s| s.groups.clone()));
            let round = self.delta_round(prior, fingerprint, "groups", select, true).await?;
            let items = round.items.clone();
            if let Ok(mut c) = self.current.lock() {
                c.get_or_insert_with(Saved::default).groups = Some(round);
            }
            items
        } else {
            let req =
                Request::new(Method::GET, "groups", "list groups").query("$select", "id,displayName,mailNickname");
            let (list, _) = self.pages(req).await.map_err(into_target)?;
            let mut out = BTreeMap::new();
            for mut g in list {
                let id = id_of(&g);
                let req = Request::new(
                    Method::GET,
                    format!("groups/{}/members", path_segment(&id)),
                    format!("list members of {id}"),
                )
                .query("$select", "id");
                let (members, _) = self.pages(req).await.map_err(into_target)?;
                g.insert("members".into(), Json::Array(members.iter().map(|m| Json::String(id_of(m))).collect()));
                out.insert(id, Json::Object(g));
            }
            out
        };
        Ok(groups
            .into_iter()
            .filter(|(_, g)| {
                g.get("mailNickname").and_then(Json::as_str).is_some_and(|n| n.to_lowercase().starts_with(&prefix))
            })
            .map(|(id, g)| ObservedGroup {
                key: id.clone(),
                anchor: Some(id),
                name: g.get("displayName").and_then(Json::as_str).unwrap_or_default().to_string(),
                members: g
                    .get("members")
                    .and_then(Json::as_array)
                    .map(|m| m.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
            })
            .collect())
    }

    async fn find_outside_scope(
        &self,
        lookup: Lookup,
        values: &[String],
    ) -> Result<Vec<(String, String)>, TargetError> {
        // Every user of the tenant is in scope; only deleted ones are outside, and of those
        // only their UPNs matter (a returning person's is restored by its enid id at create).
        if lookup != Lookup::Username || values.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: HashMap<String, &String> = values.iter().map(|v| (self.upn(v).to_lowercase(), v)).collect();
        Ok(self
            .deleted_users()
            .await?
            .iter()
            .filter_map(|u| {
                let upn = u.get("userPrincipalName").and_then(Json::as_str)?.to_lowercase();
                // Graph renames a deleted user's UPN to id+UPN in places; both are held.
                let bare = upn.strip_prefix(&id_of(u).replace('-', "")).unwrap_or(&upn).to_string();
                let v = wanted.get(&upn).or_else(|| wanted.get(&bare))?;
                Some((id_of(u), (*v).clone()))
            })
            .collect())
    }

    async fn apply(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        self.apply_one(op).await
    }

    async fn apply_batch(&self, ops: &[TargetOp]) -> Vec<Result<OpOutcome, TargetError>> {
        if ops.len() < 2 || self.config.batch_size < 2 {
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                out.push(self.apply_one(op).await);
            }
            return out;
        }
        self.batch(ops).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_only_ever_followed_to_graph_url() {
        let config: EntraConfig = toml::from_str(
            "tenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"X\"\nupn_suffix = \"s.example.org\"\n\
             graph_url = \"https://gw.example.org/graph/v1.0\"",
        )
        .unwrap();
        let credentials = connector_http::Credentials::Secret {
            client_id: "c".into(),
            client_secret: connector_api::Secret::new("s"),
            client_auth: connector_http::ClientAuth::Form,
        };
        let t = EntraTarget::new(config, credentials).unwrap();
        let same = "https://GW.example.org/graph/v1.0/users/delta?$deltatoken=1";
        assert_eq!(t.at_graph(same).as_deref(), Some(same));
        for away in [
            "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=1",
            "https://gw.example.org@evil.example/v1.0/users/delta?$deltatoken=1",
            "http://gw.example.org/v1.0/users/delta?$deltatoken=1",
        ] {
            assert_eq!(
                t.at_graph(away).as_deref(),
                Some("https://gw.example.org/graph/v1.0/users/delta?$deltatoken=1"),
                "{away}"
            );
        }
        assert_eq!(t.at_graph("https://evil.example/steal?x=1"), None);
        assert_eq!(t.at_graph("users/delta"), None);
    }

    #[test]
    fn names_and_values_as_graph_takes_them() {
        assert_eq!(mail_nickname("S1-7A åk"), "S1-7A--k");
        assert_eq!(mail_nickname(""), "user");
        let mut attrs = Attrs::new();
        attrs.insert("givenName", Value::text("Anna"));
        attrs.insert("onPremisesExtensionAttributes.extensionAttribute15", Value::text("0f8f"));
        let mut body = Map::new();
        write(&mut body, &attrs);
        let j = Json::Object(body.clone());
        assert_eq!(j["onPremisesExtensionAttributes"]["extensionAttribute15"], "0f8f", "{j}");
        for (a, v) in &attrs {
            assert_eq!(read(&body, a).as_ref(), Some(v));
        }
        let e = connector_http::HttpFailure::from_status(
            400,
            None,
            br#"{"error":{"code":"Request_BadRequest","message":"Another object with the same value for property userPrincipalName already exists."}}"#,
        )
        .with("create user x");
        assert_eq!(into_target(e).reject_kind(), Some(RejectKind::Exists));
    }
}
