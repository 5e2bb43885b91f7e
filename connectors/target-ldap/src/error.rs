//! Maps LDAP errors and result codes to [`TargetError`], by what the caller must do.

use connector_api::TargetError;
use ldap3::{LdapError, LdapResult};

/// A transport or protocol failure: the server is gone, slow or unreachable.
pub(crate) fn from_ldap(e: LdapError, what: &str) -> TargetError {
    match e {
        LdapError::LdapResult { result } => match from_result(result, what) {
            Err(e) => e,
            Ok(_) => TargetError::Rejected(format!("{what}: unexpected result")),
        },
        other => {
            let msg = other.to_string();
            if msg.contains("certificate") || msg.contains("InvalidCertificate") || msg.contains("tls") {
                TargetError::Config(format!(
                    "{what}: TLS: {msg}. Set tls_ca_file to the CA that signs the server's certificate"
                ))
            } else {
                TargetError::Unavailable(format!("{what}: {msg}"))
            }
        }
    }
}

/// A result code from the server.
pub(crate) fn from_result(res: LdapResult, what: &str) -> Result<LdapResult, TargetError> {
    let text = if res.text.is_empty() { String::new() } else { format!(" ({})", res.text) };
    let msg = |name: &str| format!("{what}: {name} (LDAP {}){text}", res.rc);
    match res.rc {
        0 => Ok(res),
        49 => Err(TargetError::Auth(msg("invalid credentials; check bind_dn and the password file"))),
        8 | 13 => Err(TargetError::Config(msg("the server requires a secure connection; use ldaps:// or starttls"))),
        50 => Err(TargetError::Rejected(msg("insufficient access; give the bind DN write access"))),
        51 | 52 | 80 | 3 => Err(TargetError::Unavailable(msg("server busy or unavailable"))),
        32 => Err(TargetError::Rejected(msg("no such object"))),
        68 => Err(TargetError::Rejected(msg("entry already exists"))),
        65 => Err(TargetError::Rejected(msg("object class violation; check object_classes and the attribute mapping"))),
        17 => {
            Err(TargetError::Rejected(msg("undefined attribute type; check the attribute mapping against the schema")))
        }
        19 => Err(TargetError::Rejected(msg("constraint violation"))),
        21 => Err(TargetError::Rejected(msg("invalid attribute syntax"))),
        _ => Err(TargetError::Rejected(msg("operation failed"))),
    }
}
