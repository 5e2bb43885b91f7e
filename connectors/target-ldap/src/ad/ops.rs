//! Writes of an AD target: creates (disabled, with the first password, in the person's OU,
//! made first when missing; a namesake in the OU gets a distinct `cn`; `objectGUID` read back;
//! then enabled), renames (`sAMAccountName`), moves between OUs by modrdn, attribute changes
//! (a new display name renames the entry's `cn` too),
//! enable and disable by `userAccountControl` keeping its other flags, deletes, and security
//! groups with members by DN, value by value.

use super::{AdTarget, UAC_DISABLED, UAC_NORMAL, guid_text, unicode_pwd};
use crate::conn::Link;
use crate::dn::{normalize_dn, split_rdn, under};
use crate::error::{from_ldap, from_result};
use connector_api::value::Str;
use connector_api::{AccountSpec, OpOutcome, RejectKind, TargetError, TargetOp, Value};
use ldap3::{Mod, Scope, SearchEntry, dn_escape};
use std::collections::HashSet;

/// `groupType` of a global security group.
const GLOBAL_SECURITY: i64 = -2_147_483_646;

type Entry = Vec<(Vec<u8>, HashSet<Vec<u8>>)>;

fn attr(name: &str, values: impl IntoIterator<Item = Vec<u8>>) -> (Vec<u8>, HashSet<Vec<u8>>) {
    (name.as_bytes().to_vec(), values.into_iter().collect())
}

fn one(name: &str, value: &str) -> (Vec<u8>, HashSet<Vec<u8>>) {
    attr(name, [value.as_bytes().to_vec()])
}

/// A `cn`: the name, told apart by the username when given (`Anna Berg (anna.berg2)`), within
/// AD's 64 characters (the name is cut short, never the username).
fn cn_value(name: &str, username: Option<&str>) -> String {
    const MAX: usize = 64;
    let suffix = username.map(|u| format!(" ({u})")).unwrap_or_default();
    let room = MAX.saturating_sub(suffix.encode_utf16().count());
    let mut out = String::new();
    let mut used = 0;
    for c in name.trim().chars() {
        used += c.len_utf16();
        if used > room {
            break;
        }
        out.push(c);
    }
    format!("{}{suffix}", out.trim_end())
}

/// Whether `rdn` is one of the names the display name `name` gives an entry (`CN=Anna Berg`, or
/// `CN=Anna Berg (anna.berg2)` beside a namesake): what [`AdTarget::rename_cn`] makes, and what
/// an observed entry is checked against, so that a rename whose modrdn failed is made by the
/// next run.
pub(super) fn named_by(rdn: &str, name: &str, username: Option<&str>) -> bool {
    let plain = format!("CN={}", dn_escape(cn_value(name, None)));
    let told_apart = username.map(|u| format!("CN={}", dn_escape(cn_value(name, Some(u)))));
    [Some(plain), told_apart].into_iter().flatten().any(|c| normalize_dn(&c) == normalize_dn(rdn))
}

/// A DN value as text: `\,` and `\2C` become `,`.
pub(super) fn unescape_dn_value(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'\\', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push(hex(h).unwrap_or(0) as u8 * 16 + hex(l).unwrap_or(0) as u8);
                i += 3;
            }
            (b'\\', Some(c), _) => {
                out.push(c);
                i += 2;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The strings of a value (the config refuses other templates for an AD target).
fn texts<'a>(name: &str, v: &'a Value) -> Result<&'a [Str], TargetError> {
    match v {
        Value::Text(t) => Ok(t),
        _ => Err(not_text(name)),
    }
}

fn not_text(name: &str) -> TargetError {
    TargetError::rejected(
        RejectKind::Schema,
        format!("{name}: an AD attribute holds strings, not a boolean or complex value; fix the attribute mapping"),
    )
}

impl AdTarget {
    pub(super) async fn apply_inner(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        let mut ldap = self.conn.ldap().await?;
        match op {
            TargetOp::Create { account } => self.create(&mut ldap, account).await,
            TargetOp::Rename { key, username } => {
                let mods = vec![Mod::Replace("sAMAccountName".to_string(), HashSet::from([username.clone()]))];
                let res = ldap.req()?.modify(key, mods).await.map_err(|e| from_ldap(e, &format!("rename {key}")))?;
                from_result(res, &format!("rename {key} to {username}"))?;
                Ok(OpOutcome::Renamed { key: key.clone() })
            }
            TargetOp::Move { key, placement } => self.move_to(&mut ldap, key, placement).await,
            TargetOp::Update { key, changes } => {
                let mut mods: Vec<Mod<String>> = Vec::with_capacity(changes.len());
                for c in changes {
                    mods.push(Mod::Replace(
                        c.attr.clone(),
                        texts(&c.attr, &c.values)?.iter().map(|s| s.to_string()).collect(),
                    ));
                }
                let res = ldap.req()?.modify(key, mods).await.map_err(|e| from_ldap(e, &format!("modify {key}")))?;
                from_result(res, &format!("modify {key}"))?;
                // The entry is named by the display name: a new name renames it, so the old name
                // does not stay in the DN (after a change of name, a person's old one must go).
                let name = changes
                    .iter()
                    .find(|c| c.attr.eq_ignore_ascii_case("displayName"))
                    .and_then(|c| texts(&c.attr, &c.values).ok())
                    .and_then(|v| v.first())
                    .filter(|n| !n.trim().is_empty());
                match name {
                    Some(name) => self.rename_cn(&mut ldap, key, name).await,
                    None => Ok(OpOutcome::Updated),
                }
            }
            TargetOp::Disable { key } => {
                self.set_disabled(&mut ldap, key, true).await?;
                Ok(OpOutcome::Disabled { key: key.clone() })
            }
            TargetOp::Enable { key } => {
                self.set_disabled(&mut ldap, key, false).await?;
                Ok(OpOutcome::Enabled { key: key.clone() })
            }
            TargetOp::Delete { key } | TargetOp::DeleteGroup { key } => {
                let res = ldap.req()?.delete(key).await.map_err(|e| from_ldap(e, &format!("delete {key}")))?;
                if res.rc == 32 {
                    return Ok(OpOutcome::Deleted); // gone already: what a delete was for
                }
                from_result(res, &format!("delete {key}"))?;
                Ok(OpOutcome::Deleted)
            }
            TargetOp::CreateGroup { name, members } => self.create_group(&mut ldap, name, members).await,
            TargetOp::AddMembers { key, members } => {
                self.change_members(&mut ldap, key, members, true).await?;
                Ok(OpOutcome::Updated)
            }
            TargetOp::RemoveMembers { key, members } => {
                self.change_members(&mut ldap, key, members, false).await?;
                Ok(OpOutcome::Updated)
            }
        }
    }

    /// A new account: made disabled with its password in the add (so it never exists enabled
    /// without one; a first password to hand out due for a change at the first logon), its
    /// `objectGUID` read back, then enabled unless it is created ahead of its start date.
    async fn create(&self, ldap: &mut Link, account: &AccountSpec) -> Result<OpOutcome, TargetError> {
        let Some(password) = &account.initial_password else {
            return Err(TargetError::config(format!(
                "create {}: no first password was given; an AD account is never enabled without one",
                account.id
            )));
        };
        if !self.conn.encrypted() {
            return Err(TargetError::config(format!(
                "create {}: enid sends passwords only over ldaps:// or StartTLS; fix url or starttls",
                account.id
            )));
        }
        let placement = account.placement.as_deref().map_or_else(|| self.config.base_dn.clone(), str::to_string);
        self.ensure_ou(ldap, &placement).await?;
        // A protected person's entry never carries the real name.
        let cn = if account.protected || account.display_name.trim().is_empty() {
            account.username.clone()
        } else {
            account.display_name.clone()
        };
        let mut entry: Entry = vec![
            attr("objectClass", self.config.object_classes.iter().map(|c| c.as_bytes().to_vec())),
            one("sAMAccountName", &account.username),
            one("userAccountControl", &(UAC_NORMAL | UAC_DISABLED).to_string()),
            attr("unicodePwd", [unicode_pwd(password.expose())]),
        ];
        // A first password to hand out is due for a change at the first logon: set in the add,
        // so an account whose enable is interrupted is never left with a lasting first password.
        if self.config.force_password_change && self.caps.initial_password.is_some_and(|p| p.handed_out) {
            entry.push(one("pwdLastSet", "0"));
        }
        for (k, values) in account.attrs.texts_by_name() {
            let values = values.ok_or_else(|| not_text(k))?;
            let values: HashSet<Vec<u8>> = values.map(|s| s.as_bytes().to_vec()).collect();
            if values.is_empty() || k.eq_ignore_ascii_case("cn") {
                continue;
            }
            entry.push((k.as_bytes().to_vec(), values));
        }
        // A namesake in the same OU holds the cn: this one is told apart by the username.
        let mut dn = String::new();
        for candidate in [cn_value(&cn, None), cn_value(&cn, Some(&account.username))] {
            dn = format!("CN={},{placement}", dn_escape(&candidate));
            let mut with_cn = entry.clone();
            with_cn.push(one("cn", &candidate));
            let res = ldap.req()?.add(&dn, with_cn).await.map_err(|e| from_ldap(e, &format!("add {dn}")))?;
            if res.rc == 68 && candidate == cn_value(&cn, None) {
                continue;
            }
            from_result(res, &format!("add {dn}"))?;
            break;
        }
        let anchor = self.guid_of(ldap, &dn).await?;
        if account.enabled {
            let mods = vec![Mod::Replace("userAccountControl".to_string(), HashSet::from([UAC_NORMAL.to_string()]))];
            let res = ldap.req()?.modify(&dn, mods).await.map_err(|e| from_ldap(e, &format!("enable {dn}")))?;
            // Made but not enabled: the next run finds it by its owner marker and enables it.
            from_result(res, &format!("enable {dn} after its create"))?;
        }
        Ok(OpOutcome::Created { key: dn, anchor })
    }

    /// The `objectGUID` of an entry, as text.
    async fn guid_of(&self, ldap: &mut Link, dn: &str) -> Result<Option<String>, TargetError> {
        let (entries, _) = ldap
            .req()?
            .search(dn, Scope::Base, "(objectClass=*)", vec!["objectGUID"])
            .await
            .and_then(|r| r.success())
            .map_err(|e| from_ldap(e, &format!("read the objectGUID of {dn}")))?;
        Ok(entries.into_iter().next().map(SearchEntry::construct).and_then(|e| {
            let b = e
                .bin_attrs
                .get("objectGUID")
                .and_then(|v| v.first().cloned())
                .or_else(|| e.attrs.get("objectGUID").and_then(|v| v.first()).map(|s| s.as_bytes().to_vec()))?;
            guid_text(&b)
        }))
    }

    /// Moves an account to another OU (made first when missing), keeping its `objectGUID`. A
    /// move into the protected OU also gives it the username as its `cn`: the real name leaves
    /// the DN.
    async fn move_to(&self, ldap: &mut Link, key: &str, placement: &str) -> Result<OpOutcome, TargetError> {
        self.ensure_ou(ldap, placement).await?;
        let (rdn, parent) = split_rdn(key);
        let (sam, display) = self.names_of(ldap, key).await?;
        let protected = normalize_dn(placement) == normalize_dn(&self.config.protected_ou());
        // In the protected OU the username names the entry; elsewhere the display name does
        // (the entry leaving the protected OU gets it back), told apart from a namesake in the
        // new OU by the username.
        let candidates: Vec<String> = match (protected, sam.as_deref(), display.as_deref()) {
            (true, Some(sam), _) => vec![format!("CN={}", dn_escape(cn_value(sam, None)))],
            (false, sam, Some(name)) if !name.trim().is_empty() => {
                let mut c = vec![format!("CN={}", dn_escape(cn_value(name, None)))];
                c.extend(sam.map(|s| format!("CN={}", dn_escape(cn_value(name, Some(s))))));
                c
            }
            _ => vec![rdn.to_string()],
        };
        if normalize_dn(parent) == normalize_dn(placement)
            && candidates.iter().any(|c| normalize_dn(c) == normalize_dn(rdn))
        {
            return Ok(OpOutcome::Moved { key: key.to_string() });
        }
        for (i, new_rdn) in candidates.iter().enumerate() {
            let res = ldap
                .req()?
                .modifydn(key, new_rdn, true, Some(placement))
                .await
                .map_err(|e| from_ldap(e, &format!("move {key}")))?;
            if res.rc == 68 && i + 1 < candidates.len() {
                continue; // a namesake in the new OU
            }
            from_result(res, &format!("move {key} to {placement}"))?;
            return Ok(OpOutcome::Moved { key: format!("{new_rdn},{placement}") });
        }
        Err(TargetError::rejected(RejectKind::Exists, format!("move {key} to {placement}: no free name there")))
    }

    /// The `sAMAccountName` and `displayName` of an entry.
    async fn names_of(&self, ldap: &mut Link, key: &str) -> Result<(Option<String>, Option<String>), TargetError> {
        let (entries, _) = ldap
            .req()?
            .search(key, Scope::Base, "(objectClass=*)", vec!["sAMAccountName", "displayName"])
            .await
            .and_then(|r| r.success())
            .map_err(|e| from_ldap(e, &format!("read {key}")))?;
        let e = entries.into_iter().next().map(SearchEntry::construct);
        let get = |a: &str| e.as_ref().and_then(|e| e.attrs.get(a).and_then(|v| v.first().cloned()));
        Ok((get("sAMAccountName"), get("displayName")))
    }

    /// Gives an entry the `cn` of its new display name (told apart from a namesake in the same
    /// OU by the username), in the OU it is in. An entry in the protected OU keeps its `cn`
    /// (the username).
    async fn rename_cn(&self, ldap: &mut Link, key: &str, name: &str) -> Result<OpOutcome, TargetError> {
        let (rdn, parent) = split_rdn(key);
        if normalize_dn(parent) == normalize_dn(&self.config.protected_ou()) {
            return Ok(OpOutcome::Updated);
        }
        let sam = self.names_of(ldap, key).await?.0.unwrap_or_default();
        let candidates = [
            format!("CN={}", dn_escape(cn_value(name, None))),
            format!("CN={}", dn_escape(cn_value(name, Some(&sam)))),
        ];
        if named_by(rdn, name, Some(&sam)) {
            return Ok(OpOutcome::Updated);
        }
        for (i, new_rdn) in candidates.iter().enumerate() {
            let res = ldap
                .req()?
                .modifydn(key, new_rdn, true, None)
                .await
                .map_err(|e| from_ldap(e, &format!("rename {key}")))?;
            if res.rc == 68 && i == 0 {
                continue; // a namesake in this OU
            }
            from_result(res, &format!("rename {key} to {new_rdn}"))?;
            return Ok(OpOutcome::Moved { key: format!("{new_rdn},{parent}") });
        }
        Ok(OpOutcome::Updated)
    }

    /// Sets or clears the disabled bit of `userAccountControl`, keeping every other flag.
    async fn set_disabled(&self, ldap: &mut Link, key: &str, disabled: bool) -> Result<(), TargetError> {
        let (entries, _) = ldap
            .req()?
            .search(key, Scope::Base, "(objectClass=*)", vec!["userAccountControl"])
            .await
            .and_then(|r| r.success())
            .map_err(|e| from_ldap(e, &format!("read {key}")))?;
        let uac: u32 = entries
            .into_iter()
            .next()
            .map(SearchEntry::construct)
            .and_then(|e| e.attrs.get("userAccountControl").and_then(|v| v.first()).and_then(|v| v.parse::<i64>().ok()))
            .unwrap_or(i64::from(UAC_NORMAL)) as u32;
        let want = if disabled { uac | UAC_DISABLED } else { uac & !UAC_DISABLED };
        if want == uac {
            return Ok(()); // as asked already
        }
        let what = if disabled { format!("disable {key}") } else { format!("enable {key}") };
        let mods = vec![Mod::Replace("userAccountControl".to_string(), HashSet::from([want.to_string()]))];
        let res = ldap.req()?.modify(key, mods).await.map_err(|e| from_ldap(e, &what))?;
        from_result(res, &what)?;
        Ok(())
    }

    /// Makes an OU below `base_dn` when it is not there (and the ones above it that are missing);
    /// an OU elsewhere must exist.
    async fn ensure_ou(&self, ldap: &mut Link, dn: &str) -> Result<(), TargetError> {
        let norm = normalize_dn(dn);
        if self.ous.lock().await.contains(&norm) {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut here = dn.to_string();
        loop {
            let res = ldap
                .req()?
                .search(&here, Scope::Base, "(objectClass=*)", vec!["1.1"])
                .await
                .map_err(|e| from_ldap(e, &format!("read {here}")))?;
            if res.1.rc != 32 {
                from_result(res.1, &format!("read {here}"))?;
                break;
            }
            if !under(&normalize_dn(&here), &self.config.base_dn)
                || normalize_dn(&here) == normalize_dn(&self.config.base_dn)
            {
                return Err(TargetError::config(format!(
                    "{here} does not exist; enid makes OUs only below base_dn {}: create it",
                    self.config.base_dn
                )));
            }
            missing.push(here.clone());
            let (_, parent) = split_rdn(&here);
            here = parent.to_string();
        }
        for ou in missing.iter().rev() {
            let (rdn, _) = split_rdn(ou);
            let name = rdn.split_once('=').map(|(_, v)| v).unwrap_or(rdn);
            let entry: Entry = vec![
                one("objectClass", "organizationalUnit"),
                one("ou", &unescape_dn_value(name)),
                one("description", "Made by enid for the accounts of a school unit"),
            ];
            let res = ldap.req()?.add(ou, entry).await.map_err(|e| from_ldap(e, &format!("add {ou}")))?;
            if res.rc != 68 {
                from_result(res, &format!("create the OU {ou}"))?;
            }
        }
        self.ous.lock().await.insert(norm);
        Ok(())
    }

    async fn create_group(&self, ldap: &mut Link, name: &str, members: &[String]) -> Result<OpOutcome, TargetError> {
        let groups = self
            .config
            .groups
            .as_ref()
            .ok_or_else(|| TargetError::config("no [groups] base_dn configured for this target"))?;
        let dn = format!("CN={},{}", dn_escape(name), groups.base_dn);
        let sam = super::group_sam(name);
        let mut entry: Entry = vec![
            one("objectClass", "group"),
            one("cn", name),
            one("sAMAccountName", &sam),
            one("groupType", &GLOBAL_SECURITY.to_string()),
        ];
        if !members.is_empty() {
            entry.push(attr("member", members.iter().map(|m| m.as_bytes().to_vec())));
        }
        let res = ldap.req()?.add(&dn, entry).await.map_err(|e| from_ldap(e, &format!("add {dn}")))?;
        from_result(res, &format!("add {dn}"))?;
        let anchor = self.guid_of(ldap, &dn).await?;
        Ok(OpOutcome::Created { key: dn, anchor })
    }

    /// Adds or removes member values. When the server refuses the batch because one value is
    /// already there (add) or already gone (remove), the values go one by one and those are
    /// skipped: the end state is what was asked for.
    async fn change_members(
        &self,
        ldap: &mut Link,
        key: &str,
        members: &[String],
        add: bool,
    ) -> Result<(), TargetError> {
        let make = |values: HashSet<String>| -> Vec<Mod<String>> {
            if add { vec![Mod::Add("member".into(), values)] } else { vec![Mod::Delete("member".into(), values)] }
        };
        // AD: a member already there is 68 (or 20), one not there 53 (or 16).
        let benign: &[u32] = if add { &[20, 68] } else { &[16, 53] };
        let what = format!("{} members of {key}", if add { "add" } else { "remove" });
        let res =
            ldap.req()?.modify(key, make(members.iter().cloned().collect())).await.map_err(|e| from_ldap(e, &what))?;
        if !benign.contains(&res.rc) {
            return from_result(res, &what).map(|_| ());
        }
        for m in members {
            let res =
                ldap.req()?.modify(key, make(HashSet::from([m.clone()]))).await.map_err(|e| from_ldap(e, &what))?;
            if !benign.contains(&res.rc) {
                from_result(res, &what)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::cn_value;

    #[test]
    fn dn_values_unescape() {
        assert_eq!(super::unescape_dn_value("Ekbacken\\, F-6"), "Ekbacken, F-6");
        assert_eq!(super::unescape_dn_value("S\\C3\\B6der"), "Söder");
    }

    #[test]
    fn a_cn_fits_in_64_characters_and_keeps_the_username() {
        assert_eq!(cn_value("Anna Berg", None), "Anna Berg");
        assert_eq!(cn_value("Anna Berg", Some("anna.berg2")), "Anna Berg (anna.berg2)");
        let long = "Karl-Johan Alexander Fredrik Gustav von Essen Andersson Lindqvist";
        let c = cn_value(long, Some("karl.vonessen"));
        assert!(c.encode_utf16().count() <= 64 && c.ends_with(" (karl.vonessen)"), "{c}");
        assert!(cn_value(&"Å".repeat(80), None).chars().count() == 64);
    }
}
