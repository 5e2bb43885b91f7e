//! The values the functional core works on: records with their source, identities, the state
//! snapshot, and owned accounts. No IO happens here.

use chrono::{Datelike, NaiveDate};
use connector_api::{Affiliation, AffiliationKind, Role, SourceRecord};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeSet;

pub use super::id::IdentityId;

/// Whether `s` has the form of an enid identity id: a UUID in its hyphenated, lowercase form
/// (36 characters, `8-4-4-4-12` hex digits). Other values in the owner attribute (HR systems
/// often fill `employeeNumber` themselves) are not enid's and prove nothing.
pub fn is_enid_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => matches!(c, b'0'..=b'9' | b'a'..=b'f'),
        })
}

/// A record together with the id of the source that delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    /// The source's id, in place (a source's name is a config key of a few bytes): every record
    /// of a run has one, and a `String` was an allocation each.
    pub source: connector_api::value::Str,
    /// Boxed: a run moves each record from the source's read into its identity, and a pointer
    /// moves without a second copy of the record (a `SourceRecord` is some 270 bytes in place).
    pub record: Box<SourceRecord>,
}

impl Sourced {
    /// `source/person_id`, for messages; a key that looks like a civic number is masked.
    pub fn label(&self) -> String {
        format!("{}/{}", self.source, connector_api::civic::mask_if_civic(&self.record.person_id))
    }

    /// A plain record (Kim Lind, no ties) of `source` keyed `person_id`, for tests.
    #[cfg(test)]
    pub fn plain(source: &str, person_id: &str) -> Sourced {
        Sourced {
            source: source.into(),
            record: Box::new(SourceRecord {
                person_id: person_id.into(),
                given_name: "Kim".into(),
                family_name: "Lind".into(),
                civic_no: None,
                affiliations: Default::default(),
                groups: Default::default(),
                location: Default::default(),
                extras: connector_api::Extras::new(None, None, Box::default()),
                protection: None,
                deceased: false,
            }),
        }
    }
}

/// An identity's records: one in place, more in a vector.
pub type Records = connector_api::source::SmallVec<[Sourced; 1]>;

/// One person as enid sees them now, from every record that belongs to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: IdentityId,
    /// True when this run creates the identity.
    pub is_new: bool,
    /// The person's records in this run, in source order. Empty for a person no source has
    /// any more. The one record most persons have is held in place (a vector of one was an
    /// allocation more for each of a million identities).
    pub records: Records,
    /// The primary school unit recorded at the last applied run: kept while an affiliation
    /// there is in effect, so a person's accounts move only when that tie ends.
    pub primary: Option<PrimaryTie>,
}

/// The primary school unit as recorded: its code, and the source's id of the tie (an
/// enrolment's, a duty's, a OneRoster org's), so that a school unit whose code changes is still
/// known as the same tie. Every identity of the state has one, in the snapshot and again in the
/// run: both strings are one `Str` (in place when short, as a school unit's code alone is) and
/// where the code ends, 32 bytes where two `Str`s took 48.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PrimaryTie {
    /// The code, then the tie's id if there is one.
    text: connector_api::value::Str,
    /// Where the code ends; `NO_TIE_ID` when there is no tie id.
    split: usize,
}

const NO_TIE_ID: usize = usize::MAX;

impl PrimaryTie {
    pub fn new(school_unit: &str, source_id: Option<&str>) -> PrimaryTie {
        match source_id {
            None => PrimaryTie { text: school_unit.into(), split: NO_TIE_ID },
            Some(id) => {
                let mut text = connector_api::value::Str::with_capacity(school_unit.len() + id.len());
                text.push_str(school_unit);
                text.push_str(id);
                PrimaryTie { text, split: school_unit.len() }
            }
        }
    }

    /// The tie `a` as it is recorded; `None` for a tie without a school unit.
    pub fn of(a: &Affiliation) -> Option<PrimaryTie> {
        Some(PrimaryTie::new(a.school_unit.as_deref()?, a.source_id()))
    }

    /// The school unit's code.
    pub fn school_unit(&self) -> &str {
        if self.split == NO_TIE_ID { &self.text } else { &self.text[..self.split] }
    }

    /// The source's id of the tie.
    pub fn source_id(&self) -> Option<&str> {
        (self.split != NO_TIE_ID).then(|| &self.text[self.split..])
    }
}

impl std::fmt::Debug for PrimaryTie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimaryTie")
            .field("school_unit", &self.school_unit())
            .field("source_id", &self.source_id())
            .finish()
    }
}

/// The attributes derived from an identity's records, as templates see them. Borrows from the
/// records: a plan builds one per person and target, so it must not copy every name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub given_name: &'a str,
    pub family_name: &'a str,
    pub roles: Vec<&'static str>,
    /// The school units of the affiliations in effect ([`in_effect`]), sorted.
    pub school_units: Vec<&'a str>,
    /// The primary affiliation's school unit code ([`primary_school`]): what a target's
    /// per-school settings (an OU, a department) use.
    pub school_unit: Option<&'a str>,
    /// The primary affiliation's school unit name; its code where the source has no name.
    pub school_unit_name: Option<&'a str>,
    /// The names of the groups the person is in today, sorted.
    pub groups: Vec<&'a str>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// The person has protected personal data in some source.
    pub protected: bool,
    /// A source says the person has died.
    pub deceased: bool,
}

/// The lifecycle rules the core applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifecycle {
    /// Days a disabled account waits before deletion; `None`: never deleted.
    pub student_grace_days: Option<u32>,
    pub staff_grace_days: Option<u32>,
    /// Accounts exist (disabled) this many days before the start date.
    pub create_days_before_start: u32,
    /// (month, day): pupils past their end date stay active until this day of their school year.
    pub keep_students_until: Option<(u32, u32)>,
}

impl Lifecycle {
    /// The grace period of a person with these roles: the longer one wins.
    pub fn grace_days(&self, staff: bool) -> Option<u32> {
        if staff { self.staff_grace_days } else { self.student_grace_days }
    }

    /// The last day a pupil who ended on `end` keeps a working account.
    pub fn kept_until(&self, end: NaiveDate) -> Option<NaiveDate> {
        let (m, d) = self.keep_students_until?;
        let same_year = NaiveDate::from_ymd_opt(end.year(), m, d)?;
        if same_year >= end { Some(same_year) } else { NaiveDate::from_ymd_opt(end.year() + 1, m, d) }
    }
}

/// Which sources decide school units, groups and dates (names follow the record order, which
/// the engine sets from the name authority). An empty list: every record counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authority {
    pub school_unit: Vec<String>,
    pub groups: Vec<String>,
    pub dates: Vec<String>,
}

impl Identity {
    /// Whether any of the person's records marks protected personal data.
    pub fn is_protected(&self) -> bool {
        self.records.iter().any(|r| r.record.protection.is_some())
    }

    /// The records that decide an attribute: those of the first source in `sources` that has
    /// this person, or all records when none does (or nothing is listed).
    pub fn authoritative<'a>(&'a self, sources: &[String]) -> Vec<&'a Sourced> {
        for s in sources {
            let recs: Vec<&Sourced> = self.records.iter().filter(|r| r.source == s).collect();
            if !recs.is_empty() {
                return recs;
            }
        }
        self.records.iter().collect()
    }

    /// The person this identity describes on `today`, taking names from the first record
    /// (sources in configuration order); roles from the affiliations in effect of every record;
    /// school units, groups and dates from the authoritative records; the primary school unit
    /// by [`primary_school`].
    pub fn person<'a>(&'a self, username: &'a str, authority: &Authority, today: NaiveDate) -> Option<Person<'a>> {
        let first = &self.records.first()?.record;
        if let ([only], [a]) = (self.records.as_slice(), first.affiliations.as_slice()) {
            // The common case, without sets: one record with one tie.
            let r = &only.record;
            return Some(Person {
                id: &self.id,
                username,
                given_name: &r.given_name,
                family_name: &r.family_name,
                roles: vec![a.role.as_str()],
                school_units: a.school_unit.as_deref().into_iter().collect(),
                school_unit: a.school_unit.as_deref(),
                school_unit_name: a.school_unit_name().or(a.school_unit.as_deref()),
                groups: r.groups.iter().filter(|g| g.holds_on(today)).map(|g| g.name.as_str()).collect(),
                start_date: a.start_date,
                end_date: a.end_date,
                protected: r.protection.is_some(),
                deceased: r.deceased,
            });
        }
        let all: Vec<&Affiliation> = self.records.iter().flat_map(|s| s.record.ties()).collect();
        let roles: BTreeSet<Role> = in_effect(&all, today).iter().map(|a| a.role).collect();
        let school_records = self.authoritative(&authority.school_unit);
        let school_affs: Vec<&Affiliation> = school_records.iter().flat_map(|s| s.record.ties()).collect();
        let current = in_effect(&school_affs, today);
        let schools: BTreeSet<&str> = current.iter().filter_map(|a| a.school_unit.as_deref()).collect();
        let primary = primary_school(&current, self.primary.as_ref());
        let groups: BTreeSet<&str> = self
            .authoritative(&authority.groups)
            .iter()
            .flat_map(|s| {
                let affs: Vec<&Affiliation> = s.record.ties().collect();
                let current = in_effect(&affs, today);
                s.record
                    .groups
                    .iter()
                    .filter(move |g| g.holds_on(today) && !away_from(g.school_unit.as_deref(), &affs, &current))
                    .map(|g| g.name.as_str())
            })
            .collect();
        let mut start: Option<NaiveDate> = None;
        let mut end: Option<Option<NaiveDate>> = None;
        for s in self.authoritative(&authority.dates) {
            let r = &s.record;
            start = match (start, r.start_date()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // The latest end date wins; a record without one keeps the person indefinitely.
            end = Some(match (end, r.end_date()) {
                (None, e) => e,
                (Some(None), _) | (_, None) => None,
                (Some(Some(a)), Some(b)) => Some(a.max(b)),
            });
        }
        Some(Person {
            id: &self.id,
            username,
            given_name: &first.given_name,
            family_name: &first.family_name,
            roles: roles.into_iter().map(|r| r.as_str()).collect(),
            school_units: schools.into_iter().collect(),
            school_unit: primary.and_then(|a| a.school_unit.as_deref()),
            school_unit_name: primary.and_then(|a| a.school_unit_name().or(a.school_unit.as_deref())),
            groups: groups.into_iter().collect(),
            start_date: start,
            end_date: end.flatten(),
            protected: self.records.iter().any(|r| r.record.protection.is_some()),
            deceased: self.records.iter().any(|r| r.record.deceased),
        })
    }
}

impl Identity {
    /// The primary school unit on `today` ([`primary_school`]), as [`Identity::person`] gives it.
    pub fn primary_school_now(&self, authority: &Authority, today: NaiveDate) -> Option<PrimaryTie> {
        let affs: Vec<&Affiliation> =
            self.authoritative(&authority.school_unit).iter().flat_map(|s| s.record.ties()).collect();
        primary_school(&in_effect(&affs, today), self.primary.as_ref()).and_then(PrimaryTie::of)
    }
}

/// The affiliations that describe a person on `today`: those that hold today; when none does,
/// those that start soonest (a pupil who starts next term belongs to that school already);
/// when none starts later either, those that ended last (a leaver is shown where they were).
pub fn in_effect<'a>(affs: &[&'a Affiliation], today: NaiveDate) -> Vec<&'a Affiliation> {
    let now: Vec<&Affiliation> = affs.iter().copied().filter(|a| a.holds_on(today)).collect();
    if !now.is_empty() {
        return now;
    }
    let next = affs.iter().filter_map(|a| a.start_date.filter(|s| *s > today)).min();
    if let Some(next) = next {
        return affs.iter().copied().filter(|a| a.start_date == Some(next)).collect();
    }
    let last = affs.iter().filter_map(|a| a.end_date).max();
    affs.iter().copied().filter(|a| a.end_date == last).collect()
}

/// Whether a record ties the person to `school` but no tie there is in effect (it ended, or has
/// not begun): that school unit's groups are not the person's today, so a pupil who moved on a
/// date leaves the old school's classes then, and joins the new one's when that tie starts.
pub fn away_from(school: Option<&str>, affs: &[&Affiliation], current: &[&Affiliation]) -> bool {
    school.is_some()
        && affs.iter().any(|a| a.school_unit.as_deref() == school)
        && !current.iter().any(|a| a.school_unit.as_deref() == school)
}

/// The primary affiliation among those in effect, by a rule that never moves a person without
/// cause: the tie recorded as primary at the last applied run, while it is in effect (found by
/// the source's id of the tie, so a school unit whose code changed stays primary, else by the
/// school unit code, so an upgrade, a new second school or a new duty moves nobody); otherwise
/// an enrolment or duty before a placement (an after-school centre or preschool is never
/// primary while there is a school), then the tie that started first (the oldest), then the
/// school unit code in alphabetical order.
pub fn primary_school<'a>(in_effect: &[&'a Affiliation], stored: Option<&PrimaryTie>) -> Option<&'a Affiliation> {
    let with_unit = || in_effect.iter().copied().filter(|a| a.school_unit.is_some());
    let first = |same: &dyn Fn(&Affiliation) -> bool| {
        with_unit().filter(|a| same(a)).min_by_key(|a| (a.kind == AffiliationKind::Placement, a.start_date))
    };
    if let Some(stored) = stored {
        let by_tie = stored.source_id().and_then(|id| first(&|a| a.source_id() == Some(id)));
        if let Some(a) = by_tie.or_else(|| first(&|a| a.school_unit.as_deref() == Some(stored.school_unit()))) {
            return Some(a);
        }
    }
    with_unit()
        .min_by_key(|a| (a.kind == AffiliationKind::Placement, a.start_date, a.school_unit.as_deref()))
        .or_else(|| in_effect.first().copied())
}

impl<'a> Person<'a> {
    /// The person as the accounts of someone with protected personal data show them: the
    /// username in place of every name, so no template can write the real one.
    pub fn pseudonymised(self) -> Person<'a> {
        Person { given_name: self.username, family_name: self.username, ..self }
    }

    /// Whether the person should have working accounts on `today`: between their first start
    /// and last end, and not deceased.
    pub fn is_active(&self, today: NaiveDate) -> bool {
        !self.deceased && self.start_date.is_none_or(|s| s <= today) && self.end_date.is_none_or(|e| e >= today)
    }

    /// The schools shown in logs for this person, comma-separated.
    pub fn school_label(&self) -> String {
        self.school_units.join(",")
    }
}

/// Where an account enid created stands, as recorded in the state database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// The create was about to be sent; whether it arrived is unknown until observed.
    Pending,
    Active,
    Disabled,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Pending => "pending",
            AccountStatus::Active => "active",
            AccountStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(AccountStatus::Pending),
            "active" => Some(AccountStatus::Active),
            "disabled" => Some(AccountStatus::Disabled),
            _ => None,
        }
    }
}

/// An account enid created on a target: the proof of ownership.
///
/// The state holds one per account for the whole run (a million at the largest installations),
/// so its key and anchor are one string of exactly their bytes, read by slicing (72 bytes in
/// place and one allocation, where two `Option<String>`s made it 96 bytes and two).
#[derive(Clone, PartialEq, Eq)]
pub struct OwnedAccount {
    pub target: connector_api::value::Str,
    pub identity_id: IdentityId,
    /// The key and the anchor.
    ids: connector_api::Joined,
    pub status: AccountStatus,
    /// When enid disabled the account (deletion follows a grace period later).
    pub disabled_at: Option<NaiveDate>,
}

impl OwnedAccount {
    /// An ownership row, not disabled.
    pub fn new(
        target: &str,
        identity_id: IdentityId,
        key: Option<&str>,
        anchor: Option<&str>,
        status: AccountStatus,
    ) -> OwnedAccount {
        OwnedAccount {
            target: target.into(),
            identity_id,
            ids: connector_api::Joined::new([key, anchor, None]),
            status,
            disabled_at: None,
        }
    }

    /// The key the target last gave the account; `None` for a create whose result is not known
    /// yet (a pending row: the account is found by the owner marker it carries).
    pub fn key(&self) -> Option<&str> {
        self.ids.get(0)
    }

    /// The anchor the target last gave the account, if it has one.
    pub fn anchor(&self) -> Option<&str> {
        self.ids.get(1)
    }

    /// The same row with another key.
    pub fn set_key(&mut self, key: Option<&str>) {
        self.ids = connector_api::Joined::new([key, self.anchor(), None]);
    }

    /// The same row with another anchor.
    pub fn set_anchor(&mut self, anchor: Option<&str>) {
        self.ids = connector_api::Joined::new([self.key(), anchor, None]);
    }
}

impl std::fmt::Debug for OwnedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedAccount")
            .field("target", &self.target)
            .field("identity_id", &self.identity_id)
            .field("key", &self.key())
            .field("anchor", &self.anchor())
            .field("status", &self.status)
            .field("disabled_at", &self.disabled_at)
            .finish()
    }
}

/// A stored record link: which identity a (source, person_id) belongs to, with the civic
/// number last seen on it.
///
/// Every record of the state is held as one of these while a run plans (a million at the
/// largest installations), so it keeps what the run compares and nothing more, each text in
/// exactly its length: the content fingerprint as its number, the role as whether it was staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub identity_id: IdentityId,
    /// Normalised civic number, as held in the state database (in place: twelve characters).
    pub civic_no: Option<connector_api::value::Str>,
    /// The fingerprint of the record's content as last written, to skip rewriting unchanged
    /// records ([`StoredRecord::content_hash_of`]); `None` when the stored one is not of the
    /// current form (an older version's, or cleared): the record is written again.
    pub content_hash: Option<std::num::NonZeroU64>,
    /// The school unit last seen on the record, so a leaver's log rows still name a school.
    pub school_unit: Option<connector_api::value::Str>,
    /// The role last seen on the record was `staff` (otherwise `student`): a leaver's grace
    /// period.
    pub staff: bool,
    /// Whether the record last marked protected personal data.
    pub protected: bool,
    /// Correlation keys last seen on the record (lowercased), e-mail and eppn: boxed together,
    /// and not there when neither is (most records of a school have neither).
    keys: Option<Box<[Option<Box<str>>; 2]>>,
    /// The names last seen on the record, as a fingerprint: enough to tell that a key without
    /// a settled civic number now names someone else, without keeping the names in memory.
    /// `None` when the state did not give them.
    pub names: Option<NameFingerprint>,
    /// The source no longer gave this record at the last applied run (kept for a leaver's log
    /// rows and a return, but not part of what an incremental read merges with).
    pub gone: bool,
}

/// A record's given and family name, each reduced to a hash of its normalised form
/// (`naming::normalize`: case, accents and spacing do not count), to compare a stored record
/// with this run's. Not a secret and not kept anywhere: the state database holds the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NameFingerprint {
    given: std::num::NonZeroU64,
    family: std::num::NonZeroU64,
}

impl NameFingerprint {
    pub fn of(given_name: &str, family_name: &str) -> NameFingerprint {
        use std::hash::{Hash, Hasher};
        let hash = |name: &str| {
            let mut h = rustc_hash::FxHasher::default();
            crate::core::naming::normalize(name, usize::MAX).hash(&mut h);
            h.finish()
        };
        // Never zero (a hash of zero counts as one), so that an absent fingerprint takes no room.
        let hash = |name: &str| std::num::NonZeroU64::new(hash(name)).unwrap_or(std::num::NonZeroU64::MIN);
        NameFingerprint { given: hash(given_name), family: hash(family_name) }
    }

    /// Whether neither name of `other` is one of these names: a person whose given name was
    /// corrected, or who took another family name, keeps one of the two, and an export with the
    /// name columns swapped keeps both (a swap is for the update threshold to catch).
    pub fn all_names_differ(&self, other: &NameFingerprint) -> bool {
        let mine = [self.given, self.family];
        !mine.contains(&other.given) && !mine.contains(&other.family)
    }
}

impl StoredRecord {
    /// A stored link with no correlation keys ([`StoredRecord::with_keys`] gives them).
    pub fn new(identity_id: IdentityId) -> StoredRecord {
        StoredRecord {
            identity_id,
            civic_no: None,
            content_hash: None,
            school_unit: None,
            staff: false,
            protected: false,
            keys: None,
            names: None,
            gone: false,
        }
    }

    /// The record with these correlation keys.
    pub fn with_keys(mut self, email: Option<&str>, eppn: Option<&str>) -> StoredRecord {
        self.keys =
            (email.is_some() || eppn.is_some()).then(|| Box::new([email.map(Into::into), eppn.map(Into::into)]));
        self
    }

    /// The e-mail last seen on the record (lowercased).
    pub fn email(&self) -> Option<&str> {
        self.keys.as_ref()?[0].as_deref()
    }

    /// The eppn last seen on the record (lowercased).
    pub fn eppn(&self) -> Option<&str> {
        self.keys.as_ref()?[1].as_deref()
    }

    /// A stored content hash as the number it spells: sixteen lowercase hex digits, the form
    /// the apply writes; any other text (an older version's hash, an empty one) is `None`.
    ///
    /// A fingerprint of zero reads as none (the record is written once more): held as a
    /// `NonZeroU64`, an absent one takes no room of its own.
    pub fn content_hash_of(stored: &str) -> Option<std::num::NonZeroU64> {
        let hex = stored.len() == 16 && stored.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if hex { u64::from_str_radix(stored, 16).ok().and_then(std::num::NonZeroU64::new) } else { None }
    }
}

impl Snapshot {
    /// The stored link of a record, if it has one.
    pub fn record(&self, source: &str, person_id: &str) -> Option<&StoredRecord> {
        self.source_records(source)?.get(person_id)
    }

    /// Every stored link.
    pub fn all_records(&self) -> impl Iterator<Item = &StoredRecord> {
        self.held_records().values().flat_map(|m| m.values())
    }

    /// The stored links of one source, by person id.
    pub fn source_records(&self, source: &str) -> Option<&RecordMap> {
        self.held_records().get(source)
    }

    /// The stored links, source by source.
    pub fn records_by_source(&self) -> impl Iterator<Item = (&String, &RecordMap)> {
        self.held_records().iter()
    }

    /// The one way to the stored links for reading: a read after they are released is a bug.
    fn held_records(&self) -> &FxHashMap<String, RecordMap> {
        debug_assert!(!self.records_released, "the stored records were released");
        &self.records
    }

    /// One stored link, to change (tests build snapshots with it).
    pub fn record_mut(&mut self, source: &str, person_id: &str) -> Option<&mut StoredRecord> {
        self.records.get_mut(source)?.get_mut(person_id)
    }

    /// The primary school unit recorded for identity `id` at the last applied run.
    pub fn primary(&self, id: &str) -> Option<&PrimaryTie> {
        self.primaries.get(self.identities.get_index_of(id)?)?.as_ref()
    }

    /// Records `tie` as identity `id`'s primary school unit; an identity the snapshot does not
    /// hold yet is added without a username (for building snapshots in tests).
    #[cfg(test)]
    pub fn set_primary(&mut self, id: IdentityId, tie: Option<PrimaryTie>) {
        let at = match self.identities.get_index_of(id.as_str()) {
            Some(at) => at,
            None => std::sync::Arc::make_mut(&mut self.identities).insert_full(id, None).0,
        };
        if self.primaries.len() <= at {
            self.primaries.resize(at + 1, None);
        }
        self.primaries[at] = tie;
    }

    /// The primary school units of all the identities, by their place in `identities` (a store
    /// reads them beside the identities).
    pub(crate) fn set_primaries(&mut self, primaries: Vec<Option<PrimaryTie>>) {
        debug_assert!(primaries.len() <= self.identities.len(), "a primary school of an identity not held");
        self.primaries = primaries;
    }

    /// Lets the primary school units go, once the resolution has taken them.
    pub fn release_primaries(&mut self) {
        self.primaries = Vec::new();
    }

    /// Lets the stored records go, once a run has taken from them all it needs (they are a
    /// large part of what a run holds). A read of them afterwards is a bug: tests catch it.
    pub fn release_records(&mut self) {
        self.records = FxHashMap::default();
        self.records_released = true;
    }

    /// Adds a link (for building snapshots in tests and from the store).
    pub fn insert_record(&mut self, source: String, person_id: String, rec: StoredRecord) {
        self.insert_record_sized(source, person_id, rec, 0);
    }

    /// [`Snapshot::insert_record`], with room for `expected` records in a source's map when
    /// this is its first (the store knows how many rows it reads: a map grown by doubling holds
    /// its old and new tables at once, and at a million records that is the run's peak).
    pub fn insert_record_sized(&mut self, source: String, person_id: String, rec: StoredRecord, expected: usize) {
        self.records
            .entry(source)
            .or_insert_with(|| RecordMap::with_capacity_and_hasher(expected, Default::default()))
            .insert(person_id.into_boxed_str(), rec);
    }

    /// Gives back the room a store reserved beyond the records it read (a state of several
    /// sources reserves for all of them in the first source's map).
    pub fn fit_records(&mut self) {
        self.records.values_mut().for_each(RecordMap::shrink_to_fit);
    }
}

/// The stored records of one source, by person id: in one vector of exactly their number with
/// an index beside it (a hash map of a million records of 128 bytes, just past a power of two,
/// is some 300 MB, half of it empty buckets), and each record has a position
/// ([`indexmap::IndexMap::get_index_of`]) that a run can mark in a bit vector instead of
/// building a set of the records it saw.
pub type RecordMap = indexmap::IndexMap<Box<str>, StoredRecord, rustc_hash::FxBuildHasher>;

/// A snapshot's map by identity id: in one vector of exactly their number with an index
/// beside it, as [`RecordMap`].
pub type IdMap<V> = indexmap::IndexMap<IdentityId, V, rustc_hash::FxBuildHasher>;

/// Identity id → username: the names of a run. A username is a `Str`, held in place (no
/// allocation for a name of up to 24 bytes, which is nearly every one), as every identity of a
/// run has one.
pub type Usernames = std::collections::BTreeMap<IdentityId, connector_api::value::Str>;

/// What the state database knew at the start of a run.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Identity id → allocated username. Shared: a run's names ([`super::names::RunNames`]) are
    /// these.
    pub identities: std::sync::Arc<IdMap<Option<connector_api::value::Str>>>,
    /// source → person_id → link. Nested so that lookups need no allocation. Private: read
    /// through the accessors, which catch a read after [`Snapshot::release_records`].
    records: FxHashMap<String, RecordMap>,
    /// Accounts enid created, per target.
    pub accounts: Vec<OwnedAccount>,
    /// The primary school unit recorded at the last applied run, by the identity's place in
    /// `identities` (a vector beside the map, not a map of its own: some 30 MB less at a million
    /// identities, at the resolution, a run's peak). Read by the resolution only (into
    /// [`Identity::primary`], through [`Snapshot::primary`]); a run lets it go after.
    primaries: Vec<Option<PrimaryTie>>,
    /// The records were let go ([`Snapshot::release_records`]).
    records_released: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_api::SourceRecord;

    /// A stored link's correlation keys read back as given, and take no room when there are
    /// none; a civic number and a school code are held in place. A state holds a million links,
    /// each held through a run's resolution.
    #[test]
    fn a_stored_links_keys_read_back_and_the_link_is_small() {
        for (email, eppn) in [(None, None), (Some("a@x"), None), (None, Some("b@x")), (Some("a@x"), Some("b@x"))] {
            let rec = StoredRecord::new("id".into()).with_keys(email, eppn);
            assert_eq!((rec.email(), rec.eppn()), (email, eppn));
            assert_eq!(rec.keys.is_some(), email.is_some() || eppn.is_some());
        }
        let mut rec = StoredRecord::new("id".into());
        rec.civic_no = Some("201001011004".into());
        rec.school_unit = Some("SKOLA7".into());
        assert!(!rec.civic_no.as_ref().unwrap().is_heap_allocated() && !rec.school_unit.unwrap().is_heap_allocated());
        assert!(std::mem::size_of::<StoredRecord>() <= 104, "{}", std::mem::size_of::<StoredRecord>());
    }

    /// A primary tie's code and tie id share one string: each reads back as given (an empty id
    /// apart from none), and equal ties are equal. Every identity has one, twice at a plan's peak.
    #[test]
    fn a_primary_ties_code_and_id_read_back_as_given() {
        use proptest::prelude::*;
        proptest!(|(code in "[a-zåäö0-9 -]{0,30}", id in proptest::option::of("[a-z0-9-]{0,40}"), other in "[a-z]{0,3}")| {
            let tie = PrimaryTie::new(&code, id.as_deref());
            prop_assert_eq!((tie.school_unit(), tie.source_id()), (code.as_str(), id.as_deref()));
            prop_assert_eq!(&tie, &PrimaryTie::new(&code, id.as_deref()));
            let moved = format!("{code}{other}");
            prop_assert_eq!(tie == PrimaryTie::new(&moved, id.as_deref()), other.is_empty());
            if let Some(id) = &id {
                prop_assert_ne!(&tie, &PrimaryTie::new(&code, None), "a tie id, even an empty one, is not none");
                prop_assert_ne!(&tie, &PrimaryTie::new(&format!("{code}{id}"), None));
            }
        });
        assert!(std::mem::size_of::<Option<PrimaryTie>>() <= 32, "{}", std::mem::size_of::<Option<PrimaryTie>>());
    }

    /// An ownership row's key and anchor share one string: each reads back as given (an empty
    /// one apart from an absent one), and a change of one keeps the other and the row.
    #[test]
    fn an_owned_accounts_key_and_anchor_read_back_as_given() {
        use proptest::prelude::*;
        let opt = || proptest::option::of("[a-zé=,.\\- ]{0,40}");
        proptest!(|(key in opt(), anchor in opt(), other in opt())| {
            let mut a = OwnedAccount::new("dir", "id-1".into(), key.as_deref(), anchor.as_deref(), AccountStatus::Active);
            prop_assert_eq!((a.key(), a.anchor()), (key.as_deref(), anchor.as_deref()));
            a.disabled_at = Some(NaiveDate::MIN);
            a.set_key(other.as_deref());
            prop_assert_eq!((a.key(), a.anchor()), (other.as_deref(), anchor.as_deref()));
            a.set_anchor(key.as_deref());
            prop_assert_eq!((a.key(), a.anchor()), (other.as_deref(), key.as_deref()));
            prop_assert!(a.disabled_at == Some(NaiveDate::MIN) && a.status == AccountStatus::Active);
            prop_assert_eq!(&*a.target, "dir");
        });
        // What the packing is for: a million of these are held for a run.
        assert!(std::mem::size_of::<OwnedAccount>() <= 72, "{}", std::mem::size_of::<OwnedAccount>());
    }

    fn rec(source: &str, role: Role, school: &str, group: &str, end: Option<&str>) -> Sourced {
        Sourced {
            source: source.into(),
            record: Box::new(SourceRecord {
                person_id: "1".into(),
                given_name: format!("Kim-{source}").into(),
                family_name: "Lind".into(),
                civic_no: None,
                affiliations: vec![
                    Affiliation {
                        end_date: end.map(|e| e.parse().unwrap()),
                        ..Affiliation::new(Some(school.into()), role)
                    }
                    .into(),
                ]
                .into(),
                groups: vec![connector_api::GroupMembership::class(Some(school.into()), group).into()].into(),
                location: Default::default(),
                extras: connector_api::Extras::new(None, None, Box::default()),
                protection: None,
                deceased: false,
            }),
        }
    }

    #[test]
    fn enid_ids_are_lowercase_hyphenated_uuids() {
        assert!(is_enid_id("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(!is_enid_id("0F8FAD5B-D9CB-469F-A165-70867728950E"), "uppercase is not enid's form");
        assert!(!is_enid_id("0f8fad5bd9cb469fa16570867728950e"));
        assert!(!is_enid_id("0f8fad5b-d9cb-469f-a165-70867728950"));
        assert!(!is_enid_id("0f8fad5b-d9cb-469f-a165-70867728950g"));
        assert!(!is_enid_id("12345"), "an HR number");
        assert!(!is_enid_id(""));
    }

    #[test]
    fn the_authoritative_source_decides_each_attribute() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let ident = Identity {
            id: "id".into(),
            is_new: false,
            records: connector_api::source::smallvec![
                rec("hr", Role::Staff, "S1", "7A", None),
                rec("sis", Role::Student, "VUX", "SVA1", Some("2027-06-15")),
            ],
            primary: None,
        };
        let all = ident.person("kim", &Authority::default(), today).unwrap();
        assert_eq!(all.given_name, "Kim-hr", "names from the first record");
        assert_eq!(all.roles, ["student", "staff"]);
        assert_eq!(all.school_units, ["S1", "VUX"]);
        assert_eq!(all.end_date, None, "staff without an end date stays");

        let sis = vec!["sis".to_string()];
        let authority = Authority { school_unit: sis.clone(), groups: sis.clone(), dates: sis };
        let p = ident.person("kim", &authority, today).unwrap();
        assert_eq!(p.school_units, ["VUX"]);
        assert_eq!(p.groups, ["SVA1"]);
        assert_eq!(p.end_date.map(|d| d.to_string()).as_deref(), Some("2027-06-15"));
        assert_eq!(p.roles, ["student", "staff"], "roles always come from every record");

        let missing = Authority { school_unit: vec!["oneroster".into()], ..Default::default() };
        assert_eq!(
            ident.person("kim", &missing, today).unwrap().school_units,
            ["S1", "VUX"],
            "no record there: all count"
        );
    }

    fn tie(school: &str, kind: AffiliationKind, start: Option<&str>, end: Option<&str>) -> Affiliation {
        let role = if kind == AffiliationKind::Duty { Role::Staff } else { Role::Student };
        Affiliation {
            kind,
            start_date: start.map(|d| d.parse().unwrap()),
            end_date: end.map(|d| d.parse().unwrap()),
            details: connector_api::TieDetails {
                school_unit_name: Some(format!("{school} skola")),
                ..Default::default()
            }
            .boxed(),
            ..Affiliation::new(Some(school.into()), role)
        }
    }

    fn one_record(ties: Vec<Affiliation>, primary: Option<&str>) -> Identity {
        let mut r = rec("sis", Role::Student, "X", "7A", None);
        r.record.affiliations = ties.into_iter().map(Into::into).collect();
        let primary = primary.map(|p| PrimaryTie::new(p, None));
        Identity { id: "id".into(), is_new: false, records: connector_api::source::smallvec![r], primary }
    }

    fn primary_now(ident: &Identity, today: NaiveDate) -> Option<String> {
        ident.primary_school_now(&Authority::default(), today).map(|p| p.school_unit().to_string())
    }

    fn day(d: &str) -> NaiveDate {
        d.parse().unwrap()
    }

    #[test]
    fn a_pupil_who_changes_school_on_a_date_belongs_to_the_new_school_from_that_day() {
        use AffiliationKind::Enrolment;
        let ident = one_record(
            vec![
                tie("A", Enrolment, Some("2020-08-15"), Some("2026-12-31")),
                tie("B", Enrolment, Some("2027-01-01"), None),
            ],
            Some("A"),
        );
        let before = ident.person("u", &Authority::default(), day("2026-12-31")).unwrap();
        assert_eq!((before.school_units.clone(), before.school_unit), (vec!["A"], Some("A")));
        assert_eq!(before.school_unit_name, Some("A skola"));
        let after = ident.person("u", &Authority::default(), day("2027-01-01")).unwrap();
        assert_eq!((after.school_units.clone(), after.school_unit), (vec!["B"], Some("B")), "the old tie ended");
        assert!(after.is_active(day("2027-01-01")), "active across the change");
        assert_eq!(after.start_date, Some(day("2020-08-15")));
    }

    #[test]
    fn the_primary_affiliation_is_sticky_and_follows_a_documented_rule() {
        use AffiliationKind::{Duty, Enrolment, Placement};
        let today = day("2026-12-03");
        let ties = vec![
            tie("A", Duty, Some("2024-01-01"), None),
            tie("B", Duty, Some("2019-01-01"), None),
            tie("C", Duty, Some("2019-01-01"), None),
        ];
        // Afresh: the oldest tie, then the code.
        let b = Some("B".to_string());
        assert_eq!(primary_now(&one_record(ties.clone(), None), today), b);
        // Recorded: kept while its tie is in effect, whatever the rule would say now.
        assert_eq!(primary_now(&one_record(ties.clone(), Some("A")), today).as_deref(), Some("A"));
        // A recorded school whose tie is gone no longer counts.
        assert_eq!(primary_now(&one_record(ties, Some("Z")), today), b);
        // An after-school centre is never primary while there is a school, even an older one.
        let ties =
            vec![tie("FRITIDS", Placement, Some("2018-01-01"), None), tie("S", Enrolment, Some("2020-01-01"), None)];
        let ident = one_record(ties, None);
        let p = ident.person("u", &Authority::default(), today).unwrap();
        assert_eq!(p.school_unit, Some("S"));
        assert_eq!(p.school_units, ["FRITIDS", "S"], "both count for groups and departments");
        // Only a placement: then it is the primary.
        let ident = one_record(vec![tie("FRITIDS", Placement, None, None)], None);
        assert_eq!(primary_now(&ident, today).as_deref(), Some("FRITIDS"));
    }

    #[test]
    fn a_primary_school_whose_code_changes_stays_primary_by_its_tie() {
        use AffiliationKind::Duty;
        let today = day("2026-12-03");
        let with_id = |code: &str, id: &str, start: &str| {
            let mut a = tie(code, Duty, Some(start), None);
            a.details_mut().source_id = Some(id.into());
            a
        };
        // Recorded at A (the newer tie, org-1); A's code becomes Z: the rule afresh would pick B.
        let mut ident =
            one_record(vec![with_id("Z", "org-1", "2024-01-01"), with_id("B", "org-2", "2019-01-01")], None);
        ident.primary = Some(PrimaryTie::new("A", Some("org-1")));
        let now = ident.primary_school_now(&Authority::default(), today).unwrap();
        assert_eq!(now, PrimaryTie::new("Z", Some("org-1")));
        assert_eq!(ident.person("u", &Authority::default(), today).unwrap().school_unit, Some("Z"));
        // A tie recorded without an id (an upgraded state) is found by its code.
        ident.primary = Some(PrimaryTie::new("B", None));
        assert_eq!(primary_now(&ident, today).as_deref(), Some("B"));
    }

    #[test]
    fn in_effect_prefers_current_ties_then_the_next_start_then_the_last_end() {
        use AffiliationKind::Enrolment;
        let (a, b, c) = (
            tie("A", Enrolment, Some("2020-01-01"), Some("2025-06-10")),
            tie("B", Enrolment, Some("2027-01-01"), None),
            tie("C", Enrolment, Some("2028-01-01"), None),
        );
        let all = [&a, &b, &c];
        let names = |v: Vec<&Affiliation>| v.iter().map(|a| a.school_unit.clone().unwrap()).collect::<Vec<_>>();
        assert_eq!(names(in_effect(&all, day("2024-01-01"))), ["A"]);
        assert_eq!(names(in_effect(&all, day("2026-01-01"))), ["B"], "between ties: the next start");
        assert_eq!(names(in_effect(&[&a], day("2026-01-01"))), ["A"], "a leaver: where they were");
    }

    #[test]
    fn a_deceased_person_is_never_active() {
        let mut ident = one_record(vec![Affiliation::new(Some("S".into()), Role::Staff)], None);
        ident.records[0].record.deceased = true;
        let p = ident.person("u", &Authority::default(), day("2026-12-03")).unwrap();
        assert!(p.deceased && !p.is_active(day("2026-12-03")));
    }

    #[test]
    fn roles_come_from_the_ties_in_effect() {
        use AffiliationKind::{Duty, Enrolment};
        // A former pupil who now works at the school: staff only.
        let ident = one_record(
            vec![tie("S", Enrolment, Some("2015-08-15"), Some("2024-06-10")), tie("S", Duty, Some("2025-01-01"), None)],
            None,
        );
        assert_eq!(ident.person("u", &Authority::default(), day("2026-12-03")).unwrap().roles, ["staff"]);
    }
}
