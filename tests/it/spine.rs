//! The spine: CSV → identities → plan → OpenLDAP, with state, dry run and apply.

use crate::harness::*;

const ANNA: &str = "20150916-1236";
const BO: &str = "20120315-2341";
const CY: &str = "19850505-4562";

fn three() -> Vec<String> {
    vec![
        row("1", "Anna", "Berg", ANNA, "student", "SKOLA1", "7A"),
        row("2", "Bo", "Ek", BO, "student", "SKOLA2", "8B"),
        row("3", "Cy", "Åström", CY, "staff", "SKOLA1", "7A|8B"),
    ]
}

fn refs(rows: &[String]) -> Vec<&str> {
    rows.iter().map(String::as_str).collect()
}

/// No command output may contain a full civic number.
fn assert_no_civic(run: &Run) {
    for civic in [ANNA, BO, CY] {
        let digits = civic.replace('-', "");
        for text in [&run.stdout, &run.stderr] {
            assert!(!text.contains(civic) && !text.contains(&digits), "civic number leaked:\n{text}");
        }
    }
}

#[test]
fn first_apply_creates_accounts_and_a_second_plan_is_empty() {
    let env = Env::new();
    env.csv(&refs(&three()));
    let plan = env.enid(&["plan", "--json"]).ok();
    assert_no_civic(&plan);
    let json = plan.json();
    assert_eq!(json["summary"]["create"], 3);
    assert_eq!(json["operations"].as_array().map(Vec::len), Some(3));
    assert!(env.people().is_empty(), "plan must not change the directory");

    let applied = env.apply();
    assert_no_civic(&applied);
    let people = env.people();
    let names: Vec<&String> = people.keys().collect();
    assert_eq!(names, ["anna.berg", "bo.ek", "cy.astrom"]);
    let cy = &people["cy.astrom"];
    assert_eq!(cy.dn, format!("uid=cy.astrom,{BASE}"));
    assert_eq!(cy.one("givenName"), "Cy");
    assert_eq!(cy.one("sn"), "Åström");
    assert_eq!(cy.one("cn"), "Cy Åström");
    assert_eq!(cy.one("displayName"), "Cy Åström");
    assert_eq!(cy.one("employeeType"), "staff");
    assert_eq!(cy.one("departmentNumber"), "SKOLA1");
    assert_eq!(cy.one("employeeNumber").len(), 36, "the enid id is a UUID");

    let summary = env.summary();
    assert_eq!(
        summary,
        serde_json::json!({"create": 0, "rename": 0, "move": 0, "update": 0, "enable": 0, "disable": 0, "delete": 0, "unchanged": 3})
    );
    // Applying again is a no-op.
    env.apply();
    assert_eq!(env.people().len(), 3);
}

#[test]
fn a_name_change_updates_attributes_but_keeps_the_username() {
    let env = Env::new();
    env.csv(&refs(&three()));
    env.apply();
    let before = env.people()["anna.berg"].clone();

    let mut rows = three();
    rows[0] = row("1", "Anna", "Lind", ANNA, "student", "SKOLA1", "7A");
    env.csv(&refs(&rows));
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["update"], 1);
    let op = &plan["operations"][0];
    assert_eq!(op["action"], "update");
    assert_eq!(op["username"], "anna.berg");
    let changed: Vec<&str> =
        op["op"]["changes"].as_array().unwrap().iter().map(|c| c["attr"].as_str().unwrap()).collect();
    assert_eq!(changed, ["cn", "displayName", "sn"], "only the attributes that differ");

    env.apply();
    let after = env.people();
    let anna = &after["anna.berg"];
    assert_eq!(anna.one("sn"), "Lind");
    assert_eq!(anna.one("cn"), "Anna Lind");
    assert_eq!(anna.one("entryUUID"), before.one("entryUUID"), "same entry, not a new one");
    assert_eq!(anna.one("employeeNumber"), before.one("employeeNumber"));
    assert_eq!(env.summary()["update"], 0);
}

#[test]
fn a_school_change_updates_the_school() {
    let env = Env::new();
    env.csv(&refs(&three()));
    env.apply();
    let mut rows = three();
    rows[1] = row("2", "Bo", "Ek", BO, "student", "SKOLA3", "9C");
    env.csv(&refs(&rows));
    let plan = env.enid(&["plan"]).ok();
    assert!(plan.stdout.contains("departmentNumber: \"SKOLA2\" → \"SKOLA3\""), "{}", plan.stdout);
    env.apply();
    assert_eq!(env.people()["bo.ek"].one("departmentNumber"), "SKOLA3");
    // The log finds the change under the new school.
    let log = env.enid(&["log", "--school", "SKOLA3"]).ok();
    assert!(log.stdout.contains("bo.ek") && log.stdout.contains("update"), "{}", log.stdout);
    assert!(!log.stdout.contains("anna.berg"), "{}", log.stdout);
}

#[test]
fn a_leaver_is_disabled_and_a_returner_enabled_with_the_same_account() {
    let env = Env::new();
    env.csv(&refs(&three()));
    env.apply();
    let uuid = env.people()["bo.ek"].one("entryUUID");

    let rows = three();
    env.csv(&[&rows[0], &rows[2]]);
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["disable"], 1);
    assert_eq!(plan["summary"]["delete"], 0);
    assert_eq!(plan["operations"][0]["reason"], "no longer in any source");
    env.apply();
    let disabled = env.search("ou=disabled,ou=people,dc=example,dc=org", "(uid=bo.ek)");
    assert_eq!(disabled.len(), 1, "moved to the disabled OU");
    assert_eq!(disabled[0].one("entryUUID"), uuid);
    assert_eq!(env.summary()["disable"], 0, "disabling is done once");

    let explain = env.enid(&["explain", "bo.ek"]).ok();
    assert!(explain.stdout.contains("disabled"), "{}", explain.stdout);
    assert!(explain.stdout.contains("20120315-****"), "{}", explain.stdout);
    assert_no_civic(&explain);

    env.csv(&refs(&rows));
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["enable"], 1);
    assert_eq!(plan["summary"]["create"], 0);
    env.apply();
    let bo = &env.people()["bo.ek"];
    assert_eq!(bo.dn, format!("uid=bo.ek,{BASE}"));
    assert_eq!(bo.one("entryUUID"), uuid, "the same account came back");
}

#[test]
fn an_end_date_in_the_past_disables() {
    let env = Env::new();
    env.csv(&refs(&three()));
    env.apply();
    let mut rows = three();
    rows[0] = format!("1,Anna,Berg,{ANNA},student,SKOLA1,7A,2020-08-15,2026-06-10");
    env.csv(&refs(&rows));
    let plan = env.enid(&["plan", "--json", "--now", "2026-06-11"]).ok().json();
    assert_eq!(plan["summary"]["disable"], 1);
    assert_eq!(plan["operations"][0]["reason"], "end date 2026-06-10 has passed");
    let plan = env.enid(&["plan", "--json", "--now", "2026-06-10"]).ok().json();
    assert_eq!(plan["summary"]["disable"], 0, "still active on the end date itself");
}

#[test]
fn bad_rows_are_reported_with_their_line_and_left_out() {
    let env = Env::new();
    let mut rows: Vec<String> =
        (0..100).map(|i| row(&format!("p{i}"), "Test", &format!("Person{i}"), "", "student", "S1", "")).collect();
    rows.insert(3, row("bad", "Bad", "Civic", "19870704-9996", "student", "S1", ""));
    env.csv(&refs(&rows));
    let run = env.apply();
    assert!(run.stderr.contains("persons.csv:5: civic_no 19870704-**** fails its check digit"), "{}", run.stderr);
    assert!(!run.stderr.contains("19870704-9996"));
    assert_eq!(env.people().len(), 100);

    // Over the share of bad rows (default 2%), the run stops before planning.
    rows.push(row("", "No", "Id", "", "student", "S1", ""));
    rows.push(row("x", "Bad", "Role", "", "pirate", "S1", ""));
    env.csv(&refs(&rows));
    let run = env.enid(&["plan"]).fails();
    let line = run.stderr.lines().last().unwrap_or_default();
    assert!(line.starts_with("enid: source \"sis\": 3 of 103 rows rejected"), "{}", run.stderr);
    assert!(line.contains("persons.csv:103: person_id is empty"), "{line}");
}

#[test]
fn an_empty_or_unreadable_source_never_means_everyone_left() {
    let env = Env::new();
    env.csv(&refs(&three()));
    env.apply();
    env.csv(&[]);
    let run = env.enid(&["apply", "--yes"]).fails();
    assert!(run.stderr.contains("source \"sis\": yielded zero valid records"), "{}", run.stderr);
    std::fs::write(env.path("persons.csv"), "person_id,given_name,family_name,role\n1,A,B,student\n").unwrap();
    let run = env.enid(&["apply", "--yes"]).fails();
    assert!(run.stderr.contains("lacks required column(s) civic_no, school_unit"), "{}", run.stderr);
    std::fs::remove_file(env.path("persons.csv")).unwrap();
    let run = env.enid(&["apply", "--yes"]).fails();
    assert!(run.stderr.contains("source \"sis\": cannot read"), "{}", run.stderr);
    let people = env.people();
    assert_eq!(people.len(), 3);
    assert!(people.values().all(|e| e.dn.ends_with(&format!(",{BASE}")) && !e.dn.contains("disabled")));
}

#[test]
fn an_unowned_entry_is_never_touched_and_its_name_never_allocated() {
    let env = Env::new();
    env.add(
        &format!("uid=anna.berg,{BASE}"),
        &[("objectClass", &["inetOrgPerson"]), ("uid", &["anna.berg"]), ("cn", &["Manual"]), ("sn", &["Manual"])],
    );
    env.add(
        &format!("uid=teacher.x,{BASE}"),
        &[("objectClass", &["inetOrgPerson"]), ("uid", &["teacher.x"]), ("cn", &["X"]), ("sn", &["X"])],
    );
    let before = env.people();
    env.csv(&refs(&three()));
    let plan = env.enid(&["plan", "--json"]).ok().json();
    let text = plan["operations"].to_string();
    assert!(!text.contains("uid=anna.berg,") && !text.contains("teacher.x"), "{text}");
    assert_eq!(plan["unmanaged"]["directory"], 2);
    env.apply();
    // No namesake beside it: the entry may be Anna's, made before enid. She waits for a decision.
    let after = env.people();
    assert!(!after.contains_key("anna.berg2"), "no namesake without a decision: {:?}", after.keys());
    assert!(plan["blocked"].to_string().contains("--not-theirs"), "{}", plan["blocked"]);
    // The operator decides it is not hers: she gets a name of her own.
    env.enid(&["adopt", "--entry", &format!("uid=anna.berg,{BASE}"), "--person", "sis/1", "--not-theirs", "--yes"])
        .ok();
    env.apply();
    let after = env.people();
    assert!(after.contains_key("anna.berg2"), "the namesake gets a counter: {:?}", after.keys());
    for uid in ["anna.berg", "teacher.x"] {
        assert_eq!(after[uid].attrs, before[uid].attrs, "{uid} was modified");
    }
    // Removing everyone from the source leaves the unowned entries as they were.
    env.csv(&[&three()[1]]);
    env.apply();
    let last = env.people();
    assert_eq!(last["teacher.x"].attrs, before["teacher.x"].attrs);
    assert_eq!(last["anna.berg"].attrs, before["anna.berg"].attrs);
}

#[test]
fn slapd_stopped_mid_apply_converges_without_duplicates() {
    let env = Env::new();
    let n = 4000;
    let rows: Vec<String> =
        (0..n).map(|i| row(&format!("p{i:05}"), "Elev", &format!("Nummer{i}"), "", "student", "S1", "")).collect();
    env.csv(&refs(&rows));
    // stdout is not read while the test waits: a piped plan of 4,000 lines would block enid.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_enid"))
        .arg("--config")
        .arg(env.path("enid.toml"))
        .args(["apply", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some accounts exist, then take the server away.
    let url = env.slapd.url();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let count = search(&url, BASE, "(objectClass=inetOrgPerson)").len();
        if count >= 50 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "apply made no progress");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut slapd = env.slapd_handle();
    slapd.stop();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the interrupted apply must fail");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("enid: ") && last.contains("failed or were not sent"), "{stderr}");
    eprintln!("interrupted apply said: {last}");

    slapd.restart();
    let partial = env.people().len();
    assert!(partial < n, "the server stopped before the end ({partial})");
    env.apply();
    let people = env.people();
    assert_eq!(people.len(), n, "every person has exactly one account");
    let ids: std::collections::HashSet<String> = people.values().map(|e| e.one("employeeNumber")).collect();
    assert_eq!(ids.len(), n, "no identity has two accounts");
    assert_eq!(env.summary()["unchanged"], n);
    let log = env.enid(&["log", "--run", "1"]).ok();
    assert!(log.stdout.contains("failed") || log.stdout.contains("skipped"), "{}", log.stdout);
}

#[test]
fn a_saved_plan_applies_only_while_the_inputs_give_the_same_plan() {
    let env = Env::new();
    env.csv(&refs(&three()));
    let saved = env.enid(&["plan", "--save", "--json"]).ok().json();
    let id = saved["plan_id"].as_str().unwrap().to_string();

    // The inputs change: the saved plan is refused, with the reason.
    let mut rows = three();
    rows.push(row("4", "Dag", "Ny", "", "student", "SKOLA2", ""));
    env.csv(&refs(&rows));
    let run = env.enid(&["apply", "--plan", &id]).fails();
    assert!(run.stderr.contains(&format!("plan {id} no longer matches the inputs")), "{}", run.stderr);
    assert!(run.stderr.contains("create directory dag.ny"), "{}", run.stderr);
    assert!(env.people().is_empty());

    // Back to the reviewed inputs: the plan applies, without a question.
    env.csv(&refs(&three()));
    env.enid(&["apply", "--plan", &id]).ok();
    assert_eq!(env.people().len(), 3);
    let run = env.enid(&["apply", "--plan", "0000000000000000"]).fails();
    assert!(run.stderr.contains("no saved plan 0000000000000000"), "{}", run.stderr);
}

#[test]
fn apply_without_a_terminal_or_yes_refuses() {
    let env = Env::new();
    env.csv(&refs(&three()));
    let run = env.enid(&["apply"]).fails();
    assert!(run.stderr.contains("refusing to apply without confirmation"), "{}", run.stderr);
    // One line for the failure; notes about a new state come before it.
    let lines: Vec<&str> = run.stderr.lines().filter(|l| !l.starts_with("enid: note:")).collect();
    assert_eq!(lines.len(), 1, "one line: {}", run.stderr);
    assert!(env.people().is_empty());
}

#[test]
fn check_names_the_component_that_fails() {
    let env = Env::new();
    env.csv(&refs(&three()));
    env.enid(&["check"]).ok();
    let mut slapd = env.slapd_handle();
    slapd.stop();
    let run = env.enid(&["check"]).fails();
    assert!(run.stdout.contains("FAILED  target \"directory\""), "{}", run.stdout);
    assert!(run.stderr.contains("check failed for target \"directory\""), "{}", run.stderr);
    std::fs::write(env.path("ldap.secret"), "wrong\n").unwrap();
    slapd.restart();
    let run = env.enid(&["check"]).fails();
    assert!(run.stdout.contains("invalid credentials"), "{}", run.stdout);
    assert!(!run.stdout.contains("wrong") && !run.stderr.contains("wrong"), "the password leaked");
}

#[test]
fn explain_and_log_show_a_person_with_a_masked_civic_number() {
    let env = Env::new();
    env.csv(&refs(&three()));
    let before = env.enid(&["explain", "1"]).ok();
    assert!(before.stdout.contains("directory: create (new person)"), "{}", before.stdout);
    env.apply();
    let run = env.enid(&["explain", "anna.berg", "--json"]).ok();
    assert_no_civic(&run);
    let json = run.json();
    assert_eq!(json["records_now"][0]["civic_no"], "20150916-****");
    assert_eq!(json["records_stored"][0]["civic_no"], "20150916-****");
    assert_eq!(json["accounts"][0]["status"], "active");
    assert_eq!(json["next_run"].as_array().map(Vec::len), Some(0));
    let log = env.enid(&["log", "--person", "anna.berg"]).ok();
    let rows: Vec<&str> = log.stdout.lines().filter(|l| !l.starts_with("== run")).collect();
    assert_eq!(rows.len(), 1, "one row after its run's line: {}", log.stdout);
    assert!(log.stdout.contains("create") && log.stdout.contains("ok"), "{}", log.stdout);
}

#[test]
fn disabling_by_attribute_is_reversible_and_secrets_can_come_from_the_environment() {
    let env = Env::with_config(
        "bind_password_env = \"ENID_TEST_LDAP_PASSWORD\"\n[targets.directory.disable]\nmethod = \"attribute\"\nattribute = \"description\"\nvalue = \"disabled by enid\"",
    );
    // The config names an environment variable instead of the file.
    let config =
        std::fs::read_to_string(env.path("enid.toml")).unwrap().replace("bind_password_file = \"ldap.secret\"\n", "");
    std::fs::write(env.path("enid.toml"), config).unwrap();
    env.csv(&refs(&three()));
    let run = env.enid(&["check"]).fails();
    assert!(run.stderr.contains("target \"directory\": bind password of [targets.directory]: the environment variable named by the *_env key is not set"), "{}", run.stderr);

    let enid = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_enid"))
            .arg("--config")
            .arg(env.path("enid.toml"))
            .args(args)
            .env("ENID_TEST_LDAP_PASSWORD", "secret")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    enid(&["apply", "--yes"]);
    env.csv(&[&three()[0], &three()[2]]);
    enid(&["apply", "--yes"]);
    let bo = &env.people()["bo.ek"];
    assert_eq!(bo.dn, format!("uid=bo.ek,{BASE}"), "stays where it is");
    assert_eq!(bo.get("description"), ["disabled by enid"]);
    assert!(enid(&["plan"]).contains("No changes."));

    env.csv(&refs(&three()));
    let plan = enid(&["plan"]);
    assert!(plan.contains("enable (1)"), "{plan}");
    enid(&["apply", "--yes"]);
    assert!(env.people()["bo.ek"].get("description").is_empty(), "the mark is removed on enable");
}

#[test]
fn the_config_comes_from_enid_config_and_bad_keys_name_their_line() {
    let env = Env::new();
    env.csv(&refs(&three()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enid"))
        .arg("check")
        .env("ENID_CONFIG", env.path("enid.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = std::fs::read_to_string(env.path("enid.toml")).unwrap().replace("base_dn =", "basedn =");
    std::fs::write(env.path("enid.toml"), config).unwrap();
    let run = env.enid(&["plan"]).fails();
    assert!(run.stderr.contains("enid.toml: line 13: unknown field `basedn`"), "{}", run.stderr);
}

#[test]
fn a_returner_whose_name_changed_is_updated_and_enabled_in_one_run() {
    let env = Env::new();
    env.csv(&refs(&three()));
    env.apply();
    env.csv(&[&three()[0], &three()[2]]);
    env.apply();
    let mut rows = three();
    rows[1] = row("2", "Bo", "Ekholm", BO, "student", "SKOLA3", "9A");
    env.csv(&refs(&rows));
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!((plan["summary"]["enable"].as_u64(), plan["summary"]["update"].as_u64()), (Some(1), Some(1)));
    let run = env.apply();
    assert!(run.stdout.contains("0 failed"), "{}", run.stdout);
    let bo = &env.people()["bo.ek"];
    assert_eq!(bo.dn, format!("uid=bo.ek,{BASE}"));
    assert_eq!(bo.one("sn"), "Ekholm");
    assert_eq!(bo.one("departmentNumber"), "SKOLA3");
    assert!(env.enid(&["plan"]).ok().stdout.contains("No changes."));
}

#[test]
fn a_plan_over_a_threshold_is_held_until_accepted_by_id() {
    let env = Env::new();
    let rows: Vec<String> =
        (0..20).map(|i| row(&format!("p{i}"), "Elev", &format!("Nummer{i}"), "", "student", "S1", "")).collect();
    env.csv(&refs(&rows));
    env.apply();
    // Twelve leave at once: more than the floor of ten disables. (The source shrinks too: the
    // operator has confirmed that with --accept-shrink.)
    env.csv(&refs(&rows[12..]));
    let plan = env.enid(&["plan", "--accept-shrink"]).ok();
    assert!(plan.stdout.contains("HELD: this plan goes over a threshold"), "{}", plan.stdout);
    assert!(plan.stdout.contains("12 disable of 20 owned accounts (60.0%), over the limit of 10"), "{}", plan.stdout);
    let run = env.enid(&["apply", "--yes", "--accept-shrink"]).fails();
    assert!(run.stderr.contains("is held, nothing was applied"), "{}", run.stderr);
    assert!(env.people().values().all(|e| !e.dn.contains("disabled")), "nothing was disabled");

    let saved = env.enid(&["plan", "--save", "--json", "--accept-shrink"]).ok().json();
    let id = saved["plan_id"].as_str().unwrap().to_string();
    assert_eq!(saved["held"][0]["action"], "disable");
    env.enid(&["apply", "--plan", &id, "--accept-shrink"]).fails();
    env.enid(&["apply", "--plan", &id, "--accept-threshold", "--accept-shrink"]).ok();
    assert_eq!(env.search("ou=disabled,ou=people,dc=example,dc=org", "(objectClass=inetOrgPerson)").len(), 12);
}

#[test]
fn a_source_that_shrinks_by_a_third_stops_the_run() {
    let env = Env::new();
    let rows: Vec<String> =
        (0..300).map(|i| row(&format!("p{i}"), "Elev", &format!("Nummer{i}"), "", "student", "S1", "")).collect();
    env.csv(&refs(&rows));
    env.apply();
    env.csv(&refs(&rows[..210])); // 30% fewer
    let run = env.enid(&["plan"]).fails();
    let line = run.stderr.lines().last().unwrap_or_default();
    assert!(
        line.contains("source \"sis\": 210 valid records, 30.0% fewer than the 300 of the last applied run")
            && line.contains("stopped before planning"),
        "{line}"
    );
    env.enid(&["apply", "--yes"]).fails();
    assert!(env.people().values().all(|e| !e.dn.contains("disabled")), "nothing was disabled");
    // An operator who knows they left says so; the disable threshold still holds the plan.
    let run = env.enid(&["apply", "--yes", "--accept-shrink"]).fails();
    assert!(run.stderr.contains("is held"), "{}", run.stderr);
    let id =
        env.enid(&["plan", "--save", "--json", "--accept-shrink"]).ok().json()["plan_id"].as_str().unwrap().to_string();
    env.enid(&["apply", "--plan", &id, "--accept-threshold", "--accept-shrink"]).ok();
    assert_eq!(env.search("ou=disabled,ou=people,dc=example,dc=org", "(objectClass=inetOrgPerson)").len(), 90);
    // The applied run is the new reference.
    env.enid(&["plan"]).ok();
}

#[test]
fn partial_approval_applies_only_the_chosen_part_of_a_saved_plan() {
    let env = Env::new();
    let rows: Vec<String> =
        (0..15).map(|i| row(&format!("p{i}"), "Elev", &format!("Nummer{i}"), "", "student", "S1", "")).collect();
    env.csv(&refs(&rows));
    env.apply();
    // Eleven leave (held: over the floor of ten disables), two arrive at two schools.
    let mut now: Vec<String> = rows[11..].to_vec();
    now.push(row("n1", "Ny", "Elev", "", "student", "S1", ""));
    now.push(row("n2", "Ny", "Annan", "", "student", "S2", ""));
    env.csv(&refs(&now));
    let saved = env.enid(&["plan", "--save", "--json", "--accept-shrink"]).ok().json();
    assert_eq!(saved["held"][0]["action"], "disable");
    let id = saved["plan_id"].as_str().unwrap().to_string();

    // Only the creates of S2: no threshold applies to them.
    env.enid(&["apply", "--plan", &id, "--only", "create", "--school", "S2", "--accept-shrink"]).ok();
    let people = env.people();
    assert!(people.contains_key("ny.annan") && !people.contains_key("ny.elev"), "{:?}", people.keys());
    assert!(people.values().all(|e| !e.dn.contains("disabled")));
    let plan = env.enid(&["plan", "--json", "--accept-shrink"]).ok().json();
    assert_eq!((plan["summary"]["create"].as_u64(), plan["summary"]["disable"].as_u64()), (Some(1), Some(11)));
    // Arguments are checked before anything is read.
    let run = env.enid(&["apply", "--plan", "0", "--only", "pirate"]).fails();
    assert!(run.stderr.contains("--only \"pirate\""), "{}", run.stderr);
    let run = env.enid(&["apply", "--plan", "0", "--only", "create", "--accept-shrink"]).fails();
    assert!(run.stderr.contains("no saved plan 0"), "{}", run.stderr);
}

#[test]
fn excluded_accounts_and_persons_are_never_touched() {
    let env = Env::new();
    env.csv(&refs(&three()));
    env.apply();
    let before = env.people();
    // Bo's account is a manual exception on the directory; Anna is excluded everywhere.
    let config = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    let config = config.replace("[sources.sis]", "[identity]\nexclude = [\"sis/1\"]\n\n[sources.sis]")
        + "\n[targets.directory.exclude]\nusernames = [\"bo.ek\"]\n";
    std::fs::write(env.path("enid.toml"), config).unwrap();
    env.csv(&[
        &row("1", "Anna", "Lind", ANNA, "student", "SKOLA1", "7A"),
        &row("3", "Cy", "Åström", CY, "staff", "SKOLA2", ""),
    ]);
    let plan = env.enid(&["plan", "--json"]).ok().json();
    let ops = plan["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "only Cy's school change: {ops:?}");
    assert_eq!(ops[0]["username"], "cy.astrom");
    env.apply();
    let after = env.people();
    assert_eq!(after["anna.berg"].attrs, before["anna.berg"].attrs);
    assert_eq!(after["bo.ek"].attrs, before["bo.ek"].attrs);
    assert_eq!(after["bo.ek"].dn, before["bo.ek"].dn, "not disabled");
}
