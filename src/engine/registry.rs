//! The one closed registry of connectors: [`AnySource`] and [`AnyTarget`] are enums over the
//! connector crates (no dynamic registration), and [`Connectors::build`] makes them from the
//! config, reading secrets and contacting nothing. A test, the daemon or a front end may build
//! [`Connectors`] itself and hand them to [`Engine::new`](super::Engine::new).

use super::EngineError;
use crate::config::{Config, SourceConfig, TargetConfig};
use connector_api::{
    Capabilities, FetchContext, Fetched, Lookup, ObservedAccount, ObservedGroup, OpOutcome, Source, SourceError,
    Target, TargetError, TargetOp, load_secret,
};
use source_csv::CsvSource;
use std::collections::BTreeMap;
use target_ldap::{AdTarget, LdapTarget};
use target_scim::ScimTarget;

/// A source of any type enid knows.
#[derive(Debug)]
pub enum AnySource {
    Csv(CsvSource),
}

impl AnySource {
    pub async fn check(&self) -> Result<(), SourceError> {
        match self {
            AnySource::Csv(s) => s.check().await,
        }
    }

    pub async fn fetch(&self, cx: FetchContext<'_>) -> Result<Fetched, SourceError> {
        match self {
            AnySource::Csv(s) => s.fetch(cx).await,
        }
    }

    pub fn incremental(&self) -> bool {
        match self {
            AnySource::Csv(s) => s.incremental(),
        }
    }

    pub fn full_read_every(&self) -> Option<std::time::Duration> {
        match self {
            AnySource::Csv(s) => s.full_read_every(),
        }
    }

    pub fn scope(&self) -> String {
        match self {
            AnySource::Csv(s) => s.scope(),
        }
    }
}

/// A target of any type enid knows. It is a [`Target`] itself, dispatching by `match`.
#[derive(Debug)]
pub enum AnyTarget {
    Ldap(LdapTarget),
    Scim(ScimTarget),
    Ad(AdTarget),
}

/// Every variant, calling the same method: the one place that lists the target types.
macro_rules! each {
    ($self:ident, $t:ident => $e:expr) => {
        match $self {
            AnyTarget::Ldap($t) => $e,
            AnyTarget::Scim($t) => $e,
            AnyTarget::Ad($t) => $e,
        }
    };
}

impl Target for AnyTarget {
    fn capabilities(&self) -> &Capabilities {
        each!(self, t => t.capabilities())
    }

    fn scope(&self) -> String {
        each!(self, t => t.scope())
    }

    fn group_scope(&self) -> String {
        each!(self, t => t.group_scope())
    }

    async fn check(&self) -> Result<String, TargetError> {
        each!(self, t => t.check().await)
    }

    async fn observe(&self, attrs: &[String]) -> Result<Vec<ObservedAccount>, TargetError> {
        each!(self, t => t.observe(attrs).await)
    }

    async fn observe_groups(&self) -> Result<Vec<ObservedGroup>, TargetError> {
        each!(self, t => t.observe_groups().await)
    }

    async fn find_outside_scope(
        &self,
        lookup: Lookup,
        values: &[String],
    ) -> Result<Vec<(String, String)>, TargetError> {
        each!(self, t => t.find_outside_scope(lookup, values).await)
    }

    async fn observe_at(&self, key: &str, attrs: &[String]) -> Result<Option<ObservedAccount>, TargetError> {
        each!(self, t => t.observe_at(key, attrs).await)
    }

    async fn apply(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        each!(self, t => t.apply(op).await)
    }

    async fn apply_batch(&self, ops: &[TargetOp]) -> Vec<Result<OpOutcome, TargetError>> {
        each!(self, t => t.apply_batch(ops).await)
    }
}

/// The connectors an engine runs with.
#[derive(Debug)]
pub struct Connectors {
    /// Sources by id, in order of authority for names (a person's records keep this order).
    pub sources: Vec<(String, AnySource)>,
    /// Targets by id.
    pub targets: BTreeMap<String, AnyTarget>,
}

impl Connectors {
    /// Builds every connector the config names. Reads secrets (warning about secret files other
    /// users can read); contacts nothing.
    pub fn build(config: &Config) -> Result<Connectors, EngineError> {
        let mut sources = Vec::new();
        for id in config.source_order() {
            let Some(s) = config.sources.get(&id) else { continue };
            match s {
                SourceConfig::Csv(c) => sources.push((id.clone(), AnySource::Csv(CsvSource::new(c.clone())))),
            }
        }
        let mut targets = BTreeMap::new();
        for (id, t) in &config.targets {
            let conn = match &t.connector {
                TargetConfig::Ldap(c) => {
                    if c.tls_insecure_skip_verify {
                        tracing::warn!(
                            target_id = %id,
                            "[targets.{id}] tls_insecure_skip_verify = true: the server certificate is not verified, \
                             so anyone on the network path can read the bind password and every account; give \
                             tls_ca_file instead"
                        );
                    }
                    let what = format!("bind password of [targets.{id}]");
                    let password = load_secret(c.bind_password_file.as_deref(), c.bind_password_env.as_deref(), &what)
                        .map_err(|message| EngineError::TargetConfig { id: id.clone(), message })?;
                    secret_file_check(c.bind_password_file.as_deref(), &what);
                    AnyTarget::Ldap(LdapTarget::new(c.clone(), password))
                }
                TargetConfig::Ad(c) => {
                    if c.tls_insecure_skip_verify {
                        tracing::warn!(
                            target_id = %id,
                            "[targets.{id}] tls_insecure_skip_verify = true: the domain controller's certificate is \
                             not verified, so anyone on the network path can read the bind password and every first \
                             password; give tls_ca_file instead"
                        );
                    }
                    let what = format!("bind password of [targets.{id}]");
                    let password = load_secret(c.bind_password_file.as_deref(), c.bind_password_env.as_deref(), &what)
                        .map_err(|message| EngineError::TargetConfig { id: id.clone(), message })?;
                    secret_file_check(c.bind_password_file.as_deref(), &what);
                    AnyTarget::Ad(AdTarget::new(c.clone(), password))
                }
                TargetConfig::Scim(c) => {
                    let bad = |message: String| EngineError::TargetConfig { id: id.clone(), message };
                    if c.tls_insecure_skip_verify {
                        tracing::warn!(
                            target_id = %id,
                            "[targets.{id}] tls_insecure_skip_verify = true: the server certificate is not verified, \
                             so anyone on the network path can read the token and every account; give tls_ca_file \
                             instead"
                        );
                    }
                    let auth = if let Some(token_url) = &c.token_url {
                        let what = format!("OAuth2 client secret of [targets.{id}]");
                        let secret =
                            load_secret(c.client_secret_file.as_deref(), c.client_secret_env.as_deref(), &what)
                                .map_err(bad)?;
                        secret_file_check(c.client_secret_file.as_deref(), &what);
                        connector_http::Auth::OAuth(connector_http::OAuthSettings {
                            token_url: token_url.clone(),
                            client_id: c.client_id.clone().unwrap_or_default(),
                            client_secret: secret,
                            scope: c.scope.clone(),
                            client_auth: c.client_auth,
                        })
                    } else {
                        let what = format!("bearer token of [targets.{id}]");
                        let token = load_secret(c.token_file.as_deref(), c.token_env.as_deref(), &what).map_err(bad)?;
                        secret_file_check(c.token_file.as_deref(), &what);
                        connector_http::Auth::Bearer(token)
                    };
                    let target = ScimTarget::new(c.clone(), auth).map_err(|e| EngineError::TargetConfig {
                        id: id.clone(),
                        message: connector_api::one_line(&e),
                    })?;
                    AnyTarget::Scim(target)
                }
            };
            targets.insert(id.clone(), conn);
        }
        Ok(Connectors { sources, targets })
    }
}

/// A secret read from a file that other users can read too is warned about on every run (the
/// file's name and the fix, never its content); one from the environment has no file to check.
fn secret_file_check(file: Option<&std::path::Path>, what: &str) {
    if let Some(path) = file {
        crate::store::files::warn_if_readable_by_others(path, what);
    }
}
