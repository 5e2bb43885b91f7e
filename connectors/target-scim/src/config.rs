//! `[targets.<id>]` with `type = "scim"`: where the SCIM service is, how enid authenticates,
//! how fast it may go, and how a username becomes a `userName`; and what the service declares
//! to the engine ([`ScimConfig::capabilities`]).

use connector_api::{Capabilities, ConnectorConfig, DisableKind, MemberForm, TargetConnector, resolve_optional_path};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[targets.<id>]` with `type = "scim"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScimConfig {
    /// The SCIM base URL (`https://lms.example.org/scim/v2`); `/Users` and `/Groups` are below it.
    pub url: String,
    /// File holding a bearer token (preferred for a static token).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding a bearer token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// OAuth2 client credentials instead of a static token: the token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// OAuth2 client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// File holding the OAuth2 client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Environment variable holding the OAuth2 client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// OAuth2 scopes, space-separated, when the token endpoint wants them.
    #[serde(default)]
    pub scope: Option<String>,
    /// How the client authenticates to the token endpoint: `"basic"` (HTTP Basic, the
    /// default) or `"form"` (in the form body).
    #[serde(default)]
    pub client_auth: connector_http::ClientAuth,
    /// PEM file with the CA certificates that sign the server's certificate; the system's
    /// trust store when left out.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Turns certificate verification off. Only for tests; never in production.
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
    /// Requests per second at most (the platform's limit); none when left out.
    #[serde(default)]
    pub max_requests_per_second: Option<f64>,
    /// Requests outstanding at once.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Time allowed for one request.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Tries of one request at most (429, 503, 5xx and timeouts are tried again).
    #[serde(default = "default_attempts")]
    pub max_attempts: usize,
    /// The longest one request waits in all, `Retry-After` included; a server that asks for
    /// longer stops the run, which says when to come back.
    #[serde(default = "default_max_wait_secs")]
    pub max_wait_secs: u64,
    /// Creates sent together in one `/Bulk` request, when the service supports it (its
    /// ServiceProviderConfig's `bulk`); 0 (the default): one request per change.
    #[serde(default)]
    pub bulk_max_operations: usize,
    /// Users or groups per page of a listing.
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// The `userName` of an account: the username with what the platform wants around it,
    /// `{{ username }}` and nothing else as a variable (`"{{ username }}@skola.example.org"`
    /// for platforms that expect an eduPersonPrincipalName).
    #[serde(default = "default_user_name")]
    pub user_name: String,
    /// A user that exists with the username a person gets and no `externalId` is claimed (its
    /// `externalId` set to the enid id) instead of being left alone and the person blocked.
    #[serde(default)]
    pub adopt_by_username: bool,
}

fn default_in_flight() -> usize {
    4
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_attempts() -> usize {
    4
}
fn default_max_wait_secs() -> u64 {
    120
}
fn default_page_size() -> usize {
    100
}
fn default_user_name() -> String {
    "{{ username }}".into()
}

/// The attributes a policy may not set: the platform's, or enid's through another way.
const FIXED: [(&str, &str); 8] = [
    ("externalId", "it carries the enid id, which is how enid recognises the accounts it created"),
    ("userName", "it is the username, made from the target's user_name setting"),
    ("active", "it is how enid disables and enables accounts"),
    ("id", "the platform gives it"),
    ("meta", "the platform keeps it"),
    ("schemas", "the connector sets them"),
    ("groups", "group memberships are made on the groups"),
    ("password", "enid does not set SCIM passwords"),
];

impl ScimConfig {
    /// Checks what can be checked without a network.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return Err(format!("url {:?} must start with https:// (or http:// for a test server)", self.url));
        }
        self.auth_keys().validate()?;
        if self.user_name.matches("{{").count() != 1 || !self.user_name.replace(' ', "").contains("{{username}}") {
            return Err(format!(
                "user_name {:?} must hold {{{{ username }}}} once, with text around it if the platform wants it",
                self.user_name
            ));
        }
        if self.max_in_flight == 0 || self.page_size == 0 || self.max_attempts == 0 {
            return Err("max_in_flight, page_size and max_attempts must be at least 1".into());
        }
        if self.max_requests_per_second.is_some_and(|r| r.is_nan() || r <= 0.0) {
            return Err("max_requests_per_second must be more than 0".into());
        }
        Ok(())
    }

    /// The authentication keys, for the HTTP client every HTTP connector shares.
    pub fn auth_keys(&self) -> connector_http::AuthKeys<'_> {
        connector_http::AuthKeys {
            token_file: self.token_file.as_deref(),
            token_env: self.token_env.as_deref(),
            token_url: self.token_url.as_deref(),
            client_id: self.client_id.as_deref(),
            client_secret_file: self.client_secret_file.as_deref(),
            client_secret_env: self.client_secret_env.as_deref(),
            scope: self.scope.as_deref(),
            client_auth: self.client_auth,
        }
    }

    /// The text before and after the username in `userName`.
    pub(crate) fn user_name_parts(&self) -> (String, String) {
        let compact = self.user_name.replace("{{ username }}", "{{username}}");
        let compact = compact.replace("{{username }}", "{{username}}").replace("{{ username}}", "{{username}}");
        match compact.split_once("{{username}}") {
            Some((a, b)) => (a.to_string(), b.to_string()),
            None => (String::new(), String::new()),
        }
    }

    /// What the platform declares to the engine. Pure.
    pub fn capabilities(&self) -> Capabilities {
        let defaults = [
            ("name.givenName", "{{ given_name }}"),
            ("name.familyName", "{{ family_name }}"),
            ("displayName", "{{ display_name }}"),
            ("department", "{{ school_unit }}"),
        ];
        Capabilities {
            owner_attribute: "externalId".into(),
            default_attributes: defaults.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            protected_attributes: vec!["userName".into(), "externalId".into(), "active".into()],
            groups: Some(MemberForm::Key),
            rename_keeps_key: true,
            disable: DisableKind::Flag,
            // userName is case-insensitive in RFC 7643 (caseExact false), and so are the
            // group names most platforms keep.
            case_insensitive_names: true,
            typed_values: true,
            max_in_flight: self.max_in_flight,
            max_batch: self.bulk_max_operations.max(1),
            max_requests_per_second: self.max_requests_per_second,
            existing_usernames: if self.adopt_by_username {
                connector_api::ExistingUsernames::Adopt
            } else {
                connector_api::ExistingUsernames::Block
            },
            fold_key: connector_api::capabilities::exact,
            fold_group_name: connector_api::capabilities::lowercase,
            ..Capabilities::default()
        }
    }

    /// Why the policy may not set `attr` here, when it may not.
    pub fn fixed_attribute(&self, attr: &str) -> Option<&'static str> {
        let base = attr.rsplit(':').next().unwrap_or(attr);
        FIXED.iter().find(|(name, _)| name.eq_ignore_ascii_case(base)).map(|(_, why)| *why)
    }
}

impl ConnectorConfig for ScimConfig {
    fn validate(&self) -> Result<(), String> {
        ScimConfig::validate(self)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        for p in [&mut self.token_file, &mut self.client_secret_file, &mut self.tls_ca_file] {
            resolve_optional_path(dir, p);
        }
    }
}

impl TargetConnector for ScimConfig {
    type Target = crate::ScimTarget;

    fn capabilities(&self) -> Capabilities {
        ScimConfig::capabilities(self)
    }

    fn fixed_attribute(&self, attr: &str) -> Option<&'static str> {
        ScimConfig::fixed_attribute(self, attr)
    }

    fn build(&self, id: &str) -> Result<crate::ScimTarget, String> {
        if self.tls_insecure_skip_verify {
            connector_api::warn_unverified_tls(&format!("[targets.{id}]"), "the token and every account");
        }
        let auth = self.auth_keys().auth(&format!("[targets.{id}]"))?;
        crate::ScimTarget::new(self.clone(), auth).map_err(|e| connector_api::one_line(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> ScimConfig {
        toml::from_str(&format!("url = \"http://127.0.0.1:8081\"\ntoken_file = \"t\"\n{extra}")).unwrap()
    }

    #[test]
    fn settings_are_checked_before_anything_is_sent() {
        config("").validate().unwrap();
        let e = config("token_url = \"https://x/token\"").validate().unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = toml::from_str::<ScimConfig>("url = \"http://x\"").unwrap().validate().unwrap_err();
        assert!(e.starts_with("no credentials"), "{e}");
        let e = config("user_name = \"{{ username }}{{ username }}\"").validate().unwrap_err();
        assert!(e.contains("once"), "{e}");
        let e = config("user_name = \"{{ id }}\"").validate().unwrap_err();
        assert!(e.contains("user_name"), "{e}");
        let c = config("user_name = \"{{ username }}@skola.se\"");
        c.validate().unwrap();
        assert_eq!(c.user_name_parts(), (String::new(), "@skola.se".to_string()));
        assert!(c.fixed_attribute("userName").is_some());
        assert!(c.fixed_attribute("urn:ietf:params:scim:schemas:core:2.0:User:externalId").is_some());
        assert!(c.fixed_attribute("emails").is_none());
    }
}
