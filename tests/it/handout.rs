//! The hand-out of first passwords through the real binary, against the shared Samba DC: a list
//! not delivered in full (a full disk, a reader that stops after three lines, `| head`, a killed
//! process) forgets nothing, hand-outs at once never show one password twice, and the password
//! key counts the passwords of creates still pending.

use crate::ad::{ad_table, bind_as, env_with, test_ou, users};
use crate::harness::*;
use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Child, Command, Stdio};

/// Starts enid on `env`'s config with stdout going to `stdout`.
fn spawn(env: &Env, args: &[&str], stdout: Stdio) -> Child {
    env.command(args).stdout(stdout).stderr(Stdio::piped()).spawn().expect("start enid")
}

/// Reads `n` lines one byte at a time: what the pipe holds beyond them stays unread.
fn read_lines(r: &mut impl Read, n: usize) -> String {
    let mut text = Vec::new();
    let mut byte = [0u8; 1];
    while text.iter().filter(|&&b| b == b'\n').count() < n {
        assert_eq!(r.read(&mut byte).expect("read"), 1, "the output ended early: {}", String::from_utf8_lossy(&text));
        text.push(byte[0]);
    }
    String::from_utf8(text).expect("utf-8")
}

/// The usernames a JSON hand-out showed, with their passwords.
fn shown(json: &serde_json::Value) -> Vec<(String, String)> {
    json.as_array()
        .expect("a JSON array")
        .iter()
        .map(|h| (h["username"].as_str().unwrap().to_string(), h["password"].as_str().unwrap().to_string()))
        .collect()
}

fn person(id: &str, given: &str, family: &str) -> String {
    row(id, given, family, "", "student", "Norr", "")
}

/// A family name no earlier run against the shared DC used (usernames are unique in the whole
/// domain, and the DC keeps what earlier runs made): "K" and six letters from the clock.
fn family() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let next = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut n = nanos / 1000 + u128::from(std::process::id()) + u128::from(next) * 7919;
    let mut name = String::from("K");
    for _ in 0..6 {
        name.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
    }
    name
}

#[test]
fn a_hand_out_not_delivered_in_full_forgets_nothing() {
    let ou = test_ou();
    let env = env_with(&ad_table("ldaps://127.0.0.1:636", &ou, "initial_password = \"generated\"\n"));
    let fam = family();
    let names = ["Ada", "Bo", "Cia", "Dan", "Eli"];
    let mut rows: Vec<String> = names.iter().enumerate().map(|(i, g)| person(&(i + 1).to_string(), g, &fam)).collect();
    csv_rows(&env, &rows);
    env.enid(&["apply", "--yes"]).ok();
    let all: BTreeSet<String> = names.iter().map(|g| format!("{g}.{fam}").to_lowercase()).collect();
    assert_eq!(users(&ou).keys().cloned().collect::<BTreeSet<_>>(), all);

    // A full disk: the write fails, exit 1, nothing forgotten.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("open /dev/full");
    let run = spawn(&env, &["passwords", "show", "--all"], Stdio::from(full)).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write the output") && err.contains("nothing was forgotten"), "{err}");

    // A reader that takes three lines and closes the pipe: the rest was never seen.
    let mut child = spawn(&env, &["passwords", "show", "--all"], Stdio::piped());
    let mut stdout = child.stdout.take().unwrap();
    let head = read_lines(&mut stdout, 3);
    assert!(head.starts_with("USERNAME"), "{head}");
    drop(stdout);
    let run = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("closed it before taking all of it") && err.contains("nothing was forgotten"), "{err}");

    // `| head -n 3` itself: head reads the whole (small) list at once, prints three lines and
    // exits; enid sees its reader go and keeps every password.
    let script = format!(
        "set -o pipefail; '{}' --config '{}' passwords show --all | head -n 3",
        env!("CARGO_BIN_EXE_enid"),
        env.path("enid.toml").display()
    );
    let run = Command::new("bash").arg("-c").arg(script).stdin(Stdio::null()).output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(!run.status.success() && err.contains("nothing was forgotten"), "{out}\n{err}");

    // A process killed while its reader still holds the list: the claim keeps the passwords
    // from every other hand-out until it lapses, then they are all shown again.
    let mut child = spawn(&env, &["passwords", "show", "--all"], Stdio::piped());
    let mut stdout = child.stdout.take().unwrap();
    read_lines(&mut stdout, 1);
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdout);
    let held = env.enid(&["passwords", "show", "--all", "--json"]).ok();
    assert_eq!(held.json(), serde_json::json!([]), "two hand-outs at once never show one password twice");
    assert!(
        held.stderr.contains("5 first password(s) of those asked for are held by another hand-out"),
        "{}",
        held.stderr
    );
    let later = (chrono::Utc::now() + chrono::Duration::minutes(6)).to_rfc3339();
    let again = shown(&env.enid(&["passwords", "show", "--all", "--json", "--now", &later]).ok().json());
    assert_eq!(again.iter().map(|(u, _)| u.clone()).collect::<BTreeSet<_>>(), all, "every password, once");
    assert_eq!(again.len(), all.len());
    for (username, password) in &again {
        // The very password the account was made with (AD: right, and due for a change).
        let bound = bind_as(&format!("{username}@skola.example.org"), password).unwrap_err();
        assert!(bound.contains("data 773"), "{username}: {bound}");
    }
    // Delivered in full (to a pipe read to its end), they are forgotten; the sync log has each
    // hand-out once, and the failed ones as runs that gave the passwords back.
    let none = env.enid(&["passwords", "show", "--all", "--now", &later]).ok().stdout;
    assert!(none.contains("No first passwords to hand out"), "{none}");
    let log = env.enid(&["log", "--all"]).ok().stdout;
    assert_eq!(log.matches("hand_out_password").count(), all.len(), "{log}");
    let gave_back = env.sql_value("SELECT count(*) || '' FROM runs WHERE message LIKE 'gave back 5 first passwords%'");
    assert_eq!(gave_back, "3", "the full disk, the closed pipe and head");

    // The password key counts the passwords of creates still pending. A run that died after
    // sending Fia's create leaves her row pending; with the key lost, the next apply that
    // creates someone must stop, not make a new key that cannot open Fia's password.
    rows.push(person("6", "Fia", &fam));
    csv_rows(&env, &rows);
    env.enid(&["apply", "--yes"]).ok();
    env.sql(
        "UPDATE accounts SET status = 'pending', key = NULL, anchor = NULL
          WHERE identity_id = (SELECT id FROM identities WHERE username LIKE 'fia.%')",
    );
    let key = env.path("password.key");
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    rows.push(person("7", "Gun", &fam));
    csv_rows(&env, &rows);
    let err = env.enid(&["apply", "--yes"]).fails().stderr;
    assert!(err.contains("password key file") && err.contains("1 first passwords kept"), "{err}");
    let gun = format!("gun.{fam}").to_lowercase();
    assert!(!users(&ou).contains_key(&gun), "nothing was sent");
    std::fs::write(&key, &saved).unwrap();
    env.enid(&["apply", "--yes"]).ok();
    let last = shown(&env.enid(&["passwords", "show", "--all", "--json"]).ok().json());
    let last: BTreeSet<String> = last.into_iter().map(|(u, _)| u).collect();
    assert_eq!(last, BTreeSet::from([format!("fia.{fam}").to_lowercase(), gun]));
}

#[test]
fn two_hand_outs_at_once_never_show_one_password_twice() {
    let ou = test_ou();
    let env = env_with(&ad_table("ldaps://127.0.0.1:636", &ou, "initial_password = \"generated\"\n"));
    let names = ["Hugo", "Ines", "Jon", "Kaj", "Lea", "Mio"];
    let fam = family();
    let rows: Vec<String> = names.iter().enumerate().map(|(i, g)| person(&(i + 1).to_string(), g, &fam)).collect();
    csv_rows(&env, &rows);
    env.enid(&["apply", "--yes"]).ok();
    let children: Vec<Child> =
        (0..3).map(|_| spawn(&env, &["passwords", "show", "--all", "--json"], Stdio::piped())).collect();
    let mut seen = Vec::new();
    for child in children {
        let run = child.wait_with_output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        seen.extend(shown(&json).into_iter().map(|(u, _)| u));
    }
    seen.sort();
    let all: Vec<String> = names.iter().map(|g| format!("{g}.{fam}").to_lowercase()).collect();
    assert_eq!(seen, all, "each password shown once, by one of the hand-outs");
}
