//! `[targets.<id>]`: the connector's own settings, tagged by `type`, and the target's policy
//! (`[targets.<id>.policy]`), which enid parses the same way for every connector type.
//!
//! Config files from before the policy block keep working: their policy keys
//! (`attributes`, `thresholds`, `exclude`, `protected`, `max_username_length`, and the naming
//! keys of `groups`) are read from where they were, with a warning naming the new spelling;
//! `exclude.keys_under` of an LDAP target becomes the connector's `exclude_under`.

use super::TargetConfig;
use crate::core::mapping::AttrTemplate;
use crate::core::policy::TargetPolicy;
use connector_api::Capabilities;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One target: what connects to it, and what enid may do there.
#[derive(Debug, Clone)]
pub struct TargetEntry {
    /// The connector's own settings.
    pub connector: TargetConfig,
    /// What enid may do there and what accounts carry.
    pub policy: TargetPolicy,
    /// Old spellings this entry used, each with the new one (warned about at every start).
    pub deprecated: Vec<String>,
}

/// Policy keys that older files wrote in the connector's table.
const LEGACY_POLICY_KEYS: [&str; 5] = ["attributes", "thresholds", "exclude", "protected", "max_username_length"];
/// The keys of a `groups` table that say which groups to make (policy), not where they live.
const GROUP_POLICY_KEYS: [&str; 3] = ["name", "school_name", "members"];

impl<'de> Deserialize<'de> for TargetEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        let (policy, deprecated) = split_policy(&mut table).map_err(D::Error::custom)?;
        let connector: TargetConfig =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| D::Error::custom(e.message()))?;
        let policy: TargetPolicy =
            toml::Value::Table(policy).try_into().map_err(|e: toml::de::Error| D::Error::custom(e.message()))?;
        Ok(TargetEntry { connector, policy, deprecated })
    }
}

/// Takes the policy out of a target's table: the `policy` table, plus policy keys written the
/// old way. Returns the policy and the old spellings found.
fn split_policy(table: &mut toml::Table) -> Result<(toml::Table, Vec<String>), String> {
    let mut policy = match table.remove("policy") {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(_) => return Err("policy must be a table ([targets.<id>.policy])".into()),
    };
    let mut deprecated = Vec::new();
    let take = |policy: &mut toml::Table, deprecated: &mut Vec<String>, key: &str, value: toml::Value, old: &str| {
        if policy.contains_key(key) {
            return Err(format!("{old} is given twice: once the old way and once in the policy; keep the policy's"));
        }
        policy.insert(key.to_string(), value);
        deprecated.push(old.to_string());
        Ok(())
    };
    let ldap = table.get("type").and_then(toml::Value::as_str) == Some("ldap");
    for key in LEGACY_POLICY_KEYS {
        let Some(mut value) = table.remove(key) else { continue };
        if key == "exclude"
            && ldap
            && let Some(under) = value.as_table_mut().and_then(|t| t.remove("keys_under"))
        {
            // Containers are the LDAP connector's business now.
            if table.contains_key("exclude_under") {
                return Err("exclude.keys_under and exclude_under are both given; keep exclude_under".into());
            }
            table.insert("exclude_under".into(), under);
            deprecated.push("exclude.keys_under → exclude_under".into());
        }
        take(&mut policy, &mut deprecated, key, value, key)?;
    }
    if let Some(toml::Value::Table(groups)) = table.get_mut("groups") {
        let mut naming = toml::Table::new();
        for key in GROUP_POLICY_KEYS {
            if let Some(v) = groups.remove(key) {
                naming.insert(key.to_string(), v);
            }
        }
        if !naming.is_empty() {
            take(
                &mut policy,
                &mut deprecated,
                "groups",
                toml::Value::Table(naming),
                "groups.name, school_name and members",
            )?;
        } else if !policy.contains_key("groups") {
            // A group container alone has always meant: make the default groups there.
            policy.insert("groups".into(), toml::Value::Table(toml::Table::new()));
        }
    }
    Ok((policy, deprecated))
}

/// The attribute templates in force on a target: the connector's defaults, the policy's on top
/// (names compare without case: an override replaces the default, a complex one as a whole),
/// and the owner attribute mapped to the enid id, always.
pub fn mapping_templates(caps: &Capabilities, policy: &TargetPolicy) -> BTreeMap<String, AttrTemplate> {
    // A default named `name.givenName` is a part of the complex value `name`.
    let mut m: BTreeMap<String, AttrTemplate> = BTreeMap::new();
    for (k, v) in &caps.default_attributes {
        match k.split_once('.') {
            Some((attr, part)) => {
                let entry = m.entry(attr.to_string()).or_insert_with(|| AttrTemplate::Complex(BTreeMap::new()));
                if let AttrTemplate::Complex(parts) = entry {
                    parts.insert(part.to_string(), AttrTemplate::text(v.clone()));
                }
            }
            None => {
                m.insert(k.clone(), AttrTemplate::text(v.clone()));
            }
        }
    }
    for (k, v) in &policy.attributes {
        m.retain(|d, _| !d.eq_ignore_ascii_case(k));
        m.insert(k.clone(), v.clone());
    }
    m.retain(|d, _| !d.eq_ignore_ascii_case(&caps.owner_attribute));
    m.insert(caps.owner_attribute.clone(), AttrTemplate::text("{{ id }}"));
    m
}

/// Checks a target's policy against what its connector declares: attributes it may not set,
/// values it cannot hold, groups it cannot make.
pub fn check_policy(id: &str, entry: &TargetEntry) -> Result<(), String> {
    let caps = entry.connector.capabilities();
    let policy = &entry.policy;
    if caps.owner_attribute.trim().is_empty() {
        // Without an owner marker an interrupted create or a lost state could never be found
        // again: such a connector is a bug, not a setting.
        return Err(format!(
            "[targets.{id}]: the connector declares no owner attribute (Capabilities::owner_attribute), so enid \
             could not recognise the accounts it creates; this connector type cannot be used"
        ));
    }
    for (k, t) in &policy.attributes {
        let why = if k.eq_ignore_ascii_case(&caps.owner_attribute) {
            Some("it carries the enid id, which is how enid recognises the accounts it created")
        } else {
            entry.connector.fixed_attribute(k)
        };
        if let Some(why) = why {
            return Err(format!("[targets.{id}.policy.attributes] {k} cannot be set or removed here: {why}"));
        }
        if !caps.typed_values && !matches!(t, AttrTemplate::Text(_)) {
            return Err(format!(
                "[targets.{id}.policy.attributes] {k}: this target holds strings only; write a string template"
            ));
        }
    }
    if let Some(attr) = &policy.correlate.attribute {
        // A value enid writes would match whatever enid wrote there itself, not what the old
        // scripts stored.
        let written = mapping_templates(&caps, policy).keys().any(|k| k.eq_ignore_ascii_case(attr))
            || attr
                .split_once('.')
                .is_some_and(|(a, _)| mapping_templates(&caps, policy).keys().any(|k| k.eq_ignore_ascii_case(a)));
        let why = if attr.eq_ignore_ascii_case(&caps.owner_attribute) {
            Some("it is the owner marker enid writes".to_string())
        } else if let Some(why) = entry.connector.fixed_attribute(attr) {
            Some(format!("enid writes it ({why})"))
        } else if written {
            Some("enid writes it through the attribute mapping".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            return Err(format!(
                "[targets.{id}.policy.correlate] attribute = {attr:?} cannot be a correlation attribute: {why}; use \
                 an attribute that holds what the old accounts were made from (extensionAttribute1, mail, ...)"
            ));
        }
    }
    if policy.groups.is_some() && caps.groups.is_none() {
        return Err(format!(
            "[targets.{id}.policy.groups]: this target has nowhere to put groups; an LDAP or AD target \
             needs [targets.{id}.groups] base_dn"
        ));
    }
    Ok(())
}
