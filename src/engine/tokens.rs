//! API tokens: made, listed and revoked for every front end (`enid token`), and checked for
//! each request to the HTTP API. A token is 32 random bytes shown once (hex, prefixed `enid_`);
//! the state keeps only its SHA-256, and a presented token is compared with every active hash
//! in constant time, so neither a copy of the state nor the timing of an answer gives one away.

use super::queries::Viewer;
use super::{Engine, EngineError};
use crate::store::{StateStore, TokenRow};
use chrono::{DateTime, SecondsFormat, Utc};
use connector_api::Secret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    /// Everything the API offers, for every school unit.
    Admin,
    /// Runs, log rows, persons and first passwords of their own school units only.
    SchoolAdmin,
}

impl TokenRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Admin => "admin",
            TokenRole::SchoolAdmin => "school_admin",
        }
    }

    /// `admin` or `school_admin`.
    pub fn parse(s: &str) -> Option<TokenRole> {
        match s {
            "admin" => Some(TokenRole::Admin),
            "school_admin" => Some(TokenRole::SchoolAdmin),
            _ => None,
        }
    }
}

/// A token as it may be listed: never its hash.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: String,
    pub schools: Vec<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// Who a request's token says is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name: what decisions made with it record.
    pub name: String,
    pub role: TokenRole,
    /// What they may see.
    pub viewer: Viewer,
}

/// The token's hash as the state keeps it (a session cookie's too).
pub(super) fn hash(token: &str) -> String {
    crate::core::id::hex(&Sha256::digest(token.as_bytes())).into()
}

impl Engine {
    /// Makes a new token; returns it, the only time it exists outside the caller's hands.
    pub async fn add_token(
        &self,
        name: &str,
        role: TokenRole,
        schools: &[String],
        now: DateTime<Utc>,
    ) -> Result<Secret, EngineError> {
        let fail = |m: String| EngineError::Token(m);
        if name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
        {
            return Err(fail(format!(
                "token name {name:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@' (it is shown in logs and \
                 decisions)"
            )));
        }
        let mut schools: Vec<String> = schools.iter().map(|s| s.trim().to_string()).collect();
        schools.sort();
        schools.dedup();
        match role {
            TokenRole::SchoolAdmin if schools.is_empty() || schools.iter().any(String::is_empty) => {
                return Err(fail("a school_admin token needs its school units: --school UNIT (repeated)".into()));
            }
            TokenRole::Admin if !schools.is_empty() => {
                return Err(fail("an admin token sees every school unit; --school is for --role school_admin".into()));
            }
            _ => {}
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| fail(format!("the OS random source failed: {e}")))?;
        let token: String = format!("enid_{}", crate::core::id::hex(&bytes));
        let row = TokenRow {
            name: name.to_string(),
            hash: hash(&token),
            role: role.as_str().to_string(),
            schools,
            created_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            revoked_at: None,
        };
        if !self.store.add_token(&row).await? {
            return Err(fail(format!("a token named {name:?} exists (revoked names stay taken); choose another name")));
        }
        Ok(Secret::new(token))
    }

    /// Every token, revoked ones too, without their hashes.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, EngineError> {
        Ok(self
            .store
            .tokens()
            .await?
            .into_iter()
            .map(|t| TokenInfo {
                name: t.name,
                role: t.role,
                schools: t.schools,
                created_at: t.created_at,
                revoked_at: t.revoked_at,
            })
            .collect())
    }

    /// Revokes the token `name`: from now on it opens nothing.
    pub async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> Result<(), EngineError> {
        if self.store.revoke_token(name, now).await? {
            return Ok(());
        }
        Err(EngineError::Token(format!("no active token named {name:?}; `enid token list` shows them")))
    }

    /// Who the presented token is: `None` for a token that is not one, or is revoked.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, EngineError> {
        let presented = hash(token);
        let mut found = None;
        // Every active token is compared, whichever matches, so the time taken says nothing.
        for t in self.store.tokens().await? {
            let same: bool = t.hash.as_bytes().ct_eq(presented.as_bytes()).into();
            if same && t.revoked_at.is_none() {
                found = Some(t);
            }
        }
        let Some(t) = found else { return Ok(None) };
        principal_of(t).map(Some)
    }
}

/// Who a token (found, not revoked) is.
pub(super) fn principal_of(t: TokenRow) -> Result<Principal, EngineError> {
    let role = TokenRole::parse(&t.role).ok_or_else(|| {
        EngineError::Token(format!("token {:?} has an unknown role {:?} in the state", t.name, t.role))
    })?;
    let viewer = match role {
        TokenRole::Admin => Viewer::admin(),
        TokenRole::SchoolAdmin => Viewer::of_schools(t.schools),
    };
    Ok(Principal { name: t.name, role, viewer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_hash_is_sha256_of_the_token_and_not_the_token() {
        let h = hash("enid_00");
        assert_eq!(h.len(), 64);
        assert!(!h.contains("enid_00"));
        assert_eq!(h, hash("enid_00"));
        assert_ne!(h, hash("enid_01"));
    }
}
