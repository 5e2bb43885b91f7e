//! Target connectors for LDAP directories: OpenLDAP (this module) and Active Directory (`ad`).
//!
//! Accounts live as entries `<rdn_attribute>=<username>,<base_dn>` (a pre-provisioned account
//! in the disabled OU when disabling moves accounts); the key the engine sees is the DN, and the
//! anchor is `entryUUID`. The connector observes with a paged subtree search, creates with a
//! Post-Read control (RFC 4527) so the anchor comes back in the same round trip, changes only
//! the attributes it is told to in one modify, and disables reversibly: by moving the entry to a
//! disabled OU, or by setting an attribute. All operations share one connection, so several can
//! be in flight at once.
//!
//! `config` holds the settings and what they declare ([`Capabilities`]); `search` the reads;
//! `ops` the writes; `dn` how DNs and group names compare; `error` how LDAP result codes map to
//! [`TargetError`].

mod ad;
mod config;
mod conn;
mod dn;
mod entry;
mod error;
mod ops;
mod search;

pub use ad::{AdConfig, AdGroupsConfig, AdTarget, InitialPassword};
pub use config::{DisableMethod, GroupClass, GroupsConfig, LdapConfig};
pub use dn::{escape_dn_value, fold_group_name, normalize_dn};

use conn::{Conn, ConnSettings};
use connector_api::{
    Capabilities, Field, Lookup, ObservedAccount, ObservedGroup, OpOutcome, Secret, Target, TargetError, TargetOp,
};
use error::{from_ldap, from_result};
use ldap3::Scope;
use std::time::Duration;
use tokio::sync::Mutex;

/// An LDAP directory as an enid target.
#[derive(Debug)]
pub struct LdapTarget {
    config: LdapConfig,
    conn: Conn,
    disabled_ou_norm: Option<String>,
    disabled_ou_ready: Mutex<bool>,
    /// The next free posixGroup `gidNumber`, found on first use.
    next_gid: Mutex<Option<u32>>,
    /// What the settings declare, computed once.
    caps: Capabilities,
    /// `exclude_under`, normalised.
    excluded_norm: Vec<String>,
    /// This apply's creates leave the Post-Read control out ([`Target::defer_anchors`]).
    defer_anchors: std::sync::atomic::AtomicBool,
}

/// The fewest creates whose anchors are read after them rather than with each: below it, a
/// Post-Read per add costs less than reading the scope once more.
const DEFER_ANCHORS_FROM: usize = 1000;

impl LdapTarget {
    pub fn new(config: LdapConfig, password: Secret) -> Self {
        let disabled_ou_norm = config.disabled_ou().map(|d| normalize_dn(&d));
        let caps = config.capabilities();
        let excluded_norm = config.exclude_under.iter().map(|c| normalize_dn(c)).collect();
        let conn = Conn::new(
            ConnSettings {
                url: config.url.clone(),
                starttls: config.starttls,
                tls_ca_file: config.tls_ca_file.clone(),
                tls_insecure_skip_verify: config.tls_insecure_skip_verify,
                bind_dn: config.bind_dn.clone(),
                timeout: Duration::from_secs(config.timeout_secs),
                connections: config.connections,
            },
            password,
        );
        LdapTarget {
            caps,
            excluded_norm,
            config,
            conn,
            disabled_ou_norm,
            disabled_ou_ready: Mutex::new(false),
            next_gid: Mutex::new(None),
            defer_anchors: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether this apply's creates leave the Post-Read control out.
    pub(crate) fn anchors_deferred(&self) -> bool {
        self.defer_anchors.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn config(&self) -> &LdapConfig {
        &self.config
    }

    /// A handle on the shared connection, connecting and binding first when there is none.
    pub(crate) async fn ldap(&self) -> Result<crate::conn::Link, TargetError> {
        self.conn.ldap().await
    }

    /// Forgets a connection that failed (see [`Conn::reset`]).
    pub(crate) async fn reset(&self, err: &TargetError) {
        self.conn.reset(err).await
    }

    /// Whether an entry (its normalised DN) lies in the OU disabled accounts are moved to.
    pub(crate) fn in_disabled_ou(&self, dn_norm: &str) -> bool {
        let ou = self.disabled_ou_norm.as_deref().unwrap_or("");
        dn_norm.strip_suffix(ou).is_some_and(|rest| rest.ends_with(','))
    }
}

impl LdapTarget {
    /// The attributes a read asks the server for: the engine's (`attrs`), and those the
    /// connector reads for itself (the anchor, the username, the disable attribute).
    fn wanted(&self, attrs: &[String]) -> Vec<String> {
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
        wanted
    }
}

impl Target for LdapTarget {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn scope(&self) -> String {
        format!("{} with filter {}", self.config.base_dn, self.config.filter)
    }

    fn group_scope(&self) -> String {
        self.config.groups.as_ref().map(|g| g.base_dn.clone()).unwrap_or_default()
    }

    async fn check(&self) -> Result<String, TargetError> {
        let mut ldap = self.ldap().await?;
        let base = self.config.base_dn.clone();
        let res = ldap
            .req()?
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
        Ok(format!("connected, bound as {}, base_dn found", self.config.bind_dn))
    }

    async fn observe(&self, attrs: &[String]) -> Result<Vec<ObservedAccount>, TargetError> {
        let base_norm = normalize_dn(&self.config.base_dn);
        let result = async {
            let mut all = self.search_all(&self.config.base_dn.clone(), attrs).await?;
            // A disabled OU outside base_dn is searched too.
            if let Some(ou) = self.config.disabled_ou() {
                let ou_norm = normalize_dn(&ou);
                if !ou_norm.ends_with(&format!(",{base_norm}")) && ou_norm != base_norm {
                    all.extend(self.search_all(&ou, attrs).await?);
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

    /// Deferred when the creates are at least [`DEFER_ANCHORS_FROM`] and at least the accounts
    /// already in scope. Measured with 100,000 creates into an empty slapd: the Post-Read made
    /// slapd spend some 29 µs more of its one writer per add (100,000 adds took 12.7 s with it,
    /// 9.6 s without), while reading the scope afterwards costs some 6 µs of slapd's per entry
    /// (in parallel with other reads), so reading the scope pays once it is mostly new entries.
    fn defer_anchors(&self, creates: usize, in_scope: usize) -> bool {
        let defer = creates >= DEFER_ANCHORS_FROM && creates >= in_scope;
        self.defer_anchors.store(defer, std::sync::atomic::Ordering::Relaxed);
        defer
    }

    async fn read_anchors(
        &self,
        into: tokio::sync::mpsc::Sender<Vec<connector_api::FoundAnchor>>,
    ) -> Result<(), TargetError> {
        let base_norm = normalize_dn(&self.config.base_dn);
        let result = async {
            self.read_anchors_under(&self.config.base_dn.clone(), &into).await?;
            if let Some(ou) = self.config.disabled_ou() {
                let ou_norm = normalize_dn(&ou);
                if !ou_norm.ends_with(&format!(",{base_norm}")) && ou_norm != base_norm {
                    self.read_anchors_under(&ou, &into).await?;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = &result {
            self.reset(e).await;
        }
        result
    }

    async fn observe_where(
        &self,
        field: Field<'_>,
        values: &[String],
        attrs: &[String],
    ) -> Result<Option<Vec<ObservedAccount>>, TargetError> {
        let attr = match field {
            Field::Owner => self.config.owner_attribute.clone(),
            Field::Username => self.config.rdn_attribute.clone(),
            Field::Attribute(a) => a.split('.').next().unwrap_or(a).to_string(),
        };
        let base_norm = normalize_dn(&self.config.base_dn);
        let result = async {
            let mut found = self.search_where(&self.config.base_dn.clone(), &attr, values, attrs).await?;
            if let Some(ou) = self.config.disabled_ou() {
                let ou_norm = normalize_dn(&ou);
                if !ou_norm.ends_with(&format!(",{base_norm}")) && ou_norm != base_norm {
                    found.extend(self.search_where(&ou, &attr, values, attrs).await?);
                }
            }
            Ok(found)
        }
        .await;
        if let Err(e) = &result {
            self.reset(e).await;
        }
        result.map(Some)
    }

    async fn observe_at(&self, key: &str, attrs: &[String]) -> Result<Option<ObservedAccount>, TargetError> {
        // As the full read asks (with the disable attribute, or an account disabled by it would
        // read as enabled), at the entry's DN: a subtree search there (accounts have no
        // children), and no entry there is "no such object", which reads as none.
        let result = self.search_all(key, attrs).await;
        if let Err(e) = &result {
            self.reset(e).await;
        }
        Ok(result?.into_iter().find(|a| normalize_dn(a.key()) == normalize_dn(key)))
    }

    async fn observe_groups(&self) -> Result<Vec<ObservedGroup>, TargetError> {
        let Some(groups) = &self.config.groups else { return Ok(Vec::new()) };
        let result = self.search_groups(&groups.base_dn.clone()).await;
        if let Err(e) = &result {
            self.reset(e).await;
        }
        result
    }

    async fn find_outside_scope(
        &self,
        lookup: Lookup,
        values: &[String],
    ) -> Result<Vec<(String, String)>, TargetError> {
        let attr = match lookup {
            Lookup::Owner => self.config.owner_attribute.clone(),
            Lookup::Anchor => "entryUUID".to_string(),
            Lookup::Username => self.config.rdn_attribute.clone(),
            // A directory keeps group names apart by container only: nothing elsewhere collides.
            Lookup::GroupName => return Ok(Vec::new()),
        };
        let result = self.find_outside_scope_inner(&attr, values).await;
        if let Err(e) = &result {
            self.reset(e).await;
        }
        result
    }

    async fn apply(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        // Nothing is sent once this node's lease on the state is no longer certain.
        connector_api::fence::check()?;
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
    use config::*;
    use dn::split_rdn;

    #[test]
    fn dns_compare_without_case_and_spaces() {
        assert_eq!(normalize_dn("UID=a, OU=People,dc=Example"), "uid=a,ou=people,dc=example");
        assert_eq!(split_rdn("uid=a\\,b,ou=x"), ("uid=a\\,b", "ou=x"));
        assert_eq!(fold_group_name("3  A"), fold_group_name("3 a"));
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
            connections: crate::config::default_connections(),
            timeout_secs: default_timeout_secs(),
            disable: DisableMethod::default(),
            owner_attribute: "employeeNumber".into(),
            exclude_under: Vec::new(),
            groups: None,
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
        let mut c = config("ldap://x", "ou=p,dc=x");
        c.owner_attribute = "employee Number".into();
        assert!(c.validate().unwrap_err().starts_with("owner_attribute"));
    }

    /// Anchors are read after the creates only for many creates into a scope of fewer accounts,
    /// and each apply's answer replaces the one before (0 creates: the Post-Read again).
    #[test]
    fn anchors_are_deferred_for_many_creates_into_a_scope_of_fewer_accounts() {
        let t = LdapTarget::new(config("ldap://x", "ou=p,dc=x"), Secret::new("pw"));
        assert!(!t.anchors_deferred(), "never before it is asked");
        assert!(!t.defer_anchors(999, 0) && !t.anchors_deferred());
        assert!(t.defer_anchors(1000, 0) && t.anchors_deferred());
        assert!(t.defer_anchors(5000, 5000));
        assert!(!t.defer_anchors(5000, 5001) && !t.anchors_deferred(), "a scope of more: one Post-Read each");
        assert!(t.defer_anchors(1000, 10));
        assert!(!t.defer_anchors(0, 0) && !t.anchors_deferred());
    }

    #[test]
    fn keys_escape_the_username_and_a_disabled_create_lands_in_the_disabled_ou() {
        let t = LdapTarget::new(config("ldap://x", "ou=p,dc=x"), Secret::new("pw"));
        assert_eq!(t.dn_for("a,b", false), "uid=a\\2cb,ou=p,dc=x");
        assert_eq!(t.dn_for("anna", true), "uid=anna,ou=disabled,ou=p,dc=x");
        let mut c = config("ldap://x", "ou=p,dc=x");
        c.disable = DisableMethod::Attribute { attribute: "description".into(), value: "off".into() };
        let t = LdapTarget::new(c, Secret::new("pw"));
        assert_eq!(t.dn_for("anna", true), "uid=anna,ou=p,dc=x");
    }

    #[test]
    fn the_settings_declare_what_the_engine_reads() {
        let mut c = config("ldap://x", "ou=p,dc=x");
        let caps = c.capabilities();
        assert_eq!(caps.owner_attribute, "employeeNumber");
        assert_eq!(caps.disable, connector_api::DisableKind::Move);
        assert!(!caps.rename_keeps_key && caps.groups.is_none() && !caps.typed_values);
        assert_eq!(caps.key("UID=A, ou=P,dc=x"), caps.key("uid=a,ou=p,dc=x"));
        c.groups =
            Some(GroupsConfig { base_dn: "ou=g".into(), object_class: GroupClass::PosixGroup, gid_number_start: 1 });
        c.owner_attribute = "employeeID".into();
        let caps = c.capabilities();
        assert_eq!(caps.groups, Some(connector_api::MemberForm::Username));
        assert!(caps.protected_attributes.contains(&"employeeID".to_string()));
        assert!(c.fixed_attribute("EMPLOYEEID").is_some());
        assert!(c.fixed_attribute("employeeNumber").is_none(), "only the configured owner attribute is fixed");
        assert!(c.fixed_attribute("uid;lang-sv").is_some());
        assert!(c.fixed_attribute("2.5.4.0").is_some());
    }
}
