//! SS 12000 → real targets, day 1 then day 2: the local SS 12000 server (`tests/ss12000-server`,
//! written from the specification) runs in this process with a generated municipality; the real
//! `enid` binary reads it over HTTP with OAuth2 client credentials. Day 1 provisions pupils and
//! staff (guardians skipped, a teacher at two schools, protected and deceased persons); day 2 reads
//! only the changes (`meta.modified.after`, `/deletedEntities`) and carries them out, and a full
//! read afterwards finds nothing left to do. The server checks every request against the
//! specification (`violations`).

use crate::harness::*;
use chrono::{NaiveDate, TimeZone, Utc};
use ss12000_server::{Config, GenParams, Handle, Kind, Server, Specials};

/// The server in a runtime of its own, alive while the test runs the enid binary.
pub(crate) struct Sis {
    pub server: Server,
    pub handle: Handle,
    pub specials: Specials,
    _rt: tokio::runtime::Runtime,
}

pub(crate) const DAY1: &str = "2026-12-03T08:00:00Z";
pub(crate) const DAY2: &str = "2026-12-04T08:00:00Z";

impl Sis {
    pub(crate) fn start(persons: usize) -> Sis {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).expect("date");
        let generated = ss12000_server::generate(&GenParams { persons, seed: 15, today }).expect("generate");
        let config = Config { clock: Some(Utc.with_ymd_and_hms(2026, 12, 3, 6, 0, 0).unwrap()), ..Config::default() };
        let server = rt.block_on(ss12000_server::start_with(config, generated.dataset, Vec::new())).expect("start");
        let handle = server.handle();
        Sis { server, handle, specials: generated.specials, _rt: rt }
    }

    /// A server on the real clock, its municipality generated for today: for `enid run`, which
    /// reads the clock.
    pub(crate) fn start_now(persons: usize) -> Sis {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let today = Utc::now().date_naive();
        let generated = ss12000_server::generate(&GenParams { persons, seed: 16, today }).expect("generate");
        let server =
            rt.block_on(ss12000_server::start_with(Config::default(), generated.dataset, Vec::new())).expect("start");
        let handle = server.handle();
        Sis { server, handle, specials: generated.specials, _rt: rt }
    }

    /// The `[sources.sis]` table for this server, its client secret written beside the config.
    pub(crate) fn source_table(&self, env: &Env) -> String {
        std::fs::write(env.path("sis.secret"), "enid-test-secret\n").expect("secret");
        owner_only(&env.path("sis.secret"));
        format!(
            "type = \"ss12000\"\nurl = \"{url}\"\ntoken_url = \"{url}/token\"\nclient_id = \"enid\"\n\
             client_secret_file = \"sis.secret\"\nread = [\"organisations\", \"persons\", \"duties\", \"groups\", \
             \"activities\", \"placements\"]\nfull_read_every = \"7d\"\n",
            url = self.server.url()
        )
    }
}

/// An environment whose source is the SS 12000 server, on slapd with groups.
fn sis_env(sis: &Sis) -> Env {
    let env = Env::with_config(
        "\n[targets.directory.groups]\nbase_dn = \"ou=groups,dc=example,dc=org\"\n\
         \n[targets.directory.policy.attributes]\nou = \"{{ school_unit }}\"\n",
    );
    env.edit_config("type = \"csv\"\npath = \"persons.csv\"\n", &sis.source_table(&env));
    env
}

fn no_violations(sis: &Sis) {
    let v = sis.handle.violations();
    assert!(v.is_empty(), "requests the specification does not allow: {v:?}");
}

#[test]
fn an_ss12000_municipality_is_provisioned_then_changes_are_read_incrementally() {
    let sis = Sis::start(300);
    let env = sis_env(&sis);
    let data = sis.handle.dataset();
    let day1 = env.enid(&["apply", "--yes", "--now", DAY1, "--accept-date"]).ok();
    assert!(day1.stdout.contains("skipped: no enrolment, duty or placement"), "guardians are counted: {}", day1.stdout);
    no_violations(&sis);
    let people = env.people();
    let pupils_and_staff = data
        .persons
        .iter()
        .filter(|p| {
            data.duties.iter().any(|d| d.person == p.id)
                || p.enrolments
                    .iter()
                    .any(|e| e.end_date.is_none_or(|d| d >= NaiveDate::from_ymd_opt(2026, 12, 3).unwrap()))
        })
        .count();
    assert!(
        people.len() + 3 >= pupils_and_staff && people.len() <= pupils_and_staff,
        "{} of {pupils_and_staff}",
        people.len()
    );
    // Nobody's civic number, and a guardian has no account.
    let all = format!("{people:?}");
    // The number whole, in the spellings a leak would have (12 or 10 digits, with or without
    // the dash): its parts alone also occur in timestamps and ids (a birth date 2012-04-21 is
    // in every createTimestamp written at 21 o'clock on 4 December).
    for p in &data.persons {
        if let Some(c) = &p.civic_no {
            let dashed = format!("{}-{}", &c[2..8], &c[8..]);
            assert!(
                !all.contains(c.as_str()) && !all.contains(&c[2..]) && !all.contains(&dashed),
                "a civic number reached the directory"
            );
        }
    }
    let guardian = env.enid(&["explain", &sis.specials.guardian]).fails();
    assert!(guardian.stderr.contains("no person"), "a guardian is no one's account: {}", guardian.stderr);

    // The protected persons' accounts wait for approval: a saved plan, read incrementally, is
    // carried out by its id (the watermark is the apply's, never the plan's).
    let saved = env.enid(&["plan", "--save", "--json", "--now", DAY1]).ok().json();
    let id = saved["plan_id"].as_str().unwrap().to_string();
    assert_eq!(saved["operations"].as_array().map(Vec::len), Some(2), "the protected and the confidential pupil");
    env.enid(&["apply", "--plan", &id, "--accept-protected", "--yes", "--now", DAY1, "--accept-date"]).ok();
    // The next plan reads only the changes, and there are none.
    let run = env.enid(&["plan", "--json", "--now", DAY1]).ok();
    assert_eq!(run.json()["operations"].as_array().map(Vec::len), Some(0), "{}", run.json()["operations"]);
    let text = env.enid(&["plan", "--now", DAY1]).ok().stdout;
    assert!(text.contains("changes merged"), "{text}");

    // Day 2: a surname change, a pupil deleted, a teacher's second duty ended.
    sis.handle.advance(chrono::Duration::days(1));
    sis.handle.clear_log();
    let pupil = data
        .persons
        .iter()
        .find(|p| p.enrolments.iter().any(|e| e.end_date.is_none()) && p.id != sis.specials.protected)
        .unwrap()
        .clone();
    assert!(sis.handle.update_person(&pupil.id, |p| p.family_name = "Nyström".into()));
    let leaver = data
        .persons
        .iter()
        .find(|p| {
            p.enrolments.iter().any(|e| e.end_date.is_none()) && p.id != pupil.id && p.id != sis.specials.protected
        })
        .unwrap()
        .clone();
    assert!(sis.handle.delete(Kind::Person, &leaver.id));
    env.enid(&["apply", "--yes", "--now", DAY2, "--accept-date"]).ok();
    no_violations(&sis);
    let requests = sis.handle.requests();
    assert!(
        requests.iter().any(|r| r.path.ends_with("/persons") && r.query.contains("meta.modified.after")),
        "day 2 reads the changes only: {:?}",
        requests.iter().map(|r| format!("{} {}", r.path, r.query)).collect::<Vec<_>>()
    );
    assert!(requests.iter().any(|r| r.path.ends_with("/deletedEntities")));
    let people = env.people();
    assert!(people.values().any(|e| e.one("sn") == "Nyström"), "the surname change arrived");
    let plan = env.enid(&["plan", "--json", "--now", DAY2, "--full"]).ok().json();
    assert_eq!(
        plan["operations"].as_array().map(Vec::len),
        Some(0),
        "a full read finds what the incremental one did: {}",
        plan["operations"]
    );
}

/// A new person with another pupil's civic number is held in a conflict; the incremental reads
/// after it never give that person again (nothing of theirs changes), and still the conflict
/// stays in the queue, the person gets nothing, and once it is decided they are provisioned.
#[test]
fn a_person_held_in_a_conflict_stays_held_across_incremental_reads_until_decided() {
    let sis = Sis::start(60);
    let env = sis_env(&sis);
    env.enid(&["apply", "--yes", "--now", DAY1, "--accept-date"]).ok();
    let data = sis.handle.dataset();
    let pupil = data
        .persons
        .iter()
        .find(|p| {
            p.enrolments.iter().any(|e| e.end_date.is_none()) && p.civic_no.is_some() && p.id != sis.specials.protected
        })
        .unwrap()
        .clone();
    sis.handle.advance(chrono::Duration::hours(1));
    let twin = ss12000_server::Person {
        id: "0e6f4a52-5b1c-4c39-9a34-1d2b3c4d5e6f".into(),
        given_name: "Tvilling".into(),
        family_name: "Andersson".into(),
        ..pupil.clone()
    };
    assert!(sis.handle.add_person(twin));
    let held = |env: &Env| env.enid(&["conflicts", "--json"]).ok().json().as_array().map_or(0, Vec::len);
    env.enid(&["apply", "--yes", "--now", DAY1, "--accept-date"]).ok();
    assert_eq!(held(&env), 1, "held");
    // Later changes of someone else, read incrementally: the held person is not among them.
    for hour in 2..4 {
        sis.handle.advance(chrono::Duration::hours(1));
        let other = data
            .persons
            .iter()
            .find(|p| p.id != pupil.id && p.enrolments.iter().any(|e| e.end_date.is_none()))
            .unwrap();
        assert!(sis.handle.update_person(&other.id, |p| p.family_name = format!("Ändrad{hour}")));
        sis.handle.clear_log();
        env.enid(&["apply", "--yes", "--now", DAY1, "--accept-date"]).ok();
        assert!(sis.handle.requests().iter().any(|r| r.query.contains("meta.modified.after")), "incremental");
        assert_eq!(held(&env), 1, "still held after an incremental read");
        assert!(!env.people().values().any(|e| e.one("givenName") == "Tvilling"), "no account while held");
    }
    let conflicts = env.enid(&["conflicts", "--json"]).ok().json();
    let id = conflicts[0]["id"].as_str().unwrap().to_string();
    env.enid(&["conflicts", "resolve", &id, "--separate"]).ok();
    env.enid(&["apply", "--yes", "--now", DAY1, "--accept-date"]).ok();
    assert_eq!(held(&env), 0);
    assert!(env.people().values().any(|e| e.one("givenName") == "Tvilling"), "provisioned once decided");
    no_violations(&sis);
}

#[test]
fn a_changed_organisations_list_stops_the_run_instead_of_disabling_a_school() {
    let sis = Sis::start(120);
    let env = sis_env(&sis);
    env.enid(&["apply", "--yes", "--now", DAY1, "--accept-date"]).ok();
    let data = sis.handle.dataset();
    let unit = data.organisations.iter().find(|o| o.school_unit_code.is_some()).unwrap();
    let code = unit.school_unit_code.clone().unwrap();
    env.edit_config("full_read_every", &format!("organisations = [\"{code}\"]\nfull_read_every"));
    let run = env.enid(&["plan", "--now", DAY1]).fails();
    assert!(run.stderr.contains("--accept-scope-change"), "{}", run.stderr);
    // Accepted, the scope change is what it is: the persons of the other schools leave (their
    // accounts are disabled), without a second flag for the drop it causes.
    let run = env.enid(&["plan", "--json", "--now", DAY1, "--accept-scope-change"]).ok();
    let disables = run.json()["operations"].as_array().unwrap().iter().filter(|o| o["action"] == "disable").count();
    assert!(disables > 10, "{}", run.json()["summary"]);
}

/// SS 12000 → the shared Samba AD DC: accounts live in an OU per primary school unit; a pupil who
/// moves to another school on day 2 moves OU that day (the old tie ended), and a teacher at two
/// schools lives in the OU of one of them.
#[test]
fn an_ss12000_municipality_on_active_directory_and_a_pupil_who_moves_school() {
    use crate::ad::{ADMIN_PW, ad_table, test_ou, users};
    let sis = Sis::start(80);
    let ou = test_ou();
    let env = Env::new();
    std::fs::write(env.path("ad.secret"), format!("{ADMIN_PW}\n")).expect("write secret");
    owner_only(&env.path("ad.secret"));
    let config = format!(
        "[state]\npath = \"state.db\"\n\n[sources.sis]\n{}\n{}",
        sis.source_table(&env),
        ad_table("ldaps://127.0.0.1:636", &ou, "")
    );
    std::fs::write(env.path("enid.toml"), config).expect("write config");
    let data = sis.handle.dataset();
    env.enid(&["apply", "--yes", "--now", DAY1, "--accept-date"]).ok();
    no_violations(&sis);
    let before = users(&ou);
    assert!(before.len() > 40, "{} accounts", before.len());
    let code_of =
        |org: &str| data.organisations.iter().find(|o| o.id == org).and_then(|o| o.school_unit_code.clone()).unwrap();

    // The teacher at two schools: one OU (the primary school unit), both schools known.
    let teacher = &sis.specials.two_unit_teacher;
    let units: Vec<String> = data.duties.iter().filter(|d| &d.person == teacher).map(|d| code_of(&d.duty_at)).collect();
    assert!(units.len() >= 2, "{units:?}");
    let person = data.persons.iter().find(|p| &p.id == teacher).unwrap();
    let t = before.values().find(|e| e.one("sn") == person.family_name && e.one("givenName") == person.given_name);
    let t = t.expect("the teacher's account");
    assert!(units.iter().any(|u| t.dn.contains(&format!("OU={u},"))), "{} in one of {units:?}", t.dn);

    // Day 2: a pupil of a grundskola moves to another school with the same school type.
    let pupil = data
        .persons
        .iter()
        .find(|p| {
            p.id != sis.specials.protected
                && p.id != sis.specials.confidential
                && p.enrolments.len() == 1
                && p.enrolments[0].end_date.is_none()
                && !data.placements.iter().any(|pl| pl.child == p.id)
        })
        .expect("a pupil with one school")
        .clone();
    let from = pupil.enrolments[0].enroled_at.clone();
    let to = data
        .organisations
        .iter()
        .find(|o| o.id != from && o.school_unit_code.is_some() && !o.school_types.is_empty())
        .unwrap()
        .id
        .clone();
    let account = |u: &std::collections::BTreeMap<String, crate::harness::Entry>| {
        u.values().find(|e| e.one("sn") == pupil.family_name && e.one("givenName") == pupil.given_name).cloned()
    };
    let old = account(&before).expect("the pupil's account");
    assert!(old.dn.contains(&format!("OU={},", code_of(&from))), "{}", old.dn);
    sis.handle.advance(chrono::Duration::days(1));
    assert!(sis.handle.move_pupil(&pupil.id, &to, NaiveDate::from_ymd_opt(2026, 12, 4).unwrap()));
    env.enid(&["apply", "--yes", "--now", DAY2, "--accept-date"]).ok();
    no_violations(&sis);
    let moved = account(&users(&ou)).expect("still there");
    assert!(moved.dn.contains(&format!("OU={},", code_of(&to))), "moved on the day: {}", moved.dn);
    assert_eq!(moved.one("objectGUID"), old.one("objectGUID"), "the same account, moved");
    // A full read finds nothing left but the protected pupils' accounts waiting for approval.
    let plan = env.enid(&["plan", "--json", "--now", DAY2, "--full"]).ok().json();
    let open: Vec<_> = plan["operations"].as_array().unwrap().iter().filter(|o| o["needs_approval"] != true).collect();
    assert!(open.is_empty(), "{open:?}");
}
