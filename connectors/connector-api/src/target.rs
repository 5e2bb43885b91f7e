//! What a target connector gives the engine (observed accounts and groups) and takes from it
//! (operations), in enid's vocabulary.
//!
//! The engine decides *what* each account should be ([`AccountSpec`], typed [`Value`]s); the
//! target decides *how* (a DN and an LDAP modify, SCIM JSON and a PATCH). Keys are opaque: the
//! target assigns them on create and returns them in the [`OpOutcome`], and operations address
//! accounts and groups by the key the target last reported. Nothing here predicts a key.

use crate::capabilities::{Capabilities, Lookup};
use crate::error::BoxError;
use crate::packed::{Joined, PackedAttrs};
use crate::source::{Roles, SmallVec};
use crate::value::{AttrChange, Str};
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// One account as the target holds it now.
///
/// A read of a million accounts holds a million of these for the whole run, so an account is
/// small (72 bytes in place, where its fields one by one took 160): its key, anchor and username
/// are one string of exactly their bytes, read back by slicing; the rarely set foreign and
/// placement texts are boxed together. Made by [`ObservedAccount::new`]; the flags and the
/// attributes are fields.
#[derive(Clone, PartialEq, Eq)]
pub struct ObservedAccount {
    /// The key (always there), the anchor and the username.
    ids: Joined,
    /// The requested attributes, with the names the engine asked for, in enid's values (packed:
    /// a read holds every account's for the whole run).
    pub attrs: PackedAttrs,
    /// Whether the account is disabled by the target's disable method.
    pub disabled: bool,
    /// The connector's own settings leave this account out (LDAP `exclude_under`): enid never
    /// touches it, whoever owns it.
    pub excluded: bool,
    /// The target holds the username in a form its settings no longer give (a SCIM `user_name`
    /// pattern changed since the account was made): a rename writes it again.
    pub username_outdated: bool,
    /// [`ObservedAccount::foreign`] and [`ObservedAccount::placement`], when either is set.
    rare: Option<Box<Rare>>,
}

#[derive(Clone, Default, PartialEq, Eq)]
struct Rare {
    foreign: Option<String>,
    placement: Option<String>,
}

impl ObservedAccount {
    /// An enabled, ordinary account (no flag set, no foreign writer, no placement).
    pub fn new(key: &str, anchor: Option<&str>, username: Option<&str>, attrs: PackedAttrs) -> ObservedAccount {
        ObservedAccount {
            ids: Joined::new([Some(key), anchor, username]),
            attrs,
            disabled: false,
            excluded: false,
            username_outdated: false,
            rare: None,
        }
    }

    /// How the target addresses the account (an LDAP DN, a SCIM id): opaque to the engine.
    pub fn key(&self) -> &str {
        self.ids.part(0)
    }

    /// An immutable id that survives renames and moves (LDAP `entryUUID`, AD `objectGUID`, a
    /// SCIM id), if the target has one.
    pub fn anchor(&self) -> Option<&str> {
        self.ids.get(1)
    }

    /// The account's login name as the target holds it (LDAP `uid`, SCIM `userName`).
    pub fn username(&self) -> Option<&str> {
        self.ids.get(2)
    }

    /// Another system writes this account (Entra: a user synchronised from on-premises AD):
    /// enid never writes or claims it, and a person whose username it holds is blocked with
    /// this reason, never given a namesake. `None` for an ordinary account.
    pub fn foreign(&self) -> Option<&str> {
        self.rare.as_ref()?.foreign.as_deref()
    }

    /// Where the account lives, for a target that places accounts ([`Capabilities::placement`]:
    /// an AD organizational unit's DN).
    ///
    /// [`Capabilities::placement`]: crate::Capabilities::placement
    pub fn placement(&self) -> Option<&str> {
        self.rare.as_ref()?.placement.as_deref()
    }

    /// The same account under another key.
    pub fn set_key(&mut self, key: &str) {
        self.ids = Joined::new([Some(key), self.anchor(), self.username()]);
    }

    /// The same account with another anchor.
    pub fn set_anchor(&mut self, anchor: Option<&str>) {
        self.ids = Joined::new([Some(self.key()), anchor, self.username()]);
    }

    /// The same account with another username.
    pub fn set_username(&mut self, username: Option<&str>) {
        self.ids = Joined::new([Some(self.key()), self.anchor(), username]);
    }

    /// Marks the account as written by another system, for this reason (or not).
    pub fn set_foreign(&mut self, foreign: Option<String>) {
        self.rare_mut(|r| r.foreign = foreign);
    }

    /// Where the account lives (or `None`).
    pub fn set_placement(&mut self, placement: Option<String>) {
        self.rare_mut(|r| r.placement = placement);
    }

    fn rare_mut(&mut self, change: impl FnOnce(&mut Rare)) {
        let mut rare = self.rare.take().map(|r| *r).unwrap_or_default();
        change(&mut rare);
        self.rare = (rare != Rare::default()).then(|| Box::new(rare));
    }
}

impl std::fmt::Debug for ObservedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedAccount")
            .field("key", &self.key())
            .field("anchor", &self.anchor())
            .field("username", &self.username())
            .field("attrs", &self.attrs)
            .field("disabled", &self.disabled)
            .field("excluded", &self.excluded)
            .field("username_outdated", &self.username_outdated)
            .field("foreign", &self.foreign())
            .field("placement", &self.placement())
            .finish()
    }
}

/// What an account should be, in enid's vocabulary: everything a create needs. The connector
/// writes `id` as its owner marker (through the owner attribute the engine maps to it) and
/// decides where the account goes and how it is encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountSpec {
    /// The enid id of the person (the owner marker): the identity's own string, shared (a
    /// first run's million creates each held a copy).
    pub id: Arc<str>,
    pub username: Str,
    /// The person's names as the account shows them; a person with protected personal data
    /// has the username in all three.
    pub given_name: Str,
    pub family_name: Str,
    pub display_name: Str,
    pub roles: Roles,
    /// School unit codes, empty for a protected person (the one school most persons have in
    /// place).
    pub schools: SmallVec<[Str; 1]>,
    /// Whether the account is created enabled (a pre-provisioned account starts disabled).
    pub enabled: bool,
    /// The person has protected personal data: the connector keeps the account out of address
    /// books and neutral in where it lives (no school in its placement), where the target can.
    pub protected: bool,
    /// The mapped attributes, owner attribute included: as rendered while the planner compares
    /// them, packed once a create keeps them until it is sent (a first run holds a million).
    pub attrs: PackedAttrs,
    /// Where the account lives, for a target that places accounts (rendered from the target's
    /// placement template; for a protected person its neutral placement).
    pub placement: Option<Box<str>>,
    /// The first password, for a target that sets one ([`Capabilities::initial_password`]): set
    /// by the engine as the create is sent, never part of a plan, never shown. (Boxed: a plan
    /// holds every create without one.)
    ///
    /// [`Capabilities::initial_password`]: crate::Capabilities::initial_password
    #[serde(skip)]
    pub initial_password: Option<Box<crate::Secret>>,
}

/// One change to one account or group on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// A create's account in place: a first run's million creates would each be an allocation more
// boxed, and the other operations are few beside them.
#[allow(clippy::large_enum_variant)]
pub enum TargetOp {
    /// Create an account, enabled or disabled as `account.enabled` says.
    Create { account: AccountSpec },
    /// Give the account a new username (LDAP: a new RDN); the old name is removed.
    Rename { key: String, username: String },
    /// Move the account to another placement (an AD mover between school units' OUs).
    Move { key: String, placement: String },
    /// Change only these attributes, in one modification.
    Update { key: String, changes: Vec<AttrChange> },
    /// Disable the account by the target's method (reversible).
    Disable { key: String },
    /// Undo a disable.
    Enable { key: String },
    /// Remove the account for good.
    Delete { key: String },
    /// Create a group with these members (member values in the target's [`MemberForm`]).
    ///
    /// [`MemberForm`]: crate::MemberForm
    CreateGroup { name: String, members: Vec<String> },
    /// Add these members to a group, value by value (never a full replace).
    AddMembers { key: String, members: Vec<String> },
    /// Remove these members from a group, value by value.
    RemoveMembers { key: String, members: Vec<String> },
    /// Remove a group enid created that has no members left.
    DeleteGroup { key: String },
}

impl TargetOp {
    /// The key the operation addresses; `None` for creates.
    pub fn key(&self) -> Option<&str> {
        match self {
            TargetOp::Create { .. } | TargetOp::CreateGroup { .. } => None,
            TargetOp::Rename { key, .. }
            | TargetOp::Move { key, .. }
            | TargetOp::Update { key, .. }
            | TargetOp::Disable { key }
            | TargetOp::Enable { key }
            | TargetOp::Delete { key }
            | TargetOp::AddMembers { key, .. }
            | TargetOp::RemoveMembers { key, .. }
            | TargetOp::DeleteGroup { key } => Some(key),
        }
    }

    /// The same operation addressing `new_key` (the account's key changed earlier in the run).
    pub fn readdressed(&self, new_key: &str) -> TargetOp {
        let mut op = self.clone();
        match &mut op {
            TargetOp::Create { .. } | TargetOp::CreateGroup { .. } => {}
            TargetOp::Rename { key, .. }
            | TargetOp::Move { key, .. }
            | TargetOp::Update { key, .. }
            | TargetOp::Disable { key }
            | TargetOp::Enable { key }
            | TargetOp::Delete { key }
            | TargetOp::AddMembers { key, .. }
            | TargetOp::RemoveMembers { key, .. }
            | TargetOp::DeleteGroup { key } => *key = new_key.to_string(),
        }
        op
    }
}

/// One group as the target holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedGroup {
    /// How the target addresses the group: opaque to the engine.
    pub key: String,
    /// An immutable id, if the target has one.
    pub anchor: Option<String>,
    /// The group's name (LDAP `cn`, SCIM `displayName`).
    pub name: String,
    /// Member values, in the target's member form, as the target holds them.
    pub members: Vec<String>,
}

/// What an operation did, so the engine can record ownership and the account's key now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    /// The target made the account or group and gave it this key (and anchor, when it has one).
    Created {
        key: String,
        anchor: Option<String>,
    },
    Updated,
    /// The account is at `key` now (the same key where a rename keeps it).
    Renamed {
        key: String,
    },
    /// The account is at `key` now, in its new placement.
    Moved {
        key: String,
    },
    /// The account is at `key` now (a disable by move changes it).
    Disabled {
        key: String,
    },
    Enabled {
        key: String,
    },
    Deleted,
}

impl OpOutcome {
    /// The key the account or group has after the operation, when the outcome says it.
    pub fn key(&self) -> Option<&str> {
        match self {
            OpOutcome::Created { key, .. }
            | OpOutcome::Renamed { key }
            | OpOutcome::Moved { key }
            | OpOutcome::Disabled { key }
            | OpOutcome::Enabled { key } => Some(key),
            OpOutcome::Updated | OpOutcome::Deleted => None,
        }
    }
}

/// Why a target operation failed. The variant says what the caller must do; `message` names the
/// operation and the fix in one line, and `source` keeps the lower-level error (I/O, TLS, the
/// protocol library) when there is one. Show it with [`crate::one_line`] to include the causes.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target cannot be reached now (connection refused or lost, timeout, server
    /// unavailable). Stop sending, keep what is done, and try again on the next run.
    #[error("target unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The target is up but asked us to slow down (HTTP 429 or 503 with `Retry-After`, LDAP
    /// busy). A connector that retries does so within its own budget and returns this only when
    /// the budget is spent, so the target is overloaded for now: stop sending for the rest of the
    /// run (more operations would only be refused too), keep what is done, and run again no
    /// sooner than `retry_after` when the target said when.
    #[error("target throttled: {message}{}", retry_after_text(*.retry_after))]
    Throttled {
        message: String,
        /// How long the target asked us to wait, when it said.
        retry_after: Option<Duration>,
        #[source]
        source: Option<BoxError>,
    },
    /// The credentials were refused. An operator must fix them; retrying will not help.
    #[error("authentication failed: {message}")]
    Auth {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The target refused this one operation; `kind` says why and what to fix. Other operations
    /// may go on; retrying the same operation unchanged will fail the same way.
    #[error("rejected: {message}")]
    Rejected {
        kind: RejectKind,
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The configuration cannot work with this target (base DN missing, TLS failure, a secure
    /// connection required): an operator must fix the config; nothing is sent until then.
    #[error("configuration: {message}")]
    Config {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

/// Why the target refused one operation, by what must be fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectKind {
    /// Something already stands where the operation would create an entry (LDAP 68). Never
    /// overwrite it: find out whose it is (an earlier create whose result was lost is adopted by
    /// the next observe; anything else must be moved away or claimed with `enid adopt`).
    Exists,
    /// The entry the operation addresses, or its parent, is not there (LDAP 32). It was moved
    /// or removed by hand: the next run observes the target again and plans from what is there.
    NotFound,
    /// A value breaks a constraint of the target: a uniqueness rule, a size limit, a value
    /// already present (LDAP 19, 20). Fix the data or the attribute mapping.
    Constraint,
    /// The entry does not fit the target's schema: an object class violation, an undefined
    /// attribute, a value of the wrong syntax, a naming violation (LDAP 65, 17, 21, 64, 67, 69).
    /// Fix the object classes or the attribute mapping in the config.
    Schema,
    /// The account enid binds as may not do this here (LDAP 50). Give it the rights, or leave
    /// the entry out of scope.
    Access,
    /// Any other refusal; the message carries the target's own words.
    Other,
}

impl TargetError {
    /// The target cannot be reached now.
    pub fn unavailable(message: impl Into<String>) -> TargetError {
        TargetError::Unavailable { message: message.into(), source: None }
    }

    /// The target asked us to slow down, and perhaps said for how long.
    pub fn throttled(message: impl Into<String>, retry_after: Option<Duration>) -> TargetError {
        TargetError::Throttled { message: message.into(), retry_after, source: None }
    }

    /// The credentials were refused.
    pub fn auth(message: impl Into<String>) -> TargetError {
        TargetError::Auth { message: message.into(), source: None }
    }

    /// The target refused one operation.
    pub fn rejected(kind: RejectKind, message: impl Into<String>) -> TargetError {
        TargetError::Rejected { kind, message: message.into(), source: None }
    }

    /// The configuration cannot work with this target.
    pub fn config(message: impl Into<String>) -> TargetError {
        TargetError::Config { message: message.into(), source: None }
    }

    /// The same error, keeping `cause` as its `source`.
    pub fn with_source(mut self, cause: impl Into<BoxError>) -> TargetError {
        let (TargetError::Unavailable { source, .. }
        | TargetError::Throttled { source, .. }
        | TargetError::Auth { source, .. }
        | TargetError::Rejected { source, .. }
        | TargetError::Config { source, .. }) = &mut self;
        *source = Some(cause.into());
        self
    }

    /// An error of the same kind, with this message and no source: what each operation of a
    /// request that carried several (a SCIM `/Bulk`, a Graph `$batch`) gets when the whole
    /// request failed.
    pub fn retold(&self, message: String) -> TargetError {
        match self {
            TargetError::Unavailable { .. } => TargetError::unavailable(message),
            TargetError::Throttled { retry_after, .. } => TargetError::throttled(message, *retry_after),
            TargetError::Auth { .. } => TargetError::auth(message),
            TargetError::Rejected { kind, .. } => TargetError::rejected(*kind, message),
            TargetError::Config { .. } => TargetError::config(message),
        }
    }

    /// Whether the rest of a run against this target should stop: yes for everything but a
    /// rejection of one operation. `Throttled` stops too: it is returned once retries are spent.
    pub fn stops_target(&self) -> bool {
        !matches!(self, TargetError::Rejected { .. })
    }

    /// Why the operation was refused, when it was.
    pub fn reject_kind(&self) -> Option<RejectKind> {
        match self {
            TargetError::Rejected { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// How long the target asked us to wait, when it was throttled and said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TargetError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// `; retry after 30s` when the target said how long to wait.
fn retry_after_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!("; retry after {}s", d.as_secs() + u64::from(d.subsec_nanos() > 0)),
        None => String::new(),
    }
}

/// What [`Target::observe_where`] looks accounts up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// The owner attribute (enid ids): the accounts enid marked as its own.
    Owner,
    /// The username (LDAP the RDN attribute, AD `sAMAccountName` or the UPN it gives, SCIM
    /// `userName`), compared as the target compares names.
    Username,
    /// Another attribute: a correlation rule's (a dotted name is a part of a complex value).
    Attribute(&'a str),
}

/// An account a target created without reading its anchor back ([`Target::defer_anchors`]),
/// as [`Target::read_anchors`] finds it: where it is, its anchor, and the enid id its owner
/// attribute carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundAnchor {
    pub key: String,
    pub anchor: String,
    pub owner: String,
}

/// A system that holds accounts.
///
/// Every target MUST: read all or nothing ([`Target::observe`] never returns a short list);
/// return the key it gave an account in [`OpOutcome::Created`]; report a key change in the
/// outcome of the operation that made it; treat a repeated operation as done where its protocol
/// allows (an add of a member that is there, a move to where the account is); and declare its
/// facts in [`Target::capabilities`].
pub trait Target {
    /// What this target supports and how it compares names and keys.
    fn capabilities(&self) -> &Capabilities;
    /// Where the target looks for accounts, in its own words, for messages.
    fn scope(&self) -> String;
    /// Where the target looks for groups, in its own words, for messages.
    fn group_scope(&self) -> String;
    /// Connects and authenticates, and checks that the configured containers exist; says what
    /// it checked, in the target's words (`connected, bound as ..., base_dn found`).
    fn check(&self) -> impl Future<Output = Result<String, TargetError>> + Send;
    /// Reads every account in scope, with the attributes named in `attrs`. All-or-nothing: a
    /// partial read is an error, never a short list.
    fn observe(&self, attrs: &[String]) -> impl Future<Output = Result<Vec<ObservedAccount>, TargetError>> + Send;
    /// Reads every group in the configured group scope. Targets without groups return none.
    fn observe_groups(&self) -> impl Future<Output = Result<Vec<ObservedGroup>, TargetError>> + Send;
    /// Accounts outside the observed scope whose owner attribute, anchor or username (as
    /// `lookup` says) holds one of `values`: (key, matched value). What a lost state or a changed
    /// scope hides, and what a new username must not collide with.
    /// A target whose scope is everything it holds returns none.
    fn find_outside_scope(
        &self,
        lookup: Lookup,
        values: &[String],
    ) -> impl Future<Output = Result<Vec<(String, String)>, TargetError>> + Send;
    /// The account at `key`, in the scope or not, read as [`Target::observe`] reads accounts
    /// (an operator names an account outside the scope to claim it). `None`: no account there,
    /// or a target that cannot look outside its scope (the default).
    fn observe_at(
        &self,
        key: &str,
        attrs: &[String],
    ) -> impl Future<Output = Result<Option<ObservedAccount>, TargetError>> + Send {
        let _ = (key, attrs);
        async { Ok(None) }
    }
    /// The accounts in the observed scope whose `field` holds one of `values`, read as
    /// [`Target::observe`] reads them (the same attributes, disabled, excluded, placement):
    /// what an incremental run reads instead of the whole scope. All or nothing, as `observe`.
    /// `None`: this target cannot look accounts up, and the engine reads the whole scope
    /// instead (the default).
    fn observe_where(
        &self,
        field: Field<'_>,
        values: &[String],
        attrs: &[String],
    ) -> impl Future<Output = Result<Option<Vec<ObservedAccount>>, TargetError>> + Send {
        let _ = (field, values, attrs);
        async { Ok(None) }
    }
    /// Resumes from what this connector kept after the last apply that succeeded
    /// ([`Target::saved_state`]; an Entra delta link and what it read), before the engine
    /// observes; `None`: read in full. The engine keeps it for the connector, which never opens
    /// the state database. By default nothing is kept.
    fn resume(&self, state: Option<String>) {
        let _ = state;
    }
    /// What to keep for the next run, asked after an apply that succeeded: where this run's
    /// reads ended, so that the next reads only what changed since. `None`: nothing to keep
    /// (the default), and what was kept stays.
    fn saved_state(&self) -> Option<String> {
        None
    }
    /// Asked before the engine sends `creates` creates into a scope that held `in_scope`
    /// accounts: whether this target leaves the anchors out of those creates' outcomes and has
    /// them read all at once afterwards ([`Target::read_anchors`]), because reading each back with
    /// its create costs the target more (OpenLDAP's Post-Read control: a third more of slapd's
    /// one writer per add). Asked again before every apply's creates, so an answer holds for one
    /// apply. By default never.
    fn defer_anchors(&self, creates: usize, in_scope: usize) -> bool {
        let _ = (creates, in_scope);
        false
    }
    /// Reads every entry where [`Target::observe`] reads that carries an owner value (the
    /// excluded ones too): its key as this target spelled it at the create, its anchor, and each
    /// owner value, handed to `into` some thousand at a time, never all held. What was handed before an error is true; the error ends the read. By default
    /// nothing (a target that never defers anchors).
    fn read_anchors(
        &self,
        into: tokio::sync::mpsc::Sender<Vec<FoundAnchor>>,
    ) -> impl Future<Output = Result<(), TargetError>> + Send {
        drop(into);
        async { Ok(()) }
    }
    /// Performs one operation. Safe to call concurrently for different accounts.
    fn apply(&self, op: &TargetOp) -> impl Future<Output = Result<OpOutcome, TargetError>> + Send;
    /// Performs several operations, of different accounts, in as few requests as the target
    /// allows (at most [`Capabilities::max_batch`] are given): one result each, in order. By
    /// default one after the other.
    ///
    /// [`Capabilities::max_batch`]: crate::Capabilities::max_batch
    fn apply_batch(&self, ops: &[TargetOp]) -> impl Future<Output = Vec<Result<OpOutcome, TargetError>>> + Send
    where
        Self: Sync,
    {
        async move {
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                out.push(self.apply(op).await);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    /// An account's key, anchor and username share one string: each reads back as given, an
    /// empty one apart from an absent one, and a change of one keeps the others and the flags.
    #[test]
    fn an_observed_accounts_ids_read_back_as_given() {
        use proptest::prelude::*;
        let opt = || proptest::option::of("[a-zé=,.\\- ]{0,30}");
        proptest!(|(key in "[a-zé=,.\\- ]{0,60}", anchor in opt(), username in opt(), other in opt())| {
            let mut a = ObservedAccount::new(&key, anchor.as_deref(), username.as_deref(), PackedAttrs::default());
            prop_assert_eq!(a.key(), key.as_str());
            prop_assert_eq!(a.anchor(), anchor.as_deref());
            prop_assert_eq!(a.username(), username.as_deref());
            a.disabled = true;
            a.set_placement(Some("ou=x".into()));
            a.set_username(other.as_deref());
            prop_assert_eq!((a.key(), a.anchor(), a.username()), (key.as_str(), anchor.as_deref(), other.as_deref()));
            a.set_anchor(other.as_deref());
            a.set_key("k");
            prop_assert_eq!((a.key(), a.anchor(), a.username()), ("k", other.as_deref(), other.as_deref()));
            prop_assert!(a.disabled && a.placement() == Some("ou=x") && a.foreign().is_none());
        });
        let mut a = ObservedAccount::new("k", Some(""), None, PackedAttrs::default());
        assert_eq!((a.anchor(), a.username()), (Some(""), None));
        a.set_foreign(Some("AD".into()));
        a.set_foreign(None);
        assert_eq!(a, ObservedAccount::new("k", Some(""), None, PackedAttrs::default()), "no foreign: nothing boxed");
        // What the packing is for: a million of these are held for a run.
        assert!(std::mem::size_of::<ObservedAccount>() <= 72, "{}", std::mem::size_of::<ObservedAccount>());
    }

    /// A first run's plan holds a million creates, each with its account in place: the id is
    /// the identity's shared string, roles a byte, one school and no placement or password
    /// nothing beside (264 bytes when each was a vector or string of its own).
    #[test]
    fn an_account_spec_is_small() {
        assert!(std::mem::size_of::<AccountSpec>() <= 216, "{}", std::mem::size_of::<AccountSpec>());
        let schools: SmallVec<[Str; 1]> = ["Norr".into()].into_iter().collect();
        assert!(!schools.spilled(), "one school is held in place");
    }

    #[test]
    fn only_a_rejection_lets_the_run_go_on() {
        let io = || std::io::Error::other("connection reset");
        let stops = [
            (TargetError::unavailable("modify uid=a").with_source(io()), true),
            (TargetError::throttled("add uid=a", Some(Duration::from_secs(30))), true),
            (TargetError::auth("bind as cn=admin"), true),
            (TargetError::config("read base_dn ou=x"), true),
        ];
        for (e, want) in stops {
            assert_eq!(e.stops_target(), want, "{e}");
            assert_eq!(e.reject_kind(), None);
        }
        for kind in [
            RejectKind::Exists,
            RejectKind::NotFound,
            RejectKind::Constraint,
            RejectKind::Schema,
            RejectKind::Access,
            RejectKind::Other,
        ] {
            let e = TargetError::rejected(kind, "add uid=a");
            assert!(!e.stops_target(), "{kind:?}");
            assert_eq!(e.reject_kind(), Some(kind));
        }
    }

    #[test]
    fn display_is_one_line_and_the_cause_stays_the_source() {
        let e =
            TargetError::unavailable("connect to ldap://x").with_source(std::io::Error::other("connection refused"));
        assert_eq!(e.to_string(), "target unavailable: connect to ldap://x");
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("connection refused"));
        assert_eq!(crate::one_line(&e), "target unavailable: connect to ldap://x: connection refused");

        let e = TargetError::throttled("add uid=a: server busy", Some(Duration::from_millis(1500)));
        assert_eq!(e.to_string(), "target throttled: add uid=a: server busy; retry after 2s");
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        let e = TargetError::throttled("add uid=a: server busy", None);
        assert_eq!(e.to_string(), "target throttled: add uid=a: server busy");
        assert!(e.source().is_none());

        let e = TargetError::rejected(RejectKind::Exists, "add uid=a: entry already exists (LDAP 68)");
        assert_eq!(e.to_string(), "rejected: add uid=a: entry already exists (LDAP 68)");
    }
}
