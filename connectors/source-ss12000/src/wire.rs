//! The SS 12000 entities as the API sends them, read leniently: only the fields enid uses,
//! every one optional where some server leaves it out (the 2020 edition makes fewer fields
//! required than v2.1), `null` read as absent, unknown fields ignored, and enumerations kept as
//! the strings they are (their meaning is decided in `assemble`, where an unknown value is
//! tolerated and logged once). What must be there for enid to act (an id, a person's names, a
//! group's name and type) is checked where it is used, so that the error names the entity.

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Deserializer};

/// A reference to another entity (`ObjectReference`, `PersonReference`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Ref {
    pub id: String,
    /// Only with `expandReferenceNames=true`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// A `PersonReference`'s protection: the person's own marking, seen from the reference.
    #[serde(default)]
    pub security_marking: Option<String>,
}

/// When an entity was created and last changed, by the server's clock.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Meta {
    #[serde(default)]
    pub created: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    pub modified: Option<DateTime<FixedOffset>>,
}

/// `Person`, with its enrolments.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub id: String,
    #[serde(default)]
    pub meta: Option<Meta>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub family_name: Option<String>,
    #[serde(default)]
    pub civic_no: Option<CivicNoWire>,
    #[serde(default, deserialize_with = "list")]
    pub edu_person_principal_names: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub external_identifiers: Vec<ExternalIdentifier>,
    #[serde(default, deserialize_with = "list")]
    pub emails: Vec<Email>,
    #[serde(default)]
    pub security_marking: Option<String>,
    #[serde(default)]
    pub person_status: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub enrolments: Vec<Enrolment>,
}

/// `civicNo`: `{ value, nationality }` as the specification writes it; a bare string as some
/// 2020-era servers send it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum CivicNoWire {
    Object {
        value: String,
        #[serde(default)]
        nationality: Option<String>,
    },
    Plain(String),
}

impl CivicNoWire {
    /// The number and its country (`SE` when not given).
    pub fn parts(&self) -> (&str, &str) {
        match self {
            CivicNoWire::Object { value, nationality } => (value, nationality.as_deref().unwrap_or("SE")),
            CivicNoWire::Plain(value) => (value, "SE"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalIdentifier {
    pub value: String,
    #[serde(default)]
    pub context: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Email {
    pub value: String,
    /// Required in v2.1, optional in 2020.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// `Enrolment`: a pupil's tie to a school unit. It has no id of its own: it lives inside the
/// person, and a changed person brings all of them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Enrolment {
    #[serde(alias = "enrolledAt")]
    pub enroled_at: Ref,
    #[serde(default)]
    pub school_year: Option<serde_json::Value>,
    #[serde(default)]
    pub school_type: Option<String>,
    #[serde(default)]
    pub start_date: Option<NaiveDate>,
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
    #[serde(default)]
    pub cancelled: Option<bool>,
}

/// `Duty`: a staff member's tie to an organisation element.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Duty {
    pub id: String,
    #[serde(default)]
    pub meta: Option<Meta>,
    /// Left out for a vacant duty.
    #[serde(default)]
    pub person: Option<Ref>,
    pub duty_at: Ref,
    #[serde(default)]
    pub duty_role: Option<String>,
    #[serde(default)]
    pub start_date: Option<NaiveDate>,
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
}

/// `Placement`: a child in a preschool or an after-school centre.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    pub id: String,
    #[serde(default)]
    pub meta: Option<Meta>,
    pub child: Ref,
    pub placed_at: Ref,
    #[serde(default)]
    pub school_type: Option<String>,
    #[serde(default)]
    pub start_date: Option<NaiveDate>,
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
}

/// `Group`, with its memberships.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    #[serde(default)]
    pub meta: Option<Meta>,
    pub display_name: String,
    pub group_type: String,
    pub organisation: Ref,
    #[serde(default)]
    pub start_date: Option<NaiveDate>,
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
    #[serde(default, deserialize_with = "list")]
    pub group_memberships: Vec<Membership>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub person: Ref,
    #[serde(default)]
    pub start_date: Option<NaiveDate>,
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
}

/// `Activity`: teaching of groups, and the duties that teach them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub id: String,
    #[serde(default)]
    pub meta: Option<Meta>,
    #[serde(default, deserialize_with = "list")]
    pub groups: Vec<Ref>,
    #[serde(default, deserialize_with = "list")]
    pub teachers: Vec<Teacher>,
    #[serde(default)]
    pub start_date: Option<NaiveDate>,
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Teacher {
    pub duty: Ref,
    #[serde(default)]
    pub start_date: Option<NaiveDate>,
    #[serde(default)]
    pub end_date: Option<NaiveDate>,
}

/// `Organisation`: what a reference's id means (a school unit's code and name).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Organisation {
    pub id: String,
    #[serde(default)]
    pub meta: Option<Meta>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub school_unit_code: Option<String>,
}

/// The ids `/deletedEntities` lists, of the kinds enid reads. The specification spells the
/// activities' key `activitites`; the right spelling is read too.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    #[serde(default, deserialize_with = "list")]
    pub persons: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub duties: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub groups: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub placements: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub organisations: Vec<String>,
    #[serde(default, alias = "activitites", deserialize_with = "list")]
    pub activities: Vec<String>,
}

/// A list that may be `null`.
fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// An entity the API sent that does not read: the id when it has one, the field that failed
/// (a dotted path, `enrolments[0].startDate`) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    pub id: Option<String>,
    pub field: String,
    pub reason: String,
}

/// Reads one entity of a listing, naming the field that does not read. The reason is serde's,
/// with any civic number in it masked (a number where a string belongs is quoted in it).
pub fn read<T: serde::de::DeserializeOwned>(item: serde_json::Value) -> Result<T, Unreadable> {
    let id = item.get("id").and_then(|v| v.as_str()).map(str::to_string);
    serde_path_to_error::deserialize(item).map_err(|e| {
        let field = e.path().to_string();
        Unreadable { id, field, reason: connector_api::civic::mask_civic_in_text(&e.into_inner().to_string()) }
    })
}

/// Reads one entity of a listing from its JSON text, as [`read`] does from a tree: a page is
/// split into its entities' texts and each read straight into its type (no JSON tree in
/// between: a full read of a large school organisation is mostly this).
pub fn read_raw<T: serde::de::DeserializeOwned>(item: &serde_json::value::RawValue) -> Result<T, Unreadable> {
    // Tracking the path costs an allocation per key: only an entity that does not read is read
    // again to name the field.
    if let Ok(t) = serde_json::from_str(item.get()) {
        return Ok(t);
    }
    let mut de = serde_json::Deserializer::from_str(item.get());
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        #[derive(Deserialize)]
        struct IdOnly {
            #[serde(default)]
            id: Option<serde_json::Value>,
        }
        let id = serde_json::from_str::<IdOnly>(item.get()).ok().and_then(|i| i.id?.as_str().map(str::to_string));
        let field = e.path().to_string();
        // Where in the entity's text it went wrong says nothing to the operator.
        let reason = e.into_inner().to_string();
        let reason = match reason.rsplit_once(" at line ") {
            Some((said, at)) if at.contains(" column ") => said.to_string(),
            _ => reason,
        };
        Unreadable { id, field, reason: connector_api::civic::mask_civic_in_text(&reason) }
    })
}

/// An entity's own id, by which a listing is de-duplicated.
pub trait HasId {
    fn id(&self) -> &str;
}

macro_rules! has_id {
    ($($t:ty),*) => {$(
        impl HasId for $t {
            fn id(&self) -> &str {
                &self.id
            }
        }
    )*};
}
has_id!(Person, Duty, Placement, Group, Activity, Organisation);

/// The latest of two server timestamps.
pub fn later(a: Option<DateTime<FixedOffset>>, b: Option<DateTime<FixedOffset>>) -> Option<DateTime<FixedOffset>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// An entity's `meta.modified`.
pub fn modified(meta: &Option<Meta>) -> Option<DateTime<FixedOffset>> {
    meta.as_ref().and_then(|m| m.modified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_field_that_does_not_read_is_named_with_the_entity_and_a_civic_number_in_the_reason_is_masked() {
        let bad = json!({"id": "p1", "givenName": "Anna", "enrolments": [{"enroledAt": {"id": "s"}, "startDate": 198707049996_u64}]});
        let e = read::<Person>(bad).unwrap_err();
        assert_eq!((e.id.as_deref(), e.field.as_str()), (Some("p1"), "enrolments[0].startDate"));
        assert!(!e.reason.contains("9996"), "{}", e.reason);
        let nulls = json!({"id": "p2", "emails": null, "enrolments": null, "civicNo": "200112240123"});
        let p = read::<Person>(nulls).unwrap();
        assert!(p.emails.is_empty() && p.enrolments.is_empty());
        assert_eq!(p.civic_no.unwrap().parts(), ("200112240123", "SE"));
        let raw = serde_json::value::RawValue::from_string(r#"{"id": "p3", "givenName": 5}"#.into()).unwrap();
        let e = read_raw::<Person>(&raw).unwrap_err();
        assert_eq!((e.id.as_deref(), e.field.as_str()), (Some("p3"), "givenName"));
        let d: Deleted = serde_json::from_value(json!({"activitites": ["a"], "persons": null})).unwrap();
        assert_eq!(d.activities, ["a"]);
        let d: Deleted = serde_json::from_value(json!({"activities": ["b"]})).unwrap();
        assert_eq!(d.activities, ["b"]);
    }
}
