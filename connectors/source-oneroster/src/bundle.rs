//! Reading a bundle's files from a directory or a zip: the only IO of the connector.
//!
//! Only `manifest.csv` and the files enid reads are taken, from the top of the directory or the
//! archive. A zip is read with care, since it comes from outside: an entry whose path would
//! leave the archive (`..`, an absolute path) fails the read, and so does more uncompressed data
//! than the configured cap (a zip bomb), counted as it is inflated rather than trusted from the
//! entry's header.

use connector_api::SourceError;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The file names read from a bundle, besides `manifest.csv`.
pub const DATA_FILES: [&str; 5] = ["orgs.csv", "users.csv", "classes.csv", "enrollments.csv", "roles.csv"];

/// The files of a bundle, by name, and how the bundle is named in messages.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    /// The configured path, as shown in messages.
    pub name: String,
    /// `manifest.csv` and those of [`DATA_FILES`] the bundle has.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Bundle {
    /// The name of `file` in messages: `<bundle>/<file>`.
    pub fn display(&self, file: &str) -> String {
        format!("{}/{file}", self.name)
    }
}

fn unavailable(what: String, e: std::io::Error) -> SourceError {
    SourceError::Unavailable { what, reason: e.to_string(), source: Some(e.into()) }
}

/// Reads the bundle at `path`: a directory, or a zip file. `max_unzipped_bytes` caps the data
/// inflated from a zip.
pub fn read(path: &Path, max_unzipped_bytes: u64) -> Result<Bundle, SourceError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| unavailable(name.clone(), e))?;
    let mut bundle = Bundle { name, files: BTreeMap::new() };
    if meta.is_dir() {
        for file in std::iter::once("manifest.csv").chain(DATA_FILES) {
            match std::fs::read(path.join(file)) {
                Ok(bytes) => {
                    bundle.files.insert(file.to_string(), bytes);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(unavailable(bundle.display(file), e)),
            }
        }
    } else {
        let bytes = std::fs::read(path).map_err(|e| unavailable(bundle.name.clone(), e))?;
        bundle.files = unzip(&bundle.name, &bytes, max_unzipped_bytes)?;
    }
    if !bundle.files.contains_key("manifest.csv") {
        return Err(SourceError::Malformed {
            location: bundle.name.clone(),
            reason: "has no manifest.csv at its top; a OneRoster 1.1 or 1.2 bundle starts with one. Point path at \
                     the directory or zip that holds manifest.csv, users.csv and the others"
                .into(),
            source: None,
        });
    }
    Ok(bundle)
}

/// The files of a zip that enid reads. Pure: the archive's bytes in.
pub fn unzip(name: &str, bytes: &[u8], max_unzipped_bytes: u64) -> Result<BTreeMap<String, Vec<u8>>, SourceError> {
    let malformed = |reason: String, source: Option<connector_api::BoxError>| SourceError::Malformed {
        location: name.to_string(),
        reason,
        source,
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        malformed(format!("is neither a directory nor a zip file that can be read ({e})"), Some(e.into()))
    })?;
    let mut files = BTreeMap::new();
    let mut inflated: u64 = 0;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| malformed(format!("entry {i} of the zip cannot be read ({e})"), Some(e.into())))?;
        // A path that leaves the archive is refused even though enid writes nothing out: such an
        // archive was made to attack whoever unpacks it, and is not a school's export.
        let Some(path) = entry.enclosed_name() else {
            return Err(malformed(
                format!(
                    "holds the entry {:?}, whose path leads outside the archive; refusing the whole bundle",
                    entry.name().map(|n| n.chars().take(80).collect::<String>()).unwrap_or_default()
                ),
                None,
            ));
        };
        let Some(file) = path.to_str().filter(|f| *f == "manifest.csv" || DATA_FILES.contains(f)) else { continue };
        if entry.is_dir() {
            continue;
        }
        let file = file.to_string();
        let room = max_unzipped_bytes.saturating_sub(inflated);
        let mut out = Vec::new();
        (&mut entry)
            .take(room.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| malformed(format!("{file} in the zip cannot be inflated ({e})"), Some(e.into())))?;
        inflated += out.len() as u64;
        if inflated > max_unzipped_bytes {
            return Err(malformed(
                format!(
                    "inflates to more than {} MiB (at {file}), the cap max_unzipped_mib; refusing it as a possible zip \
                     bomb. Raise the cap if the export is really this large",
                    max_unzipped_bytes / (1024 * 1024)
                ),
                None,
            ));
        }
        files.insert(file, out);
    }
    Ok(files)
}
