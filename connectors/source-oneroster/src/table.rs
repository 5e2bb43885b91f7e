//! One OneRoster CSV file read as a table: its header checked against the columns enid needs,
//! its rows with the physical line each starts on.
//!
//! OneRoster files are comma-separated UTF-8 (a BOM is allowed) with a header row. Columns are
//! found by name, so their order and any extra columns (`metadata.*` extensions, columns of a
//! later version) do not matter. A row may carry empty fields beyond the header (some exporters
//! pad every row to the widest file); a row with fewer fields than the header, or with text
//! beyond it, has lost its shape (a stray quote, an unquoted comma) and is reported as a bad row.

use connector_api::SourceError;
use std::collections::HashMap;

/// The longest value a field may hold, in characters. Longer values are broken exports (or
/// attempts to break a target), never names or keys.
pub const MAX_FIELD_CHARS: usize = 256;

/// A parsed file: the column index of each name and the rows.
#[derive(Debug)]
pub struct Table {
    /// The file's name as shown in messages (`<bundle>/users.csv`).
    pub file: String,
    columns: HashMap<String, usize>,
    width: usize,
    rows: Vec<(u64, csv::StringRecord)>,
}

/// One row of a [`Table`].
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    table: &'a Table,
    /// The physical line the row starts on (what an editor shows).
    pub line: u64,
    record: &'a csv::StringRecord,
}

impl Table {
    /// Reads `bytes` as the file `file`, requiring every column of `required`. A missing column
    /// or a file that is not CSV fails the whole read: every row would be wrong.
    pub fn parse(file: &str, bytes: &[u8], required: &[&str]) -> Result<Table, SourceError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
        let header = reader.headers().map_err(|e| SourceError::Malformed {
            location: format!("{file}:1"),
            reason: format!("cannot read the header row: {e}; fix the export"),
            source: Some(e.into()),
        })?;
        let width = header.len();
        let mut columns = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            columns.entry(name.trim().to_string()).or_insert(i);
        }
        let missing: Vec<&str> = required.iter().copied().filter(|c| !columns.contains_key(*c)).collect();
        if !missing.is_empty() {
            let found: Vec<&str> = header.iter().take(24).collect();
            return Err(SourceError::Malformed {
                location: format!("{file}:1"),
                reason: format!(
                    "the header lacks the required column(s) {}; found {found:?}. Fix the export (OneRoster \
                     column names are case-sensitive)",
                    missing.join(", ")
                ),
                source: None,
            });
        }
        let mut rows = Vec::new();
        let mut lines = connector_api::LineCounter::default();
        let mut record = csv::StringRecord::new();
        loop {
            let at = reader.position().byte();
            match reader.read_record(&mut record) {
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
            let line = lines.line_at(bytes, record.position().map_or(at, |p| p.byte()));
            if record.iter().all(|f| f.trim().is_empty()) {
                continue; // blank lines are not rows
            }
            rows.push((line, record.clone()));
        }
        Ok(Table { file: file.to_string(), columns, width, rows })
    }

    /// Whether the header has `column`.
    pub fn has(&self, column: &str) -> bool {
        self.columns.contains_key(column)
    }

    /// The rows in file order.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|(line, record)| Row { table: self, line: *line, record })
    }
}

impl<'a> Row<'a> {
    /// `<file>:<line>`, for messages and record locations.
    pub fn location(&self) -> String {
        format!("{}:{}", self.table.file, self.line)
    }

    /// The value of `column`, trimmed; empty when the file has no such column.
    pub fn get(&self, column: &str) -> &'a str {
        self.table.columns.get(column).and_then(|i| self.record.get(*i)).unwrap_or("").trim()
    }

    /// The value of `column`, or a message saying it is empty.
    pub fn required(&self, column: &str) -> Result<&'a str, String> {
        let v = self.get(column);
        if v.is_empty() { Err(format!("{column} is empty; it is required")) } else { Ok(v) }
    }

    /// The row's key (`sourcedId`), when it can be read: present, clean and not over-long.
    pub fn sourced_id(&self) -> Option<&'a str> {
        let v = self.get("sourcedId");
        let ok = !v.is_empty() && !v.chars().any(char::is_control) && v.chars().count() <= MAX_FIELD_CHARS;
        ok.then_some(v)
    }

    /// Whether the row has lost the header's shape (fewer fields, or text beyond the header): its
    /// values may sit under other columns.
    pub fn shifted(&self) -> bool {
        let width = self.table.width;
        self.record.len() < width || self.record.iter().skip(width).any(|f| !f.trim().is_empty())
    }

    /// The position of `column` in the header.
    pub fn index_of(&self, column: &str) -> Option<usize> {
        self.table.columns.get(column).copied()
    }

    /// Whether the row has the header's shape: as many fields (more only when the extra ones
    /// are empty), no control character (a newline inside quotes, NUL, tab) and no value over
    /// [`MAX_FIELD_CHARS`] in the columns enid reads. The message names the column, never the
    /// value.
    pub fn check_shape(&self, columns: &[&str]) -> Result<(), String> {
        if self.shifted() {
            let (n, width) = (self.record.len(), self.table.width);
            return Err(format!("has {n} fields, the header has {width}; fix the export (a stray quote or comma?)"));
        }
        for column in columns {
            let Some(v) = self.table.columns.get(*column).and_then(|i| self.record.get(*i)) else { continue };
            if let Some(c) = v.chars().find(|c| c.is_control()) {
                return Err(format!(
                    "{column} contains the control character U+{:04X}; names, codes and keys must be plain \
                     text. Fix the export",
                    c as u32
                ));
            }
            let n = v.chars().count();
            if n > MAX_FIELD_CHARS {
                return Err(format!(
                    "{column} is {n} characters long, more than the {MAX_FIELD_CHARS} allowed; fix the export"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_their_physical_line_and_padding_beyond_the_header_is_read() {
        let text = "sourcedId,givenName\r\n\r\nu1,Anna,,\r\n\"u2\",\"Bo\nBerg\"\r\nu3,Cy\r\nu4\r\nu5,Dag,x\r\n";
        let t = Table::parse("b/users.csv", text.as_bytes(), &["sourcedId"]).unwrap();
        let got: Vec<(u64, &str, Result<(), String>)> =
            t.rows().map(|r| (r.line, r.get("sourcedId"), r.check_shape(&["givenName"]))).collect();
        assert_eq!(got[0], (3, "u1", Ok(())), "trailing empty fields are padding");
        assert_eq!((got[1].0, got[1].1), (4, "u2"));
        assert!(got[1].2.as_ref().is_err_and(|e| e.contains("U+000A")), "{got:?}");
        assert_eq!(got[2], (6, "u3", Ok(())));
        assert!(got[3].2.as_ref().is_err_and(|e| e.contains("has 1 fields")), "{got:?}");
        assert!(got[4].2.as_ref().is_err_and(|e| e.contains("has 3 fields")), "{got:?}");
    }

    #[test]
    fn a_missing_required_column_names_the_file_and_the_column() {
        let err =
            Table::parse("b/users.csv", b"\xEF\xBB\xBFsourcedId,familyName\nu1,Berg\n", &["sourcedId", "givenName"])
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("b/users.csv:1: the header lacks the required column(s) givenName;"), "{err}");
    }
}
