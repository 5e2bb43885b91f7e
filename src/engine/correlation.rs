//! Onboarding: the engine's side of correlation. Renders each target's correlation values from
//! the records, gives a new person the username of the account made before enid that the
//! attribute rule gives them, and holds back a new person whose username an account enid does not
//! own already holds (they are not named until an operator decides whose that account is). The
//! matching itself is pure (`core::plan::correlate`).

use super::{Engine, TargetHandle};
use crate::core::identity::Resolution;
use crate::core::model::Usernames;
use crate::core::model::{IdentityId, OwnedAccount, Snapshot};
use crate::core::naming::NameRequest;
use crate::core::plan::{self, Candidate, CorrelationInput};
use crate::store::ClaimRefusal;
use connector_api::ObservedAccount;
use std::collections::{BTreeMap, HashSet};

/// Compiles a correlation value template; its variables are those of one record.
pub(super) fn compile(source: &str) -> Result<minijinja::Environment<'static>, String> {
    let mut env = crate::core::mapping::environment();
    env.add_template_owned("value", source.to_string()).map_err(|e| format!("[policy.correlate] value: {e}"))?;
    // Checked now against a sample record, so a misspelt variable is a config error.
    let tmpl = env.get_template("value").map_err(|e| format!("[policy.correlate] value: {e}"))?;
    tmpl.render(sample()).map_err(|e| {
        format!(
            "[policy.correlate] value: {e}; its variables are person_id, source, email, eppn, given_name, \
             family_name and school_unit"
        )
    })?;
    Ok(env)
}

fn sample() -> minijinja::Value {
    minijinja::context! {
        person_id => "4711", source => "sis", email => "anna@example.org", eppn => "anna@example.org",
        given_name => "Anna", family_name => "Berg", school_unit => "SKOLA1",
    }
}

/// Who holds back a new person, and why (per target).
#[derive(Debug, Default)]
pub(super) struct Waiting {
    /// Identity → (the target whose account holds their username, why).
    pub by_identity: BTreeMap<IdentityId, (String, String)>,
}

impl Engine {
    /// Each target's correlation input: the rules, every present person's values (a value with a
    /// civic number's shape matches nothing and is reported masked), and the operators'
    /// refusals.
    pub(super) fn correlation_inputs(
        &self,
        resolution: &Resolution,
        refused: &[ClaimRefusal],
    ) -> BTreeMap<String, CorrelationInput> {
        let mut out = BTreeMap::new();
        for (tid, t) in &self.targets {
            let mut input = CorrelationInput {
                username: t.policy.correlate.username,
                attribute: t.policy.correlate.attribute.clone(),
                ..Default::default()
            };
            let mine = || refused.iter().filter(|r| &r.target == tid);
            input.refused = mine().map(|r| (r.identity.clone(), t.caps.key(&r.key))).collect();
            input.refused_anchors = mine().filter_map(|r| Some((r.identity.clone(), r.anchor.clone()?))).collect();
            if let Some(env) = &t.correlate_value
                && let Ok(tmpl) = env.get_template("value")
            {
                let mut civic = 0usize;
                for ident in &resolution.present {
                    let mut values = Vec::new();
                    for r in &ident.records {
                        let rec = &r.record;
                        // A value the record lacks is left out (strict: the render fails, and the
                        // record gives nothing to match), never the text "none".
                        let mut ctx: BTreeMap<&str, &str> = BTreeMap::new();
                        ctx.insert("person_id", &rec.person_id);
                        ctx.insert("source", &r.source);
                        ctx.insert("given_name", &rec.given_name);
                        ctx.insert("family_name", &rec.family_name);
                        let school = rec.affiliations.first().and_then(|a| a.school_unit.as_deref());
                        for (k, v) in [("email", rec.email()), ("eppn", rec.eppn()), ("school_unit", school)] {
                            if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
                                ctx.insert(k, v);
                            }
                        }
                        // A record without the value (an empty email) gives nothing to match.
                        let ctx: BTreeMap<String, String> =
                            ctx.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                        let ctx = minijinja::Value::from(ctx);
                        let Ok(v) = tmpl.render(ctx) else { continue };
                        let v = v.trim().to_string();
                        if v.is_empty() {
                            continue;
                        }
                        if connector_api::civic::contains_civic(&v) {
                            civic += 1;
                            continue;
                        }
                        values.push(v);
                    }
                    if !values.is_empty() {
                        input.values.insert(ident.id.clone(), values);
                    }
                }
                if civic > 0 {
                    tracing::warn!(
                        target_id = %tid,
                        count = civic,
                        "correlation values that look like civic numbers match nothing (masked: never compared); \
                         use another value in [policy.correlate] value"
                    );
                }
            }
            out.insert(tid.clone(), input);
        }
        out
    }

    /// New persons whom the attribute rule matches to an account made before enid: that account's
    /// username becomes theirs, on every target (the first target in name order decides). A name
    /// another identity holds is not taken over (the person gets one of their own, and the claim
    /// renames the account).
    pub(super) fn preset_names(
        &self,
        requests: &[NameRequest],
        inputs: &BTreeMap<String, CorrelationInput>,
        observed: &BTreeMap<String, Vec<ObservedAccount>>,
        snapshot: &Snapshot,
        owned_name: &dyn Fn(&str) -> bool,
    ) -> Usernames {
        let mut out: Usernames = BTreeMap::new();
        let mut used: HashSet<String> = HashSet::new();
        for (tid, input) in inputs.iter().filter(|(_, i)| i.attribute.is_some()) {
            let (Some(t), Some(obs)) = (self.targets.get(tid), observed.get(tid)) else { continue };
            let only_attribute = CorrelationInput { username: false, ..input.clone() };
            let display: Vec<String> = requests.iter().map(|r| format!("{} {}", r.given_name, r.family_name)).collect();
            let candidates: Vec<Candidate<'_>> = requests
                .iter()
                .zip(&display)
                .filter(|(r, _)| !out.contains_key(&r.id))
                .map(|(r, d)| Candidate {
                    id: &r.id,
                    username: None,
                    display_name: d,
                    given_name: &r.given_name,
                    family_name: &r.family_name,
                    protected: r.pseudonymous,
                })
                .collect();
            let eligible = unowned(t, snapshot, tid, obs);
            let m = plan::correlate(&only_attribute, &candidates, obs, &eligible, &t.caps);
            for (id, (i, _)) in m.matched {
                let Some(u) = obs[i].username() else { continue };
                let folded = u.to_lowercase();
                // Pseudonymous persons keep pseudonyms; a name the target refuses is no name.
                let pseudonymous = requests.iter().any(|r| r.id == id && r.pseudonymous);
                if pseudonymous
                    || owned_name(folded.as_str())
                    || used.contains(folded.as_str())
                    || self.targets.values().any(|t| t.caps.username_problem(u).is_some())
                {
                    continue;
                }
                used.insert(folded.to_string());
                out.insert(id, u.into());
            }
        }
        out
    }

    /// New persons whose username an account in some target's scope holds that enid does not own
    /// and that the correlation rules do not give them: they are not named this run.
    pub(super) fn waiting_for_decision(
        &self,
        names: &Usernames,
        requests: &[NameRequest],
        inputs: &BTreeMap<String, CorrelationInput>,
        observed: &BTreeMap<String, Vec<ObservedAccount>>,
        snapshot: &Snapshot,
    ) -> Waiting {
        let mut waiting = Waiting::default();
        if names.is_empty() {
            return waiting;
        }
        for (tid, t) in &self.targets {
            let Some(obs) = observed.get(tid) else { continue };
            let fold = |s: &str| if t.caps.case_insensitive_names { s.to_lowercase() } else { s.to_string() };
            let owned: Vec<&OwnedAccount> = snapshot.accounts.iter().filter(|a| a.target == tid).collect();
            let not_owned = plan::not_owned(&owned, obs, &t.caps);
            let holders: std::collections::HashMap<String, usize> = not_owned
                .iter()
                .filter(|&&i| !t.policy.exclude.matches(&obs[i]))
                .filter_map(|&i| Some((fold(obs[i].username()?), i)))
                .collect();
            let mut held: Vec<(&IdentityId, &connector_api::value::Str, usize)> = Vec::new();
            for (id, name) in names {
                if let Some(&i) = holders.get(&fold(name)) {
                    held.push((id, name, i));
                }
            }
            if held.is_empty() {
                continue;
            }
            let display: BTreeMap<&str, String> =
                requests.iter().map(|r| (r.id.as_str(), format!("{} {}", r.given_name, r.family_name))).collect();
            // Those the rules claim the account for are not held back: their plan claims it. Every
            // new person is a candidate, so that two namesakes whose names an account shows both
            // wait (which of them it belongs to is a question).
            let by_id: std::collections::HashMap<&str, &NameRequest> =
                requests.iter().map(|r| (r.id.as_str(), r)).collect();
            let candidates: Vec<Candidate<'_>> = names
                .iter()
                .filter_map(|(id, name)| {
                    let r = by_id.get(id.as_str())?;
                    Some(Candidate {
                        id: id.as_str(),
                        username: Some(name.as_str()),
                        display_name: display.get(id.as_str()).map(String::as_str).unwrap_or(""),
                        given_name: &r.given_name,
                        family_name: &r.family_name,
                        protected: r.pseudonymous,
                    })
                })
                .collect();
            let eligible = unowned(t, snapshot, tid, obs);
            let m = inputs.get(tid).map(|input| plan::correlate(input, &candidates, obs, &eligible, &t.caps));
            for (id, _, i) in held {
                if m.as_ref().and_then(|m| m.matched.get(id)).is_some_and(|(j, _)| *j == i) {
                    continue;
                }
                let why = m.as_ref().and_then(|m| m.ambiguous.get(id)).cloned();
                let why = why.unwrap_or_else(|| plan::namesake_reason(tid, &obs[i], &t.caps.owner_attribute));
                waiting.by_identity.entry(id.clone()).or_insert((tid.clone(), why));
            }
            for (id, why) in m.iter().flat_map(|m| m.ambiguous.iter()) {
                if names.contains_key(id) {
                    waiting.by_identity.entry(id.clone()).or_insert((tid.clone(), why.clone()));
                }
            }
        }
        waiting
    }
}

/// Indexes of the accounts in a target's scope that enid does not own and that carry no enid id.
fn unowned(t: &TargetHandle, snapshot: &Snapshot, tid: &str, obs: &[ObservedAccount]) -> Vec<usize> {
    let owned: Vec<&OwnedAccount> = snapshot.accounts.iter().filter(|a| a.target == tid).collect();
    plan::not_owned(&owned, obs, &t.caps)
        .into_iter()
        .filter(|&i| plan::owner_values(&obs[i], &t.caps.owner_attribute).next().is_none())
        .filter(|&i| !t.policy.exclude.matches(&obs[i]))
        .collect()
}
