//! Correlation: which accounts that enid does not own (made by hand or by older scripts, with no
//! owner marker) are a person's, by the target's `[policy.correlate]` rules. Pure.
//!
//! The attribute rule decides: an account whose correlation attribute holds one of the values a
//! person's records give is that person's. The username rule is used only for accounts whose
//! attribute is empty (or for every account, when there is no attribute rule): an account that
//! holds the person's username and shows the person's names is theirs. A match counts only when
//! it is one to one: an account that matches several persons, or a person that matches several
//! accounts, is claimed by nobody and reported. Pairs an operator decided are not the person's
//! (`refused`) never match.

use super::*;

/// A target's correlation rules with the values they compare, for one run.
#[derive(Debug, Clone, Default)]
pub struct CorrelationInput {
    /// Claim an account that holds the person's username and shows their names.
    pub username: bool,
    /// The account attribute the attribute rule reads.
    pub attribute: Option<String>,
    /// Identity → the values its records give for the attribute (already rendered, trimmed and
    /// without civic-number-shaped values).
    pub values: HashMap<IdentityId, Vec<String>>,
    /// (identity, account key as the target compares it) pairs an operator decided are not the
    /// person's.
    pub refused: std::collections::HashSet<(IdentityId, String)>,
    /// The same decisions by the account's anchor, which survives a rename or a move by hand.
    pub refused_anchors: std::collections::HashSet<(IdentityId, String)>,
}

impl CorrelationInput {
    /// Whether any rule is set.
    pub fn is_empty(&self) -> bool {
        !self.username && self.attribute.is_none()
    }
}

/// How an account was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The correlation attribute holds a value of the person's records.
    Attribute,
    /// The account holds the person's username and shows their names.
    Username,
}

/// What correlation found on one target.
#[derive(Debug, Clone, Default)]
pub struct Matches {
    /// Identity → (index of the observed account, the rule).
    pub matched: HashMap<IdentityId, (usize, Rule)>,
    /// Identity → why nothing is claimed for them (several accounts match, or the account
    /// matches several persons, or it carries an owner value of its own).
    pub ambiguous: HashMap<IdentityId, String>,
}

/// A person as correlation sees them.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub id: &'a str,
    /// The username, when the person has one (or the one naming would give).
    pub username: Option<&'a str>,
    pub display_name: &'a str,
    pub given_name: &'a str,
    pub family_name: &'a str,
    pub protected: bool,
}

/// Whether an account is one correlation may claim: not owned, carrying nothing in the owner
/// attribute (an enid id is someone's; any other value, an HR number, would be overwritten).
pub fn claimable(o: &ObservedAccount, owner_attr: &str) -> bool {
    o.attrs.get(owner_attr).is_none_or(|v| v.is_empty()) && !o.excluded && o.foreign().is_none()
}

/// Folds a correlation value as it compares: without case and surrounding spaces.
pub fn fold_value(v: &str) -> String {
    v.trim().to_lowercase()
}

/// The values an account holds in `attr`, folded (the texts of a complex value's parts too).
fn account_values(o: &ObservedAccount, attr: &str) -> Vec<String> {
    let Some((_, v)) = o.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(attr)) else { return Vec::new() };
    let mut out: Vec<String> = match &*v {
        Value::Text(t) => t.iter().map(|s| fold_value(s)).collect(),
        Value::Complex(items) => {
            items.iter().flat_map(|i| i.values()).flat_map(|f| f.texts().iter().map(|s| fold_value(s))).collect()
        }
        Value::Bool(_) => Vec::new(),
    };
    out.retain(|s| !s.is_empty());
    out
}

/// Whether an account's correlation attribute holds one of the values the identity's records
/// give (the attribute rule's proof, whoever owns the account now).
pub fn attribute_matches(input: &CorrelationInput, id: &str, o: &ObservedAccount) -> bool {
    let (Some(attr), Some(values)) = (&input.attribute, input.values.get(id)) else { return false };
    let held = account_values(o, attr);
    values.iter().any(|v| held.contains(&fold_value(v)))
}

/// Matches persons to the claimable accounts among `observed` (`eligible`: their indexes).
pub fn correlate(
    input: &CorrelationInput,
    candidates: &[Candidate<'_>],
    observed: &[ObservedAccount],
    eligible: &[usize],
    caps: &Capabilities,
) -> Matches {
    let mut out = Matches::default();
    if input.is_empty() {
        return out;
    }
    let refused = |id: &str, i: usize| {
        input.refused.contains(&(id.into(), caps.key(observed[i].key())))
            || observed[i].anchor().is_some_and(|a| input.refused_anchors.contains(&(id.into(), a.to_string())))
    };
    // Attribute rule: value → accounts holding it.
    let mut by_value: HashMap<String, Vec<usize>> = HashMap::default();
    let mut has_value = vec![false; observed.len()];
    if let Some(attr) = &input.attribute {
        for &i in eligible {
            let values = account_values(&observed[i], attr);
            has_value[i] = !values.is_empty();
            for v in values {
                by_value.entry(v).or_default().push(i);
            }
        }
    }
    // Account → the persons it matched, and person → accounts.
    let mut per_account: HashMap<usize, Vec<(&str, Rule)>> = HashMap::default();
    let mut per_person: HashMap<&str, Vec<usize>> = HashMap::default();
    if input.attribute.is_some() {
        for c in candidates {
            let Some(values) = input.values.get(c.id) else { continue };
            let mut hits: Vec<usize> = values
                .iter()
                .flat_map(|v| by_value.get(&fold_value(v)).into_iter().flatten().copied())
                .filter(|&i| !refused(c.id, i))
                .collect();
            hits.sort_unstable();
            hits.dedup();
            for &i in &hits {
                per_account.entry(i).or_default().push((c.id, Rule::Attribute));
            }
            if !hits.is_empty() {
                per_person.insert(c.id, hits);
            }
        }
    }
    if input.username {
        // Whose names an account shows, over every candidate: two namesakes make any username
        // match on it a guess (the one named first would win), so it is nobody's.
        let fold = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        let mut by_display: HashMap<String, Vec<&str>> = HashMap::default();
        let mut by_pair: HashMap<(String, String), Vec<&str>> = HashMap::default();
        for c in candidates.iter().filter(|c| !c.protected) {
            by_display.entry(fold(c.display_name)).or_default().push(c.id);
            by_pair.entry((fold(c.given_name), fold(c.family_name))).or_default().push(c.id);
        }
        let fitting = |o: &ObservedAccount| -> std::collections::BTreeSet<&str> {
            let seen = seen_names(o);
            let mut ids: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
            for v in &seen {
                ids.extend(by_display.get(v).into_iter().flatten().copied());
                for w in &seen {
                    ids.extend(by_pair.get(&(v.clone(), w.clone())).into_iter().flatten().copied());
                }
            }
            ids
        };
        let by_username: HashMap<String, usize> = eligible
            .iter()
            .filter(|&&i| !has_value[i])
            .filter_map(|&i| Some((fold_name(caps, observed[i].username()?), i)))
            .collect();
        for c in candidates {
            if per_person.contains_key(c.id) {
                continue;
            }
            let Some(u) = c.username else { continue };
            let Some(&i) = by_username.get(&fold_name(caps, u)) else { continue };
            if refused(c.id, i) || !names_fit(c, &observed[i]) {
                continue;
            }
            let fit = fitting(&observed[i]);
            if fit.len() > 1 {
                let n = fit.len();
                for id in fit.into_iter().filter(|id| !per_person.contains_key(id)) {
                    out.ambiguous.insert(
                        id.into(),
                        format!(
                            "{} holds a username and shows the names of {n} persons without an account; it is \
                             claimed by nobody: claim it for the right one with `enid adopt --entry`, or record it \
                             is not theirs with `--not-theirs`",
                            observed[i].key()
                        ),
                    );
                }
                continue;
            }
            per_account.entry(i).or_default().push((c.id, Rule::Username));
            per_person.insert(c.id, vec![i]);
        }
    }
    let owner_attr = caps.owner_attribute.as_str();
    for (id, accounts) in per_person {
        match accounts.as_slice() {
            [i] => match per_account.get(i).map(Vec::as_slice) {
                Some([(_, rule)]) if claimable(&observed[*i], owner_attr) => {
                    out.matched.insert(id.into(), (*i, *rule));
                }
                Some([_]) if let Some(why) = &observed[*i].foreign() => {
                    out.ambiguous.insert(
                        id.into(),
                        format!(
                            "{} matches this person by the correlation rules, but it {why}: enid never claims it",
                            observed[*i].key()
                        ),
                    );
                }
                Some([_]) => {
                    out.ambiguous.insert(
                        id.into(),
                        format!(
                            "{} matches this person by the correlation rules, but its {owner_attr} holds a value of its own, which a claim would overwrite; empty it there if the account is theirs",
                            observed[*i].key()
                        ),
                    );
                }
                Some(many) => {
                    out.ambiguous.insert(
                        id.into(),
                        format!(
                            "{} matches {} persons by the correlation rules; it is claimed by nobody until the \
                             others' values or the rules are corrected, or it is claimed with `enid adopt --entry`",
                            observed[*i].key(),
                            many.len()
                        ),
                    );
                }
                None => {}
            },
            many => {
                let keys: Vec<&str> = many.iter().take(3).map(|&i| observed[i].key()).collect();
                out.ambiguous.insert(
                    id.into(),
                    format!(
                        "{} accounts made before enid match this person by the correlation rules ({}{}); none is \
                         claimed: correct the attribute on the wrong ones, or claim one with `enid adopt --entry`",
                        many.len(),
                        keys.join("; "),
                        if many.len() > 3 { "; ..." } else { "" }
                    ),
                );
            }
        }
    }
    out
}

fn fold_name(caps: &Capabilities, s: &str) -> String {
    if caps.case_insensitive_names { s.to_lowercase() } else { s.to_string() }
}

/// Every text value an account holds (parts of complex values too), folded without case and with
/// runs of spaces as one: where its names may be.
fn seen_names(o: &ObservedAccount) -> std::collections::HashSet<String> {
    let fold = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let mut seen = std::collections::HashSet::new();
    for v in o.attrs.values() {
        match &*v {
            Value::Text(t) => seen.extend(t.iter().map(|s| fold(s))),
            Value::Complex(items) => {
                for f in items.iter().flat_map(|i| i.values()) {
                    seen.extend(f.texts().iter().map(|s| fold(s)));
                }
            }
            Value::Bool(_) => {}
        }
    }
    seen
}

/// Whether an account made before enid shows this person's names: the display name, or both
/// the given and the family name, among its values (without case or extra spaces). An account
/// whose names cannot be read does not fit: a claim needs proof. A protected person's names
/// are not compared (their accounts carry none).
pub fn names_fit(c: &Candidate<'_>, o: &ObservedAccount) -> bool {
    let fold = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let seen = seen_names(o);
    let (display, given, family) = (fold(c.display_name), fold(c.given_name), fold(c.family_name));
    let username = c.username.map(fold).unwrap_or_default();
    if c.protected || display == username {
        return false;
    }
    (!display.is_empty() && seen.contains(&display))
        || (!given.is_empty() && !family.is_empty() && seen.contains(&given) && seen.contains(&family))
}
