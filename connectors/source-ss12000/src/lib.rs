//! Source connector for SS 12000 (the Swedish school data standard's REST API, the 2020 edition
//! and v2.1): `type = "ss12000"`.
//!
//! A full read lists `/organisations`, `/persons` (with their enrolments), `/duties`, `/groups`
//! (with their memberships) and, when configured, `/placements` and `/activities`, side by side,
//! and builds one record per person (`assemble`). An incremental read (when the engine hands a
//! watermark) lists what changed since it (`meta.modified.after`, with a small overlap) and what
//! was deleted (`/deletedEntities`), and rebuilds the changed persons from those entities and the
//! records the engine stored from the last read.
//!
//! Listings page with `limit` and the opaque `pageToken`: a follow-up request sends only the
//! token and `limit`, never the filters again; a missing or null token ends the listing; a token
//! the server refuses (400 or 410: the specification names no status) restarts the listing once;
//! any other failure midway fails the source, and so does an endpoint that answers 404 (a missing
//! `/duties` must never read as "all staff left"). Everything goes through the shared HTTP client
//! (`connector-http`): TLS and mutual TLS, tokens, the rate limit, retries, `Retry-After`.
//!
//! `config` holds the settings; `wire` the entities as the API sends them; `assemble` the pure
//! step from entities to records.

pub mod assemble;
mod config;
mod wire;

pub use assemble::{Assembled, Changes, Ctx, Full, Merged, Orgs, Warnings, assemble_full, merge};
pub use config::{Endpoint, Ss12000Config};

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use connector_api::{
    FetchContext, Fetched, RowError, Source, SourceBatch, SourceChanges, SourceError, SourceRecord, StoredUnits,
};
use connector_http::{Auth, HttpClient, Method, Request};
use serde_json::Value as Json;
use serde_json::value::RawValue;
use std::collections::{BTreeSet, HashMap, HashSet};

/// How far before the watermark an incremental read starts: servers differ on whether
/// `meta.modified.after` is exclusive, and clocks and commits are not instantaneous. What is
/// read twice is de-duplicated (by id) and rebuilt to the same record.
pub const OVERLAP_SECS: i64 = 5;

/// Up to this many rebuilt groups, an incremental read asks for each one's activities
/// (`/activities?group=`); above it, it lists every activity once.
const GROUPS_ASKED_ONE_BY_ONE: usize = 20;

/// An SS 12000 API as an enid source.
#[derive(Debug)]
pub struct Ss12000Source {
    config: Ss12000Config,
    http: HttpClient,
    warnings: Warnings,
}

impl Ss12000Source {
    /// Builds the source; contacts nothing. `auth` comes from the config's credential keys.
    pub fn new(config: Ss12000Config, auth: Auth) -> Result<Ss12000Source, SourceError> {
        let http = HttpClient::new(config.http_settings(), auth).map_err(|e| SourceError::Unavailable {
            what: format!("the SS 12000 API at {}", config.url),
            reason: e.to_string(),
            source: Some(Box::new(e)),
        })?;
        Ok(Ss12000Source { config, http, warnings: Warnings::default() })
    }

    pub fn config(&self) -> &Ss12000Config {
        &self.config
    }

    /// Every page of a listing, in order, each page's `data` handed to `sink` as it arrives (and
    /// its text dropped then: a large listing is never held twice). See the module's doc for the
    /// rules.
    async fn pages(&self, endpoint: &str, filters: &[(&str, String)], sink: &mut impl Sink) -> Result<(), SourceError> {
        let limit = self.config.page_size.to_string();
        let mut restarted = false;
        'listing: loop {
            sink.restart();
            let mut token: Option<String> = None;
            let mut tokens: HashSet<String> = HashSet::new();
            let mut seen = 0usize;
            let mut page = 0usize;
            loop {
                page += 1;
                let what = format!("GET /{endpoint} page {page}");
                let mut req = Request::new(Method::GET, endpoint, &what);
                match &token {
                    None => {
                        for (k, v) in filters {
                            req = req.query(k, v.clone());
                        }
                    }
                    Some(t) => req = req.query("pageToken", t.clone()),
                }
                req = req.query("limit", limit.clone());
                let body = match self.http.send_raw(&req).await {
                    Ok(resp) => resp.bytes,
                    Err(e) => {
                        let status = e.status();
                        if token.is_some() && matches!(status, Some(400 | 410)) && !restarted {
                            tracing::warn!(
                                endpoint,
                                page,
                                status,
                                "SS 12000: the page token was refused; listing again"
                            );
                            restarted = true;
                            continue 'listing;
                        }
                        if status == Some(404) && token.is_none() {
                            let fix = if endpoint == "deletedEntities" {
                                "An incremental read needs it: ask the vendor to open it".to_string()
                            } else {
                                format!("Remove \"{endpoint}\" from read, or ask the vendor to open it")
                            };
                            return Err(SourceError::Unavailable {
                                what: format!("GET /{endpoint}"),
                                reason: format!(
                                    "HTTP 404: the server does not offer /{endpoint}; a listing that is not there is \
                                     never read as empty. {fix}"
                                ),
                                source: Some(Box::new(e)),
                            });
                        }
                        let mut err = e.into_source();
                        if page > 1 {
                            let (SourceError::Unavailable { reason, .. } | SourceError::Malformed { reason, .. }) =
                                &mut err;
                            reason.push_str(&format!(
                                "; the listing broke off after {seen} entities and nothing is read from a partial listing"
                            ));
                        }
                        return Err(err);
                    }
                };
                let malformed =
                    |reason: String| SourceError::Malformed { location: what.clone(), reason, source: None };
                let page: Page<'_> = serde_json::from_slice(&body)
                    .map_err(|e| malformed(format!("the answer is not a JSON object with `data` ({e})")))?;
                let data = page.data(endpoint).ok_or_else(|| malformed("the answer has no `data`".into()))?;
                seen += sink.page(data)?;
                let next = match page.page_token {
                    None | Some(Json::Null) => None,
                    Some(Json::String(t)) if t.is_empty() => None,
                    Some(Json::String(t)) => Some(t),
                    Some(other) => return Err(malformed(format!("pageToken is not a string but {other}"))),
                };
                match next {
                    None => return Ok(()),
                    Some(t) if !tokens.insert(t.clone()) => {
                        return Err(malformed(
                            "the server gave a pageToken it gave before; the listing would never end".into(),
                        ));
                    }
                    Some(t) => token = Some(t),
                }
            }
        }
    }

    /// One entity by id; `None` when the server has no such entity (404).
    async fn get(&self, endpoint: &str, id: &str) -> Result<Option<Json>, SourceError> {
        let path = format!("{endpoint}/{id}");
        let req = Request::new(Method::GET, path.as_str(), format!("GET /{path}"));
        match self.http.send(&req).await {
            Ok(r) => Ok(Some(r.body)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e.into_source()),
        }
    }

    /// Every entity of a listing, de-duplicated by id.
    async fn list<T: serde::de::DeserializeOwned + wire::HasId + Send>(
        &self,
        endpoint: &'static str,
        filters: &[(&str, String)],
    ) -> Result<Vec<T>, SourceError> {
        let mut sink = Entities::new(endpoint);
        self.pages(endpoint, filters, &mut sink).await?;
        Ok(sink.out)
    }

    /// As `list`, for an endpoint `read` may leave out (nothing then).
    async fn list_if<T: serde::de::DeserializeOwned + wire::HasId + Send>(
        &self,
        endpoint: Endpoint,
        filters: &[(&str, String)],
    ) -> Result<Vec<T>, SourceError> {
        if self.config.reads(endpoint) { self.list(endpoint.path(), filters).await } else { Ok(Vec::new()) }
    }

    async fn persons(&self, filters: &[(&str, String)]) -> Result<Persons, SourceError> {
        let mut sink = Persons::default();
        self.pages("persons", filters, &mut sink).await?;
        Ok(sink)
    }

    async fn deleted(&self, filters: &[(&str, String)]) -> Result<wire::Deleted, SourceError> {
        let mut sink = DeletedSink::default();
        self.pages("deletedEntities", filters, &mut sink).await?;
        Ok(sink.0)
    }

    async fn orgs(&self) -> Result<Orgs, SourceError> {
        let orgs: Vec<wire::Organisation> = self.list("organisations", &[]).await?;
        Orgs::new(&orgs, &self.config.organisations).map_err(|reason| SourceError::Malformed {
            location: "GET /organisations".into(),
            reason,
            source: None,
        })
    }

    async fn full(&self, cx: FetchContext<'_>) -> Result<SourceBatch, SourceError> {
        // How long the listings take (the monotonic clock, a length of time only).
        let started = std::time::Instant::now();
        let none: &[(&str, String)] = &[];
        let (orgs, persons, duties, groups, placements, activities) = futures::try_join!(
            self.orgs(),
            self.persons(none),
            self.list_if(Endpoint::Duties, none),
            self.list_if(Endpoint::Groups, none),
            self.list_if(Endpoint::Placements, none),
            self.list_if(Endpoint::Activities, none),
        )?;
        let Persons { persons, mut rejected, mut mark, .. } = persons;
        let full = Full { persons, duties, placements, groups, activities };
        mark = wire::later(mark, full_watermark(&full));
        // An entity changed while the listings ran, on a page read before the change, is older
        // than the latest time seen on the pages read after it: the watermark goes back by as
        // long as the read took, so that the next incremental read sees that change.
        let took = chrono::Duration::from_std(started.elapsed()).unwrap_or(chrono::Duration::MAX);
        mark = mark.and_then(|m| m.checked_sub_signed(took + chrono::Duration::seconds(1)));
        let ctx = Ctx { orgs: &orgs, today: cx.today, warnings: &self.warnings };
        let out = assemble_full(&full, ctx);
        rejected.extend(out.rejected);
        Ok(SourceBatch {
            columns: columns(&self.config, &out.records),
            records: out.records.into_iter().map(Box::new).collect(),
            rejected,
            skipped: out.skipped,
            watermark: mark.map(format_mark),
        })
    }

    /// An incremental read, with the organisations as listed now (`orgs`).
    async fn changes(
        &self,
        cx: FetchContext<'_>,
        since: DateTime<FixedOffset>,
        orgs: Orgs,
        stored_units: &StoredUnits,
    ) -> Result<SourceChanges, SourceError> {
        let after = (since - chrono::Duration::seconds(OVERLAP_SECS)).with_timezone(&Utc);
        let after = after.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let changed: &[(&str, String)] = &[("meta.modified.after", after.clone())];
        let mut kinds = vec![("entities", "Person".to_string())];
        for (e, kind) in [
            (Endpoint::Duties, "Duty"),
            (Endpoint::Groups, "Group"),
            (Endpoint::Placements, "Placement"),
            (Endpoint::Activities, "Activity"),
        ] {
            if self.config.reads(e) {
                kinds.push(("entities", kind.to_string()));
            }
        }
        let mut deleted_filters = vec![("after", after.clone())];
        deleted_filters.extend(kinds);
        let (persons, duties, groups, placements, activities, deleted) = futures::try_join!(
            self.persons(changed),
            self.list_if(Endpoint::Duties, changed),
            self.list_if(Endpoint::Groups, changed),
            self.list_if(Endpoint::Placements, changed),
            self.list_if(Endpoint::Activities, changed),
            self.deleted(&deleted_filters),
        )?;
        let Persons { persons, mut rejected, mut mark, .. } = persons;
        let activities: Vec<wire::Activity> = activities;
        let mut ch = Changes { duties, placements, groups, deleted, ..Changes::default() };
        mark = wire::later(mark, changes_watermark(&ch, &activities));
        // A changed activity changes its groups' teachers: those groups are rebuilt whole.
        let have: HashSet<String> = ch.groups.iter().map(|g| g.id.clone()).collect();
        let wanted: BTreeSet<&str> = activities
            .iter()
            .flat_map(|a| a.groups.iter().map(|g| g.id.as_str()))
            .filter(|id| !have.contains(*id))
            .collect();
        for id in wanted {
            if let Some(g) = self.get("groups", id).await? {
                ch.groups.push(wire::read(g).map_err(|u| malformed("groups", u))?);
            }
        }
        if self.config.reads(Endpoint::Activities) {
            if ch.groups.len() > GROUPS_ASKED_ONE_BY_ONE {
                // Many groups changed (a new term): one listing of every activity costs less than
                // one request per group.
                let rebuilt: HashSet<&str> = ch.groups.iter().map(|g| g.id.as_str()).collect();
                let every: Vec<wire::Activity> = self.list("activities", &[]).await?;
                ch.group_activities =
                    every.into_iter().filter(|a| a.groups.iter().any(|g| rebuilt.contains(g.id.as_str()))).collect();
            } else {
                for g in &ch.groups {
                    let taught: Vec<wire::Activity> = self.list("activities", &[("group", g.id.clone())]).await?;
                    ch.group_activities.extend(taught);
                }
            }
        }
        // Only the stored records these changes touch are read from the state: a tick that
        // found nothing reads none.
        ch.persons = persons;
        let renamed = orgs.renamed(stored_units);
        let query = assemble::prior_query(&ch, &renamed);
        let prior = if query.is_empty() { Vec::new() } else { cx.prior.find(&query).await? };
        // Persons a changed tie names whom the stored records do not hold (a guardian who became
        // staff) are read whole.
        let known: HashSet<&str> =
            prior.iter().map(|r| r.person_id.as_str()).chain(ch.persons.iter().map(|p| p.id.as_str())).collect();
        let missing: BTreeSet<String> = ch
            .duties
            .iter()
            .filter_map(|d| d.person.as_ref().map(|p| p.id.clone()))
            .chain(ch.placements.iter().map(|p| p.child.id.clone()))
            .filter(|id| !known.contains(id.as_str()))
            .collect();
        let mut fetched = Vec::new();
        for id in missing {
            if let Some(p) = self.get("persons", &id).await? {
                match wire::read::<wire::Person>(p) {
                    Ok(p) => fetched.push(p),
                    Err(u) => rejected.push(unreadable_person(u)),
                }
            }
        }
        ch.persons.extend(fetched);
        let ctx = Ctx { orgs: &orgs, today: cx.today, warnings: &self.warnings };
        let mut out = merge(&prior, &ch, ctx);
        rejected.extend(out.rejected);
        rejected.extend(connector_api::source::reject_unfit(&mut out.changed));
        let mark = wire::later(Some(since), mark);
        Ok(SourceChanges {
            changed: out.changed,
            removed: out.removed,
            rejected,
            skipped: out.skipped,
            watermark: mark.map(format_mark),
        })
    }
}

fn malformed(endpoint: &str, u: wire::Unreadable) -> SourceError {
    let id = u.id.as_deref().map(connector_api::civic::mask_if_civic).unwrap_or("(no id)".into());
    SourceError::Malformed { location: format!("{endpoint}/{id}"), reason: unreadable_reason(&u), source: None }
}

/// `field enrolments[0].startDate: invalid type ...`; a missing field names itself.
fn unreadable_reason(u: &wire::Unreadable) -> String {
    match u.field.as_str() {
        "" | "." => format!("{}; fix it in the SIS", u.reason),
        field => format!("field {field}: {}; fix it in the SIS", u.reason),
    }
}

/// One page of a listing, borrowing from its text.
#[derive(serde::Deserialize)]
struct Page<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    // Skolverket's reference API names the organisations' list `organisations`.
    #[serde(borrow, default)]
    organisations: Option<&'a RawValue>,
    #[serde(default, rename = "pageToken")]
    page_token: Option<Json>,
}

impl<'a> Page<'a> {
    /// The page's `data`, when it has one that is not null.
    fn data(&self, endpoint: &str) -> Option<&'a RawValue> {
        let d = match (self.data, self.organisations) {
            (Some(d), _) => d,
            (None, Some(d)) if endpoint == "organisations" => d,
            _ => return None,
        };
        (d.get() != "null").then_some(d)
    }
}

/// What takes a listing's pages as they arrive. Entities are read straight from the page's text
/// into their types (no JSON tree in between: a full read of a large school organisation is
/// mostly this).
trait Sink: Send {
    /// Takes one page's `data`; the number of entities on it.
    fn page(&mut self, data: &RawValue) -> Result<usize, SourceError>;
    /// Forgets every page so far: the listing starts again.
    fn restart(&mut self);
}

/// The entities of a page's `data`, as text.
fn items<'a>(endpoint: &str, data: &'a RawValue) -> Result<Vec<&'a RawValue>, SourceError> {
    serde_json::from_str(data.get()).map_err(|e| SourceError::Malformed {
        location: format!("GET /{endpoint}"),
        reason: format!("`data` is not a list ({e})"),
        source: None,
    })
}

/// The entities of a listing other than persons, de-duplicated by id (a later copy wins: a
/// listing that changed while it was read). One that does not read fails the source, since
/// leaving it out would drop a tie or a group of real persons.
struct Entities<T> {
    endpoint: &'static str,
    out: Vec<T>,
    at: HashMap<String, usize>,
}

impl<T> Entities<T> {
    fn new(endpoint: &'static str) -> Entities<T> {
        Entities { endpoint, out: Vec::new(), at: HashMap::new() }
    }
}

impl<T: serde::de::DeserializeOwned + wire::HasId + Send> Sink for Entities<T> {
    fn page(&mut self, data: &RawValue) -> Result<usize, SourceError> {
        let items = items(self.endpoint, data)?;
        for item in &items {
            let e: T = wire::read_raw(item).map_err(|u| malformed(self.endpoint, u))?;
            match self.at.get(e.id()) {
                Some(&i) => self.out[i] = e,
                None => {
                    self.at.insert(e.id().to_string(), self.out.len());
                    self.out.push(e);
                }
            }
        }
        Ok(items.len())
    }

    fn restart(&mut self) {
        self.out.clear();
        self.at.clear();
    }
}

/// Persons, de-duplicated by id: one that does not read is a rejected row (kept by the engine
/// as last stored). Also the latest `meta.modified` among them.
#[derive(Default)]
struct Persons {
    persons: Vec<wire::Person>,
    at: HashMap<String, usize>,
    rejected: Vec<RowError>,
    mark: Option<DateTime<FixedOffset>>,
}

impl Sink for Persons {
    fn page(&mut self, data: &RawValue) -> Result<usize, SourceError> {
        let items = items("persons", data)?;
        for item in &items {
            match wire::read_raw::<wire::Person>(item) {
                Ok(p) => {
                    self.mark = wire::later(self.mark, wire::modified(&p.meta));
                    match self.at.get(&p.id) {
                        Some(&i) => self.persons[i] = p,
                        None => {
                            self.at.insert(p.id.clone(), self.persons.len());
                            self.persons.push(p);
                        }
                    }
                }
                Err(u) => self.rejected.push(unreadable_person(u)),
            }
        }
        Ok(items.len())
    }

    fn restart(&mut self) {
        *self = Persons::default();
    }
}

/// The ids `/deletedEntities` lists, every page's together.
#[derive(Default)]
struct DeletedSink(wire::Deleted);

impl Sink for DeletedSink {
    fn page(&mut self, data: &RawValue) -> Result<usize, SourceError> {
        let d: wire::Deleted = wire::read_raw(data).map_err(|u| malformed("deletedEntities", u))?;
        let n = d.persons.len() + d.duties.len() + d.groups.len() + d.placements.len() + d.activities.len();
        let all = &mut self.0;
        all.persons.extend(d.persons);
        all.duties.extend(d.duties);
        all.groups.extend(d.groups);
        all.placements.extend(d.placements);
        all.activities.extend(d.activities);
        all.organisations.extend(d.organisations);
        Ok(n)
    }

    fn restart(&mut self) {
        self.0 = wire::Deleted::default();
    }
}

fn unreadable_person(u: wire::Unreadable) -> RowError {
    let location =
        format!("persons/{}", u.id.as_deref().map(connector_api::civic::mask_if_civic).unwrap_or("(no id)".into()));
    RowError { location, message: unreadable_reason(&u), person_id: u.id, civic_no: None, school_unit: None }
}

fn full_watermark(f: &Full) -> Option<DateTime<FixedOffset>> {
    let m = f.duties.iter().map(|d| wire::modified(&d.meta));
    let m = m.chain(f.placements.iter().map(|p| wire::modified(&p.meta)));
    let m = m.chain(f.groups.iter().map(|g| wire::modified(&g.meta)));
    let m = m.chain(f.activities.iter().map(|a| wire::modified(&a.meta)));
    m.fold(None, wire::later)
}

fn changes_watermark(c: &Changes, activities: &[wire::Activity]) -> Option<DateTime<FixedOffset>> {
    let m = c.duties.iter().map(|d| wire::modified(&d.meta));
    let m = m.chain(c.placements.iter().map(|p| wire::modified(&p.meta)));
    let m = m.chain(c.groups.iter().map(|g| wire::modified(&g.meta)));
    let m = m.chain(activities.iter().map(|a| wire::modified(&a.meta)));
    m.fold(None, wire::later)
}

/// The watermark as stored: RFC 3339 in UTC, as precise as the server's own timestamps.
fn format_mark(t: DateTime<FixedOffset>) -> String {
    t.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The fields the batch delivers, for the engine's dropped-field guard. Names, the key, the
/// role, the school unit and the dates are always there (the API requires them); groups when
/// they are read; the optional fields (civic number, e-mail, eppn, protection, external ids)
/// when at least one person has them, so that a field vanishing from every person (a token
/// whose scope lost the civic numbers) stops the run instead of changing everyone.
pub fn columns(config: &Ss12000Config, records: &[SourceRecord]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> =
        ["person_id", "given_name", "family_name", "role", "school_unit", "start_date", "end_date"]
            .into_iter()
            .map(str::to_string)
            .collect();
    if config.reads(Endpoint::Groups) {
        out.insert("groups".into());
    }
    type Has = fn(&SourceRecord) -> bool;
    let optional: [(&str, Has); 5] = [
        ("civic_no", |r| r.civic_no.is_some()),
        ("email", |r| r.email().is_some()),
        ("eppn", |r| r.eppn().is_some()),
        ("protection", |r| r.protection.is_some()),
        ("external_ids", |r| !r.external_ids().is_empty()),
    ];
    for (field, has) in optional {
        if records.iter().any(has) {
            out.insert(field.to_string());
        }
    }
    out
}

impl Source for Ss12000Source {
    /// Reads one page of `/organisations`: the server answers, the credentials work.
    async fn check(&self) -> Result<(), SourceError> {
        let req = Request::new(Method::GET, "organisations", "GET /organisations").query("limit", "1");
        self.http.send(&req).await.map(|_| ()).map_err(|e| e.into_source())
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Fetched, SourceError> {
        let since = cx.since.and_then(|s| match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t),
            Err(_) => {
                tracing::warn!("SS 12000: the stored watermark is not a timestamp; reading in full");
                None
            }
        });
        let Some(since) = since else { return Ok(Fetched::Full(self.full(cx).await?)) };
        // Organisations are read whole on every read. A school unit code the stored records hold
        // that none has now (a code changed) is in the records of persons who did not change
        // too: only a full read gives every one of them the new code.
        let (orgs, stored_units) = futures::try_join!(self.orgs(), cx.prior.school_units())?;
        if let Some(code) = orgs.stale_code(stored_units.keys().map(String::as_str)) {
            tracing::info!(code, "SS 12000: a stored school unit code is no longer in /organisations; reading in full");
            return Ok(Fetched::Full(self.full(cx).await?));
        }
        Ok(Fetched::Changes(self.changes(cx, since, orgs, &stored_units).await?))
    }

    fn incremental(&self) -> bool {
        true
    }

    fn full_read_every(&self) -> Option<std::time::Duration> {
        Some(self.config.full_read_every.duration())
    }

    fn scope(&self) -> String {
        self.config.scope()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incremental_change_with_a_civic_number_in_a_name_is_rejected_and_kept_as_stored() {
        let record = |id: &str, family: &str| SourceRecord {
            person_id: id.into(),
            given_name: "Anna".into(),
            family_name: family.into(),
            civic_no: None,
            affiliations: vec![connector_api::Affiliation::new(Some("S1".into()), connector_api::Role::Student).into()]
                .into(),
            groups: Default::default(),
            extras: connector_api::Extras::new(None, None, vec!["19870704-9998".into()].into()),
            protection: None,
            deceased: false,
            location: format!("persons/{id}").into(),
        };
        let mut changed = vec![record("p1", "Berg"), record("p2", "Berg 870704-9998")];
        let rejected = connector_api::source::reject_unfit(&mut changed);
        assert_eq!(changed.len(), 1);
        assert_eq!(rejected.len(), 1);
        assert_eq!((rejected[0].location.as_str(), rejected[0].person_id.as_deref()), ("persons/p2", Some("p2")));
        assert!(rejected[0].message.starts_with("family_name holds"), "{}", rejected[0].message);
        assert!(!rejected[0].message.contains("9998"));
    }

    #[test]
    fn an_entity_that_does_not_read_names_the_endpoint_the_id_and_the_field() {
        let page = |json: &str| RawValue::from_string(json.to_string()).unwrap();
        let mut duties: Entities<wire::Duty> = Entities::new("duties");
        let e = duties
            .page(&page(r#"[{"id": "d1", "dutyAt": {"id": "o1"}}, {"id": "d2", "dutyAt": {"id": 7}}]"#))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "duties/d2: field dutyAt.id: invalid type: integer `7`, expected a string; fix it in the SIS"
        );
        let e = duties.page(&page(r#"[{"id": "d3"}]"#)).unwrap_err();
        assert_eq!(e.to_string(), "duties/d3: missing field `dutyAt`; fix it in the SIS");
        // A person that does not read is a rejected row, the others are read; a later copy of
        // an entity replaces the earlier one.
        let mut persons = Persons::default();
        let n = persons
            .page(&page(
                r#"[{"id": "p1", "givenName": "A", "familyName": "B"}, {"id": "p2", "enrolments": {}},
                    {"id": "p1", "givenName": "Ann", "familyName": "B"}]"#,
            ))
            .unwrap();
        assert_eq!((n, persons.persons.len(), persons.persons[0].given_name.as_deref()), (3, 1, Some("Ann")));
        assert_eq!(
            persons.rejected[0].to_string(),
            "persons/p2: field enrolments: invalid type: map, expected a sequence; fix it in the SIS"
        );
        persons.restart();
        assert!(persons.persons.is_empty() && persons.rejected.is_empty());
    }

    #[test]
    fn the_delivered_fields_follow_the_config_and_what_any_person_has() {
        let config: Ss12000Config =
            serde_json::from_value(serde_json::json!({"url": "https://x/v2.0", "token_file": "t"})).unwrap();
        let cols = |records: &[SourceRecord]| columns(&config, records).into_iter().collect::<Vec<_>>().join(",");
        assert_eq!(cols(&[]), "end_date,family_name,given_name,groups,person_id,role,school_unit,start_date");
        let mut r: SourceRecord = serde_json::from_value(serde_json::json!({
            "person_id": "p", "given_name": "A", "family_name": "B", "affiliations": [], "location": "persons/p"
        }))
        .unwrap();
        r.extras = connector_api::Extras::new(Some("a@b.se".into()), None, vec!["1".into()].into());
        assert_eq!(
            cols(&[r]),
            "email,end_date,external_ids,family_name,given_name,groups,person_id,role,school_unit,start_date"
        );
    }
}
