//! Active Directory (`type = "ad"`): accounts as `user` objects named `CN=<display name>` in an
//! OU per school unit, `sAMAccountName` the username, `userPrincipalName` username@suffix, the
//! owner marker in `employeeNumber`, the anchor `objectGUID` (read after the add: AD sends no
//! Post-Read), enabled and disabled by `userAccountControl` (other flags kept), movers between
//! school units moved by modrdn (`objectGUID` kept), security groups with members by DN (large
//! groups read with range retrieval). Every account gets a password from the engine: created
//! disabled with it in the add, then enabled, so it never exists enabled without one. Passwords
//! go only over LDAPS or StartTLS.
//!
//! `config` holds the settings and what they declare; `search` the reads; `ops` the writes.

mod config;
mod ops;
mod search;

pub use config::{AdConfig, AdGroupsConfig, InitialPassword};

use crate::conn::{Conn, ConnSettings};
use crate::dn::normalize_dn;
use connector_api::{
    Capabilities, Field, Lookup, ObservedAccount, ObservedGroup, OpOutcome, Secret, Target, TargetError, TargetOp,
};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::Mutex;

/// `userAccountControl` bits enid reads and writes.
pub(crate) const UAC_DISABLED: u32 = 0x2;
pub(crate) const UAC_NORMAL: u32 = 0x200;

/// An Active Directory domain as an enid target.
#[derive(Debug)]
pub struct AdTarget {
    config: AdConfig,
    conn: Conn,
    caps: Capabilities,
    /// `exclude_under`, normalised.
    excluded_norm: Vec<String>,
    /// OUs known to exist (normalised DNs), so each is looked for once.
    ous: Mutex<HashSet<String>>,
}

impl AdTarget {
    pub fn new(config: AdConfig, password: Secret) -> Self {
        let conn = Conn::new(
            ConnSettings {
                url: config.url.clone(),
                starttls: config.starttls,
                tls_ca_file: config.tls_ca_file.clone(),
                tls_insecure_skip_verify: config.tls_insecure_skip_verify,
                bind_dn: config.bind_dn.clone(),
                timeout: Duration::from_secs(config.timeout_secs),
                connections: config.connections,
            },
            password,
        );
        let caps = config.capabilities();
        let excluded_norm = config.exclude_under.iter().map(|c| normalize_dn(c)).collect();
        AdTarget { config, conn, caps, excluded_norm, ous: Mutex::new(HashSet::new()) }
    }

    pub fn config(&self) -> &AdConfig {
        &self.config
    }

    /// Runs `f`, forgetting the connection when the failure says it may be broken.
    async fn guarded<T>(&self, f: impl Future<Output = Result<T, TargetError>>) -> Result<T, TargetError> {
        let result = f.await;
        if let Err(e) = &result {
            self.conn.reset(e).await;
        }
        result
    }
}

impl Target for AdTarget {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn scope(&self) -> String {
        format!("{} with filter {}", self.config.base_dn, self.config.filter)
    }

    fn group_scope(&self) -> String {
        self.config.groups.as_ref().map(|g| g.base_dn.clone()).unwrap_or_default()
    }

    async fn check(&self) -> Result<String, TargetError> {
        self.guarded(self.check_inner()).await
    }

    async fn observe(&self, attrs: &[String]) -> Result<Vec<ObservedAccount>, TargetError> {
        self.guarded(self.observe_inner(attrs)).await
    }

    async fn observe_at(&self, key: &str, attrs: &[String]) -> Result<Option<ObservedAccount>, TargetError> {
        self.guarded(self.observe_at_inner(key, attrs)).await
    }

    async fn observe_where(
        &self,
        field: Field<'_>,
        values: &[String],
        attrs: &[String],
    ) -> Result<Option<Vec<ObservedAccount>>, TargetError> {
        self.guarded(self.observe_where_inner(field, values, attrs)).await.map(Some)
    }

    async fn observe_groups(&self) -> Result<Vec<ObservedGroup>, TargetError> {
        let Some(groups) = &self.config.groups else { return Ok(Vec::new()) };
        self.guarded(self.search_groups(&groups.base_dn)).await
    }

    async fn find_outside_scope(
        &self,
        lookup: Lookup,
        values: &[String],
    ) -> Result<Vec<(String, String)>, TargetError> {
        self.guarded(self.find_outside(lookup, values)).await
    }

    async fn apply(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        // Nothing is sent once this node's lease on the state is no longer certain.
        connector_api::fence::check()?;
        self.guarded(self.apply_inner(op)).await
    }
}

/// `objectGUID`'s 16 bytes as the usual text form: the first three fields little-endian.
pub(crate) fn guid_text(b: &[u8]) -> Option<String> {
    let b: &[u8; 16] = b.try_into().ok()?;
    let hex = |bs: &[u8]| bs.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let rev = |bs: &[u8]| bs.iter().rev().map(|x| format!("{x:02x}")).collect::<String>();
    Some(format!("{}-{}-{}-{}-{}", rev(&b[0..4]), rev(&b[4..6]), rev(&b[6..8]), hex(&b[8..10]), hex(&b[10..16])))
}

/// The text form of an `objectGUID` as a search filter value (`\33\22...`).
pub(crate) fn guid_filter(text: &str) -> Option<String> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let bytes: Vec<u8> =
        (0..16).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)).collect::<Result<_, _>>().ok()?;
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    Some(order.iter().map(|&i| format!("\\{:02x}", bytes[i])).collect())
}

/// The `sAMAccountName` of a group: its name without what AD forbids in one (each such character
/// becomes `-`), at most 256 characters. The name AD keeps unique in the whole domain, with the
/// users' and computers'.
pub(crate) fn group_sam(name: &str) -> String {
    name.chars().map(|c| if config::SAM_FORBIDDEN.contains(c) || c.is_control() { '-' } else { c }).take(256).collect()
}

/// A password as `unicodePwd` takes it: in double quotes, UTF-16LE.
pub(crate) fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"").encode_utf16().flat_map(u16::to_le_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_guids_read_and_search_as_ad_writes_them() {
        let bytes = [0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
        assert_eq!(guid_text(&bytes).unwrap(), "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(
            guid_filter("00112233-4455-6677-8899-aabbccddeeff").unwrap(),
            "\\33\\22\\11\\00\\55\\44\\77\\66\\88\\99\\aa\\bb\\cc\\dd\\ee\\ff"
        );
        assert!(guid_text(&bytes[..15]).is_none());
        assert!(guid_filter("not a guid").is_none());
    }

    #[test]
    fn a_groups_account_name_replaces_what_ad_forbids() {
        assert_eq!(group_sam("Norr-7A"), "Norr-7A");
        assert_eq!(group_sam("Ekbacken, F-6/7A"), "Ekbacken- F-6-7A");
        assert_eq!(group_sam(&"x".repeat(300)).len(), 256);
    }

    #[test]
    fn a_password_goes_quoted_in_utf16le() {
        assert_eq!(unicode_pwd("Ab1"), [0x22, 0, 0x41, 0, 0x62, 0, 0x31, 0, 0x22, 0]);
    }
}
