//! The Google Workspace target against the local Directory API server (`tests/google-server`,
//! written from Google's API reference; Google itself cannot be reached here), started in this
//! test process on 127.0.0.1: the conformance suite through the fault-injecting proxy, and what
//! is Google's own (org units, first passwords, suspended users, names held in the domain,
//! protected persons, propagation, the rate limit).

use crate::harness::*;
use connector_api::Target;
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
        rig::set_people(&self.env, people);
    }

    fn plan(&mut self, day: u32) -> Outcome {
        rig::plan(&self.env, day)
    }

    fn apply(&mut self, day: u32) -> Outcome {
        rig::apply(&self.env, day)
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

/// Users on the server by primary email, as the Admin console shows them (the password too:
/// the server keeps what it was given).
fn users(server: &google_server::Server) -> std::collections::BTreeMap<String, serde_json::Value> {
    server
        .handle()
        .users()
        .into_iter()
        .map(|u| (u["primaryEmail"].as_str().unwrap_or_default().to_string(), u))
        .collect()
}

fn write_csv(env: &Env, header_extra: &str, rows: &[&str]) {
    let text: String = std::iter::once(format!("{HEADER}{header_extra}"))
        .chain(rows.iter().map(|r| r.to_string()))
        .map(|l| l + "\n")
        .collect();
    std::fs::write(env.path("persons.csv"), text).expect("write csv");
}

#[test]
fn first_passwords_reach_google_and_are_handed_out_once() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let env = env_with(server.url(), &google_table("gw", server.url(), "initial_password = \"generated\"\n"));
    write_csv(&env, "", &["1,Pia,Passlund,,student,Norr,,,", "2,Liv,Passberg,,student,Söder,,,"]);
    env.enid(&["apply", "--yes"]).ok();
    let u = users(&server);
    let pia = &u["pia.passlund@skola.example.org"];
    assert_eq!(pia["orgUnitPath"], "/Elever/Norr");
    assert_eq!(u["liv.passberg@skola.example.org"]["orgUnitPath"], "/Elever/Söder");
    assert_eq!(pia["changePasswordAtNextLogin"], true, "{pia}");
    assert_eq!(pia["suspended"], false);
    assert_eq!(pia["organizations"][0]["department"], "Norr", "{pia}");
    let ids = pia["externalIds"].as_array().expect("externalIds");
    assert!(ids.iter().any(|x| x["customType"] == "enid" && x["value"].as_str().map(str::len) == Some(36)), "{pia}");
    let shown = env.enid(&["passwords", "show", "--school", "Norr", "--json"]).ok().json();
    let shown = shown.as_array().expect("list").clone();
    assert_eq!(shown.len(), 1, "{shown:?}");
    let password = shown[0]["password"].as_str().expect("password");
    assert_eq!(password.len(), 14);
    assert_eq!(pia["password"].as_str(), Some(password), "the password Google was given is the one handed out");
    let again = env.enid(&["passwords", "show", "--school", "Norr"]).ok().stdout;
    assert!(again.contains("No first passwords to hand out"), "{again}");
    // Without the hand-out, a long random password nobody sees, and no change asked for.
    let server = rt.block_on(start_server(|_| {}));
    let env2 = env_with(server.url(), &google_table("gw", server.url(), ""));
    write_csv(&env2, "", &["3,Sso,Only,,student,Norr,,,"]);
    env2.enid(&["apply", "--yes"]).ok();
    let sso = &users(&server)["sso.only@skola.example.org"];
    assert_eq!(sso["password"].as_str().map(str::len), Some(32), "{sso}");
    assert_eq!(sso["changePasswordAtNextLogin"], false);
}

#[test]
fn a_name_held_anywhere_in_the_domain_is_not_given_and_a_hand_made_user_is_never_claimed() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let h = server.handle();
    h.add_orgunit("/Personal");
    // A teacher outside enid's org unit, and a group, hold two names new pupils would get.
    h.add_user(serde_json::json!({"primaryEmail": "anna.berg@skola.example.org", "orgUnitPath": "/Personal",
        "name": {"givenName": "Anna", "familyName": "Berg"}, "suspended": false}));
    let table = google_table("gw", server.url(), "[targets.gw.groups]\n");
    let env = env_with(server.url(), &table);
    let direct = direct(&env, server.url(), "[groups]\n");
    rt.block_on(direct.apply(&connector_api::TargetOp::CreateGroup { name: "Bo.Ek".into(), members: vec![] }))
        .expect("a group by hand");
    write_csv(&env, "", &["1,Anna,Berg,,student,Norr,,,", "2,Bo,Ek,,student,Norr,,,"]);
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 2, "{plan}");
    env.enid(&["apply", "--yes"]).ok();
    let u = users(&server);
    let teacher = &u["anna.berg@skola.example.org"];
    assert_eq!(teacher["orgUnitPath"], "/Personal", "the teacher's account is left as it was: {teacher}");
    assert!(teacher.get("externalIds").is_none(), "never claimed: {teacher}");
    let mine: Vec<&String> = u.keys().filter(|e| e.starts_with("anna.berg") || e.starts_with("bo.ek")).collect();
    assert_eq!(mine.len(), 3, "{mine:?}");
    assert!(!u.contains_key("bo.ek@skola.example.org"), "the group's address is not a username to give: {mine:?}");
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 0, "{plan}");
}

#[test]
fn a_protected_person_lives_in_the_neutral_org_unit_out_of_the_directory() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let env = env_with(server.url(), &google_table("gw", server.url(), ""));
    write_csv(
        &env,
        ",protection",
        &["1,Sara,Hemlig,19121212-1212,student,Norr,7A,,,sekretessmarkering", "2,Bo,Ek,,student,Norr,7A,,,"],
    );
    let id = env.enid(&["plan", "--save", "--json"]).ok().json()["plan_id"].as_str().expect("plan id").to_string();
    let out = env.enid(&["apply", "--yes", "--plan", &id, "--accept-protected"]).ok();
    let u = users(&server);
    let sara = u.values().find(|x| x["orgUnitPath"] == "/Elever/Skyddade").expect("an account in /Elever/Skyddade");
    assert_eq!(sara["includeInGlobalAddressList"], false, "{sara}");
    assert!(sara.get("organizations").is_none(), "no school: {sara}");
    let text = serde_json::to_string(&u).expect("json") + &out.stdout + &out.stderr;
    for secret in ["Sara", "Hemlig", "1212"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert_eq!(u["bo.ek@skola.example.org"]["includeInGlobalAddressList"], true);
}

#[test]
fn a_missing_base_org_unit_stops_the_run_before_planning() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let env = env_with(
        server.url(),
        &google_table(
            "gw",
            server.url(),
            "base_org_unit = \"/Eleverna\"\norg_unit = \"/Eleverna/{{ school_unit }}\"\n",
        ),
    );
    write_csv(&env, "", &["1,Anna,Berg,,student,Norr,,,"]);
    let err = env.enid(&["plan"]).fails().stderr;
    assert!(err.contains("org unit /Eleverna does not exist"), "{err}");
    let err = env.enid(&["check"]).fails();
    assert!(err.stdout.contains("/Eleverna") || err.stderr.contains("/Eleverna"), "{}{}", err.stdout, err.stderr);
    assert!(users(&server).is_empty());
}

#[test]
fn users_google_is_still_making_and_the_query_quota_are_waited_out() {
    let rt = rt3();
    // Google takes a while to make a user, and allows so many queries in a window.
    let server = rt.block_on(start_server(|c| {
        c.propagation = std::time::Duration::from_secs(2);
        c.queries_per_window = Some(15);
        c.quota_window = std::time::Duration::from_secs(2);
    }));
    let table = google_table("gw", server.url(), "[targets.gw.groups]\n[targets.gw.policy.groups]\n");
    let env = env_with(server.url(), &table);
    let rows: Vec<String> = (0..12).map(|i| format!("{i},Elev,Nummer{i},,student,Norr,7A,,")).collect();
    csv_rows(&env, &rows);
    env.enid(&["apply", "--yes"]).ok();
    let u = users(&server);
    assert_eq!(u.len(), 12, "{:?}", u.keys());
    let members = server.handle().members("norr-7a@skola.example.org");
    assert_eq!(members.len(), 12, "members added once Google had made the users: {members:?}");
    let log = server.handle().log();
    assert!(log.len() > 15, "more requests than the quota window takes: {}", log.len());
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert!(plan["summary"]["create"] == 0 && plan["group_summary"]["members_added"] == 0, "{plan}");
}

#[test]
fn a_user_suspended_by_an_admin_stays_suspended_and_a_lost_state_is_adopted_back() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let env = env_with(server.url(), &google_table("gw", server.url(), ""));
    write_csv(&env, "", &["1,Anna,Berg,,student,Norr,,,", "2,Bo,Ek,,student,Norr,,,"]);
    env.enid(&["apply", "--yes"]).ok();
    let direct = direct(&env, server.url(), "");
    let bo = users(&server)["bo.ek@skola.example.org"]["id"].as_str().expect("id").to_string();
    rt.block_on(direct.apply(&connector_api::TargetOp::Disable { key: bo.clone() })).expect("suspend by hand");
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(users(&server)["bo.ek@skola.example.org"]["suspended"], true, "left suspended");
    // The state is lost: nothing is planned until the accounts are adopted back, by their ids.
    remove_state(&env);
    let err = env.enid(&["plan"]).fails().stderr;
    assert!(err.contains("adopt"), "{err}");
    env.enid(&["adopt", "--yes"]).ok();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 0, "no second account: {plan}");
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(users(&server).len(), 2);
}

#[test]
fn a_key_file_whose_token_uri_is_plain_http_elsewhere_is_refused_before_anything_is_sent() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let env = env_with(server.url(), &google_table("gw", server.url(), ""));
    let key = write_key(env.dir.path(), "http://tokens.example.org");
    let text = std::fs::read_to_string(&key).expect("key");
    assert!(text.contains("http://tokens.example.org/token"));
    write_csv(&env, "", &["1,Anna,Berg,,student,Norr,,,"]);
    let err = env.enid(&["plan"]).fails().stderr;
    assert!(err.contains("token_uri") && err.contains("https://"), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    assert!(server.handle().log().is_empty(), "nothing was sent");
}
