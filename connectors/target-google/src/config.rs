//! `[targets.<id>]` with `type = "google"`: the Workspace domain, the service account and the
//! administrator it acts as, where accounts live (org units), first passwords, groups, how fast
//! enid may go; and what the domain declares to the engine ([`GoogleConfig::capabilities`]).

use connector_api::{
    Capabilities, ConnectorConfig, DisableKind, ExistingUsernames, MemberForm, PasswordRules, TargetConnector,
    resolve_optional_path, resolve_path,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The Admin SDK's scopes enid asks for.
pub(crate) const USER_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user";
pub(crate) const ORGUNIT_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.orgunit";
pub(crate) const GROUP_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group";

/// `[targets.<id>]` with `type = "google"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// The domain of the accounts: `primaryEmail` is `username@domain`.
    pub domain: String,
    /// The service account's JSON key file (its `token_uri` is where tokens come from).
    pub credentials_file: PathBuf,
    /// The administrator the service account acts as (domain-wide delegation).
    pub admin_email: String,
    /// The customer: `my_customer` (the administrator's own, the default) or its id.
    #[serde(default = "default_customer")]
    pub customer: String,
    /// The org unit of the accounts enid manages, read with every org unit below it (default:
    /// the fixed start of `org_unit`, `/Elever` for `/Elever/{{ school_unit }}`). It must exist.
    #[serde(default)]
    pub base_org_unit: Option<String>,
    /// Where a person's account lives: a template of enid's variables giving an org unit path
    /// below `base_org_unit` (default `{{ base_org_unit }}/{{ school_unit }}`). Missing org units
    /// are created.
    #[serde(default)]
    pub org_unit: Option<String>,
    /// Where persons with protected personal data live: an org unit that says nothing of them
    /// (default `<base_org_unit>/Skyddade`).
    #[serde(default)]
    pub protected_org_unit: Option<String>,
    /// The Admin SDK's address (tests point it at a local server).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// `"none"` (the default: single sign-on accounts get a long random password nobody sees;
    /// Google takes no account without one) or `"generated"` (a first password kept, encrypted,
    /// for the hand-out).
    #[serde(default)]
    pub initial_password: InitialPassword,
    /// Length of a generated first password (8 to 100).
    #[serde(default = "default_password_length")]
    pub password_length: usize,
    /// A generated first password must be changed at the first sign-in
    /// (`changePasswordAtNextLogin`).
    #[serde(default = "yes")]
    pub force_password_change: bool,
    /// Groups enid makes (when the target's policy has `groups`): their email addresses.
    #[serde(default)]
    pub groups: Option<GoogleGroupsConfig>,
    /// PEM file with the CA certificates that sign the API's certificate; the system's trust
    /// store when left out.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Turns certificate verification off. Only for tests; never in production.
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
    /// Requests per second at most. Google allows 2,400 queries a minute per user and project:
    /// the default, 38, stays just below.
    #[serde(default = "default_rate")]
    pub max_requests_per_second: f64,
    /// Requests outstanding at once.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Time allowed for one request.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Tries of one request at most (rate limits, 5xx and timeouts are tried again).
    #[serde(default = "default_attempts")]
    pub max_attempts: usize,
    /// The longest one request waits in all, backoff and `Retry-After` included.
    #[serde(default = "default_max_wait_secs")]
    pub max_wait_secs: u64,
    /// Users per page of a listing (at most 500).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
}

/// `[targets.<id>.groups]` of a Google target.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GoogleGroupsConfig {
    /// Put before every group's address (`klass-` makes `klass-s1-7a@domain`), so that enid's
    /// groups are told from the domain's others at a glance.
    #[serde(default)]
    pub email_prefix: String,
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

fn default_customer() -> String {
    "my_customer".into()
}
fn default_api_url() -> String {
    "https://admin.googleapis.com".into()
}
fn default_password_length() -> usize {
    14
}
fn yes() -> bool {
    true
}
fn default_rate() -> f64 {
    38.0
}
fn default_in_flight() -> usize {
    4
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_attempts() -> usize {
    6
}
fn default_max_wait_secs() -> u64 {
    120
}
fn default_page_size() -> usize {
    500
}

/// Characters a Google username (an email's local part) may not hold: only letters, digits,
/// `-`, `_`, `'` and `.` are taken.
const FORBIDDEN: &str = " @,;:<>()[]\\\"/+!#$%&*=?^`{|}~";

/// The attributes a policy may not set: Google's, or enid's through another way.
const FIXED: [(&str, &str); 10] = [
    ("externalId", "it carries the enid id, which is how enid recognises the accounts it created"),
    ("externalIds", "they carry the enid id, which is how enid recognises the accounts it created"),
    ("primaryEmail", "it is the username at the domain"),
    ("suspended", "it is how enid disables and enables accounts"),
    ("orgUnitPath", "it is where the account lives: set org_unit"),
    ("password", "first passwords are set by initial_password"),
    ("changePasswordAtNextLogin", "it follows force_password_change"),
    ("id", "Google gives it"),
    ("isAdmin", "enid never makes administrators"),
    ("aliases", "Google keeps an old address as an alias itself"),
];

impl GoogleConfig {
    /// The base org unit, given or taken from the template's fixed start.
    pub(crate) fn base(&self) -> String {
        if let Some(b) = &self.base_org_unit {
            return trim_ou(b);
        }
        match &self.org_unit {
            Some(t) => {
                let fixed = t.split("{{").next().unwrap_or("");
                let fixed = fixed.rsplit_once('/').map(|(a, _)| a).unwrap_or("");
                trim_ou(if fixed.is_empty() { "/" } else { fixed })
            }
            None => "/Elever".into(),
        }
    }

    /// The org unit template with the base in place.
    pub(crate) fn placement_template(&self) -> String {
        let base = self.base();
        let t = self.org_unit.clone().unwrap_or_else(|| "{{ base_org_unit }}/{{ school_unit }}".into());
        let base = if base == "/" { String::new() } else { base };
        t.replace("{{ base_org_unit }}", &base).replace("{{base_org_unit}}", &base)
    }

    /// The org unit of protected persons.
    pub(crate) fn protected_ou(&self) -> String {
        match &self.protected_org_unit {
            Some(p) => trim_ou(p),
            None => under(&self.base(), "Skyddade"),
        }
    }

    /// The scopes a token is asked for.
    pub(crate) fn scopes(&self) -> String {
        let mut s = vec![USER_SCOPE, ORGUNIT_SCOPE];
        if self.groups.is_some() {
            s.push(GROUP_SCOPE);
        }
        s.join(" ")
    }

    /// Checks what can be checked without a network.
    pub fn validate(&self) -> Result<(), String> {
        let d = &self.domain;
        if d.is_empty() || d.contains(['@', ' ', '/']) || !d.contains('.') {
            return Err(format!("domain {d:?} is not a domain name (skola.example.org)"));
        }
        if !self.admin_email.contains('@') {
            return Err(format!(
                "admin_email {:?} must be the address of the administrator the service account acts as",
                self.admin_email
            ));
        }
        if !connector_http::url_allowed(&self.api_url) {
            return Err(format!(
                "api_url {:?} must start with https:// (http:// only for a test server on this machine: tokens \
                 are never sent in the clear)",
                self.api_url
            ));
        }
        let base = self.base();
        for (key, p) in [("base_org_unit", base.clone()), ("protected_org_unit", self.protected_ou())] {
            if let Some(why) = ou_problem(&p) {
                return Err(format!("{key} {p:?} {why}"));
            }
        }
        let t = self.placement_template();
        if !t.starts_with('/') {
            return Err(format!("org_unit {t:?} must be a path that starts with /"));
        }
        if !t.contains("{{") {
            return Err(format!("org_unit {t:?} must use a variable, as {{{{ school_unit }}}}"));
        }
        let fixed = t.split("{{").next().unwrap_or("");
        if base != "/" && !fixed.to_lowercase().starts_with(&format!("{}/", base.to_lowercase())) {
            return Err(format!(
                "org_unit {t:?} must place accounts below base_org_unit {base:?}, where enid reads them"
            ));
        }
        let protected = self.protected_ou();
        if !under_ou(&protected, &base) {
            return Err(format!(
                "protected_org_unit {protected:?} must be below base_org_unit {base:?}, where enid reads accounts"
            ));
        }
        if !(8..=100).contains(&self.password_length) {
            return Err(format!("password_length {} must be from 8 to 100 (Google's limits)", self.password_length));
        }
        if !(1..=500).contains(&self.page_size) {
            return Err(format!("page_size {} must be from 1 to 500", self.page_size));
        }
        if self.max_in_flight == 0 || self.max_attempts == 0 {
            return Err("max_in_flight and max_attempts must be at least 1".into());
        }
        if self.max_requests_per_second.is_nan() || self.max_requests_per_second <= 0.0 {
            return Err("max_requests_per_second must be more than 0".into());
        }
        if let Some(g) = &self.groups
            && g.email_prefix.chars().any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(format!(
                "groups.email_prefix {:?} may hold only letters a-z, digits, '-', '_' and '.'",
                g.email_prefix
            ));
        }
        Ok(())
    }

    /// What the domain declares to the engine. Pure.
    pub fn capabilities(&self) -> Capabilities {
        let defaults = [
            ("name.givenName", "{{ given_name }}"),
            ("name.familyName", "{{ family_name }}"),
            // The school unit, where the Admin console and the directory show a department.
            ("organizations.department", "{{ school_unit }}"),
            // Out of the directory others see for a person with protected personal data.
            ("includeInGlobalAddressList", "{% if protected %}false{% else %}true{% endif %}"),
        ];
        Capabilities {
            owner_attribute: crate::OWNER.into(),
            default_attributes: defaults.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            protected_attributes: vec!["name".into(), crate::OWNER.into(), "includeInGlobalAddressList".into()],
            groups: self.groups.as_ref().map(|_| MemberForm::Key),
            // Members are users by id: a rename or a move changes none.
            members_follow_moves: true,
            placement: Some(self.placement_template()),
            protected_placement: Some(self.protected_ou()),
            placement_problem: Some(ou_problem),
            rename_keeps_key: true,
            disable: DisableKind::Flag,
            case_insensitive_names: true,
            typed_values: true,
            max_in_flight: self.max_in_flight,
            max_batch: 1,
            max_requests_per_second: Some(self.max_requests_per_second),
            max_username_length: Some(64),
            username_forbidden: FORBIDDEN,
            finds_outside_scope: true,
            // An address is one user's or one group's in the whole domain.
            usernames_unique_server_wide: true,
            existing_usernames: ExistingUsernames::Avoid,
            initial_password: Some(PasswordRules {
                length: match self.initial_password {
                    InitialPassword::None => 32,
                    InitialPassword::Generated => self.password_length,
                },
                handed_out: self.initial_password == InitialPassword::Generated,
            }),
            fold_key: connector_api::capabilities::exact,
            fold_group_name: connector_api::capabilities::lowercase,
            ..Capabilities::default()
        }
    }

    /// Why the policy may not set `attr` here, when it may not.
    pub fn fixed_attribute(&self, attr: &str) -> Option<&'static str> {
        let base = attr.split('.').next().unwrap_or(attr);
        FIXED.iter().find(|(n, _)| n.eq_ignore_ascii_case(base)).map(|(_, why)| *why)
    }
}

/// An org unit path as Google writes it: one leading `/`, none at the end.
pub(crate) fn trim_ou(p: &str) -> String {
    let t = p.trim().trim_end_matches('/');
    if t.is_empty() {
        "/".into()
    } else if t.starts_with('/') {
        t.to_string()
    } else {
        format!("/{t}")
    }
}

/// `name` below org unit `parent`.
pub(crate) fn under(parent: &str, name: &str) -> String {
    if parent == "/" { format!("/{name}") } else { format!("{parent}/{name}") }
}

/// Whether org unit `p` is `base` or below it (without case, as Google compares them).
pub(crate) fn under_ou(p: &str, base: &str) -> bool {
    let (p, base) = (p.to_lowercase(), base.to_lowercase());
    base == "/" || p == base || p.starts_with(&format!("{base}/"))
}

/// Why Google cannot hold accounts at this org unit path, when it cannot: it is no absolute
/// path, or one of its names is empty, has spaces at its ends, or is longer than Google allows.
pub(crate) fn ou_problem(p: &str) -> Option<String> {
    if !p.starts_with('/') {
        return Some("is not an org unit path (it must start with /)".into());
    }
    if p == "/" {
        return None;
    }
    for name in p[1..].split('/') {
        if name.is_empty() {
            return Some("has an empty org unit name".into());
        }
        if name.trim() != name {
            return Some(format!("has an org unit name with spaces at its ends ({name:?})"));
        }
        // A URL's dot segments: the request would name another org unit (one above).
        if name == "." || name == ".." {
            return Some(format!("has an org unit name {name:?}, which names no org unit of its own"));
        }
        if name.chars().count() > 255 {
            return Some("has an org unit name longer than 255 characters".into());
        }
    }
    None
}

impl ConnectorConfig for GoogleConfig {
    fn validate(&self) -> Result<(), String> {
        GoogleConfig::validate(self)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        resolve_path(dir, &mut self.credentials_file);
        resolve_optional_path(dir, &mut self.tls_ca_file);
    }
}

impl TargetConnector for GoogleConfig {
    type Target = crate::GoogleTarget;

    fn capabilities(&self) -> Capabilities {
        GoogleConfig::capabilities(self)
    }

    fn fixed_attribute(&self, attr: &str) -> Option<&'static str> {
        GoogleConfig::fixed_attribute(self, attr)
    }

    fn build(&self, id: &str) -> Result<crate::GoogleTarget, String> {
        if self.tls_insecure_skip_verify {
            connector_api::warn_unverified_tls(&format!("[targets.{id}]"), "the tokens and every account");
        }
        let what = format!("credentials_file of [targets.{id}]");
        let key = connector_http::ServiceAccountKey::load(&self.credentials_file, &what)?;
        if !connector_http::url_allowed(&key.token_uri) {
            return Err(format!(
                "{what}: its token_uri {:?} must start with https:// (http:// only to this machine, a test server): \
                 the signed grant would travel in the clear",
                key.token_uri
            ));
        }
        crate::GoogleTarget::new(self.clone(), key).map_err(|e| connector_api::one_line(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> GoogleConfig {
        toml::from_str(&format!(
            "domain = \"skola.example.org\"\ncredentials_file = \"k.json\"\nadmin_email = \"admin@skola.example.org\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn org_units_come_from_the_template_or_the_base() {
        let c = config("");
        c.validate().unwrap();
        let e = config("api_url = \"http://admin.googleapis.com\"").validate().unwrap_err();
        assert!(e.contains("never sent in the clear"), "{e}");
        config("api_url = \"http://127.0.0.1:8080\"").validate().unwrap();
        assert_eq!(c.base(), "/Elever");
        assert_eq!(c.placement_template(), "/Elever/{{ school_unit }}");
        assert_eq!(c.protected_ou(), "/Elever/Skyddade");
        let c = config("org_unit = \"/Skolor/{{ school_unit }}/Elever\"");
        c.validate().unwrap();
        assert_eq!(c.base(), "/Skolor");
        assert_eq!(c.protected_ou(), "/Skolor/Skyddade");
        let c = config("base_org_unit = \"/\"\norg_unit = \"/{{ school_unit }}\"");
        c.validate().unwrap();
        assert_eq!(c.placement_template(), "/{{ school_unit }}");
        let e =
            config("base_org_unit = \"/Elever\"\norg_unit = \"/Personal/{{ school_unit }}\"").validate().unwrap_err();
        assert!(e.contains("below base_org_unit"), "{e}");
        let e = config("protected_org_unit = \"/Hemligt\"").validate().unwrap_err();
        assert!(e.contains("protected_org_unit"), "{e}");
        let e = config("org_unit = \"/Elever/Alla\"").validate().unwrap_err();
        assert!(e.contains("variable"), "{e}");
    }

    #[test]
    fn settings_google_cannot_take_are_refused_before_anything_is_sent() {
        let e = config("password_length = 6").validate().unwrap_err();
        assert!(e.contains("8 to 100"), "{e}");
        let e = config("page_size = 501").validate().unwrap_err();
        assert!(e.contains("page_size"), "{e}");
        let e = config("[groups]\nemail_prefix = \"klass @\"").validate().unwrap_err();
        assert!(e.contains("email_prefix"), "{e}");
        let bad: Result<GoogleConfig, _> =
            toml::from_str("domain = \"x.se\"\ncredentials_file = \"k\"\nadmin_email = \"a@x.se\"\nurl = \"x\"");
        assert!(bad.unwrap_err().to_string().contains("unknown field"));
        assert_eq!(ou_problem("/Elever/ 7A"), Some("has an org unit name with spaces at its ends (\" 7A\")".into()));
        assert_eq!(ou_problem("/Elever//7A"), Some("has an empty org unit name".into()));
        assert_eq!(ou_problem("/Elever/Norr"), None);
        assert!(ou_problem("/Elever/..").is_some() && ou_problem("/Elever/./Norr").is_some());
        assert_eq!(ou_problem("/Elever/...Norr"), None);
        let c = config("");
        assert!(c.fixed_attribute("primaryEmail").is_some() && c.fixed_attribute("externalIds").is_some());
        assert!(c.fixed_attribute("name.givenName").is_none());
        let caps = config("initial_password = \"generated\"\n[groups]\n").capabilities();
        assert_eq!(caps.initial_password, Some(PasswordRules { length: 14, handed_out: true }));
        assert_eq!(caps.groups, Some(MemberForm::Key));
        assert_eq!(config("").scopes(), format!("{USER_SCOPE} {ORGUNIT_SCOPE}"));
    }
}
