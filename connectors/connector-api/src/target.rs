//! What a target connector gives the engine (observed accounts) and takes from it (operations).
//!
//! Targets see accounts as attribute maps. The engine decides *what* should change; the target
//! decides *how* (a DN and an LDAP modify, a SCIM PATCH). Operations address accounts by the
//! `key` the target reported when it observed or created them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;

/// Attribute name → values. Sorted, so plans and snapshots are stable.
pub type Attrs = BTreeMap<String, Vec<String>>;

/// One account as the target holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedAccount {
    /// How the target addresses the account (an LDAP DN).
    pub key: String,
    /// An immutable id that survives renames and moves (LDAP `entryUUID`), if the target has one.
    pub anchor: Option<String>,
    /// The account's login name as the target holds it (LDAP `uid`).
    pub username: Option<String>,
    /// The requested attributes, with the names the engine asked for.
    pub attrs: Attrs,
    /// Whether the account is disabled by the target's configured disable method.
    pub disabled: bool,
}

/// Set one attribute to exactly these values; no values removes the attribute.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttrChange {
    pub attr: String,
    pub values: Vec<String>,
}

/// One change to one account on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetOp {
    /// Create an account, enabled unless `disabled`.
    Create { username: String, attrs: Attrs, disabled: bool },
    /// Give the account a new username (LDAP: a new RDN); the old name is removed.
    Rename { key: String, username: String },
    /// Change only these attributes, in one modification.
    Update { key: String, changes: Vec<AttrChange> },
    /// Disable the account by the configured method (reversible).
    Disable { key: String },
    /// Undo a disable.
    Enable { key: String },
    /// Remove the account for good.
    Delete { key: String },
    /// Create a group with these members (account keys).
    CreateGroup { name: String, members: Vec<String> },
    /// Add these members to a group, value by value (never a full replace).
    AddMembers { key: String, members: Vec<String> },
    /// Remove these members from a group, value by value.
    RemoveMembers { key: String, members: Vec<String> },
    /// Remove a group enid created that has no members left.
    DeleteGroup { key: String },
}

/// One group as the target holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedGroup {
    /// How the target addresses the group (an LDAP DN).
    pub key: String,
    /// An immutable id (LDAP `entryUUID`), if the target has one.
    pub anchor: Option<String>,
    /// The group's name (LDAP `cn`).
    pub name: String,
    /// Member account keys, as the target holds them.
    pub members: Vec<String>,
}

/// What an operation did, so the engine can record ownership and the account's new address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    Created {
        key: String,
        anchor: Option<String>,
    },
    Updated,
    /// The account now lives at `key` under its new name.
    Renamed {
        key: String,
    },
    /// The account now lives at `key` (a disable by move changes the DN).
    Disabled {
        key: String,
    },
    Enabled {
        key: String,
    },
    Deleted,
}

/// Why a target operation failed. The variant says what the caller must do.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target cannot be reached now (connection refused or lost, timeout, busy). Stop
    /// sending, keep what is done, and try again on the next run.
    #[error("target unavailable: {0}")]
    Unavailable(String),
    /// The credentials were refused. An operator must fix them; retrying will not help.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The target refused this one operation (schema violation, entry exists, no such entry).
    /// Other operations may go on; the data or the config must be fixed.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The configuration cannot work with this target (base DN missing, TLS failure).
    #[error("configuration: {0}")]
    Config(String),
}

impl TargetError {
    /// Whether the rest of a run against this target should stop.
    pub fn stops_target(&self) -> bool {
        !matches!(self, TargetError::Rejected(_))
    }
}

/// A system that holds accounts.
pub trait Target {
    /// Connects and authenticates, and checks that the configured containers exist.
    fn check(&self) -> impl Future<Output = Result<(), TargetError>> + Send;
    /// Reads every account in scope, with the attributes named in `attrs`. All-or-nothing: a
    /// partial read is an error, never a short list.
    fn observe(&self, attrs: &[String]) -> impl Future<Output = Result<Vec<ObservedAccount>, TargetError>> + Send;
    /// Reads every group in the configured group container. Targets without groups return none.
    fn observe_groups(&self) -> impl Future<Output = Result<Vec<ObservedGroup>, TargetError>> + Send;
    /// Where a create of an account with this username puts it, enabled or `disabled` (for
    /// ownership records written before the create is sent, and group members).
    fn key_for(&self, username: &str, disabled: bool) -> String;
    /// Where the account at `key` lives after a rename to `username`.
    fn renamed_key(&self, key: &str, username: &str) -> String;
    /// Where the account at `key` lives after an enable (a disable by move changes the key).
    fn enabled_key(&self, key: &str) -> String;
    /// Where a group with this name would be created; `None` when the target has no groups.
    fn group_key_for(&self, name: &str) -> Option<String>;
    /// Performs one operation. Safe to call concurrently.
    fn apply(&self, op: &TargetOp) -> impl Future<Output = Result<OpOutcome, TargetError>> + Send;
}
