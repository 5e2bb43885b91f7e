//! `enid run` on an SS 12000 source with `incremental = "1s"`: each tick reads the changes since
//! the watermark and the records they touch, plans only those persons, and a tick that finds
//! nothing reads nothing more and leaves no row. A full run that stands in for an incremental
//! one and leaves its plan waiting is not redone at every tick. A full plan agrees at the end.

use crate::daemon16::{Daemon, wait_for};
use crate::harness::*;
use crate::ss12000::Sis;
use ss12000_server::Kind;

const SCHEDULE: &str = "\n[schedule]\nfull = \"1h\"\nincremental = \"1s\"\napply = \"within_thresholds\"\n";

fn runs(env: &Env) -> Vec<serde_json::Value> {
    let out = env.enid(&["runs", "--json"]).ok().stdout;
    out.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

fn log(env: &Env) -> String {
    std::fs::read_to_string(env.path("daemon.log")).unwrap()
}

/// Waits until a finished run row after the first `after` rows satisfies `f`, and returns it.
fn run_after(env: &Env, after: usize, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while std::time::Instant::now() < end {
        if let Some(r) = runs(env).into_iter().skip(after).find(|r| r["status"] != "running" && f(r)) {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = std::fs::write("/tmp/ss-daemon.log", log(env));
    panic!("timed out waiting for {what}; runs: {:?}\nlog:\n{}", runs(env), log(env));
}

#[test]
fn ss12000_changes_reach_the_directory_through_incremental_runs_that_read_only_what_changed() {
    let sis = Sis::start_now(200);
    let env = Env::with_config(SCHEDULE);
    env.edit_config("type = \"csv\"\npath = \"persons.csv\"\n", &sis.source_table(&env));
    let data = sis.handle.dataset();
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));

    // The first run provisions everyone but the protected pupils, whose accounts wait for an
    // approval (one protected pupil never holds everyone else back); approving them carries
    // them out at once.
    let first = run_after(&env, 0, "the first run", |r| r["status"] == "ok");
    assert!(first["counts"]["ok"].as_u64() > Some(100), "{first}");
    let waiting = env.enid(&["plan", "--json", "--full"]).ok().json();
    assert_eq!(waiting["operations"].as_array().map(Vec::len), Some(2), "the protected and the confidential pupil");
    env.enid(&["approve", &first["id"].to_string(), "--accept-protected"]).ok();
    wait_for("every person provisioned", 30, || {
        env.enid(&["plan", "--json", "--full"]).ok().json()["operations"].as_array().is_some_and(Vec::is_empty)
    });
    // The first tick after a full read may move the watermark up to the newest change the full
    // read saw (it starts as far back as the read took): a run with nothing else to do.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let rows = runs(&env).len();

    // A tick that finds nothing: no row, and no read beyond the changes listings.
    sis.handle.clear_log();
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(runs(&env).len(), rows, "idle ticks leave no rows");
    let requests = sis.handle.requests();
    assert!(requests.len() >= 6, "the ticks read the changes: {}", requests.len());
    for r in &requests {
        let listing =
            ["/persons", "/duties", "/groups", "/placements", "/activities"].iter().any(|e| r.path.ends_with(e));
        assert!(
            // A group changed within the overlap the reads repeat has its activities read.
            !listing || r.query.contains("meta.modified.after") || r.query.starts_with("group="),
            "an idle tick read a whole listing: {} {}",
            r.path,
            r.query
        );
    }

    // A surname change: an incremental run.
    let pupil = data
        .persons
        .iter()
        .find(|p| {
            p.enrolments.iter().any(|e| e.end_date.is_none())
                && ![&sis.specials.protected, &sis.specials.confidential, &sis.specials.double_names].contains(&&p.id)
        })
        .unwrap()
        .clone();
    assert!(sis.handle.update_person(&pupil.id, |p| p.family_name = "Nyström".into()));
    let run = run_after(&env, rows, "the surname change", |r| r["counts"]["planned"]["update"].as_u64() >= Some(1));
    assert_eq!(run["counts"]["incremental"], true, "{run}");
    assert_eq!(env.search(BASE, "(sn=Nyström)").len(), 1);

    // The teacher at two schools loses one duty: the tie is found by its id.
    let teacher = &sis.specials.two_unit_teacher;
    let duties: Vec<_> = data.duties.iter().filter(|d| &d.person == teacher).cloned().collect();
    assert_eq!(duties.len(), 2, "{duties:?}");
    let given = data.persons.iter().find(|p| &p.id == teacher).unwrap().given_name.clone();
    let schools_of = || -> Vec<String> {
        let people = env.people();
        let entry = people.values().find(|e| e.one("givenName") == given).expect("the teacher's account");
        entry.get("departmentNumber")
    };
    assert_eq!(schools_of().len(), 2, "{:?}", schools_of());
    let rows = runs(&env).len();
    assert!(sis.handle.delete(Kind::Duty, &duties[1].id));
    let run = run_after(&env, rows, "the ended duty", |r| r["counts"]["planned"]["update"].as_u64() >= Some(1));
    assert_eq!(run["counts"]["incremental"], true, "{run}");
    assert_eq!(schools_of().len(), 1, "{:?}", schools_of());

    // A pupil deleted in the SIS: disabled by an incremental run.
    let leaver = data
        .persons
        .iter()
        .find(|p| {
            p.enrolments.iter().any(|e| e.end_date.is_none())
                && p.id != pupil.id
                && ![&sis.specials.protected, &sis.specials.confidential].contains(&&p.id)
        })
        .unwrap()
        .clone();
    let rows = runs(&env).len();
    assert!(sis.handle.delete(Kind::Person, &leaver.id));
    let run = run_after(&env, rows, "the leaver", |r| r["counts"]["planned"]["disable"].as_u64() >= Some(1));
    assert_eq!(run["counts"]["incremental"], true, "{run}");

    // The incremental runs left what a full read plans: nothing.
    let plan = env.enid(&["plan", "--json", "--full"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{}", plan["operations"]);
    let log = log(&env);
    for p in &data.persons {
        if let Some(c) = &p.civic_no {
            assert!(!log.contains(c.as_str()) && !log.contains(&c[2..]), "a civic number in the daemon's log");
        }
    }

    // A vendor's mass deletion arrives as changes: the stored records with the changes applied
    // are counted against the last applied run, and the shrink guard stops the run before
    // planning; nobody is disabled.
    let rows = runs(&env).len();
    let gone: Vec<String> = data
        .persons
        .iter()
        .filter(|p| p.enrolments.iter().any(|e| e.end_date.is_none()) && p.id != pupil.id && p.id != leaver.id)
        .take(40)
        .map(|p| p.id.clone())
        .collect();
    for id in &gone {
        assert!(sis.handle.delete(Kind::Person, id));
    }
    let stopped = run_after(&env, rows, "the shrink guard", |r| r["status"] == "stopped");
    assert!(stopped["message"].as_str().is_some_and(|m| m.contains("fewer than")), "{stopped}");
    std::thread::sleep(std::time::Duration::from_secs(3));
    // The guard stops every tick until someone acts: one row says so, not one a second.
    let stops = runs(&env).iter().skip(rows).filter(|r| r["status"] == "stopped").count();
    assert_eq!(stops, 1, "{:?}", runs(&env));
    assert!(
        runs(&env).iter().skip(rows).all(|r| r["counts"]["planned"]["disable"].as_u64().unwrap_or(0) == 0),
        "nobody disabled: {:?}",
        runs(&env)
    );

    let v = sis.handle.violations();
    assert!(v.is_empty(), "requests the specification does not allow: {v:?}");
}
