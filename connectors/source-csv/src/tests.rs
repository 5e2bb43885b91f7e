//! The CSV parser's tests: delimiters, BOMs, line numbers, bad rows and duplicate keys.

use super::*;

fn cx() -> FetchContext<'static> {
    FetchContext::full(NaiveDate::from_ymd_opt(2026, 11, 22).unwrap())
}

fn config() -> CsvConfig {
    CsvConfig {
        path: "persons.csv".into(),
        delimiter: None,
        columns: ColumnMap::default(),
        affiliations: AffiliationRows::One,
    }
}

const HEADER: &str = "person_id,given_name,family_name,civic_no,role,school_unit,groups,start_date,end_date\n";

#[test]
fn reads_a_file_with_bom_and_semicolons() {
    let text =
        format!("\u{feff}{}1;Åsa;Öberg;19821105-9954;staff;SKOLA1;\"7A;7B\";2020-08-15;\n", HEADER.replace(',', ";"));
    let batch = parse(&config(), "persons.csv", text.as_bytes(), cx()).unwrap();
    assert_eq!(batch.rejected, vec![]);
    let r = &batch.records[0];
    assert_eq!(r.given_name, "Åsa");
    let groups: Vec<(&str, Option<&str>, GroupType)> =
        r.groups.iter().map(|g| (g.name.as_str(), g.school_unit.as_deref(), g.kind)).collect();
    assert_eq!(groups, [("7A", Some("SKOLA1"), GroupType::Class), ("7B", Some("SKOLA1"), GroupType::Class)]);
    let a = &r.affiliations[..];
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].school_unit.as_deref(), a[0].role), (Some("SKOLA1"), Role::Staff));
    assert_eq!(r.start_date(), NaiveDate::from_ymd_opt(2020, 8, 15));
    assert_eq!(r.civic_no.as_ref().unwrap().expose(), "198211059954");
    assert_eq!(r.location, "persons.csv:2");
}

/// A file's equal ties and memberships are made once: the pupils of a school share one tie to it
/// and one membership of each class (what keeps a million records' ties small), and a pupil in
/// another school or class has their own.
#[test]
fn the_rows_of_one_school_and_class_share_their_tie_and_membership() {
    let text = format!(
        "{HEADER}1,A,B,,student,S1,7A,,\n2,C,D,,student,S1,7A;MA7,,\n3,E,F,,student,S2,7A,,\n4,G,H,,staff,S1,7A,,\n"
    );
    let batch = parse(&config(), "persons.csv", text.as_bytes(), cx()).unwrap();
    assert_eq!((batch.records.len(), batch.rejected.len()), (4, 0));
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| &batch.records[i]);
    assert!(std::sync::Arc::ptr_eq(&a.affiliations[0], &b.affiliations[0]), "one tie to S1 for its pupils");
    assert!(std::sync::Arc::ptr_eq(&a.groups[0], &b.groups[0]), "one membership of S1's 7A");
    assert!(!std::sync::Arc::ptr_eq(&a.affiliations[0], &c.affiliations[0]), "S2 is another school");
    assert!(!std::sync::Arc::ptr_eq(&a.groups[0], &c.groups[0]), "S2's 7A is another class");
    assert!(!std::sync::Arc::ptr_eq(&a.affiliations[0], &d.affiliations[0]), "staff at S1 is another tie");
    assert!(std::sync::Arc::ptr_eq(&a.groups[0], &d.groups[0]), "a membership does not name the role");
    assert_eq!(
        (c.affiliations[0].school_unit.as_deref(), c.groups[0].school_unit.as_deref()),
        (Some("S2"), Some("S2"))
    );
}

#[test]
fn bad_rows_are_reported_with_their_line() {
    let text = format!(
        "{HEADER}1,Anna,Berg,,student,S1,,,\n2,,Berg,,student,S1,,,\n3,Bo,Ek,19870704-9996,student,S1,,,\n\
         4,Cy,Ek,,student,S1,,2020-13-01,\n1,Dan,Ek,,student,S1,,,\n5,Ed,Ek,,pirate,S1,,,\n6,Fi\n"
    );
    let batch = parse(&config(), "persons.csv", text.as_bytes(), cx()).unwrap();
    let got: Vec<String> = batch.rejected.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        got,
        vec![
            "persons.csv:2: person_id \"1\" is also on line 6; every row with it is left out (a person it \
             belongs to is kept as at the last run). Fix the export so each person_id is on one row, or set affiliations = \"rows\" when a person's rows are their school units",
            "persons.csv:3: given_name is empty; it is required",
            "persons.csv:4: civic_no 19870704-**** fails its check digit",
            "persons.csv:5: start_date \"2020-13-01\" is not a date in the form YYYY-MM-DD",
            "persons.csv:6: person_id \"1\" is also on line 2; every row with it is left out (a person it \
             belongs to is kept as at the last run). Fix the export so each person_id is on one row, or set affiliations = \"rows\" when a person's rows are their school units",
            "persons.csv:7: role \"pirate\" is neither \"student\" nor \"staff\"",
            "persons.csv:8: has 2 fields, the header has 9",
        ]
    );
    assert_eq!(batch.records.len(), 0);
    let keys: Vec<Option<&str>> = batch.rejected.iter().map(|e| e.person_id.as_deref()).collect();
    assert_eq!(keys, [Some("1"), Some("2"), Some("3"), Some("4"), Some("1"), Some("5"), Some("6")]);
    assert!(!got.concat().contains("9996"), "a civic number leaked into a message");
    // Each row names the school whose admins see it; a row cut short names none.
    let schools: Vec<Option<&str>> = batch.rejected.iter().map(|e| e.school_unit.as_deref()).collect();
    assert_eq!(schools, [Some("S1"), Some("S1"), Some("S1"), Some("S1"), Some("S1"), Some("S1"), None]);
}

#[test]
fn a_rejected_row_of_a_protected_person_names_no_school() {
    let text = format!(
        "{},protection\n1,,Berg,,student,S1,,,,Skyddad folkbokföring\n2,,Ek,,student,S2,,,,\n",
        HEADER.trim_end()
    );
    let batch = parse(&config(), "persons.csv", text.as_bytes(), cx()).unwrap();
    let schools: Vec<Option<&str>> = batch.rejected.iter().map(|e| e.school_unit.as_deref()).collect();
    assert_eq!(schools, [None, Some("S2")]);
}

#[test]
fn a_missing_column_fails_the_fetch() {
    let text = "person_id,given_name,family_name,role,school_unit\n1,A,B,student,S\n";
    let err = parse(&config(), "persons.csv", text.as_bytes(), cx()).unwrap_err();
    assert!(err.to_string().starts_with("persons.csv:1: the header lacks required column(s) civic_no"), "{err}");
}

#[test]
fn the_column_map_renames() {
    let mut c = config();
    c.columns.person_id = Some("elev_id".into());
    let text = HEADER.replace("person_id", "elev_id") + "9,A,B,,elev,S,,,\n";
    let batch = parse(&c, "p.csv", text.as_bytes(), cx()).unwrap();
    assert_eq!(batch.records[0].person_id, "9");
    assert_eq!(batch.records[0].first_role(), Role::Student);
}

fn lines(text: &str) -> Vec<String> {
    let batch = parse(&config(), "p.csv", text.as_bytes(), cx()).unwrap();
    let mut out: Vec<String> = batch.records.iter().map(|r| format!("{} ok", r.location)).collect();
    out.extend(batch.rejected.iter().map(|e| format!("{} rejected", e.location)));
    out.sort();
    out
}

#[test]
fn locations_are_the_lines_an_editor_shows() {
    let lf = format!("{HEADER}1,A,B,,student,S,,,\n2,,B,,student,S,,,\n\n3,C,D,,student,S,,,\n");
    let want = ["p.csv:2 ok", "p.csv:3 rejected", "p.csv:5 ok"];
    assert_eq!(lines(&lf), want, "LF");
    assert_eq!(lines(&lf.replace('\n', "\r\n")), want, "CRLF");
    // A quoted field over two lines: the record starts on line 2, the next one on line 4.
    let quoted = format!("{HEADER}1,\"A\nA\",B,,student,S,,,\n2,,B,,student,S,,,\n3,C,D,,student,S,,,\n");
    assert_eq!(lines(&quoted), ["p.csv:2 rejected", "p.csv:4 rejected", "p.csv:5 ok"]);
    assert_eq!(lines(&quoted.replace('\n', "\r\n")), ["p.csv:2 rejected", "p.csv:4 rejected", "p.csv:5 ok"]);
}

#[test]
fn control_characters_and_long_values_reject_the_row_naming_the_column() {
    let long = "x".repeat(MAX_FIELD_CHARS + 1);
    let text = format!(
        "{HEADER}1,\"An\nna\",B,,student,S,,,\n2,Bo\u{0},B,,student,S,,,\n3,Cy,B\u{7f},,student,S,,,\n\
         4,Dag,B,,student,S,\"7A\t|7B\",,\n5,{long},B,,student,S,,,\n6,Ed,B,,student,S,7A|7B,,\n"
    );
    let batch = parse(&config(), "p.csv", text.as_bytes(), cx()).unwrap();
    let got: Vec<String> = batch.rejected.iter().map(|e| e.to_string()).collect();
    let want = [
        "p.csv:2: given_name contains the control character U+000A; names, groups and keys must be plain text. \
         Fix the export",
        "p.csv:4: given_name contains the control character U+0000; names, groups and keys must be plain text. \
         Fix the export",
        "p.csv:5: family_name contains the control character U+007F; names, groups and keys must be plain text. \
         Fix the export",
        "p.csv:6: groups contains the control character U+0009; names, groups and keys must be plain text. \
         Fix the export",
        "p.csv:7: given_name is 257 characters long, more than the 256 allowed; fix the export",
    ];
    assert_eq!(got, want);
    assert_eq!(batch.records.len(), 1);
    // A field that spans lines may have swallowed other rows: the key says nothing certain.
    assert_eq!(batch.rejected[0].person_id, None);
}

#[test]
fn a_civic_number_as_person_id_is_masked_in_messages() {
    let text = format!("{HEADER}19821105-9954,A,B,,student,S,,,\n19821105-9954,C,D,,student,S,,,\n");
    let batch = parse(&config(), "p.csv", text.as_bytes(), cx()).unwrap();
    let got: String = batch.rejected.iter().map(|e| e.to_string()).collect();
    assert!(got.contains("\"19821105-****\""), "{got}");
    assert!(!got.contains("9954"), "{got}");
}

#[test]
fn values_echoed_in_messages_are_masked_when_they_look_like_civic_numbers() {
    // Columns swapped: the civic number lands in role and start_date.
    let text = format!("{HEADER}1,A,B,,19821105-9954,S,,,\n2,A,B,,student,S,,198211059954,\n");
    let batch = parse(&config(), "p.csv", text.as_bytes(), cx()).unwrap();
    let got: Vec<String> = batch.rejected.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        got,
        [
            "p.csv:2: role \"19821105-****\" is neither \"student\" nor \"staff\"",
            "p.csv:3: start_date \"19821105-****\" is not a date in the form YYYY-MM-DD"
        ]
    );
}

#[test]
fn the_batch_names_the_fields_the_header_had() {
    let text = format!("{HEADER}1,A,B,,student,S,,,\n").replace(",end_date", ",email");
    let batch = parse(&config(), "p.csv", text.as_bytes(), cx()).unwrap();
    let cols: Vec<&str> = batch.columns.iter().map(String::as_str).collect();
    assert_eq!(
        cols,
        ["civic_no", "email", "family_name", "given_name", "groups", "person_id", "role", "school_unit", "start_date"]
    );
}

#[test]
fn a_civic_number_in_any_spelling_in_a_free_text_column_rejects_the_row() {
    let header = "person_id,given_name,family_name,civic_no,role,school_unit,groups,email,eppn\n";
    let rows = [
        "1,Anna 19870704 9996,Berg,,student,S1,7A,,",
        "2,Bo,Ek,,student,S1,,,",
        "3,\"Cy\t870704\t-\t9996\",Ek,,student,S1,,,",
        "4,Dag,Ny 821105 - 9954,,student,S1,,,",
        "5,Ed,Ek,,student,Skola 1987\u{a0}07\u{a0}04\u{a0}9996,,,",
        "6,Fi,Ek,,student,S1,7A|19570574\u{2013}9959,,",
        "7,Gun,Ek,,student,S1,,gun.19730674.9982@skola.se,",
        "8,Hj,Ek,,student,S1,,,hj.20130101TF01@skola.se",
        "9,Klass 7A,Ek,,student,S1,7A|2024-08-19,ia.ek2@skola.se,",
    ];
    let text = format!("{header}{}\n", rows.join("\n"));
    let batch = parse(&config(), "p.csv", text.as_bytes(), cx()).unwrap();
    let got: Vec<String> = batch.rejected.iter().map(|e| e.to_string()).collect();
    let want: Vec<String> = [
        (2, "given_name"),
        (4, "given_name"),
        (5, "family_name"),
        (6, "school_unit"),
        (7, "groups"),
        (8, "email"),
        (9, "eppn"),
    ]
    .iter()
    .map(|(line, field)| format!("p.csv:{line}: {}", connector_api::source::civic_in_free_text_message(field)))
    .collect();
    assert_eq!(got, want);
    let kept: Vec<&str> = batch.records.iter().map(|r| r.person_id.as_str()).collect();
    assert_eq!(kept, ["2", "9"], "ordinary values pass");
    let keys: Vec<Option<&str>> = batch.rejected.iter().map(|e| e.person_id.as_deref()).collect();
    assert_eq!(keys, [Some("1"), Some("3"), Some("4"), Some("5"), Some("6"), Some("7"), Some("8")]);
    let all = got.concat();
    for digits in ["9996", "9954", "9959", "9982", "TF01", "870704", "821105"] {
        assert!(!all.contains(digits), "{digits} in {all}");
    }
}

const ROWS_HEADER: &str =
    "person_id,given_name,family_name,civic_no,role,school_unit,groups,start_date,end_date,group_type\n";

fn rows_config() -> CsvConfig {
    CsvConfig { affiliations: AffiliationRows::Rows, ..config() }
}

#[test]
fn with_affiliations_as_rows_a_teachers_rows_at_three_schools_are_one_person() {
    let text = format!(
        "{ROWS_HEADER}t1,Åsa,Öberg,19821105-9954,staff,S1,MA7,,,teaching\n\
         p1,Bo,Ek,,student,S1,7A,,2026-12-31,\n\
         t1,Åsa,Öberg,19821105-9954,staff,S2,,2025-08-01,,\n\
         p1,Bo,Ek,,student,S2,8B,2027-01-01,,\n\
         t1,Åsa,Öberg,19821105-9954,staff,S3,,,,\n"
    );
    let batch = parse(&rows_config(), "p.csv", text.as_bytes(), cx()).unwrap();
    assert_eq!(batch.rejected, vec![]);
    let schools = |r: &SourceRecord| -> Vec<String> {
        r.affiliations.iter().map(|a| a.school_unit.as_deref().unwrap_or_default().to_string()).collect()
    };
    let t = batch.records.iter().find(|r| r.person_id == "t1").unwrap();
    assert_eq!(schools(t), ["S1", "S2", "S3"]);
    assert_eq!(t.location, "p.csv:2", "a person's location is their first row");
    assert_eq!((t.groups[0].name.as_str(), t.groups[0].kind), ("MA7", GroupType::Teaching));
    let p = batch.records.iter().find(|r| r.person_id == "p1").unwrap();
    assert_eq!(schools(p), ["S1", "S2"]);
    let groups: Vec<(&str, Option<&str>)> =
        p.groups.iter().map(|g| (g.name.as_str(), g.school_unit.as_deref())).collect();
    assert_eq!(groups, [("7A", Some("S1")), ("8B", Some("S2"))], "each group belongs to its row's school unit");
    assert_eq!(batch.records.len(), 2);
}

#[test]
fn with_affiliations_as_rows_the_same_school_twice_or_disagreeing_rows_reject_the_person_whole() {
    let text = format!(
        "{ROWS_HEADER}a,Anna,Berg,,student,S1,,,,\n\
         a,Anna,Berg,,student,S1,7A,,,\n\
         b,Bo,Ek,19821105-9954,staff,S1,,,,\n\
         b,Bo,Eek,19821105-9954,staff,S2,,,,\n\
         c,Cy,Ek,,staff,S1,,,,\n\
         c,Cy,Ek,,staff,S2,,2020-13-01,,\n\
         d,Di,Ek,,staff,S1,,,,\n"
    );
    let batch = parse(&rows_config(), "p.csv", text.as_bytes(), cx()).unwrap();
    let kept: Vec<&str> = batch.records.iter().map(|r| r.person_id.as_str()).collect();
    assert_eq!(kept, ["d"]);
    let rejected: Vec<(String, Option<&str>)> =
        batch.rejected.iter().map(|e| (e.location.clone(), e.person_id.as_deref())).collect();
    let want =
        [("p.csv:2", "a"), ("p.csv:3", "a"), ("p.csv:4", "b"), ("p.csv:5", "b"), ("p.csv:6", "c"), ("p.csv:7", "c")]
            .map(|(l, p)| (l.to_string(), Some(p)));
    assert_eq!(rejected, want);
    let text_of = |line: &str| batch.rejected.iter().find(|e| e.location == line).unwrap().message.clone();
    assert!(text_of("p.csv:3").contains("same school unit"), "{}", text_of("p.csv:3"));
    assert!(text_of("p.csv:5").contains("family_name differs"), "{}", text_of("p.csv:5"));
    assert!(!text_of("p.csv:5").contains("Eek"), "values are never shown");
    assert!(text_of("p.csv:6").contains("line 7") && text_of("p.csv:6").contains("rejected"), "{}", text_of("p.csv:6"));
    assert!(batch.rejected.iter().all(|e| !e.message.contains("9954")));
    // A civic number rides along on the rejected rows, so the person stored with it is kept.
    assert!(batch.rejected.iter().filter(|e| e.person_id.as_deref() == Some("b")).all(|e| e.civic_no.is_some()));
}

#[test]
fn without_affiliations_as_rows_a_repeated_person_id_is_still_a_rejected_duplicate_that_says_how_to_merge() {
    let text = format!("{ROWS_HEADER}t1,Åsa,Öberg,,staff,S1,,,,\nt1,Åsa,Öberg,,staff,S2,,,,\n");
    let batch = parse(&config(), "p.csv", text.as_bytes(), cx()).unwrap();
    assert!(batch.records.is_empty());
    assert_eq!(batch.rejected.len(), 2);
    assert!(batch.rejected[0].message.contains("affiliations = \"rows\""), "{}", batch.rejected[0].message);
}

#[test]
fn an_unknown_group_type_rejects_the_row_and_a_known_one_types_its_groups() {
    let text = format!("{ROWS_HEADER}a,Anna,Berg,,student,S1,M1,,,Mentor\nb,Bo,Ek,,student,S1,X,,,klassrum\n");
    let batch = parse(&config(), "p.csv", text.as_bytes(), cx()).unwrap();
    assert_eq!(batch.records[0].groups[0].kind, GroupType::Mentor);
    assert_eq!(batch.rejected.len(), 1);
    assert!(batch.rejected[0].message.starts_with("group_type \"klassrum\""), "{}", batch.rejected[0].message);
    assert!(batch.columns.contains("group_type"));
}

/// A civic number with a character outside ASCII where its separator goes rejects its row with
/// a message, where the parse once panicked and took the whole read down.
#[test]
fn a_civic_number_with_a_multi_byte_character_rejects_its_row() {
    let text = format!("{HEADER}1,Anna,Berg,1234567é1234,student,S1,,,\n2,Bo,Ek,,student,S1,,,\n");
    let batch = parse(&config(), "persons.csv", text.as_bytes(), cx()).unwrap();
    let got: Vec<String> = batch.rejected.iter().map(|e| e.to_string()).collect();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("persons.csv:2: civic_no") && got[0].contains("is not in a civic-number form"),
        "{got:?}"
    );
    assert_eq!(batch.records.len(), 1);
}
