//! The server's data at run time: one table per entity type (rows keep their place so that a
//! page token can hold a position; a deleted row is marked, not removed), the log of deletions
//! that `/deletedEntities` lists, the cache of each row's JSON (so that a listing of 100,000
//! persons copies bytes instead of serialising), and the filters of the listing endpoints.

use crate::model::*;
use crate::query::ListQuery;
use crate::render::{self, Ctx};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What every entity shares.
pub(crate) trait Entity {
    fn id(&self) -> &str;
    fn meta(&self) -> &Meta;
    fn meta_mut(&mut self) -> &mut Meta;
    /// The entity's own `startDate`/`endDate` (for the date filters).
    fn dates(&self) -> (Option<NaiveDate>, Option<NaiveDate>);
}

macro_rules! entity {
    ($t:ty, $dates:expr) => {
        impl Entity for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn meta(&self) -> &Meta {
                &self.meta
            }
            fn meta_mut(&mut self) -> &mut Meta {
                &mut self.meta
            }
            fn dates(&self) -> (Option<NaiveDate>, Option<NaiveDate>) {
                let f: fn(&$t) -> (Option<NaiveDate>, Option<NaiveDate>) = $dates;
                f(self)
            }
        }
    };
}
entity!(Organisation, |o| (o.start_date, o.end_date));
entity!(Person, |_| (None, None));
entity!(Duty, |d| (Some(d.start_date), d.end_date));
entity!(Group, |g| (Some(g.start_date), g.end_date));
entity!(Activity, |a| (Some(a.start_date), a.end_date));
entity!(Placement, |p| (Some(p.start_date), p.end_date));

/// One entity type's rows.
#[derive(Debug)]
pub(crate) struct Table<T> {
    /// Every row ever held, in listing order; a row keeps its index for the server's life.
    pub rows: Vec<T>,
    /// Whether each row was deleted.
    pub deleted: Vec<bool>,
    /// The JSON of a row as a plain listing writes it; cleared when the row changes.
    pub cache: Vec<Option<Vec<u8>>>,
    /// Row index by id.
    index: HashMap<String, usize>,
}

impl<T: Entity> Table<T> {
    fn new(rows: Vec<T>) -> Table<T> {
        let index = rows.iter().enumerate().map(|(i, r)| (r.id().to_string(), i)).collect();
        let n = rows.len();
        Table { rows, deleted: vec![false; n], cache: vec![None; n], index }
    }

    /// The live row with this id.
    pub fn get(&self, id: &str) -> Option<&T> {
        self.position(id).map(|i| &self.rows[i])
    }

    /// The index of the live row with this id.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied().filter(|&i| !self.deleted[i])
    }

    /// Changes a live row, stamping `meta.modified` with `now` when `bump`.
    pub fn change<R>(&mut self, id: &str, now: DateTime<Utc>, bump: bool, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let i = self.position(id)?;
        let r = f(&mut self.rows[i]);
        if bump {
            self.rows[i].meta_mut().modified = now;
        }
        self.cache[i] = None;
        Some(r)
    }

    /// Adds a row (an id already present is refused).
    pub fn add(&mut self, row: T) -> bool {
        if self.index.contains_key(row.id()) {
            return false;
        }
        self.index.insert(row.id().to_string(), self.rows.len());
        self.rows.push(row);
        self.deleted.push(false);
        self.cache.push(None);
        true
    }

    pub fn live(&self) -> impl Iterator<Item = &T> {
        self.rows.iter().zip(&self.deleted).filter(|(_, d)| !**d).map(|(r, _)| r)
    }

    fn clear_cache(&mut self) {
        self.cache.iter_mut().for_each(|c| *c = None);
    }
}

/// A deletion, as `/deletedEntities` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Deletion {
    /// What was deleted.
    pub kind: Kind,
    /// Its id.
    pub id: String,
    /// When, by the server's clock.
    pub at: DateTime<Utc>,
}

/// All data.
#[derive(Debug)]
pub(crate) struct Store {
    /// The tables, one per entity type.
    pub organisations: Table<Organisation>,
    pub persons: Table<Person>,
    pub duties: Table<Duty>,
    pub groups: Table<Group>,
    pub activities: Table<Activity>,
    pub placements: Table<Placement>,
    /// Every deletion, in order.
    pub deletions: Vec<Deletion>,
    /// How `meta` times are written.
    pub timestamps: crate::Timestamps,
    /// The reverse indexes while the data is unchanged (`reverse_for`).
    pub reverse: Option<Arc<Reverse>>,
    /// The person rows ever enrolled at each school unit, ascending, while the data is
    /// unchanged (`candidates`).
    pub enrolled_at: Option<HashMap<String, Arc<Vec<usize>>>>,
}

/// Reverse indexes a request with `expand` or relationship filters needs, built once per page.
#[derive(Debug, Default)]
pub(crate) struct Reverse {
    duties_of: HashMap<String, Vec<usize>>,
    groups_of: HashMap<String, Vec<(usize, usize)>>,
    placements_of: HashMap<String, Vec<usize>>,
    owned_placements_of: HashMap<String, Vec<usize>>,
    responsible_for: HashMap<String, Vec<usize>>,
}

fn within(d: Option<NaiveDate>, before: Option<NaiveDate>, after: Option<NaiveDate>) -> bool {
    // A relation or entity without the date is always included, as the specification says.
    match d {
        None => true,
        Some(d) => before.is_none_or(|b| d <= b) && after.is_none_or(|a| d >= a),
    }
}

impl Store {
    pub fn new(d: Dataset, timestamps: crate::Timestamps) -> Store {
        Store {
            organisations: Table::new(d.organisations),
            persons: Table::new(d.persons),
            duties: Table::new(d.duties),
            groups: Table::new(d.groups),
            activities: Table::new(d.activities),
            placements: Table::new(d.placements),
            deletions: Vec::new(),
            timestamps,
            reverse: None,
            enrolled_at: None,
        }
    }

    pub fn dataset(&self) -> Dataset {
        Dataset {
            organisations: self.organisations.live().cloned().collect(),
            persons: self.persons.live().cloned().collect(),
            duties: self.duties.live().cloned().collect(),
            groups: self.groups.live().cloned().collect(),
            activities: self.activities.live().cloned().collect(),
            placements: self.placements.live().cloned().collect(),
        }
    }

    /// Person references carry the person's marking and name: after person `id` changed, the
    /// cached JSON of everything that may refer to them is stale (other persons only through
    /// `responsibles`, so only those are cleared: a change to one of 100,000 persons must not
    /// make the next listing serialise them all again).
    pub fn person_changed(&mut self, id: &str) {
        self.duties.clear_cache();
        self.groups.clear_cache();
        self.placements.clear_cache();
        for (i, p) in self.persons.rows.iter().enumerate() {
            if p.responsibles.iter().any(|r| r.person == id) {
                self.persons.cache[i] = None;
            }
        }
    }

    pub fn len(&self, kind: Kind) -> usize {
        match kind {
            Kind::Organisation => self.organisations.rows.len(),
            Kind::Person => self.persons.rows.len(),
            Kind::Duty => self.duties.rows.len(),
            Kind::Group => self.groups.rows.len(),
            Kind::Activity => self.activities.rows.len(),
            Kind::Placement => self.placements.rows.len(),
        }
    }

    /// The reverse indexes, when the query needs them (`expand`, or a relationship other than
    /// a person's own enrolments). They are built once and kept until the data changes
    /// (`Handle` drops them on every change), so that the pages of a filtered listing of
    /// 100,000 persons do not each build them again.
    pub fn reverse_for(&mut self, q: &ListQuery) -> Option<Arc<Reverse>> {
        let relations = q.rel_org.is_some()
            || q.rel_start_on_or_before.is_some()
            || q.rel_start_on_or_after.is_some()
            || q.rel_end_on_or_before.is_some()
            || q.rel_end_on_or_after.is_some();
        let needed = !q.expand.is_empty()
            || q.rel_type.as_deref().is_some_and(|t| t != "enrolment")
            || (q.rel_type.is_none() && relations);
        if !needed {
            // The relationship filter runs whenever this is `Some`; an enrolment filter reads no
            // index, so an empty one does.
            return (q.rel_type.is_some() || relations).then(|| Arc::new(Reverse::default()));
        }
        if self.reverse.is_none() {
            self.reverse = Some(Arc::new(self.build_reverse()));
        }
        self.reverse.clone()
    }

    /// Drops the indexes built from the data; every change of the data must call this.
    pub fn forget_indexes(&mut self) {
        self.reverse = None;
        self.enrolled_at = None;
    }

    /// The only rows a listing needs to look at, when an index narrows them: a person listing
    /// filtered on enrolments at one school unit (the usual "today's pupils of school X")
    /// visits that unit's pupils instead of every person. `None`: every row.
    pub fn candidates(&mut self, kind: Kind, q: &ListQuery) -> Option<Arc<Vec<usize>>> {
        let org = q.rel_org.as_ref().filter(|_| kind == Kind::Person && q.rel_type.as_deref() == Some("enrolment"))?;
        let index = self.enrolled_at.get_or_insert_with(|| {
            let mut by_unit: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, p) in self.persons.rows.iter().enumerate() {
                let mut units: Vec<&String> = p.enrolments.iter().map(|e| &e.enroled_at).collect();
                units.sort();
                units.dedup();
                for u in units {
                    by_unit.entry(u.clone()).or_default().push(i);
                }
            }
            by_unit.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()
        });
        Some(index.get(org).cloned().unwrap_or_default())
    }

    fn build_reverse(&self) -> Reverse {
        let mut r = Reverse::default();
        for (i, d) in self.duties.rows.iter().enumerate() {
            if !self.duties.deleted[i] {
                r.duties_of.entry(d.person.clone()).or_default().push(i);
            }
        }
        for (i, g) in self.groups.rows.iter().enumerate() {
            if !self.groups.deleted[i] {
                for (m, ms) in g.memberships.iter().enumerate() {
                    r.groups_of.entry(ms.person.clone()).or_default().push((i, m));
                }
            }
        }
        for (i, p) in self.placements.rows.iter().enumerate() {
            if !self.placements.deleted[i] {
                r.placements_of.entry(p.child.clone()).or_default().push(i);
                for o in &p.owners {
                    r.owned_placements_of.entry(o.clone()).or_default().push(i);
                }
            }
        }
        for (i, p) in self.persons.rows.iter().enumerate() {
            if !self.persons.deleted[i] {
                for resp in &p.responsibles {
                    r.responsible_for.entry(resp.person.clone()).or_default().push(i);
                }
            }
        }
        r
    }

    fn common<T: Entity>(row: &T, q: &ListQuery) -> bool {
        let m = row.meta();
        let (start, end) = row.dates();
        // `after` is exclusive and `before` inclusive, for created and modified alike.
        q.created_after.is_none_or(|t| m.created > t)
            && q.created_before.is_none_or(|t| m.created <= t)
            && q.modified_after.is_none_or(|t| m.modified > t)
            && q.modified_before.is_none_or(|t| m.modified <= t)
            && (q.start_on_or_before.is_none() && q.start_on_or_after.is_none()
                || within(start, q.start_on_or_before, q.start_on_or_after))
            && (q.end_on_or_before.is_none() && q.end_on_or_after.is_none()
                || within(end, q.end_on_or_before, q.end_on_or_after))
    }

    fn relation_matches(&self, q: &ListQuery, org: &str, start: Option<NaiveDate>, end: Option<NaiveDate>) -> bool {
        q.rel_org.as_deref().is_none_or(|o| o == org)
            && within(start, q.rel_start_on_or_before, q.rel_start_on_or_after)
            && within(end, q.rel_end_on_or_before, q.rel_end_on_or_after)
    }

    fn person_relations(&self, p: &Person, q: &ListQuery, rev: &Reverse) -> bool {
        const ANY: &[&str] = &["enrolment", "duty", "groupMembership", "placement.child", "placement.owner"];
        let one: [&str; 1];
        let types: &[&str] = match q.rel_type.as_deref() {
            Some(t) => {
                one = [t];
                &one
            }
            None if q.rel_org.is_some()
                || q.rel_start_on_or_before.is_some()
                || q.rel_start_on_or_after.is_some()
                || q.rel_end_on_or_before.is_some()
                || q.rel_end_on_or_after.is_some() =>
            {
                ANY
            }
            None => return true,
        };
        let none = Vec::new();
        types.iter().any(|t| match *t {
            "enrolment" => {
                p.enrolments.iter().any(|e| self.relation_matches(q, &e.enroled_at, Some(e.start_date), e.end_date))
            }
            "duty" => rev.duties_of.get(&p.id).unwrap_or(&none).iter().any(|&i| {
                let d = &self.duties.rows[i];
                self.relation_matches(q, &d.duty_at, Some(d.start_date), d.end_date)
            }),
            "groupMembership" => rev.groups_of.get(&p.id).into_iter().flatten().any(|&(g, m)| {
                let g = &self.groups.rows[g];
                let m = &g.memberships[m];
                self.relation_matches(q, &g.organisation, m.start_date, m.end_date)
            }),
            "placement.child" | "placement.owner" => {
                let map = if *t == "placement.child" { &rev.placements_of } else { &rev.owned_placements_of };
                map.get(&p.id).unwrap_or(&none).iter().any(|&i| {
                    let pl = &self.placements.rows[i];
                    self.relation_matches(q, &pl.placed_at, Some(pl.start_date), pl.end_date)
                })
            }
            "responsibleFor.enrolment" => rev.responsible_for.get(&p.id).unwrap_or(&none).iter().any(|&c| {
                self.persons.rows[c]
                    .enrolments
                    .iter()
                    .any(|e| self.relation_matches(q, &e.enroled_at, Some(e.start_date), e.end_date))
            }),
            "responsibleFor.placement" => rev.responsible_for.get(&p.id).unwrap_or(&none).iter().any(|&c| {
                rev.placements_of.get(&self.persons.rows[c].id).unwrap_or(&none).iter().any(|&i| {
                    let pl = &self.placements.rows[i];
                    self.relation_matches(q, &pl.placed_at, Some(pl.start_date), pl.end_date)
                })
            }),
            _ => false,
        })
    }

    /// Whether row `i` of `kind` is live and passes the query's filters.
    pub fn matches(&self, kind: Kind, i: usize, q: &ListQuery, rev: Option<&Reverse>, dialect: Dialect) -> bool {
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        match kind {
            Kind::Organisation => {
                let o = &self.organisations.rows[i];
                !self.organisations.deleted[i]
                    && Self::common(o, q)
                    && (q.parent.is_empty() || o.parent.as_deref().is_some_and(|p| any(&q.parent, p)))
                    && (q.school_unit_code.is_empty()
                        || o.school_unit_code.as_deref().is_some_and(|c| any(&q.school_unit_code, c)))
                    && (q.organisation_code.is_empty()
                        || o.organisation_code.as_deref().is_some_and(|c| any(&q.organisation_code, c)))
                    && q.municipality_code.as_ref().is_none_or(|m| o.municipality_code.as_ref() == Some(m))
                    && any(&q.org_type, render::org_type(o.org_type, dialect))
                    && (q.school_types.is_empty()
                        || o.school_types.iter().any(|t| any(&q.school_types, render::school_type(*t, dialect))))
            }
            Kind::Person => {
                let p = &self.persons.rows[i];
                !self.persons.deleted[i]
                    && Self::common(p, q)
                    && q.name_contains.iter().all(|n| {
                        [Some(&p.given_name), p.middle_name.as_ref(), Some(&p.family_name)]
                            .iter()
                            .flatten()
                            .any(|x| x.to_lowercase().contains(n.as_str()))
                    })
                    && q.civic_no.as_ref().is_none_or(|c| p.civic_no.as_ref() == Some(c))
                    && q.eppn.as_ref().is_none_or(|e| p.eppns.contains(e))
                    && (q.identifier_value.is_none() && q.identifier_context.is_none()
                        || p.external_identifiers.iter().any(|x| {
                            q.identifier_value.as_ref().is_none_or(|v| &x.value == v)
                                && q.identifier_context.as_ref().is_none_or(|c| &x.context == c)
                        }))
                    && rev.is_none_or(|rev| self.person_relations(p, q, rev))
            }
            Kind::Duty => {
                let d = &self.duties.rows[i];
                !self.duties.deleted[i]
                    && Self::common(d, q)
                    && any(&q.organisation, &d.duty_at)
                    && q.duty_role.as_deref().is_none_or(|r| r == render::duty_role(d.role, dialect))
                    && q.person.as_ref().is_none_or(|p| &d.person == p)
            }
            Kind::Group => {
                let g = &self.groups.rows[i];
                !self.groups.deleted[i]
                    && Self::common(g, q)
                    && any(&q.organisation, &g.organisation)
                    && any(&q.group_type, render::group_type(g.group_type))
                    && (q.school_types.is_empty()
                        || g.school_type.is_some_and(|t| any(&q.school_types, render::school_type(t, dialect))))
            }
            Kind::Activity => {
                let a = &self.activities.rows[i];
                !self.activities.deleted[i]
                    && Self::common(a, q)
                    && any(&q.organisation, &a.organisation)
                    && q.group.as_ref().is_none_or(|g| a.groups.contains(g))
                    && q.teacher.as_ref().is_none_or(|t| {
                        a.teachers.iter().any(|x| self.duties.get(&x.duty).is_some_and(|d| &d.person == t))
                    })
                    && q.member.as_ref().is_none_or(|m| {
                        a.groups
                            .iter()
                            .any(|g| self.groups.get(g).is_some_and(|g| g.memberships.iter().any(|x| &x.person == m)))
                    })
            }
            Kind::Placement => {
                let p = &self.placements.rows[i];
                !self.placements.deleted[i]
                    && Self::common(p, q)
                    && any(&q.organisation, &p.placed_at)
                    && q.child.as_ref().is_none_or(|c| &p.child == c)
                    && q.owner.as_ref().is_none_or(|o| p.owners.contains(o))
                    && q.group.is_none()
            }
        }
    }

    /// Serialises every live row once, so that the first listing already copies bytes (a
    /// benchmark against a fresh server measures the client, not this server's serialiser).
    pub fn warm(&mut self, dialect: Dialect) {
        for kind in Kind::ALL {
            for i in 0..self.len(kind) {
                let _ = self.plain(kind, i, dialect);
            }
        }
    }

    /// The JSON of row `i` as a listing with no `expand` and no reference names writes it.
    fn plain(&mut self, kind: Kind, i: usize, dialect: Dialect) -> Vec<u8> {
        macro_rules! cached {
            ($table:ident, $render:ident) => {{
                if let Some(c) = &self.$table.cache[i] {
                    return c.clone();
                }
                let ctx = Ctx { dialect, names: false, store: self };
                let bytes = serde_json::to_vec(&ctx.$render(&self.$table.rows[i])).unwrap_or_default();
                self.$table.cache[i] = Some(bytes.clone());
                bytes
            }};
        }
        match kind {
            Kind::Organisation => cached!(organisations, organisation),
            Kind::Person => cached!(persons, person),
            Kind::Duty => cached!(duties, duty),
            Kind::Group => cached!(groups, group),
            Kind::Activity => cached!(activities, activity),
            Kind::Placement => cached!(placements, placement),
        }
    }

    /// Appends the JSON of row `i` to `out`.
    pub fn write(
        &mut self,
        out: &mut Vec<u8>,
        kind: Kind,
        i: usize,
        q: &ListQuery,
        rev: Option<&Reverse>,
        dialect: Dialect,
    ) {
        if q.expand.is_empty() && !q.names {
            // Cached bytes: the fast path that lets a listing of 100,000 persons copy instead
            // of serialise. The cache is only ever filled from serde_json output.
            if let Some(c) = self.cache_of(kind, i) {
                out.extend_from_slice(c);
                return;
            }
            let bytes = self.plain(kind, i, dialect);
            out.extend_from_slice(&bytes);
            return;
        }
        let ctx = Ctx { dialect, names: q.names, store: self };
        let v = self.expanded(&ctx, kind, i, q, rev);
        // Serialising a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &v);
    }

    fn cache_of(&self, kind: Kind, i: usize) -> Option<&Vec<u8>> {
        match kind {
            Kind::Organisation => self.organisations.cache[i].as_ref(),
            Kind::Person => self.persons.cache[i].as_ref(),
            Kind::Duty => self.duties.cache[i].as_ref(),
            Kind::Group => self.groups.cache[i].as_ref(),
            Kind::Activity => self.activities.cache[i].as_ref(),
            Kind::Placement => self.placements.cache[i].as_ref(),
        }
    }

    fn expanded(&self, ctx: &Ctx, kind: Kind, i: usize, q: &ListQuery, rev: Option<&Reverse>) -> Value {
        let mut v = match kind {
            Kind::Organisation => ctx.organisation(&self.organisations.rows[i]),
            Kind::Person => ctx.person(&self.persons.rows[i]),
            Kind::Duty => ctx.duty(&self.duties.rows[i]),
            Kind::Group => ctx.group(&self.groups.rows[i]),
            Kind::Activity => ctx.activity(&self.activities.rows[i]),
            Kind::Placement => ctx.placement(&self.placements.rows[i]),
        };
        if q.expand.is_empty() {
            return v;
        }
        let mut emb = Map::new();
        let empty = Reverse::default();
        let rev = rev.unwrap_or(&empty);
        let none = Vec::new();
        for e in &q.expand {
            let value: Value = match (kind, e.as_str()) {
                (Kind::Person, "duties") => {
                    let id = &self.persons.rows[i].id;
                    rev.duties_of.get(id).unwrap_or(&none).iter().map(|&d| ctx.duty(&self.duties.rows[d])).collect()
                }
                (Kind::Person, "groupMemberships") => {
                    let id = &self.persons.rows[i].id;
                    rev.groups_of
                        .get(id)
                        .into_iter()
                        .flatten()
                        .map(|&(g, m)| {
                            let g = &self.groups.rows[g];
                            let m = &g.memberships[m];
                            let mut o = Map::new();
                            o.insert("group".into(), Value::Object(ctx.group_fragment(g)));
                            if let Some(d) = m.start_date {
                                o.insert("startDate".into(), d.format("%Y-%m-%d").to_string().into());
                            }
                            if let Some(d) = m.end_date {
                                o.insert("endDate".into(), d.format("%Y-%m-%d").to_string().into());
                            }
                            Value::Object(o)
                        })
                        .collect()
                }
                (Kind::Person, "responsibleFor") => {
                    let id = &self.persons.rows[i].id;
                    rev.responsible_for
                        .get(id)
                        .unwrap_or(&none)
                        .iter()
                        .filter_map(|&c| {
                            let child = &self.persons.rows[c];
                            let r = child.responsibles.iter().find(|r| &r.person == id)?;
                            let mut o = Map::new();
                            o.insert("person".into(), ctx.person_ref(&child.id));
                            let rel = match r.relation {
                                RelationType::Guardian => "Vårdnadshavare",
                                RelationType::OtherResponsible => "Annan ansvarig",
                                RelationType::Appointed if ctx.dialect == Dialect::V2020 => "Annan behörig",
                                RelationType::Appointed => "Utsedd behörig",
                            };
                            o.insert("relationType".into(), rel.into());
                            Some(Value::Object(o))
                        })
                        .collect()
                }
                (Kind::Person, "placements" | "ownedPlacements") => {
                    let id = &self.persons.rows[i].id;
                    let map = if e == "placements" { &rev.placements_of } else { &rev.owned_placements_of };
                    map.get(id).unwrap_or(&none).iter().map(|&p| ctx.placement(&self.placements.rows[p])).collect()
                }
                (Kind::Duty, "person") => match self.persons.get(&self.duties.rows[i].person) {
                    Some(p) => ctx.person(p),
                    None => continue,
                },
                (Kind::Group, "assignmentRoles") => {
                    let gid = &self.groups.rows[i].id;
                    self.duties
                        .live()
                        .flat_map(|d| d.assignment_roles.iter().filter(|a| &a.group == gid).map(move |a| (d, a)))
                        .map(|(d, a)| {
                            let mut o = Map::new();
                            o.insert("duty".into(), ctx.duty_ref(&d.id));
                            o.insert("assignmentRoleType".into(), a.role_type.clone().into());
                            if let Some(s) = a.start_date {
                                o.insert("startDate".into(), s.format("%Y-%m-%d").to_string().into());
                            }
                            if let Some(s) = a.end_date {
                                o.insert("endDate".into(), s.format("%Y-%m-%d").to_string().into());
                            }
                            Value::Object(o)
                        })
                        .collect()
                }
                (Kind::Activity, "groups") => self.activities.rows[i]
                    .groups
                    .iter()
                    .filter_map(|g| self.groups.get(g))
                    .map(|g| ctx.group(g))
                    .collect(),
                (Kind::Activity, "teachers") => self.activities.rows[i]
                    .teachers
                    .iter()
                    .filter_map(|t| self.duties.get(&t.duty))
                    .map(|d| ctx.duty(d))
                    .collect(),
                (Kind::Placement, "child") => match self.persons.get(&self.placements.rows[i].child) {
                    Some(p) => ctx.person(p),
                    None => continue,
                },
                (Kind::Placement, "owners") => self.placements.rows[i]
                    .owners
                    .iter()
                    .filter_map(|o| self.persons.get(o))
                    .map(|p| ctx.person(p))
                    .collect(),
                // `syllabus`: the generated data has no syllabuses, so nothing is embedded.
                _ => continue,
            };
            emb.insert(e.clone(), value);
        }
        if let Value::Object(o) = &mut v {
            o.insert("_embedded".into(), Value::Object(emb));
        }
        v
    }

    /// Deleted ids for `/deletedEntities`, from position `pos`.
    pub fn deletions_matching<'a>(&'a self, q: &'a ListQuery) -> impl Fn(usize) -> bool + 'a {
        let wanted: HashSet<&str> = q.entities.iter().map(String::as_str).collect();
        move |i| {
            let d = &self.deletions[i];
            q.after.is_none_or(|a| d.at > a) && (wanted.is_empty() || wanted.contains(d.kind.object_type()))
        }
    }
}
