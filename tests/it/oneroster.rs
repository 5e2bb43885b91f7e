//! OneRoster → a real slapd, day 1 then day 2: a bulk bundle provisions pupils and staff (a
//! teacher at two schools, classes and teaching groups per school unit, guardians and disabled
//! users skipped and counted); a delta bundle the next day changes only what it names, merged with
//! what the state kept of the bulk read; a delta before any bulk read, or read again as a full
//! export, never removes anyone.

use crate::harness::*;

/// The fixture bundle `name` of the OneRoster crate, copied to `bundle` in the environment.
fn put_bundle(env: &Env, name: &str) {
    let from = repo().join("connectors/source-oneroster/tests/fixtures").join(name);
    let to = env.path("bundle");
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir_all(&to).expect("bundle dir");
    for f in std::fs::read_dir(&from).expect("fixture") {
        let f = f.expect("entry").path();
        std::fs::copy(&f, to.join(f.file_name().expect("name"))).expect("copy");
    }
}

fn oneroster_env() -> Env {
    let env = Env::with_config(
        "\n[targets.directory.policy.groups]\nschool_name = \"{{ school_unit }}-alla\"\n\
         \n[targets.directory.groups]\nbase_dn = \"ou=groups,dc=example,dc=org\"\n",
    );
    env.edit_config("type = \"csv\"\npath = \"persons.csv\"", "type = \"oneroster\"\npath = \"bundle\"");
    env
}

#[test]
fn a_bulk_bundle_then_a_delta_provision_and_change_only_what_the_delta_names() {
    let env = oneroster_env();
    // A delta first: there is nothing to merge it with, so nothing is read as "everyone".
    put_bundle(&env, "v11-delta");
    let run = env.enid(&["plan"]).fails();
    assert!(run.stderr.contains("bulk"), "{}", run.stderr);

    put_bundle(&env, "v11-bulk");
    let plan = env.enid(&["plan"]).ok();
    assert!(plan.stdout.contains("skipped"), "guardians and disabled users are counted: {}", plan.stdout);
    env.enid(&["apply", "--yes", "--now", "2026-08-20T08:00:00Z", "--accept-date"]).ok();
    let people = env.people();
    let names: Vec<&str> = people.keys().map(String::as_str).collect();
    assert_eq!(names, ["anna.berg", "bo.ek", "olle.lind"], "no guardian, no disabled user, no district admin");
    let olle = &people["olle.lind"];
    let mut departments = olle.get("departmentNumber");
    departments.sort();
    assert_eq!(departments, ["12345678", "87654321"], "a teacher at two schools");
    assert_eq!(olle.get("employeeType"), ["staff"]);
    let groups: Vec<String> = env
        .search("ou=groups,dc=example,dc=org", "(objectClass=groupOfNames)")
        .into_iter()
        .map(|e| e.one("cn"))
        .collect();
    for g in ["12345678-7A", "12345678-Matematik 7A", "87654321-NO 9B", "12345678-alla", "87654321-alla"] {
        assert!(groups.iter().any(|x| x == g), "{g} in {groups:?}");
    }

    // Day 2: the delta. Anna's surname changed and one class ended for her; Bo is deleted; a new
    // pupil Cia; Olle no longer teaches NO 9B.
    put_bundle(&env, "v11-delta");
    let plan = env.enid(&["plan", "--now", "2026-09-02T08:00:00Z"]).ok();
    assert!(plan.stdout.contains("changes merged"), "{}", plan.stdout);
    env.enid(&["apply", "--yes", "--now", "2026-09-02T08:00:00Z", "--accept-date"]).ok();
    let people = env.people();
    assert_eq!(people["anna.berg"].one("sn"), "Berg-Ek");
    assert!(people.contains_key("cia.dahl"), "the new pupil");
    assert!(people.contains_key("olle.lind") && people.contains_key("bo.ek"), "bo is disabled, not deleted");
    let no9b = env.search("ou=groups,dc=example,dc=org", "(cn=87654321-NO 9B)");
    let members = no9b[0].get("member").join(" ");
    assert!(members.contains("cia.dahl") && !members.contains("olle.lind"), "{members}");
    let plan = env.enid(&["plan", "--json", "--now", "2026-09-02T08:00:00Z"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{}", plan["operations"]);
    // The state finds a person by the number the school knows.
    let explain = env.enid(&["explain", "E1007"]).ok();
    assert!(explain.stdout.contains("Cia") || explain.stdout.contains("cia.dahl"), "{}", explain.stdout);
}
