//! Incremental reconciles of `enid run`: a CSV edit plans only the persons whose records
//! changed and reads only their accounts; whenever the narrow view cannot be sure (an account
//! not where the state says, a new username someone else holds, a group membership that
//! changes), the run is a full one, and says why.

use crate::daemon16::{Daemon, wait_for};
use crate::harness::*;

const SCHEDULE: &str = "\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"1s\"\n";

fn pupil(i: usize, family: &str, class: &str) -> String {
    row(&format!("P{i:05}"), &format!("Elev{i}"), family, &pnr(i), "student", "S1", class)
}

fn pupils(n: usize) -> Vec<String> {
    (0..n).map(|i| pupil(i, "Testsson", "7A")).collect()
}

fn runs(env: &Env) -> Vec<serde_json::Value> {
    let out = env.enid(&["runs", "--json"]).ok().stdout;
    out.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// Waits until the service has left `n` run rows, and returns the last.
fn run_number(env: &Env, n: usize) -> serde_json::Value {
    // A row is written when an apply begins ("running") and finished when it ends.
    wait_for(&format!("run {n}"), 30, || {
        let all = runs(env);
        all.len() >= n && all.iter().all(|r| r["status"] != "running")
    });
    let all = runs(env);
    assert_eq!(all.len(), n, "one run per change: {all:?}");
    all[n - 1].clone()
}

fn log(env: &Env) -> String {
    std::fs::read_to_string(env.path("daemon.log")).unwrap()
}

fn no_civic_numbers(env: &Env, n: usize) {
    let log = log(env);
    for i in 0..n {
        let c = pnr(i);
        assert!(!log.contains(&c) && !log.contains(&c[2..]), "a civic number in the daemon's log");
    }
}

#[test]
fn edits_reach_the_directory_through_incremental_runs_weighed_against_the_owned_totals() {
    // Two updates in one run are held when weighed against the two accounts read, not when
    // weighed against the twenty the target holds.
    let env = Env::with_config(&format!(
        "\n[targets.directory.policy.thresholds]\nupdate_percent = 20\nupdate_min = 1\n{SCHEDULE}"
    ));
    let mut rows = pupils(20);
    csv_rows(&env, &rows);
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    let first = run_number(&env, 1);
    assert_eq!(first["counts"]["planned"]["create"], 20, "{first}");
    assert!(first["counts"].get("incremental").is_none(), "the first run is a full one: {first}");

    // Two surnames change.
    rows[3] = pupil(3, "Bytt", "7A");
    rows[4] = pupil(4, "Bytt", "7A");
    csv_rows(&env, &rows);
    let second = run_number(&env, 2);
    assert_eq!(second["status"], "ok", "{second}");
    assert_eq!(second["counts"]["incremental"], true, "{second}");
    assert_eq!(second["counts"]["planned"]["update"], 2, "{second}");
    assert_eq!(env.search(BASE, "(sn=Bytt)").len(), 2);

    // A new pupil.
    rows.push(pupil(20, "Ny", "7A"));
    csv_rows(&env, &rows);
    let third = run_number(&env, 3);
    assert_eq!((third["counts"]["incremental"].as_bool(), third["status"].as_str()), (Some(true), Some("ok")));
    assert_eq!(third["counts"]["planned"]["create"], 1, "{third}");
    assert_eq!(env.people().len(), 21);
    assert_eq!(ids_in_directory(&env).values().filter(|dns| dns.len() > 1).count(), 0);

    // A pupil leaves.
    rows.remove(5);
    csv_rows(&env, &rows);
    let fourth = run_number(&env, 4);
    assert_eq!(fourth["counts"]["incremental"], true, "{fourth}");
    assert_eq!(fourth["counts"]["planned"]["disable"], 1, "{fourth}");
    assert_eq!(fourth["counts"]["ok"], 1, "{fourth}");

    // Nothing changed: the file is written again as it was. The incremental run finds nothing
    // and leaves no row (a tick a second must not bury the runs that did something).
    csv_rows(&env, &rows);
    wait_for("the run of the rewritten file", 20, || log(&env).matches("(changes): nothing to do").count() == 1);
    assert_eq!(runs(&env).len(), 4);

    // The incremental runs agree with a full plan: nothing left to do.
    assert_eq!(env.enid(&["plan", "--json"]).ok().json()["operations"].as_array().unwrap().len(), 0);
    assert!(!log(&env).contains("a full run instead"), "{}", log(&env));
    no_civic_numbers(&env, 21);
}

#[test]
fn an_incremental_run_in_doubt_is_a_full_run_and_never_makes_a_second_account() {
    let env = Env::with_config(SCHEDULE);
    let mut rows = pupils(10);
    csv_rows(&env, &rows);
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    run_number(&env, 1);

    // Someone deleted pupil 2's account by hand; then pupil 2's surname changes. The account
    // is not where the state says: a full run decides (it creates the account afresh, as for
    // any account enid made that is gone).
    let people = env.people();
    let (uid2, entry2) = people.iter().find(|(_, e)| e.one("givenName") == "Elev2").unwrap();
    let uid2 = uid2.clone();
    env.delete(&entry2.dn);
    rows[2] = pupil(2, "Annan", "7A");
    csv_rows(&env, &rows);
    let second = run_number(&env, 2);
    assert!(second["counts"].get("incremental").is_none(), "a full run: {second}");
    wait_for("the reason in the log", 10, || log(&env).contains("is not where the state says"));
    assert_eq!(env.people()[&uid2].one("sn"), "Annan");

    // A new pupil whose username an account enid did not make already holds: the incremental
    // run finds the name taken and gives way to a full run, which never makes a namesake.
    rows.push(pupil(10, "Ny", "7A"));
    let plan = crate::review16inc::full_plan_for(&env, &rows);
    let name = plan["new_identities"][0]["username"].as_str().expect("the new pupil's username").to_string();
    env.add(
        &format!("uid={name},{BASE}"),
        &[("objectClass", &["inetOrgPerson"]), ("uid", &[name.as_str()]), ("cn", &["Someone Else"]), ("sn", &["Else"])],
    );
    csv_rows(&env, &rows);
    let third = run_number(&env, 3);
    assert!(third["counts"].get("incremental").is_none(), "a full run: {third}");
    wait_for("the reason in the log", 10, || log(&env).contains("a new username is held on target"));
    let holders = env.search(BASE, &format!("(uid={name})"));
    assert_eq!(holders.len(), 1, "no namesake beside the account enid did not make");
    assert!(holders[0].get("employeeNumber").is_empty(), "the foreign account is not taken over unasked");
    assert_eq!(env.people().len(), 11);
    no_civic_numbers(&env, 11);
}

#[test]
fn with_groups_a_name_change_is_incremental_and_a_class_change_is_a_full_run() {
    let env =
        Env::with_config(&format!("[targets.directory.groups]\nbase_dn = \"ou=groups,dc=example,dc=org\"\n{SCHEDULE}"));
    let mut rows = pupils(6);
    csv_rows(&env, &rows);
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    run_number(&env, 1);
    let members = |class: &str| -> usize {
        env.search("ou=groups,dc=example,dc=org", &format!("(cn=*{class}*)"))
            .iter()
            .map(|g| g.get("member").len())
            .sum()
    };
    assert_eq!(members("7A"), 6);

    rows[1] = pupil(1, "Bytt", "7A");
    csv_rows(&env, &rows);
    let second = run_number(&env, 2);
    assert_eq!(second["counts"]["incremental"], true, "{second}");
    assert_eq!(second["counts"]["planned"]["update"], 1, "{second}");

    rows[1] = pupil(1, "Bytt", "7B");
    csv_rows(&env, &rows);
    let third = run_number(&env, 3);
    assert!(third["counts"].get("incremental").is_none(), "a full run: {third}");
    wait_for("the reason in the log", 10, || log(&env).contains("a group membership or school tie changed"));
    assert_eq!((members("7A"), members("7B")), (5, 1));
}

/// With `incremental = "1s"` and the default `plan_only`, the plan waiting for approval is saved
/// once: the ticks after it find exactly that plan again and leave no row each.
#[test]
fn a_plan_waiting_for_approval_is_saved_once_not_at_every_tick() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\nincremental = \"1s\"\nsettle = \"1s\"\n");
    csv_rows(&env, &pupils(3));
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    let first = run_number(&env, 1);
    assert_eq!((first["status"].as_str(), first["counts"]["planned"]["create"].as_u64()), (Some("planned"), Some(3)));
    wait_for("several ticks", 20, || log(&env).matches("run: finished").count() >= 5);
    assert_eq!(runs(&env).len(), 1, "one row for one plan: {:?}", runs(&env));
    assert!(env.people().is_empty(), "the service only plans");
    // The ticks find the same changes the waiting plan holds: after the first, no tick weighs
    // everything again in a full run.
    let fallbacks = log(&env).matches("a full run instead of an incremental one").count();
    assert!(fallbacks <= 1, "{fallbacks} full runs for the same waiting changes:\n{}", log(&env));
}

/// Leavers that arrive one at a time (an export job that drops a school's pupils a few at a
/// time, a vendor deleting page by page) are weighed together: each incremental run counts
/// what the incremental runs since the last full run carried out, so the third leaver over a
/// limit of two is held, as three at once would be.
#[test]
fn leavers_one_at_a_time_are_weighed_together_until_the_next_full_run() {
    let env = Env::with_config(&format!(
        "\n[targets.directory.policy.thresholds]\ndisable_percent = 10\ndisable_min = 2\n{SCHEDULE}"
    ));
    let mut rows = pupils(20);
    csv_rows(&env, &rows);
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    run_number(&env, 1);
    for n in [2, 3] {
        rows.pop();
        csv_rows(&env, &rows);
        let run = run_number(&env, n);
        assert_eq!((run["status"].as_str(), run["counts"]["incremental"].as_bool()), (Some("ok"), Some(true)), "{run}");
        assert_eq!(run["counts"]["planned"]["disable"], 1, "{run}");
    }
    rows.pop();
    csv_rows(&env, &rows);
    let held = run_number(&env, 4);
    assert_eq!(held["status"], "held", "the third leaver since the last full run: {held}");
    let message = held["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("3 disable") && message.contains("2 of them carried out since the last full run"),
        "{message}"
    );
    assert_eq!(held["counts"]["ok"], 0, "{held}");
}
