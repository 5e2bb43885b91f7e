//! The SCIM 2.0 target against the real PyPI scim2-server (`tests/scripts/scim.sh`): the
//! conformance suite through the fault-injecting proxy, LDAP and SCIM side by side from one
//! source, users made before enid, protected persons, and the errors a SCIM service gives.
//!
//! One server serves every test (the one `tests/scripts/test.sh` started, `ENID_TEST_SCIM_URL`,
//! or one this test binary starts, stopped by its watchdog when the binary ends); each test
//! works in a tenant of its own.

use crate::harness::*;
use connector_api::testkit::{self, FaultProxy, Outcome, Person, Protocol, Rig};
use connector_api::{AccountSpec, Role, Secret, Target, TargetOp};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use target_scim::{ScimConfig, ScimTarget};

pub const TOKEN: &str = "testtoken";

/// The shared server's address (`http://127.0.0.1:PORT`).
pub fn server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("ENID_TEST_SCIM_URL")
            && !url.is_empty()
        {
            return url.trim_end_matches('/').to_string();
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
            l.local_addr().expect("local addr").port()
        };
        let out = std::process::Command::new(repo().join("tests/scripts/scim.sh"))
            .arg(port.to_string())
            .env("WATCH_PID", std::process::id().to_string())
            .output()
            .expect("run tests/scripts/scim.sh (python3 with venv needed: run tests/scripts/test.sh)");
        assert!(out.status.success(), "scim.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        format!("http://127.0.0.1:{port}")
    })
}

/// A tenant of the shared server that no other test uses.
pub fn tenant() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("{}/t{}x{n}", server(), std::process::id())
}

/// A test directory with a config of one CSV source and the given targets (TOML), and the
/// token file; the LDAP half of `Env` (its slapd) is there for tests that want both.
pub fn env_with_targets(targets: &str) -> Env {
    let env = Env::new();
    std::fs::write(env.path("scim.token"), format!("{TOKEN}\n")).expect("write token");
    owner_only(&env.path("scim.token"));
    let config =
        format!("[state]\npath = \"state.db\"\n\n[sources.sis]\ntype = \"csv\"\npath = \"persons.csv\"\n\n{targets}\n");
    std::fs::write(env.path("enid.toml"), config).expect("write config");
    env
}

/// A SCIM target table for `url`.
pub fn scim_table(id: &str, url: &str, extra: &str) -> String {
    format!("[targets.{id}]\ntype = \"scim\"\nurl = \"{url}\"\ntoken_file = \"scim.token\"\n{extra}\n")
}

/// The connector, reaching the server directly: for looking at what the engine did.
pub fn direct(url: &str) -> ScimTarget {
    direct_with(url, "")
}

/// The connector with these settings too (TOML lines), reaching the server directly.
pub fn direct_with(url: &str, extra: &str) -> ScimTarget {
    let config: ScimConfig =
        toml::from_str(&format!("url = \"{url}\"\ntoken_file = \"unused\"\n{extra}")).expect("config");
    ScimTarget::new(config, connector_http::Auth::Bearer(Secret::new(TOKEN))).expect("scim target")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(3).enable_all().build().expect("runtime")
}

/// A user made on the platform by hand: no externalId.
async fn make_user(target: &ScimTarget, username: &str, given: &str, family: &str) -> String {
    let account = AccountSpec {
        id: "(by hand)".into(),
        username: username.into(),
        given_name: given.into(),
        family_name: family.into(),
        display_name: format!("{given} {family}").into(),
        roles: [Role::Student].into_iter().collect(),
        schools: Default::default(),
        enabled: true,
        protected: false,
        attrs: [("displayName".to_string(), connector_api::Value::text(format!("{given} {family}")))].into(),
        placement: None,
        initial_password: None,
    };
    match target.apply(&TargetOp::Create { account }).await.expect("make a user by hand") {
        connector_api::OpOutcome::Created { key, .. } => key,
        other => panic!("{other:?}"),
    }
}

struct ScimRig {
    env: Env,
    proxy: FaultProxy,
    target: ScimTarget,
}

impl Rig for ScimRig {
    type T = ScimTarget;

    fn target(&self) -> &ScimTarget {
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
        // Off the suite's runtime: a runtime of its own in a thread of its own.
        let url = self.target.config().url.clone();
        std::thread::scope(|s| {
            s.spawn(|| rt().block_on(async { make_user(&direct(&url), username, given, family).await }))
                .join()
                .expect("make the hand-made user");
        });
    }

    fn grace_days(&self) -> u32 {
        10
    }
}

/// The address of a tenant's server, for the proxy.
fn server_addr() -> std::net::SocketAddr {
    let hostport = server().trim_start_matches("http://");
    hostport.parse().expect("server address")
}

#[test]
fn the_scim_target_passes_the_conformance_suite() {
    conformance("");
}

/// The same with creates sent together in `/Bulk` requests (the engine's batches).
#[test]
fn the_scim_target_passes_the_conformance_suite_with_bulk_creates() {
    conformance("bulk_max_operations = 5\n");
}

fn conformance(extra: &str) {
    let rt = rt();
    let proxy = rt.block_on(FaultProxy::start(server_addr(), Protocol::Http)).expect("proxy");
    let url = tenant();
    let through_proxy = url.replace(server().trim_start_matches("http://"), &proxy.addr().to_string());
    let settings = format!("max_in_flight = 2\nmax_wait_secs = 20\n{extra}\n[targets.lms.policy.groups]\n");
    let table = scim_table("lms", &through_proxy, &settings);
    let env = env_with_targets(&format!(
        "[naming]\non_name_change = \"rename\"\n\n[lifecycle]\ndelete_students_after_days = 10\n\n{table}"
    ));
    // The connector that looks declares what the engine's does (the same batches).
    let mut rig = ScimRig { env, proxy, target: direct_with(&url, extra) };
    let reports = rt.block_on(testkit::run(&mut rig));
    assert_eq!(reports.len(), 13, "{reports:#?}");
    testkit::assert_passed(&reports);
}

/// Every user on a SCIM tenant: userName → (externalId, active).
fn users(url: &str) -> std::collections::BTreeMap<String, (Option<String>, bool)> {
    let target = direct(url);
    let accounts = rt().block_on(target.observe(&["externalId".to_string()])).expect("observe");
    accounts
        .into_iter()
        .map(|a| {
            let owner = a.attrs.texts("externalId").next().map(str::to_string);
            (a.username().unwrap_or_default().to_string(), (owner, !a.disabled))
        })
        .collect()
}

#[test]
fn ldap_and_scim_side_by_side_hold_the_same_usernames() {
    let url = tenant();
    let env = Env::new();
    let ldap = format!(
        "[targets.directory]\ntype = \"ldap\"\nurl = \"{}\"\nbind_dn = \"cn=admin,dc=example,dc=org\"\n\
         bind_password_file = \"ldap.secret\"\nbase_dn = \"{BASE}\"\n",
        env.slapd.url()
    );
    let scim = scim_table(
        "lms",
        &url,
        "user_name = \"{{ username }}@skola.example.org\"\n\n[targets.lms.policy.attributes]\n\
         emails = [{ value = \"{{ username }}@skola.example.org\", type = \"work\", primary = true }]\n",
    );
    std::fs::write(env.path("scim.token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(
        env.path("enid.toml"),
        format!(
            "[state]\npath = \"state.db\"\n\n[sources.sis]\ntype = \"csv\"\npath = \"persons.csv\"\n\n{ldap}\n{scim}"
        ),
    )
    .unwrap();
    let rows: Vec<String> =
        (0..20).map(|i| row(&format!("P{i}"), "Kim", &format!("Lund{i}"), "", "student", "S1", "7A")).collect();
    let mut rows = rows;
    rows.push(row("P20", "Åsa", "Öberg", "", "staff", "S1", ""));
    rows.push(row("P21", "Åsa", "Öberg", "", "staff", "S2", ""));
    csv_rows(&env, &rows);
    env.enid(&["apply", "--yes"]).ok();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{}", plan["operations"]);

    let on_ldap: std::collections::BTreeMap<String, String> =
        env.people().into_iter().map(|(u, e)| (u, e.one("employeeNumber"))).collect();
    let on_scim = users(&url);
    let scim_names: std::collections::BTreeMap<String, String> = on_scim
        .iter()
        .map(|(u, (owner, _))| {
            (u.trim_end_matches("@skola.example.org").to_string(), owner.clone().unwrap_or_default())
        })
        .collect();
    assert_eq!(on_ldap.len(), 22);
    assert_eq!(on_ldap, scim_names, "the same usernames, each with the same enid id, on both");
    assert!(on_scim.keys().all(|u| u.ends_with("@skola.example.org")), "{on_scim:?}");
    assert!(on_ldap.contains_key("asa.oberg") && on_ldap.contains_key("asa.oberg2"), "{on_ldap:?}");
    // The e-mail is a typed, complex value: primary is a boolean on the server.
    let target = direct(&url);
    let emails = rt().block_on(target.observe(&["emails".to_string()])).unwrap();
    let one = emails.iter().find(|a| a.username() == Some("asa.oberg@skola.example.org")).unwrap();
    let json = serde_json::to_string(&*one.attrs.get("emails").unwrap()).unwrap();
    assert_eq!(json, r#"[{"primary":true,"type":["work"],"value":["asa.oberg@skola.example.org"]}]"#);

    // A leaver is disabled on both: LDAP by the move, SCIM by active = false.
    rows.retain(|r| !r.starts_with("P3,"));
    csv_rows(&env, &rows);
    env.enid(&["apply", "--yes"]).ok();
    assert!(!users(&url)["kim.lund3@skola.example.org"].1, "inactive on SCIM");
    assert!(env.people()["kim.lund3"].dn.contains("ou=disabled"), "moved to the disabled OU on LDAP");
}

#[test]
fn a_user_made_before_enid_blocks_its_namesake_unless_adoption_by_username_is_on() {
    let url = tenant();
    let target = direct(&url);
    let hand = rt().block_on(make_user(&target, "anna.berg", "Anna", "Berg"));
    let env = env_with_targets(&scim_table("lms", &url, ""));
    csv_rows(&env, &[row("1", "Anna", "Berg", "", "student", "S1", ""), row("2", "Bo", "Ek", "", "student", "S1", "")]);
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 1, "only Bo: {}", plan["operations"]);
    let blocked = plan["blocked"].to_string();
    assert!(blocked.contains("policy.correlate") && blocked.contains("--not-theirs"), "{blocked}");
    env.enid(&["apply", "--yes"]).ok();
    let before = users(&url);
    assert_eq!(before["anna.berg"], (None, true), "left alone");
    assert!(!before.contains_key("anna.berg2"), "no second account under another name: {before:?}");

    // The operator says the platform's accounts are the persons': claimed, given the enid id.
    let config = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    std::fs::write(env.path("enid.toml"), config.replace("token_file", "adopt_by_username = true\ntoken_file"))
        .unwrap();
    // The old switch is read as the username rule, with a deprecation note; the claim is an
    // operation of the plan.
    let plan = env.enid(&["plan"]).ok();
    assert!(
        plan.stdout.contains("claim (1)") && plan.stdout.contains("holds this person's username"),
        "{}",
        plan.stdout
    );
    assert!(plan.stderr.contains("adopt_by_username is deprecated"), "{}", plan.stderr);
    env.enid(&["apply", "--yes"]).ok();
    let after = users(&url);
    let anna = &after["anna.berg"];
    assert!(anna.0.as_deref().is_some_and(|id| id.len() == 36), "the enid id written: {anna:?}");
    let accounts = rt().block_on(target.observe(&[])).unwrap();
    assert_eq!(accounts.iter().find(|a| a.username() == Some("anna.berg")).map(|a| a.key().to_owned()), Some(hand));
    // Enid's from now on: the next run brings it in line with the sources, then nothing changes.
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["update"], 1, "{}", plan["operations"]);
    env.enid(&["apply", "--yes"]).ok();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{}", plan["operations"]);
    // A user carrying someone else's externalId is never claimed.
    let other = rt().block_on(async {
        let account = AccountSpec {
            id: "x".into(),
            username: "cy.lind".into(),
            given_name: "Cy".into(),
            family_name: "Lind".into(),
            display_name: "Cy Lind".into(),
            roles: [Role::Student].into_iter().collect(),
            schools: Default::default(),
            enabled: true,
            protected: false,
            attrs: [("externalId".to_string(), connector_api::Value::text("HR-4711"))].into(),
            placement: None,
            initial_password: None,
        };
        target.apply(&TargetOp::Create { account }).await.unwrap()
    });
    let _ = other;
    csv_rows(
        &env,
        &[
            row("1", "Anna", "Berg", "", "student", "S1", ""),
            row("2", "Bo", "Ek", "", "student", "S1", ""),
            row("3", "Cy", "Lind", "", "student", "S1", ""),
        ],
    );
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["claim"].as_u64().unwrap_or(0), 0, "{}", plan["operations"]);
    // Someone else's marker on an account with her username: she is blocked, not given cy.lind2.
    assert_eq!(plan["summary"]["create"], 0, "{}", plan["operations"]);
    assert!(plan["blocked"].to_string().contains("externalId holds a value"), "{}", plan["blocked"]);
}

#[test]
fn a_protected_person_gets_only_the_login_attributes_on_scim() {
    let url = tenant();
    let env = env_with_targets(&scim_table(
        "lms",
        &url,
        "[targets.lms.policy.attributes]\nemails = [{ value = \"{{ username }}@x.se\", type = \"work\" }]\n",
    ));
    let header = format!("{HEADER},protection");
    std::fs::write(
        env.path("persons.csv"),
        format!("{header}\n1,Sara,Hemlig,,student,S1,7A,,,sekretessmarkering\n2,Bo,Ek,,student,S1,7A,,,\n"),
    )
    .unwrap();
    let id = env.enid(&["plan", "--save", "--json"]).ok().json()["plan_id"].as_str().unwrap().to_string();
    env.enid(&["apply", "--yes", "--plan", &id, "--accept-protected"]).ok();
    let target = direct(&url);
    let all = rt()
        .block_on(target.observe(&["name".into(), "displayName".into(), "emails".into(), "department".into()]))
        .unwrap();
    let sara = all.iter().find(|a| a.username().is_some_and(|u| u.starts_with('u'))).expect("a pseudonymous user");
    assert!(sara.attrs.is_empty(), "no name, e-mail or school: {:?}", sara.attrs);
    let bo = all.iter().find(|a| a.username() == Some("bo.ek")).unwrap();
    assert!(bo.attrs.contains_key("name") && bo.attrs.contains_key("emails"), "{:?}", bo.attrs);
    let text = format!("{all:?}");
    assert!(!text.contains("Sara") && !text.contains("Hemlig"), "{text}");
}

/// A target through the proxy, and the direct view of its tenant.
fn proxied(rt: &tokio::runtime::Runtime, extra: &str) -> (Env, FaultProxy, String) {
    let proxy = rt.block_on(FaultProxy::start(server_addr(), Protocol::Http)).expect("proxy");
    let url = tenant();
    let through = url.replace(server().trim_start_matches("http://"), &proxy.addr().to_string());
    let env = env_with_targets(&scim_table("lms", &through, extra));
    (env, proxy, url)
}

#[test]
fn scim_errors_name_the_user_the_status_and_the_servers_words() {
    let rt = rt();
    let (env, proxy, url) = proxied(&rt, "max_in_flight = 1\nmax_attempts = 3\nmax_wait_secs = 10\npage_size = 2");
    let rows: Vec<String> =
        (0..5).map(|i| row(&format!("P{i}"), "Eva", &format!("Ek{i}"), "", "student", "S1", "")).collect();
    csv_rows(&env, &rows);

    // The server refuses one create as a duplicate: that person waits, the others are made.
    proxy.answer(1, 409, None, false);
    let run = env.enid(&["apply", "--yes"]).fails();
    assert!(run.stderr.contains("HTTP 409 uniqueness") && run.stderr.contains("create user "), "{}", run.stderr);
    let id_named =
        run.stderr.split("create user ").nth(1).map(|r| r.chars().take(36).collect::<String>()).unwrap_or_default();
    assert!(
        id_named.len() == 36 && id_named.chars().filter(|c| *c == '-').count() == 4,
        "names the enid id: {}",
        run.stderr
    );
    assert_eq!(users(&url).len(), 4);
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(users(&url).len(), 5);

    // 503 with Retry-After: waited for, then done, in the same run.
    csv_rows(&env, &[rows.clone(), vec![row("P9", "Tor", "Ny", "", "student", "S1", "")]].concat());
    proxy.reset_seen();
    proxy.answer(1, 503, Some(std::time::Duration::from_secs(1)), false);
    env.enid(&["apply", "--yes"]).ok();
    let seen = proxy.seen();
    let refused = seen.iter().find(|s| s.throttled).expect("the 503 was answered");
    let retried = seen.iter().find(|s| s.write && !s.throttled && s.at > refused.at).expect("sent again");
    assert!(retried.at - refused.at >= std::time::Duration::from_secs(1), "not before Retry-After");
    assert_eq!(users(&url).len(), 6);

    // 500 on a create: not sent again (it may have arrived); the target stops for the run.
    csv_rows(
        &env,
        &[
            rows.clone(),
            vec![row("P9", "Tor", "Ny", "", "student", "S1", ""), row("P10", "Ulf", "Ny", "", "student", "S1", "")],
        ]
        .concat(),
    );
    proxy.reset_seen();
    proxy.answer(1, 500, None, false);
    let run = env.enid(&["apply", "--yes"]).fails();
    assert!(run.stderr.contains("HTTP 500"), "{}", run.stderr);
    assert_eq!(proxy.seen().iter().filter(|s| s.what.starts_with("POST")).count(), 1, "one POST, not repeated");
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(users(&url).len(), 7);

    // A listing that ends before its totalResults: the run stops before planning.
    proxy.empty_list_after(1);
    let run = env.enid(&["plan"]).fails();
    assert!(run.stderr.contains("ended after 2 of 7"), "{}", run.stderr);
    proxy.clear();

    // Reads are retried on 5xx.
    proxy.answer(2, 502, None, true);
    env.enid(&["plan"]).ok();

    // No answer in time: the target is unavailable for the run, and says so.
    let config = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    std::fs::write(env.path("enid.toml"), config.replace("max_attempts = 3", "max_attempts = 1\ntimeout_secs = 1"))
        .unwrap();
    proxy.delay(std::time::Duration::from_millis(1500));
    let run = env.enid(&["plan"]).fails();
    assert!(run.stderr.contains("target unavailable") && run.stderr.contains("no answer"), "{}", run.stderr);
    proxy.clear();

    // A wrong token: authentication, with the fix.
    std::fs::write(env.path("scim.token"), "wrong\n").unwrap();
    let run = env.enid(&["plan"]).fails();
    assert!(run.stderr.contains("authentication failed") && run.stderr.contains("HTTP 401"), "{}", run.stderr);
    assert!(!run.stderr.contains("wrong"), "the token is never shown: {}", run.stderr);
}

/// Changes go with `If-Match`: a user changed on the platform since enid read it is not
/// overwritten blindly; the next read takes the new version.
#[test]
fn a_change_made_since_the_read_is_refused_by_its_version_not_overwritten() {
    let rt = rt();
    let url = tenant();
    let (a, b) = (direct(&url), direct(&url));
    rt.block_on(async {
        let key = make_user(&a, "eva.ek", "Eva", "Ek").await;
        let attrs = vec!["displayName".to_string()];
        a.observe(&attrs).await.unwrap();
        b.observe(&attrs).await.unwrap();
        let change = |name: &str| TargetOp::Update {
            key: key.clone(),
            changes: vec![connector_api::AttrChange {
                attr: "displayName".into(),
                values: connector_api::Value::text(name),
            }],
        };
        b.apply(&change("Eva Ek (by hand)")).await.unwrap();
        let e = a.apply(&change("Eva Ek")).await.unwrap_err();
        assert_eq!(e.reject_kind(), Some(connector_api::RejectKind::Other), "{e}");
        assert!(e.to_string().contains("HTTP 412") && e.to_string().contains("since it was read"), "{e}");
        let now = a.observe(&attrs).await.unwrap();
        assert_eq!(now[0].attrs.get("displayName").as_deref(), Some(&connector_api::Value::text("Eva Ek (by hand)")));
        a.apply(&change("Eva Ek")).await.unwrap();
        assert_eq!(
            a.observe(&attrs).await.unwrap()[0].attrs.get("displayName").as_deref(),
            Some(&connector_api::Value::text("Eva Ek"))
        );
    });
}

#[test]
fn creates_go_in_bulk_requests_and_a_failed_bulk_converges() {
    let rt = rt();
    let (env, proxy, url) = proxied(&rt, "bulk_max_operations = 5\nmax_in_flight = 1\nmax_attempts = 1");
    let rows: Vec<String> =
        (0..12).map(|i| row(&format!("P{i}"), "Bo", &format!("Bulk{i}"), "", "student", "S1", "")).collect();
    csv_rows(&env, &rows);
    proxy.reset_seen();
    env.enid(&["apply", "--yes"]).ok();
    let posts: Vec<String> = proxy.seen().into_iter().filter(|s| s.what.starts_with("POST")).map(|s| s.what).collect();
    assert_eq!(posts.len(), 3, "12 creates in bulks of at most 5: {posts:?}");
    assert!(posts.iter().all(|p| p.contains("/Bulk")), "{posts:?}");
    assert_eq!(users(&url).len(), 12);
    // A bulk the server refuses as a whole: none of its creates is made, the run says so, and
    // the next run makes them.
    let more: Vec<String> =
        (12..20).map(|i| row(&format!("P{i}"), "Bo", &format!("Bulk{i}"), "", "student", "S1", "")).collect();
    csv_rows(&env, &[rows.clone(), more].concat());
    proxy.answer(1, 500, None, false);
    let run = env.enid(&["apply", "--yes"]).fails();
    assert!(run.stderr.contains("HTTP 500"), "{}", run.stderr);
    env.enid(&["apply", "--yes"]).ok();
    let all = users(&url);
    assert_eq!(all.len(), 20, "{:?}", all.keys().collect::<Vec<_>>());
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{}", plan["operations"]);
}
