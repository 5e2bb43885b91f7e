//! Writes: creates (with the Post-Read control for the anchor), renames, modifies, disables
//! and enables by move or attribute, deletes, and group changes value by value.

use crate::LdapTarget;
use crate::config::{DisableMethod, GroupClass};
use crate::conn::Link;
use crate::dn::{normalize_dn, split_rdn};
use crate::error::{from_ldap, from_result};
use connector_api::value::Str;
use connector_api::{Name, OpOutcome, PackedAttrs, RejectKind, TargetError, TargetOp, Value};
use ldap3::controls::{PostRead, PostReadResp};
use ldap3::{Mod, Scope, SearchEntry, dn_escape};
use std::collections::HashSet;

impl LdapTarget {
    /// The next free `gidNumber`: one above the highest under the groups base (at least
    /// `gid_number_start`), then counted up here, so concurrent creates never share one.
    async fn allocate_gid(&self, ldap: &mut Link) -> Result<u32, TargetError> {
        let mut next = self.next_gid.lock().await;
        let gid = match *next {
            Some(g) => g,
            None => {
                let groups = self.config.groups.as_ref().ok_or_else(|| TargetError::config("no [groups]"))?;
                let base = groups.base_dn.clone();
                let (entries, _) = ldap
                    .req()?
                    .search(&base, Scope::Subtree, "(gidNumber=*)", vec!["gidNumber"])
                    .await
                    .and_then(|r| r.non_error())
                    .map_err(|e| from_ldap(e, &format!("search {base}")))?;
                let highest = entries
                    .into_iter()
                    .filter_map(|e| SearchEntry::construct(e).attrs.get("gidNumber")?.first()?.parse::<u32>().ok())
                    .max();
                highest.map(|h| h + 1).unwrap_or(0).max(groups.gid_number_start)
            }
        };
        *next = Some(gid + 1);
        Ok(gid)
    }

    /// Adds or deletes member values. When the server refuses the batch because one value is
    /// already there (add) or already gone (delete), the values go one by one and those are
    /// skipped: the end state is what was asked for.
    async fn change_members(
        &self,
        ldap: &mut Link,
        key: &str,
        members: &[String],
        add: bool,
    ) -> Result<(), TargetError> {
        let attr = self.config.groups.as_ref().map(|g| g.object_class).unwrap_or_default().member_attr().to_string();
        let make = |values: HashSet<String>| -> Vec<Mod<String>> {
            if add { vec![Mod::Add(attr.clone(), values)] } else { vec![Mod::Delete(attr.clone(), values)] }
        };
        let benign = if add { 20 } else { 16 };
        let what = format!("{} members of {key}", if add { "add" } else { "remove" });
        let res =
            ldap.req()?.modify(key, make(members.iter().cloned().collect())).await.map_err(|e| from_ldap(e, &what))?;
        if res.rc != benign {
            return from_result(res, &what).map(|_| ());
        }
        for m in members {
            let res =
                ldap.req()?.modify(key, make(HashSet::from([m.clone()]))).await.map_err(|e| from_ldap(e, &what))?;
            if res.rc != benign {
                from_result(res, &what)?;
            }
        }
        Ok(())
    }

    async fn ensure_disabled_ou(&self, ldap: &mut Link) -> Result<(), TargetError> {
        let Some(ou) = self.config.disabled_ou() else { return Ok(()) };
        let mut ready = self.disabled_ou_ready.lock().await;
        if *ready {
            return Ok(());
        }
        let (rdn, _) = split_rdn(&ou);
        let value = rdn.split_once('=').map(|(_, v)| v).unwrap_or(rdn).to_string();
        let attrs = vec![
            ("objectClass".to_string(), HashSet::from(["organizationalUnit".to_string()])),
            ("ou".to_string(), HashSet::from([value])),
        ];
        let res = ldap.req()?.add(&ou, attrs).await.map_err(|e| from_ldap(e, "add disabled OU"))?;
        if res.rc != 0 && res.rc != 68 {
            from_result(res, &format!("create the disabled OU {ou}"))?;
        }
        *ready = true;
        Ok(())
    }

    pub(crate) async fn apply_inner(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        let mut ldap = self.ldap().await?;
        match op {
            TargetOp::Create { account } => {
                let disabled = !account.enabled;
                let dn = self.dn_for(&account.username, disabled);
                let mut entry: Vec<(String, HashSet<String>)> = Vec::with_capacity(account.attrs.len() + 2);
                entry.push(("objectClass".into(), self.config.object_classes.iter().cloned().collect()));
                let mut has_rdn = false;
                for attr in spec_texts(&account.attrs) {
                    let (k, values) = attr?;
                    let values: HashSet<String> = values.map(str::to_string).collect();
                    if values.is_empty() {
                        continue;
                    }
                    has_rdn |= k.eq_ignore_ascii_case(&self.config.rdn_attribute);
                    entry.push((k.to_string(), values));
                }
                if !has_rdn {
                    entry.push((self.config.rdn_attribute.clone(), HashSet::from([account.username.to_string()])));
                }
                if disabled {
                    match &self.config.disable {
                        // `dn_for` put the entry in the disabled OU.
                        DisableMethod::Move { .. } => self.ensure_disabled_ou(&mut ldap).await?,
                        DisableMethod::Attribute { attribute, value } => {
                            entry.push((attribute.clone(), HashSet::from([value.clone()])));
                        }
                    }
                }
                self.add_with_anchor(&mut ldap, dn, entry, self.anchors_deferred()).await
            }
            TargetOp::Rename { key, username } => {
                let rdn = format!("{}={}", self.config.rdn_attribute, dn_escape(username));
                let res = ldap
                    .req()?
                    .modifydn(key, &rdn, true, None)
                    .await
                    .map_err(|e| from_ldap(e, &format!("rename {key}")))?;
                from_result(res, &format!("rename {key} to {rdn}"))?;
                let (_, parent) = split_rdn(key);
                Ok(OpOutcome::Renamed { key: format!("{rdn},{parent}") })
            }
            TargetOp::Move { key, .. } => Err(TargetError::rejected(
                RejectKind::Other,
                format!("move {key}: this directory does not place accounts (it declares no placement)"),
            )),
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
                Ok(OpOutcome::Updated)
            }
            TargetOp::Disable { key } => match &self.config.disable {
                DisableMethod::Move { ou } => {
                    self.ensure_disabled_ou(&mut ldap).await?;
                    let ou = self.config.move_to(ou);
                    let new_key = self.move_entry(&mut ldap, key, &ou).await?;
                    Ok(OpOutcome::Disabled { key: new_key })
                }
                DisableMethod::Attribute { attribute, value } => {
                    let mods = vec![Mod::Replace(attribute.clone(), HashSet::from([value.clone()]))];
                    let res =
                        ldap.req()?.modify(key, mods).await.map_err(|e| from_ldap(e, &format!("modify {key}")))?;
                    from_result(res, &format!("disable {key}"))?;
                    Ok(OpOutcome::Disabled { key: key.clone() })
                }
            },
            TargetOp::Enable { key } => match &self.config.disable {
                DisableMethod::Move { .. } => {
                    let base = self.config.base_dn.clone();
                    let new_key = self.move_entry(&mut ldap, key, &base).await?;
                    Ok(OpOutcome::Enabled { key: new_key })
                }
                DisableMethod::Attribute { attribute, .. } => {
                    let mods = vec![Mod::Replace(attribute.clone(), HashSet::<String>::new())];
                    let res =
                        ldap.req()?.modify(key, mods).await.map_err(|e| from_ldap(e, &format!("modify {key}")))?;
                    from_result(res, &format!("enable {key}"))?;
                    Ok(OpOutcome::Enabled { key: key.clone() })
                }
            },
            TargetOp::Delete { key } | TargetOp::DeleteGroup { key } => {
                let res = ldap.req()?.delete(key).await.map_err(|e| from_ldap(e, &format!("delete {key}")))?;
                from_result(res, &format!("delete {key}"))?;
                Ok(OpOutcome::Deleted)
            }
            TargetOp::CreateGroup { name, members } => {
                let groups = self
                    .config
                    .groups
                    .as_ref()
                    .ok_or_else(|| TargetError::config("no [groups] base_dn configured for this target"))?;
                let dn = format!("cn={},{}", dn_escape(name), groups.base_dn);
                let class = self.config.groups.as_ref().map(|g| g.object_class).unwrap_or_default();
                let mut entry = vec![
                    ("objectClass".to_string(), HashSet::from(["top".to_string(), class.object_class().to_string()])),
                    ("cn".to_string(), HashSet::from([name.clone()])),
                ];
                if !members.is_empty() {
                    entry.push((class.member_attr().to_string(), members.iter().cloned().collect()));
                }
                if class == GroupClass::PosixGroup {
                    let gid = self.allocate_gid(&mut ldap).await?;
                    entry.push(("gidNumber".to_string(), HashSet::from([gid.to_string()])));
                }
                // A group's anchor is always read with its create: `read_anchors` reads accounts.
                self.add_with_anchor(&mut ldap, dn, entry, false).await
            }
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

    /// Where a create of an account with this username puts it: the disabled OU for a
    /// pre-provisioned account when disabling moves accounts, else `base_dn`.
    pub(crate) fn dn_for(&self, username: &str, disabled: bool) -> String {
        let parent = match (&self.config.disable, disabled) {
            (DisableMethod::Move { ou }, true) => self.config.move_to(ou),
            _ => self.config.base_dn.clone(),
        };
        format!("{}={},{parent}", self.config.rdn_attribute, dn_escape(username))
    }

    async fn move_entry(&self, ldap: &mut Link, key: &str, new_parent: &str) -> Result<String, TargetError> {
        let (rdn, parent) = split_rdn(key);
        if normalize_dn(parent) == normalize_dn(new_parent) {
            return Ok(key.to_string()); // already there: a repeated operation is a no-op
        }
        let res = ldap
            .req()?
            .modifydn(key, rdn, true, Some(new_parent))
            .await
            .map_err(|e| from_ldap(e, &format!("move {key}")))?;
        from_result(res, &format!("move {key} to {new_parent}"))?;
        Ok(format!("{rdn},{new_parent}"))
    }
}

impl LdapTarget {
    /// Adds an entry with the Post-Read control, so its `entryUUID` comes back with the result;
    /// without it when `deferred` (this apply's account anchors are read afterwards:
    /// [`Target::defer_anchors`]).
    ///
    /// [`Target::defer_anchors`]: connector_api::Target::defer_anchors
    async fn add_with_anchor(
        &self,
        ldap: &mut Link,
        dn: String,
        entry: Vec<(String, HashSet<String>)>,
        deferred: bool,
    ) -> Result<OpOutcome, TargetError> {
        if deferred {
            let res = ldap.req()?.add(&dn, entry).await.map_err(|e| from_ldap(e, &format!("add {dn}")))?;
            from_result(res, &format!("add {dn}"))?;
            return Ok(OpOutcome::Created { key: dn, anchor: None });
        }
        let res = ldap
            .req()?
            .with_controls(PostRead::new(vec!["entryUUID"]))
            .add(&dn, entry)
            .await
            .map_err(|e| from_ldap(e, &format!("add {dn}")))?;
        let anchor = post_read_uuid(&res);
        from_result(res, &format!("add {dn}"))?;
        Ok(OpOutcome::Created { key: dn, anchor })
    }
}

/// The `entryUUID` a Post-Read control returned with an add, if any.
fn post_read_uuid(res: &ldap3::LdapResult) -> Option<String> {
    res.ctrls
        .iter()
        .find(|c| c.1.ctype == "1.3.6.1.1.13.2")
        .and_then(|c| c.1.parse::<PostReadResp>().attrs.remove("entryUUID"))
        .and_then(|mut v| v.pop())
}

/// The strings of a value: LDAP attributes hold texts only (the config refuses other templates
/// for an LDAP target, so anything else here is a bug upstream, refused rather than guessed).
fn texts<'a>(attr: &str, v: &'a Value) -> Result<&'a [Str], TargetError> {
    match v {
        Value::Text(t) => Ok(t),
        _ => Err(not_text(attr)),
    }
}

/// A create's attributes, each with its strings (see [`texts`]).
pub(crate) fn spec_texts(
    attrs: &PackedAttrs,
) -> impl Iterator<Item = Result<(&Name, connector_api::TextsOf<'_>), TargetError>> + '_ {
    attrs.texts_by_name().map(|(name, strings)| strings.map(|s| (name, s)).ok_or_else(|| not_text(name)))
}

fn not_text(attr: &str) -> TargetError {
    TargetError::rejected(
        RejectKind::Schema,
        format!("{attr}: an LDAP attribute holds strings, not a boolean or complex value; fix the attribute mapping"),
    )
}
