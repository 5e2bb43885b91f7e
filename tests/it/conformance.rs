//! The target conformance suite (`connector_api::testkit`) against a real slapd: the engine is
//! the real `enid` binary, reaching slapd through the fault-injecting proxy; the LDAP connector
//! reaches slapd directly to look at what the engine did.

use crate::harness::*;
use connector_api::Secret;
use connector_api::testkit::{self, FaultProxy, Outcome, Person, Protocol, Rig};
use target_ldap::{LdapConfig, LdapTarget};

const GRACE_DAYS: u32 = 10;
const GROUPS: &str = "ou=groups,dc=example,dc=org";

struct LdapRig {
    env: Env,
    proxy: FaultProxy,
    target: LdapTarget,
}

impl Rig for LdapRig {
    type T = LdapTarget;

    fn target(&self) -> &LdapTarget {
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
        let cn = format!("{given} {family}");
        let dn = format!("uid={username},{BASE}");
        // The harness's LDAP client has a runtime of its own: off the suite's.
        std::thread::scope(|s| {
            s.spawn(|| {
                self.env.add(
                    &dn,
                    &[("objectClass", &["inetOrgPerson"]), ("uid", &[username]), ("cn", &[&cn]), ("sn", &[family])],
                )
            })
            .join()
            .expect("add the hand-made account");
        });
    }

    fn grace_days(&self) -> u32 {
        GRACE_DAYS
    }
}

#[test]
fn the_ldap_target_passes_the_conformance_suite() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(3).enable_all().build().expect("runtime");
    let env = Env::with_config(&format!("\n[targets.directory.groups]\nbase_dn = \"{GROUPS}\"\n"));
    let direct = std::net::SocketAddr::from(([127, 0, 0, 1], env.slapd.port));
    let proxy = rt.block_on(FaultProxy::start(direct, Protocol::Ldap)).expect("proxy");
    // The engine goes through the proxy; enid's naming renames, and leavers wait GRACE_DAYS.
    env.write_config_with_url(&format!("ldap://{}", proxy.addr()));
    let config = std::fs::read_to_string(env.path("enid.toml")).expect("config");
    let config = format!(
        "[naming]\non_name_change = \"rename\"\n\n[lifecycle]\ndelete_students_after_days = {GRACE_DAYS}\n\n{config}"
    );
    std::fs::write(env.path("enid.toml"), config).expect("write config");
    let parsed = enid::config::Config::load(&env.path("enid.toml")).expect("the rig's config loads");
    let enid::config::TargetConfig::Ldap(c) = &parsed.targets["directory"].connector else { panic!("ldap") };
    let target = LdapTarget::new(LdapConfig { url: env.slapd.url(), ..c.clone() }, Secret::new("secret"));
    let mut rig = LdapRig { env, proxy, target };
    let reports = rt.block_on(testkit::run(&mut rig));
    assert_eq!(reports.len(), 13, "{reports:#?}");
    testkit::assert_passed(&reports);
}

/// `observe_at` (what `adopt --entry` and the guard for accounts moved out of scope read: one
/// entry, in the scope or not) reads the attribute that disables an account, as `observe` does:
/// an entry locked out by hand outside the scope reads as disabled, never as enabled.
#[test]
fn the_ldap_target_reads_an_entry_outside_the_scope_with_its_lockout() {
    use connector_api::Target;
    let env = Env::with_config(
        "[targets.directory.disable]\nmethod = \"attribute\"\nattribute = \"description\"\nvalue = \"disabled\"",
    );
    let parsed = enid::config::Config::load(&env.path("enid.toml")).expect("the rig's config loads");
    let enid::config::TargetConfig::Ldap(c) = &parsed.targets["directory"].connector else { panic!("ldap") };
    let target = LdapTarget::new(LdapConfig { url: env.slapd.url(), ..c.clone() }, Secret::new("secret"));
    env.add("ou=old,dc=example,dc=org", &[("objectClass", &["organizationalUnit"]), ("ou", &["old"])]);
    let person = |uid: &str, locked: bool| {
        let dn = format!("uid={uid},ou=old,dc=example,dc=org");
        let uids = [uid];
        let mut attrs: Vec<(&str, &[&str])> =
            vec![("objectClass", &["inetOrgPerson"]), ("uid", &uids[..]), ("cn", &["Anna Berg"]), ("sn", &["Berg"])];
        if locked {
            attrs.push(("description", &["disabled"]));
        }
        env.add(&dn, &attrs);
        dn
    };
    let (locked, open) = (person("anna.berg", true), person("bo.ek", false));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let read = |dn: &str| rt.block_on(target.observe_at(dn, &["sn".to_string()])).expect("read").expect("found");
    let a = read(&locked);
    assert!(a.disabled, "the lockout outside the scope is read: {a:?}");
    assert_eq!((a.username(), a.attrs.texts("sn").collect::<Vec<_>>()), (Some("anna.berg"), vec!["Berg"]));
    assert!(!read(&open).disabled);
    // The entryUUID the connector reads for itself is the anchor, kept beside the attributes and
    // not among them unless asked for (a million accounts read); the username stays (username
    // correlation looks for names in every attribute).
    let names: Vec<String> = a.attrs.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names, ["description", "sn", "uid"]);
    assert!(a.anchor().is_some_and(|u| u.len() == 36), "the entryUUID is the anchor: {a:?}");
    let asked =
        rt.block_on(target.observe_at(&locked, &["sn".into(), "entryUUID".into()])).expect("read").expect("found");
    assert_eq!(
        asked.attrs.texts("entryUUID").collect::<Vec<_>>(),
        a.anchor().into_iter().collect::<Vec<_>>(),
        "asked for"
    );
}
