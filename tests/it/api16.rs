//! Issue 16: the HTTP API and its tokens. Tokens through the CLI (printed once, only their hash
//! kept); the API served by `enid run` as a subprocess against a real slapd, called over TCP.

use crate::harness::*;

/// `enid token add` prints the token alone on stdout, once; the state keeps its SHA-256 and
/// never the token; `list` shows no token; revoked, the name stays taken.
#[test]
fn a_token_is_printed_once_and_only_its_hash_is_kept() {
    let env = Env::new();
    env.csv(&["1,Anna,Berg,,student,S1,7A,,"]);
    let add = env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok();
    let token = add.stdout.trim_end_matches('\n');
    assert_eq!(add.stdout.lines().count(), 1, "alone on stdout: {:?}", add.stdout);
    assert!(token.starts_with("enid_") && token.len() == 69, "{token:?}");
    assert!(!add.stderr.contains(token), "the token is not repeated on stderr");
    let hash = env.sql_value("SELECT hash FROM api_tokens WHERE name = 'lisa'");
    assert_eq!(hash.len(), 64);
    let dump = std::fs::read(env.path("state.db")).unwrap();
    assert!(!String::from_utf8_lossy(&dump).contains(&token[5..]), "the token itself is in the state");
    let list = env.enid(&["token", "list"]).ok().stdout;
    assert!(list.contains("lisa") && list.contains("school_admin") && list.contains("S1"), "{list}");
    assert!(!list.contains(&token[5..]) && !list.contains(&hash), "{list}");
    // A second token of the same name, a school admin without schools, an admin with one: refused.
    env.enid(&["token", "add", "lisa", "--role", "admin"]).fails();
    env.enid(&["token", "add", "bo", "--role", "school_admin"]).fails();
    env.enid(&["token", "add", "bo", "--role", "admin", "--school", "S1"]).fails();
    env.enid(&["token", "revoke", "lisa"]).ok();
    assert!(env.enid(&["token", "list"]).ok().stdout.contains("revoked"));
    env.enid(&["token", "revoke", "lisa"]).fails();
    env.enid(&["token", "add", "lisa", "--role", "admin"]).fails();
}
