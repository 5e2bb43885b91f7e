//! Review of incremental runs (issue 16): cases where the narrow view of `enid run` planned what
//! a full run would not, each fixed by a fall-back to a full run: a username `enid adopt`
//! reserved, a target enid owns nothing on yet, and a full run that was held. Each failed on the
//! code it was written against.

use crate::daemon16::{Daemon, wait_for};
use crate::harness::*;
use crate::onboarding::hand_made;

const SCHEDULE: &str = "\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"1s\"\n";

fn pupil(i: usize) -> String {
    row(&format!("P{i:05}"), &format!("Elev{i}"), "Testsson", &pnr(i), "student", "S1", "7A")
}

fn log(env: &Env) -> String {
    std::fs::read_to_string(env.path("daemon.log")).unwrap()
}

/// Waits until the daemon has finished `n` runs of `kind` ("full" or "changes").
fn finished(env: &Env, kind: &str, n: usize) {
    let needle = format!("({kind}): ");
    wait_for(&format!("{n} {kind} runs"), 30, || {
        log(env).lines().filter(|l| l.contains("run: finished") && l.contains(&needle)).count() >= n
    });
}

/// The full plan `enid plan` makes for `rows`, read from a copy of the config and the file,
/// while the service keeps watching the real one.
pub(crate) fn full_plan_for(env: &Env, rows: &[String]) -> serde_json::Value {
    std::fs::write(
        env.path("next.toml"),
        std::fs::read_to_string(env.path("enid.toml")).unwrap().replace("persons.csv", "next.csv"),
    )
    .unwrap();
    let mut text = String::from(HEADER);
    text.push('\n');
    text.push_str(&rows.join("\n"));
    text.push('\n');
    std::fs::write(env.path("next.csv"), &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enid"))
        .arg("--config")
        .arg(env.path("next.toml"))
        .args(["plan", "--json"])
        .env_remove("ENID_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Finding 1. `enid adopt` records every username a target holds as taken (reserved). A full
/// run treats a reserved name that an account in scope still holds as a question about that
/// account (the new person waits, or the username rule claims it); the incremental run sees
/// only its persons' accounts, so the reserved name counts as taken, the new person gets
/// "dan.ek2", `narrow_check` finds nobody holding that, and a second account is made beside
/// the one made before enid.
#[test]
fn review16inc_a_reserved_name_held_in_scope_is_not_stepped_around_by_an_incremental_run() {
    let env = Env::with_config(SCHEDULE);
    hand_made(&env, "dan.ek", "Dan", "Eksson", None);
    let mut rows: Vec<String> = (0..5).map(pupil).collect();
    csv_rows(&env, &rows);
    env.apply();
    // A lost state, rebuilt by adopt: "dan.ek" is recorded as taken.
    remove_state(&env);
    env.enid(&["adopt", "--yes"]).ok();
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    finished(&env, "full", 1);

    // A new pupil Dan Ek. A full run blocks him: "dan.ek" is held by an account enid does not
    // own, and which person it belongs to is an operator's question.
    rows.push(row("P00007", "Dan", "Ek", &pnr(7), "student", "S1", "7A"));
    let full = full_plan_for(&env, &rows);
    assert_eq!(full["targets"]["directory"]["create"], 0, "{full}");
    assert!(full["blocked"].to_string().contains("uid=dan.ek"), "{}", full["blocked"]);

    csv_rows(&env, &rows);
    finished(&env, "changes", 1);
    let people = env.people();
    assert!(
        !people.contains_key("dan.ek2"),
        "the incremental run made a second account beside the one made before enid: {:?}\n{}",
        people.keys(),
        log(&env)
    );
}

/// Finding 2. A full run against a target that holds accounts enid does not own weighs its
/// creates (`check_thresholds`: `owned > 0 || in_scope > 0`); the incremental run sets
/// `in_scope` to the owned total, which is 0 there, so its creates are never weighed. After a
/// held first run nothing is stored, every record counts as new, and the next write of the
/// file creates everyone the held run waited on.
#[test]
fn review16inc_creates_a_full_run_holds_are_not_carried_out_by_the_next_incremental_run() {
    let env = Env::with_config(&format!(
        "\n[targets.directory.policy.thresholds]\ncreate_percent = 10\ncreate_min = 2\n{SCHEDULE}"
    ));
    for i in 1..=3 {
        hand_made(&env, &format!("gammal{i}"), "Gammal", &format!("Person{i}"), None);
    }
    let rows: Vec<String> = (0..6).map(pupil).collect();
    csv_rows(&env, &rows);
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    finished(&env, "full", 1);
    assert!(log(&env).contains("(full): held for review"), "{}", log(&env));
    assert_eq!(env.people().len(), 3);

    // The file is written again, unchanged: nothing an operator reviewed.
    csv_rows(&env, &rows);
    finished(&env, "changes", 1);
    assert_eq!(
        env.people().len(),
        3,
        "the incremental run created the accounts the full run held for review:\n{}",
        log(&env)
    );
}

/// Finding 3. A full run held for review (here: an attribute template changed, so every
/// account would be updated) stops nothing the incremental runs do: the next edit of one
/// pupil carries out that pupil's share of the held plan, the new template included, without
/// the review the full run waits for.
#[test]
fn review16inc_an_incremental_run_does_not_carry_out_part_of_a_held_full_plan() {
    let env = Env::with_config(&format!(
        "\n[targets.directory.policy.attributes]\ndescription = \"gammal\"\n\
         \n[targets.directory.policy.thresholds]\nupdate_percent = 10\nupdate_min = 2\n{SCHEDULE}"
    ));
    let mut rows: Vec<String> = (0..10).map(pupil).collect();
    csv_rows(&env, &rows);
    let d = Daemon::start(&env);
    finished(&env, "full", 1);
    assert_eq!(env.search(BASE, "(description=gammal)").len(), 10);
    drop(d);

    // The template changes: the full run at the restart would update all ten, and is held.
    env.edit_config("description = \"gammal\"", "description = \"ny\"");
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    finished(&env, "full", 1);
    assert!(log(&env).contains("(full): held for review"), "{}", log(&env));

    // One pupil's surname changes.
    rows[3] = row("P00003", "Elev3", "Bytt", &pnr(3), "student", "S1", "7A");
    csv_rows(&env, &rows);
    finished(&env, "changes", 1);
    assert!(
        env.search(BASE, "(description=ny)").is_empty(),
        "the incremental run carried out part of the plan held for review:\n{}",
        log(&env)
    );
}
