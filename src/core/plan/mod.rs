//! The planner: a pure diff from what should exist to what the targets hold.
//!
//! Given the desired accounts, the observed accounts and the ownership records, [`plan_target`]
//! returns the operations that make a target match, in a fixed order (create, update, enable,
//! disable, delete; then by username). Nothing here performs IO or reads the clock. An account
//! enid does not own is never in an operation: when it stands in the way, the person is listed
//! under `blocked` with the reason.

use crate::core::identity::Conflict;
use crate::core::model::{AccountStatus, IdentityId, OwnedAccount, is_enid_id};
use chrono::{DateTime, Utc};
use connector_api::{AttrChange, Attrs, ObservedAccount, ObservedGroup, TargetOp};
use rustc_hash::FxHashMap as HashMap;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

mod accounts;
mod groups;
mod thresholds;
pub use accounts::*;
pub use groups::*;
pub use thresholds::*;

/// What one identity should have on one target.
#[derive(Debug, Clone)]
pub struct Desired {
    pub identity_id: IdentityId,
    pub username: String,
    /// Schools of the person, for logs and `--school` filters.
    pub school: String,
    /// Rendered attributes; empty when the account should only be disabled.
    pub attrs: Attrs,
    /// Whether the account should be enabled now.
    pub active: bool,
    /// Why the account should be inactive, in plain words (when `active` is false).
    pub inactive_reason: Option<String>,
    /// Before the start date, inside the provisioning window: the account exists, disabled.
    pub provision_disabled: bool,
    /// Days an inactive person's disabled account is kept before deletion; `None`: never.
    pub grace_days: Option<u32>,
    /// The person has protected personal data: shown by enid id only.
    pub protected: bool,
    /// Every change waits for explicit approval (protected persons, by the target's policy).
    pub needs_approval: bool,
    /// Why nothing can be planned for this person now (their attributes could not be
    /// rendered): the account is left exactly as it is, and the person is reported as blocked.
    pub held: Option<String>,
    /// The person's start date came within the provisioning window: an enable of their
    /// pre-provisioned account is scheduled, not a return, and does not count against the
    /// enable threshold.
    pub scheduled_start: bool,
}

/// The kinds of operation, in the order a plan runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Rename,
    Update,
    Enable,
    Disable,
    Delete,
    /// Group actions run after account actions, so new accounts can be members.
    CreateGroup,
    AddMembers,
    RemoveMembers,
    DeleteGroup,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Rename => "rename",
            Action::Update => "update",
            Action::Enable => "enable",
            Action::Disable => "disable",
            Action::Delete => "delete",
            Action::CreateGroup => "create group",
            Action::AddMembers => "add members",
            Action::RemoveMembers => "remove members",
            Action::DeleteGroup => "delete group",
        }
    }
}

/// One operation, with what it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedOp {
    pub action: Action,
    pub target: String,
    pub identity: IdentityId,
    pub username: String,
    pub school: String,
    /// Why, in plain words.
    pub reason: String,
    pub op: TargetOp,
    /// For updates: the values before, of the attributes that change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Attrs>,
    /// For a person with protected personal data: shown by enid id only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
    /// Applied only with explicit approval (`apply --plan ID --accept-protected`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub needs_approval: bool,
}

impl PlannedOp {
    /// This operation as it may be shown: a protected person appears by enid id only, without
    /// school, values or username.
    pub fn redacted(&self) -> PlannedOp {
        if !self.protected {
            return self.clone();
        }
        let op = match &self.op {
            TargetOp::Create { disabled, .. } => {
                TargetOp::Create { username: self.identity.clone(), attrs: Attrs::new(), disabled: *disabled }
            }
            // Keys (DNs) may carry a name-derived username: never shown.
            TargetOp::Update { changes, .. } => TargetOp::Update {
                key: self.identity.clone(),
                changes: changes.iter().map(|c| AttrChange { attr: c.attr.clone(), values: Vec::new() }).collect(),
            },
            TargetOp::Rename { .. } => TargetOp::Rename { key: self.identity.clone(), username: self.identity.clone() },
            TargetOp::Disable { .. } => TargetOp::Disable { key: self.identity.clone() },
            TargetOp::Enable { .. } => TargetOp::Enable { key: self.identity.clone() },
            TargetOp::Delete { .. } => TargetOp::Delete { key: self.identity.clone() },
            other => other.clone(),
        };
        PlannedOp {
            username: self.identity.clone(),
            school: String::new(),
            reason: "protected person".into(),
            op,
            before: None,
            ..self.clone()
        }
    }
}

/// An account a previous, interrupted run created: found on the target with enid's id on it,
/// so the ownership record is completed without touching the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Adoption {
    pub target: String,
    pub identity: IdentityId,
    pub key: String,
    pub anchor: Option<String>,
    pub disabled: bool,
}

/// A person who cannot get an account now, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    pub target: String,
    pub identity: IdentityId,
    pub username: String,
    pub reason: String,
}

/// A new identity the plan introduces, with the username it allocates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewIdentity {
    pub id: IdentityId,
    pub username: String,
    /// `source/person_id` of each record.
    pub records: Vec<String>,
}

/// Counts per action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub rename: usize,
    pub update: usize,
    pub enable: usize,
    pub disable: usize,
    pub delete: usize,
    pub unchanged: usize,
}

impl Summary {
    fn count(&mut self, a: Action) {
        match a {
            Action::Create => self.create += 1,
            Action::Rename => self.rename += 1,
            Action::Update => self.update += 1,
            Action::Enable => self.enable += 1,
            Action::Disable => self.disable += 1,
            Action::Delete => self.delete += 1,
            // Group actions are counted in `GroupSummary`.
            Action::CreateGroup | Action::AddMembers | Action::RemoveMembers | Action::DeleteGroup => {}
        }
    }

    fn add(&mut self, o: &Summary) {
        self.create += o.create;
        self.rename += o.rename;
        self.update += o.update;
        self.enable += o.enable;
        self.disable += o.disable;
        self.delete += o.delete;
        self.unchanged += o.unchanged;
    }
}

/// A whole plan: what `enid plan` shows and `enid apply` carries out.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// A hash of the plan's content: two plans with the same id do the same thing.
    pub plan_id: String,
    pub now: DateTime<Utc>,
    pub summary: Summary,
    pub targets: BTreeMap<String, Summary>,
    pub new_identities: Vec<NewIdentity>,
    pub operations: Vec<PlannedOp>,
    pub adoptions: Vec<Adoption>,
    pub blocked: Vec<Blocked>,
    /// Accounts on the targets that enid does not own and leaves alone, per target.
    pub unmanaged: BTreeMap<String, usize>,
    /// Records held until an operator decides (`enid conflicts`).
    pub conflicts: Vec<Conflict>,
    /// Linked records whose civic number changed; identities and accounts stay (masked).
    pub civic_changes: Vec<String>,
    /// Group changes, over all targets and per target.
    pub group_summary: GroupSummary,
    pub target_groups: BTreeMap<String, GroupSummary>,
    /// Groups an interrupted run created, to be recorded as enid's.
    pub group_adoptions: Vec<GroupAdoption>,
    /// Usernames this plan changes (rename policy), and renames waiting for approval.
    pub renames: Vec<RenameInfo>,
    pub held_renames: Vec<RenameInfo>,
    /// Thresholds this plan goes over. A plan with any is held: nothing of it is applied until
    /// an operator applies it by id with `--accept-threshold`.
    pub held: Vec<ThresholdHit>,
    /// Persons the state knows as protected whom no source marks any more: they stay protected
    /// until this plan is applied with `--accept-protected`.
    pub unprotect: Vec<IdentityId>,
    /// Persons kept exactly as at the last run: a row of theirs was rejected, or their source
    /// key now carries another person's number. No operation touches their accounts and their
    /// group memberships stay as they are.
    pub kept: Vec<KeptPerson>,
}

/// A person the plan leaves exactly as at the last run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptPerson {
    pub identity: IdentityId,
    /// The username, or the enid id for a person with protected personal data.
    pub username: String,
    /// Why, with the locations involved (`row rejected at persons.csv:38`); keys masked.
    pub reason: String,
}

/// A username change for a person whose name changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenameInfo {
    pub identity: IdentityId,
    pub old: String,
    pub new: String,
}

/// What [`plan_target`] returns for one target.
#[derive(Debug, Clone, Default)]
pub struct TargetPlan {
    pub operations: Vec<PlannedOp>,
    pub adoptions: Vec<Adoption>,
    pub blocked: Vec<Blocked>,
    pub summary: Summary,
    pub unmanaged: usize,
    /// The key of each identity's enabled account after this plan (existing or to be created):
    /// who may be a group member.
    pub member_keys: Vec<(IdentityId, String)>,
    /// How many values of enid's id form the entries on the target carry in the owner
    /// attribute: a target with any is not new to enid, whatever the state database says.
    pub enid_entries: usize,
    pub groups: GroupSummary,
    pub group_adoptions: Vec<GroupAdoption>,
    /// Member values (normalised with [`normalize_key`]) of persons kept as at the last run:
    /// [`plan_groups`] never removes them from a group, and never deletes a group that holds
    /// one. Set by the caller before `plan_groups`.
    pub kept_members: std::collections::BTreeSet<String>,
}

/// Counts of group changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GroupSummary {
    pub create: usize,
    /// Member values added, over all groups.
    pub members_added: usize,
    /// Member values removed, over all groups.
    pub members_removed: usize,
    pub delete: usize,
    pub unchanged: usize,
}

/// A group a previous, interrupted run created: found where its pending create was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupAdoption {
    pub target: String,
    pub name: String,
    pub key: String,
    pub anchor: Option<String>,
    pub school: String,
}

/// A group enid created, as recorded in the state database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedGroup {
    pub target: String,
    pub name: String,
    pub key: String,
    pub anchor: Option<String>,
    /// The school unit the group belongs to, for logs.
    pub school: String,
    /// The create was about to be sent; whether it arrived is unknown until observed.
    pub pending: bool,
}

/// What a group should be: its school (for logs) and its members' account keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredGroup {
    pub school: String,
    pub members: std::collections::BTreeSet<String>,
}

/// A group name as the directory compares it: without case, and with runs of spaces as one
/// (LDAP's insignificant-space handling): `3 A`, `3  A` and `3a` are one group.
pub fn fold_name(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// The reason of an enable that a start date scheduled (see [`Desired::scheduled_start`]).
pub const START_REASON: &str = "the start date has come";

/// Normalises an account key for comparison (case and spaces around DN separators).
pub fn normalize_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut pending_space = false;
    for c in key.chars() {
        if c == ' ' {
            pending_space = true;
            continue;
        }
        if pending_space && !matches!(c, ',' | '=') && !matches!(out.chars().last(), Some(',') | Some('=') | None) {
            out.push(' ');
        }
        pending_space = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// Puts target plans together into one plan and computes its id.
pub fn assemble(
    now: DateTime<Utc>,
    new_identities: Vec<NewIdentity>,
    targets: BTreeMap<String, TargetPlan>,
    conflicts: Vec<Conflict>,
    civic_changes: Vec<String>,
    renames: (Vec<RenameInfo>, Vec<RenameInfo>),
) -> Plan {
    let mut summary = Summary::default();
    let mut per_target = BTreeMap::new();
    let mut operations = Vec::new();
    let mut adoptions = Vec::new();
    let mut blocked = Vec::new();
    let mut unmanaged = BTreeMap::new();
    let mut group_summary = GroupSummary::default();
    let mut target_groups = BTreeMap::new();
    let mut group_adoptions = Vec::new();
    for (name, tp) in targets {
        group_summary.create += tp.groups.create;
        group_summary.members_added += tp.groups.members_added;
        group_summary.members_removed += tp.groups.members_removed;
        group_summary.delete += tp.groups.delete;
        group_summary.unchanged += tp.groups.unchanged;
        target_groups.insert(name.clone(), tp.groups);
        group_adoptions.extend(tp.group_adoptions);
        summary.add(&tp.summary);
        per_target.insert(name.clone(), tp.summary);
        unmanaged.insert(name, tp.unmanaged);
        operations.extend(tp.operations);
        adoptions.extend(tp.adoptions);
        blocked.extend(tp.blocked);
    }
    operations.sort_by(|a, b| (a.action, &a.target, &a.username).cmp(&(b.action, &b.target, &b.username)));
    let plan_id = plan_id(&new_identities, &operations, &adoptions, &blocked, &conflicts, &renames.0);
    Plan {
        plan_id,
        now,
        summary,
        targets: per_target,
        new_identities,
        operations,
        adoptions,
        blocked,
        unmanaged,
        conflicts,
        civic_changes,
        group_summary,
        target_groups,
        group_adoptions,
        renames: renames.0,
        held_renames: renames.1,
        held: Vec::new(),
        unprotect: Vec::new(),
        kept: Vec::new(),
    }
}

fn plan_id(
    ids: &[NewIdentity],
    ops: &[PlannedOp],
    adoptions: &[Adoption],
    blocked: &[Blocked],
    conflicts: &[Conflict],
    renames: &[RenameInfo],
) -> String {
    let body = serde_json::json!({
        "identities": ids, "operations": ops, "adoptions": adoptions, "blocked": blocked, "conflicts": conflicts,
        "renames": renames,
    });
    let digest = Sha256::digest(body.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl Plan {
    /// Whether the plan changes anything at all (state included).
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
            && self.adoptions.is_empty()
            && self.new_identities.is_empty()
            && self.group_adoptions.is_empty()
            && self.renames.is_empty()
            && self.unprotect.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Attrs {
        pairs.iter().map(|(k, v)| (k.to_string(), vec![v.to_string()])).collect()
    }

    fn desired(id: &str, user: &str, sn: &str, active: bool) -> Desired {
        Desired {
            identity_id: id.into(),
            username: user.into(),
            school: "S1".into(),
            attrs: attrs(&[("employeeNumber", id), ("sn", sn), ("uid", user)]),
            active,
            inactive_reason: (!active).then(|| "no longer in any source".to_string()),
            provision_disabled: false,
            grace_days: Some(90),
            protected: false,
            needs_approval: false,
            held: None,
            scheduled_start: false,
        }
    }

    fn observed(user: &str, id: Option<&str>, sn: &str, disabled: bool) -> ObservedAccount {
        let mut a = attrs(&[("sn", sn), ("uid", user)]);
        if let Some(id) = id {
            a.insert("employeeNumber".into(), vec![id.into()]);
        }
        ObservedAccount {
            key: format!("uid={user},ou=people,dc=example,dc=org"),
            anchor: Some(format!("uuid-{user}")),
            username: Some(user.into()),
            attrs: a,
            disabled,
        }
    }

    fn owned(id: &str, user: &str, status: AccountStatus) -> OwnedAccount {
        OwnedAccount {
            target: "dir".into(),
            identity_id: id.into(),
            key: format!("uid={user},ou=people,dc=example,dc=org"),
            anchor: (status != AccountStatus::Pending).then(|| format!("uuid-{user}")),
            status,
            disabled_at: None,
        }
    }

    fn check(desired: &[Desired], observed: &[ObservedAccount], owned: &[OwnedAccount], expect: expect_test::Expect) {
        let tp = plan(desired, observed, owned);
        let mut out = String::new();
        for op in &tp.operations {
            out.push_str(&format!(
                "{} {} ({}) {}\n",
                op.action.as_str(),
                op.username,
                op.reason,
                serde_json::to_string(&op.op).unwrap()
            ));
        }
        for a in &tp.adoptions {
            out.push_str(&format!("adopt {} disabled={}\n", a.key, a.disabled));
        }
        for b in &tp.blocked {
            out.push_str(&format!("blocked {}: {}\n", b.username, b.reason));
        }
        for (id, key) in &tp.member_keys {
            out.push_str(&format!("member {id}: {key}\n"));
        }
        out.push_str(&format!("{:?} unmanaged={}\n", tp.summary, tp.unmanaged));
        expect.assert_eq(&out);
    }

    fn plan(desired: &[Desired], observed: &[ObservedAccount], owned: &[OwnedAccount]) -> TargetPlan {
        let owned: Vec<&OwnedAccount> = owned.iter().collect();
        let managed = ["employeeNumber".to_string(), "sn".into(), "uid".into(), "departmentNumber".into()];
        let key_for = |u: &str| format!("uid={u},ou=people,dc=example,dc=org");
        let renamed = |k: &str, u: &str| format!("uid={u},{}", k.split_once(',').map(|(_, p)| p).unwrap_or(""));
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let enabled = |k: &str| k.replace(",ou=disabled", "");
        let keys = KeyRules { key_for: &key_for, renamed: &renamed, enabled: &enabled, today };
        plan_target("dir", desired.to_vec(), observed, &owned, &managed, "employeeNumber", &keys)
    }

    const U1: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
    const U2: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

    #[test]
    fn an_entry_carrying_an_enid_id_the_state_does_not_record_blocks_and_is_never_duplicated() {
        let mut hr = observed("cy.ek", None, "Ek", false);
        hr.attrs.insert("employeeNumber".into(), vec!["HR-4711".into()]);
        check(
            &[desired(U1, "anna.berg", "Berg", true), desired("3", "cy.ek2", "Ek", true)],
            &[observed("anna.b", Some(U1), "Berg", false), observed("bo.ek", Some(U2), "Ek", false), hr],
            &[],
            expect_test::expect![[r#"
                create cy.ek2 (new person) {"kind":"create","username":"cy.ek2","attrs":{"employeeNumber":["3"],"sn":["Ek"],"uid":["cy.ek2"]},"disabled":false}
                blocked anna.berg: uid=anna.b,ou=people,dc=example,dc=org carries enid id 0f8fad5b-d9cb-469f-a165-70867728950e but the state database does not record it as enid's: restore the state database from a backup, or run `enid adopt`
                blocked bo.ek: uid=bo.ek,ou=people,dc=example,dc=org carries enid id 7c9e6679-7425-40de-944b-e07fc1f90ae7 but the state database does not record it as enid's: restore the state database from a backup, or run `enid adopt`
                member 3: uid=cy.ek2,ou=people,dc=example,dc=org
                Summary { create: 1, rename: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=1
            "#]],
        );
    }

    #[test]
    fn an_owned_account_whose_anchor_is_gone_is_blocked_by_whatever_took_its_place() {
        // Deleted by hand and re-added by hand at the same DN, without enid's id.
        let mut other = observed("anna.berg", None, "Manual", false);
        other.anchor = Some("uuid-hand-made".into());
        // Re-added from an LDIF export: enid's id, but a new entry.
        let mut copy = observed("bo.ek", Some(U2), "Ek", false);
        copy.anchor = Some("uuid-copy".into());
        check(
            &[desired(U1, "anna.berg", "Berg", true), desired(U2, "bo.ek", "Ek", true)],
            &[other, copy],
            &[owned(U1, "anna.berg", AccountStatus::Active), owned(U2, "bo.ek", AccountStatus::Active)],
            expect_test::expect![[r#"
                blocked anna.berg: uid=anna.berg,ou=people,dc=example,dc=org stands where enid's account is recorded, but it is another entry, not created by enid; it is left alone
                blocked bo.ek: uid=bo.ek,ou=people,dc=example,dc=org carries enid id 7c9e6679-7425-40de-944b-e07fc1f90ae7 but the state database does not record it as enid's: restore the state database from a backup, or run `enid adopt`
                Summary { create: 0, rename: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
            "#]],
        );
    }

    #[test]
    fn a_row_without_an_anchor_takes_the_entry_at_its_key_only_with_the_identitys_id() {
        let mut row = owned("1", "anna.berg", AccountStatus::Active);
        row.anchor = None;
        check(
            &[desired("1", "anna.berg", "Berg", true)],
            &[observed("anna.berg", Some("2"), "Berg", false)],
            &[row.clone()],
            expect_test::expect![[r#"
                blocked anna.berg: uid=anna.berg,ou=people,dc=example,dc=org stands where enid's account is recorded, but it is another entry, not created by enid; it is left alone
                Summary { create: 0, rename: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
            "#]],
        );
        check(
            &[desired("1", "anna.berg", "Berg", true)],
            &[observed("anna.berg", Some("1"), "Berg", false)],
            &[row],
            expect_test::expect![[r#"
                adopt uid=anna.berg,ou=people,dc=example,dc=org disabled=false
                member 1: uid=anna.berg,ou=people,dc=example,dc=org
                Summary { create: 0, rename: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 1 } unmanaged=0
            "#]],
        );
    }

    #[test]
    fn an_interrupted_disabled_create_is_adopted_where_it_landed() {
        // The pending row of a pre-provisioning create names the enabled DN (as older versions
        // recorded it); the entry is in the disabled OU.
        let mut d = desired(U1, "ny.elev", "Elev", false);
        d.provision_disabled = true;
        let mut obs = observed("ny.elev", Some(U1), "Elev", true);
        obs.key = "uid=ny.elev,ou=disabled,ou=people,dc=example,dc=org".into();
        check(
            &[d],
            &[obs],
            &[owned(U1, "ny.elev", AccountStatus::Pending)],
            expect_test::expect![[r#"
                adopt uid=ny.elev,ou=disabled,ou=people,dc=example,dc=org disabled=true
                Summary { create: 0, rename: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 1 } unmanaged=0
            "#]],
        );
    }

    #[test]
    fn a_returner_is_a_group_member_by_the_key_after_the_enable_and_rename() {
        let mut obs = observed("bo.ek", Some("2"), "Ek", true);
        obs.key = "uid=bo.ek,ou=disabled,ou=people,dc=example,dc=org".into();
        check(
            &[desired("2", "bo.lind", "Ek", true)],
            &[obs],
            &[owned("2", "bo.ek", AccountStatus::Disabled)],
            expect_test::expect![[r#"
                rename bo.lind (the name changed: bo.ek → bo.lind) {"kind":"rename","key":"uid=bo.ek,ou=disabled,ou=people,dc=example,dc=org","username":"bo.lind"}
                update bo.lind (uid changed in the source) {"kind":"update","key":"uid=bo.lind,ou=disabled,ou=people,dc=example,dc=org","changes":[{"attr":"uid","values":["bo.lind"]}]}
                enable bo.lind (active again) {"kind":"enable","key":"uid=bo.lind,ou=disabled,ou=people,dc=example,dc=org"}
                member 2: uid=bo.lind,ou=people,dc=example,dc=org
                Summary { create: 0, rename: 1, update: 1, enable: 1, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
            "#]],
        );
    }

    #[test]
    fn first_run_creates_and_leaves_unowned_alone() {
        check(
            &[desired("1", "anna.berg", "Berg", true)],
            &[observed("admin", None, "Admin", false)],
            &[],
            expect_test::expect![[r#"
                create anna.berg (new person) {"kind":"create","username":"anna.berg","attrs":{"employeeNumber":["1"],"sn":["Berg"],"uid":["anna.berg"]},"disabled":false}
                member 1: uid=anna.berg,ou=people,dc=example,dc=org
                Summary { create: 1, rename: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=1
            "#]],
        );
    }

    #[test]
    fn converged_state_gives_no_operations() {
        check(
            &[desired("1", "anna.berg", "Berg", true)],
            &[observed("anna.berg", Some("1"), "Berg", false)],
            &[owned("1", "anna.berg", AccountStatus::Active)],
            expect_test::expect![[r#"
                member 1: uid=anna.berg,ou=people,dc=example,dc=org
                Summary { create: 0, rename: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 1 } unmanaged=0
            "#]],
        );
    }

    #[test]
    fn a_name_change_updates_only_that_attribute() {
        check(
            &[desired("1", "anna.berg", "Ek", true)],
            &[observed("anna.berg", Some("1"), "Berg", false)],
            &[owned("1", "anna.berg", AccountStatus::Active)],
            expect_test::expect![[r#"
                update anna.berg (sn changed in the source) {"kind":"update","key":"uid=anna.berg,ou=people,dc=example,dc=org","changes":[{"attr":"sn","values":["Ek"]}]}
                member 1: uid=anna.berg,ou=people,dc=example,dc=org
                Summary { create: 0, rename: 0, update: 1, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
            "#]],
        );
    }

    #[test]
    fn an_attribute_the_mapping_no_longer_yields_is_removed() {
        let mut obs = observed("anna.berg", Some("1"), "Berg", false);
        obs.attrs.insert("departmentNumber".into(), vec!["S1".into()]);
        obs.attrs.insert("entryUUID".into(), vec!["not managed".into()]);
        check(
            &[desired("1", "anna.berg", "Berg", true)],
            &[obs],
            &[owned("1", "anna.berg", AccountStatus::Active)],
            expect_test::expect![[r#"
                update anna.berg (departmentNumber changed in the source) {"kind":"update","key":"uid=anna.berg,ou=people,dc=example,dc=org","changes":[{"attr":"departmentNumber","values":[]}]}
                member 1: uid=anna.berg,ou=people,dc=example,dc=org
                Summary { create: 0, rename: 0, update: 1, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
            "#]],
        );
    }

    #[test]
    fn leavers_are_disabled_once_and_returners_enabled() {
        check(
            &[
                desired("1", "anna.berg", "Berg", false),
                desired("2", "bo.ek", "Ek", false),
                desired("3", "cy.ek", "Ek", true),
            ],
            &[
                observed("anna.berg", Some("1"), "Berg", false),
                observed("bo.ek", Some("2"), "Ek", true),
                observed("cy.ek", Some("3"), "Ek", true),
            ],
            &[
                owned("1", "anna.berg", AccountStatus::Active),
                owned("2", "bo.ek", AccountStatus::Disabled),
                owned("3", "cy.ek", AccountStatus::Disabled),
            ],
            expect_test::expect![[r#"
                enable cy.ek (active again) {"kind":"enable","key":"uid=cy.ek,ou=people,dc=example,dc=org"}
                disable anna.berg (no longer in any source) {"kind":"disable","key":"uid=anna.berg,ou=people,dc=example,dc=org"}
                member 3: uid=cy.ek,ou=people,dc=example,dc=org
                Summary { create: 0, rename: 0, update: 0, enable: 1, disable: 1, delete: 0, unchanged: 1 } unmanaged=0
            "#]],
        );
    }

    #[test]
    fn an_interrupted_create_is_adopted_not_duplicated() {
        check(
            &[desired("1", "anna.berg", "Berg", true), desired("2", "bo.ek", "Ek", true)],
            &[observed("anna.berg", Some("1"), "Berg", false)],
            &[owned("1", "anna.berg", AccountStatus::Pending), owned("2", "bo.ek", AccountStatus::Pending)],
            expect_test::expect![[r#"
                create bo.ek (the account enid created is missing on the target; creating it again) {"kind":"create","username":"bo.ek","attrs":{"employeeNumber":["2"],"sn":["Ek"],"uid":["bo.ek"]},"disabled":false}
                adopt uid=anna.berg,ou=people,dc=example,dc=org disabled=false
                member 1: uid=anna.berg,ou=people,dc=example,dc=org
                member 2: uid=bo.ek,ou=people,dc=example,dc=org
                Summary { create: 1, rename: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 1 } unmanaged=0
            "#]],
        );
    }

    #[test]
    fn an_unowned_entry_in_the_way_blocks_and_is_not_touched() {
        check(
            &[desired("1", "anna.berg", "Berg", true)],
            &[observed("anna.berg", None, "Someone", false)],
            &[],
            expect_test::expect![[r#"
                blocked anna.berg: uid=anna.berg,ou=people,dc=example,dc=org exists but was not created by enid
                Summary { create: 0, rename: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
            "#]],
        );
    }

    #[test]
    fn thresholds_hold_mass_disables_and_creates_but_not_a_first_run() {
        let t = connector_api::Thresholds::default();
        let sum = |create, disable| Summary { create, disable, ..Default::default() };
        assert!(check_thresholds("dir", &sum(0, 10), 100, 0, &t).is_empty(), "10 is the floor");
        let hits = check_thresholds("dir", &sum(0, 102), 2000, 0, &t);
        assert_eq!(hits.len(), 1);
        assert_eq!(
            hits[0].to_string(),
            "target \"dir\": 102 disable of 2000 owned accounts (5.1%), over the limit of 100 (5% of owned, at least 10) by 2"
        );
        assert!(check_thresholds("dir", &sum(5000, 0), 0, 0, &t).is_empty(), "the first run is exempt");
        assert_eq!(check_thresholds("dir", &sum(401, 0), 2000, 0, &t)[0].action, Action::Create);
    }

    #[test]
    fn the_first_run_exemption_needs_a_target_without_enid_ids() {
        let t = connector_api::Thresholds::default();
        let sum = Summary { create: 5000, ..Default::default() };
        let hits = check_thresholds("dir", &sum, 0, 1, &t);
        assert_eq!(hits.len(), 1, "one entry with an enid id: not a first run");
        assert_eq!(hits[0].action, Action::Create);
        assert_eq!(hits[0].limit, 50);
    }

    #[test]
    fn mass_updates_and_renames_are_held() {
        let t = connector_api::Thresholds::default();
        let sum = |update, rename| Summary { update, rename, ..Default::default() };
        assert!(check_thresholds("dir", &sum(50, 10), 100, 0, &t).is_empty(), "the floors");
        let hits = check_thresholds("dir", &sum(22_100, 0), 22_100, 0, &t);
        assert_eq!(
            hits[0].to_string(),
            "target \"dir\": 22100 update of 22100 owned accounts (100.0%), over the limit of 2210 (10% of owned, at least 50) by 19890"
        );
        let hits = check_thresholds("dir", &sum(0, 41), 2000, 0, &t);
        assert_eq!((hits[0].action, hits[0].limit), (Action::Rename, 40));
        assert_eq!(check_thresholds("dir", &sum(201, 40), 2000, 0, &t).len(), 1, "2% of 2000 renames is allowed");
    }

    #[test]
    fn group_names_differing_only_in_case_are_one_group_under_the_recorded_name() {
        let group = |members: &[&str]| DesiredGroup {
            school: "S1".into(),
            members: members.iter().map(|m| m.to_string()).collect(),
        };
        let desired: BTreeMap<String, DesiredGroup> =
            [("S1-3A".to_string(), group(&["uid=a"])), ("s1-3a".to_string(), group(&["uid=b"]))].into();
        let key = "cn=s1-3a,ou=groups".to_string();
        let observed = [ObservedGroup {
            key: key.clone(),
            anchor: Some("g1".into()),
            name: "s1-3a".into(),
            members: vec!["uid=a".into()],
        }];
        let owned = OwnedGroup {
            target: "dir".into(),
            name: "s1-3a".into(),
            key: key.clone(),
            anchor: Some("g1".into()),
            school: "S1".into(),
            pending: false,
        };
        let mut tp = TargetPlan::default();
        plan_groups("dir", &desired, &observed, &[&owned], &mut tp);
        assert!(tp.blocked.is_empty(), "{:?}", tp.blocked);
        let ops: Vec<(Action, &str, &TargetOp)> =
            tp.operations.iter().map(|o| (o.action, o.username.as_str(), &o.op)).collect();
        assert_eq!(
            ops,
            [(Action::AddMembers, "s1-3a", &TargetOp::AddMembers { key: key.clone(), members: vec!["uid=b".into()] })]
        );
        // Not owned yet: one create, under the first name in sorted order.
        let mut tp = TargetPlan::default();
        plan_groups("dir", &desired, &[], &[], &mut tp);
        let creates: Vec<&TargetOp> = tp.operations.iter().map(|o| &o.op).collect();
        assert_eq!(
            creates,
            [&TargetOp::CreateGroup { name: "S1-3A".into(), members: vec!["uid=a".into(), "uid=b".into()] }]
        );
    }

    #[test]
    fn the_target_guard_counts_owned_accounts_and_groups_not_seen_by_anchor_or_key() {
        let rows = [
            owned("1", "anna.berg", AccountStatus::Active),
            owned("2", "bo.ek", AccountStatus::Disabled),
            owned("3", "cy.ek", AccountStatus::Active),
            owned("4", "dag.ny", AccountStatus::Pending),
        ];
        let rows: Vec<&OwnedAccount> = rows.iter().collect();
        // Anna by anchor; Bo's entry has a new anchor but is at the recorded key; Cy is gone; Dag's
        // create is still a question and does not count.
        let mut bo = observed("bo.ek", Some("2"), "Ek", true);
        bo.anchor = Some("restored".into());
        assert_eq!(missing_accounts(&rows, &[observed("anna.berg", Some("1"), "Berg", false), bo]), (1, 3));
        assert_eq!(missing_accounts(&rows, &[]), (3, 3));

        let group = |name: &str, pending: bool| OwnedGroup {
            target: "dir".into(),
            name: name.into(),
            key: format!("cn={name},ou=groups"),
            anchor: (!pending).then(|| format!("g-{name}")),
            school: "S1".into(),
            pending,
        };
        let groups = [group("7a", false), group("7b", false), group("7c", true)];
        let groups: Vec<&OwnedGroup> = groups.iter().collect();
        let seen = ObservedGroup { key: "CN=7a, ou=groups".into(), anchor: None, name: "7a".into(), members: vec![] };
        assert_eq!(missing_groups(&groups, &[seen]), (1, 2));
    }

    #[test]
    fn a_hand_made_group_where_an_owned_group_was_is_never_taken_over() {
        let desired: BTreeMap<String, DesiredGroup> =
            [("S1-7A".to_string(), DesiredGroup { school: "S1".into(), members: ["uid=a".to_string()].into() })].into();
        let key = "cn=S1-7A,ou=groups".to_string();
        let observed = [ObservedGroup {
            key: key.clone(),
            anchor: Some("hand-made".into()),
            name: "S1-7A".into(),
            members: vec!["cn=admin".into()],
        }];
        let owned = |name: &str| OwnedGroup {
            target: "dir".into(),
            name: name.into(),
            key: format!("cn={name},ou=groups"),
            anchor: Some(format!("g-{name}")),
            school: "S1".into(),
            pending: false,
        };
        let mut tp = TargetPlan::default();
        plan_groups("dir", &desired, &observed, &[&owned("S1-7A")], &mut tp);
        assert!(tp.operations.is_empty(), "{:?}", tp.operations);
        assert_eq!(
            tp.blocked[0].reason,
            "group cn=S1-7A,ou=groups stands where enid's group is recorded, but it is another entry, not created by \
             enid; it is left alone"
        );
        // No longer wanted: still not deleted.
        let mut tp = TargetPlan::default();
        plan_groups("dir", &BTreeMap::new(), &observed, &[&owned("S1-7A")], &mut tp);
        assert!(tp.operations.is_empty(), "{:?}", tp.operations);
    }

    #[test]
    fn a_person_whose_attributes_cannot_be_rendered_is_held_and_their_account_left_alone() {
        let mut d = desired("1", "anna.berg", "Berg", true);
        d.attrs = Attrs::new();
        d.held = Some("attribute mapping failed: attribute mail: undefined value".into());
        check(
            &[d.clone(), desired("2", "bo.ek", "Ek", true)],
            &[observed("anna.berg", Some("1"), "Berg", false)],
            &[owned("1", "anna.berg", AccountStatus::Active)],
            expect_test::expect![[r#"
                create bo.ek (new person) {"kind":"create","username":"bo.ek","attrs":{"employeeNumber":["2"],"sn":["Ek"],"uid":["bo.ek"]},"disabled":false}
                blocked anna.berg: attribute mapping failed: attribute mail: undefined value
                member 1: uid=anna.berg,ou=people,dc=example,dc=org
                member 2: uid=bo.ek,ou=people,dc=example,dc=org
                Summary { create: 1, rename: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
            "#]],
        );
        check(
            &[d],
            &[],
            &[],
            expect_test::expect![[r#"
                blocked anna.berg: attribute mapping failed: attribute mail: undefined value
                Summary { create: 0, rename: 0, update: 0, enable: 0, disable: 0, delete: 0, unchanged: 0 } unmanaged=0
            "#]],
        );
    }

    #[test]
    fn keys_compare_without_case_or_spaces() {
        assert_eq!(normalize_key("UID=Anna, OU=People, dc=x"), "uid=anna,ou=people,dc=x");
        assert_eq!(normalize_key("cn=Anna Berg,dc=x"), "cn=anna berg,dc=x");
    }

    #[test]
    fn kept_members_stay_in_their_groups_and_keep_owned_groups_alive() {
        let group = |name: &str, members: &[&str]| ObservedGroup {
            key: format!("cn={name},ou=groups"),
            anchor: Some(format!("g-{name}")),
            name: name.into(),
            members: members.iter().map(|m| m.to_string()).collect(),
        };
        let owned = |name: &str| OwnedGroup {
            target: "t".into(),
            name: name.into(),
            key: format!("cn={name},ou=groups"),
            anchor: Some(format!("g-{name}")),
            school: "S1".into(),
            pending: false,
        };
        let observed = [group("7A", &["uid=kim,ou=p", "uid=bo,ou=p"]), group("8B", &["uid=kim,ou=p", "uid=cy,ou=p"])];
        let (a, b) = (owned("7A"), owned("8B"));
        // 7A is still wanted with bo only; 8B with nobody.
        let want = BTreeMap::from([(
            "7A".to_string(),
            DesiredGroup { school: "S1".into(), members: ["uid=bo,ou=p".to_string()].into() },
        )]);
        let plan = |kept: &[&str]| {
            let mut tp =
                TargetPlan { kept_members: kept.iter().map(|k| normalize_key(k)).collect(), ..Default::default() };
            plan_groups("t", &want, &observed, &[&a, &b], &mut tp);
            tp.operations.iter().map(|o| format!("{} {} {:?}", o.action.as_str(), o.username, o.op)).collect::<Vec<_>>()
        };
        // Without kept persons kim leaves 7A and 8B is deleted.
        let plain = plan(&[]);
        assert!(plain.iter().any(|o| o.starts_with("remove members 7A")), "{plain:?}");
        assert!(plain.iter().any(|o| o.starts_with("delete group 8B")), "{plain:?}");
        // kim is kept: no change to 7A; 8B stays with kim, only cy leaves.
        let kept = plan(&["UID=kim, ou=p"]);
        assert_eq!(
            kept,
            ["remove members 8B RemoveMembers { key: \"cn=8B,ou=groups\", members: [\"uid=cy,ou=p\"] }"],
            "{kept:?}"
        );
    }
}
