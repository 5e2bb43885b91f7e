//! The Microsoft Entra target against the local Graph server (`tests/graph-server`, written
//! from Microsoft's Graph reference; Graph itself cannot be reached here), started in this test
//! process on 127.0.0.1: the conformance suite through the fault-injecting proxy, and what is
//! Entra's own (first passwords, synchronised users, soft-deleted users restored, the delta
//! query kept between runs, `$batch` with its throttled sub-requests, a certificate).

use crate::harness::*;
use connector_api::testkit::{self, FaultProxy, Outcome, Person, Protocol, Rig};
use connector_api::{Secret, Target};
use graph_server::Config;
use target_entra::{EntraConfig, EntraTarget};

pub const SUFFIX: &str = "skola.example.org";

pub async fn start_server(config: impl FnOnce(&mut Config)) -> graph_server::Server {
    let mut c = Config { domain: SUFFIX.into(), ..Config::default() };
    config(&mut c);
    graph_server::start(c).await.expect("graph server")
}

/// An Entra target table reaching Graph at `graph` (`http://host:port`), tokens from `server`.
pub fn entra_table(id: &str, server: &str, graph: &str, extra: &str) -> String {
    let c = Config::default();
    format!(
        "[targets.{id}]\ntype = \"entra\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"entra.secret\"\n\
         upn_suffix = \"{SUFFIX}\"\ngraph_url = \"{graph}/v1.0\"\ntoken_url = \"{server}/{}/oauth2/v2.0/token\"\n\
         max_wait_secs = 20\n{extra}\n",
        c.tenant_id, c.client_id, c.tenant_id
    )
}

/// The connector with these settings (TOML lines), reaching the server directly.
pub fn direct(server: &str, extra: &str) -> EntraTarget {
    let c = Config::default();
    let config: EntraConfig = toml::from_str(&format!(
        "tenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"UNUSED\"\nupn_suffix = \"{SUFFIX}\"\n\
         graph_url = \"{server}/v1.0\"\ntoken_url = \"{server}/{}/oauth2/v2.0/token\"\n{extra}",
        c.tenant_id, c.client_id, c.tenant_id
    ))
    .expect("config");
    let credentials = connector_http::Credentials::Secret {
        client_id: c.client_id.clone(),
        client_secret: Secret::new(c.client_secret.clone().unwrap_or_default()),
        client_auth: connector_http::ClientAuth::Form,
    };
    EntraTarget::new(config, credentials).expect("entra target")
}

/// A test directory with a config of one CSV source and these targets, and the secret file.
pub fn env_with(targets: &str) -> Env {
    let env = Env::new();
    let secret = Config::default().client_secret.unwrap_or_default();
    std::fs::write(env.path("entra.secret"), format!("{secret}\n")).expect("write secret");
    owner_only(&env.path("entra.secret"));
    let config =
        format!("[state]\npath = \"state.db\"\n\n[sources.sis]\ntype = \"csv\"\npath = \"persons.csv\"\n\n{targets}\n");
    std::fs::write(env.path("enid.toml"), config).expect("write config");
    env
}

struct EntraRig {
    env: Env,
    proxy: FaultProxy,
    target: EntraTarget,
    server: graph_server::Handle,
}

impl Rig for EntraRig {
    type T = EntraTarget;

    fn target(&self) -> &EntraTarget {
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
        // Made in the admin center: a cloud user without enid's extension attribute.
        self.server.add_user(serde_json::json!({
            "userPrincipalName": format!("{username}@{SUFFIX}"), "displayName": format!("{given} {family}"),
            "givenName": given, "surname": family, "accountEnabled": true, "mailNickname": username,
        }));
    }

    fn grace_days(&self) -> u32 {
        10
    }
}

pub fn rt3() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(3).enable_all().build().expect("runtime")
}

fn conformance(extra: &str) {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let addr: std::net::SocketAddr = server.url().trim_start_matches("http://").parse().expect("addr");
    let proxy = rt.block_on(FaultProxy::start(addr, Protocol::Http)).expect("proxy");
    let through = format!("http://{}", proxy.addr());
    let settings = format!("max_in_flight = 2\n{extra}\n[targets.m365.groups]\n[targets.m365.policy.groups]\n");
    let env = env_with(&format!(
        "[naming]\non_name_change = \"rename\"\n\n[lifecycle]\ndelete_students_after_days = 10\n\n{}",
        entra_table("m365", server.url(), &through, &settings)
    ));
    let target = direct(server.url(), &format!("{extra}\n[groups]\n"));
    let mut rig = EntraRig { env, proxy, target, server: server.handle() };
    let reports = rt.block_on(testkit::run(&mut rig));
    assert_eq!(reports.len(), 13, "{reports:#?}");
    testkit::assert_passed(&reports);
}

/// With the delta query, and changes in `$batch` requests of five (the suite's dropped
/// connection falls between two of them).
#[test]
fn the_entra_target_passes_the_conformance_suite() {
    conformance("batch_size = 5\n");
}

/// One request at a time, every read in full: the same story.
#[test]
fn the_entra_target_passes_the_conformance_suite_without_batch_or_delta() {
    conformance("batch_size = 1\ndelta = false\n");
}

fn write_csv(env: &Env, header_extra: &str, rows: &[&str]) {
    let text: String = std::iter::once(format!("{HEADER}{header_extra}"))
        .chain(rows.iter().map(|r| r.to_string()))
        .map(|l| l + "\n")
        .collect();
    std::fs::write(env.path("persons.csv"), text).expect("write csv");
}

/// Users on the server by UPN.
fn users(h: &graph_server::Handle) -> std::collections::BTreeMap<String, serde_json::Value> {
    h.users().into_iter().map(|u| (u["userPrincipalName"].as_str().unwrap_or_default().to_string(), u)).collect()
}

#[test]
fn first_passwords_reach_entra_and_are_handed_out_once() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let h = server.handle();
    let env = env_with(&entra_table("m365", server.url(), server.url(), "initial_password = \"generated\"\n"));
    write_csv(&env, "", &["1,Pia,Passlund,,student,Norr,,,", "2,Liv,Passberg,,teacher,Söder,,,"]);
    env.enid(&["apply", "--yes"]).ok();
    let u = users(&h);
    let pia = &u["pia.passlund@skola.example.org"];
    assert_eq!((pia["givenName"].as_str(), pia["surname"].as_str()), (Some("Pia"), Some("Passlund")), "{pia}");
    assert_eq!((pia["department"].as_str(), pia["usageLocation"].as_str()), (Some("Norr"), Some("SE")), "{pia}");
    assert_eq!(pia["mailNickname"], "pia.passlund");
    assert_eq!(pia["onPremisesExtensionAttributes"]["extensionAttribute15"].as_str().map(str::len), Some(36), "{pia}");
    let shown = env.enid(&["passwords", "show", "--school", "Norr", "--json"]).ok().json();
    let shown = shown.as_array().expect("list").clone();
    assert_eq!(shown.len(), 1, "{shown:?}");
    let (given, change) = h.password(pia["id"].as_str().expect("id")).expect("a password profile");
    assert_eq!(
        Some(given.as_str()),
        shown[0]["password"].as_str(),
        "the password Graph was given is the one handed out"
    );
    assert!(change, "to be changed at the first sign-in");
}

#[test]
fn a_user_synchronised_from_ad_is_never_written_or_claimed_and_blocks_its_namesake() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let h = server.handle();
    let synced = h.add_synced_user("anna.berg@skola.example.org", "Anna Berg");
    let env = env_with(&entra_table("m365", server.url(), server.url(), ""));
    write_csv(&env, "", &["1,Anna,Berg,,student,Norr,,,", "2,Bo,Ek,,student,Norr,,,"]);
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 1, "{plan}");
    let blocked = plan["blocked"].to_string();
    assert!(blocked.contains("synchronised from on-premises AD"), "the plan says why: {blocked}");
    let text = env.enid(&["plan"]).ok().stdout;
    assert!(text.contains("synchronised from on-premises AD"), "{text}");
    env.enid(&["apply", "--yes"]).ok();
    let u = users(&h);
    assert!(!u.keys().any(|k| k.starts_with("anna.berg") && k != "anna.berg@skola.example.org"), "no namesake: {u:?}");
    let anna = &u["anna.berg@skola.example.org"];
    assert!(anna.get("onPremisesExtensionAttributes").is_none() && anna["displayName"] == "Anna Berg", "{anna}");
    // Claiming it by hand is refused with the reason.
    let err = env.enid(&["adopt", "--entry", &synced, "--person", "sis/1", "--yes"]).fails().stderr;
    assert!(err.contains("synchronised from on-premises AD"), "{err}");
    // A correlation rule by username never claims it either.
    env.edit_config("max_wait_secs = 20\n", "max_wait_secs = 20\n\n[targets.m365.policy.correlate]\nusername = true\n");
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["claim"].as_u64().unwrap_or(0), 0, "{plan}");
    assert!(plan["blocked"].to_string().contains("synchronised"), "{plan}");
}

#[test]
fn a_pupil_back_within_thirty_days_is_restored_and_a_deleted_users_name_is_not_given() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let h = server.handle();
    // A user someone deleted last week still holds its UPN.
    let other = h.add_user(serde_json::json!({"userPrincipalName": "bo.ek@skola.example.org", "displayName": "Bo Ek",
        "accountEnabled": true, "mailNickname": "bo.ek"}));
    let direct = direct(server.url(), "");
    rt.block_on(direct.apply(&connector_api::TargetOp::Delete { key: other.clone() })).expect("delete by hand");
    let env = env_with(&entra_table("m365", server.url(), server.url(), ""));
    let config = std::fs::read_to_string(env.path("enid.toml")).expect("config");
    std::fs::write(env.path("enid.toml"), format!("[lifecycle]\ndelete_students_after_days = 2\n\n{config}"))
        .expect("config");
    write_csv(&env, "", &["1,Anna,Berg,,student,Norr,,,", "2,Bo,Ek,,student,Norr,,,"]);
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2026-09-01T08:00:00Z"]).ok();
    let u = users(&h);
    assert!(
        u.contains_key("bo.ek2@skola.example.org")
            || u.keys().any(|k| k.starts_with("bo.ek") && k != "bo.ek@skola.example.org"),
        "{u:?}"
    );
    assert!(!u.contains_key("bo.ek@skola.example.org"), "the deleted user's name is not given: {u:?}");
    let anna = u["anna.berg@skola.example.org"]["id"].as_str().expect("id").to_string();
    // Anna leaves: disabled, then deleted after the grace period (soft: Graph keeps her 30 days).
    write_csv(&env, "", &["2,Bo,Ek,,student,Norr,,,"]);
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2026-09-02T08:00:00Z"]).ok();
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2026-09-05T08:00:00Z"]).ok();
    assert!(h.deleted_users().iter().any(|d| d["id"] == anna.as_str()), "soft-deleted");
    // She comes back: the same object, restored, never a second one beside it.
    write_csv(&env, "", &["1,Anna,Berg,,student,Söder,,,", "2,Bo,Ek,,student,Norr,,,"]);
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2026-09-10T08:00:00Z"]).ok();
    let u = users(&h);
    let back = &u["anna.berg@skola.example.org"];
    assert_eq!(back["id"], anna.as_str(), "restored: {back}");
    assert_eq!((back["accountEnabled"].as_bool(), back["department"].as_str()), (Some(true), Some("Söder")), "{back}");
    assert!(!h.deleted_users().iter().any(|d| d["id"] == anna.as_str()));
    let plan = env.enid(&["plan", "--json", "--now", "2026-09-10T09:00:00Z"]).ok().json();
    assert!(plan["summary"]["create"] == 0 && plan["summary"]["update"] == 0, "{plan}");
}

/// The first request of a delta round from the start: a full read.
fn starts_full_round(l: &graph_server::Logged) -> bool {
    l.path.ends_with("/delta") && !l.query.contains("deltatoken") && !l.query.contains("skiptoken")
}

#[test]
fn after_the_first_run_a_plan_reads_only_changes_and_an_expired_link_reads_everything() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let h = server.handle();
    let env = env_with(&entra_table(
        "m365",
        server.url(),
        server.url(),
        "[targets.m365.groups]\n[targets.m365.policy.groups]\n",
    ));
    let rows: Vec<String> = (0..150).map(|i| format!("{i},Elev,Nummer{i},,student,Norr,7A,,")).collect();
    csv_rows(&env, &rows);
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(users(&h).len(), 150);
    let first = env.sql_value("SELECT CAST(length(value) AS TEXT) FROM meta WHERE key = 'connector_state:m365'");
    assert!(first.parse::<usize>().unwrap_or(0) > 100, "the delta link is kept after the apply: {first}");
    // The next run (nothing to do) reads the 150 new users through the delta and keeps them.
    let before = h.log().len();
    env.enid(&["apply", "--yes"]).ok();
    assert!(!h.log()[before..].iter().any(starts_full_round), "resumed from the kept link");
    let kept = env.sql_value("SELECT CAST(length(value) AS TEXT) FROM meta WHERE key = 'connector_state:m365'");
    assert!(kept.parse::<usize>().unwrap_or(0) > 1000, "the delta state is kept after the apply: {kept}");
    // A dry run now: a handful of reads, none of them a full one, and no writes.
    let before = h.log().len();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert!(plan["summary"]["create"] == 0 && plan["summary"]["update"] == 0, "{plan}");
    let seen: Vec<graph_server::Logged> = h.log()[before..].to_vec();
    let reads: Vec<String> = seen.iter().map(|l| format!("{} {}?{}", l.method, l.path, l.query)).collect();
    assert!(seen.iter().all(|l| l.method == "GET" || l.path.contains("/token")), "no writes: {reads:?}");
    assert!(seen.len() <= 4, "a handful of requests: {reads:?}");
    assert!(!seen.iter().any(starts_full_round), "{reads:?}");
    // A change made by hand is seen through the delta.
    let one = users(&h)["elev.nummer7@skola.example.org"]["id"].as_str().expect("id").to_string();
    let direct = direct(server.url(), "");
    rt.block_on(direct.apply(&connector_api::TargetOp::Update {
        key: one,
        changes: vec![connector_api::AttrChange {
            attr: "department".into(),
            values: connector_api::Value::text("Fel"),
        }],
    }))
    .expect("a change by hand");
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["update"], 1, "the change is read through the delta: {plan}");
    // A plan never advances what is kept; the link expires: everything is read again.
    assert_eq!(env.sql_value("SELECT CAST(length(value) AS TEXT) FROM meta WHERE key = 'connector_state:m365'"), kept);
    h.expire_delta_links();
    let before = h.log().len();
    env.enid(&["apply", "--yes"]).ok();
    let full = h.log()[before..].iter().filter(|l| starts_full_round(l)).count();
    assert!(full >= 2, "users and groups read in full after the 410");
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert!(plan["summary"]["update"] == 0 && plan["group_summary"]["members_added"] == 0, "{plan}");
    // The state is lost: the kept delta goes with it, and the guard stops the run as on every target.
    remove_state(&env);
    let err = env.enid(&["plan"]).fails().stderr;
    assert!(err.contains("adopt"), "{err}");
}

#[test]
fn throttled_batch_requests_wait_their_retry_after_and_everything_is_made_once() {
    let rt = rt3();
    let server = rt.block_on(start_server(|c| {
        c.writes_per_window = Some(25);
        c.write_window = std::time::Duration::from_secs(2);
    }));
    let h = server.handle();
    let env = env_with(&entra_table("m365", server.url(), server.url(), ""));
    let rows: Vec<String> = (0..60).map(|i| format!("{i},Elev,Nummer{i},,student,Norr,,,")).collect();
    csv_rows(&env, &rows);
    let out = env.enid(&["apply", "--yes"]).ok();
    assert_eq!(users(&h).len(), 60, "{}", out.stderr);
    let batches = h.log().iter().filter(|l| l.path.ends_with("$batch")).count();
    assert!((3..30).contains(&batches), "creates went in $batch requests, throttled ones again: {batches}");
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 0, "{plan}");
}

#[test]
fn a_certificate_gets_the_token_and_a_wrong_secret_is_an_authentication_error() {
    let rt = rt3();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("app.pem"), dir.path().join("app.key"));
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=enid-app", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success());
    let public = std::process::Command::new("openssl").args(["x509", "-pubkey", "-noout", "-in"]).arg(&cert).output();
    let public = String::from_utf8(public.expect("openssl").stdout).expect("pem");
    let loaded = connector_http::CertificateKey::load(&cert, &key, "test").expect("certificate");
    let server = rt.block_on(start_server(|c| {
        c.client_secret = None;
        c.certificate = Some(graph_server::Certificate { x5t: loaded.x5t.clone(), public_key_pem: public });
    }));
    let env = env_with(&entra_table("m365", server.url(), server.url(), ""));
    std::fs::copy(&cert, env.path("app.pem")).expect("copy");
    std::fs::copy(&key, env.path("app.key")).expect("copy");
    owner_only(&env.path("app.key"));
    write_csv(&env, "", &["1,Anna,Berg,,student,Norr,,,"]);
    // The secret is refused: an authentication error, nothing planned.
    let err = env.enid(&["plan"]).fails().stderr;
    assert!(err.contains("authentication") && err.contains("m365"), "{err}");
    assert!(!err.contains("graph-test-secret"), "the secret is never shown: {err}");
    env.edit_config(
        "client_secret_file = \"entra.secret\"",
        "client_cert_file = \"app.pem\"\nclient_key_file = \"app.key\"",
    );
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(users(&server.handle()).len(), 1);
}

#[test]
fn of_two_deleted_users_carrying_a_pupils_id_the_one_with_her_name_is_restored() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let h = server.handle();
    let env = env_with(&entra_table("m365", server.url(), server.url(), ""));
    write_csv(&env, "", &["1,Anna,Berg,,student,Norr,,,"]);
    env.enid(&["apply", "--yes"]).ok();
    let anna = users(&h)["anna.berg@skola.example.org"].clone();
    let id = anna["onPremisesExtensionAttributes"]["extensionAttribute15"].as_str().expect("enid id").to_string();
    // Someone copied her enid id onto another user by hand; both are deleted.
    let copy = h.add_user(serde_json::json!({"userPrincipalName": "kopia@skola.example.org", "displayName": "Kopia",
        "accountEnabled": true, "mailNickname": "kopia", "onPremisesExtensionAttributes": {"extensionAttribute15": id}}));
    let direct = direct(server.url(), "");
    for key in [copy.clone(), anna["id"].as_str().expect("id").to_string()] {
        rt.block_on(direct.apply(&connector_api::TargetOp::Delete { key })).expect("delete by hand");
    }
    let out = env.enid(&["apply", "--yes"]).ok();
    let u = users(&h);
    assert_eq!(u["anna.berg@skola.example.org"]["id"], anna["id"], "her own user restored: {}", out.stderr);
    assert!(!u.contains_key("kopia@skola.example.org"), "the copy stays deleted");
    assert!(out.stderr.contains("several deleted users carry this enid id"), "{}", out.stderr);
}
