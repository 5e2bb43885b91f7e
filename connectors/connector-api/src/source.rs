//! What a source connector gives the engine: person records, and the rows it had to reject.

use crate::civic::CivicNo;
use crate::error::BoxError;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;

/// A person's role in the school organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Student,
    Staff,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Staff => "staff",
        }
    }

    /// Parses the values sources use. Swedish words are accepted too.
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "student" | "pupil" | "elev" => Some(Role::Student),
            "staff" | "teacher" | "employee" | "personal" | "lärare" | "larare" | "anställd" => Some(Role::Staff),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One person as one source sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// The source's own key for the person; unique within the source.
    pub person_id: String,
    pub given_name: String,
    pub family_name: String,
    /// A validated civic number, when the source has one (some pupils have none).
    pub civic_no: Option<CivicNo>,
    pub role: Role,
    /// The school unit code the person belongs to.
    pub school_unit: Option<String>,
    /// Classes and teaching groups, sorted and deduplicated.
    pub groups: Vec<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// E-mail address, lowercased, when the source has one (a correlation key if configured).
    pub email: Option<String>,
    /// eduPersonPrincipalName, lowercased, when the source has one (a correlation key if
    /// configured).
    pub eppn: Option<String>,
    /// Protected personal data (SS 12000 `securityMarking`), when the source marks the person.
    pub protection: Option<Protection>,
    /// Where the record came from (`persons.csv:14`), for messages.
    pub location: String,
}

impl SourceRecord {
    /// The first free-text field of the record — `given_name`, `family_name`, `school_unit`,
    /// `groups`, `email`, `eppn` — that holds a civic number in any spelling
    /// ([`crate::civic::contains_civic`]), by field name. Such a value would become a username
    /// for life, a group name, or an attribute on every target.
    pub fn civic_in_free_text(&self) -> Option<&'static str> {
        use crate::civic::contains_civic;
        let texts = [("given_name", self.given_name.as_str()), ("family_name", self.family_name.as_str())]
            .into_iter()
            .chain(self.school_unit.as_deref().map(|s| ("school_unit", s)))
            .chain(self.groups.iter().map(|g| ("groups", g.as_str())))
            .chain(self.email.as_deref().map(|e| ("email", e)))
            .chain(self.eppn.as_deref().map(|e| ("eppn", e)));
        texts.into_iter().find(|(_, text)| contains_civic(text)).map(|(field, _)| field)
    }
}

/// The message of a row rejected because `field` holds a civic number. It names the field only:
/// the value is never shown, not even masked (a birth date is personal data too).
pub fn civic_in_free_text_message(field: &str) -> String {
    format!(
        "{field} holds what looks like a civic number (digits of a personnummer, however separated); \
         a civic number must never become a name, group, school or address. Fix the export"
    )
}

/// Levels of protected personal data ("skyddade personuppgifter").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protection {
    Sekretessmarkering,
    SkyddadFolkbokforing,
}

impl Protection {
    /// Parses the values sources use; empty means no protection.
    pub fn parse(s: &str) -> Result<Option<Protection>, String> {
        match s.trim().to_lowercase().as_str() {
            "" | "ingen" | "none" => Ok(None),
            "sekretessmarkering" | "sekretess" => Ok(Some(Protection::Sekretessmarkering)),
            "skyddad folkbokföring" | "skyddad folkbokforing" | "skyddad" | "kvarskrivning" => {
                Ok(Some(Protection::SkyddadFolkbokforing))
            }
            _ => Err("is neither \"Sekretessmarkering\" nor \"Skyddad folkbokföring\"".into()),
        }
    }
}

/// A record the source had to reject, with where it was and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// `file:line` or an id.
    pub location: String,
    /// What is wrong and how to fix it. Never contains an unmasked civic number: a source key
    /// that looks like one is shown through [`crate::civic::mask_if_civic`].
    pub message: String,
    /// The row's source key (`person_id`) as written, when it could be read. The engine keeps
    /// the person linked to it exactly as last stored: a rejected row is not a leaver. Raw: mask
    /// it with [`crate::civic::mask_if_civic`] before showing it.
    pub person_id: Option<String>,
    /// The row's civic number, when it is valid (the row was rejected for something else). The
    /// person stored with it is kept too: a row typed with another person's key still names its
    /// person by number. Masked by `CivicNo`'s `Debug` and `Display`.
    pub civic_no: Option<CivicNo>,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Everything one fetch produced.
#[derive(Debug, Clone, Default)]
pub struct SourceBatch {
    /// The valid records.
    pub records: Vec<SourceRecord>,
    /// Rows that were left out, each with its reason.
    pub rejected: Vec<RowError>,
    /// Which of enid's fields (`person_id`, `email`, `protection`, ...) the source delivered, by
    /// field name (not the export's column name). The engine stops a run when a field present
    /// at the last applied run is missing: a dropped column is a broken export, not a change
    /// of every person.
    pub columns: BTreeSet<String>,
}

impl SourceBatch {
    /// Rows seen in total, valid or not.
    pub fn rows_seen(&self) -> usize {
        self.records.len() + self.rejected.len()
    }

    /// Moves every record that holds a civic number in a free-text field
    /// ([`SourceRecord::civic_in_free_text`]) to the rejected rows, keeping its key and civic
    /// number so that its person is kept as last stored. The engine runs this over every
    /// source's batch, so the rule holds for sources that do not check it themselves.
    pub fn reject_civic_in_free_text(&mut self) {
        let (bad, good): (Vec<SourceRecord>, Vec<SourceRecord>) =
            std::mem::take(&mut self.records).into_iter().partition(|r| r.civic_in_free_text().is_some());
        self.records = good;
        for r in bad {
            let field = r.civic_in_free_text().unwrap_or("a free-text field");
            self.rejected.push(RowError {
                location: r.location,
                message: civic_in_free_text_message(field),
                person_id: Some(r.person_id),
                civic_no: r.civic_no,
            });
        }
    }
}

/// Why a source could not deliver. The variant says what the operator must do; `source` keeps
/// the lower-level error (I/O, the file format's parser) when there is one.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source could not be reached or read; try again later or fix access.
    #[error("cannot read {what}: {reason}")]
    Unavailable {
        what: String,
        reason: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The source was read but its shape is wrong (missing column, bad header): fix the export
    /// or the column map in the config.
    #[error("{location}: {reason}")]
    Malformed {
        location: String,
        reason: String,
        #[source]
        source: Option<BoxError>,
    },
}

/// The facts a source may need while fetching. Time is an argument, never read from the clock.
#[derive(Debug, Clone, Copy)]
pub struct FetchContext {
    /// Today's date, for civic numbers in the 10-digit form.
    pub today: NaiveDate,
}

/// A source of person records.
pub trait Source {
    /// Checks that the source can be read, without reading all of it.
    fn check(&self) -> impl Future<Output = Result<(), SourceError>> + Send;
    /// Reads every record. A fetch is all-or-nothing: partial data is an error.
    fn fetch(&self, cx: FetchContext) -> impl Future<Output = Result<SourceBatch, SourceError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(person_id: &str, given_name: &str, groups: &[&str], email: Option<&str>) -> SourceRecord {
        SourceRecord {
            person_id: person_id.into(),
            given_name: given_name.into(),
            family_name: "Berg".into(),
            civic_no: None,
            role: Role::Student,
            school_unit: Some("S1".into()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            start_date: None,
            end_date: None,
            email: email.map(str::to_string),
            eppn: None,
            protection: None,
            location: format!("api:{person_id}"),
        }
    }

    #[test]
    fn records_with_a_civic_number_in_free_text_are_rejected_for_every_source() {
        let mut batch = SourceBatch {
            records: vec![
                record("1", "Anna", &["7A"], Some("anna.berg@skola.se")),
                record("2", "Bo 19870704 9996", &[], None),
                record("3", "Cy", &["7A", "870704\u{2013}9996"], None),
                record("4", "Dag", &[], Some("dag.870704.9996@skola.se")),
                // A civic number as the source key is allowed: keys are masked wherever shown.
                record("19821105-9954", "Ed", &[], None),
            ],
            ..SourceBatch::default()
        };
        batch.reject_civic_in_free_text();
        let kept: Vec<&str> = batch.records.iter().map(|r| r.person_id.as_str()).collect();
        assert_eq!(kept, ["1", "19821105-9954"]);
        let rejected: Vec<(String, Option<&str>)> =
            batch.rejected.iter().map(|e| (e.to_string(), e.person_id.as_deref())).collect();
        let want = |loc: &str, field: &str, key: &'static str| {
            (format!("{loc}: {}", civic_in_free_text_message(field)), Some(key))
        };
        assert_eq!(
            rejected,
            [want("api:2", "given_name", "2"), want("api:3", "groups", "3"), want("api:4", "email", "4")]
        );
        assert!(!format!("{rejected:?}").contains("9996"));
    }
}
