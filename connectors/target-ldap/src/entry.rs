//! A search result entry taken apart by value. ldap3's `SearchEntry::construct` copies every
//! value into a new string and every attribute name into a hash map (at a million accounts,
//! a third of a read's time went to it), and panics on an entry that is not well formed. Here
//! the DN and the values keep the buffers the decoder made (a string from bytes is no copy),
//! names are compared where they lie, and an entry that is not well formed is an error.

use ldap3::ResultEntry;
use ldap3::asn1::{PL, StructureTag, TagClass};

/// What is wrong with an entry the server sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

/// An entry's DN and its attributes, read one at a time ([`Entry::next_attribute`]).
pub(crate) struct Entry {
    pub dn: String,
    attributes: std::vec::IntoIter<StructureTag>,
}

/// An attribute's values, as the bytes the server sent.
pub(crate) struct Values(std::vec::IntoIter<StructureTag>);

fn constructed(tag: StructureTag, what: &'static str) -> Result<Vec<StructureTag>, Malformed> {
    match tag.payload {
        PL::C(inner) => Ok(inner),
        PL::P(_) => Err(Malformed(what)),
    }
}

fn primitive(tag: StructureTag, what: &'static str) -> Result<Vec<u8>, Malformed> {
    match tag.payload {
        PL::P(bytes) => Ok(bytes),
        PL::C(_) => Err(Malformed(what)),
    }
}

impl Entry {
    /// The entry of a search result (`SearchResultEntry`: the DN, then a sequence of attributes
    /// each a name and a set of values).
    pub fn take(entry: ResultEntry) -> Result<Entry, Malformed> {
        Entry::from_tag(entry.0)
    }

    fn from_tag(tag: StructureTag) -> Result<Entry, Malformed> {
        if tag.class != TagClass::Application || tag.id != 4 {
            return Err(Malformed("not a search result entry"));
        }
        let mut parts = constructed(tag, "a search result entry that is not a sequence")?.into_iter();
        let dn = primitive(parts.next().ok_or(Malformed("an entry without a DN"))?, "a DN that is not a string")?;
        let dn = String::from_utf8(dn).map_err(|_| Malformed("a DN that is not UTF-8"))?;
        let attributes = match parts.next() {
            Some(list) => constructed(list, "attributes that are not a sequence")?.into_iter(),
            None => return Err(Malformed("an entry without its list of attributes")),
        };
        Ok(Entry { dn, attributes })
    }

    /// The next attribute: its name's bytes as the server spelled it, and its values.
    pub fn next_attribute(&mut self) -> Result<Option<(Vec<u8>, Values)>, Malformed> {
        let Some(attribute) = self.attributes.next() else { return Ok(None) };
        let mut parts = constructed(attribute, "an attribute that is not a sequence")?.into_iter();
        let name = primitive(
            parts.next().ok_or(Malformed("an attribute without a name"))?,
            "an attribute name that is not a string",
        )?;
        let values =
            constructed(parts.next().ok_or(Malformed("an attribute without values"))?, "values that are not a set")?;
        Ok(Some((name, Values(values.into_iter()))))
    }
}

impl Values {
    /// The values as text: a value that is not UTF-8 is an error (enid reads and writes text
    /// attributes only; a binary value read as absent would be overwritten).
    pub fn texts(self) -> Result<Vec<String>, Malformed> {
        self.0
            .map(|v| {
                let bytes = primitive(v, "a value that is not a string")?;
                String::from_utf8(bytes).map_err(|_| Malformed("a value that is not UTF-8 text"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(bytes: &[u8]) -> StructureTag {
        StructureTag { class: TagClass::Universal, id: 4, payload: PL::P(bytes.to_vec()) }
    }
    fn c(id: u64, class: TagClass, inner: Vec<StructureTag>) -> StructureTag {
        StructureTag { class, id, payload: PL::C(inner) }
    }
    fn attribute(name: &str, values: &[&[u8]]) -> StructureTag {
        let set = c(17, TagClass::Universal, values.iter().map(|v| p(v)).collect());
        c(16, TagClass::Universal, vec![p(name.as_bytes()), set])
    }
    fn entry(dn: &[u8], attributes: Vec<StructureTag>) -> StructureTag {
        c(4, TagClass::Application, vec![p(dn), c(16, TagClass::Universal, attributes)])
    }

    /// A well-formed entry reads as ldap3's own reading would: DN, names as spelled, values in
    /// the order sent, an attribute without values.
    #[test]
    fn an_entry_reads_as_sent() {
        let e = entry(
            b"uid=anna,ou=people,dc=example,dc=org",
            vec![
                attribute("uid", &[b"anna"]),
                attribute("OU", &[b"7A", "Skola Åsen".as_bytes()]),
                attribute("cn", &[]),
            ],
        );
        let mut e = Entry::from_tag(e).unwrap();
        assert_eq!(e.dn, "uid=anna,ou=people,dc=example,dc=org");
        let mut read = Vec::new();
        while let Some((name, values)) = e.next_attribute().unwrap() {
            read.push((String::from_utf8(name).unwrap(), values.texts().unwrap()));
        }
        let want: Vec<(String, Vec<String>)> = vec![
            ("uid".into(), vec!["anna".into()]),
            ("OU".into(), vec!["7A".into(), "Skola Åsen".into()]),
            ("cn".into(), vec![]),
        ];
        assert_eq!(read, want);
    }

    /// What a hostile or broken server could send is an error naming what is wrong, never a
    /// panic and never a value read as absent.
    #[test]
    fn a_malformed_entry_is_an_error() {
        let wrong_tag = c(5, TagClass::Application, vec![]);
        assert_eq!(Entry::from_tag(wrong_tag).err(), Some(Malformed("not a search result entry")));
        let primitive_entry = StructureTag { class: TagClass::Application, id: 4, payload: PL::P(vec![]) };
        assert!(Entry::from_tag(primitive_entry).is_err());
        let no_dn = c(4, TagClass::Application, vec![]);
        assert_eq!(Entry::from_tag(no_dn).err(), Some(Malformed("an entry without a DN")));
        assert_eq!(Entry::from_tag(entry(&[0xff, 0xfe], vec![])).err(), Some(Malformed("a DN that is not UTF-8")));
        let no_list = c(4, TagClass::Application, vec![p(b"uid=a")]);
        assert!(Entry::from_tag(no_list).is_err());
        let mut binary = Entry::from_tag(entry(b"uid=a", vec![attribute("cn", &[b"ok", &[0xc3, 0x28]])])).unwrap();
        let (_, values) = binary.next_attribute().unwrap().unwrap();
        assert_eq!(values.texts(), Err(Malformed("a value that is not UTF-8 text")));
        let bare = c(16, TagClass::Universal, vec![p(b"cn")]);
        let mut nameless = Entry::from_tag(entry(b"uid=a", vec![bare])).unwrap();
        assert_eq!(nameless.next_attribute().err(), Some(Malformed("an attribute without values")));
        let mut flat = Entry::from_tag(entry(b"uid=a", vec![p(b"cn")])).unwrap();
        assert!(flat.next_attribute().is_err());
    }
}
