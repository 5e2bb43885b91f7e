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
use connector_api::{FetchContext, Fetched, RowError, Source, SourceBatch, SourceChanges, SourceError, SourceRecord};
use connector_http::{Auth, HttpClient, Method, Request};
use serde_json::Value as Json;
use std::collections::{BTreeSet, HashMap, HashSet};

/// How far before the watermark an incremental read starts: servers differ on whether
/// `meta.modified.after` is exclusive, and clocks and commits are not instantaneous. What is
/// read twice is de-duplicated (by id) and rebuilt to the same record.
pub const OVERLAP_SECS: i64 = 5;

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

    /// The `data` of every page of a listing, in order. See the module's doc for the rules.
    async fn pages(&self, endpoint: &str, filters: &[(&str, String)]) -> Result<Vec<Json>, SourceError> {
        let limit = self.config.page_size.to_string();
        let mut restarted = false;
        'listing: loop {
            let mut out = Vec::new();
            let mut token: Option<String> = None;
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
                let body = match self.http.send(&req).await {
                    Ok(resp) => resp.body,
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
                            return Err(SourceError::Unavailable {
                                what: format!("GET /{endpoint}"),
                                reason: format!(
                                    "HTTP 404: the server does not offer /{endpoint}; a listing that is not there is \
                                     never read as empty. Remove \"{endpoint}\" from read, or ask the vendor to open it"
                                ),
                                source: Some(Box::new(e)),
                            });
                        }
                        let mut err = e.into_source();
                        if page > 1
                            && let SourceError::Unavailable { reason, .. } = &mut err
                        {
                            reason.push_str(&format!(
                                "; the listing broke off after {seen} entities and nothing is read from a partial listing"
                            ));
                        }
                        return Err(err);
                    }
                };
                let malformed =
                    |reason: String| SourceError::Malformed { location: what.clone(), reason, source: None };
                let Json::Object(mut body) = body else {
                    return Err(malformed("the answer is not a JSON object with `data`".into()));
                };
                // Skolverket's reference API names the organisations' list `organisations`.
                let data = match body.remove("data") {
                    Some(d) => d,
                    None if endpoint == "organisations" => body.remove("organisations").unwrap_or(Json::Null),
                    None => Json::Null,
                };
                if data.is_null() {
                    return Err(malformed("the answer has no `data`".into()));
                }
                seen += data.as_array().map_or(1, Vec::len);
                out.push(data);
                let next = match body.remove("pageToken") {
                    None | Some(Json::Null) => None,
                    Some(Json::String(t)) if t.is_empty() => None,
                    Some(Json::String(t)) => Some(t),
                    Some(other) => return Err(malformed(format!("pageToken is not a string but {other}"))),
                };
                match next {
                    None => return Ok(out),
                    Some(t) if token.as_deref() == Some(t.as_str()) => {
                        return Err(malformed(
                            "the server gave the same pageToken twice; the listing would never end".into(),
                        ));
                    }
                    Some(t) => token = Some(t),
                }
            }
        }
    }

    /// Every entity of a listing, de-duplicated by id (the later copy wins).
    async fn list(&self, endpoint: &str, filters: &[(&str, String)]) -> Result<Vec<Json>, SourceError> {
        let mut out: Vec<Json> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        for data in self.pages(endpoint, filters).await? {
            let Json::Array(items) = data else {
                return Err(SourceError::Malformed {
                    location: format!("GET /{endpoint}"),
                    reason: "`data` is not a list".into(),
                    source: None,
                });
            };
            for item in items {
                match item.get("id").and_then(Json::as_str).map(str::to_string) {
                    Some(id) => match at.get(&id) {
                        Some(&i) => out[i] = item,
                        None => {
                            at.insert(id, out.len());
                            out.push(item);
                        }
                    },
                    // Left for the reader, which names the missing id.
                    None => out.push(item),
                }
            }
        }
        Ok(out)
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

    async fn list_if(&self, endpoint: Endpoint, filters: &[(&str, String)]) -> Result<Vec<Json>, SourceError> {
        if self.config.reads(endpoint) { self.list(endpoint.path(), filters).await } else { Ok(Vec::new()) }
    }

    async fn orgs(&self) -> Result<Orgs, SourceError> {
        let orgs: Vec<wire::Organisation> = entities("organisations", self.list("organisations", &[]).await?)?;
        Orgs::new(&orgs, &self.config.organisations).map_err(|reason| SourceError::Malformed {
            location: "GET /organisations".into(),
            reason,
            source: None,
        })
    }

    async fn full(&self, cx: FetchContext<'_>) -> Result<SourceBatch, SourceError> {
        let none: &[(&str, String)] = &[];
        let (orgs, persons, duties, groups, placements, activities) = futures::try_join!(
            self.orgs(),
            self.list("persons", none),
            self.list_if(Endpoint::Duties, none),
            self.list_if(Endpoint::Groups, none),
            self.list_if(Endpoint::Placements, none),
            self.list_if(Endpoint::Activities, none),
        )?;
        let (persons, mut rejected, mut mark) = read_persons(persons);
        let full = Full {
            persons,
            duties: entities("duties", duties)?,
            placements: entities("placements", placements)?,
            groups: entities("groups", groups)?,
            activities: entities("activities", activities)?,
        };
        mark = wire::later(mark, full_watermark(&full));
        let ctx = Ctx { orgs: &orgs, today: cx.today, warnings: &self.warnings };
        let out = assemble_full(&full, ctx);
        rejected.extend(out.rejected);
        Ok(SourceBatch {
            columns: columns(&self.config, &out.records),
            records: out.records,
            rejected,
            skipped: out.skipped,
            watermark: mark.map(format_mark),
        })
    }

    async fn changes(&self, cx: FetchContext<'_>, since: DateTime<FixedOffset>) -> Result<SourceChanges, SourceError> {
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
        let (orgs, persons, duties, groups, placements, activities, deleted) = futures::try_join!(
            self.orgs(),
            self.list("persons", changed),
            self.list_if(Endpoint::Duties, changed),
            self.list_if(Endpoint::Groups, changed),
            self.list_if(Endpoint::Placements, changed),
            self.list_if(Endpoint::Activities, changed),
            self.pages("deletedEntities", &deleted_filters),
        )?;
        let (mut persons, mut rejected, mut mark) = read_persons(persons);
        let mut ch = Changes {
            duties: entities("duties", duties)?,
            placements: entities("placements", placements)?,
            groups: entities("groups", groups)?,
            ..Changes::default()
        };
        let activities: Vec<wire::Activity> = entities("activities", activities)?;
        for data in deleted {
            let d: wire::Deleted = wire::read(data).map_err(|u| malformed("deletedEntities", u))?;
            ch.deleted.persons.extend(d.persons);
            ch.deleted.duties.extend(d.duties);
            ch.deleted.groups.extend(d.groups);
            ch.deleted.placements.extend(d.placements);
            ch.deleted.activities.extend(d.activities);
            ch.deleted.organisations.extend(d.organisations);
        }
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
            for g in &ch.groups {
                let taught: Vec<wire::Activity> =
                    entities("activities", self.list("activities", &[("group", g.id.clone())]).await?)?;
                ch.group_activities.extend(taught);
            }
        }
        // Persons a changed tie names whom the stored records do not hold (a guardian who became
        // staff) are read whole.
        let known: HashSet<&str> =
            cx.prior.iter().map(|r| r.person_id.as_str()).chain(persons.iter().map(|p| p.id.as_str())).collect();
        let missing: BTreeSet<String> = ch
            .duties
            .iter()
            .filter_map(|d| d.person.as_ref().map(|p| p.id.clone()))
            .chain(ch.placements.iter().map(|p| p.child.id.clone()))
            .filter(|id| !known.contains(id.as_str()))
            .collect();
        for id in missing {
            if let Some(p) = self.get("persons", &id).await? {
                let (found, bad, _) = read_persons(vec![p]);
                persons.extend(found);
                rejected.extend(bad);
            }
        }
        ch.persons = persons;
        let ctx = Ctx { orgs: &orgs, today: cx.today, warnings: &self.warnings };
        let out = merge(cx.prior, &ch, ctx);
        rejected.extend(out.rejected);
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
    SourceError::Malformed {
        location: format!("{endpoint}/{id}"),
        reason: format!("field {}: {}; fix it in the SIS", if u.field.is_empty() { "." } else { &u.field }, u.reason),
        source: None,
    }
}

/// The entities of a listing other than persons: one that does not read fails the source, since
/// leaving it out would drop a tie or a group of real persons.
fn entities<T: serde::de::DeserializeOwned>(endpoint: &str, items: Vec<Json>) -> Result<Vec<T>, SourceError> {
    items.into_iter().map(|i| wire::read(i).map_err(|u| malformed(endpoint, u))).collect()
}

/// Persons: one that does not read is a rejected row (kept by the engine as last stored) when
/// its id can be read, else the source fails. Also the latest `meta.modified` among them.
fn read_persons(items: Vec<Json>) -> (Vec<wire::Person>, Vec<RowError>, Option<DateTime<FixedOffset>>) {
    let mut persons = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    let mut mark = None;
    for item in items {
        match wire::read::<wire::Person>(item) {
            Ok(p) => {
                mark = wire::later(mark, wire::modified(&p.meta));
                persons.push(p);
            }
            Err(u) => {
                let location = format!(
                    "persons/{}",
                    u.id.as_deref().map(connector_api::civic::mask_if_civic).unwrap_or("(no id)".into())
                );
                rejected.push(RowError {
                    location,
                    message: format!("field {}: {}; fix it in the SIS", u.field, u.reason),
                    person_id: u.id,
                    civic_no: None,
                });
            }
        }
    }
    (persons, rejected, mark)
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
        ("email", |r| r.email.is_some()),
        ("eppn", |r| r.eppn.is_some()),
        ("protection", |r| r.protection.is_some()),
        ("external_ids", |r| !r.external_ids.is_empty()),
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
        match since {
            Some(t) => Ok(Fetched::Changes(self.changes(cx, t).await?)),
            None => Ok(Fetched::Full(self.full(cx).await?)),
        }
    }

    fn incremental(&self) -> bool {
        true
    }
}
