//! Reads of an AD target: accounts in scope (paged; `objectGUID` as text; disabled by
//! `userAccountControl`; placement the parent DN), security groups with their members (range
//! retrieval for groups over AD's `MaxValRange`), accounts outside the scope by owner marker
//! or `objectGUID`, and what holds a username or a new group's `sAMAccountName` anywhere in the
//! domain (a part of the domain the bind account cannot read is an error, never a free name).

use super::{AdTarget, UAC_DISABLED, group_sam, guid_filter, guid_text};
use crate::dn::{normalize_dn, split_rdn, under};
use crate::error::{from_ldap, from_result};
use crate::search::and_any;
use connector_api::value::Str;
use connector_api::{Attrs, Field, Lookup, Name, ObservedAccount, ObservedGroup, PackedAttrs, TargetError, Value};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapResult, Scope, SearchEntry};
use std::collections::HashMap;

/// A value of an entry's attribute, text or binary (ldap3 puts what is not UTF-8 in
/// `bin_attrs`, so a binary value that happens to be UTF-8 is a text).
fn raw(e: &SearchEntry, name: &str) -> Option<Vec<u8>> {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first().map(|s| s.as_bytes().to_vec()))
        .or_else(|| {
            e.bin_attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.first().cloned())
        })
}

fn text<'a>(e: &'a SearchEntry, name: &str) -> Option<&'a String> {
    e.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.first())
}

/// The values of a range-retrieved attribute (`member;range=0-1499`), and where the range ended
/// (`None` when it was the last: `*`).
pub(crate) fn ranged<'a>(e: &'a SearchEntry, name: &str) -> Option<(&'a [String], Option<usize>)> {
    let prefix = format!("{};range=", name.to_ascii_lowercase());
    e.attrs.iter().find_map(|(k, v)| {
        let spec = k.to_ascii_lowercase().strip_prefix(&prefix)?.to_string();
        let (_, end) = spec.split_once('-')?;
        Some((v.as_slice(), if end == "*" { None } else { end.parse().ok() }))
    })
}

/// The attributes an account read asks for: the engine's, and what the connector reads itself.
fn wanted(attrs: &[String]) -> Vec<String> {
    let mut wanted: Vec<String> = attrs.to_vec();
    for extra in ["sAMAccountName", "userAccountControl", "objectGUID", "cn"] {
        if !wanted.iter().any(|a| a.eq_ignore_ascii_case(extra)) {
            wanted.push(extra.to_string());
        }
    }
    wanted
}

impl AdTarget {
    pub(super) async fn check_inner(&self) -> Result<String, TargetError> {
        let mut ldap = self.conn.ldap().await?;
        let base = self.config.base_dn.clone();
        let res = ldap
            .req()?
            .search(&base, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await
            .map_err(|e| from_ldap(e, &format!("read base_dn {base}")))?;
        if res.1.rc == 32 {
            return Err(TargetError::config(format!(
                "base_dn {base} does not exist in the domain; create it or fix base_dn"
            )));
        }
        from_result(res.1, &format!("read base_dn {base}"))?;
        Ok(format!(
            "connected{}, bound as {}, base_dn found",
            if self.conn.encrypted() { " encrypted" } else { "" },
            self.config.bind_dn
        ))
    }

    pub(super) async fn observe_inner(&self, attrs: &[String]) -> Result<Vec<ObservedAccount>, TargetError> {
        let wanted = wanted(attrs);
        let mut all = self.search_accounts(&self.config.base_dn.clone(), &self.config.filter, &wanted).await?;
        // A protected OU outside base_dn is searched too.
        let protected = self.config.protected_ou();
        if !under(&normalize_dn(&protected), &self.config.base_dn) {
            all.extend(self.search_accounts(&protected, &self.config.filter, &wanted).await?);
        }
        Ok(all)
    }

    /// The accounts in scope (base_dn and the protected OU) whose `field` holds one of
    /// `values`, fifty to a search. A username is a `sAMAccountName` or the name before the `@`
    /// of a UPN.
    pub(super) async fn observe_where_inner(
        &self,
        field: Field<'_>,
        values: &[String],
        attrs: &[String],
    ) -> Result<Vec<ObservedAccount>, TargetError> {
        let wanted = wanted(attrs);
        let protected = self.config.protected_ou();
        let mut bases = vec![self.config.base_dn.clone()];
        if !under(&normalize_dn(&protected), &self.config.base_dn) {
            bases.push(protected);
        }
        let mut out = Vec::new();
        for chunk in values.chunks(50) {
            let filter = match field {
                Field::Owner => and_any(&self.config.filter, &[self.config.owner_attribute.as_str()], chunk, ""),
                Field::Attribute(a) => and_any(&self.config.filter, &[a.split('.').next().unwrap_or(a)], chunk, ""),
                Field::Username => {
                    let sam = and_any(&self.config.filter, &["sAMAccountName"], chunk, "");
                    let upn = and_any(&self.config.filter, &["userPrincipalName"], chunk, "@*");
                    format!("(|{sam}{upn})")
                }
            };
            for base in &bases {
                out.extend(self.search_accounts(base, &filter, &wanted).await?);
            }
        }
        Ok(out)
    }

    /// The account at `key`, wherever it is in the domain (none: no such entry).
    pub(super) async fn observe_at_inner(
        &self,
        key: &str,
        attrs: &[String],
    ) -> Result<Option<ObservedAccount>, TargetError> {
        let wanted = wanted(attrs);
        let found = self.search_accounts(key, &self.config.filter, &wanted).await?;
        Ok(found.into_iter().find(|a| normalize_dn(a.key()) == normalize_dn(key)))
    }

    async fn search_accounts(
        &self,
        base: &str,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<ObservedAccount>, TargetError> {
        let mut ldap = self.conn.ldap().await?;
        let adapters: Vec<Box<dyn Adapter<_, _>>> =
            vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(self.config.page_size))];
        let mut stream = ldap
            .req()?
            .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(|e| from_ldap(e, &format!("search {base}")))?;
        // The names as asked for, made once and shared by every account read.
        let wanted: HashMap<String, Name> = attrs.iter().map(|a| (a.to_ascii_lowercase(), Name::from(a))).collect();
        let shared: std::sync::Arc<[Name]> = wanted.values().cloned().collect();
        let protected = normalize_dn(&self.config.protected_ou());
        let mut out = Vec::new();
        loop {
            let entry = match stream.next().await {
                Ok(Some(e)) => SearchEntry::construct(e),
                Ok(None) => break,
                Err(e) => return Err(from_ldap(e, &format!("search {base}"))),
            };
            let dn_norm = normalize_dn(&entry.dn);
            let uac: u32 = text(&entry, "userAccountControl").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) as u32;
            let anchor = raw(&entry, "objectGUID").and_then(|b| guid_text(&b));
            let username = text(&entry, "sAMAccountName").map(|u| Str::from(u.as_str()));
            let (rdn, parent) = split_rdn(&entry.dn);
            let mut mapped = Attrs::new();
            for (name, values) in &entry.attrs {
                if let Some(requested) = wanted.get(&name.to_ascii_lowercase()) {
                    mapped.insert(requested.clone(), Value::Text(values.clone().into()));
                }
            }
            // The entry is named by its display name (outside the protected OU). When its name
            // does not follow the display name (the modrdn of a rename failed after the
            // displayName was written), the display name is reported unknown: the planner then
            // writes it again, and that update renames the entry, level-triggered, instead of
            // the old name staying in the DN for good.
            let display = text(&entry, "displayName").filter(|d| !d.trim().is_empty());
            if let Some(display) = display
                && normalize_dn(parent) != protected
                && !super::ops::named_by(rdn, display, username.as_deref())
            {
                mapped.retain(|name, _| !name.eq_ignore_ascii_case("displayName"));
            }
            let mut account = ObservedAccount::new(
                &entry.dn,
                anchor.as_deref(),
                username.as_deref(),
                PackedAttrs::pack(mapped, &shared),
            );
            account.excluded = self.excluded_norm.iter().any(|c| under(&dn_norm, c));
            account.disabled = uac & UAC_DISABLED != 0;
            account.set_placement(Some(parent.to_string()));
            out.push(account);
        }
        let res = stream.finish().await;
        // A search that ends in an error is a partial read: the whole observation is void.
        if res.rc == 32 && normalize_dn(base) != normalize_dn(&self.config.base_dn) {
            return Ok(out); // the protected OU does not exist yet: nobody is there
        }
        from_result(res, &format!("search {base}"))?;
        Ok(out)
    }

    /// Security groups under `base`, with every member (a member list longer than the server's
    /// `MaxValRange` comes in ranges, read one after another).
    pub(super) async fn search_groups(&self, base: &str) -> Result<Vec<ObservedGroup>, TargetError> {
        let mut ldap = self.conn.ldap().await?;
        let adapters: Vec<Box<dyn Adapter<_, _>>> =
            vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(self.config.page_size))];
        let mut stream = ldap
            .req()?
            .streaming_search_with(
                adapters,
                base,
                Scope::Subtree,
                "(objectClass=group)",
                vec!["cn", "member", "objectGUID"],
            )
            .await
            .map_err(|e| from_ldap(e, &format!("search {base}")))?;
        let mut out = Vec::new();
        let mut incomplete = Vec::new();
        loop {
            let entry = match stream.next().await {
                Ok(Some(e)) => SearchEntry::construct(e),
                Ok(None) => break,
                Err(e) => return Err(from_ldap(e, &format!("search {base}"))),
            };
            let mut members: Vec<String> = entry
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("member"))
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            if let Some((first, Some(end))) = ranged(&entry, "member") {
                members = first.to_vec();
                incomplete.push((out.len(), end + 1));
            }
            out.push(ObservedGroup {
                anchor: raw(&entry, "objectGUID").and_then(|b| guid_text(&b)),
                name: text(&entry, "cn").cloned().unwrap_or_default(),
                key: entry.dn,
                members,
            });
        }
        let res = stream.finish().await;
        if res.rc == 32 {
            return Err(TargetError::config(format!("groups base_dn {base} does not exist; create it or fix base_dn")));
        }
        from_result(res, &format!("search {base}"))?;
        for (i, mut next) in incomplete {
            loop {
                let dn = out[i].key.clone();
                let attr = format!("member;range={next}-*");
                let (entries, _) = ldap
                    .req()?
                    .search(&dn, Scope::Base, "(objectClass=group)", vec![attr.as_str()])
                    .await
                    .and_then(|r| r.success())
                    .map_err(|e| from_ldap(e, &format!("read the members of {dn}")))?;
                let Some(entry) = entries.into_iter().next().map(SearchEntry::construct) else { break };
                match ranged(&entry, "member") {
                    Some((values, end)) => {
                        out[i].members.extend(values.iter().cloned());
                        match end {
                            Some(e) => next = e + 1,
                            None => break,
                        }
                    }
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// Entries outside the scope by owner marker or `objectGUID`, and entries anywhere in the
    /// domain holding a username or the `sAMAccountName` a new group would get: (DN, the value
    /// asked about that matched).
    pub(super) async fn find_outside(
        &self,
        lookup: Lookup,
        values: &[String],
    ) -> Result<Vec<(String, String)>, TargetError> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let mut ldap = self.conn.ldap().await?;
        let found = ldap
            .req()?
            .search("", Scope::Base, "(objectClass=*)", vec!["defaultNamingContext"])
            .await
            .map_err(|e| from_ldap(e, "read the root DSE"))?;
        let (entries, res) = (found.0, found.1);
        from_result(res, "read the root DSE")?;
        let domain: Option<String> =
            entries.into_iter().map(SearchEntry::construct).find_map(|e| text(&e, "defaultNamingContext").cloned());
        // Fail closed: without the domain's name nothing outside base_dn can be proven free.
        let Some(domain) = domain else {
            return Err(TargetError::config(
                "the root DSE names no defaultNamingContext, so enid cannot search the domain outside base_dn for \
                 names and enid ids; is url an Active Directory domain controller?",
            ));
        };
        let in_scope = |dn: &str| {
            let dn = normalize_dn(dn);
            under(&dn, &self.config.base_dn) || under(&dn, &self.config.protected_ou())
        };
        let attr = match lookup {
            Lookup::Owner => self.config.owner_attribute.clone(),
            Lookup::Anchor => "objectGUID".to_string(),
            Lookup::Username | Lookup::GroupName => "sAMAccountName".to_string(),
        };
        // What is searched for each value asked about: a group is named by its sAMAccountName.
        let asked: Vec<(String, &String)> =
            values.iter().map(|v| (if lookup == Lookup::GroupName { group_sam(v) } else { v.clone() }, v)).collect();
        let suffix = format!("@{}", self.config.upn_suffix);
        let mut out = Vec::new();
        for chunk in asked.chunks(50) {
            let terms: String = chunk
                .iter()
                .filter_map(|(v, _)| match lookup {
                    Lookup::Owner => Some(format!("({attr}={})", ldap3::ldap_escape(v))),
                    Lookup::Anchor => guid_filter(v).map(|g| format!("(objectGUID={g})")),
                    Lookup::Username => Some(format!(
                        "(sAMAccountName={})(userPrincipalName={})",
                        ldap3::ldap_escape(v),
                        ldap3::ldap_escape(format!("{v}{suffix}"))
                    )),
                    Lookup::GroupName => Some(format!("(sAMAccountName={})", ldap3::ldap_escape(v))),
                })
                .collect();
            if terms.is_empty() {
                continue;
            }
            let adapters: Vec<Box<dyn Adapter<_, _>>> =
                vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(self.config.page_size))];
            let mut stream = ldap
                .req()?
                .streaming_search_with(
                    adapters,
                    &domain,
                    Scope::Subtree,
                    &format!("(|{terms})"),
                    vec![attr.as_str(), "userPrincipalName"],
                )
                .await
                .map_err(|e| from_ldap(e, &format!("search {domain}")))?;
            loop {
                let e = match stream.next().await {
                    Ok(Some(e)) => SearchEntry::construct(e),
                    Ok(None) => break,
                    Err(e) => return Err(from_ldap(e, &format!("search {domain}"))),
                };
                // What the scope holds is observed already; a name is taken wherever it is (a
                // group or computer in the scope too, and an account of enid's for a group).
                if matches!(lookup, Lookup::Owner | Lookup::Anchor) && in_scope(&e.dn) {
                    continue;
                }
                let held: Vec<String> = match lookup {
                    Lookup::Owner => text(&e, &attr).cloned().into_iter().collect(),
                    Lookup::Anchor => raw(&e, "objectGUID").and_then(|b| guid_text(&b)).into_iter().collect(),
                    // The username this entry holds, by its own name or by its UPN.
                    Lookup::Username => {
                        let upn = text(&e, "userPrincipalName")
                            .and_then(|u| u.to_lowercase().strip_suffix(&suffix.to_lowercase()).map(str::to_string));
                        let sam = text(&e, "sAMAccountName").cloned();
                        [sam, upn].into_iter().flatten().collect()
                    }
                    Lookup::GroupName => text(&e, "sAMAccountName").cloned().into_iter().collect(),
                };
                match lookup {
                    // Every group name whose sAMAccountName this entry holds (AD compares them
                    // without case, in any script).
                    Lookup::GroupName => {
                        let held: Vec<String> = held.iter().map(|h| h.to_lowercase()).collect();
                        for (sam, name) in chunk {
                            if held.contains(&sam.to_lowercase()) {
                                out.push((e.dn.clone(), (*name).clone()));
                            }
                        }
                    }
                    _ => {
                        let hit = held.into_iter().find(|v| chunk.iter().any(|(c, _)| c.eq_ignore_ascii_case(v)));
                        if let Some(v) = hit {
                            out.push((e.dn, v));
                        }
                    }
                }
            }
            outside_search_done(stream.finish().await, &domain)?;
        }
        Ok(out)
    }
}

/// What the end of a search of the whole domain means. Fail closed: a part of the domain the
/// bind account may not read could hold a name or an enid id, so a lookup that could not read it
/// proves nothing (AD answers 50, or 32 for a base the account may not see).
fn outside_search_done(res: LdapResult, domain: &str) -> Result<(), TargetError> {
    match res.rc {
        32 | 50 => Err(TargetError::config(format!(
            "search {domain}: the bind DN cannot read the domain (LDAP {}{}); enid searches it for the usernames \
             and group names new accounts and groups must not take, and for its own accounts outside base_dn, \
             and a search it cannot make proves nothing: give the bind DN read access (List Contents and Read \
             Property, as Authenticated Users have by default) on {domain}",
            res.rc,
            if res.text.is_empty() { String::new() } else { format!(": {}", res.text) }
        ))),
        _ => from_result(res, &format!("search {domain}")).map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn result(rc: u32) -> LdapResult {
        LdapResult {
            rc,
            matched: String::new(),
            text: "00002098: no rights".into(),
            refs: Vec::new(),
            ctrls: Vec::new(),
        }
    }

    /// Fail closed: a domain search the bind account may not make proves no name free and no
    /// enid id absent.
    #[test]
    fn a_part_of_the_domain_the_bind_dn_cannot_read_is_an_error_naming_it_and_the_right() {
        let domain = "DC=samdom,DC=example,DC=org";
        outside_search_done(result(0), domain).unwrap();
        for rc in [50, 32] {
            let e = outside_search_done(result(rc), domain).unwrap_err();
            assert!(e.stops_target(), "{e}");
            let text = e.to_string();
            assert!(
                text.contains(domain) && text.contains("read access") && text.contains(&format!("LDAP {rc}")),
                "{text}"
            );
        }
        assert!(outside_search_done(result(51), domain).is_err(), "a busy server is an error too");
    }

    #[test]
    fn a_ranged_member_list_says_where_it_ends() {
        let mut attrs = HashMap::new();
        attrs.insert("member;range=0-1499".to_string(), vec!["CN=a".to_string()]);
        let e = SearchEntry { dn: "CN=g".into(), attrs, bin_attrs: HashMap::new() };
        assert_eq!(ranged(&e, "member"), Some((&["CN=a".to_string()][..], Some(1499))));
        let mut attrs = HashMap::new();
        attrs.insert("member;range=1500-*".to_string(), vec!["CN=b".to_string()]);
        let e = SearchEntry { dn: "CN=g".into(), attrs, bin_attrs: HashMap::new() };
        assert_eq!(ranged(&e, "member"), Some((&["CN=b".to_string()][..], None)));
    }
}
