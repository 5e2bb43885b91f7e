//! The authentication keys every HTTP connector's table spells the same way (SCIM today, the
//! SS 12000 source next): a static bearer token (`token_file` or `token_env`), or OAuth2 client
//! credentials (`token_url`, `client_id`, `client_secret_file` or `client_secret_env`, `scope`,
//! `client_auth`). Config tables are strict (`deny_unknown_fields`, so no `serde(flatten)`):
//! each connector lists these keys in its own config and hands them here as [`AuthKeys`], which
//! checks them ([`AuthKeys::validate`]) and turns them into an [`Auth`] ([`AuthKeys::auth`]).

use crate::{Auth, ClientAuth, Credentials, OAuthSettings};
use connector_api::load_configured_secret;
use std::path::Path;

/// A connector's authentication keys, borrowed from its config.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthKeys<'a> {
    /// `token_file`: a file holding a static bearer token.
    pub token_file: Option<&'a Path>,
    /// `token_env`: an environment variable holding a static bearer token.
    pub token_env: Option<&'a str>,
    /// `token_url`: the OAuth2 token endpoint.
    pub token_url: Option<&'a str>,
    /// `client_id`: the OAuth2 client id.
    pub client_id: Option<&'a str>,
    /// `client_secret_file`: a file holding the OAuth2 client secret.
    pub client_secret_file: Option<&'a Path>,
    /// `client_secret_env`: an environment variable holding the OAuth2 client secret.
    pub client_secret_env: Option<&'a str>,
    /// `scope`: space-separated OAuth2 scopes.
    pub scope: Option<&'a str>,
    /// `client_auth`: how the client authenticates to the token endpoint.
    pub client_auth: ClientAuth,
}

impl AuthKeys<'_> {
    /// Checks that the keys describe one way to authenticate, whole. Pure.
    pub fn validate(&self) -> Result<(), String> {
        let token = self.token_file.is_some() || self.token_env.is_some();
        let oauth = self.token_url.is_some() || self.client_id.is_some();
        match (token, oauth) {
            (true, true) => {
                return Err("give a token (token_file, token_env) or OAuth2 client credentials, not both".into());
            }
            (false, false) => {
                return Err("no credentials: give token_file or token_env, or token_url and client_id with \
                            client_secret_file"
                    .into());
            }
            _ => {}
        }
        if oauth {
            if self.token_url.is_none() || self.client_id.is_none() {
                return Err("OAuth2 client credentials need both token_url and client_id".into());
            }
            if self.client_secret_file.is_none() && self.client_secret_env.is_none() {
                return Err("OAuth2 client credentials need client_secret_file or client_secret_env".into());
            }
        }
        Ok(())
    }

    /// Reads the secret the keys name (warning when its file is open to other users) and gives
    /// the client's [`Auth`]. `table` names the config table for messages (`[targets.lms]`).
    /// Contacts nothing.
    pub fn auth(&self, table: &str) -> Result<Auth, String> {
        match self.token_url {
            Some(token_url) => {
                let what = format!("OAuth2 client secret of {table}");
                let client_secret = load_configured_secret(self.client_secret_file, self.client_secret_env, &what)?;
                let client_id = self
                    .client_id
                    .ok_or_else(|| format!("{table}: OAuth2 client credentials need both token_url and client_id"))?;
                Ok(Auth::OAuth(OAuthSettings {
                    token_url: token_url.to_string(),
                    scope: self.scope.map(str::to_string),
                    credentials: Credentials::Secret {
                        client_id: client_id.to_string(),
                        client_secret,
                        client_auth: self.client_auth,
                    },
                }))
            }
            None => {
                let what = format!("bearer token of {table}");
                Ok(Auth::Bearer(load_configured_secret(self.token_file, self.token_env, &what)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_way_to_authenticate_whole() {
        let file = Path::new("token");
        AuthKeys { token_file: Some(file), ..Default::default() }.validate().unwrap();
        let both = AuthKeys { token_file: Some(file), token_url: Some("https://x/token"), ..Default::default() };
        assert!(both.validate().unwrap_err().contains("not both"));
        assert!(AuthKeys::default().validate().unwrap_err().starts_with("no credentials"));
        let half = AuthKeys { token_url: Some("https://x/token"), ..Default::default() };
        assert!(half.validate().unwrap_err().contains("both token_url and client_id"));
        let no_secret = AuthKeys { token_url: Some("https://x/token"), client_id: Some("enid"), ..Default::default() };
        assert!(no_secret.validate().unwrap_err().contains("client_secret_file"));
    }

    #[test]
    fn the_keys_become_the_clients_auth() {
        let dir = std::env::temp_dir().join(format!("enid-http-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let bearer = AuthKeys { token_file: Some(&secret), ..Default::default() }.auth("[targets.lms]").unwrap();
        assert!(matches!(&bearer, Auth::Bearer(t) if t.expose() == "s3cret"));
        let keys = AuthKeys {
            token_url: Some("https://idp/token"),
            client_id: Some("enid"),
            client_secret_file: Some(&secret),
            scope: Some("scim"),
            client_auth: ClientAuth::Form,
            ..Default::default()
        };
        let Auth::OAuth(o) = keys.auth("[targets.lms]").unwrap() else { panic!("oauth") };
        let Credentials::Secret { client_id, client_secret, client_auth } = &o.credentials else { panic!("a secret") };
        assert_eq!((o.token_url.as_str(), client_id.as_str()), ("https://idp/token", "enid"));
        assert_eq!(
            (client_secret.expose(), o.scope.as_deref(), *client_auth),
            ("s3cret", Some("scim"), ClientAuth::Form)
        );
        let missing = AuthKeys { token_file: Some(&dir.join("nope")), ..Default::default() };
        let e = missing.auth("[targets.lms]").unwrap_err();
        assert!(e.starts_with("bearer token of [targets.lms]: the file named by the *_file key does not exist"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
