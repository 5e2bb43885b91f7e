//! The same school year on two states: one SQLite (the default), one PostgreSQL
//! (`on_postgres`), each with its own slapd, the same id key and the same CSV exports day by day.
//! Every plan (`plan --json`, plan ids too: identity ids are derived from the id key, so they
//! are equal), every resulting directory (people and groups), the log, the runs and what
//! `explain` and `conflicts` show must be the same on both; no civic number appears in any
//! output of either. The data is hostile on purpose: quotes, backslashes, `%` and `_` in person
//! ids and names, Åsa Öberg, long names, a teacher at two schools, a protected person, leavers,
//! joiners, a civic-number change and a rename.

use crate::harness::*;
use crate::postgres19::{PASSWORD, on_postgres};
use serde_json::Value;
use std::collections::BTreeMap;

const HEADER_P: &str =
    "person_id,given_name,family_name,civic_no,role,school_unit,groups,start_date,end_date,protection";

const DAY1: &str = "2026-08-20T08:00:00Z";
const DAY2: &str = "2026-09-02T08:00:00Z";
const DAY3: &str = "2026-09-15T08:00:00Z";

/// Operational attributes a server sets on its own: they differ between two servers.
const OPERATIONAL: [&str; 10] = [
    "entryuuid",
    "entrycsn",
    "createtimestamp",
    "modifytimestamp",
    "creatorsname",
    "modifiersname",
    "entrydn",
    "subschemasubentry",
    "hassubordinates",
    "structuralobjectclass",
];

/// An environment as review15's rows tests have it: one row per school tie, `ou` from the
/// primary school unit, class groups under `ou=groups`, a protection column.
fn rows_env() -> Env {
    let env = Env::with_config(
        "[targets.directory.attributes]\nou = \"{{ school_unit }}\"\n\n[targets.directory.groups]\n\
         base_dn = \"ou=groups,dc=example,dc=org\"\n",
    );
    env.edit_config("path = \"persons.csv\"", "path = \"persons.csv\"\naffiliations = \"rows\"");
    env
}

/// One CSV row with the protection column: person_id, given and family name, civic number,
/// role, school unit and groups, then the protection.
fn prow(cells: [&str; 7], prot: &str) -> String {
    let [id, given, family, civic, role, school, groups] = cells;
    format!("{id},{given},{family},{civic},{role},{school},{groups},2026-01-01,,{prot}")
}

struct Pair {
    /// The export both read: one file at one path, so that what names a record's place (in
    /// reasons, conflicts, plan ids) is the same on both.
    shared: tempfile::TempDir,
    sqlite: Env,
    pg: Env,
    /// Every output of both, to look for civic numbers in.
    outputs: Vec<String>,
    /// How many plans were compared with their ids.
    ids_compared: usize,
}

impl Pair {
    fn new() -> Pair {
        let shared = tempfile::tempdir().expect("tempdir");
        let csv = shared.path().join("persons.csv");
        let (sqlite, pg) = (rows_env(), rows_env());
        for env in [&sqlite, &pg] {
            env.edit_config("path = \"persons.csv\"", &format!("path = \"{}\"", csv.display()));
        }
        on_postgres(&pg);
        Pair { shared, sqlite, pg, outputs: Vec::new(), ids_compared: 0 }
    }

    fn write(&self, rows: &[String]) {
        let text = format!("{HEADER_P}\n{}\n", rows.join("\n"));
        std::fs::write(self.shared.path().join("persons.csv"), text).expect("write csv");
    }

    /// Runs the same command on both; both must end the same way. Returns (sqlite, pg).
    fn both(&mut self, args: &[&str]) -> (Run, Run) {
        let a = self.sqlite.enid(args);
        let b = self.pg.enid(args);
        for r in [&a, &b] {
            self.outputs.push(format!("{args:?}\n{}\n{}", r.stdout, r.stderr));
        }
        assert_eq!(
            a.status.success(),
            b.status.success(),
            "{args:?} ends differently\nsqlite:\n{}\n{}\npostgres:\n{}\n{}",
            a.stdout,
            a.stderr,
            b.stdout,
            b.stderr
        );
        (a, b)
    }

    /// `plan --json` on both: equal, plan ids too (a multi-valued attribute's values, an
    /// update's `before`, are observed sorted, whatever order the server keeps them in).
    fn same_plan(&mut self, now: &str) -> Value {
        let (a, b) = self.both(&["plan", "--json", "--now", now]);
        let (a, b) = (a.ok().json(), b.ok().json());
        assert!(a["plan_id"].is_string(), "{a}");
        assert_eq!(a, b, "the plans differ");
        self.ids_compared += 1;
        a
    }

    /// An apply on both of the plan each saved (`plan --save`), protected persons' changes
    /// accepted.
    fn apply(&mut self, now: &str) -> Value {
        let plan = self.same_plan(now);
        let (a, b) = self.both(&["plan", "--save", "--json", "--now", now]);
        let (a, b) = (a.ok().json(), b.ok().json());
        for (env, saved) in [(&self.sqlite, &a), (&self.pg, &b)] {
            let id = saved["plan_id"].as_str().expect("plan id");
            let run = env.enid(&["apply", "--plan", id, "--accept-protected", "--accept-date", "--now", now]).ok();
            self.outputs.push(format!("{}\n{}", run.stdout, run.stderr));
        }
        plan
    }

    fn same_directory(&self) {
        assert_eq!(directory(&self.sqlite), directory(&self.pg), "the directories differ");
    }

    /// The log, the runs, explain and the conflicts: the same on both.
    fn same_records(&mut self, persons: &[&str]) {
        let (a, b) = self.both(&["log", "--all", "--json", "--limit", "0"]);
        let (a, b) = (log_rows(&a.ok().stdout), log_rows(&b.ok().stdout));
        assert!(!a.is_empty());
        assert_eq!(a, b, "the logs differ");
        let (a, b) = self.both(&["log"]);
        let lines = |t: &str| {
            let mut l: Vec<String> = t.lines().map(mask_plan_ids).collect();
            l.sort();
            l
        };
        assert_eq!(lines(&a.ok().stdout), lines(&b.ok().stdout), "the text log differs");
        for limit in ["50", "-1", "0"] {
            let (a, b) = self.both(&["runs", "--json", &format!("--limit={limit}")]);
            let (a, b) = (a.ok(), b.ok());
            assert_eq!(runs(&a.stdout), runs(&b.stdout), "enid runs --limit {limit}");
        }
        let (a, b) = self.both(&["conflicts"]);
        assert_eq!(a.stdout, b.stdout);
        for who in persons {
            let (a, b) = self.both(&["explain", who, "--now", DAY3]);
            assert_eq!(
                a.stdout.replace(&self.sqlite.path("").display().to_string(), "DIR"),
                b.stdout.replace(&self.pg.path("").display().to_string(), "DIR"),
                "explain {who}"
            );
            assert_eq!(a.status.success(), b.status.success(), "explain {who}");
        }
    }

    /// No civic number in any output, in any spelling; never the database password.
    fn clean(&self, civics: &[String]) {
        for text in &self.outputs {
            assert!(!text.contains(PASSWORD), "the database password: {text}");
            for c in civics {
                let digits: String = c.chars().filter(char::is_ascii_digit).collect();
                for spelling in [c.clone(), digits.clone(), format!("{}-{}", &digits[2..8], &digits[8..])] {
                    assert!(!text.contains(&spelling), "civic number {spelling} shown:\n{text}");
                }
            }
        }
    }
}

/// People and groups, without what a server sets on its own.
fn directory(env: &Env) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    env.search("dc=example,dc=org", "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))")
        .into_iter()
        .map(|e| {
            let attrs = e
                .attrs
                .into_iter()
                .filter(|(k, _)| !OPERATIONAL.contains(&k.to_ascii_lowercase().as_str()))
                .map(|(k, mut v)| {
                    v.sort();
                    (k.to_ascii_lowercase(), v)
                })
                .collect();
            (e.dn.to_ascii_lowercase(), attrs)
        })
        .collect()
}

/// The log's JSON lines without the row ids, sorted within each run: an apply sends operations
/// side by side and logs each as it ends, so the order within a run is the order they ended in,
/// on either state.
fn log_rows(text: &str) -> Vec<(i64, String)> {
    let mut rows: Vec<(i64, String)> = text
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            if let Some(o) = v.as_object_mut() {
                o.remove("id");
            }
            (v["run_id"].as_i64().unwrap_or(-1), v.to_string())
        })
        .collect();
    rows.sort();
    rows
}

/// The runs, without their plan ids (see `same_plan`: where a plan holds a multi-valued
/// `before`, its id differs from one directory to the other).
fn runs(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v.as_object_mut().map(|o| o.remove("plan_id"));
            v
        })
        .collect()
}

/// A value without its `anchor`s: the entryUUIDs two servers gave.
fn without_anchors(v: Value) -> Value {
    match v {
        Value::Object(o) => {
            Value::Object(o.into_iter().filter(|(k, _)| k != "anchor").map(|(k, v)| (k, without_anchors(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(without_anchors).collect()),
        other => other,
    }
}

/// A line with every word that looks like a plan id (16 hex digits) masked.
fn mask_plan_ids(line: &str) -> String {
    line.split(' ')
        .map(|w| {
            let core = w.trim_matches(|c: char| !c.is_ascii_alphanumeric());
            if core.len() == 16 && core.chars().all(|c| c.is_ascii_hexdigit()) {
                w.replace(core, "PLAN")
            } else {
                w.into()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn sqlite_and_postgres_states_plan_apply_and_show_the_same() {
    let mut pair = Pair::new();
    let civic: Vec<String> = (0..20).map(|i| pnr(600 + i)).collect();
    let long_family = format!("Lång{}", "a".repeat(200));
    let day1 = vec![
        prow(["p'1", "Sean", "O'Brien", &civic[0], "student", "S1", "7A"], ""),
        prow([r"p\2", "Ann%", "Li_nd", &civic[1], "student", "S1", "7A|Drama"], ""),
        prow(["p%3", "Åsa", "Öberg", &civic[2], "student", "S2", "8B"], ""),
        prow(["p_4", "Émile", "Ünal-Ågren", &civic[3], "student", "S2", "8B"], ""),
        prow(["p5", "Bo", &long_family, &civic[4], "student", "S1", "7A"], ""),
        prow(["t6", "Tea", "Cher", &civic[5], "staff", "S1", "7A"], ""),
        prow(["t6", "Tea", "Cher", &civic[5], "staff", "S2", "8B"], ""),
        prow(["h7", "Hemlig", "Gömd", &civic[6], "student", "S1", "7A"], "Skyddad folkbokföring"),
        prow(["p8", "Kim", "Lind", &civic[7], "student", "S2", "8B"], ""),
        prow(["p9", "Kim", "Lind", &civic[8], "student", "S1", "7A"], ""),
    ];
    pair.write(&day1);
    // The same id key: identity ids (derived from it) and so plan ids are equal.
    pair.sqlite.enid(&["keys", "create"]).ok();
    std::fs::copy(pair.sqlite.path("id.key"), pair.pg.path("id.key")).expect("copy the id key");
    owner_only(&pair.pg.path("id.key"));

    let first = pair.apply(DAY1);
    assert!(first["summary"]["create"].as_u64().unwrap_or(0) >= 8, "{first}");
    pair.same_directory();
    assert_eq!(pair.sqlite.people().len(), 9, "{:?}", pair.sqlite.people().keys());
    // Nothing left to do on either.
    let again = pair.same_plan(DAY1);
    assert_eq!(again["summary"]["create"], 0, "{again}");

    // Day 2: a leaver, a joiner, a civic-number change, a rename, the teacher leaves S2, a
    // protected person's school changes.
    let mut day2 = day1.clone();
    day2.retain(|r| !r.starts_with("p9,"));
    day2.retain(|r| !(r.starts_with("t6,") && r.contains(",S2,")));
    for r in day2.iter_mut() {
        if r.starts_with("p8,") {
            *r = prow(["p8", "Kim", "Lind", &civic[9], "student", "S2", "8B"], "");
        }
        if r.starts_with("p%3,") {
            *r = prow(["p%3", "Åsa", "Öberg-Strand", &civic[2], "student", "S2", "8B"], "");
        }
        if r.starts_with("h7,") {
            *r = prow(["h7", "Hemlig", "Gömd", &civic[6], "student", "S2", "8B"], "Skyddad folkbokföring");
        }
    }
    day2.push(prow(["n10", "Ny", "Elev", &civic[10], "student", "S1", "7A"], ""));
    day2.push(prow([r#"q"11"#, "Zoë", r"Back\slash", &civic[11], "student", "S2", "8B"], ""));
    pair.write(&day2);
    pair.apply(DAY2);
    pair.same_directory();
    pair.same_plan(DAY2);

    // Day 3: the leaver's grace passes, another leaves, the teacher comes back to S2.
    let mut day3 = day2.clone();
    day3.retain(|r| !r.starts_with("p_4,"));
    day3.push(prow(["t6", "Tea", "Cher", &civic[5], "staff", "S2", "8B"], ""));
    pair.write(&day3);
    pair.apply(DAY3);
    pair.same_directory();
    pair.same_plan(DAY3);

    let people = pair.sqlite.people();
    let uid_of = |family: &str| {
        people.iter().find(|(_, e)| e.one("sn").starts_with(family)).map(|(k, _)| k.clone()).expect(family)
    };
    let asa = uid_of("Öberg");
    let sean = uid_of("O'Brien");
    pair.same_records(&["p'1", r"p\2", "p%3", "p_4", "t6", "h7", "p9", r#"q"11"#, &asa, &sean, "%", "_", "nobody"]);
    // Found by exactly their ids on both; LIKE's characters and quotes are no patterns.
    // The protected person: by enid id only (found through the directory's employeeNumber).
    let hidden = people
        .values()
        .find(|e| e.one("uid").starts_with('u') && e.one("uid").len() == 9)
        .map(|e| e.one("employeeNumber"))
        .expect("the protected person's account");
    for who in ["p'1", r"p\2", "p%3", "p_4", r#"q"11"#, &asa, &sean, &hidden] {
        let (a, b) = pair.both(&["explain", who, "--json", "--now", DAY3]);
        assert!(a.status.success() && b.status.success(), "explain {who}: {}", a.stderr);
        assert_eq!(without_anchors(a.json()), without_anchors(b.json()), "explain --json {who}");
    }
    for nobody in ["%", "_", "p%", "p_", "P'1", "nobody", "h7"] {
        let (a, b) = pair.both(&["explain", nobody]);
        assert!(!a.status.success() && !b.status.success(), "explain {nobody}: {}", a.stdout);
        assert_eq!(a.stderr, b.stderr);
    }
    // The protected person's names appear in no output of either.
    for text in &pair.outputs {
        assert!(!text.contains("Hemlig") && !text.contains("Gömd"), "a protected name: {text}");
    }
    assert!(pair.ids_compared >= 2, "plan ids compared {} times", pair.ids_compared);
    pair.clean(&civic);
}
