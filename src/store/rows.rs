//! The values the state store speaks in: rows to write, rows read back for display, and how an
//! operation's outcome changes ownership. Shared by every backend.
//!
//! Display rows (`StoredRecordView`, `CivicHistoryRow`) carry masked civic numbers; a backend
//! builds them with [`describe_stored`] and `mask_stored`, never with the stored value.

use crate::core::model::{
    AccountStatus, IdMap, IdentityId, NameFingerprint, OwnedAccount, PrimaryTie, Snapshot, StoredRecord,
};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// One group ownership row to write.
#[derive(Debug, Clone)]
pub struct GroupRow {
    pub target: String,
    pub name: String,
    /// The key the target gave the group; `None` before its create's result is known.
    pub key: Option<String>,
    pub anchor: Option<String>,
    pub school: String,
    /// The create is about to be sent.
    pub pending: bool,
}

/// An operator's decision that an account made before enid is not a person's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRefusal {
    pub target: String,
    pub identity: IdentityId,
    /// The account's key when decided.
    pub key: String,
    /// Its anchor, which a rename or a move by hand keeps (the key does not).
    pub anchor: Option<String>,
}

/// A first password as the state keeps it until it is handed out: sealed (see
/// `engine::passwords`), the store never sees it in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedPassword {
    pub target: String,
    pub identity_id: IdentityId,
    /// The identity's username now (read only; ignored when written).
    pub username: String,
    /// The person's school units, comma-separated, for the hand-out by school.
    pub school: String,
    /// Nonce and ciphertext.
    pub sealed: Vec<u8>,
    /// When it was set (RFC 3339 as read; ignored when written, which uses `now`).
    pub created_at: String,
}

/// Which kept first passwords to read.
#[derive(Debug, Clone, Default)]
pub struct PasswordFilter {
    /// One school unit (matched against each of a person's units); all when `None`.
    pub school: Option<String>,
    /// One target; all when `None`.
    pub target: Option<String>,
    /// Only rows no hand-out holds now: never claimed, given back, or claimed before this time
    /// (a claim never confirmed, which has lapsed). Every row when `None`.
    pub claims_lapsed_before: Option<DateTime<Utc>>,
    /// Only the rows this hand-out's claim holds (to show them again); every row when `None`.
    pub claim: Option<String>,
}

/// One source record as it is written to the state database.
#[derive(Debug, Clone)]
pub struct RecordRow {
    pub source: String,
    pub person_id: String,
    pub identity_id: IdentityId,
    pub civic_no: Option<String>,
    pub given_name: String,
    pub family_name: String,
    pub role: String,
    pub school_unit: Option<String>,
    pub groups: String,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub email: Option<String>,
    pub eppn: Option<String>,
    pub protected: bool,
    pub content_hash: String,
    /// The whole record as JSON, without its civic number.
    pub data: String,
    /// The ties and groups with a source id that an incremental read looks the record up by.
    pub refs: Vec<RecordRef>,
}

/// A tie or group with a source id of a stored record ([`connector_api::PriorQuery`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    /// `tie` or `group`.
    pub kind: &'static str,
    /// The source's id of the tie or group.
    pub id: String,
    /// A tie's school unit code and name.
    pub unit: Option<String>,
    pub unit_name: Option<String>,
}

impl RecordRef {
    /// The refs of a record: one per tie and per group with a source id.
    pub fn of(r: &connector_api::SourceRecord) -> Vec<RecordRef> {
        let ties = r.affiliations.iter().filter_map(|a| {
            Some(RecordRef {
                kind: "tie",
                id: a.source_id()?.to_string(),
                unit: a.school_unit.as_ref().map(|s| s.to_string()),
                unit_name: a.school_unit_name().map(str::to_string),
            })
        });
        let groups = r
            .groups
            .iter()
            .filter_map(|g| Some(RecordRef { kind: "group", id: g.source_id.clone()?, unit: None, unit_name: None }));
        ties.chain(groups).collect()
    }
}

/// What a source's last applied read left (`source_reads`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceRead {
    /// Where the next incremental read starts, in the source's own form; `None` for a source
    /// that reads in full only.
    pub watermark: Option<String>,
    /// When the source was last read in full in an applied run.
    pub full_read_at: Option<DateTime<Utc>>,
    /// What the source read (`Source::scope`): a change is a config change, never departures.
    pub scope: String,
}

/// A stored record as an incremental run compares it: its key, identity, content hash, and
/// whether it is marked gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordDigest {
    pub source: String,
    pub person_id: String,
    pub identity_id: String,
    pub content_hash: String,
    pub gone: bool,
}

/// A stored record as an incremental read's merge needs it: its key, its full civic number,
/// and the whole record as JSON (`None` for a record stored before records were kept whole).
#[derive(Debug, Clone)]
pub struct StoredSourceRecord {
    pub person_id: String,
    pub civic_no: Option<String>,
    pub data: Option<String>,
}

/// An approval of one operation of a held run (`fingerprint`, with its target, identity and
/// action for the listing), or a guard a run may go past (`accept`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApprovalRow {
    /// Its id in the state (0 before it is recorded).
    pub id: i64,
    /// The run whose plan was approved.
    pub run_id: i64,
    pub fingerprint: Option<String>,
    pub target: Option<String>,
    pub identity: Option<String>,
    pub action: Option<String>,
    /// A guard accepted: `shrink`, `missing`, `schema_change`, `scope_change`.
    pub accept: Option<String>,
    /// The token's name, or the local user for the CLI.
    pub approved_by: String,
    pub approved_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A record read in no identity (held in a conflict, waiting, or of a kept identity), as the
/// state keeps it for the next incremental read. Full civic number: only in the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRow {
    pub source: String,
    pub person_id: String,
    pub civic_no: Option<String>,
    /// The whole record as JSON, without its civic number.
    pub data: String,
    /// What tells a changed record from the one held (see `RecordRow::content_hash`).
    pub content_hash: String,
}

/// A record as shown by `enid explain`, civic number masked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredRecordView {
    pub source: String,
    pub person_id: String,
    pub civic_no: Option<String>,
    pub given_name: String,
    pub family_name: String,
    pub role: String,
    pub school_unit: Option<String>,
    pub groups: Vec<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub first_seen: String,
    pub updated_at: String,
    /// The record marks protected personal data (not shown; it decides what is redacted).
    #[serde(skip)]
    pub protected: bool,
}

/// One row of the operation log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogRow {
    pub id: i64,
    pub run_id: i64,
    pub at: String,
    pub identity_id: Option<String>,
    pub username: Option<String>,
    pub target: Option<String>,
    pub school: Option<String>,
    pub action: String,
    pub detail: Option<String>,
    pub result: String,
    pub error: Option<String>,
}

/// What one operation did, for the log and the ownership table.
#[derive(Debug, Clone)]
pub struct OpRecord {
    pub target: String,
    pub identity_id: IdentityId,
    pub username: String,
    pub school: String,
    pub action: String,
    pub detail: String,
    /// A group operation: it changes no account ownership row.
    pub group: bool,
    pub result: OpResult,
}

/// How an operation ended.
#[derive(Debug, Clone)]
pub enum OpResult {
    /// Done, with what it means for the ownership row.
    Ok(Ownership),
    Failed(String),
    /// Not sent, because an earlier failure stopped the target.
    Skipped(String),
}

/// What a successful operation means for the account's ownership row.
#[derive(Debug, Clone)]
pub enum Ownership {
    /// The account is at `key` with this status (the anchor is kept when `None`).
    Set { key: String, anchor: Option<String>, status: AccountStatus },
    /// The account moved to `key`; its status stays (a rename).
    Moved { key: String },
    /// The account is gone.
    Removed,
    /// Nothing to record (an attribute update, a group operation).
    Unchanged,
}

/// Filters for the sync log: each one given must hold.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub run: Option<i64>,
    pub identity: Option<String>,
    /// One school unit: a whole entry of the row's comma-separated list.
    pub school: Option<String>,
    /// Only rows of these school units (a school admin's); `None`: every row.
    pub schools: Option<Vec<String>>,
    pub target: Option<String>,
    pub action: Option<String>,
    pub result: Option<String>,
    /// A cursor: only rows older than this row id (the next page of a newest-first listing).
    pub before: Option<i64>,
    /// At most this many rows, the newest; 0 or less: all.
    pub limit: i64,
}

/// One run, for `enid log` headers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub id: i64,
    pub command: String,
    pub plan_id: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub message: Option<String>,
    /// The plan per action and what was sent, as JSON (`None` for a run from before); shown
    /// read (`engine::RunView`), never as a string.
    #[serde(skip_serializing)]
    pub counts: Option<String>,
}

/// One civic-number change, masked, for `enid explain`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CivicHistoryRow {
    pub record: String,
    pub old: Option<String>,
    pub new: Option<String>,
    pub changed_at: String,
}

/// A stored civic number as shown: masked, with its kind.
pub fn describe_stored(c: &str) -> String {
    let kind = if c.len() == 12 && c[8..].bytes().any(|b| b.is_ascii_alphabetic()) {
        "temporary number"
    } else if c.len() >= 8 && c[6..8].parse::<u32>().is_ok_and(|d| d > 60) {
        "samordningsnummer"
    } else {
        "personnummer"
    };
    format!("{} ({kind})", mask_stored(c))
}

/// Masks a normalised civic number read from the database.
pub(super) fn mask_stored(c: &str) -> String {
    let head: String = c.chars().take(8).collect();
    format!("{head}-****")
}

// What a backend reads, column by column, and how it becomes what the engine and the CLI see.
// The conversions live here so that every backend masks alike.

/// An ownership row as read: (target, identity_id, key, anchor, status, disabled_at).
pub(super) type AccountRowIn = (String, String, Option<String>, Option<String>, String, Option<String>);

/// An ownership row as the engine sees it. An unknown status reads as `pending` (the account
/// is looked for before anything is done to it); `disabled_at` keeps its date.
pub(super) fn owned_account((target, identity_id, key, anchor, status, disabled_at): AccountRowIn) -> OwnedAccount {
    owned_account_of(target, identity_id.into(), key, anchor, &status, disabled_at)
}

fn owned_account_of(
    target: String,
    identity_id: IdentityId,
    key: Option<String>,
    anchor: Option<String>,
    status: &str,
    disabled_at: Option<String>,
) -> OwnedAccount {
    let status = AccountStatus::parse(status).unwrap_or(AccountStatus::Pending);
    let mut account = OwnedAccount::new(&target, identity_id, key.as_deref(), anchor.as_deref(), status);
    account.disabled_at = disabled_at.and_then(|d| d.get(..10).and_then(|d| d.parse().ok()));
    account
}

/// A source record as read for display: (source, person_id, civic_no, given_name, family_name,
/// role, school_unit, groups, start_date, end_date, first_seen, updated_at, protected).
pub(super) type RecordViewRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    bool,
);

impl StoredRecordView {
    /// The view of a stored record: the civic number masked, and a key shaped like one too.
    pub(super) fn from_row(r: RecordViewRow) -> StoredRecordView {
        StoredRecordView {
            source: r.0,
            person_id: connector_api::civic::mask_if_civic(&r.1).into_owned(),
            civic_no: r.2.map(|c| mask_stored(&c)),
            given_name: r.3,
            family_name: r.4,
            role: r.5,
            school_unit: r.6,
            groups: r.7.split('|').filter(|g| !g.is_empty()).map(String::from).collect(),
            start_date: r.8,
            end_date: r.9,
            first_seen: r.10,
            updated_at: r.11,
            protected: r.12,
        }
    }
}

/// A civic-number change as read: (source, person_id, old, new, changed_at).
pub(super) type CivicHistoryRowIn = (String, String, Option<String>, Option<String>, String);

impl CivicHistoryRow {
    /// The change as shown: the record labelled and both numbers masked, with their kinds.
    pub(super) fn from_row((source, person_id, old, new, changed_at): CivicHistoryRowIn) -> CivicHistoryRow {
        CivicHistoryRow {
            record: crate::core::identity::record_label(&source, &person_id),
            old: old.map(|c| describe_stored(&c)),
            new: new.map(|c| describe_stored(&c)),
            changed_at,
        }
    }
}

/// A run as read: (id, command, plan_id, started_at, finished_at, status, message).
pub(super) type RunRowIn =
    (i64, String, Option<String>, String, Option<String>, String, Option<String>, Option<String>);

impl RunRow {
    pub(super) fn from_row(
        (id, command, plan_id, started_at, finished_at, status, message, counts): RunRowIn,
    ) -> RunRow {
        RunRow { id, command, plan_id, started_at, finished_at, status, message, counts }
    }
}

/// A log row as read, in [`LogRow`]'s field order.
pub(super) type LogRowIn = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    String,
    Option<String>,
);

impl LogRow {
    pub(super) fn from_row(r: LogRowIn) -> LogRow {
        let (id, run_id, at, identity_id, username, target, school, action, detail, result, error) = r;
        LogRow { id, run_id, at, identity_id, username, target, school, action, detail, result, error }
    }
}

/// What `/metrics` reads from the state: counts over every run recorded, however it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateMetrics {
    /// Runs by status (`ok`, `failed`, `held`, ...).
    pub runs: Vec<(String, i64)>,
    /// Logged operations by (target, action, result).
    pub operations: Vec<(String, String, String, i64)>,
    /// Per source, when its last applied read was recorded (RFC 3339).
    pub source_success: Vec<(String, String)>,
    /// Per target, when the last run that ended `ok` and sent it an operation finished.
    pub target_success: Vec<(String, String)>,
}

/// An API token as the state keeps it: its name, what it may see, and the SHA-256 of the token
/// (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// The operator's name for it, unique; decisions made with it record this name.
    pub name: String,
    /// Lowercase hex SHA-256 of the token.
    pub hash: String,
    /// `admin` or `school_admin`.
    pub role: String,
    /// A school admin's school units (empty for an admin).
    pub schools: Vec<String>,
    pub created_at: String,
    /// When it was revoked; a revoked token opens nothing.
    pub revoked_at: Option<String>,
}

/// A session of the web page, as the state keeps it (never the cookie's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Lowercase hex SHA-256 of the cookie's value.
    pub id: String,
    /// The API token signed in with: the session is its (a revoked token ends it).
    pub token_name: String,
    /// What every form of the session carries back.
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A person a name search found (never a protected person).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PersonHit {
    pub identity_id: String,
    pub username: Option<String>,
    pub given_name: String,
    pub family_name: String,
    pub school_unit: Option<String>,
}

/// An identity as the snapshot reads it: id, username, primary school unit and its tie.
pub(super) type IdentityRow = (String, Option<String>, Option<String>, Option<String>);

/// A stored record as the snapshot reads it: (source, person_id, identity_id, civic_no,
/// content_hash, school_unit, email, eppn, role, protected, given_name, family_name, gone).
pub(super) type StoredRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    bool,
    String,
    String,
    bool,
);

/// Where the rows of a query go as each is read ([`EachRow`], and each backend's `fetch_each`),
/// so that a large read is never held as rows beside what it becomes.
pub(super) trait RowSink<T> {
    /// How many rows are coming, when the backend knows (SQLite counts them in the statement
    /// or the transaction that reads them): room for them all at once, instead of growing by
    /// doubling.
    fn reserve(&mut self, _rows: usize) {}
    fn add(&mut self, row: T);
}

/// The stored records of a snapshot, taken in as each row is read: a row (a dozen strings,
/// the names among them) becomes its compact [`StoredRecord`] at once, so a state of a million
/// records is never held as rows.
#[derive(Debug)]
pub(super) struct RecordsIn(Snapshot, Arc<IdPool>, usize);

impl RowSink<StoredRow> for RecordsIn {
    fn reserve(&mut self, rows: usize) {
        self.2 = rows;
    }

    fn add(
        &mut self,
        (
            source,
            person_id,
            identity_id,
            civic_no,
            content_hash,
            school_unit,
            email,
            eppn,
            role,
            protected,
            given,
            family,
            gone,
        ): StoredRow,
    ) {
        // The names themselves are not kept in the snapshot: their fingerprint is enough.
        let names = Some(NameFingerprint::of(&given, &family));
        let mut rec = StoredRecord::new(self.1.id(identity_id)).with_keys(email.as_deref(), eppn.as_deref());
        rec.civic_no = civic_no.map(Into::into);
        rec.content_hash = StoredRecord::content_hash_of(&content_hash);
        rec.school_unit = school_unit.map(Into::into);
        rec.staff = role == "staff";
        rec.protected = protected;
        rec.names = names;
        rec.gone = gone;
        self.0.insert_record_sized(source, person_id, rec, self.2);
    }
}

/// The identities of a snapshot and their primary school units, taken in row by row.
#[derive(Debug)]
pub(super) struct IdentitiesIn {
    identities: IdMap<Option<connector_api::value::Str>>,
    /// By the identity's place in `identities`.
    primaries: Vec<Option<PrimaryTie>>,
    ids: Arc<IdPool>,
}

impl RowSink<IdentityRow> for IdentitiesIn {
    fn reserve(&mut self, rows: usize) {
        // Exact: an `IndexMap`'s `reserve` grows its entries to what its index could hold (1.8
        // million slots of 40 and 56 bytes for a million identities).
        self.identities.reserve_exact(rows);
        self.primaries.reserve_exact(rows);
    }

    fn add(&mut self, (id, username, primary, tie): IdentityRow) {
        let id = self.ids.id(id);
        let primary = primary.map(|school_unit| PrimaryTie::new(&school_unit, tie.as_deref()));
        let (at, _) = self.identities.insert_full(id, username.map(Into::into));
        match self.primaries.get_mut(at) {
            Some(held) => *held = primary,
            None => self.primaries.push(primary),
        }
    }
}

/// The owned accounts of a snapshot, taken in row by row.
#[derive(Debug)]
pub(super) struct AccountsIn(Vec<OwnedAccount>, Arc<IdPool>);

impl RowSink<AccountRowIn> for AccountsIn {
    fn reserve(&mut self, rows: usize) {
        self.0.reserve_exact(rows);
    }

    fn add(&mut self, (target, identity_id, key, anchor, status, disabled_at): AccountRowIn) {
        self.0.push(owned_account_of(target, self.1.id(identity_id), key, anchor, &status, disabled_at));
    }
}

/// A visitor of a JSON array of rows that hands each row to `into` as it is decoded.
pub(super) struct EachRow<'a, S, T> {
    pub into: &'a mut S,
    pub row: std::marker::PhantomData<fn() -> T>,
}

impl<'de, S: RowSink<T>, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for EachRow<'_, S, T> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(row) = seq.next_element::<T>()? {
            self.into.add(row);
        }
        Ok(())
    }
}

/// The identity ids of a snapshot being read, each made once: the identities, their records
/// and their accounts, read side by side, share one string per id; accounts read after the
/// rest take the ids of the snapshot's identities (`known`).
#[derive(Debug, Default)]
pub(super) struct IdPool(
    std::sync::Mutex<rustc_hash::FxHashSet<IdentityId>>,
    Option<Arc<IdMap<Option<connector_api::value::Str>>>>,
);

impl IdPool {
    fn id(&self, id: String) -> IdentityId {
        if let Some((id, _)) = self.1.as_ref().and_then(|known| known.get_key_value(id.as_str())) {
            return id.clone();
        }
        let mut known = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(id) = known.get(id.as_str()) {
            return id.clone();
        }
        let id = IdentityId::from(id);
        known.insert(id.clone());
        id
    }
}

/// Where a snapshot's identities, records and accounts go as they are read, sharing their ids.
pub(super) fn snapshot_sinks() -> (IdentitiesIn, RecordsIn, AccountsIn) {
    let ids = Arc::new(IdPool::default());
    (
        IdentitiesIn { identities: Default::default(), primaries: Default::default(), ids: ids.clone() },
        RecordsIn(Snapshot::default(), ids.clone(), 0),
        AccountsIn(Vec::new(), ids),
    )
}

/// Where ownership rows read after a snapshot's identities go, sharing their ids.
pub(super) fn accounts_sink(identities: Arc<IdMap<Option<connector_api::value::Str>>>) -> AccountsIn {
    AccountsIn(Vec::new(), Arc::new(IdPool(Default::default(), Some(identities))))
}

impl AccountsIn {
    /// The accounts read, in a vector of exactly their number.
    pub(super) fn into_accounts(self) -> Vec<OwnedAccount> {
        let mut accounts = self.0;
        accounts.shrink_to_fit();
        accounts
    }
}

/// A snapshot from the rows the queries above and every backend's `snapshot` read.
pub(super) fn build_snapshot(identities: IdentitiesIn, records: RecordsIn, accounts: AccountsIn) -> Snapshot {
    let mut snap = records.0;
    snap.fit_records();
    snap.identities = Arc::new(identities.identities);
    let mut primaries = identities.primaries;
    primaries.shrink_to_fit();
    snap.set_primaries(primaries);
    snap.accounts = accounts.0;
    // Exactly as many as there are (a backend that could not count them grew the vector by
    // doubling).
    snap.accounts.shrink_to_fit();
    snap
}

/// A kept first password as read: (target, identity, username, school, sealed, created_at).
pub(super) type PasswordRowIn = (String, String, String, String, Vec<u8>, String);

/// A kept first password as the hand-out sees it.
pub(super) fn sealed_password(
    (target, identity_id, username, school, sealed, created_at): PasswordRowIn,
) -> SealedPassword {
    SealedPassword { target, identity_id: identity_id.into(), username, school, sealed, created_at }
}

/// A group ownership row as read: (target, name, key, anchor, status, school).
pub(super) type GroupRowIn = (String, String, Option<String>, Option<String>, String, String);

/// A group ownership row as the engine sees it: `pending` until the target confirmed it.
pub(super) fn owned_group((target, name, key, anchor, status, school): GroupRowIn) -> crate::core::plan::OwnedGroup {
    crate::core::plan::OwnedGroup { target, name, key, anchor, school, pending: status == "pending" }
}

/// A person a name search found, as read: (identity, username, given, family, school unit).
pub(super) type PersonHitIn = (String, Option<String>, String, String, Option<String>);

pub(super) fn person_hit((identity_id, username, given_name, family_name, school_unit): PersonHitIn) -> PersonHit {
    PersonHit { identity_id, username, given_name, family_name, school_unit }
}

/// An identity id is bound and read as the text it is, in either backend.
macro_rules! id_as_text {
    ($db:ty) => {
        impl sqlx::Type<$db> for IdentityId {
            fn type_info() -> <$db as sqlx::Database>::TypeInfo {
                <str as sqlx::Type<$db>>::type_info()
            }
            fn compatible(ty: &<$db as sqlx::Database>::TypeInfo) -> bool {
                <str as sqlx::Type<$db>>::compatible(ty)
            }
        }

        impl sqlx::Encode<'_, $db> for IdentityId {
            fn encode_by_ref(
                &self,
                buf: &mut <$db as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'_, $db>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, $db> for IdentityId {
            fn decode(value: <$db as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                <&str as sqlx::Decode<'r, $db>>::decode(value).map(IdentityId::from)
            }
        }
    };
}
id_as_text!(sqlx::Sqlite);
id_as_text!(sqlx::Postgres);
