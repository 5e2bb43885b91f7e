//! Third review (target-neutral core, policy block, SCIM): each test reproduces a problem found
//! by trying to break the new promises as a careless operator or a hostile input would.

use crate::harness::*;

const GROUPS: &str = "[targets.directory.groups]\nbase_dn = \"ou=groups,dc=example,dc=org\"";
const GROUP_BASE: &str = "ou=groups,dc=example,dc=org";

fn pupils(n: usize) -> Vec<String> {
    (0..n).map(|i| row(&format!("P{i:05}"), &format!("Elev{i}"), "Testsson", &pnr(i), "student", "S1", "7A")).collect()
}

/// DNs (lowercased) of the inetOrgPerson entries anywhere under dc=example,dc=org, by uid.
fn dn_of(env: &Env, uid: &str) -> String {
    env.search("dc=example,dc=org", &format!("(uid={uid})")).first().map(|e| e.dn.to_lowercase()).unwrap_or_default()
}

fn group_values(env: &Env, cn: &str, attr: &str) -> Vec<String> {
    let mut v: Vec<String> = env
        .search(GROUP_BASE, &format!("(cn={cn})"))
        .first()
        .map(|g| g.get(attr).into_iter().map(|m| m.to_lowercase()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// `apply --plan ID --only groups` on a plan that also renames a pupil: the rename is not
/// applied (not selected), so the pupil's account stays at its old DN, but the group changes
/// remove the old DN from the class (the planner put the renamed pupil's member value "given at
/// apply") and the add of the new value is dropped (no key was reported). The pupil is out of
/// their class although their account did not change. `select()` promises that a person's
/// operations that address the renamed account wait with the rename; the group member removal
/// does not.
#[test]
fn applying_only_the_group_changes_does_not_drop_a_pupil_whose_rename_waits() {
    let env = Env::with_config(&format!("{GROUPS}\n[naming]\non_name_change = \"rename\""));
    csv_rows(&env, &pupils(5));
    env.apply();
    let before = dn_of(&env, "elev1.testsson");
    assert!(group_values(&env, "S1-7A", "member").contains(&before));

    let mut rows = pupils(5);
    rows[1] = rows[1].replacen("Testsson", "Nyman", 1); // a rename (the rename waits)
    rows[3] = rows[3].replacen(",7A,", ",7B,", 1); // a group change the operator wants now
    csv_rows(&env, &rows);
    let plan = env.enid(&["plan", "--save", "--json"]).ok().json();
    assert_eq!(plan["summary"]["rename"], 1, "{}", plan["summary"]);
    let id = plan["plan_id"].as_str().unwrap().to_string();
    env.enid(&["apply", "--plan", &id, "--only", "groups", "--yes"]).ok();

    // The rename was not applied: the account is where it was.
    assert_eq!(dn_of(&env, "elev1.testsson"), before, "not renamed");
    assert!(group_values(&env, "S1-7B", "member").contains(&dn_of(&env, "elev3.testsson")), "the wanted change");
    let members = group_values(&env, "S1-7A", "member");
    assert!(
        members.contains(&before),
        "the pupil whose rename waits was removed from their class: {members:?} lacks {before}"
    );
}

/// The same with posixGroup (memberUid = username): the old username is removed from the
/// class, the new one is never added, the account still has the old username.
#[test]
fn applying_only_the_group_changes_does_not_drop_a_pupil_whose_rename_waits_posix() {
    let env = Env::with_config(&format!(
        "{GROUPS}\nobject_class = \"posixGroup\"\ngid_number_start = 5000\n[naming]\non_name_change = \"rename\""
    ));
    csv_rows(&env, &pupils(5));
    env.apply();
    assert!(group_values(&env, "S1-7A", "memberUid").contains(&"elev1.testsson".to_string()));

    let mut rows = pupils(5);
    rows[1] = rows[1].replacen("Testsson", "Nyman", 1);
    rows[3] = rows[3].replacen(",7A,", ",7B,", 1);
    csv_rows(&env, &rows);
    let plan = env.enid(&["plan", "--save", "--json"]).ok().json();
    assert_eq!(plan["summary"]["rename"], 1, "{}", plan["summary"]);
    let id = plan["plan_id"].as_str().unwrap().to_string();
    env.enid(&["apply", "--plan", &id, "--only", "groups", "--yes"]).ok();

    assert!(env.people().contains_key("elev1.testsson"), "not renamed");
    let members = group_values(&env, "S1-7A", "memberUid");
    assert!(members.contains(&"elev1.testsson".to_string()), "removed from the class: {members:?}");
}

mod scim_target {
    use crate::harness::*;
    use crate::scim::{direct, env_with_targets, scim_table, tenant};
    use connector_api::{AccountSpec, Role, Target, TargetOp};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
    }

    /// userName → (externalId, displayName) of every user on the tenant, as the server keeps them.
    fn users(url: &str) -> std::collections::BTreeMap<String, (Option<String>, Option<String>)> {
        let t = direct(url);
        let all = rt().block_on(t.observe(&["externalId".into(), "displayName".into()])).expect("observe");
        all.into_iter()
            .map(|a| {
                let get = |k: &str| a.attrs.texts(k).next().map(str::to_string);
                (a.username().unwrap_or_default().to_string(), (get("externalId"), get("displayName")))
            })
            .collect()
    }

    fn make_user(url: &str, username: &str, given: &str, family: &str) -> String {
        let account = AccountSpec {
            id: "(by hand)".into(),
            username: username.into(),
            given_name: given.into(),
            family_name: family.into(),
            display_name: format!("{given} {family}").into(),
            roles: [Role::Staff].into_iter().collect(),
            schools: Default::default(),
            enabled: true,
            protected: false,
            attrs: [("displayName".to_string(), connector_api::Value::text(format!("{given} {family}")))].into(),
            placement: None,
            initial_password: None,
        };
        match rt().block_on(direct(url).apply(&TargetOp::Create { account })).expect("make a user by hand") {
            connector_api::OpOutcome::Created { key, .. } => key,
            other => panic!("{other:?}"),
        }
    }

    /// `user_name` changed from the default to `"{{ username }}@skola.se"` after accounts exist.
    /// `username_in` returns a userName that lacks the pattern's shape whole, and says the
    /// engine then renames it into the pattern; but the whole value of an old account is exactly
    /// the username, so nothing differs and nothing is planned: the users keep `anna.berg`
    /// forever, while new users get `...@skola.se`. (The other direction, and one domain to
    /// another, are renamed.)
    #[test]
    fn a_domain_added_to_user_name_later_is_written_to_the_existing_users() {
        let url = tenant();
        let env = env_with_targets(&scim_table("lms", &url, ""));
        csv_rows(
            &env,
            &[row("1", "Anna", "Berg", "", "student", "S1", ""), row("2", "Bo", "Ek", "", "student", "S1", "")],
        );
        env.enid(&["apply", "--yes"]).ok();
        assert!(users(&url).contains_key("anna.berg"));

        env.edit_config("token_file", "user_name = \"{{ username }}@skola.se\"\ntoken_file");
        csv_rows(
            &env,
            &[
                row("1", "Anna", "Berg", "", "student", "S1", ""),
                row("2", "Bo", "Ek", "", "student", "S1", ""),
                row("3", "Cy", "Lind", "", "student", "S1", ""),
            ],
        );
        env.enid(&["apply", "--yes"]).ok();
        let all = users(&url);
        assert!(all.contains_key("cy.lind@skola.se"), "{all:?}");
        assert!(
            all.keys().all(|u| u.ends_with("@skola.se")),
            "old users keep a userName outside the configured pattern: {:?}",
            all.keys().collect::<Vec<_>>()
        );
    }

    /// `adopt_by_username = true` on a populated platform claims any unmarked user whose userName
    /// equals the username a person gets, whatever the user's names say. The README's own
    /// template `{{ given_name[:3] }}{{ family_name[:3] }}` gives pupil Anna Berg `annber`, the
    /// name the platform gave teacher Annika Bergström by hand: the pupil is given the
    /// teacher's account (her courses, grades, files), and the next apply overwrites the
    /// teacher's names with the pupil's. `enid adopt` claims only accounts whose username fits
    /// the names; this claim checks nothing but the username.
    #[test]
    fn adopt_by_username_does_not_hand_a_pupil_a_teachers_account_with_other_names() {
        let url = tenant();
        let teacher = make_user(&url, "annber", "Annika", "Bergström");
        let env = env_with_targets(&format!(
            "[naming]\nusername = \"{{{{ given_name[:3] }}}}{{{{ family_name[:3] }}}}\"\n\n{}",
            scim_table("lms", &url, "adopt_by_username = true")
        ));
        csv_rows(&env, &[row("1", "Anna", "Berg", "", "student", "S1", "")]);
        let plan = env.enid(&["plan", "--json"]).ok().json();
        let adoptions = plan["adoptions"].as_array().cloned().unwrap_or_default();
        env.enid(&["apply", "--yes"]).ok();
        let all = users(&url);
        let (owner, shown) = all.get("annber").cloned().unwrap_or_default();
        assert!(
            adoptions.is_empty() && owner.is_none(),
            "the teacher's user {teacher} (Annika Bergström) was claimed for pupil Anna Berg: adoptions {adoptions:?}; \
             now externalId {owner:?}, displayName {shown:?}"
        );
    }
}
