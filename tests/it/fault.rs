//! The fault-injection scenario: seeded random sequences of daily exports (joiners, leavers,
//! renames, movers, rejected rows, a dropped column, a reused key, TF numbers becoming
//! personnummer) interleaved with faults (enid killed in the middle of an apply, slapd restarted,
//! the state database deleted and rebuilt with `enid adopt`, `base_dn` changed and changed
//! back), against a real slapd. After every step it checks what enid promises:
//!
//! - no two entries carry one owner value (never a second account for one person);
//! - no hand-made entry changed;
//! - nobody with a valid row in the current export is disabled;
//! - no civic number in any output.
//!
//! `ENID_FAULT_STEPS` (default 14) and `ENID_FAULT_SEED` (default: a few fixed seeds) set the
//! length and the seed: `ENID_FAULT_STEPS=200 ENID_FAULT_SEED=7 cargo test --test it fault` is a
//! long run.

use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// A small seeded generator (xorshift64*): the same seed gives the same scenario.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Debug, Clone)]
struct Person {
    key: String,
    /// Unique per person: how the test finds a person's entry.
    given: String,
    family: String,
    civic: String,
    school: &'static str,
    class: &'static str,
}

const HEADER_F: &str = "person_id,given_name,family_name,civic_no,role,school_unit,groups,start_date,end_date,email";
const SCHOOLS: [&str; 2] = ["SKOLA1", "SKOLA2"];
const CLASSES: [&str; 3] = ["7A", "8B", "9C"];
const FAMILIES: [&str; 6] = ["Berg", "Ek", "Lind", "Holm", "Sjö", "Ström"];

/// What one step's export looks like besides the persons.
#[derive(Debug, Default, Clone)]
struct Quirks {
    /// Keys whose row is broken (bad check digit): rejected, the person kept as stored.
    rejected: BTreeSet<String>,
    /// The optional `email` column is missing.
    drop_email: bool,
    /// (key, civic): the key of a present person given to someone else.
    reused: Option<(String, String, String)>,
}

fn export(people: &[Person], q: &Quirks) -> String {
    let header = if q.drop_email { HEADER_F.trim_end_matches(",email").to_string() } else { HEADER_F.to_string() };
    let mut out = format!("{header}\n");
    for p in people {
        let (given, family, civic) = match &q.reused {
            Some((key, other_civic, name)) if *key == p.key => (name.clone(), "Annan".to_string(), other_civic.clone()),
            _ => (p.given.clone(), p.family.clone(), p.civic.clone()),
        };
        let civic = if q.rejected.contains(&p.key) { broken(&civic) } else { civic };
        let email = if q.drop_email { String::new() } else { format!(",{}@skola.example.org", given.to_lowercase()) };
        out.push_str(&format!("{},{given},{family},{civic},student,{},{},,{email}\n", p.key, p.school, p.class));
    }
    out
}

/// The civic number with a wrong check digit.
fn broken(civic: &str) -> String {
    let mut c: Vec<char> = civic.chars().collect();
    if let Some(last) = c.last_mut().and_then(|d| d.to_digit(10)) {
        let n = c.len();
        c[n - 1] = char::from_digit((last + 1) % 10, 10).unwrap_or('0');
    }
    c.into_iter().collect()
}

struct World {
    env: Env,
    people: Vec<Person>,
    serial: usize,
    outputs: Vec<String>,
    /// Every civic number the exports ever held.
    civics: BTreeSet<String>,
    /// DN → modifyTimestamp of the hand-made entries.
    hand_made: BTreeMap<String, String>,
    /// Keys whose person is kept as stored this step (rejected rows, a reused key).
    kept: BTreeSet<String>,
}

impl World {
    fn person(&mut self, rng: &mut Rng) -> Person {
        self.serial += 1;
        let n = self.serial;
        // Every fifth newcomer has a temporary number first.
        let civic = if n.is_multiple_of(5) {
            format!("2015{:02}{:02}TF{:02}", 1 + n % 12, 1 + n % 28, n % 100)
        } else {
            pnr(n)
        };
        Person {
            key: format!("K{n:05}"),
            given: format!("Elev{n}"),
            family: FAMILIES[rng.below(FAMILIES.len())].to_string(),
            civic,
            school: SCHOOLS[rng.below(2)],
            class: CLASSES[rng.below(3)],
        }
    }

    fn write(&mut self, q: &Quirks) {
        for p in &self.people {
            self.civics.insert(p.civic.clone());
        }
        if let Some((_, c, _)) = &q.reused {
            self.civics.insert(c.clone());
        }
        std::fs::write(self.env.path("persons.csv"), export(&self.people, q)).unwrap();
    }

    fn run(&mut self, args: &[&str]) -> Run {
        let r = self.env.enid(args);
        self.outputs.push(format!("$ enid {}\n{}\n{}", args.join(" "), r.stdout, r.stderr));
        r
    }

    /// An apply that must go through.
    fn apply(&mut self, why: &str) {
        let r = self.run(&["apply", "--yes"]);
        if !r.status.success() {
            let n = self.outputs.len();
            let before = self.outputs[n.saturating_sub(3)..n - 1].join("\n");
            panic!("{why}: apply failed\n{}\n{}\n--- before:\n{before}", r.stdout, r.stderr);
        }
    }

    fn config(&self, base_dn: &str) {
        let cfg = std::fs::read_to_string(self.env.path("enid.toml")).unwrap();
        // The target's base_dn comes first; the groups table has one of its own.
        let mut first = true;
        let cfg = cfg
            .lines()
            .map(|l| {
                if first && l.starts_with("base_dn =") {
                    first = false;
                    format!("base_dn = \"{base_dn}\"")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(self.env.path("enid.toml"), cfg + "\n").unwrap();
    }

    fn check(&self, step: &str) {
        let all = self.env.search("dc=example,dc=org", "(objectClass=inetOrgPerson)");
        // 1. One owner value, one entry.
        let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in &all {
            for v in e.get("employeeNumber") {
                owners.entry(v).or_default().push(e.dn.clone());
            }
        }
        for (v, dns) in &owners {
            assert!(dns.len() == 1, "{step}: owner value {v} is on {dns:?}");
        }
        // 2. Hand-made entries untouched.
        for (dn, stamp) in &self.hand_made {
            let e =
                all.iter().find(|e| e.dn.eq_ignore_ascii_case(dn)).unwrap_or_else(|| panic!("{step}: {dn} is gone"));
            assert_eq!(&e.one("modifyTimestamp"), stamp, "{step}: {dn} was modified");
        }
        // 3. Nobody with a valid row is disabled; a kept person is not disabled either.
        let by_given: BTreeMap<String, &Entry> = all.iter().map(|e| (e.one("givenName"), e)).collect();
        for p in &self.people {
            if let Some(e) = by_given.get(&p.given) {
                assert!(
                    !e.dn.to_lowercase().contains("ou=disabled"),
                    "{step}: {} has a valid row (or was kept) but is disabled: {}",
                    p.key,
                    e.dn
                );
            }
        }
        // 4. No civic number in any output.
        for out in &self.outputs {
            for c in &self.civics {
                let digits = c.replace('-', "");
                assert!(!out.contains(c.as_str()) && !out.contains(&digits), "{step}: civic number in output:\n{out}");
                if digits.len() == 12 {
                    assert!(!out.contains(&digits[2..]), "{step}: 10-digit civic number in output:\n{out}");
                }
            }
        }
    }
}

fn scenario(seed: u64, steps: usize) {
    let env = Env::with_config("[targets.directory.groups]\nbase_dn = \"ou=groups,dc=example,dc=org\"");
    let cfg = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    std::fs::write(env.path("enid.toml"), format!("[naming]\non_name_change = \"rename\"\n\n{cfg}")).unwrap();
    env.add("ou=other,dc=example,dc=org", &[("objectClass", &["organizationalUnit"]), ("ou", &["other"])]);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut w = World {
        env,
        people: Vec::new(),
        serial: 0,
        outputs: Vec::new(),
        civics: BTreeSet::new(),
        hand_made: BTreeMap::new(),
        kept: BTreeSet::new(),
    };
    // Hand-made entries: one with an HR number in employeeNumber, one named like a pupil.
    for (uid, number) in [("rektor", "E1001"), ("elev3.holm", "E1002")] {
        let dn = format!("uid={uid},{BASE}");
        w.env.add(
            &dn,
            &[
                ("objectClass", &["inetOrgPerson"]),
                ("uid", &[uid]),
                ("cn", &[uid]),
                ("sn", &["Manuell"]),
                ("givenName", &[&format!("Hand-{uid}")]),
                ("employeeNumber", &[number]),
            ],
        );
    }
    for e in w.env.search(BASE, "(employeeNumber=E*)") {
        w.hand_made.insert(e.dn.clone(), e.one("modifyTimestamp"));
    }
    for _ in 0..60 {
        let p = w.person(&mut rng);
        w.people.push(p);
    }
    w.write(&Quirks::default());
    // The directory holds accounts already: the first run is not exempt from the create
    // threshold. The operator reviews it and accepts it by id.
    let id = w.run(&["plan", "--save", "--json"]).ok().json()["plan_id"].as_str().unwrap().to_string();
    let r = w.run(&["apply", "--plan", &id, "--accept-threshold", "--yes"]);
    assert!(r.status.success(), "first run: apply failed\n{}\n{}", r.stdout, r.stderr);
    w.check("first run");

    for step in 1..=steps {
        let label = format!("seed {seed} step {step}");
        // The day's changes, small enough to stay under the thresholds.
        let mut q = Quirks::default();
        w.kept.clear();
        for _ in 0..rng.below(3) {
            let p = w.person(&mut rng);
            w.people.push(p);
        }
        for _ in 0..rng.below(2) {
            if w.people.len() > 55 {
                let i = rng.below(w.people.len());
                w.people.remove(i);
            }
        }
        for _ in 0..rng.below(3) {
            let i = rng.below(w.people.len());
            let p = &mut w.people[i];
            match rng.below(4) {
                0 => p.family = FAMILIES[rng.below(FAMILIES.len())].to_string(),
                1 => p.school = SCHOOLS[rng.below(2)],
                2 => p.class = CLASSES[rng.below(3)],
                _ => {
                    // A temporary number becomes a personnummer.
                    if p.civic.contains("TF") {
                        p.civic = pnr(10_000 + 100 * step + i);
                    }
                }
            }
        }
        if rng.chance(25) {
            let i = rng.below(w.people.len());
            q.rejected.insert(w.people[i].key.clone());
        }
        // A key reused for another child is held when its personnummer changes; a temporary
        // number becoming a personnummer is expected and not held (names are not compared: a
        // known gap, see the session note), so only keys with a personnummer are reused here.
        if rng.chance(15)
            && let Some(i) =
                (0..w.people.len()).map(|_| rng.below(w.people.len())).find(|&i| !w.people[i].civic.contains("TF"))
        {
            let key = w.people[i].key.clone();
            q.reused = Some((key.clone(), pnr(20_000 + step), format!("Ny{step}")));
            w.kept.insert(key);
        }
        w.kept.extend(q.rejected.iter().cloned());
        let drop_column = rng.chance(10);
        let fault = rng.below(8);
        if fault == 2 {
            // Adopt claims what the sources give today: no broken rows on the day the state is lost.
            q = Quirks::default();
            w.kept.clear();
        }

        if drop_column {
            // A dropped column stops the run before planning; nothing changes.
            let before = w.env.people();
            let mut broken = q.clone();
            broken.drop_email = true;
            w.write(&broken);
            let r = w.run(&["apply", "--yes"]);
            assert!(!r.status.success(), "{label}: a dropped column must stop the run");
            assert!(r.stderr.contains("--accept-schema-change"), "{label}: {}", r.stderr);
            assert_eq!(w.env.people().len(), before.len(), "{label}: nothing changed");
        }
        w.write(&q);
        match fault {
            0 => {
                // enid killed in the middle of an apply.
                let mut child = Command::new(env!("CARGO_BIN_EXE_enid"))
                    .arg("--config")
                    .arg(w.env.path("enid.toml"))
                    .args(["apply", "--yes"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                std::thread::sleep(std::time::Duration::from_millis(20 + rng.below(200) as u64));
                let _ = child.kill();
                let _ = child.wait();
            }
            1 => w.env.slapd.restart(),
            2 => {
                // The state database is lost and rebuilt from the targets.
                for f in ["state.db", "state.db-wal", "state.db-shm"] {
                    let _ = std::fs::remove_file(w.env.path(f));
                }
                let r = w.run(&["plan"]);
                assert!(!r.status.success() && r.stderr.contains("enid adopt"), "{label}: {}", r.stderr);
                let r = w.run(&["adopt", "--yes"]);
                assert!(r.status.success(), "{label}: adopt failed\n{}\n{}", r.stdout, r.stderr);
            }
            3 => {
                // base_dn changed by mistake: the run stops, nothing is created or deleted.
                let before = w.env.search("dc=example,dc=org", "(objectClass=inetOrgPerson)").len();
                w.config("ou=other,dc=example,dc=org");
                let r = w.run(&["apply", "--yes"]);
                assert!(!r.status.success(), "{label}: a changed base_dn must stop the run\n{}", r.stdout);
                let after = w.env.search("dc=example,dc=org", "(objectClass=inetOrgPerson)").len();
                assert_eq!(before, after, "{label}: nothing created under the other base");
                w.config(BASE);
            }
            _ => {}
        }
        w.apply(&label);
        // A second apply right after has nothing left to do for accounts.
        let summary = w.run(&["plan", "--json"]).json()["summary"].clone();
        assert_eq!(summary["create"], 0, "{label}: {summary}");
        w.check(&label);
        // The reused key is resolved as a data error: the export is fixed the next day.
    }
}

#[test]
fn fault_injection_scenario_keeps_every_promise() {
    let steps = std::env::var("ENID_FAULT_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(14);
    let seeds: Vec<u64> = match std::env::var("ENID_FAULT_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => vec![1, 2],
    };
    for seed in seeds {
        scenario(seed, steps);
    }
}
