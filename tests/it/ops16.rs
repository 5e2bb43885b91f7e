//! Issue 16, the operational pieces: `enid keys create` at install time, retention (`enid
//! state prune`, `[state] keep_log_for`) that never makes an applied state look new, and an AD
//! entry renamed level-triggered (against the shared Samba DC). (The run lock that survives a
//! deleted lock file is pinned in `review2.rs`.)

use crate::harness::*;
use enid::store::StateStore;
use std::os::unix::fs::PermissionsExt;

fn pupils(n: usize) -> Vec<String> {
    (0..n).map(|i| row(&format!("P{i:05}"), &format!("Elev{i}"), "Testsson", &pnr(i), "student", "S1", "7A")).collect()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A date `days` from today, for `--now`.
fn in_days(days: u64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Days::new(days)).format("%Y-%m-%d").to_string()
}

#[test]
fn keys_create_makes_both_keys_owner_only_shows_no_key_and_never_overwrites_one() {
    let env = Env::new();
    let (id, password) = (env.path("id.key"), env.path("password.key"));
    let first = env.enid(&["keys", "create"]).ok();
    assert!(first.stdout.contains(&format!("Created id key file {}", id.display())), "{}", first.stdout);
    assert!(first.stdout.contains(&format!("Created password key file {}", password.display())), "{}", first.stdout);
    assert_eq!((mode(&id), mode(&password)), (0o600, 0o600));
    let (id_key, password_key) = (std::fs::read_to_string(&id).unwrap(), std::fs::read_to_string(&password).unwrap());
    assert_ne!(id_key, password_key, "two keys, not one written twice");
    for key in [&id_key, &password_key] {
        let key = key.trim();
        assert_eq!(key.len(), 64);
        for half in [&key[..32], &key[32..]] {
            assert!(
                !first.stdout.contains(half) && !first.stderr.contains(half),
                "key material shown: {}",
                first.stdout
            );
        }
    }
    assert!(!env.path("state.db").exists(), "keys create made a state database");

    let again = env.enid(&["keys", "create"]).ok();
    assert!(!again.stdout.contains("Created"), "{}", again.stdout);
    assert!(again.stdout.contains(&format!("Kept the existing id key file {}", id.display())), "{}", again.stdout);
    assert_eq!(std::fs::read_to_string(&id).unwrap(), id_key);
    assert_eq!(std::fs::read_to_string(&password).unwrap(), password_key);

    // One missing: only that one is made.
    std::fs::remove_file(&password).unwrap();
    let one = env.enid(&["keys", "create"]).ok();
    assert!(one.stdout.contains("Kept the existing id key file"), "{}", one.stdout);
    assert!(one.stdout.contains("Created password key file"), "{}", one.stdout);
    assert_eq!(std::fs::read_to_string(&id).unwrap(), id_key);
    assert_ne!(std::fs::read_to_string(&password).unwrap(), password_key);
    assert_eq!(mode(&password), 0o600);

    // The first run uses the keys made at install time.
    csv_rows(&env, &pupils(2));
    env.apply();
    assert_eq!(std::fs::read_to_string(&id).unwrap(), id_key);
}

#[test]
fn keys_create_fails_naming_the_key_it_cannot_make_or_read() {
    let env = Env::with_config("\n[identity]\nid_key_file = \"no-such-dir/id.key\"\n");
    let run = env.enid(&["keys", "create"]).fails();
    assert!(run.stderr.contains("id key file") && run.stderr.contains("no-such-dir/id.key"), "{}", run.stderr);
    assert!(run.stdout.contains("Created password key file"), "the other key is still made: {}", run.stdout);

    let env = Env::new();
    std::fs::write(env.path("password.key"), "not a key\n").unwrap();
    owner_only(&env.path("password.key"));
    let run = env.enid(&["keys", "create"]).fails();
    assert!(run.stderr.contains("password key file") && run.stderr.contains("not an id key"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(env.path("password.key")).unwrap(), "not a key\n", "overwritten");
}

#[test]
fn keys_create_does_not_replace_a_missing_key_the_state_was_built_with() {
    let env = Env::new();
    csv_rows(&env, &pupils(2));
    env.apply();
    std::fs::remove_file(env.path("id.key")).unwrap();
    let run = env.enid(&["keys", "create"]).fails();
    assert!(run.stderr.contains("id key file") && run.stderr.contains("restore"), "{}", run.stderr);
    assert!(!env.path("id.key").exists(), "a new id key was made for a state built with another");
}

#[test]
fn pruning_every_run_leaves_an_applied_state_applied_and_a_lost_state_is_still_caught() {
    let env = Env::new();
    csv_rows(&env, &pupils(3));
    env.apply();
    env.enid(&["plan", "--save"]).ok();
    assert!(!env.enid(&["log", "--json"]).ok().stdout.trim().is_empty());

    // Within keep_log_for (default 180 days) nothing goes.
    let kept = env.enid(&["state", "prune", "--now", &in_days(100)]).ok();
    assert!(kept.stdout.contains("Removed 0 runs, 0 operation-log rows and 0 saved plans"), "{}", kept.stdout);
    let pruned = env.enid(&["state", "prune", "--now", &in_days(200)]).ok();
    assert!(pruned.stdout.contains("Removed 1 runs, 3 operation-log rows and 1 saved plans"), "{}", pruned.stdout);
    assert_eq!(env.enid(&["log", "--json"]).ok().stdout.trim(), "", "the log is empty");

    // With no run left, the state is still one that applied: the next plan changes nothing, and
    // an entry made by hand with an enid id the state does not record (a copy of a pupil's) is
    // blocked as after any apply, not taken for a sign of a lost state that stops every run.
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 0, "{}", plan["summary"]);
    assert_eq!(plan["summary"]["unchanged"], 3, "{}", plan["summary"]);
    let id = env.people()["elev0.testsson"].one("employeeNumber");
    let copy = format!("uid=kopia,{BASE}");
    env.add(
        &copy,
        &[
            ("objectClass", &["inetOrgPerson"]),
            ("uid", &["kopia"]),
            ("cn", &["Kopia"]),
            ("sn", &["Kopia"]),
            ("employeeNumber", &[id.as_str()]),
        ],
    );
    let plan = env.enid(&["plan"]);
    assert!(!plan.stderr.contains("records no runs"), "a pruned state was taken for a lost one: {}", plan.stderr);
    env.delete(&copy);

    // A state that is really gone is still caught.
    remove_state(&env);
    let lost = env.enid(&["plan"]).fails();
    assert!(lost.stderr.contains("enid adopt"), "{}", lost.stderr);
}

#[test]
fn keep_log_for_sets_how_long_the_log_is_kept() {
    let env = Env::new();
    let config = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    std::fs::write(env.path("enid.toml"), config.replace("[state]\n", "[state]\nkeep_log_for = \"30d\"\n")).unwrap();
    csv_rows(&env, &pupils(1));
    env.apply();
    let kept = env.enid(&["state", "prune", "--now", &in_days(29)]).ok();
    assert!(kept.stdout.contains("Removed 0 runs"), "{}", kept.stdout);
    let pruned = env.enid(&["state", "prune", "--now", &in_days(31)]).ok();
    assert!(pruned.stdout.contains("Removed 1 runs"), "{}", pruned.stdout);
}

/// A state made before retention (the fixture of the first migration test: three applies) is
/// known as applied by the migration, so pruning its runs does not make it look new.
#[test]
fn a_state_that_applied_before_retention_stays_applied_when_its_runs_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let dump = std::fs::read_to_string(repo().join("tests/fixtures/migration-v1/state.sql")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let options =
            sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true).foreign_keys(false);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(dump)).execute(&pool).await.unwrap();
        pool.close().await;
        owner_only(&path);
        let store = enid::store::Store::open(&path).await.unwrap();
        assert!(store.has_applied().await.unwrap());
        let far = chrono::DateTime::parse_from_rfc3339("2100-01-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(store.prune(far).await.unwrap().runs, 3);
        assert!(store.runs(10).await.unwrap().is_empty());
        assert!(store.has_applied().await.unwrap(), "pruned runs made a migrated, applied state look new");
        assert!(!store.has_adopted().await.unwrap(), "it never adopted");
    });
}

/// An AD account whose `cn` does not follow its display name (the modrdn of a rename failed
/// after the `displayName` was written; here the entry is renamed by hand to stand for that) is
/// renamed back by the next run, keeping its `objectGUID`; before, the plan compared the display
/// name alone and the stale name stayed in the DN for good.
#[test]
fn an_ad_entry_whose_cn_does_not_follow_its_display_name_is_renamed_by_the_next_run() {
    use crate::ad::{ad_table, env_with, test_ou, users, with_admin};
    let ou = test_ou();
    let env = env_with(&ad_table("ldaps://127.0.0.1:636", &ou, ""));
    let sam = format!("rr{}", std::process::id() % 100_000);
    csv_rows(&env, &[row("1", "Rut", "Rensson", "", "student", "Norr", "")]);
    let config = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    // A username of this test's own: usernames are unique in the whole domain.
    std::fs::write(env.path("enid.toml"), format!("[naming]\nusername = \"{sam}\"\n\n{config}")).unwrap();
    env.enid(&["apply", "--yes"]).ok();
    let before = users(&ou)[&sam].clone();
    assert!(before.dn.eq_ignore_ascii_case(&format!("CN=Rut Rensson,OU=Norr,{ou}")), "{}", before.dn);

    let dn = before.dn.clone();
    with_admin(async move |l| {
        let res = l.modifydn(&dn, "CN=Rut Gammalnamn", true, None).await.expect("modrdn");
        assert_eq!(res.rc, 0, "{res:?}");
    });
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["update"], 1, "the stale name is not seen: {}", plan["operations"]);
    env.enid(&["apply", "--yes"]).ok();
    let after = users(&ou)[&sam].clone();
    assert!(after.dn.eq_ignore_ascii_case(&format!("CN=Rut Rensson,OU=Norr,{ou}")), "{}", after.dn);
    assert_eq!(after.one("objectGUID"), before.one("objectGUID"), "the same account");
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{}", plan["operations"]);
}
