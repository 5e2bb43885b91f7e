//! A school into Google Workspace and Microsoft Entra at once, with an LDAP directory beside
//! them, from one CSV export: day 1 (every pupil, a protected one among them), day 2 (a
//! leaver, a mover, a new name, a new pupil), a truncated export that stops the run before
//! anything is planned on any target, and a lost state adopted back without a second account.

use crate::harness::*;
use std::collections::BTreeSet;

const HEADER_EXTRA: &str = ",protection";

fn rows(people: &[(usize, &str, &str, &str)]) -> Vec<String> {
    people
        .iter()
        .map(|(i, family, school, protection)| {
            let civic = if protection.is_empty() { String::new() } else { "19121212-1212".to_string() };
            let group = if school == &"S1" { "7A" } else { "8B" };
            format!("p{i},Elev,{family},{civic},student,{school},{group},,,{protection}")
        })
        .collect()
}

fn write(env: &Env, rows: &[String]) {
    let text: String =
        std::iter::once(format!("{HEADER}{HEADER_EXTRA}")).chain(rows.iter().cloned()).map(|l| l + "\n").collect();
    std::fs::write(env.path("persons.csv"), text).expect("write csv");
}

/// Usernames on each target: LDAP uids, Google local parts, Entra UPN local parts.
fn names(env: &Env, g: &google_server::Handle, m: &graph_server::Handle) -> [BTreeSet<String>; 3] {
    let ldap: BTreeSet<String> = env.people().keys().cloned().collect();
    let local = |e: &str| e.split('@').next().unwrap_or_default().to_string();
    let google: BTreeSet<String> = g.users().iter().filter_map(|u| u["primaryEmail"].as_str().map(local)).collect();
    let entra: BTreeSet<String> = m.users().iter().filter_map(|u| u["userPrincipalName"].as_str().map(local)).collect();
    [ldap, google, entra]
}

#[test]
fn a_school_into_google_entra_and_ldap_at_once_day_one_day_two_a_bad_export_and_a_lost_state() {
    let rt = crate::entra::rt3();
    let gs = rt.block_on(crate::google::start_server(|_| {}));
    let ms = rt.block_on(crate::entra::start_server(|_| {}));
    let (g, m) = (gs.handle(), ms.handle());
    let extra = format!(
        "\n{}\n{}",
        crate::google::google_table("gw", gs.url(), "[targets.gw.groups]\n[targets.gw.policy.groups]\n"),
        crate::entra::entra_table("m365", ms.url(), ms.url(), "[targets.m365.groups]\n[targets.m365.policy.groups]\n"),
    );
    let env = Env::with_config(&extra);
    crate::google::write_key(env.dir.path(), gs.url());
    let secret = graph_server::Config::default().client_secret.unwrap_or_default();
    std::fs::write(env.path("entra.secret"), format!("{secret}\n")).expect("secret");
    owner_only(&env.path("entra.secret"));
    let config = std::fs::read_to_string(env.path("enid.toml")).expect("config");
    std::fs::write(env.path("enid.toml"), format!("[naming]\non_name_change = \"rename\"\n\n{config}"))
        .expect("config");

    // Day 1: thirty pupils in two schools, one of them with protected personal data.
    let mut people: Vec<(usize, String, &str, &str)> =
        (0..30).map(|i| (i, format!("Nummer{i}"), if i % 2 == 0 { "S1" } else { "S2" }, "")).collect();
    people.push((30, "Hemlig".into(), "S1", "sekretessmarkering"));
    let as_rows = |p: &[(usize, String, &str, &str)]| {
        rows(&p.iter().map(|(i, f, s, x)| (*i, f.as_str(), *s, *x)).collect::<Vec<_>>())
    };
    write(&env, &as_rows(&people));
    let plan = env.enid(&["plan", "--save", "--json"]).ok().json();
    for t in ["directory", "gw", "m365"] {
        assert_eq!(plan["targets"][t]["create"], 31, "{t}: {}", plan["targets"]);
    }
    let id = plan["plan_id"].as_str().expect("plan id").to_string();
    let out = env.enid(&["apply", "--yes", "--plan", &id, "--accept-protected"]).ok();
    let [ldap, google, entra] = names(&env, &g, &m);
    assert_eq!(ldap.len(), 31, "{ldap:?}");
    assert_eq!(google, ldap, "one username per person, the same on every target");
    assert_eq!(entra, ldap, "one username per person, the same on every target");
    // The protected pupil: a pseudonym in the neutral org unit, her name and number nowhere.
    let sara = g.users().into_iter().find(|u| u["orgUnitPath"] == "/Elever/Skyddade").expect("in /Elever/Skyddade");
    assert_eq!(sara["includeInGlobalAddressList"], false);
    let everything = format!("{:?}{:?}{:?}{}{}", g.users(), m.users(), env.people(), out.stdout, out.stderr);
    // Her name, and her civic number in every spelling. (Not "1212" alone: the targets' ids are
    // random UUIDs, of which one in some fifteen runs held those four digits.)
    for secret in ["Hemlig", "191212121212", "19121212-1212", "1212121212", "121212-1212", "121212+1212"] {
        assert!(!everything.contains(secret), "{secret} is out");
    }
    assert_eq!(g.members("s1-7a@skola.example.org").len(), 15, "the class group, without the protected pupil");
    for t in ["directory", "gw", "m365"] {
        let again = env.enid(&["plan", "--json"]).ok().json();
        assert_eq!(again["targets"][t]["create"], 0, "{t}");
        assert_eq!(again["targets"][t]["update"], 0, "{t}: {}", again["targets"]);
    }

    // Day 2: p5 leaves, p6 moves to S2, p7 has a new family name, p31 is new.
    people.retain(|p| p.0 != 5);
    people.iter_mut().find(|p| p.0 == 6).expect("p6").2 = "S2";
    people.iter_mut().find(|p| p.0 == 7).expect("p7").1 = "Nybom".into();
    people.push((31, "Nykomling".into(), "S2", ""));
    write(&env, &as_rows(&people));
    let plan = env.enid(&["plan", "--json"]).ok().json();
    for t in ["directory", "gw", "m365"] {
        let s = &plan["targets"][t];
        assert_eq!(
            (s["create"].as_u64(), s["disable"].as_u64(), s["delete"].as_u64()),
            (Some(1), Some(1), Some(0)),
            "{t}: {s}"
        );
    }
    assert_eq!(plan["targets"]["gw"]["move"], 1, "the mover changes org unit on Google: {}", plan["operations"]);
    env.enid(&["apply", "--yes"]).ok();
    let by_email = |e: &str| g.users().into_iter().find(|u| u["primaryEmail"] == e).expect(e);
    assert_eq!(by_email("elev.nummer5@skola.example.org")["suspended"], true);
    assert_eq!(by_email("elev.nummer6@skola.example.org")["orgUnitPath"], "/Elever/S2");
    let upn = |e: &str| m.users().into_iter().find(|u| u["userPrincipalName"] == e).expect(e);
    assert_eq!(upn("elev.nummer5@skola.example.org")["accountEnabled"], false);
    assert_eq!(upn("elev.nummer6@skola.example.org")["department"], "S2");
    let [ldap, google, entra] = names(&env, &g, &m);
    assert!(
        ldap.contains("elev.nybom") && ldap.contains("elev.nykomling") && !ldap.contains("elev.nummer7"),
        "{ldap:?}"
    );
    assert_eq!((&google, &entra), (&ldap, &ldap), "renamed and made alike everywhere");
    let again = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(again["operations"].as_array().map(Vec::len), Some(0), "{}", again["operations"]);

    // A truncated export (the first ten rows): stopped before planning; nothing changes anywhere.
    let before = (g.users(), m.users(), env.people().len());
    let all = as_rows(&people);
    write(&env, &all[..10]);
    for args in [&["plan"][..], &["apply", "--yes"][..]] {
        let run = env.enid(args).fails();
        assert!(run.stderr.contains("fewer than") && run.stderr.contains("stopped before planning"), "{}", run.stderr);
    }
    assert_eq!((g.users(), m.users(), env.people().len()), before, "nothing changed on any target");
    write(&env, &all);

    // The state is lost: stopped, adopted back by the enid ids every target carries.
    remove_state(&env);
    let run = env.enid(&["plan"]).fails();
    assert!(run.stderr.contains("enid adopt"), "{}", run.stderr);
    env.enid(&["adopt", "--yes"]).ok();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    for t in ["directory", "gw", "m365"] {
        assert_eq!(plan["targets"][t]["create"], 0, "{t}: no second account after the adopt: {}", plan["targets"]);
    }
    env.enid(&["apply", "--yes"]).ok();
    let [ldap2, google2, entra2] = names(&env, &g, &m);
    assert_eq!((ldap2.len(), google2.len(), entra2.len()), (32, 32, 32));
}
