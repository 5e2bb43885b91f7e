//! `[sources.<id>]` with `type = "ss12000"`: where the SS 12000 API is, how enid authenticates
//! (the keys every HTTP connector spells as the SCIM target does, plus mutual TLS), which school
//! units and which endpoints it reads, and how often an incremental reader reads in full.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[sources.<id>]` with `type = "ss12000"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ss12000Config {
    /// The API's base URL, version path included (`https://sis.example.org/v2.0`); the endpoints
    /// (`/persons`, `/duties`, ...) are below it.
    pub url: String,
    /// File holding a static bearer token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding a static bearer token.
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
    /// OAuth2 scopes, space-separated (EduCloud grants one per data class: civic numbers,
    /// e-mail addresses, identifiers).
    #[serde(default)]
    pub scope: Option<String>,
    /// How the client authenticates to the token endpoint: `"basic"` (the default) or `"form"`.
    #[serde(default)]
    pub client_auth: connector_http::ClientAuth,
    /// PEM file with the CA certificates that sign the server's certificate; the system's trust
    /// store when left out.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Turns certificate verification off. Only for tests; never in production.
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
    /// PEM file with enid's client certificate, for servers that want mutual TLS (FedTLS);
    /// together with `tls_key_file`.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file with the private key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Requests per second at most (the vendor's limit); none when left out.
    #[serde(default)]
    pub max_requests_per_second: Option<f64>,
    /// Requests outstanding at once (the endpoints are listed side by side).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Time allowed for one request.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Tries of one request at most (429, 503, 5xx and timeouts are tried again).
    #[serde(default = "default_attempts")]
    pub max_attempts: usize,
    /// The longest one request waits in all, `Retry-After` included.
    #[serde(default = "default_max_wait_secs")]
    pub max_wait_secs: u64,
    /// Entities per page (`limit`).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// The school units to read, each by its `schoolUnitCode` or its organisation `id`; every
    /// one when left out. A person with no affiliation at one of them is skipped and counted.
    #[serde(default)]
    pub organisations: Vec<String>,
    /// The endpoints to read. Default: organisations, persons (with their enrolments), duties
    /// and groups (with their memberships). Add `placements` for preschool and after-school
    /// centres, `activities` to make teachers members of the groups they teach.
    #[serde(default = "default_read")]
    pub read: Vec<Endpoint>,
    /// How often the engine reads in full although an incremental read is possible (`"7d"`,
    /// `"12h"`; default `"1d"`): what an incremental read cannot see (a membership changed
    /// without its group's `meta.modified`) is put right then. In between, a run reads only the
    /// changes since the last applied run (`--full` forces a full read).
    #[serde(default = "default_full_read_every")]
    pub full_read_every: connector_api::ConfigDuration,
}

/// An SS 12000 endpoint the source can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `/organisations`: school unit codes and names, and what `organisations` matches.
    Organisations,
    /// `/persons`, with their enrolments.
    Persons,
    /// `/duties`: staff.
    Duties,
    /// `/groups`, with their memberships.
    Groups,
    /// `/placements`: preschool and after-school centres.
    Placements,
    /// `/activities`: which duty teaches which group.
    Activities,
}

impl Endpoint {
    /// The path below the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Organisations => "organisations",
            Endpoint::Persons => "persons",
            Endpoint::Duties => "duties",
            Endpoint::Groups => "groups",
            Endpoint::Placements => "placements",
            Endpoint::Activities => "activities",
        }
    }
}

fn default_in_flight() -> usize {
    4
}
fn default_timeout_secs() -> u64 {
    60
}
fn default_attempts() -> usize {
    4
}
fn default_max_wait_secs() -> u64 {
    120
}
fn default_full_read_every() -> connector_api::ConfigDuration {
    connector_api::ConfigDuration::from(Duration::from_secs(86_400))
}

fn default_page_size() -> usize {
    200
}
fn default_read() -> Vec<Endpoint> {
    vec![Endpoint::Organisations, Endpoint::Persons, Endpoint::Duties, Endpoint::Groups]
}

impl Ss12000Config {
    /// Checks what can be checked without a network. Pure.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return Err(format!(
                "url {:?} must start with https:// (or http:// for a test server) and include the version path, \
                 like \"https://sis.example.org/v2.0\"",
                self.url
            ));
        }
        let token = self.token_file.is_some() || self.token_env.is_some();
        let oauth = self.token_url.is_some() || self.client_id.is_some();
        let mtls = self.tls_cert_file.is_some();
        match (token, oauth) {
            (true, true) => {
                return Err("give a token (token_file, token_env) or OAuth2 client credentials, not both".into());
            }
            (false, false) if !mtls => {
                return Err("no credentials: give token_file or token_env, or token_url and client_id with \
                            client_secret_file, or a client certificate (tls_cert_file and tls_key_file)"
                    .into());
            }
            _ => {}
        }
        if oauth {
            if self.token_url.is_none() || self.client_id.is_none() {
                return Err("OAuth2 client credentials need both token_url and client_id".into());
            }
            if self.client_secret_file.is_none() && self.client_secret_env.is_none() {
                return Err("OAuth2 client credentials need client_secret_file or client_secret_env".into());
            }
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err("mutual TLS needs both tls_cert_file and tls_key_file, or neither".into());
        }
        if self.max_in_flight == 0 || self.page_size == 0 || self.max_attempts == 0 {
            return Err("max_in_flight, page_size and max_attempts must be at least 1".into());
        }
        if self.max_requests_per_second.is_some_and(|r| r.is_nan() || r <= 0.0) {
            return Err("max_requests_per_second must be more than 0".into());
        }
        for needed in [Endpoint::Organisations, Endpoint::Persons] {
            if !self.reads(needed) {
                return Err(format!(
                    "read must include {:?}: persons are the records, and organisations give the school unit codes",
                    needed.path()
                ));
            }
        }
        if self.reads(Endpoint::Activities) && !(self.reads(Endpoint::Groups) && self.reads(Endpoint::Duties)) {
            return Err("read = [.., \"activities\"] needs \"groups\" and \"duties\" too: an activity links a \
                        teacher's duty to groups"
                .into());
        }
        if let Some(code) = self.organisations.iter().find(|c| c.trim().is_empty()) {
            return Err(format!("organisations holds an empty entry ({code:?}); give school unit codes or ids"));
        }
        if self.full_read_every.as_secs() == 0 {
            return Err("full_read_every must be longer than 0s".into());
        }
        Ok(())
    }

    /// Whether `endpoint` is among those read.
    pub fn reads(&self, endpoint: Endpoint) -> bool {
        self.read.contains(&endpoint)
    }

    /// What the source reads, in a stable form: its `organisations`, sorted (empty: all).
    pub fn scope(&self) -> String {
        let mut units: Vec<&str> = self.organisations.iter().map(|s| s.trim()).collect();
        units.sort_unstable();
        units.dedup();
        units.join(",")
    }

    /// The shared HTTP client's settings.
    pub fn http_settings(&self) -> connector_http::HttpSettings {
        connector_http::HttpSettings {
            url: self.url.clone(),
            tls_ca_file: self.tls_ca_file.clone(),
            tls_insecure_skip_verify: self.tls_insecure_skip_verify,
            tls_cert_file: self.tls_cert_file.clone(),
            tls_key_file: self.tls_key_file.clone(),
            max_requests_per_second: self.max_requests_per_second,
            max_in_flight: self.max_in_flight,
            timeout: Duration::from_secs(self.timeout_secs),
            max_attempts: self.max_attempts,
            max_wait: Duration::from_secs(self.max_wait_secs),
            content_type: "application/json",
        }
    }

    /// The credential keys as the shared HTTP client reads them.
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
}

impl connector_api::ConnectorConfig for Ss12000Config {
    fn validate(&self) -> Result<(), String> {
        Ss12000Config::validate(self)
    }

    fn resolve_paths(&mut self, dir: &std::path::Path) {
        for p in [
            &mut self.token_file,
            &mut self.client_secret_file,
            &mut self.tls_ca_file,
            &mut self.tls_cert_file,
            &mut self.tls_key_file,
        ] {
            connector_api::resolve_optional_path(dir, p);
        }
    }
}

impl connector_api::SourceConnector for Ss12000Config {
    type Source = crate::Ss12000Source;

    fn build(&self, id: &str) -> Result<crate::Ss12000Source, String> {
        if self.tls_insecure_skip_verify {
            connector_api::warn_unverified_tls(&format!("[sources.{id}]"), "the credentials and every pupil's record");
        }
        let keys = self.auth_keys();
        // Mutual TLS alone authenticates too (FedTLS): then no token is sent.
        let auth = if self.tls_cert_file.is_some()
            && keys.token_url.is_none()
            && keys.token_file.is_none()
            && keys.token_env.is_none()
        {
            connector_http::Auth::None
        } else {
            keys.auth(&format!("[sources.{id}]"))?
        };
        crate::Ss12000Source::new(self.clone(), auth).map_err(|e| connector_api::one_line(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<Ss12000Config, String> {
        let c: Ss12000Config =
            toml::from_str(&format!("url = \"https://sis.example.org/v2.0\"\n{extra}")).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn settings_are_checked_before_anything_is_sent() {
        let c = config("token_file = \"t\"").unwrap();
        assert_eq!(c.read, [Endpoint::Organisations, Endpoint::Persons, Endpoint::Duties, Endpoint::Groups]);
        assert_eq!(c.page_size, 200);
        assert_eq!(c.full_read_every.as_secs(), 86_400, "a full read every day by default");
        let c = config(
            "token_url = \"https://idp/token\"\nclient_id = \"enid\"\nclient_secret_file = \"s\"\nscope = \"a b\"\n\
             client_auth = \"form\"\norganisations = [\"12345678\"]\nread = [\"organisations\", \"persons\", \
             \"duties\", \"groups\", \"placements\", \"activities\"]\nfull_read_every = \"7d\"",
        )
        .unwrap();
        assert_eq!(c.full_read_every.as_secs(), 7 * 86_400);
        assert_eq!(c.scope(), "12345678");
        config("tls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"").unwrap();
        let e = |extra: &str| config(extra).unwrap_err();
        assert!(e("").starts_with("no credentials"), "{}", e(""));
        assert!(e("token_file = \"t\"\ntoken_url = \"x\"").contains("not both"));
        assert!(e("tls_cert_file = \"c.pem\"").contains("both tls_cert_file and tls_key_file"));
        assert!(e("token_file = \"t\"\nread = [\"persons\"]").contains("\"organisations\""));
        assert!(e("token_file = \"t\"\nread = [\"organisations\", \"persons\", \"activities\"]").contains("needs"));
        assert!(e("token_file = \"t\"\nfull_read_every = \"7\"").contains("\"7\""));
        assert!(e("token_file = \"t\"\nfull_read_every = \"1y\"").contains("\"1y\""));
        assert!(e("token_file = \"t\"\nfull_read_every = \"0s\"").contains("longer than 0s"));
        assert!(e("token_file = \"t\"\nread = [\"grades\"]").contains("unknown variant"));
        assert!(e("token_file = \"t\"\npagesize = 3").contains("unknown field"));
        assert!(e("token_file = \"t\"\norganisations = [\" \"]").contains("empty entry"));
        assert!(e("token_file = \"t\"\npage_size = 0").contains("at least 1"));
        let c: Ss12000Config = toml::from_str("url = \"sis.example.org\"\ntoken_file = \"t\"").unwrap();
        assert!(c.validate().unwrap_err().contains("version path"));
    }
}
