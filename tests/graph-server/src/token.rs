//! The tenant's token endpoint (`/{tenant}/oauth2/v2.0/token`), client credentials only, as
//! Entra checks them: the client id, the `.default` scope of Graph, and either the client
//! secret or a client assertion signed with the registered certificate's key (RS256, the
//! certificate named by `x5t`, `iss` = `sub` = the client id, the token endpoint as audience,
//! not expired, a `jti`). A refusal is Entra's (`invalid_client` with an AADSTS code).

use crate::state::{Reply, State};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Instant;

fn refuse(status: u16, error: &str, description: &str) -> Reply {
    Reply::raw(status, json!({"error": error, "error_description": description, "error_codes": [7000215]}).to_string())
}

pub(crate) fn token(state: &mut State, tenant: &str, body: &[u8], now: Instant) -> Reply {
    if tenant != state.config.tenant_id {
        return refuse(400, "invalid_request", "AADSTS90002: Tenant not found.");
    }
    let form: BTreeMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return refuse(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.");
    }
    if form.get("client_id") != Some(&state.config.client_id) {
        return refuse(400, "unauthorized_client", "AADSTS700016: Application not found in the directory.");
    }
    if form.get("scope").map(String::as_str) != Some("https://graph.microsoft.com/.default") {
        return refuse(400, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid.");
    }
    let authenticated = match (form.get("client_secret"), form.get("client_assertion")) {
        (Some(secret), None) => state.config.client_secret.as_deref() == Some(secret.as_str()),
        (None, Some(assertion)) => {
            form.get("client_assertion_type").map(String::as_str)
                == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                && assertion_ok(state, assertion)
        }
        _ => false,
    };
    if !authenticated {
        return refuse(
            401,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided, or the client assertion does not verify.",
        );
    }
    let n = state.tokens.len() + 1;
    let token = format!("eyJ0-test-{n}");
    let lifetime = state.config.token_lifetime;
    state.tokens.insert(token.clone(), now + lifetime);
    Reply::raw(
        200,
        json!({"token_type": "Bearer", "expires_in": lifetime.as_secs(), "ext_expires_in": lifetime.as_secs(),
               "access_token": token})
        .to_string(),
    )
}

fn assertion_ok(state: &State, assertion: &str) -> bool {
    let Some(cert) = &state.config.certificate else { return false };
    let Ok(header) = jsonwebtoken::decode_header(assertion) else { return false };
    if header.x5t.as_deref() != Some(cert.x5t.as_str()) {
        return false;
    }
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(cert.public_key_pem.as_bytes()) else { return false };
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[state.config.token_audience.as_str()]);
    v.set_issuer(&[state.config.client_id.as_str()]);
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    v.sub = Some(state.config.client_id.clone());
    match jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &v) {
        Ok(d) => d.claims["jti"].as_str().is_some_and(|j| !j.is_empty()),
        Err(_) => false,
    }
}
