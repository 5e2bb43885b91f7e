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
use connector_api::value::Str;
use connector_api::{
    AccountSpec, AttrChange, Attrs, Capabilities, MemberForm, ObservedAccount, ObservedGroup, PackedAttrs, TargetOp,
    Value,
};
use rustc_hash::FxHashMap as HashMap;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

mod accounts;
mod correlate;
mod groups;
mod ops;
#[cfg(test)]
mod tests;
mod thresholds;
pub use accounts::*;
pub use correlate::*;
pub use groups::*;
pub use ops::{OpHead, Ops};
pub use thresholds::*;

/// What one identity should have on one target.
#[derive(Debug, Clone)]
pub struct Desired {
    /// The identity this account is for (`spec.id` as the connector reads it, shared).
    pub id: IdentityId,
    /// The account in enid's vocabulary: id, username, names, roles, schools and the rendered
    /// attributes (none when the account should only be disabled). `spec.enabled` is `active`.
    pub spec: AccountSpec,
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

impl Desired {
    /// The identity this account is for.
    pub fn id(&self) -> &IdentityId {
        &self.id
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.spec.username
    }

    /// The person's schools as logs and `--school` filters show them: comma-separated. One
    /// school (the common case) is its code as it is, with no string built around it.
    pub fn school(&self) -> Str {
        match self.spec.schools.as_slice() {
            [] => Str::default(),
            [one] => one.clone(),
            many => many.join(",").into(),
        }
    }
}

/// The kinds of operation, in the order a plan runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    /// An account made before enid, recognised by a correlation rule, is claimed: the owner
    /// marker is written and enid manages it from then on.
    Claim,
    Rename,
    /// A mover between placements (AD organizational units).
    Move,
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
    /// Every action, in the order a plan runs them.
    pub const ALL: [Action; 12] = [
        Action::Create,
        Action::Claim,
        Action::Rename,
        Action::Move,
        Action::Update,
        Action::Enable,
        Action::Disable,
        Action::Delete,
        Action::CreateGroup,
        Action::AddMembers,
        Action::RemoveMembers,
        Action::DeleteGroup,
    ];

    /// The action a saved plan's JSON names (`create_group`, as serialised), or the name
    /// [`Action::as_str`] gives (`create group`): a saved plan read back is compared with
    /// actions by their `as_str`, where group actions' spellings differ.
    pub fn of_saved(name: &str) -> Option<Action> {
        let serialised = |a: &Action| a.as_str().bytes().map(|b| if b == b' ' { b'_' } else { b }).eq(name.bytes());
        Action::ALL.into_iter().find(|a| a.as_str() == name || serialised(a))
    }

    /// A saved plan's action as [`Action::as_str`] names it (an unknown one as given).
    pub fn saved_as_str(name: &str) -> &str {
        match Action::of_saved(name) {
            Some(a) => a.as_str(),
            None => name,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Claim => "claim",
            Action::Rename => "rename",
            Action::Move => "move",
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
    pub target: Str,
    pub identity: IdentityId,
    pub username: Str,
    pub school: Str,
    /// Why, in plain words.
    pub reason: Str,
    pub op: TargetOp,
    /// What group operations and updates carry beside ([`OpExtra`]), serialised in its place.
    #[serde(flatten)]
    pub extra: Extra,
    /// For a person with protected personal data: shown by enid id only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
    /// Applied only with explicit approval (`apply --plan ID --accept-protected`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub needs_approval: bool,
    /// An enable of an account that someone else disabled on the target (enid did not):
    /// applied only when an operator names it (`apply --only enable`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled_outside: bool,
    /// An update that renames the entry (AD's display name): its key changes as a rename's
    /// does, which a partial approval must follow (`engine::approve::keep_only`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub renames_entry: bool,
    /// What an approval of this operation names: a keyed hash of its target, identity, action
    /// and values (`engine::approvals`), the same in every plan that does exactly this, and no
    /// help in guessing a protected person's values. Set by the engine after planning; not part
    /// of the plan id.
    #[serde(skip_serializing_if = "Str::is_empty")]
    pub fingerprint: Str,
}

/// What only group operations and updates carry: boxed in [`Extra`], since the million
/// creates of a first run carry none of it (it was 72 bytes in place in each).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OpExtra {
    /// For group operations: members whose value the target gives at apply (the key of an
    /// account this plan creates or moves), by enid id. The engine adds their values to the
    /// operation's members once their accounts' operations are done.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub new_members: Vec<IdentityId>,
    /// For member removals: the removed values that are the old values of accounts this plan
    /// renames or moves, with their enid ids. Applied only with that rename or move, and with
    /// it even when the other group changes wait (`engine::approve`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leaving: Vec<(IdentityId, String)>,
    /// For updates: the values before, of the attributes that change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Attrs>,
}

/// An [`OpExtra`] boxed, or none (equal to, and serialised as, an empty one: one pointer in
/// each operation).
#[derive(Debug, Clone, Default)]
pub struct Extra(Option<Box<OpExtra>>);

static NO_EXTRA: OpExtra = OpExtra { new_members: Vec::new(), leaving: Vec::new(), before: None };

impl Extra {
    /// These parts, boxed unless all are empty.
    pub fn new(new_members: Vec<IdentityId>, leaving: Vec<(IdentityId, String)>, before: Option<Attrs>) -> Extra {
        let extra = OpExtra { new_members, leaving, before };
        Extra((extra != NO_EXTRA).then(|| Box::new(extra)))
    }

    /// The parts (empty ones when there are none).
    pub fn get(&self) -> &OpExtra {
        self.0.as_deref().unwrap_or(&NO_EXTRA)
    }

    /// The parts to change (boxed now if there were none).
    pub fn get_mut(&mut self) -> &mut OpExtra {
        self.0.get_or_insert_with(Default::default)
    }
}

impl PartialEq for Extra {
    fn eq(&self, other: &Extra) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Extra {}

impl Serialize for Extra {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl PlannedOp {
    /// See [`OpExtra::new_members`].
    pub fn new_members(&self) -> &[IdentityId] {
        &self.extra.get().new_members
    }

    /// See [`OpExtra::leaving`].
    pub fn leaving(&self) -> &[(IdentityId, String)] {
        &self.extra.get().leaving
    }

    /// See [`OpExtra::before`].
    pub fn before(&self) -> Option<&Attrs> {
        self.extra.get().before.as_ref()
    }

    /// An operation on target `target` for a test: no reason, school or group fields.
    #[cfg(test)]
    pub(crate) fn for_test(action: Action, target: &str, identity: &str, op: TargetOp) -> PlannedOp {
        PlannedOp {
            action,
            target: target.into(),
            identity: identity.into(),
            username: identity.into(),
            school: Default::default(),
            reason: Default::default(),
            op,
            extra: Extra::default(),
            protected: false,
            needs_approval: false,
            disabled_outside: false,
            renames_entry: false,
            fingerprint: Default::default(),
        }
    }

    /// This operation as it may be shown: a protected person appears by enid id only, without
    /// school, values or username.
    pub fn redacted(&self) -> std::borrow::Cow<'_, PlannedOp> {
        if !self.protected {
            return std::borrow::Cow::Borrowed(self);
        }
        let op = match &self.op {
            TargetOp::Create { account } => TargetOp::Create {
                account: AccountSpec {
                    id: self.identity.shared(),
                    username: self.identity.as_str().into(),
                    given_name: Default::default(),
                    family_name: Default::default(),
                    display_name: Default::default(),
                    roles: Default::default(),
                    schools: Default::default(),
                    enabled: account.enabled,
                    protected: true,
                    attrs: PackedAttrs::default(),
                    placement: None,
                    initial_password: None,
                },
            },
            // Keys (DNs) may carry a name-derived username: never shown.
            TargetOp::Update { changes, .. } => TargetOp::Update {
                key: self.identity.to_string(),
                changes: changes
                    .iter()
                    .map(|c| AttrChange { attr: c.attr.clone(), values: Value::Text(Default::default()) })
                    .collect(),
            },
            TargetOp::Rename { .. } => {
                TargetOp::Rename { key: self.identity.to_string(), username: self.identity.to_string() }
            }
            TargetOp::Move { .. } => TargetOp::Move { key: self.identity.to_string(), placement: "(protected)".into() },
            TargetOp::Disable { .. } => TargetOp::Disable { key: self.identity.to_string() },
            TargetOp::Enable { .. } => TargetOp::Enable { key: self.identity.to_string() },
            TargetOp::Delete { .. } => TargetOp::Delete { key: self.identity.to_string() },
            other => other.clone(),
        };
        std::borrow::Cow::Owned(PlannedOp {
            username: self.identity.as_str().into(),
            school: Str::default(),
            reason: "protected person".into(),
            op,
            extra: Extra::new(self.new_members().to_vec(), self.leaving().to_vec(), None),
            ..self.clone()
        })
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
    /// Claimed because it holds the person's username and no owner marker (the target's
    /// `adopt_by_username`), not because an interrupted run made it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub by_username: bool,
    /// Only the state's status is recorded: the target already shows what enid wants, the
    /// state does not (a run stopped between the target's write and the state's). A leaver's
    /// account disabled there is recorded as disabled from today, so that its grace period runs;
    /// an enabled one as active, so that a later lockout by IT is not taken for enid's disable.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub status_only: bool,
}

/// An account made before enid that this plan claims for a person (a `claim` operation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    pub target: String,
    pub identity: IdentityId,
    /// The account's key (shown as the enid id for a person with protected personal data).
    pub key: String,
    #[serde(skip)]
    pub anchor: Option<String>,
    /// The rule that matched.
    pub rule: Rule,
    /// The account's username when it is not the person's: "matched, other username", claimed
    /// only together with the rename that gives it the person's username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_username: Option<String>,
    /// Disabled on the target when claimed (it stays so until an enable is approved).
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
    /// In place (a first run holds a million).
    pub username: Str,
    /// `source/person_id` of each record (in place when short, as nearly all are; the one
    /// record most persons have held in place, no vector of its own).
    pub records: connector_api::source::SmallVec<[Str; 1]>,
}

/// Counts per action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    /// Accounts made before enid that this plan claims.
    #[serde(skip_serializing_if = "is_zero")]
    pub claim: usize,
    pub rename: usize,
    /// Moves between placements; they count against the update threshold.
    pub r#move: usize,
    pub update: usize,
    pub enable: usize,
    pub disable: usize,
    pub delete: usize,
    pub unchanged: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary {
    /// Counts one operation of `a`.
    pub fn count(&mut self, a: Action) {
        match a {
            Action::Create => self.create += 1,
            Action::Claim => self.claim += 1,
            Action::Rename => self.rename += 1,
            Action::Move => self.r#move += 1,
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
        self.claim += o.claim;
        self.rename += o.rename;
        self.r#move += o.r#move;
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
    pub operations: Ops,
    pub adoptions: Vec<Adoption>,
    /// Accounts made before enid that the `claim` operations claim.
    pub claims: Vec<Claim>,
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
    /// The accounts each target showed in its scope when planned (`TargetPlan::in_scope`):
    /// what the apply weighs creates in bulk against (`Target::defer_anchors`). Not shown.
    #[serde(skip)]
    pub in_scope: BTreeMap<String, usize>,
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
    pub operations: Ops,
    pub adoptions: Vec<Adoption>,
    pub claims: Vec<Claim>,
    /// Accounts the target shows in its scope, owned or not: a target that holds any is not new
    /// (the first run's create exemption), and claims weigh against them.
    pub in_scope: usize,
    pub blocked: Vec<Blocked>,
    pub summary: Summary,
    pub unmanaged: usize,
    /// Who may be a group member after this plan (enabled accounts, existing or to be created),
    /// with the member value when the plan knows it (in the target's [`MemberForm`]), or `None`
    /// when the target gives it at apply (a new or moved account's key). Empty when the target
    /// has no groups.
    pub members: Vec<(IdentityId, Option<String>)>,
    /// The member values accounts hold now whose value this plan changes (a rename, a move), by
    /// enid id: a group change that removes one belongs with that account's rename or move.
    pub moving: Vec<(IdentityId, String)>,
    pub groups: GroupSummary,
    pub group_adoptions: Vec<GroupAdoption>,
    /// Member values (folded as the target compares them) of persons kept as at the last run:
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
    /// The key the target gave the group.
    pub key: String,
    pub anchor: Option<String>,
    pub school: String,
}

/// A group enid created, as recorded in the state database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedGroup {
    pub target: String,
    pub name: String,
    /// The key the target gave the group; `None` for a create whose result is not known yet (a
    /// pending row: the group is found by its name).
    pub key: Option<String>,
    pub anchor: Option<String>,
    /// The school unit the group belongs to, for logs.
    pub school: String,
    /// The create was about to be sent; whether it arrived is unknown until observed.
    pub pending: bool,
}

/// What a group should be: its school (for logs) and its members, by enid id, each with its
/// member value when the plan knows it (see [`TargetPlan::members`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredGroup {
    pub school: String,
    pub members: BTreeMap<IdentityId, Option<String>>,
}

/// The reason of an enable that a start date scheduled (see [`Desired::scheduled_start`]).
pub const START_REASON: &str = "the start date has come";

/// Puts target plans together into one plan and computes its id.
/// Puts operations in the order plans list them: by action, target and username, ties in the
/// order given. Without a scratch copy of the operations: a stable sort of a million of them
/// (464 bytes each) borrowed half as much again; this sorts their keys and moves each
/// operation once. A list already in order (one target's, sorted when it was planned) is left.
pub(crate) fn sort_operations(ops: &mut [PlannedOp]) {
    let key = |o: &PlannedOp| (o.action, o.target.clone(), o.username.clone());
    if !ops.is_sorted_by(|a, b| (a.action, &a.target, &a.username) <= (b.action, &b.target, &b.username)) {
        ops.sort_by_cached_key(key);
    }
}

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
    let mut operations = Ops::new();
    let mut adoptions = Vec::new();
    let mut claims = Vec::new();
    let mut blocked = Vec::new();
    let mut unmanaged = BTreeMap::new();
    let mut group_summary = GroupSummary::default();
    let mut target_groups = BTreeMap::new();
    let mut group_adoptions = Vec::new();
    let mut in_scope = BTreeMap::new();
    for (name, tp) in targets {
        in_scope.insert(name.clone(), tp.in_scope);
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
        // The largest list is kept and the others moved onto it (`Ops::append`).
        let mut ops = tp.operations;
        operations.append(&mut ops);
        adoptions.extend(tp.adoptions);
        claims.extend(tp.claims);
        blocked.extend(tp.blocked);
    }
    operations.sort();
    let plan_id = plan_id(&new_identities, &operations, &adoptions, &blocked, &conflicts, &renames.0);
    Plan {
        plan_id,
        now,
        summary,
        targets: per_target,
        new_identities,
        operations,
        adoptions,
        claims,
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
        in_scope,
    }
}

/// Operations each thread serialises at a time for the plan id.
const ID_PART: usize = 4096;

fn plan_id(
    ids: &[NewIdentity],
    ops: &Ops,
    adoptions: &[Adoption],
    blocked: &[Blocked],
    conflicts: &[Conflict],
    renames: &[RenameInfo],
) -> String {
    use std::io::Write;
    // The JSON of `{"identities": ids, "operations": ops, "adoptions": ..., "renames": ...}`
    // (serde_json's, compact), serialised straight into the hash: a first run's 100,000 creates
    // would otherwise be built as a JSON tree and a string first. The operations are serialised
    // on every core, some thousand at a time each, and hashed in order: a million creates' JSON
    // was seconds of one core, and the id stays the one plans had (an approval names a plan by
    // its id).
    let mut hasher = Sha256::new();
    {
        // Through a buffer: `serde_json` writes token by token, and a hash's update per token
        // cost more than the hashing. Writing into a hash cannot fail, and every value here
        // serialises.
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, &mut hasher);
        let _ = w.write_all(b"{\"identities\":");
        let _ = serde_json::to_writer(&mut w, ids);
        let _ = w.write_all(b",\"operations\":[");
        // The parts are serialised a round at a time (some thousand per core), so the texts
        // held at once stay a few megabytes however long the plan.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let round = ID_PART * cores;
        let mut first = true;
        for start in (0..ops.len()).step_by(round) {
            let texts = ops.map_range_parts(start..(start + round).min(ops.len()), ID_PART, |part| {
                let mut text = Vec::new();
                for (i, op) in part.enumerate() {
                    if i > 0 {
                        text.push(b',');
                    }
                    let _ = serde_json::to_writer(&mut text, &*op);
                }
                text
            });
            for text in texts.iter().filter(|t| !t.is_empty()) {
                if !first {
                    let _ = w.write_all(b",");
                }
                first = false;
                let _ = w.write_all(text);
            }
        }
        let _ = w.write_all(b"],\"adoptions\":");
        let _ = serde_json::to_writer(&mut w, adoptions);
        let _ = w.write_all(b",\"blocked\":");
        let _ = serde_json::to_writer(&mut w, blocked);
        let _ = w.write_all(b",\"conflicts\":");
        let _ = serde_json::to_writer(&mut w, conflicts);
        let _ = w.write_all(b",\"renames\":");
        let _ = serde_json::to_writer(&mut w, renames);
        let _ = w.write_all(b"}");
        let _ = w.flush();
    }
    shown_id(&hasher.finalize())
}

/// A plan's id from its content's hash: the first 8 bytes in hex, unless that reads as a civic
/// number, which every output masks (`0bf0b4906121234b`: an id an operator could not type back
/// into `apply --plan`); then the hash is hashed on with a counter until it does not (some one
/// plan in 500). The same content gives the same id.
fn shown_id(digest: &[u8]) -> String {
    let mut id = crate::core::id::hex(&digest[..digest.len().min(8)]).to_string();
    let mut n = 0u32;
    while connector_api::civic::mask_civic_in_text(&id) != id {
        n += 1;
        id = crate::core::id::hex(&Sha256::new().chain_update(digest).chain_update(n.to_le_bytes()).finalize()[..8])
            .to_string();
    }
    id
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
