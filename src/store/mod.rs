//! The state database: identities, their source records, allocated names, owned accounts, runs,
//! the operation log and saved plans.
//!
//! [`StateStore`] is the contract every backend meets; [`Store`] is the closed set of backends
//! the engine holds (SQLite today, in [`sqlite`]; PostgreSQL later). The value types the
//! contract speaks in live in `rows`; one test suite (`suite`) checks every backend against
//! the behaviours the engine relies on.
//!
//! The store is the only place a full civic number is kept. Everything it returns for display
//! carries masked values.

pub mod copy;
pub mod files;
pub mod postgres;
mod rows;
pub mod runlock;
pub mod sqlite;
#[cfg(test)]
mod suite;

pub use postgres::PgStore;
pub use rows::{
    ApprovalRow, CivicHistoryRow, ClaimRefusal, GroupRow, HeldRow, LogFilter, LogRow, OpRecord, OpResult, Ownership,
    PasswordFilter, PersonHit, RecordDigest, RecordRef, RecordRow, RunRow, SealedPassword, SessionRow, SourceRead,
    StateMetrics, StoredRecordView, StoredSourceRecord, TokenRow, describe_stored,
};
pub use sqlite::SqliteStore;

use crate::core::identity::{CivicChange, Decision};
use crate::core::model::{IdentityId, OwnedAccount, Snapshot};
use crate::core::plan::{Adoption, OwnedGroup, RenameInfo};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A state database failure. The operator must fix the database path or permissions, or
/// restore the file; enid does not run without its state.
#[derive(Debug, thiserror::Error)]
#[error("state database {path}: {message}")]
pub struct StoreError {
    /// Where the state is (a file path), for the message.
    pub path: String,
    pub message: String,
}

/// What enid keeps between runs, whatever database holds it.
///
/// # How the engine holds a store
///
/// The engine holds a [`Store`]: a closed enum with one variant per backend, which implements
/// this trait by matching. That is the project's way with connectors too (`AnySource`,
/// `AnyTarget`): the set of backends is known at build time, the engine stays free of type
/// parameters, and no future is boxed. The methods return `impl Future + Send` (async functions
/// in traits) rather than `async fn`, because the engine sends some of them to other tasks (the
/// log is written while the next operations are sent). A test injects a store by building an
/// engine with [`Engine::with_store`](crate::engine::Engine::with_store).
///
/// # What every backend guarantees
///
/// - Opening a store brings its schema up to date (each backend has its own migrations).
/// - A username, once allocated, is never deleted: a released name is not offered to anyone
///   else until its quarantine (if any) has passed, and a name reserved by `enid adopt` is
///   never offered; either changes hands only when an identity is recorded with it.
/// - Full civic numbers are written and read back only through [`RecordRow`], [`Snapshot`] and
///   [`CivicChange`]; what is meant for display ([`StoredRecordView`], [`CivicHistoryRow`]) is
///   masked by the store.
/// - Every method that writes several rows writes them in one transaction: all or nothing.
/// - Ownership rows follow [`Ownership`]: a `pending` row forgets its anchor, an unknown anchor
///   keeps the recorded one, `disabled_at` is kept while the account stays disabled, and a
///   removed account's row is deleted.
pub trait StateStore: Send + Sync {
    /// Whether opening the store created it (a new, empty state).
    fn created(&self) -> bool;

    /// Where the state is, for messages (the database file).
    fn path(&self) -> &str;

    /// Writes a consistent copy of the state to `dest`, safe while another enid process uses
    /// it. `dest` must not exist or be empty; the copy is readable by its owner only.
    fn backup(&self, dest: &Path) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A value of the state's own settings (`meta`), if set.
    fn meta(&self, key: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Sets a value of the state's own settings.
    fn set_meta(&self, key: &str, value: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    // Identities, records and usernames.

    /// Everything the functional core needs from the state: identities, record links (with
    /// full civic numbers) and ownership rows.
    fn snapshot(&self) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;

    /// [`StateStore::snapshot`] without the ownership rows (`accounts` empty): a run reads them
    /// with [`StateStore::owned_accounts`] once it has let the stored records go, so that a
    /// million of each are not held at once through the resolution.
    fn snapshot_without_accounts(&self) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;

    /// The ownership rows, each identity id shared with `identities` where it holds it (a
    /// snapshot's).
    fn owned_accounts(
        &self,
        identities: std::sync::Arc<crate::core::model::IdMap<Option<connector_api::value::Str>>>,
    ) -> impl Future<Output = Result<Vec<crate::core::model::OwnedAccount>, StoreError>> + Send;

    /// Records new identities with their usernames, new or changed source records, and
    /// changed primary school units, in one transaction. A username whose quarantine ended
    /// changes hands. (Through [`StateStore::commit_identities_from`].)
    fn commit_identities(
        &self,
        new: &[(IdentityId, String)],
        records: &[RecordRow],
        primaries: &[(IdentityId, Option<crate::core::model::PrimaryTie>)],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move { self.commit_identities_from(new, &mut records.iter().cloned(), primaries, now).await }
    }

    /// [`StateStore::commit_identities`] with the records taken one by one and written a
    /// statement's worth at a time, in the same one transaction: an apply that stores a million
    /// records never holds all their rows.
    fn commit_identities_from(
        &self,
        new: &[(IdentityId, String)],
        records: &mut (dyn Iterator<Item = RecordRow> + Send),
        primaries: &[(IdentityId, Option<crate::core::model::PrimaryTie>)],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every username that may not be given to someone new, lowercased: all ever allocated,
    /// except names released more than `quarantine_days` before `now` (never, without a period).
    fn allocated_usernames(
        &self,
        now: DateTime<Utc>,
        quarantine_days: Option<u32>,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Gives identities their new usernames. The old name stays allocated, released, so it is
    /// never given to anyone else; the identity's rename approval is used up.
    fn commit_renames(
        &self,
        renames: &[RenameInfo],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Approved renames: identity → (the new username that was approved, who approved it).
    fn rename_approvals(&self) -> impl Future<Output = Result<BTreeMap<String, (String, String)>, StoreError>> + Send;

    /// Approves renaming an identity to `new_username` (a later approval replaces it); `by`: who
    /// (a token's name, `local:USER`).
    fn approve_rename(
        &self,
        identity: &str,
        new_username: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records usernames found on the targets as taken (`enid adopt`): they belong to no identity
    /// enid knows, and are never allocated.
    fn reserve_usernames(
        &self,
        names: &[String],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Usernames recorded as taken by `enid adopt` that no identity has claimed (lowercased).
    fn reserved_usernames(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Records that an account is not the identity's (an operator's decision): correlation never
    /// claims it for them. Recording the same decision again changes nothing.
    fn refuse_claim(
        &self,
        refusal: &ClaimRefusal,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Moves everything recorded on target `old` (accounts, groups, kept first passwords, claim
    /// refusals) to target `new`, in one transaction; the log keeps the old name. Returns the
    /// number of accounts moved.
    fn rename_target(&self, old: &str, new: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records accounts an operator claimed by hand outside the target's scope: (target,
    /// identity). The next apply moves them into their place.
    fn record_outside_claims(
        &self,
        rows: &[(String, IdentityId)],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The accounts claimed by hand outside the scope and not yet seen in it: (target, identity).
    fn outside_claims(&self) -> impl Future<Output = Result<Vec<(String, IdentityId)>, StoreError>> + Send;

    /// Forgets these outside claims (their accounts are in the scope now).
    fn forget_outside_claims(
        &self,
        rows: &[(String, IdentityId)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every recorded refusal, sorted by target, identity and key.
    fn claim_refusals(&self) -> impl Future<Output = Result<Vec<ClaimRefusal>, StoreError>> + Send;

    /// Identities any of whose stored records marks protected personal data: shown by enid id
    /// only, in every log row, also those written before they became protected.
    fn protected_identities(
        &self,
    ) -> impl Future<Output = Result<std::collections::HashSet<IdentityId>, StoreError>> + Send;

    /// Releases the protection the state remembers for these identities (an operator approved
    /// it). Their records are rewritten on the next run.
    fn unprotect(&self, identities: &[IdentityId]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Finds an identity by enid id, username (current or earlier), a source's person_id, or an
    /// external identifier a source gives (SS 12000 `externalIdentifiers`, OneRoster
    /// `identifier`: the number a school admin knows).
    fn find_identity(&self, needle: &str) -> impl Future<Output = Result<Vec<IdentityId>, StoreError>> + Send;

    /// The stored records of an identity, civic numbers masked.
    fn records_of(&self, identity: &str) -> impl Future<Output = Result<Vec<StoredRecordView>, StoreError>> + Send;

    /// The operators' conflict decisions, by conflict id.
    fn decisions(&self) -> impl Future<Output = Result<BTreeMap<String, Decision>, StoreError>> + Send;

    /// Records a decision on a conflict, and who made it (`by`); a later decision on the same
    /// conflict replaces it.
    fn decide(
        &self,
        conflict_id: &str,
        decision: &Decision,
        records: &[String],
        by: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records civic-number changes of linked records.
    fn record_civic_changes(
        &self,
        run: i64,
        changes: &[CivicChange],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The civic-number history of an identity, oldest first, masked.
    fn civic_history_of(&self, identity: &str)
    -> impl Future<Output = Result<Vec<CivicHistoryRow>, StoreError>> + Send;

    // Ownership.

    /// Owned accounts, all or of one identity, by target.
    fn accounts(&self, identity: Option<&str>) -> impl Future<Output = Result<Vec<OwnedAccount>, StoreError>> + Send;

    /// Writes `pending` ownership rows (target, identity) before their creates are sent: if the
    /// run dies mid-way, the next run finds the accounts by the owner marker they carry and
    /// completes the record instead of creating duplicates. A pending row has no key (the
    /// target gives one) and forgets any anchor it had.
    fn record_pending(
        &self,
        rows: &[(String, IdentityId)],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Completes ownership records of accounts found on a target (adoptions).
    fn adopt(&self, rows: &[Adoption], now: DateTime<Utc>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps sealed first passwords, one per target and identity (a newer one replaces the
    /// older, and is free of any claim on the older), in one transaction.
    fn keep_passwords(
        &self,
        rows: &[SealedPassword],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The kept first passwords that match the filter, of accounts whose create the target
    /// confirmed (an account still pending, or gone, has none to hand out); oldest first.
    fn passwords(
        &self,
        filter: &PasswordFilter,
    ) -> impl Future<Output = Result<Vec<SealedPassword>, StoreError>> + Send;

    /// How many sealed first passwords the state keeps, whatever their account's state (a
    /// pending create's too) or claim: every one the password key must still open.
    fn kept_passwords(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Claims these kept passwords for the hand-out `claim`, at `now`, in one transaction:
    /// each only if it is still the one read (a newer one set meanwhile is not claimed) and no
    /// other hand-out holds it (unclaimed, given back, or claimed before `lapsed_before`, a
    /// claim never confirmed). Returns the rows this call claimed: of two hand-outs at once,
    /// each row goes to one.
    fn claim_passwords(
        &self,
        rows: &[SealedPassword],
        claim: &str,
        now: DateTime<Utc>,
        lapsed_before: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<SealedPassword>, StoreError>> + Send;

    /// Forgets the passwords `claim` still holds (their hand-out was delivered); returns the
    /// rows forgotten (their `sealed` empty), in one transaction. A row another hand-out
    /// claimed after this claim lapsed, or one replaced by a newer password, is not this
    /// claim's any more and stays.
    fn confirm_claim(&self, claim: &str) -> impl Future<Output = Result<Vec<SealedPassword>, StoreError>> + Send;

    /// Gives back the passwords `claim` holds (their hand-out failed): the next hand-out shows
    /// them. Returns how many.
    fn release_claim(&self, claim: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Forgets the passwords kept since before `before` (never handed out); returns how many.
    /// A row a live claim holds (claimed at or after `lapsed_before`) stays: its hand-out
    /// forgets it once delivered, or gives it back and the next expiry forgets it.
    fn expire_passwords(
        &self,
        before: DateTime<Utc>,
        lapsed_before: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Groups enid created.
    fn groups(&self) -> impl Future<Output = Result<Vec<OwnedGroup>, StoreError>> + Send;

    /// Writes group ownership rows: `pending` before a create is sent, `active` once it is known
    /// to exist (a create's result, or an adoption).
    fn record_groups(
        &self,
        rows: &[GroupRow],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets a group enid deleted.
    fn forget_group(&self, target: &str, name: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    // Runs and the operation log.

    /// Starts a run and returns its id.
    fn begin_run(
        &self,
        command: &str,
        plan_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Ends a run with its status (`ok`, `failed`, `stopped`) and a one-line message.
    fn finish_run(
        &self,
        run: i64,
        status: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a run that ended as it began (held, stopped, declined, nothing to do, a daemon's
    /// plan-only run), with its counts as JSON; returns its id.
    #[allow(clippy::too_many_arguments)]
    fn record_run(
        &self,
        command: &str,
        plan_id: Option<&str>,
        status: &str,
        message: &str,
        counts: Option<&str>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Keeps a run's counts (JSON): the plan per action, what was sent.
    fn set_run_counts(&self, run: i64, counts: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One run by id.
    fn run_by_id(&self, run: i64) -> impl Future<Output = Result<Option<RunRow>, StoreError>> + Send;

    /// Records approvals of a run's operations and guard acceptances.
    fn record_approvals(&self, rows: &[ApprovalRow]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Approvals neither used nor expired at `now`, oldest first.
    fn live_approvals(&self, now: DateTime<Utc>) -> impl Future<Output = Result<Vec<ApprovalRow>, StoreError>> + Send;

    /// Marks approvals as used by `run`: each is used once.
    fn use_approvals(&self, ids: &[i64], run: i64) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The newest approval's id (0 when there is none): a daemon notices a new approval by it.
    fn latest_approval(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Marks runs left `running` by a process that died as `interrupted`, and returns how many.
    /// Called with the run lock held, so no live run is among them.
    fn mark_interrupted(&self, now: DateTime<Utc>) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Whether an apply has ever run against this state (an adopt does not count). A state that
    /// never applied but faces targets holding enid's accounts was lost or replaced. Kept apart
    /// from the runs, so that [`prune`](StateStore::prune) never makes an applied state look new.
    fn has_applied(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Whether an `enid adopt` has finished against this state (status `ok`; one a killed
    /// process left half-recorded does not count). Such a state was rebuilt from the targets:
    /// what adopt could not match is blocked per person, and the runs go on. Survives
    /// [`prune`](StateStore::prune) like [`has_applied`](StateStore::has_applied).
    fn has_adopted(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Retention (`[state] keep_log_for`): removes the runs that started before `before` (never
    /// one still `running`), their operation-log rows, and the plans saved before it, in one
    /// transaction; returns how many of each. A child's sync log is personal data, kept only as
    /// long as it is needed. Nothing a guard or the planner decides with is removed.
    fn prune(&self, before: DateTime<Utc>) -> impl Future<Output = Result<Pruned, StoreError>> + Send;

    /// Runs, the newest `limit`, oldest first.
    fn runs(&self, limit: i64) -> impl Future<Output = Result<Vec<RunRow>, StoreError>> + Send;

    /// Logs a batch of operations and updates the ownership table from their outcomes, in one
    /// transaction.
    fn record_ops(
        &self,
        run: i64,
        ops: &[OpRecord],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records the anchors `target` read after this run's creates ([`connector_api::Target::read_anchors`])
    /// on its ownership rows that have none: the row of the identity whose id the account
    /// carries, recorded at the same key, created (not pending). Any other account found is left
    /// alone. Returns how many rows got their anchor.
    fn record_anchors(
        &self,
        target: &str,
        found: &[connector_api::FoundAnchor],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The operation log, newest last: the newest `limit` rows (all, when `limit` is not
    /// positive) that match every filter given.
    fn log(&self, filter: &LogFilter) -> impl Future<Output = Result<Vec<LogRow>, StoreError>> + Send;

    /// How many operations of run `run` at these school units (whole entries of a row's list)
    /// the log holds, per action and result (`ok`, `failed`, `skipped`).
    fn log_tally(
        &self,
        run: i64,
        schools: &[String],
    ) -> impl Future<Output = Result<Vec<(String, String, i64)>, StoreError>> + Send;

    /// Saves a plan for a later `enid apply --plan ID`; a plan saved again keeps its first copy.
    fn save_plan(
        &self,
        plan_id: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A saved plan's JSON, if there is one with this id.
    fn load_plan(&self, plan_id: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Counts for `/metrics` (see [`StateMetrics`]), each sorted by its labels.
    fn metrics(&self) -> impl Future<Output = Result<StateMetrics, StoreError>> + Send;

    // API tokens.

    /// Adds a token; `false` (and nothing written) when a token of that name exists, revoked
    /// or not.
    fn add_token(&self, token: &TokenRow) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every token, revoked ones too, by name.
    fn tokens(&self) -> impl Future<Output = Result<Vec<TokenRow>, StoreError>> + Send;

    /// Revokes the token `name`; `false` when there is no such token not yet revoked.
    fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Persons whose stored name (given and family, either order) or username holds `text`
    /// (lowercase), at one of `schools` (`None`: any), at most `limit`, by family name. Never an
    /// identity with a protected record: a protected person is found by enid id only.
    fn search_persons(
        &self,
        text: &str,
        schools: Option<&[String]>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<PersonHit>, StoreError>> + Send;

    // Sessions of the web page.

    /// Adds a session.
    fn add_session(&self, session: &SessionRow) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The session whose cookie hashes to `id`, unless it expired by `now`.
    fn session(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<SessionRow>, StoreError>> + Send;

    /// Ends a session (signing out).
    fn remove_session(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the sessions expired by `now`; how many.
    fn remove_expired_sessions(&self, now: DateTime<Utc>) -> impl Future<Output = Result<u64, StoreError>> + Send;

    // What the input guards compare against.

    /// Valid records per source in the last applied run.
    fn source_counts(&self) -> impl Future<Output = Result<BTreeMap<String, usize>, StoreError>> + Send;

    /// Remembers how many valid records each source gave in an applied run.
    fn record_source_counts(
        &self,
        run: i64,
        counts: &BTreeMap<String, usize>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// What each source's last applied read left: its watermark, its last full read, its scope.
    fn source_reads(&self) -> impl Future<Output = Result<BTreeMap<String, SourceRead>, StoreError>> + Send;

    /// Remembers each source's read at the end of an apply, with whether it read in full.
    fn record_source_reads(
        &self,
        run: i64,
        reads: &BTreeMap<String, (SourceRead, bool)>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The records of `source` that its last applied read left, with full civic numbers: what
    /// an incremental read's changes are merged with. The linked records not gone, and the held
    /// ones ([`StateStore::hold_records`]), a held record in place of a linked one with its key.
    fn stored_records(&self, source: &str) -> impl Future<Output = Result<Vec<StoredSourceRecord>, StoreError>> + Send;

    /// Of the records [`StateStore::stored_records`] gives, those that answer `query` (perhaps
    /// with a few more: filter with [`connector_api::PriorQuery::matches`]), found through
    /// indexes: what an incremental read of a few changes reads.
    fn stored_records_where(
        &self,
        source: &str,
        query: &connector_api::PriorQuery,
    ) -> impl Future<Output = Result<Vec<StoredSourceRecord>, StoreError>> + Send;

    /// The school unit codes of `source`'s stored ties with a source id, each with the least
    /// and greatest name stored with it, and `None` when a tie there has none.
    fn stored_units(
        &self,
        source: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, BTreeSet<Option<String>>>, StoreError>> + Send;

    /// How many records [`StateStore::stored_records`] gives for `source`, and which of `ids`
    /// are among them.
    fn stored_presence(
        &self,
        source: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<(usize, BTreeSet<String>), StoreError>> + Send;

    /// Whether a record of `source` not gone was stored before records were kept whole (an
    /// upgraded state): such a source reads in full.
    fn stored_unwhole(&self, source: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The digests of the stored records at `keys` (source, person_id).
    fn record_digests_of(
        &self,
        keys: &[(String, String)],
    ) -> impl Future<Output = Result<Vec<RecordDigest>, StoreError>> + Send;

    /// The held records of every source: (source, person_id, content hash), sorted.
    fn held_keys(&self) -> impl Future<Output = Result<Vec<(String, String, String)>, StoreError>> + Send;

    /// Every stored record's key, identity, content hash and whether it is marked gone: what an
    /// incremental run compares the sources' records with.
    fn record_digests(&self) -> impl Future<Output = Result<Vec<RecordDigest>, StoreError>> + Send;

    /// The state of the identities linked to `keys` (source, person_id) or holding one of the
    /// civic numbers, e-mail addresses or eppns (these two compared lowercased) in a stored
    /// record: the identities, all their records, their accounts and primary school units. What
    /// an incremental run resolves and plans, instead of the whole [`StateStore::snapshot`].
    fn snapshot_of(
        &self,
        keys: &[(String, String)],
        civic: &[String],
        email: &[String],
        eppn: &[String],
    ) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;

    /// The whole stored copies (`data`, JSON without the civic number) of the records at `keys`:
    /// (source, person_id, data).
    fn records_data(
        &self,
        keys: &[(String, String)],
    ) -> impl Future<Output = Result<Vec<(String, String, Option<String>)>, StoreError>> + Send;

    /// How many accounts enid owns on each target (pending creates not counted): what an
    /// incremental run weighs its thresholds against.
    fn owned_counts(&self) -> impl Future<Output = Result<BTreeMap<String, usize>, StoreError>> + Send;

    /// The operations carried out (result `ok`) by the runs after `run`, counted per target and
    /// action: what the incremental runs since the last full one did, which the next one weighs
    /// its thresholds with.
    fn applied_since(&self, run: i64) -> impl Future<Output = Result<Vec<(String, String, usize)>, StoreError>> + Send;

    /// Replaces the held records of `sources` (records read in no identity: held in a conflict,
    /// waiting, or of a kept identity) with `rows`; a record held before keeps when it was first
    /// held.
    fn hold_records(
        &self,
        run: i64,
        sources: &[String],
        rows: &[HeldRow],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks records (source, person_id) whose persons the source no longer gives as gone.
    fn mark_gone(
        &self,
        rows: &[(String, String)],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The fields each source delivered at the last applied run.
    fn source_columns(&self) -> impl Future<Output = Result<BTreeMap<String, BTreeSet<String>>, StoreError>> + Send;

    /// Remembers which fields each source delivered in an applied run.
    fn record_source_columns(
        &self,
        run: i64,
        columns: &BTreeMap<String, BTreeSet<String>>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What [`StateStore::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Runs (each with its operation-log rows).
    pub runs: u64,
    /// Operation-log rows.
    pub log_rows: u64,
    /// Saved plans.
    pub plans: u64,
}

/// The state database the engine holds: one variant per backend (see [`StateStore`] for why an
/// enum).
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens the SQLite state database at `path` (see [`SqliteStore::open`]).
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store::Sqlite(SqliteStore::open(path).await?))
    }

    /// Opens the state `[state]` names: a SQLite file, or a PostgreSQL database with its
    /// password read from `db_password_file` or `db_password_env` (never shown).
    pub async fn open_config(state: &crate::config::StateConfig) -> Result<Store, StoreError> {
        match state.location() {
            crate::config::StateLocation::File(path) => Self::open(path).await,
            crate::config::StateLocation::Postgres { url, password_file, password_env } => {
                let fail = |message: String| StoreError { path: "[state] url".into(), message };
                let password = if password_file.is_some() || password_env.is_some() {
                    Some(
                        connector_api::load_configured_secret(password_file, password_env, "[state] db_password")
                            .map_err(fail)?,
                    )
                } else {
                    None
                };
                let target = postgres::parse_url(url, password.as_ref().map(|p| p.expose()))
                    .map_err(fail)?
                    .end_idle_transactions_after(state.lease_for.duration());
                Ok(Store::Postgres(PgStore::open(target).await?))
            }
        }
    }
}

/// Calls the same method on whichever backend `self` holds.
macro_rules! dispatch {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            Store::Sqlite(s) => s.$method($($arg),*).await,
            Store::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

impl StateStore for Store {
    fn created(&self) -> bool {
        match self {
            Store::Sqlite(s) => s.created(),
            Store::Postgres(s) => s.created(),
        }
    }

    fn path(&self) -> &str {
        match self {
            Store::Sqlite(s) => s.path(),
            Store::Postgres(s) => s.path(),
        }
    }

    async fn backup(&self, dest: &Path) -> Result<(), StoreError> {
        dispatch!(self.backup(dest))
    }

    async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self.meta(key))
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        dispatch!(self.set_meta(key, value))
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        dispatch!(self.snapshot())
    }

    async fn snapshot_without_accounts(&self) -> Result<Snapshot, StoreError> {
        dispatch!(self.snapshot_without_accounts())
    }

    async fn owned_accounts(
        &self,
        identities: std::sync::Arc<crate::core::model::IdMap<Option<connector_api::value::Str>>>,
    ) -> Result<Vec<crate::core::model::OwnedAccount>, StoreError> {
        dispatch!(self.owned_accounts(identities))
    }

    async fn commit_identities_from(
        &self,
        new: &[(IdentityId, String)],
        records: &mut (dyn Iterator<Item = RecordRow> + Send),
        primaries: &[(IdentityId, Option<crate::core::model::PrimaryTie>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self.commit_identities_from(new, records, primaries, now))
    }

    async fn allocated_usernames(
        &self,
        now: DateTime<Utc>,
        quarantine_days: Option<u32>,
    ) -> Result<Vec<String>, StoreError> {
        dispatch!(self.allocated_usernames(now, quarantine_days))
    }

    async fn commit_renames(&self, renames: &[RenameInfo], now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self.commit_renames(renames, now))
    }

    async fn rename_approvals(&self) -> Result<BTreeMap<String, (String, String)>, StoreError> {
        dispatch!(self.rename_approvals())
    }

    async fn approve_rename(
        &self,
        identity: &str,
        new_username: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self.approve_rename(identity, new_username, by, now))
    }

    async fn reserve_usernames(&self, names: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self.reserve_usernames(names, now))
    }

    async fn reserved_usernames(&self) -> Result<Vec<String>, StoreError> {
        dispatch!(self.reserved_usernames())
    }

    async fn refuse_claim(&self, refusal: &ClaimRefusal, now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self.refuse_claim(refusal, now))
    }

    async fn claim_refusals(&self) -> Result<Vec<ClaimRefusal>, StoreError> {
        dispatch!(self.claim_refusals())
    }

    async fn record_outside_claims(&self, rows: &[(String, IdentityId)], now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self.record_outside_claims(rows, now))
    }

    async fn outside_claims(&self) -> Result<Vec<(String, IdentityId)>, StoreError> {
        dispatch!(self.outside_claims())
    }

    async fn forget_outside_claims(&self, rows: &[(String, IdentityId)]) -> Result<(), StoreError> {
        dispatch!(self.forget_outside_claims(rows))
    }

    async fn rename_target(&self, old: &str, new: &str) -> Result<u64, StoreError> {
        dispatch!(self.rename_target(old, new))
    }

    async fn protected_identities(&self) -> Result<std::collections::HashSet<IdentityId>, StoreError> {
        dispatch!(self.protected_identities())
    }

    async fn unprotect(&self, identities: &[IdentityId]) -> Result<(), StoreError> {
        dispatch!(self.unprotect(identities))
    }

    async fn find_identity(&self, needle: &str) -> Result<Vec<IdentityId>, StoreError> {
        dispatch!(self.find_identity(needle))
    }

    async fn records_of(&self, identity: &str) -> Result<Vec<StoredRecordView>, StoreError> {
        dispatch!(self.records_of(identity))
    }

    async fn decisions(&self) -> Result<BTreeMap<String, Decision>, StoreError> {
        dispatch!(self.decisions())
    }

    async fn decide(
        &self,
        conflict_id: &str,
        decision: &Decision,
        records: &[String],
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self.decide(conflict_id, decision, records, by, now))
    }

    async fn record_civic_changes(
        &self,
        run: i64,
        changes: &[CivicChange],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self.record_civic_changes(run, changes, now))
    }

    async fn civic_history_of(&self, identity: &str) -> Result<Vec<CivicHistoryRow>, StoreError> {
        dispatch!(self.civic_history_of(identity))
    }

    async fn accounts(&self, identity: Option<&str>) -> Result<Vec<OwnedAccount>, StoreError> {
        dispatch!(self.accounts(identity))
    }

    async fn record_pending(&self, rows: &[(String, IdentityId)], now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self.record_pending(rows, now))
    }

    async fn adopt(&self, rows: &[Adoption], now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self.adopt(rows, now))
    }

    async fn keep_passwords(&self, rows: &[SealedPassword], now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self.keep_passwords(rows, now))
    }

    async fn passwords(&self, filter: &PasswordFilter) -> Result<Vec<SealedPassword>, StoreError> {
        dispatch!(self.passwords(filter))
    }

    async fn kept_passwords(&self) -> Result<u64, StoreError> {
        dispatch!(self.kept_passwords())
    }

    async fn claim_passwords(
        &self,
        rows: &[SealedPassword],
        claim: &str,
        now: DateTime<Utc>,
        lapsed_before: DateTime<Utc>,
    ) -> Result<Vec<SealedPassword>, StoreError> {
        dispatch!(self.claim_passwords(rows, claim, now, lapsed_before))
    }

    async fn confirm_claim(&self, claim: &str) -> Result<Vec<SealedPassword>, StoreError> {
        dispatch!(self.confirm_claim(claim))
    }

    async fn release_claim(&self, claim: &str) -> Result<u64, StoreError> {
        dispatch!(self.release_claim(claim))
    }

    async fn expire_passwords(&self, before: DateTime<Utc>, lapsed_before: DateTime<Utc>) -> Result<u64, StoreError> {
        dispatch!(self.expire_passwords(before, lapsed_before))
    }

    async fn groups(&self) -> Result<Vec<OwnedGroup>, StoreError> {
        dispatch!(self.groups())
    }

    async fn record_groups(&self, rows: &[GroupRow], now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self.record_groups(rows, now))
    }

    async fn forget_group(&self, target: &str, name: &str) -> Result<(), StoreError> {
        dispatch!(self.forget_group(target, name))
    }

    async fn begin_run(&self, command: &str, plan_id: Option<&str>, now: DateTime<Utc>) -> Result<i64, StoreError> {
        dispatch!(self.begin_run(command, plan_id, now))
    }

    async fn finish_run(&self, run: i64, status: &str, message: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self.finish_run(run, status, message, now))
    }

    async fn record_run(
        &self,
        command: &str,
        plan_id: Option<&str>,
        status: &str,
        message: &str,
        counts: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        dispatch!(self.record_run(command, plan_id, status, message, counts, now))
    }

    async fn set_run_counts(&self, run: i64, counts: &str) -> Result<(), StoreError> {
        dispatch!(self.set_run_counts(run, counts))
    }

    async fn run_by_id(&self, run: i64) -> Result<Option<RunRow>, StoreError> {
        dispatch!(self.run_by_id(run))
    }

    async fn record_approvals(&self, rows: &[ApprovalRow]) -> Result<(), StoreError> {
        dispatch!(self.record_approvals(rows))
    }

    async fn live_approvals(&self, now: DateTime<Utc>) -> Result<Vec<ApprovalRow>, StoreError> {
        dispatch!(self.live_approvals(now))
    }

    async fn use_approvals(&self, ids: &[i64], run: i64) -> Result<(), StoreError> {
        dispatch!(self.use_approvals(ids, run))
    }

    async fn latest_approval(&self) -> Result<i64, StoreError> {
        dispatch!(self.latest_approval())
    }

    async fn mark_interrupted(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        dispatch!(self.mark_interrupted(now))
    }

    async fn has_applied(&self) -> Result<bool, StoreError> {
        dispatch!(self.has_applied())
    }

    async fn has_adopted(&self) -> Result<bool, StoreError> {
        dispatch!(self.has_adopted())
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<Pruned, StoreError> {
        dispatch!(self.prune(before))
    }

    async fn runs(&self, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        dispatch!(self.runs(limit))
    }

    async fn record_ops(&self, run: i64, ops: &[OpRecord], now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self.record_ops(run, ops, now))
    }

    async fn record_anchors(&self, target: &str, found: &[connector_api::FoundAnchor]) -> Result<u64, StoreError> {
        dispatch!(self.record_anchors(target, found))
    }

    async fn log(&self, filter: &LogFilter) -> Result<Vec<LogRow>, StoreError> {
        dispatch!(self.log(filter))
    }

    async fn log_tally(&self, run: i64, schools: &[String]) -> Result<Vec<(String, String, i64)>, StoreError> {
        dispatch!(self.log_tally(run, schools))
    }

    async fn metrics(&self) -> Result<StateMetrics, StoreError> {
        dispatch!(self.metrics())
    }

    async fn add_token(&self, token: &TokenRow) -> Result<bool, StoreError> {
        dispatch!(self.add_token(token))
    }

    async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        dispatch!(self.tokens())
    }

    async fn search_persons(
        &self,
        text: &str,
        schools: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<PersonHit>, StoreError> {
        dispatch!(self.search_persons(text, schools, limit))
    }

    async fn add_session(&self, session: &SessionRow) -> Result<(), StoreError> {
        dispatch!(self.add_session(session))
    }

    async fn session(&self, id: &str, now: DateTime<Utc>) -> Result<Option<SessionRow>, StoreError> {
        dispatch!(self.session(id, now))
    }

    async fn remove_session(&self, id: &str) -> Result<(), StoreError> {
        dispatch!(self.remove_session(id))
    }

    async fn remove_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        dispatch!(self.remove_expired_sessions(now))
    }

    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        dispatch!(self.revoke_token(name, now))
    }

    async fn save_plan(&self, plan_id: &str, body: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self.save_plan(plan_id, body, now))
    }

    async fn load_plan(&self, plan_id: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self.load_plan(plan_id))
    }

    async fn source_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        dispatch!(self.source_counts())
    }

    async fn record_source_counts(
        &self,
        run: i64,
        counts: &BTreeMap<String, usize>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self.record_source_counts(run, counts, now))
    }

    async fn source_reads(&self) -> Result<BTreeMap<String, SourceRead>, StoreError> {
        dispatch!(self.source_reads())
    }

    async fn record_source_reads(
        &self,
        run: i64,
        reads: &BTreeMap<String, (SourceRead, bool)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self.record_source_reads(run, reads, now))
    }

    async fn stored_records(&self, source: &str) -> Result<Vec<StoredSourceRecord>, StoreError> {
        dispatch!(self.stored_records(source))
    }

    async fn stored_records_where(
        &self,
        source: &str,
        query: &connector_api::PriorQuery,
    ) -> Result<Vec<StoredSourceRecord>, StoreError> {
        dispatch!(self.stored_records_where(source, query))
    }

    async fn stored_units(&self, source: &str) -> Result<BTreeMap<String, BTreeSet<Option<String>>>, StoreError> {
        dispatch!(self.stored_units(source))
    }

    async fn stored_presence(&self, source: &str, ids: &[String]) -> Result<(usize, BTreeSet<String>), StoreError> {
        dispatch!(self.stored_presence(source, ids))
    }

    async fn stored_unwhole(&self, source: &str) -> Result<bool, StoreError> {
        dispatch!(self.stored_unwhole(source))
    }

    async fn record_digests_of(&self, keys: &[(String, String)]) -> Result<Vec<RecordDigest>, StoreError> {
        dispatch!(self.record_digests_of(keys))
    }

    async fn mark_gone(&self, rows: &[(String, String)], now: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self.mark_gone(rows, now))
    }

    async fn held_keys(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        dispatch!(self.held_keys())
    }

    async fn record_digests(&self) -> Result<Vec<RecordDigest>, StoreError> {
        dispatch!(self.record_digests())
    }

    async fn snapshot_of(
        &self,
        keys: &[(String, String)],
        civic: &[String],
        email: &[String],
        eppn: &[String],
    ) -> Result<Snapshot, StoreError> {
        dispatch!(self.snapshot_of(keys, civic, email, eppn))
    }

    async fn records_data(
        &self,
        keys: &[(String, String)],
    ) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        dispatch!(self.records_data(keys))
    }

    async fn owned_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        dispatch!(self.owned_counts())
    }

    async fn applied_since(&self, run: i64) -> Result<Vec<(String, String, usize)>, StoreError> {
        dispatch!(self.applied_since(run))
    }

    async fn hold_records(
        &self,
        run: i64,
        sources: &[String],
        rows: &[HeldRow],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self.hold_records(run, sources, rows, now))
    }

    async fn source_columns(&self) -> Result<BTreeMap<String, BTreeSet<String>>, StoreError> {
        dispatch!(self.source_columns())
    }

    async fn record_source_columns(
        &self,
        run: i64,
        columns: &BTreeMap<String, BTreeSet<String>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self.record_source_columns(run, columns, now))
    }
}
