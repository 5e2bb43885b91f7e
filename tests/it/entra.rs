//! The Microsoft Entra target against the local Graph server (`tests/graph-server`, written
//! from Microsoft's Graph reference; Graph itself cannot be reached here), started in this test
//! process on 127.0.0.1: the conformance suite through the fault-injecting proxy, and what is
//! Entra's own (first passwords, synchronised users, soft-deleted users restored, the delta
//! query kept between runs, `$batch` with its throttled sub-requests, a certificate).

use crate::harness::*;
use connector_api::testkit::{self, FaultProxy, Outcome, Person, Protocol, Rig};
use connector_api::{Role, Secret, Target};
use graph_server::Config;
use target_entra::{EntraConfig, EntraTarget};

pub const SUFFIX: &str = "skola.example.org";
pub const OWNER: &str = "onPremisesExtensionAttributes.extensionAttribute15";

pub async fn start_server(config: impl FnOnce(&mut Config)) -> graph_server::Server {
    let mut c = Config { domain: SUFFIX.into(), ..Config::default() };
    config(&mut c);
    graph_server::start(c).await.expect("graph server")
}

/// An Entra target table reaching Graph at `graph` (`http://host:port`), tokens from `server`.
pub fn entra_table(id: &str, server: &str, graph: &str, extra: &str) -> String {
    let c = Config::default();
    format!(
        "[targets.{id}]\ntype = \"entra\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"entra.secret\"\n\
         upn_suffix = \"{SUFFIX}\"\ngraph_url = \"{graph}/v1.0\"\ntoken_url = \"{server}/{}/oauth2/v2.0/token\"\n\
         max_wait_secs = 20\n{extra}\n",
        c.tenant_id, c.client_id, c.tenant_id
    )
}

/// The connector with these settings (TOML lines), reaching the server directly.
pub fn direct(server: &str, extra: &str) -> EntraTarget {
    let c = Config::default();
    let config: EntraConfig = toml::from_str(&format!(
        "tenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"UNUSED\"\nupn_suffix = \"{SUFFIX}\"\n\
         graph_url = \"{server}/v1.0\"\ntoken_url = \"{server}/{}/oauth2/v2.0/token\"\n{extra}",
        c.tenant_id, c.client_id, c.tenant_id
    ))
    .expect("config");
    let credentials = connector_http::Credentials::Secret {
        client_id: c.client_id.clone(),
        client_secret: Secret::new(c.client_secret.clone().unwrap_or_default()),
        client_auth: connector_http::ClientAuth::Form,
    };
    EntraTarget::new(config, credentials).expect("entra target")
}

/// A test directory with a config of one CSV source and these targets, and the secret file.
pub fn env_with(targets: &str) -> Env {
    let env = Env::new();
    let secret = Config::default().client_secret.unwrap_or_default();
    std::fs::write(env.path("entra.secret"), format!("{secret}\n")).expect("write secret");
    owner_only(&env.path("entra.secret"));
    let config =
        format!("[state]\npath = \"state.db\"\n\n[sources.sis]\ntype = \"csv\"\npath = \"persons.csv\"\n\n{targets}\n");
    std::fs::write(env.path("enid.toml"), config).expect("write config");
    env
}

fn date(day: u32) -> String {
    let d = chrono::NaiveDate::from_ymd_opt(2026, 9, 1).expect("date") + chrono::Days::new(u64::from(day));
    format!("{d}T08:00:00Z")
}

fn outcome(env: &Env, day: u32) -> Outcome {
    let run = env.enid(&["plan", "--json", "--now", &date(day)]);
    Outcome::from_plan_json(&run.stdout, run.status.success(), run.stderr)
}

struct EntraRig {
    env: Env,
    proxy: FaultProxy,
    target: EntraTarget,
    server: graph_server::Handle,
}

impl Rig for EntraRig {
    type T = EntraTarget;

    fn target(&self) -> &EntraTarget {
        &self.target
    }

    fn proxy(&self) -> &FaultProxy {
        &self.proxy
    }

    fn set_people(&mut self, people: &[Person]) {
        let rows: Vec<String> = people
            .iter()
            .map(|p| {
                let role = if p.role == Role::Staff { "staff" } else { "student" };
                format!("{},{},{},,{role},{},{},,", p.key, p.given, p.family, p.school, p.groups.join("|"))
            })
            .collect();
        csv_rows(&self.env, &rows);
    }

    fn plan(&mut self, day: u32) -> Outcome {
        outcome(&self.env, day)
    }

    fn apply(&mut self, day: u32) -> Outcome {
        let mut planned = outcome(&self.env, day);
        let run = self.env.enid(&["apply", "--yes", "--accept-date", "--now", &date(day)]);
        planned.ok = run.status.success();
        planned.message = run.stderr;
        planned
    }

    fn make_unowned(&mut self, username: &str, given: &str, family: &str) {
        // Made in the admin center: a cloud user without enid's extension attribute.
        self.server.add_user(serde_json::json!({
            "userPrincipalName": format!("{username}@{SUFFIX}"), "displayName": format!("{given} {family}"),
            "givenName": given, "surname": family, "accountEnabled": true, "mailNickname": username,
        }));
    }

    fn grace_days(&self) -> u32 {
        10
    }
}

pub fn rt3() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(3).enable_all().build().expect("runtime")
}

fn conformance(extra: &str) {
    let rt = rt3();
    let server = rt.block_on(start_server(|_| {}));
    let addr: std::net::SocketAddr = server.url().trim_start_matches("http://").parse().expect("addr");
    let proxy = rt.block_on(FaultProxy::start(addr, Protocol::Http)).expect("proxy");
    let through = format!("http://{}", proxy.addr());
    let settings = format!("max_in_flight = 2\n{extra}\n[targets.m365.groups]\n[targets.m365.policy.groups]\n");
    let env = env_with(&format!(
        "[naming]\non_name_change = \"rename\"\n\n[lifecycle]\ndelete_students_after_days = 10\n\n{}",
        entra_table("m365", server.url(), &through, &settings)
    ));
    let target = direct(server.url(), &format!("{extra}\n[groups]\n"));
    let mut rig = EntraRig { env, proxy, target, server: server.handle() };
    let reports = rt.block_on(testkit::run(&mut rig));
    assert_eq!(reports.len(), 13, "{reports:#?}");
    testkit::assert_passed(&reports);
}

/// With the delta query, and changes in `$batch` requests of five (the suite's dropped
/// connection falls between two of them).
#[test]
fn the_entra_target_passes_the_conformance_suite() {
    conformance("batch_size = 5\n");
}

/// One request at a time, every read in full: the same story.
#[test]
fn the_entra_target_passes_the_conformance_suite_without_batch_or_delta() {
    conformance("batch_size = 1\ndelta = false\n");
}
