//! Every applying run leaves a row (`enid runs`), however it ends: applied, held by a threshold,
//! stopped by a guard, declined, nothing to do. `enid plan` stays read-only. A run that sent
//! nothing never makes a state look as if it had applied.

use crate::harness::*;

fn pupils(n: usize) -> Vec<String> {
    (0..n).map(|i| row(&format!("P{i:05}"), &format!("Elev{i}"), "Testsson", &pnr(i), "student", "S1", "7A")).collect()
}

fn runs(env: &Env) -> Vec<serde_json::Value> {
    let out = env.enid(&["runs", "--json"]).ok().stdout;
    out.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[test]
fn every_apply_leaves_a_row_however_it_ends_and_a_plan_leaves_none() {
    let env = Env::with_config("\n[targets.directory.policy.thresholds]\ndisable_percent = 0\ndisable_min = 1\n");
    csv_rows(&env, &pupils(4));
    env.enid(&["plan"]).ok();
    assert!(runs(&env).is_empty(), "a plan is read-only");
    env.apply();
    let all = runs(&env);
    assert_eq!(all.len(), 1);
    assert_eq!((all[0]["command"].as_str(), all[0]["status"].as_str()), (Some("apply"), Some("ok")));
    assert_eq!(all[0]["counts"]["planned"]["create"], 4);
    assert_eq!(all[0]["counts"]["ok"], 4);

    // Nothing to do.
    env.apply();
    assert_eq!(runs(&env)[1]["status"], "unchanged");

    // Stopped by an input guard: an empty export.
    let csv = std::fs::read_to_string(env.path("persons.csv")).unwrap();
    std::fs::write(env.path("persons.csv"), format!("{}\n", csv.lines().next().unwrap())).unwrap();
    let run = env.enid(&["apply", "--yes"]).fails();
    let stopped = &runs(&env)[2];
    assert_eq!(stopped["status"], "stopped");
    let message = stopped["message"].as_str().unwrap();
    assert!(message.contains("source \"sis\"") && message.contains("zero valid records"), "{message}");
    assert!(run.stderr.contains("zero valid records"), "{}", run.stderr);

    // Held by a threshold: two of four leave.
    csv_rows(&env, &pupils(2));
    let run = env.enid(&["apply", "--yes"]).fails();
    assert!(run.stderr.contains("is held") && run.stderr.contains("--accept-threshold"), "{}", run.stderr);
    let held = &runs(&env)[3];
    assert_eq!(held["status"], "held");
    assert_eq!(held["counts"]["planned"]["disable"], 2);
    assert!(held["counts"]["held"][0].as_str().unwrap().contains("2 disable of 4 owned accounts"), "{held}");
    assert_eq!(env.people().values().filter(|e| e.one("description").is_empty()).count(), 4, "nothing changed");
    let text = env.enid(&["runs"]).ok().stdout;
    assert!(text.contains("held") && text.contains("[2 disable]"), "{text}");
}

/// The lost-state guard reads whether the state ever applied: a first apply that a guard
/// stopped (here the lost-state guard itself) leaves a row, and the next apply must still be
/// stopped, never create everyone a second account.
#[test]
fn a_stopped_apply_never_makes_a_lost_state_look_applied() {
    let env = Env::new();
    csv_rows(&env, &pupils(3));
    env.apply();
    remove_state(&env);
    for _ in 0..2 {
        let run = env.enid(&["apply", "--yes"]).fails();
        assert!(run.stderr.contains("records no applied run"), "{}", run.stderr);
    }
    assert_eq!(runs(&env).iter().filter(|r| r["status"] == "stopped").count(), 2);
    assert!(ids_in_directory(&env).values().all(|dns| dns.len() == 1), "no second account");
}
