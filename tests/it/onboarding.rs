//! Onboarding against a real slapd: a directory that already holds accounts for most of a school
//! (some with the right usernames, some with an id the old scripts stored, some foreign, one a
//! protected person's) is taken over without one duplicate, through a lost state and `enid adopt`
//! again; a namesake is never made beside an account enid does not own.

use crate::harness::*;

const HEADER_P: &str =
    "person_id,given_name,family_name,civic_no,role,school_unit,groups,start_date,end_date,protection";
const CORRELATE: &str = "[targets.directory.policy.correlate]\nusername = true\nattribute = \"description\"\nvalue = \"sis:{{ person_id }}\"";

/// An inetOrgPerson made by hand under the people OU, as old scripts or IT staff would, with an
/// optional `description` (where the tests' old scripts kept the school system's id).
pub fn hand_made(env: &Env, uid: &str, given: &str, family: &str, description: Option<&str>) {
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
    // The record's variables (person_id, email) exist only in the correlation value, never in an
    // attribute enid writes: a source key or an e-mail address must not be copied onto accounts
    // by a template that was meant to compare.
    let env = Env::with_config("[targets.directory.policy.attributes]\nmail = \"{{ email }}\"");
    let r = env.enid(&["check"]).fails();
    assert!(r.stderr.contains("mail") && r.stderr.contains("email"), "{}", r.stderr);
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

/// A name part no other test run on the shared DC uses: AD names are unique in the domain.
fn unique() -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() % 1_000_000;
    format!("{n:06}")
}

#[test]
fn an_ad_domain_of_accounts_made_before_enid_is_taken_over_and_a_lockout_is_respected() {
    use crate::ad::*;
    let ou = test_ou();
    let norr = format!("OU=Norr,{ou}");
    with_admin(async |l| {
        let res =
            l.add(&norr, vec![("objectClass", ["organizationalUnit"].into()), ("ou", ["Norr"].into())]).await.unwrap();
        assert_eq!(res.rc, 0, "{res:?}");
    });
    let u = unique();
    let (anna_sam, bo_sam, cy_sam) = (format!("ab{u}"), format!("bo.ek{u}"), format!("cy.holm{u}"));
    // Old scripts stored the school system's id in employeeType; Bo's account has his enid
    // username, and his names in its cn alone (made with a name and an account name only, as
    // `New-ADUser -Name -SamAccountName` makes one): username correlation finds them there,
    // though AD's mapping may not name the cn; Cy's username is a teacher's account.
    let anna_dn = make_user(&norr, &anna_sam, "Anna", &format!("Berg{u}"));
    let bo_dn = make_user(&norr, &bo_sam, "Bo", &format!("Ek{u}"));
    make_user(&norr, &cy_sam, "Cy", &format!("Holmqvist{u}"));
    with_admin(async |l| {
        let res = l.modify(&anna_dn, vec![ldap3::Mod::Replace("employeeType", ["sis:1"].into())]).await.unwrap();
        assert_eq!(res.rc, 0, "{res:?}");
        let names_only_in_cn =
            ["givenName", "sn", "displayName"].map(|a| ldap3::Mod::Delete(a, std::collections::HashSet::new()));
        let res = l.modify(&bo_dn, Vec::from(names_only_in_cn)).await.unwrap();
        assert_eq!(res.rc, 0, "{res:?}");
    });
    let env = env_with(&ad_table(
        "ldaps://127.0.0.1:636",
        &ou,
        "initial_password = \"generated\"\n\n[targets.ad.policy.correlate]\nusername = true\n\
         attribute = \"employeeType\"\nvalue = \"sis:{{ person_id }}\"",
    ));
    let rows = [
        person("1", "Anna", &format!("Berg{u}"), "Norr", "7A"),
        person("2", "Bo", &format!("Ek{u}"), "Norr", "7A"),
        person("3", "Cy", &format!("Holm{u}"), "Norr", "7A"),
        person("4", "Dan", &format!("Lind{u}"), "Norr", "7A"),
    ];
    csv_rows(&env, &rows);
    let plan = env.enid(&["plan", "--json"]).ok().json();
    let summary = &plan["targets"]["ad"];
    assert_eq!((summary["claim"].as_u64(), summary["create"].as_u64()), (Some(2), Some(1)), "{plan}");
    assert!(plan["blocked"].to_string().contains(&format!("CN=Cy Holmqvist{u}")), "{}", plan["blocked"]);
    env.enid(&["apply", "--yes"]).ok();
    let all = users(&ou);
    assert_eq!(all.len(), 4, "three made by hand, one created: {:?}", all.keys());
    let id_of = |sam: &str| all[sam].get("employeeNumber").first().cloned();
    assert!(id_of(&anna_sam).is_some_and(|i| i.len() == 36), "Anna's old account is hers: {:?}", all[&anna_sam]);
    assert!(id_of(&bo_sam).is_some());
    assert!(id_of(&cy_sam).is_none(), "the teacher's account is left alone");
    // The claimed accounts were disabled before enid: they stay so, reported, until approved.
    let next = env.enid(&["plan"]).ok().stdout;
    assert!(next.contains("disabled outside enid"), "{next}");
    // Dan's account, made by enid, is locked out by IT: the next apply leaves it locked.
    let dan = all.keys().find(|k| k.starts_with("dan.")).unwrap().clone();
    let dan_dn = all[&dan].dn.clone();
    with_admin(async |l| {
        let res = l.modify(&dan_dn, vec![ldap3::Mod::Replace("userAccountControl", ["514"].into())]).await;
        assert_eq!(res.unwrap().rc, 0);
    });
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(users(&ou)[&dan].one("userAccountControl"), "514", "IT's lockout is not undone");
    let explain = env.enid(&["explain", &dan]).ok().stdout;
    assert!(explain.contains("disabled outside enid"), "{explain}");
    // Lost state, and adopt again: nothing is created twice.
    remove_state(&env);
    env.enid(&["adopt", "--yes"]).ok();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["targets"]["ad"]["create"], 0, "{plan}");
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(users(&ou).len(), 4);
}

#[test]
fn a_platform_of_users_made_before_enid_is_taken_over_and_a_deactivation_is_respected() {
    use crate::scim::*;
    let url = tenant();
    let env = env_with_targets(&scim_table(
        "lms",
        &url,
        "[targets.lms.policy.correlate]\nusername = true\nattribute = \"title\"\nvalue = \"{{ person_id }}\"",
    ));
    let target = direct(&url);
    let made = |username: &str, given: &str, family: &str, title: Option<&str>, active: bool| {
        let mut attrs: connector_api::Attrs =
            [("displayName".to_string(), connector_api::Value::text(format!("{given} {family}")))].into();
        if let Some(t) = title {
            attrs.insert("title", connector_api::Value::text(t));
        }
        let account = connector_api::AccountSpec {
            id: "(by hand)".into(),
            username: username.into(),
            given_name: given.into(),
            family_name: family.into(),
            display_name: format!("{given} {family}").into(),
            roles: [connector_api::Role::Student].into_iter().collect(),
            schools: Default::default(),
            enabled: active,
            protected: false,
            attrs: attrs.into(),
            placement: None,
            initial_password: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(connector_api::Target::apply(&target, &connector_api::TargetOp::Create { account })).unwrap();
    };
    made("a.berg", "Anna", "Berg", Some("1"), true);
    made("bo.ek", "Bo", "Ek", None, true);
    made("cy.holm", "Cecilia", "Holmqvist", None, true);
    csv_rows(
        &env,
        &[
            row("1", "Anna", "Berg", "", "student", "S1", ""),
            row("2", "Bo", "Ek", "", "student", "S1", ""),
            row("3", "Cy", "Holm", "", "student", "S1", ""),
            row("4", "Dan", "Lind", "", "student", "S1", ""),
        ],
    );
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["targets"]["lms"]["claim"], 2, "{plan}");
    assert_eq!(plan["targets"]["lms"]["create"], 1, "{plan}");
    env.enid(&["apply", "--yes"]).ok();
    let on = |name: &str| -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let all = rt.block_on(connector_api::Target::observe(&target, &["externalId".to_string()])).unwrap();
        all.iter()
            .filter(|a| a.username().is_some_and(|u| u.starts_with(name)))
            .map(|a| format!("{}:{}", a.username().unwrap(), a.attrs.contains_key("externalId")))
            .collect()
    };
    assert_eq!(on("a.berg"), ["a.berg:true"], "claimed, its username kept (a new person takes it)");
    assert_eq!(on("bo.ek"), ["bo.ek:true"]);
    assert_eq!(on("cy.holm"), ["cy.holm:false"], "someone else's, left alone, no cy.holm2");
    // Bo is deactivated on the platform by hand: the next apply leaves him so.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let all = rt.block_on(connector_api::Target::observe(&target, &[])).unwrap();
    let bo = all.iter().find(|a| a.username() == Some("bo.ek")).unwrap().key().to_owned();
    rt.block_on(connector_api::Target::apply(&target, &connector_api::TargetOp::Disable { key: bo.clone() })).unwrap();
    let plan = env.enid(&["plan"]).ok().stdout;
    assert!(plan.contains("disabled outside enid"), "{plan}");
    env.enid(&["apply", "--yes"]).ok();
    let all = rt.block_on(connector_api::Target::observe(&target, &[])).unwrap();
    assert!(all.iter().find(|a| a.key() == bo).unwrap().disabled, "the deactivation is not undone");
    // Lost state, adopt again: found by the enid ids, no duplicates.
    remove_state(&env);
    env.enid(&["adopt", "--yes"]).ok();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["targets"]["lms"]["create"], 0, "{plan}");
}

#[test]
fn a_target_renamed_in_the_config_says_so_and_its_records_move_with_one_command() {
    let env = Env::new();
    env.csv(&[
        &row("1", "Anna", "Berg", &pnr(1), "student", "SKOLA1", "7A"),
        &row("2", "Bo", "Ek", "", "student", "S1", ""),
    ]);
    env.apply();
    env.edit_config("[targets.directory]", "[targets.katalog]");
    let r = env.enid(&["plan"]).fails();
    assert!(
        r.stderr.contains("target \"katalog\" holds 2 accounts")
            && r.stderr.contains("\"directory\", which the config no longer names")
            && r.stderr.contains("enid state rename-target directory katalog"),
        "{}",
        r.stderr
    );
    // The wrong way round, or onto a name the config does not have, is refused.
    assert!(env.enid(&["state", "rename-target", "katalog", "directory"]).fails().stderr.contains("names no target"));
    env.enid(&["state", "rename-target", "directory", "katalog"]).ok();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{}", plan["operations"]);
    assert!(plan["blocked"].as_array().unwrap().is_empty(), "{}", plan["blocked"]);
}

#[test]
fn an_account_claimed_by_hand_outside_the_scope_is_moved_into_its_place() {
    use crate::ad::*;
    let ou = test_ou();
    let u = unique();
    let old_ou = format!("OU=gamla{u},{DOMAIN}");
    with_admin(async |l| {
        let name = format!("gamla{u}");
        let res = l
            .add(&old_ou, vec![("objectClass", ["organizationalUnit"].into()), ("ou", [name.as_str()].into())])
            .await
            .unwrap();
        assert_eq!(res.rc, 0, "{res:?}");
    });
    let sam = format!("eo{u}");
    let dn = make_user(&old_ou, &sam, "Eva", &format!("Old{u}"));
    let env = env_with(&ad_table("ldaps://127.0.0.1:636", &ou, ""));
    csv_rows(&env, &[person("1", "Eva", &format!("Old{u}"), "Norr", "7A")]);
    env.enid(&["adopt", "--entry", &dn, "--person", "sis/1", "--yes"]).ok();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    let ops = plan["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "{plan}");
    assert_eq!(ops[0]["action"], "move", "{plan}");
    assert_eq!(plan["targets"]["ad"]["create"], 0);
    env.enid(&["apply", "--yes"]).ok();
    let here = users(&ou);
    assert_eq!(here.len(), 1, "{:?}", here.keys());
    assert!(here[&sam].dn.to_lowercase().ends_with(&format!("ou=norr,{}", ou.to_lowercase())), "{}", here[&sam].dn);
    // In its place now, it is brought in line (the owner marker among it), and then left as it is.
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(users(&ou)[&sam].get("employeeNumber").len(), 1);
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert!(plan["operations"].as_array().unwrap().iter().all(|o| o["action"] == "enable"), "{plan}");
}
