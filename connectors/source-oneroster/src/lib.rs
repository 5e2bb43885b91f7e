//! Source connector for OneRoster 1.1 and 1.2 CSV bundles (`type = "oneroster"`).
//!
//! A bundle is a directory or a zip holding `manifest.csv`, `orgs.csv`, `users.csv`,
//! `classes.csv`, `enrollments.csv` and, in 1.2, `roles.csv`. One person record per user whose
//! role is a pupil's or staff's and who has a tie to a school org; guardians, parents and
//! relatives, disabled users and users with no school are skipped and counted, never rejected.
//!
//! A *bulk* bundle is a full read ([`Fetched::Full`]). A *delta* bundle (any file enid reads
//! marked `delta` in the manifest) holds only what changed: it is never read as a full export
//! (that would make every person missing from it a leaver) but merged with the records stored
//! from the last read ([`FetchContext::prior`]) into whole changed records ([`Fetched::Changes`]),
//! as an SS 12000 incremental read is. `bundle.rs` is the only IO; the rest is pure.

mod build;
mod bundle;
mod delta;
mod lookup;
mod manifest;
mod rows;
mod table;

use connector_api::{FetchContext, Fetched, Source, SourceError};
use serde::Deserialize;
use std::path::PathBuf;

pub use bundle::{Bundle, read as read_bundle};
pub use table::MAX_FIELD_CHARS;

/// `[sources.<id>]` with `type = "oneroster"`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OneRosterConfig {
    /// The bundle: a directory that holds `manifest.csv` and the other files, or a zip of them.
    pub path: PathBuf,
    /// Which field of an org is the school unit's code: `"identifier"` (the default; the org's
    /// `sourcedId` where its identifier is empty) or `"sourced_id"`.
    #[serde(default)]
    pub school_unit_code: OrgCode,
    /// Which field of a class is the group's name: `"title"` (the default) or `"class_code"`;
    /// the other is used where the chosen one is empty.
    #[serde(default)]
    pub group_name: GroupName,
    /// Where a user's civic number is, if the export has one: not read when left out.
    #[serde(default)]
    pub civic_no: Option<CivicNoFrom>,
    /// Take the eduPersonPrincipalName from `username` (lowercased). Off by default: many
    /// exports put a local login name there, not a scoped one.
    #[serde(default)]
    pub eppn_from_username: bool,
    /// Provision users whose `enabledUser` is `false` like any other. By default they are
    /// skipped (and counted): the source says they must not log in, so their accounts are
    /// disabled as a leaver's are, and come back when the flag does.
    #[serde(default)]
    pub include_disabled_users: bool,
    /// The most data a zip bundle may inflate to, in MiB (default 1024): more is refused as a
    /// possible zip bomb.
    #[serde(default = "default_max_unzipped_mib")]
    pub max_unzipped_mib: u64,
}

fn default_max_unzipped_mib() -> u64 {
    1024
}

/// Which org field is a school unit's code.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OrgCode {
    /// `identifier` (the school unit code, in Swedish exports), else `sourcedId`.
    #[default]
    Identifier,
    /// `sourcedId` always.
    SourcedId,
}

/// Which class field names a group.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GroupName {
    /// `title` (`7A`, `Matematik 7A`).
    #[default]
    Title,
    /// `classCode`.
    ClassCode,
}

/// Where a civic number is read from. It is validated (a bad one rejects the row) and never
/// shown unmasked; when taken from `identifier`, the identifier is not also kept as an
/// external id.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum CivicNoFrom {
    /// The user's `identifier` column. (A struct variant, so that `deny_unknown_fields` holds
    /// for it too: serde lets a unit variant of an internally tagged enum ignore other keys.)
    Identifier {},
    /// The entry of `userIds` (`{type:id}`) with this type, compared without case.
    UserIds {
        /// The `type` of the entry (`PNR`, `personnummer`).
        #[serde(rename = "type")]
        id_type: String,
    },
}

/// A OneRoster source, built from its config.
#[derive(Debug, Clone)]
pub struct OneRosterSource {
    config: OneRosterConfig,
}

impl connector_api::ConnectorConfig for OneRosterConfig {
    fn validate(&self) -> Result<(), String> {
        if self.max_unzipped_mib == 0 {
            return Err("max_unzipped_mib must be more than 0".into());
        }
        Ok(())
    }

    fn resolve_paths(&mut self, dir: &std::path::Path) {
        connector_api::resolve_path(dir, &mut self.path);
    }
}

impl connector_api::SourceConnector for OneRosterConfig {
    type Source = OneRosterSource;

    fn build(&self, _id: &str) -> Result<OneRosterSource, String> {
        Ok(OneRosterSource::new(self.clone()))
    }
}

impl OneRosterSource {
    pub fn new(config: OneRosterConfig) -> Self {
        OneRosterSource { config }
    }

    /// Reads the bundle's files off the async runtime's threads (a zip is inflated here).
    async fn bundle(&self) -> Result<Bundle, SourceError> {
        let path = self.config.path.clone();
        let cap = self.config.max_unzipped_mib.saturating_mul(1024 * 1024);
        tokio::task::spawn_blocking(move || bundle::read(&path, cap)).await.map_err(|e| SourceError::Unavailable {
            what: self.config.path.display().to_string(),
            reason: format!("the reading task failed: {e}"),
            source: Some(e.into()),
        })?
    }
}

impl Source for OneRosterSource {
    async fn check(&self) -> Result<(), SourceError> {
        let bundle = self.bundle().await?;
        let bytes = bundle.files.get("manifest.csv").map(Vec::as_slice).unwrap_or_default();
        manifest::Manifest::parse(&bundle.display("manifest.csv"), bytes).map(|_| ())
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Fetched, SourceError> {
        let bundle = self.bundle().await?;
        let manifest_bytes = bundle.files.get("manifest.csv").map(Vec::as_slice).unwrap_or_default();
        let delta = manifest::Manifest::parse(&bundle.display("manifest.csv"), manifest_bytes)?.is_delta();
        // A delta rebuilds its persons from everything stored (a role row may name only itself).
        let stored;
        let cx = if delta && cx.since.is_some() && cx.prior.loaded().is_none() {
            stored = cx.prior.all().await?;
            FetchContext { prior: &stored, ..cx }
        } else {
            cx
        };
        parse(&self.config, &bundle, cx)
    }

    /// A delta bundle needs the stored records and the last watermark.
    fn incremental(&self) -> bool {
        true
    }

    fn files(&self) -> Vec<PathBuf> {
        vec![self.config.path.clone()]
    }
}

/// Reads a bundle's files into records (bulk) or changes (delta). Pure: the files and `cx` in.
pub fn parse(config: &OneRosterConfig, bundle: &Bundle, cx: FetchContext<'_>) -> Result<Fetched, SourceError> {
    let manifest_bytes = bundle.files.get("manifest.csv").map(Vec::as_slice).unwrap_or_default();
    let manifest = manifest::Manifest::parse(&bundle.display("manifest.csv"), manifest_bytes)?;
    let tables = build::Tables::read(bundle, &manifest, config)?;
    if manifest.is_delta() {
        delta::changes(config, &manifest, &tables, cx).map(Fetched::Changes)
    } else {
        build::full(config, &manifest, &tables, cx).map(Fetched::Full)
    }
}

#[cfg(test)]
mod tests;
