//! What the state database keeps of each record: the rows an apply writes for records that are
//! new or changed since the last run. Pure.

use crate::core::identity::{self, CivicChange, Resolution};
use crate::core::model::Snapshot;
use crate::store::RecordRow;

/// A short fingerprint of a record's fields. It only decides whether the stored copy is rewritten,
/// so a fast 64-bit hash is enough; a different hash after an upgrade rewrites each record once.
pub(super) fn content_hash(fields: &[&str]) -> String {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    for f in fields {
        h.write(f.as_bytes());
        h.write_u8(0x1f);
    }
    format!("{:016x}", h.finish())
}

/// Records whose stored copy is missing or different. Pure.
pub(super) fn changed_records(resolution: &Resolution, snapshot: &Snapshot) -> Vec<RecordRow> {
    let mut out = Vec::new();
    for ident in &resolution.present {
        for s in &ident.records {
            let r = &s.record;
            let groups = r.groups.join("|");
            let civic = r.civic_no.as_ref().map(|c| c.expose().to_string());
            let fields = [
                ident.id.as_str(),
                civic.as_deref().unwrap_or(""),
                &r.given_name,
                &r.family_name,
                r.role.as_str(),
                r.school_unit.as_deref().unwrap_or(""),
                &groups,
                &r.start_date.map(|d| d.to_string()).unwrap_or_default(),
                &r.end_date.map(|d| d.to_string()).unwrap_or_default(),
                r.email.as_deref().unwrap_or(""),
                r.eppn.as_deref().unwrap_or(""),
                if r.protection.is_some() { "protected" } else { "" },
            ];
            let hash = content_hash(&fields);
            if snapshot.record(&s.source, &r.person_id).is_some_and(|stored| stored.content_hash == hash) {
                continue;
            }
            out.push(RecordRow {
                source: s.source.clone(),
                person_id: r.person_id.clone(),
                identity_id: ident.id.clone(),
                civic_no: civic,
                given_name: r.given_name.clone(),
                family_name: r.family_name.clone(),
                role: r.role.as_str().to_string(),
                school_unit: r.school_unit.clone(),
                groups,
                start_date: r.start_date.map(|d| d.to_string()),
                end_date: r.end_date.map(|d| d.to_string()),
                email: r.email.clone(),
                eppn: r.eppn.clone(),
                protected: r.protection.is_some(),
                content_hash: hash,
            });
        }
    }
    out
}

/// A civic-number change as the plan shows it: the record and the kinds, never the numbers.
pub(super) fn describe_change(c: &CivicChange) -> String {
    let kind = |v: &Option<String>| v.as_deref().map(crate::store::describe_stored).unwrap_or_else(|| "none".into());
    format!("{}: {} → {}", identity::record_label(&c.source, &c.person_id), kind(&c.old), kind(&c.new))
}
