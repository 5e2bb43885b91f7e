//! [`PackedAttrs`]: an observed account's attributes in one allocation.
//!
//! A read of a million accounts holds a million attribute sets for the whole run, and an
//! [`Attrs`] spends 32 bytes in place on each attribute (its name's pointer and a three-word
//! value) besides the strings too long to sit in place: some 300 bytes for an LDAP account's
//! eight or nine. Observed values are compared and shown, never changed, so they are kept packed:
//! the names the read asked for, shared by all its accounts, and each account's strings in one
//! string of exactly their bytes, each attribute as its name's place in the shared list, its
//! number of strings, and each string's length and text (the numbers as one `char` each, so
//! the whole stays a `str`: read back by slicing, without checking or converting bytes). A
//! string equal to one before it in the same text is a reference to that one (one `char`):
//! an LDAP account's display name is in `cn` and `displayName` alike.
//!
//! Only texts are packed. A boolean or complex value (SCIM), a name outside the shared list, or
//! a string longer than a `char` can count keeps the attributes as an [`Attrs`], as given.
//!
//! [`Joined`] does the same for an account's key, anchor and username (an observed account's,
//! an owned account's): up to three optional strings in one allocation.

use crate::attrs::{Attrs, Name};
use crate::value::{Str, Value};
use std::borrow::Cow;
use std::sync::Arc;

/// Up to three optional strings in one allocation of exactly their bytes, read back by
/// slicing (24 bytes in place): an account's key, anchor and username, of which a run holds a
/// million. Each string but the last has a mark: where it ends (the low 30 bits) and whether it
/// is there (the top bit); the last ends where the text does, and whether it is there is the
/// first mark's second bit. Made only by [`Joined::new`], so every mark is a boundary in the text.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Joined {
    text: Box<str>,
    marks: [u32; 2],
}

const THERE: u32 = 1 << 31;
const LAST_THERE: u32 = 1 << 30;
const END: u32 = LAST_THERE - 1;

impl Joined {
    /// The strings, each given or absent (an empty one is not an absent one).
    pub fn new(parts: [Option<&str>; 3]) -> Joined {
        let mut text = String::with_capacity(parts.iter().flatten().map(|s| s.len()).sum());
        let mut marks = [0; 2];
        for (mark, part) in marks.iter_mut().zip(parts) {
            text.push_str(part.unwrap_or_default());
            *mark = end_mark(text.len()) | if part.is_some() { THERE } else { 0 };
        }
        if let Some(last) = parts[2] {
            text.push_str(last);
            marks[0] |= LAST_THERE;
        }
        end_mark(text.len()); // the whole must fit as well, for the last string's end
        Joined { text: text.into_boxed_str(), marks }
    }

    /// The `i`th string (0, 1 or 2), `None` when it is absent.
    pub fn get(&self, i: usize) -> Option<&str> {
        let [first, second] = self.marks;
        let (start, end, there) = match i {
            0 => (0, first & END, first & THERE != 0),
            1 => (first & END, second & END, second & THERE != 0),
            2 => (second & END, end_mark(self.text.len()), first & LAST_THERE != 0),
            _ => return None,
        };
        // Every mark is a boundary `new` wrote: the range is in the text, on char boundaries.
        there.then(|| &self.text[start as usize..end as usize])
    }

    /// The `i`th string, empty when it is absent.
    pub fn part(&self, i: usize) -> &str {
        self.get(i).unwrap_or("")
    }
}

/// A length as a mark's end.
#[allow(clippy::expect_used)]
fn end_mark(len: usize) -> u32 {
    // Keys, anchors and usernames come in one protocol message of a target or one column of the
    // state, none of which holds a gigabyte: this cannot fail.
    u32::try_from(len).ok().filter(|n| *n <= END).expect("an account's key, anchor and username are under 1 GiB")
}

impl std::fmt::Debug for Joined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries((0..3).map(|i| self.get(i))).finish()
    }
}

/// An observed account's attributes: name → [`Value`], in name order. Read with [`get`],
/// [`texts`] and [`iter`]; made from an [`Attrs`] by [`PackedAttrs::pack`] (with the names a
/// read shares) or `From`.
///
/// [`get`]: PackedAttrs::get
/// [`texts`]: PackedAttrs::texts
/// [`iter`]: PackedAttrs::iter
#[derive(Clone)]
pub struct PackedAttrs(Repr);

#[derive(Clone)]
enum Repr {
    /// Texts only, packed (see the module's documentation).
    Texts { names: Arc<[Name]>, text: Box<str> },
    /// As given.
    Attrs(Attrs),
}

/// The largest number a packed `char` holds (below the surrogates).
const MAX: usize = 0xD7FF;

impl PackedAttrs {
    /// Packs `attrs`, whose names are among `names` (the names a read asked for, made once and
    /// shared by all the accounts it reads).
    pub fn pack(attrs: Attrs, names: &Arc<[Name]>) -> PackedAttrs {
        match encode(&attrs, names) {
            Some(text) => PackedAttrs(Repr::Texts { names: Arc::clone(names), text }),
            None => PackedAttrs(Repr::Attrs(attrs.fitted())),
        }
    }

    /// `attrs` as given, not packed: a desired account's attributes while the planner compares
    /// them ([`PackedAttrs::packed`] packs them once they are only to be kept and sent).
    pub fn plain(attrs: Attrs) -> PackedAttrs {
        PackedAttrs(Repr::Attrs(attrs))
    }

    /// These attributes packed with `names` (shared by the accounts of one plan) when they are
    /// all texts named there, otherwise as they are.
    pub fn packed(self, names: &Arc<[Name]>) -> PackedAttrs {
        match self.0 {
            Repr::Attrs(attrs) => PackedAttrs::pack(attrs, names),
            packed @ Repr::Texts { .. } => PackedAttrs(packed),
        }
    }

    /// The attributes as an [`Attrs`]: borrowed when they are kept as given, made when packed.
    pub fn as_attrs(&self) -> Cow<'_, Attrs> {
        match &self.0 {
            Repr::Attrs(a) => Cow::Borrowed(a),
            Repr::Texts { .. } => Cow::Owned(self.to_attrs()),
        }
    }

    /// Each attribute in name order with its strings, without making a [`Value`]; `None` for a
    /// value that is not a text (a boolean or complex value, kept as given).
    pub fn texts_by_name(&self) -> impl Iterator<Item = (&Name, Option<TextsOf<'_>>)> + '_ {
        let (attrs, packed) = match &self.0 {
            Repr::Attrs(a) => {
                let each = a.iter().map(|(n, v)| match v {
                    Value::Text(t) => (n, Some(TextsOf(Of::Slice(t.iter())))),
                    _ => (n, None),
                });
                (Some(each), None)
            }
            Repr::Texts { names, text } => {
                (None, Some(each_named(names, text).map(|(n, strings)| (n, Some(TextsOf(Of::Packed(strings)))))))
            }
        };
        attrs.into_iter().flatten().chain(packed.into_iter().flatten())
    }

    /// Packs texts read as (place in `names`, strings), in any order, without first making an
    /// [`Attrs`] of them: a directory read of a million accounts. Each place is given once and
    /// is a place in `names`; otherwise (a bug of the caller) or when a string is too long to
    /// pack, the attributes are kept as an [`Attrs`] (a place given twice: the last).
    pub fn pack_texts(names: &Arc<[Name]>, mut texts: Vec<(usize, Vec<String>)>) -> PackedAttrs {
        texts.sort_by(|(a, _), (b, _)| names.get(*a).cmp(&names.get(*b)));
        let places_fit = names.len() <= MAX
            && texts.iter().all(|(place, _)| *place < names.len())
            && texts.windows(2).all(|w| w[0].0 != w[1].0);
        if places_fit && let Some(text) = write(texts.iter().map(|(place, strings)| (*place, strings.as_slice()))) {
            return PackedAttrs(Repr::Texts { names: Arc::clone(names), text });
        }
        let attrs = texts
            .into_iter()
            .filter_map(|(place, strings)| {
                Some((names.get(place)?.clone(), Value::Text(strings.into_iter().collect())))
            })
            .collect::<Attrs>();
        PackedAttrs(Repr::Attrs(attrs.fitted()))
    }

    /// The value of `name`, if the attribute is held.
    pub fn get(&self, name: &str) -> Option<Cow<'_, Value>> {
        match &self.0 {
            Repr::Attrs(a) => a.get(name).map(Cow::Borrowed),
            Repr::Texts { names, text } => {
                let want = names.iter().position(|n| n.as_str() == name)?;
                let mut r = Reader { text, at: 0 };
                while let Some((idx, strings)) = r.attribute() {
                    if idx == want {
                        return Some(Cow::Owned(Value::Text(strings.map(Str::from).collect())));
                    }
                }
                None
            }
        }
    }

    /// The strings of `name`, without making a [`Value`]: none when the attribute is absent or
    /// not a text (as [`Value::texts`]).
    pub fn texts(&self, name: &str) -> TextsOf<'_> {
        match &self.0 {
            Repr::Attrs(a) => TextsOf(Of::Slice(a.get(name).map(Value::texts).unwrap_or(&[]).iter())),
            Repr::Texts { names, text } => {
                let Some(want) = names.iter().position(|n| n.as_str() == name) else {
                    return TextsOf(Of::Slice([].iter()));
                };
                let mut r = Reader { text, at: 0 };
                while let Some((idx, strings)) = r.attribute() {
                    if idx == want {
                        return TextsOf(Of::Packed(strings));
                    }
                }
                TextsOf(Of::Slice([].iter()))
            }
        }
    }

    /// The names a packed set's places refer to (shared by the accounts of one read); `None`
    /// when the attributes are kept as given.
    pub fn names(&self) -> Option<&Arc<[Name]>> {
        match &self.0 {
            Repr::Texts { names, .. } => Some(names),
            Repr::Attrs(_) => None,
        }
    }

    /// Each held attribute as its place among [`PackedAttrs::names`] and its strings, in name
    /// order, read in one pass; nothing when the attributes are kept as given.
    pub fn by_place(&self) -> impl Iterator<Item = (usize, TextsOf<'_>)> + '_ {
        let mut r = match &self.0 {
            Repr::Texts { text, .. } => Some(Reader { text, at: 0 }),
            Repr::Attrs(_) => None,
        };
        std::iter::from_fn(move || {
            let (place, strings) = r.as_mut()?.attribute()?;
            Some((place, TextsOf(Of::Packed(strings))))
        })
    }

    /// Whether the attribute is held.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The attributes in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Name, Cow<'_, Value>)> + '_ {
        let (attrs, packed) = match &self.0 {
            Repr::Attrs(a) => (Some(a.iter().map(|(n, v)| (n, Cow::Borrowed(v)))), None),
            Repr::Texts { names, text } => {
                let each = each_named(names, text)
                    .map(|(n, strings)| (n, Cow::Owned(Value::Text(strings.map(Str::from).collect()))));
                (None, Some(each))
            }
        };
        attrs.into_iter().flatten().chain(packed.into_iter().flatten())
    }

    /// The values, in name order.
    pub fn values(&self) -> impl Iterator<Item = Cow<'_, Value>> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// How many attributes are held.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        match &self.0 {
            Repr::Attrs(a) => a.is_empty(),
            Repr::Texts { text, .. } => text.is_empty(),
        }
    }

    /// The attributes as an [`Attrs`] (to show or keep some of them).
    pub fn to_attrs(&self) -> Attrs {
        match &self.0 {
            Repr::Attrs(a) => a.clone(),
            Repr::Texts { .. } => self.iter().map(|(n, v)| (n.clone(), v.into_owned())).collect(),
        }
    }

    /// Whether the strings are packed (not kept as given).
    pub fn is_packed(&self) -> bool {
        matches!(self.0, Repr::Texts { .. })
    }
}

impl Default for PackedAttrs {
    fn default() -> PackedAttrs {
        PackedAttrs(Repr::Attrs(Attrs::new()))
    }
}

impl From<Attrs> for PackedAttrs {
    /// Packed with a list of names of its own (a read of many accounts shares one: [`PackedAttrs::pack`]).
    fn from(attrs: Attrs) -> PackedAttrs {
        if !attrs.values().all(|v| matches!(v, Value::Text(_))) {
            return PackedAttrs(Repr::Attrs(attrs.fitted()));
        }
        let names: Arc<[Name]> = attrs.keys().cloned().collect();
        PackedAttrs::pack(attrs, &names)
    }
}

impl<K: Into<Name>, const N: usize> From<[(K, Value); N]> for PackedAttrs {
    fn from(pairs: [(K, Value); N]) -> PackedAttrs {
        Attrs::from(pairs).into()
    }
}

impl PartialEq for PackedAttrs {
    /// Equal when they hold the same attributes and values, however kept.
    fn eq(&self, other: &PackedAttrs) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for PackedAttrs {}

impl serde::Serialize for PackedAttrs {
    /// As the same [`Attrs`] would be, however kept: a map in name order, a text as its list of
    /// strings (read from the packed text without making a [`Value`]: a plan's id and its
    /// approvals' fingerprints serialise a million creates).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Attrs(a) => a.serialize(s),
            Repr::Texts { names, text } => {
                s.collect_map(each_named(names, text).map(|(n, strings)| (n, SerializeTexts(strings))))
            }
        }
    }
}

/// Packed strings serialised as a text value is: a list of strings.
struct SerializeTexts<'a>(Strings<'a>);

impl serde::Serialize for SerializeTexts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

impl std::fmt::Debug for PackedAttrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The packed text of `attrs`, or `None` when they cannot be packed.
fn encode(attrs: &Attrs, names: &[Name]) -> Option<Box<str>> {
    if names.len() > MAX {
        return None;
    }
    let mut places = Vec::with_capacity(attrs.len());
    for (name, value) in attrs {
        if !matches!(value, Value::Text(_)) {
            return None;
        }
        places.push(names.iter().position(|n| n == name)?);
    }
    write(places.iter().copied().zip(attrs.values().map(Value::texts)))
}

/// The packed text of attributes given as (place among the names, strings) in name order, or
/// `None` when a number is too large for a `char`.
fn write<'a, S: AsRef<str> + 'a>(attrs: impl Iterator<Item = (usize, &'a [S])> + Clone) -> Option<Box<str>> {
    let size = lay_out(attrs.clone(), None)?;
    let mut text = String::with_capacity(size);
    lay_out(attrs, Some(&mut text));
    debug_assert_eq!(text.len(), size, "measured as written");
    Some(text.into_boxed_str())
}

/// The packed text's length (`None` when a number is too large for a `char`), and the text
/// written into `out` when it is given: measured first, so that it is made in one allocation of
/// its size. A string written before in the text is a reference to it ([`REF`]).
fn lay_out<'a, S: AsRef<str> + 'a>(
    attrs: impl Iterator<Item = (usize, &'a [S])>,
    mut out: Option<&mut String>,
) -> Option<usize> {
    let mut len = 0;
    let mut put = |c: char, text: &str, len: &mut usize| {
        if let Some(out) = out.as_deref_mut() {
            out.push(c);
            out.push_str(text);
        }
        *len += c.len_utf8() + text.len();
    };
    // The strings written out so far: where each one's length is, and the string (an account
    // holds some ten: in place).
    let mut written: smallvec::SmallVec<[(usize, &str); 16]> = smallvec::SmallVec::new();
    for (place, strings) in attrs {
        if place > MAX || strings.len() > MAX {
            return None;
        }
        put(number(place)?, "", &mut len);
        put(number(strings.len())?, "", &mut len);
        for s in strings.iter().map(AsRef::as_ref) {
            if s.len() > MAX {
                return None;
            }
            let earlier = written.iter().find(|(_, w)| *w == s).and_then(|(at, _)| number(REF + at));
            match earlier {
                Some(r) if r.len_utf8() < width(s.len()) + s.len() => put(r, "", &mut len),
                _ => {
                    written.push((len, s));
                    put(number(s.len())?, s, &mut len);
                }
            }
        }
    }
    Some(len)
}

/// A number as the `char` it is written as.
fn number(n: usize) -> Option<char> {
    char::from_u32(u32::try_from(n).ok()?)
}

/// A string's length at or above this is a reference instead: the string is the one whose
/// length is `REF` bytes before it in the text (an account holding its display name in both
/// `cn` and `displayName` holds it once). Above the surrogates, so every one is a `char`.
const REF: usize = 0xE000;

/// The bytes a number takes as a `char`.
fn width(n: usize) -> usize {
    number(n).map_or(4, char::len_utf8)
}

/// Each attribute of a packed `text` with its name among `names` and its strings, in name order.
fn each_named<'a>(names: &'a [Name], text: &'a str) -> impl Iterator<Item = (&'a Name, Strings<'a>)> + 'a {
    let mut r = Reader { text, at: 0 };
    std::iter::from_fn(move || {
        let (idx, strings) = r.attribute()?;
        Some((&names[idx], strings))
    })
}

/// Reads a packed text front to back.
#[derive(Clone)]
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn number(&mut self) -> Option<usize> {
        let c = self.text.get(self.at..)?.chars().next()?;
        self.at += c.len_utf8();
        Some(c as usize)
    }

    /// The next attribute: its name's place and its strings (which the caller reads or skips).
    fn attribute(&mut self) -> Option<(usize, Strings<'a>)> {
        let idx = self.number()?;
        let count = self.number()?;
        // The strings are read by a reader of their own; this one moves past them when they are.
        let strings = Strings { r: Reader { text: self.text, at: self.at }, left: count };
        let mut end = strings.clone();
        while end.next().is_some() {}
        self.at = end.r.at;
        Some((idx, strings))
    }
}

/// One attribute's strings in a packed text.
#[derive(Clone)]
struct Strings<'a> {
    r: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for Strings<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let len = self.r.number()?;
        if len >= REF {
            // A string written before: its length and bytes where the reference says.
            let mut earlier = Reader { text: self.r.text, at: len - REF };
            let len = earlier.number()?;
            return self.r.text.get(earlier.at..earlier.at + len);
        }
        let s = self.r.text.get(self.r.at..self.r.at + len)?;
        self.r.at += len;
        Some(s)
    }
}

/// The strings of one attribute ([`PackedAttrs::texts`]).
#[derive(Clone)]
pub struct TextsOf<'a>(Of<'a>);

#[derive(Clone)]
enum Of<'a> {
    Slice(std::slice::Iter<'a, Str>),
    Packed(Strings<'a>),
}

impl<'a> Iterator for TextsOf<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        match &mut self.0 {
            Of::Slice(it) => it.next().map(Str::as_str),
            Of::Packed(it) => it.next(),
        }
    }
}

impl std::fmt::Debug for TextsOf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[&str]) -> Value {
        Value::Text(v.iter().map(|s| s.to_string()).collect())
    }

    /// Packed attributes read as the `Attrs` they were made from: every value, in order, by
    /// name, as strings; an absent name is absent; equal to the same attributes kept as given.
    #[test]
    fn packed_attributes_read_as_the_attrs_they_were_made_of() {
        let long = "a value longer than twenty-four bytes, with åäö and 日本";
        let attrs = Attrs::from([
            ("uid", t(&["anna.berg"])),
            ("cn", t(&["Anna Berg"])),
            ("mail", t(&[long])),
            ("ou", t(&["7A", "SKOLA1", ""])),
            ("empty", t(&[])),
        ]);
        let names: Arc<[Name]> = ["sn", "uid", "cn", "mail", "ou", "empty", "description"].map(Name::from).into();
        let packed = PackedAttrs::pack(attrs.clone(), &names);
        assert!(packed.is_packed());
        for (name, value) in &attrs {
            assert_eq!(packed.get(name).as_deref(), Some(value), "{name}");
            assert_eq!(
                packed.texts(name).collect::<Vec<_>>(),
                value.texts().iter().map(Str::as_str).collect::<Vec<_>>()
            );
        }
        assert_eq!(packed.get("sn"), None, "a name of the list the account does not hold");
        assert_eq!(packed.get("nope"), None, "a name outside the list");
        assert_eq!(packed.texts("description").count(), 0);
        assert_eq!(packed.to_attrs(), attrs);
        assert_eq!(packed.len(), 5);
        assert!(!packed.is_empty() && packed.contains_key("empty") && !packed.contains_key("sn"));
        assert_eq!(packed, PackedAttrs(Repr::Attrs(attrs.clone())), "equal to the same attributes as given");
        assert_eq!(format!("{packed:?}"), format!("{attrs:?}"));
        let order: Vec<&str> = packed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(order, attrs.keys().map(Name::as_str).collect::<Vec<_>>(), "in name order");
        assert!(PackedAttrs::pack(Attrs::new(), &names).is_empty());
    }

    /// A string that an earlier attribute (or an earlier string of the same one) holds is held
    /// once: the account reads exactly as given, by name, in order, as JSON.
    #[test]
    fn a_repeated_string_is_held_once_and_reads_as_given() {
        let display = "Åsa Ödmark-Lindqvist von Längstanamnet";
        let attrs = Attrs::from([
            ("cn", t(&[display])),
            ("displayName", t(&[display, "x", "x", "", ""])),
            ("description", t(&["ab", "ab", "abc", "abc"])),
            ("uid", t(&["asa.odm"])),
            ("mail", t(&["asa.odm"])),
        ]);
        let names: Arc<[Name]> = ["cn", "description", "displayName", "mail", "uid"].map(Name::from).into();
        let packed = PackedAttrs::pack(attrs.clone(), &names);
        let Repr::Texts { text, .. } = &packed.0 else { panic!("packed") };
        assert_eq!(text.matches(display).count(), 1, "the display name once");
        assert_eq!(text.matches("asa.odm").count(), 1);
        for (name, value) in &attrs {
            assert_eq!(packed.get(name).as_deref(), Some(value), "{name}");
            assert_eq!(
                packed.texts(name).collect::<Vec<_>>(),
                value.texts().iter().map(Str::as_str).collect::<Vec<_>>(),
                "{name}"
            );
        }
        assert_eq!(packed.to_attrs(), attrs);
        assert_eq!(serde_json::to_string(&packed).unwrap(), serde_json::to_string(&attrs).unwrap());
        let by_place: Vec<(usize, Vec<&str>)> = packed.by_place().map(|(p, s)| (p, s.collect())).collect();
        assert_eq!(by_place[2], (2, vec![display, "x", "x", "", ""]));
        // Packed from places too (a directory read), the same.
        let texts = attrs
            .iter()
            .map(|(n, v)| {
                let place = names.iter().position(|x| x == n).unwrap();
                (place, v.texts().iter().map(|s| s.to_string()).collect())
            })
            .collect();
        assert_eq!(PackedAttrs::pack_texts(&names, texts), packed);
    }

    /// What cannot be packed is kept as given and reads the same: a boolean, a name outside
    /// the shared list.
    #[test]
    fn what_cannot_be_packed_is_kept_as_given() {
        let names: Arc<[Name]> = ["active", "uid"].map(Name::from).into();
        let typed = Attrs::from([("active", Value::Bool(true)), ("uid", t(&["x"]))]);
        let kept = PackedAttrs::pack(typed.clone(), &names);
        assert!(!kept.is_packed());
        assert_eq!(kept.get("active").as_deref(), Some(&Value::Bool(true)));
        assert_eq!(kept.texts("uid").collect::<Vec<_>>(), ["x"]);
        let outside = PackedAttrs::pack(Attrs::from([("other", t(&["y"]))]), &names);
        assert!(!outside.is_packed());
        assert_eq!(outside.get("other").as_deref(), Some(&t(&["y"])));
        let huge = "x".repeat(MAX + 1);
        let big = PackedAttrs::from(Attrs::from([("uid", t(&[&huge]))]));
        assert!(!big.is_packed(), "a string longer than a number can say");
        assert_eq!(big.texts("uid").next(), Some(huge.as_str()));
        let just = "y".repeat(MAX);
        let fits = PackedAttrs::from(Attrs::from([("uid", t(&[&just, "z"]))]));
        assert!(fits.is_packed());
        assert_eq!(fits.texts("uid").collect::<Vec<_>>(), [just.as_str(), "z"]);
    }

    /// A create's attributes read as strings by name: a boolean or complex value (kept as
    /// given) has none, which an LDAP connector refuses by name; packing what cannot be packed
    /// keeps it as given.
    #[test]
    fn a_value_that_is_not_a_text_reads_as_no_strings_by_name() {
        let names: Arc<[Name]> = ["active", "uid"].map(Name::from).into();
        let typed = PackedAttrs::plain(Attrs::from([("active", Value::Bool(true)), ("uid", t(&["x", "y"]))]));
        let read: Vec<(&str, Option<Vec<&str>>)> =
            typed.texts_by_name().map(|(n, t)| (n.as_str(), t.map(|t| t.collect()))).collect();
        assert_eq!(read, [("active", None), ("uid", Some(vec!["x", "y"]))]);
        let kept = typed.clone().packed(&names);
        assert!(!kept.is_packed(), "a boolean cannot be packed");
        assert_eq!(kept, typed);
        assert_eq!(serde_json::to_string(&kept).unwrap(), r#"{"active":true,"uid":["x","y"]}"#);
    }

    /// Texts given by place that cannot be packed (a place given twice or outside the names, a
    /// string too long) are kept as given, as an `Attrs` would hold them: the last of a place.
    #[test]
    fn texts_by_place_that_cannot_be_packed_are_kept_as_an_attrs_would_hold_them() {
        let names: Arc<[Name]> = ["uid", "cn"].map(Name::from).into();
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let twice =
            PackedAttrs::pack_texts(&names, vec![(1, strings(&["a"])), (0, strings(&["u"])), (1, strings(&["b"]))]);
        assert!(!twice.is_packed());
        assert_eq!(twice.to_attrs(), Attrs::from([("cn", t(&["b"])), ("uid", t(&["u"]))]));
        let outside = PackedAttrs::pack_texts(&names, vec![(0, strings(&["u"])), (2, strings(&["x"]))]);
        assert_eq!(outside.to_attrs(), Attrs::from([("uid", t(&["u"]))]));
        let huge = "x".repeat(MAX + 1);
        let big = PackedAttrs::pack_texts(&names, vec![(0, vec![huge.clone()])]);
        assert!(!big.is_packed());
        assert_eq!(big.texts("uid").next(), Some(huge.as_str()));
        let fine = PackedAttrs::pack_texts(&names, vec![(1, strings(&["Anna Berg"])), (0, strings(&["anna"]))]);
        assert!(fine.is_packed());
        assert_eq!(fine, PackedAttrs::pack(Attrs::from([("uid", t(&["anna"])), ("cn", t(&["Anna Berg"]))]), &names));
        assert!(PackedAttrs::pack_texts(&names, Vec::new()).is_empty());
        let read: Vec<(usize, Vec<&str>)> = fine.by_place().map(|(p, t)| (p, t.collect())).collect();
        assert_eq!(read, [(1, vec!["Anna Berg"]), (0, vec!["anna"])], "in name order: cn, then uid");
        assert!(Arc::ptr_eq(fine.names().unwrap(), &names));
        assert_eq!((twice.names().is_none(), twice.by_place().count()), (true, 0), "kept as given");
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Any texts (empty, long, multi-byte, many values, absent attributes) pack and read
        /// back exactly: every value by name, every string borrowed, the whole in order, and
        /// names of the shared list the account does not hold are absent.
        #[test]
        fn any_texts_pack_and_read_back_exactly(
            held in proptest::collection::btree_map(
                0usize..12,
                proptest::collection::vec("(?s).{0,40}|[a-z]{0,300}", 0..4),
                0..10,
            ),
        ) {
            let names: Arc<[Name]> = (0..12).map(|i| Name::from(format!("attr{i}"))).collect();
            let attrs: Attrs = held
                .iter()
                .map(|(i, v)| (format!("attr{i}"), Value::Text(v.iter().cloned().collect())))
                .collect();
            let packed = PackedAttrs::pack(attrs.clone(), &names);
            prop_assert!(packed.is_packed());
            prop_assert_eq!(packed.to_attrs(), attrs.clone());
            for i in 0..12 {
                let name = format!("attr{i}");
                let got = packed.get(&name);
                prop_assert_eq!(got.as_deref(), attrs.get(&name));
                let want: Vec<&str> = attrs.get(&name).map(|v| v.texts().iter().map(Str::as_str).collect()).unwrap_or_default();
                prop_assert_eq!(packed.texts(&name).collect::<Vec<_>>(), want);
            }
            prop_assert_eq!(packed.len(), attrs.len());
            // The same texts given as places, in another order than the names': packed the same.
            let given: Vec<(usize, Vec<String>)> = held.iter().rev().map(|(i, v)| (*i, v.clone())).collect();
            let direct = PackedAttrs::pack_texts(&names, given);
            prop_assert!(direct.is_packed());
            prop_assert_eq!(direct.to_attrs(), attrs.clone());
            // A create's attributes: serialised as the `Attrs` (a plan's id hashes them), read
            // by name as strings the same whether kept as given or packed.
            let json = serde_json::to_string(&attrs).unwrap();
            prop_assert_eq!(serde_json::to_string(&packed).unwrap(), json.clone());
            let plain = PackedAttrs::plain(attrs.clone());
            prop_assert!(!plain.is_packed());
            prop_assert_eq!(serde_json::to_string(&plain).unwrap(), json);
            let texts = |p: &PackedAttrs| -> Vec<(String, Option<Vec<String>>)> {
                p.texts_by_name().map(|(n, t)| (n.to_string(), t.map(|t| t.map(str::to_string).collect()))).collect()
            };
            prop_assert_eq!(texts(&plain), texts(&packed));
            let repacked = plain.clone().packed(&names);
            prop_assert!(repacked.is_packed());
            prop_assert_eq!(&repacked, &plain);
            prop_assert_eq!(repacked.as_attrs().into_owned(), attrs.clone());
            prop_assert!(matches!(plain.as_attrs(), Cow::Borrowed(_)), "kept as given: borrowed");
            let order: Vec<Name> = direct.iter().map(|(n, _)| n.clone()).collect();
            prop_assert_eq!(order, attrs.keys().cloned().collect::<Vec<_>>());
        }
    }

    /// An observed account's attributes take less room packed than as an `Attrs` (the point).
    #[test]
    fn packed_is_smaller() {
        let attrs = Attrs::from([
            ("uid", t(&["anna.berg"])),
            ("cn", t(&["Anna Berg"])),
            ("sn", t(&["Berg"])),
            ("givenName", t(&["Anna"])),
            ("displayName", t(&["Anna Berg"])),
            ("mail", t(&["anna.berg@skola.example.se"])),
            ("employeeType", t(&["student"])),
            ("ou", t(&["SKOLA1"])),
        ]);
        let names: Arc<[Name]> = attrs.keys().cloned().collect();
        let PackedAttrs(Repr::Texts { text, .. }) = PackedAttrs::pack(attrs.clone(), &names) else { panic!() };
        assert!(text.len() < 110, "{}", text.len());
        assert!(attrs.len() * std::mem::size_of::<(Name, Value)>() > 2 * text.len());
        assert_eq!(std::mem::size_of::<PackedAttrs>(), 32);
    }
}
