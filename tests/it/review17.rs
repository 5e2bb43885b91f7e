//! Review of issue 17 (the web page's hand-outs, renames, needs-action and paged plans), as a
//! careless operator and a hostile user would use it: each test pins a defect found (named
//! after it) or a promise checked cheaply. Raw HTTP with a session cookie; no browser.

use crate::api16::{HEADER_P, Service};
use crate::harness::*;
use crate::web17::raw;

/// Signs in over raw HTTP as the sign-in form does: the session cookie and its CSRF token.
pub(crate) fn session(port: u16, token: &str) -> (String, String) {
    let (_, form) = raw(port, "GET", "/sign-in", "", "");
    let pre = cookie_value(&form, "enid_signin");
    let csrf = csrf_of(&form);
    let (status, answer) =
        raw(port, "POST", "/sign-in", &format!("enid_signin={pre}"), &format!("csrf={csrf}&token={token}"));
    assert_eq!(status, 303, "{answer}");
    let cookie = format!("enid_session={}", cookie_value(&answer, "enid_session"));
    let (_, runs) = raw(port, "GET", "/runs", &cookie, "");
    (cookie.clone(), csrf_of(&runs))
}

/// The value a `Set-Cookie` header of `response` gives cookie `name`.
fn cookie_value(response: &str, name: &str) -> String {
    let at = format!("{name}=");
    response
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .find_map(|l| l.split_once(&at).map(|(_, v)| v.split(';').next().unwrap_or_default().to_string()))
        .unwrap_or_else(|| panic!("no cookie {name}: {response}"))
}

/// The CSRF token a page's forms carry.
fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("a form's csrf").to_string()
}

/// Every spelling of a civic number that must never come back: 12 and 10 digits, with or
/// without the separator.
fn spellings(pnr: &str) -> Vec<String> {
    let digits: String = pnr.chars().filter(char::is_ascii_digit).collect();
    vec![pnr.to_string(), digits.clone(), digits[2..].to_string(), format!("{}-{}", &digits[2..8], &digits[8..])]
}

fn assert_no_civic(what: &str, text: &str, pnr: &str) {
    for s in spellings(pnr) {
        assert!(!text.contains(&s), "{what} echoes the civic number {s}: {text}");
    }
}

/// Regression: a selection word, a guard or a query parameter that is no action, guard or
/// parameter was quoted back in the 400 as typed, so a civic number pasted into `only` (or as a
/// parameter's name) came back in the API's answer and on the page.
#[test]
fn review17_a_civic_number_typed_into_a_selection_is_not_echoed_in_the_400() {
    let env = Env::new();
    csv_rows(&env, &[row("1", "Anna", "Berg", &pnr(1), "student", "S1", "")]);
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let api = Service::start(&env);
    let civic = pnr(7);
    let digits: String = civic.chars().filter(char::is_ascii_digit).collect();
    for spelled in spellings(&civic) {
        let (status, body) = api.call("GET", &format!("/api/v1/plans/p/view?only={spelled}"), Some(&admin), None);
        assert_eq!(status, 400, "{body}");
        assert_no_civic("GET /plans/{id}/view?only=", &body, &civic);
        let (status, body) =
            api.call("GET", &format!("/api/v1/plans/p/view?only=create,{spelled}"), Some(&admin), None);
        assert_eq!(status, 400, "{body}");
        assert_no_civic("GET /plans/{id}/view?only=create,…", &body, &civic);
    }
    let (status, body) = api.call("GET", &format!("/api/v1/plans/p/view?{digits}=1"), Some(&admin), None);
    assert_eq!(status, 400, "{body}");
    assert_no_civic("an unknown parameter", &body, &civic);
    for body in [format!(r#"{{"only":["{civic}"]}}"#), format!(r#"{{"accept":["{civic}"]}}"#)] {
        let (status, answer) = api.call("POST", "/api/v1/runs/1/approve", Some(&admin), Some(&body));
        assert_eq!(status, 400, "{answer}");
        assert_no_civic("POST /runs/{id}/approve", &answer, &civic);
    }
    // The page's selection form: the 400 says what is wrong without the value.
    let (cookie, _) = session(api.port, &admin);
    let (status, page) = raw(api.port, "GET", &format!("/plans/p?only={digits}"), &cookie, "");
    assert_eq!(status, 400, "{page}");
    assert_no_civic("the page /plans/{id}?only=", &page, &civic);
    drop(api);
    let log = std::fs::read_to_string(env.path("service.log")).unwrap();
    assert_no_civic("the service's log", &log, &civic);
}

/// Regression: `/plans/{id}?offset=` far past the end (the largest number a URL can say) made
/// the page add one to it for "From number": a panic in a debug build (the connection dropped,
/// no answer), "From number 0" in a release build. Past the end is a page with nothing listed;
/// the API's view answers the same, and a negative, garbage or huge limit is a 400.
#[test]
fn review17_a_plan_page_far_past_the_end_answers_with_nothing_listed() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"plan_only\"\n");
    csv_rows(
        &env,
        &[row("1", "Anna", "Berg", &pnr(1), "student", "S1", ""), row("2", "Bo", "Ek", &pnr(2), "student", "S2", "")],
    );
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let api = Service::start(&env);
    let (status, plan) = api.call("POST", "/api/v1/plans", Some(&admin), None);
    assert_eq!(status, 201, "{plan}");
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let id = plan["plan_id"].as_str().unwrap().to_string();
    let max = usize::MAX;
    let (cookie, _) = session(api.port, &admin);
    for offset in ["0", "1", "2", "100", &(max - 1).to_string(), &max.to_string()] {
        let (status, page) = raw(api.port, "GET", &format!("/plans/{id}?offset={offset}"), &cookie, "");
        assert_eq!(status, 200, "offset {offset}: {page}");
        assert!(page.contains("<h1>"), "offset {offset}: {page}");
        let (status, view) = api.call("GET", &format!("/api/v1/plans/{id}/view?offset={offset}"), Some(&admin), None);
        assert_eq!(status, 200, "offset {offset}: {view}");
    }
    let (_, page) = raw(api.port, "GET", &format!("/plans/{id}?offset={max}"), &cookie, "");
    assert!(!page.contains("From number 0") && !page.contains("Från nummer 0"), "{page}");
    for bad in ["offset=-1", "offset=x", "limit=0", "limit=-5", "limit=1001", "limit=99999999999999999999999", "page=2"]
    {
        let (status, body) = api.call("GET", &format!("/api/v1/plans/{id}/view?{bad}"), Some(&admin), None);
        assert_eq!(status, 400, "{bad}: {body}");
    }
    for bad in ["offset=-1", "offset=x"] {
        let (status, _) = raw(api.port, "GET", &format!("/plans/{id}?{bad}"), &cookie, "");
        assert_eq!(status, 400, "{bad}");
    }
    let (status, _) = raw(api.port, "GET", "/log?before=garbage", &cookie, "");
    assert_eq!(status, 400);
    // A civic number typed into the selection's free words is refused, never given back (in the
    // form or in the links to further pages): a person is selected by username or enid id.
    let civic = pnr(7);
    for field in ["person", "school", "target"] {
        let (status, page) = raw(api.port, "GET", &format!("/plans/{id}?{field}={civic}"), &cookie, "");
        assert_eq!(status, 400, "{field}: {page}");
        assert_no_civic(&format!("the page /plans/{{id}}?{field}="), &page, &civic);
    }
}

/// Regression: a rename was approved by the key in the URL twice over: the page and the API
/// checked that the key finds a person the viewer may see, then the engine approved the held
/// rename whose enid id *or current username* is that key. A school admin of S1 whose pupil has
/// the source key `bo.ek` (keys are whatever the school's system uses) approved the rename of
/// S2's Bo Ek, username `bo.ek`. What the page and the API approve is found among what they
/// list (`Engine::held_renames_for`: the viewer's persons, never a protected person's).
#[test]
fn review17_a_school_admin_approves_no_rename_of_another_school_by_a_key_that_names_two() {
    let env =
        Env::with_config("\n[naming]\non_name_change = \"hold\"\n\n[schedule]\nfull = \"1h\"\napply = \"plan_only\"\n");
    let export = |family: &str| {
        csv_rows(
            &env,
            &[
                row("bo.ek", "Anna", "Berg", &pnr(1), "student", "S1", ""),
                row("2", "Bo", family, &pnr(2), "student", "S2", ""),
            ],
        )
    };
    export("Ek");
    env.apply();
    assert_eq!(env.sql_value("SELECT username FROM identities WHERE username = 'bo.ek'"), "bo.ek");
    export("Lind");
    assert!(env.enid(&["renames"]).ok().stdout.contains("bo.lind"), "Bo's rename is held");
    let lisa =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    let api = Service::spawn(&env, "school_admins_approve = true");
    api.wait_up(&env, || api.call("GET", "/healthz", None, None).0 == 200);
    let (status, list) = api.call("GET", "/api/v1/renames", Some(&lisa), None);
    assert_eq!((status, list.as_str()), (200, "[]"), "S2's rename is not S1's to see");
    let (status, answer) = api.call("POST", "/api/v1/renames/bo.ek/approve", Some(&lisa), None);
    assert_eq!(status, 404, "S1's admin approved S2's rename through the API: {answer}");
    let (cookie, csrf) = session(api.port, &lisa);
    let (status, page) = raw(api.port, "POST", "/renames/bo.ek/approve", &cookie, &format!("csrf={csrf}"));
    assert_eq!(status, 404, "S1's admin approved S2's rename on the page: {page}");
    assert!(!page.contains("bo.lind"), "{page}");
    assert_eq!(env.sql_value("SELECT CAST(count(*) AS TEXT) FROM rename_approvals"), "0");
}

/// Regression, against the shared Samba DC: a claim's passwords were shown to a school admin
/// when any of them was of one of their units, and a claim's protected persons' passwords were
/// shown to anyone whose unit the person attends: a school admin holding the id of an
/// administrator's claim (protected persons', or every unit's) read those passwords, although
/// protected persons' are an administrator's alone and another's claim shows none. A claim is a
/// viewer's only when every password in it is theirs to hand out; then it shows, confirms and
/// gives back; else it holds nothing for them, on the API and on the page.
#[test]
fn review17_a_school_admin_never_reads_or_ends_an_administrators_claim() {
    use crate::ad::{ad_table, env_with, test_ou};
    let ou = test_ou();
    let env = env_with(&ad_table("ldaps://127.0.0.1:636", &ou, "initial_password = \"generated\"\n"));
    let fam = crate::api16::unique_family();
    std::fs::write(
        env.path("persons.csv"),
        format!(
            "{HEADER_P}\n1,Ada,{fam},,student,Norr,,,,\n2,Cia,{fam},,student,Syd,,,,\n\
             3,Hemlig,{fam},,student,Norr,,,,Skyddad folkbokföring\n"
        ),
    )
    .unwrap();
    env.enid(&["plan", "--save"]).ok();
    let id = env.enid(&["plan", "--json"]).ok().json()["plan_id"].as_str().unwrap().to_string();
    env.enid(&["apply", "--plan", &id, "--accept-protected", "--yes"]).ok();
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
    let claim = |body: &str| {
        let (status, answer) = api.call("POST", "/api/v1/passwords/claims", Some(&admin), Some(body));
        assert_eq!(status, 201, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        (answer["claim"].as_str().unwrap().to_string(), answer["passwords"].as_array().unwrap().len())
    };
    let (hidden, n) = claim(r#"{"protected":true}"#);
    assert_eq!(n, 1, "the protected person's");
    let (every, n) = claim("{}");
    assert_eq!(n, 2, "Ada's and Cia's");
    let (cookie, csrf) = crate::review17::session(api.port, &lisa);
    for claim in [&hidden, &every] {
        let shown = api.json("GET", &format!("/api/v1/passwords/claims/{claim}"), &lisa, None);
        assert_eq!(shown["passwords"], serde_json::json!([]), "an administrator's claim shown to a school admin");
        let (_, page) = raw(api.port, "GET", &format!("/passwords/claims/{claim}"), &cookie, "");
        assert!(!page.contains("<code>"), "an administrator's claim on a school admin's page: {page}");
        let confirm = api.json("POST", &format!("/api/v1/passwords/claims/{claim}/confirm"), &lisa, None);
        assert_eq!(confirm["forgotten"], 0);
        let back = api.json("DELETE", &format!("/api/v1/passwords/claims/{claim}"), &lisa, None);
        assert_eq!(back["given_back"], 0);
        for step in ["confirm", "give-back"] {
            let (status, page) =
                raw(api.port, "POST", &format!("/passwords/claims/{claim}/{step}"), &cookie, &format!("csrf={csrf}"));
            assert_eq!(status, 200, "{page}");
            assert!(page.contains(">0 lösenord"), "{step}: {page}");
        }
        assert_eq!(kept(), "3", "nothing forgotten by a school admin");
    }
    // The administrator's own: shown to them, confirmed once, then nothing more to confirm or
    // give back.
    for claim in [&hidden, &every] {
        let shown = api.json("GET", &format!("/api/v1/passwords/claims/{claim}"), &admin, None);
        assert!(!shown["passwords"].as_array().unwrap().is_empty(), "{shown}");
        let first = api.json("POST", &format!("/api/v1/passwords/claims/{claim}/confirm"), &admin, None);
        assert!(first["forgotten"].as_u64().unwrap() > 0, "{first}");
        let again = api.json("POST", &format!("/api/v1/passwords/claims/{claim}/confirm"), &admin, None);
        assert_eq!(again["forgotten"], 0);
        let back = api.json("DELETE", &format!("/api/v1/passwords/claims/{claim}"), &admin, None);
        assert_eq!(back["given_back"], 0);
    }
    assert_eq!(kept(), "0");
}

/// Checked and holding: every new form refuses a post without its CSRF token and with another
/// session's (403, nothing done); a school admin gets no saved plan on the page or in the API;
/// names and school units are escaped wherever they are echoed (the search, a person's page,
/// the log, a plan's selection form).
#[test]
fn review17_new_forms_need_their_own_sessions_csrf_and_echoes_are_escaped() {
    let env =
        Env::with_config("\n[naming]\non_name_change = \"hold\"\n\n[schedule]\nfull = \"1h\"\napply = \"plan_only\"\n");
    let evil = "<script>alert(1)</script>";
    csv_rows(
        &env,
        &[row("1", evil, "Berg", &pnr(1), "student", "S\"1", ""), row("2", "Bo", "Ek", &pnr(2), "student", "S2", "")],
    );
    env.apply();
    csv_rows(
        &env,
        &[row("1", evil, "Lind", &pnr(1), "student", "S\"1", ""), row("2", "Bo", "Ek", &pnr(2), "student", "S2", "")],
    );
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let lisa =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S2"]).ok().stdout.trim().to_string();
    let anna = env.sql_value("SELECT DISTINCT identity_id FROM source_records WHERE person_id = '1'");
    let api = Service::start(&env);
    let (cookie, csrf) = session(api.port, &admin);
    let (other_cookie, other_csrf) = session(api.port, &admin);
    assert_ne!(csrf, other_csrf, "each session its own");
    for path in [
        "/passwords/claims".to_string(),
        "/passwords/claims/abc/confirm".to_string(),
        "/passwords/claims/abc/give-back".to_string(),
        format!("/renames/{anna}/approve"),
        "/plans".to_string(),
    ] {
        for body in [String::new(), "csrf=".to_string(), format!("csrf={other_csrf}")] {
            let (status, page) = raw(api.port, "POST", &path, &cookie, &body);
            assert_eq!(status, 403, "POST {path} with {body:?}: {page}");
        }
        let (status, _) = raw(api.port, "POST", &path, "", &format!("csrf={csrf}"));
        assert_eq!(status, 303, "POST {path} without a session goes to the sign-in");
    }
    assert_eq!(env.sql_value("SELECT CAST(count(*) AS TEXT) FROM rename_approvals"), "0");
    let _ = other_cookie;
    // Escaped wherever echoed.
    let (_, found) = raw(api.port, "POST", "/search", &cookie, &format!("csrf={csrf}&q=berg"));
    let (_, person) = raw(api.port, "GET", &format!("/persons/{anna}"), &cookie, "");
    let (_, renames) = raw(api.port, "GET", "/renames", &cookie, "");
    let (status, plan) = api.call("POST", "/api/v1/plans", Some(&admin), None);
    assert_eq!(status, 201, "{plan}");
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let id = plan["plan_id"].as_str().unwrap().to_string();
    let (_, selection) =
        raw(api.port, "GET", &format!("/plans/{id}?school=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E"), &cookie, "");
    for (what, page) in [("search", &found), ("person", &person), ("renames", &renames), ("selection", &selection)] {
        assert!(!page.contains("<script>"), "{what}: {page}");
    }
    assert!(found.contains("&lt;script&gt;"), "{found}");
    assert!(person.contains("S&quot;1") || person.contains("S\"1"), "{person}");
    // A school admin: no plan, on the page or in the API.
    let (lisa_cookie, _) = session(api.port, &lisa);
    let (status, _) = raw(api.port, "GET", &format!("/plans/{id}"), &lisa_cookie, "");
    assert_eq!(status, 403);
    assert_eq!(api.call("GET", &format!("/api/v1/plans/{id}/view"), Some(&lisa), None).0, 403);
    assert_eq!(api.call("GET", &format!("/api/v1/plans/{id}"), Some(&lisa), None).0, 403);
}

/// Regression: a civic number typed into a saved plan's selection form as the school unit or
/// the target (a careless paste) came back on the page, in the form's field, although the
/// person field refuses one; and the API took one in its URL. Every selection field is refused
/// with a civic number, on the page and in the API, and none is echoed.
#[test]
fn review17_a_civic_number_in_any_plan_selection_field_is_refused_and_not_echoed() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"plan_only\"\n");
    csv_rows(&env, &[row("1", "Anna", "Berg", &pnr(1), "student", "S1", "")]);
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let api = Service::start(&env);
    let (status, plan) = api.call("POST", "/api/v1/plans", Some(&admin), None);
    assert_eq!(status, 201, "{plan}");
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let id = plan["plan_id"].as_str().unwrap().to_string();
    let (cookie, _) = session(api.port, &admin);
    let civic = pnr(1);
    for field in ["school", "target", "person"] {
        for spelled in spellings(&civic) {
            let (status, page) = raw(api.port, "GET", &format!("/plans/{id}?{field}={spelled}"), &cookie, "");
            assert_no_civic(&format!("the page's {field}"), &page, &civic);
            assert_eq!(status, 400, "{field}={spelled}");
            let (status, body) =
                api.call("GET", &format!("/api/v1/plans/{id}/view?{field}={spelled}"), Some(&admin), None);
            assert_no_civic(&format!("the API's {field}"), &body, &civic);
            assert_eq!(status, 400, "{field}={spelled}: {body}");
        }
    }
}

/// Regression: with `protected_names_from_template`, a protected person's username is made
/// from their name, yet `GET /persons/{username}` (the page and the API) found them by it and
/// answered with their enid id: a name linked to the protection. By enid id only, as the page
/// and the API promise (the API's log already refused it).
#[test]
fn review17_a_protected_person_with_a_username_from_their_name_is_not_found_by_it() {
    let env = Env::with_config(
        "\n[naming]\nprotected_names_from_template = true\n\n[schedule]\nfull = \"1h\"\napply = \"plan_only\"\n",
    );
    std::fs::write(
        env.path("persons.csv"),
        format!(
            "{HEADER_P}\n1,Anna,Berg,{},student,S1,,,,\n3,Hemlig,Gömdsson,{},student,S1,,,,Skyddad folkbokföring\n",
            pnr(1),
            pnr(3)
        ),
    )
    .unwrap();
    env.enid(&["plan", "--save"]).ok();
    let id = env.enid(&["plan", "--json"]).ok().json()["plan_id"].as_str().unwrap().to_string();
    env.enid(&["apply", "--plan", &id, "--accept-protected", "--yes"]).ok();
    let hidden = env.sql_value("SELECT DISTINCT identity_id FROM source_records WHERE protected = 1");
    let username = env.sql_value(&format!("SELECT username FROM identities WHERE id = '{hidden}'"));
    assert!(username.starts_with("hemlig"), "a username from the name: {username}");
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let api = Service::start(&env);
    let (cookie, _) = session(api.port, &admin);
    let (status, page) = raw(api.port, "GET", &format!("/persons/{username}"), &cookie, "");
    assert!(!page.contains(&hidden), "the page links the name to the enid id: {page}");
    assert_eq!(status, 404);
    let (status, body) = api.call("GET", &format!("/api/v1/persons/{username}"), Some(&admin), None);
    assert!(!body.contains(&hidden), "the API links the name to the enid id: {body}");
    assert_eq!(status, 404);
    assert_eq!(api.call("GET", &format!("/api/v1/log?person={username}"), Some(&admin), None).0, 404);
    // By enid id, as promised.
    assert_eq!(raw(api.port, "GET", &format!("/persons/{hidden}"), &cookie, "").0, 200);
    assert_eq!(api.call("GET", &format!("/api/v1/persons/{hidden}"), Some(&admin), None).0, 200);
    drop(api);
    let log = std::fs::read_to_string(env.path("service.log")).unwrap();
    assert!(!log.contains(&username) && !log.contains("Gömdsson"), "the service's log names them: {log}");
}

/// Regression: "Find a person" lowered the text typed in Rust (every letter) but the names in
/// SQLite (`lower()`, ASCII only), so a name with Å, Ä or Ö in capitals (Åsa, Öberg, ÄNGLA)
/// was never found by it, however it was typed.
#[test]
fn review17_find_a_person_finds_swedish_capitals_however_typed() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"plan_only\"\n");
    csv_rows(
        &env,
        &[row("1", "Åsa", "Öberg", &pnr(1), "student", "S1", ""), row("2", "Bo", "Ek", &pnr(2), "student", "S1", "")],
    );
    env.apply();
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let api = Service::start(&env);
    let (cookie, csrf) = session(api.port, &admin);
    for typed in ["Åsa", "åsa", "ÅSA", "Öberg", "öberg", "åsa öberg", "asa.oberg"] {
        let body = format!("csrf={csrf}&q={}", urlencode(typed));
        let (status, page) = raw(api.port, "POST", "/search", &cookie, &body);
        assert_eq!(status, 200);
        assert!(page.contains("asa.oberg"), "{typed:?} finds no one: {page}");
        assert!(!page.contains("bo.ek"), "{typed:?}: {page}");
    }
}

fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'.' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// Regression: `GET /api/v1/passwords/claims/{claim}` answered with the claim id as sent, so a
/// civic number pasted there (a careless client, the wrong field) came back in the answer.
/// A civic number in that URL is refused with 400, as everywhere in the API, and not echoed.
#[test]
fn review17_a_civic_number_as_a_claim_id_is_refused_and_not_echoed() {
    let env = Env::new();
    csv_rows(&env, &[row("1", "Anna", "Berg", &pnr(1), "student", "S1", "")]);
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let api = Service::start(&env);
    let civic = pnr(1);
    for spelled in spellings(&civic) {
        for (method, path) in [
            ("GET", format!("/api/v1/passwords/claims/{spelled}")),
            ("POST", format!("/api/v1/passwords/claims/{spelled}/confirm")),
            ("DELETE", format!("/api/v1/passwords/claims/{spelled}")),
        ] {
            let (status, body) = api.call(method, &path, Some(&admin), None);
            assert_no_civic(&format!("{method} {path}"), &body, &civic);
            assert_eq!(status, 400, "{method} {path}: {body}");
        }
    }
}

/// Regression, against the shared Samba DC: the hand-out found a school unit's passwords with
/// SQL `LIKE`, whose `_` and `%` match any character: the school admin of unit `S_1` claimed
/// and was shown the first passwords of unit `SX1` too.
#[test]
fn review17_a_school_unit_with_like_wildcards_claims_its_own_passwords_only() {
    use crate::ad::{ad_table, env_with, test_ou};
    let ou = test_ou();
    let env = env_with(&ad_table("ldaps://127.0.0.1:636", &ou, "initial_password = \"generated\"\n"));
    let fam = crate::api16::unique_family();
    csv_rows(&env, &[row("1", "Ada", &fam, "", "student", "S_1", ""), row("2", "Cia", &fam, "", "student", "SX1", "")]);
    env.enid(&["apply", "--yes"]).ok();
    let lisa =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S_1"]).ok().stdout.trim().to_string();
    let api = Service::start(&env);
    let (status, answer) = api.call("POST", "/api/v1/passwords/claims", Some(&lisa), Some(r#"{"school":"S_1"}"#));
    assert_eq!(status, 201, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let users: Vec<&str> =
        answer["passwords"].as_array().unwrap().iter().map(|p| p["username"].as_str().unwrap()).collect();
    assert_eq!(users.len(), 1, "another unit's password handed out: {answer}");
    assert!(users[0].starts_with("ada."), "{users:?}");
    let claim = answer["claim"].as_str().unwrap();
    assert_eq!(api.json("POST", &format!("/api/v1/passwords/claims/{claim}/confirm"), &lisa, None)["forgotten"], 1);
    assert_eq!(env.sql_value("SELECT CAST(count(*) AS TEXT) FROM passwords WHERE length(sealed) > 0"), "1");
}

/// Checked and holding: rows the source must fix never show a civic number (a key that is one,
/// duplicated; a bad number in 12 and 10 digits; a bad date) or a protected person's name, on
/// the runs page, in the API's runs or in the service's log.
#[test]
fn review17_rejected_rows_show_no_civic_number_and_no_protected_name() {
    let env = Env::with_config("\n[sources.sis.policy]\nmax_rejected_percent = 90\n");
    let (a, b, c) = (pnr(1), pnr(2), pnr(3));
    let bad12 = format!("{}0", &a.replace('-', "")[..11]);
    let bad10 = format!("{}-9999", &b.replace('-', "")[2..8]);
    std::fs::write(
        env.path("persons.csv"),
        format!(
            "{HEADER_P}\n{a},Anna,Berg,{bad12},student,S1,,,,\n{b},Bo,Ek,{b},student,S1,,,,\n{b},Bo,Ek,{b},student,S1,,,,\n\
             4,Hemlig,Gömdsson,{bad10},student,S1,,,,Skyddad folkbokföring\n\
             5,Dold,Skyddsson,{c},student,S1,,2024-13-45,,Skyddad folkbokföring\n6,Cia,Dahl,,student,S1,,,,\n"
        ),
    )
    .unwrap();
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let api = Service::start(&env);
    crate::daemon16::wait_for("the service's first run", 60, || {
        env.sql_value("SELECT CAST(count(*) AS TEXT) FROM runs WHERE counts IS NOT NULL") != "0"
    });
    let (cookie, _) = session(api.port, &admin);
    let (_, page) = raw(api.port, "GET", "/runs", &cookie, "");
    assert!(page.matches("persons.csv:").count() >= 4, "the rejected rows are listed: {page}");
    let (_, runs) = api.call("GET", "/api/v1/runs", Some(&admin), None);
    assert!(runs.contains("rejected"), "{runs}");
    drop(api);
    let log = std::fs::read_to_string(env.path("service.log")).unwrap();
    for (what, text) in [("the runs page", &page), ("the API's runs", &runs), ("the service's log", &log)] {
        for civic in [&a, &b, &c, &bad12, &bad10] {
            assert_no_civic(what, text, civic);
        }
        for name in ["Hemlig", "Gömdsson", "Dold", "Skyddsson"] {
            assert!(!text.contains(name), "{what} names a protected person: {text}");
        }
    }
}
