//! Explain, as an engine query: a person's identity, records, accounts and what the next run
//! will do, as a front end may show it. `enid explain` renders its text and its `--json` from
//! [`Explained`]; the HTTP API serves the same value. Every privacy rule is applied here, once:
//! a person with protected personal data is found by enid id only and explained without names,
//! keys, schools or civic-number digits; a key with a civic number's shape is echoed masked; a
//! viewer limited to some school units (a school admin) finds only persons of their units, and
//! another school's person is no one.

use super::queries::{LookupError, Viewer};
use super::{Computed, Engine, EngineError, Overrides, find_in_run, identity_in_run};
use crate::core::model::{IdentityId, OwnedAccount};
use crate::store::{CivicHistoryRow, StateStore, StoredRecordView};
use chrono::{DateTime, NaiveDate, Utc};
use connector_api::civic::mask_if_civic;
use std::collections::BTreeSet;

/// What explain found for a key.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum Explained {
    /// One identity, explained.
    Person(Box<Explanation>),
    /// The key is a record held in an open conflict: it has no identity yet.
    Held(HeldRecord),
}

/// A record held in a conflict, as explain shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeldRecord {
    /// The key asked for, masked when it has a civic number's shape.
    pub record: String,
    /// The conflict's id (`enid conflicts resolve ID`).
    pub conflict: String,
    /// Every record the conflict holds, as `source/person_id`.
    pub held: Vec<String>,
}

/// One identity as a front end may show it. A protected person's fields that could identify
/// them read `(protected)` or are empty.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Explanation {
    /// The enid id.
    pub id: IdentityId,
    /// The username the next run gives (none when the plan could not be computed).
    pub username: Option<String>,
    /// The person's records in the sources now.
    pub records_now: Vec<RecordNow>,
    /// The records the state database keeps, civic numbers masked.
    pub records_stored: Vec<StoredRecordView>,
    /// The accounts enid owns, with when a disabled one is deleted.
    pub accounts: Vec<AccountView>,
    /// Civic-number changes of the person's records, masked.
    pub civic_history: Vec<CivicHistoryRow>,
    /// The operations the next run plans for the person.
    pub next_run: Vec<NextOp>,
    /// Why the person is blocked on a target, per target.
    pub blocked: Vec<String>,
    /// Why the person is kept as at the last run (a rejected or held row).
    pub kept: Option<String>,
    /// Why the plan could not be computed; the other fields then come from the state alone.
    pub plan_error: Option<String>,
}

/// A record in a source now, as explain shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordNow {
    pub source: String,
    /// The source's key, masked when it has a civic number's shape.
    pub person_id: String,
    /// `file:line` or the source's own location.
    pub location: String,
    pub given_name: String,
    pub family_name: String,
    /// Masked.
    pub civic_no: Option<String>,
    /// The roles, comma-separated.
    pub role: String,
    /// The school unit codes, comma-separated.
    pub school_unit: Option<String>,
    pub affiliations: connector_api::Shared<connector_api::Affiliation>,
    /// The number a school admin knows; one shaped like a civic number is masked.
    pub external_ids: Vec<String>,
    pub groups: Vec<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
}

/// An owned account, as explain shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountView {
    pub target: String,
    /// `None` for a create whose result is not known yet.
    pub key: Option<String>,
    pub anchor: Option<String>,
    pub status: &'static str,
    pub disabled_on: Option<NaiveDate>,
    /// When the disabled account is deleted (none for a role without deletion).
    pub deleted_on: Option<NaiveDate>,
}

/// A planned operation, redacted for a protected person.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NextOp {
    pub target: String,
    pub action: &'static str,
    pub reason: String,
    pub op: connector_api::TargetOp,
    pub before: Option<connector_api::Attrs>,
}

impl Engine {
    /// Explains the person `needle` (enid id, username, source key or external identifier) as
    /// `viewer` may see them, computing the next run's plan at `now` (a plan that cannot be
    /// computed is said in [`Explanation::plan_error`]).
    pub async fn explain(
        &self,
        needle: &str,
        now: DateTime<Utc>,
        overrides: &Overrides,
        viewer: &Viewer,
    ) -> Result<Explained, EngineError> {
        let computed = self.compute(now, overrides).await;
        let shown = computed.as_ref().map_err(|e| connector_api::one_line(e));
        self.explain_in(shown, needle, viewer).await
    }

    /// [`Engine::explain`] against a plan already computed (or why it could not be).
    pub async fn explain_in(
        &self,
        computed: Result<&Computed, String>,
        needle: &str,
        viewer: &Viewer,
    ) -> Result<Explained, EngineError> {
        let mut ids: BTreeSet<IdentityId> = self.store.find_identity(needle).await?.into_iter().collect();
        if let Ok(c) = computed {
            ids.extend(find_in_run(c, needle));
        }
        // The needle may be a source key that is a civic number: it is echoed masked only.
        let shown = mask_if_civic(needle).into_owned();
        if viewer.schools.is_some() {
            let mut visible = BTreeSet::new();
            for id in ids {
                if self.explain_visible(computed.as_ref().ok().copied(), &id, viewer).await? {
                    visible.insert(id);
                }
            }
            ids = visible;
        }
        let id = match ids.len() {
            0 => {
                // A held record has no school unit a school admin could be shown it by.
                let held = computed.ok().filter(|_| viewer.schools.is_none()).and_then(|c| {
                    c.plan.conflicts.iter().find(|k| k.held.iter().any(|h| h.rsplit('/').next() == Some(&*shown)))
                });
                return match held {
                    Some(k) => {
                        Ok(Explained::Held(HeldRecord { record: shown, conflict: k.id.clone(), held: k.held.clone() }))
                    }
                    None => Err(LookupError::NotFound(shown).into()),
                };
            }
            1 => ids.into_iter().next().ok_or_else(|| LookupError::NotFound(shown.clone()))?,
            n => return Err(LookupError::Ambiguous(shown, n).into()),
        };
        let mut stored = self.store.records_of(&id).await?;
        let protected = computed.as_ref().ok().and_then(|c| identity_in_run(c, &id)).is_some_and(|i| i.is_protected())
            || stored.iter().any(|r| r.protected);
        let current = computed.as_ref().ok().and_then(|c| c.usernames.get(id.as_str()));
        // Their pseudonym says nothing about whose it is; a username made from their name
        // (`protected_names_from_template`, or one that waits for its pseudonym) does.
        let by_pseudonym =
            current.is_some_and(|u| u.eq_ignore_ascii_case(needle)) && crate::core::naming::looks_pseudonymous(needle);
        if protected && needle != id && !by_pseudonym {
            // Asked by a name or key, the answer would link them to the pseudonym and the enid id.
            return Err(LookupError::ProtectedByIdOnly.into());
        }
        if protected {
            for r in &mut stored {
                r.person_id = "(protected)".into();
                r.given_name = "(protected)".into();
                r.family_name = "(protected)".into();
                r.school_unit = None;
                r.groups.clear();
                // Even masked, a civic number shows the birth date: not for a protected person.
                r.civic_no = r.civic_no.as_ref().map(|_| "(protected)".into());
            }
        }
        // The grace period follows the person's roles: staff if any record says staff.
        let staff = stored.iter().any(|r| r.role == "staff");
        let grace = self.lifecycle().grace_days(staff);
        let deletion = |a: &OwnedAccount| {
            a.disabled_at.zip(grace).and_then(|(d, g)| d.checked_add_days(chrono::Days::new(u64::from(g))))
        };
        let mut civic_history = self.store.civic_history_of(&id).await?;
        if protected {
            for h in &mut civic_history {
                h.record = "(protected)".into();
                h.old = h.old.as_ref().map(|_| "(protected)".into());
                h.new = h.new.as_ref().map(|_| "(protected)".into());
            }
        }
        let accounts = self
            .store
            .accounts(Some(&id))
            .await?
            .iter()
            .map(|a| AccountView {
                target: a.target.to_string(),
                // A key (a DN, a user name) can hold the name a protected person's account
                // still carries while the pseudonym waits, or their school's OU: the anchor finds
                // the account without them.
                key: if protected {
                    a.key().as_ref().map(|_| "(protected)".into())
                } else {
                    a.key().map(str::to_owned)
                },
                anchor: a.anchor().map(str::to_owned),
                status: a.status.as_str(),
                disabled_on: a.disabled_at,
                deleted_on: deletion(a),
            })
            .collect();
        let kept = computed
            .as_ref()
            .ok()
            .and_then(|c| c.plan.kept.iter().find(|k| k.identity == id))
            .map(|k| k.reason.clone());
        let mut explanation = Explanation {
            id: id.clone(),
            username: None,
            records_now: Vec::new(),
            records_stored: stored,
            accounts,
            civic_history,
            next_run: Vec::new(),
            blocked: Vec::new(),
            kept,
            plan_error: computed.as_ref().err().cloned(),
        };
        if let Ok(c) = computed {
            explanation.records_now = identity_in_run(c, &id)
                .map(|i| i.records.iter().map(|r| record_now(r, protected)).collect())
                .unwrap_or_default();
            explanation.next_run = c
                .plan
                .operations
                .heads()
                .enumerate()
                .filter(|(_, o)| *o.identity == id)
                .filter_map(|(i, _)| c.plan.operations.get(i))
                .map(|o| o.redacted().into_owned())
                .map(|o| NextOp {
                    target: o.target.to_string(),
                    action: o.action.as_str(),
                    reason: o.reason.to_string(),
                    op: o.op.clone(),
                    before: o.before().cloned(),
                })
                .collect();
            explanation.blocked = c
                .plan
                .blocked
                .iter()
                .filter(|b| b.identity == id)
                // A reason names accounts on the target (their keys can carry a protected
                // person's names): for a protected person only that they are blocked.
                .map(|b| {
                    if protected {
                        format!(
                            "{}: blocked (an account made before enid is in the way; its key is not shown for a \
                             protected person)",
                            b.target
                        )
                    } else {
                        format!("{}: {}", b.target, b.reason)
                    }
                })
                .collect();
            explanation.username = c.usernames.get(id.as_str()).map(|u| u.to_string());
        }
        Ok(Explained::Person(Box::new(explanation)))
    }

    /// Whether a school admin may see the identity: a stored record or one read now is at one
    /// of their school units (a person not applied yet has only the latter).
    async fn explain_visible(
        &self,
        computed: Option<&Computed>,
        id: &str,
        viewer: &Viewer,
    ) -> Result<bool, EngineError> {
        if self.person_visible(id, viewer).await? {
            return Ok(true);
        }
        Ok(computed
            .and_then(|c| identity_in_run(c, id))
            .is_some_and(|i| i.records.iter().any(|r| r.record.school_unit_codes().is_some_and(|s| viewer.sees(&s)))))
    }
}

/// A record read now, as explain shows it.
fn record_now(r: &crate::core::model::Sourced, protected: bool) -> RecordNow {
    let hidden = || "(protected)".to_string();
    RecordNow {
        source: r.source.to_string(),
        person_id: if protected { hidden() } else { mask_if_civic(&r.record.person_id).into_owned() },
        location: if protected { hidden() } else { r.record.location.to_string() },
        given_name: if protected { hidden() } else { r.record.given_name.to_string() },
        family_name: if protected { hidden() } else { r.record.family_name.to_string() },
        civic_no: r.record.civic_no.as_ref().map(|c| if protected { hidden() } else { c.masked() }),
        role: r.record.roles().iter().map(|r| r.as_str()).collect::<Vec<_>>().join(","),
        school_unit: if protected { None } else { r.record.school_unit_codes() },
        affiliations: if protected { Default::default() } else { r.record.affiliations.clone() },
        external_ids: if protected {
            Vec::new()
        } else {
            r.record.external_ids().iter().map(|e| mask_if_civic(e).into_owned()).collect()
        },
        groups: if protected { Vec::new() } else { r.record.groups.iter().map(|g| g.name.to_string()).collect() },
        start_date: r.record.start_date(),
        end_date: r.record.end_date(),
    }
}
