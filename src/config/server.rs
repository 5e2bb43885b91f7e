//! `[server]`: the HTTP API of `enid run`. Without the table the service serves nothing.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port the API listens on (`"127.0.0.1:8080"`). Without `tls_cert_file` it
    /// speaks plain HTTP: keep it on the loopback, behind a reverse proxy that ends TLS.
    pub listen: SocketAddr,
    /// PEM certificate chain the API serves HTTPS with (with `tls_key_file`); relative to the
    /// config file's directory.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file` (keep it owner-only).
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Whether a school admin's token may approve and decide for their own school units (held
    /// renames; held runs when approvals come to the API). Default false: only admin tokens do.
    #[serde(default)]
    pub school_admins_approve: bool,
    /// How long a web page session lasts after signing in (default `"8h"`); signing out ends it
    /// sooner, and revoking the token ends it at once.
    #[serde(default = "eight_hours")]
    pub session_expires_after: connector_api::ConfigDuration,
}

fn eight_hours() -> connector_api::ConfigDuration {
    std::time::Duration::from_secs(8 * 3600).into()
}

impl ServerConfig {
    /// Both TLS files or neither: half a TLS setting would serve plain HTTP unnoticed.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => Err("[server] tls_cert_file is set without tls_key_file; set both, or neither".into()),
            (None, Some(_)) => Err("[server] tls_key_file is set without tls_cert_file; set both, or neither".into()),
            _ => Ok(()),
        }
    }

    /// Takes the TLS files relative to the config file's directory.
    pub(super) fn resolve_paths(&mut self, dir: &std::path::Path) {
        for p in [&mut self.tls_cert_file, &mut self.tls_key_file].into_iter().flatten() {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }
}
