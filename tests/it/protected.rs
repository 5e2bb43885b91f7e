//! Persons with protected personal data: minimal, pseudonymous accounts, no groups, every change
//! held for approval, and never a name in any output.

use crate::harness::*;

const HEADER_P: &str =
    "person_id,given_name,family_name,civic_no,role,school_unit,groups,start_date,end_date,protection";

#[test]
fn a_protected_persons_name_appears_nowhere_and_changes_wait_for_approval() {
    let env = Env::with_config("[targets.directory.groups]\nbase_dn = \"ou=groups,dc=example,dc=org\"");
    let write = |family: &str| {
        std::fs::write(
            env.path("persons.csv"),
            format!(
                "{HEADER_P}\n1,Anna,Berg,,student,SKOLA1,7A,,,\n2,Hemlig,{family},20150916-1236,student,SKOLA1,7A,,,Skyddad folkbokföring\n"
            ),
        )
        .unwrap();
    };
    write("Gömdsson");
    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let r = env.enid(args);
        outputs.push(format!("{}\n{}", r.stdout, r.stderr));
        r
    };
    let plan = run(&["plan", "--json"]).ok().json();
    run(&["plan"]).ok();
    let id = plan["plan_id"].as_str().unwrap().to_string();
    // Without approval only Anna's account (and her group) is made.
    run(&["apply", "--yes"]).ok();
    let people = env.people();
    assert_eq!(people.len(), 1, "{:?}", people.keys());
    // Saved and approved: the protected person gets a minimal, pseudonymous account.
    run(&["plan", "--save"]).ok();
    let saved = run(&["plan", "--json"]).ok().json();
    let id2 = saved["plan_id"].as_str().unwrap().to_string();
    assert_ne!(id, id2);
    run(&["apply", "--plan", &id2, "--accept-protected"]).ok();
    let people = env.people();
    assert_eq!(people.len(), 2);
    let (uid, entry) = people.iter().find(|(k, _)| k.as_str() != "anna.berg").unwrap();
    let uid = uid.clone();
    assert!(uid.starts_with('u') && uid.len() == 9, "not derived from the name: {uid}");
    assert_eq!((entry.get("cn").len(), entry.one("cn")), (1, uid.clone()));
    assert_eq!((entry.get("sn").len(), entry.one("sn")), (1, uid.clone()));
    assert!(
        entry.get("givenName").is_empty()
            && entry.get("departmentNumber").is_empty()
            && entry.get("displayName").is_empty()
    );
    let groups = env.search("ou=groups,dc=example,dc=org", "(cn=SKOLA1-7A)");
    assert_eq!(groups[0].get("member").len(), 1, "not in the class group");

    // A new family name changes nothing: no name is written for this person.
    write("Annansson");
    assert!(run(&["plan"]).ok().stdout.contains("No changes."));
    // Leaving is a change too, and waits for approval.
    std::fs::write(env.path("persons.csv"), format!("{HEADER_P}\n1,Anna,Berg,,student,SKOLA1,7A,,,\n")).unwrap();
    let plan = run(&["plan"]).ok();
    assert!(
        plan.stdout.contains("1 changes to persons with protected personal data wait for approval"),
        "{}",
        plan.stdout
    );
    run(&["apply", "--yes"]).ok();
    assert_eq!(env.people()[uid.as_str()].dn, format!("uid={uid},{BASE}"), "not disabled without approval");
    run(&["log", "--all"]).ok();
    run(&["explain", &uid]).ok();
    run(&["explain", &uid, "--json"]).ok();
    for text in &outputs {
        for secret in ["Hemlig", "Gömdsson", "Annansson", "1236", "Skyddad"] {
            assert!(!text.contains(secret), "{secret:?} leaked:\n{text}");
        }
    }
}

#[test]
fn a_person_who_becomes_protected_gets_a_pseudonym_on_approval_and_protection_is_sticky() {
    let env = Env::new();
    let write = |protection: &str| {
        std::fs::write(
            env.path("persons.csv"),
            format!(
                "{HEADER_P}\n1,Anna,Berg,,student,SKOLA1,7A,,,\n2,Hemlig,Person,20150916-1236,student,SKOLA1,7A,,,{protection}\n"
            ),
        )
        .unwrap();
    };
    write("");
    env.apply();
    assert!(env.people().contains_key("hemlig.person"));

    // Marked protected: the pseudonymous rename waits for approval, with every other change.
    write("Skyddad folkbokföring");
    let held = env.enid(&["apply", "--yes"]).ok();
    assert!(held.stdout.contains("wait for approval"), "{}", held.stdout);
    assert!(env.people().contains_key("hemlig.person"), "nothing changes before approval");
    let plan = env.enid(&["plan", "--json"]).ok();
    assert!(!plan.stdout.contains("hemlig") && !plan.stdout.contains("Hemlig"), "{}", plan.stdout);
    let id = plan.json()["plan_id"].as_str().unwrap().to_string();
    env.enid(&["plan", "--save"]).ok();
    env.enid(&["apply", "--plan", &id, "--accept-protected"]).ok();
    let people = env.people();
    let (uid, entry) = people.iter().find(|(u, _)| u.starts_with('u') && u.len() >= 9).expect("a pseudonym");
    assert!(!people.contains_key("hemlig.person"), "{:?}", people.keys());
    assert_eq!(entry.one("cn"), *uid);
    assert!(entry.get("givenName").is_empty(), "login attributes only");
    assert!(!entry.attrs.values().flatten().any(|v| v.contains("Hemlig") || v == "Person"), "{:?}", entry.attrs);
    assert_eq!(env.summary()["rename"], 0, "the pseudonym stays");

    // The source stops marking the person: protection is kept until approved.
    write("");
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["unprotect"].as_array().map(Vec::len), Some(1), "{plan}");
    assert_eq!(plan["summary"]["update"], 0, "{plan}");
    let held = env.apply();
    assert!(held.stdout.contains("protection kept (1)"), "{}", held.stdout);
    assert!(!env.people()[uid].attrs.values().flatten().any(|v| v == "Hemlig"), "still protected");
    let after = env.enid(&["plan"]).ok();
    assert!(after.stdout.contains("protection kept (1)"), "{}", after.stdout);
    let id = plan["plan_id"].as_str().unwrap().to_string();
    env.enid(&["plan", "--save"]).ok();
    env.enid(&["apply", "--plan", &id, "--accept-protected"]).ok();
    // Released: the names come back; the username stays the pseudonym.
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert!(plan["unprotect"].as_array().is_some_and(Vec::is_empty), "{plan}");
    env.apply();
    assert_eq!(env.people()[uid].one("givenName"), "Hemlig");
}
