//! Review 18: the Google and Entra targets broken on purpose. Entra: a soft-deleted user
//! synchronised from on-premises AD that carries a person's enid id is never restored for that
//! person; a delta or next link that leads away from graph_url never gets the token; a kept delta
//! state is never resumed for another tenant, nor when its objects were lost. Google: a `..` in a
//! placement never leaves the base org unit; a user moved out of the base org unit by hand, or one
//! carrying a copied enid id, never leads to a second account or a displaced one.

use crate::entra::{SUFFIX, direct, rt3, start_server};
use connector_api::{AccountSpec, Role, Secret, Target, TargetOp};

fn spec(id: &str, username: &str) -> AccountSpec {
    AccountSpec {
        id: id.into(),
        username: username.into(),
        given_name: "Anna".into(),
        family_name: "Berg".into(),
        display_name: "Anna Berg".into(),
        roles: [Role::Student].into_iter().collect(),
        schools: connector_api::source::smallvec!["Norr".into()],
        enabled: true,
        protected: false,
        attrs: Default::default(),
        placement: None,
        initial_password: Some(Box::new(Secret::new("Xy7-long-enough-password"))),
    }
}

#[test]
fn a_deleted_synchronised_user_carrying_an_enid_id_is_never_restored_for_that_person() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let h = server.handle();
    let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
    // On-premises AD carries the enid id in extensionAttribute15 (an AD target writes it there)
    // and Entra Connect synchronises it; the AD account was deleted, so the synced user is too.
    let synced = h.add_user(serde_json::json!({
        "userPrincipalName": format!("anna.berg.ad@{SUFFIX}"), "displayName": "Anna Berg (AD)",
        "accountEnabled": true, "onPremisesSyncEnabled": true,
        "onPremisesExtensionAttributes": {"extensionAttribute15": id},
    }));
    let target = direct(server.url(), "");
    rt.block_on(target.apply(&TargetOp::Delete { key: synced.clone() })).expect("deleted in AD");
    assert!(h.deleted_users().iter().any(|d| d["id"] == synced.as_str()));
    for batch in [false, true] {
        let target = direct(server.url(), "");
        let name = if batch { "anna.berg2" } else { "anna.berg" };
        let create = TargetOp::Create { account: spec(id, name) };
        let done = if batch {
            let other = TargetOp::Create { account: spec("9b2c1d7e-0000-4000-8000-000000000001", "bo.ek") };
            rt.block_on(target.apply_batch(&[create, other])).remove(0)
        } else {
            rt.block_on(target.apply(&create))
        };
        let key = match done {
            Ok(connector_api::OpOutcome::Created { key, .. }) => key,
            other => panic!("a create, never a restore of the synced user: {other:?}"),
        };
        assert_ne!(key, synced, "the synchronised user is not this person's account");
        assert!(h.deleted_users().iter().any(|d| d["id"] == synced.as_str()), "the synced user stays deleted");
        let made = h.users().into_iter().find(|u| u["id"] == key.as_str()).expect("made");
        assert_eq!(made["userPrincipalName"], format!("{name}@{SUFFIX}"), "{made}");
        if !batch {
            // Make room for the batch round: this person is made again there.
            rt.block_on(target.apply(&TargetOp::Delete { key: key.clone() })).expect("delete");
            rt.block_on(target.apply(&TargetOp::Delete { key: key.clone() })).ok();
        }
    }
}

#[test]
fn a_kept_delta_link_to_another_host_never_gets_the_token() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let elsewhere = rt.block_on(start_server(|_| {}));
    let h = server.handle();
    h.add_user(serde_json::json!({"userPrincipalName": format!("bo.ek@{SUFFIX}"), "displayName": "Bo Ek",
        "accountEnabled": true, "mailNickname": "bo.ek"}));
    let target = direct(server.url(), "");
    let attrs = vec!["displayName".to_string()];
    rt.block_on(target.observe(&attrs)).expect("a full read");
    let kept = target.saved_state().expect("a delta state");
    assert!(kept.contains(server.url()), "{kept}");
    // The state table was tampered with (or restored from another install): its link leads away.
    let mut state: serde_json::Value = serde_json::from_str(&kept).expect("json");
    let link = state["users"]["link"].as_str().expect("a users delta link").replace(server.url(), elsewhere.url());
    state["users"]["link"] = link.into();
    let tampered = state.to_string();
    let target = direct(server.url(), "");
    target.resume(Some(tampered));
    let before = elsewhere.handle().log().len();
    let read = rt.block_on(target.observe(&attrs));
    let sent: Vec<String> =
        elsewhere.handle().log()[before..].iter().map(|l| format!("{} {}?{}", l.method, l.path, l.query)).collect();
    assert!(sent.is_empty(), "nothing is sent to another host: {sent:?}");
    // Read in full from Graph instead, or stopped; never planned on the other host's answer.
    if let Ok(accounts) = read {
        assert_eq!(accounts.len(), 1, "{accounts:?}");
    }
}

/// Google users by primary email.
fn google_users(h: &google_server::Handle) -> std::collections::BTreeMap<String, serde_json::Value> {
    h.users().into_iter().map(|u| (u["primaryEmail"].as_str().unwrap_or_default().to_string(), u)).collect()
}

fn enid_ids(u: &serde_json::Value) -> Vec<String> {
    u["externalIds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["customType"] == "enid")
        .filter_map(|x| x["value"].as_str().map(str::to_string))
        .collect()
}

/// A user an admin moved out of the base org unit is never made again beside it, with few
/// persons (looked up one by one) or many (the domain read whole).
#[test]
fn a_google_user_moved_by_hand_out_of_the_base_org_unit_is_never_made_twice() {
    use crate::google::{direct as gdirect, env_with as genv, google_table, start_server as gstart};
    let rt = rt3();
    for many in [false, true] {
        let server = rt.block_on(gstart(|_| {}));
        let h = server.handle();
        h.add_orgunit("/Personal");
        let env = genv(server.url(), &google_table("gw", server.url(), ""));
        let mut rows = vec![crate::harness::row("1", "Anna", "Berg", "", "student", "Norr", "")];
        if many {
            rows.extend((0..45).map(|i| {
                crate::harness::row(&format!("p{i}"), "Elev", &format!("Nummer{i}"), "", "student", "Norr", "")
            }));
        }
        crate::harness::csv_rows(&env, &rows);
        env.enid(&["apply", "--yes"]).ok();
        let before = google_users(&h);
        let anna = before["anna.berg@skola.example.org"].clone();
        let key = anna["id"].as_str().expect("id").to_string();
        let target = gdirect(&env, server.url(), "");
        rt.block_on(target.apply(&TargetOp::Move { key: key.clone(), placement: "/Personal".into() }))
            .expect("moved by hand");
        let plan = env.enid(&["plan", "--json"]);
        let text = format!("{}{}", plan.stdout, plan.stderr);
        if plan.status.success() {
            let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("json");
            assert_eq!(plan["summary"]["create"].as_u64().unwrap_or(0), 0, "many={many}: {plan}");
        }
        env.enid(&["apply", "--yes"]);
        let after = google_users(&h);
        let holders: Vec<&String> =
            after.iter().filter(|(_, u)| enid_ids(u) == enid_ids(&anna)).map(|(e, _)| e).collect();
        assert_eq!(holders.len(), 1, "many={many}: one account for Anna: {holders:?}\n{text}");
        assert_eq!(after.len(), before.len(), "many={many}: {text}");
    }
}

/// The first request of a delta round from the start: a full read.
fn starts_full_round(l: &graph_server::Logged) -> bool {
    l.path.ends_with("/delta") && !l.query.contains("deltatoken") && !l.query.contains("skiptoken")
}

/// The kept delta state is one tenant's: pointed at another tenant (a test tenant's config
/// reused for the school's, the same Graph address), enid reads everything again instead of
/// planning on the first tenant's users.
#[test]
fn a_kept_delta_state_is_never_resumed_for_another_tenant() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let h = server.handle();
    let env = crate::entra::env_with(&crate::entra::entra_table("m365", server.url(), server.url(), ""));
    crate::harness::csv_rows(&env, &[crate::harness::row("1", "Anna", "Berg", "", "student", "Norr", "")]);
    env.enid(&["apply", "--yes"]).ok();
    let before = h.log().len();
    env.enid(&["plan", "--json"]).ok();
    assert!(!h.log()[before..].iter().any(starts_full_round), "resumed within the tenant");
    let tenant = graph_server::Config::default().tenant_id;
    env.edit_config(&format!("tenant_id = \"{tenant}\""), "tenant_id = \"11111111-2222-3333-4444-555555555555\"");
    let before = h.log().len();
    env.enid(&["plan", "--json"]).ok();
    assert!(h.log()[before..].iter().any(starts_full_round), "another tenant is read in full");
}

/// A kept delta state that reads but has lost its users (a hand-edited or half-restored state
/// table) is never "everyone left": nothing is deleted or made again.
#[test]
fn a_kept_delta_state_without_its_users_never_plans_everyone_gone() {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let h = server.handle();
    let env = crate::entra::env_with(&crate::entra::entra_table("m365", server.url(), server.url(), ""));
    let rows: Vec<String> = (0..5)
        .map(|i| crate::harness::row(&i.to_string(), "Elev", &format!("Nummer{i}"), "", "student", "Norr", ""))
        .collect();
    crate::harness::csv_rows(&env, &rows);
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(h.users().len(), 5);
    // Nothing to do: the state kept now ends after the creates.
    env.enid(&["apply", "--yes"]).ok();
    let kept = env.sql_value("SELECT value FROM meta WHERE key = 'connector_state:m365'");
    let mut state: serde_json::Value = serde_json::from_str(&kept).expect("json");
    state["users"]["items"] = serde_json::json!({});
    env.sql(&format!(
        "UPDATE meta SET value = '{}' WHERE key = 'connector_state:m365'",
        state.to_string().replace('\'', "''")
    ));
    let plan = env.enid(&["plan", "--json"]);
    if plan.status.success() {
        let plan = plan.json();
        for k in ["create", "delete", "disable"] {
            assert_eq!(plan["summary"][k].as_u64().unwrap_or(0), 0, "{k}: {plan}");
        }
    }
    let run = env.enid(&["apply", "--yes"]);
    let users = h.users();
    assert_eq!(users.len(), 5, "{}\n{}", run.stdout, run.stderr);
    assert!(users.iter().all(|u| u["accountEnabled"] == true), "{users:?}");
}

/// A school unit name from a hostile or careless record (`..`) would put an account outside
/// the base org unit, where enid no longer sees it: refused before anything is written.
#[test]
fn a_google_placement_with_dot_dot_never_leaves_the_base_org_unit() {
    use crate::google::{direct as gdirect, env_with as genv, google_table, start_server as gstart};
    let rt = rt3();
    let server = rt.block_on(gstart(|_| {}));
    let h = server.handle();
    h.add_orgunit("/Personal");
    let env = genv(server.url(), &google_table("gw", server.url(), ""));
    let target = gdirect(&env, server.url(), "");
    let ous = h.orgunits();
    for (i, placement) in
        ["/Elever/../Personal", "/Elever/Norr/../../Personal", "/Elever/.", "/Elever/.."].iter().enumerate()
    {
        let mut account = spec(&format!("0f8fad5b-d9cb-469f-a165-7086772895{i:02}"), &format!("anna.berg{i}"));
        account.placement = Some((*placement).into());
        let done = rt.block_on(target.apply(&TargetOp::Create { account }));
        assert!(matches!(done, Err(connector_api::TargetError::Rejected { .. })), "{placement}: refused, not {done:?}");
    }
    assert!(h.users().is_empty(), "{:?}", h.users());
    assert_eq!(h.orgunits(), ous);
}

/// A user an admin made by hand carrying Anna's enid id (copied from her account) is never
/// taken for hers: her account is kept as it is and nothing is deleted, disabled or renamed.
#[test]
fn a_google_user_carrying_a_copied_enid_id_never_displaces_the_real_account() {
    use crate::google::{env_with as genv, google_table, start_server as gstart};
    let rt = rt3();
    let server = rt.block_on(gstart(|_| {}));
    let h = server.handle();
    let env = genv(server.url(), &google_table("gw", server.url(), ""));
    crate::harness::csv_rows(&env, &[crate::harness::row("1", "Anna", "Berg", "", "student", "Norr", "")]);
    env.enid(&["apply", "--yes"]).ok();
    let anna = google_users(&h)["anna.berg@skola.example.org"].clone();
    h.add_user(serde_json::json!({"primaryEmail": "anna.kopia@skola.example.org", "orgUnitPath": "/Elever/Norr",
        "name": {"givenName": "Anna", "familyName": "Kopia"}, "suspended": false,
        "externalIds": anna["externalIds"].clone()}));
    let plan = env.enid(&["plan", "--json"]);
    let text = format!("{}\n{}", plan.stdout, plan.stderr);
    env.enid(&["apply", "--yes"]);
    let after = google_users(&h);
    let real = &after["anna.berg@skola.example.org"];
    assert_eq!(real["id"], anna["id"], "{text}");
    assert_eq!(real["suspended"], false, "{text}");
    assert_eq!(after.len(), 2, "{after:?}\n{text}");
}
