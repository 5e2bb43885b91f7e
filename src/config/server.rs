//! `[server]`: the HTTP API of `enid run`. Without the table the service serves nothing.

use serde::Deserialize;
use std::net::SocketAddr;

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port the API listens on (`"127.0.0.1:8080"`). It speaks plain HTTP: keep it
    /// on the loopback and put a reverse proxy that ends TLS in front of it for other hosts.
    pub listen: SocketAddr,
    /// Whether a school admin's token may approve and decide for their own school units (held
    /// renames; held runs when approvals come to the API). Default false: only admin tokens do.
    #[serde(default)]
    pub school_admins_approve: bool,
}
