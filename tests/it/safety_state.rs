//! The state database under the mistakes that really happen: lost, emptied or misplaced, two runs
//! at once, a run killed half-way; the id key; backups; failures that must not become empty
//! values; secrets in the wrong key.

use crate::harness::*;
use enid::store::StateStore;
use std::os::unix::fs::PermissionsExt;

/// `n` pupils in two schools and four classes.
fn pupils(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let school = if i % 2 == 0 { "SKOLA1" } else { "SKOLA2" };
            let class = ["7A", "7B", "8A", "8B"][i % 4];
            row(&format!("P{i:05}"), &format!("Elev{i}"), "Testsson", &pnr(i), "student", school, class)
        })
        .collect()
}

const GROUPS: &str = "[targets.directory.groups]\nbase_dn = \"ou=groups,dc=example,dc=org\"";

fn no_civic(n: usize, runs: &[&Run]) {
    for r in runs {
        for i in 0..n {
            let p = pnr(i);
            for text in [&r.stdout, &r.stderr] {
                assert!(!text.contains(&p) && !text.contains(&p.replace('-', "")), "civic number leaked:\n{text}");
            }
        }
    }
}

fn store(env: &Env) -> (tokio::runtime::Runtime, enid::store::Store) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let s = rt.block_on(enid::store::Store::open(&env.path("state.db"))).unwrap();
    (rt, s)
}

#[test]
fn a_lost_state_stops_before_planning_and_adopt_rebuilds_it_without_a_second_account() {
    let env = Env::with_config(GROUPS);
    csv_rows(&env, &pupils(30));
    env.apply();
    let before = env.people();
    assert_eq!(before.len(), 30);

    for how in ["deleted", "emptied"] {
        remove_state(&env);
        if how == "emptied" {
            std::fs::write(env.path("state.db"), "").unwrap();
        }
        let plan = env.enid(&["plan"]).fails();
        assert!(
            plan.stderr.contains("records no applied run") && plan.stderr.contains("enid adopt"),
            "{}",
            plan.stderr
        );
        let apply = env.enid(&["apply", "--yes"]).fails();
        assert!(apply.stderr.contains("stopped before planning"), "{}", apply.stderr);
        assert_eq!(env.people().len(), 30, "{how}: nothing created");

        // Without --yes and without a terminal, adopt shows and records nothing.
        let shown = env.enid(&["adopt"]).fails();
        assert!(shown.stdout.contains("Accounts to record as enid's (30)"), "{}", shown.stdout);
        let adopted = env.enid(&["adopt", "--yes"]).ok();
        assert!(adopted.stdout.contains("recorded 30 accounts and 4 groups"), "{}", adopted.stdout);
        no_civic(30, &[&plan, &apply, &shown, &adopted]);

        let summary = env.summary();
        assert_eq!(summary["create"], 0, "{how}: {summary}");
        assert_eq!(summary["update"], 0, "{how}: {summary}");
        assert_eq!(summary["unchanged"], 30, "{how}: {summary}");
        let plan = env.enid(&["plan", "--json"]).ok().json();
        assert_eq!(plan["group_summary"]["create"], 0, "{how}: {plan}");
        assert_eq!(plan["group_summary"]["delete"], 0, "{how}: {plan}");
        assert_eq!(plan["blocked"].as_array().map(Vec::len), Some(0), "{how}: {plan}");
    }
    // A newcomer named like an existing account gets another username.
    let mut rows = pupils(30);
    rows.push(row("P99999", "Elev1", "Testsson", &pnr(500), "student", "SKOLA1", "7A"));
    csv_rows(&env, &rows);
    env.apply();
    let after = env.people();
    assert_eq!(after.len(), 31);
    for (uid, e) in &before {
        assert_eq!(after[uid].one("entryUUID"), e.one("entryUUID"), "{uid} is the same entry");
    }
}

#[test]
fn adopt_claims_disabled_leavers_and_a_returning_leaver_gets_the_same_account_back() {
    let env = Env::new();
    csv_rows(&env, &pupils(12));
    env.apply();
    csv_rows(&env, &pupils(10));
    env.apply();
    let gone = env.people()["elev11.testsson"].clone();
    assert!(gone.dn.contains("ou=disabled"), "{}", gone.dn);
    remove_state(&env);
    let adopted = env.enid(&["adopt", "--yes"]).ok();
    assert!(adopted.stdout.contains("recorded 12 accounts"), "{}", adopted.stdout);
    assert!(adopted.stdout.contains("a leaver"), "{}", adopted.stdout);
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 0, "{plan}");
    assert_eq!(plan["summary"]["enable"], 0, "{plan}");
    // The leaver returns: the same entry is enabled again, no second account.
    csv_rows(&env, &pupils(12));
    env.apply();
    let back = env.people()["elev11.testsson"].clone();
    assert!(!back.dn.contains("ou=disabled"), "{}", back.dn);
    assert_eq!(back.one("entryUUID"), gone.one("entryUUID"));
    assert_eq!(env.people().len(), 12);
}

#[test]
fn entries_whose_ids_no_source_gives_keep_runs_stopped_until_claimed_by_hand() {
    let env = Env::new();
    csv_rows(&env, &pupils(3));
    env.apply();
    remove_state(&env);
    // Another id key: the ids on the entries are no longer what the sources give.
    std::fs::remove_file(env.path("id.key")).unwrap();
    env.enid(&["plan"]).fails();
    let adopt = env.enid(&["adopt", "--yes"]).ok();
    assert!(adopt.stdout.contains("Not matched (3)"), "{}", adopt.stdout);
    assert!(adopt.stdout.contains("enid adopt --entry KEY --person sis/P00000"), "{}", adopt.stdout);
    // Unclaimed entries with enid ids keep the runs stopped: never a second account.
    for i in 0..3 {
        let plan = env.enid(&["plan"]).fails();
        assert!(plan.stderr.contains(&format!("holds {} accounts carrying enid ids", 3 - i)), "{}", plan.stderr);
        assert!(plan.stderr.contains("rebuilt by `enid adopt`"), "{}", plan.stderr);
        let dn = format!("uid=elev{i}.testsson,{BASE}");
        let person = format!("sis/P{i:05}");
        let claimed = env.enid(&["adopt", "--yes", "--entry", &dn, "--person", &person]).ok();
        assert!(claimed.stdout.contains("(by hand)"), "{}", claimed.stdout);
    }
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 0, "never a second account: {plan}");
    assert_eq!(plan["blocked"].as_array().map(Vec::len), Some(0), "{plan}");
    // The claimed entries get this installation's ids.
    assert_eq!(plan["summary"]["update"], 3, "{plan}");
    env.apply();
    assert_eq!(env.people().len(), 3);
    let log = env.enid(&["log", "--person", "elev0.testsson"]).ok();
    assert!(log.stdout.contains("claimed by an operator"), "{}", log.stdout);
}

/// Issue 14, promise 5: an adopted state is a recovered state. Before, the entry adopt could
/// not match kept every later apply stopped with "records no runs" for good.
#[test]
fn after_adopt_an_unmatched_entry_blocks_its_person_only_and_the_rest_applies() {
    let env = Env::new();
    let mut rows = pupils(6);
    csv_rows(&env, &rows);
    env.apply();
    let before = env.people();
    remove_state(&env);
    // While the state is lost: P00003 changes both names (the entry fits neither), P00001 only
    // the family name (the entry still holds the given name: claimed), and a newcomer joins.
    rows[3] = row("P00003", "Alva", "Berg", &pnr(3), "student", "SKOLA2", "8B");
    rows[1] = row("P00001", "Elev1", "Lind", &pnr(1), "student", "SKOLA2", "7B");
    rows.push(row("P00100", "Nyberg", "Elevsson", &pnr(100), "student", "SKOLA1", "7A"));
    csv_rows(&env, &rows);
    let adopted = env.enid(&["adopt", "--yes"]).ok();
    assert!(adopted.stdout.contains("recorded 5 accounts"), "{}", adopted.stdout);
    assert!(adopted.stdout.contains("Not matched (1)"), "{}", adopted.stdout);
    assert!(adopted.stdout.contains("uid=elev3.testsson"), "{}", adopted.stdout);
    let blocked_id = before["elev3.testsson"].one("employeeNumber");

    // The next apply goes on: it creates the newcomer and updates P00001, and blocks only P00003.
    let apply = env.enid(&["apply", "--yes"]);
    assert!(apply.status.success(), "exit 0 with a blocked person\n{}\n{}", apply.stdout, apply.stderr);
    assert!(apply.stdout.contains("blocked (1)"), "{}", apply.stdout);
    assert!(apply.stdout.contains("does not record it as enid's"), "{}", apply.stdout);
    let after = env.people();
    assert_eq!(after.len(), 7, "{:?}", after.keys());
    assert!(after.contains_key("nyberg.elevsson"), "{:?}", after.keys());
    assert_eq!(after["elev1.testsson"].one("sn"), "Lind");
    // The unmatched entry is left as it was, and nobody else carries its id.
    let entry = &after["elev3.testsson"];
    assert_eq!(entry.one("modifyTimestamp"), before["elev3.testsson"].one("modifyTimestamp"));
    assert_eq!(entry.one("sn"), "Testsson");
    for (v, dns) in ids_in_directory(&env) {
        assert_eq!(dns.len(), 1, "owner value {v} is on {dns:?}");
    }
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 0, "{plan}");
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{plan}");
    let blocked = plan["blocked"].as_array().cloned().unwrap_or_default();
    assert_eq!(blocked.len(), 1, "{plan}");
    assert_eq!(blocked[0]["identity"], blocked_id.as_str(), "{plan}");
    no_civic(101, &[&adopted, &apply]);

    // The apply named P00003 anew; that does not make a second adopt claim the entry by its id.
    let again = env.enid(&["adopt", "--yes"]).ok();
    assert!(again.stdout.contains("Not matched (1)"), "{}", again.stdout);
    assert!(again.stdout.contains("Accounts to record as enid's (0)"), "{}", again.stdout);
    // Claimed by hand, the entry is the person's again: no second account, nothing blocked.
    let dn = format!("uid=elev3.testsson,{BASE}");
    env.enid(&["adopt", "--yes", "--entry", &dn, "--person", "sis/P00003"]).ok();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 0, "{plan}");
    assert_eq!(plan["blocked"].as_array().map(Vec::len), Some(0), "{plan}");
    env.apply();
    assert_eq!(env.people()["elev3.testsson"].one("sn"), "Berg");
}

#[test]
fn a_state_path_in_a_missing_directory_is_an_error_and_a_new_state_is_announced_and_owner_only() {
    let env = Env::new();
    csv_rows(&env, &pupils(2));
    let cfg = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    std::fs::write(env.path("enid.toml"), cfg.replace("path = \"state.db\"", "path = \"stat/state.db\"")).unwrap();
    let run = env.enid(&["plan"]).fails();
    assert!(run.stderr.contains("stat") && run.stderr.contains("does not exist"), "{}", run.stderr);
    assert!(!env.path("stat").exists(), "the directory is never created");

    std::fs::write(env.path("enid.toml"), cfg).unwrap();
    let first = env.enid(&["plan"]).ok();
    assert!(first.stderr.contains("created a new, empty state database"), "{}", first.stderr);
    assert!(first.stderr.contains("created the id key"), "{}", first.stderr);
    let again = env.enid(&["plan"]).ok();
    assert!(!again.stderr.contains("created"), "{}", again.stderr);
    env.apply();
    for f in ["state.db", "state.db.lock", "id.key"] {
        let mode = std::fs::metadata(env.path(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f} is owner-only");
    }
    // A state made readable by others is made owner-only again.
    std::fs::set_permissions(env.path("state.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    env.enid(&["plan"]).ok();
    assert_eq!(std::fs::metadata(env.path("state.db")).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn the_id_key_decides_ids_and_a_missing_or_other_key_stops_enid() {
    let env = Env::new();
    csv_rows(&env, &pupils(2));
    env.apply();
    let id = env.people()["elev0.testsson"].one("employeeNumber");
    // Not the old public derivation (a UUIDv5 has version digit 5).
    assert_eq!(id.as_bytes()[14], b'8', "{id}");

    let key = std::fs::read_to_string(env.path("id.key")).unwrap();
    std::fs::remove_file(env.path("id.key")).unwrap();
    let run = env.enid(&["plan"]).fails();
    assert!(run.stderr.contains("id key file") && run.stderr.contains("restore"), "{}", run.stderr);
    assert!(!env.path("id.key").exists(), "never made up again for a state built with one");
    std::fs::write(env.path("id.key"), key.replace(&key[..2], if &key[..2] == "00" { "11" } else { "00" })).unwrap();
    let run = env.enid(&["plan"]).fails();
    assert!(run.stderr.contains("is not the key"), "{}", run.stderr);
    std::fs::write(env.path("id.key"), &key).unwrap();
    assert_eq!(env.summary()["unchanged"], 2);

    // Another installation with its own key gives other ids to the same records.
    let other = Env::new();
    csv_rows(&other, &pupils(2));
    other.apply();
    assert_ne!(other.people()["elev0.testsson"].one("employeeNumber"), id);
}

#[test]
fn a_second_apply_waits_for_the_first_and_a_killed_run_is_marked_interrupted() {
    let env = Env::new();
    csv_rows(&env, &pupils(3));
    env.apply();
    // Another process holds the lock.
    let lock = std::fs::OpenOptions::new().read(true).write(true).open(env.path("state.db.lock")).unwrap();
    lock.try_lock().unwrap();
    std::fs::write(env.path("state.db.lock"), "pid 4242, `enid apply` started 2026-11-23T08:00:00Z").unwrap();
    let second = env.enid(&["apply", "--yes"]).fails();
    assert!(second.stderr.contains("another run (pid 4242"), "{}", second.stderr);
    let adopt = env.enid(&["adopt", "--yes"]).fails();
    assert!(adopt.stderr.contains("another run"), "{}", adopt.stderr);
    // plan only reads: it needs no lock.
    env.enid(&["plan"]).ok();
    drop(lock);

    // A run left `running` by a process that died is marked interrupted by the next one.
    {
        let (rt, s) = store(&env);
        rt.block_on(s.begin_run("apply", None, chrono::Utc::now())).unwrap();
    }
    env.apply();
    let (rt, s) = store(&env);
    let runs = rt.block_on(s.runs(10)).unwrap();
    assert!(runs.iter().all(|r| r.status != "running"), "{runs:?}");
    assert_eq!(runs.iter().filter(|r| r.status == "interrupted").count(), 1, "{runs:?}");
}

#[test]
fn state_backup_writes_a_consistent_owner_only_copy_that_enid_can_run_on() {
    let env = Env::new();
    csv_rows(&env, &pupils(5));
    env.apply();
    let copy = env.path("backup.db");
    let out = env.enid(&["state", "backup", copy.to_str().unwrap()]).ok();
    assert!(out.stdout.contains("backup.db"), "{}", out.stdout);
    assert_eq!(std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777, 0o600);
    let again = env.enid(&["state", "backup", copy.to_str().unwrap()]).fails();
    assert!(again.stderr.contains("exists"), "{}", again.stderr);
    // Restored: the plan is empty, nothing is created again.
    remove_state(&env);
    std::fs::copy(&copy, env.path("state.db")).unwrap();
    assert_eq!(env.summary()["unchanged"], 5);
}

#[test]
fn a_template_that_fails_for_one_person_holds_that_person_and_fails_the_run() {
    let env = Env::new();
    csv_rows(&env, &pupils(3));
    env.apply();
    let before = env.people();
    let cfg = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    // Fails for Elev1 only (division by zero), and changes everyone else's title.
    let bad = "[targets.directory.attributes]\ntitle = \"{% if given_name == 'Elev1' %}{{ 1 // 0 }}{% endif %}elev\"\n";
    std::fs::write(env.path("enid.toml"), format!("{cfg}{bad}")).unwrap();
    let plan = env.enid(&["plan", "--json"]).fails();
    assert!(plan.stderr.contains("is held") && plan.stderr.contains("title"), "{}", plan.stderr);
    let json = plan.json();
    assert_eq!(json["summary"]["update"], 2, "{json}");
    let apply = env.enid(&["apply", "--yes"]).fails();
    assert!(apply.stderr.contains("is held"), "{}", apply.stderr);
    let after = env.people();
    assert_eq!(after["elev0.testsson"].one("title"), "elev");
    assert_eq!(after["elev1.testsson"].attrs, before["elev1.testsson"].attrs, "the held person is untouched");
}

#[test]
fn a_secret_in_the_wrong_key_is_never_echoed() {
    let env = Env::new();
    csv_rows(&env, &pupils(1));
    let cfg = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    for wrong in ["bind_password_env = \"Hunter2\"", "bind_password_file = \"Hunter2\""] {
        std::fs::write(env.path("enid.toml"), cfg.replace("bind_password_file = \"ldap.secret\"", wrong)).unwrap();
        let run = env.enid(&["check"]).fails();
        assert!(!run.stdout.contains("Hunter2") && !run.stderr.contains("Hunter2"), "{}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("bind password of [targets.directory]"), "{}", run.stderr);
    }
}

#[test]
fn skipping_tls_verification_warns_on_every_run() {
    let env = Env::with_config("tls_insecure_skip_verify = true");
    csv_rows(&env, &pupils(1));
    for _ in 0..2 {
        let run = env.enid(&["plan"]).ok();
        assert!(run.stderr.contains("tls_insecure_skip_verify = true"), "{}", run.stderr);
    }
}

#[test]
fn a_held_apply_saves_its_plan_so_the_hinted_command_works() {
    let env = Env::with_config("[targets.directory.thresholds]\ndisable_min = 1\ndisable_percent = 1");
    csv_rows(&env, &pupils(6));
    env.apply();
    csv_rows(&env, &pupils(3));
    let held = env.enid(&["apply", "--yes"]).fails();
    let hint = held.stderr.split('`').find(|s| s.starts_with("enid apply --plan")).unwrap_or_default().to_string();
    assert!(hint.ends_with("--accept-threshold"), "{}", held.stderr);
    let args: Vec<&str> = hint.split_whitespace().skip(1).collect();
    env.enid(&args).ok();
    assert_eq!(env.summary()["disable"], 0);
}

#[test]
fn a_rename_left_out_of_a_partial_apply_keeps_the_old_username_in_the_state() {
    let env = Env::new();
    let cfg = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    std::fs::write(env.path("enid.toml"), format!("[naming]\non_name_change = \"rename\"\n\n{cfg}")).unwrap();
    csv_rows(&env, &pupils(3));
    env.apply();
    let mut rows = pupils(3);
    rows[0] = rows[0].replace("Testsson", "Lind");
    csv_rows(&env, &rows);
    let plan = env.enid(&["plan", "--save", "--json"]).ok().json();
    assert_eq!(plan["summary"]["rename"], 1, "{plan}");
    let id = plan["plan_id"].as_str().unwrap().to_string();
    // The update addresses the renamed account: it waits with the rename.
    let partial = env.enid(&["apply", "--plan", &id, "--only", "update"]).ok();
    assert!(partial.stdout.contains("Applying 0 of"), "{}", partial.stdout);
    {
        let (rt, s) = store(&env);
        let snap = rt.block_on(s.snapshot()).unwrap();
        let names: Vec<&connector_api::value::Str> = snap.identities.values().flatten().collect();
        assert!(names.iter().any(|n| *n == "elev0.testsson"), "{names:?}");
        assert!(!names.iter().any(|n| *n == "elev0.lind"), "{names:?}");
    }
    assert!(env.people().contains_key("elev0.testsson"));
    assert_eq!(env.summary()["rename"], 1, "still to do");
    env.apply();
    assert!(env.people().contains_key("elev0.lind"));
}

#[test]
fn runs_starting_at_once_on_a_new_state_do_not_trip_over_the_schema() {
    for _ in 0..3 {
        let env = Env::new();
        csv_rows(&env, &pupils(3));
        let spawn = || {
            std::process::Command::new(env!("CARGO_BIN_EXE_enid"))
                .arg("--config")
                .arg(env.path("enid.toml"))
                .arg("plan")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let children: Vec<_> = (0..3).map(|_| spawn()).collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{err}");
        }
    }
}
