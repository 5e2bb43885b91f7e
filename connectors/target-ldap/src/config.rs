//! `[targets.<id>]` with `type = "ldap"`: how to reach the directory and where accounts and
//! groups live there, and what the directory declares to the engine ([`LdapConfig::capabilities`]).
//! What enid may do there (attributes, groups to make, thresholds) is the target's policy,
//! parsed by enid for every connector type.

use crate::dn::{fold_group_name, normalize_dn};
use connector_api::{
    Capabilities, ConnectorConfig, DisableKind, MemberForm, TargetConnector, load_configured_secret,
    resolve_optional_path,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};

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
    /// Operations in flight at once, over all connections (each gets its share; slapd answers
    /// "busy" past `conn_max_pending_auth` on one connection, 1,000 by default).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Connections to the directory that operations are dealt among (a directory server
    /// reads one connection's requests in turn; its writes scale with a few). Searches use one.
    #[serde(default = "crate::config::default_connections")]
    pub connections: usize,
    /// Time allowed for connecting and for each operation.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// How accounts are disabled. Default: moved to `ou=disabled,<base_dn>`.
    #[serde(default)]
    pub disable: DisableMethod,
    /// The attribute that carries the enid id on the accounts enid creates: its owner marker
    /// (default `employeeNumber`). Accounts are enid's only when their anchor is recorded; this
    /// value is how an interrupted create or a lost state is found again.
    #[serde(default = "default_owner_attribute")]
    pub owner_attribute: String,
    /// Containers under `base_dn` whose accounts enid never touches (compared without case and
    /// spaces), for example `["ou=manual,ou=people,dc=example,dc=org"]`.
    #[serde(default)]
    pub exclude_under: Vec<String>,
    /// Where enid's groups live; groups are made when the target's policy has `groups`.
    #[serde(default)]
    pub groups: Option<GroupsConfig>,
}

/// `[targets.<id>.groups]`: where the directory keeps enid's groups and what kind they are
/// (which groups to make is the target's policy).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GroupsConfig {
    /// The container of the groups enid creates (it must exist).
    pub base_dn: String,
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
    pub(crate) fn object_class(self) -> &'static str {
        match self {
            GroupClass::GroupOfNames => "groupOfNames",
            GroupClass::PosixGroup => "posixGroup",
        }
    }

    /// The attribute that lists members.
    pub(crate) fn member_attr(self) -> &'static str {
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

fn default_owner_attribute() -> String {
    "employeeNumber".into()
}
pub(crate) fn default_rdn_attribute() -> String {
    "uid".into()
}
pub(crate) fn default_object_classes() -> Vec<String> {
    ["top", "person", "organizationalPerson", "inetOrgPerson"].map(String::from).to_vec()
}
pub(crate) fn default_filter() -> String {
    "(objectClass=inetOrgPerson)".into()
}
pub(crate) fn default_page_size() -> i32 {
    1000
}
/// Operations in flight over all connections: OpenLDAP's writes go through one writer at a
/// time, and with few outstanding it waited on the round trips: 100,000 creates took 24 s with
/// 8, 20 s with 32, some 16 s with 256 (against 13 s for four `ldapadd` streams of the same
/// entries); with more queued, slapd itself spent less CPU per entry (14 against 16 CPU-s). A
/// connection's share stays far below slapd's `conn_max_pending_auth` (1,000 by default), past
/// which it answers "busy".
pub(crate) fn default_in_flight() -> usize {
    256
}
pub(crate) fn default_connections() -> usize {
    4
}
pub(crate) fn default_timeout_secs() -> u64 {
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
        if !(1..=64).contains(&self.connections) {
            return Err(format!("connections = {} must be between 1 and 64", self.connections));
        }
        if self.owner_attribute.trim().is_empty() || self.owner_attribute.contains(['=', ',', ' ']) {
            return Err(format!("owner_attribute {:?} is not an attribute name", self.owner_attribute));
        }
        for c in &self.exclude_under {
            if !c.contains('=') {
                return Err(format!("exclude_under: {c:?} is not a DN"));
            }
        }
        Ok(())
    }

    /// What this directory declares to the engine. Pure: read from the settings alone.
    pub fn capabilities(&self) -> Capabilities {
        let owner = self.owner_attribute.clone();
        let mut protected = vec!["uid".to_string(), owner.clone(), "cn".into(), "sn".into()];
        if !protected.iter().any(|a| a.eq_ignore_ascii_case(&self.rdn_attribute)) {
            protected.push(self.rdn_attribute.clone());
        }
        let defaults = [
            ("uid", "{{ username }}"),
            ("givenName", "{{ given_name }}"),
            ("sn", "{{ family_name }}"),
            ("cn", "{{ display_name }}"),
            ("displayName", "{{ display_name }}"),
            ("employeeType", "{{ roles }}"),
            ("departmentNumber", "{{ school_units }}"),
        ];
        Capabilities {
            owner_attribute: owner,
            default_attributes: defaults.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            protected_attributes: protected,
            groups: self
                .groups
                .as_ref()
                .map(|g| if g.object_class.members_by_username() { MemberForm::Username } else { MemberForm::Key }),
            rename_keeps_key: false,
            disable: match self.disable {
                DisableMethod::Move { .. } => DisableKind::Move,
                DisableMethod::Attribute { .. } => DisableKind::Flag,
            },
            case_insensitive_names: true,
            typed_values: false,
            max_in_flight: self.max_in_flight,
            max_batch: 1,
            finds_outside_scope: true,
            existing_usernames: connector_api::ExistingUsernames::Avoid,
            fold_key: normalize_dn,
            fold_group_name,
            ..Capabilities::default()
        }
    }

    /// Why the policy's attribute templates may not set `attr`, when they may not: the owner
    /// attribute (how enid recognises its accounts), the naming attribute (`rdn_attribute`,
    /// always the username) and `objectClass` (`object_classes` says it). An attribute has a
    /// name, aliases and an OID, and may carry options (`;lang-sv`): all of them name the same
    /// attribute to the server, so all are refused.
    pub fn fixed_attribute(&self, attr: &str) -> Option<&'static str> {
        let names = |a: &str| -> Vec<String> {
            let a = a.to_ascii_lowercase();
            let mut v = vec![a.clone()];
            v.extend(
                match a.as_str() {
                    "employeenumber" => &["2.16.840.1.113730.3.1.3"][..],
                    "uid" | "userid" => &["uid", "userid", "0.9.2342.19200300.100.1.1"][..],
                    "cn" | "commonname" => &["cn", "commonname", "2.5.4.3"][..],
                    "objectclass" => &["2.5.4.0"][..],
                    _ => &[][..],
                }
                .iter()
                .map(|x| x.to_string()),
            );
            v
        };
        let (owner, rdn, class) = (names(&self.owner_attribute), names(&self.rdn_attribute), names("objectClass"));
        let base = attr.split(';').next().unwrap_or(attr).trim().to_ascii_lowercase();
        let base = base.strip_prefix("oid.").unwrap_or(&base).to_string();
        if owner.contains(&base) {
            Some("it carries the enid id, which is how enid recognises the accounts it created")
        } else if rdn.contains(&base) {
            Some("it names the entry (rdn_attribute) and is always the username")
        } else if class.contains(&base) {
            Some("object classes are set by object_classes")
        } else {
            None
        }
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
    pub(crate) fn move_to(&self, ou: &Option<String>) -> String {
        ou.clone().unwrap_or_else(|| format!("ou=disabled,{}", self.base_dn))
    }
}

impl ConnectorConfig for LdapConfig {
    fn validate(&self) -> Result<(), String> {
        LdapConfig::validate(self)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        resolve_optional_path(dir, &mut self.bind_password_file);
        resolve_optional_path(dir, &mut self.tls_ca_file);
    }
}

impl TargetConnector for LdapConfig {
    type Target = crate::LdapTarget;

    fn capabilities(&self) -> Capabilities {
        LdapConfig::capabilities(self)
    }

    fn fixed_attribute(&self, attr: &str) -> Option<&'static str> {
        LdapConfig::fixed_attribute(self, attr)
    }

    fn build(&self, id: &str) -> Result<crate::LdapTarget, String> {
        if self.tls_insecure_skip_verify {
            connector_api::warn_unverified_tls(&format!("[targets.{id}]"), "the bind password and every account");
        }
        let what = format!("bind password of [targets.{id}]");
        let password =
            load_configured_secret(self.bind_password_file.as_deref(), self.bind_password_env.as_deref(), &what)?;
        Ok(crate::LdapTarget::new(self.clone(), password))
    }
}
