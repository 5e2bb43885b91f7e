//! Groups from school units and classes: created, changed value by value, never touched when
//! not enid's.

use crate::harness::*;

const GROUPS: &str = "ou=groups,dc=example,dc=org";

fn members(env: &Env, cn: &str) -> Vec<String> {
    let found = env.search(GROUPS, &format!("(cn={cn})"));
    let mut m: Vec<String> = found
        .first()
        .map(|g| {
            g.get("member")
                .iter()
                .map(|dn| dn.split(',').next().unwrap_or("").trim_start_matches("uid=").to_string())
                .collect()
        })
        .unwrap_or_default();
    m.sort();
    m
}

fn group_names(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = env.search(GROUPS, "(objectClass=groupOfNames)").iter().map(|g| g.one("cn")).collect();
    names.sort();
    names
}

#[test]
fn classes_become_groups_and_membership_follows_the_sources() {
    let env = Env::with_config(&format!(
        "[targets.directory.groups]\nbase_dn = \"{GROUPS}\"\nschool_name = \"{{{{ school_unit }}}}-alla\""
    ));
    // A group enid does not own, with the name one of enid's groups would get.
    env.add(
        &format!("cn=SKOLA2-8B,{GROUPS}"),
        &[("objectClass", &["groupOfNames"]), ("cn", &["SKOLA2-8B"]), ("member", &["cn=admin,dc=example,dc=org"])],
    );
    let rows = |anna_class: &str, with_bo: bool| {
        let mut r = vec![
            row("1", "Anna", "Berg", "", "student", "SKOLA1", anna_class),
            row("3", "Cy", "Ek", "", "staff", "SKOLA1", "7A|8B"),
            row("4", "Dag", "Ny", "", "student", "SKOLA2", "9C"),
        ];
        if with_bo {
            r.push(row("2", "Bo", "Ek", "", "student", "SKOLA2", "8B"));
        }
        r
    };
    let csv = |r: Vec<String>| env.csv(&r.iter().map(String::as_str).collect::<Vec<_>>());
    csv(rows("7A", true));
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["group_summary"]["create"], 5, "{}", plan["group_summary"]);
    let blocked = plan["blocked"].to_string();
    assert!(
        blocked.contains("group cn=SKOLA2-8B,ou=groups,dc=example,dc=org exists but was not created by enid"),
        "{blocked}"
    );
    env.apply();
    assert_eq!(group_names(&env), ["SKOLA1-7A", "SKOLA1-8B", "SKOLA1-alla", "SKOLA2-8B", "SKOLA2-9C", "SKOLA2-alla"]);
    assert_eq!(members(&env, "SKOLA1-7A"), ["anna.berg", "cy.ek"]);
    assert_eq!(members(&env, "SKOLA1-alla"), ["anna.berg", "cy.ek"]);
    assert_eq!(members(&env, "SKOLA2-alla"), ["bo.ek", "dag.ny"]);
    assert_eq!(members(&env, "SKOLA2-8B"), ["cn=admin"], "the unowned group is untouched");
    assert_eq!(env.enid(&["plan", "--json"]).ok().json()["group_summary"]["unchanged"], 5);

    // Anna moves from 7A to 7B: a new group, and one member value removed from 7A.
    csv(rows("7B", true));
    let plan = env.enid(&["plan"]).ok();
    assert!(plan.stdout.contains("create group (1)") && plan.stdout.contains("SKOLA1-7B"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("remove members (1)") && plan.stdout.contains("1 members to remove"),
        "{}",
        plan.stdout
    );
    env.apply();
    assert_eq!(members(&env, "SKOLA1-7A"), ["cy.ek"]);
    assert_eq!(members(&env, "SKOLA1-7B"), ["anna.berg"]);

    // Bo leaves: disabled, and out of every group.
    csv(rows("7B", false));
    env.apply();
    assert_eq!(members(&env, "SKOLA2-alla"), ["dag.ny"]);
    // Dag leaves too: SKOLA2's groups have no members left and are removed; the unowned one stays.
    env.csv(&[
        &row("1", "Anna", "Berg", "", "student", "SKOLA1", "7B"),
        &row("3", "Cy", "Ek", "", "staff", "SKOLA1", "7A|8B"),
    ]);
    env.apply();
    assert_eq!(group_names(&env), ["SKOLA1-7A", "SKOLA1-7B", "SKOLA1-8B", "SKOLA1-alla", "SKOLA2-8B"]);
    assert_eq!(env.enid(&["plan", "--json"]).ok().json()["group_summary"]["unchanged"], 4);
    let log = env.enid(&["log", "--school", "SKOLA2"]).ok();
    assert!(log.stdout.contains("delete group"), "{}", log.stdout);
}

#[test]
fn posix_groups_list_usernames_and_get_gid_numbers() {
    let env = Env::with_config(&format!(
        "[targets.directory.groups]\nbase_dn = \"{GROUPS}\"\nobject_class = \"posixGroup\"\ngid_number_start = 5000"
    ));
    env.csv(&[
        &row("1", "Anna", "Berg", "", "student", "SKOLA1", "7A"),
        &row("2", "Bo", "Ek", "", "student", "SKOLA1", "7A|8B"),
    ]);
    env.apply();
    let groups = env.search(GROUPS, "(objectClass=posixGroup)");
    let mut seen: Vec<(String, String, Vec<String>)> = groups
        .iter()
        .map(|g| {
            let mut m = g.get("memberUid");
            m.sort();
            (g.one("cn"), g.one("gidNumber"), m)
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("SKOLA1-7A".to_string(), "5000".to_string(), vec!["anna.berg".to_string(), "bo.ek".to_string()]),
            ("SKOLA1-8B".to_string(), "5001".to_string(), vec!["bo.ek".to_string()]),
        ]
    );
    env.csv(&[
        &row("1", "Anna", "Berg", "", "student", "SKOLA1", "8B"),
        &row("2", "Bo", "Ek", "", "student", "SKOLA1", "7A|8B"),
    ]);
    env.apply();
    let g7 = env.search(GROUPS, "(cn=SKOLA1-7A)");
    assert_eq!(g7[0].get("memberUid"), ["bo.ek"]);
    assert_eq!(env.enid(&["plan", "--json"]).ok().json()["group_summary"]["unchanged"], 2);
}

/// A saved plan's group operations are approved by their names (`--only groups`): the saved plan holds each action as serialised (`create_group`), and the approval
/// compared `create group` (none approved).
#[test]
fn a_saved_plans_group_operations_are_approved_by_their_names() {
    let env = Env::with_config(&format!(
        "[targets.directory.groups]\nbase_dn = \"{GROUPS}\"\n\n[schedule]\nfull = \"1h\"\nsettle = \"1s\"\n"
    ));
    let rows =
        [row("1", "Anna", "Berg", "", "student", "SKOLA1", "7A"), row("3", "Cy", "Ek", "", "staff", "SKOLA1", "7A|8B")];
    env.csv(&rows.iter().map(String::as_str).collect::<Vec<_>>());
    let runs = || -> Vec<serde_json::Value> {
        let out = env.enid(&["runs", "--json"]).ok().stdout;
        out.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
    };
    // The service plans and waits for an approval (`apply = "plan_only"`, the default).
    let mut d = crate::daemon16::Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    crate::daemon16::wait_for("a planned run", 20, || runs().iter().any(|r| r["status"] == "planned"));
    drop(d);
    let run = runs().into_iter().rfind(|r| r["status"] == "planned").unwrap();
    assert_eq!(run["counts"]["planned"]["create group"], 2, "{run}");
    let id = run["id"].as_i64().unwrap().to_string();
    let approved = env.enid(&["approve", &id, "--only", "groups", "--json"]).ok().json();
    assert_eq!(approved["approved"], 2, "{approved}");
}
