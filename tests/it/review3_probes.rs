//! Probes of the third review that held up (kept as regression tests).

use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};

const CFG: &str = "[targets.directory.groups]\nbase_dn = \"ou=groups,dc=example,dc=org\"\n\
[targets.directory.policy.thresholds]\ncreate_percent = 100\ndisable_percent = 100\nenable_percent = 100\n\
rename_percent = 100\nupdate_percent = 100\ndelete_percent = 100\n\
[naming]\non_name_change = \"rename\"";

fn person(i: usize, family: &str, class: &str) -> String {
    row(&format!("P{i:04}"), &format!("Elev{i}"), family, &pnr(i), "student", "S1", class)
}

fn check_groups(env: &Env, rows: &[(usize, String, String)], label: &str) {
    let ids = ids_in_directory(env);
    let twice: Vec<_> = ids.iter().filter(|(_, d)| d.len() > 1).collect();
    assert!(twice.is_empty(), "{label}: second accounts {twice:?}");
    let people: BTreeMap<String, String> = env
        .search("dc=example,dc=org", "(objectClass=inetOrgPerson)")
        .into_iter()
        .map(|e| (e.dn.to_lowercase(), e.one("uid")))
        .collect();
    let mut by_group: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for g in env.search("ou=groups,dc=example,dc=org", "(objectClass=groupOfNames)") {
        for m in g.get("member") {
            let m = m.to_lowercase();
            assert!(people.contains_key(&m), "{label}: {} has a member that does not exist: {m}", g.dn);
            by_group.entry(g.one("cn").to_lowercase()).or_default().insert(m);
        }
    }
    for (i, family, class) in rows {
        let uid = format!("elev{i}.{}", family.to_lowercase());
        let dn = format!("uid={uid},ou=people,dc=example,dc=org");
        assert!(people.contains_key(&dn), "{label}: {uid} not active at {dn}");
        let g = format!("s1-{}", class.to_lowercase());
        assert!(by_group.get(&g).is_some_and(|m| m.contains(&dn)), "{label}: {uid} not in {g}");
    }
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "{label}: {}", plan["summary"]);
}

/// enid killed at several moments of an apply that creates, renames, re-enables by a move
/// (with a rename), moves pupils between classes and makes groups; the next apply converges:
/// no second accounts, no member DN that does not exist, everyone in their class.
#[test]
fn killed_mid_apply_with_renames_moves_and_groups_converges() {
    let env = Env::with_config(CFG);
    let mut rows: Vec<(usize, String, String)> = (0..120).map(|i| (i, "Berg".to_string(), "7A".to_string())).collect();
    let write = |rows: &[(usize, String, String)]| {
        csv_rows(&env, &rows.iter().map(|(i, f, c)| person(*i, f, c)).collect::<Vec<_>>())
    };
    write(&rows);
    env.apply();
    // 10 leave (disabled by the move).
    let gone: Vec<_> = rows.drain(110..).collect();
    write(&rows);
    env.apply();
    for (round, (created, kill_ms)) in [(3usize, 0u64), (30, 0), (30, 3), (30, 10)].into_iter().enumerate() {
        let base = env.search(BASE, "(objectClass=inetOrgPerson)").len();
        // They come back renamed, others are renamed, moved, and new ones arrive.
        let fam = format!("Ny{round}");
        if round == 0 {
            rows.extend(gone.iter().map(|(i, _, c)| (*i, fam.clone(), c.clone())));
        }
        for r in rows.iter_mut().skip(round * 10).take(10) {
            r.1 = fam.clone();
        }
        for r in rows.iter_mut().skip(50 + round * 10).take(10) {
            r.2 = format!("8{}", (b'A' + round as u8) as char);
        }
        rows.extend((0..30).map(|k| (200 + round * 30 + k, "Berg".to_string(), "9C".to_string())));
        write(&rows);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_enid"))
            .arg("--config")
            .arg(env.path("enid.toml"))
            .args(["apply", "--yes"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        while env.search(BASE, "(objectClass=inetOrgPerson)").len() < base + created
            && t0.elapsed() < std::time::Duration::from_secs(20)
        {}
        std::thread::sleep(std::time::Duration::from_millis(kill_ms));
        let _ = child.kill();
        let _ = child.wait();
        let ops = env.sql_value("select cast(count(*) as text) from oplog");
        let runs = env.sql_value("select group_concat(status) from runs");
        eprintln!("round {round}: oplog rows {ops}, runs {runs}");
        env.apply();
        check_groups(&env, &rows, &format!("round {round} (killed after {kill_ms} ms)"));
    }
}

/// The owner attribute changed in the config after accounts exist: no account is created again.
#[test]
fn a_changed_owner_attribute_creates_nobody_again() {
    let env = Env::new();
    let rows: Vec<String> = (0..60).map(|i| person(i, "Berg", "7A")).collect();
    csv_rows(&env, &rows);
    env.apply();
    env.edit_config(
        &format!("base_dn = \"{BASE}\""),
        &format!("base_dn = \"{BASE}\"\nowner_attribute = \"carLicense\""),
    );
    let run = env.enid(&["plan", "--json"]);
    let out = format!("{}{}", run.stdout, run.stderr);
    if run.status.success() {
        let plan = run.json();
        assert_eq!(plan["summary"]["create"], 0, "{}", plan["summary"]);
        eprintln!("plan after owner change: {} held: {}", plan["summary"], plan["held"]);
    } else {
        eprintln!("plan stopped: {out}");
    }
}

/// Old spellings mixed with the policy block.
#[test]
fn old_and_new_spellings_mixed() {
    let env = Env::with_config(
        "[targets.directory.thresholds]\ncreate_min = 1\n[targets.directory.policy.thresholds]\ndisable_min = 1",
    );
    csv_rows(&env, &[person(1, "Berg", "7A")]);
    let run = env.enid(&["plan"]).fails();
    assert!(run.stderr.contains("twice"), "{}", run.stderr);
    let env = Env::with_config(
        "exclude_under = [\"ou=x,dc=example,dc=org\"]\n[targets.directory.exclude]\nkeys_under = [\"ou=y,dc=example,dc=org\"]",
    );
    csv_rows(&env, &[person(1, "Berg", "7A")]);
    let run = env.enid(&["plan"]).fails();
    assert!(run.stderr.contains("exclude_under"), "{}", run.stderr);
    let env = Env::with_config("[targets.directory.policy.exclude]\nkeys_under = [\"ou=y,dc=example,dc=org\"]");
    csv_rows(&env, &[person(1, "Berg", "7A")]);
    let run = env.enid(&["plan"]).fails();
    eprintln!("keys_under in policy: {}", run.stderr);
    // Legacy exclude.keys_under excludes the container like exclude_under.
    let env = Env::with_config("[targets.directory.exclude]\nkeys_under = [\"ou=frozen,ou=people,dc=example,dc=org\"]");
    csv_rows(&env, &[person(1, "Berg", "7A"), person(2, "Berg", "7A")]);
    env.apply();
    env.add("ou=frozen,ou=people,dc=example,dc=org", &[("objectClass", &["organizationalUnit"]), ("ou", &["frozen"])]);
    let url = env.slapd.url();
    let _ = url;
    // An admin moves elev1 into the frozen container by hand (modrdn).
    let status = std::process::Command::new("ldapmodrdn")
        .args([
            "-x",
            "-H",
            &env.slapd.url(),
            "-D",
            "cn=admin,dc=example,dc=org",
            "-w",
            "secret",
            "-s",
            "ou=frozen,ou=people,dc=example,dc=org",
            "-r",
        ])
        .args(["uid=elev1.berg,ou=people,dc=example,dc=org", "uid=elev1.berg"])
        .status()
        .expect("ldapmodrdn");
    assert!(status.success());
    csv_rows(&env, &[person(2, "Berg", "7A")]); // elev1 leaves
    let run = env.enid(&["plan", "--json"]).ok();
    let run_text = format!("{}{}", run.stdout, run.stderr);
    let plan = run.json();
    assert_eq!(plan["summary"]["disable"], 0, "the frozen one is left alone: {}", plan["operations"]);
    assert!(run_text.contains("exclude_under"), "deprecation note: {run_text}");
}

mod scim_probes {
    use crate::harness::*;
    use crate::scim::{TOKEN, env_with_targets, scim_table, tenant};

    fn dump(url: &str) -> String {
        let mut all = String::new();
        for what in ["Users", "Groups"] {
            let out = std::process::Command::new("curl")
                .args(["-s", "-H", &format!("Authorization: Bearer {TOKEN}"), &format!("{url}/{what}?count=1000")])
                .output()
                .expect("curl");
            all.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        all
    }

    /// A person who becomes protected after their SCIM account exists: once approved, nothing
    /// of their names, school or civic number is left on the platform.
    #[test]
    fn a_person_who_becomes_protected_leaves_no_names_on_scim() {
        let url = tenant();
        let env = env_with_targets(&scim_table(
            "lms",
            &url,
            "[targets.lms.policy.attributes]\nemails = [{ value = \"{{ username }}@x.se\", type = \"work\" }]\n\
             title = \"{{ given_name }} {{ family_name }}\"\n[targets.lms.policy.groups]\n",
        ));
        let header = format!("{HEADER},protection");
        let civic = pnr(7);
        let write = |prot: &str| {
            std::fs::write(
                env.path("persons.csv"),
                format!(
                    "{header}\n1,Sara,Hemligsson,{civic},student,SKOLX,7Q,,,{prot}\n2,Bo,Ek,,student,SKOLX,7Q,,,\n"
                ),
            )
            .unwrap()
        };
        write("");
        env.enid(&["apply", "--yes"]).ok();
        assert!(dump(&url).contains("Hemligsson"));
        write("skyddad folkbokföring");
        let plan = env.enid(&["plan", "--save", "--json"]).ok();
        let id = plan.json()["plan_id"].as_str().unwrap().to_string();
        assert!(!plan.stdout.contains("Hemligsson") && !plan.stdout.contains("sara"), "{}", plan.stdout);
        let run = env.enid(&["apply", "--yes", "--plan", &id, "--accept-protected"]).ok();
        let out = format!("{}{}", run.stdout, run.stderr);
        assert!(!out.contains("Hemligsson") && !out.contains(&civic[..8]), "{out}");
        let all = dump(&url);
        eprintln!("{all}");
        assert!(!all.contains("Hemligsson") && !all.contains("sara") && !all.contains("Sara"), "{all}");
        let again = env.enid(&["plan", "--json"]).ok().json();
        assert_eq!(again["operations"].as_array().map(Vec::len), Some(0), "{}", again["operations"]);
    }

    #[test]
    fn token_file_missing_or_empty() {
        let url = tenant();
        let env = env_with_targets(&scim_table("lms", &url, ""));
        csv_rows(&env, &[row("1", "Anna", "Berg", "", "student", "S1", "")]);
        std::fs::write(env.path("scim.token"), "").unwrap();
        let run = env.enid(&["plan"]);
        eprintln!("empty token: {} {}", run.status, run.stderr);
        std::fs::write(env.path("scim.token"), "\n").unwrap();
        let run = env.enid(&["apply", "--yes"]);
        eprintln!("newline token: {} {}", run.status, run.stderr);
        std::fs::remove_file(env.path("scim.token")).unwrap();
        let run = env.enid(&["check"]);
        eprintln!("missing token: {} {}", run.status, run.stderr);
        std::fs::write(env.path("scim.token"), format!("{TOKEN}\nsecond-line-secret\n")).unwrap();
        let run = env.enid(&["check"]);
        eprintln!("two-line token: {} {}", run.status, run.stderr);
        assert!(!run.stderr.contains("second-line-secret"));
    }

    /// A hand-made user carrying an existing person's externalId; one differing only in case.
    #[test]
    fn hand_made_users_with_someone_elses_external_id_or_username_case() {
        let url = tenant();
        let env = env_with_targets(&scim_table("lms", &url, ""));
        csv_rows(
            &env,
            &[row("1", "Anna", "Berg", "", "student", "S1", ""), row("2", "Bo", "Ek", "", "student", "S1", "")],
        );
        env.enid(&["apply", "--yes"]).ok();
        let users = |url: &str| {
            let out = std::process::Command::new("curl")
                .args(["-s", "-H", &format!("Authorization: Bearer {TOKEN}"), &format!("{url}/Users?count=1000")])
                .output()
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        };
        let u = users(&url);
        let anna_id =
            u["Resources"].as_array().unwrap().iter().find(|r| r["userName"] == "anna.berg").unwrap()["externalId"]
                .as_str()
                .unwrap()
                .to_string();
        let post = |body: serde_json::Value| {
            let out = std::process::Command::new("curl")
                .args([
                    "-s",
                    "-X",
                    "POST",
                    "-H",
                    &format!("Authorization: Bearer {TOKEN}"),
                    "-H",
                    "Content-Type: application/scim+json",
                ])
                .args(["-d", &body.to_string(), &format!("{url}/Users")])
                .output()
                .unwrap();
            eprintln!("POST: {}", String::from_utf8_lossy(&out.stdout));
        };
        post(
            serde_json::json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"impostor","externalId":anna_id,"displayName":"Evil"}),
        );
        post(
            serde_json::json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"CY.LIND","displayName":"Cy by hand"}),
        );
        csv_rows(
            &env,
            &[
                row("1", "Anna", "Berg", "", "student", "S1", ""),
                row("2", "Bo", "Ek", "", "student", "S1", ""),
                row("3", "Cy", "Lind", "", "student", "S1", ""),
            ],
        );
        let plan = env.enid(&["plan", "--json"]).ok().json();
        eprintln!("plan: {} blocked {}", plan["summary"], plan["blocked"]);
        assert_eq!(plan["summary"]["create"], 0, "{}", plan["operations"]);
        env.enid(&["apply", "--yes"]).ok();
        let u = users(&url);
        let imp = u["Resources"].as_array().unwrap().iter().find(|r| r["userName"] == "impostor").unwrap().clone();
        assert_eq!(imp["displayName"], "Evil", "untouched: {imp}");
        // Anna leaves: her account is disabled, the impostor is not.
        csv_rows(
            &env,
            &[row("2", "Bo", "Ek", "", "student", "S1", ""), row("3", "Cy", "Lind", "", "student", "S1", "")],
        );
        env.enid(&["apply", "--yes"]).ok();
        let u = users(&url);
        for r in u["Resources"].as_array().unwrap() {
            eprintln!("{} active={} ext={}", r["userName"], r["active"], r["externalId"]);
        }
        let imp = u["Resources"].as_array().unwrap().iter().find(|r| r["userName"] == "impostor").unwrap().clone();
        assert_ne!(imp["active"], false, "{imp}");
    }
}

mod scim_pattern {
    use crate::harness::*;
    use crate::scim::{TOKEN, env_with_targets, scim_table, tenant};

    fn names(url: &str) -> Vec<String> {
        let out = std::process::Command::new("curl")
            .args(["-s", "-H", &format!("Authorization: Bearer {TOKEN}"), &format!("{url}/Users?count=1000")])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut n: Vec<String> =
            v["Resources"].as_array().unwrap().iter().map(|r| r["userName"].as_str().unwrap().to_string()).collect();
        n.sort();
        n
    }

    /// One domain to another in user_name: renamed into the new pattern.
    #[test]
    fn a_user_name_domain_changed_to_another_renames() {
        let url = tenant();
        let env = env_with_targets(&scim_table("lms", &url, "user_name = \"{{ username }}@a.se\""));
        csv_rows(&env, &[row("1", "Anna", "Berg", "", "student", "S1", "")]);
        env.enid(&["apply", "--yes"]).ok();
        env.edit_config("@a.se", "@b.se");
        let plan = env.enid(&["plan", "--json"]).ok().json();
        eprintln!("a→b: {}", plan["summary"]);
        env.enid(&["apply", "--yes"]).ok();
        assert_eq!(names(&url), ["anna.berg@b.se"]);
        env.edit_config("user_name = \"{{ username }}@b.se\"", "");
        let plan = env.enid(&["plan", "--json"]).ok().json();
        eprintln!("b→bare: {}", plan["summary"]);
        env.enid(&["apply", "--yes"]).ok();
        assert_eq!(names(&url), ["anna.berg"]);
    }
}

mod scim_civic {
    use crate::harness::*;
    use crate::scim::{env_with_targets, scim_table, server, tenant};
    use connector_api::testkit::{FaultProxy, Protocol};

    /// Source keys that are civic numbers, a refused create and a throttled one: no civic number
    /// in any output of plan, apply, log, explain.
    #[test]
    fn no_civic_number_in_scim_runs() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let addr: std::net::SocketAddr = server().trim_start_matches("http://").parse().unwrap();
        let proxy = rt.block_on(FaultProxy::start(addr, Protocol::Http)).unwrap();
        let url = tenant();
        let through = url.replace(server().trim_start_matches("http://"), &proxy.addr().to_string());
        let env =
            env_with_targets(&scim_table("lms", &through, "max_in_flight = 1\nmax_attempts = 2\nmax_wait_secs = 5"));
        let rows: Vec<String> =
            (0..4).map(|i| row(&pnr(i), "Eva", &format!("Ek{i}"), &pnr(i), "student", "S1", "7A")).collect();
        csv_rows(&env, &rows);
        let mut out = String::new();
        let mut run = |args: &[&str]| {
            let r = env.enid(args);
            out.push_str(&r.stdout);
            out.push_str(&r.stderr);
        };
        run(&["plan"]);
        run(&["plan", "--json"]);
        proxy.answer(1, 409, None, false);
        run(&["apply", "--yes"]);
        proxy.answer(1, 500, None, false);
        run(&["apply", "--yes"]);
        run(&["apply", "--yes"]);
        run(&["log", "--all"]);
        run(&["log", "--all", "--json"]);
        for i in 0..4 {
            run(&["explain", &pnr(i)]);
            run(&["explain", &pnr(i), "--json"]);
        }
        for i in 0..4 {
            let p = pnr(i);
            let digits: String = p.chars().filter(char::is_ascii_digit).collect();
            assert!(!out.contains(&p) && !out.contains(&digits) && !out.contains(&digits[2..]), "{p} printed:\n{out}");
        }
        eprintln!("{} bytes of output checked", out.len());
    }
}
