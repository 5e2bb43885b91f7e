//! Issue 19, throughput: a directory target deals its writes among `connections` connections (a
//! directory server reads one connection's requests in turn), while a paged search stays on the
//! connection it began on (its cookie belongs to that connection). Through a proxy that numbers
//! the connections, against a real slapd.

use crate::harness::*;
use connector_api::testkit::{FaultProxy, Protocol};
use std::collections::{BTreeMap, BTreeSet};

fn persons(n: usize) -> Vec<String> {
    (0..n).map(|i| row(&format!("p{i}"), "Ada", &format!("Lovelace{i}"), &pnr(i), "student", "S1", "")).collect()
}

/// Applies 24 persons with `lines` added to the target's settings and a page of 5 entries, and
/// returns the connections that carried writes, and how many search requests the plan sent on
/// each connection.
fn writes_and_reads(lines: &str) -> (BTreeSet<usize>, BTreeMap<usize, usize>) {
    let rt = threaded_rt();
    let env = Env::new();
    let direct = std::net::SocketAddr::from(([127, 0, 0, 1], env.slapd.port));
    let proxy = rt.block_on(FaultProxy::start(direct, Protocol::Ldap)).expect("proxy");
    env.write_config_with_url(&format!("ldap://{}", proxy.addr()));
    env.edit_config("base_dn = ", &format!("page_size = 5\n{lines}\nbase_dn = "));
    let rows = persons(24);
    env.csv(&rows.iter().map(String::as_str).collect::<Vec<_>>());
    env.apply().ok();
    assert_eq!(env.people().len(), 24, "every person has an account");
    let writes: BTreeSet<usize> = proxy.seen().iter().filter(|s| s.write).map(|s| s.connection).collect();
    proxy.reset_seen();
    // A plan of 24 accounts in pages of 5: every page's cookie must reach the connection that
    // began the search, or slapd refuses it and the plan fails.
    let plan = env.enid(&["plan"]).ok();
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
    let mut reads = BTreeMap::new();
    for s in proxy.seen().iter().filter(|s| s.what == "LDAP op 0x63") {
        *reads.entry(s.connection).or_insert(0) += 1;
    }
    (writes, reads)
}

#[test]
fn writes_are_dealt_among_the_configured_connections_and_a_paged_search_keeps_its_own() {
    let (writes, reads) = writes_and_reads("connections = 3");
    assert_eq!(writes.len(), 3, "the creates went out on three connections: {writes:?}");
    // The accounts' search took five pages, all on one connection (or the plan had failed).
    assert!(reads.values().any(|&n| n >= 5), "searches per connection: {reads:?}");

    let (writes, _) = writes_and_reads("connections = 1");
    assert_eq!(writes.len(), 1, "one connection when the settings say one: {writes:?}");
}

#[test]
fn a_connection_count_out_of_range_is_refused_by_name() {
    let env = Env::new();
    env.edit_config("base_dn = ", "connections = 0\nbase_dn = ");
    env.csv(&[&row("p1", "Ada", "Lovelace", &pnr(1), "student", "S1", "")]);
    let run = env.enid(&["plan"]).fails();
    assert!(run.stderr.contains("connections = 0 must be between 1 and 64"), "{}", run.stderr);
}
