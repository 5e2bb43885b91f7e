//! The Google Workspace target against the local Directory API server (`tests/google-server`,
//! written from Google's API reference; Google itself cannot be reached here), started in this
//! test process on 127.0.0.1: the conformance suite through the fault-injecting proxy, and what
//! is Google's own (org units, first passwords, suspended users, names held in the domain,
//! protected persons, propagation, the rate limit).

use crate::harness::*;
use connector_api::Role;
use connector_api::testkit::{self, FaultProxy, Outcome, Person, Protocol, Rig};
use google_server::{Config, ServiceAccount};
use std::sync::OnceLock;
use target_google::{GoogleConfig, GoogleTarget};

pub const DOMAIN: &str = "skola.example.org";
pub const ADMIN: &str = "admin@skola.example.org";
const CLIENT_EMAIL: &str = "enid@skola-enid.iam.gserviceaccount.com";

/// A service account's key pair, made once per test binary by openssl: (private PKCS#8 PEM,
/// public PEM).
pub fn keys() -> &'static (String, String) {
    static KEYS: OnceLock<(String, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("key.pem");
        let ok = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
            .arg(&key)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(ok.success(), "openssl genpkey");
        let public = std::process::Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&key).output();
        let public = public.expect("openssl pkey");
        (std::fs::read_to_string(&key).expect("key"), String::from_utf8(public.stdout).expect("pem"))
    })
}

/// A local Google server with the service account's delegation, `/Elever` made.
pub async fn start_server(config: impl FnOnce(&mut Config)) -> google_server::Server {
    let mut c = Config {
        domain: DOMAIN.into(),
        admins: vec![ADMIN.into()],
        service_account: ServiceAccount {
            client_email: CLIENT_EMAIL.into(),
            key_id: "enid-key-1".into(),
            public_key_pem: keys().1.clone(),
        },
        ..Config::default()
    };
    config(&mut c);
    let server = google_server::start(c).await.expect("google server");
    server.handle().add_orgunit("/Elever");
    server
}

/// Writes the service account's JSON key file (owner-only) into `dir`, its `token_uri` the
/// server's token endpoint.
pub fn write_key(dir: &std::path::Path, server_url: &str) -> std::path::PathBuf {
    let key = serde_json::json!({
        "type": "service_account", "project_id": "skola-enid", "private_key_id": "enid-key-1",
        "private_key": keys().0, "client_email": CLIENT_EMAIL, "client_id": "1234567890",
        "token_uri": format!("{server_url}/token"),
    });
    let path = dir.join("google-key.json");
    std::fs::write(&path, key.to_string()).expect("write key");
    owner_only(&path);
    path
}

/// A Google target table reaching the API at `api_url`.
pub fn google_table(id: &str, api_url: &str, extra: &str) -> String {
    format!(
        "[targets.{id}]\ntype = \"google\"\ndomain = \"{DOMAIN}\"\ncredentials_file = \"google-key.json\"\n\
         admin_email = \"{ADMIN}\"\napi_url = \"{api_url}\"\nmax_wait_secs = 20\n{extra}\n"
    )
}

/// The connector with these settings (TOML lines), reaching the server directly.
pub fn direct(env: &Env, server_url: &str, extra: &str) -> GoogleTarget {
    let key = write_key(env.dir.path(), server_url);
    let config: GoogleConfig = toml::from_str(&format!(
        "domain = \"{DOMAIN}\"\ncredentials_file = \"{}\"\nadmin_email = \"{ADMIN}\"\napi_url = \"{server_url}\"\n{extra}",
        key.display()
    ))
    .expect("config");
    let key = connector_http::ServiceAccountKey::load(&key, "test key").expect("key");
    GoogleTarget::new(config, key).expect("google target")
}

/// A test directory with a config of one CSV source and these targets, and the key file.
pub fn env_with(server_url: &str, targets: &str) -> Env {
    let env = Env::new();
    write_key(env.dir.path(), server_url);
    let config =
        format!("[state]\npath = \"state.db\"\n\n[sources.sis]\ntype = \"csv\"\npath = \"persons.csv\"\n\n{targets}\n");
    std::fs::write(env.path("enid.toml"), config).expect("write config");
    env
}

fn date(day: u32) -> String {
    let d = chrono::NaiveDate::from_ymd_opt(2026, 9, 1).expect("date") + chrono::Days::new(u64::from(day));
    format!("{d}T08:00:00Z")
}

fn outcome(env: &Env, day: u32) -> Outcome {
    let run = env.enid(&["plan", "--json", "--now", &date(day)]);
    Outcome::from_plan_json(&run.stdout, run.status.success(), run.stderr)
}

struct GoogleRig {
    env: Env,
    proxy: FaultProxy,
    target: GoogleTarget,
    server: google_server::Handle,
}

impl Rig for GoogleRig {
    type T = GoogleTarget;

    fn target(&self) -> &GoogleTarget {
        &self.target
    }

    fn proxy(&self) -> &FaultProxy {
        &self.proxy
    }

    fn set_people(&mut self, people: &[Person]) {
        let rows: Vec<String> = people
            .iter()
            .map(|p| {
                let role = if p.role == Role::Staff { "staff" } else { "student" };
                format!("{},{},{},,{role},{},{},,", p.key, p.given, p.family, p.school, p.groups.join("|"))
            })
            .collect();
        csv_rows(&self.env, &rows);
    }

    fn plan(&mut self, day: u32) -> Outcome {
        outcome(&self.env, day)
    }

    fn apply(&mut self, day: u32) -> Outcome {
        let mut planned = outcome(&self.env, day);
        let run = self.env.enid(&["apply", "--yes", "--accept-date", "--now", &date(day)]);
        planned.ok = run.status.success();
        planned.message = run.stderr;
        planned
    }

    fn make_unowned(&mut self, username: &str, given: &str, family: &str) {
        // Made in the Admin console: in enid's org unit, without enid's external id.
        self.server.add_user(serde_json::json!({
            "primaryEmail": format!("{username}@{DOMAIN}"),
            "name": {"givenName": given, "familyName": family, "fullName": format!("{given} {family}")},
            "orgUnitPath": "/Elever", "suspended": false, "kind": "admin#directory#user",
        }));
    }

    fn grace_days(&self) -> u32 {
        10
    }
}

#[test]
fn the_google_target_passes_the_conformance_suite() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let addr: std::net::SocketAddr = server.url().trim_start_matches("http://").parse().expect("addr");
    let proxy = rt.block_on(FaultProxy::start(addr, Protocol::Http)).expect("proxy");
    let through = format!("http://{}", proxy.addr());
    let settings = "max_in_flight = 2\n[targets.gw.groups]\n[targets.gw.policy.groups]\n";
    let env = env_with(
        server.url(),
        &format!(
            "[naming]\non_name_change = \"rename\"\n\n[lifecycle]\ndelete_students_after_days = 10\n\n{}",
            google_table("gw", &through, settings)
        ),
    );
    let target = direct(&env, server.url(), "[groups]\n");
    let mut rig = GoogleRig { env, proxy, target, server: server.handle() };
    let reports = rt.block_on(testkit::run(&mut rig));
    assert_eq!(reports.len(), 13, "{reports:#?}");
    testkit::assert_passed(&reports);
    // Every account lives in its school's org unit, made by enid below /Elever.
    let units = server.handle().orgunits();
    for ou in ["/Elever/S1", "/Elever/S2", "/Elever/S3"] {
        assert!(units.iter().any(|u| u == ou), "{ou} not made: {units:?}");
    }
}

fn rt3() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(3).enable_all().build().expect("runtime")
}
