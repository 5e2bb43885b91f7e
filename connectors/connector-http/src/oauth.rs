//! OAuth2 tokens from a token endpoint: client credentials (RFC 6749 §4.4), the client
//! authenticated by HTTP Basic (§2.3.1, the default) or in the form body, or by a signed
//! assertion (RFC 7523, [`crate::assertion`]: a Google service account's grant, an Entra
//! certificate); cached, and fetched again a minute before they expire or when the API answers
//! 401. One fetch at a time: requests that find the token expiring wait for the fetch under way.

use crate::error::{FailureKind, HttpFailure};
use connector_api::Secret;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How the client proves itself to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// `Authorization: Basic` with the client id and secret (RFC 6749 §2.3.1).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Form,
}

/// The token endpoint and the client's credentials.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub token_url: String,
    /// Space-separated scopes, when the endpoint wants them.
    pub scope: Option<String>,
    pub credentials: Credentials,
}

/// What the client proves itself with.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A client id and secret (RFC 6749 §2.3.1).
    Secret { client_id: String, client_secret: Secret, client_auth: ClientAuth },
    /// A signed assertion (RFC 7523).
    Assertion(crate::Assertion),
}

/// A token renewed this long before it expires.
const EARLY: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub(crate) struct TokenSource {
    settings: OAuthSettings,
    cached: Mutex<Option<(Secret, Instant)>>,
}

impl TokenSource {
    pub(crate) fn new(settings: OAuthSettings) -> TokenSource {
        TokenSource { settings, cached: Mutex::new(None) }
    }

    /// A token good for a while; a new one when `fresh` (the API refused the last).
    pub(crate) async fn token(&self, client: &reqwest::Client, fresh: bool) -> Result<Secret, HttpFailure> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && !fresh
            && Instant::now() + EARLY < *until
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.fetch(client).await?;
        *cached = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    async fn fetch(&self, client: &reqwest::Client) -> Result<(Secret, Duration), HttpFailure> {
        let s = &self.settings;
        let what = format!("get a token from {}", s.token_url);
        let mut req = client.post(&s.token_url).header(reqwest::header::ACCEPT, "application/json");
        let fields: Vec<(&str, Secret)> = match &s.credentials {
            Credentials::Secret { client_id, client_secret, client_auth } => {
                let mut form = vec![("grant_type", Secret::new("client_credentials"))];
                if let Some(scope) = &s.scope {
                    form.push(("scope", Secret::new(scope.clone())));
                }
                match client_auth {
                    ClientAuth::Basic => {
                        req = req.basic_auth(form_encode(client_id), Some(form_encode(client_secret.expose())))
                    }
                    ClientAuth::Form => {
                        form.push(("client_id", Secret::new(client_id.clone())));
                        form.push(("client_secret", client_secret.clone()));
                    }
                }
                form
            }
            Credentials::Assertion(a) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                a.form(&s.token_url, s.scope.as_deref(), now).map_err(|m| HttpFailure::auth(&format!("{what}: {m}")))?
            }
        };
        let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.expose())).collect();
        let resp = req.form(&form).send().await.map_err(|e| {
            let mut f = HttpFailure::from_reqwest(e);
            f.message = format!("{what}: {}", f.message);
            f
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(HttpFailure::from_reqwest)?;
        if !(200..300).contains(&status) {
            let mut f = HttpFailure::from_status(status, None, &bytes);
            // Refused credentials are an operator's to fix; an endpoint that is down is not.
            if matches!(status, 400 | 401 | 403) {
                f.kind = FailureKind::Auth;
            }
            f.message = format!("{what}: HTTP {status}: {}", f.message);
            return Err(f);
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
            #[serde(default)]
            token_type: Option<String>,
        }
        let a: Answer = serde_json::from_slice(&bytes).map_err(|e| HttpFailure {
            kind: FailureKind::Auth,
            retry_after: None,
            message: format!("{what}: the answer has no access_token ({e})"),
            scim_type: None,
            source: None,
        })?;
        if a.token_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
            return Err(HttpFailure::auth(&format!("{what}: a {:?} token, not a bearer token", a.token_type)));
        }
        // Without a lifetime, one that is renewed early and often.
        Ok((Secret::new(a.access_token), Duration::from_secs(a.expires_in.unwrap_or(300))))
    }
}

/// RFC 6749 §2.3.1: the client id and secret are form-encoded before they go into Basic.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_credentials_are_form_encoded_first() {
        assert_eq!(super::form_encode("enid client"), "enid+client");
        assert_eq!(super::form_encode("a:b/c"), "a%3Ab%2Fc");
    }
}
