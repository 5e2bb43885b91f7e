//! Issue 16, the sweep: every GET of the HTTP API (and `/healthz`, `/metrics`, a saved plan and
//! the lookup by body), with an admin's and a school admin's token, before and after a run of
//! the service that changes a civic-keyed person, makes another person protected and lets the
//! protected person leave; then the service's own log and the CLI's `runs`, `log` and `explain`.
//! No answer holds a civic number in any spelling the project recognises, nor a protected
//! person's names, name-derived username or birth date; a search by their name finds no one.

use crate::api16::{HEADER_P, Service};
use crate::daemon16::wait_for;
use crate::harness::*;

const SCHEDULE: &str = "\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"1s\"\n";

/// The persons' civic numbers, by `pnr` index.
const CIVIC: [usize; 7] = [11, 12, 13, 14, 15, 16, 17];

/// The ten digits of `pnr(i)` after the century: what every spelling of it holds.
fn ten(i: usize) -> String {
    pnr(i)[2..].replace('-', "")
}

/// The export: Anna keyed by her civic number (12 digits with a dash), Cecilia keyed by hers in
/// ten digits and none in `civic_no`, Bo, Cia (ten digits with a dash) and Dold with theirs in
/// `civic_no`, Hemlig protected, and two keys with one number (a conflict) at S2.
fn export(anna_family: &str, dold_protection: &str, hemlig: bool) -> String {
    let anna = pnr(11);
    let mut csv = format!(
        "{HEADER_P}\n{anna},Anna,{anna_family},{anna},student,S1,7A,,,\n{},Cecilia,Ström,,student,S2,8B,,,\n\
         2,Bo,Ek,{},student,S2,8B,,,\n4,Cia,Dahl,{},student,S1,7A,,,\n\
         5,Dold,Namnsson,{},student,S1,7A,,,{dold_protection}\n\
         6,Eva,Fors,{},student,S2,8B,,,\n7,Eva,Fors,{},student,S2,8B,,,\n",
        ten(12),
        pnr(13),
        &pnr(14)[2..],
        pnr(15).replace('-', ""),
        pnr(17),
        pnr(17),
    );
    if hemlig {
        csv.push_str(&format!("3,Hemlig,Gömdsson,{},student,S1,7A,,,Skyddad folkbokföring\n", pnr(16)));
    }
    csv
}

/// What a text must not show: every civic number (by the project's detector and by each
/// number's digits however they are separated), and the words given (case aside).
fn assert_clean(what: &str, text: &str, words: &[String]) {
    let found = findings(what, text, words);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// What [`assert_clean`] would fail on, one line each.
fn findings(what: &str, text: &str, words: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let scrubbed = scrub(line);
        for m in connector_api::civic::civic_numbers_in_text(&scrubbed) {
            let found = &scrubbed[m.range.clone()];
            let before = scrubbed[..m.range.start].chars().next_back();
            // A duration's or a ratio's digits (`1.234567891`, `0.5120330123`) are no number
            // anyone wrote; a civic number written with dots has six or eight digits before one.
            let decimal = before == Some('.') || found.split_once('.').is_some_and(|(int, _)| int.len() <= 3);
            if !decimal {
                out.push(format!("{what}: a civic number ({}) in {line:?}", m.masked));
            }
        }
        let digits: String = line.chars().filter(char::is_ascii_digit).collect();
        for i in CIVIC {
            if digits.contains(&ten(i)) {
                out.push(format!("{what}: pnr({i}) in {line:?}"));
            }
        }
        let lower = line.to_lowercase();
        for w in words {
            if lower.contains(&w.to_lowercase()) {
                out.push(format!("{what}: {w:?} in {line:?}"));
            }
        }
    }
    out
}

/// `line` with every enid id (a UUID) and every run of 16 or more letters and digits that holds
/// a letter (fingerprints, tokens, hashes) blanked: their decimal digits can happen to spell a
/// date and four digits (`a0511827-263d` reads as 051182-7263). A known number inside one is
/// still found by its digits.
fn scrub(line: &str) -> String {
    let line = &blank_uuids(line);
    let mut out = String::with_capacity(line.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.len() >= 16 && word.bytes().any(|b| b.is_ascii_alphabetic()) {
            out.push_str(&"#".repeat(word.len()));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in line.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// `line` with every UUID (8-4-4-4-12 hexadecimal digits) replaced by as many `#`.
fn blank_uuids(line: &str) -> String {
    let b = line.as_bytes();
    let shape = |at: usize| {
        at + 36 <= b.len()
            && b[at..at + 36]
                .iter()
                .enumerate()
                .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { *c == b'-' } else { c.is_ascii_hexdigit() })
    };
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if shape(i) {
            out.extend_from_slice(&[b'#'; 36]);
            i += 36;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| line.to_string())
}

/// The words no answer may hold for a protected person: the names, the username their names
/// would give, the birth date (a masked civic number shows it).
fn protected_words(given: &str, family: &str, plain_family: &str, civic: usize) -> Vec<String> {
    let born = &pnr(civic)[..8];
    vec![
        given.into(),
        family.into(),
        plain_family.into(),
        format!("{}.{}", given.to_lowercase(), plain_family.to_lowercase()),
        born.into(),
        format!("{}-****", &born[2..]),
    ]
}

/// A token and what to call it in a finding.
struct Who<'a> {
    label: &'a str,
    token: &'a str,
}

/// Calls every GET of the API (and the body lookups, a new plan and its saved copy) with both
/// tokens; returns (what was asked, status, body) for each.
fn sweep(env: &Env, api: &Service, whos: &[Who], keys: &[String]) -> Vec<(String, u16, String)> {
    let mut out = Vec::new();
    let get = |out: &mut Vec<(String, u16, String)>, label: &str, path: &str, token: Option<&str>| {
        let (status, body) = api.call("GET", path, token, None);
        out.push((format!("{label} GET {path}"), status, body));
    };
    get(&mut out, "anyone", "/healthz", None);
    let column = |c: &str| -> Vec<String> {
        env.sql_value(&format!("SELECT group_concat({c}, ' ') FROM identities"))
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    let (ids, usernames) = (column("id"), column("username"));
    for who in whos {
        let (l, t) = (who.label, Some(who.token));
        get(&mut out, l, "/metrics", t);
        get(&mut out, l, "/api/v1/runs", t);
        get(&mut out, l, "/api/v1/runs?limit=2", t);
        let (_, runs) = api.call("GET", "/api/v1/runs", t, None);
        let runs: serde_json::Value = serde_json::from_str(&runs).unwrap_or_default();
        let run_ids: Vec<i64> =
            runs.as_array().map(|a| a.iter().filter_map(|r| r["id"].as_i64()).collect()).unwrap_or_default();
        for id in &run_ids {
            get(&mut out, l, &format!("/api/v1/runs/{id}"), t);
            get(&mut out, l, &format!("/api/v1/log?run={id}"), t);
        }
        for q in [
            "",
            "?school=S1",
            "?school=S2",
            "?target=directory",
            "?action=create",
            "?action=update",
            "?action=rename",
            "?action=disable",
            "?result=ok",
            "?result=failed",
            "?limit=1",
            "?limit=2&before=1000000",
        ] {
            get(&mut out, l, &format!("/api/v1/log{q}"), t);
        }
        for p in ids.iter().chain(&usernames) {
            get(&mut out, l, &format!("/api/v1/log?person={p}"), t);
            get(&mut out, l, &format!("/api/v1/persons/{p}"), t);
        }
        get(&mut out, l, "/api/v1/conflicts", t);
        get(&mut out, l, "/api/v1/renames", t);
        // No first passwords on OpenLDAP: a claim that does not exist, answered without a value.
        get(&mut out, l, "/api/v1/passwords/claims/no-such-claim", t);
        for key in keys {
            let body = serde_json::json!({ "key": key }).to_string();
            let (status, text) = api.call("POST", "/api/v1/persons/lookup", t, Some(&body));
            // The key itself is not named: the message of a failed assertion would show it.
            out.push((format!("{l} POST /api/v1/persons/lookup (a key of {} characters)", key.len()), status, text));
        }
        let (status, plan) = api.call("POST", "/api/v1/plans", t, None);
        let plan_id =
            serde_json::from_str::<serde_json::Value>(&plan).ok().and_then(|p| p["plan_id"].as_str().map(String::from));
        out.push((format!("{l} POST /api/v1/plans"), status, plan));
        if let Some(id) = plan_id {
            let (status, saved) = api.call("GET", &format!("/api/v1/plans/{id}"), t, None);
            out.push((format!("{l} GET /api/v1/plans/{{id}}"), status, saved));
        }
    }
    out
}

/// `s` percent-encoded for a URL path or query.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Asserts that every answer of a sweep is clean; an explain of a protected person by enid id
/// (or by the pseudonym) may show the pseudonym, no other answer may.
fn assert_sweep_clean(answers: &[(String, u16, String)], words: &[String], pseudonyms: &[(String, String)]) {
    let mut found = Vec::new();
    for (what, status, body) in answers {
        if *status == 500 || *status == 0 {
            found.push(format!("{what}: {status} {body}"));
        }
        found.extend(findings(what, body, words));
        for (id, pseudonym) in pseudonyms {
            let own = what.ends_with(&format!("/persons/{id}")) || what.ends_with(&format!("/persons/{pseudonym}"));
            if !own && body.contains(pseudonym.as_str()) {
                found.push(format!("{what}: the pseudonym {pseudonym} shown: {body}"));
            }
        }
    }
    assert!(found.is_empty(), "{} findings:\n{}", found.len(), found.join("\n"));
}

/// Every search by a protected person's name, name-derived username, source key or civic number
/// finds no one, with either token, in the person lookups and in the log's `person=`.
fn assert_not_found_by_name(api: &Service, whos: &[Who], needles: &[String]) {
    let mut found = Vec::new();
    for who in whos {
        for n in needles {
            // A civic number goes in a body only (a URL holding one is refused).
            if !connector_api::civic::contains_civic(n) {
                let e = enc(n);
                for path in [format!("/api/v1/persons/{e}"), format!("/api/v1/log?person={e}")] {
                    let (status, body) = api.call("GET", &path, Some(who.token), None);
                    if status != 404 {
                        found.push(format!("{} GET {path}: {status} {body}", who.label));
                    }
                }
            }
            let body = serde_json::json!({ "key": n }).to_string();
            let (status, text) = api.call("POST", "/api/v1/persons/lookup", Some(who.token), Some(&body));
            if status != 404 {
                found.push(format!("{} lookup (a key of {} characters): {status} {text}", who.label, n.len()));
            }
        }
    }
    assert!(found.is_empty(), "found by name or key:\n{}", found.join("\n"));
}

/// The CLI's views: runs, the log (whole and by person), explain of every identity and of the
/// civic-keyed persons by their keys.
fn cli_outputs(env: &Env, keys: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = env.enid(&a);
        out.push((args.join(" "), format!("{}\n{}", r.stdout, r.stderr)));
    };
    for a in [
        ["runs"].as_slice(),
        &["runs", "--json"],
        &["log"],
        &["log", "--all"],
        &["log", "--all", "--json"],
        &["conflicts"],
        &["renames"],
    ] {
        run(a.iter().map(|s| s.to_string()).collect());
    }
    let ids = env.sql_value("SELECT group_concat(id, ' ') FROM identities");
    for id in ids.split(' ').filter(|s| !s.is_empty()) {
        run(vec!["explain".into(), id.into()]);
        run(vec!["explain".into(), id.into(), "--json".into()]);
        run(vec!["log".into(), "--person".into(), id.into()]);
    }
    for k in keys {
        run(vec!["explain".into(), k.clone()]);
        run(vec!["explain".into(), k.clone(), "--json".into()]);
    }
    for s in ["S1", "S2"] {
        run(vec!["log".into(), "--school".into(), s.into()]);
    }
    out
}

#[test]
fn api16sweep_no_answer_of_the_api_or_the_cli_shows_a_civic_number_or_a_protected_name() {
    let env = Env::with_config(SCHEDULE);
    std::fs::write(env.path("persons.csv"), export("Berg", "", true)).unwrap();
    env.enid(&["plan", "--save"]).ok();
    let id = env.enid(&["plan", "--json"]).ok().json()["plan_id"].as_str().unwrap().to_string();
    env.enid(&["apply", "--plan", &id, "--accept-protected", "--yes"]).ok();
    let people = env.people();
    assert_eq!(people.len(), 6, "five named and one pseudonym, the conflict held: {:?}", people.keys());
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let lisa =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    let whos = [Who { label: "admin", token: &admin }, Who { label: "school_admin", token: &lisa }];
    let hemlig = env.sql_value("SELECT DISTINCT identity_id FROM source_records WHERE protected = 1");
    let hemlig_pseudonym = env.sql_value(&format!("SELECT username FROM identities WHERE id = '{hemlig}'"));
    let dold = env.sql_value("SELECT id FROM identities WHERE username = 'dold.namnsson'");
    let anna = env.sql_value("SELECT id FROM identities WHERE username = 'anna.berg'");
    // Every source key and civic number the persons have, in the spellings the export uses and in
    // the others.
    let mut keys: Vec<String> = vec![pnr(11), ten(12), "2".into(), "4".into(), "5".into()];
    for i in CIVIC {
        keys.extend([pnr(i), pnr(i).replace('-', ""), pnr(i)[2..].to_string(), ten(i)]);
    }
    keys.sort();
    keys.dedup();
    let hemlig_words = protected_words("Hemlig", "Gömdsson", "Gomdsson", 16);
    let hemlig_needles: Vec<String> = vec![
        "Hemlig".into(),
        "Gömdsson".into(),
        "hemlig.gomdsson".into(),
        "Hemlig Gömdsson".into(),
        "3".into(),
        pnr(16),
        ten(16),
    ];

    // The service's first run (a full one, right after the start) ends before the sweep; it
    // may end before the API is asked, so the CLI's last run is read from the state.
    let cli_run: i64 = env.sql_value("SELECT CAST(max(id) AS TEXT) FROM runs").parse().unwrap();
    let api = Service::start(&env);
    let runs = |api: &Service| api.json("GET", "/api/v1/runs", &admin, None).as_array().unwrap().clone();
    let settled = |api: &Service, after: i64| {
        let all = runs(api);
        all.iter().all(|r| r["status"] != "running")
            && all.iter().filter_map(|r| r["id"].as_i64()).max().is_some_and(|n| n > after)
    };
    wait_for("the service's first run", 60, || settled(&api, cli_run));
    // Before any change: every answer, both tokens.
    let answers = sweep(&env, &api, &whos, &keys);
    let found = |label: &str, path: &str| {
        answers.iter().find(|(w, _, _)| w == &format!("{label} GET {path}")).map(|(_, s, b)| (*s, b.clone()))
    };
    assert_eq!(found("admin", &format!("/api/v1/persons/{anna}")).map(|a| a.0), Some(200));
    assert_eq!(found("school_admin", &format!("/api/v1/persons/{hemlig}")).map(|a| a.0), Some(200));
    assert_eq!(found("admin", "/api/v1/conflicts").map(|a| a.0), Some(200));
    assert!(answers.iter().any(|(w, s, _)| w.starts_with("admin POST /api/v1/persons/lookup") && *s == 200));
    let plans = answers.iter().filter(|(w, s, _)| w.ends_with("/plans/{id}") && *s == 200).count();
    assert_eq!(plans, 1, "the admin's saved plan read back");
    assert_sweep_clean(&answers, &hemlig_words, &[(hemlig.clone(), hemlig_pseudonym.clone())]);
    assert_not_found_by_name(&api, &whos, &hemlig_needles);

    // The service follows an edit: Anna (keyed by her civic number) gets a new family name, Dold
    // becomes protected, Hemlig leaves. The protected persons' changes wait; approved through the
    // API, the next run carries them out.
    let logged_before = std::fs::read(env.path("service.log")).unwrap().len();
    let before = runs(&api).iter().filter_map(|r| r["id"].as_i64()).max().unwrap();
    std::fs::write(env.path("persons.csv"), export("Lind", "Skyddad folkbokföring", false)).unwrap();
    wait_for("Anna's new family name", 60, || env.people().get("anna.berg").is_some_and(|e| e.one("sn") == "Lind"));
    wait_for("the run of the edit", 60, || settled(&api, before));
    let run = runs(&api).iter().filter_map(|r| r["id"].as_i64()).max().unwrap();
    let approved =
        api.json("POST", &format!("/api/v1/runs/{run}/approve"), &admin, Some(r#"{"accept_protected": true}"#));
    assert!(approved["approved"].as_u64() >= Some(2), "Dold's and Hemlig's changes: {approved}");
    assert_clean("the approval", &approved.to_string(), &hemlig_words);
    wait_for("Dold's pseudonym", 60, || !env.people().contains_key("dold.namnsson"));
    wait_for("Hemlig's disable in the log", 60, || {
        let log = api.json("GET", &format!("/api/v1/log?person={hemlig}&action=disable"), &admin, None);
        log["rows"].as_array().is_some_and(|r| r.iter().any(|r| r["result"] == "ok"))
    });
    let dold_pseudonym = env.sql_value(&format!("SELECT username FROM identities WHERE id = '{dold}'"));
    assert!(dold_pseudonym.starts_with('u'), "{dold_pseudonym}");

    let mut words = hemlig_words.clone();
    words.extend(protected_words("Dold", "Namnsson", "Namnsson", 15));
    let pseudonyms = [(hemlig.clone(), hemlig_pseudonym.clone()), (dold.clone(), dold_pseudonym.clone())];
    let answers = sweep(&env, &api, &whos, &keys);
    let log = answers.iter().find(|(w, _, _)| w == "admin GET /api/v1/log").unwrap().2.clone();
    assert!(log.contains(&anna) && log.contains(&dold) && log.contains(&hemlig), "the run's rows: {log}");
    assert!(log.contains("\"update\""), "Anna's update: {log}");
    assert_sweep_clean(&answers, &words, &pseudonyms);
    let mut needles = hemlig_needles.clone();
    needles.extend(["Dold".into(), "Namnsson".into(), "dold.namnsson".into(), "5".into(), pnr(15), ten(15)]);
    assert_not_found_by_name(&api, &whos, &needles);
    drop(api);

    // The service's own log: no number, no protected name (Dold's only from the protection on:
    // before it, the name was a name like any other).
    let service_bytes = std::fs::read(env.path("service.log")).unwrap();
    let service_log = String::from_utf8_lossy(&service_bytes);
    assert_clean("the service's log", &service_log, &hemlig_words);
    for line in service_log.lines() {
        assert!(!line.contains(&hemlig_pseudonym), "the pseudonym in the service's log: {line}");
    }
    let dold_words = protected_words("Dold", "Namnsson", "Namnsson", 15);
    assert_clean(
        "the service's log once Dold is protected",
        &String::from_utf8_lossy(&service_bytes[logged_before..]),
        &dold_words,
    );
    // The CLI's views, after everything.
    let mut cli_keys = vec![pnr(11), ten(12)];
    cli_keys.extend(["2".to_string(), "4".to_string()]);
    let mut found = Vec::new();
    for (what, text) in cli_outputs(&env, &cli_keys) {
        found.extend(findings(&what, &text, &words));
        for (id, pseudonym) in &pseudonyms {
            let own = what.starts_with("explain") && what.contains(id.as_str());
            if !own && text.contains(pseudonym.as_str()) {
                found.push(format!("{what}: the pseudonym {pseudonym}: {text}"));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// A person the source marks protected while the service runs: from the export that says so
/// on, before anyone approves the pseudonym, no answer shows their name, the username made of it,
/// or their birth date, and a search by name finds no one (the protection is the source's word,
/// not the approval's).
#[test]
fn api16sweep_a_person_marked_protected_is_shown_by_id_only_while_the_pseudonym_waits() {
    let env = Env::with_config(SCHEDULE);
    std::fs::write(env.path("persons.csv"), export("Berg", "", false)).unwrap();
    env.apply();
    assert!(env.people().contains_key("dold.namnsson"));
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let lisa =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    let whos = [Who { label: "admin", token: &admin }, Who { label: "school_admin", token: &lisa }];
    let cli_run: i64 = env.sql_value("SELECT CAST(max(id) AS TEXT) FROM runs").parse().unwrap();
    let api = Service::start(&env);
    let runs = |api: &Service| api.json("GET", "/api/v1/runs", &admin, None).as_array().unwrap().clone();
    let settled = |api: &Service, after: i64| {
        let all = runs(api);
        all.iter().all(|r| r["status"] != "running")
            && all.iter().filter_map(|r| r["id"].as_i64()).max().is_some_and(|n| n > after)
    };
    wait_for("the service's first run", 60, || settled(&api, cli_run));
    let before = runs(&api).iter().filter_map(|r| r["id"].as_i64()).max().unwrap();
    std::fs::write(env.path("persons.csv"), export("Lind", "Skyddad folkbokföring", false)).unwrap();
    wait_for("Anna's new family name", 60, || env.people().get("anna.berg").is_some_and(|e| e.one("sn") == "Lind"));
    wait_for("the run of the edit", 60, || settled(&api, before));
    assert!(env.people().contains_key("dold.namnsson"), "the pseudonym waits for approval");

    let words = protected_words("Dold", "Namnsson", "Namnsson", 15);
    let answers = sweep(&env, &api, &whos, &[pnr(15), "5".into()]);
    assert_sweep_clean(&answers, &words, &[]);
    let needles: Vec<String> = vec!["Dold".into(), "Namnsson".into(), "dold.namnsson".into(), "5".into(), pnr(15)];
    assert_not_found_by_name(&api, &whos, &needles);
    drop(api);
    let found: Vec<String> =
        cli_outputs(&env, &["5".into()]).iter().flat_map(|(what, text)| findings(what, text, &words)).collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
}
