//! Safety on the target side, under the mistakes that really happen: an entry carrying an enid
//! id that the state does not record, a changed base DN, swapped name columns, a hand-made entry
//! where one of enid's accounts was, an interrupted pre-provisioning create, group names that
//! differ only in case, and a returner's group membership.

use crate::harness::*;

const GROUPS: &str = "ou=groups,dc=example,dc=org";
const DISABLED: &str = "ou=disabled,ou=people,dc=example,dc=org";

fn persons(n: usize) -> Vec<String> {
    (0..n).map(|i| row(&format!("p{i:02}"), "Elev", &format!("Nummer{i}"), "", "student", "S1", "")).collect()
}

fn refs(rows: &[String]) -> Vec<&str> {
    rows.iter().map(String::as_str).collect()
}

fn last_line(run: &Run) -> String {
    run.stderr.lines().last().unwrap_or_default().to_string()
}

/// The member values of a group, as they are.
fn member_dns(env: &Env, cn: &str) -> Vec<String> {
    let mut m = env.search(GROUPS, &format!("(cn={cn})")).first().map(|g| g.get("member")).unwrap_or_default();
    m.sort();
    m
}

#[test]
fn an_entry_carrying_an_enid_id_the_state_does_not_record_is_blocked_and_never_duplicated() {
    let env = Env::new();
    let mut rows =
        vec![row("1", "Anna", "Berg", "", "student", "S1", ""), row("2", "Bo", "Ek", "", "student", "S1", "")];
    env.csv(&refs(&rows));
    env.apply();
    rows.push(row("3", "Dag", "Ny", "", "student", "S1", ""));
    env.csv(&refs(&rows));
    let plan = env.enid(&["plan", "--json"]).ok().json();
    let dag = plan["new_identities"][0]["id"].as_str().unwrap().to_string();
    // Dag's account exists already, under another name, with Dag's enid id: made by an earlier
    // installation whose state database is gone. An HR system's own number is not enid's.
    let manual = format!("uid=dag.manual,{BASE}");
    env.add(
        &manual,
        &[
            ("objectClass", &["inetOrgPerson"]),
            ("uid", &["dag.manual"]),
            ("cn", &["Dag Ny"]),
            ("sn", &["Ny"]),
            ("employeeNumber", &[&dag]),
        ],
    );
    env.add(
        &format!("uid=hr.person,{BASE}"),
        &[
            ("objectClass", &["inetOrgPerson"]),
            ("uid", &["hr.person"]),
            ("cn", &["HR"]),
            ("sn", &["HR"]),
            ("employeeNumber", &["4711"]),
        ],
    );
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["create"], 0, "{plan}");
    let blocked = plan["blocked"].as_array().unwrap();
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(blocked[0]["identity"], dag.as_str());
    assert_eq!(
        blocked[0]["reason"],
        format!(
            "{manual} carries enid id {dag} but the state database does not record it as enid's: restore the state \
             database from a backup, or run `enid adopt` (when adopt could not match it, claim it with `enid adopt \
             --entry KEY --person SOURCE/PERSON_ID` once you know whose it is)"
        )
    );
    let before = env.people();
    env.apply();
    let after = env.people();
    assert!(!after.contains_key("dag.ny"), "a second account for Dag: {:?}", after.keys());
    assert_eq!(after["dag.manual"].attrs, before["dag.manual"].attrs, "never modified");
    assert_eq!(after["hr.person"].attrs, before["hr.person"].attrs);
}

#[test]
fn the_first_run_exemption_needs_a_target_without_enid_ids() {
    let env = Env::with_config("[targets.directory.thresholds]\ncreate_min = 10");
    // A run that records no account: the one person starts long after the provisioning window.
    env.csv(&["0,Sen,Start,,student,S1,,2099-08-20,"]);
    env.apply();
    let rows = persons(20);
    env.csv(&refs(&rows));
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["held"].as_array().map(Vec::len), Some(0), "nothing owned, nothing of enid's: a first run");
    // An account from an earlier installation: the target is not new to enid.
    let old = format!("uid=old.account,{BASE}");
    env.add(
        &old,
        &[
            ("objectClass", &["inetOrgPerson"]),
            ("uid", &["old.account"]),
            ("cn", &["Old"]),
            ("sn", &["Old"]),
            ("employeeNumber", &["0f8fad5b-d9cb-469f-a165-70867728950e"]),
        ],
    );
    let plan = env.enid(&["plan"]).ok();
    assert!(plan.stdout.contains("20 create of 0 owned accounts (100.0%), over the limit of 10"), "{}", plan.stdout);
    env.enid(&["apply", "--yes"]).fails();
    assert_eq!(env.people().len(), 1);
}

#[test]
fn a_changed_base_dn_stops_before_planning_and_nothing_is_duplicated() {
    let env = Env::with_config("[targets.directory.thresholds]\ncreate_min = 10");
    let rows = persons(24);
    env.csv(&refs(&rows));
    env.apply();
    let other = env.add_ou("other");
    env.edit_config(&format!("base_dn = \"{BASE}\""), &format!("base_dn = \"{other}\""));
    let run = env.enid(&["plan"]).fails();
    let line = last_line(&run);
    assert!(
        line.contains(&format!(
            "target \"directory\": 24 of 24 owned accounts were not found under {other} with filter \
             (objectClass=inetOrgPerson)"
        )) && line.contains("the base DN, filter or permissions changed, or were they moved out of it by hand?")
            && line.contains("--accept-missing")
            && line.ends_with("stopped before planning, nothing was changed"),
        "{line}"
    );
    env.enid(&["apply", "--yes"]).fails();
    assert!(env.search(&other, "(objectClass=inetOrgPerson)").is_empty(), "nothing created");

    // An operator who says they really are gone, while they are not: the accounts are found
    // outside the new base by their anchors, blocked, and never created a second time.
    let plan = env.enid(&["plan", "--json", "--accept-missing"]).ok().json();
    assert_eq!(plan["summary"]["create"], 0, "{}", plan["summary"]);
    assert_eq!(plan["blocked"].as_array().map(Vec::len), Some(24), "{}", plan["blocked"]);
    assert!(plan["blocked"][0]["reason"].as_str().unwrap().contains("was moved out of"), "{}", plan["blocked"]);
    env.enid(&["apply", "--yes", "--accept-missing"]).ok();
    assert!(env.search(&other, "(objectClass=inetOrgPerson)").is_empty());

    // Back to the right base DN: nothing to do, nothing blocked.
    env.edit_config(&format!("base_dn = \"{other}\""), &format!("base_dn = \"{BASE}\""));
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["unchanged"], 24, "{}", plan["summary"]);
    assert_eq!(plan["blocked"].as_array().map(Vec::len), Some(0));
}

#[test]
fn owned_groups_missing_en_masse_stop_the_run() {
    let env = Env::with_config(&format!("[targets.directory.groups]\nbase_dn = \"{GROUPS}\""));
    let rows: Vec<String> = (0..24)
        .map(|i| row(&format!("p{i:02}"), "Elev", &format!("Nummer{i}"), "", "student", "S1", &format!("K{}", i / 2)))
        .collect();
    env.csv(&refs(&rows));
    env.apply();
    assert_eq!(env.search(GROUPS, "(objectClass=groupOfNames)").len(), 12);
    let other = env.add_ou("other");
    env.edit_config(&format!("base_dn = \"{GROUPS}\""), &format!("base_dn = \"{other}\""));
    let run = env.enid(&["apply", "--yes"]).fails();
    let line = last_line(&run);
    assert!(line.contains(&format!("12 of 12 owned groups were not found under {other}")), "{line}");
    assert!(line.ends_with("stopped before planning, nothing was changed"), "{line}");
    assert!(env.search(&other, "(objectClass=groupOfNames)").is_empty());
}

#[test]
fn swapped_name_columns_and_mass_renames_are_held() {
    let env = Env::with_config("[targets.directory.thresholds]\nupdate_min = 10");
    let rows: Vec<String> = (0..24)
        .map(|i| row(&format!("p{i:02}"), &format!("Förnamn{i}"), &format!("Efternamn{i}"), "", "student", "S1", ""))
        .collect();
    env.csv(&refs(&rows));
    env.apply();
    // The export's header names the two name columns the other way round.
    let swapped = HEADER.replace("given_name,family_name", "family_name,given_name");
    std::fs::write(env.path("persons.csv"), format!("{swapped}\n{}\n", rows.join("\n"))).unwrap();
    let plan = env.enid(&["plan"]).ok();
    assert!(
        plan.stdout
            .contains("24 update of 24 owned accounts (100.0%), over the limit of 10 (10% of owned, at least 10)"),
        "{}",
        plan.stdout
    );
    let run = env.enid(&["apply", "--yes"]).fails();
    assert!(run.stderr.contains("is held, nothing was applied"), "{}", run.stderr);
    assert_eq!(env.people()["fornamn0.efternamn0"].one("sn"), "Efternamn0", "nothing was updated");

    // With on_name_change = "rename", every username would change for good: held too.
    env.edit_config("[sources.sis]", "[naming]\non_name_change = \"rename\"\n\n[sources.sis]");
    let plan = env.enid(&["plan", "--json"]).ok().json();
    let held: Vec<&str> = plan["held"].as_array().unwrap().iter().map(|h| h["action"].as_str().unwrap()).collect();
    assert_eq!(held, ["rename", "update"], "{}", plan["held"]);
    env.enid(&["apply", "--yes"]).fails();
    assert!(env.people().contains_key("fornamn0.efternamn0"), "nobody was renamed");
}

#[test]
fn overriding_the_owner_naming_or_class_attribute_is_a_config_error() {
    for (attr, why) in [
        ("employeeNumber", "it carries the enid id"),
        ("uid", "it names the entry (rdn_attribute)"),
        ("objectClass", "object classes are set by object_classes"),
    ] {
        let env = Env::with_config(&format!("[targets.directory.attributes]\n{attr} = \"{{{{ username }}}}\""));
        env.csv(&["1,Anna,Berg,,student,S1,,,"]);
        let run = env.enid(&["plan"]).fails();
        assert!(
            run.stderr.contains(&format!(
                "[targets.directory.policy.attributes] {attr} cannot be set or removed here: {why}"
            )),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_hand_made_entry_where_an_owned_account_was_is_never_taken_over() {
    let env = Env::new();
    let rows = vec![row("1", "Anna", "Berg", "", "student", "S1", ""), row("2", "Bo", "Ek", "", "student", "S1", "")];
    env.csv(&refs(&rows));
    env.apply();
    let dn = format!("uid=anna.berg,{BASE}");
    env.delete(&dn);
    env.add(
        &dn,
        &[
            ("objectClass", &["inetOrgPerson"]),
            ("uid", &["anna.berg"]),
            ("cn", &["Hand Made"]),
            ("sn", &["Made"]),
            ("employeeType", &["teacher"]),
        ],
    );
    let before = env.people()["anna.berg"].clone();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{}", plan["operations"]);
    let reason = plan["blocked"][0]["reason"].as_str().unwrap_or_default();
    assert_eq!(
        reason,
        format!(
            "{dn} stands where enid's account is recorded, but it is another entry, not created by enid; it is left alone"
        )
    );
    env.apply();
    assert_eq!(env.people()["anna.berg"].attrs, before.attrs, "the hand-made entry was modified");
    // Anna leaves: the hand-made entry is not enid's to disable.
    env.csv(&refs(&rows[1..]));
    env.apply();
    let after = env.people();
    assert_eq!(after["anna.berg"].dn, dn, "moved to the disabled OU");
    assert_eq!(after["anna.berg"].attrs, before.attrs);
}

#[test]
fn a_pre_provisioned_account_is_recorded_as_disabled() {
    let env = Env::new();
    env.csv(&["1,Ny,Elev,,student,S1,,2027-08-20,"]);
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2027-08-10"]).ok();
    let json = env.enid(&["explain", "ny.elev", "--json", "--now", "2027-08-10"]).ok().json();
    assert_eq!(json["accounts"][0]["status"], "disabled", "{}", json["accounts"]);
    assert_eq!(env.sql_value("SELECT status FROM accounts"), "disabled");
}

#[test]
fn an_interrupted_pre_provisioning_create_converges() {
    let env = Env::new();
    env.csv(&["1,Ny,Elev,,student,S1,,2027-08-20,"]);
    env.enid(&["plan", "--now", "2027-08-10"]).ok(); // creates the state database
    // The create reaches slapd, but its result is never recorded: the row stays as it was
    // written before the create was sent, by identity and target, with no key (the target
    // gives one).
    env.sql(
        "CREATE TRIGGER lost_result BEFORE UPDATE ON accounts WHEN old.status = 'pending' \
         BEGIN SELECT RAISE(IGNORE); END;",
    );
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2027-08-10"]).ok();
    assert_eq!(env.search(DISABLED, "(uid=ny.elev)").len(), 1, "created disabled");
    assert_eq!(env.sql_value("SELECT status || ' ' || COALESCE(key, '(no key)') FROM accounts"), "pending (no key)");
    env.sql("DROP TRIGGER lost_result;");

    let plan = env.enid(&["plan", "--json", "--now", "2027-08-12"]).ok().json();
    assert_eq!(plan["adoptions"].as_array().map(Vec::len), Some(1), "{plan}");
    assert_eq!(plan["blocked"].as_array().map(Vec::len), Some(0), "{plan}");
    assert_eq!(plan["summary"]["create"], 0);
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2027-08-12"]).ok();
    assert_eq!(env.sql_value("SELECT status FROM accounts"), "disabled");
    // On the start date the same account is enabled.
    let plan = env.enid(&["plan", "--json", "--now", "2027-08-20"]).ok().json();
    assert_eq!((plan["summary"]["enable"].as_u64(), plan["summary"]["create"].as_u64()), (Some(1), Some(0)), "{plan}");
    env.enid(&["apply", "--yes", "--accept-date", "--now", "2027-08-20"]).ok();
    assert_eq!(env.people()["ny.elev"].dn, format!("uid=ny.elev,{BASE}"));
    assert_eq!(env.people().len(), 1);
}

#[test]
fn group_names_differing_only_in_case_are_one_group() {
    let env = Env::with_config(&format!("[targets.directory.groups]\nbase_dn = \"{GROUPS}\""));
    let anna = row("1", "Anna", "Berg", "", "student", "S1", "3a");
    env.csv(&[&anna]);
    env.apply();
    // Another system's export writes the class in capitals.
    env.csv(&[&anna, &row("2", "Bo", "Ek", "", "student", "S1", "3A")]);
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["blocked"].as_array().map(Vec::len), Some(0), "{}", plan["blocked"]);
    let gs = &plan["group_summary"];
    assert_eq!(
        (gs["create"].as_u64(), gs["delete"].as_u64(), gs["members_added"].as_u64()),
        (Some(0), Some(0), Some(1))
    );
    env.apply();
    let groups: Vec<String> = env.search(GROUPS, "(objectClass=groupOfNames)").iter().map(|g| g.one("cn")).collect();
    assert_eq!(groups, ["S1-3a"]);
    assert_eq!(member_dns(&env, "S1-3a"), [format!("uid=anna.berg,{BASE}"), format!("uid=bo.ek,{BASE}")]);
    assert!(env.enid(&["plan"]).ok().stdout.contains("No changes."));
}

#[test]
fn a_returner_is_in_their_groups_again_in_the_same_run() {
    let env = Env::with_config(&format!("[targets.directory.groups]\nbase_dn = \"{GROUPS}\""));
    let rows =
        vec![row("1", "Anna", "Berg", "", "student", "S1", "7A"), row("2", "Bo", "Ek", "", "student", "S1", "7A")];
    env.csv(&refs(&rows));
    env.apply();
    env.csv(&refs(&rows[..1]));
    env.apply();
    assert_eq!(member_dns(&env, "S1-7A"), [format!("uid=anna.berg,{BASE}")]);
    env.csv(&refs(&rows));
    env.apply();
    assert_eq!(member_dns(&env, "S1-7A"), [format!("uid=anna.berg,{BASE}"), format!("uid=bo.ek,{BASE}")]);
    assert!(env.enid(&["plan"]).ok().stdout.contains("No changes."));
}

#[test]
fn a_hand_made_group_where_an_owned_group_was_is_never_taken_over() {
    let env = Env::with_config(&format!("[targets.directory.groups]\nbase_dn = \"{GROUPS}\""));
    let rows =
        vec![row("1", "Anna", "Berg", "", "student", "S1", "7A"), row("2", "Bo", "Ek", "", "student", "S1", "8B")];
    env.csv(&refs(&rows));
    env.apply();
    let dn = format!("cn=S1-7A,{GROUPS}");
    env.delete(&dn);
    env.add(
        &dn,
        &[("objectClass", &["groupOfNames"]), ("cn", &["S1-7A"]), ("member", &["cn=admin,dc=example,dc=org"])],
    );
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert!(plan["blocked"].to_string().contains("stands where enid's group is recorded"), "{}", plan["blocked"]);
    env.apply();
    assert_eq!(member_dns(&env, "S1-7A"), ["cn=admin,dc=example,dc=org"], "members changed");
    // Anna leaves the class: enid's group would be deleted; the hand-made one stays.
    env.csv(&[&row("1", "Anna", "Berg", "", "student", "S1", "8B"), &rows[1]]);
    env.apply();
    assert_eq!(member_dns(&env, "S1-7A"), ["cn=admin,dc=example,dc=org"], "deleted or changed");
}

#[test]
fn a_person_whose_attributes_cannot_be_rendered_is_held_not_emptied() {
    let env = Env::with_config("[targets.directory.attributes]\nmail = \"{{ groups[0] }}@skola.example.org\"");
    let bo = row("2", "Bo", "Ek", "", "student", "S1", "8B");
    env.csv(&[&row("1", "Anna", "Berg", "", "student", "S1", "7A"), &bo]);
    env.apply();
    let before = env.people()["anna.berg"].clone();
    assert_eq!(before.one("mail"), "7A@skola.example.org");
    // Anna's class is gone from the export: her mail template cannot be rendered.
    env.csv(&[&row("1", "Anna", "Berg", "", "student", "S1", ""), &bo]);
    // Held and reported: the run exits non-zero, and nothing is planned for her.
    let plan = env.enid(&["plan", "--json"]).fails().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{}", plan["operations"]);
    assert!(plan["blocked"][0]["reason"].as_str().unwrap().starts_with("attribute mapping failed"), "{plan}");
    env.enid(&["apply", "--yes"]).fails();
    assert_eq!(env.people()["anna.berg"].attrs, before.attrs);
}

#[test]
fn a_returner_renamed_in_the_same_run_is_a_member_under_the_new_name() {
    let env = Env::with_config(&format!("[targets.directory.groups]\nbase_dn = \"{GROUPS}\""));
    env.edit_config("[sources.sis]", "[naming]\non_name_change = \"rename\"\n\n[sources.sis]");
    let anna = row("1", "Anna", "Berg", "", "student", "S1", "7A");
    env.csv(&[&anna, &row("2", "Bo", "Ek", "", "student", "S1", "7A")]);
    env.apply();
    env.csv(&[&anna]);
    env.apply();
    // Bo comes back with a new family name: renamed, enabled and a member again, in one run.
    env.csv(&[&anna, &row("2", "Bo", "Lind", "", "student", "S1", "7A")]);
    env.apply();
    assert_eq!(member_dns(&env, "S1-7A"), [format!("uid=anna.berg,{BASE}"), format!("uid=bo.lind,{BASE}")]);
    assert!(env.enid(&["plan"]).ok().stdout.contains("No changes."));
}
