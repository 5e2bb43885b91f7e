//! The connections every directory target shares: a few ldap3 connections (`connections`,
//! operations multiplex on each and are dealt round-robin among them: a directory server reads one
//! connection's requests in turn, so its writes scale with a few), each connected and bound on
//! first use and again after it broke, with TLS verified against a CA file or the system's trust
//! store. A search keeps the one connection it started on (a paged search's cookie belongs to it).

use crate::error::{from_ldap, from_result};
use connector_api::{Secret, TargetError};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

/// How to reach and bind to the directory.
#[derive(Debug, Clone)]
pub(crate) struct ConnSettings {
    pub url: String,
    pub starttls: bool,
    pub tls_ca_file: Option<PathBuf>,
    pub tls_insecure_skip_verify: bool,
    pub bind_dn: String,
    pub timeout: Duration,
    /// How many connections operations are dealt among (at least one).
    pub connections: usize,
}

#[derive(Debug)]
pub(crate) struct Conn {
    settings: ConnSettings,
    password: Secret,
    /// One slot per connection; `None` until first use and after a failure.
    slots: Vec<Mutex<Option<Ldap>>>,
    /// The slot the next request takes.
    next: AtomicUsize,
}

/// `timeout` for one LDAP request, capped by the fence (`connector_api::fence`); an error once
/// the fence has passed. Called at every request, not once per operation: an operation of
/// several requests (an AD create, a move, member changes) stops between them. (ldap3 puts a
/// request on the wire before its timeout starts, so a zero timeout would still send it.)
fn fenced(timeout: Duration) -> Result<Duration, TargetError> {
    connector_api::fence::check()?;
    let capped = connector_api::fence::cap(timeout);
    if capped.is_zero() {
        return Err(connector_api::fence::fenced());
    }
    Ok(capped)
}

/// A handle on one of the target's connections that sends nothing unfenced: every request goes
/// through [`Link::req`], which checks the lease and caps the request's timeout ([`fenced`]).
/// The ldap3 handle inside is not reachable otherwise, so a request cannot forget the fence.
/// (A paged search's later pages are asked for by ldap3 itself, with the first request's capped
/// timeout: the paged searches read a target's scope, which runs outside an apply's fence.)
pub(crate) struct Link {
    ldap: Ldap,
    timeout: Duration,
}

impl Link {
    /// The handle for one request, fenced and with its timeout; fails once the fence has
    /// passed, before anything is sent.
    pub(crate) fn req(&mut self) -> Result<&mut Ldap, TargetError> {
        let t = fenced(self.timeout)?;
        Ok(self.ldap.with_timeout(t))
    }
}

impl Conn {
    pub(crate) fn new(settings: ConnSettings, password: Secret) -> Conn {
        let slots = (0..settings.connections.max(1)).map(|_| Mutex::new(None)).collect();
        Conn { settings, password, slots, next: AtomicUsize::new(0) }
    }

    /// The connect timeout: the configured one, shortened so that connecting does not outlast
    /// this node's lease on the state (`connector_api::fence`). Requests take theirs from
    /// [`Link::req`].
    fn timeout(&self) -> Duration {
        connector_api::fence::cap(self.settings.timeout)
    }

    /// Whether the connection is encrypted (ldaps:// or StartTLS): AD takes passwords only so.
    pub(crate) fn encrypted(&self) -> bool {
        self.settings.url.starts_with("ldaps://") || self.settings.starttls
    }

    fn ldap_settings(&self) -> Result<LdapConnSettings, TargetError> {
        let s = &self.settings;
        let mut out = LdapConnSettings::new().set_conn_timeout(self.timeout()).set_starttls(s.starttls);
        if s.tls_insecure_skip_verify {
            out = out.set_no_tls_verify(true);
        } else if let Some(ca) = &s.tls_ca_file {
            out = out.set_config(Arc::new(tls_config_with_ca(ca)?));
        }
        Ok(out)
    }

    /// A handle on the next of the shared connections (round-robin), connecting and binding
    /// first when it has none.
    pub(crate) async fn ldap(&self) -> Result<Link, TargetError> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut guard = self.slots[slot].lock().await;
        let timeout = self.settings.timeout;
        if let Some(ldap) = guard.as_mut()
            && !ldap.is_closed()
        {
            return Ok(Link { ldap: ldap.clone(), timeout });
        }
        let url = &self.settings.url;
        let (conn, mut ldap) = LdapConnAsync::with_settings(self.ldap_settings()?, url)
            .await
            .map_err(|e| from_ldap(e, &format!("connect to {url}")))?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended");
            }
        });
        ldap.with_timeout(fenced(self.timeout())?)
            .simple_bind(&self.settings.bind_dn, self.password.expose())
            .await
            .map_err(|e| from_ldap(e, "bind"))
            .and_then(|r| from_result(r, &format!("bind as {}", self.settings.bind_dn)))?;
        *guard = Some(ldap.clone());
        Ok(Link { ldap, timeout })
    }

    /// Forgets the connections after one failed, so the next operation connects afresh. Only
    /// `Unavailable` says the connection may be broken: a busy server (`Throttled`) and a refusal
    /// came back over a working one.
    pub(crate) async fn reset(&self, err: &TargetError) {
        if matches!(err, TargetError::Unavailable { .. }) {
            // Which connection broke is not known here: every one is connected afresh (a
            // broken server breaks them all; a working one costs a bind each).
            for slot in &self.slots {
                *slot.lock().await = None;
            }
        }
    }
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
