//! Tests of the whole connector over the bundles in `tests/fixtures/`: 1.1 and 1.2, bulk and
//! delta, as directories and as zips made from them, and copies broken on purpose.

use super::*;
use chrono::NaiveDate;
use connector_api::{SourceBatch, SourceChanges, SourceRecord};
use expect_test::{Expect, expect};
use std::fmt::Write;
use std::path::Path;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 9, 5).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn config(path: PathBuf) -> OneRosterConfig {
    OneRosterConfig {
        path,
        school_unit_code: OrgCode::Identifier,
        group_name: GroupName::Title,
        civic_no: None,
        eppn_from_username: false,
        include_disabled_users: false,
        max_unzipped_mib: 1024,
    }
}

/// A copy of a fixture bundle in a temporary directory, to break on purpose.
fn copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn edit(dir: &Path, file: &str, f: impl FnOnce(String) -> String) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, f(text)).unwrap();
}

/// A zip of the files of `dir` (deflated), plus `extra` entries as (name, bytes).
fn zip_of(dir: &Path, extra: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        zip.start_file(path.file_name().unwrap().to_str().unwrap(), options).unwrap();
        zip.write_all(&std::fs::read(&path).unwrap()).unwrap();
    }
    for (name, bytes) in extra {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

fn read(config: &OneRosterConfig, cx: FetchContext<'_>) -> Result<Fetched, SourceError> {
    let bundle = bundle::read(&config.path, config.max_unzipped_mib * 1024 * 1024)?;
    parse(config, &bundle, cx)
}

fn full(config: &OneRosterConfig) -> SourceBatch {
    match read(config, FetchContext::full(today())).unwrap() {
        Fetched::Full(b) => b,
        Fetched::Changes(_) => panic!("a bulk bundle read as changes"),
    }
}

fn delta(config: &OneRosterConfig, since: &str, prior: &[SourceRecord]) -> SourceChanges {
    match read(config, FetchContext { today: today(), since: Some(since), prior }).unwrap() {
        Fetched::Changes(c) => c,
        Fetched::Full(_) => panic!("a delta bundle read in full"),
    }
}

fn error(config: &OneRosterConfig, cx: FetchContext<'_>) -> String {
    let shown = read(config, cx).unwrap_err().to_string();
    shown.replace(&config.path.display().to_string(), "<bundle>")
}

/// One line per record, affiliation and membership, in a form that reads like the export.
fn render_record(out: &mut String, r: &SourceRecord, bundle: &str) {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let date = |d: Option<NaiveDate>| d.map_or(String::new(), |d| d.to_string());
    let _ = writeln!(
        out,
        "{} {} {:?} {:?} email={} eppn={} ext={:?} civic={:?} at {}",
        r.person_id,
        r.first_role(),
        r.given_name,
        r.family_name,
        opt(&r.email),
        opt(&r.eppn),
        r.external_ids,
        r.civic_no,
        r.location.replace(bundle, "<b>")
    );
    for a in &r.affiliations {
        let _ = writeln!(
            out,
            "  tie {:?} {} {:?} duty={} year={} {}..{} [{}]",
            a.kind,
            opt(&a.school_unit),
            opt(&a.school_unit_name),
            opt(&a.duty_role),
            opt(&a.year),
            date(a.start_date),
            date(a.end_date),
            opt(&a.source_id)
        );
    }
    for g in &r.groups {
        let _ = writeln!(
            out,
            "  group {} {}/{} {}..{} [{}]",
            g.kind,
            opt(&g.school_unit),
            g.name,
            date(g.start_date),
            date(g.end_date),
            opt(&g.source_id)
        );
    }
}

fn render_full(b: &SourceBatch, bundle: &str) -> String {
    let mut out = String::new();
    for r in &b.records {
        render_record(&mut out, r, bundle);
    }
    let _ = writeln!(out, "skipped {:?}", b.skipped);
    for e in &b.rejected {
        let _ = writeln!(out, "rejected {} ({:?})", e.to_string().replace(bundle, "<b>"), e.person_id);
    }
    let _ = writeln!(out, "columns {:?}", b.columns);
    let _ = writeln!(out, "watermark {:?}", b.watermark);
    out
}

fn render_changes(c: &SourceChanges, bundle: &str) -> String {
    let mut out = String::new();
    for r in &c.changed {
        render_record(&mut out, r, bundle);
    }
    let _ = writeln!(out, "removed {:?}", c.removed);
    let _ = writeln!(out, "skipped {:?}", c.skipped);
    for e in &c.rejected {
        let _ = writeln!(out, "rejected {} ({:?})", e.to_string().replace(bundle, "<b>"), e.person_id);
    }
    let _ = writeln!(out, "watermark {:?}", c.watermark);
    out
}

fn check_full(config: &OneRosterConfig, want: Expect) {
    want.assert_eq(&render_full(&full(config), &config.path.display().to_string()));
}

#[test]
fn a_1_1_bulk_bundle_gives_pupils_and_staff_with_their_schools_and_classes_and_counts_the_skipped() {
    check_full(
        &config(fixture("v11-bulk")),
        expect![[r#"
            u-anna student "Anna" "Berg" email=anna.berg@skola.example eppn=- ext=["E1001"] civic=None at <b>/users.csv:2
              tie Enrolment 12345678 "Alfaskolan" duty=- year=07 .. [org:org-a]
              group class 12345678/7A 2026-08-15..2027-06-10 [c-7a]
              group teaching 12345678/Matematik 7A 2026-08-15.. [c-ma7]
            u-olle staff "Olle" "Lind" email=olle.lind@skola.example eppn=- ext=["P2002"] civic=None at <b>/users.csv:3
              tie Duty 12345678 "Alfaskolan" duty=teacher year=- .. [org:org-a]
              tie Duty 87654321 "Betaskolan" duty=teacher year=- .. [org:org-b]
              group class 12345678/7A .. [c-7a]
              group teaching 12345678/Matematik 7A .. [c-ma7]
              group teaching 87654321/NO 9B .. [c-no9b]
            u-bo student "Bo" "Ek" email=- eppn=- ext=["E1003"] civic=None at <b>/users.csv:5
              tie Enrolment org-c "Centralskolan" duty=- year=08 .. [org:org-c]
              group class org-c/8C .. [c-8c]
            skipped {"enabledUser false": 1, "guardian": 1, "no affiliation to a school": 1}
            columns {"email", "external_ids", "family_name", "given_name", "groups", "person_id", "role", "school_unit"}
            watermark Some("2026-08-02T07:00:00.000Z")
        "#]],
    );
}

#[test]
fn a_1_2_bulk_bundle_takes_ties_from_roles_with_their_dates_and_a_civic_number_from_user_ids() {
    let config = OneRosterConfig {
        civic_no: Some(CivicNoFrom::UserIds { id_type: "pnr".into() }),
        eppn_from_username: true,
        ..config(fixture("v12-bulk"))
    };
    check_full(
        &config,
        expect![[r#"
        u-sara staff "Sara" "Holm" email=sara.holm@skola.example eppn=sara.holm ext=["T3001", "MID-3001"] civic=Some(CivicNo(19821105-****)) at <b>/users.csv:2
          tie Duty 12345678 "Alfaskolan" duty=teacher year=- 2024-08-01.. [role:r1 org:org-a]
          tie Duty 87654321 "Betaskolan" duty=principal year=- 2026-01-01..2026-12-31 [role:r2 org:org-b]
          group class 87654321/9B .. [c-9b]
        u-ella student "Ella" "Ström" email=ella.strom@skola.example eppn=ella.strom ext=["E4001"] civic=None at <b>/users.csv:3
          tie Enrolment 87654321 "Betaskolan" duty=- year=09 2026-08-15..2027-06-10 [role:r3 org:org-b]
          group class 87654321/9B 2026-08-15.. [c-9b]
          group teaching 87654321/EN9B 2026-08-15.. [c-eng9]
        skipped {"guardian": 1}
        columns {"civic_no", "email", "end_date", "eppn", "external_ids", "family_name", "given_name", "groups", "person_id", "role", "school_unit", "start_date"}
        watermark Some("2026-08-03T09:00:00Z")
    "#]],
    );
}
