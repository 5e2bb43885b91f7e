//! A target's policy: what enid may do there and what accounts carry, the same for every
//! connector type and parsed by enid, separate from the connector's own settings
//! (`[targets.<id>.policy]`): the attribute templates, the groups to make, thresholds (how much
//! change a plan may make before it is held for review), exclusions (accounts never touched),
//! what a person with protected personal data gets, and the username length limit.

use crate::core::mapping::AttrTemplate;
use connector_api::ObservedAccount;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[targets.<id>.policy]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetPolicy {
    /// Attribute name → template. Adds to or overrides the connector's default attributes; an
    /// empty template removes a default attribute. A string template gives texts (one value per
    /// line), `true`/`false` a boolean, a table a complex value (`name.givenName = "..."`), an
    /// array of tables several (`emails = [{ value = "...", type = "work", primary = true }]`).
    #[serde(default)]
    pub attributes: BTreeMap<String, AttrTemplate>,
    /// School and class groups; none when left out.
    #[serde(default)]
    pub groups: Option<GroupPolicy>,
    /// How much one plan may change before it is held for review.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Accounts enid never touches.
    #[serde(default)]
    pub exclude: Exclude,
    /// What the target holds for persons with protected personal data.
    #[serde(default)]
    pub protected: ProtectedPolicy,
    /// The longest username to give, when it is shorter than the target's own limit. Usernames
    /// are the same on every target, so the shortest limit of all targets applies.
    #[serde(default)]
    pub max_username_length: Option<usize>,
    /// How accounts made before enid are recognised as a person's, to be claimed instead of
    /// duplicated. None by default: such an account blocks the person it may belong to.
    #[serde(default)]
    pub correlate: Correlate,
    /// Enable an account of an active person that was disabled on the target by someone else
    /// (a security lockout): `false` (the default) leaves it disabled and reports it until an
    /// operator approves the enable (`apply --only enable`).
    #[serde(default)]
    pub enable_disabled_outside: bool,
}

impl TargetPolicy {
    /// Checks what needs no connector: percentages, filter shapes, group roles.
    pub fn validate(&self) -> Result<(), String> {
        self.thresholds.validate()?;
        self.correlate.validate()?;
        self.exclude.validate()?;
        if let Some(g) = &self.groups {
            for r in &g.members {
                if connector_api::Role::parse(r).is_none() {
                    return Err(format!("groups.members: {r:?} must be \"student\" or \"staff\""));
                }
            }
        }
        Ok(())
    }
}

/// `[targets.<id>.policy.correlate]`: the rules by which an account that enid does not own (made
/// by hand or by older scripts, carrying no enid id) is recognised as a person's. A match is
/// claimed by an operation of its own (`claim`) that the plan shows and an apply carries out,
/// writing the owner marker; an account that matches several persons, or a person that matches
/// several accounts, is claimed by nobody.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Correlate {
    /// An account whose username is the person's (and that shows the person's names, as a
    /// check) is theirs. With `attribute`, used only for accounts whose attribute is empty.
    #[serde(default)]
    pub username: bool,
    /// An attribute of the account that holds a value from the sources (AD
    /// `extensionAttribute1` where old scripts kept the school system's id, or `mail`). It may
    /// not be an attribute enid writes on the target. With `value`.
    #[serde(default)]
    pub attribute: Option<String>,
    /// The value the attribute holds, as a template over a record of the person: `person_id`,
    /// `source`, `email`, `eppn`, `given_name`, `family_name`, `school_unit` (one value per
    /// record of the person). These variables exist only here, never in attributes enid writes.
    #[serde(default)]
    pub value: Option<String>,
}

impl Correlate {
    /// Whether any rule is set.
    pub fn is_empty(&self) -> bool {
        !self.username && self.attribute.is_none()
    }

    /// Checks that an attribute comes with a value template and the other way round.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.attribute, &self.value) {
            (Some(a), _) if a.trim().is_empty() => Err("correlate.attribute is empty".into()),
            (Some(_), Some(v)) if v.trim().is_empty() => Err("correlate.value is empty".into()),
            (Some(_), None) => Err("correlate.attribute needs correlate.value, the template of what it holds".into()),
            (None, Some(_)) => Err("correlate.value needs correlate.attribute, the attribute that holds it".into()),
            _ => Ok(()),
        }
    }
}

/// `[targets.<id>.policy.groups]`: groups made from the sources' school units and groups.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GroupPolicy {
    /// Name template of a class or teaching group; variables `school_unit` (the group's school
    /// unit code), `school_unit_name`, `group` and `group_type`.
    #[serde(default = "default_group_name")]
    pub name: String,
    /// Name template of a group per school unit (all its members); variables `school_unit` and
    /// `school_unit_name`.
    /// Empty (the default): no school groups.
    #[serde(default)]
    pub school_name: String,
    /// Which roles become members.
    #[serde(default = "default_group_roles")]
    pub members: Vec<String>,
    /// Which types of group are made: `class`, `teaching`, `mentor`, `other` (default all).
    /// SS 12000's `Klass`, `Undervisning` and `Mentor` are the first three; a CSV group is a
    /// `class` unless its row's `group_type` says otherwise.
    #[serde(default = "default_group_types")]
    pub types: Vec<connector_api::GroupType>,
}

impl Default for GroupPolicy {
    fn default() -> Self {
        GroupPolicy {
            name: default_group_name(),
            school_name: String::new(),
            members: default_group_roles(),
            types: default_group_types(),
        }
    }
}

fn default_group_types() -> Vec<connector_api::GroupType> {
    connector_api::GroupType::ALL.to_vec()
}

fn default_group_name() -> String {
    "{{ school_unit }}-{{ group }}".into()
}
fn default_group_roles() -> Vec<String> {
    vec!["student".into(), "staff".into()]
}

/// Limits per action, as a share of the accounts enid owns on the target with a floor. A plan
/// that goes over any of them is held: nothing of it is applied until an operator accepts it.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Disables allowed, in percent of the owned accounts (default 5).
    #[serde(default = "five")]
    pub disable_percent: f64,
    /// Disables always allowed, whatever the percentage (default 10).
    #[serde(default = "ten")]
    pub disable_min: usize,
    /// Deletes allowed, in percent of the owned accounts (default 5).
    #[serde(default = "five")]
    pub delete_percent: f64,
    /// Deletes always allowed (default 10).
    #[serde(default = "ten")]
    pub delete_min: usize,
    /// Creates allowed, in percent of the owned accounts (default 20). The first run, with no
    /// owned accounts, is exempt on a target that holds no enid ids; re-creating owned accounts
    /// that vanished counts.
    #[serde(default = "twenty")]
    pub create_percent: f64,
    /// Creates always allowed (default 50).
    #[serde(default = "fifty")]
    pub create_min: usize,
    /// Updates allowed, in percent of the owned accounts (default 10): a swapped or renamed
    /// column changes everyone's attributes at once.
    #[serde(default = "ten_percent")]
    pub update_percent: f64,
    /// Updates always allowed (default 50).
    #[serde(default = "fifty")]
    pub update_min: usize,
    /// Renames (username changes) allowed, in percent of the owned accounts (default 2): a
    /// rename is for good, the old name is never given back.
    #[serde(default = "two")]
    pub rename_percent: f64,
    /// Renames always allowed (default 10).
    #[serde(default = "ten")]
    pub rename_min: usize,
    /// Owned accounts (active or disabled) that may be missing from what the target shows, in
    /// percent of them (default 10). More stops the run before planning: a changed base DN,
    /// filter or permission hides accounts, it does not mean they are gone.
    #[serde(default = "ten_percent")]
    pub missing_percent: f64,
    /// Owned accounts (and, separately, owned groups) that may always be missing (default 10).
    #[serde(default = "ten")]
    pub missing_min: usize,
    /// Enables of disabled accounts allowed, in percent of the owned accounts (default 10): an
    /// old export put back re-enables every leaver since.
    #[serde(default = "ten_percent")]
    pub enable_percent: f64,
    /// Enables always allowed (default 50).
    #[serde(default = "fifty")]
    pub enable_min: usize,
    /// Deletes of groups enid created, in percent of those groups (default 10): an emptied
    /// groups column empties every group.
    #[serde(default = "ten_percent")]
    pub group_delete_percent: f64,
    /// Group deletes always allowed (default 5).
    #[serde(default = "five_groups")]
    pub group_delete_min: usize,
    /// Members removed from groups enid owns, in percent of the members those groups hold
    /// (default 10): a truncated enrollments file or a half-empty groups column takes pupils out
    /// of their classes without emptying any group.
    #[serde(default = "ten_percent")]
    pub member_remove_percent: f64,
    /// Member removals always allowed (default 50).
    #[serde(default = "fifty")]
    pub member_remove_min: usize,
    /// Claims of accounts made before enid ([`Correlate`]), in percent of the accounts the
    /// target holds in scope (default 10): a wrong correlation rule claims many at once.
    #[serde(default = "ten_percent")]
    pub claim_percent: f64,
    /// Claims always allowed (default 10): a claim can rename an account and makes it enid's,
    /// so a rule that matches wrongly must not take over many accounts unreviewed.
    #[serde(default = "ten")]
    pub claim_min: usize,
}

fn five_groups() -> usize {
    5
}

fn five() -> f64 {
    5.0
}
fn ten() -> usize {
    10
}
fn two() -> f64 {
    2.0
}
fn ten_percent() -> f64 {
    10.0
}
fn twenty() -> f64 {
    20.0
}
fn fifty() -> usize {
    50
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            disable_percent: five(),
            disable_min: ten(),
            delete_percent: five(),
            delete_min: ten(),
            create_percent: twenty(),
            create_min: fifty(),
            update_percent: ten_percent(),
            update_min: fifty(),
            rename_percent: two(),
            rename_min: ten(),
            missing_percent: ten_percent(),
            missing_min: ten(),
            enable_percent: ten_percent(),
            enable_min: fifty(),
            group_delete_percent: ten_percent(),
            group_delete_min: five_groups(),
            member_remove_percent: ten_percent(),
            member_remove_min: fifty(),
            claim_percent: ten_percent(),
            claim_min: ten(),
        }
    }
}

impl Thresholds {
    /// The largest count allowed: `percent` of `owned`, rounded up, and at least `min`.
    pub fn limit(percent: f64, min: usize, owned: usize) -> usize {
        ((percent / 100.0 * owned as f64).ceil() as usize).max(min)
    }

    /// Checks that every share is a percentage.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("disable_percent", self.disable_percent),
            ("delete_percent", self.delete_percent),
            ("create_percent", self.create_percent),
            ("update_percent", self.update_percent),
            ("rename_percent", self.rename_percent),
            ("missing_percent", self.missing_percent),
            ("enable_percent", self.enable_percent),
            ("group_delete_percent", self.group_delete_percent),
            ("member_remove_percent", self.member_remove_percent),
            ("claim_percent", self.claim_percent),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("thresholds.{name} = {v} must be between 0 and 100"));
            }
        }
        Ok(())
    }
}

/// Accounts on a target that enid never touches, whoever owns them: manual exceptions. (A
/// connector may exclude more by its own settings, such as LDAP's `exclude_under` containers:
/// [`ObservedAccount::excluded`].)
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Exclude {
    /// Accounts with one of these usernames.
    #[serde(default)]
    pub usernames: Vec<String>,
    /// `attribute=value`: accounts with that value (for example `employeeType=exception`).
    #[serde(default)]
    pub attributes: Vec<String>,
}

impl Exclude {
    /// Checks the filters' shape.
    pub fn validate(&self) -> Result<(), String> {
        for a in &self.attributes {
            if !a.contains('=') {
                return Err(format!("exclude.attributes: {a:?} is not attribute=value"));
            }
        }
        Ok(())
    }

    /// The attributes the filters look at (to be read with the accounts).
    pub fn attribute_names(&self) -> Vec<String> {
        self.attributes.iter().filter_map(|a| a.split_once('=')).map(|(k, _)| k.trim().to_string()).collect()
    }

    /// Whether nothing is excluded by these filters.
    pub fn is_empty(&self) -> bool {
        self.usernames.is_empty() && self.attributes.is_empty()
    }

    /// Whether an account is excluded, by these filters or by the connector's own settings.
    pub fn matches(&self, account: &ObservedAccount) -> bool {
        account.excluded
            || account.username().as_ref().is_some_and(|u| self.usernames.iter().any(|x| x.eq_ignore_ascii_case(u)))
            || self.attributes.iter().filter_map(|a| a.split_once('=')).any(|(k, v)| {
                account.attrs.iter().any(|(name, value)| {
                    name.eq_ignore_ascii_case(k.trim()) && value.texts().iter().any(|x| **x == *v.trim())
                })
            })
    }
}

/// What a target holds for a person with protected personal data (sekretessmarkering, skyddad
/// folkbokföring). The defaults are the safe ones.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProtectedPolicy {
    /// The only attributes written. Default: the connector's, those needed to log in and to be
    /// recognised (LDAP `uid`, `employeeNumber`, `cn`, `sn`; SCIM `userName`, `externalId`).
    /// Templates see the username in place of every name, so no attribute carries the real name.
    #[serde(default)]
    pub attributes: Option<Vec<String>>,
    /// Whether the person is a member of school and class groups (default: no).
    #[serde(default)]
    pub groups: bool,
    /// Whether every change to the person waits for explicit approval (default: yes).
    #[serde(default = "yes")]
    pub hold_changes: bool,
}

fn yes() -> bool {
    true
}

impl Default for ProtectedPolicy {
    fn default() -> Self {
        ProtectedPolicy { attributes: None, groups: false, hold_changes: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_take_the_larger_of_share_and_floor() {
        assert_eq!(Thresholds::limit(5.0, 10, 100), 10);
        assert_eq!(Thresholds::limit(5.0, 10, 2000), 100);
        assert_eq!(Thresholds::limit(5.0, 10, 2001), 101);
    }
}
