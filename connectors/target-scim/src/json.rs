//! enid's values as SCIM JSON and back: where an attribute lives (the core User schema, or the
//! enterprise extension under its URN), which complex attributes hold one value (`name`,
//! `manager`) and which several (`emails`, `phoneNumbers`, ...), and how a JSON value reads as a
//! [`Value`].

use connector_api::Value;
use serde_json::{Map, Value as Json};

pub(crate) const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub(crate) const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub(crate) const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub(crate) const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub(crate) const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// The enterprise extension's attributes (RFC 7643 §4.3).
const ENTERPRISE_ATTRS: [&str; 6] =
    ["employeeNumber", "costCenter", "organization", "division", "department", "manager"];

/// Complex attributes that hold one value; every other complex attribute holds a list.
const SINGULAR_COMPLEX: [&str; 2] = ["name", "manager"];

/// Where an attribute lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// In the core schema, under this name.
    Core(String),
    /// In the enterprise extension, under this name.
    Enterprise(String),
}

impl Place {
    /// Where `attr` (a policy's name: `department`, or a full path with the URN) lives.
    pub(crate) fn of(attr: &str) -> Place {
        if let Some(rest) = attr.strip_prefix(ENTERPRISE).and_then(|r| r.strip_prefix(':')) {
            return Place::Enterprise(rest.to_string());
        }
        if let Some(rest) = attr.strip_prefix(USER).and_then(|r| r.strip_prefix(':')) {
            return Place::Core(rest.to_string());
        }
        match ENTERPRISE_ATTRS.iter().find(|a| a.eq_ignore_ascii_case(attr)) {
            Some(a) => Place::Enterprise(a.to_string()),
            None => Place::Core(attr.to_string()),
        }
    }

    /// The PATCH path of the attribute.
    pub(crate) fn path(&self) -> String {
        match self {
            Place::Core(n) => n.clone(),
            Place::Enterprise(n) => format!("{ENTERPRISE}:{n}"),
        }
    }

    fn name(&self) -> &str {
        match self {
            Place::Core(n) | Place::Enterprise(n) => n,
        }
    }
}

/// A JSON value as enid's value; `None` for null.
pub(crate) use connector_http::json::to_value;

/// enid's value as the JSON the attribute takes.
pub(crate) fn to_json(attr: &Place, v: &Value) -> Json {
    connector_http::json::to_json(v, SINGULAR_COMPLEX.iter().any(|s| s.eq_ignore_ascii_case(attr.name())))
}

/// A user's attribute, wherever it lives, as enid's value.
pub(crate) fn read(user: &Map<String, Json>, attr: &str) -> Option<Value> {
    let place = Place::of(attr);
    let holder = match &place {
        Place::Core(_) => Some(user),
        Place::Enterprise(_) => user.get(ENTERPRISE).and_then(Json::as_object),
    }?;
    let v = holder
        .get(place.name())
        .or_else(|| holder.iter().find(|(k, _)| k.eq_ignore_ascii_case(place.name())).map(|(_, v)| v))?;
    to_value(v)
}

/// Puts enid's attributes into a user's JSON body, each where it lives.
pub(crate) fn write(body: &mut Map<String, Json>, attrs: &connector_api::Attrs) {
    for (attr, v) in attrs {
        if v.is_empty() {
            continue;
        }
        let place = Place::of(attr);
        let j = to_json(&place, v);
        match place {
            Place::Core(n) => {
                body.insert(n, j);
            }
            Place::Enterprise(n) => {
                let ext = body.entry(ENTERPRISE).or_insert_with(|| Json::Object(Map::new()));
                if let Some(o) = ext.as_object_mut() {
                    o.insert(n, j);
                }
            }
        }
    }
    if body.contains_key(ENTERPRISE)
        && let Some(Json::Array(s)) = body.get_mut("schemas")
        && !s.iter().any(|x| x == ENTERPRISE)
    {
        s.push(Json::String(ENTERPRISE.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_api::Fields;

    #[test]
    fn values_round_trip_through_the_json_a_scim_server_keeps() {
        let mut name = Fields::new();
        name.insert("givenName".into(), Value::text("Anna"));
        name.insert("familyName".into(), Value::text("Berg"));
        let mut email = Fields::new();
        email.insert("value".into(), Value::text("anna@x.se"));
        email.insert("primary".into(), Value::Bool(true));
        let attrs: connector_api::Attrs = [
            ("name".to_string(), Value::Complex(Box::new(vec![name]))),
            ("emails".to_string(), Value::Complex(Box::new(vec![email]))),
            ("department".to_string(), Value::text("S1")),
            ("externalId".to_string(), Value::text("0f8f")),
        ]
        .into();
        let mut body = Map::new();
        body.insert("schemas".into(), serde_json::json!([USER]));
        write(&mut body, &attrs);
        let j = Json::Object(body.clone());
        assert_eq!(j["name"]["givenName"], "Anna", "{j}");
        assert_eq!(j["emails"][0]["primary"], true, "{j}");
        assert_eq!(j[ENTERPRISE]["department"], "S1", "{j}");
        assert_eq!(j["schemas"][1], ENTERPRISE);
        for (attr, want) in &attrs {
            let got = read(&body, attr).unwrap();
            assert!(want.satisfied_by(&got), "{attr}: {want:?} vs {got:?}");
        }
        assert_eq!(Place::of("Department").path(), format!("{ENTERPRISE}:department"));
        assert_eq!(Place::of("emails").path(), "emails");
    }
}
