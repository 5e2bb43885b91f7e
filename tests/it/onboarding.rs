//! Onboarding against a real slapd: a directory that already holds accounts for most of a school
//! (some with the right usernames, some with an id the old scripts stored, some foreign, one a
//! protected person's) is taken over without one duplicate, through a lost state and `enid adopt`
//! again; a namesake is never made beside an account enid does not own.

use crate::harness::*;

const HEADER_P: &str =
    "person_id,given_name,family_name,civic_no,role,school_unit,groups,start_date,end_date,protection";
const CORRELATE: &str = "[targets.directory.policy.correlate]\nusername = true\nattribute = \"description\"\nvalue = \"sis:{{ person_id }}\"";

fn hand_made(env: &Env, uid: &str, given: &str, family: &str, description: Option<&str>) {
    let dn = format!("uid={uid},{BASE}");
    let cn = format!("{given} {family}");
    let cn = cn.as_str();
    let mut attrs: Vec<(&str, &[&str])> = vec![
        ("objectClass", &["inetOrgPerson"]),
        ("uid", std::slice::from_ref(&uid)),
        ("cn", std::slice::from_ref(&cn)),
        ("sn", std::slice::from_ref(&family)),
        ("givenName", std::slice::from_ref(&given)),
    ];
    let d;
    if let Some(v) = description {
        d = [v];
        attrs.push(("description", &d));
    }
    env.add(&dn, &attrs);
}

/// Civic numbers of the sample, and the protected person's names: never in any output.
fn secrets() -> Vec<String> {
    let mut s: Vec<String> = (1..=8).map(pnr).collect();
    s.extend((1..=8).map(|i| pnr(i).replace('-', "")));
    s.extend(["Hemlig".to_string(), "Gömdsson".to_string()]);
    s
}

fn write_csv(env: &Env, extra: &[&str]) {
    let mut text = format!("{HEADER_P}\n");
    let rows = [
        format!("1,Anna,Berg,{},student,SKOLA1,7A,,,", pnr(1)),
        format!("2,Olle,Öberg,{},student,SKOLA1,7A,,,", pnr(2)),
        format!("3,Cecilia,Holm,{},student,SKOLA1,7A,,,", pnr(3)),
        format!("4,Hemlig,Gömdsson,{},student,SKOLA1,7A,,,Skyddad folkbokföring", pnr(4)),
        format!("5,Eva,Lind,{},student,SKOLA1,7A,,,", pnr(5)),
        format!("6,Per,Ek,{},staff,SKOLA1,,,,", pnr(6)),
    ];
    for r in rows.iter().map(String::as_str).chain(extra.iter().copied()) {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(env.path("persons.csv"), text).unwrap();
}

#[test]
fn a_directory_full_of_accounts_made_before_enid_is_taken_over_without_a_duplicate() {
    let env = Env::with_config(CORRELATE);
    // Anna's account has her enid username and names; Olle's old script named him "oobe01" and
    // stored his id; the protected person's account carries their id; "cecilia.holm" is a
    // teacher's account of the same name, not the pupil's.
    hand_made(&env, "anna.berg", "Anna", "Berg", None);
    hand_made(&env, "oobe01", "Olle", "Öberg", Some("sis:2"));
    hand_made(&env, "hgom01", "Hemlig", "Gömdsson", Some("sis:4"));
    hand_made(&env, "cecilia.holm", "Cecilia", "Holmqvist", None);
    write_csv(&env, &[]);
    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let r = env.enid(args);
        outputs.push(format!("{}\n{}", r.stdout, r.stderr));
        r
    };

    let plan = run(&["plan", "--json"]).ok().json();
    let text = run(&["plan"]).ok().stdout;
    let summary = &plan["targets"]["directory"];
    assert_eq!(summary["claim"], 3, "{text}");
    // Eva and Per are new; Cecilia waits; the protected person is claimed (waiting for approval).
    assert_eq!(summary["create"], 2, "{text}");
    let blocked: Vec<&str> =
        plan["blocked"].as_array().unwrap().iter().map(|b| b["reason"].as_str().unwrap()).collect();
    assert!(
        blocked.iter().any(|r| r.contains("uid=cecilia.holm") && r.contains("--not-theirs")),
        "the teacher's account blocks the pupil: {blocked:?}"
    );
    // The new person's username is the old account's: one name for life, on every target.
    let olle = plan["new_identities"].as_array().unwrap().iter().find(|n| n["records"][0] == "sis/2").unwrap();
    assert_eq!(olle["username"], "oobe01");
    // The protected person's claim shows neither the account nor its names.
    assert!(!text.contains("hgom01"), "{text}");
    // Nothing of the first run is exempt from thresholds: the directory is not empty.
    assert!(plan["held"].as_array().unwrap().is_empty(), "{:?}", plan["held"]);

    run(&["apply", "--yes"]).ok();
    let people = env.people();
    let ids = |uid: &str| people[uid].get("employeeNumber");
    assert_eq!(ids("anna.berg").len(), 1, "claimed: the owner marker is written");
    assert_eq!(ids("oobe01").len(), 1);
    assert!(ids("cecilia.holm").is_empty(), "the teacher's account is never touched");
    assert!(ids("hgom01").is_empty(), "the protected person's claim waits for --accept-protected");
    assert!(!people.contains_key("anna.berg2") && !people.contains_key("cecilia.holm2"), "{:?}", people.keys());
    assert_eq!(people.len(), 6, "two created, four made before enid: {:?}", people.keys());
    // The claimed accounts are brought in line with the sources on the next run, as enid's.
    let plan2 = run(&["plan", "--json"]).ok().json();
    assert_eq!(plan2["targets"]["directory"]["create"], 0);
    run(&["plan", "--save"]).ok();
    let id = plan2["plan_id"].as_str().unwrap().to_string();
    run(&["apply", "--plan", &id, "--accept-protected", "--yes"]).ok();
    // Claimed once approved, and renamed to a pseudonym (a protected person's username never
    // comes from their name): the same entry, not a second one.
    let theirs = env.search(BASE, "(description=sis:4)");
    assert_eq!(theirs.len(), 1);
    let uid = theirs[0].one("uid");
    assert!(uid.starts_with('u') && uid.len() == 9 && uid != "hgom01", "{uid}");
    assert_eq!(theirs[0].get("employeeNumber").len(), 1);

    // The operator decides the teacher's account is not the pupil's: the pupil gets her own.
    run(&["adopt", "--entry", &format!("uid=cecilia.holm,{BASE}"), "--person", "sis/3", "--not-theirs", "--yes"]).ok();
    run(&["apply", "--yes"]).ok();
    let people = env.people();
    assert_eq!(people["cecilia.holm2"].get("employeeNumber").len(), 1);
    assert!(people["cecilia.holm"].get("employeeNumber").is_empty());

    // A lost state, and adopt again: every account is found by its id, nothing is created twice.
    remove_state(&env);
    run(&["adopt", "--yes"]).ok();
    // A new pupil whose name a foreign account holds, right after adopt recorded every username
    // on the target as taken: blocked, never given "dan.ek2" beside it.
    hand_made(&env, "dan.ek", "Dan", "Eksson", None);
    write_csv(&env, &[&format!("7,Dan,Ek,{},student,SKOLA1,7A,,,", pnr(7))]);
    let plan3 = run(&["plan", "--json"]).ok().json();
    assert_eq!(plan3["targets"]["directory"]["create"], 0, "{}", plan3);
    assert!(plan3["blocked"].as_array().unwrap().iter().any(|b| b["reason"].as_str().unwrap().contains("uid=dan.ek")));
    run(&["apply", "--yes"]).ok();
    for (id, dns) in ids_in_directory(&env) {
        assert_eq!(dns.len(), 1, "enid id {id} on several entries: {dns:?}");
    }
    assert!(!env.people().contains_key("dan.ek2"));
    for out in &outputs {
        for s in secrets() {
            assert!(!out.contains(&s), "{s} printed:\n{out}");
        }
    }
}

#[test]
fn a_correlation_attribute_enid_writes_is_refused_by_check() {
    let env = Env::with_config(
        "[targets.directory.policy.correlate]\nattribute = \"employeeType\"\nvalue = \"{{ person_id }}\"",
    );
    write_csv(&env, &[]);
    let r = env.enid(&["check"]).fails();
    assert!(
        r.stderr.contains("employeeType") && r.stderr.contains("cannot be a correlation attribute"),
        "{}",
        r.stderr
    );
    let env = Env::with_config("[targets.directory.policy.correlate]\nattribute = \"description\"");
    let r = env.enid(&["check"]).fails();
    assert!(r.stderr.contains("correlate.attribute needs correlate.value"), "{}", r.stderr);
}

#[test]
fn a_lockout_by_it_is_not_undone_until_an_enable_is_approved() {
    let env = Env::with_config(
        "[targets.directory.disable]\nmethod = \"attribute\"\nattribute = \"description\"\nvalue = \"disabled\"",
    );
    env.csv(&[&row("1", "Anna", "Berg", &pnr(1), "student", "SKOLA1", "7A")]);
    env.enid(&["apply", "--yes"]).ok();
    // IT locks Anna out by hand, the way enid disables (the attribute).
    let dn = format!("uid=anna.berg,{BASE}");
    modify_add(&env, &dn, "description", "disabled");
    let plan = env.enid(&["plan"]).ok().stdout;
    assert!(plan.contains("disabled outside enid"), "{plan}");
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(env.people()["anna.berg"].get("description"), ["disabled"], "left disabled");
    let explain = env.enid(&["explain", "anna.berg"]).ok().stdout;
    assert!(explain.contains("disabled outside enid"), "{explain}");
    let id = env.enid(&["plan", "--save", "--json"]).ok().json()["plan_id"].as_str().unwrap().to_string();
    env.enid(&["apply", "--plan", &id, "--only", "enable", "--yes"]).ok();
    assert!(env.people()["anna.berg"].get("description").is_empty(), "enabled once approved");
}

fn modify_add(env: &Env, dn: &str, attr: &str, value: &str) {
    let out = std::process::Command::new("ldapmodify")
        .args(["-x", "-H", &env.slapd.url(), "-D", "cn=admin,dc=example,dc=org", "-w", "secret"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let mut stdin = c.stdin.take().unwrap();
            writeln!(stdin, "dn: {dn}\nchangetype: modify\nadd: {attr}\n{attr}: {value}\n")?;
            drop(stdin);
            c.wait_with_output()
        })
        .expect("ldapmodify");
    assert!(out.status.success());
}
