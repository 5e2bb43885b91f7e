//! The Active Directory target against a real Samba AD domain controller
//! (`tests/scripts/samba.sh`): the conformance suite through the fault-injecting proxy (over
//! LDAPS, the proxy ending and opening TLS), first passwords set over LDAPS and handed out once,
//! OUs by school, movers, leavers, protected persons, namesakes, accounts made by hand, group
//! names and OUs the domain cannot take, and the errors a domain gives.
//!
//! One DC serves every test (the one `tests/scripts/test.sh` started, `ENID_TEST_AD_DIR`, or one
//! this test binary starts, stopped by its watchdog when the binary ends). Each test works in an
//! OU of its own. Usernames are unique in the whole domain, so each test's persons have names no
//! other test uses (the conformance suite alone uses the suite's own names).

use crate::harness::*;
use connector_api::Secret;
use connector_api::testkit::{self, FaultProxy, Outcome, Person, Protocol, Rig, TlsEnds};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use target_ldap::{AdConfig, AdTarget};

pub const DOMAIN: &str = "DC=samdom,DC=example,DC=org";
pub const ADMIN: &str = "Administrator@samdom.example.org";
pub const ADMIN_PW: &str = "Passw0rd!Passw0rd";

/// The shared DC's directory (its CA is `tls/ca.pem`).
pub fn dc() -> &'static PathBuf {
    static DC: OnceLock<PathBuf> = OnceLock::new();
    DC.get_or_init(|| {
        if let Ok(dir) = std::env::var("ENID_TEST_AD_DIR")
            && !dir.is_empty()
        {
            return PathBuf::from(dir);
        }
        let dir = repo().join("target/test-samba");
        let _ = std::fs::remove_dir_all(&dir);
        let out = std::process::Command::new(repo().join("tests/scripts/samba.sh"))
            .arg(&dir)
            .env("WATCH_PID", std::process::id().to_string())
            .output()
            .expect("run tests/scripts/samba.sh (needs root and samba: run tests/scripts/test.sh)");
        assert!(
            out.status.success(),
            "samba.sh failed (the AD tests need root and the samba packages; tests/scripts/test.sh installs \
             them): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

pub fn ca() -> PathBuf {
    dc().join("tls/ca.pem")
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(3).enable_all().build().expect("runtime")
}

/// An administrator's connection to the DC, for setting up and looking.
pub async fn admin() -> ldap3::Ldap {
    dc();
    let settings = ldap3::LdapConnSettings::new().set_no_tls_verify(true);
    let (conn, mut ldap) =
        ldap3::LdapConnAsync::with_settings(settings, "ldaps://127.0.0.1:636").await.expect("connect to the DC");
    ldap3::drive!(conn);
    ldap.simple_bind(ADMIN, ADMIN_PW).await.expect("bind").success().expect("admin bind");
    ldap
}

/// Runs `f` on an administrator's connection, off any runtime the caller is on.
pub fn with_admin<T: Send>(f: impl AsyncFnOnce(&mut ldap3::Ldap) -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            rt().block_on(async {
                let mut ldap = admin().await;
                f(&mut ldap).await
            })
        })
        .join()
        .expect("admin thread")
    })
}

/// A new OU of the domain that no other test uses (with an OU for groups inside it).
pub fn test_ou() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let ou = format!("OU=t{}x{n},{DOMAIN}", std::process::id());
    let groups = format!("OU=Grupper,{ou}");
    let (ou2, groups2) = (ou.clone(), groups.clone());
    with_admin(async move |l| {
        for dn in [&ou2, &groups2] {
            let name = dn.split(',').next().unwrap().trim_start_matches("OU=").to_string();
            let res = l
                .add(dn, vec![("objectClass", ["organizationalUnit"].into()), ("ou", [name.as_str()].into())])
                .await
                .expect("add OU");
            assert!(res.rc == 0 || res.rc == 68, "add {dn}: {res:?}");
        }
    });
    ou
}

/// Every entry under `base` matching `filter`, with these attributes ("*" for all).
pub fn search(base: &str, filter: &str, attrs: &[&str]) -> Vec<Entry> {
    let (base, filter) = (base.to_string(), filter.to_string());
    let attrs: Vec<String> = attrs.iter().map(|a| a.to_string()).collect();
    with_admin(async move |l| {
        let (entries, _) =
            l.search(&base, ldap3::Scope::Subtree, &filter, attrs).await.expect("search").success().expect("search ok");
        entries
            .into_iter()
            .map(|e| {
                let e = ldap3::SearchEntry::construct(e);
                let mut attrs: BTreeMap<String, Vec<String>> = e.attrs.into_iter().collect();
                for (k, v) in e.bin_attrs {
                    attrs.insert(k, v.iter().map(|b| b.iter().map(|x| format!("{x:02x}")).collect()).collect());
                }
                Entry { dn: e.dn, attrs }
            })
            .collect()
    })
}

/// User entries under `base`, by sAMAccountName (lowercase).
pub fn users(base: &str) -> BTreeMap<String, Entry> {
    search(base, "(&(objectCategory=person)(objectClass=user))", &["*", "objectGUID"])
        .into_iter()
        .map(|e| (e.one("sAMAccountName").to_lowercase(), e))
        .collect()
}

/// Binds as `user` with `password`: Ok, or the server's diagnostic text.
pub fn bind_as(user: &str, password: &str) -> Result<(), String> {
    let (user, password) = (user.to_string(), password.to_string());
    std::thread::scope(|s| {
        s.spawn(|| {
            rt().block_on(async {
                let settings = ldap3::LdapConnSettings::new().set_no_tls_verify(true);
                let (conn, mut ldap) =
                    ldap3::LdapConnAsync::with_settings(settings, "ldaps://127.0.0.1:636").await.expect("connect");
                ldap3::drive!(conn);
                let res = ldap.simple_bind(&user, &password).await.expect("bind");
                if res.rc == 0 { Ok(()) } else { Err(format!("rc {}: {}", res.rc, res.text)) }
            })
        })
        .join()
        .expect("bind thread")
    })
}

/// The AD target table for `ou`, reached at `url` (the DC, or a proxy), with more lines.
pub fn ad_table(url: &str, ou: &str, extra: &str) -> String {
    format!(
        "[targets.ad]\ntype = \"ad\"\nurl = \"{url}\"\ntls_ca_file = \"{}\"\nbind_dn = \"{ADMIN}\"\n\
         bind_password_file = \"ad.secret\"\nbase_dn = \"{ou}\"\nupn_suffix = \"skola.example.org\"\n{extra}\n",
        ca().display()
    )
}

/// A test directory with one CSV source and these targets (TOML), and the bind password file.
pub fn env_with(targets: &str) -> Env {
    let env = Env::new();
    std::fs::write(env.path("ad.secret"), format!("{ADMIN_PW}\n")).expect("write secret");
    owner_only(&env.path("ad.secret"));
    let config =
        format!("[state]\npath = \"state.db\"\n\n[sources.sis]\ntype = \"csv\"\npath = \"persons.csv\"\n\n{targets}\n");
    std::fs::write(env.path("enid.toml"), config).expect("write config");
    env
}

/// The connector, reaching the DC directly: for looking at what the engine did.
pub fn direct(ou: &str, extra: &str) -> AdTarget {
    let config: AdConfig = toml::from_str(&format!(
        "url = \"ldaps://127.0.0.1:636\"\ntls_ca_file = \"{}\"\nbind_dn = \"{ADMIN}\"\nbase_dn = \"{ou}\"\n\
         upn_suffix = \"skola.example.org\"\n{extra}",
        ca().display()
    ))
    .expect("config");
    AdTarget::new(config, Secret::new(ADMIN_PW))
}

/// A user made by hand, as an administrator would: no owner marker, disabled, no password.
pub fn make_user(parent: &str, sam: &str, given: &str, family: &str) -> String {
    let dn = format!("CN={given} {family},{parent}");
    let (dn2, sam, given, family) = (dn.clone(), sam.to_string(), given.to_string(), family.to_string());
    with_admin(async move |l| {
        let display = format!("{given} {family}");
        let res = l
            .add(
                &dn2,
                vec![
                    ("objectClass", ["top", "person", "organizationalPerson", "user"].into()),
                    ("sAMAccountName", [sam.as_str()].into()),
                    ("givenName", [given.as_str()].into()),
                    ("sn", [family.as_str()].into()),
                    ("displayName", [display.as_str()].into()),
                    ("userAccountControl", ["514"].into()),
                ],
            )
            .await
            .expect("add user");
        assert_eq!(res.rc, 0, "add {dn2}: {res:?}");
    });
    dn
}

struct AdRig {
    env: Env,
    proxy: FaultProxy,
    target: AdTarget,
    ou: String,
}

impl Rig for AdRig {
    type T = AdTarget;

    fn target(&self) -> &AdTarget {
        &self.target
    }

    fn proxy(&self) -> &FaultProxy {
        &self.proxy
    }

    fn set_people(&mut self, people: &[Person]) {
        rig::set_people(&self.env, people);
    }

    fn plan(&mut self, day: u32) -> Outcome {
        rig::plan(&self.env, day)
    }

    fn apply(&mut self, day: u32) -> Outcome {
        rig::apply(&self.env, day)
    }

    fn make_unowned(&mut self, username: &str, given: &str, family: &str) {
        make_user(&format!("OU=S1,{}", self.ou), username, given, family);
    }

    fn grace_days(&self) -> u32 {
        10
    }
}

#[test]
fn the_ad_target_passes_the_conformance_suite() {
    let ou = test_ou();
    let rt = rt();
    let ends = TlsEnds {
        cert: dc().join("tls/server.pem"),
        key: dc().join("tls/server.key"),
        upstream_ca: ca(),
        upstream_name: "127.0.0.1".into(),
    };
    let upstream = "127.0.0.1:636".parse().unwrap();
    let proxy = rt.block_on(FaultProxy::start_tls(upstream, Protocol::Ldap, ends)).expect("proxy");
    let groups = format!("\n[targets.ad.groups]\nbase_dn = \"OU=Grupper,{ou}\"\n\n[targets.ad.policy.groups]\n");
    let table =
        ad_table(&format!("ldaps://127.0.0.1:{}", proxy.addr().port()), &ou, &format!("max_in_flight = 2\n{groups}"));
    let env = env_with(&format!(
        "[naming]\non_name_change = \"rename\"\n\n[lifecycle]\ndelete_students_after_days = 10\n\n{table}"
    ));
    let target = direct(&ou, &format!("[groups]\nbase_dn = \"OU=Grupper,{ou}\"\n"));
    let mut rig = AdRig { env, proxy, target, ou: ou.clone() };
    let reports = rt.block_on(testkit::run(&mut rig));
    assert_eq!(reports.len(), 13, "{reports:#?}");
    testkit::assert_passed(&reports);
    // Every account in the OU of its school, named by its display name.
    for (sam, e) in users(&ou) {
        if sam == "eva.ek" {
            continue; // made by hand
        }
        let school = e.one("department");
        assert!(e.dn.contains(&format!("OU={school},{ou}")), "{sam}: {} is not in OU={school}", e.dn);
        assert!(e.dn.starts_with(&format!("CN={}", e.one("displayName"))), "{sam}: {}", e.dn);
    }
}

/// A CSV row for a person of this test's own (domain-wide unique) names.
pub fn person(id: &str, given: &str, family: &str, school: &str, group: &str) -> String {
    row(id, given, family, "", "student", school, group)
}

fn uac(e: &Entry) -> u32 {
    e.one("userAccountControl").parse().unwrap()
}

#[test]
fn accounts_get_ous_upns_and_first_passwords_that_are_handed_out_once() {
    let ou = test_ou();
    let groups = format!("[targets.ad.groups]\nbase_dn = \"OU=Grupper,{ou}\"\n\n[targets.ad.policy.groups]\n");
    let env =
        env_with(&ad_table("ldaps://127.0.0.1:636", &ou, &format!("initial_password = \"generated\"\n\n{groups}")));
    csv_rows(
        &env,
        &[
            person("1", "Pia", "Passlund", "Norr", "7A"),
            person("2", "Per", "Passlund", "Norr", "7A"),
            person("3", "Liv", "Passberg", "Söder", "8B"),
        ],
    );
    let plan = env.enid(&["plan"]).ok();
    let applied = env.enid(&["apply", "--yes"]).ok();
    let u = users(&ou);
    assert_eq!(u.len(), 3, "{:?}", u.keys());
    let pia = &u["pia.passlund"];
    assert!(pia.dn.eq_ignore_ascii_case(&format!("CN=Pia Passlund,OU=Norr,{ou}")), "{}", pia.dn);
    assert!(u["liv.passberg"].dn.contains("OU=Söder,"), "{}", u["liv.passberg"].dn);
    assert_eq!(pia.one("userPrincipalName"), "pia.passlund@skola.example.org");
    assert_eq!(pia.one("givenName"), "Pia");
    assert_eq!(pia.one("department"), "Norr");
    let id = pia.one("employeeNumber");
    assert_eq!(id.len(), 36, "the enid id: {:?}", pia.attrs);
    assert_eq!(pia.one("employeeID"), id.replace('-', "")[..16], "employeeID holds 16 characters of it");
    assert_eq!(uac(pia), 512, "enabled, a normal account");
    assert_eq!(pia.one("pwdLastSet"), "0", "the first password must be changed at the first logon");

    // The hand-out: once, for the school asked about.
    let shown = env.enid(&["passwords", "show", "--school", "Norr", "--json"]).ok().json();
    let shown = shown.as_array().unwrap().clone();
    assert_eq!(shown.len(), 2, "{shown:?}");
    let mut passwords = Vec::new();
    for h in &shown {
        let username = h["username"].as_str().unwrap();
        let password = h["password"].as_str().unwrap();
        assert_eq!(password.len(), 14);
        // Right password, due for a change: AD says 773 ("must reset"); a wrong one 52e.
        let right = bind_as(&format!("{username}@skola.example.org"), password).unwrap_err();
        assert!(right.contains("data 773"), "{username}: {right}");
        let wrong = bind_as(&format!("{username}@skola.example.org"), "Wrong-Passw0rd").unwrap_err();
        assert!(wrong.contains("data 52e"), "{wrong}");
        passwords.push(password.to_string());
    }
    assert_eq!(shown[0]["display_name"].as_str().map(|n| n.contains("Passlund")), Some(true), "{shown:?}");
    let again = env.enid(&["passwords", "show", "--school", "Norr"]).ok().stdout;
    assert!(again.contains("No first passwords to hand out"), "shown once only: {again}");
    let soder = env.enid(&["passwords", "show", "--school", "Söder", "--json"]).ok().json();
    assert_eq!(soder.as_array().map(Vec::len), Some(1));
    passwords.push(soder[0]["password"].as_str().unwrap().to_string());
    // The hand-out is in the sync log, the passwords nowhere but in the hand-out.
    let log = env.enid(&["log", "--school", "Norr"]).ok().stdout;
    assert!(log.contains("hand_out_password"), "{log}");
    let state = std::fs::read(env.path("state.db")).unwrap();
    let wal = std::fs::read(env.path("state.db-wal")).unwrap_or_default();
    for p in &passwords {
        for (what, text) in
            [("plan", &plan.stdout), ("apply", &applied.stdout), ("apply log", &applied.stderr), ("log", &log)]
        {
            assert!(!text.contains(p.as_str()), "a password in the {what} output");
        }
        let needle = p.as_bytes();
        assert!(!state.windows(needle.len()).any(|w| w == needle), "a password in the clear in the state");
        assert!(!wal.windows(needle.len()).any(|w| w == needle), "a password in the clear in the WAL");
    }
    // The password key: owner-only, beside the config. Lost while a password is kept, it stops
    // the hand-out and the next apply that would keep one, until it is restored or the kept ones
    // are forgotten on request.
    use std::os::unix::fs::PermissionsExt;
    let key = env.path("password.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let mut rows = vec![
        person("1", "Pia", "Passlund", "Norr", "7A"),
        person("2", "Per", "Passlund", "Norr", "7A"),
        person("3", "Liv", "Passberg", "Söder", "8B"),
        person("4", "Ola", "Passberg", "Norr", ""),
    ];
    csv_rows(&env, &rows);
    env.enid(&["apply", "--yes"]).ok();
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let err = env.enid(&["passwords", "show", "--school", "Norr"]).fails().stderr;
    assert!(err.contains("password key file") && err.contains("passwords forget"), "{err}");
    rows.push(person("5", "Ebba", "Passberg", "Norr", ""));
    csv_rows(&env, &rows);
    let err = env.enid(&["apply", "--yes"]).fails().stderr;
    assert!(err.contains("password key file"), "{err}");
    assert!(!users(&ou).contains_key("ebba.passberg"), "nothing was sent");
    // Another key never opens what the recorded one sealed.
    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = env.enid(&["passwords", "show", "--school", "Norr"]).fails().stderr;
    assert!(err.contains("not the key"), "{err}");
    std::fs::write(&key, &saved).unwrap();
    let ola = env.enid(&["passwords", "show", "--school", "Norr", "--json"]).ok().json();
    assert_eq!(ola[0]["username"], "ola.passberg", "restored, it opens: {ola}");
    env.enid(&["apply", "--yes"]).ok();
    std::fs::remove_file(&key).unwrap();
    env.enid(&["passwords", "forget"]).fails();
    let out = env.enid(&["passwords", "forget", "--yes"]).ok().stdout;
    assert!(out.contains("Forgot 1 first passwords"), "{out}");
    rows.push(person("6", "Nea", "Passberg", "Norr", ""));
    csv_rows(&env, &rows);
    env.enid(&["apply", "--yes"]).ok();
    let nea = env.enid(&["passwords", "show", "--school", "Norr", "--json"]).ok().json();
    assert_eq!(nea.as_array().map(Vec::len), Some(1), "a new key for new passwords: {nea}");

    // Without force_password_change the user logs on with it.
    let ou2 = test_ou();
    let env2 = env_with(&ad_table(
        "ldaps://127.0.0.1:636",
        &ou2,
        "initial_password = \"generated\"\nforce_password_change = false\npassword_length = 16\n",
    ));
    csv_rows(&env2, &[person("9", "Tove", "Passvik", "Norr", "")]);
    env2.enid(&["apply", "--yes"]).ok();
    let h = env2.enid(&["passwords", "show", "--all", "--json"]).ok().json();
    let password = h[0]["password"].as_str().unwrap();
    assert_eq!(password.len(), 16);
    bind_as("tove.passvik@skola.example.org", password).unwrap();
    assert_ne!(users(&ou2)["tove.passvik"].one("pwdLastSet"), "0");
}

#[test]
fn a_mover_changes_ou_keeps_objectguid_and_groups_and_a_leaver_keeps_his_other_flags() {
    let ou = test_ou();
    let groups = format!("[targets.ad.groups]\nbase_dn = \"OU=Grupper,{ou}\"\n\n[targets.ad.policy.groups]\n");
    let env = env_with(&ad_table("ldaps://127.0.0.1:636", &ou, &groups));
    let mut rows = vec![
        row("1", "Mona", "Movesson", "", "student", "Norr", "7A"),
        row("2", "Max", "Movesson", "", "staff", "Norr", ""),
    ];
    csv_rows(&env, &rows);
    env.enid(&["apply", "--yes"]).ok();
    let before = users(&ou)["mona.movesson"].clone();
    // Mona moves to another school, where a namesake made by hand already holds her cn; Max
    // gets a flag set by hand.
    let soder = format!("OU=Söder,{ou}");
    let soder2 = soder.clone();
    with_admin(async move |l| {
        let res = l
            .add(&soder2, vec![("objectClass", ["organizationalUnit"].into()), ("ou", ["Söder"].into())])
            .await
            .expect("add OU");
        assert_eq!(res.rc, 0, "{res:?}");
    });
    make_user(&soder, &format!("mm{}", std::process::id()), "Mona", "Movesson");
    rows[0] = row("1", "Mona", "Movesson", "", "student", "Söder", "7A");
    csv_rows(&env, &rows);
    let max_dn = users(&ou)["max.movesson"].dn.clone();
    with_admin(async move |l| {
        let res =
            l.modify(&max_dn, vec![ldap3::Mod::Replace("userAccountControl", ["66048"].into())]).await.expect("modify");
        assert_eq!(res.rc, 0, "{res:?}");
    });
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["summary"]["move"], 1, "{}", plan["operations"]);
    env.enid(&["apply", "--yes"]).ok();
    let after = users(&ou)["mona.movesson"].clone();
    assert!(after.dn.starts_with("CN=Mona Movesson (mona.movesson),OU=Söder,"), "told apart: {}", after.dn);
    assert_eq!(after.one("objectGUID"), before.one("objectGUID"), "the same account");
    assert_eq!(after.one("department"), "Söder");
    let groups: BTreeMap<String, Vec<String>> =
        search(&format!("OU=Grupper,{ou}"), "(objectClass=group)", &["cn", "member"])
            .into_iter()
            .map(|g| (g.one("cn"), g.get("member")))
            .collect();
    assert_eq!(groups.get("Söder-7A").map(|m| m.len()), Some(1), "{groups:?}");
    assert!(groups["Söder-7A"][0].eq_ignore_ascii_case(&after.dn), "{groups:?}");
    assert!(groups.get("Norr-7A").is_none_or(|m| m.is_empty()), "{groups:?}");
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{}", plan["operations"]);

    // Max leaves: disabled by the flag, his DONT_EXPIRE_PASSWORD kept; back, enabled again.
    csv_rows(&env, &rows[..1]);
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(uac(&users(&ou)["max.movesson"]), 66048 | 2);
    csv_rows(&env, &rows);
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(uac(&users(&ou)["max.movesson"]), 66048);
    // A new name renames the entry too: the old name does not stay in its DN; her new class in
    // the same run gets her under the new DN, and the old one lets her go.
    rows[0] = row("1", "Mona", "Flyttlund", "", "student", "Söder", "8A");
    csv_rows(&env, &rows);
    let config = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    std::fs::write(env.path("enid.toml"), format!("[naming]\non_name_change = \"rename\"\n\n{config}")).unwrap();
    env.enid(&["apply", "--yes"]).ok();
    let renamed = users(&ou);
    let mona = &renamed["mona.flyttlund"];
    assert!(mona.dn.starts_with("CN=Mona Flyttlund,OU=Söder,"), "{}", mona.dn);
    assert_eq!(mona.one("objectGUID"), before.one("objectGUID"));
    assert_eq!(mona.one("userPrincipalName"), "mona.flyttlund@skola.example.org");
    assert!(!renamed.contains_key("mona.movesson"));
    let groups: BTreeMap<String, Vec<String>> =
        search(&format!("OU=Grupper,{ou}"), "(objectClass=group)", &["cn", "member"])
            .into_iter()
            .map(|g| (g.one("cn"), g.get("member")))
            .collect();
    assert!(groups["Söder-8A"].len() == 1 && groups["Söder-8A"][0].eq_ignore_ascii_case(&mona.dn), "{groups:?}");
    assert!(groups.get("Söder-7A").is_none_or(|m| m.is_empty()), "{groups:?}");
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{}", plan["operations"]);
    dbcheck();
}

/// `samba-tool dbcheck --cross-ncs` finds nothing wrong in the domain.
fn dbcheck() {
    let out = std::process::Command::new("samba-tool")
        .args(["dbcheck", "--cross-ncs", "-s"])
        .arg(dc().join("etc/smb.conf"))
        .output()
        .expect("run samba-tool dbcheck");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("(0 errors)"), "dbcheck: {text}");
}

#[test]
fn a_protected_person_lives_in_the_protected_ou_under_her_username_only() {
    let ou = test_ou();
    let env = env_with(&ad_table(
        "ldaps://127.0.0.1:636",
        &ou,
        "initial_password = \"generated\"\nhide_from_address_lists_attribute = \"msNPAllowDialin\"\n",
    ));
    let header = "person_id,given_name,family_name,civic_no,role,school_unit,groups,start_date,end_date,protection";
    std::fs::write(
        env.path("persons.csv"),
        format!(
            "{header}\n1,Siv,Skyddsson,,student,Norr,,,,\n2,Hemlig,Gömdsdotter,20150916-1236,student,Norr,,,,Skyddad folkbokföring\n"
        ),
    )
    .unwrap();
    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let r = env.enid(args);
        outputs.push(format!("{}\n{}", r.stdout, r.stderr));
        r
    };
    run(&["plan", "--save"]).ok();
    let saved = run(&["plan", "--json"]).ok().json();
    let id = saved["plan_id"].as_str().unwrap().to_string();
    run(&["apply", "--plan", &id, "--accept-protected"]).ok();
    let u = users(&ou);
    assert_eq!(u.len(), 2, "{:?}", u.keys());
    let (sam, hidden) = u.iter().find(|(k, _)| *k != "siv.skyddsson").unwrap();
    assert!(hidden.dn.eq_ignore_ascii_case(&format!("CN={sam},OU=Skyddade,{ou}")), "{}", hidden.dn);
    let all = format!("{:?}", hidden.attrs);
    assert!(!all.contains("Hemlig") && !all.contains("Gömdsdotter") && !all.contains("Norr"), "{all}");
    assert_eq!(hidden.one("msNPAllowDialin"), "TRUE", "kept out of address lists as configured");
    assert!(u["siv.skyddsson"].get("msNPAllowDialin").is_empty(), "only protected persons");
    // Her first password only with --protected, by enid id.
    let by_school = run(&["passwords", "show", "--school", "Norr", "--json"]).ok().json();
    assert_eq!(by_school.as_array().map(Vec::len), Some(1), "{by_school}");
    let prot = run(&["passwords", "show", "--protected", "--json"]).ok().json();
    assert_eq!(prot.as_array().map(Vec::len), Some(1), "{prot}");
    assert!(prot[0]["username"].is_null() && prot[0]["display_name"].is_null(), "{prot}");
    assert_eq!(prot[0]["identity"].as_str(), Some(hidden.one("employeeNumber").as_str()));
    run(&["log", "--all"]).ok();
    run(&["explain", sam]).ok();
    // Siv is given protection later: renamed to a pseudonym, moved to the protected OU under
    // it, hidden.
    let siv_id = u["siv.skyddsson"].one("employeeNumber");
    std::fs::write(
        env.path("persons.csv"),
        format!(
            "{header}\n1,Siv,Skyddsson,,student,Norr,,,,Sekretessmarkering\n2,Hemlig,Gömdsdotter,20150916-1236,student,Norr,,,,Skyddad folkbokföring\n"
        ),
    )
    .unwrap();
    run(&["plan", "--save"]).ok();
    let saved = run(&["plan", "--json"]).ok().json();
    let id = saved["plan_id"].as_str().unwrap().to_string();
    run(&["apply", "--plan", &id, "--accept-protected"]).ok();
    let after = users(&ou);
    let (pseudonym, siv) = after.iter().find(|(_, e)| e.one("employeeNumber") == siv_id).expect("her account");
    assert!(siv.dn.eq_ignore_ascii_case(&format!("CN={pseudonym},OU=Skyddade,{ou}")), "{}", siv.dn);
    assert!(!siv.dn.contains("Siv") && !format!("{:?}", siv.attrs).contains("Skyddsson"), "{:?}", siv.attrs);
    assert_eq!(siv.one("msNPAllowDialin"), "TRUE", "hidden once protected");
    assert!(siv.get("department").is_empty() && siv.get("givenName").is_empty(), "{:?}", siv.attrs);
    let plan = run(&["plan", "--json"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{}", plan["operations"]);
    for out in &outputs {
        for secret in ["Hemlig", "Gömdsdotter", "20150916", "150916-1236"] {
            assert!(!out.contains(secret), "{secret} in an output:\n{out}");
        }
    }
}

#[test]
fn namesakes_share_an_ou_and_accounts_made_by_hand_keep_their_names() {
    let ou = test_ou();
    let env = env_with(&ad_table("ldaps://127.0.0.1:636", &ou, ""));
    // By hand: one in the scope with the name a person would get, one elsewhere in the domain.
    let elsewhere = test_ou();
    make_user(&elsewhere, "nils.namnsson", "Nils", "Namnsson");
    csv_rows(
        &env,
        &[
            person("1", "Nora", "Namnsson", "Norr", ""),
            person("2", "Nora", "Namnsson", "Norr", ""),
            person("3", "Nils", "Namnsson", "Norr", ""),
            // A school unit whose name a DN cannot hold as it is.
            person("4", "Kai", "Kommasson", "\"Ekbacken, F-6\"", ""),
        ],
    );
    env.enid(&["apply", "--yes"]).ok();
    let u = users(&ou);
    let dns: Vec<String> = u.values().map(|e| e.dn.clone()).collect();
    assert_eq!(u.len(), 4, "{dns:?}");
    assert_eq!(u["kai.kommasson"].dn, format!("CN=Kai Kommasson,OU=Ekbacken\\, F-6,{ou}"), "{dns:?}");
    assert_eq!(u["kai.kommasson"].one("department"), "Ekbacken, F-6");
    // Whichever came first has the plain name; the other is told apart by its username.
    let plain = format!("CN=Nora Namnsson,OU=Norr,{ou}");
    let (first, second) = if u["nora.namnsson"].dn == plain {
        ("nora.namnsson", "nora.namnsson2")
    } else {
        ("nora.namnsson2", "nora.namnsson")
    };
    assert_eq!(u[first].dn, plain, "{dns:?}");
    assert_eq!(u[second].dn, format!("CN=Nora Namnsson ({second}),OU=Norr,{ou}"), "{dns:?}");
    assert!(u.contains_key("nils.namnsson2"), "the name held elsewhere in the domain is avoided: {dns:?}");
    let theirs = users(&elsewhere);
    assert_eq!(theirs["nils.namnsson"].one("userAccountControl"), "514", "left as it was");
    assert!(theirs["nils.namnsson"].get("employeeNumber").is_empty());
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{}", plan["operations"]);
}

#[test]
fn a_plain_connection_is_refused_and_starttls_works() {
    let ou = test_ou();
    let env = env_with(&ad_table("ldap://127.0.0.1:389", &ou, ""));
    csv_rows(&env, &[person("1", "Tor", "Tlsson", "Norr", "")]);
    let err = env.enid(&["check"]).fails().stderr;
    assert!(err.contains("plain connection") && err.contains("ldaps://"), "{err}");
    let env = env_with(&ad_table("ldap://127.0.0.1:389", &ou, "starttls = true\n"));
    csv_rows(&env, &[person("1", "Tor", "Tlsson", "Norr", "")]);
    let out = env.enid(&["check"]).ok().stdout;
    assert!(out.contains("encrypted"), "{out}");
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(uac(&users(&ou)["tor.tlsson"]), 512);
    // A certificate nobody vouches for stops the run before anything is sent.
    let no_ca =
        ad_table("ldaps://127.0.0.1:636", &ou, "").replace(&format!("tls_ca_file = \"{}\"\n", ca().display()), "");
    let env = env_with(&no_ca);
    csv_rows(&env, &[person("1", "Tor", "Tlsson", "Norr", "")]);
    let err = env.enid(&["plan"]).fails().stderr;
    assert!(err.contains("TLS") && err.contains("tls_ca_file"), "{err}");
}

#[test]
fn the_domains_errors_name_the_account_and_the_fix() {
    let ou = test_ou();
    // A wrong bind password.
    let env = env_with(&ad_table("ldaps://127.0.0.1:636", &ou, ""));
    std::fs::write(env.path("ad.secret"), "not-the-password\n").unwrap();
    csv_rows(&env, &[person("1", "Eli", "Felsson", "Norr", "")]);
    let r = env.enid(&["check"]).fails();
    let err = format!("{}{}", r.stdout, r.stderr);
    assert!(err.contains("FAILED  target \"ad\"") && err.contains("invalid credentials"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    // A bind account without rights in the OU: the create is refused, named by enid id.
    let helper = format!("CN=Users,{DOMAIN}");
    let dn = make_user(&helper, &format!("ro{}", std::process::id()), "Read", "Only");
    let dn2 = dn.clone();
    with_admin(async move |l| {
        let pw: Vec<u8> = "\"Ro-Passw0rd!x\"".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let res = l
            .modify(
                &dn2,
                vec![
                    ldap3::Mod::Replace("unicodePwd".as_bytes().to_vec(), [pw].into()),
                    ldap3::Mod::Replace("userAccountControl".as_bytes().to_vec(), ["512".as_bytes().to_vec()].into()),
                ],
            )
            .await
            .expect("set password");
        assert_eq!(res.rc, 0, "{res:?}");
    });
    let env = env_with(
        &ad_table("ldaps://127.0.0.1:636", &ou, "")
            .replace(&format!("bind_dn = \"{ADMIN}\""), &format!("bind_dn = \"{dn}\"")),
    );
    std::fs::write(env.path("ad.secret"), "Ro-Passw0rd!x\n").unwrap();
    csv_rows(&env, &[person("1", "Eli", "Felsson", "Norr", "")]);
    let run = env.enid(&["apply", "--yes"]).fails();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    let id = plan["operations"][0]["identity"].as_str().unwrap().to_string();
    assert!(run.stderr.contains(&format!("identity {id}")), "{}", run.stderr);
    assert!(run.stderr.contains("insufficient access; the bind DN needs the right to create"), "{}", run.stderr);
    assert!(users(&ou).is_empty());
}

/// Letters no other run of this binary on the same DC uses (the DC outlives a test run, and
/// usernames are unique in the whole domain): the process id, one letter per digit.
fn run_letters() -> String {
    std::process::id().to_string().chars().map(|d| char::from(b'a' + d.to_digit(10).unwrap_or(0) as u8)).collect()
}

/// Blocked entries of a plan as (name, reason).
fn blocked(plan: &serde_json::Value) -> BTreeMap<String, String> {
    plan["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["username"].as_str().unwrap().to_string(), b["reason"].as_str().unwrap().to_string()))
        .collect()
}

/// Groups under `base` by cn, with their members.
fn groups_under(base: &str) -> BTreeMap<String, Vec<String>> {
    search(base, "(objectClass=group)", &["cn", "member"]).into_iter().map(|g| (g.one("cn"), g.get("member"))).collect()
}

#[test]
fn a_group_whose_name_another_object_in_the_domain_holds_is_blocked_and_everything_else_applies() {
    let ou = test_ou();
    let elsewhere = test_ou();
    // School and group names no other test (or earlier run on this DC) uses: group names are
    // unique in the whole domain, like usernames.
    let school = format!("G{}", std::process::id());
    // A user elsewhere holds the sAMAccountName the class group 7A would get, and a group made
    // by hand (another cn) the one of the school's group.
    let user = make_user(&elsewhere, &format!("{school}-7A"), "Grupp", "Hållare");
    let hand_group = format!("CN=Annan grupp,{elsewhere}");
    let (dn, sam) = (hand_group.clone(), format!("{school}-alla"));
    with_admin(async move |l| {
        let res = l
            .add(
                &dn,
                vec![
                    ("objectClass", ["group"].into()),
                    ("cn", ["Annan grupp"].into()),
                    ("sAMAccountName", [sam.as_str()].into()),
                ],
            )
            .await
            .expect("add group");
        assert_eq!(res.rc, 0, "{res:?}");
    });
    let groups = format!(
        "[targets.ad.groups]\nbase_dn = \"OU=Grupper,{ou}\"\n\n[targets.ad.policy.groups]\nschool_name = \"{{{{ school_unit }}}}-alla\"\n"
    );
    let env = env_with(&ad_table("ldaps://127.0.0.1:636", &ou, &groups));
    let family = format!("Gr{}", run_letters());
    csv_rows(
        &env,
        &[
            person("1", "Greta", &family, &school, "7A"),
            person("2", "Gustav", &family, &school, "7A|9C"),
            person("3", "Gun", &family, &school, "9C"),
        ],
    );
    let plan = env.enid(&["plan", "--json"]).ok().json();
    let held = blocked(&plan);
    let class = &held[&format!("{school}-7A")];
    let has = |text: &str, dn: &str| text.to_lowercase().contains(&dn.to_lowercase());
    assert!(has(class, &user) && class.contains("[targets.ad.policy.groups] name "), "{class}");
    let whole = &held[&format!("{school}-alla")];
    assert!(has(whole, &hand_group) && whole.contains("[targets.ad.policy.groups] school_name"), "{whole}");
    assert_eq!(held.len(), 2, "{held:?}");
    let creates: Vec<&str> = plan["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["action"] == "create_group")
        .map(|o| o["username"].as_str().unwrap())
        .collect();
    assert_eq!(creates, [format!("{school}-9C")], "{}", plan["operations"]);
    assert_eq!(plan["group_summary"]["create"], 1, "{}", plan["group_summary"]);
    // The apply succeeds: every account, and the group nobody else holds with its members.
    env.enid(&["apply", "--yes"]).ok();
    let u = users(&ou);
    assert_eq!(u.len(), 3, "{:?}", u.keys());
    let made = groups_under(&format!("OU=Grupper,{ou}"));
    assert_eq!(made.keys().collect::<Vec<_>>(), [&format!("{school}-9C")], "{made:?}");
    let mut members: Vec<String> = made[&format!("{school}-9C")].iter().map(|m| m.to_lowercase()).collect();
    members.sort();
    let name = |given: &str| u[&format!("{given}.{}", family.to_lowercase())].dn.to_lowercase();
    let mut want = vec![name("gustav"), name("gun")];
    want.sort();
    assert_eq!(members, want);
    // The holders are left as they were.
    let holder = &users(&elsewhere)[&format!("{school}-7a").to_lowercase()];
    assert!(holder.get("employeeNumber").is_empty() && uac(holder) == 514, "{:?}", holder.attrs);
    assert!(groups_under(&elsewhere)["Annan grupp"].is_empty());
    // The next run is stable: nothing to do, the same two groups blocked, no error.
    let again = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(again["operations"].as_array().map(Vec::len), Some(0), "{}", again["operations"]);
    assert_eq!(blocked(&again), held);
    env.enid(&["apply", "--yes"]).ok();
}

#[test]
fn a_school_unit_whose_ou_ad_cannot_hold_holds_its_persons_and_the_others_go_on() {
    let ou = test_ou();
    let env = env_with(&ad_table("ldaps://127.0.0.1:636", &ou, ""));
    let long = "Kommunala grundskolan för årskurserna sju till nio i norra stadsdelen";
    assert!(long.chars().count() > 64);
    let family = format!("Ou{}", run_letters());
    let user = |given: &str| format!("{given}.{}", family.to_lowercase());
    csv_rows(
        &env,
        &[
            // The protected OU's name (OU=Skyddade,<base_dn>), in another case.
            person("1", "Olle", &family, "skyddade", ""),
            person("2", "Otto", &family, long, ""),
            person("3", "Oda", &family, "Norr", ""),
        ],
    );
    let plan = env.enid(&["plan", "--json"]).fails().json();
    let ids: BTreeMap<String, String> = plan["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["username"].as_str().unwrap().to_string(), b["reason"].as_str().unwrap().to_string()))
        .collect();
    let olle = &ids[&user("olle")];
    assert!(olle.contains("school unit \"skyddade\"") && olle.contains("protected personal data"), "{olle}");
    let otto = &ids[&user("otto")];
    assert!(otto.contains(&format!("school unit \"{long}\"")) && otto.contains("at most 64"), "{otto}");
    assert_eq!(ids.len(), 2, "{ids:?}");
    // Each run says so and exits non-zero, naming the unit, not a server error; Oda's account is made.
    for _ in 0..2 {
        let run = env.enid(&["apply", "--yes"]).fails();
        assert!(run.stderr.contains("school unit") && !run.stderr.contains("LDAP"), "{}", run.stderr);
        let u = users(&ou);
        assert_eq!(u.keys().collect::<Vec<_>>(), [&user("oda")], "{u:?}");
        assert!(u[&user("oda")].dn.contains("OU=Norr,"), "{}", u[&user("oda")].dn);
    }
}

/// `enid run` against the domain: the first scheduled run applies; a surname change and a new
/// pupil reach AD through incremental runs (the accounts looked up by owner marker, the new
/// username in the whole domain first), the renamed entry is the same object.
#[test]
fn the_service_follows_csv_edits_into_ad_through_incremental_runs() {
    use crate::daemon16::{Daemon, wait_for};
    let ou = test_ou();
    let l = run_letters();
    let schedule = "\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"1s\"\n";
    let env = env_with(&format!("{}{schedule}", ad_table("ldaps://127.0.0.1:636", &ou, "")));
    let mut rows = vec![
        person("1", &format!("Ina{l}"), "Inkrement", "Norr", "7A"),
        person("2", &format!("Ola{l}"), "Inkrement", "Norr", "7A"),
    ];
    csv_rows(&env, &rows);
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 30));
    wait_for("the first run's accounts", 60, || users(&ou).len() == 2);
    let runs = |env: &Env| -> Vec<serde_json::Value> {
        let out = env.enid(&["runs", "--json"]).ok().stdout;
        out.lines().map(|x| serde_json::from_str(x).unwrap()).collect()
    };
    let guid = |u: &BTreeMap<String, Entry>, given: &str| {
        u.values().find(|e| e.one("givenName") == given).map(|e| e.one("objectGUID"))
    };
    let ina = format!("Ina{l}");
    let before = guid(&users(&ou), &ina).expect("Ina's account");

    rows[0] = person("1", &ina, "Ändrad", "Norr", "7A");
    csv_rows(&env, &rows);
    wait_for("the new surname in AD", 60, || users(&ou).values().any(|e| e.one("sn") == "Ändrad"));
    let u = users(&ou);
    let now = u.values().find(|e| e.one("sn") == "Ändrad").unwrap();
    assert_eq!(now.one("objectGUID"), before, "the same object");
    assert!(now.dn.starts_with(&format!("CN={ina} Ändrad,")), "the entry follows the display name: {}", now.dn);
    wait_for("the run's row", 20, || runs(&env).len() == 2 && runs(&env)[1]["status"] != "running");
    assert_eq!(runs(&env)[1]["counts"]["incremental"], true, "{:?}", runs(&env));

    rows.push(person("3", &format!("Ebba{l}"), "Inkrement", "Norr", "7A"));
    csv_rows(&env, &rows);
    wait_for("the new pupil's account", 60, || users(&ou).len() == 3);
    wait_for("the run's row", 20, || runs(&env).len() == 3 && runs(&env)[2]["status"] != "running");
    assert_eq!(runs(&env)[2]["counts"]["incremental"], true, "{:?}", runs(&env));
    assert_eq!(runs(&env)[2]["counts"]["planned"]["create"], 1, "{:?}", runs(&env));
}
