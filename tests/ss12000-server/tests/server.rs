//! The server over a real socket, as a client sees it: paging, the follow-up rule, tokens,
//! change filters, deletions, live changes, each injected fault, the dialects, and (ignored,
//! run by hand in release) the speed of a 100,000-person listing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use ss12000_server::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const T0: &str = "2026-10-01T12:00:00Z";

fn t0() -> DateTime<Utc> {
    T0.parse().unwrap()
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()
}

fn data(persons: usize) -> Generated {
    generate(&GenParams { persons, seed: 11, today: today() }).unwrap()
}

fn config() -> Config {
    Config { clock: Some(t0()), ..Config::default() }
}

/// A server, a client and a token.
struct T {
    server: Server,
    http: reqwest::Client,
    token: std::sync::Mutex<String>,
    generated: Generated,
}

impl T {
    async fn new(config: Config, persons: usize) -> T {
        let generated = data(persons);
        let server = start_with(config, generated.dataset.clone(), Vec::new()).await.unwrap();
        let http = http_client();
        let t = T { server, http, token: std::sync::Mutex::new(String::new()), generated };
        *t.token.lock().unwrap() = t.fetch_token().await;
        t
    }

    /// Sets the server's clock and takes a new token (the old one may have expired on the way).
    async fn at(&self, time: &str) {
        self.handle().set_now(time.parse().unwrap());
        let token = self.fetch_token().await;
        *self.token.lock().unwrap() = token;
    }

    fn handle(&self) -> Handle {
        self.server.handle()
    }

    async fn fetch_token(&self) -> String {
        let r = self
            .http
            .post(format!("{}/token", self.server.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&client_id=enid&client_secret=enid-test-secret")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    async fn get_raw(&self, path_and_query: &str) -> reqwest::Response {
        let token = self.token.lock().unwrap().clone();
        self.http.get(format!("{}{path_and_query}", self.server.url())).bearer_auth(token).send().await.unwrap()
    }

    async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let r = self.get_raw(path_and_query).await;
        let status = r.status().as_u16();
        let body = r.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Every item of a listing, following page tokens the way the specification asks.
    async fn all(&self, path: &str, first_query: &str, limit: usize) -> (Vec<Value>, usize) {
        let sep = if first_query.is_empty() { "" } else { "&" };
        let (mut status, mut page) = self.get(&format!("{path}?{first_query}{sep}limit={limit}")).await;
        let (mut items, mut pages) = (Vec::new(), 0);
        loop {
            assert_eq!(status, 200, "{page}");
            pages += 1;
            items.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["pageToken"].as_str() {
                None => return (items, pages),
                Some(tok) => (status, page) = self.get(&format!("{path}?pageToken={tok}&limit={limit}")).await,
            }
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn paging_returns_every_person_once_and_ends_with_a_null_token() {
    let t = T::new(config(), 200).await;
    let (items, pages) = t.all("/persons", "", 37).await;
    assert_eq!(items.len(), 200);
    assert_eq!(ids(&items).into_iter().collect::<HashSet<_>>().len(), 200);
    assert_eq!(pages, 200usize.div_ceil(37));
    // A limit that divides the total ends on the last full page, not with an empty extra one.
    let (items, pages) = t.all("/persons", "", 50).await;
    assert_eq!((items.len(), pages), (200, 4));
    let (_, page) = t.get("/persons?limit=1000").await;
    assert!(page["pageToken"].is_null());
    assert!(t.handle().violations().is_empty());
    t.server.shutdown().await;
}

#[tokio::test]
async fn a_follow_up_with_a_filter_is_a_400_and_a_violation() {
    let t = T::new(config(), 100).await;
    let (_, page) = t.get("/persons?limit=10&meta.modified.after=2020-01-01T00:00:00Z").await;
    let tok = page["pageToken"].as_str().unwrap();
    let (status, body) = t.get(&format!("/persons?pageToken={tok}&meta.modified.after=2020-01-01T00:00:00Z")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_filter");
    let v = t.handle().violations();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].kind, ViolationKind::FilterWithPageToken);
    // The same token with only limit goes on, and keeps the first page's filter.
    let (status, _) = t.get(&format!("/persons?pageToken={tok}&limit=5")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unknown_parameters_unknown_tokens_and_bad_values_are_400s_and_violations() {
    let t = T::new(config(), 100).await;
    for (q, kind) in [
        ("/persons?colour=blue", ViolationKind::UnknownParameter),
        ("/groups?groupType=Klassen", ViolationKind::InvalidValue),
        ("/persons?meta.modified.after=yesterday", ViolationKind::InvalidValue),
        ("/persons?limit=0", ViolationKind::InvalidValue),
        ("/persons?pageToken=made-up", ViolationKind::UnknownPageToken),
        ("/persons?sortkey=ModifiedDesc", ViolationKind::Unsupported),
    ] {
        let (status, _) = t.get(q).await;
        assert_eq!(status, 400, "{q}");
        assert_eq!(t.handle().violations().last().unwrap().kind, kind, "{q}");
    }
    // A page token of one endpoint is not one of another.
    let (_, page) = t.get("/groups?limit=2").await;
    let (status, _) = t.get(&format!("/persons?pageToken={}", page["pageToken"].as_str().unwrap())).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn tokens_come_from_the_form_or_basic_auth_and_expire_with_401() {
    let cfg = Config {
        auth: AuthConfig {
            token_lifetime: Duration::from_secs(60),
            static_token: Some("static-1".into()),
            ..AuthConfig::default()
        },
        ..config()
    };
    let t = T::new(cfg, 100).await;
    let url = t.server.url().to_string();
    // Basic auth (RFC 6749 §2.3.1).
    let r = t
        .http
        .post(format!("{url}/token"))
        .basic_auth("enid", Some("enid-test-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["expires_in"], 60);
    assert_eq!(v["token_type"], "Bearer");
    // A wrong secret.
    let r = t.http.post(format!("{url}/token")).basic_auth("enid", Some("nope")).body("grant_type=client_credentials");
    let r = r.header("content-type", "application/x-www-form-urlencoded").send().await.unwrap();
    assert_eq!(r.status(), 401);

    assert_eq!(t.get("/organisations").await.0, 200);
    t.handle().advance(chrono::Duration::seconds(61));
    let r = t.get_raw("/organisations").await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let no_token = t.http.get(format!("{url}/organisations")).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    let bad = t.http.get(format!("{url}/organisations")).bearer_auth("forged").send().await.unwrap();
    assert_eq!(bad.status(), 401);
    let fixed = t.http.get(format!("{url}/organisations")).bearer_auth("static-1").send().await.unwrap();
    assert_eq!(fixed.status(), 200);
    let outcomes: Vec<AuthOutcome> =
        t.handle().requests().iter().filter(|r| r.path == "/organisations").map(|r| r.auth).collect();
    assert_eq!(
        outcomes,
        [AuthOutcome::Ok, AuthOutcome::Expired, AuthOutcome::Missing, AuthOutcome::Bad, AuthOutcome::Ok]
    );
}

#[tokio::test]
async fn meta_modified_after_is_exclusive_and_changes_carry_the_servers_time() {
    let t = T::new(config(), 100).await;
    let h = t.handle();
    let id = t.generated.dataset.persons[20].id.clone();
    t.at("2026-10-02T08:00:00Z").await;
    assert!(h.update_person(&id, |p| p.family_name = "Öhman".into()));
    let (_, page) = t.get("/persons?meta.modified.after=2026-10-02T08:00:00.000Z").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 0, "exclusive: a change at exactly `after` is not after it");
    let (_, page) = t.get("/persons?meta.modified.after=2026-10-02T07:59:59.999Z").await;
    assert_eq!(ids(page["data"].as_array().unwrap()), std::slice::from_ref(&id));
    assert_eq!(page["data"][0]["familyName"], "Öhman");
    assert_eq!(page["data"][0]["meta"]["modified"], "2026-10-02T08:00:00.000Z");
    // An offset in the query means the same instant.
    let (_, page) = t.get("/persons?meta.modified.after=2026-10-02T09:59:59%2B02:00").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    // meta.created.after is exclusive too; nothing was created after T0.
    let (_, page) = t.get(&format!("/persons?meta.created.after={}", "2026-10-01T12:00:00Z")).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn deleted_entities_list_what_was_deleted_after_a_time() {
    let t = T::new(config(), 100).await;
    let h = t.handle();
    let person = t.generated.dataset.persons[30].id.clone();
    let group = t.generated.dataset.groups[0].id.clone();
    t.at("2026-10-03T10:00:00Z").await;
    assert!(h.delete(Kind::Person, &person));
    assert!(h.delete(Kind::Group, &group));
    assert!(!h.delete(Kind::Group, &group), "a deleted entity cannot be deleted again");
    let (status, page) = t.get("/deletedEntities?after=2026-10-03T09:59:59Z").await;
    assert_eq!(status, 200);
    assert_eq!(page["data"]["persons"], serde_json::json!([person]));
    assert_eq!(page["data"]["groups"], serde_json::json!([group]));
    assert_eq!(page["data"]["activitites"], serde_json::json!([]), "the spec's spelling");
    assert!(page["pageToken"].is_null());
    let (_, page) = t.get("/deletedEntities?after=2026-10-03T10:00:00Z").await;
    assert_eq!(page["data"]["persons"], serde_json::json!([]), "`after` is exclusive");
    let (_, page) = t.get("/deletedEntities?after=2026-10-03T09:00:00Z&entities=Group").await;
    assert!(page["data"].get("persons").is_none());
    assert_eq!(page["data"]["groups"], serde_json::json!([group]));
    // Paging over deletions.
    let (_, page) = t.get("/deletedEntities?limit=1").await;
    let tok = page["pageToken"].as_str().unwrap();
    let (_, page2) = t.get(&format!("/deletedEntities?pageToken={tok}")).await;
    assert_eq!(page2["data"]["groups"], serde_json::json!([group]));
    // Gone from the listings and by id.
    let (items, _) = t.all("/persons", "", 500).await;
    assert!(!ids(&items).contains(&person));
    assert_eq!(t.get(&format!("/persons/{person}")).await.0, 404);
    // A deleted person leaves their groups.
    let (groups, _) = t.all("/groups", "", 500).await;
    assert!(!groups.iter().any(|g| g["groupMemberships"].to_string().contains(&person)));
}

#[tokio::test]
async fn membership_changes_bump_the_group_only_when_the_switch_says_so() {
    let t = T::new(config(), 100).await;
    let h = t.handle();
    let group = t.generated.dataset.groups[0].clone();
    let person = t.generated.dataset.persons[99].id.clone();
    let before = group.meta.modified;
    h.set_bump_group_on_membership(false);
    t.at("2026-10-04T10:00:00Z").await;
    assert!(h.add_membership(&group.id, &person, Some(today())));
    let (_, page) = t.get("/groups?meta.modified.after=2026-10-01T00:00:00Z").await;
    assert!(page["data"].as_array().unwrap().is_empty(), "the change is invisible to a delta read");
    let (_, g) = t.get(&format!("/groups/{}", group.id)).await;
    assert!(g["groupMemberships"].to_string().contains(&person), "a full read sees it");
    assert_eq!(g["meta"]["modified"], serde_json::json!(before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
    h.set_bump_group_on_membership(true);
    assert!(h.end_membership(&group.id, &person, today()));
    let (_, page) = t.get("/groups?meta.modified.after=2026-10-01T00:00:00Z").await;
    assert_eq!(ids(page["data"].as_array().unwrap()), std::slice::from_ref(&group.id));
}

#[tokio::test]
async fn a_pupil_moved_to_another_school_has_an_ended_and_a_new_enrolment() {
    let t = T::new(config(), 2000).await;
    let h = t.handle();
    let d = &t.generated.dataset;
    let pupil =
        d.persons.iter().find(|p| p.enrolments.first().is_some_and(|e| e.school_type == SchoolType::Gr)).unwrap();
    let from = pupil.enrolments[0].enroled_at.clone();
    // 2,000 persons make four school units, two of them grundskolor.
    let to =
        d.organisations.iter().find(|o| o.id != from && o.school_types.contains(&SchoolType::Gr)).unwrap().id.clone();
    let today_at = |unit: &str| {
        format!(
            "relationship.entity.type=enrolment&relationship.organisation={unit}&relationship.startDate.onOrBefore=2026-11-02&relationship.endDate.onOrAfter=2026-11-02"
        )
    };
    let (before, _) = t.all("/persons", &today_at(&to), 500).await;
    assert!(!ids(&before).contains(&pupil.id));
    let on = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    t.at("2026-10-20T10:00:00Z").await;
    assert!(h.move_pupil(&pupil.id, &to, on));
    let (_, p) = t.get(&format!("/persons/{}", pupil.id)).await;
    let e = p["enrolments"].as_array().unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0]["enroledAt"]["id"], serde_json::json!(from));
    assert_eq!(e[0]["endDate"], "2026-10-31");
    assert_eq!(e[1]["enroledAt"]["id"], serde_json::json!(to));
    assert_eq!(e[1]["startDate"], "2026-11-01");
    assert_eq!(p["meta"]["modified"], "2026-10-20T10:00:00.000Z");
    // Today's pupils at the old unit (relationship filters) no longer include them after the move.
    let q = format!(
        "relationship.entity.type=enrolment&relationship.organisation={from}&relationship.startDate.onOrBefore=2026-11-02&relationship.endDate.onOrAfter=2026-11-02"
    );
    let (items, _) = t.all("/persons", &q, 500).await;
    assert!(!ids(&items).contains(&pupil.id));
    assert!(!items.is_empty());
    let (after, _) = t.all("/persons", &today_at(&to), 500).await;
    assert!(ids(&after).contains(&pupil.id), "the new school's pupils include them");
    assert_eq!(after.len(), before.len() + 1);
}

#[tokio::test]
async fn filters_expand_and_reference_names() {
    let t = T::new(config(), 300).await;
    let d = &t.generated.dataset;
    let sp = &t.generated.specials;
    // Guardians: persons without enrolment or duty; the relationship filters leave them out.
    let (pupils, _) = t.all("/persons", "relationship.entity.type=enrolment", 1000).await;
    let (staff, _) = t.all("/persons", "relationship.entity.type=duty", 1000).await;
    let (all, _) = t.all("/persons", "", 1000).await;
    assert_eq!(pupils.len(), 210);
    assert_eq!(staff.len(), 30);
    assert_eq!(all.len(), 300);
    assert!(!ids(&pupils).contains(&sp.guardian) && !ids(&staff).contains(&sp.guardian));
    let (guardians, _) = t.all("/persons", "relationship.entity.type=responsibleFor.enrolment", 1000).await;
    assert_eq!(guardians.len(), 60);
    // expand=duties embeds a teacher's duties; expandReferenceNames names references.
    let (_, p) = t.get(&format!("/persons/{}?expand=duties&expandReferenceNames=true", sp.two_unit_teacher)).await;
    assert_eq!(p["_embedded"]["duties"].as_array().unwrap().len(), 2);
    assert!(p["_embedded"]["duties"][0]["dutyAt"]["displayName"].is_string());
    let (_, p) = t.get(&format!("/persons/{}?expand=groupMemberships", sp.protected)).await;
    let groups = p["_embedded"]["groupMemberships"].as_array().unwrap();
    assert!(groups.iter().any(|m| m["group"]["groupType"] == "Klass"));
    // Person references carry the marking.
    let class = d.groups.iter().find(|g| g.memberships.iter().any(|m| m.person == sp.protected)).unwrap();
    let (_, g) = t.get(&format!("/groups/{}", class.id)).await;
    let m =
        g["groupMemberships"].as_array().unwrap().iter().find(|m| m["person"]["id"] == sp.protected.as_str()).unwrap();
    assert_eq!(m["person"]["securityMarking"], "Skyddad folkbokföring");
    assert!(m["person"].get("displayName").is_none());
    let (classes, _) = t.all("/groups", "groupType=Klass", 1000).await;
    assert!(classes.iter().all(|g| g["groupType"] == "Klass"));
    assert_eq!(classes.len(), d.groups.iter().filter(|g| g.group_type == GroupType::Class).count());
    let (acts, _) = t.all("/activities", "expand=teachers", 1000).await;
    assert!(acts.iter().all(|a| a["_embedded"]["teachers"][0]["dutyRole"] == "Lärare"));
    // Relationship dates alone filter over every kind of relationship.
    let (none, _) = t.all("/persons", "relationship.startDate.onOrAfter=2030-01-01", 1000).await;
    assert!(none.is_empty(), "nobody's relationship starts in 2030");
    let (units, _) = t.all("/organisations", "type=Skolenhet", 100).await;
    assert_eq!(units.len(), 3);
    let (_, p) = t.get(&format!("/persons/{}", sp.no_civic_no)).await;
    assert!(p.get("civicNo").is_none());
    let (_, p) = t.get(&format!("/persons/{}", sp.coordination_no)).await;
    assert_eq!(p["civicNo"]["nationality"], "SE");
}

async fn body(t: &T, path: &str) -> String {
    serde_json::to_string(&t.all(path, "", 5000).await.0).unwrap()
}

#[tokio::test]
async fn the_dialects_spell_what_changed_between_2020_and_2_1_their_own_way() {
    let old = T::new(Config { dialect: Dialect::V2020, ..config() }, 400).await;
    let new = T::new(config(), 400).await;
    let (o, n) = (body(&old, "/organisations").await, body(&new, "/organisations").await);
    assert!(o.contains("\"Övrigt\"") && !o.contains("Förvaltning"));
    assert!(n.contains("\"Förvaltning\""));
    let (o, n) = (body(&old, "/duties").await, body(&new, "/duties").await);
    assert!(!o.contains("Fritidspedagog") && !o.contains("Skolsköterska") && o.contains("Annan personal"));
    assert!(n.contains("Fritidspedagog") && n.contains("Skolsköterska"));
    let (o, n) = (body(&old, "/placements").await, body(&new, "/placements").await);
    assert!(o.contains("\"Omsorg\"") && n.contains("\"Omsorgsbehov\""));
    let (o, n) = (body(&old, "/persons").await, body(&new, "/persons").await);
    assert!(o.contains("Annan behörig") && n.contains("Utsedd behörig"));
    assert!(o.contains("Särskildpostadress") && n.contains("Särskild postadress"));
    assert!(n.contains("\"type\":\"Privat\"") && !o.contains("Privat"));
    assert_eq!(old.get("/persons?relationship.entity.type=groupMembership").await.0, 400);
    assert_eq!(new.get("/persons?relationship.entity.type=groupMembership").await.0, 200);
}

#[tokio::test]
async fn status_faults_answer_as_injected_and_then_go_away() {
    let t = T::new(config(), 100).await;
    let h = t.handle();
    h.add_fault(FaultRule::on("/persons", When::Next(1), Fault::TooManyRequests { retry_after_secs: 7 }));
    let r = t.get_raw("/persons").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(t.get("/persons").await.0, 200, "Next(1) fires once");

    h.set_faults(vec![
        FaultRule::on("/groups", When::Next(1), Fault::ServerError),
        FaultRule::on("/duties", When::Next(2), Fault::Unavailable { retry_after_secs: Some(3) }),
        FaultRule::on("/activities", When::Always, Fault::NotImplemented),
        FaultRule::on("/organisations", When::Next(1), Fault::Unauthorized),
        FaultRule::on("/placements", When::Next(1), Fault::Garbage),
    ]);
    assert_eq!(t.get("/groups").await.0, 500);
    assert_eq!(t.get("/groups").await.0, 200);
    let r = t.get_raw("/duties").await;
    assert_eq!((r.status().as_u16(), r.headers()["retry-after"].to_str().unwrap()), (503, "3"));
    assert_eq!(t.get("/duties").await.0, 503);
    assert_eq!(t.get("/duties").await.0, 200);
    assert_eq!(t.get("/activities").await.0, 404);
    assert_eq!(t.get("/activities").await.0, 404);
    assert_eq!(t.get("/organisations").await.0, 401);
    let r = t.get_raw("/placements").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html");
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());

    // The n-th request to a path.
    h.set_faults(vec![FaultRule::on("/persons", When::Nth(5), Fault::ServerError)]);
    // /persons has had 2 requests; the 3rd and 4th pass, the 5th fails, the 6th passes.
    let statuses =
        [t.get("/persons").await.0, t.get("/persons").await.0, t.get("/persons").await.0, t.get("/persons").await.0];
    assert_eq!(statuses, [200, 200, 500, 200]);
    let persons: Vec<RequestRecord> = h.requests().into_iter().filter(|r| r.path == "/persons").collect();
    assert_eq!(persons[4].fault, Some(Fault::ServerError));
    assert_eq!(persons.iter().filter(|r| r.fault.is_some()).count(), 2, "the 429 and this one");
}

#[tokio::test]
async fn the_token_endpoint_can_fail() {
    let t = T::new(config(), 100).await;
    t.handle().add_fault(FaultRule::on("/token", When::Next(1), Fault::Unavailable { retry_after_secs: None }));
    let r = t
        .http
        .post(format!("{}/token", t.server.url()))
        .body("grant_type=client_credentials&client_id=enid&client_secret=enid-test-secret")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(!t.fetch_token().await.is_empty(), "and works again");
}

#[tokio::test]
async fn an_expired_page_token_is_410_or_400_as_configured() {
    for status in [400u16, 410] {
        let t = T::new(config(), 100).await;
        // The fault waits for a request with a page token: the first page is served.
        t.handle().add_fault(FaultRule::on("/persons", When::Next(1), Fault::PageTokenExpired { status }));
        let (s, page) = t.get("/persons?limit=10").await;
        assert_eq!(s, 200);
        let tok = page["pageToken"].as_str().unwrap().to_string();
        let (s, body) = t.get(&format!("/persons?pageToken={tok}")).await;
        assert_eq!((s, body["code"].as_str()), (status, Some("page_token_expired")));
        assert_eq!(t.get(&format!("/persons?pageToken={tok}")).await.0, 200, "a retry of the same token works");
    }
    // Expiry by age: the token's lifetime passes on the server's clock.
    let t = T::new(Config { page_token_ttl: Duration::from_secs(30), ..config() }, 100).await;
    let (_, page) = t.get("/persons?limit=10").await;
    t.handle().advance(chrono::Duration::seconds(31));
    let (s, _) = t.get(&format!("/persons?pageToken={}", page["pageToken"].as_str().unwrap())).await;
    assert_eq!(s, 410);
    assert!(t.handle().violations().is_empty(), "an expired token is not the client's fault");
}

#[tokio::test]
async fn a_listing_can_break_off_mid_body_or_end_early() {
    let t = T::new(config(), 100).await;
    let h = t.handle();
    h.add_fault(FaultRule::on("/persons", When::Nth(2), Fault::DropMidBody));
    let (_, page) = t.get("/persons?limit=40").await;
    let tok = page["pageToken"].as_str().unwrap().to_string();
    let r = t.get_raw(&format!("/persons?pageToken={tok}")).await;
    assert_eq!(r.status(), 200, "the headers arrive");
    assert!(r.bytes().await.is_err(), "the body does not");
    assert_eq!(t.get(&format!("/persons?pageToken={tok}")).await.0, 200, "the page can be read again");

    h.set_faults(vec![FaultRule::on("/persons", When::Next(1), Fault::EndEarly)]);
    let (items, pages) = t.all("/persons", "", 40).await;
    assert_eq!((items.len(), pages), (40, 1), "a listing that claims to be complete after one page");
}

#[tokio::test]
async fn slow_answers_come_late() {
    let t = T::new(config(), 100).await;
    t.handle().add_fault(FaultRule::on(
        "/organisations",
        When::Next(1),
        Fault::Slow { delay: Duration::from_millis(300) },
    ));
    let started = Instant::now();
    assert_eq!(t.get("/organisations").await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// Run by hand: `cargo test -p ss12000-server --release --test server -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: 100,000 persons"]
async fn bench_100k_persons() {
    let started = Instant::now();
    let g = generate(&GenParams { persons: 100_000, seed: 1, today: today() }).unwrap();
    println!("generated 100,000 persons in {:.2?}", started.elapsed());
    let units: Vec<String> =
        g.dataset.organisations.iter().filter(|o| o.school_unit_code.is_some()).map(|o| o.id.clone()).collect();
    let started = Instant::now();
    let server = start_with(
        Config { auth: AuthConfig { required: false, ..AuthConfig::default() }, ..config() },
        g.dataset,
        Vec::new(),
    )
    .await
    .unwrap();
    println!("server started (every person serialised) in {:.2?}", started.elapsed());
    let http = http_client();
    // The server serialised every person when it started; a listing copies cached bytes.
    // Without parsing the client measures the server; with it, what a client's JSON parser adds.
    for (round, parse) in [("first listing, bytes only", false), ("again, bytes only", false), ("client parses", true)]
    {
        let started = Instant::now();
        let mut parse_time = Duration::ZERO;
        let (mut n, mut bytes, mut url) = (0usize, 0usize, format!("{}/persons?limit=1000", server.url()));
        loop {
            let body = http.get(&url).send().await.unwrap().bytes().await.unwrap();
            bytes += body.len();
            let token = if parse {
                let p0 = Instant::now();
                let v: Value = serde_json::from_slice(&body).unwrap();
                parse_time += p0.elapsed();
                n += v["data"].as_array().unwrap().len();
                v["pageToken"].as_str().map(str::to_string)
            } else {
                // The token is the last value of the page: `,"pageToken":"…"}` or `null}`.
                let tail = std::str::from_utf8(&body[body.len() - 60..]).unwrap();
                n += 1000;
                tail.rsplit_once("\"pageToken\":\"").map(|(_, t)| t.trim_end_matches("\"}").to_string())
            };
            match token {
                Some(tok) => url = format!("{}/persons?pageToken={tok}&limit=1000", server.url()),
                None => break,
            }
        }
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(n, 100_000);
        println!(
            "{round}: {n} persons, {:.1} MB in {secs:.2} s = {:.0} persons/s (parsing {parse_time:.2?})",
            bytes as f64 / 1e6,
            n as f64 / secs
        );
    }
    // Today's pupils school by school, as a client asks for them: every page scans the table.
    let started = Instant::now();
    let mut n = 0usize;
    for unit in &units {
        let mut url = format!(
            "{}/persons?relationship.entity.type=enrolment&relationship.organisation={unit}&relationship.startDate.onOrBefore=2026-10-01&relationship.endDate.onOrAfter=2026-10-01&limit=1000",
            server.url()
        );
        loop {
            // Bytes only: persons counted by their `givenName` (references carry none).
            let body = http.get(&url).send().await.unwrap().bytes().await.unwrap();
            n += body.windows(11).filter(|w| w == b"\"givenName\"").count();
            let tail = std::str::from_utf8(&body[body.len().saturating_sub(60)..]).unwrap_or("");
            match tail.rsplit_once("\"pageToken\":\"") {
                Some((_, tok)) => {
                    url = format!("{}/persons?pageToken={}&limit=1000", server.url(), tok.trim_end_matches("\"}"))
                }
                None => break,
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} school units' current pupils, bytes only: {n} persons in {secs:.2} s = {:.0} persons/s",
        units.len(),
        n as f64 / secs
    );
}

#[tokio::test]
async fn a_changed_marking_reaches_every_reference_to_the_person() {
    let t = T::new(config(), 100).await;
    let d = &t.generated.dataset;
    // A pupil with a guardian and a class, whose JSON the server has cached since it started.
    let pupil =
        d.persons.iter().find(|p| !p.responsibles.is_empty() && p.security_marking == SecurityMarking::None).unwrap();
    let guardian = pupil.responsibles[0].person.clone();
    assert!(t.handle().update_person(&guardian, |p| p.security_marking = SecurityMarking::Protected));
    assert!(t.handle().update_person(&pupil.id, |p| p.security_marking = SecurityMarking::Protected));
    let (_, p) = t.get(&format!("/persons/{}", pupil.id)).await;
    assert_eq!(p["securityMarking"], "Skyddad folkbokföring");
    assert_eq!(p["responsibles"][0]["person"]["securityMarking"], "Skyddad folkbokföring");
    let (groups, _) = t.all("/groups", "groupType=Klass", 1000).await;
    let m = groups
        .iter()
        .flat_map(|g| g["groupMemberships"].as_array().unwrap().clone())
        .find(|m| m["person"]["id"] == pupil.id.as_str())
        .unwrap();
    assert_eq!(m["person"]["securityMarking"], "Skyddad folkbokföring");
}

#[tokio::test]
async fn a_token_that_expires_mid_listing_is_a_401_and_the_listing_goes_on_with_a_new_one() {
    let cfg =
        Config { auth: AuthConfig { token_lifetime: Duration::from_secs(60), ..AuthConfig::default() }, ..config() };
    let t = T::new(cfg, 100).await;
    let (_, page) = t.get("/persons?limit=30&expandReferenceNames=true").await;
    let tok = page["pageToken"].as_str().unwrap().to_string();
    t.handle().advance(chrono::Duration::seconds(60));
    assert_eq!(t.get(&format!("/persons?pageToken={tok}&limit=30")).await.0, 401, "expired at exactly its lifetime");
    *t.token.lock().unwrap() = t.fetch_token().await;
    let (status, page2) = t.get(&format!("/persons?pageToken={tok}&limit=30")).await;
    assert_eq!(status, 200, "page tokens do not depend on the bearer token");
    assert!(
        page2["data"][0]["enrolments"][0]["enroledAt"]["displayName"].is_string(),
        "the first page's parameters hold"
    );
    // The log has every request with its query and auth outcome.
    let log = t.handle().requests();
    let seen: Vec<(&str, &str, AuthOutcome, u16)> =
        log.iter().map(|r| (r.method.as_str(), r.path.as_str(), r.auth, r.status)).collect();
    assert_eq!(
        seen,
        [
            ("POST", "/token", AuthOutcome::NotChecked, 200),
            ("GET", "/persons", AuthOutcome::Ok, 200),
            ("GET", "/persons", AuthOutcome::Expired, 401),
            ("POST", "/token", AuthOutcome::NotChecked, 200),
            ("GET", "/persons", AuthOutcome::Ok, 200),
        ]
    );
    assert_eq!(log[1].query, "limit=30&expandReferenceNames=true");
    assert_eq!(log[4].query, format!("pageToken={tok}&limit=30"));
}

#[tokio::test]
async fn a_limit_above_the_servers_largest_page_is_cut_and_no_limit_gets_the_default() {
    let t = T::new(Config { default_limit: 20, max_limit: 50, ..config() }, 100).await;
    let (_, page) = t.get("/persons?limit=1000").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 50);
    let (_, page) = t.get("/persons").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn an_added_duty_and_an_ended_enrolment_show_in_the_change_filters() {
    let t = T::new(config(), 100).await;
    let h = t.handle();
    let d = &t.generated.dataset;
    let sp = &t.generated.specials;
    let unit = d.duties[0].duty_at.clone();
    let pupil = d.persons.iter().find(|p| p.id != sp.former_pupil && !p.enrolments.is_empty()).unwrap();
    let (staff, _) = t.all("/persons", "relationship.entity.type=duty", 1000).await;
    assert!(!ids(&staff).contains(&sp.guardian), "not staff yet (and the server's indexes are built)");
    t.at("2026-10-05T09:00:00Z").await;
    let duty = Duty {
        id: "00000000-0000-4000-8000-0000000000d1".into(),
        meta: Meta::at(t0()),
        person: sp.guardian.clone(),
        duty_at: unit.clone(),
        role: DutyRole::TeachingAssistant,
        signature: None,
        duty_percent: Some(50),
        start_date: today(),
        end_date: None,
        assignment_roles: Vec::new(),
    };
    assert!(h.add_duty(duty.clone()));
    assert!(!h.add_duty(duty), "an id is added once");
    assert!(h.end_enrolment(&pupil.id, &pupil.enrolments[0].enroled_at, today()));
    assert!(!h.end_enrolment(&pupil.id, &pupil.enrolments[0].enroled_at, today()), "it has ended already");
    let (_, duties) = t.get("/duties?meta.created.after=2026-10-05T08:59:59Z").await;
    assert_eq!(duties["data"][0]["person"]["id"], sp.guardian.as_str());
    assert_eq!(duties["data"][0]["meta"]["created"], "2026-10-05T09:00:00.000Z");
    let (staff, _) = t.all("/persons", "relationship.entity.type=duty", 1000).await;
    assert!(ids(&staff).contains(&sp.guardian), "a guardian who took a job is staff now");
    let (changed, _) = t.all("/persons", "meta.modified.after=2026-10-05T08:59:59Z", 1000).await;
    assert_eq!(ids(&changed), std::slice::from_ref(&pupil.id), "a new duty does not change its person");
    assert_eq!(changed[0]["enrolments"][0]["endDate"], "2026-10-01");
}

#[tokio::test]
async fn meta_times_can_be_whole_seconds_with_an_offset_and_filters_still_compare_full_times() {
    let t = T::new(Config { timestamps: Timestamps::LocalSeconds, ..config() }, 100).await;
    let id = t.generated.dataset.persons[3].id.clone();
    t.at("2026-10-02T08:00:00.600Z").await;
    assert!(t.handle().update_person(&id, |p| p.middle_name = Some("Åke".into())));
    let (_, p) = t.get(&format!("/persons/{id}")).await;
    assert_eq!(p["meta"]["modified"], "2026-10-02T09:00:00+01:00");
    // The shown time is before the real one: a watermark taken from it reads the change again.
    let (_, page) = t.get("/persons?meta.modified.after=2026-10-02T09:00:00%2B01:00").await;
    assert_eq!(ids(page["data"].as_array().unwrap()), [id]);
}

#[tokio::test]
async fn lookups_find_by_id_and_civic_number_and_refuse_too_many() {
    let t = T::new(Config { max_lookup: 3, ..config() }, 100).await;
    let d = &t.generated.dataset;
    let (a, b) = (&d.persons[10], &d.persons[11]);
    let post = |path: &str, body: Value| {
        let req = t.http.post(format!("{}{path}", t.server.url())).bearer_auth(t.token.lock().unwrap().clone());
        req.header("content-type", "application/json").body(body.to_string()).send()
    };
    let r = post(
        "/persons/lookup?expandReferenceNames=true",
        serde_json::json!({ "ids": [a.id, "00000000-0000-4000-8000-000000000000"], "civicNos": [b.civic_no] }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(ids(v.as_array().unwrap()), [a.id.clone(), b.id.clone()], "a plain array; unknown ids left out");
    assert!(v[0]["enrolments"][0]["enroledAt"]["displayName"].is_string());
    let r = post("/groups/lookup", serde_json::json!({ "ids": [d.groups[0].id] })).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = post("/persons/lookup", serde_json::json!({ "ids": ["a", "b", "c", "d"] })).await.unwrap();
    assert_eq!(r.status(), 503);
    let r = post("/groups/lookup", serde_json::json!({ "civicNos": ["200001019999"] })).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = post("/persons/lookup?limit=3", serde_json::json!({ "ids": [] })).await.unwrap();
    assert_eq!(r.status(), 400);
    let kinds: Vec<ViolationKind> = t.handle().violations().iter().map(|v| v.kind).collect();
    assert_eq!(kinds, [ViolationKind::InvalidValue, ViolationKind::UnknownParameter]);
}

/// A plain HTTP client. Built with the whole workspace, reqwest has connector-http's
/// `rustls-no-provider` feature and panics without a crypto provider, so one is installed first
/// (a second install is a harmless error).
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
