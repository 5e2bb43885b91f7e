//! Identity across records: conflicts held and decided, civic-number changes.

use crate::harness::*;

const PNR: &str = "19821105-9954";

#[test]
fn a_conflict_is_held_and_then_merged() {
    let env = Env::new();
    env.csv(&[
        &row("1", "Anna", "Berg", PNR, "student", "S1", ""),
        &row("2", "Anna", "Berg", PNR, "student", "S1", ""),
        &row("3", "Bo", "Ek", "", "student", "S1", ""),
    ]);
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 1, "only Bo: the two claimants are held");
    let conflict = &plan["conflicts"][0];
    assert_eq!(conflict["held"], serde_json::json!(["sis/1", "sis/2"]));
    assert_eq!(conflict["civic_no"], "19821105-****");
    let id = conflict["id"].as_str().unwrap().to_string();

    let list = env.enid(&["conflicts"]).ok();
    assert!(list.stdout.contains(&id) && list.stdout.contains("records of one source claim the same civic number"));
    assert!(!list.stdout.contains("9954") && !list.stderr.contains("9954"), "{}", list.stdout);
    let explain = env.enid(&["explain", "2"]).ok();
    assert!(explain.stdout.contains(&format!("held in conflict {id}")), "{}", explain.stdout);

    env.apply();
    assert_eq!(env.people().len(), 1, "nothing for held records");

    env.enid(&["conflicts", "resolve", &id, "--merge"]).ok();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["conflicts"].as_array().map(Vec::len), Some(0));
    assert_eq!(plan["summary"]["create"], 1);
    assert_eq!(plan["new_identities"][0]["records"], serde_json::json!(["sis/1", "sis/2"]));
    env.apply();
    assert_eq!(env.people().len(), 2);
    assert_eq!(env.summary()["unchanged"], 2);
    let run = env.enid(&["conflicts", "resolve", &id, "--separate"]).fails();
    assert!(run.stderr.contains(&format!("no open conflict {id}")), "{}", run.stderr);
}

#[test]
fn a_conflict_decided_separate_gives_two_persons() {
    let env = Env::new();
    env.csv(&[
        &row("1", "Anna", "Berg", PNR, "student", "S1", ""),
        &row("2", "Anna", "Berg", PNR, "student", "S1", ""),
    ]);
    let plan = env.enid(&["plan", "--json"]).ok().json();
    let id = plan["conflicts"][0]["id"].as_str().unwrap().to_string();
    env.enid(&["conflicts", "resolve", &id, "--separate"]).ok();
    env.apply();
    let people = env.people();
    assert_eq!(people.keys().collect::<Vec<_>>(), ["anna.berg", "anna.berg2"]);
    assert_eq!(env.enid(&["conflicts"]).ok().stdout.trim(), "No conflicts.");
}

#[test]
fn a_tf_number_that_becomes_a_personnummer_keeps_the_account() {
    let env = Env::new();
    env.csv(&[&row("7", "Amir", "Haddad", "20130101TF01", "student", "S1", "")]);
    env.apply();
    let before = env.people()["amir.haddad"].clone();

    env.csv(&[&row("7", "Amir", "Haddad", "20130101-2389", "student", "S1", "")]);
    let plan = env.enid(&["plan"]).ok();
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("sis/7: 20130101-**** (temporary number) → 20130101-**** (personnummer)"),
        "{}",
        plan.stdout
    );
    env.apply();
    let after = env.people();
    assert_eq!(after.len(), 1);
    assert_eq!(after["amir.haddad"].one("entryUUID"), before.one("entryUUID"));
    let explain = env.enid(&["explain", "amir.haddad"]).ok();
    assert!(explain.stdout.contains("Civic-number history"), "{}", explain.stdout);
    assert!(!explain.stdout.contains("2389") && !explain.stdout.contains("TF01"), "{}", explain.stdout);
    // Another source with the new personnummer joins the same identity.
    assert_eq!(env.summary()["unchanged"], 1);
}

#[test]
fn two_sources_merge_into_one_identity_with_both_roles_and_the_authoritys_names() {
    let env = Env::new();
    let config = std::fs::read_to_string(env.path("enid.toml")).unwrap().replace(
        "[sources.sis]",
        "[identity.authority]\nnames = [\"hr\"]\n\n[sources.hr]\ntype = \"csv\"\npath = \"staff.csv\"\ndelimiter = \";\"\n\
         [sources.hr.columns]\nperson_id = \"anstnr\"\n\n[sources.sis]",
    );
    std::fs::write(env.path("enid.toml"), config).unwrap();
    // A teacher who also studies in adult education: the SIS spells her name differently.
    env.csv(&[
        &row("S-1", "Kim", "Lind", PNR, "student", "VUX", "SVA1"),
        &row("S-2", "Bo", "Ek", "", "student", "S1", ""),
    ]);
    std::fs::write(
        env.path("staff.csv"),
        format!("anstnr;given_name;family_name;civic_no;role;school_unit\nH-77;Kimberly;Lind;{PNR};staff;S1\n"),
    )
    .unwrap();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 2);
    let kim = plan["new_identities"].as_array().unwrap().iter().find(|i| i["records"].as_array().unwrap().len() == 2);
    assert_eq!(kim.unwrap()["records"], serde_json::json!(["hr/H-77", "sis/S-1"]));
    env.apply();
    let people = env.people();
    let kim = &people["kimberly.lind"];
    assert_eq!(kim.one("givenName"), "Kimberly", "hr is the authority for names");
    let mut roles = kim.get("employeeType");
    roles.sort();
    assert_eq!(roles, ["staff", "student"]);
    let mut schools = kim.get("departmentNumber");
    schools.sort();
    assert_eq!(schools, ["S1", "VUX"]);

    // She leaves adult education: still staff, same account, one role less.
    env.csv(&[&row("S-2", "Bo", "Ek", "", "student", "S1", "")]);
    env.apply();
    let kim = &env.people()["kimberly.lind"];
    assert_eq!(kim.get("employeeType"), ["staff"]);
    assert!(kim.dn.ends_with(&format!(",{BASE}")) && !kim.dn.contains("disabled"));
}

#[test]
fn a_configured_email_rule_joins_a_record_without_a_civic_number() {
    let env = Env::new();
    let config = std::fs::read_to_string(env.path("enid.toml")).unwrap().replace(
        "[sources.sis]",
        "[identity]\nmatch_on = [\"email\"]\n\n[sources.hr]\ntype = \"csv\"\npath = \"staff.csv\"\n\n[sources.sis]",
    );
    std::fs::write(env.path("enid.toml"), config).unwrap();
    std::fs::write(
        env.path("persons.csv"),
        format!("{HEADER},email\n1,Nour,Saleh,,student,VUX,,,,Nour.Saleh@Skola.se\n"),
    )
    .unwrap();
    std::fs::write(
        env.path("staff.csv"),
        "person_id,given_name,family_name,civic_no,role,school_unit,email\nH-3,Nour,Saleh,,staff,S1,nour.saleh@skola.se\n",
    )
    .unwrap();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 1, "{plan}");
    assert_eq!(plan["new_identities"][0]["records"], serde_json::json!(["hr/H-3", "sis/1"]));
}

fn set_policy(env: &Env, policy: &str) {
    let config = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    let config = match config.find("[naming]") {
        Some(_) => config,
        None => config.replace("[sources.sis]", &format!("[naming]\non_name_change = \"{policy}\"\n\n[sources.sis]")),
    };
    std::fs::write(env.path("enid.toml"), config).unwrap();
}

#[test]
fn renames_follow_the_policy_and_a_released_name_is_never_reused() {
    let env = Env::new();
    env.csv(&[&row("1", "Anna", "Berg", "", "student", "S1", "")]);
    env.apply();
    let uuid = env.people()["anna.berg"].one("entryUUID");

    // keep (the default): a new family name changes attributes, not the username.
    env.csv(&[&row("1", "Anna", "Lind", "", "student", "S1", "")]);
    env.apply();
    assert_eq!(env.people()["anna.berg"].one("sn"), "Lind");

    // hold: the rename waits for approval.
    set_policy(&env, "hold");
    let plan = env.enid(&["plan"]).ok();
    assert!(
        plan.stdout.contains("renames waiting for approval (1)") && plan.stdout.contains("anna.berg → anna.lind"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
    env.enid(&["renames", "approve", "anna.berg"]).ok();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["rename"], 1, "{plan}");
    env.apply();
    let people = env.people();
    assert_eq!(people.keys().collect::<Vec<_>>(), ["anna.lind"]);
    assert_eq!(people["anna.lind"].one("entryUUID"), uuid, "the same account, renamed");
    assert_eq!(people["anna.lind"].get("uid"), ["anna.lind"]);
    assert!(env.enid(&["plan"]).ok().stdout.contains("No changes."));

    // The released name goes to nobody else: a new Anna Berg gets anna.berg2.
    env.csv(&[&row("1", "Anna", "Lind", "", "student", "S1", ""), &row("2", "Anna", "Berg", "", "student", "S1", "")]);
    env.apply();
    assert_eq!(env.people().keys().collect::<Vec<_>>(), ["anna.berg2", "anna.lind"]);
    let log = env.enid(&["log", "--person", "anna.lind"]).ok();
    assert!(log.stdout.contains("rename"), "{}", log.stdout);
}

#[test]
fn a_released_name_returns_only_after_its_quarantine() {
    let env = Env::new();
    let config = std::fs::read_to_string(env.path("enid.toml"))
        .unwrap()
        .replace("[sources.sis]", "[naming]\non_name_change = \"rename\"\nquarantine_days = 365\n\n[sources.sis]");
    std::fs::write(env.path("enid.toml"), config).unwrap();
    env.csv(&[&row("1", "Anna", "Berg", "", "student", "S1", "")]);
    env.apply();
    env.csv(&[&row("1", "Anna", "Lind", "", "student", "S1", "")]);
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["renames"][0]["new"], "anna.lind", "rename needs no approval: {plan}");
    env.apply();
    env.csv(&[&row("1", "Anna", "Lind", "", "student", "S1", ""), &row("2", "Anna", "Berg", "", "student", "S1", "")]);
    let soon = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(soon["new_identities"][0]["username"], "anna.berg2", "still quarantined");
    let later = env.enid(&["plan", "--json", "--now", "2028-06-01"]).ok().json();
    assert_eq!(later["new_identities"][0]["username"], "anna.berg", "the quarantine has ended");
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2028-06-01"]).ok();
    assert_eq!(env.people().keys().collect::<Vec<_>>(), ["anna.berg", "anna.lind"]);
}
