//! Civic numbers typed into free-text columns in the spellings people use (issue 14, promise 2):
//! the row is rejected with its line, nothing of it reaches the directory, and no output of
//! enid shows the number. Before the one detector, `Anna 19870704 9996` passed a check made per
//! whitespace-separated word and became a username for life.

use crate::harness::*;

const HEADER_E: &str = "person_id,given_name,family_name,civic_no,role,school_unit,groups,start_date,end_date,email";

/// (row, column at fault, the number's ten digits).
const BAD: &[(&str, &str, &str)] = &[
    ("3,Cy 19821105 9954,Ek,,student,S1,7A,,,", "given_name", "8211059954"),
    ("4,\"Dag\t821105\t-\t9954\",Ek,,student,S1,,,,", "given_name", "8211059954"),
    ("5,Ed,Ny 870704 - 9996,,student,S1,,,,", "family_name", "8707049996"),
    ("6,Fi,Ek,,student,Skola 1957\u{a0}05\u{a0}74\u{a0}9959,,,,", "school_unit", "5705749959"),
    ("7,Gun,Ek,,student,S1,7A|19901211\u{2013}9948,,,", "groups", "9012119948"),
    ("8,Hj,Ek,,student,S1,8B;20001209 / 9891,,,", "groups", "0012099891"),
    ("9,Ia,Ek,,student,S1,,,,ia.19730674.9982@skola.se", "email", "7306749982"),
    ("10,Jo 090527 + 1474,Ek,,student,S1,,,,", "given_name", "0905271474"),
];

/// Fails when any line of `text`, or any value in the directory, holds one of the numbers'
/// ten digits in a row once everything but digits is taken out: every spelling of it.
fn assert_no_number(what: &str, text: &str) {
    for line in text.lines() {
        let digits: String = line.chars().filter(char::is_ascii_digit).collect();
        for (_, _, number) in BAD {
            assert!(!digits.contains(number), "{what}: a civic number in {line:?}");
        }
    }
}

#[test]
fn a_civic_number_in_any_spelling_in_a_free_text_column_rejects_the_row_everywhere() {
    let env = Env::with_config("[targets.directory.groups]\nbase_dn = \"ou=groups,dc=example,dc=org\"");
    let config = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    let config = config.replace("path = \"persons.csv\"", "path = \"persons.csv\"\nmax_rejected_percent = 100");
    std::fs::write(env.path("enid.toml"), config).unwrap();
    let mut csv =
        format!("{HEADER_E}\n1,Anna,Berg,,student,S1,7A,,,anna.berg@skola.se\n2,Bo,Ek,,student,S1,7A|2024-08-19,,,\n");
    for (row, _, _) in BAD {
        csv.push_str(row);
        csv.push('\n');
    }
    std::fs::write(env.path("persons.csv"), csv).unwrap();

    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let r = env.enid(args).ok();
        assert_no_number(&args.join(" "), &format!("{}\n{}", r.stdout, r.stderr));
        outputs.push(r.stderr.clone());
        r
    };
    let plan = run(&["plan", "--json"]).json();
    assert_eq!(plan["summary"]["create"], 2, "only the clean rows: {}", plan["operations"]);
    let text = run(&["plan"]);
    let file = env.path("persons.csv").display().to_string();
    for (line, (_, column, _)) in BAD.iter().enumerate() {
        let want = format!("{file}:{}: {column} holds what looks like a civic number", line + 4);
        assert!(text.stderr.contains(&want), "{want}\n{}", text.stderr);
    }
    run(&["apply", "--yes"]);
    run(&["log", "--all"]);
    run(&["log", "--all", "--json"]);
    run(&["explain", "anna.berg"]);

    let people: Vec<String> = env.people().into_keys().collect();
    assert_eq!(people, ["anna.berg", "bo.ek"]);
    for e in env.search("dc=example,dc=org", "(objectClass=*)") {
        let values: Vec<String> = e.attrs.values().flatten().cloned().collect();
        assert_no_number(&format!("the directory entry {}", e.dn), &format!("{}\n{}", e.dn, values.join("\n")));
    }
}
