//! Typed attribute values in enid's vocabulary, and how two of them compare.
//!
//! The core renders every mapped attribute to a [`Value`]; a connector turns it into its own
//! encoding (LDAP strings, SCIM JSON) and reads observed attributes back into the same shape, so
//! the planner can compare desired and observed values without knowing the protocol.
//!
//! - [`Value::Text`]: one or more strings, compared as a set (LDAP keeps no value order). A
//!   single-valued attribute is a set of one. No values means "absent".
//! - [`Value::Bool`]: a boolean (SCIM `active`, `emails[].primary`).
//! - [`Value::Complex`]: one or more complex values (SCIM `name`, `emails`), each a map of
//!   sub-attribute to value. They compare as a set of elements, and each element only on the
//!   sub-attributes enid sets: a server that adds `display` or `$ref` to what it stores does not
//!   make every account differ.

use serde::Serialize;
use std::collections::BTreeMap;

pub use crate::attrs::Attrs;

/// One complex value: sub-attribute → value (a text of one value, or a boolean).
pub type Fields = BTreeMap<String, Value>;

/// One string of a text: up to 24 bytes in place (most names, usernames, school codes and
/// roles), a longer one in an allocation of exactly its bytes. Reads as the `str` it holds.
pub type Str = compact_str::CompactString;

/// The strings of a text value: none (absent), one (the common case: the string alone, no list
/// around it) or more. Read as a slice of strings; compares, prints and serialises as the list it
/// is. Three words, like the `Vec<String>` it replaced, with no allocation at all for one short
/// string.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Texts(Repr);

#[derive(Clone, Default, PartialEq, Eq)]
enum Repr {
    #[default]
    None,
    One(Str),
    Many(Box<[Str]>),
}

impl Texts {
    /// No strings.
    pub const fn new() -> Texts {
        Texts(Repr::None)
    }

    /// The strings, in the order given.
    pub fn as_slice(&self) -> &[Str] {
        match &self.0 {
            Repr::None => &[],
            Repr::One(one) => std::slice::from_ref(one),
            Repr::Many(many) => many,
        }
    }
}

impl std::ops::Deref for Texts {
    type Target = [Str];
    fn deref(&self) -> &[Str] {
        self.as_slice()
    }
}

impl From<Vec<String>> for Texts {
    fn from(mut v: Vec<String>) -> Texts {
        if v.len() > 1 {
            return Texts(Repr::Many(v.into_iter().map(|s| Str::from(s.into_boxed_str())).collect()));
        }
        match v.pop() {
            None => Texts(Repr::None),
            // A short string goes in place; a long one keeps its buffer, without spare capacity.
            Some(one) => Texts(Repr::One(Str::from(one.into_boxed_str()))),
        }
    }
}

impl FromIterator<String> for Texts {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Texts {
        iter.into_iter().collect::<Vec<String>>().into()
    }
}

impl FromIterator<Str> for Texts {
    fn from_iter<I: IntoIterator<Item = Str>>(iter: I) -> Texts {
        let mut it = iter.into_iter();
        let Some(first) = it.next() else { return Texts(Repr::None) };
        match it.next() {
            None => Texts(Repr::One(first)),
            Some(second) => Texts(Repr::Many([first, second].into_iter().chain(it).collect())),
        }
    }
}

impl std::fmt::Debug for Texts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Texts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Str::as_str))
    }
}

/// One attribute's value. Serialised untagged: a text as a list of strings (as plans have always
/// shown attributes), a boolean as `true`/`false`, complex values as a list of objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// Strings, compared as a set. Empty: the attribute is absent.
    Text(Texts),
    /// A boolean.
    Bool(bool),
    /// Complex values (boxed, so that a text, the common case, stays three words).
    Complex(Box<Vec<Fields>>),
}

/// The value of an absent attribute.
pub static ABSENT: Value = Value::Text(Texts::new());

impl Value {
    /// A text of one value.
    pub fn text(v: impl Into<String>) -> Value {
        Value::Text(Texts(Repr::One(Str::from(v.into().as_str()))))
    }

    /// Whether the attribute is absent: no strings, or no complex values.
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Text(v) => v.is_empty(),
            Value::Bool(_) => false,
            Value::Complex(v) => v.is_empty(),
        }
    }

    /// The strings of a text; nothing for other values.
    pub fn texts(&self) -> &[Str] {
        match self {
            Value::Text(v) => v,
            _ => &[],
        }
    }

    /// The first string of a text, if any.
    pub fn first(&self) -> Option<&str> {
        self.texts().first().map(|s| &**s)
    }

    /// Whether an account that holds `observed` already has this desired value. Texts compare
    /// as sets; complex values as sets of elements, each on the sub-attributes this value sets.
    pub fn satisfied_by(&self, observed: &Value) -> bool {
        match (self, observed) {
            (Value::Text(a), Value::Text(b)) => same_set(a, b),
            (Value::Bool(a), Value::Bool(b)) => a == b,
            // A template renders text: `true` or `false` is the boolean a typed target keeps.
            (Value::Text(t), Value::Bool(b)) | (Value::Bool(b), Value::Text(t)) => {
                t.len() == 1 && t[0].trim().eq_ignore_ascii_case(if *b { "true" } else { "false" })
            }
            (Value::Complex(want), Value::Complex(have)) => {
                want.len() == have.len()
                    && want.iter().all(|w| have.iter().any(|h| w.iter().all(|(k, v)| v.satisfied_by(field(h, k)))))
            }
            (a, b) => a.is_empty() && b.is_empty(),
        }
    }
}

/// A sub-attribute of a complex value, absent when it is not there. Sub-attribute names compare
/// without case (SCIM names are case-insensitive).
fn field<'a>(fields: &'a Fields, name: &str) -> &'a Value {
    fields
        .get(name)
        .or_else(|| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
        .unwrap_or(&ABSENT)
}

impl std::fmt::Display for Value {
    /// For people: texts joined with `|`, a boolean as `true`/`false`, complex values as JSON.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Text(v) => f.write_str(&v.join("|")),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Complex(_) => f.write_str(&serde_json::to_string(self).map_err(|_| std::fmt::Error)?),
        }
    }
}

/// Whether two value lists hold the same values, in any order.
fn same_set(a: &[Str], b: &[Str]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a == b {
        return true; // the common case: same values in the same order
    }
    let mut a: Vec<&str> = a.iter().map(|s| &**s).collect();
    let mut b: Vec<&str> = b.iter().map(|s| &**s).collect();
    a.sort();
    b.sort();
    a == b
}

/// Set one attribute to exactly this value; an empty value removes the attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttrChange {
    pub attr: String,
    pub values: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[&str]) -> Value {
        Value::Text(v.iter().map(|s| s.to_string()).collect())
    }

    fn email(value: &str, primary: Option<bool>) -> Fields {
        let mut f = Fields::new();
        f.insert("value".into(), Value::text(value));
        f.insert("type".into(), Value::text("work"));
        if let Some(p) = primary {
            f.insert("primary".into(), Value::Bool(p));
        }
        f
    }

    #[test]
    fn texts_compare_as_sets_and_nothing_is_absent() {
        assert!(t(&["a", "b"]).satisfied_by(&t(&["b", "a"])));
        assert!(!t(&["a"]).satisfied_by(&t(&["a", "b"])));
        assert!(t(&[]).satisfied_by(&ABSENT));
        assert!(ABSENT.satisfied_by(&Value::Complex(Box::default())));
        assert!(!Value::Bool(false).satisfied_by(&ABSENT), "a boolean is never absent");
        assert!(Value::Bool(true).satisfied_by(&Value::Bool(true)));
        assert!(t(&["true"]).satisfied_by(&Value::Bool(true)) && Value::Bool(false).satisfied_by(&t(&["false"])));
        assert!(!t(&["true"]).satisfied_by(&Value::Bool(false)) && !t(&["yes"]).satisfied_by(&Value::Bool(true)));
    }

    /// A text holds its strings alone (one: no list around it), and reads, compares, prints and
    /// serialises as the `Vec<String>` it replaced; a value stays three words.
    #[test]
    fn texts_are_compact_and_behave_as_the_list_they_hold() {
        assert_eq!(std::mem::size_of::<Value>(), 24, "a value is three words");
        let one = Value::text("a");
        assert_eq!(one, t(&["a"]), "one value, however made");
        assert_eq!(Value::Text(Texts::from(vec![])), ABSENT);
        assert!(Value::Text(Vec::<String>::new().into()).is_empty());
        let two = t(&["b", "a"]);
        assert_eq!(two.texts().iter().map(|s| &**s).collect::<Vec<_>>(), ["b", "a"], "in the order given");
        assert_ne!(two, t(&["a", "b"]), "equal as lists (the planner compares as sets: satisfied_by)");
        assert!(two.satisfied_by(&t(&["a", "b"])));
        assert_eq!(format!("{two:?}"), r#"Text(["b", "a"])"#);
        assert_eq!(format!("{one:?}"), format!("{:?}", Value::Text(Texts::from(vec!["a".to_string()]))));
        assert_eq!(serde_json::to_string(&two).unwrap(), r#"["b","a"]"#);
        assert_eq!(serde_json::to_string(&ABSENT).unwrap(), "[]");
        assert_eq!(one.first(), Some("a"));
        assert_eq!(two.to_string(), "b|a");
    }

    /// A stored record's fingerprint hashes its strings: a `Str` must hash as the `String` it
    /// replaced, or every record would be written again after an upgrade.
    #[test]
    fn a_str_hashes_as_the_string_it_replaced() {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let h = BuildHasherDefault::<DefaultHasher>::default();
        for text in ["", "7A", "a string longer than twenty-four bytes"] {
            assert_eq!(h.hash_one(Str::from(text)), h.hash_one(text.to_string()));
            assert_eq!(h.hash_one(Some(Str::from(text))), h.hash_one(Some(text.to_string())));
        }
    }

    #[test]
    fn complex_values_compare_on_what_enid_sets() {
        let want = Value::Complex(Box::new(vec![email("a@x", Some(true))]));
        // The server added a display sub-attribute: still the same.
        let mut stored = email("a@x", Some(true));
        stored.insert("display".into(), Value::text("A"));
        assert!(want.satisfied_by(&Value::Complex(Box::new(vec![stored]))));
        assert!(!want.satisfied_by(&Value::Complex(Box::new(vec![email("a@x", Some(false))]))));
        assert!(!want.satisfied_by(&Value::Complex(Box::new(vec![email("a@x", None)]))));
        assert!(!want.satisfied_by(&Value::Complex(Box::new(vec![email("a@x", Some(true)), email("b@x", None)]))));
        let json = serde_json::to_string(&want).unwrap();
        assert_eq!(json, r#"[{"primary":true,"type":["work"],"value":["a@x"]}]"#);
        assert_eq!(serde_json::to_string(&t(&["x"])).unwrap(), r#"["x"]"#);
    }
}
