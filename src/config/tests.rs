//! Config parsing and validation tests: strict keys with their lines, old spellings, every example config.

use super::*;

const MINIMAL: &str = r#"
[state]
path = "/var/lib/enid/state.db"

[sources.sis]
type = "csv"
path = "/srv/sis/persons.csv"

[targets.directory]
type = "ldap"
url = "ldap://127.0.0.1:3389"
bind_dn = "cn=admin,dc=example,dc=org"
bind_password_file = "/etc/enid/ldap.secret"
base_dn = "ou=people,dc=example,dc=org"
"#;

/// The CSV settings of a source entry (a test's sources are CSV).
fn csv(entry: &SourceEntry) -> &source_csv::CsvConfig {
    match &entry.connector {
        SourceConfig::Csv(c) => c,
        #[allow(unreachable_patterns)]
        _ => panic!("not a CSV source"),
    }
}

#[test]
fn the_documented_minimal_config_parses() {
    let c = Config::parse(MINIMAL).unwrap();
    c.validate().unwrap();
    assert!(matches!(c.sources["sis"].connector, SourceConfig::Csv(_)));
    assert_eq!(c.sources["sis"].policy, SourcePolicy::default());
}

#[test]
fn unknown_keys_name_the_key_and_line() {
    let text = MINIMAL.replace("base_dn =", "basedn =");
    let err = Config::parse(&text).unwrap_err();
    assert!(err.contains("basedn") && err.starts_with("line 14:"), "{err}");
    let text = MINIMAL.replace("type = \"csv\"\n", "type = \"csv\"\ndelimter = \";\"\n");
    let err = Config::parse(&text).unwrap_err();
    assert!(err.contains("unknown field `delimter`") && err.starts_with("line 7:"), "{err}");
    let text = format!("{MINIMAL}\n[sources.sis.policy]\nshrink_min_records = \"ten\"\n");
    let err = Config::parse(&text).unwrap_err();
    assert!(err.starts_with("line 17: shrink_min_records: invalid type"), "{err}");
    let text = MINIMAL.replace("[state]\n", "[state]\nfoo = 1\n");
    let err = Config::parse(&text).unwrap_err();
    assert!(err.contains("unknown field `foo`") && err.starts_with("line 3"), "{err}");
}

#[test]
fn type_errors_name_the_keys_own_line() {
    let probe = |text: &str| Config::parse(text).unwrap_err();
    let at = |text: &str, key: &str| text[..text.find(key).unwrap()].matches('\n').count() + 1;
    let t = MINIMAL.replace("base_dn =", "max_in_flight = \"eight\"\nbase_dn =");
    let e = probe(&t);
    assert!(e.starts_with(&format!("line {}:", at(&t, "max_in_flight"))) && e.contains("max_in_flight"), "{e}");
    let t = format!("{MINIMAL}\n[targets.directory.thresholds]\ndisable_percent = 5\ndisable_min = \"10\"\n");
    let e = probe(&t);
    assert!(e.starts_with(&format!("line {}:", at(&t, "disable_min"))) && e.contains("disable_min"), "{e}");
    let t = MINIMAL.replace("[state]\n", "[naming]\nmax_length = \"x\"\n\n[state]\n");
    let e = probe(&t);
    assert!(e.starts_with(&format!("line {}:", at(&t, "max_length"))), "{e}");
}

#[test]
fn every_example_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut n = 0;
    // The service's example config (`deploy/enid.toml`) is one of them.
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/enid.toml");
    assert!(deploy.exists(), "{} is missing", deploy.display());
    let configs = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).chain([deploy]);
    for path in configs {
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let c = Config::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            c.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(c.deprecations(), Vec::<String>::new(), "{} uses an old spelling", path.display());
            n += 1;
        }
    }
    assert!(n >= 1, "no example configs in {}", dir.display());
}

#[test]
fn the_log_is_kept_half_a_year_unless_said_otherwise_and_never_less_than_a_day() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!(c.state.keep_log_for.as_secs(), 180 * 86_400);
    let text = MINIMAL.replace("[state]\n", "[state]\nkeep_log_for = \"30d\"\n");
    assert_eq!(Config::parse(&text).unwrap().state.keep_log_for.as_secs(), 30 * 86_400);
    let text = MINIMAL.replace("[state]\n", "[state]\nkeep_log_for = \"180s\"\n");
    let err = Config::parse(&text).unwrap().validate().unwrap_err();
    assert!(err.contains("keep_log_for") && err.contains("shorter than a day"), "{err}");
    let text = MINIMAL.replace("[state]\n", "[state]\nkeep_log_for = 180\n");
    let err = Config::parse(&text).unwrap_err();
    assert!(err.starts_with("line 3:") && err.contains("no unit"), "{err}");
}

#[test]
fn the_shortest_username_limit_of_all_targets_applies() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!(c.username_max_length(), 20);
    let text = MINIMAL.replace("base_dn =", "max_username_length = 12\nbase_dn =");
    assert_eq!(Config::parse(&text).unwrap().username_max_length(), 12);
    let text = MINIMAL.replace("[state]", "[identity.authority]\nnames = [\"hr\"]\n\n[state]");
    let err = Config::parse(&text).unwrap().validate().unwrap_err();
    assert_eq!(err, "[identity.authority] names names source \"hr\", which is not configured");
}

#[test]
fn the_owner_naming_and_class_attributes_cannot_be_overridden() {
    for (attr, why) in [
        ("employeeNumber", "it carries the enid id"),
        ("EMPLOYEENUMBER", "it carries the enid id"),
        ("uid", "it names the entry (rdn_attribute)"),
        ("objectClass", "object classes are set by object_classes"),
    ] {
        for table in ["[targets.directory.attributes]", "[targets.directory.policy.attributes]"] {
            let text = format!("{MINIMAL}\n{table}\n{attr} = \"x\"\n");
            let err = Config::parse(&text).unwrap().validate().unwrap_err();
            let want = format!("[targets.directory.policy.attributes] {attr} cannot be set or removed here: {why}");
            assert!(err.starts_with(&want), "{table}: {err}");
        }
    }
    // The owner attribute is whatever the connector says it is.
    let text = MINIMAL.replace("base_dn =", "owner_attribute = \"employeeID\"\nbase_dn =");
    let t = format!("{text}\n[targets.directory.policy.attributes]\nemployeeNumber = \"{{{{ id }}}}\"\n");
    Config::parse(&t).unwrap().validate().unwrap();
    let t = format!("{text}\n[targets.directory.policy.attributes]\nEmployeeID = \"x\"\n");
    assert!(Config::parse(&t).unwrap().validate().unwrap_err().contains("EmployeeID cannot be set"));
    let text = format!("{MINIMAL}\n[targets.directory.attributes]\nmail = \"{{{{ username }}}}@x\"\n");
    Config::parse(&text).unwrap().validate().unwrap();
    let text = format!("{MINIMAL}\n[targets.directory.thresholds]\nupdate_percent = 120\n");
    let err = Config::parse(&text).unwrap().validate().unwrap_err();
    assert_eq!(err, "[targets.directory.policy] thresholds.update_percent = 120 must be between 0 and 100");
    let text = format!("{MINIMAL}\n[targets.directory.policy.attributes]\nname.givenName = \"x\"\n");
    let err = Config::parse(&text).unwrap().validate().unwrap_err();
    assert!(err.contains("holds strings only"), "{err}");
}

/// A file written before the policy block reads exactly as the same file written with it,
/// with a warning per old spelling; both at once is an error, never a silent choice.
#[test]
fn old_policy_spellings_read_as_the_policy_block() {
    let old = format!(
        "{MINIMAL}max_username_length = 12\n\n[targets.directory.attributes]\nmail = \"{{{{ username }}}}@x\"\n\n\
             [targets.directory.thresholds]\ndisable_min = 3\n\n[targets.directory.exclude]\n\
             keys_under = [\"ou=manual,ou=people,dc=example,dc=org\"]\nusernames = [\"rektor\"]\n\n\
             [targets.directory.protected]\ngroups = true\n\n[targets.directory.groups]\n\
             base_dn = \"ou=groups,dc=example,dc=org\"\nschool_name = \"{{{{ school_unit }}}}-alla\"\n"
    );
    let new = format!(
        "{}exclude_under = [\"ou=manual,ou=people,dc=example,dc=org\"]\n\n[targets.directory.groups]\n\
             base_dn = \"ou=groups,dc=example,dc=org\"\n\n[targets.directory.policy]\nmax_username_length = 12\n\n\
             [targets.directory.policy.attributes]\nmail = \"{{{{ username }}}}@x\"\n\n\
             [targets.directory.policy.thresholds]\ndisable_min = 3\n\n[targets.directory.policy.exclude]\n\
             usernames = [\"rektor\"]\n\n[targets.directory.policy.protected]\ngroups = true\n\n\
             [targets.directory.policy.groups]\nschool_name = \"{{{{ school_unit }}}}-alla\"\n",
        MINIMAL
    );
    let (o, n) = (Config::parse(&old).unwrap(), Config::parse(&new).unwrap());
    o.validate().unwrap();
    n.validate().unwrap();
    let (a, b) = (&o.targets["directory"], &n.targets["directory"]);
    assert_eq!(a.policy, b.policy);
    let (TargetConfig::Ldap(x), TargetConfig::Ldap(y)) = (&a.connector, &b.connector) else { panic!("ldap") };
    assert_eq!(x, y);
    assert_eq!(x.exclude_under, ["ou=manual,ou=people,dc=example,dc=org"]);
    assert_eq!(o.username_max_length(), 12);
    assert!(n.deprecations().is_empty());
    let warned = o.deprecations().join("\n");
    for key in ["max_username_length", "attributes", "thresholds", "exclude", "keys_under", "protected", "groups.name"]
    {
        assert!(warned.contains(key), "{key} not warned about: {warned}");
    }
    assert!(warned.contains("[targets.directory.policy]"), "{warned}");
    // A group container alone still means the default groups.
    let only_base = format!("{MINIMAL}\n[targets.directory.groups]\nbase_dn = \"ou=groups,dc=example,dc=org\"\n");
    let c = Config::parse(&only_base).unwrap();
    assert_eq!(c.targets["directory"].policy.groups, Some(crate::core::policy::GroupPolicy::default()));
    assert!(c.deprecations().is_empty());
    // Groups in the policy need somewhere to live.
    let nowhere = format!("{MINIMAL}\n[targets.directory.policy.groups]\n");
    let err = Config::parse(&nowhere).unwrap().validate().unwrap_err();
    assert!(err.contains("base_dn"), "{err}");
    let twice = format!(
        "{MINIMAL}\n[targets.directory.thresholds]\ndisable_min = 3\n\n[targets.directory.policy.thresholds]\ndisable_min = 4\n"
    );
    let err = Config::parse(&twice).unwrap_err();
    assert!(err.contains("thresholds is given twice"), "{err}");
    let unknown = format!("{MINIMAL}\n[targets.directory.policy]\nthresold = 1\n");
    let err = Config::parse(&unknown).unwrap_err();
    assert!(err.contains("unknown field `thresold`"), "{err}");
}

/// The input guards live in `[sources.<id>.policy]` for every source type; a CSV table that
/// holds them the old way reads exactly as the same file with the policy block, with a warning
/// per key; a key in both places is an error, never a silent choice.
#[test]
fn the_input_guards_are_the_sources_policy_and_the_old_csv_spelling_still_works() {
    let new = MINIMAL.replace(
        "path = \"/srv/sis/persons.csv\"\n",
        "path = \"/srv/sis/persons.csv\"\n\n[sources.sis.policy]\nmax_rejected_percent = 5\nmax_shrink_percent = 20\n\
         shrink_min_records = 3\n",
    );
    let old = MINIMAL.replace(
        "path = \"/srv/sis/persons.csv\"\n",
        "path = \"/srv/sis/persons.csv\"\nmax_rejected_percent = 5\nmax_shrink_percent = 20\nshrink_min_records = 3\n",
    );
    let (n, o) = (Config::parse(&new).unwrap(), Config::parse(&old).unwrap());
    n.validate().unwrap();
    o.validate().unwrap();
    let want = SourcePolicy { max_rejected_percent: 5.0, max_shrink_percent: 20.0, shrink_min_records: 3 };
    assert_eq!(n.sources["sis"].policy, want);
    assert_eq!(o.sources["sis"].policy, want);
    assert_eq!(csv(&n.sources["sis"]), csv(&o.sources["sis"]));
    assert!(n.deprecations().is_empty(), "{:?}", n.deprecations());
    let warned = o.deprecations();
    assert_eq!(warned.len(), 3, "{warned:?}");
    for key in ["max_rejected_percent", "max_shrink_percent", "shrink_min_records"] {
        let line = warned.iter().find(|w| w.contains(key)).unwrap_or_else(|| panic!("{key} not warned: {warned:?}"));
        assert!(line.starts_with("[sources.sis] ") && line.contains("[sources.sis.policy]"), "{line}");
    }
    // One policy key given both ways.
    let both =
        old.replace("[targets.directory]", "[sources.sis.policy]\nshrink_min_records = 4\n\n[targets.directory]");
    let err = Config::parse(&both).unwrap_err();
    assert!(err.contains("shrink_min_records is given twice") && err.contains("keep the policy's"), "{err}");
    // Some keys the old way and others in the block is fine (each once).
    let mixed = MINIMAL.replace(
        "path = \"/srv/sis/persons.csv\"\n",
        "path = \"/srv/sis/persons.csv\"\nmax_rejected_percent = 5\n\n[sources.sis.policy]\nshrink_min_records = 3\n",
    );
    let m = Config::parse(&mixed).unwrap();
    assert_eq!(
        m.sources["sis"].policy,
        SourcePolicy { max_rejected_percent: 5.0, shrink_min_records: 3, ..Default::default() }
    );
    assert_eq!(m.deprecations().len(), 1);
    // The block is as strict as any table, and its values are checked.
    let unknown = format!("{MINIMAL}\n[sources.sis.policy]\nmax_rejected = 5\n");
    let err = Config::parse(&unknown).unwrap_err();
    assert!(err.contains("unknown field `max_rejected`"), "{err}");
    let over = format!("{MINIMAL}\n[sources.sis.policy]\nmax_shrink_percent = 150\n");
    let err = Config::parse(&over).unwrap().validate().unwrap_err();
    assert_eq!(err, "[sources.sis.policy] max_shrink_percent = 150 must be between 0 and 100");
    let over = old.replace("max_rejected_percent = 5", "max_rejected_percent = -1");
    let err = Config::parse(&over).unwrap().validate().unwrap_err();
    assert_eq!(err, "[sources.sis.policy] max_rejected_percent = -1 must be between 0 and 100");
}

/// A connector that declares no owner attribute could never find its accounts again: refused.
#[test]
fn a_target_that_declares_no_owner_attribute_is_refused() {
    let c = Config::parse(MINIMAL).unwrap();
    let mut entry = c.targets["directory"].clone();
    let TargetConfig::Ldap(l) = &mut entry.connector else { panic!("ldap") };
    l.owner_attribute = String::new();
    let err = check_policy("directory", &entry).unwrap_err();
    assert!(err.starts_with("[targets.directory]: the connector declares no owner attribute"), "{err}");
    check_policy("directory", &c.targets["directory"]).unwrap();
}

/// Relative paths are taken from the config file's directory, each connector naming its own.
#[test]
fn relative_paths_are_the_config_files_directorys() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[targets.lms]\ntype = \"scim\"\nurl = \"https://lms.example.org/scim/v2\"\ntoken_file = \"lms.token\"\n\
         tls_ca_file = \"/etc/ssl/ca.pem\"\n",
        MINIMAL
            .replace("\"/srv/sis/persons.csv\"", "\"persons.csv\"")
            .replace("\"/etc/enid/ldap.secret\"", "\"ldap.secret\"")
    );
    std::fs::write(dir.path().join("enid.toml"), text).unwrap();
    let c = Config::load(&dir.path().join("enid.toml")).unwrap();
    assert_eq!(csv(&c.sources["sis"]).path, dir.path().join("persons.csv"));
    let TargetConfig::Ldap(l) = &c.targets["directory"].connector else { panic!("ldap") };
    assert_eq!(l.bind_password_file.as_deref(), Some(dir.path().join("ldap.secret").as_path()));
    let TargetConfig::Scim(s) = &c.targets["lms"].connector else { panic!("scim") };
    assert_eq!(s.token_file.as_deref(), Some(dir.path().join("lms.token").as_path()));
    assert_eq!(s.tls_ca_file.as_deref(), Some(Path::new("/etc/ssl/ca.pem")));
}

#[test]
fn the_config_path_falls_back_in_order() {
    assert_eq!(Config::resolve_path(Some(Path::new("/a")), Some("/b".into())), PathBuf::from("/a"));
    assert_eq!(Config::resolve_path(None, Some("/b".into())), PathBuf::from("/b"));
    assert_eq!(Config::resolve_path(None, None), PathBuf::from(DEFAULT_PATH));
}
