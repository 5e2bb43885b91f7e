//! Reads: accounts in scope (a paged subtree search, all or nothing), groups, and entries
//! outside the scope by owner marker or anchor.

use crate::LdapTarget;
use crate::config::DisableMethod;
use crate::dn::{normalize_dn, under};
use crate::entry::{Entry, Malformed};
use crate::error::{from_ldap, from_result};
use connector_api::value::Str;
use connector_api::{FoundAnchor, Name, ObservedAccount, ObservedGroup, PackedAttrs, TargetError};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Scope, SearchEntry};
use std::collections::HashMap;

/// `(&FILTER(|(a=v1)(a=v2)…))` over every attribute in `attrs`, the values escaped; `suffix` is
/// appended to each value unescaped (a substring filter's `@*`). The configured filter is taken
/// with or without its parentheses.
pub(crate) fn and_any(filter: &str, attrs: &[&str], values: &[String], suffix: &str) -> String {
    let base = filter.trim();
    let base = if base.starts_with('(') { base.to_string() } else { format!("({base})") };
    let any: String = values
        .iter()
        .flat_map(|v| attrs.iter().map(move |a| format!("({a}={}{suffix})", ldap3::ldap_escape(v.as_str()))))
        .collect();
    format!("(&{base}(|{any}))")
}

/// A paged subtree search, its entries taken one at a time: all or nothing (a malformed entry,
/// or a search that ends in an error, voids the whole read). What the reads of accounts share.
struct PagedRead<'b> {
    base: &'b str,
    stream: ldap3::SearchStream<'static, String, Vec<String>>,
}

impl PagedRead<'_> {
    /// The next entry, taken apart by value.
    async fn next(&mut self) -> Result<Option<Entry>, TargetError> {
        match self.stream.next().await {
            Ok(Some(e)) => Entry::take(e).map(Some).map_err(|m| self.malformed(m, None)),
            Ok(None) => Ok(None),
            Err(e) => Err(from_ldap(e, &format!("search {}", self.base))),
        }
    }

    /// What the server sent wrong (in the entry at `dn`, when known), as the read's error.
    fn malformed(&self, Malformed(what): Malformed, dn: Option<&str>) -> TargetError {
        let at = dn.map(|dn| format!(" at {dn}")).unwrap_or_default();
        TargetError::unavailable(format!(
            "search {}: the server sent {what}{at}; the read is void (check the server and its schema)",
            self.base
        ))
    }

    /// The search's end: an error is a partial read, the whole read void; but a disabled OU
    /// that does not exist yet (searched beside `base_dn`) holds nothing.
    async fn finish(mut self, target: &LdapTarget) -> Result<(), TargetError> {
        let res = self.stream.finish().await;
        if res.rc == 32 && normalize_dn(self.base) != normalize_dn(&target.config.base_dn) {
            return Ok(());
        }
        from_result(res, &format!("search {}", self.base)).map(drop)
    }
}

impl LdapTarget {
    /// A paged subtree search under `base` for `request`'s attributes.
    async fn paged_read<'b>(
        &self,
        base: &'b str,
        filter: &str,
        request: Vec<String>,
    ) -> Result<PagedRead<'b>, TargetError> {
        let mut ldap = self.ldap().await?;
        let adapters: Vec<Box<dyn Adapter<_, _>>> =
            vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(self.config.page_size))];
        let stream = ldap
            .req()?
            .streaming_search_with(adapters, base, Scope::Subtree, filter, request)
            .await
            .map_err(|e| from_ldap(e, &format!("search {base}")))?;
        Ok(PagedRead { base, stream })
    }

    pub(crate) async fn search_all(&self, base: &str, attrs: &[String]) -> Result<Vec<ObservedAccount>, TargetError> {
        self.search_filtered(base, &self.config.filter.clone(), attrs).await
    }

    /// Accounts under `base` that the configured filter selects and whose `attr` holds one of
    /// `values` (fifty to a search), read as [`LdapTarget::search_all`] reads them.
    pub(crate) async fn search_where(
        &self,
        base: &str,
        attr: &str,
        values: &[String],
        attrs: &[String],
    ) -> Result<Vec<ObservedAccount>, TargetError> {
        let mut out = Vec::new();
        for chunk in values.chunks(50) {
            let filter = and_any(&self.config.filter, &[attr], chunk, "");
            out.extend(self.search_filtered(base, &filter, attrs).await?);
        }
        Ok(out)
    }

    async fn search_filtered(
        &self,
        base: &str,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<ObservedAccount>, TargetError> {
        let request = self.wanted(attrs);
        let mut read = self.paged_read(base, filter, request.clone()).await?;
        // The names as asked for (the last spelling of a name asked for twice), in name order,
        // made once and shared by every account read; an entry's attribute is found by its
        // place among them.
        let wanted: HashMap<String, Name> = request.iter().map(|a| (a.to_ascii_lowercase(), Name::from(a))).collect();
        let mut names: Vec<Name> = wanted.into_values().collect();
        names.sort();
        let shared: std::sync::Arc<[Name]> = names.into();
        let place = |name: &str| shared.iter().position(|n| n.as_str().eq_ignore_ascii_case(name));
        // What the account keeps among its attributes: all it read but the entryUUID when the
        // engine did not ask for it. The connector reads that as the anchor, kept beside the
        // attributes (`Joined`); among them it was 38 bytes more per account, held through the
        // planning. The username and the disable attribute stay: username correlation looks
        // for the person's names in every attribute of an account (`seen_names`).
        let kept: Vec<bool> = shared
            .iter()
            .map(|n| !n.eq_ignore_ascii_case("entryUUID") || attrs.iter().any(|a| a.eq_ignore_ascii_case(n)))
            .collect();
        let (anchor_at, rdn_at) = (place("entryUUID"), place(&self.config.rdn_attribute));
        let disable_at = match &self.config.disable {
            DisableMethod::Attribute { attribute, value } => place(attribute).map(|at| (at, value.as_str())),
            DisableMethod::Move { .. } => None,
        };
        let mut out = Vec::new();
        while let Some(mut entry) = read.next().await? {
            let mut texts: Vec<(usize, Vec<String>)> = Vec::with_capacity(shared.len());
            let (mut anchor, mut username, mut disabled) = (None, None, false);
            while let Some((name, values)) = entry.next_attribute().map_err(|m| read.malformed(m, Some(&entry.dn)))? {
                let Some(at) = std::str::from_utf8(&name).ok().and_then(&place) else { continue };
                let mut values = values.texts().map_err(|m| {
                    let what = format!("{} (attribute {})", m.0, String::from_utf8_lossy(&name));
                    TargetError::unavailable(format!(
                        "search {base}: the server sent {what} at {}; enid reads text attributes only: \
                         remove the attribute from the target's mapping or fix the value",
                        entry.dn
                    ))
                })?;
                if Some(at) == anchor_at {
                    anchor = values.first().cloned();
                }
                if Some(at) == rdn_at {
                    username = values.first().map(|u| Str::from(u.as_str()));
                }
                if let Some((disable, value)) = disable_at
                    && disable == at
                {
                    disabled = values.iter().any(|v| v == value);
                }
                // LDAP values are a set; the server keeps them in the order they were added
                // (a `HashSet`'s, in the add): sorted, two directories with the same content
                // give the same observation, and the same plan id.
                if values.len() > 1 {
                    values.sort_unstable();
                }
                if !kept[at] {
                    continue;
                }
                // An attribute sent twice (no server does): the last, as a map would keep it.
                match texts.iter_mut().find(|(p, _)| *p == at) {
                    Some(held) => held.1 = values,
                    None => texts.push((at, values)),
                }
            }
            let dn_norm = normalize_dn(&entry.dn);
            if let DisableMethod::Move { .. } = self.config.disable {
                disabled = self.in_disabled_ou(&dn_norm);
            }
            let excluded = self.excluded_norm.iter().any(|c| under(&dn_norm, c));
            let mut account = ObservedAccount::new(
                &entry.dn,
                anchor.as_deref(),
                username.as_deref(),
                PackedAttrs::pack_texts(&shared, texts),
            );
            account.disabled = disabled;
            account.excluded = excluded;
            out.push(account);
        }
        read.finish(self).await?;
        Ok(out)
    }

    /// The key, `entryUUID` and owner value of every entry under `base` that the configured
    /// filter selects and that carries an owner value, handed to `into` a thousand at a time
    /// ([`connector_api::Target::read_anchors`]). A malformed entry or a search that ends in an
    /// error is an error, as in [`LdapTarget::search_all`].
    pub(crate) async fn read_anchors_under(
        &self,
        base: &str,
        into: &tokio::sync::mpsc::Sender<Vec<FoundAnchor>>,
    ) -> Result<(), TargetError> {
        const BATCH: usize = 1000;
        let (owner, rdn) = (&self.config.owner_attribute, &self.config.rdn_attribute);
        let request = vec!["entryUUID".to_string(), owner.clone(), rdn.clone()];
        let mut read = self.paged_read(base, &self.config.filter, request).await?;
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(mut entry) = read.next().await? {
            let (mut anchor, mut owners, mut username) = (None, Vec::new(), None);
            while let Some((name, values)) = entry.next_attribute().map_err(|m| read.malformed(m, Some(&entry.dn)))? {
                let is = |a: &str| name.eq_ignore_ascii_case(a.as_bytes());
                let (is_anchor, is_owner, is_rdn) = (is("entryUUID"), is(owner), is(rdn));
                if !is_anchor && !is_owner && !is_rdn {
                    continue;
                }
                let values = values.texts().map_err(|m| read.malformed(m, Some(&entry.dn)))?;
                if is_anchor {
                    anchor = values.first().cloned();
                }
                if is_rdn {
                    username = values.first().cloned();
                }
                if is_owner {
                    owners = values;
                }
            }
            // The key as this connector spelled it at the create (`dn_for`), where the entry is
            // where a create puts it: the server gives the DN in its own spelling (attribute
            // names in small letters, no spaces after commas, escapes in capitals).
            let norm = normalize_dn(&entry.dn);
            let key = username
                .map(|u| self.dn_for(&u, self.in_disabled_ou(&norm)))
                .filter(|ours| normalize_dn(ours) == norm)
                .unwrap_or(entry.dn);
            if let Some(anchor) = anchor {
                // Each value (an enid id among others): the store takes the one a row is for.
                for owner in owners {
                    batch.push(FoundAnchor { key: key.clone(), anchor: anchor.clone(), owner });
                }
            }
            if batch.len() >= BATCH
                && into.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).await.is_err()
            {
                // Nobody reads on: the read ends here, as asked.
                return Ok(());
            }
        }
        read.finish(self).await?;
        if !batch.is_empty() {
            let _ = into.send(batch).await;
        }
        Ok(())
    }

    /// Entries anywhere on the server (under each of its naming contexts) but outside the
    /// scope enid observes (base_dn and the disabled OU) whose `attr` holds one of `values`:
    /// (DN, matched value). For what a lost state or a changed scope hides: accounts that carry
    /// this installation's ids, or whose recorded anchor moved out of scope.
    pub(crate) async fn find_outside_scope_inner(
        &self,
        attr: &str,
        values: &[String],
    ) -> Result<Vec<(String, String)>, TargetError> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let mut ldap = self.ldap().await?;
        let root = ldap
            .req()?
            .search("", Scope::Base, "(objectClass=*)", vec!["namingContexts"])
            .await
            .map_err(|e| from_ldap(e, "read the root DSE"))?;
        let (entries, res) = (root.0, root.1);
        from_result(res, "read the root DSE")?;
        let contexts: Vec<String> = entries
            .into_iter()
            .flat_map(|e| SearchEntry::construct(e).attrs.into_iter())
            .filter(|(k, _)| k.eq_ignore_ascii_case("namingContexts"))
            .flat_map(|(_, v)| v)
            .collect();
        let in_scope = |dn: &str| {
            let dn = normalize_dn(dn);
            under(&dn, &self.config.base_dn) || self.config.disabled_ou().is_some_and(|ou| under(&dn, &ou))
        };
        let mut out = Vec::new();
        for context in contexts {
            for chunk in values.chunks(50) {
                let filter = format!(
                    "(|{})",
                    chunk.iter().map(|v| format!("({attr}={})", ldap3::ldap_escape(v))).collect::<String>()
                );
                let found = ldap
                    .req()?
                    .search(&context, Scope::Subtree, &filter, vec![attr])
                    .await
                    .map_err(|e| from_ldap(e, &format!("search {context}")))?;
                let (entries, res) = (found.0, found.1);
                if !context_searched(res, &context)? {
                    continue;
                }
                for e in entries {
                    let e = SearchEntry::construct(e);
                    if in_scope(&e.dn) {
                        continue;
                    }
                    let hit = e
                        .attrs
                        .iter()
                        .filter(|(k, _)| k.eq_ignore_ascii_case(attr))
                        .flat_map(|(_, v)| v)
                        .find(|v| chunk.iter().any(|c| c.eq_ignore_ascii_case(v)))
                        .cloned();
                    if let Some(v) = hit {
                        out.push((e.dn, v));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Whether the search of a naming context outside the scope gave its entries: `false` for a
/// context with no base entry (OpenLDAP lists the suffix of a database that holds nothing; it
/// says the same for a base its ACLs do not disclose, which no client can tell apart). Fail
/// closed: a context the server refuses to search (50) is an error naming it and the right
/// needed, since an account enid owns, or one carrying its id, could be there unseen.
fn context_searched(res: ldap3::LdapResult, context: &str) -> Result<bool, TargetError> {
    match res.rc {
        32 => Ok(false),
        50 => Err(TargetError::config(format!(
            "search {context}: the bind DN may not search this naming context (LDAP 50{}); enid searches every \
             naming context for its own accounts outside base_dn, and a search it cannot make proves nothing: \
             give the bind DN read access (search and read of the owner attribute and entryUUID) on {context}",
            if res.text.is_empty() { String::new() } else { format!(": {}", res.text) }
        ))),
        _ => from_result(res, &format!("search {context}")).map(|_| true),
    }
}

impl LdapTarget {
    pub(crate) async fn search_groups(&self, base: &str) -> Result<Vec<ObservedGroup>, TargetError> {
        let class = self.config.groups.as_ref().map(|g| g.object_class).unwrap_or_default();
        let filter = format!("(objectClass={})", class.object_class());
        let member_attr = class.member_attr();
        let mut ldap = self.ldap().await?;
        let adapters: Vec<Box<dyn Adapter<_, _>>> =
            vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(self.config.page_size))];
        let mut stream = ldap
            .req()?
            .streaming_search_with(adapters, base, Scope::Subtree, &filter, vec!["cn", member_attr, "entryUUID"])
            .await
            .map_err(|e| from_ldap(e, &format!("search {base}")))?;
        let mut out = Vec::new();
        loop {
            let entry = match stream.next().await {
                Ok(Some(e)) => SearchEntry::construct(e),
                Ok(None) => break,
                Err(e) => return Err(from_ldap(e, &format!("search {base}"))),
            };
            let get = |name: &str| {
                entry
                    .attrs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            out.push(ObservedGroup {
                key: entry.dn.clone(),
                anchor: get("entryUUID").into_iter().next(),
                name: get("cn").into_iter().next().unwrap_or_default(),
                members: get(member_attr),
            });
        }
        let res = stream.finish().await;
        if res.rc == 32 {
            return Err(TargetError::config(format!("groups base_dn {base} does not exist; create it or fix base_dn")));
        }
        from_result(res, &format!("search {base}"))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rc: u32) -> ldap3::LdapResult {
        ldap3::LdapResult { rc, matched: String::new(), text: String::new(), refs: Vec::new(), ctrls: Vec::new() }
    }

    /// Fail closed: a naming context the server refuses to search is an error naming it and the
    /// right, never skipped as if it held nothing.
    #[test]
    fn a_naming_context_the_bind_dn_may_not_search_is_an_error() {
        assert!(context_searched(result(0), "dc=example,dc=org").unwrap());
        assert!(!context_searched(result(32), "dc=empty").unwrap(), "a context with no base entry holds nothing");
        let e = context_searched(result(50), "dc=other,dc=org").unwrap_err();
        let text = e.to_string();
        assert!(e.stops_target() && text.contains("dc=other,dc=org") && text.contains("read access"), "{text}");
    }
}
