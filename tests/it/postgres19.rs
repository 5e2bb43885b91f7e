//! The state in PostgreSQL (`[state] url`), end to end through the CLI against a real slapd and
//! a real PostgreSQL (`tests/scripts/postgres.sh`): applies converge as on SQLite, the run lock is
//! the lease row (held elsewhere, it stops an apply before anything is read; held by a process
//! killed mid-apply on this machine, the next run takes it at once and converges), the password
//! never shows, and `[state]` mistakes get clear errors.
//!
//! One server serves every test (the one `tests/scripts/test.sh` started, `ENID_TEST_PG_PORT`, or
//! one this test binary starts, stopped by its watchdog when the binary ends); each test works in
//! a database of its own.

use crate::harness::*;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The password of the role `enid` (tests/scripts/postgres.sh's default).
pub(crate) const PASSWORD: &str = "enid-test-pw";

pub(crate) fn port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        if let Ok(port) = std::env::var("ENID_TEST_PG_PORT")
            && let Ok(port) = port.parse()
        {
            return port;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let dir = repo().join(format!("target/test-pg-it-{}", std::process::id()));
        let out = Command::new(repo().join("tests/scripts/postgres.sh"))
            .arg(&dir)
            .arg(port.to_string())
            .env("WATCH_PID", std::process::id().to_string())
            .env("REMOVE_AFTER", "1")
            .output()
            .expect("run tests/scripts/postgres.sh (Debian's postgresql needed: run tests/scripts/test.sh)");
        assert!(out.status.success(), "postgres.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        port
    })
}

/// Runs SQL as the superuser in `db`; its output (unaligned, tuples only).
pub(crate) fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port().to_string(), "-U", "postgres", "-d", db, "-XAtq", "-v"])
        .arg("ON_ERROR_STOP=1")
        .arg("-c")
        .arg(sql)
        .output()
        .expect("run psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Points the environment's config at a new, empty database (password in an owner-only file);
/// returns the database's name.
pub(crate) fn on_postgres(env: &Env) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!("it{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    psql("postgres", &format!("CREATE DATABASE {name} OWNER enid"));
    std::fs::write(env.path("db.pw"), format!("{PASSWORD}\n")).expect("write password");
    owner_only(&env.path("db.pw"));
    let config = std::fs::read_to_string(env.path("enid.toml")).expect("read config");
    let state = format!(
        "url = \"postgres://enid@127.0.0.1:{}/{name}\"\ndb_password_file = \"db.pw\"\nlease_for = \"5s\"",
        port()
    );
    std::fs::write(env.path("enid.toml"), config.replacen("path = \"state.db\"", &state, 1)).expect("write config");
    name
}

fn persons(n: usize) -> Vec<String> {
    (0..n).map(|i| row(&format!("p{i}"), "Kim", &format!("Lind{i}"), &pnr(i), "student", "S1", "")).collect()
}

/// Nothing a person must not see: no civic number of the data, never the database password.
fn assert_clean(run: &Run, n: usize) {
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(PASSWORD), "the database password was shown: {text}");
        for i in 0..n {
            let civic = pnr(i);
            assert!(!text.contains(&civic) && !text.contains(&civic.replace('-', "")), "a civic number: {text}");
        }
    }
}

#[test]
fn applies_on_a_postgres_state_converge_and_keep_the_state_there() {
    let env = Env::new();
    let db = on_postgres(&env);
    csv_rows(&env, &persons(40));
    let first = env.enid(&["apply", "--yes"]).ok();
    assert_clean(&first, 40);
    assert!(
        first.stderr.contains("created a new, empty state database at postgres://enid@127.0.0.1"),
        "{}",
        first.stderr
    );
    assert_eq!(env.people().len(), 40);
    assert!(!env.path("state.db").exists(), "no SQLite file beside the config");
    assert_eq!(psql(&db, "SELECT count(*) FROM identities"), "40");
    assert_eq!(psql(&db, "SELECT count(*) FROM accounts WHERE status = 'active'"), "40");
    // The second run finds nothing to do, and says the state is not new.
    let again = env.enid(&["apply", "--yes"]).ok();
    assert!(!again.stderr.contains("created a new"), "{}", again.stderr);
    assert_eq!(env.summary()["create"], 0, "{}", again.stdout);
    // A person leaves, one arrives: the usual lifecycle, on PostgreSQL.
    let mut rows = persons(40);
    rows.remove(0);
    rows.push(row("p99", "Ada", "Berg", &pnr(99), "student", "S1", ""));
    csv_rows(&env, &rows);
    let change = env.enid(&["apply", "--yes"]).ok();
    assert_clean(&change, 100);
    assert!(env.people().values().any(|e| e.one("sn") == "Berg"));
    let log = env.enid(&["log"]).ok();
    assert_clean(&log, 100);
    // A file backup has nothing to copy: pg_dump does it.
    let backup = env.enid(&["state", "backup", env.path("copy.db").to_str().expect("utf-8")]);
    assert!(!backup.status.success());
    assert!(backup.stderr.contains("pg_dump"), "{}", backup.stderr);
    assert!(!env.path("copy.db").exists());
}

#[test]
fn a_lease_held_by_another_node_stops_an_apply_before_it_reads_and_plans_still_work() {
    let env = Env::new();
    let db = on_postgres(&env);
    csv_rows(&env, &persons(5));
    env.enid(&["plan"]).ok();
    psql(
        &db,
        "INSERT INTO leases (name, holder, acquired_at, expires_at, fence)
         VALUES ('run', 'node-b.example.org:4242:abc (`enid run`)', now(), now() + interval '1 hour', 3)",
    );
    let held = env.enid(&["apply", "--yes"]);
    assert!(!held.status.success());
    assert!(held.stderr.contains("another run") && held.stderr.contains("node-b.example.org:4242"), "{}", held.stderr);
    assert_eq!(env.people().len(), 0, "nothing sent");
    env.enid(&["plan"]).ok();
    // Expired, the lease passes to the next run, with a greater fence.
    psql(&db, "UPDATE leases SET expires_at = now() - interval '1 second'");
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(env.people().len(), 5);
    assert_eq!(psql(&db, "SELECT fence FROM leases WHERE name = 'run'"), "4");
}

#[test]
fn an_apply_killed_mid_run_leaves_its_lease_to_the_next_run_here_which_converges_without_duplicates() {
    let env = Env::new();
    let db = on_postgres(&env);
    // Two sends at a time: with the default 256, 1,500 creates could all land between the
    // poll that sees the first and the kill.
    env.edit_config("base_dn = ", "max_in_flight = 2\nbase_dn = ");
    let n = 1500;
    csv_rows(&env, &persons(n));
    let mut child = env.spawn(&["apply", "--yes"]);
    // Killed once its first accounts are on the target.
    let started = std::time::Instant::now();
    while env.people().is_empty() {
        assert!(started.elapsed().as_secs() < 60, "the apply wrote nothing in a minute");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    let partial = env.people().len();
    assert!(partial < n, "killed before it finished ({partial} of {n})");
    assert_eq!(psql(&db, "SELECT count(*) FROM leases WHERE expires_at > now()"), "1", "the dead run's lease stands");
    // The next run on this machine finds the holder's process gone and takes the lease at once.
    let next = env.enid(&["apply", "--yes"]).ok();
    assert_clean(&next, n);
    let people = env.people();
    assert_eq!(people.len(), n, "every person once");
    let anchors: std::collections::BTreeSet<String> =
        env.search(BASE, "(objectClass=inetOrgPerson)").iter().map(|e| e.one("employeeNumber")).collect();
    assert_eq!(anchors.len(), n, "no person twice");
    assert_eq!(psql(&db, "SELECT count(*) FROM runs WHERE status = 'interrupted'"), "1");
    assert_eq!(env.summary()["create"], 0);
}

#[test]
fn state_mistakes_get_clear_errors_that_never_echo_the_password() {
    let env = Env::new();
    on_postgres(&env);
    let config = std::fs::read_to_string(env.path("enid.toml")).expect("read");
    let write = |text: &str| std::fs::write(env.path("enid.toml"), text).expect("write");
    // Both a file and a database.
    write(&config.replacen("[state]\n", "[state]\npath = \"state.db\"\n", 1));
    let r = env.enid(&["plan"]);
    assert!(
        !r.status.success() && r.stderr.contains("both path") && r.stderr.contains("enid state copy"),
        "{}",
        r.stderr
    );
    // A password inside the URL.
    write(&config.replacen("postgres://enid@", &format!("postgres://enid:{PASSWORD}@"), 1));
    let r = env.enid(&["plan"]);
    assert!(!r.status.success() && r.stderr.contains("db_password_file"), "{}", r.stderr);
    assert!(!r.stderr.contains(PASSWORD), "{}", r.stderr);
    // A wrong password.
    write(&config);
    std::fs::write(env.path("db.pw"), "Wrong-Pass-123\n").expect("write");
    let r = env.enid(&["plan"]);
    assert!(!r.status.success() && r.stderr.contains("cannot connect"), "{}", r.stderr);
    assert!(!r.stderr.contains("Wrong-Pass-123"), "{}", r.stderr);
    // A database that does not exist is never created.
    std::fs::write(env.path("db.pw"), format!("{PASSWORD}\n")).expect("write");
    write(&config.replacen("/it", "/missing_it", 1));
    let r = env.enid(&["plan"]);
    assert!(!r.status.success() && r.stderr.contains("missing_it"), "{}", r.stderr);
}

/// A new, empty database owned by `enid`; its URL (without the password).
fn new_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!("cp{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    psql("postgres", &format!("CREATE DATABASE {name} OWNER enid"));
    format!("postgres://enid@127.0.0.1:{}/{name}", port())
}

#[test]
fn a_state_copied_to_postgres_and_back_runs_on_as_if_nothing_happened() {
    let env = Env::new();
    csv_rows(&env, &persons(60));
    env.enid(&["apply", "--yes"]).ok();
    let log_before = env.enid(&["log", "--all"]).ok().stdout;
    std::fs::write(env.path("db.pw"), format!("{PASSWORD}\n")).expect("write password");
    owner_only(&env.path("db.pw"));
    let url = new_database();
    let pw = env.path("db.pw");
    let copy = env.enid(&["state", "copy", "--to", &url, "--db-password-file", pw.to_str().expect("utf-8")]).ok();
    assert_clean(&copy, 60);
    assert!(copy.stdout.contains("identities") && copy.stdout.contains("60 rows"), "{}", copy.stdout);
    assert!(copy.stdout.contains("matches"), "{}", copy.stdout);
    // A second copy into the same database is refused: it holds a state now.
    let again = env.enid(&["state", "copy", "--to", &url, "--db-password-file", pw.to_str().expect("utf-8")]);
    assert!(!again.status.success() && again.stderr.contains("already holds a state"), "{}", again.stderr);
    // The config now points at the copy: nothing to do, the same log, and runs go on.
    let config = std::fs::read_to_string(env.path("enid.toml")).expect("read");
    let on_pg = config.replacen("path = \"state.db\"", &format!("url = \"{url}\"\ndb_password_file = \"db.pw\""), 1);
    std::fs::write(env.path("enid.toml"), &on_pg).expect("write");
    let plan = env.enid(&["plan", "--json"]).ok();
    assert!(!plan.stderr.contains("created a new"), "{}", plan.stderr);
    let summary = plan.json()["summary"].clone();
    assert_eq!(summary["create"], 0, "{summary}");
    assert_eq!(summary["delete"], 0, "{summary}");
    assert_eq!(env.enid(&["log", "--all"]).ok().stdout, log_before);
    let mut rows = persons(60);
    rows.push(row("p77", "Ada", "Berg", &pnr(77), "student", "S1", ""));
    csv_rows(&env, &rows);
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(env.people().len(), 61);
    // And back into a new SQLite file; an existing file is never written over.
    let back = env.path("back.db");
    let refused = env.enid(&["state", "copy", "--to", env.path("persons.csv").to_str().expect("utf-8")]);
    assert!(!refused.status.success() && refused.stderr.contains("not empty"), "{}", refused.stderr);
    env.enid(&["state", "copy", "--to", back.to_str().expect("utf-8")]).ok();
    std::fs::write(env.path("enid.toml"), config.replacen("path = \"state.db\"", "path = \"back.db\"", 1))
        .expect("write");
    assert_eq!(env.summary()["create"], 0);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&back).expect("back.db").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the copy holds civic numbers: owner-only");
    }
}

/// Two nodes share the keys and the database password as systemd credentials
/// (`LoadCredential=` from one protected copy on each machine): every `*_file` of `[state]` and
/// `[identity]` may name `$CREDENTIALS_DIRECTORY/<name>`; without the variable, enid says so and
/// makes no key at a literal path.
#[test]
fn keys_and_the_database_password_come_from_systemd_credentials() {
    let env = Env::new();
    on_postgres(&env);
    let creds = env.path("credentials");
    std::fs::create_dir(&creds).expect("mkdir");
    std::fs::rename(env.path("db.pw"), creds.join("db.password")).expect("move");
    let config = std::fs::read_to_string(env.path("enid.toml")).expect("read");
    let config = config
        .replace("db_password_file = \"db.pw\"", "db_password_file = \"$CREDENTIALS_DIRECTORY/db.password\"")
        .replacen("[state]\n", "[state]\npassword_key_file = \"$CREDENTIALS_DIRECTORY/password.key\"\n", 1);
    let config = format!("{config}\n[identity]\nid_key_file = \"$CREDENTIALS_DIRECTORY/id.key\"\n");
    std::fs::write(env.path("enid.toml"), config).expect("write");
    csv_rows(&env, &persons(3));
    let run = |args: &[&str], with: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_enid"));
        c.arg("--config").arg(env.path("enid.toml")).args(args).env_remove("ENID_CONFIG");
        if with {
            c.env("CREDENTIALS_DIRECTORY", &creds);
        } else {
            c.env_remove("CREDENTIALS_DIRECTORY");
        }
        c.output().expect("run enid")
    };
    let without = run(&["plan"], false);
    let err = String::from_utf8_lossy(&without.stderr).to_string();
    assert!(!without.status.success() && err.contains("CREDENTIALS_DIRECTORY"), "{err}");
    assert!(!env.path("$CREDENTIALS_DIRECTORY").exists());
    let made = run(&["keys", "create"], true);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert!(creds.join("id.key").exists() && creds.join("password.key").exists());
    let apply = run(&["apply", "--yes"], true);
    assert!(apply.status.success(), "{}", String::from_utf8_lossy(&apply.stderr));
    assert_eq!(env.people().len(), 3);
}
