//! Test harness: a private slapd per test, a config and CSV in a temporary directory, and
//! helpers to run `enid` and to read the directory.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BASE: &str = "ou=people,dc=example,dc=org";
pub const HEADER: &str = "person_id,given_name,family_name,civic_no,role,school_unit,groups,start_date,end_date";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// A private slapd; killed when dropped.
pub struct Slapd {
    pub dir: PathBuf,
    pub port: u16,
    /// The ldaps:// port, when started with TLS.
    pub tls_port: Option<u16>,
    pid: Option<u32>,
    /// The slapcat output the database was loaded from, if any.
    seed: Option<PathBuf>,
}

impl Slapd {
    pub fn start(dir: &Path) -> Slapd {
        let mut s = Slapd { dir: dir.to_path_buf(), port: free_port(), tls_port: None, pid: None, seed: None };
        s.run_script(false);
        s
    }

    /// A slapd that also serves ldaps:// and StartTLS, with its test CA in `dir/tls/ca.pem`.
    pub fn start_tls(dir: &Path) -> Slapd {
        let mut s =
            Slapd { dir: dir.to_path_buf(), port: free_port(), tls_port: Some(free_port()), pid: None, seed: None };
        s.run_script(false);
        s
    }

    /// A slapd whose database is this slapcat output (entryUUIDs kept) instead of the empty tree.
    pub fn start_seeded(dir: &Path, ldif: &Path) -> Slapd {
        let mut s = Slapd { dir: dir.to_path_buf(), port: free_port(), tls_port: None, pid: None, seed: None };
        s.seed = Some(ldif.to_path_buf());
        s.run_script(false);
        s
    }

    fn run_script(&mut self, restart: bool) {
        let out = Command::new(repo().join("tests/scripts/slapd.sh"))
            .arg(&self.dir)
            .arg(self.port.to_string())
            .env("RESTART", if restart { "1" } else { "0" })
            .env("SEED_LDIF", self.seed.as_deref().map(|p| p.display().to_string()).unwrap_or_default())
            .env("TLS_PORT", self.tls_port.map(|p| p.to_string()).unwrap_or_default())
            .env("PATH", format!("{}:/usr/sbin", std::env::var("PATH").unwrap_or_default()))
            .output()
            .expect("run tests/scripts/slapd.sh (is slapd installed? run tests/scripts/test.sh)");
        assert!(out.status.success(), "slapd.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        let pid = String::from_utf8_lossy(&out.stdout).trim().parse().expect("slapd.sh prints a PID");
        self.pid = Some(pid);
    }

    /// The PID slapd wrote for itself (changes on restart).
    pub fn pid_now(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("pid")).ok().and_then(|p| p.trim().parse().ok())
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill").arg(pid.to_string()).stderr(std::process::Stdio::null()).status();
            for _ in 0..100 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.run_script(true);
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One LDAP entry: DN and attributes (names as the server returns them).
#[derive(Debug, Clone)]
pub struct Entry {
    pub dn: String,
    pub attrs: BTreeMap<String, Vec<String>>,
}

impl Entry {
    pub fn get(&self, attr: &str) -> Vec<String> {
        self.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(attr)).map(|(_, v)| v.clone()).unwrap_or_default()
    }
    pub fn one(&self, attr: &str) -> String {
        self.get(attr).into_iter().next().unwrap_or_default()
    }
}

/// A test environment: directory, slapd, config.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub slapd: Slapd,
    pub extra_config: String,
}

pub struct Run {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert!(self.status.success(), "enid failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
    pub fn fails(self) -> Run {
        assert!(!self.status.success(), "enid should have failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

impl Env {
    pub fn new() -> Env {
        Env::with_config("")
    }

    /// An environment whose config has `extra` appended to the target table.
    pub fn with_config(extra: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let slapd = Slapd::start(&dir.path().join("slapd"));
        Env::finish(dir, slapd, extra)
    }

    /// An environment whose slapd also speaks TLS; `url_line` replaces the config's url line.
    pub fn with_tls() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let slapd = Slapd::start_tls(&dir.path().join("slapd"));
        Env::finish(dir, slapd, "")
    }

    fn finish(dir: tempfile::TempDir, slapd: Slapd, extra: &str) -> Env {
        let env = Env { dir, slapd, extra_config: extra.to_string() };
        std::fs::write(env.path("ldap.secret"), "secret\n").expect("write secret");
        // Secrets as an install keeps them: owner-only (a looser one is warned about).
        owner_only(&env.path("ldap.secret"));
        env.write_config();
        env
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write_config(&self) {
        self.write_config_with_url(&self.slapd.url());
    }

    /// Writes the config with another target url (and the extra lines).
    pub fn write_config_with_url(&self, url: &str) {
        let config = format!(
            r#"[state]
path = "state.db"

[sources.sis]
type = "csv"
path = "persons.csv"

[targets.directory]
type = "ldap"
url = "{}"
bind_dn = "cn=admin,dc=example,dc=org"
bind_password_file = "ldap.secret"
base_dn = "{BASE}"
{}
"#,
            url, self.extra_config
        );
        std::fs::write(self.path("enid.toml"), config).expect("write config");
    }

    /// Writes persons.csv: the header and these rows.
    pub fn csv(&self, rows: &[&str]) {
        let mut text = String::from(HEADER);
        text.push('\n');
        for r in rows {
            text.push_str(r);
            text.push('\n');
        }
        std::fs::write(self.path("persons.csv"), text).expect("write csv");
    }

    /// The enid command on the test config, without the caller's `ENID_CONFIG` or `ENID_LOG`,
    /// reading nothing from stdin.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_enid"));
        c.arg("--config")
            .arg(self.path("enid.toml"))
            .args(args)
            .env_remove("ENID_CONFIG")
            .env_remove("ENID_LOG")
            .stdin(std::process::Stdio::null());
        c
    }

    /// Runs enid with the test config.
    pub fn enid(&self, args: &[&str]) -> Run {
        let out: Output = self.command(args).output().expect("run enid");
        Run {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts enid with the test config in the background, its output dropped (a run to kill).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn enid")
    }

    /// A second handle on this environment's slapd, to stop and restart it.
    pub fn slapd_handle(&self) -> Slapd {
        Slapd {
            dir: self.slapd.dir.clone(),
            port: self.slapd.port,
            tls_port: self.slapd.tls_port,
            pid: self.slapd.pid_now(),
            seed: None,
        }
    }

    pub fn apply(&self) -> Run {
        self.enid(&["apply", "--yes"]).ok()
    }

    /// The plan's summary as JSON.
    pub fn summary(&self) -> serde_json::Value {
        self.enid(&["plan", "--json"]).ok().json()["summary"].clone()
    }

    /// All entries under `base` matching `filter`.
    pub fn search(&self, base: &str, filter: &str) -> Vec<Entry> {
        search(&self.slapd.url(), base, filter)
    }

    /// inetOrgPerson entries under the people OU, by uid.
    pub fn people(&self) -> BTreeMap<String, Entry> {
        self.search(BASE, "(objectClass=inetOrgPerson)").into_iter().map(|e| (e.one("uid"), e)).collect()
    }

    /// Adds an entry with ldapadd-like semantics.
    pub fn add(&self, dn: &str, attrs: &[(&str, &[&str])]) {
        let url = self.slapd.url();
        rt().block_on(async {
            let (conn, mut ldap) = ldap3::LdapConnAsync::new(&url).await.expect("connect");
            ldap3::drive!(conn);
            ldap.simple_bind("cn=admin,dc=example,dc=org", "secret").await.expect("bind").success().expect("bind ok");
            let attrs: Vec<(String, HashSet<String>)> =
                attrs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect();
            ldap.add(dn, attrs).await.expect("add").success().expect("add ok");
        });
    }
}

impl Env {
    /// Deletes an entry, like `ldapdelete`.
    pub fn delete(&self, dn: &str) {
        let url = self.slapd.url();
        rt().block_on(async {
            let (conn, mut ldap) = ldap3::LdapConnAsync::new(&url).await.expect("connect");
            ldap3::drive!(conn);
            ldap.simple_bind("cn=admin,dc=example,dc=org", "secret").await.expect("bind").success().expect("bind ok");
            ldap.delete(dn).await.expect("delete").success().expect("delete ok");
        });
    }

    /// Adds an organizational unit (`ou=NAME,dc=example,dc=org`).
    pub fn add_ou(&self, name: &str) -> String {
        let dn = format!("ou={name},dc=example,dc=org");
        self.add(&dn, &[("objectClass", &["organizationalUnit"]), ("ou", &[name])]);
        dn
    }

    /// Runs SQL statements on the state database (to stage what a crash would leave behind).
    pub fn sql(&self, statements: &str) {
        let path = self.path("state.db");
        let statements = statements.to_string();
        rt().block_on(async {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.expect("open state");
            sqlx::raw_sql(sqlx::AssertSqlSafe(statements)).execute(&pool).await.expect("sql");
            pool.close().await;
        });
    }

    /// One text value from the state database.
    pub fn sql_value(&self, query: &str) -> String {
        let path = self.path("state.db");
        let query = query.to_string();
        rt().block_on(async {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.expect("open state");
            let v: String = sqlx::query_scalar(sqlx::AssertSqlSafe(query)).fetch_one(&pool).await.expect("sql");
            pool.close().await;
            v
        })
    }

    /// Replaces text in the config file.
    pub fn edit_config(&self, from: &str, to: &str) {
        let config = std::fs::read_to_string(self.path("enid.toml")).expect("read config");
        assert!(config.contains(from), "{from:?} not in the config:\n{config}");
        std::fs::write(self.path("enid.toml"), config.replacen(from, to, 1)).expect("write config");
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// A runtime with its own threads: what it runs (a proxy, a local server) keeps serving while
/// the test waits for an `enid` process.
pub fn threaded_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

pub fn search(url: &str, base: &str, filter: &str) -> Vec<Entry> {
    rt().block_on(async {
        let (conn, mut ldap) = ldap3::LdapConnAsync::new(url).await.expect("connect");
        ldap3::drive!(conn);
        ldap.simple_bind("cn=admin,dc=example,dc=org", "secret").await.expect("bind").success().expect("bind ok");
        let (entries, _) = ldap
            .search(base, ldap3::Scope::Subtree, filter, vec!["*", "+"])
            .await
            .expect("search")
            .success()
            .expect("search ok");
        entries
            .into_iter()
            .map(|e| {
                let e = ldap3::SearchEntry::construct(e);
                Entry { dn: e.dn, attrs: e.attrs.into_iter().collect() }
            })
            .collect()
    })
}

/// A CSV row in the default column order.
pub fn row(id: &str, given: &str, family: &str, civic: &str, role: &str, school: &str, groups: &str) -> String {
    format!("{id},{given},{family},{civic},{role},{school},{groups},,")
}

/// A valid personnummer for person `i` (born 2012, serial from `i`), with its check digit.
pub fn pnr(i: usize) -> String {
    let month = 1 + (i / 28) % 12;
    let day = 1 + i % 28;
    let serial = 100 + (i / 336) % 900;
    let body = format!("12{month:02}{day:02}{serial:03}");
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(k, b)| {
            let d = u32::from(b - b'0') * if k % 2 == 0 { 2 } else { 1 };
            d / 10 + d % 10
        })
        .sum();
    let check = (10 - sum % 10) % 10;
    format!("20{}-{}{check}", &body[..6], &body[6..])
}

/// Writes persons.csv from owned rows.
pub fn csv_rows(env: &Env, rows: &[String]) {
    env.csv(&rows.iter().map(String::as_str).collect::<Vec<_>>());
}

/// Makes a file readable by its owner only, as secrets are kept.
pub fn owner_only(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

/// Deletes the state database and its WAL files: a lost state.
pub fn remove_state(env: &Env) {
    for f in ["state.db", "state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(env.path(f));
    }
}

/// Entries anywhere under dc=example,dc=org carrying each employeeNumber value.
pub fn ids_in_directory(env: &Env) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for e in env.search("dc=example,dc=org", "(employeeNumber=*)") {
        out.entry(e.one("employeeNumber")).or_default().push(e.dn.clone());
    }
    out
}

/// What every conformance rig (`connector_api::testkit::Rig`) does the same way, whatever its
/// target: the suite's people as the CSV export, and a dry run or an apply on a day of the suite.
pub mod rig {
    use super::{Env, csv_rows};
    use connector_api::Role;
    use connector_api::testkit::{Outcome, Person};

    /// The suite's `day` (days after 2026-09-01) as `--now`.
    fn date(day: u32) -> String {
        let d = chrono::NaiveDate::from_ymd_opt(2026, 9, 1).expect("date") + chrono::Days::new(u64::from(day));
        format!("{d}T08:00:00Z")
    }

    /// From now on the export holds exactly these persons.
    pub fn set_people(env: &Env, people: &[Person]) {
        let rows: Vec<String> = people
            .iter()
            .map(|p| {
                let role = if p.role == Role::Staff { "staff" } else { "student" };
                format!("{},{},{},,{role},{},{},,", p.key, p.given, p.family, p.school, p.groups.join("|"))
            })
            .collect();
        csv_rows(env, &rows);
    }

    /// A dry run on `day`.
    pub fn plan(env: &Env, day: u32) -> Outcome {
        let run = env.enid(&["plan", "--json", "--now", &date(day)]);
        Outcome::from_plan_json(&run.stdout, run.status.success(), run.stderr)
    }

    /// An apply on `day`; the outcome counts what its plan held.
    pub fn apply(env: &Env, day: u32) -> Outcome {
        let mut planned = plan(env, day);
        let run = env.enid(&["apply", "--yes", "--accept-date", "--now", &date(day)]);
        planned.ok = run.status.success();
        planned.message = run.stderr;
        planned
    }
}
