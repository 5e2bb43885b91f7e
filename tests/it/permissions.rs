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
