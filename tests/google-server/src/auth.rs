//! The token endpoint of a service account with domain-wide delegation, checked as Google
//! checks it: `grant_type` the JWT bearer grant, the assertion's RS256 signature against the
//! service account's public key, its `kid`, `iss` (the service account's email), `aud` (the
//! token endpoint), `iat`/`exp` (an hour at most, not expired), a subject that the delegation
//! covers, and scopes granted to it. A refusal is Google's: `invalid_grant`, or
//! `unauthorized_client` when the delegation does not cover the subject or a scope.

use crate::state::{Reply, State};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn refuse(status: u16, error: &str, description: &str) -> Reply {
    Reply { status, body: json!({"error": error, "error_description": description}).to_string(), headers: Vec::new() }
}

pub(crate) fn token(state: &mut State, body: &[u8], now: Instant) -> Reply {
    let form: std::collections::BTreeMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return refuse(400, "unsupported_grant_type", "Invalid grant_type");
    }
    let Some(assertion) = form.get("assertion") else {
        return refuse(400, "invalid_request", "Missing required parameter: assertion");
    };
    let sa = &state.config.service_account;
    let Ok(header) = jsonwebtoken::decode_header(assertion) else {
        return refuse(400, "invalid_grant", "Invalid JWT: the header does not read");
    };
    if header.alg != jsonwebtoken::Algorithm::RS256 || header.kid.as_deref() != Some(sa.key_id.as_str()) {
        return refuse(400, "invalid_grant", "Invalid JWT Signature.");
    }
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(sa.public_key_pem.as_bytes()) else {
        return refuse(500, "internal_failure", "the server's key does not read");
    };
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[state.config.token_audience.as_str()]);
    v.set_issuer(&[sa.client_email.as_str()]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    v.leeway = 0;
    let claims: Value = match jsonwebtoken::decode::<Value>(assertion, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => {
                    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
                }
                ErrorKind::InvalidAudience => "Invalid JWT: Failed audience check.",
                ErrorKind::InvalidIssuer => "Invalid JWT: the issuer is not the service account",
                _ => "Invalid JWT Signature.",
            };
            return refuse(400, "invalid_grant", why);
        }
    };
    let (iat, exp) = (claims["iat"].as_i64().unwrap_or(0), claims["exp"].as_i64().unwrap_or(0));
    if exp - iat > 3600 || exp <= iat {
        return refuse(
            400,
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    let subject = claims["sub"].as_str().unwrap_or_default().to_lowercase();
    let asked: BTreeSet<String> =
        claims["scope"].as_str().unwrap_or_default().split_whitespace().map(String::from).collect();
    let granted: BTreeSet<String> = state.config.granted_scopes.iter().cloned().collect();
    let delegated = state.config.admins.iter().any(|a| a.to_lowercase() == subject);
    if !delegated || asked.is_empty() || !asked.is_subset(&granted) {
        return refuse(
            401,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
        );
    }
    let n = state.tokens.len() + 1;
    let token = format!("ya29.test-{n}-{}", subject.replace(['@', '.'], "-"));
    let lifetime = state.config.token_lifetime;
    state.tokens.insert(token.clone(), (subject, asked, now + lifetime));
    Reply {
        status: 200,
        body: json!({"access_token": token, "expires_in": lifetime.as_secs(), "token_type": "Bearer"}).to_string(),
        headers: Vec::new(),
    }
}

/// How long the tokens live by default (Google's: an hour).
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(3599);
