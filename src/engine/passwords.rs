//! First passwords: made from the OS random source for each account a target wants one on
//! ([`PasswordRules`]), sent with the create, and, when the target hands them out, kept sealed
//! until a school admin reads them once with `enid passwords show`.
//!
//! A kept password is sealed with XChaCha20-Poly1305 under a key derived from the password key
//! file (`[state] password_key_file`, made like the id key when first needed), which lives
//! outside the state database: a copy of the state alone reveals no password. The state records
//! the key's fingerprint: another key never opens, or replaces, what the recorded one sealed. The
//! seal binds the row to its target and identity, so a sealed value moved to another row does
//! not open. Passwords never enter a plan, the log, `explain` or an error message; the one output
//! that shows them is the hand-out, and a password shown there is forgotten once the output was
//! delivered: the hand-out is claim, show, confirm (forget) or give back ([`Claim`]).

use super::{Engine, EngineError};
use crate::core::identity::IdKey;
use crate::core::model::IdentityId;
use crate::store::{OpRecord, OpResult, Ownership, PasswordFilter, SealedPassword, StateStore};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use connector_api::{PasswordRules, Secret};

/// Where the state records the password key's fingerprint (`meta`).
pub(super) const PASSWORD_KEY_FINGERPRINT: &str = "password_key_fingerprint";

const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGITS: &[u8] = b"23456789";
/// Symbols found on every keyboard layout a Swedish school uses, none that a shell or a CSV
/// export mangles.
const SYMBOLS: &[u8] = b"!#%+-=?";

/// Makes a first password of `rules.length` characters (at least 8) holding upper and lower
/// case letters, digits and symbols, none of them easily mistaken for another (no `0`/`O`,
/// `1`/`l`/`I`). It contains no part of three or more characters of `avoid` (the username and
/// names: AD refuses such passwords).
pub fn generate(rules: PasswordRules, avoid: &[&str]) -> Result<Secret, String> {
    generate_with(&mut Random::default(), rules, avoid)
}

fn generate_with(random: &mut Random, rules: PasswordRules, avoid: &[&str]) -> Result<Secret, String> {
    let length = rules.length.max(8);
    let all: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS].concat();
    let tokens: Vec<String> = avoid
        .iter()
        .flat_map(|s| s.split(|c: char| !c.is_alphanumeric()))
        .filter(|t| t.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect();
    for _ in 0..100 {
        let mut chars: Vec<u8> = Vec::with_capacity(length);
        for class in [UPPER, LOWER, DIGITS, SYMBOLS] {
            chars.push(class[random.below(class.len())?]);
        }
        while chars.len() < length {
            chars.push(all[random.below(all.len())?]);
        }
        // The four required characters to random places.
        for i in (1..chars.len()).rev() {
            chars.swap(i, random.below(i + 1)?);
        }
        let password = String::from_utf8(chars).map_err(|e| e.to_string())?;
        let lower = password.to_lowercase();
        if !tokens.iter().any(|t| lower.contains(t.as_str())) {
            return Ok(Secret::new(password));
        }
    }
    Err("could not make a password free of the person's names in 100 tries".into())
}

/// Bytes from the OS random source, read 256 at a time.
struct Random {
    buf: [u8; 256],
    used: usize,
}

impl Default for Random {
    fn default() -> Self {
        Random { buf: [0; 256], used: 256 }
    }
}

impl Random {
    fn byte(&mut self) -> Result<u8, String> {
        if self.used == self.buf.len() {
            getrandom::fill(&mut self.buf).map_err(|e| format!("the OS random source failed: {e}"))?;
            self.used = 0;
        }
        self.used += 1;
        Ok(self.buf[self.used - 1])
    }

    /// A uniformly random index below `n` (1 ≤ n ≤ 256), without modulo bias.
    fn below(&mut self, n: usize) -> Result<usize, String> {
        let limit = 256 - 256 % n;
        loop {
            let b = usize::from(self.byte()?);
            if b < limit {
                return Ok(b % n);
            }
        }
    }
}

/// Gives every create among `sends` its first password; returns the rows to keep for the
/// hand-out when the target hands them out (sealed: nothing in the clear leaves this function
/// but the operations themselves).
pub(super) fn give_first_passwords(
    key: Option<&IdKey>,
    target: &str,
    rules: PasswordRules,
    sends: &mut [(&crate::core::plan::PlannedOp, super::apply::Outgoing<'_>)],
) -> Result<Vec<SealedPassword>, String> {
    use connector_api::TargetOp;
    let mut random = Random::default();
    let sealer = key.filter(|_| rules.handed_out).map(Sealer::new);
    let mut keep = Vec::new();
    for (op, send) in sends.iter_mut() {
        let TargetOp::Create { account } = &**send else { continue };
        let avoid = [account.username.as_str(), &account.display_name, &account.given_name, &account.family_name];
        let password = generate_with(&mut random, rules, &avoid)?;
        let mut account = account.clone();
        if let Some(sealer) = &sealer {
            keep.push(SealedPassword {
                target: target.to_string(),
                identity_id: op.identity.clone(),
                username: String::new(),
                school: op.school.to_string(),
                sealed: sealer.seal(target, &op.identity, &password, &account.display_name)?,
                created_at: String::new(),
            });
        }
        account.initial_password = Some(Box::new(password));
        *send = super::apply::Outgoing::Changed(Box::new(TargetOp::Create { account }));
    }
    Ok(keep)
}

/// What a sealed row holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Sealed {
    password: String,
    /// The name the account was made with, for the admin to recognise the person.
    display_name: String,
}

/// Seals and opens kept passwords.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(****)")
    }
}

impl Sealer {
    pub fn new(key: &IdKey) -> Sealer {
        let k = key.derive_secret(b"enid first password seal v1");
        Sealer { cipher: XChaCha20Poly1305::new((&k).into()) }
    }

    fn aad(target: &str, identity: &str) -> Vec<u8> {
        format!("{target}\0{identity}").into_bytes()
    }

    /// A password as the state keeps it: a random nonce, then the ciphertext.
    pub fn seal(&self, target: &str, identity: &str, password: &Secret, display_name: &str) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| format!("the OS random source failed: {e}"))?;
        let plain =
            serde_json::to_vec(&Sealed { password: password.expose().to_string(), display_name: display_name.into() })
                .map_err(|e| e.to_string())?;
        let aad = Self::aad(target, identity);
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(&XNonce::from(nonce), Payload { msg: &plain, aad: &aad })
                .map_err(|_| "sealing failed".to_string())?,
        );
        Ok(out)
    }

    /// The password and display name of a kept row, or why it does not open.
    fn open(&self, row: &SealedPassword) -> Result<(Secret, String), String> {
        if row.sealed.len() < 24 + 16 {
            return Err("the kept value is cut short".into());
        }
        let (nonce, ct) = row.sealed.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| "the kept value is cut short".to_string())?;
        let aad = Self::aad(&row.target, &row.identity_id);
        let plain = self
            .cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| "it does not open with this id key (another key, or a changed row)".to_string())?;
        let s: Sealed = serde_json::from_slice(&plain).map_err(|e| e.to_string())?;
        Ok((Secret::new(s.password), s.display_name))
    }
}

/// Which first passwords to hand out.
#[derive(Debug, Clone, Default)]
pub struct HandOutRequest {
    /// Those of one school unit's persons.
    pub school: Option<String>,
    /// Those of persons with protected personal data (never listed by school).
    pub protected: bool,
    /// Only those set on this target.
    pub target: Option<String>,
}

/// How long a hand-out's claim holds its passwords. A claim neither confirmed (the output was
/// delivered) nor given back (it failed) within this time, because its process was killed or
/// its reader never took the output, lapses: the next hand-out shows those passwords again.
/// Long enough for a printer or a pager to take a school's list, short enough that an admin who
/// saw nothing can simply run the hand-out again.
pub const CLAIM_TIMEOUT: chrono::Duration = chrono::Duration::minutes(5);

/// What a hand-out claimed: the passwords to show, held for it alone until it confirms that they
/// were delivered ([`Engine::confirm_handout`]: then they are forgotten) or gives them back
/// ([`Engine::release_claim`]), or [`CLAIM_TIMEOUT`] passes.
#[derive(Debug, Default)]
pub struct Claim {
    /// The claim's id: what a front end confirms or gives back, also from another request.
    pub id: String,
    pub passwords: Vec<HandedOut>,
    /// Why some others could not be read (those stay kept, unclaimed).
    pub unreadable: Vec<String>,
    /// How many others of those asked for another hand-out holds now (they come back if it is
    /// not confirmed within [`CLAIM_TIMEOUT`]).
    pub held_elsewhere: usize,
}

/// One first password handed out.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HandedOut {
    pub target: String,
    pub identity: IdentityId,
    /// The login; `None` for a protected person (known to whoever handles protected persons).
    pub username: Option<String>,
    /// The name the account was made with; `None` for a protected person.
    pub display_name: Option<String>,
    pub school: String,
    #[serde(serialize_with = "expose")]
    pub password: Secret,
    /// When it was set.
    pub set_at: String,
}

fn expose<S: serde::Serializer>(s: &Secret, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose())
}

/// A new claim id: 128 random bits, so that no two hand-outs, in any process, share one.
fn new_claim_id() -> Result<String, EngineError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| EngineError::Passwords(format!("the OS random source failed: {e}")))?;
    Ok(crate::core::id::hex(&bytes).into())
}

/// Whether `s` has the shape of a claim id ([`new_claim_id`]: 32 hexadecimal digits), which a
/// front end takes in a URL whatever civic number its digits happen to spell.
pub fn is_claim_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Why a viewer may not hand out what a [`HandOutRequest`] asks for (HTTP 403, 404, 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandOutRefused {
    /// Protected persons' passwords are an administrator's to hand out.
    #[error("protected persons' first passwords are handed out by an administrator")]
    ProtectedNeedsAdmin,
    /// Not one of the viewer's school units (shown as no such unit).
    #[error("no such school unit")]
    NotTheirs,
    /// A school admin says which of their units.
    #[error("say which of your school units")]
    SayWhich,
}

impl HandOutRequest {
    /// Whether `viewer` may claim these: an admin anything; a school admin one of their own
    /// units, never protected persons'.
    pub fn allowed_for(&self, viewer: &super::Viewer) -> Result<(), HandOutRefused> {
        let Some(mine) = &viewer.schools else { return Ok(()) };
        match &self.school {
            _ if self.protected => Err(HandOutRefused::ProtectedNeedsAdmin),
            Some(s) if mine.contains(s) => Ok(()),
            Some(_) => Err(HandOutRefused::NotTheirs),
            None => Err(HandOutRefused::SayWhich),
        }
    }
}

/// Whether every password of a claim (`rows`) is `viewer`'s to hand out, as
/// [`HandOutRequest::allowed_for`] decides a claim: an administrator's all; a school admin's
/// their units' persons', never a protected person's (whatever unit they attend).
fn all_theirs(
    rows: &[SealedPassword],
    viewer: &super::Viewer,
    protected: &std::collections::HashSet<IdentityId>,
) -> bool {
    viewer.schools.is_none() || rows.iter().all(|r| viewer.sees(&r.school) && !protected.contains(&r.identity_id))
}

/// The entries of a comma-separated list of school units that `viewer` sees (a school admin is
/// not shown a multi-school person's other units).
fn units_seen(schools: &str, viewer: &super::Viewer) -> String {
    schools.split(',').filter(|s| !s.is_empty() && viewer.sees(s)).collect::<Vec<_>>().join(",")
}

/// How many first passwords wait for the hand-out in one school unit (or, for an
/// administrator, among protected persons: `school` empty, `protected` true).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Waiting {
    pub school: String,
    pub protected: bool,
    pub count: usize,
}

impl Engine {
    /// The first step of a hand-out: claims the first passwords kept for the persons asked for
    /// and opens them. Claimed, they are skipped by every other hand-out (two at once never show
    /// one password twice) but still kept: the front end shows them, then calls
    /// [`Engine::confirm_handout`] once the whole output was delivered (they are forgotten) or
    /// [`Engine::release_claim`] when it failed (they are given back). Passwords kept longer than
    /// `[state] password_handout_days` are forgotten first. A protected person's password is
    /// claimed only with `protected`, shown by enid id.
    pub async fn claim_passwords(&self, request: &HandOutRequest, now: DateTime<Utc>) -> Result<Claim, EngineError> {
        if let Some(t) = &request.target
            && !self.targets.contains_key(t)
        {
            return Err(EngineError::Passwords(format!("no target \"{t}\" in the config; fix --target")));
        }
        if self.password_targets().is_empty() {
            return Err(EngineError::Passwords(
                "no target hands out first passwords; set initial_password = \"generated\" on an AD target".into(),
            ));
        }
        self.expire_passwords(now).await?;
        let lapsed_before = now - CLAIM_TIMEOUT;
        let filter = PasswordFilter {
            school: if request.protected { None } else { request.school.clone() },
            target: request.target.clone(),
            claims_lapsed_before: None,
            claim: None,
        };
        let protected = self.store.protected_identities().await?;
        let asked = |rows: Vec<SealedPassword>| -> Vec<SealedPassword> {
            rows.into_iter().filter(|r| protected.contains(&r.identity_id) == request.protected).collect()
        };
        let all = asked(self.store.passwords(&filter).await?).len();
        let rows =
            asked(self.store.passwords(&PasswordFilter { claims_lapsed_before: Some(lapsed_before), ..filter }).await?);
        let mut claim =
            Claim { id: new_claim_id()?, held_elsewhere: all.saturating_sub(rows.len()), ..Claim::default() };
        if rows.is_empty() {
            return Ok(claim); // no key is read (or made) for nothing
        }
        let sealer = Sealer::new(self.password_key().await?);
        let mut opened = Vec::with_capacity(rows.len());
        for r in rows {
            match sealer.open(&r) {
                Ok(p) => opened.push((r, p)),
                // Kept for later (a restored key opens it); the others are handed out.
                Err(why) => claim.unreadable.push(format!(
                    "the first password of identity {} on target \"{}\" cannot be read: {why}; restore the \
                     password key the state recorded, or set a new password on the account",
                    r.identity_id, r.target
                )),
            }
        }
        // Claimed before they are shown: of two hand-outs at once, each password goes to one.
        let rows: Vec<SealedPassword> = opened.iter().map(|(r, _)| r.clone()).collect();
        let claimed = self.store.claim_passwords(&rows, &claim.id, now, lapsed_before).await?;
        claim.held_elsewhere += rows.len().saturating_sub(claimed.len());
        let claimed: std::collections::HashSet<(String, IdentityId)> =
            claimed.into_iter().map(|r| (r.target, r.identity_id)).collect();
        let shown = !request.protected;
        claim.passwords = opened
            .into_iter()
            .filter(|(r, _)| claimed.contains(&(r.target.clone(), r.identity_id.clone())))
            .map(|(r, (password, display_name))| HandedOut {
                target: r.target,
                identity: r.identity_id,
                username: shown.then_some(r.username),
                display_name: shown.then_some(display_name),
                // The unit asked for, not the person's others (another school's code is not the
                // asker's to read).
                school: match (&request.school, shown) {
                    (_, false) => String::new(),
                    (Some(unit), true) => unit.clone(),
                    (None, true) => r.school,
                },
                password,
                set_at: r.created_at,
            })
            .collect();
        Ok(claim)
    }

    /// The passwords a claim still holds, opened again: what a front end shows once more when
    /// its first answer was lost (an HTTP GET retried), forgetting nothing. A claim that is not
    /// wholly `viewer`'s ([`Engine::claim_is_theirs`]: an administrator's of every unit or of
    /// protected persons, to a school admin) holds nothing for them; a protected person's are by
    /// enid id only. A claim confirmed, given back, or lapsed and taken by another hand-out holds
    /// nothing.
    pub async fn claimed_passwords(&self, claim: &str, viewer: &super::Viewer) -> Result<Vec<HandedOut>, EngineError> {
        let filter = PasswordFilter { claim: Some(claim.to_string()), ..PasswordFilter::default() };
        let rows: Vec<SealedPassword> = self.store.passwords(&filter).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let protected = self.store.protected_identities().await?;
        if !all_theirs(&rows, viewer, &protected) {
            return Ok(Vec::new());
        }
        let sealer = Sealer::new(self.password_key().await?);
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            // One that does not open was left out of the claim's first answer too.
            let Ok((password, display_name)) = sealer.open(&r) else { continue };
            let shown = !protected.contains(&r.identity_id);
            out.push(HandedOut {
                target: r.target,
                identity: r.identity_id,
                username: shown.then_some(r.username),
                display_name: shown.then_some(display_name),
                school: if shown { units_seen(&r.school, viewer) } else { String::new() },
                password,
                set_at: r.created_at,
            });
        }
        Ok(out)
    }

    /// The first passwords kept and not handed out that `viewer` may claim, counted per school
    /// unit of theirs (a person of several units counts in each); protected persons' counted
    /// apart, for an administrator only. Opens nothing.
    pub async fn waiting_passwords(&self, viewer: &super::Viewer) -> Result<Vec<Waiting>, EngineError> {
        let rows = self.store.passwords(&PasswordFilter::default()).await?;
        let protected = self.store.protected_identities().await?;
        let mut per_school: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        let mut hidden = 0;
        for r in rows.iter().filter(|r| !r.sealed.is_empty()) {
            if protected.contains(&r.identity_id) {
                hidden += 1;
                continue;
            }
            for s in r.school.split(',').filter(|s| !s.is_empty()) {
                if viewer.sees(s) {
                    *per_school.entry(s.to_string()).or_default() += 1;
                }
            }
        }
        let mut out: Vec<Waiting> =
            per_school.into_iter().map(|(school, count)| Waiting { school, protected: false, count }).collect();
        if viewer.schools.is_none() && hidden > 0 {
            out.push(Waiting { school: String::new(), protected: true, count: hidden });
        }
        Ok(out)
    }

    /// Whether `viewer` may confirm or give back the claim: an administrator any; a school
    /// admin one whose passwords are all of their units' persons, none of a protected person.
    /// (Another's claim is shown as one that holds nothing.)
    pub async fn claim_is_theirs(&self, claim: &str, viewer: &super::Viewer) -> Result<bool, EngineError> {
        if viewer.schools.is_none() {
            return Ok(true);
        }
        let filter = PasswordFilter { claim: Some(claim.to_string()), ..Default::default() };
        let rows = self.store.passwords(&filter).await?;
        let protected = self.store.protected_identities().await?;
        Ok(all_theirs(&rows, viewer, &protected))
    }

    /// The last step of a delivered hand-out: forgets the passwords the claim still holds and
    /// records who got one in the sync log (never the password), as one run. Call it only once
    /// the whole output was written and flushed. Returns how many were forgotten: fewer than
    /// were claimed when the claim lapsed and another hand-out took some of them meanwhile.
    pub async fn confirm_handout(&self, claim: &str, now: DateTime<Utc>) -> Result<usize, EngineError> {
        let gone = self.store.confirm_claim(claim).await?;
        if gone.is_empty() {
            return Ok(0);
        }
        let protected = self.store.protected_identities().await?;
        let run = self.store.begin_run("passwords show", None, now).await?;
        let records: Vec<OpRecord> = gone
            .iter()
            .map(|r| {
                // A protected person by enid id only, with no school unit.
                let shown = !protected.contains(&r.identity_id);
                OpRecord {
                    target: r.target.clone(),
                    identity_id: r.identity_id.clone(),
                    username: if shown { r.username.clone() } else { r.identity_id.to_string() },
                    school: if shown { r.school.clone() } else { String::new() },
                    action: "hand_out_password".into(),
                    detail: "first password shown to an administrator and forgotten".into(),
                    group: false,
                    result: OpResult::Ok(Ownership::Unchanged),
                }
            })
            .collect();
        self.store.record_ops(run, &records, now).await?;
        let summary = format!("handed out {} first passwords", gone.len());
        self.store.finish_run(run, "ok", &summary, now).await?;
        tracing::info!(count = gone.len(), "{summary}");
        Ok(gone.len())
    }

    /// The last step of a failed hand-out: gives back the passwords the claim holds, forgetting
    /// nothing; the next hand-out shows them. Logged as a failed run with `why`. Returns how many.
    pub async fn release_claim(&self, claim: &str, why: &str, now: DateTime<Utc>) -> Result<u64, EngineError> {
        let n = self.store.release_claim(claim).await?;
        if n > 0 {
            let run = self.store.begin_run("passwords show", None, now).await?;
            let summary = format!("gave back {n} first passwords, forgetting none: {why}");
            self.store.finish_run(run, "failed", &summary, now).await?;
            tracing::info!(count = n, "{summary}");
        }
        Ok(n)
    }

    /// The key first passwords are sealed with: read from `[state] password_key_file`, or made
    /// there when the state keeps nothing sealed with another one.
    pub(super) async fn password_key(&self) -> Result<&IdKey, EngineError> {
        self.password_key
            .get_or_try_init(|| async {
                let path = self.config.state.password_key_path();
                let recorded = self.store.meta(PASSWORD_KEY_FINGERPRINT).await?.filter(|f| !f.is_empty());
                // Every sealed row counts, a pending create's too: that account is adopted by
                // the next run and its password handed out then, so this key must still open it.
                let kept = match recorded {
                    Some(_) => self.store.kept_passwords().await?,
                    None => 0,
                };
                let why = format!(
                    "{kept} first passwords kept for the hand-out are sealed with it; if it is lost for good, `enid \
                     passwords forget --yes` drops them (those accounts then need passwords set by hand)"
                );
                let loaded = super::idkey::load_named(&path, kept == 0, "password key file", &why)
                    .map_err(EngineError::Passwords)?;
                let fingerprint = loaded.key.fingerprint();
                match recorded {
                    Some(r) if r != fingerprint && kept > 0 => {
                        return Err(EngineError::Passwords(format!(
                            "password key file {} is not the key the kept first passwords were sealed with \
                             (fingerprint {fingerprint}, expected {r}); restore the right file. {why}",
                            path.display()
                        )));
                    }
                    Some(r) if r == fingerprint => {}
                    _ => self.store.set_meta(PASSWORD_KEY_FINGERPRINT, &fingerprint).await?,
                }
                if loaded.created {
                    tracing::warn!(
                        "created the password key {} (first passwords are kept sealed with it until they are \
                         handed out): back it up with the state database",
                        path.display()
                    );
                }
                Ok(loaded.key)
            })
            .await
    }

    /// Forgets every kept first password (a lost password key: they cannot be read); their
    /// accounts need passwords set by hand. Logged as a run. Returns how many were forgotten.
    pub async fn forget_passwords(&self, now: DateTime<Utc>) -> Result<u64, EngineError> {
        let run = self.store.begin_run("passwords forget", None, now).await?;
        let never = now + chrono::Duration::days(365 * 1000);
        let n = self.store.expire_passwords(never, never).await?;
        self.store.set_meta(PASSWORD_KEY_FINGERPRINT, "").await?;
        self.store.finish_run(run, "ok", &format!("forgot {n} first passwords"), now).await?;
        Ok(n)
    }

    /// The targets whose first passwords are kept for the hand-out.
    pub fn password_targets(&self) -> Vec<String> {
        self.targets
            .iter()
            .filter(|(_, h)| h.caps.initial_password.is_some_and(|p| p.handed_out))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Forgets passwords kept longer than `[state] password_handout_days`. One a hand-out has
    /// claimed stays while the claim lives: that hand-out may be showing it right now, and if its
    /// output fails it must get the password back, not lose it to expiry in the meantime. It is
    /// forgotten by the hand-out's confirmation, or by the first expiry after the claim was
    /// given back or lapsed.
    pub(super) async fn expire_passwords(&self, now: DateTime<Utc>) -> Result<(), EngineError> {
        let days = i64::from(self.config.state.password_handout_days);
        let n = self.store.expire_passwords(now - chrono::Duration::days(days), now - CLAIM_TIMEOUT).await?;
        if n > 0 {
            tracing::info!(count = n, days, "forgot first passwords that were never handed out");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_school_admin_is_shown_their_own_units_of_a_person_only() {
        let lisa = super::super::Viewer::of_schools(["S1".to_string()]);
        assert_eq!(units_seen("S1,S2", &lisa), "S1");
        assert_eq!(units_seen("S2,S1,S3", &lisa), "S1");
        assert_eq!(units_seen("S1,S2", &super::super::Viewer::admin()), "S1,S2");
    }

    fn rules(length: usize) -> PasswordRules {
        PasswordRules { length, handed_out: true }
    }

    #[test]
    fn passwords_hold_every_class_and_none_of_the_names() {
        for _ in 0..200 {
            let p = generate(rules(14), &["anna.svensson", "Anna Svensson"]).unwrap();
            let p = p.expose();
            assert_eq!(p.len(), 14);
            assert!(p.bytes().any(|b| UPPER.contains(&b)), "{p}");
            assert!(p.bytes().any(|b| LOWER.contains(&b)), "{p}");
            assert!(p.bytes().any(|b| DIGITS.contains(&b)), "{p}");
            assert!(p.bytes().any(|b| SYMBOLS.contains(&b)), "{p}");
            assert!(!p.contains(['0', 'O', '1', 'l', 'I']), "{p}");
            // Whole name parts of three or more characters never appear (what AD refuses).
            assert!(!p.to_lowercase().contains("anna") && !p.to_lowercase().contains("svensson"), "{p}");
        }
        // A name part the random characters would often hold is avoided every time.
        for _ in 0..200 {
            let p = generate(rules(64), &["Ek Bo", "abc"]).unwrap();
            assert!(!p.expose().to_lowercase().contains("abc"), "{}", p.expose());
        }
        assert_eq!(generate(rules(3), &[]).unwrap().expose().len(), 8);
        let a = generate(rules(32), &[]).unwrap();
        let b = generate(rules(32), &[]).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_sealed_password_opens_only_in_its_own_row_with_its_key() {
        let key = IdKey::new([7; 32]);
        let sealer = Sealer::new(&key);
        let secret = Secret::new("Xy3#abcdEFGH");
        let sealed = sealer.seal("ad", "id-1", &secret, "Anna Svensson").unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("Xy3#abcdEFGH"));
        let row = |target: &str, identity: &str, sealed: Vec<u8>| SealedPassword {
            target: target.into(),
            identity_id: identity.into(),
            username: String::new(),
            school: String::new(),
            sealed,
            created_at: String::new(),
        };
        let (p, name) = sealer.open(&row("ad", "id-1", sealed.clone())).unwrap();
        assert_eq!((p.expose(), name.as_str()), ("Xy3#abcdEFGH", "Anna Svensson"));
        assert!(sealer.open(&row("ad", "id-2", sealed.clone())).is_err());
        assert!(sealer.open(&row("scim", "id-1", sealed.clone())).is_err());
        assert!(Sealer::new(&IdKey::new([8; 32])).open(&row("ad", "id-1", sealed.clone())).is_err());
        let mut cut = sealed;
        cut.truncate(30);
        assert!(sealer.open(&row("ad", "id-1", cut)).is_err());
    }
}
