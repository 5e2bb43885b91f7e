//! Source connector for CSV files: SIS and HR exports with one person per row.
//!
//! UTF-8 with or without a BOM, comma- or semicolon-separated (detected from the header), with a
//! header row. Column names default to `person_id, given_name, family_name, civic_no, role,
//! school_unit, groups, start_date, end_date, email, eppn, protection, group_type` (the last seven
//! optional); a row is one affiliation (school unit, role, dates) and its groups belong to its
//! school unit; with `affiliations = "rows"` a person's rows are their affiliations;
//! [`ColumnMap`] renames them. A bad row (an invalid value, a civic number in any spelling in a
//! name, group, school or e-mail column, a control character, a value over
//! [`MAX_FIELD_CHARS`], the wrong number of fields, a `person_id` on more than one row) is
//! reported with its file and the line an editor shows, and left out, with its `person_id` when
//! it could be read so the engine keeps that person as last stored. A missing required column
//! fails the whole fetch, since it means the export changed shape and every row would be wrong;
//! the batch names the optional fields the header had, so the engine can notice one vanishing.

use chrono::NaiveDate;
use connector_api::civic::{self, CivicNo, mask_if_civic, mask_raw};
use connector_api::value::Str;
use connector_api::{
    Affiliation, ConnectorConfig, FetchContext, Fetched, GroupMembership, GroupType, Interner, Role, RowError, Shared,
    Source, SourceBatch, SourceConnector, SourceError, SourceRecord,
};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `[sources.<id>]` with `type = "csv"`. The input guards (how many bad rows, how large a drop
/// stop a run) are the source's policy, `[sources.<id>.policy]`, which enid reads for every
/// source type.
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
    /// `"one"` (the default): one row per person, and a `person_id` on two rows rejects both.
    /// `"rows"`: the rows of one `person_id` at different school units are that person's
    /// affiliations (a teacher at three schools is three rows); they must agree on the
    /// person's own fields (names, civic number, e-mail, eppn, protection).
    #[serde(default)]
    pub affiliations: AffiliationRows,
}

/// How rows become persons: [`CsvConfig::affiliations`].
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AffiliationRows {
    /// One row is one person.
    #[default]
    One,
    /// Several rows of one `person_id`, one per school unit, are one person.
    Rows,
}

impl ConnectorConfig for CsvConfig {
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    fn resolve_paths(&mut self, dir: &Path) {
        connector_api::resolve_path(dir, &mut self.path);
    }
}

impl SourceConnector for CsvConfig {
    type Source = CsvSource;

    fn build(&self, _id: &str) -> Result<CsvSource, String> {
        Ok(CsvSource::new(self.clone()))
    }
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
    pub group_type: Option<String>,
}

/// The fields, in order: (field, required in the header).
const FIELDS: [(&str, bool); 13] = [
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
    ("group_type", false),
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
            "group_type" => &self.group_type,
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
        tokio::fs::read(&self.config.path).await.map_err(|e| SourceError::Unavailable {
            what: self.display_path(),
            reason: e.to_string(),
            source: Some(e.into()),
        })
    }
}

impl Source for CsvSource {
    async fn check(&self) -> Result<(), SourceError> {
        let bytes = self.read().await?;
        let header_end = bytes.iter().position(|b| *b == b'\n').unwrap_or(bytes.len());
        parse_header(&self.config, &self.display_path(), &bytes[..header_end]).map(|_| ())
    }

    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Fetched, SourceError> {
        let bytes = self.read().await?;
        parse(&self.config, &self.display_path(), &bytes, cx).map(Fetched::Full)
    }

    fn files(&self) -> Vec<PathBuf> {
        vec![self.config.path.clone()]
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
        source: Some(e.into()),
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
            source: None,
        });
    }
    Ok(layout)
}

/// The columns of free text: each is searched for a civic number in any spelling. The others
/// are keys, civic numbers, dates and words from a fixed list.
const FREE_TEXT: [&str; 7] = ["given_name", "family_name", "school_unit", "groups", "email", "eppn", "group_type"];

/// The longest value a field may hold, in characters. Longer values are broken exports (or
/// attempts to break the target), never names.
pub const MAX_FIELD_CHARS: usize = 256;

/// Parses a whole file. Pure: the file's bytes and `cx` in, records and rejected rows out.
///
/// A row is rejected, with its `file:line` (the physical line an editor shows where the record
/// starts, for LF and CRLF files and records with quoted newlines) and the column at fault,
/// when a field is invalid, holds a control character or more than [`MAX_FIELD_CHARS`]
/// characters, or the row has the wrong number of fields. Every row of a `person_id` that
/// appears more than once is rejected, naming every line: which one is right is not for enid to
/// guess. A rejected row carries its `person_id` when it could be read (not after a shift in the
/// field count) and its civic number when valid, so the engine keeps those persons as last
/// stored; without a key it keeps every missing person of the source.
pub fn parse(config: &CsvConfig, file: &str, bytes: &[u8], cx: FetchContext<'_>) -> Result<SourceBatch, SourceError> {
    let layout = parse_header(config, file, bytes)?;
    let bytes = strip_bom(bytes);
    let delimiter = detect_delimiter(config, bytes);
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).flexible(true).from_reader(bytes);
    let width = reader.headers().map(|h| h.len()).unwrap_or(0);
    let mut batch = SourceBatch {
        columns: layout.iter().filter(|(_, i)| i.is_some()).map(|(f, _)| f.to_string()).collect(),
        ..SourceBatch::default()
    };
    // Valid records with their line (boxed: the batch takes them by pointer), sized by the
    // file's line count (a bound on its rows); the readable person_id of every row with its
    // line, for the rows that share one.
    let rows = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut valid: Vec<(u64, Box<SourceRecord>)> = Vec::with_capacity(rows);
    let mut keys: Vec<(Str, u64)> = Vec::with_capacity(rows);
    let mut row = csv::StringRecord::new();
    let mut lines = connector_api::LineCounter::default();
    // The ties and memberships of the file, each made once: a school's pupils share theirs.
    let mut shared = Interner::default();
    loop {
        let at = reader.position().byte();
        match reader.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = lines.line_at(bytes, e.position().map_or(at, |p| p.byte()));
                return Err(SourceError::Malformed {
                    location: format!("{file}:{line}"),
                    reason: format!("the file cannot be read as CSV from here on ({e}); fix the export"),
                    source: Some(e.into()),
                });
            }
        }
        let line = lines.line_at(bytes, row.position().map_or(at, |p| p.byte()));
        let mut location = Str::with_capacity(file.len() + 8);
        let _ = write!(location, "{file}:{line}"); // writing to a string does not fail
        if row.iter().all(|f| f.trim().is_empty()) {
            continue; // blank lines are not rows
        }
        let fields = Fields { row: &row, layout: &layout };
        // With the wrong number of fields (an unquoted delimiter in a name, a stray quote that
        // swallowed the rows after it) or a field that spans lines, the row may hold other
        // persons' rows: its key says nothing certain, so every missing person of the source is
        // kept.
        let key_after_shift =
            row.len() != width && layout.iter().any(|(f, i)| *f == "person_id" && i.is_some_and(|i| i > 0));
        let shifted = key_after_shift || row.iter().any(|f| f.contains(['\n', '\r']));
        let person_id = if shifted { None } else { fields.person_id() };
        if let Some(p) = &person_id {
            keys.push((p.as_str().into(), line));
        }
        let civic_no = if shifted { None } else { CivicNo::parse(fields.get("civic_no"), cx.today).ok() };
        // The school unit the row names, unless it marks protected personal data (then IT
        // alone sees the row).
        let school_unit = if shifted || !fields.get("protection").is_empty() {
            None
        } else {
            Some(fields.get("school_unit").to_string()).filter(|s| !s.is_empty())
        };
        let reject = |message: String| RowError {
            location: location.to_string(),
            message,
            person_id: person_id.clone(),
            civic_no: civic_no.clone(),
            school_unit: school_unit.clone(),
        };
        if row.len() != width {
            batch.rejected.push(reject(format!("has {} fields, the header has {width}", row.len())));
            continue;
        }
        if let Err(message) = fields.check_hygiene() {
            batch.rejected.push(reject(message));
            continue;
        }
        match parse_row(&fields, cx, &mut shared) {
            Ok(rec) => valid.push((line, Box::new(SourceRecord { location, ..rec }))),
            Err(message) => batch.rejected.push(reject(message)),
        }
    }
    let lines_of = shared_keys(keys);
    match config.affiliations {
        AffiliationRows::One => one_row_per_person(valid, &lines_of, &mut batch),
        AffiliationRows::Rows => rows_per_affiliation(valid, &lines_of, &mut batch),
    }
    // Rejected rows in file order, whatever made them rejected.
    batch.rejected.sort_by_key(|e| line_of(&e.location));
    Ok(batch)
}

/// The lines of each `person_id` that is on more than one row (a key on one row is not in it):
/// sorted, where a map of every key to its lines held a string and a vector per row of a file
/// of a million.
fn shared_keys(mut keys: Vec<(Str, u64)>) -> HashMap<String, Vec<u64>> {
    keys.sort_unstable();
    let mut out: HashMap<String, Vec<u64>> = HashMap::new();
    for run in keys.chunk_by(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
        out.insert(run[0].0.to_string(), run.iter().map(|(_, line)| *line).collect());
    }
    out
}

/// `affiliations = "one"`: every row of a `person_id` on more than one line is rejected.
fn one_row_per_person(
    valid: Vec<(u64, Box<SourceRecord>)>,
    lines_of: &HashMap<String, Vec<u64>>,
    batch: &mut SourceBatch,
) {
    batch.records.reserve_exact(valid.len());
    for (line, rec) in valid {
        match lines_of.get(rec.person_id.as_str()).filter(|l| l.len() > 1) {
            None => batch.records.push(rec),
            Some(lines) => {
                let others: Vec<String> = lines.iter().filter(|l| **l != line).map(u64::to_string).collect();
                let message = format!(
                    "person_id {:?} is also on line {}; every row with it is left out (a person it belongs to \
                     is kept as at the last run). Fix the export so each person_id is on one row, or set \
                     affiliations = \"rows\" when a person's rows are their school units",
                    mask_if_civic(&rec.person_id),
                    others.join(", ")
                );
                batch.rejected.push(reject_valid(*rec, message));
            }
        }
    }
}

/// A valid row rejected for what other rows say. One of these rows may carry another person's
/// key by mistake: the person of the key and the person of the row's civic number are both kept.
fn reject_valid(rec: SourceRecord, message: String) -> RowError {
    let school_unit = rec.shown_school();
    RowError {
        message,
        location: rec.location.to_string(),
        person_id: Some(rec.person_id.to_string()),
        civic_no: rec.civic_no,
        school_unit,
    }
}

/// `affiliations = "rows"`: the rows of one `person_id` become one record with one affiliation
/// per row. A person is rejected whole, every row, when any of their rows is (the others alone
/// would read as leaving a school), when two rows name the same school unit (a duplicate: which
/// is right is not for enid to guess), or when rows disagree on the person's own fields.
fn rows_per_affiliation(
    valid: Vec<(u64, Box<SourceRecord>)>,
    lines_of: &HashMap<String, Vec<u64>>,
    batch: &mut SourceBatch,
) {
    let mut rows_of: HashMap<String, Vec<(u64, Box<SourceRecord>)>> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for (line, rec) in valid {
        let rows = rows_of.entry(rec.person_id.to_string()).or_default();
        if rows.is_empty() {
            order.push(rec.person_id.to_string());
        }
        rows.push((line, rec));
    }
    for person_id in order {
        let Some(rows) = rows_of.remove(&person_id) else { continue };
        let valid_lines: Vec<u64> = rows.iter().map(|(l, _)| *l).collect();
        // A key on one row only is on the row of its one valid record.
        let all_lines = lines_of.get(&person_id).map_or(valid_lines.as_slice(), Vec::as_slice);
        let why = if let Some(bad) = all_lines.iter().find(|l| !valid_lines.contains(l)) {
            Some(format!("another row of this person_id (line {bad}) is rejected"))
        } else {
            let mut seen: HashMap<Option<&str>, u64> = HashMap::new();
            let mut why = None;
            for (line, rec) in &rows {
                let unit = rec.affiliations.first().and_then(|a| a.school_unit.as_deref());
                if let Some(first) = seen.insert(unit, *line) {
                    why =
                        Some(format!("line {first} has the same person_id at the same school unit (a duplicate row)"));
                    break;
                }
            }
            why.or_else(|| {
                let (first_line, first) = &rows[0];
                rows[1..].iter().find_map(|(line, r)| {
                    let field = disagreement(first, r)?;
                    Some(format!("its {field} differs between lines {first_line} and {line}"))
                })
            })
        };
        if let Some(why) = why {
            for (_, rec) in rows {
                let message = format!(
                    "person_id {:?}: {why}; every row of this person is left out (they are kept as at the last \
                     run). Fix the export",
                    mask_if_civic(&rec.person_id)
                );
                batch.rejected.push(reject_valid(*rec, message));
            }
            continue;
        }
        let mut rows = rows.into_iter();
        let Some((_, mut rec)) = rows.next() else { continue };
        for (_, r) in rows {
            rec.affiliations.extend(r.affiliations);
            rec.groups.extend(r.groups);
        }
        rec.affiliations.sort();
        rec.groups.sort();
        rec.groups.dedup();
        batch.records.push(rec);
    }
}

/// The first of a person's own fields on which two of their rows disagree, by name (never the
/// values: they may be a civic number or a protected person's name).
fn disagreement(a: &SourceRecord, b: &SourceRecord) -> Option<&'static str> {
    if a.given_name != b.given_name {
        Some("given_name")
    } else if a.family_name != b.family_name {
        Some("family_name")
    } else if a.civic_no.as_ref().map(|c| c.expose()) != b.civic_no.as_ref().map(|c| c.expose()) {
        Some("civic_no")
    } else if a.email() != b.email() {
        Some("email")
    } else if a.eppn() != b.eppn() {
        Some("eppn")
    } else if a.protection != b.protection {
        Some("protection")
    } else {
        None
    }
}

/// The line number of a `file:line` location, for ordering.
fn line_of(location: &str) -> u64 {
    location.rsplit(':').next().and_then(|l| l.parse().ok()).unwrap_or(0)
}

fn lowercase_opt(v: &str) -> Option<Str> {
    Some(v.trim()).filter(|v| !v.is_empty()).map(Str::from_str_to_lowercase)
}

/// One row, addressed by field name.
struct Fields<'a> {
    row: &'a csv::StringRecord,
    layout: &'a Layout,
}

impl<'a> Fields<'a> {
    /// The value of `field` as written, untrimmed; empty when the file has no such column.
    fn raw(&self, field: &str) -> &'a str {
        self.layout.iter().find(|(f, _)| *f == field).and_then(|(_, i)| *i).and_then(|i| self.row.get(i)).unwrap_or("")
    }

    fn get(&self, field: &str) -> &'a str {
        self.raw(field).trim()
    }

    /// The row's `person_id`, when it can be read: present, not empty, and clean.
    fn person_id(&self) -> Option<String> {
        let v = self.raw("person_id");
        let ok = !v.trim().is_empty() && !v.chars().any(char::is_control) && v.chars().count() <= MAX_FIELD_CHARS;
        ok.then(|| v.trim().to_string())
    }

    /// A civic number in any spelling in a free-text column, control characters (newline, NUL,
    /// tab, the rest of C0, DEL, C1) and over-long values in any of enid's fields reject the row.
    /// The message names the column, never the value.
    fn check_hygiene(&self) -> Result<(), String> {
        for (field, idx) in self.layout {
            let Some(v) = idx.and_then(|i| self.row.get(i)) else { continue };
            // A civic number in a name, group, school or address column (shifted columns, a
            // careless export) would end up in usernames, group names and the directory. It is
            // looked for first, so a number split by tabs is named for what it is.
            if FREE_TEXT.contains(field) && civic::contains_civic(v) {
                return Err(connector_api::source::civic_in_free_text_message(field));
            }
            if let Some(c) = v.chars().find(|c| c.is_control()) {
                return Err(format!(
                    "{field} contains the control character U+{:04X}; names, groups and keys must be plain text. \
                     Fix the export",
                    c as u32
                ));
            }
            let n = v.chars().count();
            if n > MAX_FIELD_CHARS {
                return Err(format!(
                    "{field} is {n} characters long, more than the {MAX_FIELD_CHARS} allowed; fix the export"
                ));
            }
        }
        Ok(())
    }
}

fn parse_row(fields: &Fields<'_>, cx: FetchContext<'_>, shared: &mut Interner) -> Result<SourceRecord, String> {
    let get = |field: &str| fields.get(field);
    let required = |field: &str| -> Result<&str, String> {
        let v = get(field);
        if v.is_empty() { Err(format!("{field} is empty; it is required")) } else { Ok(v) }
    };
    let person_id = required("person_id")?;
    let given_name = required("given_name")?;
    let family_name = required("family_name")?;
    let role_raw = required("role")?;
    let role = Role::parse(role_raw).ok_or_else(|| {
        // Columns shifted by one put other values here: a civic number is shown masked.
        format!("role {:?} is neither \"student\" nor \"staff\"", mask_if_civic(role_raw))
    })?;
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
            .map_err(|_| format!("{field} {:?} is not a date in the form YYYY-MM-DD", mask_if_civic(v)))
    };
    let start_date = date("start_date")?;
    let end_date = date("end_date")?;
    if let (Some(s), Some(e)) = (start_date, end_date)
        && e < s
    {
        return Err(format!("end_date {e} is before start_date {s}"));
    }
    let school_unit = Some(get("school_unit")).filter(|s| !s.is_empty()).map(Str::from);
    let group_type = match get("group_type") {
        "" => GroupType::Class,
        t => GroupType::parse(t).ok_or_else(|| {
            format!("group_type {:?} is none of \"class\", \"teaching\", \"mentor\", \"other\"", mask_if_civic(t))
        })?,
    };
    let mut groups: Shared<GroupMembership> = get("groups")
        .split([';', '|'])
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| shared.group(GroupMembership { kind: group_type, ..GroupMembership::class(school_unit.clone(), g) }))
        .collect();
    groups.sort();
    groups.dedup();
    let affiliation = Affiliation { start_date, end_date, ..Affiliation::new(school_unit, role) };
    Ok(SourceRecord {
        person_id: person_id.into(),
        given_name: given_name.into(),
        family_name: family_name.into(),
        civic_no,
        affiliations: shared.tie(affiliation).into(),
        groups,
        extras: connector_api::Extras::new(lowercase_opt(get("email")), lowercase_opt(get("eppn")), Box::default()),
        deceased: false,
        // The value is not repeated in the message: the marking itself is protected.
        protection: connector_api::Protection::parse(get("protection")).map_err(|e| format!("protection {e}"))?,
        location: Default::default(),
    })
}

#[cfg(test)]
mod tests;
