//! TLS: ldaps:// and StartTLS against a slapd with a test CA; verification is on by default.

use crate::harness::*;

#[test]
fn ldaps_and_starttls_work_with_the_ca_and_fail_without_it() {
    let mut env = Env::with_tls();
    env.csv(&[&row("1", "Anna", "Berg", "", "student", "S1", "")]);
    let ca = env.slapd.dir.join("tls/ca.pem");
    let tls_port = env.slapd.tls_port.unwrap();
    let ldaps = format!("ldaps://127.0.0.1:{tls_port}");

    // Without the CA, the server's certificate is not trusted: check fails and says what to do.
    env.write_config_with_url(&ldaps);
    let run = env.enid(&["check"]).fails();
    assert!(run.stdout.contains("FAILED  target \"directory\""), "{}", run.stdout);
    assert!(run.stdout.contains("tls_ca_file"), "{}", run.stdout);

    // With the CA: ldaps:// works end to end.
    env.extra_config = format!("tls_ca_file = \"{}\"", ca.display());
    env.write_config_with_url(&ldaps);
    env.enid(&["check"]).ok();
    env.apply();
    assert_eq!(env.people().len(), 1);

    // StartTLS on the plain port.
    env.extra_config = format!("starttls = true\ntls_ca_file = \"{}\"", ca.display());
    env.write_config();
    env.enid(&["check"]).ok();
    assert_eq!(env.summary()["unchanged"], 1);

    // Turning verification off is possible, but only by saying so.
    env.extra_config = "tls_insecure_skip_verify = true".into();
    env.write_config_with_url(&ldaps);
    env.enid(&["check"]).ok();
}
