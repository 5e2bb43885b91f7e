//! Review 18: the Google and Entra targets broken on purpose. A soft-deleted user synchronised
//! from on-premises AD that carries a person's enid id is never restored for that person; a
//! delta or next link that leads away from Graph's address never gets the token.

use crate::entra::{SUFFIX, direct, rt3, start_server};
use connector_api::{AccountSpec, Role, Secret, Target, TargetOp};

fn spec(id: &str, username: &str) -> AccountSpec {
    AccountSpec {
        id: id.into(),
        username: username.into(),
        given_name: "Anna".into(),
        family_name: "Berg".into(),
        display_name: "Anna Berg".into(),
        roles: vec![Role::Student],
        schools: vec!["Norr".into()],
        enabled: true,
        protected: false,
        attrs: Default::default(),
        placement: None,
        initial_password: Some(Secret::new("Xy7-long-enough-password")),
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
