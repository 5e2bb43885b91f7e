//! Issue 19, throughput: a directory target deals its writes among `connections` connections (a
//! directory server reads one connection's requests in turn), while a paged search stays on the
//! connection it began on (its cookie belongs to that connection). Through a proxy that numbers
//! the connections, against a real slapd.

use crate::harness::*;
use connector_api::testkit::{FaultProxy, Protocol};
use std::collections::{BTreeMap, BTreeSet};

fn persons(n: usize) -> Vec<String> {
    (0..n).map(|i| row(&format!("p{i}"), "Ada", &format!("Lovelace{i}"), &pnr(i), "student", "S1", "")).collect()
}

/// Applies 24 persons with `lines` added to the target's settings and a page of 5 entries, and
/// returns the connections that carried writes, and how many search requests the plan sent on
/// each connection.
fn writes_and_reads(lines: &str) -> (BTreeSet<usize>, BTreeMap<usize, usize>) {
    let rt = threaded_rt();
    let env = Env::new();
    let direct = std::net::SocketAddr::from(([127, 0, 0, 1], env.slapd.port));
    let proxy = rt.block_on(FaultProxy::start(direct, Protocol::Ldap)).expect("proxy");
    env.write_config_with_url(&format!("ldap://{}", proxy.addr()));
    env.edit_config("base_dn = ", &format!("page_size = 5\n{lines}\nbase_dn = "));
    let rows = persons(24);
    env.csv(&rows.iter().map(String::as_str).collect::<Vec<_>>());
    env.apply().ok();
    assert_eq!(env.people().len(), 24, "every person has an account");
    let writes: BTreeSet<usize> = proxy.seen().iter().filter(|s| s.write).map(|s| s.connection).collect();
    proxy.reset_seen();
    // A plan of 24 accounts in pages of 5: every page's cookie must reach the connection that
    // began the search, or slapd refuses it and the plan fails.
    let plan = env.enid(&["plan"]).ok();
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
    let mut reads = BTreeMap::new();
    for s in proxy.seen().iter().filter(|s| s.what == "LDAP op 0x63") {
        *reads.entry(s.connection).or_insert(0) += 1;
    }
    (writes, reads)
}

#[test]
fn writes_are_dealt_among_the_configured_connections_and_a_paged_search_keeps_its_own() {
    let (writes, reads) = writes_and_reads("connections = 3");
    assert_eq!(writes.len(), 3, "the creates went out on three connections: {writes:?}");
    // The accounts' search took five pages, all on one connection (or the plan had failed).
    assert!(reads.values().any(|&n| n >= 5), "searches per connection: {reads:?}");

    let (writes, _) = writes_and_reads("connections = 1");
    assert_eq!(writes.len(), 1, "one connection when the settings say one: {writes:?}");
}

#[test]
fn a_connection_count_out_of_range_is_refused_by_name() {
    let env = Env::new();
    env.edit_config("base_dn = ", "connections = 0\nbase_dn = ");
    env.csv(&[&row("p1", "Ada", "Lovelace", &pnr(1), "student", "S1", "")]);
    let run = env.enid(&["plan"]).fails();
    assert!(run.stderr.contains("connections = 0 must be between 1 and 64"), "{}", run.stderr);
}

/// Makes storing the second chunk of new identities slow: a trigger counts 49 million rows
/// once (some seconds), as the 1,001st identity is stored.
const SLOW_SECOND_CHUNK: &str = "CREATE TABLE test_burn (x INTEGER);
     INSERT INTO test_burn WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 7000) SELECT x FROM c;
     CREATE TRIGGER slow_second BEFORE INSERT ON identities WHEN (SELECT count(*) FROM identities) = 1000
     BEGIN SELECT count(*) FROM test_burn a, test_burn b WHERE a.x + b.x > 0; END;";

/// Issue 19, the first write within seconds: new identities are stored a chunk (1,000) at a
/// time while the creates of the chunks before go out. Storing the second chunk is made slow (a
/// trigger counts 49 million rows once, some seconds): the first account exists on the target
/// before the last identity is stored. Storing everything first and then sending (as before)
/// made every account after the last identity.
#[test]
fn the_first_creates_go_out_while_later_identities_are_stored() {
    let env = Env::new();
    csv_rows(&env, &persons(2500));
    env.enid(&["plan"]).ok();
    env.sql(SLOW_SECOND_CHUNK);
    env.sql(
        "CREATE TABLE test_marks (at TEXT);
         CREATE TRIGGER mark_last AFTER INSERT ON identities WHEN (SELECT count(*) FROM identities) = 2500
         BEGIN INSERT INTO test_marks VALUES (strftime('%Y%m%d%H%M%SZ', 'now')); END;",
    );
    env.apply();
    let last_stored = env.sql_value("SELECT at FROM test_marks");
    let people = env.people();
    assert_eq!(people.len(), 2500);
    let first_created = people.values().map(|e| e.one("createTimestamp")).min().expect("accounts");
    assert!(
        first_created < last_stored,
        "the first account ({first_created}) was made before the last identity was stored ({last_stored})"
    );
    // Each chunk's records, let go once the chunk was stored, were stored as they are: the
    // next run writes none of them again.
    assert_eq!(env.sql_value("SELECT CAST(count(*) AS TEXT) FROM source_records"), "2500");
    env.sql(
        "CREATE TABLE test_rewrites (n INTEGER);
         CREATE TRIGGER rewrite_update AFTER UPDATE ON source_records BEGIN INSERT INTO test_rewrites VALUES (1); END;
         CREATE TRIGGER rewrite_insert AFTER INSERT ON source_records BEGIN INSERT INTO test_rewrites VALUES (1); END;",
    );
    env.apply();
    assert_eq!(env.sql_value("SELECT CAST(count(*) AS TEXT) FROM test_rewrites"), "0", "no record written again");
}

/// A chunk of new identities the state cannot store (a trigger refuses the 1,501st identity, as
/// a full disk would, after some seconds) stops every send not yet made: each account on the target has its identity
/// in the state, the identities stored are the first chunk's, the log says why the rest was not
/// sent, the run fails with the store's error, and the next run creates the rest, once each.
#[test]
fn a_chunk_of_new_identities_that_cannot_be_stored_stops_the_sends() {
    let env = Env::new();
    csv_rows(&env, &persons(2500));
    env.enid(&["plan"]).ok();
    // Slow before it fails: sends that did not wait for their chunk would go out meanwhile.
    env.sql(SLOW_SECOND_CHUNK);
    env.sql(
        "CREATE TRIGGER refuse_later BEFORE INSERT ON identities WHEN (SELECT count(*) FROM identities) >= 1500
         BEGIN SELECT RAISE(ABORT, 'test: no space left on device'); END;",
    );
    let run = env.enid(&["apply", "--yes"]).fails();
    assert!(run.stderr.contains("no space left on device"), "the store's error is the run's: {}", run.stderr);
    assert_eq!(env.sql_value("SELECT CAST(count(*) AS TEXT) FROM identities"), "1000", "the first chunk is stored");
    let stored: BTreeSet<String> = env
        .sql_value("SELECT coalesce(group_concat(id, ' '), '') FROM identities")
        .split(' ')
        .map(str::to_string)
        .collect();
    let on_target = ids_in_directory(&env);
    for (id, dns) in &on_target {
        assert!(stored.contains(id), "account {dns:?} of identity {id}, which the state does not hold");
    }
    assert_eq!(
        env.sql_value("SELECT CAST(count(*) AS TEXT) FROM source_records"),
        "1000",
        "records stored with their identities, no others"
    );
    let count = |q: &str| env.sql_value(&format!("SELECT CAST(count(*) AS TEXT) FROM oplog WHERE {q}"));
    assert_eq!(count("result = 'ok'"), on_target.len().to_string(), "the log holds what was sent");
    let why = "result = 'skipped' AND error LIKE 'not sent: storing the new identities failed (%no space left%'";
    assert_eq!(count(why), (2500 - on_target.len()).to_string(), "the log says why the rest was not sent");
    assert_eq!(env.sql_value("SELECT status FROM runs ORDER BY id DESC LIMIT 1"), "failed");

    env.sql("DROP TRIGGER refuse_later; DROP TRIGGER slow_second;");
    // The rest may be more than the threshold allows beside the accounts made: held, then
    // applied as reviewed.
    let rest = env.enid(&["apply", "--yes"]);
    if !rest.status.success() {
        assert!(rest.stderr.contains("is held"), "{}", rest.stderr);
        let plan_id = rest.stderr.split("plan ").nth(1).and_then(|s| s.split(' ').next()).expect("held plan id");
        env.enid(&["apply", "--yes", "--plan", plan_id, "--accept-threshold"]).ok();
    }
    let on_target = ids_in_directory(&env);
    assert_eq!(on_target.len(), 2500, "the rest created");
    assert!(on_target.values().all(|dns| dns.len() == 1), "no second account");
    assert_eq!(env.sql_value("SELECT CAST(count(*) AS TEXT) FROM identities"), "2500");
    let plan = env.enid(&["plan"]).ok();
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
}

/// An apply killed (-9) after its first creates went out and before its last chunk of new
/// identities was stored: the next apply is no new decision (the creates the killed apply decided
/// are not weighed again by the thresholds, as pending creates are not), and converges with every
/// person once.
#[test]
fn an_apply_killed_between_chunks_is_finished_by_the_next_without_review_or_duplicates() {
    let env = Env::new();
    csv_rows(&env, &persons(2500));
    env.enid(&["plan"]).ok();
    env.sql(SLOW_SECOND_CHUNK);
    let mut child = env.spawn(&["apply", "--yes"]);
    let started = std::time::Instant::now();
    while env.people().is_empty() {
        assert!(started.elapsed().as_secs() < 60, "the apply wrote nothing in a minute");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    env.sql("DROP TRIGGER slow_second;");
    let stored = env.sql_value("SELECT CAST(count(*) AS TEXT) FROM identities");
    assert_eq!(stored, "1000", "killed while the second chunk was being stored");
    let made = env.people().len();
    assert!(made > 0 && made <= 1000, "only the first chunk's accounts ({made})");
    let next = env.enid(&["apply", "--yes"]).ok();
    assert!(!next.stdout.contains("HELD"), "{}", next.stdout);
    let on_target = ids_in_directory(&env);
    assert_eq!(on_target.len(), 2500, "every person");
    assert!(on_target.values().all(|dns| dns.len() == 1), "no second account");
    assert_eq!(env.summary()["create"], 0);
}

/// A person held last run (a namesake made by hand held their name) who is new this run: the
/// held record is replaced by the stored one only once the identity's chunk is stored. A chunk
/// that cannot be stored leaves the record held, never in neither table (an incremental read
/// merges with both, and would lose the person until the next full read).
#[test]
fn a_held_record_stays_held_until_its_new_identity_is_stored() {
    let env = Env::new();
    env.add(
        "uid=ada.lovelace,ou=people,dc=example,dc=org",
        &[("objectClass", &["inetOrgPerson"]), ("uid", &["ada.lovelace"]), ("cn", &["Ada"]), ("sn", &["Lovelace"])],
    );
    env.csv(&[
        &row("p1", "Ada", "Lovelace", &pnr(1), "student", "S1", ""),
        &row("p2", "Bo", "Ek", &pnr(2), "student", "S1", ""),
    ]);
    env.apply();
    let held = |pid: &str| {
        env.sql_value(&format!("SELECT CAST(count(*) AS TEXT) FROM held_records WHERE person_id = '{pid}'"))
    };
    let stored = |pid: &str| {
        env.sql_value(&format!("SELECT CAST(count(*) AS TEXT) FROM source_records WHERE person_id = '{pid}'"))
    };
    assert_eq!((held("p1"), stored("p1")), ("1".to_string(), "0".to_string()), "Ada waits for her name");
    env.delete("uid=ada.lovelace,ou=people,dc=example,dc=org");
    env.sql(
        "CREATE TRIGGER refuse_new BEFORE INSERT ON identities
         BEGIN SELECT RAISE(ABORT, 'test: no space left on device'); END;",
    );
    env.enid(&["apply", "--yes"]).fails();
    assert_eq!((held("p1"), stored("p1")), ("1".to_string(), "0".to_string()), "still held, not lost");
    env.sql("DROP TRIGGER refuse_new;");
    env.apply();
    assert_eq!((held("p1"), stored("p1")), ("0".to_string(), "1".to_string()), "stored with her identity");
    assert!(env.people().contains_key("ada.lovelace"), "{:?}", env.people().keys().collect::<Vec<_>>());
}

/// What a killed or failed apply leaves for the next plan's thresholds is what it decided: the
/// new identities whose creates it carried out, not every new person of the plan. An apply of
/// one school's operations whose storing fails leaves that school's new person only; the other
/// school's is weighed as new again.
#[test]
fn an_apply_of_part_of_a_plan_leaves_only_the_creates_it_carried_out_as_decided() {
    let env = Env::new();
    env.csv(&[
        &row("p1", "Ada", "Lovelace", &pnr(1), "student", "S1", ""),
        &row("p2", "Bo", "Ek", &pnr(2), "student", "S2", ""),
    ]);
    env.enid(&["plan", "--save"]).ok();
    let id = env.enid(&["plan", "--json"]).ok().json()["plan_id"].as_str().expect("plan id").to_string();
    env.sql("CREATE TRIGGER refuse_new BEFORE INSERT ON identities BEGIN SELECT RAISE(ABORT, 'test: full'); END;");
    env.enid(&["apply", "--yes", "--plan", &id, "--school", "S1"]).fails();
    let decided = env.sql_value("SELECT value FROM meta WHERE key = 'unstored_new_identities'");
    assert_eq!(decided.split_whitespace().count(), 1, "one school's new person: {decided:?}");
    env.sql("DROP TRIGGER refuse_new;");
    env.apply();
    assert_eq!(env.people().len(), 2);
    assert_eq!(
        env.sql_value("SELECT value FROM meta WHERE key = 'unstored_new_identities'"),
        "",
        "cleared once stored"
    );
}

/// The ownership rows of `env`'s state: key to anchor ("NONE" for none).
fn anchors_recorded(env: &Env) -> BTreeMap<String, String> {
    let rows =
        env.sql_value("SELECT coalesce(group_concat(key || '=' || coalesce(anchor, 'NONE'), '|'), '') FROM accounts");
    rows.split('|')
        .filter(|r| !r.is_empty())
        .map(|r| {
            let (key, anchor) = r.rsplit_once('=').expect("key=anchor");
            (key.to_string(), anchor.to_string())
        })
        .collect()
}

/// The entries under the people OU: DN to `entryUUID`.
fn entry_uuids(env: &Env) -> BTreeMap<String, String> {
    env.people().values().map(|e| (e.dn.clone(), e.one("entryUUID"))).collect()
}

/// 1,200 persons applied through a proxy that answers every search "busy" once the creates are
/// sent: the accounts are made, their anchors not read. The runtime holds the proxy.
fn applied_without_reading_the_anchors(env: &Env) -> (tokio::runtime::Runtime, FaultProxy, Run) {
    let rt = threaded_rt();
    let direct = std::net::SocketAddr::from(([127, 0, 0, 1], env.slapd.port));
    let proxy = rt.block_on(FaultProxy::start(direct, Protocol::Ldap)).expect("proxy");
    env.write_config_with_url(&format!("ldap://{}", proxy.addr()));
    csv_rows(env, &persons(1200));
    proxy.reads_busy_after(1200, 0);
    let run = env.apply().ok();
    proxy.clear();
    (rt, proxy, run)
}

/// Issue 19, apply throughput: many creates into a scope of few accounts (1,200 into an empty
/// directory) go out without the Post-Read control (which cost slapd's one writer a third more per
/// add), and their anchors are read once after them: every ownership row holds its entry's
/// `entryUUID`, and the next plan changes nothing.
#[test]
fn the_anchors_of_creates_in_bulk_are_read_after_them() {
    let env = Env::new();
    csv_rows(&env, &persons(1200));
    env.apply().ok();
    let uuids = entry_uuids(&env);
    assert_eq!(uuids.len(), 1200);
    assert_eq!(anchors_recorded(&env), uuids, "each row holds its entry's entryUUID");
    let plan = env.enid(&["plan"]).ok();
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
}

/// A read of the anchors that fails after the creates (the server answers every search "busy"):
/// the accounts are made and the apply succeeds, saying so; the rows wait without anchors. The
/// next apply records each anchor from the entry at its key that carries its enid id, writes
/// nothing to the directory, and then nothing is left to do.
#[test]
fn anchors_a_failed_read_left_out_are_recorded_by_the_next_run() {
    let env = Env::new();
    let (_rt, proxy, run) = applied_without_reading_the_anchors(&env);
    assert!(run.stderr.contains("could not all be read"), "{}", run.stderr);
    assert_eq!(env.people().len(), 1200, "every account made");
    assert!(anchors_recorded(&env).values().all(|a| a == "NONE"), "no anchor recorded");
    proxy.reset_seen();
    env.apply().ok();
    assert!(proxy.seen().iter().all(|s| !s.write), "nothing written to the directory");
    assert_eq!(anchors_recorded(&env), entry_uuids(&env));
    let plan = env.enid(&["plan"]).ok();
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
}

/// The anchors are recorded however the configuration spells `base_dn` (the server gives a DN
/// in its own spelling: no spaces after commas, attribute names in small letters): the key each
/// row records is the one the create was sent to, and the read's DN is taken back to it.
#[test]
fn anchors_read_in_bulk_are_recorded_whatever_the_spelling_of_base_dn() {
    let env = Env::new();
    env.edit_config(&format!("base_dn = \"{BASE}\""), "base_dn = \"OU=people, dc=example, dc=org\"");
    csv_rows(&env, &persons(1200));
    env.apply().ok();
    let recorded = anchors_recorded(&env);
    assert_eq!(recorded.len(), 1200);
    assert!(recorded.keys().all(|k| k.ends_with(",OU=people, dc=example, dc=org")), "keys as sent");
    assert!(recorded.values().all(|a| a != "NONE"), "every anchor recorded");
    let plan = env.enid(&["plan"]).ok();
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
}

/// Accounts whose anchors a failed read left out are still found by the id they carry: one
/// renamed by hand in the scope is taken back, one moved out of the scope is left where it is;
/// neither is created a second time.
#[test]
fn accounts_without_their_anchors_moved_or_renamed_by_hand_are_not_made_twice() {
    let env = Env::new();
    let (rt, _proxy, _) = applied_without_reading_the_anchors(&env);
    assert!(anchors_recorded(&env).values().all(|a| a == "NONE"), "no anchor recorded");
    let special = env.add_ou("special");
    let people = env.people();
    let mut two = people.values().take(2);
    let (moved, renamed) = (two.next().expect("one").clone(), two.next().expect("two").clone());
    let url = env.slapd.url();
    rt.block_on(async {
        let (conn, mut ldap) = ldap3::LdapConnAsync::new(&url).await.unwrap();
        ldap3::drive!(conn);
        ldap.simple_bind("cn=admin,dc=example,dc=org", "secret").await.unwrap().success().unwrap();
        let uid = moved.one("uid");
        ldap.modifydn(&moved.dn, &format!("uid={uid}"), true, Some(&special)).await.unwrap().success().unwrap();
        let uid = renamed.one("uid");
        ldap.modifydn(&renamed.dn, &format!("uid={uid}.x"), true, None).await.unwrap().success().unwrap();
    });
    let _ = env.enid(&["apply", "--yes"]);
    let on_target = ids_in_directory(&env);
    assert_eq!(on_target.len(), 1200);
    assert!(on_target.values().all(|dns| dns.len() == 1), "a second account");
    assert!(ids_in_directory(&env)[&moved.one("employeeNumber")][0].contains("ou=special"), "left where it was moved");
    let anchor_of = |e: &Entry| {
        env.sql_value(&format!(
            "SELECT coalesce(anchor, 'NONE') FROM accounts WHERE identity_id = '{}'",
            e.one("employeeNumber")
        ))
    };
    assert_eq!(anchor_of(&renamed), renamed.one("entryUUID"), "the renamed account is taken back as enid's");
}
