//! Issue 16: the HTTP API and its tokens. Tokens through the CLI (printed once, only their hash
//! kept); the API served by `enid run` as a subprocess against a real slapd, called over TCP.

use crate::harness::*;

/// `enid token add` prints the token alone on stdout, once; the state keeps its SHA-256 and
/// never the token; `list` shows no token; revoked, the name stays taken.
#[test]
fn a_token_is_printed_once_and_only_its_hash_is_kept() {
    let env = Env::new();
    env.csv(&["1,Anna,Berg,,student,S1,7A,,"]);
    let add = env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok();
    let token = add.stdout.trim_end_matches('\n');
    assert_eq!(add.stdout.lines().count(), 1, "alone on stdout: {:?}", add.stdout);
    assert!(token.starts_with("enid_") && token.len() == 69, "{token:?}");
    assert!(!add.stderr.contains(token), "the token is not repeated on stderr");
    let hash = env.sql_value("SELECT hash FROM api_tokens WHERE name = 'lisa'");
    assert_eq!(hash.len(), 64);
    let dump = std::fs::read(env.path("state.db")).unwrap();
    assert!(!String::from_utf8_lossy(&dump).contains(&token[5..]), "the token itself is in the state");
    let list = env.enid(&["token", "list"]).ok().stdout;
    assert!(list.contains("lisa") && list.contains("school_admin") && list.contains("S1"), "{list}");
    assert!(!list.contains(&token[5..]) && !list.contains(&hash), "{list}");
    // A second token of the same name, a school admin without schools, an admin with one: refused.
    env.enid(&["token", "add", "lisa", "--role", "admin"]).fails();
    env.enid(&["token", "add", "bo", "--role", "school_admin"]).fails();
    env.enid(&["token", "add", "bo", "--role", "admin", "--school", "S1"]).fails();
    env.enid(&["token", "revoke", "lisa"]).ok();
    assert!(env.enid(&["token", "list"]).ok().stdout.contains("revoked"));
    env.enid(&["token", "revoke", "lisa"]).fails();
    env.enid(&["token", "add", "lisa", "--role", "admin"]).fails();
}

pub(crate) const HEADER_P: &str =
    "person_id,given_name,family_name,civic_no,role,school_unit,groups,start_date,end_date,protection";

/// `enid run` with `[server]`, killed when the test ends however it ends.
pub(crate) struct Service {
    pub(crate) child: std::process::Child,
    pub(crate) port: u16,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Starts the service on a free port and waits until `/healthz` answers.
    pub(crate) fn start(env: &Env) -> Service {
        let service = Service::spawn(env, "");
        service.wait_up(env, || service.call("GET", "/healthz", None, None).0 == 200);
        service
    }

    /// Starts the service with `extra` lines in `[server]`; does not wait.
    pub(crate) fn spawn(env: &Env, extra: &str) -> Service {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = std::fs::read_to_string(env.path("enid.toml")).unwrap();
        std::fs::write(env.path("enid.toml"), format!("{config}\n[server]\nlisten = \"127.0.0.1:{port}\"\n{extra}\n"))
            .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_enid"))
            .arg("--config")
            .arg(env.path("enid.toml"))
            .arg("run")
            .env_remove("ENID_CONFIG")
            .env("ENID_LOG", "debug")
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(env.path("service.out")).unwrap())
            .stderr(std::fs::File::create(env.path("service.log")).unwrap())
            .spawn()
            .expect("start enid run");
        Service { child, port }
    }

    /// Waits until `up` says the API answers.
    pub(crate) fn wait_up(&self, env: &Env, up: impl Fn() -> bool) {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < end {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() && up() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("the API did not come up: {}", std::fs::read_to_string(env.path("service.log")).unwrap_or_default());
    }

    /// One HTTP/1.1 request; (status, body).
    pub(crate) fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let body = body.unwrap_or("");
        if method == "POST" {
            req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        // axum answers small bodies with a Content-Length; a chunked one is unwrapped here.
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            unchunk(rest)
        } else {
            rest.to_string()
        };
        (status, body)
    }

    pub(crate) fn json(&self, method: &str, path: &str, token: &str, body: Option<&str>) -> serde_json::Value {
        let (status, text) = self.call(method, path, Some(token), body);
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
    }
}

fn unchunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Anna (source key = her civic number) and a protected person at S1, Bo at S2, applied by the
/// CLI (the protected person's account with approval); then the service with its API.
fn two_schools() -> (Env, String) {
    let env = Env::new();
    let anna = pnr(1);
    std::fs::write(
        env.path("persons.csv"),
        format!(
            "{HEADER_P}\n{anna},Anna,Berg,{anna},student,S1,7A,,,\n2,Bo,Ek,{},student,S2,8B,,,\n3,Hemlig,Gömdsson,{},student,S1,7A,,,Skyddad folkbokföring\n",
            pnr(2),
            pnr(3)
        ),
    )
    .unwrap();
    env.enid(&["plan", "--save"]).ok();
    let id = env.enid(&["plan", "--json"]).ok().json()["plan_id"].as_str().unwrap().to_string();
    env.enid(&["apply", "--plan", &id, "--accept-protected", "--yes"]).ok();
    assert_eq!(env.people().len(), 3);
    (env, anna)
}

/// A school admin sees their own school's persons and log rows only: another school's person is
/// 404 exactly as no one; no token, an unknown or a revoked one is 401.
#[test]
fn a_school_admin_sees_only_their_school_and_a_revoked_token_opens_nothing() {
    let (env, _) = two_schools();
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let lisa =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    let bo_id = env.sql_value("SELECT id FROM identities WHERE username = 'bo.ek'");
    let api = Service::start(&env);

    assert_eq!(api.call("GET", "/api/v1/runs", None, None).0, 401);
    assert_eq!(api.call("GET", "/api/v1/runs", Some("enid_not-a-token"), None).0, 401);
    assert_eq!(api.json("GET", "/api/v1/persons/bo.ek", &admin, None)["id"], bo_id.as_str());

    let anna = api.json("GET", "/api/v1/persons/anna.berg", &lisa, None);
    assert_eq!(anna["username"], "anna.berg");
    let nobody = api.call("GET", "/api/v1/persons/no.such.person", Some(&lisa), None);
    assert_eq!(nobody.0, 404);
    for other in ["/api/v1/persons/bo.ek".to_string(), format!("/api/v1/persons/{bo_id}")] {
        assert_eq!(api.call("GET", &other, Some(&lisa), None), nobody, "{other}: another school's person is no one");
    }
    assert_eq!(api.call("POST", "/api/v1/persons/lookup", Some(&lisa), Some(r#"{"key":"2"}"#)), nobody);
    assert_eq!(api.call("GET", "/api/v1/log?person=bo.ek", Some(&lisa), None).0, 404);

    let all = api.json("GET", "/api/v1/log", &admin, None);
    assert!(all["rows"].as_array().unwrap().iter().any(|r| r["username"] == "bo.ek"), "{all}");
    let mine = api.json("GET", "/api/v1/log", &lisa, None);
    let rows = mine["rows"].as_array().unwrap();
    assert!(!rows.is_empty() && rows.iter().any(|r| r["username"] == "anna.berg"), "{mine}");
    assert!(rows.iter().all(|r| r["username"] != "bo.ek" && r["identity_id"] != bo_id.as_str()), "{mine}");
    // The cursor: a page of one, then the page before it.
    let page = api.json("GET", "/api/v1/log?limit=1", &admin, None);
    let before = page["next_before"].as_i64().expect("a cursor");
    let older = api.json("GET", &format!("/api/v1/log?limit=1&before={before}"), &admin, None);
    assert!(older["rows"][0]["id"].as_i64().unwrap() < before, "{older}");
    // Runs: the admin's include the message, each has its counts.
    let runs = api.json("GET", "/api/v1/runs", &admin, None);
    let id = runs[0]["id"].as_i64().unwrap();
    assert_eq!(api.json("GET", &format!("/api/v1/runs/{id}"), &admin, None)["id"], id);
    assert_eq!(api.call("GET", "/api/v1/runs/999999", Some(&admin), None).0, 404);
    // Plans and metrics are an admin's.
    assert_eq!(api.call("POST", "/api/v1/plans", Some(&lisa), None).0, 403);
    assert_eq!(api.call("GET", "/metrics", Some(&lisa), None).0, 403);
    assert_eq!(api.call("GET", "/metrics", None, None).0, 401);
    let (status, metrics) = api.call("GET", "/metrics", Some(&admin), None);
    assert_eq!(status, 200, "{metrics}");
    for line in [
        "enid_runs{result=\"ok\"} 1",
        "enid_operations{target=\"directory\",action=\"create\",result=\"ok\"} 3",
        "enid_last_success_timestamp_seconds{target=\"directory\"}",
        "enid_last_success_timestamp_seconds{source=\"sis\"}",
        "enid_held_operations",
        "enid_last_run_duration_seconds",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    let (status, plan) = api.call("POST", "/api/v1/plans", Some(&admin), None);
    assert_eq!(status, 201, "{plan}");
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let plan_id = plan["plan_id"].as_str().expect("a plan id");
    let saved = api.json("GET", &format!("/api/v1/plans/{plan_id}"), &admin, None);
    assert_eq!(saved["plan_id"], plan_id);
    assert_eq!(api.call("GET", "/api/v1/plans/no-such-plan", Some(&admin), None).0, 404);

    env.enid(&["token", "revoke", "lisa"]).ok();
    assert_eq!(api.call("GET", "/api/v1/persons/anna.berg", Some(&lisa), None).0, 401);
    assert_eq!(api.call("GET", "/api/v1/runs", Some(&lisa), None).0, 401);
}

/// A civic number goes in a body, finds the person, and reaches no log line (the access log
/// names the route's template); in a URL it is refused. A protected person appears by enid id
/// only, and a search by their source key or name finds no one.
#[test]
fn a_lookup_by_civic_number_finds_the_person_and_logs_no_number_and_protected_persons_are_ids() {
    let (env, anna) = two_schools();
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let anna_id = env.sql_value("SELECT id FROM identities WHERE username = 'anna.berg'");
    let hidden = env.sql_value("SELECT DISTINCT identity_id FROM source_records WHERE protected = 1");
    let api = Service::start(&env);

    let found = api.json("POST", "/api/v1/persons/lookup", &admin, Some(&format!(r#"{{"key":"{anna}"}}"#)));
    assert_eq!(found["id"], anna_id.as_str());
    let dashed = format!("{}-{}", &anna[..8], &anna[8..]);
    let (status, text) = api.call("GET", &format!("/api/v1/persons/{anna}"), Some(&admin), None);
    assert_eq!(status, 400, "{text}");
    assert_eq!(api.call("GET", &format!("/api/v1/persons/{dashed}"), Some(&admin), None).0, 400);
    let bad = api.call("POST", "/api/v1/persons/lookup", Some(&admin), Some(&format!(r#"{{"key":{anna}}}"#)));
    assert_eq!(bad.0, 400);
    assert!(!bad.1.contains(&anna[6..]), "a malformed body is not echoed: {}", bad.1);

    let person = api.call("GET", &format!("/api/v1/persons/{hidden}"), Some(&admin), None);
    assert_eq!(person.0, 200, "{}", person.1);
    let log = api.call("GET", "/api/v1/log", Some(&admin), None).1;
    assert!(log.contains(&hidden), "{log}");
    for text in [&person.1, &log] {
        for secret in ["Hemlig", "Gömdsson", "hemlig", &pnr(3)[6..]] {
            assert!(!text.contains(secret), "{secret:?} shown:\n{text}");
        }
    }
    let pseudonym = env.sql_value(&format!("SELECT username FROM identities WHERE id = '{hidden}'"));
    assert_eq!(api.call("GET", "/api/v1/log?person=3", Some(&admin), None).0, 404, "by source key: no one");
    let theirs = api.json("GET", &format!("/api/v1/log?person={hidden}"), &admin, None);
    assert!(!theirs["rows"].as_array().unwrap().is_empty(), "{theirs}");
    assert!(!log.contains(&pseudonym), "the pseudonym is not shown beside the id: {log}");
    // (The pseudonym is the account's username: explain takes it as it takes the enid id.)
    for key in ["3", "hemlig.gomdsson", "Hemlig"] {
        let body = format!(r#"{{"key":"{key}"}}"#);
        assert_eq!(api.call("POST", "/api/v1/persons/lookup", Some(&admin), Some(&body)).0, 404, "{key}");
    }

    drop(api);
    let service_log = std::fs::read_to_string(env.path("service.log")).unwrap();
    assert!(service_log.contains("HTTP request"), "the access log: {service_log}");
    assert!(service_log.contains("/api/v1/persons/lookup"), "{service_log}");
    for n in [&anna, &dashed, &anna[2..].to_string(), &anna[6..].to_string()] {
        assert!(!service_log.contains(n.as_str()), "{n} in the service's log:\n{service_log}");
    }
    assert!(!service_log.contains(&admin), "the token in the log");
}

/// Decisions through the API record the token's name: a held rename (a school admin approves
/// nothing without `school_admins_approve`) and a conflict. The CLI records `local:USER`.
#[test]
fn decisions_through_the_api_record_the_tokens_name() {
    let env = Env::with_config("\n[naming]\non_name_change = \"hold\"\n");
    env.csv(&[
        &row("1", "Anna", "Berg", "", "student", "S1", ""),
        &row("2", "Cia", "Dahl", "19821105-9954", "student", "S1", ""),
        &row("3", "Cia", "Dahl", "19821105-9954", "student", "S1", ""),
        &row("4", "Dan", "Ek", &pnr(7), "student", "S1", ""),
        &row("5", "Dan", "Ek", &pnr(7), "student", "S1", ""),
    ]);
    env.apply();
    env.csv(&[
        &row("1", "Anna", "Lind", "", "student", "S1", ""),
        &row("2", "Cia", "Dahl", "19821105-9954", "student", "S1", ""),
        &row("3", "Cia", "Dahl", "19821105-9954", "student", "S1", ""),
        &row("4", "Dan", "Ek", &pnr(7), "student", "S1", ""),
        &row("5", "Dan", "Ek", &pnr(7), "student", "S1", ""),
    ]);
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let lisa =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    let api = Service::start(&env);

    let held = api.json("GET", "/api/v1/renames", &lisa, None);
    assert_eq!(held[0]["new"], "anna.lind", "{held}");
    assert_eq!(api.call("POST", "/api/v1/renames/anna.berg/approve", Some(&lisa), None).0, 403);
    assert_eq!(api.call("GET", "/api/v1/conflicts", Some(&lisa), None).0, 403);
    assert_eq!(api.json("POST", "/api/v1/renames/anna.berg/approve", &admin, None)["new"], "anna.lind");
    assert_eq!(env.sql_value("SELECT approved_by FROM rename_approvals"), "ops");

    let conflicts = api.json("GET", "/api/v1/conflicts", &admin, None);
    let (id, other) =
        (conflicts[0]["id"].as_str().unwrap().to_string(), conflicts[1]["id"].as_str().unwrap().to_string());
    assert!(!conflicts.to_string().contains("9954"), "{conflicts}");
    let path = format!("/api/v1/conflicts/{id}/decision");
    assert_eq!(api.call("POST", &path, Some(&admin), Some(r#"{"decision":"maybe"}"#)).0, 400);
    api.json("POST", &path, &admin, Some(r#"{"decision":"separate"}"#));
    assert_eq!(env.sql_value(&format!("SELECT decided_by FROM conflict_decisions WHERE conflict_id = '{id}'")), "ops");
    drop(api);
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_enid"))
        .arg("--config")
        .arg(env.path("enid.toml"))
        .args(["conflicts", "resolve", &other, "--merge"])
        .env_remove("ENID_CONFIG")
        .env_remove("SUDO_USER")
        .env("USER", "kim")
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let by = env.sql_value(&format!("SELECT decided_by FROM conflict_decisions WHERE conflict_id = '{other}'"));
    assert_eq!(by, "local:kim");
}

/// A family name no earlier run against the shared DC used (usernames are unique in the domain).
pub(crate) fn unique_family() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let mut n = nanos / 1000 + u128::from(std::process::id());
    let mut name = String::from("Q");
    for _ in 0..6 {
        name.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
    }
    name
}

/// First passwords through the API, against the shared Samba DC: a school admin claims their own
/// unit's only; a claim shows them and forgets nothing; a retried claim while the first holds
/// them shows none and loses none; given back they come again; confirmed they are forgotten.
#[test]
fn first_passwords_are_claimed_shown_and_forgotten_only_on_confirm() {
    use crate::ad::{ad_table, env_with, test_ou};
    let ou = test_ou();
    let env = env_with(&ad_table("ldaps://127.0.0.1:636", &ou, "initial_password = \"generated\"\n"));
    let fam = unique_family();
    csv_rows(
        &env,
        &[
            row("1", "Ada", &fam, "", "student", "Norr", ""),
            row("2", "Bo", &fam, "", "student", "Norr", ""),
            row("3", "Cia", &fam, "", "student", "Syd", ""),
        ],
    );
    env.enid(&["apply", "--yes"]).ok();
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let lisa = env
        .enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "Norr"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let api = Service::start(&env);
    let kept = || env.sql_value("SELECT CAST(count(*) AS TEXT) FROM passwords WHERE length(sealed) > 0");
    assert_eq!(kept(), "3");

    let claim = |token: &str, body: &str| api.call("POST", "/api/v1/passwords/claims", Some(token), Some(body));
    assert_eq!(claim(&lisa, r#"{"school":"Syd"}"#).0, 404, "another school's");
    assert_eq!(claim(&lisa, "{}").0, 400);
    assert_eq!(claim(&lisa, r#"{"school":"Norr","protected":true}"#).0, 403);
    let (status, first) = claim(&lisa, r#"{"school":"Norr"}"#);
    assert_eq!(status, 201, "{first}");
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    let users: Vec<&str> =
        first["passwords"].as_array().unwrap().iter().map(|p| p["username"].as_str().unwrap()).collect();
    assert_eq!(users.len(), 2, "{first}");
    assert!(users.iter().all(|u| u.starts_with("ada.") || u.starts_with("bo.")), "{users:?}");
    let password = first["passwords"][0]["password"].as_str().unwrap().to_string();
    // The answer got lost and the client asks again: nothing shown twice, nothing forgotten.
    let (_, retry) = claim(&lisa, r#"{"school":"Norr"}"#);
    let retry: serde_json::Value = serde_json::from_str(&retry).unwrap();
    assert_eq!((retry["passwords"].as_array().unwrap().len(), retry["held_elsewhere"].as_u64()), (0, Some(2)));
    assert_eq!(kept(), "3");
    // Given back, the next claim shows them again; confirmed, they are forgotten.
    let id = first["claim"].as_str().unwrap();
    assert_eq!(api.json("DELETE", &format!("/api/v1/passwords/claims/{id}"), &lisa, None)["given_back"], 2);
    let (_, again) = claim(&lisa, r#"{"school":"Norr"}"#);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["passwords"].as_array().unwrap().len(), 2, "{again}");
    let id = again["claim"].as_str().unwrap();
    // The answer was lost: the claim's passwords shown again, as often as asked, forgetting none.
    for _ in 0..2 {
        let shown = api.json("GET", &format!("/api/v1/passwords/claims/{id}"), &lisa, None);
        assert_eq!(shown["passwords"], again["passwords"], "{shown}");
    }
    assert_eq!(kept(), "3");
    assert_eq!(api.json("POST", &format!("/api/v1/passwords/claims/{id}/confirm"), &lisa, None)["forgotten"], 2);
    let after = api.json("GET", &format!("/api/v1/passwords/claims/{id}"), &lisa, None);
    assert_eq!(after["passwords"], serde_json::json!([]), "a confirmed claim holds nothing");
    assert_eq!(kept(), "1", "Syd's is kept");
    let (_, empty) = claim(&admin, "{}");
    let empty: serde_json::Value = serde_json::from_str(&empty).unwrap();
    assert_eq!(empty["passwords"].as_array().unwrap().len(), 1, "an admin's claim of every unit: {empty}");
    drop(api);
    let log = std::fs::read_to_string(env.path("service.log")).unwrap();
    assert!(!log.contains(&password), "a password in the service's log");
}

/// `[server] tls_cert_file` and `tls_key_file`: the API speaks HTTPS (verified by curl against
/// the test CA), and plain HTTP gets no answer. Half a TLS setting is a config error.
#[test]
fn the_api_serves_https_with_its_own_certificate() {
    let env = Env::new();
    env.csv(&["1,Anna,Berg,,student,S1,7A,,"]);
    let mtls = repo().join("connectors/connector-http/tests/fixtures/mtls");
    let token = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let half = format!("tls_cert_file = \"{}\"", mtls.join("server.pem").display());
    let good = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    std::fs::write(env.path("enid.toml"), format!("{good}\n[server]\nlisten = \"127.0.0.1:1\"\n{half}\n")).unwrap();
    let refused = env.enid(&["check"]).fails();
    assert!(refused.stderr.contains("tls_cert_file is set without tls_key_file"), "{}", refused.stderr);
    std::fs::write(env.path("enid.toml"), &good).unwrap();

    let api = Service::spawn(&env, &format!("{half}\ntls_key_file = \"{}\"", mtls.join("server.key").display()));
    let curl = |path: &str, token: Option<&str>| {
        let mut c = std::process::Command::new("curl");
        c.args(["-sS", "--max-time", "30", "--cacert"]).arg(mtls.join("ca.pem"));
        c.args(["-o", "-", "-w", "\n%{http_code}"]);
        if let Some(t) = token {
            c.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        let out = c.arg(format!("https://127.0.0.1:{}{path}", api.port)).output().expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    api.wait_up(&env, || curl("/healthz", None).ends_with("200"));
    let runs = curl("/api/v1/runs", Some(&token));
    assert!(runs.ends_with("200"), "{runs}");
    assert!(curl("/api/v1/runs", None).ends_with("401"));
    let (status, _) = api.call("GET", "/healthz", None, None);
    assert_ne!(status, 200, "plain HTTP is not served");
}

/// A `[server] listen` address that cannot be bound stops the start with the key named, before
/// the service says it is ready: no service runs without the API it was configured with.
#[test]
fn an_address_in_use_stops_the_start() {
    let env = Env::new();
    env.csv(&["1,Anna,Berg,,student,S1,7A,,"]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    std::fs::write(env.path("enid.toml"), format!("{config}\n[server]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enid"))
        .arg("--config")
        .arg(env.path("enid.toml"))
        .arg("run")
        .env_remove("ENID_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run enid run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("[server] listen"), "{err}");
    drop(taken);
}

/// Approvals through the API: the service only plans; a school admin (with
/// `school_admins_approve`) approves their school's operations of the planned run, which starts a
/// run at once that carries out those only; an admin approves the rest. `/healthz` says degraded
/// while the export is gone.
#[test]
fn a_planned_run_is_approved_through_the_api_a_school_at_a_time() {
    let env = Env::new();
    std::fs::write(
        env.path("persons.csv"),
        format!("{HEADER_P}\n1,Anna,Berg,{},student,S1,7A,,,\n2,Bo,Ek,{},student,S2,8B,,,\n", pnr(1), pnr(2)),
    )
    .unwrap();
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let lisa =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    let api = Service::spawn(&env, "school_admins_approve = true");
    api.wait_up(&env, || api.call("GET", "/healthz", None, None).0 == 200);
    let planned = |api: &Service| {
        let runs = api.json("GET", "/api/v1/runs", &admin, None);
        runs.as_array().unwrap().iter().rev().find(|r| r["status"] == "planned").cloned()
    };
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let run = loop {
        if let Some(r) = planned(&api) {
            break r;
        }
        assert!(std::time::Instant::now() < end, "no planned run");
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(env.people().is_empty(), "the service only plans");
    let id = run["id"].as_i64().unwrap();
    let path = format!("/api/v1/runs/{id}/approve");
    let (status, _) = api.call("POST", &path, Some(&lisa), Some(r#"{"accept": ["shrink"]}"#));
    assert_eq!(status, 403, "a school admin accepts no guard");
    let approved = api.json("POST", &path, &lisa, Some("{}"));
    assert_eq!(approved["approved"], 1, "only Anna's create, of S1: {approved}");
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !f() {
            assert!(std::time::Instant::now() < end, "timed out: {what}");
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    };
    wait("Anna's account", &|| env.people().contains_key("anna.berg"));
    assert!(!env.people().contains_key("bo.ek"), "S2 was not approved");
    let approvals = env.sql_value("SELECT group_concat(approved_by) FROM approvals");
    assert_eq!(approvals, "lisa", "who approved");
    // The admin approves the newest planned run: Bo.
    wait("a new planned run", &|| planned(&api).is_some_and(|r| r["id"].as_i64() > Some(id)));
    let next = planned(&api).unwrap()["id"].as_i64().unwrap();
    api.json("POST", &format!("/api/v1/runs/{next}/approve"), &admin, None);
    wait("Bo's account", &|| env.people().contains_key("bo.ek"));
    // An unknown run is 404; a run that is not held is refused.
    assert_eq!(api.call("POST", "/api/v1/runs/99999/approve", Some(&admin), None).0, 404);
    // The export gone: the run its removal starts stops, and /healthz says degraded.
    std::fs::remove_file(env.path("persons.csv")).unwrap();
    wait("degraded", &|| api.call("GET", "/healthz", None, None).0 == 503);
}
