//! Lifecycle: leavers disabled then deleted after the grace period, pre-provisioning before the
//! start date, the summer keep for pupils; time moved with --now.

use crate::harness::*;

fn with_lifecycle(extra: &str) -> Env {
    let env = Env::new();
    let config = std::fs::read_to_string(env.path("enid.toml"))
        .unwrap()
        .replace("[sources.sis]", &format!("[lifecycle]\n{extra}\n\n[sources.sis]"));
    std::fs::write(env.path("enid.toml"), config).unwrap();
    env
}

#[test]
fn a_leaver_is_deleted_after_the_grace_period_and_a_returner_gets_the_same_name_back() {
    let env = with_lifecycle("delete_students_after_days = 90\ndelete_staff_after_days = \"never\"");
    env.csv(&[&row("1", "Anna", "Berg", "", "student", "S1", ""), &row("2", "Cy", "Ek", "", "staff", "S1", "")]);
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2026-06-01"]).ok();
    env.csv(&[&row("9", "Dag", "Ny", "", "student", "S1", "")]);
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2026-06-15"]).ok(); // both disabled on 2026-06-15
    let disabled = || env.search("ou=disabled,ou=people,dc=example,dc=org", "(objectClass=inetOrgPerson)").len();
    assert_eq!(disabled(), 2);

    let explain = env.enid(&["explain", "anna.berg"]).ok();
    assert!(
        explain.stdout.contains("disabled since 2026-06-15; deleted on 2026-09-13 unless the person returns before"),
        "{}",
        explain.stdout
    );
    let explain = env.enid(&["explain", "cy.ek"]).ok();
    assert!(explain.stdout.contains("kept (no deletion for this role)"), "{}", explain.stdout);
    // Well inside the grace period nothing is deleted.
    let plan = env.enid(&["plan", "--json", "--now", "2026-09-12"]).ok().json();
    assert_eq!(plan["summary"]["delete"], 0, "{plan}");
    // After it (90 days: 2026-09-13), the pupil is deleted; staff ("never") stay.
    let plan = env.enid(&["plan", "--json", "--now", "2026-09-13"]).ok().json();
    assert_eq!(plan["summary"]["delete"], 1, "{plan}");
    assert_eq!(plan["operations"][0]["username"], "anna.berg");
    assert!(plan["operations"][0]["reason"].as_str().unwrap().contains("grace period ended on"), "{plan}");
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2026-09-13"]).ok();
    assert_eq!(disabled(), 1);
    assert!(!env.people().contains_key("anna.berg"));

    // Anna comes back: the same identity, the same username, a new account.
    env.csv(&[&row("1", "Anna", "Berg", "", "student", "S1", ""), &row("9", "Dag", "Ny", "", "student", "S1", "")]);
    let plan = env.enid(&["plan", "--json", "--now", "2027-08-20"]).ok().json();
    assert_eq!(plan["summary"]["create"], 1);
    assert_eq!(plan["operations"][0]["username"], "anna.berg");
    assert_eq!(plan["new_identities"].as_array().map(Vec::len), Some(0));
}

#[test]
fn accounts_are_created_ahead_of_the_start_and_enabled_on_it() {
    let env = with_lifecycle("create_days_before_start = 14");
    env.csv(&["1,Ny,Elev,,student,S1,,2027-08-20,"]);
    assert_eq!(env.enid(&["plan", "--json", "--now", "2027-08-01"]).ok().json()["summary"]["create"], 0, "too early");
    let plan = env.enid(&["plan", "--json", "--now", "2027-08-10"]).ok().json();
    assert_eq!(plan["summary"]["create"], 1);
    assert!(plan["operations"][0]["reason"].as_str().unwrap().starts_with("starts on 2027-08-20"), "{plan}");
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2027-08-10"]).ok();
    assert_eq!(env.search("ou=disabled,ou=people,dc=example,dc=org", "(uid=ny.elev)").len(), 1, "created disabled");
    assert!(env.enid(&["plan", "--now", "2027-08-15"]).ok().stdout.contains("No changes."));
    let plan = env.enid(&["plan", "--json", "--now", "2027-08-20"]).ok().json();
    assert_eq!(plan["summary"]["enable"], 1);
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2027-08-20"]).ok();
    assert_eq!(env.people()["ny.elev"].dn, format!("uid=ny.elev,{BASE}"));
}

#[test]
fn graduates_keep_their_accounts_over_the_summer() {
    let env = with_lifecycle("keep_students_until = \"08-31\"");
    env.csv(&["1,Anna,Berg,,student,S1,9A,2018-08-15,2027-06-10", "2,Cy,Ek,,staff,S1,,2020-08-15,2027-06-10"]);
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2027-06-01"]).ok();
    let plan = env.enid(&["plan", "--json", "--now", "2027-07-01"]).ok().json();
    assert_eq!(plan["summary"]["disable"], 1, "staff are not kept: {plan}");
    assert_eq!(plan["operations"][0]["username"], "cy.ek");
    let plan = env.enid(&["plan", "--json", "--now", "2027-09-01"]).ok().json();
    assert_eq!(plan["summary"]["disable"], 2);
    let explain = env.enid(&["explain", "anna.berg", "--now", "2027-09-01"]).ok();
    assert!(explain.stdout.contains("the summer keep ended on 2027-08-31"), "{}", explain.stdout);
}

/// A run stopped after disabling a leaver on the target and before recording it (simulated by
/// setting the state's row back to active): the next run records the disable, and the grace
/// period runs from then, so the account is deleted in time instead of never.
#[test]
fn a_disable_the_state_missed_is_recorded_and_the_account_is_still_deleted_after_the_grace_period() {
    let env = with_lifecycle("delete_students_after_days = 90");
    env.csv(&[&row("1", "Anna", "Berg", "", "student", "S1", ""), &row("2", "Bo", "Ek", "", "student", "S1", "")]);
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2026-06-01"]).ok();
    env.csv(&[&row("2", "Bo", "Ek", "", "student", "S1", "")]);
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2026-06-15"]).ok();
    env.sql("UPDATE accounts SET status = 'active', disabled_at = NULL WHERE status = 'disabled'");

    let text = env.enid(&["plan", "--now", "2026-06-20"]).ok().stdout;
    assert!(text.contains("to be recorded as disabled from today (their grace period starts): 1"), "{text}");
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2026-06-20"]).ok();
    let status =
        env.sql_value("SELECT status || ' ' || substr(disabled_at, 1, 10) FROM accounts WHERE status <> 'active'");
    assert_eq!(status, "disabled 2026-06-20");
    let plan = env.enid(&["plan", "--json", "--now", "2026-09-17"]).ok().json();
    assert_eq!(plan["summary"]["delete"], 0, "inside the grace period from the recorded day: {plan}");
    let plan = env.enid(&["plan", "--json", "--now", "2026-09-18"]).ok().json();
    assert_eq!(plan["summary"]["delete"], 1, "90 days after 2026-06-20: {plan}");
    assert_eq!(plan["operations"][0]["username"], "anna.berg");
}
