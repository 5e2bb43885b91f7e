//! Files other users can reach, warned about on every run by the real binary: a secret file
//! readable by others (`chmod 600`), a state directory writable by others (`chmod o-w`).

use crate::harness::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_secret_file_others_can_read_and_a_state_directory_they_can_write_are_warned_about() {
    let env = Env::new();
    env.csv(&[&row("1", "Ada", "Lund", "", "student", "S1", "")]);
    let secret = env.path("ldap.secret");
    set_mode(&secret, 0o644);
    let err = env.enid(&["plan"]).ok().stderr;
    let fix = format!("chmod 600 {}", secret.display());
    assert!(err.contains("bind password of [targets.directory]") && err.contains(&fix), "{err}");
    assert!(err.contains("readable by every user of this machine (mode 0644)"), "{err}");
    // On every run, not only the first.
    assert!(env.enid(&["plan"]).ok().stderr.contains(&fix));
    set_mode(&secret, 0o600);
    let err = env.enid(&["plan"]).ok().stderr;
    assert!(!err.contains("chmod"), "owner-only: no warning\n{err}");
    // Group-readable is the operator's choice (a service group); only other users count.
    set_mode(&secret, 0o640);
    assert!(!env.enid(&["plan"]).ok().stderr.contains("chmod"));

    let dir = env.dir.path();
    set_mode(dir, 0o777);
    let err = env.enid(&["plan"]).ok().stderr;
    let fix = format!("chmod o-w {}", dir.display());
    assert!(err.contains("the state directory") && err.contains(&fix) && err.contains("mode 0777"), "{err}");
    set_mode(dir, 0o700);
    let err = env.enid(&["plan"]).ok().stderr;
    assert!(!err.contains("chmod"), "{err}");
}

/// Each connector reads its own secrets and warns about its own settings: SCIM (a token or an
/// OAuth2 client secret) and AD say so exactly as LDAP does, before anything is contacted.
#[test]
fn every_connector_warns_about_its_own_secret_files_and_unverified_tls() {
    let extra = "\n[targets.lms]\ntype = \"scim\"\nurl = \"https://127.0.0.1:9/scim/v2\"\ntoken_file = \"lms.token\"\n\
                 tls_insecure_skip_verify = true\n\n[targets.dc]\ntype = \"ad\"\nurl = \"ldaps://127.0.0.1:9\"\n\
                 bind_dn = \"enid@x.example.org\"\nbind_password_file = \"dc.secret\"\n\
                 base_dn = \"OU=Elever,DC=x,DC=example,DC=org\"\nupn_suffix = \"x.example.org\"\n\
                 tls_insecure_skip_verify = true\n";
    let env = Env::with_config(extra);
    env.csv(&[&row("1", "Ada", "Lund", "", "student", "S1", "")]);
    for name in ["lms.token", "dc.secret", "lms.secret"] {
        std::fs::write(env.path(name), "s3cret\n").unwrap();
        set_mode(&env.path(name), 0o644);
    }
    let err = env.enid(&["check"]).stderr;
    for (what, file) in [("bearer token of [targets.lms]", "lms.token"), ("bind password of [targets.dc]", "dc.secret")]
    {
        let fix = format!("chmod 600 {}", env.path(file).display());
        assert!(err.contains(&format!("{what}: the file")) && err.contains(&fix), "{what}\n{err}");
    }
    assert!(
        err.contains("[targets.lms] tls_insecure_skip_verify = true: the server certificate is not verified"),
        "{err}"
    );
    assert!(err.contains("[targets.dc] tls_insecure_skip_verify = true: the domain controller's certificate"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");

    env.edit_config(
        "token_file = \"lms.token\"",
        "token_url = \"https://127.0.0.1:9/token\"\nclient_id = \"enid\"\nclient_secret_file = \"lms.secret\"",
    );
    let err = env.enid(&["check"]).stderr;
    let fix = format!("chmod 600 {}", env.path("lms.secret").display());
    assert!(err.contains("OAuth2 client secret of [targets.lms]: the file") && err.contains(&fix), "{err}");
}
