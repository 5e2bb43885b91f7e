//! Source connector for CSV files: SIS and HR exports with one person per row.
//!
//! UTF-8 with or without a BOM, comma- or semicolon-separated (detected from the header), with a
//! header row. Column names default to `person_id, given_name, family_name, civic_no, role,
//! school_unit, groups, start_date, end_date, email, eppn` (the last five optional);
//! [`ColumnMap`] renames them. A bad row is reported
//! with its file and line and left out; a missing required column fails the whole fetch, since it
//! means the export changed shape and every row would be wrong.

use chrono::NaiveDate;
use connector_api::civic::{CivicNo, mask_raw};
use connector_api::{FetchContext, Role, RowError, Source, SourceBatch, SourceError, SourceRecord};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// `[sources.<id>]` with `type = "csv"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    /// The file to read.
    pub path: PathBuf,
    /// `","` or `";"`; detected from the header row when left out.
    #[serde(default)]
    pub delimiter: Option<char>,
    /// Column names in the file, when they differ from the defaults.
    #[serde(default)]
    pub columns: ColumnMap,
    /// The run stops when more than this share of rows is rejected (percent, default 2).
    #[serde(default = "default_max_rejected_percent")]
    pub max_rejected_percent: f64,
    /// The run stops when the file has this much fewer valid records than at the last applied
    /// run (percent, default 10).
    #[serde(default = "default_max_shrink_percent")]
    pub max_shrink_percent: f64,
    /// A drop of at most this many records never stops the run, whatever the share (default 10),
    /// so a small school losing a few pupils is not a broken export.
    #[serde(default = "default_shrink_min_records")]
    pub shrink_min_records: usize,
}

fn default_shrink_min_records() -> usize {
    10
}

fn default_max_shrink_percent() -> f64 {
    10.0
}

fn default_max_rejected_percent() -> f64 {
    2.0
}

/// The file's name for each field. Every key is optional; the default is the field's own name.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ColumnMap {
    pub person_id: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub civic_no: Option<String>,
    pub role: Option<String>,
    pub school_unit: Option<String>,
    pub groups: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub email: Option<String>,
    pub eppn: Option<String>,
    pub protection: Option<String>,
}

/// The fields, in order: (field, required in the header).
const FIELDS: [(&str, bool); 12] = [
    ("person_id", true),
    ("given_name", true),
    ("family_name", true),
    ("civic_no", true),
    ("role", true),
    ("school_unit", true),
    ("groups", false),
    ("start_date", false),
    ("end_date", false),
    ("email", false),
    ("eppn", false),
    ("protection", false),
];

impl ColumnMap {
    fn name_of<'a>(&'a self, field: &'a str) -> &'a str {
        let v = match field {
            "person_id" => &self.person_id,
            "given_name" => &self.given_name,
            "family_name" => &self.family_name,
            "civic_no" => &self.civic_no,
            "role" => &self.role,
            "school_unit" => &self.school_unit,
            "groups" => &self.groups,
            "start_date" => &self.start_date,
            "end_date" => &self.end_date,
            "email" => &self.email,
            "eppn" => &self.eppn,
            "protection" => &self.protection,
            _ => &None,
        };
        v.as_deref().unwrap_or(field)
    }
}

/// A CSV source, built from its config.
#[derive(Debug, Clone)]
pub struct CsvSource {
    config: CsvConfig,
}

impl CsvSource {
    pub fn new(config: CsvConfig) -> Self {
        CsvSource { config }
    }

    fn display_path(&self) -> String {
        self.config.path.display().to_string()
    }

    async fn read(&self) -> Result<Vec<u8>, SourceError> {
        tokio::fs::read(&self.config.path)
            .await
            .map_err(|e| SourceError::Unavailable { what: self.display_path(), reason: e.to_string() })
    }
}

impl Source for CsvSource {
    async fn check(&self) -> Result<(), SourceError> {
        let bytes = self.read().await?;
        let header_end = bytes.iter().position(|b| *b == b'\n').unwrap_or(bytes.len());
        parse_header(&self.config, &self.display_path(), &bytes[..header_end]).map(|_| ())
    }

    async fn fetch(&self, cx: FetchContext) -> Result<SourceBatch, SourceError> {
        let bytes = self.read().await?;
        parse(&self.config, &self.display_path(), &bytes, cx)
    }
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn detect_delimiter(config: &CsvConfig, header: &[u8]) -> u8 {
    if let Some(d) = config.delimiter {
        return d as u8;
    }
    let first_line = header.split(|b| *b == b'\n').next().unwrap_or(b"");
    let semis = first_line.iter().filter(|b| **b == b';').count();
    let commas = first_line.iter().filter(|b| **b == b',').count();
    if semis > commas { b';' } else { b',' }
}

/// Column index of each field; `None` for an optional field the file does not have.
type Layout = Vec<(&'static str, Option<usize>)>;

fn parse_header(config: &CsvConfig, file: &str, bytes: &[u8]) -> Result<Layout, SourceError> {
    let bytes = strip_bom(bytes);
    let delimiter = detect_delimiter(config, bytes);
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).from_reader(bytes);
    let headers = reader.headers().map_err(|e| SourceError::Malformed {
        location: format!("{file}:1"),
        reason: format!("cannot read the header row: {e}"),
    })?;
    let index: HashMap<String, usize> = headers.iter().enumerate().map(|(i, h)| (h.trim().to_string(), i)).collect();
    let mut layout = Vec::new();
    let mut missing = Vec::new();
    for (field, required) in FIELDS {
        let name = config.columns.name_of(field);
        let idx = index.get(name).copied();
        if idx.is_none() && required {
            missing.push(if name == field { name.to_string() } else { format!("{name} (for {field})") });
        }
        layout.push((field, idx));
    }
    if !missing.is_empty() {
        let mut found: Vec<&str> = headers.iter().collect();
        found.truncate(12);
        return Err(SourceError::Malformed {
            location: format!("{file}:1"),
            reason: format!(
                "the header lacks required column(s) {}; found {:?}. Fix the export, or map the \
                 names under [sources.<id>.columns]",
                missing.join(", "),
                found
            ),
        });
    }
    Ok(layout)
}

/// Parses a whole file. Pure: the file's bytes and `cx` in, records and rejected rows out.
pub fn parse(config: &CsvConfig, file: &str, bytes: &[u8], cx: FetchContext) -> Result<SourceBatch, SourceError> {
    let layout = parse_header(config, file, bytes)?;
    let bytes = strip_bom(bytes);
    let delimiter = detect_delimiter(config, bytes);
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).flexible(true).from_reader(bytes);
    let width = reader.headers().map(|h| h.len()).unwrap_or(0);
    let mut batch = SourceBatch::default();
    let mut first_line_of: HashMap<String, u64> = HashMap::new();
    let mut row = csv::StringRecord::new();
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(line);
                return Err(SourceError::Malformed {
                    location: format!("{file}:{line}"),
                    reason: format!("the file cannot be read as CSV from here on ({e}); fix the export"),
                });
            }
        }
        let line = row.position().map(|p| p.line()).unwrap_or(line);
        let location = format!("{file}:{line}");
        if row.iter().all(|f| f.trim().is_empty()) {
            continue; // blank lines are not rows
        }
        if row.len() != width {
            batch
                .rejected
                .push(RowError { location, message: format!("has {} fields, the header has {width}", row.len()) });
            continue;
        }
        match parse_row(&Fields { row: &row, layout: &layout }, cx) {
            Ok(rec) => {
                if let Some(first) = first_line_of.get(&rec.person_id) {
                    batch.rejected.push(RowError {
                        location,
                        message: format!(
                            "person_id {:?} is a duplicate of line {first}; the first row is kept",
                            rec.person_id
                        ),
                    });
                    continue;
                }
                first_line_of.insert(rec.person_id.clone(), line);
                batch.records.push(SourceRecord { location, ..rec });
            }
            Err(message) => batch.rejected.push(RowError { location, message }),
        }
    }
    Ok(batch)
}

fn lowercase_opt(v: &str) -> Option<String> {
    Some(v.trim().to_lowercase()).filter(|v| !v.is_empty())
}

/// One row, addressed by field name.
struct Fields<'a> {
    row: &'a csv::StringRecord,
    layout: &'a Layout,
}

impl<'a> Fields<'a> {
    fn get(&self, field: &str) -> &'a str {
        self.layout
            .iter()
            .find(|(f, _)| *f == field)
            .and_then(|(_, i)| *i)
            .and_then(|i| self.row.get(i))
            .map(str::trim)
            .unwrap_or("")
    }
}

fn parse_row(fields: &Fields<'_>, cx: FetchContext) -> Result<SourceRecord, String> {
    let get = |field: &str| fields.get(field);
    let required = |field: &str| -> Result<String, String> {
        let v = get(field);
        if v.is_empty() { Err(format!("{field} is empty; it is required")) } else { Ok(v.to_string()) }
    };
    let person_id = required("person_id")?;
    let given_name = required("given_name")?;
    let family_name = required("family_name")?;
    let role_raw = required("role")?;
    let role =
        Role::parse(&role_raw).ok_or_else(|| format!("role {role_raw:?} is neither \"student\" nor \"staff\""))?;
    let civic_raw = get("civic_no");
    let civic_no = if civic_raw.is_empty() {
        None
    } else {
        Some(CivicNo::parse(civic_raw, cx.today).map_err(|e| format!("civic_no {} {e}", mask_raw(civic_raw)))?)
    };
    let date = |field: &str| -> Result<Option<NaiveDate>, String> {
        let v = get(field);
        if v.is_empty() {
            return Ok(None);
        }
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| format!("{field} {v:?} is not a date in the form YYYY-MM-DD"))
    };
    let start_date = date("start_date")?;
    let end_date = date("end_date")?;
    if let (Some(s), Some(e)) = (start_date, end_date)
        && e < s
    {
        return Err(format!("end_date {e} is before start_date {s}"));
    }
    let school_unit = Some(get("school_unit").to_string()).filter(|s| !s.is_empty());
    let mut groups: Vec<String> =
        get("groups").split([';', '|']).map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect();
    groups.sort();
    groups.dedup();
    Ok(SourceRecord {
        person_id,
        given_name,
        family_name,
        civic_no,
        role,
        school_unit,
        groups,
        start_date,
        end_date,
        email: lowercase_opt(get("email")),
        eppn: lowercase_opt(get("eppn")),
        // The value is not repeated in the message: the marking itself is protected.
        protection: connector_api::Protection::parse(get("protection")).map_err(|e| format!("protection {e}"))?,
        location: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> FetchContext {
        FetchContext { today: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap() }
    }

    fn config() -> CsvConfig {
        CsvConfig {
            path: "persons.csv".into(),
            delimiter: None,
            columns: ColumnMap::default(),
            max_rejected_percent: 2.0,
            max_shrink_percent: 10.0,
            shrink_min_records: 10,
        }
    }

    const HEADER: &str = "person_id,given_name,family_name,civic_no,role,school_unit,groups,start_date,end_date\n";

    #[test]
    fn reads_a_file_with_bom_and_semicolons() {
        let text = format!(
            "\u{feff}{}1;Åsa;Öberg;19821105-9954;staff;SKOLA1;\"7A;7B\";2020-08-15;\n",
            HEADER.replace(',', ";")
        );
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
                "persons.csv:3: given_name is empty; it is required",
                "persons.csv:4: civic_no 19870704-**** fails its check digit",
                "persons.csv:5: start_date \"2020-13-01\" is not a date in the form YYYY-MM-DD",
                "persons.csv:6: person_id \"1\" is a duplicate of line 2; the first row is kept",
                "persons.csv:7: role \"pirate\" is neither \"student\" nor \"staff\"",
                "persons.csv:8: has 2 fields, the header has 9",
            ]
        );
        assert_eq!(batch.records.len(), 1);
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
}
