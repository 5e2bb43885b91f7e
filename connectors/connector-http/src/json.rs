//! enid's typed values ([`Value`]) as the JSON of a REST API and back, for every HTTP target:
//! a JSON string or number is a text of one value, a boolean a boolean, an object one complex
//! value, an array of objects several, an array of strings a text of several values. Where an
//! attribute lives and which complex attributes hold a single object is the connector's to say.

use connector_api::{Fields, Value};
use serde_json::{Map, Value as Json};

/// A JSON value as enid's value; `None` for null.
pub fn to_value(j: &Json) -> Option<Value> {
    Some(match j {
        Json::Null => return None,
        Json::Bool(b) => Value::Bool(*b),
        Json::String(s) => Value::text(s.clone()),
        Json::Number(n) => Value::text(n.to_string()),
        Json::Object(o) => Value::Complex(Box::new(vec![fields(o)])),
        Json::Array(items) if !items.is_empty() && items.iter().all(|i| i.is_object()) => {
            Value::Complex(Box::new(items.iter().filter_map(|i| i.as_object().map(fields)).collect()))
        }
        Json::Array(items) => Value::Text(
            items
                .iter()
                .filter_map(|i| match i {
                    Json::String(s) => Some(s.clone()),
                    Json::Number(n) => Some(n.to_string()),
                    Json::Bool(b) => Some(b.to_string()),
                    _ => None,
                })
                .collect(),
        ),
    })
}

fn fields(o: &Map<String, Json>) -> Fields {
    o.iter().filter_map(|(k, v)| Some((k.clone(), to_value(v)?))).collect()
}

/// enid's value as JSON: a text of one value a string, of several an array; complex values an
/// array of objects, or the first object alone where the attribute holds one (`singular`).
pub fn to_json(v: &Value, singular: bool) -> Json {
    match v {
        Value::Bool(b) => Json::Bool(*b),
        Value::Text(t) if t.len() == 1 => Json::String(t[0].to_string()),
        Value::Text(t) => Json::Array(t.iter().map(|s| Json::String(s.to_string())).collect()),
        Value::Complex(items) => {
            let objects: Vec<Json> = items.iter().map(object).collect();
            if singular { objects.into_iter().next().unwrap_or(Json::Null) } else { Json::Array(objects) }
        }
    }
}

fn object(f: &Fields) -> Json {
    let mut o = Map::new();
    for (k, v) in f {
        let j = match v {
            Value::Bool(b) => Json::Bool(*b),
            Value::Text(t) => t.first().map(|s| Json::String(s.to_string())).unwrap_or(Json::Null),
            Value::Complex(_) => continue,
        };
        o.insert(k.clone(), j);
    }
    Json::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_round_trip() {
        for j in [json!("a"), json!(true), json!(["a", "b"]), json!({"givenName": "Anna", "x": false})] {
            let v = to_value(&j).unwrap();
            assert_eq!(to_json(&v, true), j);
        }
        let list = json!([{"value": "a@x", "primary": true}]);
        assert_eq!(to_json(&to_value(&list).unwrap(), false), list);
        assert_eq!(to_value(&json!(null)), None);
        assert_eq!(to_value(&json!(7)), Some(Value::text("7")));
    }
}
