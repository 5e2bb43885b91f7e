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

fn delta(config: &OneRosterConfig, since: &str, prior: &Vec<SourceRecord>) -> SourceChanges {
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
    let opt = |v: Option<&str>| v.unwrap_or("-").to_string();
    let date = |d: Option<NaiveDate>| d.map_or(String::new(), |d| d.to_string());
    let _ = writeln!(
        out,
        "{} {} {:?} {:?} email={} eppn={} ext={:?} civic={:?} at {}",
        r.person_id,
        r.first_role(),
        r.given_name,
        r.family_name,
        opt(r.email()),
        opt(r.eppn()),
        r.external_ids(),
        r.civic_no,
        r.location.replace(bundle, "<b>").replace(&fixture("").display().to_string(), "<fixtures>/")
    );
    for a in &r.affiliations {
        let _ = writeln!(
            out,
            "  tie {:?} {} {:?} duty={} year={} {}..{} [{}]",
            a.kind,
            opt(a.school_unit.as_deref()),
            opt(a.school_unit_name()),
            opt(a.duty_role()),
            opt(a.year()),
            date(a.start_date),
            date(a.end_date),
            opt(a.source_id())
        );
    }
    for g in &r.groups {
        let _ = writeln!(
            out,
            "  group {} {}/{} {}..{} [{}]",
            g.kind,
            opt(g.school_unit.as_deref()),
            g.name,
            date(g.start_date),
            date(g.end_date),
            opt(g.source_id.as_deref())
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

#[test]
fn a_1_1_delta_removes_tobedeleted_users_ends_an_enrollment_and_rebuilds_changed_persons_whole() {
    let prior = full(&config(fixture("v11-bulk")));
    let since = prior.watermark.clone().unwrap();
    let config = config(fixture("v11-delta"));
    let changes = delta(&config, &since, &unboxed(&prior.records));
    // Anna: a new family name, and Matematik 7A ended (her class 7A from the bulk is kept).
    // Olle: no longer teaches NO 9B (his row is not in the delta). Cia: new, in a class known
    // only from the stored records. Bo: tobedeleted. The enrollment older than the watermark
    // (Anna in 8C) was read before and is skipped.
    expect![[r#"
        u-anna student "Anna" "Berg-Ek" email=anna.berg@skola.example eppn=- ext=["E1001"] civic=None at <b>/users.csv:3
          tie Enrolment 12345678 "Alfaskolan" duty=- year=07 .. [org:org-a]
          group class 12345678/7A 2026-08-15..2027-06-10 [c-7a]
          group teaching 12345678/Matematik 7A 2026-08-15..2026-08-31 [c-ma7]
        u-cia student "Cia" "Dahl" email=cia.dahl@skola.example eppn=- ext=["E1007"] civic=None at <b>/users.csv:4
          tie Enrolment 87654321 "Betaskolan" duty=- year=09 .. [org:org-b]
          group teaching 87654321/NO 9B 2026-09-01.. [c-no9b]
        u-olle staff "Olle" "Lind" email=olle.lind@skola.example eppn=- ext=["P2002"] civic=None at <fixtures>/v11-bulk/users.csv:3
          tie Duty 12345678 "Alfaskolan" duty=teacher year=- .. [org:org-a]
          tie Duty 87654321 "Betaskolan" duty=teacher year=- .. [org:org-b]
          group class 12345678/7A .. [c-7a]
          group teaching 12345678/Matematik 7A .. [c-ma7]
        removed ["u-bo"]
        skipped {"rows older than the last read, not applied (an older delta needs a bulk bundle)": 1, "status tobedeleted": 1}
        watermark Some("2026-09-01T08:30:00.000Z")
    "#]]
    .assert_eq(&render_changes(&changes, &config.path.display().to_string()));
}

#[test]
fn a_1_2_delta_removes_a_role_found_by_its_id_alone_adds_a_new_user_by_role_and_renames_a_school_everywhere() {
    let prior = full(&config(fixture("v12-bulk")));
    let since = prior.watermark.clone().unwrap();
    let config = config(fixture("v12-delta"));
    let changes = delta(&config, &since, &unboxed(&prior.records));
    expect![[r#"
        u-ella student "Ella" "Ström" email=ella.strom@skola.example eppn=- ext=["E4001"] civic=None at <fixtures>/v12-bulk/users.csv:3
          tie Enrolment 87654321 "Betaskolan Norra" duty=- year=09 2026-08-15..2026-09-30 [role:r3 org:org-b]
          group class 87654321/9B 2026-08-15.. [c-9b]
          group teaching 87654321/EN9B 2026-08-15.. [c-eng9]
        u-nils staff "Nils" "Berg" email=nils.berg@skola.example eppn=- ext=["T3009"] civic=None at <b>/users.csv:2
          tie Duty 12345678 "Alfaskolan" duty=aide year=- 2026-09-01.. [role:r5 org:org-a]
        u-sara staff "Sara" "Holm" email=sara.holm@skola.example eppn=- ext=["T3001", "MID-3001"] civic=None at <fixtures>/v12-bulk/users.csv:2
          tie Duty 12345678 "Alfaskolan" duty=teacher year=- 2024-08-01.. [role:r1 org:org-a]
          group class 87654321/9B .. [c-9b]
        removed []
        skipped {}
        watermark Some("2026-09-02T10:00:00Z")
    "#]]
    .assert_eq(&render_changes(&changes, &config.path.display().to_string()));
}

#[test]
fn a_delta_bundle_is_never_read_without_an_earlier_read() {
    let prior = full(&config(fixture("v11-bulk")));
    let config = config(fixture("v11-delta"));
    let no_since = error(&config, FetchContext::full(today()));
    assert!(
        no_since.starts_with("<bundle>/manifest.csv: is a delta bundle (only what changed), but enid has no watermark"),
        "{no_since}"
    );
    let no_prior =
        error(&config, FetchContext { today: today(), since: Some("2026-08-02T07:00:00Z"), prior: &Vec::new() });
    assert!(
        no_prior.contains("enid has stored no records from an earlier read; a bulk bundle must be read"),
        "{no_prior}"
    );
    let ok = read(
        &config,
        FetchContext { today: today(), since: Some("2026-08-02T07:00:00Z"), prior: &unboxed(&prior.records) },
    );
    assert!(matches!(ok, Ok(Fetched::Changes(_))));
}

#[test]
fn a_delta_read_again_after_a_newer_read_changes_nothing() {
    let prior = full(&config(fixture("v11-bulk")));
    let config = config(fixture("v11-delta"));
    let changes = delta(&config, "2026-10-01T00:00:00Z", &unboxed(&prior.records));
    assert!(changes.changed.is_empty() && changes.removed.is_empty(), "{changes:?}");
    // It says so: the plan shows the rows it did not apply.
    assert_eq!(changes.skipped.get(crate::build::SKIP_OLDER), Some(&7), "{:?}", changes.skipped);
    assert_eq!(changes.watermark.as_deref(), Some("2026-10-01T00:00:00Z"));
}

#[test]
fn a_bundle_in_a_zip_reads_as_the_directory_does() {
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("export.zip");
    std::fs::write(&zip_path, zip_of(&fixture("v11-bulk"), &[("academicSessions.csv", b"sourcedId\n")])).unwrap();
    let from_zip = full(&config(zip_path.clone()));
    let from_dir = full(&config(fixture("v11-bulk")));
    assert_eq!(
        render_full(&from_zip, &zip_path.display().to_string()),
        render_full(&from_dir, &fixture("v11-bulk").display().to_string())
    );
}

#[test]
fn a_zip_entry_whose_path_leaves_the_archive_refuses_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("export.zip");
    std::fs::write(&zip_path, zip_of(&fixture("v11-bulk"), &[("../../etc/users.csv", b"x\n")])).unwrap();
    let err = error(&config(zip_path), FetchContext::full(today()));
    assert!(err.starts_with("<bundle>: holds the entry \"../../etc/users.csv\", whose path leads outside"), "{err}");
}

#[test]
fn a_zip_that_inflates_past_the_cap_is_refused_as_a_possible_bomb() {
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("export.zip");
    // 3 MiB of one repeated line deflates to a few KiB.
    let big = "u-x,,,true,org-a,student,x,,X,Y,,,,,,,,\n".repeat(3 * 1024 * 1024 / 40);
    let bundle = copy("v11-bulk");
    std::fs::write(bundle.path().join("users.csv"), big).unwrap();
    std::fs::write(&zip_path, zip_of(bundle.path(), &[])).unwrap();
    assert!(std::fs::metadata(&zip_path).unwrap().len() < 512 * 1024);
    let config = OneRosterConfig { max_unzipped_mib: 2, ..config(zip_path) };
    let err = error(&config, FetchContext::full(today()));
    assert!(err.starts_with("<bundle>: inflates to more than 2 MiB (at users.csv), the cap max_unzipped_mib"), "{err}");
}

#[test]
fn a_missing_manifest_is_an_error_naming_the_bundle() {
    let bundle = copy("v11-bulk");
    std::fs::remove_file(bundle.path().join("manifest.csv")).unwrap();
    let err = error(&config(bundle.path().to_path_buf()), FetchContext::full(today()));
    assert!(err.starts_with("<bundle>: has no manifest.csv at its top"), "{err}");
}

#[test]
fn a_missing_required_column_is_an_error_naming_the_file_and_the_column() {
    let bundle = copy("v11-bulk");
    edit(bundle.path(), "classes.csv", |t| t.replacen("classType", "kind", 1));
    let err = error(&config(bundle.path().to_path_buf()), FetchContext::full(today()));
    assert!(err.starts_with("<bundle>/classes.csv:1: the header lacks the required column(s) classType;"), "{err}");
}

#[test]
fn a_needed_file_marked_absent_in_a_bulk_bundle_is_an_error() {
    let bundle = copy("v11-bulk");
    edit(bundle.path(), "manifest.csv", |t| t.replace("file.enrollments,bulk", "file.enrollments,absent"));
    let err = error(&config(bundle.path().to_path_buf()), FetchContext::full(today()));
    assert!(err.starts_with("<bundle>/manifest.csv: file.enrollments is absent in a bulk bundle"), "{err}");
}

#[test]
fn a_bad_date_rejects_the_user_with_the_file_and_line_and_keeps_the_others() {
    let bundle = copy("v11-bulk");
    edit(bundle.path(), "enrollments.csv", |t| {
        t.replace("e6,,,c-8c,org-c,u-bo,student,false,,", "e6,,,c-8c,org-c,u-bo,student,false,2026-13-01,")
    });
    let batch = full(&config(bundle.path().to_path_buf()));
    let rejected: Vec<(String, Option<String>)> = batch
        .rejected
        .iter()
        .map(|e| (e.to_string().replace(&bundle.path().display().to_string(), "<b>"), e.person_id.clone()))
        .collect();
    assert_eq!(
        rejected,
        [(
            "<b>/enrollments.csv:7: beginDate \"2026-13-01\" is not a date in the form YYYY-MM-DD".to_string(),
            Some("u-bo".to_string())
        )]
    );
    let kept: Vec<&str> = batch.records.iter().map(|r| r.person_id.as_str()).collect();
    assert_eq!(kept, ["u-anna", "u-olle"]);
}

#[test]
fn a_bad_civic_number_rejects_the_row_and_is_never_shown() {
    let bundle = copy("v12-bulk");
    edit(bundle.path(), "users.csv", |t| t.replace("19821105-9954", "19821105-9955"));
    let config = OneRosterConfig {
        civic_no: Some(CivicNoFrom::UserIds { id_type: "PNR".into() }),
        ..config(bundle.path().to_path_buf())
    };
    let batch = full(&config);
    let shown = format!("{:?} {}", batch.rejected, batch.rejected.iter().map(|e| e.to_string()).collect::<String>());
    assert_eq!(batch.rejected.len(), 1, "{shown}");
    assert_eq!(batch.rejected[0].person_id.as_deref(), Some("u-sara"));
    assert!(shown.contains("userIds 19821105-****"), "{shown}");
    assert!(!shown.contains("9955"), "{shown}");
}

#[test]
fn the_config_is_strict_and_its_keys_parse() {
    let text = r#"
        path = "/srv/oneroster/export.zip"
        school_unit_code = "sourced_id"
        group_name = "class_code"
        civic_no = { from = "user_ids", type = "PNR" }
        eppn_from_username = true
        include_disabled_users = true
        max_unzipped_mib = 256
    "#;
    let c: OneRosterConfig = toml::from_str(text).unwrap();
    assert_eq!(c.civic_no, Some(CivicNoFrom::UserIds { id_type: "PNR".into() }));
    assert_eq!((c.school_unit_code, c.group_name, c.max_unzipped_mib), (OrgCode::SourcedId, GroupName::ClassCode, 256));
    let c: OneRosterConfig = toml::from_str("path = \"x\"\ncivic_no = { from = \"identifier\" }").unwrap();
    assert_eq!(c, OneRosterConfig { civic_no: Some(CivicNoFrom::Identifier {}), ..config(PathBuf::from("x")) });
    for bad in [
        "path = \"x\"\ndelimiter = \";\"",
        "path = \"x\"\ncivic_no = { from = \"identifier\", type = \"PNR\" }",
        "path = \"x\"\ncivic_no = { from = \"user_ids\" }",
        "path = \"x\"\ngroup_name = \"name\"",
    ] {
        assert!(toml::from_str::<OneRosterConfig>(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn the_source_reads_through_the_trait_and_is_incremental() {
    let source = OneRosterSource::new(config(fixture("v11-bulk")));
    assert!(source.incremental());
    source.check().await.unwrap();
    let Fetched::Full(batch) = source.fetch(FetchContext::full(today())).await.unwrap() else { panic!("not full") };
    assert_eq!(batch.records.len(), 3);
}

#[test]
fn a_delta_tie_to_an_org_enid_never_stored_is_left_out_unless_it_leaves_no_school() {
    let prior = full(&config(fixture("v11-bulk")));
    let bundle = copy("v11-delta");
    // Olle teaches at both schools and is now tied to the district too (never stored: not a
    // school). Cia's only org is one enid has never seen and the delta does not list.
    edit(bundle.path(), "users.csv", |t| {
        t.replace("true,org-b,student,cia.dahl", "true,org-new,student,cia.dahl")
            + "u-olle,active,2026-09-01T08:00:00.000Z,true,\"org-k,org-a,org-b\",teacher,olle.lind,,Olle,Lind,,P2002,olle.lind@skola.example,,,,,\n"
    });
    let config = config(bundle.path().to_path_buf());
    let changes = delta(&config, prior.watermark.as_deref().unwrap(), &unboxed(&prior.records));
    let olle = changes.changed.iter().find(|r| r.person_id == "u-olle").unwrap();
    let schools: Vec<_> = olle.affiliations.iter().map(|a| a.school_unit.clone().unwrap()).collect();
    assert_eq!(schools, ["12345678", "87654321"]);
    let rejected: Vec<(String, Option<&str>)> = changes
        .rejected
        .iter()
        .map(|e| (e.to_string().replace(&bundle.path().display().to_string(), "<b>"), e.person_id.as_deref()))
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0].0.starts_with("<b>/users.csv:4: org \"org-new\" is neither in this delta's orgs.csv"),
        "{rejected:?}"
    );
    assert_eq!(rejected[0].1, Some("u-cia"));
    assert!(!changes.changed.iter().any(|r| r.person_id == "u-cia") && !changes.removed.contains(&"u-cia".to_string()));
}

#[test]
fn a_delta_bundle_with_users_in_bulk_is_an_error_but_bulk_orgs_and_classes_are_read_as_changes() {
    let prior = full(&config(fixture("v11-bulk")));
    let since = prior.watermark.clone().unwrap();
    let bundle = copy("v11-delta");
    edit(bundle.path(), "manifest.csv", |t| t.replace("file.users,delta", "file.users,bulk"));
    let cx = FetchContext { today: today(), since: Some(&since), prior: &unboxed(&prior.records) };
    let err = error(&config(bundle.path().to_path_buf()), cx);
    assert!(err.starts_with("<bundle>/manifest.csv: file.users is bulk in a delta bundle"), "{err}");

    let bundle = copy("v11-delta");
    edit(bundle.path(), "manifest.csv", |t| t.replace("file.orgs,absent", "file.orgs,bulk"));
    // Rows of a bulk file older than the last read are skipped like any other: the renamed
    // school's row says when it changed.
    let renamed = std::fs::read_to_string(fixture("v11-bulk/orgs.csv"))
        .unwrap()
        .replace("org-a,,2026-08-01T06:00:00.000Z,Alfaskolan", "org-a,,2026-09-01T06:00:00.000Z,Alfaskolan Nya");
    std::fs::write(bundle.path().join("orgs.csv"), renamed).unwrap();
    let changes = delta(&config(bundle.path().to_path_buf()), &since, &unboxed(&prior.records));
    let olle = changes.changed.iter().find(|r| r.person_id == "u-olle").unwrap();
    assert_eq!(olle.affiliations[0].school_unit_name(), Some("Alfaskolan Nya"));
}

#[test]
fn a_bulk_read_never_moves_the_watermark_back_so_an_old_delta_stays_read() {
    // The bulk's latest dateLastModified is 2026-08-02; a delta of September was read since.
    let config = config(fixture("v11-bulk"));
    let cx = FetchContext { today: today(), since: Some("2026-09-01T08:30:00.000Z"), prior: &Vec::new() };
    let Ok(Fetched::Full(batch)) = read(&config, cx) else { panic!("not a full read") };
    assert_eq!(batch.watermark.as_deref(), Some("2026-09-01T08:30:00.000Z"));
    let cx = FetchContext { today: today(), since: Some("2026-01-01T00:00:00Z"), prior: &Vec::new() };
    let Ok(Fetched::Full(batch)) = read(&config, cx) else { panic!("not a full read") };
    assert_eq!(batch.watermark.as_deref(), Some("2026-08-02T07:00:00.000Z"));
}

/// The rejected rows of a batch as (`file:line: message` with the bundle shortened, key).
fn rejections(rejected: &[connector_api::RowError], bundle: &Path) -> Vec<(String, Option<String>)> {
    let bundle = bundle.display().to_string();
    rejected.iter().map(|e| (e.to_string().replace(&bundle, "<b>"), e.person_id.clone())).collect()
}

#[test]
fn a_1_2_bulk_bundle_without_roles_needs_the_role_columns_of_users() {
    let bundle = copy("v12-bulk");
    edit(bundle.path(), "manifest.csv", |t| t.replace("file.roles,bulk", "file.roles,absent"));
    let err = error(&config(bundle.path().to_path_buf()), FetchContext::full(today()));
    assert!(
        err.starts_with("<bundle>/users.csv:1: the header lacks the required column(s) orgSourcedIds, role;"),
        "{err}"
    );
}

#[test]
fn disabled_users_are_provisioned_when_the_config_says_so() {
    let config = OneRosterConfig { include_disabled_users: true, ..config(fixture("v11-bulk")) };
    let batch = full(&config);
    assert!(batch.records.iter().any(|r| r.person_id == "u-dis"));
    assert_eq!(batch.skipped.get(build::SKIP_DISABLED), None);
}

#[test]
fn a_civic_number_from_identifier_is_validated_masked_and_not_kept_as_an_external_id() {
    let bundle = copy("v11-bulk");
    edit(bundle.path(), "users.csv", |t| t.replace(",E1001,", ",19821105-9954,"));
    let config = OneRosterConfig { civic_no: Some(CivicNoFrom::Identifier {}), ..config(bundle.path().to_path_buf()) };
    let batch = full(&config);
    let anna = batch.records.iter().find(|r| r.person_id == "u-anna").unwrap();
    assert_eq!(anna.civic_no.as_ref().map(|c| c.expose()), Some("198211059954"));
    assert!(anna.external_ids().is_empty(), "{:?}", anna.external_ids());
    // The others' identifiers are not civic numbers: with this setting, their rows are bad.
    let rejected = rejections(&batch.rejected, bundle.path());
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected[0].0.starts_with("<b>/users.csv:3: identifier -**** "), "{rejected:?}");
    assert!(!format!("{:?} {anna:?}", batch.rejected).contains("9954"));
}

#[test]
fn an_unknown_role_and_a_duplicated_user_reject_their_rows_and_nothing_else() {
    let bundle = copy("v11-bulk");
    edit(bundle.path(), "users.csv", |t| {
        t.replace("org-k,administrator", "org-k,janitor") + "u-bo,,,true,org-c,student,bo.ek,,Bo,Ek,,E1003,,,,,08,,\n"
    });
    let batch = full(&config(bundle.path().to_path_buf()));
    let rejected = rejections(&batch.rejected, bundle.path());
    let want = [
        "<b>/users.csv:5: sourcedId \"u-bo\" is also on line 8;",
        "<b>/users.csv:7: role \"janitor\" is not a OneRoster role enid knows",
        "<b>/users.csv:8: sourcedId \"u-bo\" is also on line 5;",
    ];
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    for ((got, _), want) in rejected.iter().zip(want) {
        assert!(got.starts_with(want), "{got} / {want}");
    }
    let kept: Vec<&str> = batch.records.iter().map(|r| r.person_id.as_str()).collect();
    assert_eq!(kept, ["u-anna", "u-olle"]);
}

#[test]
fn the_school_unit_code_and_group_name_follow_the_config() {
    let config = OneRosterConfig {
        school_unit_code: OrgCode::SourcedId,
        group_name: GroupName::ClassCode,
        ..config(fixture("v11-bulk"))
    };
    let batch = full(&config);
    let anna = &batch.records[0];
    assert_eq!(anna.affiliations[0].school_unit.as_deref(), Some("org-a"));
    let groups: Vec<(&str, Option<&str>)> =
        anna.groups.iter().map(|g| (g.name.as_str(), g.school_unit.as_deref())).collect();
    assert_eq!(groups, [("7A-2026", Some("org-a")), ("MA7A", Some("org-a"))]);
}

#[test]
fn a_class_or_school_deleted_in_a_delta_takes_its_memberships_and_ties_with_it() {
    let prior = full(&config(fixture("v11-bulk")));
    let bundle = copy("v11-delta");
    edit(bundle.path(), "manifest.csv", |t| {
        t.replace("file.orgs,absent", "file.orgs,delta").replace("file.classes,absent", "file.classes,delta")
    });
    std::fs::write(
        bundle.path().join("orgs.csv"),
        "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n\
         org-b,tobedeleted,2026-09-01T07:00:00Z,,,,\n",
    )
    .unwrap();
    std::fs::write(
        bundle.path().join("classes.csv"),
        "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,\
         termSourcedIds,subjects,subjectCodes,periods\n\
         c-ma7,tobedeleted,2026-09-01T07:00:00Z,,,,,,,,,,,\n",
    )
    .unwrap();
    let config = config(bundle.path().to_path_buf());
    let changes = delta(&config, prior.watermark.as_deref().unwrap(), &unboxed(&prior.records));
    let show = |id: &str| {
        let r = changes.changed.iter().find(|r| r.person_id == id).unwrap();
        let ties: Vec<String> =
            r.affiliations.iter().map(|a| a.school_unit.as_deref().unwrap_or_default().to_string()).collect();
        let groups: Vec<String> = r.groups.iter().map(|g| g.name.to_string()).collect();
        (ties, groups)
    };
    assert_eq!(show("u-anna"), (vec!["12345678".to_string()], vec!["7A".to_string()]));
    assert_eq!(show("u-olle").0, ["12345678"]);
    assert!(!show("u-olle").1.contains(&"Matematik 7A".to_string()));
    // Cia's only school is gone: she is not provisioned (and was never stored).
    assert!(!changes.changed.iter().any(|r| r.person_id == "u-cia"));
    assert_eq!(changes.skipped.get(build::SKIP_NO_SCHOOL), Some(&1));
}

#[tokio::test]
async fn check_names_a_bundle_without_a_manifest() {
    let bundle = copy("v11-bulk");
    std::fs::remove_file(bundle.path().join("manifest.csv")).unwrap();
    let source = OneRosterSource::new(config(bundle.path().to_path_buf()));
    let err = source.check().await.unwrap_err().to_string();
    assert!(err.ends_with("has no manifest.csv at its top; a OneRoster 1.1 or 1.2 bundle starts with one. Point path at the directory or zip that holds manifest.csv, users.csv and the others"), "{err}");
}

#[test]
fn a_user_row_sent_again_unchanged_is_no_change() {
    let prior = full(&config(fixture("v11-bulk")));
    let bundle = copy("v11-delta");
    let header = std::fs::read_to_string(fixture("v11-delta/users.csv")).unwrap().lines().next().unwrap().to_string();
    std::fs::write(
        bundle.path().join("users.csv"),
        format!(
            "{header}\nu-olle,active,2026-09-01T08:00:00Z,true,\"org-a,org-b\",teacher,olle.lind,,Olle,Lind,,P2002,\
             olle.lind@skola.example,,,,,\n"
        ),
    )
    .unwrap();
    std::fs::write(bundle.path().join("enrollments.csv"), "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n").unwrap();
    let changes =
        delta(&config(bundle.path().to_path_buf()), prior.watermark.as_deref().unwrap(), &unboxed(&prior.records));
    assert!(changes.changed.is_empty() && changes.removed.is_empty() && changes.rejected.is_empty(), "{changes:?}");
}

/// A batch's records as the in-memory prior records of a later read.
fn unboxed(records: &[Box<SourceRecord>]) -> Vec<SourceRecord> {
    records.iter().map(|r| SourceRecord::clone(r)).collect()
}
