//! Maps LDAP errors and result codes to [`TargetError`], by what the caller must do.
//!
//! A result code is the server's whole answer: the message carries its number and the server's
//! diagnostic text, and there is no lower error to keep. A transport failure (I/O, TLS, a
//! timeout) keeps the `ldap3` error as the `source`.

use connector_api::{RejectKind, TargetError};
use ldap3::{LdapError, LdapResult};

/// A transport or protocol failure: the server is gone, slow or unreachable, or TLS failed.
pub(crate) fn from_ldap(e: LdapError, what: &str) -> TargetError {
    match e {
        LdapError::LdapResult { result } => match from_result(result, what) {
            Err(e) => e,
            Ok(_) => TargetError::rejected(RejectKind::Other, format!("{what}: unexpected result")),
        },
        other if is_tls(&other) => TargetError::config(format!(
            "{what}: TLS failed; set tls_ca_file to the CA that signs the server's certificate"
        ))
        .with_source(other),
        other => TargetError::unavailable(what).with_source(other),
    }
}

/// Whether the failure happened in TLS: a rustls error, directly or inside the I/O error the
/// TLS stream returns, or (from other TLS stacks) a message that speaks of certificates.
fn is_tls(e: &LdapError) -> bool {
    match e {
        LdapError::Rustls { .. } | LdapError::DNSName { .. } => true,
        LdapError::Io { source } if source.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => true,
        other => {
            let msg = other.to_string();
            msg.contains("certificate") || msg.contains("InvalidCertificate") || msg.contains("tls")
        }
    }
}

/// The permission an operation refused for insufficient access needs, by what it was.
fn needed_right(what: &str) -> &'static str {
    let verb = what.split_whitespace().next().unwrap_or("");
    if what.contains(" members of ") {
        return "the bind DN needs the right to write member on the groups";
    }
    match verb {
        "add" | "create" => {
            "the bind DN needs the right to create objects of this class in the container (AD: Create User, \
             Organizational Unit and Group objects, delegated on base_dn)"
        }
        "delete" => "the bind DN needs the right to delete these objects (AD: Delete User objects)",
        "move" => {
            "the bind DN needs the right to move objects between these containers (AD: Create and Delete User \
                   objects on both OUs)"
        }
        "rename" => "the bind DN needs the right to rename the object (AD: write cn, name and sAMAccountName)",
        "enable" | "disable" => "the bind DN needs the right to write userAccountControl",
        "modify" => {
            "the bind DN needs write access to the attributes enid sets (AD: Write All Properties, and \
                     Reset Password for a first password)"
        }
        _ => "give the bind DN the rights this operation needs",
    }
}

/// A result code from the server.
pub(crate) fn from_result(res: LdapResult, what: &str) -> Result<LdapResult, TargetError> {
    let text = if res.text.is_empty() { String::new() } else { format!(" ({})", res.text) };
    let msg = |name: &str| format!("{what}: {name} (LDAP {}){text}", res.rc);
    let reject = |kind: RejectKind, name: &str| TargetError::rejected(kind, msg(name));
    match res.rc {
        0 => Ok(res),
        49 => Err(TargetError::auth(msg("invalid credentials; check bind_dn and the password file"))),
        8 | 13 => Err(TargetError::config(msg("the server requires a secure connection; use ldaps:// or starttls"))),
        // Busy: the server is up and asks for less load. It names no time to wait.
        51 => Err(TargetError::throttled(msg("server busy; the next run tries again"), None)),
        52 | 80 | 3 => Err(TargetError::unavailable(msg("server busy or unavailable"))),
        50 => Err(reject(RejectKind::Access, &format!("insufficient access; {}", needed_right(what)))),
        32 => Err(reject(RejectKind::NotFound, "no such object")),
        68 => Err(reject(RejectKind::Exists, "entry already exists")),
        // Active Directory says more in the data code of its diagnostic text.
        19 if res.text.contains("0000052D") => Err(reject(
            RejectKind::Constraint,
            "the password does not meet the domain's password policy (length, complexity, history); raise \
             password_length or look at the policy",
        )),
        19 if res.text.contains("000021C8") => Err(reject(
            RejectKind::Constraint,
            "userPrincipalName is not unique in the forest: another account holds it; rename or remove that one",
        )),
        19 => Err(reject(RejectKind::Constraint, "constraint violation")),
        53 => Err(reject(
            RejectKind::Other,
            "the server is unwilling to perform this (AD: a password over a plain connection, or a domain policy)",
        )),
        20 => Err(reject(RejectKind::Constraint, "attribute or value exists")),
        65 => Err(reject(RejectKind::Schema, "object class violation; check object_classes and the attribute mapping")),
        17 => {
            Err(reject(RejectKind::Schema, "undefined attribute type; check the attribute mapping against the schema"))
        }
        21 => Err(reject(RejectKind::Schema, "invalid attribute syntax")),
        64 => Err(reject(RejectKind::Schema, "naming violation; check rdn_attribute and object_classes")),
        67 => {
            Err(reject(RejectKind::Schema, "not allowed on the RDN; leave rdn_attribute out of the attribute mapping"))
        }
        69 => Err(reject(RejectKind::Schema, "object class modifications prohibited")),
        _ => Err(reject(RejectKind::Other, "operation failed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    fn result(rc: u32, text: &str) -> LdapResult {
        LdapResult { rc, matched: String::new(), text: text.into(), refs: Vec::new(), ctrls: Vec::new() }
    }

    /// The variant (and rejection kind) of each result code, and that its message names the
    /// operation and the code.
    #[test]
    fn result_codes_map_to_what_the_caller_must_do() {
        use RejectKind::*;
        let cases: &[(u32, &str)] = &[
            (49, "auth"),
            (8, "config"),
            (13, "config"),
            (51, "throttled"),
            (52, "unavailable"),
            (80, "unavailable"),
            (3, "unavailable"),
        ];
        for &(rc, want) in cases {
            let e = from_result(result(rc, ""), "add uid=a").unwrap_err();
            let got = match e {
                TargetError::Auth { .. } => "auth",
                TargetError::Config { .. } => "config",
                TargetError::Throttled { .. } => "throttled",
                TargetError::Unavailable { .. } => "unavailable",
                TargetError::Rejected { .. } => "rejected",
            };
            assert_eq!(got, want, "LDAP {rc}");
            assert!(e.stops_target(), "LDAP {rc}");
            let text = e.to_string();
            assert!(text.contains("add uid=a: ") && text.contains(&format!("(LDAP {rc})")), "{text}");
        }
        let rejected: &[(u32, RejectKind)] = &[
            (68, Exists),
            (32, NotFound),
            (19, Constraint),
            (20, Constraint),
            (65, Schema),
            (17, Schema),
            (21, Schema),
            (64, Schema),
            (67, Schema),
            (69, Schema),
            (50, Access),
            (16, Other),
            (1, Other),
        ];
        for &(rc, kind) in rejected {
            let e = from_result(result(rc, ""), "add uid=a").unwrap_err();
            assert_eq!(e.reject_kind(), Some(kind), "LDAP {rc}");
            assert!(!e.stops_target(), "LDAP {rc}");
            assert!(e.source().is_none(), "LDAP {rc}: the result code is the whole answer");
        }
        assert!(from_result(result(0, ""), "add uid=a").is_ok());
    }

    /// The wording that the README, the tests and operators know is kept.
    #[test]
    fn messages_keep_their_wording() {
        let msg = |rc, text| from_result(result(rc, text), "add uid=a,ou=p").unwrap_err().to_string();
        assert_eq!(msg(68, ""), "rejected: add uid=a,ou=p: entry already exists (LDAP 68)");
        assert_eq!(msg(32, "no parent"), "rejected: add uid=a,ou=p: no such object (LDAP 32) (no parent)");
        assert_eq!(
            msg(50, ""),
            "rejected: add uid=a,ou=p: insufficient access; the bind DN needs the right to create objects of this \
             class in the container (AD: Create User, Organizational Unit and Group objects, delegated on base_dn) \
             (LDAP 50)"
        );
        let denied = |what: &str| from_result(result(50, ""), what).unwrap_err().to_string();
        assert!(denied("add members of cn=g").contains("write member on the groups"));
        assert!(denied("modify uid=a").contains("Write All Properties"));
        assert!(denied("move uid=a to ou=b").contains("Create and Delete User objects"));
        assert!(denied("disable uid=a").contains("userAccountControl"));
        assert_eq!(
            msg(49, ""),
            "authentication failed: add uid=a,ou=p: invalid credentials; check bind_dn and the password file (LDAP 49)"
        );
        assert_eq!(msg(51, ""), "target throttled: add uid=a,ou=p: server busy; the next run tries again (LDAP 51)");
    }

    #[test]
    fn a_result_inside_an_ldap_error_maps_like_the_result() {
        let e = from_ldap(LdapError::LdapResult { result: result(68, "") }, "add uid=a");
        assert_eq!(e.reject_kind(), Some(RejectKind::Exists));
    }

    /// A lost connection is unavailable and keeps the I/O error as its source; a TLS failure is
    /// a config error that says which setting fixes it, and keeps the TLS error.
    #[test]
    fn transport_errors_keep_their_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = from_ldap(LdapError::from(io), "connect to ldap://127.0.0.1:1");
        assert!(matches!(e, TargetError::Unavailable { .. }), "{e:?}");
        assert_eq!(e.to_string(), "target unavailable: connect to ldap://127.0.0.1:1");
        assert_eq!(
            connector_api::one_line(&e),
            "target unavailable: connect to ldap://127.0.0.1:1: I/O error: Connection refused"
        );
        let io_source = e.source().and_then(|s| s.downcast_ref::<LdapError>());
        assert!(matches!(io_source, Some(LdapError::Io { .. })), "{io_source:?}");

        let bad_cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, bad_cert);
        let e = from_ldap(LdapError::from(io), "connect to ldaps://x");
        assert!(matches!(e, TargetError::Config { .. }), "{e:?}");
        assert!(e.to_string().contains("tls_ca_file"), "{e}");
        assert!(connector_api::one_line(&e).contains("invalid peer certificate"), "{}", connector_api::one_line(&e));
        assert!(e.stops_target());
    }
}
