//! The target conformance suite: the scenarios every target passes against its live server,
//! driven through the engine, with faults from [`FaultProxy`] on the path to the server.
//!
//! A target's test supplies a [`Rig`]: the engine configured with one CSV source and the target
//! under test (reached through the proxy), enid's default naming (`given.family`),
//! `on_name_change = "rename"`, class groups named `{{ school_unit }}-{{ group }}` when the
//! target has groups, and the connector itself, reaching the server directly, for looking at
//! what the engine did. [`run`] plays one story on it, a scenario at a time, each building on the
//! one before:
//!
//! 1. `create`: three persons become three accounts, each carrying its own owner marker;
//! 2. `replan_is_empty`: the plan after an apply changes nothing;
//! 3. `update_one_attribute`: a mover between schools is one update, and nothing else;
//! 4. `disable`: a person gone from the export is disabled, not deleted;
//! 5. `re_enable`: back in the export, the same account (same anchor) is enabled again;
//! 6. `rename`: a new given name renames the account in place of a new one;
//! 7. `groups`: a class group is created with its members, a joiner is added, a mover removed,
//!    member value by member value;
//! 8. `delete_after_grace`: a leaver's account is deleted only after the grace period;
//! 9. `unowned_left_alone`: an account made by hand with the username a new person would get is
//!    left exactly as it was; she gets another username, or (a target that takes such an
//!    account for hers, made before enid) she is blocked: never a second account;
//! 10. `failure_mid_batch_converges`: the connection dropped in the middle of an apply, the next
//!     apply converges with exactly one account per person;
//! 11. `throttled_is_honoured`: answered "busy", the connector stops (or waits as long as it was
//!     told and no longer) and the next apply converges;
//! 12. `slow_server_converges`: every request held a while on the way, an apply still does
//!     exactly what it planned.
//!
//! Nothing here knows a connector type: what differs between targets comes from their
//! [`Capabilities`].

pub mod proxy;

pub use proxy::{FaultProxy, Protocol, Seen, TlsEnds};

use crate::{Capabilities, MemberForm, ObservedAccount, Role, Target};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A person as the suite's source gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The source's key.
    pub key: String,
    pub given: String,
    pub family: String,
    pub role: Role,
    pub school: String,
    pub groups: Vec<String>,
}

impl Person {
    fn new(key: &str, given: &str, family: &str, school: &str, group: &str) -> Person {
        Person {
            key: key.into(),
            given: given.into(),
            family: family.into(),
            role: Role::Student,
            school: school.into(),
            groups: vec![group.into()],
        }
    }

    /// The username enid's default naming gives (ASCII names only in this suite).
    fn username(&self) -> String {
        format!("{}.{}", self.given.split_whitespace().next().unwrap_or(""), self.family).to_lowercase()
    }
}

/// What a plan showed, or what an apply did, as the engine reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The command succeeded (exit code 0).
    pub ok: bool,
    pub create: usize,
    pub rename: usize,
    pub update: usize,
    /// Accounts moved to another place (OU) on a target with placements.
    pub moved: usize,
    pub enable: usize,
    pub disable: usize,
    pub delete: usize,
    pub group_create: usize,
    pub members_added: usize,
    pub members_removed: usize,
    pub group_delete: usize,
    /// Persons who get no account now (something unowned in the way).
    pub blocked: usize,
    /// What the engine said on failure (stderr).
    pub message: String,
}

impl Outcome {
    /// What `enid plan --json` printed (`stdout`), with whether the command succeeded and what
    /// it said on stderr.
    pub fn from_plan_json(stdout: &str, ok: bool, stderr: String) -> Outcome {
        let Ok(plan) = serde_json::from_str::<serde_json::Value>(stdout) else {
            return Outcome { ok: false, message: stderr, ..Default::default() };
        };
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0) as usize;
        let (s, g) = (&plan["summary"], &plan["group_summary"]);
        Outcome {
            ok,
            create: n(&s["create"]),
            rename: n(&s["rename"]),
            update: n(&s["update"]),
            moved: n(&s["move"]),
            enable: n(&s["enable"]),
            disable: n(&s["disable"]),
            delete: n(&s["delete"]),
            group_create: n(&g["create"]),
            members_added: n(&g["members_added"]),
            members_removed: n(&g["members_removed"]),
            group_delete: n(&g["delete"]),
            blocked: plan["blocked"].as_array().map_or(0, Vec::len),
            message: stderr,
        }
    }

    /// Whether the plan changes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.create + self.rename + self.update + self.moved + self.enable + self.disable + self.delete == 0
            && self.group_create + self.members_added + self.members_removed + self.group_delete == 0
    }
}

/// What a target's test supplies.
pub trait Rig {
    type T: Target;
    /// The connector under test, reaching the server directly: for looking only.
    fn target(&self) -> &Self::T;
    /// The proxy between the engine's connector and the server.
    fn proxy(&self) -> &FaultProxy;
    /// From now on the source gives exactly these persons.
    fn set_people(&mut self, people: &[Person]);
    /// A dry run on `day` (days after the suite's first day).
    fn plan(&mut self, day: u32) -> Outcome;
    /// An apply on `day`; the outcome counts what its plan held.
    fn apply(&mut self, day: u32) -> Outcome;
    /// Makes an account by hand on the server, as an administrator would (not enid's).
    fn make_unowned(&mut self, username: &str, given: &str, family: &str);
    /// Days a leaver's disabled account is kept before it is deleted.
    fn grace_days(&self) -> u32;
}

/// One scenario's result.
#[derive(Debug)]
pub struct Report {
    pub scenario: &'static str,
    pub result: Result<(), String>,
}

/// Runs the whole story; stops at the first scenario that fails (the rest build on it).
pub async fn run<R: Rig>(rig: &mut R) -> Vec<Report> {
    let mut story = Story { rig, people: Vec::new(), day: 0 };
    let mut out = Vec::new();
    macro_rules! scenario {
        ($name:ident) => {
            let result = story.$name().await;
            let failed = result.is_err();
            out.push(Report { scenario: stringify!($name), result });
            if failed {
                return out;
            }
        };
    }
    scenario!(create);
    scenario!(replan_is_empty);
    scenario!(looked_up_by_owner_and_username);
    scenario!(update_one_attribute);
    scenario!(disable);
    scenario!(re_enable);
    scenario!(rename);
    scenario!(groups);
    scenario!(delete_after_grace);
    scenario!(unowned_left_alone);
    scenario!(failure_mid_batch_converges);
    scenario!(throttled_is_honoured);
    scenario!(slow_server_converges);
    out
}

/// Panics with every failed scenario, for a test.
pub fn assert_passed(reports: &[Report]) {
    let failed: Vec<String> =
        reports.iter().filter_map(|r| r.result.as_ref().err().map(|e| format!("{}: {e}", r.scenario))).collect();
    assert!(failed.is_empty(), "conformance scenarios failed:\n{}", failed.join("\n"));
}

struct Story<'a, R: Rig> {
    rig: &'a mut R,
    people: Vec<Person>,
    day: u32,
}

/// Fails the scenario with a message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

impl<R: Rig> Story<'_, R> {
    fn caps(&self) -> &Capabilities {
        self.rig.target().capabilities()
    }

    /// Every account on the target, by username (lowercase).
    async fn accounts(&self) -> Result<BTreeMap<String, ObservedAccount>, String> {
        let attrs = vec![self.caps().owner_attribute.clone()];
        let all = self.rig.target().observe(&attrs).await.map_err(|e| format!("observe: {}", crate::one_line(&e)))?;
        Ok(all.into_iter().filter_map(|a| Some((a.username()?.to_lowercase(), a))).collect())
    }

    /// The owner marker an account carries.
    fn owner<'b>(&self, a: &'b ObservedAccount) -> Option<&'b str> {
        a.attrs.texts(&self.caps().owner_attribute).next()
    }

    fn set(&mut self, people: Vec<Person>) {
        self.people = people;
        self.rig.set_people(&self.people);
    }

    /// Applies, and checks the apply succeeded and the plan after it is empty.
    fn converge(&mut self, what: &str) -> Result<Outcome, String> {
        let done = self.rig.apply(self.day);
        ensure!(done.ok, "{what}: the apply failed: {}", done.message);
        let again = self.rig.plan(self.day);
        ensure!(again.is_empty(), "{what}: the plan after the apply is not empty: {again:?}");
        Ok(done)
    }

    async fn create(&mut self) -> Result<(), String> {
        self.set(vec![
            Person::new("P1", "Anna", "Berg", "S1", "7A"),
            Person::new("P2", "Bo", "Ek", "S1", "7A"),
            Person::new("P3", "Cy", "Lind", "S2", "8B"),
        ]);
        let done = self.converge("create")?;
        ensure!(done.create == 3, "three creates expected: {done:?}");
        let accounts = self.accounts().await?;
        let mut markers = BTreeSet::new();
        for p in &self.people {
            let a = accounts.get(&p.username()).ok_or_else(|| format!("no account {}", p.username()))?;
            ensure!(!a.disabled, "{} was created disabled", p.username());
            ensure!(a.anchor().is_some(), "{} has no anchor", p.username());
            let m = self.owner(a).ok_or_else(|| format!("{} carries no owner marker", p.username()))?;
            markers.insert(m.to_string());
        }
        ensure!(markers.len() == 3, "the three accounts share owner markers: {markers:?}");
        Ok(())
    }

    async fn replan_is_empty(&mut self) -> Result<(), String> {
        let plan = self.rig.plan(self.day);
        ensure!(plan.ok && plan.is_empty(), "a second plan changes something: {plan:?}");
        Ok(())
    }

    /// What an incremental run reads: the accounts whose owner marker or username is one of a
    /// few values, exactly as the whole read shows them; nothing for a value no account holds.
    async fn looked_up_by_owner_and_username(&mut self) -> Result<(), String> {
        let all = self.accounts().await?;
        let attrs = vec![self.caps().owner_attribute.clone()];
        let t = self.rig.target();
        let find = |field: crate::Field<'static>, values: Vec<String>| {
            let attrs = attrs.clone();
            async move {
                t.observe_where(field, &values, &attrs)
                    .await
                    .map_err(|e| format!("observe_where: {}", crate::one_line(&e)))?
                    .ok_or_else(|| "this target cannot look accounts up (observe_where gives None)".to_string())
            }
        };
        let anna = all.get("anna.berg").ok_or("no account anna.berg")?;
        let cy = all.get("cy.lind").ok_or("no account cy.lind")?;
        let markers: Vec<String> = [anna, cy].iter().filter_map(|a| self.owner(a).map(str::to_string)).collect();
        let mut found = find(crate::Field::Owner, markers).await?;
        found.sort_by(|a, b| a.key().cmp(b.key()));
        let mut want = vec![anna.clone(), cy.clone()];
        want.sort_by(|a, b| a.key().cmp(b.key()));
        ensure!(found == want, "by owner marker: {found:?}, not as observed: {want:?}");
        let found = find(crate::Field::Username, vec!["bo.ek".into()]).await?;
        ensure!(
            found.len() == 1
                && found[0].anchor() == all.get("bo.ek").and_then(|a| a.anchor().map(str::to_owned)).as_deref(),
            "by username bo.ek: {found:?}"
        );
        let none = find(crate::Field::Owner, vec!["00000000-0000-4000-8000-000000000000".into()]).await?;
        ensure!(none.is_empty(), "an owner marker no account holds found {none:?}");
        let none = find(crate::Field::Username, vec!["no.such".into(), "x)(uid=*".into()]).await?;
        ensure!(none.is_empty(), "a username no account holds found {none:?}");
        Ok(())
    }

    async fn update_one_attribute(&mut self) -> Result<(), String> {
        let mut people = self.people.clone();
        people[2].school = "S3".into();
        self.set(people);
        let plan = self.rig.plan(self.day);
        ensure!(plan.update == 1, "one update expected: {plan:?}");
        ensure!(plan.create + plan.rename + plan.disable + plan.enable + plan.delete == 0, "only an update: {plan:?}");
        // Where accounts live by school (AD's OUs), the mover also moves, as the same account.
        let placed = self.caps().placement.is_some();
        ensure!(plan.moved == usize::from(placed), "{} move expected: {plan:?}", usize::from(placed));
        let before = self.accounts().await?.get("cy.lind").cloned().ok_or("no account cy.lind")?;
        self.converge("update")?;
        let after = self.accounts().await?.get("cy.lind").cloned().ok_or("the mover's account is gone")?;
        ensure!(after.anchor() == before.anchor(), "the mover got another account: {before:?} → {after:?}");
        if placed {
            ensure!(after.placement() != before.placement(), "the mover was not moved: {after:?}");
        }
        Ok(())
    }

    async fn disable(&mut self) -> Result<(), String> {
        let before = self.accounts().await?;
        let cy = before.get("cy.lind").cloned().ok_or("no account cy.lind")?;
        self.set(self.people[..2].to_vec());
        let done = self.converge("disable")?;
        ensure!(done.disable == 1 && done.delete == 0, "one disable, no delete: {done:?}");
        let after = self.accounts().await?;
        let now = after.values().find(|a| a.anchor() == cy.anchor()).ok_or("the disabled account is gone")?;
        ensure!(now.disabled, "cy.lind is not disabled");
        Ok(())
    }

    async fn re_enable(&mut self) -> Result<(), String> {
        let before = self.accounts().await?;
        let anchor = before.get("cy.lind").and_then(|a| a.anchor().map(str::to_owned));
        let mut people = self.people.clone();
        people.push(Person::new("P3", "Cy", "Lind", "S3", "8B"));
        self.set(people);
        let done = self.converge("re-enable")?;
        ensure!(done.enable == 1 && done.create == 0, "one enable, no create: {done:?}");
        let after = self.accounts().await?;
        let cy = after.get("cy.lind").ok_or("no account cy.lind")?;
        ensure!(!cy.disabled && cy.anchor() == anchor.as_deref(), "cy.lind is not the same account, enabled: {cy:?}");
        Ok(())
    }

    async fn rename(&mut self) -> Result<(), String> {
        let anchor = self.accounts().await?.get("anna.berg").and_then(|a| a.anchor().map(str::to_owned));
        let mut people = self.people.clone();
        people[0].given = "Annika".into();
        self.set(people);
        let done = self.converge("rename")?;
        ensure!(done.rename == 1 && done.create == 0, "one rename, no create: {done:?}");
        let after = self.accounts().await?;
        ensure!(!after.contains_key("anna.berg"), "the old username is still there");
        let a = after.get("annika.berg").ok_or("no account annika.berg")?;
        ensure!(a.anchor() == anchor.as_deref(), "the rename made another account");
        Ok(())
    }

    /// The members of a group as usernames (through the accounts' keys, or directly).
    async fn members(&self, name: &str) -> Result<Option<BTreeSet<String>>, String> {
        let caps = self.caps().clone();
        let groups =
            self.rig.target().observe_groups().await.map_err(|e| format!("observe groups: {}", crate::one_line(&e)))?;
        let Some(g) = groups.iter().find(|g| caps.group_name(&g.name) == caps.group_name(name)) else {
            return Ok(None);
        };
        let accounts = self.accounts().await?;
        let by_key: BTreeMap<String, &String> = accounts.iter().map(|(u, a)| (caps.key(a.key()), u)).collect();
        let mut out = BTreeSet::new();
        for m in &g.members {
            match caps.groups {
                Some(MemberForm::Username) => out.insert(m.to_lowercase()),
                _ => out.insert(by_key.get(&caps.key(m)).map(|u| u.to_string()).unwrap_or_else(|| format!("?{m}"))),
            };
        }
        Ok(Some(out))
    }

    async fn groups(&mut self) -> Result<(), String> {
        if self.caps().groups.is_none() {
            return Err("the target declares no groups: a rig must configure them".into());
        }
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let now = self.members("S1-7A").await?;
        ensure!(now == Some(set(&["annika.berg", "bo.ek"])), "S1-7A: {now:?}");
        // A joiner is added.
        let mut people = self.people.clone();
        people.push(Person::new("P4", "Dag", "Ny", "S1", "7A"));
        self.set(people);
        let done = self.converge("a joiner")?;
        ensure!(done.create == 1 && done.members_added == 1, "one create, one member added: {done:?}");
        let now = self.members("S1-7A").await?;
        ensure!(now == Some(set(&["annika.berg", "bo.ek", "dag.ny"])), "S1-7A after the joiner: {now:?}");
        // A mover leaves 7A for a new group.
        let mut people = self.people.clone();
        people[1].groups = vec!["7B".into()];
        self.set(people);
        let done = self.converge("a mover")?;
        ensure!(done.group_create == 1 && done.members_removed == 1, "one new group, one member removed: {done:?}");
        let now = self.members("S1-7A").await?;
        ensure!(now == Some(set(&["annika.berg", "dag.ny"])), "S1-7A after the mover: {now:?}");
        let now = self.members("S1-7B").await?;
        ensure!(now == Some(set(&["bo.ek"])), "S1-7B: {now:?}");
        Ok(())
    }

    async fn delete_after_grace(&mut self) -> Result<(), String> {
        let anchor = self.accounts().await?.get("dag.ny").and_then(|a| a.anchor().map(str::to_owned));
        let people: Vec<Person> = self.people.iter().filter(|p| p.key != "P4").cloned().collect();
        self.set(people);
        let done = self.converge("the leaver")?;
        ensure!(done.disable == 1 && done.delete == 0, "disabled first: {done:?}");
        // Disabled today: kept through the day before the grace period ends, deleted on it.
        self.day += self.rig.grace_days().saturating_sub(1);
        let early = self.rig.plan(self.day);
        ensure!(early.delete == 0, "deleted before the grace period ended: {early:?}");
        self.day += 1;
        let done = self.converge("after the grace period")?;
        ensure!(done.delete == 1, "one delete after the grace period: {done:?}");
        let after = self.accounts().await?;
        ensure!(!after.values().any(|a| a.anchor() == anchor.as_deref()), "the account is still there");
        ensure!(after.len() >= 3, "other accounts went with it: {:?}", after.keys().collect::<Vec<_>>());
        Ok(())
    }

    async fn unowned_left_alone(&mut self) -> Result<(), String> {
        self.rig.make_unowned("eva.ek", "Eva", "Ek");
        let before = self.accounts().await?.get("eva.ek").cloned().ok_or("the hand-made account is not seen")?;
        ensure!(self.owner(&before).is_none(), "the hand-made account carries an owner marker");
        // A person whose name gives the username the hand-made account holds: the account is
        // neither changed nor taken over, and no namesake is made beside it (it may be hers,
        // made before enid): she is blocked until an operator decides, on every target.
        let mut people = self.people.clone();
        people.push(Person::new("P5", "Eva", "Ek", "S1", "7A"));
        self.set(people);
        let plan = self.rig.plan(self.day);
        ensure!(plan.blocked >= 1 && plan.create == 0, "she is blocked, nothing is created: {plan:?}");
        let done = self.rig.apply(self.day);
        ensure!(done.ok, "the apply failed: {}", done.message);
        let accounts = self.accounts().await?;
        let after = accounts.get("eva.ek").cloned().ok_or("the hand-made account is gone")?;
        ensure!(after == before, "the hand-made account changed: {before:?} → {after:?}");
        let hers: Vec<&String> = accounts
            .iter()
            .filter(|(u, a)| u.starts_with("eva.ek") && self.owner(a).is_some())
            .map(|(u, _)| u)
            .collect();
        ensure!(hers.is_empty(), "an account was made for her: {hers:?}");
        // She leaves; the hand-made account stays as it is.
        let people: Vec<Person> = self.people.iter().filter(|p| p.key != "P5").cloned().collect();
        self.set(people);
        let done = self.converge("without her")?;
        ensure!(done.disable == 0, "she had no account to disable: {done:?}");
        let last = self.accounts().await?.get("eva.ek").cloned().ok_or("the hand-made account is gone")?;
        ensure!(last == before, "the hand-made account changed: {before:?} → {last:?}");
        Ok(())
    }

    async fn slow_server_converges(&mut self) -> Result<(), String> {
        let mut people = self.people.clone();
        for i in 0..3 {
            people.push(Person::new(&format!("S{i}"), "Sam", &format!("Slow{i}"), "S1", "7A"));
        }
        self.set(people);
        self.rig.proxy().delay(Duration::from_millis(150));
        let done = self.rig.apply(self.day);
        self.rig.proxy().clear();
        ensure!(done.ok, "an apply against a slow server failed: {}", done.message);
        ensure!(done.create == 3, "three creates: {done:?}");
        let again = self.rig.plan(self.day);
        ensure!(again.is_empty(), "the plan after the slow apply is not empty: {again:?}");
        self.one_each().await
    }

    /// Every person has exactly one account, and no owner marker is on two accounts.
    async fn one_each(&self) -> Result<(), String> {
        let accounts = self.accounts().await?;
        let mut markers: BTreeMap<String, usize> = BTreeMap::new();
        for a in accounts.values() {
            if let Some(m) = self.owner(a) {
                *markers.entry(m.to_string()).or_default() += 1;
            }
        }
        ensure!(markers.values().all(|n| *n == 1), "an owner marker is on two accounts: {markers:?}");
        for p in &self.people {
            ensure!(accounts.contains_key(&p.username()), "no account for {}", p.username());
        }
        Ok(())
    }

    async fn failure_mid_batch_converges(&mut self) -> Result<(), String> {
        let mut people = self.people.clone();
        for i in 0..12 {
            people.push(Person::new(&format!("F{i}"), "Fia", &format!("Test{i}"), "S2", "9C"));
        }
        self.set(people);
        // Half of the writes go through (a target that batches sends fewer writes).
        let writes = 12usize.div_ceil(self.caps().max_batch.max(1));
        self.rig.proxy().drop_after(writes / 2);
        let broken = self.rig.apply(self.day);
        self.rig.proxy().clear();
        ensure!(!broken.ok, "an apply whose connection was dropped reported success");
        let done = self.converge("after the dropped connection")?;
        ensure!(done.create < 12, "nothing of the first apply was kept: {done:?}");
        self.one_each().await
    }

    async fn throttled_is_honoured(&mut self) -> Result<(), String> {
        let mut people = self.people.clone();
        for i in 0..4 {
            people.push(Person::new(&format!("T{i}"), "Tor", &format!("Late{i}"), "S2", "9C"));
        }
        self.set(people);
        let proxy = self.rig.proxy();
        proxy.reset_seen();
        let wait = Duration::from_secs(1);
        proxy.throttle(2, Some(wait));
        let first = self.rig.apply(self.day);
        let proxy = self.rig.proxy();
        let seen = proxy.seen();
        proxy.clear();
        let busy: Vec<&Seen> = seen.iter().filter(|s| s.throttled).collect();
        ensure!(!busy.is_empty(), "no request was answered busy: {seen:?}");
        let in_flight = self.caps().max_in_flight.max(1);
        if first.ok {
            // The connector waited and tried again within its budget: never sooner than told.
            let first_busy = busy[0].at;
            let retried: Vec<&Seen> = seen.iter().filter(|s| s.write && !s.throttled && s.at > first_busy).collect();
            ensure!(!retried.is_empty(), "the apply succeeded, but nothing was sent after the throttle");
            let soonest = retried.iter().map(|s| s.at - first_busy).min().unwrap_or_default();
            // Requests already in flight when the answer came may land at once; the next ones wait.
            let early = retried.iter().filter(|s| s.at - first_busy < wait).count();
            ensure!(
                early <= in_flight,
                "{early} writes went out sooner than Retry-After (soonest after {soonest:?}, {in_flight} in flight)"
            );
        } else {
            ensure!(
                first.message.to_lowercase().contains("throttled") || first.message.contains("busy"),
                "the apply failed, but not for the throttle: {}",
                first.message
            );
            // Stopped: after the busy answer only what was already in flight went out.
            let first_busy = busy[0].at;
            let after = seen.iter().filter(|s| s.write && !s.throttled && s.at > first_busy).count();
            ensure!(after <= in_flight, "{after} writes were sent after the target said busy");
        }
        self.converge("after the throttle")?;
        self.one_each().await
    }
}
