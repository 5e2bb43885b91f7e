//! `[targets.<id>]` with `type = "entra"`: the tenant, the app registration and its credential
//! (a client secret, or a certificate), the UPN suffix, first passwords, groups, `$batch`, the
//! delta query; and what the tenant declares to the engine ([`EntraConfig::capabilities`]).

use connector_api::{
    Capabilities, ConnectorConfig, DisableKind, ExistingUsernames, MemberForm, PasswordRules, TargetConnector,
    load_configured_secret, resolve_optional_path,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[targets.<id>]` with `type = "entra"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EntraConfig {
    /// The tenant (directory) id.
    pub tenant_id: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// File holding the client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// The app's certificate (PEM), instead of a secret: tokens are asked for with an assertion
    /// signed by its key.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// The suffix of `userPrincipalName`: `username@upn_suffix` (a verified domain).
    pub upn_suffix: String,
    /// Where users may use licensed services (ISO 3166 code); Microsoft 365 licences need it.
    #[serde(default = "default_usage_location")]
    pub usage_location: String,
    /// Graph's address (tests point it at a local server).
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    /// The token endpoint (default the tenant's v2.0 endpoint at login.microsoftonline.com).
    #[serde(default)]
    pub token_url: Option<String>,
    /// Which of the fifteen extension attributes (`onPremisesExtensionAttributes`) carries the
    /// enid id: a cloud user's are written through Graph, hold 1,024 characters and can be
    /// searched. Default 15.
    #[serde(default = "default_owner_extension")]
    pub owner_extension_attribute: u8,
    /// `"none"` (the default: single sign-on accounts get a long random password nobody sees)
    /// or `"generated"` (a first password kept, encrypted, for the hand-out).
    #[serde(default)]
    pub initial_password: InitialPassword,
    /// Length of a generated first password (8 to 256).
    #[serde(default = "default_password_length")]
    pub password_length: usize,
    /// A generated first password must be changed at the first sign-in.
    #[serde(default = "yes")]
    pub force_password_change: bool,
    /// Security groups enid makes (when the target's policy has `groups`).
    #[serde(default)]
    pub groups: Option<EntraGroupsConfig>,
    /// Reads by the delta query: after the first run, only what changed since the last apply
    /// that succeeded is read (the engine keeps where the reads ended). Default on.
    #[serde(default = "yes")]
    pub delta: bool,
    /// Requests sent together in one `$batch` (at most 20; 1: none).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// PEM file with the CA certificates that sign Graph's certificate; the system's trust
    /// store when left out.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Turns certificate verification off. Only for tests; never in production.
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
    /// Requests per second at most (a `$batch` is one); none when left out (Graph's 429s and
    /// their `Retry-After` are honoured either way).
    #[serde(default)]
    pub max_requests_per_second: Option<f64>,
    /// Requests outstanding at once.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Time allowed for one request.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Tries of one request at most.
    #[serde(default = "default_attempts")]
    pub max_attempts: usize,
    /// The longest one request waits in all, `Retry-After` included.
    #[serde(default = "default_max_wait_secs")]
    pub max_wait_secs: u64,
}

/// `[targets.<id>.groups]` of an Entra target.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EntraGroupsConfig {
    /// Put before every group's `mailNickname`; enid reads only the groups whose nickname
    /// starts with it.
    #[serde(default)]
    pub mail_nickname_prefix: String,
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

fn default_usage_location() -> String {
    "SE".into()
}
fn default_graph_url() -> String {
    "https://graph.microsoft.com/v1.0".into()
}
fn default_owner_extension() -> u8 {
    15
}
fn default_password_length() -> usize {
    14
}
fn yes() -> bool {
    true
}
fn default_batch() -> usize {
    20
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
    180
}

/// Characters a UPN's local part may not hold (Entra takes letters, digits and `' . - _ ! # ^ ~`).
const FORBIDDEN: &str = " @,;:<>()[]\\\"/+$%&*=?`{|}";

/// The attributes a policy may not set: Graph's, or enid's through another way.
const FIXED: [(&str, &str); 9] = [
    ("userPrincipalName", "it is the username at upn_suffix"),
    ("mailNickname", "it is the username"),
    ("accountEnabled", "it is how enid disables and enables accounts"),
    ("passwordProfile", "first passwords are set by initial_password"),
    ("id", "Graph gives it"),
    ("onPremisesSyncEnabled", "Entra Connect sets it"),
    ("onPremisesImmutableId", "it ties a user to on-premises AD"),
    ("identities", "enid does not manage sign-in identities"),
    ("usageLocation", "it follows usage_location"),
];

impl EntraConfig {
    /// The owner marker's attribute, as the engine names it.
    pub fn owner_attribute(&self) -> String {
        format!("onPremisesExtensionAttributes.extensionAttribute{}", self.owner_extension_attribute)
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> String {
        self.token_url
            .clone()
            .unwrap_or_else(|| format!("https://login.microsoftonline.com/{}/oauth2/v2.0/token", self.tenant_id))
    }

    /// The scope of an app's token for Graph.
    pub(crate) fn scope(&self) -> String {
        let host = self.graph_url.trim_end_matches('/');
        let root = host.strip_suffix("/v1.0").or_else(|| host.strip_suffix("/beta")).unwrap_or(host);
        // Graph's own audience; a test server answers for it as Graph does.
        if root.contains("127.0.0.1") || root.contains("localhost") {
            "https://graph.microsoft.com/.default".into()
        } else {
            format!("{root}/.default")
        }
    }

    /// Checks what can be checked without a network.
    pub fn validate(&self) -> Result<(), String> {
        for (key, v) in [("tenant_id", &self.tenant_id), ("client_id", &self.client_id)] {
            if v.trim().is_empty() || v.contains(['/', ' ', '?', '#']) {
                return Err(format!("{key} {v:?} must be the id shown in the Entra admin center (a GUID)"));
            }
        }
        let secret = self.client_secret_file.is_some() || self.client_secret_env.is_some();
        let cert = self.client_cert_file.is_some() || self.client_key_file.is_some();
        match (secret, cert) {
            (true, true) => return Err("give a client secret or a certificate, not both".into()),
            (false, false) => {
                return Err("no credentials: give client_secret_file (or client_secret_env), or client_cert_file \
                            and client_key_file"
                    .into());
            }
            (false, true) if self.client_cert_file.is_none() || self.client_key_file.is_none() => {
                return Err("a certificate needs both client_cert_file and client_key_file".into());
            }
            _ => {}
        }
        let s = &self.upn_suffix;
        if s.is_empty() || s.contains(['@', ' ', '/']) || !s.contains('.') {
            return Err(format!("upn_suffix {s:?} must be a verified domain of the tenant (skola.example.org)"));
        }
        if self.usage_location.len() != 2 || !self.usage_location.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(format!("usage_location {:?} must be a two-letter country code (SE)", self.usage_location));
        }
        for (key, url) in [("graph_url", Some(&self.graph_url)), ("token_url", self.token_url.as_ref())] {
            if let Some(u) = url
                && !connector_http::url_allowed(u)
            {
                return Err(format!(
                    "{key} {u:?} must start with https:// (http:// only for a test server on this machine: the \
                     client secret and tokens are never sent in the clear)"
                ));
            }
        }
        if !(1..=15).contains(&self.owner_extension_attribute) {
            return Err(format!("owner_extension_attribute {} must be from 1 to 15", self.owner_extension_attribute));
        }
        if !(8..=256).contains(&self.password_length) {
            return Err(format!("password_length {} must be from 8 to 256", self.password_length));
        }
        if !(1..=20).contains(&self.batch_size) {
            return Err(format!("batch_size {} must be from 1 to 20 (Graph's $batch limit)", self.batch_size));
        }
        if self.max_in_flight == 0 || self.max_attempts == 0 {
            return Err("max_in_flight and max_attempts must be at least 1".into());
        }
        if self.max_requests_per_second.is_some_and(|r| r.is_nan() || r <= 0.0) {
            return Err("max_requests_per_second must be more than 0".into());
        }
        if let Some(g) = &self.groups
            && g.mail_nickname_prefix.chars().any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(format!(
                "groups.mail_nickname_prefix {:?} may hold only letters a-z, digits, '-', '_' and '.'",
                g.mail_nickname_prefix
            ));
        }
        Ok(())
    }

    /// What the tenant declares to the engine. Pure.
    pub fn capabilities(&self) -> Capabilities {
        let owner = self.owner_attribute();
        let defaults = [
            ("givenName", "{{ given_name }}"),
            ("surname", "{{ family_name }}"),
            ("displayName", "{{ display_name }}"),
            ("department", "{{ school_unit }}"),
            ("jobTitle", "{{ roles }}"),
        ];
        Capabilities {
            owner_attribute: owner.clone(),
            default_attributes: defaults.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            protected_attributes: vec!["givenName".into(), "surname".into(), "displayName".into(), owner],
            groups: self.groups.as_ref().map(|_| MemberForm::Key),
            members_follow_moves: true,
            rename_keeps_key: true,
            disable: DisableKind::Flag,
            case_insensitive_names: true,
            typed_values: true,
            max_in_flight: self.max_in_flight,
            max_batch: self.batch_size,
            max_requests_per_second: self.max_requests_per_second,
            max_username_length: Some(64),
            username_forbidden: FORBIDDEN,
            // A soft-deleted user keeps its UPN for 30 days: a new name is looked up among them.
            finds_outside_scope: true,
            usernames_unique_server_wide: true,
            existing_usernames: ExistingUsernames::Block,
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
        if attr.eq_ignore_ascii_case(&self.owner_attribute()) {
            return Some("it carries the enid id, which is how enid recognises the accounts it created");
        }
        let base = attr.split('.').next().unwrap_or(attr);
        FIXED.iter().find(|(n, _)| n.eq_ignore_ascii_case(base)).map(|(_, why)| *why)
    }

    /// The credentials, read from their files or the environment.
    pub(crate) fn credentials(&self, table: &str) -> Result<connector_http::Credentials, String> {
        if let (Some(cert), Some(key)) = (&self.client_cert_file, &self.client_key_file) {
            let key = connector_http::CertificateKey::load(cert, key, &format!("client certificate of {table}"))?;
            return Ok(connector_http::Credentials::Assertion(connector_http::Assertion::ClientCertificate {
                client_id: self.client_id.clone(),
                key,
            }));
        }
        let what = format!("client secret of {table}");
        let secret =
            load_configured_secret(self.client_secret_file.as_deref(), self.client_secret_env.as_deref(), &what)?;
        Ok(connector_http::Credentials::Secret {
            client_id: self.client_id.clone(),
            client_secret: secret,
            client_auth: connector_http::ClientAuth::Form,
        })
    }
}

impl ConnectorConfig for EntraConfig {
    fn validate(&self) -> Result<(), String> {
        EntraConfig::validate(self)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        for p in
            [&mut self.client_secret_file, &mut self.client_cert_file, &mut self.client_key_file, &mut self.tls_ca_file]
        {
            resolve_optional_path(dir, p);
        }
    }
}

impl TargetConnector for EntraConfig {
    type Target = crate::EntraTarget;

    fn capabilities(&self) -> Capabilities {
        EntraConfig::capabilities(self)
    }

    fn fixed_attribute(&self, attr: &str) -> Option<&'static str> {
        EntraConfig::fixed_attribute(self, attr)
    }

    fn build(&self, id: &str) -> Result<crate::EntraTarget, String> {
        if self.tls_insecure_skip_verify {
            connector_api::warn_unverified_tls(&format!("[targets.{id}]"), "the tokens and every account");
        }
        let credentials = self.credentials(&format!("[targets.{id}]"))?;
        crate::EntraTarget::new(self.clone(), credentials).map_err(|e| connector_api::one_line(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> EntraConfig {
        toml::from_str(&format!("tenant_id = \"t1\"\nclient_id = \"c1\"\nupn_suffix = \"skola.example.org\"\n{extra}"))
            .unwrap()
    }

    #[test]
    fn one_credential_whole_and_settings_graph_takes() {
        config("client_secret_file = \"s\"").validate().unwrap();
        config("client_cert_file = \"c.pem\"\nclient_key_file = \"k.pem\"").validate().unwrap();
        let e = config("").validate().unwrap_err();
        assert!(e.starts_with("no credentials"), "{e}");
        let e = config("client_secret_file = \"s\"\nclient_cert_file = \"c.pem\"").validate().unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = config("client_cert_file = \"c.pem\"").validate().unwrap_err();
        assert!(e.contains("both client_cert_file and client_key_file"), "{e}");
        let e = config("client_secret_file = \"s\"\nbatch_size = 21").validate().unwrap_err();
        assert!(e.contains("batch_size"), "{e}");
        let e = config("client_secret_file = \"s\"\nowner_extension_attribute = 16").validate().unwrap_err();
        assert!(e.contains("1 to 15"), "{e}");
        let e = config("client_secret_file = \"s\"\nusage_location = \"se\"").validate().unwrap_err();
        assert!(e.contains("usage_location"), "{e}");
        for url in ["graph_url = \"http://graph.microsoft.com/v1.0\"", "token_url = \"http://login.example.org/t\""] {
            let e = config(&format!("client_secret_file = \"s\"\n{url}")).validate().unwrap_err();
            assert!(e.contains("never sent in the clear"), "{e}");
        }
        config("client_secret_file = \"s\"\ngraph_url = \"http://127.0.0.1:9/v1.0\"").validate().unwrap();
        let c = config("client_secret_file = \"s\"");
        assert_eq!(c.owner_attribute(), "onPremisesExtensionAttributes.extensionAttribute15");
        assert_eq!(c.token_endpoint(), "https://login.microsoftonline.com/t1/oauth2/v2.0/token");
        assert_eq!(c.scope(), "https://graph.microsoft.com/.default");
        assert!(c.fixed_attribute("onPremisesExtensionAttributes.extensionAttribute15").is_some());
        assert!(c.fixed_attribute("userPrincipalName").is_some());
        assert!(c.fixed_attribute("onPremisesExtensionAttributes.extensionAttribute3").is_none());
        assert_eq!(c.capabilities().max_batch, 20);
    }
}
