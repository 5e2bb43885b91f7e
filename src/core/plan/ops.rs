//! [`Ops`]: a plan's operations in plan order, its creates packed.
//!
//! A first run's plan is a million creates, held from the planning until they are sent. As
//! [`PlannedOp`]s they were 360 bytes in place each (the account's names, schools, placement,
//! reason, school and fingerprint each a three-word string) in a vector of 2^20: some 380 MB
//! before their attributes. Here a create is a [`PackedCreate`]: its identity's shared id, its
//! attributes' names (shared by the plan's creates), and every string of it in one allocation
//! of exactly their bytes (a length and the bytes each), 72 bytes in place. An attribute's
//! string that is one of the create's own (the username in `uid`, the names in `sn`, `cn`, the
//! id in the owner attribute) is a one-byte reference to it: a create's attributes cost some
//! 30 bytes beside its names, where packed on their own they were some 130 and an allocation
//! ([`CreateAttrs`]). It is made whole again
//! ([`PackedCreate::unpack`]) where an operation is read whole: its JSON (plan id, fingerprint,
//! display), its send (a segment at a time). What is read of every operation in passes over a
//! million (action, target, identity, username, school, the flags) is read in place
//! ([`OpHead`]).
//!
//! Creates sort before every other action ([`Action::Create`] is the first), so the plan's order
//! is the creates (by target and username) and then the rest (by action, target and username),
//! each sorted on its own ([`Ops::sort`]).

use super::{Action, Extra, PlannedOp};
use crate::core::model::IdentityId;
use connector_api::source::{Role, Roles};
use connector_api::value::Str;
use connector_api::{AccountSpec, Name, PackedAttrs, TargetOp};
use serde::Serialize;
use std::borrow::Cow;
use std::sync::Arc;

/// A plan's operations, in plan order (see the module's text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ops {
    /// The creates, packed where they can be ([`Create`]).
    creates: Vec<Create>,
    /// Every other operation.
    rest: Vec<PlannedOp>,
}

/// A create, packed, or whole when it carries what a packed one cannot (a first password,
/// group fields): never in a plan enid makes, but a plan holds whatever it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Create {
    Packed(PackedCreate),
    Whole(Box<PlannedOp>),
}

/// What is read of an operation in place, without making it whole.
#[derive(Debug, Clone, Copy)]
pub struct OpHead<'a> {
    pub action: Action,
    pub target: &'a str,
    pub identity: &'a IdentityId,
    pub username: &'a str,
    pub school: &'a str,
    pub protected: bool,
    pub needs_approval: bool,
    pub disabled_outside: bool,
    pub renames_entry: bool,
}

impl<'a> OpHead<'a> {
    fn of(op: &'a PlannedOp) -> OpHead<'a> {
        OpHead {
            action: op.action,
            target: &op.target,
            identity: &op.identity,
            username: &op.username,
            school: &op.school,
            protected: op.protected,
            needs_approval: op.needs_approval,
            disabled_outside: op.disabled_outside,
            renames_entry: op.renames_entry,
        }
    }
}

impl Ops {
    pub fn new() -> Ops {
        Ops::default()
    }

    /// How many operations.
    pub fn len(&self) -> usize {
        self.creates.len() + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.creates.is_empty() && self.rest.is_empty()
    }

    /// How many creates (the first `creates()` operations in plan order, once sorted).
    pub fn creates(&self) -> usize {
        self.creates.len()
    }

    /// Adds an operation (a create is packed now). The order is the plan's once [`Ops::sort`]ed.
    pub fn push(&mut self, op: PlannedOp) {
        if op.action == Action::Create {
            self.creates.push(Create::of(op));
        } else {
            self.rest.push(op);
        }
    }

    /// Moves every operation of `other` in after this one's.
    pub fn append(&mut self, other: &mut Ops) {
        if other.creates.len() > self.creates.len() {
            // The larger list is kept, the smaller moved onto it: a million creates are not
            // copied into a second vector while the first is held.
            std::mem::swap(&mut self.creates, &mut other.creates);
            self.creates.splice(0..0, other.creates.drain(..));
        } else {
            self.creates.append(&mut other.creates);
        }
        self.rest.append(&mut other.rest);
    }

    /// The operations in plan order, each made whole (a create is unpacked as it is read).
    pub fn iter(&self) -> Iter<'_> {
        Iter { creates: self.creates.iter(), rest: self.rest.iter() }
    }

    /// The operations in plan order, read in place.
    pub fn heads(&self) -> impl Iterator<Item = OpHead<'_>> + '_ {
        self.creates.iter().map(Create::head).chain(self.rest.iter().map(OpHead::of))
    }

    /// The `i`th operation in plan order, made whole.
    pub fn get(&self, i: usize) -> Option<Cow<'_, PlannedOp>> {
        match self.creates.get(i) {
            Some(c) => Some(c.whole()),
            None => self.rest.get(i - self.creates.len()).map(Cow::Borrowed),
        }
    }

    /// The `i`th operation in plan order, read in place.
    pub fn head(&self, i: usize) -> Option<OpHead<'_>> {
        match self.creates.get(i) {
            Some(c) => Some(c.head()),
            None => self.rest.get(i - self.creates.len()).map(OpHead::of),
        }
    }

    /// The operations but the creates, in plan order once sorted.
    pub fn rest(&self) -> &[PlannedOp] {
        &self.rest
    }

    /// The operations but the creates, to change in place (a change that makes one a create
    /// is not one to make here).
    pub fn rest_mut(&mut self) -> &mut Vec<PlannedOp> {
        &mut self.rest
    }

    /// Keeps the operations `keep` takes, in order. Each create is made whole to be asked:
    /// [`Ops::retain_heads`] asks in place.
    pub fn retain(&mut self, mut keep: impl FnMut(&PlannedOp) -> bool) {
        self.creates.retain(|c| keep(&c.whole()));
        self.rest.retain(keep);
    }

    /// Keeps the operations `keep` takes, read in place, in order.
    pub fn retain_heads(&mut self, mut keep: impl FnMut(&OpHead<'_>) -> bool) {
        self.creates.retain(|c| keep(&c.head()));
        self.rest.retain(|o| keep(&OpHead::of(o)));
    }

    /// Changes the operations `pick` takes (read in place) with `change`; a create is made
    /// whole for it and packed again.
    pub fn edit_where(&mut self, pick: impl Fn(&OpHead<'_>) -> bool, mut change: impl FnMut(&mut PlannedOp)) {
        for c in &mut self.creates {
            if pick(&c.head()) {
                let mut op = c.whole().into_owned();
                change(&mut op);
                *c = Create::of(op);
            }
        }
        for o in &mut self.rest {
            if pick(&OpHead::of(o)) {
                change(o);
            }
        }
    }

    /// Sets each operation's fingerprint, in plan order.
    pub fn set_fingerprints(&mut self, prints: impl IntoIterator<Item = Str>) {
        let mut prints = prints.into_iter();
        for c in &mut self.creates {
            let Some(print) = prints.next() else { return };
            let kept = match c {
                Create::Packed(p) => p.set_fingerprint(&print),
                Create::Whole(op) => {
                    op.fingerprint = print.clone();
                    true
                }
            };
            if !kept {
                let mut op = c.whole().into_owned();
                op.fingerprint = print;
                *c = Create::Whole(Box::new(op));
            }
        }
        for (o, print) in self.rest.iter_mut().zip(prints) {
            o.fingerprint = print;
        }
    }

    /// Puts the operations in plan order: by action, target and username, ties in the order
    /// given (a list already in order is left).
    pub fn sort(&mut self) {
        super::sort_operations(&mut self.rest);
        let sorted = self.creates.is_sorted_by(|a, b| {
            let (a, b) = (a.head(), b.head());
            (a.target, a.username) <= (b.target, b.username)
        });
        if !sorted {
            self.creates.sort_by_cached_key(|c| {
                let h = c.head();
                (Str::from(h.target), Str::from(h.username))
            });
        }
    }

    /// The operations at positions `range` in plan order, each made whole as it is read.
    pub fn range(&self, range: std::ops::Range<usize>) -> Iter<'_> {
        let n = self.creates.len();
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        Iter {
            creates: self.creates[start.min(n)..end.min(n)].iter(),
            rest: self.rest[start.max(n) - n..end.max(n) - n].iter(),
        }
    }

    /// `f` of the operations at positions `range` cut into parts of `per`, in plan order, each
    /// made whole as `f` reads it, on every core ([`crate::core::par::map_parts`]).
    pub fn map_range_parts<R: Send>(
        &self,
        range: std::ops::Range<usize>,
        per: usize,
        f: impl Fn(Iter<'_>) -> R + Sync,
    ) -> Vec<R> {
        let per = per.max(1);
        let parts: Vec<std::ops::Range<usize>> =
            range.clone().step_by(per).map(|s| s..(s + per).min(range.end)).collect();
        crate::core::par::map_parts(&parts, 1, |p| f(self.range(p[0].clone()))).into_iter().collect()
    }

    /// `f` of all the operations cut into parts of `per` ([`Ops::map_range_parts`]).
    pub fn map_parts<R: Send>(&self, per: usize, f: impl Fn(Iter<'_>) -> R + Sync) -> Vec<R> {
        self.map_range_parts(0..self.len(), per, f)
    }

    /// The operations, made whole (a test's or a small plan's).
    pub fn to_vec(&self) -> Vec<PlannedOp> {
        self.iter().map(Cow::into_owned).collect()
    }
}

/// The operations in plan order, each made whole ([`Ops::iter`]).
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    creates: std::slice::Iter<'a, Create>,
    rest: std::slice::Iter<'a, PlannedOp>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Cow<'a, PlannedOp>;
    fn next(&mut self) -> Option<Cow<'a, PlannedOp>> {
        match self.creates.next() {
            Some(c) => Some(c.whole()),
            None => self.rest.next().map(Cow::Borrowed),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.creates.len() + self.rest.len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Ops {
    type Item = Cow<'a, PlannedOp>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<PlannedOp> for Ops {
    fn from_iter<I: IntoIterator<Item = PlannedOp>>(ops: I) -> Ops {
        let mut all = Ops::new();
        all.extend(ops);
        all
    }
}

impl Extend<PlannedOp> for Ops {
    fn extend<I: IntoIterator<Item = PlannedOp>>(&mut self, ops: I) {
        for op in ops {
            self.push(op);
        }
    }
}

impl From<Vec<PlannedOp>> for Ops {
    fn from(ops: Vec<PlannedOp>) -> Ops {
        ops.into_iter().collect()
    }
}

impl Serialize for Ops {
    /// As the list of whole operations it is.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl Create {
    fn of(op: PlannedOp) -> Create {
        match PackedCreate::pack(op) {
            Ok(p) => Create::Packed(p),
            Err(op) => Create::Whole(op),
        }
    }

    fn head(&self) -> OpHead<'_> {
        match self {
            Create::Packed(p) => p.head(),
            Create::Whole(op) => OpHead::of(op),
        }
    }

    fn whole(&self) -> Cow<'_, PlannedOp> {
        match self {
            Create::Packed(p) => Cow::Owned(p.unpack()),
            Create::Whole(op) => Cow::Borrowed(op),
        }
    }
}

/// A create as a plan holds it (see the module's text): 72 bytes in place and one allocation
/// for all its strings (its attributes' among them, see [`CreateAttrs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PackedCreate {
    identity: IdentityId,
    /// The strings: target, username, school, reason, given, family and display name, then the
    /// account's own username, id and placement where the flags say so, then the schools (a
    /// count, then each). Each a length ([`put_len`]) and its bytes.
    text: Box<[u8]>,
    attrs: CreateAttrs,
    /// The fingerprint's bytes (it is their hex), when [`FINGERPRINT`] is set.
    fingerprint: [u8; 10],
    flags: u16,
    roles: u8,
}

const PROTECTED: u16 = 1;
const NEEDS_APPROVAL: u16 = 1 << 1;
const DISABLED_OUTSIDE: u16 = 1 << 2;
const RENAMES_ENTRY: u16 = 1 << 3;
const ENABLED: u16 = 1 << 4;
const SPEC_PROTECTED: u16 = 1 << 5;
const FINGERPRINT: u16 = 1 << 6;
/// The account's username is not the operation's (never in a plan enid makes).
const OWN_USERNAME: u16 = 1 << 7;
/// The account's id is not the identity's (never in a plan enid makes).
const OWN_ID: u16 = 1 << 8;
const PLACEMENT: u16 = 1 << 9;

/// How many of a create's strings an attribute's string may be a reference to (see
/// [`CreateAttrs::InText`]); a length of a string written out follows them.
const REFS: usize = 6;

/// A create's attributes as a [`PackedCreate`] holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CreateAttrs {
    /// Packed attributes in the create's text, after its schools: their count, then each
    /// attribute's place among these names (shared by the plan's creates), its count of
    /// strings and each string, as a number below [`REFS`] where it is one of the create's own
    /// (the username, the given, family and display names, the id, the school: most of an
    /// account's values are), otherwise [`REFS`] plus its length, then its bytes.
    InText(Arc<[Name]>),
    /// Attributes not packed (a boolean or complex value), as given.
    Kept(Box<PackedAttrs>),
}

const STUDENT: u8 = 1;
const STAFF: u8 = 2;

impl PackedCreate {
    /// The create packed, or given back boxed when it carries what a packed one does not.
    fn pack(op: PlannedOp) -> Result<PackedCreate, Box<PlannedOp>> {
        let packable = op.action == Action::Create
            && matches!(&op.op, TargetOp::Create { account } if account.initial_password.is_none())
            && op.extra == Extra::default();
        if !packable {
            return Err(Box::new(op));
        }
        let PlannedOp {
            action: _,
            target,
            identity,
            username,
            school,
            reason,
            op: TargetOp::Create { account },
            extra: _,
            protected,
            needs_approval,
            disabled_outside,
            renames_entry,
            fingerprint,
        } = op
        else {
            unreachable!("checked above")
        };
        let mut flags = 0;
        for (set, flag) in [
            (protected, PROTECTED),
            (needs_approval, NEEDS_APPROVAL),
            (disabled_outside, DISABLED_OUTSIDE),
            (renames_entry, RENAMES_ENTRY),
            (account.enabled, ENABLED),
            (account.protected, SPEC_PROTECTED),
            (account.username != username, OWN_USERNAME),
            (*account.id != *identity, OWN_ID),
            (account.placement.is_some(), PLACEMENT),
        ] {
            if set {
                flags |= flag;
            }
        }
        let mut text = Vec::with_capacity(
            [&target, &username, &school, &reason, &account.given_name, &account.family_name, &account.display_name]
                .iter()
                .map(|s| s.len() + 1)
                .sum::<usize>()
                + account.schools.iter().map(|s| s.len() + 1).sum::<usize>()
                + 1,
        );
        for s in
            [&target, &username, &school, &reason, &account.given_name, &account.family_name, &account.display_name]
        {
            put(&mut text, s);
        }
        if flags & OWN_USERNAME != 0 {
            put(&mut text, &account.username);
        }
        if flags & OWN_ID != 0 {
            put(&mut text, &account.id);
        }
        if let Some(p) = &account.placement {
            put(&mut text, p);
        }
        put_len(&mut text, account.schools.len());
        for s in &account.schools {
            put(&mut text, s);
        }
        let attrs = match account.attrs.names() {
            Some(names) => {
                let refs = [
                    account.username.as_str(),
                    account.given_name.as_str(),
                    account.family_name.as_str(),
                    account.display_name.as_str(),
                    &*account.id,
                    school.as_str(),
                ];
                let held = account.attrs.by_place().collect::<Vec<_>>();
                put_len(&mut text, held.len());
                for (place, strings) in held {
                    put_len(&mut text, place);
                    put_len(&mut text, strings.clone().count());
                    for s in strings {
                        match refs.iter().position(|r| *r == s) {
                            Some(at) => put_len(&mut text, at),
                            None => {
                                put_len(&mut text, REFS + s.len());
                                text.extend_from_slice(s.as_bytes());
                            }
                        }
                    }
                }
                CreateAttrs::InText(Arc::clone(names))
            }
            None => CreateAttrs::Kept(Box::new(account.attrs)),
        };
        let roles = u8::from(account.roles.contains(Role::Student)) * STUDENT
            + u8::from(account.roles.contains(Role::Staff)) * STAFF;
        let mut packed =
            PackedCreate { identity, text: text.into_boxed_slice(), attrs, fingerprint: [0; 10], flags, roles };
        if !fingerprint.is_empty() && !packed.set_fingerprint(&fingerprint) {
            let mut op = packed.unpack();
            op.fingerprint = fingerprint;
            return Err(Box::new(op));
        }
        Ok(packed)
    }

    /// Sets the fingerprint: `false` (and nothing set) when it is not the hex of ten bytes.
    fn set_fingerprint(&mut self, print: &str) -> bool {
        let b = print.as_bytes();
        if b.len() != 20 {
            return false;
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut bytes = [0u8; 10];
        for (i, pair) in b.chunks(2).enumerate() {
            let (Some(hi), Some(lo)) = (digit(pair[0]), digit(pair[1])) else { return false };
            bytes[i] = hi << 4 | lo;
        }
        self.fingerprint = bytes;
        self.flags |= FINGERPRINT;
        true
    }

    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    fn head(&self) -> OpHead<'_> {
        let mut r = Reader(&self.text);
        let (target, username, school) = (r.str(), r.str(), r.str());
        OpHead {
            action: Action::Create,
            target,
            identity: &self.identity,
            username,
            school,
            protected: self.has(PROTECTED),
            needs_approval: self.has(NEEDS_APPROVAL),
            disabled_outside: self.has(DISABLED_OUTSIDE),
            renames_entry: self.has(RENAMES_ENTRY),
        }
    }

    fn unpack(&self) -> PlannedOp {
        let mut r = Reader(&self.text);
        let [target, username, school, reason, given_name, family_name, display_name] = [(); 7].map(|()| r.str());
        let account_username = if self.has(OWN_USERNAME) { Str::from(r.str()) } else { Str::from(username) };
        let id = if self.has(OWN_ID) { r.str().into() } else { self.identity.shared() };
        let placement = self.has(PLACEMENT).then(|| r.str().into());
        let schools = (0..r.len()).map(|_| Str::from(r.str())).collect();
        let attrs = match &self.attrs {
            CreateAttrs::InText(names) => {
                let refs = [account_username.as_str(), given_name, family_name, display_name, &*id, school];
                let held = (0..r.len())
                    .map(|_| {
                        let place = r.len();
                        let strings = (0..r.len())
                            .map(|_| match r.len() {
                                at if at < REFS => refs[at].to_string(),
                                n => r.bytes(n - REFS).to_string(),
                            })
                            .collect();
                        (place, strings)
                    })
                    .collect();
                PackedAttrs::pack_texts(names, held)
            }
            CreateAttrs::Kept(attrs) => PackedAttrs::clone(attrs),
        };
        let mut roles = Roles::default();
        for (bit, role) in [(STUDENT, Role::Student), (STAFF, Role::Staff)] {
            if self.roles & bit != 0 {
                roles.insert(role);
            }
        }
        PlannedOp {
            action: Action::Create,
            target: target.into(),
            identity: self.identity.clone(),
            username: username.into(),
            school: school.into(),
            reason: reason.into(),
            op: TargetOp::Create {
                account: AccountSpec {
                    id,
                    username: account_username,
                    given_name: given_name.into(),
                    family_name: family_name.into(),
                    display_name: display_name.into(),
                    roles,
                    schools,
                    enabled: self.has(ENABLED),
                    protected: self.has(SPEC_PROTECTED),
                    attrs,
                    placement,
                    initial_password: None,
                },
            },
            extra: Extra::default(),
            protected: self.has(PROTECTED),
            needs_approval: self.has(NEEDS_APPROVAL),
            disabled_outside: self.has(DISABLED_OUTSIDE),
            renames_entry: self.has(RENAMES_ENTRY),
            fingerprint: if self.has(FINGERPRINT) { crate::core::id::hex(&self.fingerprint) } else { Str::default() },
        }
    }
}

/// A length: seven bits a byte, the low ones first, the top bit set on every byte but the last.
fn put_len(text: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        text.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    text.push(n as u8);
}

fn put(text: &mut Vec<u8>, s: &str) {
    put_len(text, s.len());
    text.extend_from_slice(s.as_bytes());
}

/// Reads a [`PackedCreate`]'s text back, in the order it was written. Only `pack` writes one, so
/// every length is a boundary of whole strings in it.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn len(&mut self) -> usize {
        let mut n = 0;
        let mut shift = 0;
        while let Some((&b, rest)) = self.0.split_first() {
            self.0 = rest;
            n |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        n
    }

    fn str(&mut self) -> &'a str {
        let n = self.len();
        self.bytes(n)
    }

    /// The next `n` bytes as a string.
    fn bytes(&mut self, n: usize) -> &'a str {
        let n = n.min(self.0.len());
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        // Written from a `str` whole: always text.
        std::str::from_utf8(s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_api::Attrs;

    fn create(target: &str, username: &str, id: &str) -> PlannedOp {
        let identity = IdentityId::from(id);
        let mut attrs = Attrs::new();
        attrs.insert("uid", connector_api::Value::text(username));
        attrs.insert("cn", connector_api::Value::text(format!("{username} Långnamn-Åberg")));
        attrs.insert("sn", connector_api::Value::text("Ödmark-Lindqvist von Längstanamnet"));
        attrs.insert("employeeNumber", connector_api::Value::text(id));
        let many = ["S1", "Åsa", "S1", "x".repeat(200).as_str(), ""].map(Str::from);
        attrs.insert("departmentNumber", connector_api::Value::Text(many.into_iter().collect()));
        let names: Arc<[connector_api::Name]> =
            ["cn", "departmentNumber", "employeeNumber", "mail", "sn", "uid"].into_iter().map(Into::into).collect();
        PlannedOp {
            action: Action::Create,
            target: target.into(),
            identity: identity.clone(),
            username: username.into(),
            school: "S1".into(),
            reason: "new person".into(),
            op: TargetOp::Create {
                account: AccountSpec {
                    id: identity.shared(),
                    username: username.into(),
                    given_name: "Åsa".into(),
                    family_name: "Ödmark-Lindqvist von Längstanamnet".into(),
                    display_name: "Åsa Ödmark-Lindqvist von Längstanamnet".into(),
                    roles: [Role::Staff].into_iter().collect(),
                    schools: connector_api::source::smallvec!["S1".into(), "S2".into()],
                    enabled: true,
                    protected: false,
                    attrs: PackedAttrs::pack(attrs, &names),
                    placement: Some("ou=S1,ou=people,dc=example,dc=org".into()),
                    initial_password: None,
                },
            },
            extra: Extra::default(),
            protected: false,
            needs_approval: true,
            disabled_outside: false,
            renames_entry: false,
            fingerprint: Str::default(),
        }
    }

    #[test]
    fn a_create_comes_back_whole_as_it_went_in_and_small() {
        assert!(std::mem::size_of::<Create>() <= 72, "{}", std::mem::size_of::<Create>());
        let op = create("directory", "asa.odm", "0c5e-id");
        let Create::Packed(p) = Create::of(op.clone()) else { panic!("packed") };
        assert_eq!(p.unpack(), op);
        assert!(matches!(p.attrs, CreateAttrs::InText(_)), "the attributes in the create's text");
        // Serialised alike, so the plan's id is the same (the names in the same order).
        assert_eq!(serde_json::to_string(&p.unpack()).unwrap(), serde_json::to_string(&op).unwrap());
        // The strings that are the create's own are references: the text holds the long
        // family name twice (the family and the display name), though the attribute `sn` holds it too.
        let long = "Ödmark-Lindqvist von Längstanamnet".as_bytes();
        assert_eq!(p.text.windows(long.len()).filter(|w| *w == long).count(), 2);
        // Attributes that are not all texts are kept as they are.
        let mut typed = op.clone();
        if let TargetOp::Create { account } = &mut typed.op {
            account.attrs = PackedAttrs::from([("active", connector_api::Value::Bool(true))]);
        }
        let Create::Packed(p) = Create::of(typed.clone()) else { panic!("packed") };
        assert!(matches!(p.attrs, CreateAttrs::Kept(_)));
        assert_eq!(p.unpack(), typed);
        let TargetOp::Create { account } = &p.unpack().op else { panic!() };
        assert!(Arc::ptr_eq(&account.id, &p.identity.shared()), "the identity's id, shared");
        let head = p.head();
        assert_eq!(
            (head.target, head.username, head.school, head.needs_approval),
            ("directory", "asa.odm", "S1", true)
        );
        // Every flag, the account's own username and id, no placement, no schools, no roles.
        let mut odd = op.clone();
        (odd.protected, odd.needs_approval, odd.disabled_outside, odd.renames_entry) = (true, false, true, true);
        if let TargetOp::Create { account } = &mut odd.op {
            account.username = "other".into();
            account.id = Arc::from("another-id");
            account.placement = None;
            account.schools.clear();
            account.roles = Roles::default();
            account.enabled = false;
            account.protected = true;
        }
        odd.username = "x".repeat(300).into(); // a length of two bytes
        let Create::Packed(p) = Create::of(odd.clone()) else { panic!("packed") };
        assert_eq!(p.unpack(), odd);
        // A fingerprint is kept as its bytes; one that is not hex keeps the create whole.
        let mut printed = op.clone();
        printed.fingerprint = "0123456789abcdef0a1b".into();
        assert!(matches!(Create::of(printed.clone()), Create::Packed(p) if p.unpack() == printed));
        printed.fingerprint = "not a fingerprint".into();
        assert!(matches!(Create::of(printed.clone()), Create::Whole(w) if *w == printed));
        // A first password (never in a plan) keeps it whole too.
        let mut secret = op;
        if let TargetOp::Create { account } = &mut secret.op {
            account.initial_password = Some(Box::new(connector_api::Secret::new("pw")));
        }
        assert!(matches!(Create::of(secret), Create::Whole(_)));
    }

    #[test]
    fn the_order_is_the_plans_whatever_order_they_come_in() {
        let mut other = PlannedOp::for_test(Action::Disable, "directory", "d1", TargetOp::Disable { key: "k".into() });
        other.username = "a".into();
        let ops = vec![
            create("directory", "bo", "i2"),
            other.clone(),
            create("cloud", "zed", "i3"),
            create("directory", "al", "i1"),
            create("directory", "al", "i0"),
        ];
        let mut all: Ops = ops.clone().into();
        all.sort();
        let mut expected = ops;
        super::super::sort_operations(&mut expected);
        assert_eq!(all.to_vec(), expected);
        assert_eq!(all.heads().map(|h| h.identity.as_str()).collect::<Vec<_>>(), ["i3", "i1", "i0", "i2", "d1"]);
        assert_eq!((all.len(), all.creates(), all.rest().len()), (5, 4, 1));
        assert_eq!(all.get(4).map(|o| o.into_owned()), Some(other));
        assert_eq!(all.head(1).map(|h| h.username), Some("al"));
        // As JSON: the whole operations' list.
        assert_eq!(serde_json::to_value(&all).unwrap(), serde_json::to_value(&expected).unwrap());
        // Kept, changed and fingerprinted in plan order.
        let mut kept = all.clone();
        kept.retain_heads(|h| h.identity.as_str() != "i1");
        kept.retain(|o| o.identity.as_str() != "i3");
        assert_eq!(kept.heads().map(|h| h.identity.as_str()).collect::<Vec<_>>(), ["i0", "i2", "d1"]);
        kept.edit_where(|h| h.identity.as_str() == "i2", |o| o.reason = "changed".into());
        assert_eq!(kept.get(1).unwrap().reason, "changed");
        kept.set_fingerprints(["00000000000000000001", "00000000000000000002", "00000000000000000003"].map(Str::from));
        assert_eq!(kept.iter().map(|o| o.fingerprint.clone()).collect::<Vec<_>>()[2], "00000000000000000003");
        assert_eq!(kept.get(0).unwrap().fingerprint, "00000000000000000001");
        let parts = all.map_parts(2, |ops| ops.map(|o| o.identity.to_string()).collect::<Vec<_>>());
        assert_eq!(parts, [vec!["i3", "i1"], vec!["i0", "i2"], vec!["d1"]], "parts across the creates' end");
        assert_eq!(all.range(3..9).map(|o| o.identity.to_string()).collect::<Vec<_>>(), ["i2", "d1"]);
        assert_eq!(all.range(9..12).count(), 0, "past the end");
        // Appended either way round, the largest list kept.
        let mut small: Ops = vec![create("directory", "cy", "i9")].into();
        let mut big = all.clone();
        small.append(&mut big);
        assert_eq!(
            small.heads().map(|h| h.identity.as_str()).collect::<Vec<_>>(),
            ["i9", "i3", "i1", "i0", "i2", "d1"]
        );
        assert!(big.is_empty());
    }
}
