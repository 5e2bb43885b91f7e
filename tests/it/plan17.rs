//! Issue 17, plans a person can read: `enid plan` shows the shape of a plan first (per target,
//! per school unit, what holds it or waits), then at most 20 operations of each action with
//! "… and N more"; `--all`, `--only`, `--school`, `--target`, `--person` choose what is listed;
//! `--json` stays the whole plan.

use crate::harness::*;

const HEADER_P: &str =
    "person_id,given_name,family_name,civic_no,role,school_unit,groups,start_date,end_date,protection";

/// A family name for person `i` made of letters only (usernames keep letters).
fn family(i: usize) -> String {
    let a = (b'a' + (i / 26) as u8) as char;
    let b = (b'a' + (i % 26) as u8) as char;
    format!("Fam{a}{b}")
}

/// 45 pupils, 30 at S1 and 15 at S2, and a protected pupil at S1.
fn export() -> String {
    let mut csv = format!("{HEADER_P}\n");
    for i in 0..45 {
        let school = if i < 30 { "S1" } else { "S2" };
        csv.push_str(&format!("{i},Elev,{},{},student,{school},,,,\n", family(i), pnr(i)));
    }
    csv.push_str(&format!("99,Hemlig,Gomdsson,{},student,S1,,,,Skyddad folkbokföring\n", pnr(99)));
    csv
}

/// The usernames listed under an action's heading in a plan's text.
fn listed(text: &str, action: &str) -> Vec<String> {
    let heading = format!("{action} (");
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with(&heading) {
            inside = true;
        } else if inside && line.starts_with("  ") && !line.starts_with("  …") {
            out.push(line.split_whitespace().nth(1).unwrap_or_default().to_string());
        } else if inside {
            break;
        }
    }
    out
}

#[test]
fn plan17_a_first_plan_shows_its_shape_then_twenty_of_each_action() {
    let env = Env::new();
    std::fs::write(env.path("persons.csv"), export()).unwrap();
    let text = env.enid(&["plan"]).ok().stdout;
    // The shape: per target, then per school unit (the protected person has none shown).
    assert!(text.contains("target \"directory\": 46 create"), "{text}");
    assert!(text.contains("by school unit"), "{text}");
    let s1 = text.lines().find(|l| l.trim_start().starts_with("directory  S1")).unwrap_or_default();
    assert!(s1.contains("30 create"), "S1's line: {s1:?}\n{text}");
    let s2 = text.lines().find(|l| l.trim_start().starts_with("directory  S2")).unwrap_or_default();
    assert!(s2.contains("15 create"), "S2's line: {s2:?}\n{text}");
    // What waits comes before the listing.
    let waiting = text.find("wait for approval").expect("the protected person's create waits");
    let listing = text.find("\ncreate (46)").expect("the listing's heading");
    assert!(waiting < listing, "{text}");
    // Twenty creates, then how many more and how to see them.
    assert_eq!(listed(&text, "create").len(), 20, "{text}");
    assert!(text.contains("… and 26 more (all of them: `enid plan --all`"), "{text}");
    assert!(!text.contains("hemlig") && !text.contains("Gomdsson"), "{text}");

    let all = env.enid(&["plan", "--all"]).ok().stdout;
    assert_eq!(listed(&all, "create").len(), 46, "{all}");
    assert!(!all.contains("more (all of them"), "{all}");

    // --json is the whole plan whatever the text lists.
    let json = env.enid(&["plan", "--json", "--school", "S2"]).ok().json();
    assert_eq!(json["operations"].as_array().map(Vec::len), Some(46));
}

#[test]
fn plan17_selection_words_choose_what_is_listed_and_never_find_a_protected_person_by_name() {
    let env = Env::new();
    std::fs::write(env.path("persons.csv"), export()).unwrap();
    let s2 = env.enid(&["plan", "--school", "S2", "--only", "create"]).ok().stdout;
    let names = listed(&s2, "create");
    assert_eq!(names.len(), 15, "{s2}");
    assert!(names.iter().all(|n| n.starts_with("elev.fam")), "{names:?}");
    assert!(s2.contains("listing 15 of 46 operations (create; school unit S2)"), "{s2}");
    // The shape stays the whole plan's.
    assert!(s2.lines().any(|l| l.trim_start().starts_with("directory  S1")), "{s2}");

    let one = env.enid(&["plan", "--person", "ELEV.FAMAC"]).ok().stdout;
    assert_eq!(listed(&one, "create"), ["elev.famac"], "{one}");
    let none = env.enid(&["plan", "--target", "nosuch"]).ok().stdout;
    assert!(none.contains("listing 0 of 46 operations (target nosuch)"), "{none}");
    assert!(listed(&none, "create").is_empty(), "{none}");

    // The protected person: by enid id only, never by the username their name would give.
    let by_name = env.enid(&["plan", "--person", "hemlig.gomdsson"]).ok().stdout;
    assert!(by_name.contains("listing 0 of 46"), "{by_name}");
    let id = env.enid(&["plan", "--json"]).ok().json()["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["protected"] == true)
        .map(|o| o["identity"].as_str().unwrap().to_string())
        .expect("the protected person's create");
    // A civic number typed as the person (selected by username or enid id, never by it) is
    // refused as the page and the API refuse it, and never said back.
    for (flag, typed) in [("--person", "19121212-1212"), ("--school", "191212121212"), ("--target", "121212-1212")] {
        let bad = env.enid(&["plan", flag, typed]).fails();
        assert!(bad.stderr.contains("a civic number selects nothing"), "{flag}: {}", bad.stderr);
        assert!(!bad.stderr.contains("1212-1212") && !bad.stderr.contains("121212121212"), "{}", bad.stderr);
        assert!(!bad.stdout.contains("1212"), "{}", bad.stdout);
    }
    let by_id = env.enid(&["plan", "--person", &id]).ok().stdout;
    assert_eq!(listed(&by_id, "create"), std::slice::from_ref(&id), "{by_id}");
    let s1 = env.enid(&["plan", "--school", "S1", "--all"]).ok().stdout;
    assert!(!s1.contains(&id), "a protected person's school unit is not shown, nor selected by: {s1}");

    // An unknown word is refused before anything is read, naming it.
    let bad = env.enid(&["plan", "--only", "creat"]).fails();
    assert!(bad.stderr.contains("--only \"creat\""), "{}", bad.stderr);
    assert!(bad.stderr.contains("claim, rename, move"), "every word it knows: {}", bad.stderr);
    // A civic number pasted into the wrong argument is not echoed (plan and approve alike).
    for args in [&["plan", "--only", "19121212-1212"][..], &["approve", "1", "--only", "19121212-1212"]] {
        let bad = env.enid(args).fails();
        assert!(!bad.stderr.contains("1212-1212") && bad.stderr.contains("--only"), "{args:?}: {}", bad.stderr);
    }
}

/// `enid log` without a selection: the last run that did something, summed up in a line; a run
/// that did nothing since does not hide it; `--all` and `--person` reach back over earlier runs.
#[test]
fn plan17_the_log_shows_the_last_run_that_did_something_with_a_line_per_run() {
    let env = Env::new();
    let nothing = env.enid(&["log"]).ok().stdout;
    assert!(nothing.contains("No operations logged yet"), "{nothing}");
    env.csv(&[&row("1", "Anna", "Berg", "", "student", "S1", ""), &row("2", "Bo", "Ek", "", "student", "S2", "")]);
    env.apply();
    env.csv(&[&row("1", "Anna", "Lind", "", "student", "S1", ""), &row("2", "Bo", "Ek", "", "student", "S2", "")]);
    env.apply();
    env.apply(); // nothing to do: a row in `enid runs`, none in the log
    let runs = env.enid(&["runs", "--json"]).ok().stdout;
    assert_eq!(runs.lines().count(), 3, "{runs}");

    let log = env.enid(&["log"]).ok().stdout;
    let heads: Vec<&str> = log.lines().filter(|l| l.starts_with("== run")).collect();
    assert_eq!(heads.len(), 1, "{log}");
    assert!(
        heads[0].contains("(apply, ") && heads[0].contains("planned 1 update; 1 done, 0 failed, 0 not sent"),
        "{log}"
    );
    assert_eq!(log.lines().filter(|l| l.contains(" update ")).count(), 1, "{log}");
    assert!(!log.contains(" create "), "the first run's rows are not the last run's: {log}");

    let all = env.enid(&["log", "--all"]).ok().stdout;
    assert_eq!(all.lines().filter(|l| l.starts_with("== run")).count(), 2, "{all}");
    assert!(all.contains("planned 2 create"), "{all}");
    let anna = env.enid(&["log", "--person", "anna.berg"]).ok().stdout;
    assert!(anna.contains(" create ") && anna.contains(" update "), "a person's log reaches back: {anna}");
    let json = env.enid(&["log", "--json"]).ok().stdout;
    assert_eq!(json.lines().count(), 1, "JSON lines, the same rows, no summary: {json}");
    serde_json::from_str::<serde_json::Value>(json.trim()).expect("a JSON line");
}
