//! Signed assertions (RFC 7523) that a token endpoint takes in place of a client secret, made
//! with `jsonwebtoken` (RS256; the RustCrypto backend, constant-time RSA since `rsa` 0.10):
//!
//! - the **JWT bearer grant** (§2.1) of a Google service account with domain-wide delegation:
//!   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and the assertion, signed with the
//!   key of the service account's JSON key file (`kid` = its `private_key_id`), with `iss` = its
//!   `client_email`, `sub` = the administrator it acts as, `scope`, `aud` = the token endpoint,
//!   `iat` and `exp` an hour apart;
//! - **client authentication by assertion** (§2.2) with a certificate, as Microsoft Entra takes
//!   it: `grant_type=client_credentials` with `client_assertion_type=
//!   urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and the assertion, signed with the
//!   certificate's key, its header naming the certificate by thumbprint (`x5t`, SHA-1, and
//!   `x5t#S256`), `iss` = `sub` = the client id, `aud` = the token endpoint, a fresh `jti`,
//!   `nbf`, and `exp` ten minutes on.
//!
//! The keys are read once, when the connector is built; a key that does not read is a config
//! error naming the file and what is wrong with it, never its content.

use base64::Engine as _;
use connector_api::Secret;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::path::Path;

/// The `grant_type` of the JWT bearer grant (RFC 7523 §2.1).
pub(crate) const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The `client_assertion_type` of a client authenticated by a JWT (RFC 7523 §2.2).
pub(crate) const JWT_CLIENT_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a grant's assertion is good for (Google takes at most an hour).
const GRANT_LIFETIME: i64 = 3600;
/// How long a client assertion is good for.
const CLIENT_ASSERTION_LIFETIME: i64 = 600;

/// The key of a Google service account, from its JSON key file.
#[derive(Clone)]
pub struct ServiceAccountKey {
    /// `client_email`: the assertion's issuer.
    pub client_email: String,
    /// `private_key_id`: the assertion's `kid`.
    pub private_key_id: String,
    /// `token_uri`: where the assertion goes, and its audience.
    pub token_uri: String,
    key: EncodingKey,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Reads a service account's JSON key file (warning when other users may read it). `what`
    /// names it for messages (`credentials_file of [targets.google]`).
    pub fn load(path: &Path, what: &str) -> Result<ServiceAccountKey, String> {
        let text = connector_api::load_secret_file(path, what)?;
        ServiceAccountKey::from_json(text.expose(), what)
    }

    /// The key from the JSON of a key file. Errors name the field that is missing or wrong,
    /// never the key.
    pub fn from_json(text: &str, what: &str) -> Result<ServiceAccountKey, String> {
        #[derive(serde::Deserialize)]
        struct KeyFile {
            #[serde(rename = "type")]
            kind: Option<String>,
            client_email: Option<String>,
            private_key: Option<String>,
            private_key_id: Option<String>,
            token_uri: Option<String>,
        }
        let file: KeyFile = serde_json::from_str(text).map_err(|e| {
            format!("{what}: not a service account's JSON key file (line {}, column {})", e.line(), e.column())
        })?;
        if file.kind.as_deref().is_some_and(|k| k != "service_account") {
            return Err(format!(
                "{what}: a key file of type {:?}, not \"service_account\"; create a key for a service account in the \
                 Google Cloud console",
                file.kind.unwrap_or_default()
            ));
        }
        let field = |v: Option<String>, name: &str| {
            v.filter(|v| !v.trim().is_empty()).ok_or_else(|| format!("{what}: the key file has no {name}"))
        };
        let private_key = field(file.private_key, "private_key")?;
        let key = EncodingKey::from_rsa_pem(private_key.as_bytes())
            .map_err(|e| format!("{what}: private_key is not an RSA key in PEM ({e})"))?;
        Ok(ServiceAccountKey {
            client_email: field(file.client_email, "client_email")?,
            private_key_id: field(file.private_key_id, "private_key_id")?,
            token_uri: field(file.token_uri, "token_uri")?,
            key,
        })
    }
}

/// A certificate's private key, and the certificate's thumbprints that name it.
#[derive(Clone)]
pub struct CertificateKey {
    /// Base64url SHA-1 of the certificate's DER (`x5t`).
    pub x5t: String,
    /// Base64url SHA-256 of the certificate's DER (`x5t#S256`).
    pub x5t_s256: String,
    key: EncodingKey,
}

impl std::fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateKey").field("x5t", &self.x5t).finish_non_exhaustive()
    }
}

impl CertificateKey {
    /// Reads a certificate (PEM, the first one in the file) and its RSA private key (PEM,
    /// warning when other users may read it). `what` names them for messages.
    pub fn load(cert_file: &Path, key_file: &Path, what: &str) -> Result<CertificateKey, String> {
        use rustls_pki_types::pem::PemObject;
        let cert = rustls_pki_types::CertificateDer::from_pem_file(cert_file)
            .map_err(|e| format!("{what}: {} holds no certificate in PEM ({e})", cert_file.display()))?;
        let key = connector_api::load_secret_file(key_file, what)?;
        CertificateKey::from_parts(cert.as_ref(), key.expose()).map_err(|e| format!("{what}: the key file: {e}"))
    }

    /// The key from a certificate's DER and its private key's PEM.
    pub fn from_parts(cert_der: &[u8], key_pem: &str) -> Result<CertificateKey, String> {
        use sha1::Digest as _;
        let key = EncodingKey::from_rsa_pem(key_pem.as_bytes())
            .map_err(|e| format!("not an RSA private key in PEM ({e})"))?;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Ok(CertificateKey {
            x5t: b64(&sha1::Sha1::digest(cert_der)),
            x5t_s256: b64(&sha2::Sha256::digest(cert_der)),
            key,
        })
    }
}

/// How the client proves itself with a signed assertion.
#[derive(Debug, Clone)]
pub enum Assertion {
    /// RFC 7523 §2.1: the assertion is the grant (a Google service account acting, with
    /// domain-wide delegation, as `subject`).
    Grant { key: ServiceAccountKey, subject: Option<String> },
    /// RFC 7523 §2.2: client credentials, the client authenticated by an assertion signed with
    /// its certificate's key (Microsoft Entra).
    ClientCertificate { client_id: String, key: CertificateKey },
}

impl Assertion {
    /// The form fields of a token request with a fresh assertion for `audience` (the token
    /// endpoint), at `now` (seconds since the epoch). The assertion is a secret.
    pub(crate) fn form(
        &self,
        audience: &str,
        scope: Option<&str>,
        now: i64,
    ) -> Result<Vec<(&'static str, Secret)>, String> {
        let plain = |s: &str| Secret::new(s.to_string());
        match self {
            Assertion::Grant { key, subject } => {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some(key.private_key_id.clone());
                let mut claims = serde_json::json!({
                    "iss": key.client_email,
                    "aud": audience,
                    "iat": now,
                    "exp": now + GRANT_LIFETIME,
                });
                if let Some(scope) = scope {
                    claims["scope"] = scope.into();
                }
                if let Some(sub) = subject {
                    claims["sub"] = sub.as_str().into();
                }
                let jwt = sign(&header, &claims, &key.key)?;
                Ok(vec![("grant_type", plain(JWT_BEARER_GRANT)), ("assertion", jwt)])
            }
            Assertion::ClientCertificate { client_id, key } => {
                let mut header = Header::new(Algorithm::RS256);
                header.x5t = Some(key.x5t.clone());
                header.x5t_s256 = Some(key.x5t_s256.clone());
                let claims = serde_json::json!({
                    "iss": client_id,
                    "sub": client_id,
                    "aud": audience,
                    "jti": jti()?,
                    "nbf": now,
                    "iat": now,
                    "exp": now + CLIENT_ASSERTION_LIFETIME,
                });
                let jwt = sign(&header, &claims, &key.key)?;
                let mut form = vec![
                    ("grant_type", plain("client_credentials")),
                    ("client_id", plain(client_id)),
                    ("client_assertion_type", plain(JWT_CLIENT_ASSERTION)),
                    ("client_assertion", jwt),
                ];
                if let Some(scope) = scope {
                    form.push(("scope", plain(scope)));
                }
                Ok(form)
            }
        }
    }
}

/// A signed JWT, as a secret (it is a credential while it lives).
fn sign(header: &Header, claims: &serde_json::Value, key: &EncodingKey) -> Result<Secret, String> {
    jsonwebtoken::encode(header, claims, key)
        .map(Secret::new)
        .map_err(|e| format!("cannot sign the token request's assertion ({e})"))
}

/// A unique assertion id: 128 random bits.
fn jti() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("the OS random source failed ({e})"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_that_is_not_a_service_accounts_names_what_is_wrong_and_never_the_key() {
        let e = ServiceAccountKey::from_json("{", "credentials_file").unwrap_err();
        assert!(e.contains("not a service account's JSON key file"), "{e}");
        let e = ServiceAccountKey::from_json(r#"{"type":"authorized_user"}"#, "credentials_file").unwrap_err();
        assert!(e.contains("authorized_user"), "{e}");
        let e = ServiceAccountKey::from_json(
            r#"{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#,
            "credentials_file",
        )
        .unwrap_err();
        assert!(e.contains("private_key is not an RSA key") && !e.contains("AAAA"), "{e}");
        let e = ServiceAccountKey::from_json(r#"{"type":"service_account"}"#, "credentials_file").unwrap_err();
        assert!(e.ends_with("has no private_key"), "{e}");
    }
}
