//! `manifest.csv`: which OneRoster version a bundle is, and whether each file is a full export
//! (`bulk`), the changes since the last export (`delta`), or left out (`absent`).

use crate::table::Table;
use connector_api::SourceError;
use std::collections::BTreeMap;

/// The OneRoster version of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 1.1: a user's role and schools are columns of `users.csv`.
    V1_1,
    /// 1.2: a user's roles are rows of `roles.csv`, each with its school and dates.
    V1_2,
}

/// How the manifest marks one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Absent,
    Bulk,
    Delta,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Absent => "absent",
            Mode::Bulk => "bulk",
            Mode::Delta => "delta",
        })
    }
}

/// The files enid reads, by their manifest name (`file.<name>`); `roles` only in 1.2.
pub const FILES: [&str; 5] = ["orgs", "users", "classes", "enrollments", "roles"];

/// What the manifest says.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest's name in messages (`<bundle>/manifest.csv`).
    pub file: String,
    pub version: Version,
    /// The mode of each file of [`FILES`] the version has.
    pub modes: BTreeMap<&'static str, Mode>,
}

impl Manifest {
    /// The mode of `file` (`Absent` for `roles` in 1.1).
    pub fn mode(&self, file: &str) -> Mode {
        self.modes.get(file).copied().unwrap_or(Mode::Absent)
    }

    /// Whether the bundle holds changes: any file enid reads is marked `delta`.
    pub fn is_delta(&self) -> bool {
        self.modes.values().any(|m| *m == Mode::Delta)
    }

    /// Parses `manifest.csv` (`propertyName,value`). `file` is its name in messages.
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Manifest, SourceError> {
        let table = Table::parse(file, bytes, &["propertyName", "value"])?;
        let malformed = |line: u64, reason: String| SourceError::Malformed {
            location: format!("{file}:{line}"),
            reason,
            source: None,
        };
        let mut props: BTreeMap<String, (String, u64)> = BTreeMap::new();
        for row in table.rows() {
            let (name, value) = (row.get("propertyName").to_string(), row.get("value").to_string());
            // A property given twice with two values is ambiguous: with the last row winning, a
            // delta's users.csv marked `delta` and then `bulk` would be read as the whole export,
            // and everyone missing from it as a leaver.
            if let Some((first, line)) = props.get(&name).filter(|(first, _)| !first.eq_ignore_ascii_case(&value)) {
                return Err(malformed(
                    row.line,
                    format!(
                        "{name} is {value:?} here and {first:?} on line {line}; the manifest must say once how each \
                         file is to be read. Fix the export"
                    ),
                ));
            }
            props.entry(name).or_insert((value, row.line));
        }
        match props.get("manifest.version") {
            Some((v, _)) if v == "1.0" => {}
            Some((v, line)) => {
                return Err(malformed(
                    *line,
                    format!(
                        "manifest.version {v:?} is not one enid reads (\"1.0\", as OneRoster 1.1 and 1.2 write it)"
                    ),
                ));
            }
            None => {
                return Err(malformed(1, "has no manifest.version row; is this a OneRoster 1.1 or 1.2 bundle?".into()));
            }
        }
        let version = match props.get("oneroster.version") {
            Some((v, _)) if v == "1.1" => Version::V1_1,
            Some((v, _)) if v == "1.2" || v.starts_with("1.2.") => Version::V1_2,
            Some((v, line)) => {
                return Err(malformed(
                    *line,
                    format!("oneroster.version {v:?} is not one enid reads; export OneRoster 1.1 or 1.2"),
                ));
            }
            None => {
                return Err(malformed(1, "has no oneroster.version row; export OneRoster 1.1 or 1.2".into()));
            }
        };
        let mut modes = BTreeMap::new();
        for name in FILES {
            if name == "roles" && version == Version::V1_1 {
                continue;
            }
            let key = format!("file.{name}");
            let mode = match props.get(&key) {
                None if name == "roles" => Mode::Absent,
                None => {
                    return Err(malformed(
                        1,
                        format!("has no {key} row; the manifest must say whether {name}.csv is bulk, delta or absent"),
                    ));
                }
                Some((v, line)) => match v.to_ascii_lowercase().as_str() {
                    "absent" => Mode::Absent,
                    "bulk" => Mode::Bulk,
                    "delta" => Mode::Delta,
                    _ => {
                        return Err(malformed(*line, format!("{key} is {v:?}; it must be bulk, delta or absent")));
                    }
                },
            };
            modes.insert(name, mode);
        }
        Ok(Manifest { file: file.to_string(), version, modes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_version_is_an_error_naming_the_manifest_row() {
        let text = "propertyName,value\nmanifest.version,1.0\noneroster.version,1.0\nfile.users,bulk\n";
        let err = Manifest::parse("b/manifest.csv", text.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("b/manifest.csv:3: oneroster.version \"1.0\" is not one enid reads"), "{err}");
    }

    #[test]
    fn a_property_given_twice_with_two_values_is_an_error_naming_both_lines() {
        let text = "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\nfile.orgs,bulk\n\
                    file.users,delta\nfile.classes,bulk\nfile.enrollments,bulk\nfile.users,bulk\n";
        let err = Manifest::parse("b/manifest.csv", text.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("b/manifest.csv:8: file.users is \"bulk\" here and \"delta\" on line 5"), "{err}");
        let same = text.replace("file.users,delta", "file.users,BULK");
        assert!(Manifest::parse("b/manifest.csv", same.as_bytes()).is_ok(), "the same value twice is not ambiguous");
    }

    #[test]
    fn a_file_mode_outside_bulk_delta_absent_is_an_error() {
        let text = "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\nfile.orgs,bulk\n\
                    file.users,full\nfile.classes,bulk\nfile.enrollments,bulk\n";
        let err = Manifest::parse("b/manifest.csv", text.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("b/manifest.csv:5: file.users is \"full\""), "{err}");
    }
}
