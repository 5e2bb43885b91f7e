//! The detector against every form of the personnummer/meta test vectors (the fixture in
//! `tests/fixtures/personnummer/`, MIT), generated and embedded in text by proptest, and against
//! ordinary values that must pass.

use super::*;
use crate::civic::mask_civic_in_text;
use proptest::prelude::*;

/// One test vector: the twelve digits and whether the number is valid.
#[derive(Debug, Clone)]
struct Vector {
    long: String,
    valid: bool,
}

fn vectors() -> Vec<Vector> {
    let json: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/fixtures/personnummer/list.json")).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 12, "the fixture's twelve vectors");
    list.iter()
        .map(|v| {
            let sep = v["separated_long"].as_str().unwrap();
            let long: String = sep.chars().filter(char::is_ascii_digit).collect();
            assert_eq!(long.len(), 12, "{sep}");
            Vector { long, valid: v["valid"].as_bool().unwrap() }
        })
        .collect()
}

/// The separators people type between the parts of a number, as they come out of spreadsheets,
/// word processors and web forms.
const SEPARATORS: &[&str] = &[
    " ",
    "  ",
    "\t",
    "\u{a0}",
    "\u{202f}",
    "\u{2009}",
    "-",
    " - ",
    "\t-\t",
    " \t-\t ",
    "\u{2010}",
    "\u{2011}",
    "\u{2012}",
    "\u{2013}",
    " \u{2013} ",
    "\u{2014}",
    "\u{2212}",
    "\u{ff0d}",
    ".",
    ". ",
    "/",
    " / ",
    "+",
    "_",
    "\u{200b}",
    "\u{ad}",
];

/// Every form of a vector, with `seps` between its parts (cycled), and what it masks to.
fn forms(v: &Vector, seps: &[&str]) -> Vec<(String, String)> {
    let l = &v.long;
    let s = &l[2..];
    let sep = |k: usize| seps[k % seps.len()];
    let long_masked = format!("{}-****", &l[..8]);
    let short_masked = format!("{}-****", &s[..6]);
    vec![
        (l.clone(), long_masked.clone()),
        (s.to_string(), short_masked.clone()),
        (format!("{}{}{}", &l[..8], sep(0), &l[8..]), long_masked.clone()),
        (format!("{}{}{}", &s[..6], sep(0), &s[6..]), short_masked.clone()),
        (format!("{}{}{}{}{}{}{}", &l[..4], sep(0), &l[4..6], sep(1), &l[6..8], sep(2), &l[8..]), long_masked.clone()),
        (format!("{}{}{}{}{}", &l[..4], sep(0), &l[4..8], sep(1), &l[8..]), long_masked),
        (format!("{}{}{}{}{}{}{}", &s[..2], sep(0), &s[2..4], sep(1), &s[4..6], sep(2), &s[6..]), short_masked),
    ]
}

/// Asserts that `text`, made of `before`, a number and `after`, is masked to exactly
/// `before`, `masked` and `after`, and that the detector finds the number where it stands.
fn assert_found(before: &str, number: &str, after: &str, masked: &str) {
    let text = format!("{before}{number}{after}");
    let found = find_civic_in_text(&text);
    assert_eq!(
        found,
        Some(CivicMatch { range: before.len()..before.len() + number.len(), masked: masked.to_string() }),
        "{text:?}"
    );
    assert!(contains_civic(&text), "{text:?}");
    assert_eq!(mask_civic_in_text(&text), format!("{before}{masked}{after}"), "{text:?}");
    assert_eq!(crate::civic::mask_if_civic(&text), format!("{before}{masked}{after}"), "{text:?}");
}

#[test]
fn every_vector_in_every_form_and_separator_is_found() {
    for v in vectors() {
        for sep in SEPARATORS {
            for (number, masked) in forms(&v, &[sep]) {
                assert_found("", &number, "", &masked);
                assert_found("Anna ", &number, " Berg", &masked);
                assert_found("anna.", &number, "@skola.se", &masked);
            }
        }
    }
}

#[test]
fn the_spellings_of_the_issue_are_found() {
    // The issue's own examples, a message quoting one, and a separator of each kind at once.
    assert_found("", "19870704 9996", "", "19870704-****");
    assert_found("", "870704 - 9996", "", "870704-****");
    assert_found("", "870704\t-\t9996", "", "870704-****");
    assert_found("userName \"", "19870704 9996", "\" is taken", "19870704-****");
    assert_found("Klass 7A ", "1987\u{a0}07\u{2013}04 / 9996", ", rum 12", "19870704-****");
    assert_found("", "１９８７０７０４-９９９６", "", "19870704-****");
    // Temporary numbers, with the letters school systems use.
    assert_found("", "20130101TF01", "", "20130101-****");
    assert_found("x ", "20000101-P220", " y", "20000101-****");
    assert_found("", "130101-tf01", "@skola.se", "130101-****");
    // A valid number followed by a space and other digits is found by its check digit.
    assert_found("", "19821105 9954", " 7A", "19821105-****");
}

#[test]
fn every_number_in_a_text_is_masked() {
    let text = "a 19821105-9954, b 870704 9996; c 570574\u{2013}9959 (ok)";
    let found = civic_numbers_in_text(text);
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(mask_civic_in_text(text), "a 19821105-****, b 870704-****; c 570574-**** (ok)");
}

#[test]
fn ordinary_values_are_not_civic_numbers() {
    for text in [
        "Klass 7A",
        "7A|7B|Idrott 9C",
        "2024-08-19",
        "2024-08-19 – 2025-06-15",
        "Kurs 2010-08-19–2011-06-15",
        "20240819-HT24",
        "Storgatan 12, 123 45 Stockholm",
        "Rum 1234",
        "08-123 456 78",
        "070-123 45 67",
        "031-712 34 56",
        "+46 70 123 45 67",
        "212000-0142",
        "556677-8899",
        "192.168.1.100",
        "anna.berg2@skola.se",
        "v1.2.3",
        "14:30",
        "P0000005",
        "elev-19821105",
        "1234567890",
        "550e8400-e29b-41d4-a716-446655440000",
        "",
    ] {
        assert_eq!(find_civic_in_text(text), None, "{text:?}");
        // For display, a word shaped like a temporary number is masked whatever its letters
        // (`mask_if_civic`): only the detector, which rejects rows, knows the school systems'.
        if text != "20240819-HT24" {
            assert_eq!(mask_civic_in_text(text), text);
        }
    }
}

#[test]
fn what_is_not_read_as_one_number() {
    // More digits after a hyphen: a longer number. More than five separators: two numbers.
    assert_eq!(find_civic_in_text("19870704 - 9996-01"), None);
    assert_eq!(find_civic_in_text("19870704  \t  -  9996"), None);
    // Digits split by list separators are two values; for display, mask_if_civic still masks
    // such a word whole.
    for text in ["19821105,9954", "19821105;9954", "19821105|9954", "19821105:9954", "19821105@9954"] {
        assert_eq!(find_civic_in_text(text), None, "{text:?}");
    }
    assert_eq!(mask_civic_in_text("x 19821105|9954 y"), "x 19821105-**** y");
    assert_eq!(MAX_SEPARATOR_CHARS, 5);
}

#[test]
fn phone_numbers_are_civic_numbers_only_as_documented() {
    // The judgement in the module's documentation: ten digits in one run with a possible date,
    // or grouped otherwise with a check digit that holds.
    assert!(contains_civic("0701122334"));
    assert!(!contains_civic("070-112 23 34"), "fails the check digit");
    assert!(contains_civic("070-112 23 35"), "passes it");
    assert!(!contains_civic("0731122334"), "month 31");
}

fn separator() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(SEPARATORS)
}

/// Text around a number: words and punctuation that do not join it (no digit, and not ending
/// in a separator).
fn surrounding() -> impl Strategy<Value = String> {
    "([A-Za-zÅÄÖåäö@]{1,8}[ (:\"=]?){0,3}"
}

fn trailing() -> impl Strategy<Value = String> {
    "([ )\",;@][A-Za-zåäö.]{0,8}){0,3}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_vector_in_mixed_spellings_within_text_is_found(
        index in 0usize..12,
        form in 0usize..7,
        seps in proptest::collection::vec(separator(), 3),
        before in surrounding(),
        after in trailing(),
    ) {
        let v = &vectors()[index];
        let (number, masked) = forms(v, &seps).swap_remove(form);
        let text = format!("{before}{number}{after}");
        let found = find_civic_in_text(&text);
        prop_assert_eq!(
            found.map(|m| (m.range, m.masked)),
            Some((before.len()..before.len() + number.len(), masked.clone())),
            "{:?} (valid: {})", text, v.valid
        );
        let shown = mask_civic_in_text(&text);
        prop_assert_eq!(&shown, &format!("{before}{masked}{after}"));
        prop_assert!(!shown.contains(&v.long[8..]), "{:?}", shown);
    }

    #[test]
    fn ordinary_values_pass(
        tokens in proptest::collection::vec(prop_oneof![
            "[A-ZÅÄÖ][a-zåäö]{1,10}(-[A-ZÅÄÖ][a-zåäö]{1,8})?",
            "Klass [1-9][A-F]",
            "[1-9][A-F]-(HT|VT)[0-9]{2}",
            (1950u32..2036, 1u32..13, 1u32..29).prop_map(|(y, m, d)| format!("{y}-{m:02}-{d:02}")),
            (1950u32..2036, 1u32..13, 1u32..29).prop_map(|(y, m, d)| format!("{y}{m:02}{d:02}")),
            "[1-9][0-9]{2} [0-9]{2}",
            "[0-9]{1,6}",
            "rum [0-9]{1,4}",
            "[0-2][0-9]:[0-5][0-9]",
            "[a-z]{2,8}\\.[a-z]{2,8}[0-9]{0,2}@skola\\.se",
        ], 1..6),
        joiner in prop_oneof![Just(", "), Just(" och "), Just("; "), Just(" | ")],
    ) {
        let text = tokens.join(joiner);
        prop_assert_eq!(find_civic_in_text(&text), None, "{:?}", text);
        prop_assert_eq!(mask_civic_in_text(&text), text);
    }
}
