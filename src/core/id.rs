//! [`IdentityId`]: an identity's id, held once and shared.
//!
//! One identity's id is held by the state snapshot (its identity, each stored record, each owned
//! account, its primary school), by the resolution, the names, the desired accounts and the plan:
//! as a `String` each copy was a heap string of its own (24 + 48 bytes), some seven per person
//! at a plan's peak. An `IdentityId` is a shared string: a copy is a pointer and a count, and the
//! snapshot makes each id once. It compares, orders, hashes, prints and serialises as the string
//! it is, so maps keyed by it are looked up with a `&str` and plans are unchanged.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// An enid identity id: a UUID string ([`is_enid_id`]), stable for the life of the identity, and
/// the value written to every account it owns (LDAP `employeeNumber`).
///
/// [`is_enid_id`]: crate::core::model::is_enid_id
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdentityId(Arc<str>);

impl IdentityId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared string itself (an `AccountSpec`'s id holds the identity's, not a copy).
    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }
}

impl Default for IdentityId {
    /// The empty id (of a block that names no person), shared like any other.
    fn default() -> IdentityId {
        static EMPTY: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));
        IdentityId(EMPTY.clone())
    }
}

impl std::ops::Deref for IdentityId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for IdentityId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for IdentityId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<String> for IdentityId {
    fn from(s: String) -> IdentityId {
        IdentityId(s.into())
    }
}

impl From<&str> for IdentityId {
    fn from(s: &str) -> IdentityId {
        IdentityId(s.into())
    }
}

impl From<&String> for IdentityId {
    fn from(s: &String) -> IdentityId {
        IdentityId(s.as_str().into())
    }
}

impl From<&IdentityId> for IdentityId {
    fn from(id: &IdentityId) -> IdentityId {
        id.clone()
    }
}

impl From<IdentityId> for String {
    fn from(id: IdentityId) -> String {
        id.0.to_string()
    }
}

impl PartialEq<str> for IdentityId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for IdentityId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for IdentityId {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<IdentityId> for str {
    fn eq(&self, other: &IdentityId) -> bool {
        self == &*other.0
    }
}

impl PartialEq<IdentityId> for &str {
    fn eq(&self, other: &IdentityId) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<IdentityId> for String {
    fn eq(&self, other: &IdentityId) -> bool {
        **self == *other.0
    }
}

impl std::fmt::Display for IdentityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As a string prints: width and alignment apply.
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for IdentityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for IdentityId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for IdentityId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IdentityId, D::Error> {
        String::deserialize(d).map(IdentityId::from)
    }
}

/// Bytes as lowercase hexadecimal digits: a plan's id, an operation's fingerprint, a key file's
/// text, a token (in place up to 12 bytes, no `String` per byte).
pub fn hex(bytes: &[u8]) -> connector_api::value::Str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = connector_api::value::Str::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn hex_is_two_lowercase_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn behaves_as_its_string() {
        let id = IdentityId::from("0f8fad5b-d9cb-469f-a165-70867728950e");
        let copy = id.clone();
        assert!(std::ptr::eq(id.as_str(), copy.as_str()), "a copy shares the string");
        assert_eq!(format!("{id}|{id:>40}|{id:?}"), format!("{0}|{0:>40}|{0:?}", id.as_str()));
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"0f8fad5b-d9cb-469f-a165-70867728950e\"");
        assert_eq!(serde_json::from_str::<IdentityId>("\"x\"").unwrap(), "x");
        let map: HashMap<IdentityId, u8> = [(id.clone(), 1)].into();
        assert_eq!(map.get("0f8fad5b-d9cb-469f-a165-70867728950e"), Some(&1), "looked up by &str");
        let mut ids = vec![IdentityId::from("b"), IdentityId::from("a-"), IdentityId::from("a")];
        ids.sort();
        assert_eq!(ids, ["a", "a-", "b"], "ordered as strings");
        if cfg!(target_pointer_width = "64") {
            assert_eq!(std::mem::size_of::<IdentityId>(), 16);
        }
        assert!(std::ptr::eq(IdentityId::default().as_str(), IdentityId::default().as_str()), "one empty id");
    }
}
