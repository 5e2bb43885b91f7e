//! Target connector for LDAP directories (OpenLDAP; Active Directory comes later).
//!
//! Accounts live as entries `<rdn_attribute>=<username>,<base_dn>`. The connector observes them
//! with a paged subtree search, creates them with a Post-Read control (RFC 4527) so the engine
//! learns the `entryUUID` anchor in the same round trip, changes only the attributes it is told
//! to in one modify, and disables reversibly: by moving the entry to a disabled OU, or by setting
//! an attribute. All operations share one connection, so several can be in flight at once.

mod error;

use connector_api::{Attrs, ObservedAccount, ObservedGroup, OpOutcome, Secret, Target, TargetError, TargetOp};
use error::{from_ldap, from_result};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::controls::{PostRead, PostReadResp};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry, dn_escape};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// `[targets.<id>]` with `type = "ldap"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// PEM file with the CA certificates that sign the server's certificate. The system's
    /// trust store is used when left out.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Turns certificate verification off. Only for tests; never in production.
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
    /// The DN enid binds as.
    pub bind_dn: String,
    /// File holding the bind password (preferred).
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Environment variable holding the bind password, when a file cannot be used.
    #[serde(default)]
    pub bind_password_env: Option<String>,
    /// The container of the accounts enid manages; searched with subtree scope.
    pub base_dn: String,
    /// The attribute that names an entry in its DN.
    #[serde(default = "default_rdn_attribute")]
    pub rdn_attribute: String,
    /// Object classes of created accounts.
    #[serde(default = "default_object_classes")]
    pub object_classes: Vec<String>,
    /// The filter that selects accounts under `base_dn`.
    #[serde(default = "default_filter")]
    pub filter: String,
    /// Entries per page of a search.
    #[serde(default = "default_page_size")]
    pub page_size: i32,
    /// Operations in flight at once on the connection.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Time allowed for connecting and for each operation.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// How accounts are disabled. Default: moved to `ou=disabled,<base_dn>`.
    #[serde(default)]
    pub disable: DisableMethod,
    /// The longest username this directory takes (for example 20 for an AD `sAMAccountName`).
    /// Usernames are the same on every target, so the shortest limit of all targets applies.
    #[serde(default)]
    pub max_username_length: Option<usize>,
    /// Attribute name → template. Adds to or overrides the default mapping; an empty template
    /// removes a default attribute.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// School and class groups (`groupOfNames`); none when left out.
    #[serde(default)]
    pub groups: Option<GroupsConfig>,
    /// How much one plan may change before it is held for review.
    #[serde(default)]
    pub thresholds: connector_api::Thresholds,
    /// Accounts enid never touches.
    #[serde(default)]
    pub exclude: connector_api::Exclude,
    /// What the directory holds for persons with protected personal data.
    #[serde(default)]
    pub protected: connector_api::ProtectedPolicy,
}

/// `[targets.<id>.groups]`: groups made from the sources' school units and groups.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GroupsConfig {
    /// The container of the groups enid creates (it must exist).
    pub base_dn: String,
    /// Name template of a class or teaching group; variables `school_unit` and `group`.
    #[serde(default = "default_group_name")]
    pub name: String,
    /// Name template of a group per school unit (all its members); variable `school_unit`.
    /// Empty (the default): no school groups.
    #[serde(default)]
    pub school_name: String,
    /// Which roles become members.
    #[serde(default = "default_group_roles")]
    pub members: Vec<String>,
    /// `groupOfNames` (members by DN, the default) or `posixGroup` (members by username in
    /// `memberUid`, with a `gidNumber`).
    #[serde(default)]
    pub object_class: GroupClass,
    /// The first `gidNumber` enid gives a posixGroup; later ones count up from the highest in use.
    #[serde(default = "default_gid_start")]
    pub gid_number_start: u32,
}

/// The kind of group entry.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum GroupClass {
    #[default]
    #[serde(rename = "groupOfNames")]
    GroupOfNames,
    #[serde(rename = "posixGroup")]
    PosixGroup,
}

impl GroupClass {
    fn object_class(self) -> &'static str {
        match self {
            GroupClass::GroupOfNames => "groupOfNames",
            GroupClass::PosixGroup => "posixGroup",
        }
    }

    /// The attribute that lists members.
    fn member_attr(self) -> &'static str {
        match self {
            GroupClass::GroupOfNames => "member",
            GroupClass::PosixGroup => "memberUid",
        }
    }

    /// Whether members are named by username rather than by account key.
    pub fn members_by_username(self) -> bool {
        self == GroupClass::PosixGroup
    }
}

fn default_gid_start() -> u32 {
    100_000
}

fn default_group_name() -> String {
    "{{ school_unit }}-{{ group }}".into()
}
fn default_group_roles() -> Vec<String> {
    vec!["student".into(), "staff".into()]
}

/// How a disabled account is marked. Both ways are undone by an enable.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum DisableMethod {
    /// Move the entry to another container; `ou` defaults to `ou=disabled,<base_dn>` and is
    /// created when missing.
    Move {
        #[serde(default)]
        ou: Option<String>,
    },
    /// Set an attribute to a value (for example `pwdAccountLockedTime = "000001010000Z"` with
    /// the ppolicy overlay); removed again on enable.
    Attribute { attribute: String, value: String },
}

impl Default for DisableMethod {
    fn default() -> Self {
        DisableMethod::Move { ou: None }
    }
}

fn default_rdn_attribute() -> String {
    "uid".into()
}
fn default_object_classes() -> Vec<String> {
    ["top", "person", "organizationalPerson", "inetOrgPerson"].map(String::from).to_vec()
}
fn default_filter() -> String {
    "(objectClass=inetOrgPerson)".into()
}
fn default_page_size() -> i32 {
    1000
}
fn default_in_flight() -> usize {
    8
}
fn default_timeout_secs() -> u64 {
    30
}

impl LdapConfig {
    /// Checks what can be checked without a network: URL scheme and DN shapes.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.url.starts_with("ldap://") || self.url.starts_with("ldaps://") || self.url.starts_with("ldapi://")) {
            return Err(format!("url {:?} must start with ldap://, ldaps:// or ldapi://", self.url));
        }
        if self.starttls && !self.url.starts_with("ldap://") {
            return Err("starttls = true needs an ldap:// url".into());
        }
        if !self.base_dn.contains('=') {
            return Err(format!("base_dn {:?} is not a DN", self.base_dn));
        }
        if self.page_size <= 0 || self.max_in_flight == 0 {
            return Err("page_size and max_in_flight must be at least 1".into());
        }
        Ok(())
    }

    /// The container of disabled accounts, when disabling moves them.
    pub fn disabled_ou(&self) -> Option<String> {
        match &self.disable {
            DisableMethod::Move { ou } => Some(self.move_to(ou)),
            DisableMethod::Attribute { .. } => None,
        }
    }

    /// The OU disabled accounts move to under `method = "move"`: the configured one, else
    /// `ou=disabled,<base_dn>`.
    fn move_to(&self, ou: &Option<String>) -> String {
        ou.clone().unwrap_or_else(|| format!("ou=disabled,{}", self.base_dn))
    }
}

/// Normalises a DN for comparison: lowercase, no spaces around separators.
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push_str(k.trim());
        out.push('=');
        out.push_str(v.trim());
    }
    out.to_lowercase()
}

/// The first RDN of a DN, and the rest.
fn split_rdn(dn: &str) -> (&str, &str) {
    let bytes = dn.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b',' => return (&dn[..i], &dn[i + 1..]),
            _ => i += 1,
        }
    }
    (dn, "")
}

/// An LDAP directory as an enid target.
#[derive(Debug)]
pub struct LdapTarget {
    config: LdapConfig,
    password: Secret,
    conn: Mutex<Option<Ldap>>,
    disabled_ou_norm: Option<String>,
    disabled_ou_ready: Mutex<bool>,
    /// The next free posixGroup `gidNumber`, found on first use.
    next_gid: Mutex<Option<u32>>,
}

impl LdapTarget {
    pub fn new(config: LdapConfig, password: Secret) -> Self {
        let disabled_ou_norm = config.disabled_ou().map(|d| normalize_dn(&d));
        LdapTarget {
            config,
            password,
            conn: Mutex::new(None),
            disabled_ou_norm,
            disabled_ou_ready: Mutex::new(false),
            next_gid: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &LdapConfig {
        &self.config
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs)
    }

    fn settings(&self) -> Result<LdapConnSettings, TargetError> {
        let mut s = LdapConnSettings::new().set_conn_timeout(self.timeout()).set_starttls(self.config.starttls);
        if self.config.tls_insecure_skip_verify {
            s = s.set_no_tls_verify(true);
        } else if let Some(ca) = &self.config.tls_ca_file {
            s = s.set_config(Arc::new(tls_config_with_ca(ca)?));
        }
        Ok(s)
    }

    /// A handle on the shared connection, connecting and binding first when there is none.
    async fn ldap(&self) -> Result<Ldap, TargetError> {
        let mut guard = self.conn.lock().await;
        if let Some(ldap) = guard.as_mut()
            && !ldap.is_closed()
        {
            return Ok(ldap.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(self.settings()?, &self.config.url)
            .await
            .map_err(|e| from_ldap(e, &format!("connect to {}", self.config.url)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended");
            }
        });
        ldap.with_timeout(self.timeout())
            .simple_bind(&self.config.bind_dn, self.password.expose())
            .await
            .map_err(|e| from_ldap(e, "bind"))
            .and_then(|r| from_result(r, &format!("bind as {}", self.config.bind_dn)))?;
        *guard = Some(ldap.clone());
        Ok(ldap)
    }

    /// Forgets a connection that failed, so the next operation connects afresh. Only
    /// `Unavailable` says the connection may be broken: a busy server (`Throttled`) and a refusal
    /// came back over a working one.
    async fn reset(&self, err: &TargetError) {
        if matches!(err, TargetError::Unavailable { .. }) {
            *self.conn.lock().await = None;
        }
    }

    fn is_disabled(&self, dn_norm: &str, attrs: &HashMap<String, Vec<String>>) -> bool {
        match &self.config.disable {
            DisableMethod::Move { .. } => {
                let ou = self.disabled_ou_norm.as_deref().unwrap_or("");
                dn_norm.ends_with(&format!(",{ou}"))
            }
            DisableMethod::Attribute { attribute, value } => attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(attribute))
                .is_some_and(|(_, v)| v.iter().any(|x| x == value)),
        }
    }

    async fn search_all(&self, base: &str, attrs: &[String]) -> Result<Vec<ObservedAccount>, TargetError> {
        let mut ldap = self.ldap().await?;
        let adapters: Vec<Box<dyn Adapter<_, _>>> =
            vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(self.config.page_size))];
        let mut stream = ldap
            .with_timeout(self.timeout())
            .streaming_search_with(adapters, base, Scope::Subtree, &self.config.filter, attrs.to_vec())
            .await
            .map_err(|e| from_ldap(e, &format!("search {base}")))?;
        let wanted: HashMap<String, &String> = attrs.iter().map(|a| (a.to_ascii_lowercase(), a)).collect();
        let rdn = self.config.rdn_attribute.to_ascii_lowercase();
        let mut out = Vec::new();
        loop {
            let entry = match stream.next().await {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => return Err(from_ldap(e, &format!("search {base}"))),
            };
            let entry = SearchEntry::construct(entry);
            let dn_norm = normalize_dn(&entry.dn);
            let disabled = self.is_disabled(&dn_norm, &entry.attrs);
            let mut mapped = Attrs::new();
            let mut anchor = None;
            let mut username = None;
            for (name, values) in entry.attrs {
                let lower = name.to_ascii_lowercase();
                if lower == "entryuuid" {
                    anchor = values.first().cloned();
                }
                if lower == rdn {
                    username = values.first().cloned();
                }
                if let Some(requested) = wanted.get(&lower) {
                    // Keep the server's name when it is spelt as requested: no copy.
                    let key = if name == **requested { name } else { (*requested).clone() };
                    mapped.insert(key, values);
                }
            }
            out.push(ObservedAccount { key: entry.dn, anchor, username, attrs: mapped, disabled });
        }
        let res = stream.finish().await;
        // A search that ends in an error is a partial read: the whole observation is void.
        if res.rc == 32 && normalize_dn(base) != normalize_dn(&self.config.base_dn) {
            return Ok(out); // the disabled OU does not exist yet: nothing is disabled
        }
        from_result(res, &format!("search {base}"))?;
        Ok(out)
    }

    /// Entries anywhere on the server (under each of its naming contexts) but outside the
    /// scope enid observes (base_dn and the disabled OU) whose `attr` holds one of `values`:
    /// (DN, matched value). For what a lost state or a changed scope hides: accounts that carry
    /// this installation's ids, or whose recorded anchor moved out of scope.
    pub async fn find_outside_scope(
        &self,
        attr: &str,
        values: &[String],
    ) -> Result<Vec<(String, String)>, TargetError> {
        let result = self.find_outside_scope_inner(attr, values).await;
        if let Err(e) = &result {
            self.reset(e).await;
        }
        result
    }

    async fn find_outside_scope_inner(
        &self,
        attr: &str,
        values: &[String],
    ) -> Result<Vec<(String, String)>, TargetError> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let mut ldap = self.ldap().await?;
        let root = ldap
            .with_timeout(self.timeout())
            .search("", Scope::Base, "(objectClass=*)", vec!["namingContexts"])
            .await
            .map_err(|e| from_ldap(e, "read the root DSE"))?;
        let (entries, res) = (root.0, root.1);
        from_result(res, "read the root DSE")?;
        let contexts: Vec<String> = entries
            .into_iter()
            .flat_map(|e| SearchEntry::construct(e).attrs.into_iter())
            .filter(|(k, _)| k.eq_ignore_ascii_case("namingContexts"))
            .flat_map(|(_, v)| v)
            .collect();
        let in_scope = |dn: &str| {
            let dn = normalize_dn(dn);
            let under = |base: &str| {
                let b = normalize_dn(base);
                dn == b || dn.ends_with(&format!(",{b}"))
            };
            under(&self.config.base_dn) || self.config.disabled_ou().is_some_and(|ou| under(&ou))
        };
        let mut out = Vec::new();
        for context in contexts {
            for chunk in values.chunks(50) {
                let filter = format!(
                    "(|{})",
                    chunk.iter().map(|v| format!("({attr}={})", ldap3::ldap_escape(v))).collect::<String>()
                );
                let found = ldap
                    .with_timeout(self.timeout())
                    .search(&context, Scope::Subtree, &filter, vec![attr])
                    .await
                    .map_err(|e| from_ldap(e, &format!("search {context}")))?;
                let (entries, res) = (found.0, found.1);
                // An unreadable context (no access) hides nothing we could act on.
                if res.rc == 32 || res.rc == 50 {
                    continue;
                }
                from_result(res, &format!("search {context}"))?;
                for e in entries {
                    let e = SearchEntry::construct(e);
                    if in_scope(&e.dn) {
                        continue;
                    }
                    let hit = e
                        .attrs
                        .iter()
                        .filter(|(k, _)| k.eq_ignore_ascii_case(attr))
                        .flat_map(|(_, v)| v)
                        .find(|v| chunk.iter().any(|c| c.eq_ignore_ascii_case(v)))
                        .cloned();
                    if let Some(v) = hit {
                        out.push((e.dn, v));
                    }
                }
            }
        }
        Ok(out)
    }

    async fn search_groups(&self, base: &str) -> Result<Vec<ObservedGroup>, TargetError> {
        let class = self.config.groups.as_ref().map(|g| g.object_class).unwrap_or_default();
        let filter = format!("(objectClass={})", class.object_class());
        let member_attr = class.member_attr();
        let mut ldap = self.ldap().await?;
        let adapters: Vec<Box<dyn Adapter<_, _>>> =
            vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(self.config.page_size))];
        let mut stream = ldap
            .with_timeout(self.timeout())
            .streaming_search_with(adapters, base, Scope::Subtree, &filter, vec!["cn", member_attr, "entryUUID"])
            .await
            .map_err(|e| from_ldap(e, &format!("search {base}")))?;
        let mut out = Vec::new();
        loop {
            let entry = match stream.next().await {
                Ok(Some(e)) => SearchEntry::construct(e),
                Ok(None) => break,
                Err(e) => return Err(from_ldap(e, &format!("search {base}"))),
            };
            let get = |name: &str| {
                entry
                    .attrs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            out.push(ObservedGroup {
                key: entry.dn.clone(),
                anchor: get("entryUUID").into_iter().next(),
                name: get("cn").into_iter().next().unwrap_or_default(),
                members: get(member_attr),
            });
        }
        let res = stream.finish().await;
        if res.rc == 32 {
            return Err(TargetError::config(format!("groups base_dn {base} does not exist; create it or fix base_dn")));
        }
        from_result(res, &format!("search {base}"))?;
        Ok(out)
    }

    /// The next free `gidNumber`: one above the highest under the groups base (at least
    /// `gid_number_start`), then counted up here, so concurrent creates never share one.
    async fn allocate_gid(&self, ldap: &mut Ldap) -> Result<u32, TargetError> {
        let mut next = self.next_gid.lock().await;
        let gid = match *next {
            Some(g) => g,
            None => {
                let groups = self.config.groups.as_ref().ok_or_else(|| TargetError::config("no [groups]"))?;
                let base = groups.base_dn.clone();
                let (entries, _) = ldap
                    .with_timeout(self.timeout())
                    .search(&base, Scope::Subtree, "(gidNumber=*)", vec!["gidNumber"])
                    .await
                    .and_then(|r| r.non_error())
                    .map_err(|e| from_ldap(e, &format!("search {base}")))?;
                let highest = entries
                    .into_iter()
                    .filter_map(|e| SearchEntry::construct(e).attrs.get("gidNumber")?.first()?.parse::<u32>().ok())
                    .max();
                highest.map(|h| h + 1).unwrap_or(0).max(groups.gid_number_start)
            }
        };
        *next = Some(gid + 1);
        Ok(gid)
    }

    /// Adds or deletes member values. When the server refuses the batch because one value is
    /// already there (add) or already gone (delete), the values go one by one and those are
    /// skipped: the end state is what was asked for.
    async fn change_members(
        &self,
        ldap: &mut Ldap,
        key: &str,
        members: &[String],
        add: bool,
    ) -> Result<(), TargetError> {
        let attr = self.config.groups.as_ref().map(|g| g.object_class).unwrap_or_default().member_attr().to_string();
        let make = |values: HashSet<String>| -> Vec<Mod<String>> {
            if add { vec![Mod::Add(attr.clone(), values)] } else { vec![Mod::Delete(attr.clone(), values)] }
        };
        let benign = if add { 20 } else { 16 };
        let what = format!("{} members of {key}", if add { "add" } else { "remove" });
        let res = ldap
            .with_timeout(self.timeout())
            .modify(key, make(members.iter().cloned().collect()))
            .await
            .map_err(|e| from_ldap(e, &what))?;
        if res.rc != benign {
            return from_result(res, &what).map(|_| ());
        }
        for m in members {
            let res = ldap
                .with_timeout(self.timeout())
                .modify(key, make(HashSet::from([m.clone()])))
                .await
                .map_err(|e| from_ldap(e, &what))?;
            if res.rc != benign {
                from_result(res, &what)?;
            }
        }
        Ok(())
    }

    async fn ensure_disabled_ou(&self, ldap: &mut Ldap) -> Result<(), TargetError> {
        let Some(ou) = self.config.disabled_ou() else { return Ok(()) };
        let mut ready = self.disabled_ou_ready.lock().await;
        if *ready {
            return Ok(());
        }
        let (rdn, _) = split_rdn(&ou);
        let value = rdn.split_once('=').map(|(_, v)| v).unwrap_or(rdn).to_string();
        let attrs = vec![
            ("objectClass".to_string(), HashSet::from(["organizationalUnit".to_string()])),
            ("ou".to_string(), HashSet::from([value])),
        ];
        let res =
            ldap.with_timeout(self.timeout()).add(&ou, attrs).await.map_err(|e| from_ldap(e, "add disabled OU"))?;
        if res.rc != 0 && res.rc != 68 {
            from_result(res, &format!("create the disabled OU {ou}"))?;
        }
        *ready = true;
        Ok(())
    }

    async fn apply_inner(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        let mut ldap = self.ldap().await?;
        let t = self.timeout();
        match op {
            TargetOp::Create { username, attrs, disabled } => {
                let dn = self.key_for(username, *disabled);
                let mut entry: Vec<(String, HashSet<String>)> = Vec::with_capacity(attrs.len() + 2);
                entry.push(("objectClass".into(), self.config.object_classes.iter().cloned().collect()));
                let mut has_rdn = false;
                for (k, v) in attrs {
                    if v.is_empty() {
                        continue;
                    }
                    has_rdn |= k.eq_ignore_ascii_case(&self.config.rdn_attribute);
                    entry.push((k.clone(), v.iter().cloned().collect()));
                }
                if !has_rdn {
                    entry.push((self.config.rdn_attribute.clone(), HashSet::from([username.clone()])));
                }
                if *disabled {
                    match &self.config.disable {
                        // `key_for` put the entry in the disabled OU.
                        DisableMethod::Move { .. } => self.ensure_disabled_ou(&mut ldap).await?,
                        DisableMethod::Attribute { attribute, value } => {
                            entry.push((attribute.clone(), HashSet::from([value.clone()])));
                        }
                    }
                }
                self.add_with_anchor(&mut ldap, dn, entry).await
            }
            TargetOp::Rename { key, username } => {
                let rdn = format!("{}={}", self.config.rdn_attribute, dn_escape(username));
                let res = ldap
                    .with_timeout(t)
                    .modifydn(key, &rdn, true, None)
                    .await
                    .map_err(|e| from_ldap(e, &format!("rename {key}")))?;
                from_result(res, &format!("rename {key} to {rdn}"))?;
                Ok(OpOutcome::Renamed { key: self.renamed_key(key, username) })
            }
            TargetOp::Update { key, changes } => {
                let mods: Vec<Mod<String>> =
                    changes.iter().map(|c| Mod::Replace(c.attr.clone(), c.values.iter().cloned().collect())).collect();
                let res =
                    ldap.with_timeout(t).modify(key, mods).await.map_err(|e| from_ldap(e, &format!("modify {key}")))?;
                from_result(res, &format!("modify {key}"))?;
                Ok(OpOutcome::Updated)
            }
            TargetOp::Disable { key } => match &self.config.disable {
                DisableMethod::Move { ou } => {
                    self.ensure_disabled_ou(&mut ldap).await?;
                    let ou = self.config.move_to(ou);
                    let new_key = self.move_entry(&mut ldap, key, &ou).await?;
                    Ok(OpOutcome::Disabled { key: new_key })
                }
                DisableMethod::Attribute { attribute, value } => {
                    let mods = vec![Mod::Replace(attribute.clone(), HashSet::from([value.clone()]))];
                    let res = ldap
                        .with_timeout(t)
                        .modify(key, mods)
                        .await
                        .map_err(|e| from_ldap(e, &format!("modify {key}")))?;
                    from_result(res, &format!("disable {key}"))?;
                    Ok(OpOutcome::Disabled { key: key.clone() })
                }
            },
            TargetOp::Enable { key } => match &self.config.disable {
                DisableMethod::Move { .. } => {
                    let base = self.config.base_dn.clone();
                    let new_key = self.move_entry(&mut ldap, key, &base).await?;
                    Ok(OpOutcome::Enabled { key: new_key })
                }
                DisableMethod::Attribute { attribute, .. } => {
                    let mods = vec![Mod::Replace(attribute.clone(), HashSet::<String>::new())];
                    let res = ldap
                        .with_timeout(t)
                        .modify(key, mods)
                        .await
                        .map_err(|e| from_ldap(e, &format!("modify {key}")))?;
                    from_result(res, &format!("enable {key}"))?;
                    Ok(OpOutcome::Enabled { key: key.clone() })
                }
            },
            TargetOp::Delete { key } | TargetOp::DeleteGroup { key } => {
                let res = ldap.with_timeout(t).delete(key).await.map_err(|e| from_ldap(e, &format!("delete {key}")))?;
                from_result(res, &format!("delete {key}"))?;
                Ok(OpOutcome::Deleted)
            }
            TargetOp::CreateGroup { name, members } => {
                let dn = self
                    .group_key_for(name)
                    .ok_or_else(|| TargetError::config("no [groups] configured for this target"))?;
                let class = self.config.groups.as_ref().map(|g| g.object_class).unwrap_or_default();
                let mut entry = vec![
                    ("objectClass".to_string(), HashSet::from(["top".to_string(), class.object_class().to_string()])),
                    ("cn".to_string(), HashSet::from([name.clone()])),
                ];
                if !members.is_empty() {
                    entry.push((class.member_attr().to_string(), members.iter().cloned().collect()));
                }
                if class == GroupClass::PosixGroup {
                    let gid = self.allocate_gid(&mut ldap).await?;
                    entry.push(("gidNumber".to_string(), HashSet::from([gid.to_string()])));
                }
                self.add_with_anchor(&mut ldap, dn, entry).await
            }
            TargetOp::AddMembers { key, members } => {
                self.change_members(&mut ldap, key, members, true).await?;
                Ok(OpOutcome::Updated)
            }
            TargetOp::RemoveMembers { key, members } => {
                self.change_members(&mut ldap, key, members, false).await?;
                Ok(OpOutcome::Updated)
            }
        }
    }

    async fn move_entry(&self, ldap: &mut Ldap, key: &str, new_parent: &str) -> Result<String, TargetError> {
        let (rdn, parent) = split_rdn(key);
        if normalize_dn(parent) == normalize_dn(new_parent) {
            return Ok(key.to_string()); // already there: a repeated operation is a no-op
        }
        let res = ldap
            .with_timeout(self.timeout())
            .modifydn(key, rdn, true, Some(new_parent))
            .await
            .map_err(|e| from_ldap(e, &format!("move {key}")))?;
        from_result(res, &format!("move {key} to {new_parent}"))?;
        Ok(format!("{rdn},{new_parent}"))
    }
}

impl LdapTarget {
    /// Adds an entry with the Post-Read control, so its `entryUUID` comes back with the result.
    async fn add_with_anchor(
        &self,
        ldap: &mut Ldap,
        dn: String,
        entry: Vec<(String, HashSet<String>)>,
    ) -> Result<OpOutcome, TargetError> {
        let res = ldap
            .with_timeout(self.timeout())
            .with_controls(PostRead::new(vec!["entryUUID"]))
            .add(&dn, entry)
            .await
            .map_err(|e| from_ldap(e, &format!("add {dn}")))?;
        let anchor = post_read_uuid(&res);
        from_result(res, &format!("add {dn}"))?;
        Ok(OpOutcome::Created { key: dn, anchor })
    }
}

/// The `entryUUID` a Post-Read control returned with an add, if any.
fn post_read_uuid(res: &ldap3::LdapResult) -> Option<String> {
    res.ctrls
        .iter()
        .find(|c| c.1.ctype == "1.3.6.1.1.13.2")
        .and_then(|c| c.1.parse::<PostReadResp>().attrs.remove("entryUUID"))
        .and_then(|mut v| v.pop())
}

fn tls_config_with_ca(path: &std::path::Path) -> Result<rustls::ClientConfig, TargetError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TargetError::config(format!("tls_ca_file {}: cannot be read", path.display())).with_source(e))?;
    for cert in certs {
        let bad = || TargetError::config(format!("tls_ca_file {}: not a usable CA certificate", path.display()));
        let cert = cert.map_err(|e| bad().with_source(e))?;
        roots.add(cert).map_err(|e| bad().with_source(e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TargetError::config("TLS: no protocol version the crypto provider supports").with_source(e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

impl Target for LdapTarget {
    async fn check(&self) -> Result<(), TargetError> {
        let mut ldap = self.ldap().await?;
        let base = self.config.base_dn.clone();
        let res = ldap
            .with_timeout(self.timeout())
            .search(&base, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await
            .map_err(|e| from_ldap(e, &format!("read base_dn {base}")))?;
        if res.1.rc == 32 {
            return Err(TargetError::config(format!(
                "base_dn {base} does not exist on {}; create it or fix base_dn",
                self.config.url
            )));
        }
        from_result(res.1, &format!("read base_dn {base}"))?;
        Ok(())
    }

    async fn observe(&self, attrs: &[String]) -> Result<Vec<ObservedAccount>, TargetError> {
        let mut wanted: Vec<String> = attrs.to_vec();
        for extra in ["entryUUID".to_string(), self.config.rdn_attribute.clone()] {
            if !wanted.iter().any(|a| a.eq_ignore_ascii_case(&extra)) {
                wanted.push(extra);
            }
        }
        if let DisableMethod::Attribute { attribute, .. } = &self.config.disable
            && !wanted.iter().any(|a| a.eq_ignore_ascii_case(attribute))
        {
            wanted.push(attribute.clone());
        }
        let base_norm = normalize_dn(&self.config.base_dn);
        let result = async {
            let mut all = self.search_all(&self.config.base_dn.clone(), &wanted).await?;
            // A disabled OU outside base_dn is searched too.
            if let Some(ou) = self.config.disabled_ou() {
                let ou_norm = normalize_dn(&ou);
                if !ou_norm.ends_with(&format!(",{base_norm}")) && ou_norm != base_norm {
                    all.extend(self.search_all(&ou, &wanted).await?);
                }
            }
            Ok(all)
        }
        .await;
        if let Err(e) = &result {
            self.reset(e).await;
        }
        result
    }

    async fn observe_groups(&self) -> Result<Vec<ObservedGroup>, TargetError> {
        let Some(groups) = &self.config.groups else { return Ok(Vec::new()) };
        let result = self.search_groups(&groups.base_dn.clone()).await;
        if let Err(e) = &result {
            self.reset(e).await;
        }
        result
    }

    fn key_for(&self, username: &str, disabled: bool) -> String {
        let parent = match (&self.config.disable, disabled) {
            (DisableMethod::Move { ou }, true) => self.config.move_to(ou),
            _ => self.config.base_dn.clone(),
        };
        format!("{}={},{parent}", self.config.rdn_attribute, dn_escape(username))
    }

    fn renamed_key(&self, key: &str, username: &str) -> String {
        let (_, parent) = split_rdn(key);
        format!("{}={},{parent}", self.config.rdn_attribute, dn_escape(username))
    }

    fn enabled_key(&self, key: &str) -> String {
        match &self.config.disable {
            DisableMethod::Move { .. } => {
                let (rdn, parent) = split_rdn(key);
                // An entry already in place is not moved (see `move_entry`).
                if normalize_dn(parent) == normalize_dn(&self.config.base_dn) {
                    key.to_string()
                } else {
                    format!("{rdn},{}", self.config.base_dn)
                }
            }
            DisableMethod::Attribute { .. } => key.to_string(),
        }
    }

    fn group_key_for(&self, name: &str) -> Option<String> {
        let groups = self.config.groups.as_ref()?;
        Some(format!("cn={},{}", dn_escape(name), groups.base_dn))
    }

    async fn apply(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        let result = self.apply_inner(op).await;
        if let Err(e) = &result {
            self.reset(e).await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_compare_without_case_and_spaces() {
        assert_eq!(normalize_dn("UID=a, OU=People,dc=Example"), "uid=a,ou=people,dc=example");
        assert_eq!(split_rdn("uid=a\\,b,ou=x"), ("uid=a\\,b", "ou=x"));
    }

    fn config(url: &str, base_dn: &str) -> LdapConfig {
        LdapConfig {
            url: url.into(),
            starttls: false,
            tls_ca_file: None,
            tls_insecure_skip_verify: false,
            bind_dn: "cn=admin".into(),
            bind_password_file: None,
            bind_password_env: None,
            base_dn: base_dn.into(),
            rdn_attribute: default_rdn_attribute(),
            object_classes: default_object_classes(),
            filter: default_filter(),
            page_size: default_page_size(),
            max_in_flight: default_in_flight(),
            timeout_secs: default_timeout_secs(),
            disable: DisableMethod::default(),
            max_username_length: None,
            attributes: BTreeMap::new(),
            groups: None,
            thresholds: Default::default(),
            exclude: Default::default(),
            protected: Default::default(),
        }
    }

    #[test]
    fn config_validation_names_the_problem() {
        let c = config("http://x", "ou=p,dc=x");
        assert_eq!(c.validate().unwrap_err(), "url \"http://x\" must start with ldap://, ldaps:// or ldapi://");
        assert_eq!(c.disabled_ou().unwrap(), "ou=disabled,ou=p,dc=x");
        let mut c = config("ldaps://x", "ou=p,dc=x");
        c.starttls = true;
        assert_eq!(c.validate().unwrap_err(), "starttls = true needs an ldap:// url");
    }

    #[test]
    fn keys_escape_the_username() {
        let t = LdapTarget::new(config("ldap://x", "ou=p,dc=x"), Secret::new("pw"));
        assert_eq!(t.key_for("a,b", false), "uid=a\\2cb,ou=p,dc=x");
    }

    #[test]
    fn a_disabled_create_and_an_enable_say_where_the_account_lands() {
        let t = LdapTarget::new(config("ldap://x", "ou=p,dc=x"), Secret::new("pw"));
        assert_eq!(t.key_for("anna", true), "uid=anna,ou=disabled,ou=p,dc=x");
        assert_eq!(t.enabled_key("uid=anna,ou=disabled,ou=p,dc=x"), "uid=anna,ou=p,dc=x");
        assert_eq!(t.enabled_key("uid=anna,ou=p,dc=x"), "uid=anna,ou=p,dc=x");
        let mut c = config("ldap://x", "ou=p,dc=x");
        c.disable = DisableMethod::Attribute { attribute: "description".into(), value: "off".into() };
        let t = LdapTarget::new(c, Secret::new("pw"));
        assert_eq!(t.key_for("anna", true), "uid=anna,ou=p,dc=x");
        assert_eq!(t.enabled_key("uid=anna,ou=p,dc=x"), "uid=anna,ou=p,dc=x");
    }
}
