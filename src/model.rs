//! The values the functional core works on: records with their source, identities, the state
//! snapshot, and owned accounts. No IO happens here.

use chrono::NaiveDate;
use connector_api::{Role, SourceRecord};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeSet;

/// An enid identity id: a UUID string, stable for the life of the identity, and the value
/// written to every account it owns (LDAP `employeeNumber`).
pub type IdentityId = String;

/// A record together with the id of the source that delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    pub source: String,
    pub record: SourceRecord,
}

impl Sourced {
    /// `source/person_id`, for messages.
    pub fn label(&self) -> String {
        format!("{}/{}", self.source, self.record.person_id)
    }
}

/// One person as enid sees them now, from every record that belongs to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: IdentityId,
    /// True when this run creates the identity.
    pub is_new: bool,
    /// The person's records in this run, in source order. Empty for a person no source has
    /// any more.
    pub records: Vec<Sourced>,
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
    pub school_units: Vec<&'a str>,
    pub groups: Vec<&'a str>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
}

impl Identity {
    /// The person this identity describes, taking names from the first record (sources in
    /// configuration order) and the union of roles, schools and groups.
    pub fn person<'a>(&'a self, username: &'a str) -> Option<Person<'a>> {
        let first = &self.records.first()?.record;
        if let [only] = self.records.as_slice() {
            // The common case, without sets.
            let r = &only.record;
            return Some(Person {
                id: &self.id,
                username,
                given_name: &r.given_name,
                family_name: &r.family_name,
                roles: vec![r.role.as_str()],
                school_units: r.school_unit.as_deref().into_iter().collect(),
                groups: r.groups.iter().map(String::as_str).collect(),
                start_date: r.start_date,
                end_date: r.end_date,
            });
        }
        let mut roles = BTreeSet::new();
        let mut schools = BTreeSet::new();
        let mut groups = BTreeSet::new();
        let mut start: Option<NaiveDate> = None;
        let mut end: Option<Option<NaiveDate>> = None;
        for s in &self.records {
            let r = &s.record;
            roles.insert(r.role);
            schools.extend(r.school_unit.as_deref());
            groups.extend(r.groups.iter().map(String::as_str));
            start = match (start, r.start_date) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // The latest end date wins; a record without one keeps the person indefinitely.
            end = Some(match (end, r.end_date) {
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
            roles: roles.into_iter().map(|r: Role| r.as_str()).collect(),
            school_units: schools.into_iter().collect(),
            groups: groups.into_iter().collect(),
            start_date: start,
            end_date: end.flatten(),
        })
    }
}

impl Person<'_> {
    /// Whether the person should have working accounts on `today`.
    pub fn is_active(&self, today: NaiveDate) -> bool {
        self.start_date.is_none_or(|s| s <= today) && self.end_date.is_none_or(|e| e >= today)
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedAccount {
    pub target: String,
    pub identity_id: IdentityId,
    pub key: String,
    pub anchor: Option<String>,
    pub status: AccountStatus,
}

/// A stored record link: which identity a (source, person_id) belongs to, with the civic
/// number last seen on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub identity_id: IdentityId,
    /// Normalised civic number, as held in the state database.
    pub civic_no: Option<String>,
    /// Hash of the record's content, to skip rewriting unchanged records.
    pub content_hash: String,
    /// The school unit last seen on the record, so a leaver's log rows still name a school.
    pub school_unit: Option<String>,
    /// Correlation keys last seen on the record (lowercased).
    pub email: Option<String>,
    pub eppn: Option<String>,
}

impl Snapshot {
    /// The stored link of a record, if it has one.
    pub fn record(&self, source: &str, person_id: &str) -> Option<&StoredRecord> {
        self.records.get(source)?.get(person_id)
    }

    /// Every stored link.
    pub fn all_records(&self) -> impl Iterator<Item = &StoredRecord> {
        self.records.values().flat_map(|m| m.values())
    }

    /// Adds a link (for building snapshots in tests and from the store).
    pub fn insert_record(&mut self, source: String, person_id: String, rec: StoredRecord) {
        self.records.entry(source).or_default().insert(person_id, rec);
    }
}

/// What the state database knew at the start of a run.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Identity id → allocated username.
    pub identities: FxHashMap<IdentityId, Option<String>>,
    /// source → person_id → link. Nested so that lookups need no allocation.
    pub records: FxHashMap<String, FxHashMap<String, StoredRecord>>,
    /// Accounts enid created, per target.
    pub accounts: Vec<OwnedAccount>,
}
