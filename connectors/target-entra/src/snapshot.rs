//! What the delta query leaves to keep between runs: per read (users, groups) the delta link it
//! ended with and every object as it stood then (only the properties read), and how a round of
//! changes updates them. Kept by the engine as one text ([`connector_api::Target::saved_state`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};

/// The shape of what is kept; another version is read again in full.
pub(crate) const VERSION: u32 = 2;

/// What is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Saved {
    pub version: u32,
    pub users: Option<Round>,
    pub groups: Option<Round>,
}

impl Default for Saved {
    fn default() -> Saved {
        Saved { version: VERSION, users: None, groups: None }
    }
}

/// One read: what it was (the URL and the properties selected: another read is not resumed
/// from it), where it ended, the objects by id, and their digest (objects lost or changed in the
/// state table since, and the round is read again in full: a delta link only says what changed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Round {
    pub fingerprint: String,
    pub link: String,
    pub items: BTreeMap<String, Json>,
    #[serde(default)]
    pub digest: String,
}

impl Round {
    /// A round with its digest.
    pub fn new(fingerprint: String, link: String, items: BTreeMap<String, Json>) -> Round {
        let digest = digest(&items);
        Round { fingerprint, link, items, digest }
    }

    /// Whether the objects are the ones the round ended with.
    pub fn intact(&self) -> bool {
        !self.digest.is_empty() && self.digest == digest(&self.items)
    }
}

/// SHA-256 of the objects as JSON, in hex.
fn digest(items: &BTreeMap<String, Json>) -> String {
    use sha2::Digest as _;
    let text = serde_json::to_string(items).unwrap_or_default();
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Applies a round of changes: an object `@removed` goes; a changed one takes the properties
/// the round gives (Graph may give only those that changed); a group's `members@delta` adds and
/// removes members (kept as a list of ids under `members`).
pub(crate) fn merge(items: &mut BTreeMap<String, Json>, changes: Vec<Map<String, Json>>, groups: bool) {
    for change in changes {
        let Some(id) = change.get("id").and_then(Json::as_str).map(str::to_string) else { continue };
        if change.contains_key("@removed") {
            items.remove(&id);
            continue;
        }
        let entry = items.entry(id).or_insert_with(|| Json::Object(Map::new()));
        let Some(obj) = entry.as_object_mut() else { continue };
        for (k, v) in &change {
            if k == "members@delta" || k.starts_with("@odata") {
                continue;
            }
            obj.insert(k.clone(), v.clone());
        }
        if groups && let Some(delta) = change.get("members@delta").and_then(Json::as_array) {
            let mut members: BTreeSet<String> = obj
                .get("members")
                .and_then(Json::as_array)
                .map(|m| m.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            for m in delta {
                let Some(mid) = m.get("id").and_then(Json::as_str) else { continue };
                if m.get("@removed").is_some() {
                    members.remove(mid);
                } else {
                    members.insert(mid.to_string());
                }
            }
            obj.insert("members".into(), Json::Array(members.into_iter().map(Json::String).collect()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_round_of_changes_updates_what_was_kept() {
        let mut items = BTreeMap::new();
        merge(
            &mut items,
            vec![obj(json!({"id": "u1", "displayName": "Anna", "accountEnabled": true})), obj(json!({"id": "u2"}))],
            false,
        );
        merge(
            &mut items,
            vec![
                obj(json!({"id": "u1", "accountEnabled": false})),
                obj(json!({"id": "u2", "@removed": {"reason": "changed"}})),
            ],
            false,
        );
        assert_eq!(items.len(), 1);
        assert_eq!(items["u1"], json!({"id": "u1", "displayName": "Anna", "accountEnabled": false}));
        let mut groups = BTreeMap::new();
        merge(
            &mut groups,
            vec![obj(json!({"id": "g", "displayName": "7A", "members@delta": [{"id": "a"}, {"id": "b"}]}))],
            true,
        );
        merge(
            &mut groups,
            vec![obj(json!({"id": "g", "members@delta": [{"id": "a", "@removed": {}}, {"id": "c"}]}))],
            true,
        );
        assert_eq!(groups["g"]["members"], json!(["b", "c"]));
        assert_eq!(groups["g"]["displayName"], "7A");
        let mut round = Round::new("f".into(), "l".into(), groups);
        assert!(round.intact());
        let kept: Round = serde_json::from_str(&serde_json::to_string(&round).unwrap()).unwrap();
        assert!(kept.intact(), "{kept:?}");
        round.items.clear();
        assert!(!round.intact(), "objects lost since");
    }
}
