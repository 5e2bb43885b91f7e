//! Upgrades: a state database and a directory made by the version before the target-neutral core
//! (`tests/fixtures/migration-v1`, made by its `make.sh` with the enid of commit 84d5791, in the
//! config spelling of that time) migrate in place on first use. The next plan changes nothing on
//! the target (no update storm, no threshold trips), ids, usernames, keys and anchors stay, and
//! the rows an interrupted apply of the old version left pending (with the key it predicted) are
//! completed by adoption.

use crate::harness::*;
use std::collections::BTreeMap;

const NOW: &str = "2026-11-10T09:00:00Z";

/// The fixture's directory in a private slapd, its state, key, export and config.
fn upgraded_env() -> Env {
    upgraded("migration-v1", &["persons.csv"])
}

/// The fixture `name` (under tests/fixtures) loaded: its directory in a private slapd, its state,
/// key, config and the exports `files`.
fn upgraded(name: &str, files: &[&str]) -> Env {
    let fx = repo().join("tests/fixtures").join(name);
    let dir = tempfile::tempdir().expect("tempdir");
    let slapd = Slapd::start_seeded(&dir.path().join("slapd"), &fx.join("directory.ldif"));
    let env = Env { dir, slapd, extra_config: String::new() };
    let config = std::fs::read_to_string(fx.join("enid.toml")).expect("fixture config");
    std::fs::write(env.path("enid.toml"), config.replace("127.0.0.1:PORT", &format!("127.0.0.1:{}", env.slapd.port)))
        .expect("write config");
    std::fs::write(env.path("ldap.secret"), "secret\n").expect("write secret");
    for f in files {
        std::fs::copy(fx.join(f), env.path(f)).expect("copy export");
    }
    std::fs::copy(fx.join("id.key"), env.path("id.key")).expect("copy id key");
    set_mode(&env.path("id.key"), 0o600);
    let dump = std::fs::read_to_string(fx.join("state.sql")).expect("fixture state");
    let path = env.path("state.db");
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(async {
        // The dump creates tables in name order, so rows can come before the table they refer to.
        let options =
            sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true).foreign_keys(false);
        let pool = sqlx::SqlitePool::connect_with(options).await.expect("create state");
        sqlx::raw_sql(sqlx::AssertSqlSafe(dump)).execute(&pool).await.expect("load the old state");
        pool.close().await;
    });
    set_mode(&path, 0o600);
    env
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Every entry in the directory with the time it last changed.
fn directory(env: &Env) -> BTreeMap<String, String> {
    search(&env.slapd.url(), "dc=example,dc=org", "(objectClass=*)")
        .into_iter()
        .map(|e| (e.dn.to_lowercase(), format!("{} {}", e.one("entryUUID"), e.one("modifyTimestamp"))))
        .collect()
}

fn rows(env: &Env, query: &str) -> String {
    env.sql_value(&format!("SELECT COALESCE(group_concat(r, char(10)), '') FROM ({query})"))
}

#[test]
fn a_state_from_before_target_keys_migrates_without_a_single_change() {
    let env = upgraded_env();
    let identities = rows(&env, "SELECT id || ' ' || COALESCE(username, '-') AS r FROM identities ORDER BY id");
    let accounts = rows(
        &env,
        "SELECT identity_id || ' ' || key || ' ' || COALESCE(anchor, '-') || ' ' || status AS r FROM accounts \
         WHERE status != 'pending' ORDER BY identity_id",
    );
    let before = directory(&env);
    assert!(before.len() > 60, "the fixture's directory: {} entries", before.len());

    let run = env.enid(&["plan", "--json", "--now", NOW]).ok();
    let plan = run.json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{}", plan["operations"]);
    assert_eq!(plan["held"].as_array().map(Vec::len), Some(0), "{}", plan["held"]);
    assert_eq!(plan["blocked"].as_array().map(Vec::len), Some(0), "{}", plan["blocked"]);
    assert_eq!(plan["new_identities"].as_array().map(Vec::len), Some(0), "{}", plan["new_identities"]);
    assert_eq!(plan["unmanaged"]["directory"], 1, "the hand-made account, left alone");
    // The account and the group whose creates the old version sent but never recorded.
    assert_eq!(plan["adoptions"].as_array().map(Vec::len), Some(1), "{}", plan["adoptions"]);
    assert_eq!(plan["adoptions"][0]["key"], "uid=tor.ek,ou=people,dc=example,dc=org");
    assert_eq!(plan["group_adoptions"].as_array().map(Vec::len), Some(1), "{}", plan["group_adoptions"]);
    // The old spellings work, and say how to write them now.
    assert!(run.stderr.contains("[targets.directory.policy]"), "{}", run.stderr);

    env.enid(&["apply", "--yes", "--accept-date", "--now", NOW]).ok();
    let plan = env.enid(&["plan", "--json", "--now", NOW]).ok().json();
    for list in ["operations", "adoptions", "group_adoptions", "new_identities", "renames", "blocked"] {
        assert_eq!(plan[list].as_array().map(Vec::len), Some(0), "{list}: {}", plan[list]);
    }

    assert_eq!(directory(&env), before, "not one entry was written");
    assert_eq!(rows(&env, "SELECT id || ' ' || COALESCE(username, '-') AS r FROM identities ORDER BY id"), identities);
    let after = rows(
        &env,
        "SELECT identity_id || ' ' || key || ' ' || COALESCE(anchor, '-') || ' ' || status AS r FROM accounts \
         WHERE key != 'uid=tor.ek,ou=people,dc=example,dc=org' ORDER BY identity_id",
    );
    assert_eq!(after, accounts, "keys, anchors and statuses stay");
    let tor = env.sql_value("SELECT status || ' ' || (anchor IS NOT NULL) FROM accounts WHERE key LIKE 'uid=tor.ek,%'");
    assert_eq!(tor, "active 1", "the pending row is completed with the anchor");
    assert_eq!(env.sql_value("SELECT CAST(count(*) AS TEXT) FROM groups WHERE status = 'pending'"), "0");
}

/// The state of the version before affiliations (`tests/fixtures/migration-v2`, one school unit
/// per record): persons in two sources at two school units had the first in alphabetical order as
/// their `school_unit`. The upgrade records that as their primary school unit, so nothing moves,
/// although the rule for a new person (the oldest tie first) would choose the other school.
#[test]
fn a_state_from_before_affiliations_migrates_and_the_plan_after_it_is_empty() {
    let env = upgraded("migration-v2", &["persons.csv", "staff.csv"]);
    let before = directory(&env);
    assert!(before.len() > 40, "the fixture's directory: {} entries", before.len());
    let empty = |env: &Env| {
        let plan = env.enid(&["plan", "--json", "--now", NOW]).ok().json();
        for list in ["operations", "adoptions", "group_adoptions", "new_identities", "renames", "blocked", "held"] {
            assert_eq!(plan[list].as_array().map(Vec::len), Some(0), "{list}: {}", plan[list]);
        }
    };
    empty(&env);
    let primary = "SELECT COALESCE(i.primary_school, '-') FROM identities i JOIN source_records r \
                   ON r.identity_id = i.id WHERE r.person_id = 'P0000001'";
    assert_eq!(env.sql_value(primary), "SKOLA1", "the old rule's school unit is kept as the primary");

    // An apply rewrites every record once (the whole record is kept now) and changes nothing.
    env.enid(&["apply", "--yes", "--accept-date", "--now", NOW]).ok();
    empty(&env);
    assert_eq!(directory(&env), before, "not one entry was written");
    let with_data = "SELECT CAST(count(*) AS TEXT) FROM source_records WHERE data IS NULL";
    assert_eq!(env.sql_value(with_data), "0", "every record is kept whole after the first apply");
    assert_eq!(env.sql_value(primary), "SKOLA1");

    // Without the recorded primary the rule for a new person would choose the older tie: the
    // migration is what keeps the person in place.
    env.sql("UPDATE identities SET primary_school = NULL");
    let plan = env.enid(&["plan", "--json", "--now", NOW]).ok().json();
    let text = plan["operations"].to_string();
    assert!(text.contains("SKOLA2"), "{text}");
}
