//! Review of issue 16's service and API as a careless operator and a hostile client would use
//! them: malformed requests, odd `Authorization` headers, another school's runs, and a state
//! database removed under a running service. Each test is a promise the README makes.

use crate::api16::Service;
use crate::daemon16::wait_for;
use crate::harness::*;

/// One raw HTTP/1.1 request of any bytes; (status, head, body). A server that answers before it
/// read the whole body (413) may close the socket under the writer: that is no failure here.
fn raw(port: u16, request: &[u8]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_string(), body.to_string())
}

fn get(path: &str, auth: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\r\n").into_bytes()
}

fn post(path: &str, auth: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Anna at S1 and Bo at S2, applied by the CLI; an admin's and S1's school admin's tokens.
fn two_schools(extra: &str) -> (Env, String, String) {
    let env = Env::with_config(extra);
    csv_rows(
        &env,
        &[
            row("1", "Anna", "Berg", &pnr(1), "student", "S1", "7A"),
            row("2", "Bo", "Ek", &pnr(2), "student", "S2", "8B"),
        ],
    );
    env.apply().ok();
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let lisa =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    (env, admin, lisa)
}

/// Every refusal of a malformed request is a 4xx with a JSON `{"error": ...}` (the API's own
/// shape, which a client parses), never a 500, a hang or a panic, and echoes no value the caller
/// sent (a path segment can be a civic number). The service answers normally afterwards.
#[test]
fn review16api_every_malformed_request_is_a_4xx_json_error_that_echoes_nothing() {
    let (env, admin, _) = two_schools("");
    let api = Service::start(&env);
    let auth = format!("Authorization: Bearer {admin}\r\n");
    let civic = "19821105-9954";
    let huge = vec![b'x'; 10 * 1024 * 1024];
    let long = format!("/api/v1/persons/{}", "a".repeat(60_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a non-numeric run id to approve",
            post(&format!("/api/v1/runs/{civic}/approve"), &auth, "application/json", b"{}"),
        ),
        ("a run id past i64", post("/api/v1/runs/99999999999999999999999/approve", &auth, "application/json", b"")),
        ("a malformed approval body", post("/api/v1/runs/1/approve", &auth, "application/json", b"{\"only\": [")),
        ("an unknown approval field", post("/api/v1/runs/1/approve", &auth, "application/json", b"{\"evil\": 1}")),
        ("a nonsense only word", post("/api/v1/runs/1/approve", &auth, "application/json", b"{\"only\": [\"nuke\"]}")),
        (
            "a lookup body as a form",
            post("/api/v1/persons/lookup", &auth, "application/x-www-form-urlencoded", b"key=1"),
        ),
        ("a 10 MB lookup body", post("/api/v1/persons/lookup", &auth, "application/json", &huge)),
        (
            "a lookup key of the wrong type",
            post("/api/v1/persons/lookup", &auth, "application/json", b"{\"key\": 19821105}"),
        ),
        ("a conflict decision that is not JSON", post("/api/v1/conflicts/x/decision", &auth, "text/plain", b"merge")),
        ("a negative limit? no: a non-numeric one", get("/api/v1/runs?limit=abc", &auth)),
        ("a limit past i64", get("/api/v1/log?limit=99999999999999999999999", &auth)),
        ("a before cursor that is no number", get("/api/v1/log?before=%27%20OR%201=1--", &auth)),
        ("a run filter that is no number", get("/api/v1/log?run=1;DROP", &auth)),
        ("invalid UTF-8 in a path segment", get("/api/v1/persons/%FF%FE", &auth)),
        ("a civic number in a path", get(&format!("/api/v1/persons/{civic}"), &auth)),
        ("a civic number in the person filter", get(&format!("/api/v1/log?person={civic}"), &auth)),
        ("a wrong method", get("/api/v1/plans", &auth)),
        ("a path outside the API", get("/api/v1/../../etc/passwd", &auth)),
        ("a very long URL", get(&long, &auth)),
    ];
    let mut broken = Vec::new();
    for (what, request) in &cases {
        let (status, head, body) = raw(api.port, request);
        let json: Option<serde_json::Value> = serde_json::from_str(&body).ok();
        let error = json.as_ref().and_then(|j| j["error"].as_str()).map(str::to_string);
        if !(400..500).contains(&status) || error.is_none() {
            broken.push(format!(
                "{what}: {status}, not a 4xx JSON error: {} / {body:?}",
                head.lines().next().unwrap_or("")
            ));
        } else if body.contains("9954") || body.contains("DROP") || body.contains("aaaaaaaa") {
            broken.push(format!("{what}: the answer echoes what was sent: {body}"));
        }
    }
    // Odd but harmless: a negative limit, unknown parameters, a traversal that names no one.
    for path in ["/api/v1/runs?limit=-5", "/api/v1/log?limit=0&evil=1&before=-1", "/api/v1/runs?limit=1&limit=2"] {
        let (status, _, body) = raw(api.port, &get(path, &auth));
        if status != 200 {
            broken.push(format!("{path}: {status} {body}"));
        }
    }
    let (status, _, body) = raw(api.port, &get("/api/v1/persons/..%2F..%2Fetc%2Fpasswd", &auth));
    if status != 404 {
        broken.push(format!("a traversal in a person id: {status} {body}"));
    }
    assert_eq!(api.call("GET", "/healthz", None, None).0, 200, "the service answers after the hostile requests");
    drop(api);
    assert!(broken.is_empty(), "refusals that are not the API's JSON errors:\n{}", broken.join("\n"));
    let log = std::fs::read_to_string(env.path("service.log")).unwrap();
    assert!(!log.contains("panicked"), "a panic in the service's log:\n{log}");
    for secret in [civic, "198211059954", "8211059954", "DROP", &admin[5..]] {
        assert!(!log.contains(secret), "{secret:?} in the service's log:\n{log}");
    }
}

/// `Authorization: Bearer TOKEN` is read as HTTP defines it: the scheme in any case
/// (RFC 9110 §11.1), so a client or proxy that writes `BEARER` is not turned away; anything
/// else (another scheme, a missing token, a token glued to the scheme) is 401.
#[test]
fn review16api_the_bearer_scheme_is_case_insensitive_and_anything_else_is_401() {
    let (env, admin, _) = two_schools("");
    let api = Service::start(&env);
    let mut wrong = Vec::new();
    for (header, want) in [
        (format!("Authorization: Bearer {admin}\r\n"), 200),
        (format!("Authorization: BEARER {admin}\r\n"), 200),
        (format!("Authorization: bEaReR {admin}\r\n"), 200),
        (format!("Authorization: Bearer   {admin}  \r\n"), 200),
        (format!("Authorization: Basic {admin}\r\n"), 401),
        (format!("Authorization: Bearer{admin}\r\n"), 401),
        ("Authorization: Bearer \r\n".to_string(), 401),
        (format!("Authorization: Bearer {}\r\n", &admin[..admin.len() - 1]), 401),
        (format!("Authorization: Bearer {admin}x\r\n"), 401),
        (String::new(), 401),
    ] {
        let (status, _, body) = raw(api.port, &get("/api/v1/runs", &header));
        if status != want {
            wrong.push(format!("{:?}: {status}, want {want}: {body}", header.replace(&admin[8..], "…")));
        }
    }
    // A header folded over two lines is no token (hyper refuses it before enid sees it).
    let (status, _, _) = raw(api.port, &get("/api/v1/runs", &format!("Authorization: Bearer\r\n {admin}\r\n")));
    if status == 200 {
        wrong.push("a folded header was taken as a token".into());
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A school admin's token sees the runs that touched their units only: another school's run is
/// 404 on `GET /runs/{id}`, and approving it answers exactly as approving a run that does not
/// exist (status and body), so the approve route tells them nothing the list does not.
#[test]
fn review16api_approving_another_schools_run_answers_as_a_run_that_does_not_exist() {
    let (env, _admin, lisa) = two_schools("");
    // A second run that touches S2 only: Bo moves to class 9C.
    csv_rows(
        &env,
        &[
            row("1", "Anna", "Berg", &pnr(1), "student", "S1", "7A"),
            row("2", "Bo", "Ek", &pnr(2), "student", "S2", "9C"),
        ],
    );
    env.apply().ok();
    let bo_run = env.sql_value("SELECT CAST(max(id) AS TEXT) FROM runs");
    let api = Service::spawn(&env, "school_admins_approve = true");
    api.wait_up(&env, || api.call("GET", "/healthz", None, None).0 == 200);
    assert_eq!(api.call("GET", &format!("/api/v1/runs/{bo_run}"), Some(&lisa), None).0, 404, "S2's run is not Lisa's");
    let nobody = api.call("POST", "/api/v1/runs/999999/approve", Some(&lisa), Some("{}"));
    assert_eq!(nobody.0, 404, "{}", nobody.1);
    let other = api.call("POST", &format!("/api/v1/runs/{bo_run}/approve"), Some(&lisa), Some("{}"));
    assert_eq!(other, nobody, "approving S2's run tells Lisa it exists (and its status)");
}

/// The state database removed under a running service (an operator cleaning up, a restore gone
/// wrong): the service must not go on writing what it does into a file no one will ever read
/// again. Its runs stop, `/healthz` says degraded, and no new account is created on the word of
/// a state that is gone.
#[test]
fn review16api_a_state_removed_under_the_running_service_stops_its_runs() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"500ms\"\n");
    csv_rows(&env, &[row("1", "Anna", "Berg", &pnr(1), "student", "S1", "7A")]);
    let api = Service::start(&env);
    wait_for("Anna's account", 30, || env.people().contains_key("anna.berg"));
    std::fs::remove_file(env.path("state.db")).unwrap();
    csv_rows(
        &env,
        &[
            row("1", "Anna", "Berg", &pnr(1), "student", "S1", "7A"),
            row("2", "Bo", "Ek", &pnr(2), "student", "S1", "7A"),
        ],
    );
    // The file watch starts a run within a second or two; give it ample time.
    std::thread::sleep(std::time::Duration::from_secs(6));
    let log = std::fs::read_to_string(env.path("service.log")).unwrap();
    assert!(
        !env.people().contains_key("bo.ek"),
        "the service created Bo's account and recorded it in a removed state:\n{log}"
    );
    assert_eq!(api.call("GET", "/healthz", None, None).0, 503, "the service says it is fine:\n{log}");
    // A reload now would open `[state] path` afresh: a new, empty state. It is refused.
    let ok = std::process::Command::new("kill").args(["-HUP", &api.child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    wait_for("the reload refused", 20, || {
        std::fs::read_to_string(env.path("service.log")).unwrap().contains("the old one stays in force")
    });
    assert!(!env.path("state.db").exists(), "a reload made a new, empty state database under the service");
    assert!(!env.people().contains_key("bo.ek"), "Bo's account after the reload");
    // Restarted without restoring the state: a new, empty state faces Anna's account with an
    // enid id it does not record. It stops (the lost-state guard); no one gets a second account.
    drop(api);
    let config = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    std::fs::write(env.path("enid.toml"), &config[..config.find("\n[server]").unwrap()]).unwrap();
    let api = Service::spawn(&env, "");
    api.wait_up(&env, || api.call("GET", "/healthz", None, None).0 == 503);
    let twice: Vec<_> = ids_in_directory(&env).into_iter().filter(|(_, dns)| dns.len() > 1).collect();
    assert!(twice.is_empty(), "second accounts: {twice:?}");
    assert_eq!(env.people().len(), 1, "{:?}", env.people().keys().collect::<Vec<_>>());
}

/// The newest run with `status`, as the CLI lists them.
fn newest(env: &Env, status: &str) -> Option<serde_json::Value> {
    let out = env.enid(&["runs", "--json"]).ok().stdout;
    let runs: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(&out) {
        Ok(serde_json::Value::Array(a)) => a,
        _ => out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect(),
    };
    runs.into_iter().rfind(|r| r["status"] == status)
}

/// A school admin who may approve (`school_admins_approve`) approves their units' operations
/// only: naming another unit (`school`) or another unit's operation by its fingerprint (`ops`)
/// approves nothing, and that operation is not carried out.
#[test]
fn review16api_a_school_admin_approves_no_other_schools_operation_by_school_or_fingerprint() {
    let env = Env::new();
    csv_rows(
        &env,
        &[
            row("1", "Anna", "Berg", &pnr(1), "student", "S1", "7A"),
            row("2", "Bo", "Ek", &pnr(2), "student", "S2", "8B"),
        ],
    );
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let lisa =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    let api = Service::spawn(&env, "school_admins_approve = true");
    api.wait_up(&env, || api.call("GET", "/healthz", None, None).0 == 200);
    wait_for("a planned run", 30, || newest(&env, "planned").is_some());
    let run = newest(&env, "planned").unwrap();
    let id = run["id"].as_i64().unwrap();
    let plan = api.json("GET", &format!("/api/v1/plans/{}", run["plan_id"].as_str().unwrap()), &admin, None);
    let bo = plan["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["school"] == "S2")
        .unwrap_or_else(|| panic!("Bo's create in {plan}"));
    let fingerprint = bo["fingerprint"].as_str().unwrap().to_string();
    let path = format!("/api/v1/runs/{id}/approve");
    for body in [
        r#"{"school": "S2"}"#.to_string(),
        format!(r#"{{"ops": ["{fingerprint}"]}}"#),
        format!(r#"{{"ops": ["{}"]}}"#, &fingerprint[..8]),
        format!(r#"{{"school": "S2", "ops": ["{fingerprint}"], "only": ["create"]}}"#),
    ] {
        let (status, text) = api.call("POST", &path, Some(&lisa), Some(&body));
        let approved = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|j| j["approved"].as_u64());
        assert!(status >= 400 || approved == Some(0), "{body}: Lisa approved S2's create: {status} {text}");
    }
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(env.people().is_empty(), "an operation was carried out: {:?}", env.people().keys().collect::<Vec<_>>());
    assert_eq!(env.sql_value("SELECT CAST(count(*) AS TEXT) FROM approvals"), "0", "an approval was recorded");
}

/// `[schedule] approvals_expire_after`: an approval that lapsed before the service's next run
/// carries out nothing; a fresh one of the same run does (so the test can fail).
#[test]
fn review16api_an_expired_approval_carries_out_nothing() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napprovals_expire_after = \"1s\"\n");
    csv_rows(&env, &[row("1", "Anna", "Berg", &pnr(1), "student", "S1", "7A")]);
    // Each start appends its own `[server]` table: the config as it was before it.
    let base = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    let start = |config: &str| {
        std::fs::write(env.path("enid.toml"), config).unwrap();
        Service::start(&env)
    };
    let api = start(&base);
    wait_for("a planned run", 30, || newest(&env, "planned").is_some());
    drop(api);
    let id = newest(&env, "planned").unwrap()["id"].as_i64().unwrap().to_string();
    env.enid(&["approve", &id]).ok();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let api = start(&base);
    // The same plan again is not saved again: the run leaves a line in the log, not a row.
    wait_for("the run after the restart", 30, || {
        std::fs::read_to_string(env.path("service.log")).unwrap_or_default().contains("run: finished")
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(env.people().is_empty(), "a lapsed approval was carried out");
    drop(api);
    // The same approval, fresh: carried out (the lapse above was what held it).
    let id = newest(&env, "planned").unwrap()["id"].as_i64().unwrap().to_string();
    let fresh = base.replace("approvals_expire_after = \"1s\"", "approvals_expire_after = \"1h\"");
    std::fs::write(env.path("enid.toml"), &fresh).unwrap();
    env.enid(&["approve", &id]).ok();
    let _api = start(&fresh);
    wait_for("Anna's account after a fresh approval", 30, || env.people().contains_key("anna.berg"));
}

/// The export cut to its header line while the service runs (a failed export job): the input
/// guard stops the run, no one is disabled, and `/healthz` says degraded.
#[test]
fn review16api_an_export_cut_to_its_header_under_the_service_disables_no_one() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"500ms\"\n");
    let rows: Vec<String> = (0..5)
        .map(|i| row(&format!("P{i}"), &format!("Elev{i}"), "Testsson", &pnr(i), "student", "S1", "7A"))
        .collect();
    csv_rows(&env, &rows);
    let api = Service::start(&env);
    wait_for("five accounts", 30, || env.people().len() == 5);
    let header = std::fs::read_to_string(env.path("persons.csv")).unwrap().lines().next().unwrap().to_string();
    std::fs::write(env.path("persons.csv"), format!("{header}\n")).unwrap();
    wait_for("degraded", 30, || api.call("GET", "/healthz", None, None).0 == 503);
    let disabled = env.people().values().filter(|e| e.dn.contains("ou=disabled")).count();
    assert_eq!(disabled, 0, "an empty export disabled accounts");
    assert_eq!(env.people().len(), 5);
}

/// A school admin who may approve (`school_admins_approve`) finds the planned run that holds
/// their units' operations where they find runs (`GET /runs`, `GET /runs/{id}`): the approve
/// route takes it, so the list must not say it does not exist. Another unit's planned run stays
/// hidden.
#[test]
fn review16api_a_school_admin_sees_the_planned_run_they_may_approve_and_no_other() {
    let env = Env::new();
    csv_rows(&env, &[row("1", "Anna", "Berg", &pnr(1), "student", "S1", "7A")]);
    let lisa =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    let bo =
        env.enid(&["token", "add", "bo", "--role", "school_admin", "--school", "S2"]).ok().stdout.trim().to_string();
    let api = Service::spawn(&env, "school_admins_approve = true");
    api.wait_up(&env, || api.call("GET", "/healthz", None, None).0 == 200);
    wait_for("a planned run", 30, || newest(&env, "planned").is_some());
    let id = newest(&env, "planned").unwrap()["id"].as_i64().unwrap();
    let listed = api.json("GET", "/api/v1/runs", &lisa, None);
    assert!(
        listed.as_array().unwrap().iter().any(|r| r["id"] == id),
        "S1's admin does not see planned run {id} with S1's create: {listed}"
    );
    assert_eq!(api.json("GET", &format!("/api/v1/runs/{id}"), &lisa, None)["id"], id);
    assert_eq!(api.json("GET", "/api/v1/runs", &bo, None), serde_json::json!([]), "S2's admin sees S1's plan");
    assert_eq!(api.call("GET", &format!("/api/v1/runs/{id}"), Some(&bo), None).0, 404);
    assert_eq!(api.call("POST", &format!("/api/v1/runs/{id}/approve"), Some(&bo), Some("{}")).0, 404);
    // Lisa approves it from there: Anna's account.
    assert_eq!(api.json("POST", &format!("/api/v1/runs/{id}/approve"), &lisa, Some("{}"))["approved"], 1);
    wait_for("Anna's account", 30, || env.people().contains_key("anna.berg"));
}

/// A claim's id is all it takes to confirm (forget) or give back its first passwords: a school
/// admin's token may do so for a claim of their own units only. Another's claim (an admin's
/// claim of another unit) answers as a claim that does not exist, and its password stays kept.
/// (The kept password is written into the state as a hand-out claims it: the AD target that
/// makes one needs the shared Samba DC; the API's part is the same.)
#[test]
fn review16api_a_school_admin_cannot_forget_or_give_back_another_schools_claim() {
    let (env, admin, lisa) = two_schools("");
    let bo = env.sql_value("SELECT id FROM identities WHERE username = 'bo.ek'");
    let claim = "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f";
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    env.sql(&format!(
        "INSERT INTO passwords (target, identity_id, school, sealed, created_at, claim_id, claimed_at) \
         VALUES ('directory', '{bo}', 'S2', X'00', '{now}', '{claim}', '{now}')"
    ));
    let kept = || env.sql_value("SELECT CAST(count(*) AS TEXT) || '/' || count(claim_id) FROM passwords");
    assert_eq!(kept(), "1/1");
    let api = Service::start(&env);
    let none = "00000000000000000000000000000000";
    let confirm = |id: &str| api.call("POST", &format!("/api/v1/passwords/claims/{id}/confirm"), Some(&lisa), None);
    let release = |id: &str| api.call("DELETE", &format!("/api/v1/passwords/claims/{id}"), Some(&lisa), None);
    assert_eq!(release(claim), release(none), "given back: S2's claim answers as no claim");
    assert_eq!(kept(), "1/1", "Lisa gave S2's claimed password back");
    assert_eq!(confirm(claim), confirm(none), "confirmed: S2's claim answers as no claim");
    assert_eq!(kept(), "1/1", "Lisa made S2's first password be forgotten");
    // The admin may (whose claim it is): forgotten.
    assert_eq!(api.json("POST", &format!("/api/v1/passwords/claims/{claim}/confirm"), &admin, None)["forgotten"], 1);
    assert_eq!(kept(), "0/0");
}

/// SIGHUP after the operator pointed the source at another export (another school's file, a
/// file of the wrong day): the reload is taken, and the full run it starts holds the leavers it
/// would make of everyone who has an account: no one is disabled. (A held run is one that got
/// through: `/healthz` stays ok, by design.)
#[test]
fn review16api_a_reload_onto_another_export_disables_no_one() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"500ms\"\n");
    let pupils = |prefix: &str, family: &str, from: usize| -> Vec<String> {
        (0..12)
            .map(|i| row(&format!("{prefix}{i}"), &format!("Elev{i}"), family, &pnr(from + i), "student", "S1", "7A"))
            .collect()
    };
    csv_rows(&env, &pupils("P", "Testsson", 0));
    let api = Service::start(&env);
    wait_for("twelve accounts", 30, || env.people().len() == 12);
    let other = pupils("Q", "Annansson", 100);
    std::fs::write(env.path("other.csv"), format!("{}\n{}\n", HEADER, other.join("\n"))).unwrap();
    env.edit_config("path = \"persons.csv\"", "path = \"other.csv\"");
    let ok = std::process::Command::new("kill").args(["-HUP", &api.child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let log = || std::fs::read_to_string(env.path("service.log")).unwrap_or_default();
    wait_for("the reload", 20, || log().contains("reloaded the config"));
    wait_for("the run after the reload", 30, || {
        let l = log();
        let after = &l[l.find("reloaded the config").unwrap_or(0)..];
        after.contains("run: finished") || after.contains("run: stopped")
    });
    let people = env.people();
    let disabled: Vec<&String> = people.iter().filter(|(_, e)| e.dn.contains("ou=disabled")).map(|(u, _)| u).collect();
    assert!(disabled.is_empty(), "a reload onto another export disabled {disabled:?}:\n{}", log());
    assert!(newest(&env, "held").is_some(), "the run after the reload was not held:\n{}", log());
}

/// SIGHUP after the operator renamed the target (`[targets.directory]` to `[targets.ldap]`, the
/// same directory): the accounts there carry enid's ids but the state records none on "ldap".
/// The run after the reload must not create anyone a second account, nor touch the accounts.
#[test]
fn review16api_a_reload_that_renames_the_target_creates_no_second_account() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"500ms\"\n");
    let rows: Vec<String> = (0..3)
        .map(|i| row(&format!("P{i}"), &format!("Elev{i}"), "Testsson", &pnr(i), "student", "S1", "7A"))
        .collect();
    csv_rows(&env, &rows);
    let api = Service::start(&env);
    wait_for("three accounts", 30, || env.people().len() == 3);
    let before: Vec<String> = env.people().values().map(|e| e.dn.clone()).collect();
    env.edit_config("[targets.directory]", "[targets.ldap]");
    let ok = std::process::Command::new("kill").args(["-HUP", &api.child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let log = || std::fs::read_to_string(env.path("service.log")).unwrap_or_default();
    wait_for("the reload", 20, || log().contains("reloaded the config") || log().contains("stays in force"));
    wait_for("the run after the reload", 30, || {
        let l = log();
        let after = &l[l.find("reloaded the config").or_else(|| l.find("stays in force")).unwrap_or(0)..];
        after.contains("run: finished") || after.contains("run: stopped")
    });
    let after: Vec<String> = env.people().values().map(|e| e.dn.clone()).collect();
    let ids = ids_in_directory(&env);
    let twice: Vec<_> = ids.iter().filter(|(_, dns)| dns.len() > 1).collect();
    assert!(twice.is_empty(), "second accounts for one enid id: {twice:?}\n{}", log());
    assert_eq!(after, before, "the accounts changed after the target was renamed:\n{}", log());
}

/// Clients that open a connection and never finish their request (a half-sent body, headers
/// that never end) neither block the API for others nor keep the service from stopping: SIGTERM
/// ends it within its grace periods.
#[test]
fn review16api_half_sent_requests_block_neither_the_api_nor_a_stop() {
    use std::io::Write;
    let (env, admin, _) = two_schools("");
    let mut api = Service::start(&env);
    let mut stuck = Vec::new();
    for _ in 0..50 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", api.port)).unwrap();
        let head = format!(
            "POST /api/v1/persons/lookup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"key\""
        );
        s.write_all(head.as_bytes()).unwrap();
        stuck.push(s);
        let mut h = std::net::TcpStream::connect(("127.0.0.1", api.port)).unwrap();
        h.write_all(b"GET /api/v1/runs HTTP/1.1\r\nHost: x\r\n").unwrap();
        stuck.push(h);
    }
    let started = std::time::Instant::now();
    let (status, body) = api.call("GET", "/api/v1/runs", Some(&admin), None);
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "the API waited on the stuck clients");
    let ok = std::process::Command::new("kill").args(["-TERM", &api.child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = api.child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < end, "the service did not stop with clients stuck mid-request");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    drop(stuck);
}

/// A run the shrink guard stopped (12 of 40 records gone: over 10 % and over 10 records) is the run whose guard the
/// operator reviews: `POST /runs/{id}/approve {"accept": ["shrink"]}` on it is taken (as the
/// README's table says: guards the next run may go past), and the service's next run gets past
/// that guard. No one is disabled on the way without the thresholds' say.
#[test]
fn review16api_a_run_the_shrink_guard_stopped_is_approved_past_that_guard() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"500ms\"\n");
    let rows: Vec<String> = (0..40)
        .map(|i| row(&format!("P{i}"), &format!("Elev{i}"), "Testsson", &pnr(i), "student", "S1", "7A"))
        .collect();
    csv_rows(&env, &rows);
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let api = Service::start(&env);
    wait_for("forty accounts", 30, || env.people().len() == 40);
    csv_rows(&env, &rows[..28]);
    wait_for("a run the shrink guard stopped", 30, || newest(&env, "stopped").is_some());
    let stopped = newest(&env, "stopped").unwrap();
    assert!(stopped["message"].as_str().unwrap_or_default().contains("shrink"), "{stopped}");
    let id = stopped["id"].as_i64().unwrap();
    let (status, body) =
        api.call("POST", &format!("/api/v1/runs/{id}/approve"), Some(&admin), Some(r#"{"accept": ["shrink"]}"#));
    assert_eq!(status, 200, "the guard that stopped run {id} cannot be accepted on it: {body}");
    wait_for("a run past the shrink guard", 30, || {
        let out = env.enid(&["runs", "--json"]).ok().stdout;
        out.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|r| r["id"].as_i64() > Some(id) && r["status"] != "stopped")
    });
    assert_eq!(env.sql_value("SELECT group_concat(approved_by) FROM approvals"), "ops");
    // Past the guard, 12 disables of 40 are over the disable threshold: held, no one disabled.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let disabled = env.people().values().filter(|e| e.dn.contains("ou=disabled")).count();
    assert_eq!(disabled, 0, "accepting the shrink also let the leavers past the thresholds");
}

/// Approving one planned run twice through the API (a double click, a retried request) carries
/// out its operations once: one account per person, every approval recorded with its token.
/// Approving a run that holds nothing to approve (one that applied everything) is a 400 that
/// says so, never a new run of anything.
#[test]
fn review16api_a_run_approved_twice_is_carried_out_once() {
    let env = Env::new();
    csv_rows(
        &env,
        &[
            row("1", "Anna", "Berg", &pnr(1), "student", "S1", "7A"),
            row("2", "Bo", "Ek", &pnr(2), "student", "S2", "8B"),
        ],
    );
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let api = Service::start(&env);
    wait_for("a planned run", 30, || newest(&env, "planned").is_some());
    let id = newest(&env, "planned").unwrap()["id"].as_i64().unwrap();
    let path = format!("/api/v1/runs/{id}/approve");
    assert_eq!(api.json("POST", &path, &admin, None)["approved"], 2);
    let (status, body) = api.call("POST", &path, Some(&admin), None);
    assert!(status == 200 || status == 400, "the second approval: {status} {body}");
    wait_for("both accounts", 30, || env.people().len() == 2);
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(env.people().len(), 2, "{:?}", env.people().keys().collect::<Vec<_>>());
    let twice: Vec<_> = ids_in_directory(&env).into_iter().filter(|(_, dns)| dns.len() > 1).collect();
    assert!(twice.is_empty(), "{twice:?}");
    let ok = newest(&env, "ok").expect("the run that carried them out");
    assert_eq!(ok["counts"]["planned"]["create"], 2, "{ok}");
    let ok_id = ok["id"].as_i64().unwrap();
    let (status, body) = api.call("POST", &format!("/api/v1/runs/{ok_id}/approve"), Some(&admin), None);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("left nothing waiting"), "{body}");
}
