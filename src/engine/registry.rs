//! The one closed registry of connectors: one line per connector type, in the list below
//! (`registry/generate.rs` holds the macro that reads it). From it come the config enums
//! [`SourceConfig`] and [`TargetConfig`] (the `[sources.<id>]` and `[targets.<id>]` tables,
//! tagged by `type`), the enums of built connectors [`AnySource`] and [`AnyTarget`], and the
//! dispatch between them; no dynamic registration. Each connector's config type does its own
//! work through `connector_api::connector` (validate, resolve its paths, read its secrets,
//! build), so enid knows none of a connector's keys. Adding a connector is its crate, a line in
//! Cargo.toml, and a line here.
//!
//! [`Connectors::build`] makes the connectors from the config, reading secrets and contacting
//! nothing. A test, the daemon or a front end may build [`Connectors`] itself and hand them to
//! [`Engine::new`](super::Engine::new).

use super::EngineError;
use crate::config::Config;
use connector_api::{
    Capabilities, ConnectorConfig, FetchContext, Fetched, Lookup, ObservedAccount, ObservedGroup, OpOutcome, Source,
    SourceConnector, SourceError, Target, TargetConnector, TargetError, TargetOp,
};
use std::collections::BTreeMap;
use std::path::Path;

#[macro_use]
mod generate;

connectors! {
    sources {
        /// A CSV or HR export.
        Csv = "csv" => source_csv::CsvConfig,
        /// A OneRoster 1.1 or 1.2 CSV bundle (a directory or a zip), bulk or delta.
        OneRoster = "oneroster" => source_oneroster::OneRosterConfig,
        /// An SS 12000 API (v2.x), read in full or by its changes.
        Ss12000 = "ss12000" => source_ss12000::Ss12000Config,
    }
    targets {
        /// An LDAP directory.
        Ldap = "ldap" => target_ldap::LdapConfig,
        /// A SCIM 2.0 service.
        Scim = "scim" => target_scim::ScimConfig,
        /// An Active Directory domain.
        Ad = "ad" => target_ldap::AdConfig,
        /// A Google Workspace domain.
        Google = "google" => target_google::GoogleConfig,
        /// A Microsoft Entra ID tenant.
        Entra = "entra" => target_entra::EntraConfig,
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
    /// Builds every connector the config names. Each reads its own secrets (warning about
    /// secret files other users can read); none contacts anything.
    pub fn build(config: &Config) -> Result<Connectors, EngineError> {
        let mut sources = Vec::new();
        for id in config.source_order() {
            let Some(s) = config.sources.get(&id) else { continue };
            let source =
                s.connector.build(&id).map_err(|message| EngineError::SourceConfig { id: id.clone(), message })?;
            sources.push((id, source));
        }
        let mut targets = BTreeMap::new();
        for (id, t) in &config.targets {
            let target =
                t.connector.build(id).map_err(|message| EngineError::TargetConfig { id: id.clone(), message })?;
            targets.insert(id.clone(), target);
        }
        Ok(Connectors { sources, targets })
    }
}
