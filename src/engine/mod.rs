//! The imperative shell: reads sources, observes targets, runs the pure core, and applies plans.
//!
//! [`Engine::compute`] is a dry run: it reads everything and writes nothing. [`Engine::apply`]
//! takes what `compute` returned and carries it out: it first records new identities, names and
//! the ownership rows of the creates it is about to send, then sends the operations, logging
//! each one. A target that fails mid-way stops receiving operations; what was done stays
//! recorded, and the next run picks up from the state the targets are really in.

use crate::config::{Config, SourceConfig, TargetConfig, ldap_mapping};
use crate::core::identity::{self, Decision, RejectedRows, Resolution};
use crate::core::mapping::{GroupNamer, Mapping};
use crate::core::model::{AccountStatus, Identity, IdentityId, Lifecycle, Snapshot, Sourced};
use crate::core::naming::{NameRequest, Namer, RenamePolicy};
use crate::core::plan::{self, Action, Desired, NewIdentity, OwnedGroup, Plan, PlannedOp};
use crate::store::{RecordRow, StateStore, Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use connector_api::{
    FetchContext, ObservedAccount, ObservedGroup, OpOutcome, RowError, Source, SourceBatch, SourceError, Target,
    TargetError, TargetOp, load_secret,
};
use sha2::{Digest, Sha256};
use source_csv::CsvSource;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use target_ldap::LdapTarget;

mod adopt;
mod apply;
mod approve;
mod desired;
mod guards;
pub mod idkey;
pub use adopt::{AccountClaim, AdoptPlan, ByHand, GroupClaim, Unmatched};
pub use approve::{ApplyRequest, ApprovalError, Approved, actions_named};
use desired::*;
pub use desired::{Rules, TargetRules, desired_accounts};

/// Why a run stopped. Each variant names the component and what to do.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("source \"{id}\": {}", connector_api::one_line(.error))]
    Source {
        id: String,
        #[source]
        error: SourceError,
    },
    /// An input guard fired: the source looks broken, so nothing is planned.
    #[error("source \"{id}\": {reason}; stopped before planning, nothing was changed")]
    Guard { id: String, reason: String },
    #[error("target \"{id}\": {}", connector_api::one_line(.error))]
    Target {
        id: String,
        #[source]
        error: TargetError,
    },
    /// A target guard fired: the target shows too few of the accounts or groups enid owns, so
    /// its scope or permissions changed; nothing is planned.
    #[error("target \"{id}\": {reason}; stopped before planning, nothing was changed")]
    TargetGuard { id: String, reason: String },
    #[error("target \"{id}\": {message}")]
    TargetConfig { id: String, message: String },
    /// Another run holds the state database, or its lock cannot be taken.
    #[error(transparent)]
    Lock(#[from] crate::store::runlock::LockError),
    /// The state database knows no runs, but a target holds accounts carrying enid ids: the
    /// state was lost or replaced. Planning now would create everyone a second account.
    #[error(
        "state database {state} records no runs, but target \"{target}\" holds {count} accounts carrying enid ids \
         that it does not record as enid's (the state database was lost, emptied or replaced, or [state] path \
         points to a new file); stopped before planning, nothing was changed. Restore the state database from a \
         backup (`enid state backup` makes one), or claim those accounts with `enid adopt` (one by one with \
         `enid adopt --entry KEY --person SOURCE/PERSON_ID`); an entry that is not enid's to manage must lose its \
         enid id on the target"
    )]
    StateLost { state: String, target: String, count: usize },
    /// The state owns nothing, and the target holds this installation's accounts outside the
    /// configured scope: a lost state and a changed base DN or filter at once.
    #[error(
        "state database {state} has never applied, but target \"{target}\" holds accounts carrying the enid ids \
         of persons in the sources outside {scope} (for example {example}): the state was lost and the base DN or \
         filter changed; stopped before planning, nothing was changed. Set the scope back, then restore the state \
         database from a backup or run `enid adopt`"
    )]
    ScopeAndStateLost { state: String, target: String, example: String, scope: String },
    /// The apply does not go ahead under the approval rules (a held plan, a changed saved plan).
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// `enid adopt --entry ... --person ...` cannot claim what it was asked to: fix the command.
    #[error("adopt: {0}")]
    Adopt(String),
    /// The id key file is missing, unreadable or not the one the state was built with.
    #[error("[identity] {0}")]
    IdKey(String),
}

enum AnySource {
    Csv(CsvSource),
}

impl AnySource {
    async fn check(&self) -> Result<(), SourceError> {
        match self {
            AnySource::Csv(s) => s.check().await,
        }
    }
    async fn fetch(&self, cx: FetchContext) -> Result<SourceBatch, SourceError> {
        match self {
            AnySource::Csv(s) => s.fetch(cx).await,
        }
    }
}

enum AnyTarget {
    Ldap(LdapTarget),
}

impl AnyTarget {
    async fn check(&self) -> Result<(), TargetError> {
        match self {
            AnyTarget::Ldap(t) => t.check().await,
        }
    }
    async fn observe(&self, attrs: &[String]) -> Result<Vec<ObservedAccount>, TargetError> {
        match self {
            AnyTarget::Ldap(t) => t.observe(attrs).await,
        }
    }
    async fn observe_groups(&self) -> Result<Vec<ObservedGroup>, TargetError> {
        match self {
            AnyTarget::Ldap(t) => t.observe_groups().await,
        }
    }
    fn key_for(&self, username: &str, disabled: bool) -> String {
        match self {
            AnyTarget::Ldap(t) => t.key_for(username, disabled),
        }
    }
    fn enabled_key(&self, key: &str) -> String {
        match self {
            AnyTarget::Ldap(t) => t.enabled_key(key),
        }
    }
    /// Where the target looks for accounts, in its own words (for the target guard).
    fn scope(&self) -> String {
        match self {
            AnyTarget::Ldap(t) => format!("{} with filter {}", t.config().base_dn, t.config().filter),
        }
    }
    /// Where the target looks for groups.
    fn group_scope(&self) -> String {
        match self {
            AnyTarget::Ldap(t) => t.config().groups.as_ref().map(|g| g.base_dn.clone()).unwrap_or_default(),
        }
    }
    /// Entries outside the observed scope whose `attr` holds one of `values`: (key, value).
    async fn find_outside_scope(&self, attr: &str, values: &[String]) -> Result<Vec<(String, String)>, TargetError> {
        match self {
            AnyTarget::Ldap(t) => t.find_outside_scope(attr, values).await,
        }
    }
    /// The attribute that holds an account's anchor, for [`AnyTarget::find_outside_scope`].
    fn anchor_attr(&self) -> &'static str {
        match self {
            AnyTarget::Ldap(_) => "entryUUID",
        }
    }
    fn renamed_key(&self, key: &str, username: &str) -> String {
        match self {
            AnyTarget::Ldap(t) => t.renamed_key(key, username),
        }
    }
    fn group_key_for(&self, name: &str) -> Option<String> {
        match self {
            AnyTarget::Ldap(t) => t.group_key_for(name),
        }
    }
    async fn apply(&self, op: &TargetOp) -> Result<OpOutcome, TargetError> {
        match self {
            AnyTarget::Ldap(t) => t.apply(op).await,
        }
    }
}

/// A target read running in a task of its own.
type ObserveTask = tokio::task::JoinHandle<Result<(Vec<ObservedAccount>, Vec<ObservedGroup>), TargetError>>;

struct SourceHandle {
    id: String,
    conn: AnySource,
    max_rejected_percent: f64,
    max_shrink_percent: f64,
    shrink_min_records: usize,
}

struct TargetHandle {
    conn: AnyTarget,
    mapping: Mapping,
    /// Group naming, when the target has groups configured.
    groups: Option<GroupNamer>,
    /// Group members are named by username (posixGroup `memberUid`), not by account key.
    members_by_username: bool,
    thresholds: connector_api::Thresholds,
    /// Accounts never touched.
    exclude: connector_api::Exclude,
    protected: connector_api::ProtectedPolicy,
    /// The attribute that carries the enid id on accounts.
    owner_attr: String,
    max_in_flight: usize,
}

impl TargetHandle {
    fn rules(&self) -> TargetRules<'_> {
        TargetRules { mapping: &self.mapping, protected: &self.protected }
    }
}

/// What reading the sources gave, after the input guards.
struct Fetched {
    records: Vec<Sourced>,
    rejected: BTreeMap<String, Vec<RowError>>,
    counts: BTreeMap<String, usize>,
    columns: BTreeMap<String, BTreeSet<String>>,
}

/// A built engine: config, state and connectors.
pub struct Engine {
    config: Config,
    store: Store,
    /// The installation's secret for new identity ids.
    id_key: crate::core::identity::IdKey,
    /// Things the operator should know about this start (a new state database, a new id key).
    notices: Vec<String>,
    sources: Vec<SourceHandle>,
    /// Skip the shrink guard for this run (`--accept-shrink`).
    accept_shrink: bool,
    /// Skip the target guard for this run (`--accept-missing`).
    accept_missing: bool,
    /// Skip the dropped-column guard for this run (`--accept-schema-change`).
    accept_schema_change: bool,
    lifecycle: Lifecycle,
    targets: BTreeMap<String, Arc<TargetHandle>>,
    namer: Namer,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("sources", &self.sources.len()).field("targets", &self.targets.len()).finish()
    }
}

/// Everything a dry run found, ready to show or to apply.
#[derive(Debug)]
pub struct Computed {
    pub plan: Plan,
    pub resolution: Resolution,
    /// Identity id → username, for every identity of the run.
    pub usernames: BTreeMap<IdentityId, String>,
    /// Rows rejected by the sources, per source.
    pub rejected: BTreeMap<String, Vec<RowError>>,
    /// Persons held on a target because their accounts could not be computed (a template failed):
    /// no operation for them there, and the run exits non-zero.
    pub failures: Vec<Failure>,
    /// Records to write to the state database (new or changed).
    pub record_rows: Vec<RecordRow>,
    /// Records read, per source.
    pub counts: BTreeMap<String, usize>,
    /// The fields each source delivered (recorded at apply for the dropped-column guard).
    pub columns: BTreeMap<String, BTreeSet<String>>,
    /// The accounts each target holds now.
    pub observed: BTreeMap<String, Vec<ObservedAccount>>,
    /// Identities with protected personal data now or as stored (also kept and absent ones).
    pub protected: HashSet<IdentityId>,
}

/// Conflicts as they may be shown: one that involves a person with protected personal data (as
/// a candidate identity) shows no source keys or file locations.
pub fn redact_conflicts(conflicts: &mut [crate::core::identity::Conflict], protected: &HashSet<IdentityId>) {
    for c in conflicts.iter_mut().filter(|c| c.candidates.iter().any(|i| protected.contains(i))) {
        c.records = vec!["(protected)".into()];
        c.held = vec!["(protected)".into()];
    }
}

impl Computed {
    /// The plan as it may be shown or saved: persons with protected personal data by enid id
    /// only (no username, school, values, source keys or file locations).
    pub fn shown_plan(&self) -> std::borrow::Cow<'_, Plan> {
        let protected: HashSet<&str> = self.protected.iter().map(String::as_str).collect();
        if protected.is_empty() && !self.plan.operations.iter().any(|o| o.protected) {
            return std::borrow::Cow::Borrowed(&self.plan);
        }
        let mut p = self.plan.clone();
        redact_conflicts(&mut p.conflicts, &self.protected);
        for k in &mut p.kept {
            if protected.contains(k.identity.as_str()) {
                k.username = k.identity.clone();
                k.reason = "protected person: see `enid explain` by enid id".into();
            }
        }
        p.operations = self.plan.operations.iter().map(PlannedOp::redacted).collect();
        for n in &mut p.new_identities {
            if protected.contains(n.id.as_str()) {
                n.username = n.id.clone();
                n.records = vec!["(protected)".into()];
            }
        }
        for b in &mut p.blocked {
            if protected.contains(b.identity.as_str()) {
                b.username = b.identity.clone();
                b.reason = "protected person: see `enid explain` by enid id".into();
            }
        }
        for r in p.renames.iter_mut().chain(p.held_renames.iter_mut()) {
            if protected.contains(r.identity.as_str()) {
                r.old = r.identity.clone();
                r.new = r.identity.clone();
            }
        }
        std::borrow::Cow::Owned(p)
    }
}

/// A person held on one target because their account could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// What failed: `target "directory"`, `[naming]`.
    pub component: String,
    pub identity: IdentityId,
    /// What failed, naming the attribute template; never a civic number.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: identity {} is held (no operation): {}", self.component, self.identity, self.message)
    }
}

/// What an apply did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ApplyReport {
    pub run_id: i64,
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
    /// The first failure, for the one-line error.
    pub first_error: Option<String>,
}

/// The result of checking one component.
#[derive(Debug)]
pub struct CheckResult {
    pub component: String,
    pub result: Result<String, String>,
}

impl Engine {
    /// Opens the state (`[state] path`) and builds every connector. Reads secrets; contacts
    /// nothing.
    pub async fn build(config: Config) -> Result<Engine, EngineError> {
        let store = Store::open(&config.state.path).await?;
        Self::with_store(config, store).await
    }

    /// Builds every connector around a state store that is already open (a test's, or another
    /// backend's). Reads secrets; contacts nothing.
    pub async fn with_store(config: Config, store: Store) -> Result<Engine, EngineError> {
        let mut notices = Vec::new();
        if store.created() {
            notices.push(format!(
                "created a new, empty state database at {}; if enid ran here before, stop and restore the state \
                 from a backup (or check [state] path)",
                store.path()
            ));
        }
        let id_key = Self::id_key(&config, &store, &mut notices).await?;
        // Sources in order of authority: a person's records keep this order, and the first
        // gives the names.
        let mut sources = Vec::new();
        for id in config.source_order() {
            let Some(s) = config.sources.get(&id) else { continue };
            match s {
                SourceConfig::Csv(c) => sources.push(SourceHandle {
                    id: id.clone(),
                    conn: AnySource::Csv(CsvSource::new(c.clone())),
                    max_rejected_percent: c.max_rejected_percent,
                    max_shrink_percent: c.max_shrink_percent,
                    shrink_min_records: c.shrink_min_records,
                }),
            }
        }
        let mut targets = BTreeMap::new();
        for (id, t) in &config.targets {
            match t {
                TargetConfig::Ldap(c) => {
                    if c.tls_insecure_skip_verify {
                        tracing::warn!(
                            target_id = %id,
                            "[targets.{id}] tls_insecure_skip_verify = true: the server certificate is not verified, \
                             so anyone on the network path can read the bind password and every account; give \
                             tls_ca_file instead"
                        );
                    }
                    let what = format!("bind password of [targets.{id}]");
                    let password = load_secret(c.bind_password_file.as_deref(), c.bind_password_env.as_deref(), &what)
                        .map_err(|message| EngineError::TargetConfig { id: id.clone(), message })?;
                    let mapping = Mapping::new(&ldap_mapping(c))
                        .map_err(|e| EngineError::TargetConfig { id: id.clone(), message: e.to_string() })?;
                    let owner_attr = "employeeNumber".to_string();
                    if !mapping.attribute_names().iter().any(|a| a == &owner_attr) {
                        return Err(EngineError::TargetConfig {
                            id: id.clone(),
                            message: "the attribute mapping must keep employeeNumber = \"{{ id }}\": it is how enid \
                                      recognises the accounts it created"
                                .into(),
                        });
                    }
                    let groups = c
                        .groups
                        .as_ref()
                        .map(|g| GroupNamer::new(&g.name, &g.school_name, &g.members))
                        .transpose()
                        .map_err(|e| EngineError::TargetConfig { id: id.clone(), message: e.to_string() })?;
                    targets.insert(
                        id.clone(),
                        Arc::new(TargetHandle {
                            groups,
                            members_by_username: c
                                .groups
                                .as_ref()
                                .is_some_and(|g| g.object_class.members_by_username()),
                            thresholds: c.thresholds,
                            exclude: c.exclude.clone(),
                            protected: c.protected.clone(),
                            conn: AnyTarget::Ldap(LdapTarget::new(c.clone(), password)),
                            mapping,
                            owner_attr,
                            max_in_flight: c.max_in_flight,
                        }),
                    );
                }
            }
        }
        let namer =
            config.namer().map_err(|e| EngineError::TargetConfig { id: "naming".into(), message: e.to_string() })?;
        let lifecycle = config
            .lifecycle
            .model()
            .map_err(|message| EngineError::TargetConfig { id: "lifecycle".into(), message })?;
        Ok(Engine {
            config,
            store,
            id_key,
            notices,
            sources,
            targets,
            namer,
            accept_shrink: false,
            accept_missing: false,
            accept_schema_change: false,
            lifecycle,
        })
    }

    /// Reads the id key, or creates it for a state that was never built with one, and checks it
    /// against the fingerprint the state remembers.
    async fn id_key(
        config: &Config,
        store: &Store,
        notices: &mut Vec<String>,
    ) -> Result<crate::core::identity::IdKey, EngineError> {
        const FINGERPRINT: &str = "id_key_fingerprint";
        let path = config.identity.id_key_path();
        let recorded = store.meta(FINGERPRINT).await?;
        let loaded = crate::engine::idkey::load(&path, recorded.is_none()).map_err(EngineError::IdKey)?;
        let fingerprint = loaded.key.fingerprint();
        match recorded {
            Some(r) if r != fingerprint => {
                return Err(EngineError::IdKey(format!(
                    "id key file {} is not the key state database {} was built with (fingerprint {fingerprint}, \
                     expected {r}); restore the right file from your backup",
                    path.display(),
                    store.path()
                )));
            }
            Some(_) => {}
            None => store.set_meta(FINGERPRINT, &fingerprint).await?,
        }
        if loaded.created {
            notices.push(format!(
                "created the id key {} (new identity ids are derived with it): back it up with the state \
                 database; without both, a lost state cannot be rebuilt with `enid adopt`",
                path.display()
            ));
        }
        Ok(loaded.key)
    }

    /// What the operator should know about this start, one line each.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// Takes the state's run lock for an applying command and marks runs a dead process left
    /// `running` as interrupted. Hold the returned lock until the command ends.
    pub async fn lock(&self, command: &str, now: DateTime<Utc>) -> Result<crate::store::runlock::RunLock, EngineError> {
        let lock = crate::store::runlock::RunLock::acquire(&self.config.state.path, command, now)?;
        let n = self.store.mark_interrupted(now).await?;
        if n > 0 {
            tracing::warn!(runs = n, "runs left unfinished by a process that ended are marked interrupted");
        }
        Ok(lock)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The lifecycle rules in force.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Lets this engine's runs through the shrink guard (an operator confirmed the drop).
    pub fn accept_shrink(&mut self, yes: bool) {
        self.accept_shrink = yes;
    }

    /// Lets this engine's runs through the target guard (an operator confirmed that owned
    /// accounts or groups really are gone from a target).
    pub fn accept_missing(&mut self, yes: bool) {
        self.accept_missing = yes;
    }

    /// Lets this engine's runs through the dropped-column guard (an operator reviewed the new
    /// shape of the export).
    pub fn accept_schema_change(&mut self, yes: bool) {
        self.accept_schema_change = yes;
    }

    /// Connects to every source and target, reporting each separately.
    pub async fn check(&self) -> Vec<CheckResult> {
        let mut out = vec![CheckResult {
            component: "state".into(),
            result: Ok(format!("{}", self.config.state.path.display())),
        }];
        for s in &self.sources {
            out.push(CheckResult {
                component: format!("source \"{}\"", s.id),
                result: s
                    .conn
                    .check()
                    .await
                    .map(|_| "readable, header complete".to_string())
                    .map_err(|e| connector_api::one_line(&e)),
            });
        }
        for (id, t) in &self.targets {
            out.push(CheckResult {
                component: format!("target \"{id}\""),
                result: t
                    .conn
                    .check()
                    .await
                    .map(|_| "connected, bound, base_dn found".to_string())
                    .map_err(|e| connector_api::one_line(&e)),
            });
        }
        out
    }

    /// Reads every source and runs the input guards (dropped columns, zero records, too many
    /// rejected rows, a shrink): a source that fails one stops the run before planning.
    async fn fetch_all(&self, today: NaiveDate) -> Result<Fetched, EngineError> {
        let cx = FetchContext { today };
        let (results, last, last_columns) = tokio::join!(
            futures::future::join_all(self.sources.iter().map(|s| s.conn.fetch(cx))),
            self.store.source_counts(),
            self.store.source_columns()
        );
        let (last, last_columns) = (last?, last_columns?);
        let mut records = Vec::new();
        let mut rejected = BTreeMap::new();
        let mut counts = BTreeMap::new();
        let mut columns = BTreeMap::new();
        for (handle, result) in self.sources.iter().zip(results) {
            let (id, max_pct) = (&handle.id, &handle.max_rejected_percent);
            let batch = result.map_err(|error| EngineError::Source { id: id.clone(), error })?;
            if let Some(before) = last_columns.get(id).filter(|_| !self.accept_schema_change) {
                let missing: Vec<&str> = before.difference(&batch.columns).map(String::as_str).collect();
                if !missing.is_empty() {
                    return Err(EngineError::Guard {
                        id: id.clone(),
                        reason: format!(
                            "the column{} {} {} in the export at the last applied run and {} missing now; a dropped \
                             column is a broken export, not a change of every person. Fix the export, or run again \
                             with --accept-schema-change after review",
                            if missing.len() == 1 { "" } else { "s" },
                            missing.join(", "),
                            if missing.len() == 1 { "was" } else { "were" },
                            if missing.len() == 1 { "is" } else { "are" },
                        ),
                    });
                }
            }
            let seen = batch.rows_seen();
            if batch.records.is_empty() {
                return Err(EngineError::Guard {
                    id: id.clone(),
                    reason: format!(
                        "yielded zero valid records ({} rows rejected); an empty source never means that everyone left",
                        batch.rejected.len()
                    ),
                });
            }
            let pct = 100.0 * batch.rejected.len() as f64 / seen as f64;
            if pct > *max_pct {
                let first: Vec<String> = batch.rejected.iter().take(5).map(|e| e.to_string()).collect();
                return Err(EngineError::Guard {
                    id: id.clone(),
                    reason: format!(
                        "{} of {seen} rows rejected ({pct:.1}%, more than max_rejected_percent = {max_pct}); first: {}",
                        batch.rejected.len(),
                        first.join("; ")
                    ),
                });
            }
            if let Some(&before) = last.get(id).filter(|_| !self.accept_shrink) {
                let now = batch.records.len();
                let drop = 100.0 * before.saturating_sub(now) as f64 / before.max(1) as f64;
                if drop > handle.max_shrink_percent && before - now > handle.shrink_min_records {
                    return Err(EngineError::Guard {
                        id: id.clone(),
                        reason: format!(
                            "{now} valid records, {drop:.1}% fewer than the {before} of the last applied run (more than \
                             max_shrink_percent = {}, and more than {} records); a truncated or partial export never \
                             means that people left. If they did, run again with --accept-shrink",
                            handle.max_shrink_percent, handle.shrink_min_records
                        ),
                    });
                }
            }
            counts.insert(id.clone(), batch.records.len());
            columns.insert(id.clone(), batch.columns);
            records.extend(batch.records.into_iter().map(|record| Sourced { source: id.clone(), record }));
            rejected.insert(id.clone(), batch.rejected);
        }
        Ok(Fetched { records, rejected, counts, columns })
    }

    /// Starts reading every target in tasks of their own, so the reads run while the sources
    /// and the state are read and the identities resolved.
    fn spawn_observe(&self) -> Vec<(String, ObserveTask)> {
        self.targets
            .iter()
            .map(|(id, t)| {
                let t = Arc::clone(t);
                let task = async move {
                    let mut attrs = t.mapping.attribute_names();
                    attrs.extend(t.exclude.attribute_names());
                    let accounts = t.conn.observe(&attrs).await?;
                    let groups = if t.groups.is_some() { t.conn.observe_groups().await? } else { Vec::new() };
                    Ok((accounts, groups))
                };
                (id.clone(), tokio::spawn(task))
            })
            .collect()
    }

    /// The dry run: reads sources and targets, and plans. Writes nothing.
    pub async fn compute(&self, now: DateTime<Utc>) -> Result<Computed, EngineError> {
        let today = now.date_naive();
        let started = std::time::Instant::now();
        let lap =
            |what: &'static str| tracing::debug!(what, elapsed_ms = started.elapsed().as_millis() as u64, "compute");
        let observing = self.spawn_observe();
        let abort_all = || observing.iter().for_each(|(_, h)| h.abort());
        let (fetched, snapshot) = tokio::join!(self.fetch_all(today), self.read_state());
        let (Fetched { records, rejected, counts, columns }, (snapshot, decisions, state_groups)) =
            match (fetched, snapshot) {
                (Ok(f), Ok(s)) => (f, s),
                (Err(e), _) | (_, Err(e)) => {
                    abort_all();
                    return Err(e);
                }
            };
        lap("read sources and state");
        // A rejected row is not a leaver: the persons linked to rejected rows are kept as stored.
        let rejected_rows = RejectedRows::from_rows(&rejected);
        let mut resolution = identity::resolve(
            records,
            &snapshot,
            &decisions,
            &self.config.identity.match_on,
            &rejected_rows,
            &self.id_key,
        );
        let unprotect = keep_protection(&mut resolution, &snapshot);
        lap("resolved identities");
        let (mut usernames, mut requests) = known_names(&resolution, &snapshot);
        // Kept persons keep their names too (for `explain`); nothing is planned for them.
        for k in &resolution.kept {
            if let Some(Some(u)) = snapshot.identities.get(&k.identity_id) {
                usernames.insert(k.identity_id.clone(), u.clone());
            }
        }
        if self.config.naming.protected_names_from_template {
            requests.iter_mut().for_each(|r| r.pseudonymous = false);
        }
        // Persons whose name no longer fits their username, when the policy renames: they get
        // their desired accounts later, with the new name.
        let renaming = self.rename_candidates(&resolution, &usernames);
        for id in renaming.keys() {
            usernames.remove(id);
        }
        let last_schools = last_schools(&snapshot, &resolution);
        let authority = self.config.identity.authority.model();
        let lifecycle = self.lifecycle;
        let rules = Rules { authority: &authority, lifecycle: &lifecycle };
        // Desired accounts of identities that already have a name need nothing from the targets.
        let mut failures = Vec::new();
        let mut desired: BTreeMap<String, Vec<Desired>> = self
            .targets
            .iter()
            .map(|(id, t)| {
                let (want, failed) =
                    desired_accounts(&resolution, &rules, &usernames, &last_schools, &t.rules(), today);
                failures.extend(failed.into_iter().map(|(identity, why)| Failure {
                    component: format!("target \"{id}\""),
                    identity,
                    message: format!("{why}; fix [targets.{id}.attributes]"),
                }));
                (id.clone(), want)
            })
            .collect();
        // Also independent of the targets: which stored records the apply would rewrite.
        let mut record_rows = changed_records(&resolution, &snapshot);
        lap("desired accounts of known identities");

        let mut observed = BTreeMap::new();
        let mut observed_groups: BTreeMap<String, Vec<ObservedGroup>> = BTreeMap::new();
        let mut failure = None;
        for (id, handle) in observing {
            match handle.await {
                Ok(Ok((accounts, groups))) => {
                    observed.insert(id.clone(), accounts);
                    observed_groups.insert(id, groups);
                }
                Ok(Err(error)) => {
                    failure.get_or_insert(EngineError::Target { id, error });
                }
                Err(e) => {
                    let error = TargetError::unavailable("read the target").with_source(e);
                    failure.get_or_insert(EngineError::Target { id, error });
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        lap("read targets");
        self.guard_lost_state(&observed, &snapshot, &resolution).await?;
        let missing_owned = self.missing_owned(&snapshot, &observed);
        if !self.accept_missing {
            self.target_guard(&missing_owned, &state_groups, &observed_groups)?;
        }
        // Owned accounts moved out of scope by hand: never created a second time.
        let moved = self.moved_out_of_scope(&missing_owned).await?;

        let mut all_requests = requests;
        all_requests.extend(renaming.iter().map(|(_, (req, _))| req.clone()));
        let (mut new_names, naming_failed) = self.name_new(&all_requests, &observed, now).await?;
        failures.extend(naming_failed);
        let (renames, held_renames) = self.decide_renames(&renaming, &mut new_names).await?;
        for (id, t) in &self.targets {
            let (more, failed) = desired_accounts(&resolution, &rules, &new_names, &last_schools, &t.rules(), today);
            failures.extend(failed.into_iter().map(|(identity, why)| Failure {
                component: format!("target \"{id}\""),
                identity,
                message: format!("{why}; fix [targets.{id}.attributes]"),
            }));
            desired.entry(id.clone()).or_default().extend(more);
        }
        usernames.extend(new_names);
        // A new person whose name could not be made (a reported failure) is not recorded yet:
        // their records wait with them.
        if !failures.is_empty() {
            record_rows
                .retain(|r| snapshot.identities.contains_key(&r.identity_id) || usernames.contains_key(&r.identity_id));
        }
        let excluded_persons = excluded_persons(&resolution, &self.config.identity.exclude);
        let protected_ids: HashSet<&str> =
            resolution.present.iter().filter(|i| i.is_protected()).map(|i| i.id.as_str()).collect();
        let kept_ids: HashSet<&str> = resolution.kept.iter().map(|k| k.identity_id.as_str()).collect();
        let mut target_plans = BTreeMap::new();
        let mut held = Vec::new();
        for (id, handle) in &self.targets {
            let owned: Vec<_> = snapshot.accounts.iter().filter(|a| &a.target == id).collect();
            let all_obs = observed.get(id).map(Vec::as_slice).unwrap_or(&[]);
            let mut want = desired.remove(id).unwrap_or_default();
            // Excluded accounts are out of the plan, and so are the persons they belong to.
            let kept: Vec<ObservedAccount>;
            let obs = if handle.exclude == connector_api::Exclude::default() {
                all_obs
            } else {
                let (out, keep): (Vec<&ObservedAccount>, Vec<&ObservedAccount>) =
                    all_obs.iter().partition(|a| handle.exclude.matches(a));
                let skip: HashSet<&str> = out
                    .iter()
                    .flat_map(|a| {
                        let by_row = owned.iter().filter(move |o| {
                            o.anchor.is_some() && o.anchor == a.anchor || o.key.eq_ignore_ascii_case(&a.key)
                        });
                        let by_attr = a.attrs.get(&handle.owner_attr).into_iter().flatten().map(String::as_str);
                        by_row.map(|o| o.identity_id.as_str()).chain(by_attr).collect::<Vec<_>>()
                    })
                    .collect();
                want.retain(|d| !skip.contains(d.identity_id.as_str()));
                kept = keep.into_iter().cloned().collect();
                &kept
            };
            if !excluded_persons.is_empty() {
                want.retain(|d| !excluded_persons.contains(d.identity_id.as_str()));
            }
            let managed = handle.mapping.attribute_names();
            let key_for = |u: &str| handle.conn.key_for(u, false);
            let renamed = |k: &str, u: &str| handle.conn.renamed_key(k, u);
            let enabled = |k: &str| handle.conn.enabled_key(k);
            let keys = plan::KeyRules { key_for: &key_for, renamed: &renamed, enabled: &enabled, today };
            let moved_here = moved.get(id);
            let mut moved_away = Vec::new();
            if let Some(m) = moved_here.filter(|m| !m.is_empty()) {
                want.retain(|d| match m.get(&d.identity_id) {
                    Some(key) => {
                        moved_away.push(plan::Blocked {
                            target: id.clone(),
                            identity: d.identity_id.clone(),
                            username: if d.protected { d.identity_id.clone() } else { d.username.clone() },
                            reason: format!(
                                "the account enid owns was moved out of {} to {key}; it is left alone and never \
                                 created again: move it back, or widen base_dn or filter",
                                handle.conn.scope()
                            ),
                        });
                        false
                    }
                    None => true,
                });
            }
            let mut tp = plan::plan_target(id, want, obs, &owned, &managed, &handle.owner_attr, &keys);
            tp.blocked.extend(moved_away);
            if let Some(namer) = &handle.groups {
                tp.kept_members = kept_members(&kept_ids, &owned, all_obs, handle.members_by_username, &snapshot);
                let by_name: Vec<(IdentityId, String)>;
                let members = if handle.members_by_username {
                    by_name = tp
                        .member_keys
                        .iter()
                        .filter_map(|(i, _)| Some((i.clone(), usernames.get(i)?.clone())))
                        .collect();
                    &by_name
                } else {
                    &tp.member_keys
                };
                let allowed: Vec<(IdentityId, String)>;
                let members = if handle.protected.groups || protected_ids.is_empty() {
                    members
                } else {
                    allowed = members.iter().filter(|(i, _)| !protected_ids.contains(i.as_str())).cloned().collect();
                    &allowed
                };
                match namer.desired(&resolution, &authority, members) {
                    Ok(desired_groups) => {
                        let owned_groups: Vec<_> = state_groups.iter().filter(|g| &g.target == id).collect();
                        let obs_groups = observed_groups.get(id).map(Vec::as_slice).unwrap_or(&[]);
                        plan::plan_groups(id, &desired_groups, obs_groups, &owned_groups, &mut tp);
                    }
                    // Fail closed: without every name, no group of this target is changed.
                    Err(e) => tp.blocked.push(plan::Blocked {
                        target: id.clone(),
                        identity: String::new(),
                        username: "(groups)".into(),
                        reason: format!("{e}; no group on this target is changed until the template is fixed"),
                    }),
                }
            }
            held.extend(weigh(id, &tp, &owned, &handle.thresholds));
            let owned_groups = state_groups.iter().filter(|g| &g.target == id && !g.pending).count();
            held.extend(plan::check_group_thresholds(id, &tp.groups, owned_groups, &handle.thresholds));
            target_plans.insert(id.clone(), tp);
        }
        lap("planned targets");
        let new_identities = resolution
            .present
            .iter()
            .filter(|i| i.is_new)
            // An identity whose name could not be made (a reported failure) waits for the next run.
            .filter_map(|i| {
                Some(NewIdentity {
                    id: i.id.clone(),
                    username: usernames.get(&i.id)?.clone(),
                    records: i.records.iter().map(Sourced::label).collect(),
                })
            })
            .collect();
        let civic_changes = resolution.civic_changes.iter().map(describe_change).collect();
        let mut plan = plan::assemble(
            now,
            new_identities,
            target_plans,
            resolution.conflicts.clone(),
            civic_changes,
            (renames, held_renames),
        );
        plan.kept = kept_persons(&resolution, &snapshot);
        plan.held = held;
        if !unprotect.is_empty() {
            // Releasing protection is part of what an approval of this plan approves.
            let mut h = Sha256::new();
            h.update(plan.plan_id.as_bytes());
            for id in &unprotect {
                h.update(id.as_bytes());
            }
            plan.plan_id = format!("{:x}", h.finalize())[..plan.plan_id.len()].to_string();
            plan.unprotect = unprotect;
        }
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            operations = plan.operations.len(),
            "planned"
        );
        failures.sort_by(|a, b| (&a.component, &a.identity).cmp(&(&b.component, &b.identity)));
        let protected = self::protected_ids(&resolution, &snapshot);
        Ok(Computed {
            plan,
            resolution,
            usernames,
            rejected,
            failures,
            record_rows,
            counts,
            columns,
            observed,
            protected,
        })
    }

    async fn read_state(&self) -> Result<(Snapshot, BTreeMap<String, Decision>, Vec<OwnedGroup>), EngineError> {
        let (snapshot, decisions, groups) =
            tokio::try_join!(self.store.snapshot(), self.store.decisions(), self.store.groups())?;
        Ok((snapshot, decisions, groups))
    }

    /// Reads the sources and the state and resolves identities, without the targets: enough to
    /// list the conflict queue.
    pub async fn resolve_only(&self, now: DateTime<Utc>) -> Result<Resolution, EngineError> {
        let (fetched, state) = tokio::join!(self.fetch_all(now.date_naive()), self.read_state());
        let Fetched { records, rejected, .. } = fetched?;
        let (snapshot, decisions, _) = state?;
        let rejected = RejectedRows::from_rows(&rejected);
        Ok(identity::resolve(records, &snapshot, &decisions, &self.config.identity.match_on, &rejected, &self.id_key))
    }

    /// Identities whose name changed so that their username no longer fits, when the policy is
    /// not `keep`, and persons who became protected and still have a username made from their
    /// name, whatever the policy: id → (name request, current username).
    fn rename_candidates(
        &self,
        resolution: &Resolution,
        usernames: &BTreeMap<IdentityId, String>,
    ) -> BTreeMap<IdentityId, (NameRequest, String)> {
        let mut out = BTreeMap::new();
        let pseudonyms = !self.config.naming.protected_names_from_template;
        let policy = self.config.naming.on_name_change;
        for ident in &resolution.present {
            let (Some(old), Some(req)) = (usernames.get(&ident.id), name_request(ident)) else { continue };
            if req.pseudonymous {
                // A protected person's name never shapes their username; one who became protected
                // gets a pseudonymous one (held with their other changes for approval).
                if pseudonyms && !self.namer.still_fits(old, &req) {
                    out.insert(ident.id.clone(), (req, old.clone()));
                }
                continue;
            }
            if policy == RenamePolicy::Keep {
                continue;
            }
            if !self.namer.still_fits(old, &req) {
                out.insert(ident.id.clone(), (req, old.clone()));
            }
        }
        out
    }

    /// Splits rename candidates into renames done now and renames held for approval. A held
    /// person keeps the old name in `names`.
    async fn decide_renames(
        &self,
        renaming: &BTreeMap<IdentityId, (NameRequest, String)>,
        names: &mut BTreeMap<IdentityId, String>,
    ) -> Result<(Vec<plan::RenameInfo>, Vec<plan::RenameInfo>), EngineError> {
        let (mut done, mut held) = (Vec::new(), Vec::new());
        if renaming.is_empty() {
            return Ok((done, held));
        }
        let approved = match self.config.naming.on_name_change {
            RenamePolicy::Hold => self.store.rename_approvals().await?,
            _ => BTreeMap::new(),
        };
        for (id, (_, old)) in renaming {
            let Some(new) = names.get(id).cloned() else {
                // The new name could not be made (reported): the person keeps the old one.
                names.insert(id.clone(), old.clone());
                continue;
            };
            let info = plan::RenameInfo { identity: id.clone(), old: old.clone(), new: new.clone() };
            // A person who became protected is renamed whatever the policy: their changes wait
            // for `--accept-protected` anyway.
            let protection = renaming.get(id).is_some_and(|(req, _)| req.pseudonymous);
            let go = protection
                || self.config.naming.on_name_change == RenamePolicy::Rename
                || approved.get(id) == Some(&new);
            if go {
                done.push(info);
            } else {
                names.insert(id.clone(), old.clone());
                held.push(info);
            }
        }
        Ok((done, held))
    }

    /// Names for identities that have none yet, avoiding every name ever allocated, the
    /// reserved names, and every name on a target.
    async fn name_new(
        &self,
        requests: &[NameRequest],
        observed: &BTreeMap<String, Vec<ObservedAccount>>,
        now: DateTime<Utc>,
    ) -> Result<(BTreeMap<IdentityId, String>, Vec<Failure>), EngineError> {
        if requests.is_empty() {
            return Ok((BTreeMap::new(), Vec::new()));
        }
        let quarantine = self.config.naming.quarantine_days;
        let mut taken: HashSet<String> = self.store.allocated_usernames(now, quarantine).await?.into_iter().collect();
        taken.extend(self.config.naming.reserved.iter().map(|r| r.to_lowercase()));
        for accounts in observed.values() {
            taken.extend(accounts.iter().filter_map(|a| a.username.as_ref()).map(|u| u.to_lowercase()));
        }
        let (names, failed) = self.namer.allocate(requests, &taken);
        let failed = failed
            .into_iter()
            .map(|(identity, why)| Failure {
                component: "[naming]".into(),
                identity,
                message: format!("{why}; fix [naming] username"),
            })
            .collect();
        Ok((names, failed))
    }
}

/// The thresholds one target's plan goes over. Thresholds weigh against the accounts that exist.
/// Creates that retry an earlier, already applied plan (a pending ownership row) are not new
/// decisions: they do not count, so an interrupted first run finishes without review. An
/// account enid created (active or disabled) that is gone from the target is created afresh:
/// that counts.
fn weigh(
    id: &str,
    tp: &plan::TargetPlan,
    rows: &[&crate::core::model::OwnedAccount],
    thresholds: &connector_api::Thresholds,
) -> Vec<plan::ThresholdHit> {
    let owned = rows.iter().filter(|a| a.status != AccountStatus::Pending).count();
    let fresh = if tp.summary.create == 0 {
        0
    } else {
        let retries: HashSet<&str> =
            rows.iter().filter(|a| a.status == AccountStatus::Pending).map(|a| a.identity_id.as_str()).collect();
        tp.operations.iter().filter(|o| o.action == Action::Create && !retries.contains(o.identity.as_str())).count()
    };
    // Enables a start date scheduled are not returns of leavers: they do not count.
    let scheduled =
        tp.operations.iter().filter(|o| o.action == Action::Enable && o.reason == plan::START_REASON).count();
    let weighed = plan::Summary { create: fresh, enable: tp.summary.enable - scheduled, ..tp.summary };
    plan::check_thresholds(id, &weighed, owned, tp.enid_entries, thresholds)
}

/// A count with thousands separators, as people write it in messages: `22,100`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Looks up the identities that match `needle` in a computed run (for persons not yet stored).
pub fn find_in_run(computed: &Computed, needle: &str) -> Vec<IdentityId> {
    let mut out = Vec::new();
    for ident in computed.resolution.all() {
        let by_record = ident.records.iter().any(|r| r.record.person_id == needle);
        let by_name = computed.usernames.get(&ident.id).is_some_and(|u| u == needle);
        if ident.id == needle || by_record || by_name {
            out.push(ident.id.clone());
        }
    }
    out
}

/// The identity of a run by id.
pub fn identity_in_run<'a>(computed: &'a Computed, id: &str) -> Option<&'a Identity> {
    computed.resolution.all().find(|i| i.id == id)
}

#[cfg(test)]
mod tests {
    use crate::store::{StateStore, Store};

    /// A test (or another backend) hands the engine an open store; `[state] path` is not opened.
    #[tokio::test]
    async fn an_injected_store_is_the_one_the_engine_uses() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ldap.secret"), "secret").unwrap();
        let config = "[state]\npath = \"never.db\"\n[sources.sis]\ntype = \"csv\"\npath = \"persons.csv\"\n\
                      [targets.directory]\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:3389\"\n\
                      bind_dn = \"cn=admin,dc=example,dc=org\"\nbind_password_file = \"ldap.secret\"\n\
                      base_dn = \"ou=people,dc=example,dc=org\"\n";
        std::fs::write(dir.path().join("enid.toml"), config).unwrap();
        let config = crate::config::Config::load(&dir.path().join("enid.toml")).unwrap();
        let injected = dir.path().join("injected.db");
        let store = Store::open(&injected).await.unwrap();
        let engine = super::Engine::with_store(config, store).await.unwrap();
        assert_eq!(engine.store().path(), injected.display().to_string());
        assert!(engine.store().meta("id_key_fingerprint").await.unwrap().is_some());
        assert!(!dir.path().join("never.db").exists());
    }

    #[test]
    fn counts_in_messages_have_thousands_separators() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(2000), "2,000");
        assert_eq!(super::thousands(1_234_567), "1,234,567");
    }

    /// A target or source error shows its cause (the I/O error under it) once, in the engine's
    /// message and in the chain `main` prints, and stays reachable as the `source`.
    #[test]
    fn a_connector_error_shows_its_cause_once() {
        use connector_api::{SourceError, TargetError};
        use std::error::Error;
        let refused = std::io::Error::other("Connection refused");
        let error = TargetError::unavailable("connect to ldap://x").with_source(refused);
        let e = super::EngineError::Target { id: "directory".into(), error };
        let want = "target \"directory\": target unavailable: connect to ldap://x: Connection refused";
        assert_eq!(e.to_string(), want);
        assert_eq!(connector_api::one_line(&e), want);
        assert!(e.source().is_some_and(|s| s.is::<TargetError>()));

        let gone = std::io::Error::other("No such file or directory");
        let reason = gone.to_string();
        let error = SourceError::Unavailable { what: "persons.csv".into(), reason, source: Some(gone.into()) };
        let e = super::EngineError::Source { id: "sis".into(), error };
        let want = "source \"sis\": cannot read persons.csv: No such file or directory";
        assert_eq!(e.to_string(), want);
        assert_eq!(connector_api::one_line(&e), want);
    }
}
