//! The planner's tests: one `check` per shape of input, with the plan it gives written out.

use super::*;

fn attrs(pairs: &[(&str, &str)]) -> Attrs {
    pairs.iter().map(|(k, v)| (k.to_string(), Value::text(*v))).collect()
}

/// A directory like LDAP: keys fold without case and spaces, a rename and a move change the
/// key, groups name members by key.
fn caps(groups: Option<MemberForm>) -> Capabilities {
    Capabilities {
        owner_attribute: "employeeNumber".into(),
        default_attributes: Vec::new(),
        protected_attributes: Vec::new(),
        groups,
        disable: connector_api::DisableKind::Move,
        finds_outside_scope: true,
        existing_usernames: connector_api::ExistingUsernames::Avoid,
        fold_key: |k| k.replace(", ", ",").to_lowercase(),
        fold_group_name: |n| n.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase(),
        ..Capabilities::default()
    }
}

fn desired(id: &str, user: &str, sn: &str, active: bool) -> Desired {
    Desired {
        id: id.into(),
        spec: AccountSpec {
            id: id.into(),
            username: user.into(),
            given_name: Default::default(),
            family_name: sn.into(),
            display_name: sn.into(),
            roles: [connector_api::Role::Student].into_iter().collect(),
            schools: connector_api::source::smallvec!["S1".into()],
            enabled: active,
            protected: false,
            attrs: PackedAttrs::plain(attrs(&[("employeeNumber", id), ("sn", sn), ("uid", user)])),
            placement: None,
            initial_password: None,
        },
        active,
        inactive_reason: (!active).then(|| "no longer in any source".to_string()),
        provision_disabled: false,
        grace_days: Some(90),
        protected: false,
        needs_approval: false,
        held: None,
        scheduled_start: false,
    }
}

fn observed(user: &str, id: Option<&str>, sn: &str, disabled: bool) -> ObservedAccount {
    let mut a = attrs(&[("sn", sn), ("uid", user)]);
    if let Some(id) = id {
        a.insert("employeeNumber", Value::text(id));
    }
    let mut o = ObservedAccount::new(
        &format!("uid={user},ou=people,dc=example,dc=org"),
        Some(&format!("uuid-{user}")),
        Some(user),
        a.into(),
    );
    o.disabled = disabled;
    o
}

fn owned(id: &str, user: &str, status: AccountStatus) -> OwnedAccount {
    let key = format!("uid={user},ou=people,dc=example,dc=org");
    let anchor = (status != AccountStatus::Pending).then(|| format!("uuid-{user}"));
    OwnedAccount::new("dir", id.into(), Some(&key), anchor.as_deref(), status)
}

fn check(desired: &[Desired], observed: &[ObservedAccount], owned: &[OwnedAccount], expect: expect_test::Expect) {
    let tp = plan(desired, observed, owned);
    let mut out = String::new();
    for op in &tp.operations {
        out.push_str(&format!("{} {} ({}) {}\n", op.action.as_str(), op.username, op.reason, op_json(&op)));
    }
    for a in &tp.adoptions {
        out.push_str(&format!("adopt {} disabled={}\n", a.key, a.disabled));
    }
    for b in &tp.blocked {
        out.push_str(&format!("blocked {}: {}\n", b.username, b.reason));
    }
    for (id, value) in &tp.members {
        out.push_str(&format!("member {id}: {}\n", value.as_deref().unwrap_or("(the target gives it at apply)")));
    }
    out.push_str(&format!("{:?} unmanaged={}\n", tp.summary, tp.unmanaged));
    expect.assert_eq(&out);
}

/// An operation as JSON; a create as the spec's username, attributes and whether it starts
/// disabled (the rest of the spec is the person's, not the plan's).
fn op_json(op: &PlannedOp) -> String {
    match &op.op {
        TargetOp::Create { account } => serde_json::json!({
            "kind": "create", "username": account.username, "attrs": account.attrs, "disabled": !account.enabled
        })
        .to_string(),
        other => serde_json::to_string(other).unwrap(),
    }
}

fn plan(desired: &[Desired], observed: &[ObservedAccount], owned: &[OwnedAccount]) -> TargetPlan {
    plan_with(desired, observed, owned, &caps(Some(MemberForm::Key)))
}

fn plan_with(
    desired: &[Desired],
    observed: &[ObservedAccount],
    owned: &[OwnedAccount],
    caps: &Capabilities,
) -> TargetPlan {
    let owned: Vec<&OwnedAccount> = owned.iter().collect();
    let managed = ["employeeNumber".to_string(), "sn".into(), "uid".into(), "departmentNumber".into()];
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
    plan_target(
        "dir",
        desired.to_vec(),
        observed,
        &owned,
        &managed,
        &TargetFacts { caps, today, correlate: None, enable_disabled_outside: false },
    )
}

const U1: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
const U2: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

#[test]
fn an_entry_carrying_an_enid_id_the_state_does_not_record_blocks_and_is_never_duplicated() {
    let mut hr = observed("cy.ek", None, "Ek", false);
    set(&mut hr.attrs, "employeeNumber", Value::text("HR-4711"));
    check(
        &[desired(U1, "anna.berg", "Berg", true), desired("3", "cy.ek2", "Ek", true)],
        &[observed("anna.b", Some(U1), "Berg", false), observed("bo.ek", Some(U2), "Ek", false), hr],
        &[],
        expect_test::expect![[r#"
            create cy.ek2 (new person) {"attrs":{"employeeNumber":["3"],"sn":["Ek"],"uid":["cy.ek2"]},"disabled":false,"kind":"create","username":"cy.ek2"}
            blocked anna.berg: uid=anna.b,ou=people,dc=example,dc=org carries enid id 0f8fad5b-d9cb-469f-a165-70867728950e but the state database does not record it as enid's: restore the state database from a backup, or run `enid adopt` (when adopt could not match it, claim it with `enid adopt --entry KEY --person SOURCE/PERSON_ID` once you know whose it is)
            blocked bo.ek: uid=bo.ek,ou=people,dc=example,dc=org carries enid id 7c9e6679-7425-40de-944b-e07fc1f90ae7 but the state database does not record it as enid's: restore the state database from a backup, or run `enid adopt` (when adopt could not match it, claim it with `enid adopt --entry KEY --person SOURCE/PERSON_ID` once you know whose it is)
            member 3: (the target gives it at apply)
            Summary { create: 1, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=1
        "#]],
    );
}

/// Two entries with one anchor (a broken copy): the row that records the anchor records both,
/// as when the rows were an index of their own; neither is someone else's or unmanaged.
#[test]
fn entries_sharing_a_recorded_anchor_are_both_owned() {
    let mut copy = observed("anna.copy", Some(U1), "Berg", false);
    copy.set_anchor(Some("uuid-anna.berg"));
    for observed in [
        vec![observed("anna.berg", Some(U1), "Berg", false), copy.clone()],
        vec![copy.clone(), observed("anna.berg", Some(U1), "Berg", false)],
    ] {
        let tp = plan(
            &[desired(U1, "anna.berg", "Berg", true)],
            &observed,
            &[owned(U1, "anna.berg", AccountStatus::Active)],
        );
        assert!(tp.blocked.is_empty(), "{:?}", tp.blocked);
        assert_eq!(tp.unmanaged, 0);
    }
}

#[test]
fn an_owned_account_whose_anchor_is_gone_is_blocked_by_whatever_took_its_place() {
    // Deleted by hand and re-added by hand at the same DN, without enid's id.
    let mut other = observed("anna.berg", None, "Manual", false);
    other.set_anchor(Some("uuid-hand-made"));
    // Re-added from an LDIF export: enid's id, but a new entry.
    let mut copy = observed("bo.ek", Some(U2), "Ek", false);
    copy.set_anchor(Some("uuid-copy"));
    check(
        &[desired(U1, "anna.berg", "Berg", true), desired(U2, "bo.ek", "Ek", true)],
        &[other, copy],
        &[owned(U1, "anna.berg", AccountStatus::Active), owned(U2, "bo.ek", AccountStatus::Active)],
        expect_test::expect![[r#"
            blocked anna.berg: uid=anna.berg,ou=people,dc=example,dc=org stands where enid's account is recorded, but it is another entry, not created by enid; it is left alone
            blocked bo.ek: uid=bo.ek,ou=people,dc=example,dc=org carries enid id 7c9e6679-7425-40de-944b-e07fc1f90ae7 but the state database does not record it as enid's: restore the state database from a backup, or run `enid adopt` (when adopt could not match it, claim it with `enid adopt --entry KEY --person SOURCE/PERSON_ID` once you know whose it is)
            Summary { create: 0, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
        "#]],
    );
}

#[test]
fn a_row_without_an_anchor_takes_the_entry_at_its_key_only_with_the_identitys_id() {
    let mut row = owned("1", "anna.berg", AccountStatus::Active);
    row.set_anchor(None);
    check(
        &[desired("1", "anna.berg", "Berg", true)],
        &[observed("anna.berg", Some("2"), "Berg", false)],
        &[row.clone()],
        expect_test::expect![[r#"
            blocked anna.berg: uid=anna.berg,ou=people,dc=example,dc=org stands where enid's account is recorded, but it is another entry, not created by enid; it is left alone
            Summary { create: 0, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
        "#]],
    );
    check(
        &[desired("1", "anna.berg", "Berg", true)],
        &[observed("anna.berg", Some("1"), "Berg", false)],
        &[row],
        expect_test::expect![[r#"
            adopt uid=anna.berg,ou=people,dc=example,dc=org disabled=false
            member 1: uid=anna.berg,ou=people,dc=example,dc=org
            Summary { create: 0, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 1 } unmanaged=0
        "#]],
    );
}

#[test]
fn an_interrupted_disabled_create_is_adopted_where_it_landed() {
    // The pending row of a pre-provisioning create names the enabled DN (as older versions
    // recorded it); the entry is in the disabled OU.
    let mut d = desired(U1, "ny.elev", "Elev", false);
    d.provision_disabled = true;
    let mut obs = observed("ny.elev", Some(U1), "Elev", true);
    obs.set_key("uid=ny.elev,ou=disabled,ou=people,dc=example,dc=org");
    check(
        &[d],
        &[obs],
        &[owned(U1, "ny.elev", AccountStatus::Pending)],
        expect_test::expect![[r#"
            adopt uid=ny.elev,ou=disabled,ou=people,dc=example,dc=org disabled=true
            Summary { create: 0, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 1 } unmanaged=0
        "#]],
    );
}

#[test]
fn a_returner_renamed_and_enabled_is_sent_to_its_observed_key_and_joins_groups_by_the_key_the_target_gives() {
    let mut obs = observed("bo.ek", Some("2"), "Ek", true);
    obs.set_key("uid=bo.ek,ou=disabled,ou=people,dc=example,dc=org");
    check(
        &[desired("2", "bo.lind", "Ek", true)],
        &[obs],
        &[owned("2", "bo.ek", AccountStatus::Disabled)],
        expect_test::expect![[r#"
            rename bo.lind (the name changed: bo.ek → bo.lind) {"kind":"rename","key":"uid=bo.ek,ou=disabled,ou=people,dc=example,dc=org","username":"bo.lind"}
            update bo.lind (uid changed in the source) {"kind":"update","key":"uid=bo.ek,ou=disabled,ou=people,dc=example,dc=org","changes":[{"attr":"uid","values":["bo.lind"]}]}
            enable bo.lind (active again) {"kind":"enable","key":"uid=bo.ek,ou=disabled,ou=people,dc=example,dc=org"}
            member 2: (the target gives it at apply)
            Summary { create: 0, claim: 0, rename: 1, move: 0, update: 1, enable: 1, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
        "#]],
    );
}

#[test]
fn first_run_creates_and_leaves_unowned_alone() {
    check(
        &[desired("1", "anna.berg", "Berg", true)],
        &[observed("admin", None, "Admin", false)],
        &[],
        expect_test::expect![[r#"
            create anna.berg (new person) {"attrs":{"employeeNumber":["1"],"sn":["Berg"],"uid":["anna.berg"]},"disabled":false,"kind":"create","username":"anna.berg"}
            member 1: (the target gives it at apply)
            Summary { create: 1, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=1
        "#]],
    );
}

#[test]
fn converged_state_gives_no_operations() {
    check(
        &[desired("1", "anna.berg", "Berg", true)],
        &[observed("anna.berg", Some("1"), "Berg", false)],
        &[owned("1", "anna.berg", AccountStatus::Active)],
        expect_test::expect![[r#"
            member 1: uid=anna.berg,ou=people,dc=example,dc=org
            Summary { create: 0, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 1 } unmanaged=0
        "#]],
    );
}

#[test]
fn a_name_change_updates_only_that_attribute() {
    check(
        &[desired("1", "anna.berg", "Ek", true)],
        &[observed("anna.berg", Some("1"), "Berg", false)],
        &[owned("1", "anna.berg", AccountStatus::Active)],
        expect_test::expect![[r#"
            update anna.berg (sn changed in the source) {"kind":"update","key":"uid=anna.berg,ou=people,dc=example,dc=org","changes":[{"attr":"sn","values":["Ek"]}]}
            member 1: uid=anna.berg,ou=people,dc=example,dc=org
            Summary { create: 0, claim: 0, rename: 0, move: 0, update: 1, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
        "#]],
    );
}

#[test]
fn an_attribute_the_mapping_no_longer_yields_is_removed() {
    let mut obs = observed("anna.berg", Some("1"), "Berg", false);
    set(&mut obs.attrs, "departmentNumber", Value::text("S1"));
    set(&mut obs.attrs, "entryUUID", Value::text("not managed"));
    check(
        &[desired("1", "anna.berg", "Berg", true)],
        &[obs],
        &[owned("1", "anna.berg", AccountStatus::Active)],
        expect_test::expect![[r#"
            update anna.berg (departmentNumber changed in the source) {"kind":"update","key":"uid=anna.berg,ou=people,dc=example,dc=org","changes":[{"attr":"departmentNumber","values":[]}]}
            member 1: uid=anna.berg,ou=people,dc=example,dc=org
            Summary { create: 0, claim: 0, rename: 0, move: 0, update: 1, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
        "#]],
    );
}

#[test]
fn leavers_are_disabled_once_and_returners_enabled() {
    check(
        &[
            desired("1", "anna.berg", "Berg", false),
            desired("2", "bo.ek", "Ek", false),
            desired("3", "cy.ek", "Ek", true),
        ],
        &[
            observed("anna.berg", Some("1"), "Berg", false),
            observed("bo.ek", Some("2"), "Ek", true),
            observed("cy.ek", Some("3"), "Ek", true),
        ],
        &[
            owned("1", "anna.berg", AccountStatus::Active),
            owned("2", "bo.ek", AccountStatus::Disabled),
            owned("3", "cy.ek", AccountStatus::Disabled),
        ],
        expect_test::expect![[r#"
            enable cy.ek (active again) {"kind":"enable","key":"uid=cy.ek,ou=people,dc=example,dc=org"}
            disable anna.berg (no longer in any source) {"kind":"disable","key":"uid=anna.berg,ou=people,dc=example,dc=org"}
            member 3: (the target gives it at apply)
            Summary { create: 0, claim: 0, rename: 0, move: 0, update: 0, enable: 1, disable: 1, delete: 0, unchanged: 1 } unmanaged=0
        "#]],
    );
}

/// A run stopped between disabling a leaver's account on the target and recording it (or IT
/// disabled it by hand): the state learns it is disabled, from today, so its grace period runs;
/// an account the state has disabled already is left as it is. A returner enabled on the target
/// while the state kept "disabled" is recorded as active.
#[test]
fn the_state_learns_a_status_the_target_already_shows_as_enid_wants_it() {
    check(
        &[
            desired("1", "anna.berg", "Berg", false),
            desired("2", "bo.ek", "Ek", false),
            desired("3", "cy.ek", "Ek", true),
        ],
        &[
            observed("anna.berg", Some("1"), "Berg", true),
            observed("bo.ek", Some("2"), "Ek", true),
            observed("cy.ek", Some("3"), "Ek", false),
        ],
        &[
            owned("1", "anna.berg", AccountStatus::Active),
            owned("2", "bo.ek", AccountStatus::Disabled),
            owned("3", "cy.ek", AccountStatus::Disabled),
        ],
        expect_test::expect![[r#"
            adopt uid=anna.berg,ou=people,dc=example,dc=org disabled=true
            adopt uid=cy.ek,ou=people,dc=example,dc=org disabled=false
            member 3: uid=cy.ek,ou=people,dc=example,dc=org
            Summary { create: 0, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 3 } unmanaged=0
        "#]],
    );
}

#[test]
fn an_interrupted_create_is_adopted_not_duplicated() {
    check(
        &[desired("1", "anna.berg", "Berg", true), desired("2", "bo.ek", "Ek", true)],
        &[observed("anna.berg", Some("1"), "Berg", false)],
        &[owned("1", "anna.berg", AccountStatus::Pending), owned("2", "bo.ek", AccountStatus::Pending)],
        expect_test::expect![[r#"
            create bo.ek (not created yet (an earlier create failed or was interrupted)) {"attrs":{"employeeNumber":["2"],"sn":["Ek"],"uid":["bo.ek"]},"disabled":false,"kind":"create","username":"bo.ek"}
            adopt uid=anna.berg,ou=people,dc=example,dc=org disabled=false
            member 1: uid=anna.berg,ou=people,dc=example,dc=org
            member 2: (the target gives it at apply)
            Summary { create: 1, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 1 } unmanaged=0
        "#]],
    );
}

#[test]
fn an_unowned_entry_in_the_way_blocks_and_is_not_touched() {
    check(
        &[desired("1", "anna.berg", "Berg", true)],
        &[observed("anna.berg", None, "Someone", false)],
        &[],
        expect_test::expect![[r#"
            blocked anna.berg: uid=anna.berg,ou=people,dc=example,dc=org exists but was not created by enid and holds this person's username: if it is theirs, made before enid, claim it with a correlation rule ([targets.dir.policy.correlate]) or `enid adopt --entry KEY --person SOURCE/PERSON_ID`; if it is not, record that with `enid adopt --entry KEY --person SOURCE/PERSON_ID --not-theirs` and the person gets another username
            Summary { create: 0, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
        "#]],
    );
}

#[test]
fn thresholds_hold_mass_disables_and_creates_but_not_a_first_run() {
    let t = crate::core::policy::Thresholds::default();
    let sum = |create, disable| Summary { create, disable, ..Default::default() };
    assert!(check_thresholds("dir", &sum(0, 10), 100, 0, &t).is_empty(), "10 is the floor");
    let hits = check_thresholds("dir", &sum(0, 102), 2000, 0, &t);
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].to_string(),
        "target \"dir\": 102 disable of 2000 owned accounts (5.1%), over the limit of 100 (5% of owned, at least 10) by 2"
    );
    assert!(check_thresholds("dir", &sum(5000, 0), 0, 0, &t).is_empty(), "the first run is exempt");
    assert_eq!(check_thresholds("dir", &sum(401, 0), 2000, 0, &t)[0].action, Action::Create);
}

#[test]
fn mass_member_removals_and_group_deletes_are_held() {
    let t = crate::core::policy::Thresholds::default();
    let groups = |members_removed, delete| GroupSummary { members_removed, delete, ..Default::default() };
    assert!(check_group_thresholds("dir", &groups(50, 5), 20, 100, &t).is_empty(), "the floors: 50 and 5");
    assert!(check_group_thresholds("dir", &groups(300, 0), 20, 3000, &t).is_empty(), "10% of 3000");
    let hits = check_group_thresholds("dir", &groups(301, 6), 20, 3000, &t);
    assert_eq!(hits.iter().map(|h| h.action).collect::<Vec<_>>(), [Action::DeleteGroup, Action::RemoveMembers]);
    assert_eq!(
        hits[1].to_string(),
        "target \"dir\": 301 remove members of 3000 members of owned groups (10.0%), over the limit of 300 (10% of \
         owned, at least 50) by 1"
    );
}

#[test]
fn the_first_run_exemption_needs_a_target_without_enid_ids() {
    let t = crate::core::policy::Thresholds::default();
    let sum = Summary { create: 5000, ..Default::default() };
    let hits = check_thresholds("dir", &sum, 0, 1, &t);
    assert_eq!(hits.len(), 1, "one entry with an enid id: not a first run");
    assert_eq!(hits[0].action, Action::Create);
    assert_eq!(hits[0].limit, 50);
}

#[test]
fn mass_updates_and_renames_are_held() {
    let t = crate::core::policy::Thresholds::default();
    let sum = |update, rename| Summary { update, rename, ..Default::default() };
    assert!(check_thresholds("dir", &sum(50, 10), 100, 0, &t).is_empty(), "the floors");
    let hits = check_thresholds("dir", &sum(22_100, 0), 22_100, 0, &t);
    assert_eq!(
        hits[0].to_string(),
        "target \"dir\": 22100 update of 22100 owned accounts (100.0%), over the limit of 2210 (10% of owned, at least 50) by 19890"
    );
    let hits = check_thresholds("dir", &sum(0, 41), 2000, 0, &t);
    assert_eq!((hits[0].action, hits[0].limit), (Action::Rename, 40));
    assert_eq!(check_thresholds("dir", &sum(201, 40), 2000, 0, &t).len(), 1, "2% of 2000 renames is allowed");
}

#[test]
fn group_names_differing_only_in_case_are_one_group_under_the_recorded_name() {
    let group = |members: &[&str]| DesiredGroup {
        school: "S1".into(),
        members: members.iter().map(|m| (format!("id-{m}").into(), Some(m.to_string()))).collect(),
    };
    let desired: BTreeMap<String, DesiredGroup> =
        [("S1-3A".to_string(), group(&["uid=a"])), ("s1-3a".to_string(), group(&["uid=b"]))].into();
    let key = "cn=s1-3a,ou=groups".to_string();
    let observed = [ObservedGroup {
        key: key.clone(),
        anchor: Some("g1".into()),
        name: "s1-3a".into(),
        members: vec!["uid=a".into()],
    }];
    let owned = OwnedGroup {
        target: "dir".into(),
        name: "s1-3a".into(),
        key: Some(key.clone()),
        anchor: Some("g1".into()),
        school: "S1".into(),
        pending: false,
    };
    let mut tp = TargetPlan::default();
    plan_groups("dir", &desired, &observed, &[&owned], &caps(Some(MemberForm::Key)), &mut tp);
    assert!(tp.blocked.is_empty(), "{:?}", tp.blocked);
    let whole = tp.operations.to_vec();
    let ops: Vec<(Action, &str, &TargetOp)> = whole.iter().map(|o| (o.action, o.username.as_str(), &o.op)).collect();
    assert_eq!(
        ops,
        [(Action::AddMembers, "s1-3a", &TargetOp::AddMembers { key: key.clone(), members: vec!["uid=b".into()] })]
    );
    // Not owned yet: one create, under the first name in sorted order.
    let mut tp = TargetPlan::default();
    plan_groups("dir", &desired, &[], &[], &caps(Some(MemberForm::Key)), &mut tp);
    let whole = tp.operations.to_vec();
    let creates: Vec<&TargetOp> = whole.iter().map(|o| &o.op).collect();
    assert_eq!(
        creates,
        [&TargetOp::CreateGroup { name: "S1-3A".into(), members: vec!["uid=a".into(), "uid=b".into()] }]
    );
}

#[test]
fn the_target_guard_counts_owned_accounts_and_groups_not_seen_by_anchor_or_key() {
    let rows = [
        owned("1", "anna.berg", AccountStatus::Active),
        owned("2", "bo.ek", AccountStatus::Disabled),
        owned("3", "cy.ek", AccountStatus::Active),
        owned("4", "dag.ny", AccountStatus::Pending),
    ];
    let rows: Vec<&OwnedAccount> = rows.iter().collect();
    // Anna by anchor; Bo's entry has a new anchor but is at the recorded key; Cy is gone; Dag's
    // create is still a question and does not count.
    let mut bo = observed("bo.ek", Some("2"), "Ek", true);
    bo.set_anchor(Some("restored"));
    let c = caps(None);
    assert_eq!(missing_accounts(&rows, &[observed("anna.berg", Some("1"), "Berg", false), bo], &c), (1, 3));
    assert_eq!(missing_accounts(&rows, &[], &c), (3, 3));

    let group = |name: &str, pending: bool| OwnedGroup {
        target: "dir".into(),
        name: name.into(),
        key: Some(format!("cn={name},ou=groups")),
        anchor: (!pending).then(|| format!("g-{name}")),
        school: "S1".into(),
        pending,
    };
    let groups = [group("7a", false), group("7b", false), group("7c", true)];
    let groups: Vec<&OwnedGroup> = groups.iter().collect();
    let c = caps(None);
    let seen = ObservedGroup { key: "CN=7a, ou=groups".into(), anchor: None, name: "7a".into(), members: vec![] };
    assert_eq!(missing_groups(&groups, &[seen], &c), (1, 2));
}

#[test]
fn a_hand_made_group_where_an_owned_group_was_is_never_taken_over() {
    let desired: BTreeMap<String, DesiredGroup> = [(
        "S1-7A".to_string(),
        DesiredGroup { school: "S1".into(), members: [("1".into(), Some("uid=a".to_string()))].into() },
    )]
    .into();
    let key = "cn=S1-7A,ou=groups".to_string();
    let observed = [ObservedGroup {
        key: key.clone(),
        anchor: Some("hand-made".into()),
        name: "S1-7A".into(),
        members: vec!["cn=admin".into()],
    }];
    let owned = |name: &str| OwnedGroup {
        target: "dir".into(),
        name: name.into(),
        key: Some(format!("cn={name},ou=groups")),
        anchor: Some(format!("g-{name}")),
        school: "S1".into(),
        pending: false,
    };
    let mut tp = TargetPlan::default();
    plan_groups("dir", &desired, &observed, &[&owned("S1-7A")], &caps(Some(MemberForm::Key)), &mut tp);
    assert!(tp.operations.is_empty(), "{:?}", tp.operations);
    assert_eq!(
        tp.blocked[0].reason,
        "group cn=S1-7A,ou=groups stands where enid's group is recorded, but it is another entry, not created by \
         enid; it is left alone"
    );
    // No longer wanted: still not deleted.
    let mut tp = TargetPlan::default();
    plan_groups("dir", &BTreeMap::new(), &observed, &[&owned("S1-7A")], &caps(Some(MemberForm::Key)), &mut tp);
    assert!(tp.operations.is_empty(), "{:?}", tp.operations);
}

#[test]
fn a_person_whose_attributes_cannot_be_rendered_is_held_and_their_account_left_alone() {
    let mut d = desired("1", "anna.berg", "Berg", true);
    d.spec.attrs = PackedAttrs::default();
    d.held = Some("attribute mapping failed: attribute mail: undefined value".into());
    check(
        &[d.clone(), desired("2", "bo.ek", "Ek", true)],
        &[observed("anna.berg", Some("1"), "Berg", false)],
        &[owned("1", "anna.berg", AccountStatus::Active)],
        expect_test::expect![[r#"
            create bo.ek (new person) {"attrs":{"employeeNumber":["2"],"sn":["Ek"],"uid":["bo.ek"]},"disabled":false,"kind":"create","username":"bo.ek"}
            blocked anna.berg: attribute mapping failed: attribute mail: undefined value
            member 1: uid=anna.berg,ou=people,dc=example,dc=org
            member 2: (the target gives it at apply)
            Summary { create: 1, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
        "#]],
    );
    check(
        &[d],
        &[],
        &[],
        expect_test::expect![[r#"
            blocked anna.berg: attribute mapping failed: attribute mail: undefined value
            Summary { create: 0, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
        "#]],
    );
}

#[test]
fn kept_members_stay_in_their_groups_and_keep_owned_groups_alive() {
    let group = |name: &str, members: &[&str]| ObservedGroup {
        key: format!("cn={name},ou=groups"),
        anchor: Some(format!("g-{name}")),
        name: name.into(),
        members: members.iter().map(|m| m.to_string()).collect(),
    };
    let owned = |name: &str| OwnedGroup {
        target: "t".into(),
        name: name.into(),
        key: Some(format!("cn={name},ou=groups")),
        anchor: Some(format!("g-{name}")),
        school: "S1".into(),
        pending: false,
    };
    let observed = [group("7A", &["uid=kim,ou=p", "uid=bo,ou=p"]), group("8B", &["uid=kim,ou=p", "uid=cy,ou=p"])];
    let (a, b) = (owned("7A"), owned("8B"));
    // 7A is still wanted with bo only; 8B with nobody.
    let want = BTreeMap::from([(
        "7A".to_string(),
        DesiredGroup { school: "S1".into(), members: [("bo".into(), Some("uid=bo,ou=p".to_string()))].into() },
    )]);
    let plan = |kept: &[&str]| {
        let c = caps(Some(MemberForm::Key));
        let mut tp =
            TargetPlan { kept_members: kept.iter().map(|k| fold_member(&c, k)).collect(), ..Default::default() };
        plan_groups("t", &want, &observed, &[&a, &b], &c, &mut tp);
        tp.operations.iter().map(|o| format!("{} {} {:?}", o.action.as_str(), o.username, o.op)).collect::<Vec<_>>()
    };
    // Without kept persons kim leaves 7A and 8B is deleted.
    let plain = plan(&[]);
    assert!(plain.iter().any(|o| o.starts_with("remove members 7A")), "{plain:?}");
    assert!(plain.iter().any(|o| o.starts_with("delete group 8B")), "{plain:?}");
    // kim is kept: no change to 7A; 8B stays with kim, only cy leaves.
    let kept = plan(&["UID=kim, ou=p"]);
    assert_eq!(
        kept,
        ["remove members 8B RemoveMembers { key: \"cn=8B,ou=groups\", members: [\"uid=cy,ou=p\"] }"],
        "{kept:?}"
    );
}

#[test]
fn a_mover_between_placements_is_moved_and_its_members_follow_where_the_target_keeps_them() {
    let mut d = desired("1", "anna.berg", "Berg", true);
    d.spec.placement = Some("OU=S2,OU=Elever,DC=x".into());
    let mut o = observed("anna.berg", Some("1"), "Berg", false);
    o.set_placement(Some("ou=S1, ou=elever,dc=x".into()));
    let owned = [owned("1", "anna.berg", AccountStatus::Active)];
    check(
        &[d.clone()],
        &[o.clone()],
        &owned,
        expect_test::expect![[r#"
            move anna.berg (moves from ou=S1, ou=elever,dc=x to OU=S2,OU=Elever,DC=x) {"kind":"move","key":"uid=anna.berg,ou=people,dc=example,dc=org","placement":"OU=S2,OU=Elever,DC=x"}
            member 1: (the target gives it at apply)
            Summary { create: 0, claim: 0, rename: 0, move: 1, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
        "#]],
    );
    // The same place in other case and spacing: no move.
    o.set_placement(Some("ou=s2, ou=ELEVER,dc=x".into()));
    assert!(plan(&[d.clone()], &[o.clone()], &owned).operations.is_empty());
    // On a target whose groups follow moves (AD) too, the value is given at apply (a group made
    // in this plan takes the account where it is then).
    o.set_placement(Some("ou=S1,ou=Elever,dc=x".into()));
    let mut c = caps(Some(MemberForm::Key));
    c.members_follow_moves = true;
    let tp = plan_with(&[d], &[o], &owned, &c);
    assert_eq!(tp.operations.len(), 1);
    assert_eq!(tp.members, [("1".into(), None)]);
    assert_eq!(tp.moving, [("1".into(), "uid=anna.berg,ou=people,dc=example,dc=org".to_string())]);
}

/// Plans with correlation rules: `attribute` read from `extensionAttribute1`, values per person.
fn check_correlated(
    desired: &[Desired],
    observed: &[ObservedAccount],
    owned: &[OwnedAccount],
    input: &CorrelationInput,
    expect: expect_test::Expect,
) {
    let owned: Vec<&OwnedAccount> = owned.iter().collect();
    let caps = caps(None);
    let managed = ["employeeNumber".to_string(), "sn".into(), "uid".into()];
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
    let facts = TargetFacts { caps: &caps, today, correlate: Some(input), enable_disabled_outside: false };
    let tp = plan_target("dir", desired.to_vec(), observed, &owned, &managed, &facts);
    let mut out = String::new();
    for op in &tp.operations {
        out.push_str(&format!("{} {} ({}) {}\n", op.action.as_str(), op.username, op.reason, op_json(&op)));
    }
    for c in &tp.claims {
        out.push_str(&format!(
            "claim {} for {} by {:?}, other username {:?}\n",
            c.key, c.identity, c.rule, c.other_username
        ));
    }
    for b in &tp.blocked {
        out.push_str(&format!("blocked {}: {}\n", b.username, b.reason));
    }
    out.push_str(&format!("{:?}\n", tp.summary));
    expect.assert_eq(&out);
}

/// Sets an observed attribute (unpacked and packed again).
fn set(attrs: &mut connector_api::PackedAttrs, name: &str, value: Value) {
    let mut all = attrs.to_attrs();
    all.insert(name, value);
    *attrs = all.into();
}

fn with_attr(mut o: ObservedAccount, attr: &str, value: &str) -> ObservedAccount {
    let mut attrs = o.attrs.to_attrs();
    attrs.insert(attr, Value::text(value));
    o.attrs = attrs.into();
    o
}

fn by_attribute(values: &[(&str, &str)]) -> CorrelationInput {
    CorrelationInput {
        username: true,
        attribute: Some("extensionAttribute1".into()),
        values: values.iter().map(|(id, v)| ((*id).into(), vec![v.to_string()])).collect(),
        refused: Default::default(),
        refused_anchors: Default::default(),
    }
}

#[test]
fn accounts_made_before_enid_are_claimed_by_attribute_and_by_username_never_duplicated() {
    // Old scripts stored the school system's id; one holds another username; one only the name.
    let mut anna = desired(U1, "anna.berg", "Berg", true);
    anna.spec.given_name = "Anna".into();
    anna.spec.display_name = "Anna Berg".into();
    let mut cy = desired("3", "cy.ek", "Ek", true);
    cy.spec.given_name = "Cy".into();
    cy.spec.display_name = "Cy Ek".into();
    let mut cy_acc = observed("cy.ek", None, "Ek", false);
    set(&mut cy_acc.attrs, "cn", Value::text("Cy Ek"));
    check_correlated(
        &[anna, desired(U2, "bo.ek", "Ek", true), cy],
        &[
            with_attr(observed("aberg", None, "Berg", false), "extensionAttribute1", "4711"),
            with_attr(observed("bo.ek", None, "Ek", false), "extensionAttribute1", "4712"),
            cy_acc,
        ],
        &[],
        &by_attribute(&[(U1, "4711"), (U2, " 4712 ")]),
        expect_test::expect![[r#"
            claim anna.berg (made before enid, its correlation attribute holds this person's value; claimed with the rename aberg → anna.berg) {"kind":"update","key":"uid=aberg,ou=people,dc=example,dc=org","changes":[{"attr":"employeeNumber","values":["0f8fad5b-d9cb-469f-a165-70867728950e"]}]}
            claim bo.ek (made before enid, its correlation attribute holds this person's value; claimed, and managed by enid from the next run) {"kind":"update","key":"uid=bo.ek,ou=people,dc=example,dc=org","changes":[{"attr":"employeeNumber","values":["7c9e6679-7425-40de-944b-e07fc1f90ae7"]}]}
            rename anna.berg (claimed under another username: aberg → anna.berg) {"kind":"rename","key":"uid=aberg,ou=people,dc=example,dc=org","username":"anna.berg"}
            claim uid=aberg,ou=people,dc=example,dc=org for 0f8fad5b-d9cb-469f-a165-70867728950e by Attribute, other username Some("aberg")
            claim uid=bo.ek,ou=people,dc=example,dc=org for 7c9e6679-7425-40de-944b-e07fc1f90ae7 by Attribute, other username None
            blocked cy.ek: uid=cy.ek,ou=people,dc=example,dc=org holds a username and shows the names of 2 persons without an account; it is claimed by nobody: claim it for the right one with `enid adopt --entry`, or record it is not theirs with `--not-theirs`
            Summary { create: 0, claim: 2, rename: 1, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 }
        "#]],
    );
}

#[test]
fn ambiguous_matches_claim_nothing_and_a_namesake_is_never_made() {
    let mut hr = with_attr(observed("dan.ek", None, "Ek", false), "extensionAttribute1", "4714");
    set(&mut hr.attrs, "employeeNumber", Value::text("HR-1"));
    check_correlated(
        &[
            desired(U1, "anna.berg", "Berg", true),
            desired(U2, "bo.ek", "Ek", true),
            desired("3", "cy.ek", "Ek", true),
            desired("4", "dan.ek", "Ek", true),
            desired("5", "eva.ek", "Ek", true),
        ],
        &[
            // Two accounts hold anna's value; one account holds the value of bo and cy.
            with_attr(observed("a1", None, "Berg", false), "extensionAttribute1", "4711"),
            with_attr(observed("a2", None, "Berg", false), "extensionAttribute1", "4711"),
            with_attr(observed("bc", None, "Ek", false), "extensionAttribute1", "4712"),
            // An HR number in the owner attribute: a claim would overwrite it.
            hr,
            // Eva's username, made by hand, without her names: a question, not a namesake.
            observed("eva.ek", None, "Someone", false),
        ],
        &[],
        &by_attribute(&[(U1, "4711"), (U2, "4712"), ("3", "4712"), ("4", "4714")]),
        expect_test::expect![[r#"
            blocked anna.berg: 2 accounts made before enid match this person by the correlation rules (uid=a1,ou=people,dc=example,dc=org; uid=a2,ou=people,dc=example,dc=org); none is claimed: correct the attribute on the wrong ones, or claim one with `enid adopt --entry`
            blocked bo.ek: uid=bc,ou=people,dc=example,dc=org matches 2 persons by the correlation rules; it is claimed by nobody until the others' values or the rules are corrected, or it is claimed with `enid adopt --entry`
            blocked cy.ek: uid=bc,ou=people,dc=example,dc=org matches 2 persons by the correlation rules; it is claimed by nobody until the others' values or the rules are corrected, or it is claimed with `enid adopt --entry`
            blocked dan.ek: uid=dan.ek,ou=people,dc=example,dc=org matches this person by the correlation rules, but its employeeNumber holds a value of its own, which a claim would overwrite; empty it there if the account is theirs
            blocked eva.ek: uid=eva.ek,ou=people,dc=example,dc=org exists but was not created by enid and holds this person's username: if it is theirs, made before enid, claim it with a correlation rule ([targets.dir.policy.correlate]) or `enid adopt --entry KEY --person SOURCE/PERSON_ID`; if it is not, record that with `enid adopt --entry KEY --person SOURCE/PERSON_ID --not-theirs` and the person gets another username
            Summary { create: 0, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 }
        "#]],
    );
}

#[test]
fn an_account_disabled_outside_enid_stays_disabled_until_an_enable_is_approved() {
    let mut by_enid = owned(U2, "bo.ek", AccountStatus::Disabled);
    by_enid.disabled_at = chrono::NaiveDate::from_ymd_opt(2026, 11, 1);
    check(
        &[desired(U1, "anna.berg", "Berg", true), desired(U2, "bo.ek", "Ek", true)],
        &[observed("anna.berg", Some(U1), "Berg", true), observed("bo.ek", Some(U2), "Ek", true)],
        &[owned(U1, "anna.berg", AccountStatus::Active), by_enid],
        expect_test::expect![[r#"
            enable anna.berg (disabled outside enid: left disabled until an operator approves the enable (`enid apply --only enable`)) {"kind":"enable","key":"uid=anna.berg,ou=people,dc=example,dc=org"}
            enable bo.ek (active again) {"kind":"enable","key":"uid=bo.ek,ou=people,dc=example,dc=org"}
            member 0f8fad5b-d9cb-469f-a165-70867728950e: (the target gives it at apply)
            member 7c9e6679-7425-40de-944b-e07fc1f90ae7: (the target gives it at apply)
            Summary { create: 0, claim: 0, rename: 0, move: 0, update: 0, enable: 2, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
        "#]],
    );
}

#[test]
fn a_group_whose_name_is_held_elsewhere_is_blocked_and_the_others_stay() {
    let group = |members: &[&str], later: &[&str]| DesiredGroup {
        school: "S1".into(),
        members: members
            .iter()
            .map(|m| (format!("id-{m}").into(), Some(m.to_string())))
            .chain(later.iter().map(|i| ((*i).into(), None)))
            .collect(),
    };
    let desired: BTreeMap<String, DesiredGroup> =
        [("S1-7A".to_string(), group(&["uid=a", "uid=b"], &["new-c"])), ("S1-8B".to_string(), group(&["uid=d"], &[]))]
            .into();
    let c = caps(Some(MemberForm::Key));
    let mut tp = TargetPlan::default();
    plan_groups("dir", &desired, &[], &[], &c, &mut tp);
    assert_eq!((tp.groups.create, tp.groups.members_added), (2, 4));
    // Held under another case: the target compares names as it does.
    let held: BTreeMap<String, String> = [("s1-7a".to_string(), "held by CN=x".to_string())].into();
    block_group_creates("dir", &held, &c, &mut tp);
    let ops: Vec<(Action, &str)> = tp.operations.heads().map(|o| (o.action, o.username)).collect();
    assert_eq!(ops, [(Action::CreateGroup, "S1-8B")]);
    assert_eq!((tp.groups.create, tp.groups.members_added), (1, 1), "counted as the plan now is");
    let blocked: Vec<(&str, &str, &str)> =
        tp.blocked.iter().map(|b| (b.username.as_str(), b.identity.as_str(), b.reason.as_str())).collect();
    assert_eq!(blocked, [("S1-7A", "", "held by CN=x")]);
}

#[test]
fn a_future_starters_old_account_is_neither_claimed_and_disabled_nor_duplicated() {
    let mut later = desired(U1, "anna.berg", "Berg", false);
    later.provision_disabled = true;
    later.inactive_reason = Some("starts on 2026-12-01".into());
    check_correlated(
        &[later],
        &[with_attr(observed("aberg", None, "Berg", false), "extensionAttribute1", "4711")],
        &[],
        &by_attribute(&[(U1, "4711")]),
        expect_test::expect![[r#"
            blocked anna.berg: uid=aberg,ou=people,dc=example,dc=org was made before enid and matches this person, who has not started yet (starts on 2026-12-01): it is claimed when they start, and no account is made beside it
            Summary { create: 0, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 }
        "#]],
    );
}

#[test]
fn an_account_an_operator_said_is_not_theirs_is_never_claimed_for_them_even_renamed() {
    // Refused as uid=aberg2; renamed by hand since: the anchor still says which account it is.
    let mut input = by_attribute(&[(U1, "4711")]);
    input.refused.insert((U1.into(), "uid=aberg2,ou=people,dc=example,dc=org".to_string()));
    input.refused_anchors.insert((U1.into(), "uuid-aberg".to_string()));
    check_correlated(
        &[desired(U1, "anna.berg", "Berg", true)],
        &[with_attr(observed("aberg", None, "Berg", false), "extensionAttribute1", "4711")],
        &[],
        &input,
        expect_test::expect![[r#"
            create anna.berg (new person) {"attrs":{"employeeNumber":["0f8fad5b-d9cb-469f-a165-70867728950e"],"sn":["Berg"],"uid":["anna.berg"]},"disabled":false,"kind":"create","username":"anna.berg"}
            Summary { create: 1, claim: 0, rename: 0, move: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 }
        "#]],
    );
}

/// The plan id is the first eight bytes of the SHA-256 of the plan's JSON, in hexadecimal: a
/// leaner or faster way of hashing must give the ids plans had before (an approval names a plan
/// by its id). The expected id was computed outside enid (Python's `hashlib`) from the JSON
/// this test prints.
#[test]
fn the_plan_id_is_the_hash_of_the_plans_json_as_before() {
    let tp = plan(&[desired(U1, "anna.berg", "Berg", true), desired(U2, "bo.ek", "Ek", true)], &[], &[]);
    let ops = serde_json::to_string(&tp.operations).unwrap();
    println!(
        "{{\"identities\":[],\"operations\":{ops},\"adoptions\":[],\"blocked\":[],\"conflicts\":[],\"renames\":[]}}"
    );
    assert_eq!(plan_id(&[], &tp.operations, &[], &[], &[], &[]), "58043edcd51474be");
}

/// Past one part (and one round of parts on every core), the id is still the hash of the plan's
/// JSON as serde_json writes it whole: the parts join with commas, in order, and the lists after
/// the operations follow them.
#[test]
fn the_plan_id_of_many_operations_is_the_hash_of_the_whole_json() {
    #[derive(Serialize)]
    struct Body<'a> {
        identities: &'a [NewIdentity],
        operations: &'a [PlannedOp],
        adoptions: &'a [Adoption],
        blocked: &'a [Blocked],
        conflicts: &'a [Conflict],
        renames: &'a [RenameInfo],
    }
    let whole = |body: &Body<'_>| {
        let json = serde_json::to_vec(body).unwrap();
        crate::core::id::hex(&Sha256::digest(&json)[..8]).to_string()
    };
    let blocked = [Blocked {
        target: "directory".into(),
        identity: "e-1".into(),
        username: "anna.berg".into(),
        reason: "held".into(),
    }];
    for n in [0, 1, ID_PART - 1, ID_PART, ID_PART + 1, 3 * ID_PART + 17] {
        let ops: Vec<PlannedOp> = (0..n)
            .map(|i| {
                let key = format!("uid=u{i},ou=people");
                PlannedOp::for_test(Action::Delete, "directory", &format!("e-{i}"), TargetOp::Delete { key })
            })
            .collect();
        let body =
            Body { identities: &[], operations: &ops, adoptions: &[], blocked: &blocked, conflicts: &[], renames: &[] };
        assert_eq!(plan_id(&[], &ops.clone().into(), &[], &blocked, &[], &[]), whole(&body), "{n} operations");
    }
}

/// The diff read by place (the observed strings found by their place among the read's shared
/// names, learnt once per list of names) is the diff read by name, whatever the names' order,
/// when the list changes between accounts (a second search's), and for an attribute the read
/// did not ask for.
#[test]
fn a_diff_by_place_is_the_diff_by_name() {
    use connector_api::{Name, PackedAttrs};
    use std::sync::Arc;
    let t = |v: &[&str]| Value::Text(v.iter().map(|s| s.to_string()).collect());
    let managed: Vec<String> = ["cn", "mail", "ou", "sn", "title"].map(String::from).to_vec();
    let desired = Attrs::from([
        ("cn", t(&["Anna Berg"])),
        ("mail", t(&[])),
        ("ou", t(&["7A", "S1"])),
        ("sn", t(&["Berg"])),
        ("title", t(&["x"])),
    ]);
    let names_a: Arc<[Name]> = ["uid", "cn", "ou", "sn", "mail", "title"].map(Name::from).into();
    let names_b: Arc<[Name]> = ["title", "sn", "cn", "ou"].map(Name::from).into();
    let observed = [
        Attrs::from([("cn", t(&["Anna Berg"])), ("ou", t(&["7A", "S1"])), ("sn", t(&["Berg"])), ("title", t(&["x"]))]),
        Attrs::from([("cn", t(&["Anna  Berg"])), ("ou", t(&["S1"])), ("mail", t(&["a@b"])), ("title", t(&["y"]))]),
        Attrs::new(),
        // A place of one list holds another attribute in the other: a place learnt for the
        // wrong list would read `sn` for `cn` here and miss the change.
        Attrs::from([("cn", t(&["Other"])), ("sn", t(&["Anna Berg"])), ("ou", t(&["Berg"]))]),
    ];
    let reference = |obs: &PackedAttrs| -> Vec<(String, Value)> {
        managed
            .iter()
            .filter_map(|a| {
                let want = desired.get(a).unwrap_or(&connector_api::ABSENT);
                let have = obs.get(a).map(|v| v.into_owned()).unwrap_or_else(|| connector_api::ABSENT.clone());
                (!want.satisfied_by(&have)).then(|| (a.clone(), have))
            })
            .collect()
    };
    let mut places = accounts::Places::default();
    let mut seen = 0;
    for names in [&names_a, &names_b, &names_a, &names_b] {
        for obs in &observed {
            let texts = obs
                .iter()
                .filter_map(|(n, v)| {
                    Some((names.iter().position(|x| x == n)?, v.texts().iter().map(|s| s.to_string()).collect()))
                })
                .collect();
            let packed = PackedAttrs::pack_texts(names, texts);
            assert!(packed.is_packed());
            let (changes, before) = accounts::diff(&desired, &packed, &managed, &mut places);
            let got: Vec<(String, Value)> =
                changes.iter().map(|c| (c.attr.clone(), before[c.attr.as_str()].clone())).collect();
            assert_eq!(got, reference(&packed), "{names:?} {obs:?}");
            seen += got.len();
        }
    }
    assert!(seen > 8, "the accounts differ from what is wanted in many ways: {seen}");
}

/// A create keeps its attributes packed until it is sent (a first run holds a million), with
/// one list of names shared by the plan's creates; they read, compare and serialise as the
/// attributes rendered, so the plan and its id are what they were. An attribute outside the
/// managed ones keeps its create's attributes as rendered.
#[test]
fn a_creates_attributes_are_packed_and_read_as_rendered() {
    let ds = [desired("1", "anna.berg", "Berg", true), desired("2", "bo.ek", "Ek", true)];
    let mut odd = desired("3", "cy.oz", "Oz", true);
    odd.spec.attrs = PackedAttrs::plain(attrs(&[("employeeNumber", "3"), ("roomNumber", "12")]));
    let tp = plan(&[ds[0].clone(), ds[1].clone(), odd.clone()], &[], &[]);
    let whole = tp.operations.to_vec();
    let creates: Vec<&AccountSpec> = whole
        .iter()
        .filter_map(|o| match &o.op {
            TargetOp::Create { account } => Some(account),
            _ => None,
        })
        .collect();
    assert_eq!(creates.len(), 3);
    for (made, d) in creates.iter().zip([&ds[0], &ds[1], &odd]) {
        assert_eq!(made.attrs, d.spec.attrs);
        assert_eq!(
            serde_json::to_string(&made.attrs).unwrap(),
            serde_json::to_string(&d.spec.attrs.to_attrs()).unwrap()
        );
    }
    assert!(creates[0].attrs.is_packed() && creates[1].attrs.is_packed());
    assert!(
        std::sync::Arc::ptr_eq(creates[0].attrs.names().unwrap(), creates[1].attrs.names().unwrap()),
        "one list of names"
    );
    assert!(!creates[2].attrs.is_packed(), "roomNumber is not managed: kept as rendered");
}

/// An operation's group and update parts serialise where they always did (after the operation,
/// before the flags), and not at all when empty: the plan id of group changes and updates is
/// what it was before they were boxed.
#[test]
fn an_operations_extra_parts_serialise_in_their_place() {
    let mut add = PlannedOp::for_test(
        Action::AddMembers,
        "dir",
        "",
        TargetOp::AddMembers { key: "cn=7A".into(), members: vec!["uid=a".into()] },
    );
    add.protected = true;
    add.extra =
        Extra::new(vec!["id-2".into()], vec![("id-3".into(), "uid=old".into())], Some(attrs(&[("sn", "Berg")])));
    let plain = PlannedOp::for_test(Action::Disable, "dir", "id-1", TargetOp::Disable { key: "uid=b".into() });
    // As the fields of the operation serialised before they were boxed (printed by the build
    // before this one).
    assert_eq!(
        serde_json::to_string(&add).unwrap(),
        r#"{"action":"add_members","target":"dir","identity":"","username":"","school":"","reason":"","op":{"kind":"add_members","key":"cn=7A","members":["uid=a"]},"new_members":["id-2"],"leaving":[["id-3","uid=old"]],"before":{"sn":["Berg"]},"protected":true}"#
    );
    assert_eq!(
        serde_json::to_string(&plain).unwrap(),
        r#"{"action":"disable","target":"dir","identity":"id-1","username":"id-1","school":"","reason":"","op":{"kind":"disable","key":"uid=b"}}"#
    );
    assert_eq!((add.new_members().len(), add.leaving().len(), add.before().is_some()), (1, 1, true));
    // None boxed when every part is empty, and an emptied box equal to none.
    assert!(Extra::new(Vec::new(), Vec::new(), None).0.is_none());
    let mut emptied = add.clone();
    *emptied.extra.get_mut() = OpExtra::default();
    assert_eq!(emptied.extra, Extra::default());
    assert_eq!(serde_json::to_string(&emptied.extra).unwrap(), "{}");
}

/// A plan id that reads as a civic number would be masked in every output, and could not be
/// typed back into `apply --plan`: such an id is hashed on, the same way for the same content.
#[test]
fn a_plan_id_never_reads_as_a_civic_number() {
    // The hex of these bytes holds 821105-9954, a valid personnummer's ten digits.
    let digest = [0xab, 0x82, 0x11, 0x05, 0x99, 0x54, 0xcd, 0xef, 1, 2, 3];
    let plain = "ab8211059954cdef";
    assert_ne!(connector_api::civic::mask_civic_in_text(plain), plain, "the plain id would be masked");
    let id = super::shown_id(&digest);
    assert_ne!(id, plain);
    assert_eq!(id.len(), 16);
    assert_eq!(connector_api::civic::mask_civic_in_text(&id), id);
    assert_eq!(super::shown_id(&digest), id, "the same content, the same id");
    // Any other id is its hash's first bytes, as before.
    assert_eq!(super::shown_id(&[0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89]), "abcdef0123456789");
}
