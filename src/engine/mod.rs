//! The imperative shell: reads sources, observes targets, runs the pure core, and applies plans.
//!
//! One API for every front end (the CLI now, the daemon and the HTTP API later): a
//! [`RunRequest`] goes in ([`Engine::run`]), a [`RunReport`] comes out. Underneath,
//! [`Engine::compute`] is a dry run: it reads everything and writes nothing; [`Engine::approve`]
//! decides what of it may be carried out; [`Engine::apply`] carries it out: it first records new
//! identities, names and the ownership rows of the creates it is about to send, then sends the
//! operations, logging each one. A target that fails mid-way stops receiving operations; what
//! was done stays recorded, and the next run picks up from the state the targets are really in.
//!
//! The store and the connectors are passed in ([`Engine::new`]); [`Engine::build`] makes both
//! from the config.
//!
//! Files: `registry` (the closed connector enums), `fetch` (sources and the input guards),
//! `compute` (the dry run), `guards` (the guards on the target side), `domain` (group names held
//! elsewhere in a domain that keeps them unique), `approve`, `apply`,
//! `adopt`, `decisions` (conflict decisions and rename approvals), `run` (the request and the
//! report), `queries` (what a front end may show: runs, the log, a person), `explain` (a person
//! explained, as every front end shows it), `tokens` (the API's tokens), `records` (what the
//! state keeps of records), `idkey`, `keys` (`enid keys create`), `retention` (`prune`: the sync
//! log kept for `keep_log_for`).

use crate::config::Config;
use crate::core::mapping::{GroupNamer, Mapping};
use crate::core::model::Lifecycle;
use crate::core::naming::Namer;
use crate::core::policy::TargetPolicy;
use crate::store::{StateStore, Store, StoreError};
use chrono::{DateTime, Utc};
use connector_api::{Capabilities, SourceError, Target, TargetError};
use std::collections::BTreeMap;
use std::sync::Arc;

mod adopt;
mod apply;

/// The `meta` key under which an apply keeps the ids of the new identities it decided, until
/// every one is stored (`apply/new_identities.rs`): what an apply killed before then leaves for
/// the next plan's thresholds.
pub(crate) const UNSTORED_NEW: &str = "unstored_new_identities";
mod approvals;
mod approve;
mod compute;
mod connector_state;
mod correlation;
mod decisions;
mod domain;
mod explain;
mod fetch;
mod guards;
pub mod idkey;
mod incremental;
pub mod keys;
pub mod passwords;
mod planview;
mod queries;
mod records;
mod registry;
mod retention;
mod run;
mod sessions;
mod tokens;
pub use adopt::{AccountClaim, AdoptPlan, ByHand, GroupClaim, Unmatched};
pub use approvals::{ApprovalSummary, ApproveRunError, GUARDS, Selection};
pub use approve::{ApplyRequest, ApprovalError, Approved, actions_named, actions_of_words};
pub use compute::{Computed, Failure, find_in_run, identity_in_run, redact_conflicts};
pub use decisions::Choice;
pub use explain::{AccountView, Explained, Explanation, HeldRecord, NextOp, RecordNow};
pub use incremental::Narrowed;
pub use planview::{
    LISTED_PER_ACTION, Listing, PlanSelection, PlanView, ShapeRow, ViewedOp, view as plan_view,
    view_page as plan_view_page,
};
pub use queries::{LookupError, NeedsAction, RunView, Viewer};
pub use registry::{AnySource, AnyTarget, Connectors, SourceConfig, TargetConfig};
pub use run::{
    Confirm, ConflictNote, Frontend, Outcome, Overrides, Phase, Progress, REJECTED_KEPT, RejectedRow, RunCounts,
    RunHook, RunMode, RunReport, RunRequest,
};
pub use sessions::{NewSession, Session};
pub use tokens::{Principal, TokenInfo, TokenRole};

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
    /// The state records accounts under a target id the config no longer names, and a target
    /// the config names holds accounts with enid ids it records none of: the target was most
    /// likely renamed in the config. Name it back, or move the records to the new id.
    #[error(
        "target \"{new}\" holds {count} accounts carrying enid ids, and the state database records none on it, but \
         it records {recorded} accounts on target \"{old}\", which the config no longer names: was the target \
         renamed? Name it \"{old}\" again in the config, or move the records with `enid state rename-target {old} \
         {new}`; stopped before planning, nothing was changed"
    )]
    TargetRenamed { old: String, new: String, count: usize, recorded: usize },
    #[error("target \"{id}\": {message}")]
    TargetConfig { id: String, message: String },
    /// A source cannot be built from its settings (a secret that cannot be read): fix the config.
    #[error("source \"{id}\": {message}")]
    SourceConfig { id: String, message: String },
    /// Another run holds the state database, or its lock cannot be taken.
    #[error(transparent)]
    Lock(#[from] crate::store::runlock::LockError),
    /// The state database knows no applied run, but a target holds accounts carrying enid ids: the
    /// state was lost or replaced. Planning now would create everyone a second account.
    #[error(
        "state database {state} records no applied run, but target \"{target}\" holds {count} accounts carrying enid ids \
         that it does not record as enid's (the state database was lost, emptied or replaced, or [state] path \
         points to a new file); stopped before planning, nothing was changed. Restore the state database from a \
         backup (`enid state backup` makes one), or claim those accounts with `enid adopt` (one by one with \
         `enid adopt --entry KEY --person SOURCE/PERSON_ID`); an entry that is not enid's to manage must lose its \
         enid id on the target"
    )]
    StateLost { state: String, target: String, count: usize },
    /// The state was rebuilt by `enid adopt` and has not applied since, and a target holds
    /// accounts carrying enid ids that no identity of the current sources has and that the
    /// state does not record: no person can be blocked for them, and their owner may be in the
    /// sources under another key. (Entries with a known identity's id only block that person.)
    #[error(
        "state database {state} was rebuilt by `enid adopt` and has not applied since, but target \"{target}\" \
         holds {count} accounts carrying enid ids that no person of the current sources has and that it does not \
         record as enid's (for example {example}; made with another id key, a row rejected today, or the person's \
         source key changed?); stopped before planning, nothing was changed, since their owners could get a second \
         account. Claim each with `enid adopt --entry KEY --person SOURCE/PERSON_ID`, fix the export or the id key \
         and run `enid adopt` again, or remove the enid id from an entry that is not enid's to manage"
    )]
    AdoptedUnknownIds { state: String, target: String, count: usize, example: String },
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
    /// A decision an operator asked for cannot be recorded (no such conflict or rename, an
    /// identity that is not a candidate): fix the command.
    #[error("{0}")]
    Decision(String),
    /// `enid adopt --entry ... --person ...` cannot claim what it was asked to: fix the command.
    #[error("adopt: {0}")]
    Adopt(String),
    /// The id key file is missing, unreadable or not the one the state was built with.
    #[error("[identity] {0}")]
    IdKey(String),
    /// A first password cannot be made or read.
    #[error("first passwords: {0}")]
    Passwords(String),
    /// An API token cannot be made, found or read: fix the command.
    #[error("token: {0}")]
    Token(String),
    /// A person asked for is not one the asker may see, or is several: fix the question.
    #[error(transparent)]
    Lookup(#[from] queries::LookupError),
    /// An approval of a held run cannot be recorded: fix the request.
    #[error(transparent)]
    ApproveRun(#[from] approvals::ApproveRunError),
}

/// A source with the input guards' settings.
struct SourceHandle {
    id: String,
    conn: AnySource,
    /// `[sources.<id>.policy]`: when the input is too broken to plan from.
    policy: crate::config::SourcePolicy,
}

/// A target with what enid does there: its declared facts, its policy, and the compiled
/// templates.
struct TargetHandle {
    conn: AnyTarget,
    /// What the target declares (a copy, read often).
    caps: Capabilities,
    /// Thresholds, exclusions, what protected persons get.
    policy: TargetPolicy,
    /// The attribute templates, owner attribute included.
    mapping: Mapping,
    /// The attributes the mapping manages: only these are compared and changed.
    managed: Vec<String>,
    /// Group naming, when the policy makes groups.
    groups: Option<GroupNamer>,
    /// What a protected person gets: the policy's attributes, else the target's.
    protected_attributes: Vec<String>,
    /// Where accounts live, for a target that places them.
    placement: Option<Mapping>,
    /// The correlation value template (`[policy.correlate] value`), compiled as `value`.
    correlate_value: Option<minijinja::Environment<'static>>,
}

impl TargetHandle {
    fn rules(&self) -> crate::core::desired::TargetRules<'_> {
        crate::core::desired::TargetRules {
            mapping: &self.mapping,
            protected_attributes: &self.protected_attributes,
            hold_changes: self.policy.protected.hold_changes,
            placement: self.placement.as_ref(),
            protected_placement: self.caps.protected_placement.as_deref(),
            placement_problem: self.caps.placement_problem,
            fold_key: self.caps.fold_key,
        }
    }
}

/// A built engine: config, state and connectors.
pub struct Engine {
    config: Config,
    store: Store,
    /// The installation's secret for new identity ids.
    id_key: crate::core::identity::IdKey,
    /// The key first passwords are sealed with, read when first needed (`passwords`).
    password_key: tokio::sync::OnceCell<crate::core::identity::IdKey>,
    /// Things the operator should know about this start (a new state database, a new id key,
    /// old spellings in the config).
    notices: Vec<String>,
    sources: Vec<SourceHandle>,
    lifecycle: Lifecycle,
    targets: BTreeMap<String, Arc<TargetHandle>>,
    namer: Namer,
    /// What the last incremental run found changed, as one number (`incremental`).
    narrow_signature: std::sync::Mutex<Option<u64>>,
    /// The changes a full run in place of an incremental one weighed and left waiting (held,
    /// or planned for approval): later incremental runs that find exactly these do nothing.
    settled_signature: std::sync::Mutex<Option<u64>>,
    /// The fence of the run lock taken last (a lease's, on PostgreSQL): an apply runs inside it.
    fence: std::sync::Mutex<Option<connector_api::fence::Deadline>>,
    /// Whose lock a run goes under: its own, or a service node's lease (`enid run` on
    /// PostgreSQL, `Leading`).
    leading: std::sync::Mutex<Leading>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("sources", &self.sources.len()).field("targets", &self.targets.len()).finish()
    }
}

/// Whose lock a run goes under.
#[derive(Debug, Clone, Default)]
pub enum Leading {
    /// Each run takes the state's lock itself (the CLI, a service on SQLite).
    #[default]
    Own,
    /// A service node that leads: its runs go under its lease, which outlives them.
    Lease(Arc<crate::store::postgres::lease::Lease>),
    /// A service node that waits while another leads (the lease's holder): it runs nothing.
    Follower(String),
}

/// What an apply did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApplyReport {
    pub run_id: i64,
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
    /// The first failure, for the one-line error.
    pub first_error: Option<String>,
    /// Why the apply stopped before its end (a [`RunHook`] asked: SIGTERM); the rest was not sent.
    pub interrupted: Option<String>,
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
        let connectors = Connectors::build(&config)?;
        let store = Store::open_config(&config.state).await?;
        Self::new(config, store, connectors).await
    }

    /// Builds the engine around a state store that is already open (a test's, or another
    /// backend's) and connectors built elsewhere ([`Connectors::build`], or a test's). Checks
    /// the id key against the state; contacts nothing.
    pub async fn new(config: Config, store: Store, connectors: Connectors) -> Result<Engine, EngineError> {
        let mut notices = Vec::new();
        if store.created() {
            notices.push(format!(
                "created a new, empty state database at {}; if enid ran here before, stop and restore the state \
                 from a backup (or check [state] path)",
                store.path()
            ));
        }
        notices.extend(config.deprecations());
        let id_key = Self::id_key(&config, &store, &mut notices).await?;
        let mut sources = Vec::new();
        for (id, conn) in connectors.sources {
            let Some(entry) = config.sources.get(&id) else {
                return Err(EngineError::SourceConfig { id, message: "a source the config does not name".into() });
            };
            sources.push(SourceHandle { id, conn, policy: entry.policy.clone() });
        }
        let mut targets = BTreeMap::new();
        for (id, conn) in connectors.targets {
            let Some(entry) = config.targets.get(&id) else {
                return Err(EngineError::TargetConfig { id, message: "a target the config does not name".into() });
            };
            let bad = |e: &dyn std::fmt::Display| EngineError::TargetConfig { id: id.clone(), message: e.to_string() };
            let caps = conn.capabilities().clone();
            let mut policy = entry.policy.clone();
            if caps.existing_usernames == connector_api::ExistingUsernames::Adopt {
                // The SCIM connector's old switch is the username rule of the policy now.
                policy.correlate.username = true;
                notices.push(format!(
                    "target \"{id}\": adopt_by_username is deprecated; write [targets.{id}.policy.correlate] \
                     username = true"
                ));
            }
            let correlate_value = match &policy.correlate.value {
                Some(v) => Some(correlation::compile(v).map_err(|e| bad(&e))?),
                None => None,
            };
            let mapping = Mapping::new(&crate::config::mapping_templates(&caps, &policy)).map_err(|e| bad(&e))?;
            let groups = match (&policy.groups, caps.groups) {
                (Some(g), Some(_)) => {
                    Some(GroupNamer::new(&g.name, &g.school_name, &g.members, &g.types).map_err(|e| bad(&e))?)
                }
                _ => None,
            };
            let protected_attributes =
                policy.protected.attributes.clone().unwrap_or_else(|| caps.protected_attributes.clone());
            let managed = mapping.attribute_names();
            let placement = match &caps.placement {
                Some(t) => {
                    let templates = [("placement".to_string(), crate::core::mapping::AttrTemplate::text(t.clone()))];
                    Some(Mapping::new(&templates.into_iter().collect()).map_err(|e| bad(&e))?)
                }
                None => None,
            };
            targets.insert(
                id.clone(),
                Arc::new(TargetHandle {
                    conn,
                    caps,
                    policy,
                    mapping,
                    managed,
                    groups,
                    protected_attributes,
                    placement,
                    correlate_value,
                }),
            );
        }
        let namer =
            config.namer().map_err(|e| EngineError::TargetConfig { id: "naming".into(), message: e.to_string() })?;
        let lifecycle = config
            .lifecycle
            .model()
            .map_err(|message| EngineError::TargetConfig { id: "lifecycle".into(), message })?;
        let password_key = tokio::sync::OnceCell::new();
        Ok(Engine {
            config,
            store,
            id_key,
            password_key,
            notices,
            sources,
            targets,
            namer,
            lifecycle,
            narrow_signature: Default::default(),
            settled_signature: Default::default(),
            fence: Default::default(),
            leading: Default::default(),
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
        let leading = self.leading();
        let busy = |holder: String| crate::store::runlock::LockError::Busy {
            holder,
            state: self.store.path().to_string(),
            lock: "the lease row \"run\"".into(),
        };
        let lock = match leading {
            Leading::Lease(lease) if lease.holds() => {
                crate::store::runlock::RunLock::Led(crate::store::runlock::Led(lease.deadline()))
            }
            Leading::Lease(_) => {
                return Err(crate::store::runlock::LockError::Lost { state: self.store.path().to_string() }.into());
            }
            Leading::Follower(holder) => return Err(busy(holder).into()),
            Leading::Own => {
                crate::store::runlock::RunLock::take(&self.store, command, now, self.config.state.lease_for.duration())
                    .await?
            }
        };
        *self.fence.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = lock.deadline();
        let n = self.store.mark_interrupted(now).await?;
        if n > 0 {
            tracing::warn!(runs = n, "runs left unfinished by a process that ended are marked interrupted");
        }
        Ok(lock)
    }

    /// Sets whose lock this engine's runs go under (a service node on PostgreSQL).
    pub fn lead(&self, leading: Leading) {
        *self.leading.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = leading;
    }

    /// Whose lock this engine's runs go under.
    pub fn leading(&self) -> Leading {
        self.leading.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The files and directories the sources read, for a daemon to watch.
    pub fn source_files(&self) -> Vec<std::path::PathBuf> {
        self.sources.iter().flat_map(|s| s.conn.files()).collect()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The lifecycle rules in force.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Connects to every source and target, reporting each separately.
    pub async fn check(&self) -> Vec<CheckResult> {
        let mut out = vec![CheckResult { component: "state".into(), result: Ok(self.store.path().to_string()) }];
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
                    .map(|said| format!("{said}; {}", describe_capabilities(&t.caps)))
                    .map_err(|e| connector_api::one_line(&e)),
            });
        }
        out
    }
}

/// What a target declared, in a few words for `enid check`.
fn describe_capabilities(c: &Capabilities) -> String {
    let groups = match c.groups {
        Some(connector_api::MemberForm::Key) => "groups (members by key)",
        Some(connector_api::MemberForm::Username) => "groups (members by username)",
        None => "no groups",
    };
    let disable = match c.disable {
        connector_api::DisableKind::Flag => "disables by a flag",
        connector_api::DisableKind::Move => "disables by a move",
    };
    let mut out = format!("owner attribute {}, {groups}, {disable}, {} in flight", c.owner_attribute, c.max_in_flight);
    if let Some(r) = c.max_requests_per_second {
        out.push_str(&format!(", at most {r} requests/s"));
    }
    if let Some(n) = c.max_username_length {
        out.push_str(&format!(", usernames of at most {n} characters"));
    }
    out
}

/// A count with thousands separators, as people write it in messages: `22,100`.
pub fn thousands(n: usize) -> String {
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
        let connectors = super::Connectors::build(&config).unwrap();
        let engine = super::Engine::new(config, store, connectors).await.unwrap();
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
