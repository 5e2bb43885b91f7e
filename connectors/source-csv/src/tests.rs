//! The CSV parser's tests: delimiters, BOMs, line numbers, bad rows and duplicate keys.

use super::*;

fn cx() -> FetchContext {
    FetchContext { today: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap() }
}

fn config() -> CsvConfig {
    CsvConfig { path: "persons.csv".into(), delimiter: None, columns: ColumnMap::default() }
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
    assert_eq!(r.groups, vec!["7A", "7B"]);
    assert_eq!(r.civic_no.as_ref().unwrap().expose(), "198211059954");
    assert_eq!(r.location, "persons.csv:2");
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
             belongs to is kept as at the last run). Fix the export so each person_id is on one row",
            "persons.csv:3: given_name is empty; it is required",
            "persons.csv:4: civic_no 19870704-**** fails its check digit",
            "persons.csv:5: start_date \"2020-13-01\" is not a date in the form YYYY-MM-DD",
            "persons.csv:6: person_id \"1\" is also on line 2; every row with it is left out (a person it \
             belongs to is kept as at the last run). Fix the export so each person_id is on one row",
            "persons.csv:7: role \"pirate\" is neither \"student\" nor \"staff\"",
            "persons.csv:8: has 2 fields, the header has 9",
        ]
    );
    assert_eq!(batch.records.len(), 0);
    let keys: Vec<Option<&str>> = batch.rejected.iter().map(|e| e.person_id.as_deref()).collect();
    assert_eq!(keys, [Some("1"), Some("2"), Some("3"), Some("4"), Some("1"), Some("5"), Some("6")]);
    assert!(!got.concat().contains("9996"), "a civic number leaked into a message");
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
    assert_eq!(batch.records[0].role, Role::Student);
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
