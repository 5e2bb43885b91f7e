//! `enid keys create`: the install-time step that makes the id key and the password key (see
//! [`crate::engine::keys`]). Prints paths and fingerprints only.

use super::{CliError, io};
use crate::config::Config;
use std::io::Write;
use std::process::ExitCode;

/// Makes the missing key files and says, for each, whether it was made or found; exits 1 when
/// either could not be made or read.
pub(super) async fn create(config: &Config, out: &mut impl Write) -> Result<ExitCode, CliError> {
    let mut first_error = None;
    for result in crate::engine::keys::create_keys(config).await {
        match result {
            Ok(k) if k.created => {
                writeln!(out, "Created {} {} (fingerprint {}).", k.what, k.path.display(), k.fingerprint)
            }
            Ok(k) => writeln!(
                out,
                "Kept the existing {} {} (fingerprint {}); it is never overwritten.",
                k.what,
                k.path.display(),
                k.fingerprint
            ),
            Err(e) => {
                first_error.get_or_insert(e);
                Ok(())
            }
        }
        .map_err(io)?;
    }
    match first_error {
        Some(e) => Err(CliError::Engine(e)),
        None => {
            writeln!(
                out,
                "Back up both key files with the state database: the state alone cannot be rebuilt without them."
            )
            .map_err(io)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
