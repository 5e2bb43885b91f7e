//! Sessions of the web page: signed in with an API token, kept in the state database so that a
//! restart of the service keeps them. The browser holds a random cookie value; the state keeps
//! only its SHA-256 and the token's name, so a copy of the state opens no session, and a revoked
//! token ends every session signed in with it. Each session has its own form token (CSRF) that
//! every form carries back.

use super::tokens::{Principal, hash, principal_of};
use super::{Engine, EngineError};
use crate::store::{SessionRow, StateStore};
use chrono::{DateTime, Utc};
use connector_api::Secret;
use subtle::ConstantTimeEq;

/// A session just begun: the cookie's value (for the browser only), and whose it is.
#[derive(Debug)]
pub struct NewSession {
    pub cookie: Secret,
    pub session: Session,
}

/// A session in force.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    /// What the session's forms carry back.
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// Whether a form's token is this session's (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// 32 random bytes as hex.
fn random_hex() -> Result<String, EngineError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| EngineError::Token(format!("the OS random source failed: {e}")))?;
    Ok(crate::core::id::hex(&bytes).into())
}

impl Engine {
    /// Signs in with an API token: a new session until `now + lasts`, or `None` for a token
    /// that is not one (or is revoked). Expired sessions are cleared on the way.
    pub async fn sign_in(
        &self,
        token: &str,
        now: DateTime<Utc>,
        lasts: chrono::Duration,
    ) -> Result<Option<NewSession>, EngineError> {
        let Some(principal) = self.authenticate(token).await? else { return Ok(None) };
        self.store.remove_expired_sessions(now).await?;
        let cookie = random_hex()?;
        let row = SessionRow {
            id: hash(&cookie),
            token_name: principal.name.clone(),
            csrf: random_hex()?,
            created_at: now,
            expires_at: now + lasts,
        };
        self.store.add_session(&row).await?;
        let session = Session { principal, csrf: row.csrf, expires_at: row.expires_at };
        Ok(Some(NewSession { cookie: Secret::new(cookie), session }))
    }

    /// The session a cookie opens: `None` when it is unknown, expired, or its token revoked.
    pub async fn session(&self, cookie: &str, now: DateTime<Utc>) -> Result<Option<Session>, EngineError> {
        let Some(row) = self.store.session(&hash(cookie), now).await? else { return Ok(None) };
        let token = self.store.tokens().await?.into_iter().find(|t| t.name == row.token_name);
        match token {
            Some(t) if t.revoked_at.is_none() => {
                Ok(Some(Session { principal: principal_of(t)?, csrf: row.csrf, expires_at: row.expires_at }))
            }
            _ => {
                self.store.remove_session(&row.id).await?;
                Ok(None)
            }
        }
    }

    /// Ends the session a cookie opens (nothing when there is none).
    pub async fn sign_out(&self, cookie: &str) -> Result<(), EngineError> {
        Ok(self.store.remove_session(&hash(cookie)).await?)
    }
}
