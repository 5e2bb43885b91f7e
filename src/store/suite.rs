//! The one test suite every state store backend passes: the behaviours the engine relies on,
//! written against [`StateStore`] only.
//!
//! A backend runs it with [`store_suite!`], given an expression that opens a fresh, empty store
//! (and a guard that cleans it up): `store_suite!(open())` makes one `#[tokio::test]` per
//! behaviour below. A PostgreSQL store runs the same list against a database of its own.

use super::{
    ClaimRefusal, GroupRow, LogFilter, OpRecord, OpResult, Ownership, PasswordFilter, RecordRow, SealedPassword,
    StateStore, TokenRow,
};
use crate::core::identity::{CivicChange, Decision};
use crate::core::model::{AccountStatus, IdentityId, OwnedAccount};
use crate::core::plan::{Adoption, RenameInfo};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// Makes one `#[tokio::test]` per behaviour of the suite, each on a fresh store from `$open`
/// (an expression whose value is a future of `(guard, store)`).
macro_rules! store_suite {
    ($open:expr) => {
        $crate::store::suite::store_suite!(@tests $open;
            a_new_store_has_its_schema_and_is_empty,
            identities_and_records_round_trip_with_full_civic_numbers,
            a_failed_write_leaves_nothing,
            usernames_are_never_reused_before_their_quarantine_ends,
            renames_release_the_old_name_and_use_up_the_approval,
            reserved_usernames_are_taken_until_an_identity_claims_them,
            ownership_rows_follow_the_upsert_rules,
            anchors_read_after_creates_fill_only_the_rows_they_belong_to,
            groups_are_recorded_and_forgotten,
            first_passwords_are_kept_handed_out_once_and_expire,
            password_claims_hold_give_back_lapse_and_outlive_expiry,
            runs_begin_finish_and_are_marked_interrupted,
            the_log_is_filtered_by_run_identity_and_school,
            plans_are_saved_once_and_loaded,
            decisions_replace_earlier_ones,
            civic_history_is_shown_masked,
            source_counts_and_columns_are_overwritten,
            meta_values_are_set_and_replaced,
            unprotect_forgets_protection_and_the_content_hash,
            batches_larger_than_one_statement_round_trip,
            claim_refusals_are_kept_once_and_move_with_a_renamed_target,
            outside_claims_are_kept_until_forgotten,
            primaries_source_reads_and_gone_records_round_trip,
            pruning_removes_old_runs_their_log_and_plans_but_not_what_the_guards_read,
            tokens_are_added_once_listed_and_revoked,
            sessions_are_found_until_they_expire_or_end,
            a_name_search_finds_persons_at_the_schools_asked_and_never_a_protected_one,
            metrics_count_runs_and_operations,
            an_incremental_read_finds_stored_records_by_person_tie_group_and_school_unit,
            a_key_written_twice_in_one_write_keeps_the_last,
            a_negative_limit_lists_every_run,
            hostile_text_round_trips_and_is_found_as_itself,
            a_record_whose_data_holds_a_nul_escape_breaks_no_lookup,
            a_nul_in_what_is_looked_up_finds_nothing,
        );
    };
    (@tests $open:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_guard, store) = $open.await;
                $crate::store::suite::$name(&store).await;
            }
        )+
    };
}
pub(crate) use store_suite;

/// The suite's clock: a fixed day, so quarantine and grace arithmetic is exact.
fn day(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, 1, 12, 0, 0).unwrap() + Duration::days(n)
}

const PNR: &str = "201509162388";

pub(crate) fn record(source: &str, person_id: &str, identity: &str, civic_no: Option<&str>) -> RecordRow {
    RecordRow {
        source: source.into(),
        person_id: person_id.into(),
        identity_id: identity.into(),
        civic_no: civic_no.map(String::from),
        given_name: "Kim".into(),
        family_name: "Lind".into(),
        role: "student".into(),
        school_unit: Some("S1".into()),
        groups: "7A|Drama".into(),
        start_date: Some("2026-08-01".into()),
        end_date: None,
        email: Some("kim@example.org".into()),
        eppn: None,
        protected: false,
        content_hash: hash_of(person_id),
        data: format!(
            r#"{{"person_id":"{person_id}","given_name":"Kim","family_name":"Lind","affiliations":[{{"school_unit":"S1","kind":"enrolment","role":"student"}}],"location":"x"}}"#
        ),
        refs: Vec::new(),
    }
}

fn ident(id: &str, username: &str) -> (IdentityId, String) {
    (id.into(), username.into())
}

fn op(target: &str, identity: &str, school: &str, result: OpResult) -> OpRecord {
    OpRecord {
        target: target.into(),
        identity_id: identity.into(),
        username: format!("user-{identity}"),
        school: school.into(),
        action: "update".into(),
        detail: "mail".into(),
        group: false,
        result,
    }
}

fn set(key: &str, anchor: Option<&str>, status: AccountStatus) -> OpResult {
    OpResult::Ok(Ownership::Set { key: key.into(), anchor: anchor.map(String::from), status })
}

async fn account<S: StateStore>(s: &S, identity: &str) -> Option<OwnedAccount> {
    s.accounts(Some(identity)).await.unwrap().into_iter().next()
}

/// A content hash of the form the apply writes (sixteen lowercase hex digits), made from `tag`.
fn hash_of(tag: &str) -> String {
    format!("{:016x}", tag.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))))
}

/// The number a stored hash of [`hash_of`] reads back as.
fn hash_read(tag: &str) -> Option<std::num::NonZeroU64> {
    crate::core::model::StoredRecord::content_hash_of(&hash_of(tag))
}

fn sorted<T: Ord>(mut names: Vec<T>) -> Vec<T> {
    names.sort();
    names
}

pub(crate) async fn a_new_store_has_its_schema_and_is_empty<S: StateStore>(s: &S) {
    let snap = s.snapshot().await.unwrap();
    assert!(snap.identities.is_empty() && snap.all_records().next().is_none() && snap.accounts.is_empty());
    assert!(!s.has_applied().await.unwrap());
    assert!(!s.has_adopted().await.unwrap());
    assert!(s.runs(10).await.unwrap().is_empty());
    assert!(s.log(&LogFilter::default()).await.unwrap().is_empty());
    assert!(s.groups().await.unwrap().is_empty());
    assert!(s.accounts(None).await.unwrap().is_empty());
    assert!(s.decisions().await.unwrap().is_empty());
    assert!(s.rename_approvals().await.unwrap().is_empty());
    assert!(s.source_counts().await.unwrap().is_empty());
    assert!(s.source_columns().await.unwrap().is_empty());
    assert!(s.allocated_usernames(day(0), None).await.unwrap().is_empty());
    assert!(s.reserved_usernames().await.unwrap().is_empty());
    assert_eq!(s.meta("id_key_fingerprint").await.unwrap(), None);
    assert_eq!(s.load_plan("p1").await.unwrap(), None);
    assert!(s.find_identity("anyone").await.unwrap().is_empty());
    assert_eq!(s.mark_interrupted(day(0)).await.unwrap(), 0);
}

pub(crate) async fn identities_and_records_round_trip_with_full_civic_numbers<S: StateStore>(s: &S) {
    let mut protected = record("sis", "20150916-2388", "id-b", Some(PNR));
    protected.protected = true;
    protected.eppn = Some("b@skolan".into());
    s.commit_identities(
        &[ident("id-a", "kim.lind"), ident("id-b", "bo.lind")],
        &[record("sis", "P1", "id-a", None), protected],
        &[],
        day(0),
    )
    .await
    .unwrap();

    let snap = s.snapshot().await.unwrap();
    assert_eq!(snap.identities.get("id-a"), Some(&Some("kim.lind".into())));
    let a = snap.record("sis", "P1").unwrap();
    assert_eq!((a.identity_id.as_str(), a.civic_no.as_deref(), a.protected), ("id-a", None, false));
    assert_eq!((a.content_hash, a.school_unit.as_deref(), a.staff), (hash_read("P1"), Some("S1"), false));
    assert!(a.content_hash.is_some(), "the hash the apply wrote is read back as its number");
    assert_eq!((a.email(), a.eppn()), (Some("kim@example.org"), None));
    let b = snap.record("sis", "20150916-2388").unwrap();
    assert_eq!((b.civic_no.as_deref(), b.protected, b.eppn()), (Some(PNR), true, Some("b@skolan")));

    // A changed record is rewritten in place; first_seen stays.
    let mut moved = record("sis", "P1", "id-a", None);
    moved.school_unit = Some("S2".into());
    moved.content_hash = hash_of("h2");
    s.commit_identities(&[], &[moved], &[], day(3)).await.unwrap();
    let a = s.snapshot().await.unwrap().record("sis", "P1").cloned().unwrap();
    assert_eq!((a.school_unit.as_deref(), a.content_hash), (Some("S2"), hash_read("h2")));
    // The snapshot gives the names as a fingerprint, so a key handed to someone else is seen.
    assert_eq!(a.names, Some(crate::core::model::NameFingerprint::of("Kim", "Lind")));
    let shown = s.records_of("id-a").await.unwrap();
    assert_eq!(shown.len(), 1);
    assert!(shown[0].first_seen < shown[0].updated_at, "{shown:?}");
    assert_eq!(shown[0].groups, ["7A", "Drama"]);

    // What is shown is masked: the civic number and a key shaped like one.
    let shown = s.records_of("id-b").await.unwrap();
    assert_eq!(shown[0].civic_no.as_deref(), Some("20150916-****"));
    assert!(!shown[0].person_id.contains("2388"), "{:?}", shown[0].person_id);
    assert!(shown[0].protected);

    for needle in ["id-a", "kim.lind", "P1"] {
        assert_eq!(s.find_identity(needle).await.unwrap(), ["id-a"], "{needle}");
    }

    // Each id is one string in a snapshot, whole or partial: the identity's, its records' and
    // its accounts' are the same (a million identities would otherwise hold three).
    s.record_pending(&[("ldap".to_string(), IdentityId::from("id-a"))], day(4)).await.unwrap();
    let keys = [("sis".to_string(), "P1".to_string())];
    for snap in [s.snapshot().await.unwrap(), s.snapshot_of(&keys, &[], &[], &[]).await.unwrap()] {
        let (id, _) = snap.identities.get_key_value("id-a").unwrap();
        let record = snap.record("sis", "P1").unwrap();
        let account = snap.accounts.iter().find(|a| a.identity_id == "id-a").unwrap();
        assert!(std::ptr::eq(id.as_str(), record.identity_id.as_str()), "the record's id is the identity's");
        assert!(std::ptr::eq(id.as_str(), account.identity_id.as_str()), "the account's id is the identity's");
    }
}

pub(crate) async fn a_failed_write_leaves_nothing<S: StateStore>(s: &S) {
    // The same identity twice: the second insert fails, and the first must not stay.
    let failed = s
        .commit_identities(
            &[ident("id-a", "kim.lind"), ident("id-a", "kim.berg")],
            &[record("sis", "P1", "id-a", None)],
            &[],
            day(0),
        )
        .await;
    assert!(failed.is_err());
    let snap = s.snapshot().await.unwrap();
    assert!(snap.identities.is_empty() && snap.all_records().next().is_none());
    assert!(s.allocated_usernames(day(0), None).await.unwrap().is_empty());

    // Records taken one by one: a record that fails in the second statement's worth (it names
    // no identity) takes back the first statement's records and the identities too.
    let mut records: Vec<RecordRow> = (0..1_500).map(|i| record("sis", &format!("P{i}"), "id-a", None)).collect();
    records[1_200].identity_id = "id-nobody".into();
    let failed = s.commit_identities_from(&[ident("id-a", "kim.lind")], &mut records.into_iter(), &[], day(0)).await;
    assert!(failed.is_err());
    let snap = s.snapshot().await.unwrap();
    assert!(snap.identities.is_empty() && snap.all_records().next().is_none());
    assert!(s.allocated_usernames(day(0), None).await.unwrap().is_empty());
}

pub(crate) async fn usernames_are_never_reused_before_their_quarantine_ends<S: StateStore>(s: &S) {
    s.commit_identities(&[ident("id-a", "Kim.Lind")], &[], &[], day(0)).await.unwrap();
    s.commit_renames(
        &[RenameInfo { identity: "id-a".into(), old: "Kim.Lind".into(), new: "kim.berg".into() }],
        day(10),
    )
    .await
    .unwrap();
    // Without a quarantine period a released name is never given again; names come lowercased.
    let all = sorted(s.allocated_usernames(day(1000), None).await.unwrap());
    assert_eq!(all, ["kim.berg", "kim.lind"]);
    // With one, it is free only once the period has passed.
    assert!(s.allocated_usernames(day(39), Some(30)).await.unwrap().contains(&"kim.lind".to_string()));
    assert_eq!(s.allocated_usernames(day(40), Some(30)).await.unwrap(), ["kim.berg"]);

    // A name whose quarantine ended changes hands, and is taken again.
    s.commit_identities(&[ident("id-b", "Kim.Lind")], &[], &[], day(41)).await.unwrap();
    let all = sorted(s.allocated_usernames(day(41), Some(30)).await.unwrap());
    assert_eq!(all, ["kim.berg", "kim.lind"]);
    assert_eq!(s.find_identity("Kim.Lind").await.unwrap(), ["id-b"]);
}

pub(crate) async fn renames_release_the_old_name_and_use_up_the_approval<S: StateStore>(s: &S) {
    s.commit_identities(&[ident("id-a", "kim.lind"), ident("id-b", "bo.lind")], &[], &[], day(0)).await.unwrap();
    s.approve_rename("id-a", "kim.berg", "local:root", day(1)).await.unwrap();
    s.approve_rename("id-b", "bo.berg", "lisa", day(1)).await.unwrap();
    s.approve_rename("id-b", "bo.holm", "lisa", day(2)).await.unwrap();
    let approvals = s.rename_approvals().await.unwrap();
    assert_eq!(
        approvals,
        BTreeMap::from([
            ("id-a".into(), ("kim.berg".into(), "local:root".into())),
            ("id-b".into(), ("bo.holm".into(), "lisa".into()))
        ])
    );

    s.commit_renames(&[], day(3)).await.unwrap();
    s.commit_renames(&[RenameInfo { identity: "id-a".into(), old: "kim.lind".into(), new: "kim.berg".into() }], day(3))
        .await
        .unwrap();
    let snap = s.snapshot().await.unwrap();
    assert_eq!(snap.identities.get("id-a"), Some(&Some("kim.berg".into())));
    assert_eq!(s.rename_approvals().await.unwrap().keys().collect::<Vec<_>>(), ["id-b"]);
    // The old name still leads to its identity.
    assert_eq!(s.find_identity("kim.lind").await.unwrap(), ["id-a"]);
}

pub(crate) async fn reserved_usernames_are_taken_until_an_identity_claims_them<S: StateStore>(s: &S) {
    s.commit_identities(&[ident("id-a", "kim.lind")], &[], &[], day(0)).await.unwrap();
    let names = ["Taken.One".to_string(), "kim.lind".to_string()];
    s.reserve_usernames(&names, day(1)).await.unwrap();
    s.reserve_usernames(&names, day(2)).await.unwrap();
    // A name an identity holds stays that identity's.
    assert_eq!(s.reserved_usernames().await.unwrap(), ["taken.one"]);
    assert_eq!(s.find_identity("kim.lind").await.unwrap(), ["id-a"]);
    assert!(s.find_identity("Taken.One").await.unwrap().is_empty());
    let all = sorted(s.allocated_usernames(day(900), Some(1)).await.unwrap());
    assert_eq!(all, ["kim.lind", "taken.one"]);

    s.commit_identities(&[ident("id-b", "Taken.One")], &[], &[], day(3)).await.unwrap();
    assert!(s.reserved_usernames().await.unwrap().is_empty());
    assert_eq!(s.find_identity("Taken.One").await.unwrap(), ["id-b"]);
}

pub(crate) async fn first_passwords_are_kept_handed_out_once_and_expire<S: StateStore>(s: &S) {
    s.commit_identities(&[ident("id-a", "a"), ident("id-b", "b"), ident("id-c", "c")], &[], &[], day(0)).await.unwrap();
    let sealed = |identity: &str, school: &str, value: u8| SealedPassword {
        target: "ad".into(),
        identity_id: identity.into(),
        username: String::new(),
        school: school.into(),
        sealed: vec![value; 48],
        created_at: String::new(),
    };
    let pending: Vec<(String, IdentityId)> =
        ["id-a", "id-b", "id-c"].iter().map(|i| ("ad".to_string(), (*i).into())).collect();
    s.record_pending(&pending, day(0)).await.unwrap();
    s.keep_passwords(&[sealed("id-a", "S1,S2", 1), sealed("id-b", "S2", 2), sealed("id-c", "S1", 3)], day(0))
        .await
        .unwrap();
    let all = PasswordFilter::default();
    assert!(s.passwords(&all).await.unwrap().is_empty(), "pending accounts have nothing to hand out");
    let run = s.begin_run("apply", None, day(0)).await.unwrap();
    let created = |i: &str, key: &str| op("ad", i, "S1", set(key, Some("g"), AccountStatus::Active));
    s.record_ops(run, &[created("id-a", "CN=a"), created("id-b", "CN=b"), created("id-c", "CN=c")], day(0))
        .await
        .unwrap();
    // A newer password replaces the older one.
    s.keep_passwords(&[sealed("id-c", "S1", 4)], day(1)).await.unwrap();
    let s2 = s.passwords(&PasswordFilter { school: Some("S2".into()), ..Default::default() }).await.unwrap();
    assert_eq!(s2.iter().map(|r| r.identity_id.as_str()).collect::<Vec<_>>(), ["id-a", "id-b"]);
    assert_eq!(s2[0].username, "a");
    assert_eq!(s2[0].sealed, vec![1; 48]);
    assert!(s.passwords(&PasswordFilter { school: Some("S".into()), ..Default::default() }).await.unwrap().is_empty());
    assert!(
        s.passwords(&PasswordFilter { target: Some("scim".into()), ..Default::default() }).await.unwrap().is_empty()
    );
    // Claimed only while it is the one read, by one hand-out, and forgotten by its confirmation.
    let mut stale = s2[1].clone();
    stale.sealed = vec![9; 48];
    let lapsed = day(1) - Duration::minutes(5);
    let claimed = s.claim_passwords(&[s2[0].clone(), stale], "c1", day(1), lapsed).await.unwrap();
    assert_eq!(claimed, [s2[0].clone()]);
    assert!(s.claim_passwords(&[s2[0].clone()], "c2", day(1), lapsed).await.unwrap().is_empty(), "claimed once only");
    let gone = s.confirm_claim("c1").await.unwrap();
    assert_eq!(gone.iter().map(|r| (r.identity_id.as_str(), r.username.as_str())).collect::<Vec<_>>(), [("id-a", "a")]);
    let left: Vec<IdentityId> = s.passwords(&all).await.unwrap().into_iter().map(|r| r.identity_id).collect();
    assert_eq!(left, ["id-b", "id-c"]);
    assert_eq!(s.expire_passwords(day(1), lapsed).await.unwrap(), 1, "id-b's was kept since day 0");
    let left = s.passwords(&all).await.unwrap();
    assert_eq!((left.len(), left[0].sealed.clone()), (1, vec![4; 48]));
}

/// The hand-out in steps (claim, show, confirm or give back): a claimed password is skipped by
/// every other hand-out until its claim is given back or lapses, forgotten only by the claim that
/// holds it, and never forgotten by expiry while a claim lives.
pub(crate) async fn password_claims_hold_give_back_lapse_and_outlive_expiry<S: StateStore>(s: &S) {
    let ids = ["id-a", "id-b", "id-c", "id-p"];
    s.commit_identities(&ids.map(|i| ident(i, &i[3..])), &[], &[], day(0)).await.unwrap();
    let sealed = |identity: &str, value: u8| SealedPassword {
        target: "ad".into(),
        identity_id: identity.into(),
        username: String::new(),
        school: "S1".into(),
        sealed: vec![value; 48],
        created_at: String::new(),
    };
    let pending: Vec<(String, IdentityId)> = ids.iter().map(|i| ("ad".to_string(), (*i).into())).collect();
    s.record_pending(&pending, day(0)).await.unwrap();
    s.keep_passwords(&[sealed("id-a", 1), sealed("id-b", 2), sealed("id-c", 3), sealed("id-p", 4)], day(0))
        .await
        .unwrap();
    let run = s.begin_run("apply", None, day(0)).await.unwrap();
    let created = |i: &str| op("ad", i, "S1", set(&format!("CN={i}"), Some("g"), AccountStatus::Active));
    s.record_ops(run, &[created("id-a"), created("id-b"), created("id-c")], day(0)).await.unwrap();
    // The key still seals what a pending create keeps: it counts, though it cannot be handed out.
    assert_eq!(s.kept_passwords().await.unwrap(), 4);
    let free = |at: DateTime<Utc>| PasswordFilter { claims_lapsed_before: Some(at), ..Default::default() };
    let names = |rows: Vec<SealedPassword>| rows.into_iter().map(|r| r.identity_id).collect::<Vec<_>>();

    let t = day(1);
    let lapse = Duration::minutes(5);
    let rows = s.passwords(&free(t - lapse)).await.unwrap();
    assert_eq!(names(rows.clone()), ["id-a", "id-b", "id-c"]);
    assert_eq!(s.claim_passwords(&rows, "c1", t, t - lapse).await.unwrap().len(), 3);
    // Held: another hand-out neither sees nor claims them; they are still kept.
    let later = t + Duration::minutes(1);
    assert!(s.passwords(&free(later - lapse)).await.unwrap().is_empty());
    assert!(s.claim_passwords(&rows, "c2", later, later - lapse).await.unwrap().is_empty(), "one claim at a time");
    assert_eq!(s.passwords(&PasswordFilter::default()).await.unwrap().len(), 3);
    assert_eq!(s.kept_passwords().await.unwrap(), 4);
    // Read by their claim, to be shown again (a retried request).
    let of_claim = |c: &str| PasswordFilter { claim: Some(c.into()), ..Default::default() };
    assert_eq!(names(s.passwords(&of_claim("c1")).await.unwrap()), ["id-a", "id-b", "id-c"]);
    assert!(s.passwords(&of_claim("c2")).await.unwrap().is_empty());
    // Given back (the output failed): the next hand-out has them all.
    assert_eq!(s.release_claim("c1").await.unwrap(), 3);
    assert!(s.passwords(&of_claim("c1")).await.unwrap().is_empty(), "a claim given back holds nothing");
    assert!(s.confirm_claim("c1").await.unwrap().is_empty(), "a claim given back forgets nothing");
    assert_eq!(s.passwords(&free(later - lapse)).await.unwrap(), rows);
    assert_eq!(s.claim_passwords(&rows, "c2", later, later - lapse).await.unwrap().len(), 3);
    // A newer password set meanwhile is not the claimed one: confirming leaves it.
    s.keep_passwords(&[sealed("id-c", 5)], later).await.unwrap();
    assert_eq!(names(s.confirm_claim("c2").await.unwrap()), ["id-a", "id-b"]);
    let left = s.passwords(&free(later - lapse)).await.unwrap();
    assert_eq!((names(left.clone()), left[0].sealed.clone()), (vec![IdentityId::from("id-c")], vec![5; 48]));

    // A claim never confirmed lapses: after the timeout the next hand-out takes the row, and the
    // lapsed claim's late confirmation forgets nothing that is not its own.
    assert_eq!(s.claim_passwords(&left, "c3", later, later - lapse).await.unwrap().len(), 1);
    let t2 = later + Duration::minutes(4);
    assert!(s.claim_passwords(&left, "c4", t2, t2 - lapse).await.unwrap().is_empty(), "not lapsed yet");
    let t3 = later + Duration::minutes(6);
    assert_eq!(names(s.passwords(&free(t3 - lapse)).await.unwrap()), ["id-c"]);
    assert_eq!(s.claim_passwords(&left, "c4", t3, t3 - lapse).await.unwrap().len(), 1);
    assert!(s.confirm_claim("c3").await.unwrap().is_empty());
    assert_eq!(s.release_claim("c3").await.unwrap(), 0, "a lapsed claim gives back nothing another holds");
    assert_eq!(names(s.passwords(&PasswordFilter::default()).await.unwrap()), ["id-c"]);

    // Expiry forgets no row a live claim holds; once it is given back (or lapses), it does.
    let expired = day(40);
    assert_eq!(s.expire_passwords(expired, t3 - lapse).await.unwrap(), 1, "id-p's (pending), unclaimed");
    assert_eq!(s.expire_passwords(expired, t3 - lapse).await.unwrap(), 0, "id-c's is held by c4");
    assert_eq!(s.kept_passwords().await.unwrap(), 1);
    assert_eq!(s.release_claim("c4").await.unwrap(), 1);
    assert_eq!(s.expire_passwords(expired, t3 - lapse).await.unwrap(), 1);
    s.keep_passwords(&[sealed("id-a", 6)], day(2)).await.unwrap();
    let rows = s.passwords(&PasswordFilter::default()).await.unwrap();
    assert_eq!(s.claim_passwords(&rows, "c5", day(2), day(2) - lapse).await.unwrap().len(), 1);
    assert_eq!(s.expire_passwords(expired, day(2) + lapse).await.unwrap(), 1, "a lapsed claim holds nothing");
    assert_eq!(s.kept_passwords().await.unwrap(), 0);
}

/// Anchors a target read after its creates (`record_anchors`) go to the created rows without
/// one: the identity the account carries, at the recorded key, on that target. A pending row, a
/// row that has an anchor, a row at another key or on another target, and an account carrying
/// an id that has no row keep what they had; rows of several statements are all found.
pub(crate) async fn anchors_read_after_creates_fill_only_the_rows_they_belong_to<S: StateStore>(s: &S) {
    use connector_api::FoundAnchor;
    let n = 2_500;
    let ids: Vec<(IdentityId, String)> = (0..n).map(|i| ident(&format!("id-{i:04}"), &format!("u{i}"))).collect();
    s.commit_identities(&ids, &[], &[], day(0)).await.unwrap();
    let run = s.begin_run("apply", None, day(0)).await.unwrap();
    let key = |i: usize| format!("uid=u{i},ou=people");
    // Created without anchors: all but the first four, which are the cases below.
    let created: Vec<OpRecord> = (4..n)
        .map(|i| {
            let status = if i % 2 == 0 { AccountStatus::Active } else { AccountStatus::Disabled };
            op("ldap", &format!("id-{i:04}"), "S1", set(&key(i), None, status))
        })
        .collect();
    s.record_ops(run, &created, day(1)).await.unwrap();
    s.record_pending(&[("ldap".to_string(), IdentityId::from("id-0000"))], day(1)).await.unwrap();
    s.record_ops(run, &[op("ldap", "id-0001", "S1", set(&key(1), Some("had"), AccountStatus::Active))], day(1))
        .await
        .unwrap();
    s.record_ops(run, &[op("ldap", "id-0002", "S1", set("uid=elsewhere", None, AccountStatus::Active))], day(1))
        .await
        .unwrap();
    s.record_ops(run, &[op("scim", "id-0003", "S1", set(&key(3), None, AccountStatus::Active))], day(1)).await.unwrap();
    let found = |i: usize| FoundAnchor { key: key(i), anchor: format!("uuid-{i}"), owner: format!("id-{i:04}") };
    let mut read: Vec<FoundAnchor> = (0..n).map(found).collect();
    read.push(FoundAnchor { key: "uid=stranger".into(), anchor: "uuid-x".into(), owner: "id-none".into() });
    let set_count = s.record_anchors("ldap", &read).await.unwrap();
    assert_eq!(set_count, (n - 4) as u64, "every created row and no other");
    for i in 4..n {
        let a = account(s, &format!("id-{i:04}")).await.unwrap();
        assert_eq!(a.anchor(), Some(format!("uuid-{i}").as_str()));
        assert_eq!(a.key(), Some(key(i).as_str()));
        let status = if i % 2 == 0 { AccountStatus::Active } else { AccountStatus::Disabled };
        assert_eq!(a.status, status, "the status is kept");
    }
    let a0 = account(s, "id-0000").await.unwrap();
    assert_eq!((a0.status, a0.anchor()), (AccountStatus::Pending, None), "a pending row waits for its plan");
    assert_eq!(account(s, "id-0001").await.unwrap().anchor(), Some("had"));
    assert_eq!(account(s, "id-0002").await.unwrap().anchor(), None, "another key: not this account");
    assert_eq!(account(s, "id-0003").await.unwrap().anchor(), None, "another target");
    assert_eq!(s.record_anchors("ldap", &read).await.unwrap(), 0, "read again: nothing left to fill");
    assert_eq!(s.record_anchors("ldap", &[]).await.unwrap(), 0);
}

pub(crate) async fn ownership_rows_follow_the_upsert_rules<S: StateStore>(s: &S) {
    s.commit_identities(&[ident("id-a", "a"), ident("id-b", "b")], &[], &[], day(0)).await.unwrap();
    let run = s.begin_run("apply", None, day(0)).await.unwrap();
    let pending = [("ldap".to_string(), IdentityId::from("id-a"))];
    s.record_pending(&pending, day(0)).await.unwrap();
    let a = account(s, "id-a").await.unwrap();
    assert_eq!((a.status, a.anchor(), a.key()), (AccountStatus::Pending, None, None));

    let adoption = |disabled| Adoption {
        target: "ldap".into(),
        identity: "id-a".into(),
        key: "uid=a".into(),
        anchor: Some("u-1".into()),
        disabled,
        by_username: false,
        status_only: false,
    };
    s.adopt(&[adoption(false)], day(1)).await.unwrap();
    assert_eq!(account(s, "id-a").await.unwrap().anchor(), Some("u-1"));

    // An unknown anchor keeps the recorded one; a pending row starts over.
    s.record_ops(run, &[op("ldap", "id-a", "S1", set("uid=a", None, AccountStatus::Active))], day(2)).await.unwrap();
    assert_eq!(account(s, "id-a").await.unwrap().anchor(), Some("u-1"));
    s.record_pending(&pending, day(2)).await.unwrap();
    let a = account(s, "id-a").await.unwrap();
    assert_eq!((a.anchor(), a.key()), (None, None), "a create sent again gets its key from the target");

    // disabled_at is the day of the first disable, kept while the account stays disabled.
    s.adopt(&[adoption(true)], day(3)).await.unwrap();
    s.record_ops(run, &[op("ldap", "id-a", "S1", set("uid=a,ou=off", Some("u-1"), AccountStatus::Disabled))], day(5))
        .await
        .unwrap();
    let a = account(s, "id-a").await.unwrap();
    let day3 = NaiveDate::from_ymd_opt(2026, 8, 4).unwrap();
    assert_eq!((a.status, a.disabled_at, a.key()), (AccountStatus::Disabled, Some(day3), Some("uid=a,ou=off")));
    s.record_ops(run, &[op("ldap", "id-a", "S1", set("uid=a", None, AccountStatus::Active))], day(6)).await.unwrap();
    assert_eq!(account(s, "id-a").await.unwrap().disabled_at, None);

    // A rename moves the key and keeps the status; failures, skips and group operations change
    // nothing; a removal deletes the row.
    let mut group_op = op("ldap", "id-a", "S1", OpResult::Ok(Ownership::Removed));
    group_op.group = true;
    let ops = [
        op("ldap", "id-a", "S1", OpResult::Ok(Ownership::Moved { key: "uid=a2".into() })),
        op("ldap", "id-b", "S1", OpResult::Failed("refused".into())),
        op("ldap", "id-b", "S1", OpResult::Skipped("stopped".into())),
        op("ldap", "id-a", "S1", OpResult::Ok(Ownership::Unchanged)),
        group_op,
    ];
    s.record_ops(run, &ops, day(7)).await.unwrap();
    let a = account(s, "id-a").await.unwrap();
    assert_eq!((a.key(), a.status, a.anchor()), (Some("uid=a2"), AccountStatus::Active, Some("u-1")));
    assert_eq!(account(s, "id-b").await, None);

    s.record_ops(run, &[op("ad", "id-a", "S1", set("cn=a", Some("g-1"), AccountStatus::Active))], day(8))
        .await
        .unwrap();
    let targets: Vec<String> =
        s.accounts(Some("id-a")).await.unwrap().into_iter().map(|a| a.target.to_string()).collect();
    assert_eq!(targets, ["ad", "ldap"]);
    let mut in_snapshot = s.snapshot().await.unwrap().accounts;
    in_snapshot.sort_by(|x, y| x.target.cmp(&y.target));
    assert_eq!(in_snapshot, s.accounts(None).await.unwrap());

    s.record_ops(run, &[op("ldap", "id-a", "S1", OpResult::Ok(Ownership::Removed))], day(9)).await.unwrap();
    let targets: Vec<String> = s.accounts(None).await.unwrap().into_iter().map(|a| a.target.to_string()).collect();
    assert_eq!(targets, ["ad"]);

    // A batch's rows are written in key order, whatever order the targets answered in; of two
    // rows for one account, the later wins.
    let ops = [
        op("ldap", "id-b", "S1", set("uid=b", Some("u-b"), AccountStatus::Active)),
        op("ad", "id-a", "S1", set("cn=a,ou=off", Some("g-1"), AccountStatus::Disabled)),
        op("ldap", "id-a", "S1", set("uid=a3", Some("u-3"), AccountStatus::Active)),
        op("ad", "id-a", "S1", set("cn=a", Some("g-1"), AccountStatus::Active)),
        op("ldap", "id-b", "S1", set("uid=b,ou=off", Some("u-b"), AccountStatus::Disabled)),
    ];
    s.record_ops(run, &ops, day(10)).await.unwrap();
    let rows: Vec<(String, String, Option<String>, AccountStatus)> = s
        .accounts(None)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.target.to_string(), a.identity_id.to_string(), a.key().map(|k| k.to_string()), a.status))
        .collect();
    let row = |t: &str, i: &str, k: &str, st| (t.to_string(), i.to_string(), Some(k.to_string()), st);
    let mut want = vec![
        row("ad", "id-a", "cn=a", AccountStatus::Active),
        row("ldap", "id-a", "uid=a3", AccountStatus::Active),
        row("ldap", "id-b", "uid=b,ou=off", AccountStatus::Disabled),
    ];
    let mut rows = rows;
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    want.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(rows, want);
}

pub(crate) async fn groups_are_recorded_and_forgotten<S: StateStore>(s: &S) {
    let row = |name: &str, anchor: Option<&str>, pending| GroupRow {
        target: "ldap".into(),
        name: name.into(),
        key: Some(format!("cn={name}")),
        anchor: anchor.map(String::from),
        school: "S1".into(),
        pending,
    };
    s.record_groups(&[row("7a", None, true), row("7b", None, true)], day(0)).await.unwrap();
    let groups = s.groups().await.unwrap();
    assert_eq!(groups.len(), 2);
    assert!(groups.iter().all(|g| g.pending && g.anchor.is_none() && g.school == "S1"));

    s.record_groups(&[row("7a", Some("g-1"), false)], day(1)).await.unwrap();
    s.forget_group("ldap", "7b").await.unwrap();
    let groups = s.groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    assert_eq!(
        (g.name.as_str(), g.key.as_deref(), g.anchor.as_deref(), g.pending),
        ("7a", Some("cn=7a"), Some("g-1"), false)
    );
}

pub(crate) async fn runs_begin_finish_and_are_marked_interrupted<S: StateStore>(s: &S) {
    let adopt = s.begin_run("adopt", None, day(0)).await.unwrap();
    assert!(!s.has_adopted().await.unwrap(), "an adopt still running has not recovered the state");
    s.finish_run(adopt, "ok", "recorded 3 accounts", day(0)).await.unwrap();
    assert!(!s.has_applied().await.unwrap(), "an adopt is not an apply");
    assert!(s.has_adopted().await.unwrap());
    // Applies that sent nothing leave rows, and do not make the state one that has applied.
    for status in ["held", "stopped", "declined", "unchanged"] {
        s.record_run("apply", None, status, "nothing was changed", Some("{}"), day(0)).await.unwrap();
    }
    s.record_run("plan", Some("p0"), "planned", "3 operations planned", Some("{}"), day(0)).await.unwrap();
    s.record_run("run", None, "held", "held for review", Some("{}"), day(0)).await.unwrap();
    assert!(!s.has_applied().await.unwrap(), "a held, stopped, declined or empty apply sent nothing");
    let first = s.begin_run("apply", Some("p1"), day(1)).await.unwrap();
    let second = s.begin_run("apply", None, day(2)).await.unwrap();
    assert!(adopt < first && first < second);
    assert!(s.has_applied().await.unwrap());
    s.finish_run(second, "failed", "1 operation failed", day(2)).await.unwrap();

    assert_eq!(s.mark_interrupted(day(3)).await.unwrap(), 1);
    assert_eq!(s.mark_interrupted(day(3)).await.unwrap(), 0);
    let runs = s.runs(10).await.unwrap();
    let runs: Vec<_> = runs.into_iter().filter(|r| r.counts.is_none()).collect();
    let seen: Vec<(i64, &str, Option<&str>, &str)> =
        runs.iter().map(|r| (r.id, r.command.as_str(), r.plan_id.as_deref(), r.status.as_str())).collect();
    assert_eq!(
        seen,
        [(adopt, "adopt", None, "ok"), (first, "apply", Some("p1"), "interrupted"), (second, "apply", None, "failed")]
    );
    assert!(runs.iter().all(|r| r.finished_at.is_some() && r.message.is_some()));
    assert_eq!(runs[2].message.as_deref(), Some("1 operation failed"));
    // The newest `limit`, oldest first.
    let ids: Vec<i64> = s.runs(2).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(ids, [first, second]);
    s.set_run_counts(second, r#"{"planned":{"create":2}}"#).await.unwrap();
    assert_eq!(s.runs(1).await.unwrap()[0].counts.as_deref(), Some(r#"{"planned":{"create":2}}"#));
}

pub(crate) async fn the_log_is_filtered_by_run_identity_and_school<S: StateStore>(s: &S) {
    s.commit_identities(&[ident("id-a", "a"), ident("id-b", "b")], &[], &[], day(0)).await.unwrap();
    let one = s.begin_run("apply", None, day(0)).await.unwrap();
    let two = s.begin_run("apply", None, day(1)).await.unwrap();
    s.record_ops(one, &[op("ldap", "id-a", "S1", OpResult::Failed("refused".into()))], day(0)).await.unwrap();
    let ops = [
        op("ldap", "id-a", "S1,S2", set("k", None, AccountStatus::Active)),
        op("ldap", "id-b", "S12", OpResult::Skipped("stopped".into())),
    ];
    s.record_ops(two, &ops, day(1)).await.unwrap();

    let all = s.log(&LogFilter::default()).await.unwrap();
    let seen: Vec<(i64, Option<&str>, &str, Option<&str>)> =
        all.iter().map(|r| (r.run_id, r.identity_id.as_deref(), r.result.as_str(), r.error.as_deref())).collect();
    assert_eq!(
        seen,
        [
            (one, Some("id-a"), "failed", Some("refused")),
            (two, Some("id-a"), "ok", None),
            (two, Some("id-b"), "skipped", Some("stopped"))
        ]
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    let r = &all[1];
    assert_eq!(
        (r.username.as_deref(), r.target.as_deref(), r.action.as_str(), r.detail.as_deref()),
        (Some("user-id-a"), Some("ldap"), "update", Some("mail"))
    );

    let ids = |rows: Vec<super::LogRow>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    let by = |run, identity: Option<&str>, school: Option<&str>, limit| LogFilter {
        run,
        identity: identity.map(String::from),
        school: school.map(String::from),
        limit,
        ..LogFilter::default()
    };
    assert_eq!(ids(s.log(&by(Some(two), None, None, 0)).await.unwrap()), [all[1].id, all[2].id]);
    assert_eq!(ids(s.log(&by(None, Some("id-a"), None, 0)).await.unwrap()), [all[0].id, all[1].id]);
    // A school matches a whole entry of the comma-separated list, never a prefix.
    assert_eq!(ids(s.log(&by(None, None, Some("S2"), 0)).await.unwrap()), [all[1].id]);
    assert_eq!(ids(s.log(&by(None, None, Some("S1"), 0)).await.unwrap()), [all[0].id, all[1].id]);
    assert_eq!(ids(s.log(&by(Some(one), Some("id-a"), Some("S2"), 0)).await.unwrap()), Vec::<i64>::new());
    // A limit keeps the newest rows, still oldest first.
    assert_eq!(ids(s.log(&by(None, None, None, 2)).await.unwrap()), [all[1].id, all[2].id]);
    // A school admin's units, a cursor, and the other filters.
    let of = |schools: &[&str]| LogFilter {
        schools: Some(schools.iter().map(|s| s.to_string()).collect()),
        ..LogFilter::default()
    };
    assert_eq!(ids(s.log(&of(&["S2", "S9"])).await.unwrap()), [all[1].id]);
    assert_eq!(ids(s.log(&of(&[])).await.unwrap()), Vec::<i64>::new(), "no school: no row");
    assert_eq!(ids(s.log(&of(&["S%"])).await.unwrap()), Vec::<i64>::new(), "a code is no pattern");
    let before = LogFilter { before: Some(all[2].id), limit: 1, ..LogFilter::default() };
    assert_eq!(ids(s.log(&before).await.unwrap()), [all[1].id], "the page before the newest row");
    let action = LogFilter { action: Some(all[0].action.clone()), ..LogFilter::default() };
    assert!(ids(s.log(&action).await.unwrap()).contains(&all[0].id));
    let nothing = LogFilter { target: Some("no-such-target".into()), ..LogFilter::default() };
    assert!(s.log(&nothing).await.unwrap().is_empty());
    // A run's operations counted per action and result, at some school units only.
    let tally = |run, schools: &[&str]| {
        let schools: Vec<String> = schools.iter().map(|x| x.to_string()).collect();
        async move { s.log_tally(run, &schools).await.unwrap() }
    };
    assert_eq!(tally(two, &["S1"]).await, [("update".to_string(), "ok".to_string(), 1)]);
    assert_eq!(tally(two, &["S12"]).await, [("update".to_string(), "skipped".to_string(), 1)], "S12 is not S1");
    assert!(tally(two, &["S%"]).await.is_empty(), "a code is no pattern");
    assert!(tally(one, &["S9"]).await.is_empty());
}

pub(crate) async fn pruning_removes_old_runs_their_log_and_plans_but_not_what_the_guards_read<S: StateStore>(s: &S) {
    s.commit_identities(&[ident("id-a", "a")], &[], &[], day(0)).await.unwrap();
    let adopt = s.begin_run("adopt", None, day(0)).await.unwrap();
    s.finish_run(adopt, "ok", "recorded 1 account", day(0)).await.unwrap();
    let old = s.begin_run("apply", None, day(1)).await.unwrap();
    s.record_ops(old, &[op("ldap", "id-a", "S1", set("k", None, AccountStatus::Active))], day(1)).await.unwrap();
    s.finish_run(old, "ok", "", day(1)).await.unwrap();
    // Started long ago and never finished: its process may still be writing.
    let running = s.begin_run("apply", None, day(2)).await.unwrap();
    s.save_plan("old", "{}", day(2)).await.unwrap();
    let new = s.begin_run("apply", None, day(10)).await.unwrap();
    s.record_ops(new, &[op("ldap", "id-a", "S1", set("k", None, AccountStatus::Active))], day(10)).await.unwrap();
    s.finish_run(new, "ok", "", day(10)).await.unwrap();
    s.save_plan("new", "{}", day(10)).await.unwrap();

    let pruned = s.prune(day(5)).await.unwrap();
    assert_eq!(pruned, super::Pruned { runs: 2, log_rows: 1, plans: 1 });
    let runs: Vec<i64> = s.runs(10).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(runs, [running, new]);
    let log: Vec<i64> = s.log(&LogFilter::default()).await.unwrap().iter().map(|r| r.run_id).collect();
    assert_eq!(log, [new]);
    assert_eq!(s.load_plan("old").await.unwrap(), None);
    assert!(s.load_plan("new").await.unwrap().is_some());
    assert_eq!(s.prune(day(5)).await.unwrap(), super::Pruned::default(), "pruning again removes nothing");

    // Every run gone: the state still applied and was adopted, and its accounts are still its own.
    s.finish_run(running, "failed", "", day(11)).await.unwrap();
    assert_eq!(s.prune(day(100)).await.unwrap(), super::Pruned { runs: 2, log_rows: 1, plans: 1 });
    assert!(s.runs(10).await.unwrap().is_empty());
    assert!(s.has_applied().await.unwrap(), "pruning every run made an applied state look new");
    assert!(s.has_adopted().await.unwrap(), "pruning every run forgot the adopt");
    assert_eq!(account(s, "id-a").await.and_then(|a| a.key().map(str::to_owned)).as_deref(), Some("k"));
}

pub(crate) async fn plans_are_saved_once_and_loaded<S: StateStore>(s: &S) {
    s.save_plan("p1", "{\"first\":1}", day(0)).await.unwrap();
    s.save_plan("p1", "{\"second\":2}", day(1)).await.unwrap();
    assert_eq!(s.load_plan("p1").await.unwrap().as_deref(), Some("{\"first\":1}"));
    assert_eq!(s.load_plan("p2").await.unwrap(), None);
}

pub(crate) async fn decisions_replace_earlier_ones<S: StateStore>(s: &S) {
    let records = ["sis/P1".to_string(), "sis/P2".to_string()];
    s.decide("c1", &Decision::Merge { into: Some("id-a".into()) }, &records, "local:root", day(0)).await.unwrap();
    s.decide("c2", &Decision::Merge { into: None }, &records, "local:root", day(0)).await.unwrap();
    s.decide("c1", &Decision::Separate, &records, "lisa", day(1)).await.unwrap();
    let decisions = s.decisions().await.unwrap();
    assert_eq!(
        decisions,
        BTreeMap::from([("c1".into(), Decision::Separate), ("c2".into(), Decision::Merge { into: None })])
    );
}

pub(crate) async fn civic_history_is_shown_masked<S: StateStore>(s: &S) {
    let change = |person_id: &str, old: Option<&str>, new: Option<&str>| CivicChange {
        source: "sis".into(),
        person_id: person_id.into(),
        identity_id: "id-a".into(),
        old: old.map(String::from),
        new: new.map(String::from),
    };
    s.record_civic_changes(1, &[change("P1", Some("20150976T123"), Some(PNR))], day(0)).await.unwrap();
    s.record_civic_changes(2, &[change("20150916-2388", Some("201509762384"), None)], day(1)).await.unwrap();
    let history = s.civic_history_of("id-a").await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].record, "sis/P1");
    assert_eq!(history[0].old.as_deref(), Some("20150976-**** (temporary number)"));
    assert_eq!(history[0].new.as_deref(), Some("20150916-**** (personnummer)"));
    assert_eq!(history[1].old.as_deref(), Some("20150976-**** (samordningsnummer)"));
    assert_eq!(history[1].new, None);
    assert!(!history[1].record.contains("2388"), "{}", history[1].record);
    assert!(history[0].changed_at < history[1].changed_at);
    assert!(s.civic_history_of("id-b").await.unwrap().is_empty());
}

pub(crate) async fn source_counts_and_columns_are_overwritten<S: StateStore>(s: &S) {
    s.record_source_counts(1, &BTreeMap::from([("sis".into(), 120), ("hr".into(), 30)]), day(0)).await.unwrap();
    s.record_source_counts(2, &BTreeMap::from([("sis".into(), 118)]), day(1)).await.unwrap();
    assert_eq!(s.source_counts().await.unwrap(), BTreeMap::from([("hr".into(), 30), ("sis".into(), 118)]));

    let cols = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<String>>();
    s.record_source_columns(1, &BTreeMap::from([("sis".into(), cols(&["email", "groups"]))]), day(0)).await.unwrap();
    s.record_source_columns(2, &BTreeMap::from([("sis".into(), cols(&["groups"])), ("hr".into(), cols(&[]))]), day(1))
        .await
        .unwrap();
    let expected = BTreeMap::from([("hr".into(), cols(&[])), ("sis".into(), cols(&["groups"]))]);
    assert_eq!(s.source_columns().await.unwrap(), expected);
}

pub(crate) async fn meta_values_are_set_and_replaced<S: StateStore>(s: &S) {
    s.set_meta("id_key_fingerprint", "abc").await.unwrap();
    s.set_meta("id_key_fingerprint", "def").await.unwrap();
    assert_eq!(s.meta("id_key_fingerprint").await.unwrap().as_deref(), Some("def"));
    assert_eq!(s.meta("other").await.unwrap(), None);
}

pub(crate) async fn unprotect_forgets_protection_and_the_content_hash<S: StateStore>(s: &S) {
    let mut r = record("sis", "P1", "id-a", Some(PNR));
    r.protected = true;
    s.commit_identities(&[ident("id-a", "a")], &[r, record("hr", "H1", "id-a", None)], &[], day(0)).await.unwrap();
    let protected = s.protected_identities().await.unwrap();
    assert_eq!(protected.into_iter().collect::<Vec<_>>(), ["id-a"]);
    s.unprotect(&[]).await.unwrap();
    s.unprotect(&["id-a".into()]).await.unwrap();
    assert!(s.protected_identities().await.unwrap().is_empty());
    let snap = s.snapshot().await.unwrap();
    for (source, key) in [("sis", "P1"), ("hr", "H1")] {
        let r = snap.record(source, key).unwrap();
        assert_eq!((r.protected, r.content_hash), (false, None), "{source}");
        assert_eq!(r.identity_id, "id-a");
    }
    assert_eq!(snap.record("sis", "P1").unwrap().civic_no.as_deref(), Some(PNR));
}

pub(crate) async fn batches_larger_than_one_statement_round_trip<S: StateStore>(s: &S) {
    const N: usize = 2_500;
    let new: Vec<(IdentityId, String)> = (0..N).map(|i| ident(&format!("id-{i:05}"), &format!("user{i}"))).collect();
    let records: Vec<RecordRow> =
        (0..N).map(|i| record("sis", &format!("P{i}"), &format!("id-{i:05}"), None)).collect();
    // Taken one by one, as an apply gives them: three statements' worth in one transaction.
    s.commit_identities_from(&new, &mut records.into_iter(), &[], day(0)).await.unwrap();
    let pending: Vec<(String, IdentityId)> =
        (0..N).map(|i| ("ldap".to_string(), format!("id-{i:05}").into())).collect();
    s.record_pending(&pending, day(0)).await.unwrap();
    let ops: Vec<OpRecord> = (0..N)
        .map(|i| {
            op(
                "ldap",
                &format!("id-{i:05}"),
                "S1",
                set(&format!("uid=user{i}"), Some(&format!("u-{i}")), AccountStatus::Active),
            )
        })
        .collect();
    let run = s.begin_run("apply", None, day(0)).await.unwrap();
    s.record_ops(run, &ops, day(0)).await.unwrap();
    let names: Vec<String> = (0..N).map(|i| format!("gone{i}")).collect();
    s.reserve_usernames(&names, day(0)).await.unwrap();

    let snap = s.snapshot().await.unwrap();
    assert_eq!((snap.identities.len(), snap.all_records().count(), snap.accounts.len()), (N, N, N));
    let ids: BTreeSet<&str> = snap.accounts.iter().map(|a| a.identity_id.as_str()).collect();
    assert!((0..N).all(|i| {
        let id = format!("id-{i:05}");
        snap.identities.contains_key(id.as_str())
            && ids.contains(id.as_str())
            && snap.record("sis", &format!("P{i}")).is_some()
    }));
    assert!(snap.accounts.iter().all(|a| a.status == AccountStatus::Active && a.anchor().is_some()));
    // Read in two steps, the accounts after the rest: the same snapshot, each account's id the
    // identity's own string.
    let mut apart = s.snapshot_without_accounts().await.unwrap();
    assert!(apart.accounts.is_empty() && apart.identities.len() == N && apart.all_records().count() == N);
    assert!(apart.primary("id-00000").is_some() == snap.primary("id-00000").is_some());
    apart.accounts = s.owned_accounts(apart.identities.clone()).await.unwrap();
    let key = |a: &crate::core::model::OwnedAccount| format!("{a:?}");
    let (mut got, mut want): (Vec<String>, Vec<String>) =
        (apart.accounts.iter().map(key).collect(), snap.accounts.iter().map(key).collect());
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(apart.accounts.iter().all(|a| {
        let (id, _) = apart.identities.get_key_value(a.identity_id.as_str()).unwrap();
        std::sync::Arc::ptr_eq(&id.shared(), &a.identity_id.shared())
    }));
    assert_eq!(s.log(&LogFilter { run: Some(run), ..LogFilter::default() }).await.unwrap().len(), N);
    assert_eq!(s.reserved_usernames().await.unwrap().len(), N);
    assert_eq!(s.allocated_usernames(day(0), None).await.unwrap().len(), 2 * N);
}

/// An operator's decision that an account is not a person's is kept once (recording it again
/// changes nothing), with the anchor, and follows a target renamed in the config.
pub async fn claim_refusals_are_kept_once_and_move_with_a_renamed_target(s: &impl StateStore) {
    let r = ClaimRefusal {
        target: "dir".into(),
        identity: "id-1".into(),
        key: "uid=anna.berg,ou=people".into(),
        anchor: Some("uuid-1".into()),
    };
    s.refuse_claim(&r, day(1)).await.unwrap();
    s.refuse_claim(&r, day(2)).await.unwrap();
    let no_anchor = ClaimRefusal { identity: "id-2".into(), anchor: None, ..r.clone() };
    s.refuse_claim(&no_anchor, day(2)).await.unwrap();
    assert_eq!(s.claim_refusals().await.unwrap(), [r.clone(), no_anchor.clone()]);
    s.rename_target("dir", "katalog").await.unwrap();
    let moved: Vec<String> = s.claim_refusals().await.unwrap().into_iter().map(|r| r.target).collect();
    assert_eq!(moved, ["katalog", "katalog"]);
}

/// Accounts claimed by hand outside the scope are kept (once each) until forgotten.
pub async fn outside_claims_are_kept_until_forgotten(s: &impl StateStore) {
    let a = ("ad".to_string(), IdentityId::from("id-1"));
    let b = ("ad".to_string(), IdentityId::from("id-2"));
    s.record_outside_claims(&[a.clone(), b.clone()], day(1)).await.unwrap();
    s.record_outside_claims(std::slice::from_ref(&a), day(2)).await.unwrap();
    assert_eq!(s.outside_claims().await.unwrap(), [a.clone(), b.clone()]);
    s.forget_outside_claims(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(s.outside_claims().await.unwrap(), [b]);
}

pub async fn primaries_source_reads_and_gone_records_round_trip(s: &impl StateStore) {
    use crate::core::model::PrimaryTie;
    use crate::store::{HeldRow, SourceRead};
    let tie = |code: &str, id: Option<&str>| PrimaryTie::new(code, id);
    s.commit_identities(
        &[ident("id-a", "kim.lind"), ident("id-b", "bo.lind")],
        &[record("sis", "P1", "id-a", Some(PNR)), record("sis", "P2", "id-b", None)],
        &[("id-a".into(), Some(tie("S1", None))), ("id-b".into(), None)],
        day(0),
    )
    .await
    .unwrap();
    let snap = s.snapshot().await.unwrap();
    assert_eq!(snap.primary("id-a"), Some(&tie("S1", None)));
    assert!(snap.primary("id-b").is_none() && snap.identities.contains_key("id-b"));
    s.commit_identities(&[], &[], &[("id-a".into(), Some(tie("S2", Some("duty-9"))))], day(1)).await.unwrap();
    assert_eq!(s.snapshot().await.unwrap().primary("id-a"), Some(&tie("S2", Some("duty-9"))));

    // The records a read left, whole, with full civic numbers; a gone one is not among them.
    let stored = s.stored_records("sis").await.unwrap();
    let mut keys: Vec<(&str, Option<&str>)> =
        stored.iter().map(|r| (r.person_id.as_str(), r.civic_no.as_deref())).collect();
    keys.sort();
    assert_eq!(keys, [("P1", Some(PNR)), ("P2", None)]);
    assert!(stored.iter().all(|r| r.data.as_deref().is_some_and(|d| d.contains("affiliations"))));
    s.mark_gone(&[("sis".into(), "P2".into())], day(2)).await.unwrap();
    let stored = s.stored_records("sis").await.unwrap();
    assert_eq!(stored.iter().map(|r| r.person_id.as_str()).collect::<Vec<_>>(), ["P1"]);
    let snap = s.snapshot().await.unwrap();
    assert!(snap.record("sis", "P2").unwrap().gone, "kept, marked gone");
    assert!(!snap.record("sis", "P1").unwrap().gone);
    // A record written again (the person is back) is not gone any more.
    s.commit_identities(&[], &[record("sis", "P2", "id-b", None)], &[], day(3)).await.unwrap();
    assert!(!s.snapshot().await.unwrap().record("sis", "P2").unwrap().gone);

    // An external identifier finds its person, as the person_id does.
    let mut with_ext = record("sis", "P3", "id-b", None);
    with_ext.data = with_ext.data.replace(r#""location""#, r#""external_ids":["ELEV-77"],"location""#);
    s.commit_identities(&[], &[with_ext], &[], day(3)).await.unwrap();
    assert_eq!(s.find_identity("ELEV-77").await.unwrap(), ["id-b"]);
    assert_eq!(s.find_identity("P3").await.unwrap(), ["id-b"]);
    assert!(s.find_identity("ELEV-7").await.unwrap().is_empty());

    // Source reads: a full read sets its time; an incremental one keeps it and moves the mark.
    assert!(s.source_reads().await.unwrap().is_empty());
    let read = |w: &str| SourceRead { watermark: Some(w.into()), full_read_at: None, scope: "S1,S2".into() };
    let run = s.begin_run("apply", None, day(4)).await.unwrap();
    s.record_source_reads(run, &BTreeMap::from([("sis".to_string(), (read("w1"), true))]), day(4)).await.unwrap();
    s.record_source_reads(run, &BTreeMap::from([("sis".to_string(), (read("w2"), false))]), day(5)).await.unwrap();
    let got = s.source_reads().await.unwrap();
    assert_eq!(got["sis"].watermark.as_deref(), Some("w2"));
    assert_eq!(got["sis"].full_read_at, Some(day(4)));
    assert_eq!(got["sis"].scope, "S1,S2");

    // Held records: merged with the linked ones (in place of one with the same key), replaced
    // per source by each apply, the other sources' left alone.
    let held = |source: &str, pid: &str, hash: &str| HeldRow {
        source: source.into(),
        person_id: pid.into(),
        civic_no: Some(PNR.into()),
        data: format!(r#"{{"held":"{hash}"}}"#),
        content_hash: hash.into(),
    };
    s.hold_records(
        run,
        &["sis".into(), "hr".into()],
        &[held("sis", "P1", "h1"), held("sis", "N9", "h2"), held("hr", "E1", "h3")],
        day(5),
    )
    .await
    .unwrap();
    let mut stored: Vec<(String, Option<String>)> =
        s.stored_records("sis").await.unwrap().into_iter().map(|r| (r.person_id, r.data)).collect();
    stored.sort();
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert_eq!(stored[1], ("P1".to_string(), Some(r#"{"held":"h1"}"#.to_string())), "the held copy stands in");
    assert_eq!(stored[0].0, "N9");
    let run2 = s.begin_run("apply", None, day(6)).await.unwrap();
    s.hold_records(run2, &["sis".into()], &[held("sis", "N9", "h4")], day(6)).await.unwrap();
    let keys = s.held_keys().await.unwrap();
    let keys: Vec<(&str, &str, &str)> = keys.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect();
    assert_eq!(keys, [("hr", "E1", "h3"), ("sis", "N9", "h4")]);
    assert!(
        s.stored_records("sis")
            .await
            .unwrap()
            .iter()
            .any(|r| r.person_id == "P1" && r.data.as_deref() != Some(r#"{"held":"h1"}"#))
    );
}

pub(crate) async fn tokens_are_added_once_listed_and_revoked<S: StateStore>(s: &S) {
    let token = |name: &str, hash: &str| TokenRow {
        name: name.into(),
        hash: hash.into(),
        role: "school_admin".into(),
        schools: vec!["S1".into(), "S2".into()],
        created_at: "2026-08-01T12:00:00Z".into(),
        revoked_at: None,
    };
    assert!(s.add_token(&token("lisa", "aa")).await.unwrap());
    // A name is taken once, also by another hash: the first token stays.
    assert!(!s.add_token(&token("lisa", "bb")).await.unwrap());
    assert!(s.add_token(&token("bo", "cc")).await.unwrap());
    let all = s.tokens().await.unwrap();
    assert_eq!(
        all.iter().map(|t| (t.name.as_str(), t.hash.as_str())).collect::<Vec<_>>(),
        [("bo", "cc"), ("lisa", "aa")]
    );
    assert_eq!(all[1], token("lisa", "aa"));
    assert!(s.revoke_token("lisa", day(1)).await.unwrap());
    assert!(!s.revoke_token("lisa", day(2)).await.unwrap(), "revoked once");
    assert!(!s.revoke_token("nobody", day(2)).await.unwrap());
    let lisa = s.tokens().await.unwrap().into_iter().find(|t| t.name == "lisa").unwrap();
    assert!(lisa.revoked_at.is_some());
    // A revoked name stays taken.
    assert!(!s.add_token(&token("lisa", "dd")).await.unwrap());
}

pub(crate) async fn sessions_are_found_until_they_expire_or_end<S: StateStore>(s: &S) {
    let token = TokenRow {
        name: "lisa".into(),
        hash: "aa".into(),
        role: "school_admin".into(),
        schools: vec!["S1".into()],
        created_at: "2026-08-01T12:00:00Z".into(),
        revoked_at: None,
    };
    assert!(s.add_token(&token).await.unwrap());
    let session = |id: &str, days: i64| super::SessionRow {
        id: id.into(),
        token_name: "lisa".into(),
        csrf: format!("csrf-{id}"),
        created_at: day(0),
        expires_at: day(days),
    };
    s.add_session(&session("s1", 1)).await.unwrap();
    s.add_session(&session("s2", 3)).await.unwrap();
    assert!(s.add_session(&session("s2", 3)).await.is_err(), "one row per id");
    assert_eq!(s.session("s1", day(0)).await.unwrap(), Some(session("s1", 1)));
    assert_eq!(s.session("nope", day(0)).await.unwrap(), None);
    assert_eq!(s.session("s1", day(1)).await.unwrap(), None, "expired at its time");
    assert_eq!(s.remove_expired_sessions(day(2)).await.unwrap(), 1);
    assert!(s.session("s2", day(2)).await.unwrap().is_some());
    s.remove_session("s2").await.unwrap();
    assert_eq!(s.session("s2", day(2)).await.unwrap(), None, "signed out");
}

pub(crate) async fn a_name_search_finds_persons_at_the_schools_asked_and_never_a_protected_one<S: StateStore>(s: &S) {
    let person = |id: &str, given: &str, family: &str, school: &str, protected: bool| RecordRow {
        given_name: given.into(),
        family_name: family.into(),
        school_unit: Some(school.into()),
        protected,
        ..record("sis", &format!("p-{id}"), id, None)
    };
    s.commit_identities(
        &[
            ident("a", "anna.berg"),
            ident("b", "bo.berg"),
            ident("h", "u1234"),
            ident("x", "x_y"),
            ident("o", "orjan.agren"),
        ],
        &[
            person("a", "Anna", "Berg", "S1", false),
            person("b", "Bo", "Berg", "S2", false),
            person("h", "Hemlig", "Berg", "S1", true),
            person("x", "Ann%", "Lind", "S1", false),
            person("o", "Örjan", "Ågren", "S1", false),
        ],
        &[],
        day(0),
    )
    .await
    .unwrap();
    let names = |hits: Vec<super::PersonHit>| hits.into_iter().map(|h| h.identity_id).collect::<Vec<_>>();
    assert_eq!(names(s.search_persons("berg", None, 10).await.unwrap()), ["a", "b"], "never the protected one");
    assert_eq!(names(s.search_persons("berg anna", None, 10).await.unwrap()), ["a"], "family name first too");
    assert_eq!(names(s.search_persons("anna.b", None, 10).await.unwrap()), ["a"], "by username");
    assert_eq!(names(s.search_persons("berg", Some(&["S2".to_string()]), 10).await.unwrap()), ["b"]);
    assert_eq!(names(s.search_persons("hemlig", None, 10).await.unwrap()), Vec::<String>::new());
    assert_eq!(names(s.search_persons("u1234", None, 10).await.unwrap()), Vec::<String>::new(), "nor the pseudonym");
    assert_eq!(names(s.search_persons("berg", None, 1).await.unwrap()), ["a"], "at most the limit");
    assert_eq!(names(s.search_persons("ann%", None, 10).await.unwrap()), ["x"], "% is a character, not a wildcard");
    assert_eq!(names(s.search_persons("x_", None, 10).await.unwrap()), ["x"]);
    assert_eq!(names(s.search_persons("a_n", None, 10).await.unwrap()), Vec::<String>::new(), "_ is no wildcard");
    // The text comes lowered in full; the names' Swedish capitals are folded to meet it.
    assert_eq!(names(s.search_persons("örjan ågren", None, 10).await.unwrap()), ["o"], "Å, Ä, Ö in capitals");
}

pub(crate) async fn metrics_count_runs_and_operations<S: StateStore>(s: &S) {
    assert_eq!(s.metrics().await.unwrap(), super::StateMetrics::default(), "nothing yet");
    s.commit_identities(&[ident("id-a", "a")], &[], &[], day(0)).await.unwrap();
    let one = s.begin_run("apply", None, day(0)).await.unwrap();
    s.record_ops(one, &[op("ldap", "id-a", "S1", OpResult::Failed("refused".into()))], day(0)).await.unwrap();
    s.finish_run(one, "failed", "1 failed", day(0)).await.unwrap();
    let two = s.begin_run("apply", None, day(1)).await.unwrap();
    s.record_ops(two, &[op("ldap", "id-a", "S1", set("k", None, AccountStatus::Active))], day(1)).await.unwrap();
    s.finish_run(two, "ok", "1 done", day(2)).await.unwrap();
    s.record_run("apply", None, "held", "held", Some("{}"), day(3)).await.unwrap();
    let m = s.metrics().await.unwrap();
    assert_eq!(m.runs, [("failed".to_string(), 1), ("held".to_string(), 1), ("ok".to_string(), 1)]);
    let ops: Vec<(&str, &str, &str, i64)> =
        m.operations.iter().map(|(t, a, r, n)| (t.as_str(), a.as_str(), r.as_str(), *n)).collect();
    assert_eq!(ops, [("ldap", "update", "failed", 1), ("ldap", "update", "ok", 1)]);
    assert_eq!(m.target_success, [("ldap".to_string(), "2026-08-03T12:00:00Z".to_string())]);
}

/// A record as an SS 12000 read stores it: ties and groups with source ids, and their refs.
fn sourced_record(person_id: &str, identity: &str, ties: &[(&str, &str, Option<&str>)], groups: &[&str]) -> RecordRow {
    use connector_api::{Affiliation, GroupMembership, Role, SourceRecord};
    let record = SourceRecord {
        person_id: person_id.into(),
        given_name: "Kim".into(),
        family_name: "Lind".into(),
        civic_no: None,
        affiliations: ties
            .iter()
            .map(|(id, unit, name)| Affiliation {
                details: connector_api::TieDetails {
                    source_id: Some(id.to_string()),
                    school_unit_name: name.map(String::from),
                    ..Default::default()
                }
                .boxed(),
                ..Affiliation::new(Some(unit.to_string().into()), Role::Student)
            })
            .map(Into::into)
            .collect(),
        groups: groups
            .iter()
            .map(|g| GroupMembership { source_id: Some(g.to_string()), ..GroupMembership::class(None, g.to_string()) })
            .map(Into::into)
            .collect(),
        extras: connector_api::Extras::new(None, None, Box::default()),
        protection: None,
        deceased: false,
        location: format!("persons/{person_id}").into(),
    };
    RecordRow { data: record.to_json(), refs: crate::store::RecordRef::of(&record), ..record_row(person_id, identity) }
}

fn record_row(person_id: &str, identity: &str) -> RecordRow {
    record("ss", person_id, identity, None)
}

pub async fn an_incremental_read_finds_stored_records_by_person_tie_group_and_school_unit(s: &impl StateStore) {
    use connector_api::PriorQuery;
    s.commit_identities(
        &[ident("id-a", "a"), ident("id-b", "b"), ident("id-c", "c")],
        &[
            sourced_record(
                "A",
                "id-a",
                &[("duty-1", "S1", Some("Eken")), ("duty-2", "S2", Some("Björken"))],
                &["g-7a"],
            ),
            sourced_record("B", "id-b", &[("enrolment:S2", "S2", Some("Björken"))], &["g-7a", "g-8b"]),
            sourced_record("C", "id-c", &[("pl-1", "S3", None)], &[]),
            // Another source's record with the same tie id is not this source's.
            RecordRow { source: "other".into(), ..sourced_record("Z", "id-c", &[("duty-1", "S1", Some("Eken"))], &[]) },
        ],
        &[],
        day(0),
    )
    .await
    .unwrap();
    let found = |q: PriorQuery| async move {
        let mut ids: Vec<String> =
            s.stored_records_where("ss", &q).await.unwrap().into_iter().map(|r| r.person_id).collect();
        ids.sort();
        ids
    };
    let set = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<BTreeSet<String>>();
    assert_eq!(found(PriorQuery::default()).await, Vec::<String>::new());
    assert_eq!(found(PriorQuery { persons: set(&["C", "nobody"]), ..Default::default() }).await, ["C"]);
    assert_eq!(found(PriorQuery { ties: set(&["duty-2"]), ..Default::default() }).await, ["A"]);
    assert_eq!(found(PriorQuery { groups: set(&["g-7a"]), ..Default::default() }).await, ["A", "B"]);
    assert_eq!(found(PriorQuery { school_units: set(&["S2"]), ..Default::default() }).await, ["A", "B"]);
    assert_eq!(
        found(PriorQuery { persons: set(&["A"]), ties: set(&["pl-1"]), groups: set(&["g-8b"]), ..Default::default() })
            .await,
        ["A", "B", "C"]
    );
    let units = s.stored_units("ss").await.unwrap();
    assert_eq!(
        units,
        BTreeMap::from([
            ("S1".to_string(), BTreeSet::from([Some("Eken".to_string())])),
            ("S2".to_string(), BTreeSet::from([Some("Björken".to_string())])),
            ("S3".to_string(), BTreeSet::from([None])),
        ])
    );
    assert_eq!(s.stored_presence("ss", &["A".into(), "X".into()]).await.unwrap(), (3, set(&["A"])));
    assert!(!s.stored_unwhole("ss").await.unwrap());
    let digests = s.record_digests_of(&[("ss".into(), "B".into()), ("ss".into(), "X".into())]).await.unwrap();
    assert_eq!(digests.iter().map(|d| (d.person_id.as_str(), d.gone)).collect::<Vec<_>>(), [("B", false)]);

    // A record written again replaces its refs: B left group 8B and moved to S4 (a new name).
    s.commit_identities(
        &[],
        &[sourced_record("B", "id-b", &[("enrolment:S4", "S4", Some("Asken"))], &["g-7a"])],
        &[],
        day(1),
    )
    .await
    .unwrap();
    assert_eq!(found(PriorQuery { groups: set(&["g-8b"]), ..Default::default() }).await, Vec::<String>::new());
    assert_eq!(found(PriorQuery { school_units: set(&["S4"]), ..Default::default() }).await, ["B"]);
    assert!(!s.stored_units("ss").await.unwrap()["S2"].is_empty(), "A is still at S2");
    // A gone record is found by nothing, and its units are no longer stored ones.
    s.mark_gone(&[("ss".into(), "C".into())], day(2)).await.unwrap();
    assert_eq!(
        found(PriorQuery { persons: set(&["C"]), ties: set(&["pl-1"]), ..Default::default() }).await,
        Vec::<String>::new()
    );
    assert!(!s.stored_units("ss").await.unwrap().contains_key("S3"));
    assert_eq!(s.stored_presence("ss", &["C".into()]).await.unwrap(), (2, BTreeSet::new()));
    let digests = s.record_digests_of(&[("ss".into(), "C".into())]).await.unwrap();
    assert!(digests[0].gone);

    // A held record (in no identity) is found by what its whole record holds, in place of the
    // linked one with its key.
    let held = crate::store::HeldRow {
        source: "ss".into(),
        person_id: "H".into(),
        civic_no: Some(PNR.into()),
        data: sourced_record("H", "", &[("duty-9", "S9", Some("Lönnen"))], &["g-9c"]).data,
        content_hash: "h".into(),
    };
    let run = s.begin_run("apply", None, day(3)).await.unwrap();
    s.hold_records(run, &["ss".into()], std::slice::from_ref(&held), day(3)).await.unwrap();
    assert_eq!(found(PriorQuery { ties: set(&["duty-9"]), ..Default::default() }).await, ["H"]);
    assert_eq!(found(PriorQuery { groups: set(&["g-9c"]), ..Default::default() }).await, ["H"]);
    assert_eq!(found(PriorQuery { school_units: set(&["S9"]), ..Default::default() }).await, ["H"]);
    assert!(s.stored_units("ss").await.unwrap().contains_key("S9"));
    assert_eq!(s.stored_presence("ss", &["H".into()]).await.unwrap(), (3, set(&["H"])));
    let held_civic =
        s.stored_records_where("ss", &PriorQuery { persons: set(&["H"]), ..Default::default() }).await.unwrap();
    assert_eq!(held_civic[0].civic_no.as_deref(), Some(PNR), "full civic numbers, as stored_records gives them");
    // A held record with a linked one's key counts once (the held one stands in its place).
    let held_a = crate::store::HeldRow { person_id: "A".into(), ..held.clone() };
    let run = s.begin_run("apply", None, day(4)).await.unwrap();
    s.hold_records(run, &["ss".into()], &[held, held_a], day(4)).await.unwrap();
    assert_eq!(s.stored_presence("ss", &["A".into(), "C".into()]).await.unwrap(), (3, set(&["A"])));
}

/// One write that names the same key twice (two outcomes of one account in a batch of the log,
/// a record or group given twice): the last one wins, as rows written one after the other, and
/// the write does not fail (on a server database a multi-row upsert may not touch a row twice).
pub(crate) async fn a_key_written_twice_in_one_write_keeps_the_last<S: StateStore>(s: &S) {
    let mut again = record("sis", "P1", "id-a", None);
    again.content_hash = hash_of("h-last");
    again.given_name = "Kimmie".into();
    s.commit_identities(&[ident("id-a", "a")], &[record("sis", "P1", "id-a", None), again], &[], day(0)).await.unwrap();
    let snap = s.snapshot().await.unwrap();
    assert_eq!(snap.record("sis", "P1").unwrap().content_hash, hash_read("h-last"));

    let run = s.begin_run("apply", None, day(0)).await.unwrap();
    let ops = [
        op("ldap", "id-a", "S1", set("uid=a", Some("u-1"), AccountStatus::Active)),
        op("ldap", "id-a", "S1", set("uid=a,ou=off", None, AccountStatus::Disabled)),
    ];
    s.record_ops(run, &ops, day(1)).await.unwrap();
    let a = account(s, "id-a").await.unwrap();
    assert_eq!(
        (a.key(), a.status, a.anchor()),
        (Some("uid=a,ou=off"), AccountStatus::Disabled, Some("u-1")),
        "the last outcome, the first one's anchor kept"
    );
    assert_eq!(s.log(&LogFilter::default()).await.unwrap().len(), 2, "both operations logged");

    let group = |anchor: &str, pending| GroupRow {
        target: "ldap".into(),
        name: "7a".into(),
        key: Some("cn=7a".into()),
        anchor: Some(anchor.into()),
        school: "S1".into(),
        pending,
    };
    s.record_groups(&[group("g-1", true), group("g-2", false)], day(1)).await.unwrap();
    let groups = s.groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!((groups[0].anchor.as_deref(), groups[0].pending), (Some("g-2"), false));

    let sealed = |value: u8| SealedPassword {
        target: "ldap".into(),
        identity_id: "id-a".into(),
        username: String::new(),
        school: "S1".into(),
        sealed: vec![value; 48],
        created_at: String::new(),
    };
    s.keep_passwords(&[sealed(1), sealed(2)], day(1)).await.unwrap();
    assert_eq!(s.kept_passwords().await.unwrap(), 1);
    let kept = s.passwords(&PasswordFilter::default()).await.unwrap();
    assert_eq!(kept.iter().map(|p| p.sealed[0]).collect::<Vec<_>>(), [2]);

    let held = |hash: &str| crate::store::HeldRow {
        source: "sis".into(),
        person_id: "H".into(),
        civic_no: None,
        data: record("sis", "H", "", None).data,
        content_hash: hash.into(),
    };
    s.hold_records(run, &["sis".into()], &[held("h-1"), held("h-2")], day(1)).await.unwrap();
    assert_eq!(s.held_keys().await.unwrap(), [("sis".to_string(), "H".to_string(), "h-2".to_string())]);

    s.reserve_usernames(&["taken".into(), "taken".into()], day(1)).await.unwrap();
    assert_eq!(s.reserved_usernames().await.unwrap(), ["taken"]);
    s.record_pending(&[("ad".into(), "id-a".into()), ("ad".into(), "id-a".into())], day(2)).await.unwrap();
    assert_eq!(account(s, "id-a").await.unwrap().target, "ad");
}

/// `enid runs --limit N`: zero lists none, a negative limit every run (SQLite's `LIMIT -1`); a
/// name search with a negative limit finds every match. Never an error.
pub(crate) async fn a_negative_limit_lists_every_run<S: StateStore>(s: &S) {
    for n in 0..3 {
        s.record_run("plan", None, "ok", "", None, day(n)).await.unwrap();
    }
    assert_eq!(s.runs(0).await.unwrap().len(), 0);
    assert_eq!(s.runs(2).await.unwrap().len(), 2);
    assert_eq!(s.runs(-1).await.unwrap().len(), 3);
    assert_eq!(s.runs(i64::MIN).await.unwrap().len(), 3);
    s.commit_identities(
        &[ident("a", "anna"), ident("b", "bo")],
        &[record("sis", "p-a", "a", None), record("sis", "p-b", "b", None)],
        &[],
        day(0),
    )
    .await
    .unwrap();
    assert_eq!(s.search_persons("lind", None, -1).await.unwrap().len(), 2);
    assert_eq!(s.search_persons("lind", None, 0).await.unwrap().len(), 0);
    let filter = LogFilter { limit: -5, ..Default::default() };
    assert!(s.log(&filter).await.unwrap().is_empty());
}

/// Person ids, names, usernames and external ids with quotes, backslashes, LIKE's own `%` and
/// `_`, letters outside ASCII and long values: stored and read back as they are, found by
/// exactly themselves, never as a pattern.
pub(crate) async fn hostile_text_round_trips_and_is_found_as_itself<S: StateStore>(s: &S) {
    let long = "Å".repeat(256);
    let odd = [
        ("o1", r#"it's "quoted""#, "O'Brien", r"back\slash"),
        ("o2", "100%", "Under_score", "pct%id"),
        ("o3", "Åsa", "Öberg", "åsa.öberg"),
        ("o4", long.as_str(), long.as_str(), long.as_str()),
        ("o5", r"C:\temp\", "%_\\", r"\\"),
    ];
    let ids: Vec<(IdentityId, String)> = odd.iter().map(|(id, _, _, pid)| ident(id, &format!("u-{pid}"))).collect();
    let rows: Vec<RecordRow> = odd
        .iter()
        .map(|(id, given, family, pid)| {
            let mut r = record("sis", pid, id, None);
            r.given_name = (*given).into();
            r.family_name = (*family).into();
            r.groups = format!("{family}|{given}");
            r.data = serde_json::json!({
                "person_id": pid, "given_name": given, "family_name": family, "location": "x",
                "external_ids": [format!("ext-{pid}"), "shared \"ext\""],
            })
            .to_string();
            r
        })
        .collect();
    s.commit_identities(&ids, &rows, &[], day(0)).await.unwrap();
    let snap = s.snapshot().await.unwrap();
    for (id, given, family, pid) in odd {
        let r = snap.record("sis", pid).unwrap_or_else(|| panic!("{pid:?} is stored"));
        assert_eq!(r.identity_id, id);
        assert_eq!(r.names, Some(crate::core::model::NameFingerprint::of(given, family)));
        let shown = s.records_of(id).await.unwrap();
        assert_eq!((shown[0].given_name.as_str(), shown[0].family_name.as_str()), (given, family));
        assert_eq!(shown[0].groups, [family, given]);
        for needle in [id.to_string(), format!("u-{pid}"), pid.to_string(), format!("ext-{pid}")] {
            assert_eq!(s.find_identity(&needle).await.unwrap(), [id], "{needle:?}");
        }
    }
    assert_eq!(sorted(s.find_identity("shared \"ext\"").await.unwrap()), ["o1", "o2", "o3", "o4", "o5"]);
    for pattern in ["%", "_", "pct_id", "%id", r"back\\slash", "ÅSA", "åsa", "o%"] {
        assert!(s.find_identity(pattern).await.unwrap().is_empty(), "{pattern:?} is no pattern");
    }
    let names = |hits: Vec<super::PersonHit>| sorted(hits.into_iter().map(|h| h.identity_id).collect::<Vec<_>>());
    assert_eq!(names(s.search_persons("o'brien", None, 50).await.unwrap()), ["o1"]);
    assert_eq!(names(s.search_persons("\"quoted\"", None, 50).await.unwrap()), ["o1"]);
    assert_eq!(names(s.search_persons("100%", None, 50).await.unwrap()), ["o2"]);
    assert_eq!(names(s.search_persons("%_\\", None, 50).await.unwrap()), ["o5"]);
    assert_eq!(names(s.search_persons(r"c:\temp\", None, 50).await.unwrap()), ["o5"]);
    assert_eq!(names(s.search_persons("åsa öberg", None, 50).await.unwrap()), ["o3"]);
    assert_eq!(names(s.search_persons(&"å".repeat(200), None, 50).await.unwrap()), ["o4"]);
    assert_eq!(names(s.search_persons("under_score", None, 50).await.unwrap()), ["o2"]);
    assert_eq!(names(s.search_persons("under%score", None, 50).await.unwrap()), Vec::<String>::new());
    // The log keeps such names as they are, and a school matches whole entries only.
    let run = s.begin_run("apply", None, day(1)).await.unwrap();
    let mut o = op("ldap", "o5", "S_1,S%2", set(r"uid=C:\temp\", None, AccountStatus::Active));
    o.username = r"u-\\".into();
    s.record_ops(run, &[o], day(1)).await.unwrap();
    let row = |school: &str| LogFilter { school: Some(school.into()), ..Default::default() };
    assert_eq!(s.log(&row("S%2")).await.unwrap()[0].username.as_deref(), Some(r"u-\\"));
    assert_eq!(s.log(&row("S_1")).await.unwrap().len(), 1);
    assert!(s.log(&row("SX1")).await.unwrap().is_empty());
    assert!(s.log(&row("S%")).await.unwrap().is_empty());
    assert_eq!(account(s, "o5").await.unwrap().key(), Some(r"uid=C:\temp\"));
}

/// A record's whole copy may hold a character JSON writes as `\u0000` (a source that delivers
/// one in a field enid does not check): finding persons, and an incremental read's lookups of
/// held records, work as for any other record.
pub(crate) async fn a_record_whose_data_holds_a_nul_escape_breaks_no_lookup<S: StateStore>(s: &S) {
    use connector_api::PriorQuery;
    let mut odd = sourced_record("N", "id-n", &[("tie-n", "S1", Some("Skolan"))], &["g-n"]);
    odd.data = odd.data.replacen("persons/N", "persons/N\\u0000", 1);
    assert!(odd.data.contains("\\u0000"), "{}", odd.data);
    let plain = sourced_record("P", "id-p", &[("tie-p", "S2", None)], &[]);
    s.commit_identities(&[ident("id-n", "n"), ident("id-p", "p")], &[odd.clone(), plain], &[], day(0)).await.unwrap();
    assert_eq!(s.find_identity("P").await.unwrap(), ["id-p"]);
    assert_eq!(s.find_identity("id-n").await.unwrap(), ["id-n"]);
    let held = crate::store::HeldRow {
        source: "ss".into(),
        person_id: "H".into(),
        civic_no: None,
        data: odd.data.replace("\"N\"", "\"H\"").replace("tie-n", "tie-h"),
        content_hash: "h".into(),
    };
    let run = s.begin_run("apply", None, day(1)).await.unwrap();
    s.hold_records(run, &["ss".into()], &[held], day(1)).await.unwrap();
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let found = s.stored_records_where("ss", &PriorQuery { ties: set(&["tie-h"]), ..Default::default() }).await;
    assert_eq!(found.unwrap().into_iter().map(|r| r.person_id).collect::<Vec<_>>(), ["H"]);
    let units = s.stored_units("ss").await.unwrap();
    assert!(units.contains_key("S1") && units.contains_key("S2"), "{units:?}");
    assert_eq!(s.find_identity("P").await.unwrap(), ["id-p"], "a held record breaks nothing either");
}

/// A NUL in what is looked up (an API path or a search form's `%00`) finds nothing, as any
/// other text no one has; never a database error.
pub(crate) async fn a_nul_in_what_is_looked_up_finds_nothing<S: StateStore>(s: &S) {
    s.commit_identities(&[ident("id-a", "anna")], &[record("sis", "P1", "id-a", None)], &[], day(0)).await.unwrap();
    assert!(s.find_identity("P1\0").await.unwrap().is_empty());
    assert!(s.find_identity("\0").await.unwrap().is_empty());
    assert!(s.search_persons("kim\0", None, 10).await.unwrap().is_empty());
    assert_eq!(s.search_persons("kim", None, 10).await.unwrap().len(), 1);
    assert_eq!(s.load_plan("p\0").await.unwrap(), None);
}
