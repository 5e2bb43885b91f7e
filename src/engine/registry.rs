//! The one closed registry of connectors: [`AnySource`] and [`AnyTarget`] are enums over the
//! connector crates (no dynamic registration), and [`Connectors::build`] makes them from the
//! config, reading secrets and contacting nothing. A test, the daemon or a front end may build
//! [`Connectors`] itself and hand them to [`Engine::new`](super::Engine::new).

use super::EngineError;
use crate::config::{Config, SourceConfig, TargetConfig};
use connector_api::{
    Capabilities, FetchContext, Lookup, ObservedAccount, ObservedGroup, OpOutcome, Source, SourceBatch, SourceError,
    Target, TargetError, TargetOp, load_secret,
};
use source_csv::CsvSource;
use std::collections::BTreeMap;
use target_ldap::LdapTarget;

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

    pub async fn fetch(&self, cx: FetchContext) -> Result<SourceBatch, SourceError> {
        match self {
            AnySource::Csv(s) => s.fetch(cx).await,
        }
    }
}

/// A target of any type enid knows. It is a [`Target`] itself, dispatching by `match`.
#[derive(Debug)]
pub enum AnyTarget {
    Ldap(LdapTarget),
}

impl Target for AnyTarget {
    fn capabilities(&self) -> &Capabilities {
        match self {
            AnyTarget::Ldap(t) => t.capabilities(),
        }
    }

    fn scope(&self) -> String {
        match self {
            AnyTarget::Ldap(t) => t.scope(),
        }
    }

    fn group_scope(&self) -> String {
        match self {
            AnyTarget::Ldap(t) => t.group_scope(),
        }
    }

    async fn check(&self) -> Result<String, TargetError> {
        match self {
            AnyTarget::Ldap(t) => t.check().await,
        }
    }

    async fn observe(&self, attrs: &[String]) -> Result<Vec<ObservedAccount>, TargetError> {
        match self {
            AnyTarget::Ldap(t) => t.observe(attrs).await,
        }
    }

    async fn observe_groups(&self) -> Result<Vec<ObservedGroup>, TargetError> {
        match self {
            AnyTarget::Ldap(t) => t.observe_groups().await,
        }
    }

    async fn find_outside_scope(
        &self,
        lookup: Lookup,
        values: &[String],
    ) -> Result<Vec<(String, String)>, TargetError> {
        match self {
            AnyTarget::Ldap(t) => t.find_outside_scope(lookup, values).await,
        }
    }

    async fn apply(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        match self {
            AnyTarget::Ldap(t) => t.apply(op).await,
        }
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
    /// Builds every connector the config names. Reads secrets; contacts nothing.
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
                    AnyTarget::Ldap(LdapTarget::new(c.clone(), password))
                }
            };
            targets.insert(id.clone(), conn);
        }
        Ok(Connectors { sources, targets })
    }
}
