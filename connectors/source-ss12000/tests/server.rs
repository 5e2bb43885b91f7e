//! The SS 12000 source against the local SS 12000 server (`tests/ss12000-server`, in-process,
//! seeded data, injected faults, a request log): full and incremental reads, paging and its
//! rules, tokens that expire midway, throttling, server errors, refused page tokens, listings
//! that break off, endpoints that are not there; and a benchmark (`bench_100k`, ignored: run it
//! with `cargo test --release -p source-ss12000 --test server bench -- --ignored --nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{NaiveDate, TimeZone, Utc};
use connector_api::{FetchContext, Fetched, Protection, Role, Secret, Source, SourceBatch, SourceError};
use connector_http::{Auth, ClientAuth, Credentials, OAuthSettings};
use source_ss12000::{Ss12000Config, Ss12000Source};
use ss12000_server::{Config, Dialect, Fault, FaultRule, GenParams, Generated, Kind, Server, Timestamps, When};
use std::time::{Duration, Instant};

/// The enid binary's allocator (`src/main.rs`), so that `bench_100k` measures what runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 3).unwrap()
}

async fn server(persons: usize, faults: Vec<FaultRule>) -> (Server, Generated) {
    server_with(persons, Config::default(), faults).await
}

async fn server_with(persons: usize, mut config: Config, faults: Vec<FaultRule>) -> (Server, Generated) {
    let generated = ss12000_server::generate(&GenParams { persons, seed: 7, today: today() }).unwrap();
    config.clock = Some(Utc.from_utc_datetime(&today().and_hms_opt(12, 0, 0).unwrap()));
    let server = ss12000_server::start_with(config, generated.dataset.clone(), faults).await.unwrap();
    (server, generated)
}

fn source(server: &Server, extra: &str) -> Ss12000Source {
    let config: Ss12000Config = toml::from_str(&format!(
        "url = \"{}\"\ntoken_url = \"{}/token\"\nclient_id = \"enid\"\nclient_secret_file = \"unused\"\n\
         max_attempts = 3\nmax_wait_secs = 10\ntimeout_secs = 10\n{extra}",
        server.url(),
        server.url()
    ))
    .unwrap();
    config.validate().unwrap();
    let auth = Auth::OAuth(OAuthSettings {
        token_url: format!("{}/token", server.url()),
        scope: None,
        credentials: Credentials::Secret {
            client_id: "enid".into(),
            client_secret: Secret::new("enid-test-secret"),
            client_auth: ClientAuth::Basic,
        },
    });
    Ss12000Source::new(config, auth).unwrap()
}

async fn full(source: &Ss12000Source) -> Result<SourceBatch, SourceError> {
    match source.fetch(FetchContext::full(today())).await? {
        Fetched::Full(b) => Ok(b),
        Fetched::Changes(_) => panic!("a full read was asked for"),
    }
}

/// Every request of the log that lists `path`, with its query.
fn queries(server: &Server, path: &str) -> Vec<String> {
    server.handle().requests().into_iter().filter(|r| r.path == path).map(|r| r.query).collect()
}

#[tokio::test]
async fn a_full_read_pages_by_the_rules_and_maps_every_kind_of_person() {
    let (server, g) = server(300, vec![]).await;
    let src = source(
        &server,
        "page_size = 7\nread = [\"organisations\", \"persons\", \"duties\", \"groups\", \"placements\", \"activities\"]",
    );
    src.check().await.unwrap();
    let batch = full(&src).await.unwrap();
    let handle = server.handle();
    assert_eq!(handle.violations(), [], "the server saw no protocol error");
    let persons = queries(&server, "/persons");
    assert!(persons.len() > 10, "{} pages", persons.len());
    assert_eq!(persons[0], "limit=7");
    for q in &persons[1..] {
        let keys: Vec<&str> = q.split('&').map(|kv| kv.split('=').next().unwrap()).collect();
        assert_eq!(keys, ["pageToken", "limit"], "a follow-up sends the token and the limit only: {q}");
    }
    let find = |id: &str| batch.records.iter().find(|r| r.person_id == id);
    let s = &g.specials;
    assert_eq!(find(&s.protected).unwrap().protection, Some(Protection::SkyddadFolkbokforing));
    assert_eq!(find(&s.confidential).unwrap().protection, Some(Protection::Sekretessmarkering));
    assert!(find(&s.deceased).unwrap().deceased);
    assert!(find(&s.coordination_no).unwrap().civic_no.is_some());
    assert!(find(&s.no_civic_no).unwrap().civic_no.is_none());
    assert!(find(&s.former_pupil).is_none() && find(&s.guardian).is_none());
    let teacher = find(&s.two_unit_teacher).unwrap();
    let units: std::collections::BTreeSet<_> = teacher.affiliations.iter().map(|a| &a.school_unit).collect();
    assert_eq!(units.len(), 2, "{:?}", teacher.affiliations);
    assert!(
        batch.records.iter().any(|r| r.roles().contains(&Role::Staff) && !r.groups.is_empty()),
        "teachers are members of the groups they teach"
    );
    assert!(batch.skipped.values().sum::<usize>() > 0, "guardians are skipped and counted: {:?}", batch.skipped);
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    let pupils_and_staff = g.dataset.persons.iter().filter(|p| !p.enrolments.is_empty()).count();
    assert!(batch.records.len() >= pupils_and_staff - 5, "{} records", batch.records.len());
    for field in ["person_id", "civic_no", "email", "eppn", "protection", "external_ids", "groups"] {
        assert!(batch.columns.contains(field), "{field} in {:?}", batch.columns);
    }
    // The server's latest time, back by as long as the read took (and a second).
    let newest = [
        g.dataset.persons.iter().map(|p| p.meta.modified).max(),
        g.dataset.duties.iter().map(|d| d.meta.modified).max(),
        g.dataset.groups.iter().map(|d| d.meta.modified).max(),
        g.dataset.activities.iter().map(|d| d.meta.modified).max(),
        g.dataset.placements.iter().map(|d| d.meta.modified).max(),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap();
    let mark = chrono::DateTime::parse_from_rfc3339(batch.watermark.as_deref().unwrap()).unwrap();
    assert!(mark < newest && mark > newest - chrono::Duration::seconds(30), "{mark} for {newest}");
}

#[tokio::test]
async fn the_2020_and_the_2_1_editions_read_alike_whatever_the_shape_of_the_timestamps() {
    let read = |dialect, timestamps| async move {
        let config = Config { dialect, timestamps, ..Config::default() };
        let (server, _) = server_with(150, config, vec![]).await;
        let read = "read = [\"organisations\", \"persons\", \"duties\", \"groups\", \"placements\", \"activities\"]";
        let batch = full(&source(&server, read)).await.unwrap();
        assert_eq!(server.handle().violations(), []);
        batch
    };
    let v21 = read(Dialect::V21, Timestamps::UtcMillis).await;
    let v2020 = read(Dialect::V2020, Timestamps::LocalSeconds).await;
    let key = |b: &SourceBatch| {
        b.records
            .iter()
            .map(|r| {
                (
                    r.person_id.clone(),
                    r.protection,
                    r.deceased,
                    r.email().map(str::to_string),
                    r.affiliations.len(),
                    r.groups.len(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(!v21.records.is_empty());
    assert_eq!(key(&v21), key(&v2020));
    assert_eq!(v21.skipped, v2020.skipped);
    assert!(v2020.watermark.is_some() && v21.watermark.is_some());
}

#[tokio::test]
async fn a_token_that_expires_midway_is_renewed_and_the_listing_goes_on() {
    let (server, _) = server(120, vec![FaultRule::on("/persons", When::Nth(3), Fault::Unauthorized)]).await;
    let src = source(&server, "page_size = 10");
    let batch = full(&src).await.unwrap();
    assert!(!batch.records.is_empty());
    assert_eq!(queries(&server, "/token").len(), 2, "one token, then one fresh token after the 401");
    assert_eq!(server.handle().violations(), []);
}

#[tokio::test]
async fn a_429_is_waited_out_for_as_long_as_retry_after_says() {
    let (server, _) =
        server(60, vec![FaultRule::on("/duties", When::Next(1), Fault::TooManyRequests { retry_after_secs: 1 })]).await;
    let src = source(&server, "");
    let started = Instant::now();
    full(&src).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(queries(&server, "/duties").len(), 2);
}

#[tokio::test]
async fn a_500_is_tried_again_and_a_server_that_keeps_failing_fails_the_source() {
    let (server, _) = server(60, vec![FaultRule::on("/groups", When::Next(1), Fault::ServerError)]).await;
    let src = source(&server, "");
    full(&src).await.unwrap();
    server.handle().set_faults(vec![FaultRule::on("/groups", When::Always, Fault::ServerError)]);
    server.handle().clear_log();
    let e = full(&src).await.unwrap_err();
    assert!(matches!(e, SourceError::Unavailable { .. }), "{e}");
    assert!(e.to_string().contains("GET /groups page 1") && e.to_string().contains("HTTP 500"), "{e}");
    assert_eq!(queries(&server, "/groups").len(), 3, "max_attempts = 3");
}

#[tokio::test]
async fn a_refused_page_token_restarts_the_listing_once_and_twice_fails_it() {
    for status in [410, 400] {
        let fault = Fault::PageTokenExpired { status };
        let (server, _) = server(100, vec![FaultRule::on("/persons", When::Next(1), fault.clone())]).await;
        let src = source(&server, "page_size = 10");
        let batch = full(&src).await.unwrap();
        assert!(!batch.records.is_empty());
        let firsts = queries(&server, "/persons").iter().filter(|q| !q.contains("pageToken")).count();
        assert_eq!(firsts, 2, "listed again from the start once ({status})");
        assert_eq!(server.handle().violations(), []);
        server.handle().set_faults(vec![FaultRule::on("/persons", When::Always, fault)]);
        let e = full(&src).await.unwrap_err();
        assert!(e.to_string().contains(&format!("HTTP {status}")), "{e}");
    }
}

#[tokio::test]
async fn a_listing_that_breaks_off_midway_fails_the_source() {
    // A page that breaks off once is asked for again (a GET may be repeated).
    let (once, _) = server(100, vec![FaultRule::on("/persons", When::Nth(2), Fault::DropMidBody)]).await;
    full(&source(&once, "page_size = 10")).await.unwrap();
    // Page 2 and its retries break off; the listing is not taken as complete.
    let drops = (2..=4).map(|n| FaultRule::on("/persons", When::Nth(n), Fault::DropMidBody)).collect();
    let (server, _) = server(100, drops).await;
    let src = source(&server, "page_size = 10");
    let e = full(&src).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("GET /persons page 2") && text.contains("broke off after 10 entities"), "{text}");
}

#[tokio::test]
async fn an_endpoint_that_answers_404_fails_the_source() {
    let (server, _) = server(60, vec![FaultRule::on("/duties", When::Always, Fault::NotImplemented)]).await;
    let src = source(&server, "");
    let e = full(&src).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("/duties") && text.contains("404") && text.contains("never read as empty"), "{text}");
}

#[tokio::test]
async fn an_incremental_read_brings_changed_persons_ended_duties_deletions_and_memberships() {
    let (server, g) = server(200, vec![]).await;
    let src = source(
        &server,
        "page_size = 25\nread = [\"organisations\", \"persons\", \"duties\", \"groups\", \"activities\"]",
    );
    assert!(src.incremental());
    let first = full(&src).await.unwrap();
    let mark = first.watermark.clone().unwrap();
    let h = server.handle();
    h.clear_log();
    h.advance(chrono::Duration::minutes(10));
    let data = h.dataset();
    // A pupil renamed; a teacher's only duty ended; a pupil deleted; a pupil leaving a class.
    let pupils: Vec<_> = first.records.iter().filter(|r| r.roles() == [Role::Student].into()).collect();
    let renamed = pupils[0].person_id.to_string();
    let deleted = pupils[1].person_id.to_string();
    assert!(h.update_person(&renamed, |p| p.given_name = "Ny-Förnamn".into()));
    assert!(h.delete(Kind::Person, &deleted));
    let one_duty = |pid: &str| data.duties.iter().filter(|d| d.person == pid).count() == 1;
    let duty = data.duties.iter().find(|d| one_duty(&d.person) && d.person != g.specials.two_unit_teacher).unwrap();
    assert!(h.update_duty(&duty.id, |d| d.end_date = Some(today().pred_opt().unwrap())));
    let class = data.groups.iter().find(|g| g.group_type == ss12000_server::GroupType::Class).unwrap();
    let leaver = class.memberships.iter().map(|m| m.person.clone()).find(|p| *p != renamed && *p != deleted).unwrap();
    assert!(h.end_membership(&class.id, &leaver, today().pred_opt().unwrap()));

    let cx = FetchContext { today: today(), since: Some(&mark), prior: &unboxed(&first.records) };
    let Fetched::Changes(ch) = src.fetch(cx).await.unwrap() else { panic!("an incremental read") };
    assert_eq!(h.violations(), []);
    assert!(queries(&server, "/persons").iter().any(|q| q.contains("meta.modified.after")));
    assert!(queries(&server, "/deletedEntities").iter().any(|q| q.contains("after=")));
    let changed = |id: &str| ch.changed.iter().find(|r| r.person_id == id);
    assert_eq!(changed(&renamed).unwrap().given_name, "Ny-Förnamn");
    assert!(ch.removed.contains(&deleted), "{:?}", ch.removed);
    assert!(ch.removed.contains(&duty.person), "the teacher's only duty ended: {:?}", ch.removed);
    let left = changed(&leaver).unwrap();
    assert!(!left.groups.iter().any(|m| m.source_id.as_deref() == Some(class.id.as_str())), "{:?}", left.groups);
    let untouched = first.records.iter().filter(|r| changed(&r.person_id).is_none()).count();
    assert!(untouched > first.records.len() - 10, "only what changed: {} changed", ch.changed.len());
    let new_mark = ch.watermark.unwrap();
    assert!(new_mark > mark, "{new_mark} after {mark}: the server's time of the changes");

    // Nothing changed since: nothing comes back, and the watermark stays.
    let cx = FetchContext { today: today(), since: Some(&new_mark), prior: &unboxed(&first.records) };
    let Fetched::Changes(none) = src.fetch(cx).await.unwrap() else { panic!("an incremental read") };
    assert!(none.removed.is_empty() || none.removed.iter().all(|id| ch.removed.contains(id)));
    assert_eq!(none.watermark.as_deref(), Some(new_mark.as_str()));
}

#[tokio::test]
async fn many_changed_groups_are_rebuilt_with_their_teachers_from_one_listing_of_activities() {
    let (server, g) = server(400, vec![]).await;
    let src = source(
        &server,
        "page_size = 50\nread = [\"organisations\", \"persons\", \"duties\", \"groups\", \"activities\"]",
    );
    let first = full(&src).await.unwrap();
    let h = server.handle();
    h.advance(chrono::Duration::minutes(10));
    h.clear_log();
    // A new term: every teaching group is renamed.
    let teaching: Vec<String> = g
        .dataset
        .groups
        .iter()
        .filter(|x| x.group_type == ss12000_server::GroupType::Teaching)
        .map(|x| x.id.clone())
        .collect();
    assert!(teaching.len() > 20, "{} teaching groups", teaching.len());
    for id in &teaching {
        assert!(h.update_group(id, |x| x.display_name = format!("{} HT27", x.display_name)));
    }
    let mark = first.watermark.clone().unwrap();
    let cx = FetchContext { today: today(), since: Some(&mark), prior: &unboxed(&first.records) };
    let Fetched::Changes(ch) = src.fetch(cx).await.unwrap() else { panic!("an incremental read") };
    assert_eq!(h.violations(), []);
    let activities = queries(&server, "/activities");
    assert!(activities.iter().all(|q| !q.contains("group=")), "one listing, not one per group: {activities:?}");
    let teachers: Vec<_> = ch.changed.iter().filter(|r| r.roles().contains(&Role::Staff)).collect();
    assert!(!teachers.is_empty());
    for t in teachers {
        let before = first.records.iter().find(|r| r.person_id == t.person_id).unwrap();
        assert_eq!(t.groups.len(), before.groups.len(), "a teacher keeps every group: {:?}", t.groups);
        assert!(t.groups.iter().any(|m| m.name.ends_with(" HT27")), "{:?}", t.groups);
    }
}

#[tokio::test]
async fn a_change_made_during_a_full_read_on_a_page_already_read_comes_with_the_next_incremental_read() {
    // The server's own clock (the wall clock), and page 3 of /persons answered after 7 s.
    let generated = ss12000_server::generate(&GenParams { persons: 100, seed: 7, today: today() }).unwrap();
    let slow = FaultRule::on("/persons", When::Nth(3), Fault::Slow { delay: Duration::from_secs(7) });
    let server = ss12000_server::start_with(Config::default(), generated.dataset.clone(), vec![slow]).await.unwrap();
    let src = std::sync::Arc::new(source(&server, "page_size = 10"));
    let pupils: Vec<&str> =
        generated.dataset.persons.iter().filter(|p| !p.enrolments.is_empty()).map(|p| p.id.as_str()).collect();
    let (early, late) = (pupils[0].to_string(), pupils[pupils.len() - 1].to_string());
    let reading = tokio::spawn({
        let src = std::sync::Arc::clone(&src);
        async move { full(&src).await }
    });
    // The early pupil (page 1, read already) changes; 6 s later the late one (a page not read
    // yet) does: the read sees the late change and not the early one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.handle().update_person(&early, |p| p.given_name = "Tidig".into()));
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(server.handle().update_person(&late, |p| p.given_name = "Sen".into()));
    let first = reading.await.unwrap().unwrap();
    let name = |id: &str| first.records.iter().find(|r| r.person_id == id).map(|r| r.given_name.clone());
    assert_eq!(name(&late).as_deref(), Some("Sen"));
    assert_ne!(name(&early).as_deref(), Some("Tidig"));
    let mark = first.watermark.clone().unwrap();
    let cx = FetchContext { today: today(), since: Some(&mark), prior: &unboxed(&first.records) };
    let Fetched::Changes(ch) = src.fetch(cx).await.unwrap() else { panic!("an incremental read") };
    let changed: Vec<(&str, &str)> = ch.changed.iter().map(|r| (r.person_id.as_str(), r.given_name.as_str())).collect();
    assert!(changed.contains(&(early.as_str(), "Tidig")), "{changed:?}");
}

/// A server that answers every GET with `answer(path, query)` as JSON: for answers that the
/// SS 12000 server would never give.
async fn canned(answer: fn(&str, &str) -> String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let target = head.split(' ').nth(1).unwrap_or("/");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let body = answer(path, query);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_server_that_pages_in_a_circle_or_answers_without_data_fails_the_source() {
    let circle = canned(|path, query| match (path, query) {
        ("/organisations", _) => r#"{"data": [], "pageToken": null}"#.into(),
        (_, q) if q.contains("pageToken=a") => r#"{"data": [], "pageToken": "b"}"#.into(),
        (_, q) if q.contains("pageToken=b") => r#"{"data": [], "pageToken": "a"}"#.into(),
        _ => r#"{"data": [], "pageToken": "a"}"#.into(),
    })
    .await;
    let config = |url: &str| -> Ss12000Config {
        toml::from_str(&format!("url = \"{url}\"\nread = [\"organisations\", \"persons\"]\ntoken_file = \"t\""))
            .unwrap()
    };
    let src = Ss12000Source::new(config(&circle), Auth::None).unwrap();
    let e = full(&src).await.unwrap_err().to_string();
    assert!(e.contains("GET /persons page 3") && e.contains("a pageToken it gave before"), "{e}");
    let no_data = canned(|path, _| match path {
        "/organisations" => r#"{"data": [], "pageToken": null}"#.into(),
        _ => r#"{"persons": [], "pageToken": null}"#.into(),
    })
    .await;
    let src = Ss12000Source::new(config(&no_data), Auth::None).unwrap();
    let e = full(&src).await.unwrap_err().to_string();
    assert!(e.contains("GET /persons page 1") && e.contains("no `data`"), "{e}");
}

/// Persons per second and memory of a full read of 100,000 persons from the local server, end
/// to end, then the time of an incremental read of 100 changes (goals: at least 20,000 persons a
/// second; the incremental read under one second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run in release with --ignored --nocapture"]
async fn bench_100k() {
    let config = Config { max_limit: 1000, ..Config::default() };
    let (server, _) = server_with(100_000, config, vec![]).await;
    let src = source(&server, "page_size = 1000\nmax_in_flight = 8");
    let rss_before = status_kib("VmRSS");
    let (started, cpu) = (Instant::now(), cpu_time());
    let batch = full(&src).await.unwrap();
    let (took, cpu) = (started.elapsed(), cpu_time() - cpu);
    let rate = 100_000.0 / took.as_secs_f64();
    // The CPU time (the client's and the in-process server's) says what the wall time would be
    // on a machine that other work does not share.
    println!(
        "bench_100k: {} records, {took:?} ({rate:.0} persons/s), CPU {cpu:.2} s ({:.0} persons per CPU second)",
        batch.records.len(),
        100_000.0 / cpu
    );
    // The server lives in this process: the growth of the resident set during the read is the
    // client's (the records it made, and what it held while paging); the peak includes the server.
    println!(
        "bench_100k: memory: resident set grew by {} MiB during the read (the records and the client); peak of the \
         process, server included, {} MiB",
        (status_kib("VmRSS").saturating_sub(rss_before)) / 1024,
        status_kib("VmHWM") / 1024
    );

    // 100 changes on the server, then an incremental read merged with the records of the full one.
    let h = server.handle();
    h.advance(chrono::Duration::minutes(10));
    for r in batch.records.iter().filter(|r| r.roles() == [Role::Student].into()).take(100) {
        assert!(h.update_person(&r.person_id, |p| p.family_name = format!("{}-Ny", p.family_name)));
    }
    let mark = batch.watermark.clone().unwrap();
    let started = Instant::now();
    let cx = FetchContext { today: today(), since: Some(&mark), prior: &unboxed(&batch.records) };
    let Fetched::Changes(ch) = src.fetch(cx).await.unwrap() else { panic!("an incremental read") };
    let took = started.elapsed();
    println!("bench_100k: incremental read of 100 changed persons: {took:?}, {} changed records", ch.changed.len());
    assert!(ch.changed.len() >= 100, "{}", ch.changed.len());
}

/// A size line of `/proc/self/status` (`VmRSS`, `VmHWM`) in KiB.
fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// This process's user and system CPU time in seconds (Linux: `/proc/self/stat`, in clock ticks
/// of 1/100 s).
fn cpu_time() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// A batch's records as the in-memory prior records of a later read.
fn unboxed(records: &[Box<connector_api::SourceRecord>]) -> Vec<connector_api::SourceRecord> {
    records.iter().map(|r| connector_api::SourceRecord::clone(r)).collect()
}
