//! `[targets.<id>]` with `type = "ad"`: an Active Directory domain over LDAP, and what it
//! declares to the engine ([`AdConfig::capabilities`]).

use crate::dn::{fold_group_name, normalize_dn, split_rdn, under};
use connector_api::{
    Capabilities, ConnectorConfig, DisableKind, ExistingUsernames, MemberForm, PasswordRules, TargetConnector,
    load_configured_secret, resolve_optional_path,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[targets.<id>]` with `type = "ad"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdConfig {
    /// `ldaps://dc.example.org` (or `ldap://` with `starttls = true`): passwords go only over
    /// an encrypted connection, and enid sets one on every account it creates.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// PEM file with the CA certificates that sign the domain controller's certificate; the
    /// system's trust store when left out.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Turns certificate verification off. Only for tests; never in production.
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
    /// Who enid binds as: a DN or a user principal name (`enid-svc@skola.example.org`).
    pub bind_dn: String,
    /// File holding the bind password (preferred).
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Environment variable holding the bind password.
    #[serde(default)]
    pub bind_password_env: Option<String>,
    /// The container of the accounts enid manages (`OU=Elever,DC=skola,DC=example,DC=org`);
    /// searched with subtree scope.
    pub base_dn: String,
    /// Where a person's account lives: a template of enid's variables, with `{{ base_dn }}` for
    /// `base_dn` (default `OU={{ school_unit | dn }},{{ base_dn }}`, an OU per school unit; `dn` escapes
    /// what a DN may not hold as it is). Missing
    /// OUs below `base_dn` are created.
    #[serde(default)]
    pub ou: Option<String>,
    /// Where persons with protected personal data live: an OU that says nothing of them
    /// (default `OU=Skyddade,<base_dn>`).
    #[serde(default)]
    pub protected_ou: Option<String>,
    /// The suffix of `userPrincipalName`: `username@upn_suffix` (`skola.example.org`).
    pub upn_suffix: String,
    /// `"none"` (the default: single sign-on accounts, given a long random password nobody
    /// sees, since AD enables no account without one) or `"generated"` (a first password kept,
    /// encrypted, for `enid passwords show`).
    #[serde(default)]
    pub initial_password: InitialPassword,
    /// Length of a generated first password.
    #[serde(default = "default_password_length")]
    pub password_length: usize,
    /// A generated first password must be changed at the first logon (`pwdLastSet = 0`).
    #[serde(default = "yes")]
    pub force_password_change: bool,
    /// The attribute that carries the enid id on the accounts enid creates (default
    /// `employeeNumber`; an id is 36 characters, so not `employeeID`, which holds 16). Never a
    /// civic number.
    #[serde(default = "default_owner_attribute")]
    pub owner_attribute: String,
    /// Object classes of created accounts.
    #[serde(default = "default_object_classes")]
    pub object_classes: Vec<String>,
    /// The filter that selects accounts under `base_dn`.
    #[serde(default = "default_filter")]
    pub filter: String,
    /// Entries per page of a search (AD's `MaxPageSize` is 1,000 by default).
    #[serde(default = "default_page_size")]
    pub page_size: i32,
    /// Operations in flight at once on the connection.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Connections to the directory that operations are dealt among (a directory server
    /// reads one connection's requests in turn; its writes scale with a few). Searches use one.
    #[serde(default = "crate::config::default_connections")]
    pub connections: usize,
    /// Time allowed for connecting and for each operation.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Containers under `base_dn` whose accounts enid never touches.
    #[serde(default)]
    pub exclude_under: Vec<String>,
    /// An attribute set `TRUE` on protected persons' accounts to keep them out of address
    /// lists (`msExchHideFromAddressLists` where the domain has the Exchange schema); none when
    /// left out.
    #[serde(default)]
    pub hide_from_address_lists_attribute: Option<String>,
    /// Where enid's security groups live; groups are made when the target's policy has `groups`.
    #[serde(default)]
    pub groups: Option<AdGroupsConfig>,
}

/// `[targets.<id>.groups]` of an AD target.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdGroupsConfig {
    /// The container of the groups enid creates (it must exist).
    pub base_dn: String,
}

/// What a new account's first password is for.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InitialPassword {
    /// Nobody's: single sign-on only.
    #[default]
    None,
    /// The pupil's or teacher's first password, handed out by a school admin.
    Generated,
}

fn default_password_length() -> usize {
    14
}
fn yes() -> bool {
    true
}
fn default_owner_attribute() -> String {
    "employeeNumber".into()
}
fn default_object_classes() -> Vec<String> {
    ["top", "person", "organizationalPerson", "user"].map(String::from).to_vec()
}
fn default_filter() -> String {
    "(&(objectCategory=person)(objectClass=user))".into()
}
fn default_page_size() -> i32 {
    500
}
fn default_in_flight() -> usize {
    4
}
fn default_timeout_secs() -> u64 {
    30
}

/// Characters a `sAMAccountName` may not hold.
pub(crate) const SAM_FORBIDDEN: &str = "\"/\\[]:;|=,+*?<>@";

/// The most characters AD takes in an OU's (or a container's) name: `ou` and `cn` have a
/// `rangeUpper` of 64.
const MAX_OU_NAME: usize = 64;

/// Why AD cannot hold accounts at this placement, when it cannot: one of its OU or container
/// names is empty or longer than AD allows. (A placement's other parts exist already, and
/// `base_dn` is checked when the target is.)
fn ou_problem(placement: &str) -> Option<String> {
    let mut rest = placement;
    while !rest.is_empty() {
        let (rdn, tail) = split_rdn(rest);
        rest = tail;
        let (kind, value) = rdn.split_once('=').unwrap_or((rdn, ""));
        if !(kind.trim().eq_ignore_ascii_case("ou") || kind.trim().eq_ignore_ascii_case("cn")) {
            continue;
        }
        let value = super::ops::unescape_dn_value(value.trim());
        let length = value.encode_utf16().count();
        if value.trim().is_empty() {
            return Some(format!("{} has an empty name, which AD does not take", rdn.trim()));
        }
        if length > MAX_OU_NAME {
            return Some(format!(
                "its OU name is {length} characters long, and AD takes at most {MAX_OU_NAME} in an OU's name"
            ));
        }
    }
    None
}

/// The attributes the policy may not set, and why.
const FIXED: [(&str, &str); 11] = [
    ("sAMAccountName", "it is the username, set by enid and changed only by a rename"),
    ("cn", "it names the entry: the display name, or the username for a protected person"),
    ("name", "AD keeps it equal to cn"),
    ("objectClass", "object classes are set by object_classes"),
    ("userAccountControl", "it is how enid enables and disables accounts"),
    ("unicodePwd", "passwords are set by initial_password"),
    ("userPassword", "passwords are set by initial_password"),
    ("pwdLastSet", "it is set by force_password_change"),
    ("objectGUID", "the domain gives it"),
    ("memberOf", "group memberships are made on the groups"),
    ("distinguishedName", "the domain keeps it"),
];

impl AdConfig {
    /// Checks what can be checked without a network.
    pub fn validate(&self) -> Result<(), String> {
        let ldaps = self.url.starts_with("ldaps://");
        let plain = self.url.starts_with("ldap://");
        if !ldaps && !plain {
            return Err(format!("url {:?} must start with ldaps:// (or ldap:// with starttls = true)", self.url));
        }
        if plain && !self.starttls {
            return Err(format!(
                "url {:?} is a plain connection: enid sets a password on every account it creates in AD and sends \
                 passwords only encrypted; use ldaps:// or starttls = true",
                self.url
            ));
        }
        if self.starttls && ldaps {
            return Err("starttls = true needs an ldap:// url".into());
        }
        if !self.base_dn.contains('=') {
            return Err(format!("base_dn {:?} is not a DN", self.base_dn));
        }
        if self.upn_suffix.trim().is_empty() || self.upn_suffix.contains(['@', ' ', ',']) {
            return Err(format!("upn_suffix {:?} must be a domain name, like skola.example.org", self.upn_suffix));
        }
        if self.password_length < 8 || self.password_length > 128 {
            return Err("password_length must be between 8 and 128".into());
        }
        if let Some(ou) = &self.ou {
            if !ou.contains('=') {
                return Err(format!(
                    "ou {ou:?} is not a DN template (OU={{{{ school_unit | dn }}}},{{{{ base_dn }}}})"
                ));
            }
            // Accounts must land where enid looks for them.
            let end = ou.trim_end();
            if !(end.ends_with("{{ base_dn }}")
                || end.ends_with("{{base_dn}}")
                || under(&normalize_dn(end), &self.base_dn))
            {
                return Err(format!(
                    "ou {ou:?} does not end in {{{{ base_dn }}}} or lie under base_dn {}: accounts placed there would be \
                     outside what enid observes",
                    self.base_dn
                ));
            }
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
        Ok(())
    }

    /// The OU template with `base_dn` in place.
    pub(crate) fn placement_template(&self) -> String {
        let t = self.ou.clone().unwrap_or_else(|| "OU={{ school_unit | dn }},{{ base_dn }}".into());
        t.replace("{{ base_dn }}", &self.base_dn).replace("{{base_dn}}", &self.base_dn)
    }

    /// The OU of protected persons.
    pub(crate) fn protected_ou(&self) -> String {
        self.protected_ou.clone().unwrap_or_else(|| format!("OU=Skyddade,{}", self.base_dn))
    }

    /// What the domain declares to the engine. Pure.
    pub fn capabilities(&self) -> Capabilities {
        let upn = format!("{{{{ username }}}}@{}", self.upn_suffix);
        let mut defaults: Vec<(String, String)> = [
            ("userPrincipalName", upn.as_str()),
            ("givenName", "{{ given_name }}"),
            ("sn", "{{ family_name }}"),
            ("displayName", "{{ display_name }}"),
            ("department", "{{ school_unit }}"),
            // What Entra Connect copies to the cloud; it holds 16 characters: the enid id's
            // first 16 hexadecimal digits (never a civic number or a source key).
            ("employeeID", "{{ (id | replace('-', ''))[:16] }}"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // Kept right as protection comes and goes: TRUE on a protected person's account, and
        // removed again when the protection ends.
        let mut protected_attributes = vec![
            "userPrincipalName".to_string(),
            self.owner_attribute.clone(),
            "employeeID".into(),
            "displayName".into(),
        ];
        if let Some(hide) = &self.hide_from_address_lists_attribute {
            defaults.push((hide.clone(), "{% if protected %}TRUE{% endif %}".into()));
            protected_attributes.push(hide.clone());
        }
        Capabilities {
            owner_attribute: self.owner_attribute.clone(),
            default_attributes: defaults,
            protected_attributes,
            groups: self.groups.as_ref().map(|_| MemberForm::Key),
            // AD keeps group members (a linked attribute) in step with moves and renames.
            members_follow_moves: true,
            placement: Some(self.placement_template()),
            protected_placement: Some(self.protected_ou()),
            placement_problem: Some(ou_problem),
            rename_keeps_key: true,
            disable: DisableKind::Flag,
            case_insensitive_names: true,
            typed_values: false,
            max_in_flight: self.max_in_flight,
            max_batch: 1,
            max_username_length: Some(20),
            username_forbidden: SAM_FORBIDDEN,
            renamed_by_attribute: Some("displayName"),
            finds_outside_scope: true,
            usernames_unique_server_wide: true,
            existing_usernames: ExistingUsernames::Avoid,
            initial_password: Some(PasswordRules {
                length: match self.initial_password {
                    InitialPassword::None => 32,
                    InitialPassword::Generated => self.password_length,
                },
                handed_out: self.initial_password == InitialPassword::Generated,
            }),
            fold_key: normalize_dn,
            fold_group_name,
            ..Capabilities::default()
        }
    }

    /// Why the policy may not set `attr` here, when it may not.
    pub fn fixed_attribute(&self, attr: &str) -> Option<&'static str> {
        let base = attr.split(';').next().unwrap_or(attr).trim();
        if base.eq_ignore_ascii_case(&self.owner_attribute) {
            return Some("it carries the enid id, which is how enid recognises the accounts it created");
        }
        FIXED.iter().find(|(n, _)| n.eq_ignore_ascii_case(base)).map(|(_, why)| *why)
    }
}

impl ConnectorConfig for AdConfig {
    fn validate(&self) -> Result<(), String> {
        AdConfig::validate(self)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        resolve_optional_path(dir, &mut self.bind_password_file);
        resolve_optional_path(dir, &mut self.tls_ca_file);
    }
}

impl TargetConnector for AdConfig {
    type Target = super::AdTarget;

    fn capabilities(&self) -> Capabilities {
        AdConfig::capabilities(self)
    }

    fn fixed_attribute(&self, attr: &str) -> Option<&'static str> {
        AdConfig::fixed_attribute(self, attr)
    }

    fn build(&self, id: &str) -> Result<super::AdTarget, String> {
        if self.tls_insecure_skip_verify {
            tracing::warn!(
                target_id = %id,
                "[targets.{id}] tls_insecure_skip_verify = true: the domain controller's certificate is not \
                 verified, so anyone on the network path can read the bind password and every first password; give \
                 tls_ca_file instead"
            );
        }
        let what = format!("bind password of [targets.{id}]");
        let password =
            load_configured_secret(self.bind_password_file.as_deref(), self.bind_password_env.as_deref(), &what)?;
        Ok(super::AdTarget::new(self.clone(), password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> AdConfig {
        toml::from_str(&format!(
            "url = \"ldaps://127.0.0.1\"\nbind_dn = \"Administrator@samdom.example.org\"\n\
             bind_password_file = \"p\"\nbase_dn = \"OU=Elever,DC=samdom,DC=example,DC=org\"\n\
             upn_suffix = \"skola.example.org\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn passwords_only_go_encrypted_and_the_settings_are_checked() {
        config("").validate().unwrap();
        let c: AdConfig = toml::from_str(
            "url = \"ldap://127.0.0.1\"\nbind_dn = \"x\"\nbase_dn = \"OU=E,DC=x\"\nupn_suffix = \"x.se\"\n",
        )
        .unwrap();
        let e = c.validate().unwrap_err();
        assert!(e.contains("plain connection") && e.contains("starttls"), "{e}");
        let mut c = c;
        c.starttls = true;
        c.validate().unwrap();
        assert!(config("password_length = 4").validate().is_err());
        let mut c = config("");
        c.upn_suffix = "a@b".into();
        assert!(c.validate().is_err());
        assert!(config("ou = \"OU={{ school_unit }},OU=Annan,DC=x\"").validate().unwrap_err().contains("outside"));
        config("ou = \"OU={{ school_unit | dn }},OU=Elever,DC=samdom,DC=example,DC=org\"").validate().unwrap();
    }

    #[test]
    fn an_ou_name_ad_cannot_hold_is_a_placement_problem() {
        let base = "OU=Elever,DC=samdom,DC=example,DC=org";
        assert_eq!(ou_problem(&format!("OU=Norr,{base}")), None);
        assert_eq!(ou_problem(&format!("OU={},{base}", "Å".repeat(64))), None);
        let long = ou_problem(&format!("OU={},{base}", "Å".repeat(65))).unwrap();
        assert!(long.contains("65 characters") && long.contains("at most 64"), "{long}");
        // Escapes count as the one character they stand for.
        assert_eq!(ou_problem(&format!("OU={}\\2C,{base}", "a".repeat(63))), None);
        assert!(ou_problem(&format!("OU= ,{base}")).unwrap().contains("empty name"));
        assert_eq!(config("").capabilities().placement_problem.map(|f| f(base)), Some(None));
    }

    #[test]
    fn the_domain_declares_ous_upns_and_first_passwords() {
        let c = config("initial_password = \"generated\"\npassword_length = 16");
        let caps = c.capabilities();
        assert_eq!(caps.placement.as_deref(), Some("OU={{ school_unit | dn }},OU=Elever,DC=samdom,DC=example,DC=org"));
        assert_eq!(caps.protected_placement.as_deref(), Some("OU=Skyddade,OU=Elever,DC=samdom,DC=example,DC=org"));
        assert_eq!(caps.owner_attribute, "employeeNumber");
        assert!(
            caps.default_attributes.contains(&("userPrincipalName".into(), "{{ username }}@skola.example.org".into()))
        );
        assert_eq!(caps.max_username_length, Some(20));
        assert_eq!(caps.initial_password, Some(PasswordRules { length: 16, handed_out: true }));
        assert_eq!(config("").capabilities().initial_password, Some(PasswordRules { length: 32, handed_out: false }));
        assert!(c.fixed_attribute("unicodePwd").is_some() && c.fixed_attribute("EMPLOYEENUMBER").is_some());
        assert!(c.fixed_attribute("mail").is_none());
    }
}
