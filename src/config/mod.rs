//! The configuration file: TOML, strict (an unknown key is an error naming the key and its line),
//! with sources and targets as named tables tagged by `type`.
//!
//! [`Config::load`] reads and parses; [`Config::validate`] checks everything that needs no
//! network (templates compile, names are sane). Secrets are not read here: only their file names
//! are, and each connector reads its own when the engine builds it. Which connector types exist,
//! and so the `type` tags [`SourceConfig`] and [`TargetConfig`] take, is the registry's
//! (`engine/registry.rs`): this module knows no connector's keys.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod schedule;
mod server;
mod sources;
mod targets;
pub use crate::engine::{SourceConfig, TargetConfig};
pub use schedule::{ApplyMode, Every, ScheduleConfig};
pub use server::ServerConfig;
pub use sources::{SourceEntry, SourcePolicy};
pub use targets::{TargetEntry, check_policy, mapping_templates};

/// Where the config is read from when neither `--config` nor `ENID_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/enid/enid.toml";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The state database.
    pub state: StateConfig,
    /// How usernames are made.
    #[serde(default)]
    pub naming: NamingConfig,
    /// How records become identities.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// When accounts are created, disabled and deleted.
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// Sources by id: each its connector's settings and its policy (the input guards).
    pub sources: BTreeMap<String, SourceEntry>,
    /// Targets by id: each its connector's settings and its policy.
    pub targets: BTreeMap<String, TargetEntry>,
    /// When `enid run` reconciles, and whether it applies or only plans.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// The HTTP API of `enid run` (none without the table).
    #[serde(default)]
    pub server: Option<ServerConfig>,
}

/// `[state]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// SQLite database file; created, with its schema, on first use. Either this or `url`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A PostgreSQL database instead (`postgres://user@host:port/db`, perhaps with
    /// `?sslmode=...`): the schema is created in it on first use; the database itself must exist.
    /// Never with a password inside: that comes from `db_password_file` or `db_password_env`.
    #[serde(default)]
    pub url: Option<String>,
    /// The file holding the PostgreSQL password (one line, owner-only).
    #[serde(default)]
    pub db_password_file: Option<PathBuf>,
    /// The environment variable holding the PostgreSQL password.
    #[serde(default)]
    pub db_password_env: Option<String>,
    /// How long the run lock on a PostgreSQL state lasts unless its holder renews it (default
    /// "30s"): after a holder dies, another process (or node) waits at most this long.
    #[serde(default = "thirty_seconds")]
    pub lease_for: connector_api::ConfigDuration,
    /// Days a first password that was never handed out is kept (sealed) before it is forgotten
    /// (default 30); the account then needs a new password set by hand. One a hand-out is
    /// showing at that moment is kept until the hand-out ends (given back, it is forgotten then).
    #[serde(default = "thirty")]
    pub password_handout_days: u32,
    /// The key first passwords are kept sealed with until they are handed out (default
    /// `password.key` beside the config file). Created, owner-only, when a target first hands
    /// out passwords; back it up with the state database.
    #[serde(default)]
    pub password_key_file: Option<PathBuf>,
    /// How long the sync log is kept (default "180d", at least "1d"): runs, their operation-log
    /// rows and saved plans older than this are removed by `enid state prune` (and by the
    /// service on its schedule). A child's sync log is personal data; what the guards decide
    /// with is never removed.
    #[serde(default = "half_a_year")]
    pub keep_log_for: connector_api::ConfigDuration,
}

/// Where the state is, as `[state]` says.
#[derive(Debug, Clone)]
pub enum StateLocation<'a> {
    /// A SQLite file.
    File(&'a Path),
    /// A PostgreSQL database, and where its password comes from.
    Postgres { url: &'a str, password_file: Option<&'a Path>, password_env: Option<&'a str> },
}

impl StateConfig {
    /// Where the state is; after [`Config::validate`], exactly one of `path` and `url`.
    pub fn location(&self) -> StateLocation<'_> {
        match (&self.url, &self.path) {
            (Some(url), _) => StateLocation::Postgres {
                url,
                password_file: self.db_password_file.as_deref(),
                password_env: self.db_password_env.as_deref(),
            },
            (None, Some(path)) => StateLocation::File(path),
            (None, None) => StateLocation::File(Path::new(DEFAULT_STATE)),
        }
    }

    /// The state's file, when it is one (SQLite).
    pub fn file(&self) -> Option<&Path> {
        match self.location() {
            StateLocation::File(p) => Some(p),
            StateLocation::Postgres { .. } => None,
        }
    }

    /// Checks that `[state]` names one place, and a password only for PostgreSQL.
    fn validate(&self) -> Result<(), String> {
        match (&self.path, &self.url) {
            (Some(_), Some(_)) => {
                return Err("[state] gives both path (SQLite) and url (PostgreSQL); keep the one the state is in \
                            (`enid state copy` moves a state from one to the other)"
                    .into());
            }
            (None, None) => return Err("[state] needs path (a SQLite file) or url (a PostgreSQL database)".into()),
            _ => {}
        }
        if self.url.is_none() && (self.db_password_file.is_some() || self.db_password_env.is_some()) {
            return Err("[state] db_password_file and db_password_env are for url (PostgreSQL) only".into());
        }
        if self.db_password_file.is_some() && self.db_password_env.is_some() {
            return Err("[state] give db_password_file or db_password_env, not both".into());
        }
        if let Some(url) = &self.url {
            crate::store::postgres::parse_url(url, None).map_err(|e| e.to_string())?;
        }
        if self.lease_for.as_secs() < 1 || self.lease_for.as_secs() > 3600 {
            return Err(format!("[state] lease_for = \"{}\": give between 1s and 1h", self.lease_for));
        }
        Ok(())
    }

    /// The password key file; after [`Config::load`] always the configured or default path.
    pub fn password_key_path(&self) -> PathBuf {
        self.password_key_file.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_PASSWORD_KEY))
    }
}

/// The state file when `[state]` names none (only reached before validation).
const DEFAULT_STATE: &str = "state.db";

fn thirty_seconds() -> connector_api::ConfigDuration {
    connector_api::ConfigDuration::from(std::time::Duration::from_secs(30))
}

/// The password key file's name beside the config file, when `[state] password_key_file` is
/// not set.
pub const DEFAULT_PASSWORD_KEY: &str = "password.key";

fn thirty() -> u32 {
    30
}

fn half_a_year() -> connector_api::ConfigDuration {
    connector_api::ConfigDuration::from(std::time::Duration::from_secs(180 * 86_400))
}

/// `[lifecycle]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Days a pupil's disabled account is kept before it is deleted (default 90), or "never".
    #[serde(default = "ninety")]
    pub delete_students_after_days: Grace,
    /// Days a staff member's disabled account is kept before it is deleted (default 180), or
    /// "never".
    #[serde(default = "one_eighty")]
    pub delete_staff_after_days: Grace,
    /// Accounts are created this many days before the start date, disabled until then (default 14).
    #[serde(default = "fourteen")]
    pub create_days_before_start: u32,
    /// `MM-DD`: pupils whose end date has passed keep working accounts until this day of their
    /// school year (for example "08-31": graduates keep their accounts over the summer).
    #[serde(default)]
    pub keep_students_until: Option<String>,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            delete_students_after_days: ninety(),
            delete_staff_after_days: one_eighty(),
            create_days_before_start: fourteen(),
            keep_students_until: None,
        }
    }
}

/// A grace period: days, or "never".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Grace {
    Days(u32),
    Word(Never),
}

/// The word "never".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Never {
    Never,
}

impl Grace {
    pub fn days(self) -> Option<u32> {
        match self {
            Grace::Days(d) => Some(d),
            Grace::Word(_) => None,
        }
    }
}

fn ninety() -> Grace {
    Grace::Days(90)
}
fn one_eighty() -> Grace {
    Grace::Days(180)
}
fn fourteen() -> u32 {
    14
}

impl LifecycleConfig {
    /// The part the functional core uses.
    pub fn model(&self) -> Result<crate::core::model::Lifecycle, String> {
        let keep = match &self.keep_students_until {
            None => None,
            Some(md) => {
                let (m, d) = md
                    .split_once('-')
                    .and_then(|(m, d)| Some((m.parse::<u32>().ok()?, d.parse::<u32>().ok()?)))
                    .filter(|(m, d)| chrono::NaiveDate::from_ymd_opt(2024, *m, *d).is_some())
                    .ok_or_else(|| {
                        format!("[lifecycle] keep_students_until {md:?} is not a month-day like \"08-31\"")
                    })?;
                Some((m, d))
            }
        };
        Ok(crate::core::model::Lifecycle {
            student_grace_days: self.delete_students_after_days.days(),
            staff_grace_days: self.delete_staff_after_days.days(),
            create_days_before_start: self.create_days_before_start,
            keep_students_until: keep,
        })
    }
}

/// `[identity]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Which sources decide which attributes when a person's records disagree.
    #[serde(default)]
    pub authority: AuthorityConfig,
    /// Correlation rules tried after the source key and the civic number, in order: `email`,
    /// `eppn`. A record they tie to an identity its civic number does not is held as a conflict.
    #[serde(default)]
    pub match_on: Vec<crate::core::identity::MatchKey>,
    /// Persons enid never touches on any target: enid ids or `source/person_id`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The installation's secret that new identity ids are derived with (default `id.key` beside
    /// the config file). Created, owner-only, on first use; back it up with the state database.
    #[serde(default)]
    pub id_key_file: Option<PathBuf>,
}

impl IdentityConfig {
    /// The id key file; after [`Config::load`] always the configured or default path.
    pub fn id_key_path(&self) -> PathBuf {
        self.id_key_file.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_ID_KEY))
    }
}

/// The id key file's name beside the config file, when `[identity] id_key_file` is not set.
pub const DEFAULT_ID_KEY: &str = "id.key";

/// `[identity.authority]`: for each attribute, sources in order of authority. The first listed
/// source that has the person decides that attribute alone; when none of them has the person, or
/// nothing is listed, all records count (names: the first source by id; roles, schools and
/// groups: all of them; dates: the earliest start and the latest end).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityConfig {
    /// Given and family name.
    #[serde(default)]
    pub names: Vec<String>,
    /// School units.
    #[serde(default)]
    pub school_unit: Vec<String>,
    /// Classes and teaching groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Start and end dates.
    #[serde(default)]
    pub dates: Vec<String>,
}

impl AuthorityConfig {
    fn all(&self) -> Vec<(&'static str, &String)> {
        let mut out = Vec::new();
        for (k, v) in [
            ("names", &self.names),
            ("school_unit", &self.school_unit),
            ("groups", &self.groups),
            ("dates", &self.dates),
        ] {
            out.extend(v.iter().map(|s| (k, s)));
        }
        out
    }

    /// The part the functional core uses.
    pub fn model(&self) -> crate::core::model::Authority {
        crate::core::model::Authority {
            school_unit: self.school_unit.clone(),
            groups: self.groups.clone(),
            dates: self.dates.clone(),
        }
    }
}

impl Config {
    /// The longest username every target accepts (its own limit and its policy's): one name
    /// serves every target.
    pub fn username_max_length(&self) -> usize {
        self.targets
            .values()
            .flat_map(|t| [t.policy.max_username_length, t.connector.capabilities().max_username_length])
            .flatten()
            .fold(self.naming.max_length, usize::min)
    }

    /// Old spellings the file uses, each with its new one: one line each, for a warning.
    pub fn deprecations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (id, s) in &self.sources {
            for d in &s.deprecated {
                out.push(format!(
                    "[sources.{id}] {d}: an old spelling; write it in [sources.{id}.policy] (README: Source policy). \
                     It works as before"
                ));
            }
        }
        for (id, t) in &self.targets {
            for d in &t.deprecated {
                out.push(format!(
                    "[targets.{id}] {d}: an old spelling; write the policy keys in [targets.{id}.policy] \
                     (README: Target policy). It works as before"
                ));
            }
        }
        out
    }

    /// A namer for this config.
    pub fn namer(&self) -> Result<crate::core::naming::Namer, crate::core::naming::TemplateError> {
        crate::core::naming::Namer::new(&self.naming.username, self.username_max_length(), self.naming.counter)
    }

    /// Source ids in order of authority for names.
    pub fn source_order(&self) -> Vec<String> {
        let mut order: Vec<String> =
            self.identity.authority.names.iter().filter(|s| self.sources.contains_key(*s)).cloned().collect();
        let rest: Vec<String> = self.sources.keys().filter(|k| !order.contains(k)).cloned().collect();
        order.extend(rest);
        order
    }
}

/// `[naming]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamingConfig {
    /// Username template (minijinja); the result is transliterated to `[a-z0-9.-]`.
    #[serde(default = "default_username_template")]
    pub username: String,
    /// Maximum username length; a collision counter stays within it.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Names never allocated to anyone.
    #[serde(default = "default_reserved")]
    pub reserved: Vec<String>,
    /// `on_collision` (default: `anna.berg`, `anna.berg2`) or `always` (`anna.berg1`, ...).
    #[serde(default)]
    pub counter: crate::core::naming::Counter,
    /// When a person's name changes: `keep` the username (default), `rename`, or `hold` the
    /// rename until `enid renames approve`.
    #[serde(default)]
    pub on_name_change: crate::core::naming::RenamePolicy,
    /// Days a released username stays unavailable to anyone else; left out: forever.
    #[serde(default)]
    pub quarantine_days: Option<u32>,
    /// Persons with protected personal data get usernames from the template too (default: no,
    /// they get `u` + part of their enid id, which says nothing about them).
    #[serde(default)]
    pub protected_names_from_template: bool,
}

impl Default for NamingConfig {
    fn default() -> Self {
        NamingConfig {
            username: default_username_template(),
            max_length: default_max_length(),
            reserved: default_reserved(),
            counter: Default::default(),
            on_name_change: Default::default(),
            quarantine_days: None,
            protected_names_from_template: false,
        }
    }
}

fn default_username_template() -> String {
    crate::core::naming::DEFAULT_TEMPLATE.to_string()
}
fn default_max_length() -> usize {
    crate::core::naming::DEFAULT_MAX_LENGTH
}
fn default_reserved() -> Vec<String> {
    [
        "admin",
        "administrator",
        "root",
        "postmaster",
        "hostmaster",
        "webmaster",
        "abuse",
        "noreply",
        "no-reply",
        "support",
        "security",
        "info",
        "guest",
        "system",
        "user",
        "enid",
    ]
    .map(String::from)
    .to_vec()
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config {path}: {message}")]
    Invalid { path: String, message: String },
}

impl Config {
    /// The config path: `--config`, else `ENID_CONFIG`, else [`DEFAULT_PATH`].
    pub fn resolve_path(flag: Option<&Path>, env: Option<String>) -> PathBuf {
        flag.map(Path::to_path_buf)
            .or_else(|| env.filter(|e| !e.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
    }

    /// Reads, parses and validates a config file. Relative paths in it are taken relative to
    /// the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        let mut config =
            Config::parse(&text).map_err(|message| ConfigError::Parse { path: path.display().to_string(), message })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        config.resolve_relative(dir);
        config.validate().map_err(|message| ConfigError::Invalid { path: path.display().to_string(), message })?;
        Ok(config)
    }

    /// Parses TOML text. The error names the line and the key.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let msg = e.message().trim().to_string();
            let line = e.span().map(|span| {
                let start = span.start.min(text.len());
                // The table runs until the next table header.
                let end = text[start..]
                    .find("\n[")
                    .map(|i| start + i + 1)
                    .unwrap_or(text.len())
                    .max(span.end.min(text.len()));
                // Inside a tagged table serde reports the table's span: find the key's own line.
                let key = msg.strip_prefix("unknown field `").and_then(|m| m.split('`').next());
                let offset = key
                    .and_then(|k| {
                        let mut pos = start;
                        text[start..end].split_inclusive('\n').find_map(|l| {
                            let here = pos;
                            pos += l.len();
                            let rest = l.trim_start().strip_prefix(k)?;
                            rest.trim_start().starts_with('=').then_some(here)
                        })
                    })
                    .unwrap_or(start);
                // A type error inside a tagged table names no key: find the key by its value.
                match (offset == start).then(|| key_with_bad_value(text, start, &msg)).flatten() {
                    Some((key, at)) => (text[..at].matches('\n').count() + 1, Some(key)),
                    None => (text[..offset].matches('\n').count() + 1, None),
                }
            });
            match line {
                Some((l, Some(key))) => format!("line {l}: {key}: {msg}"),
                Some((l, None)) => format!("line {l}: {msg}"),
                None => msg,
            }
        })
    }

    fn resolve_relative(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        if let Some(path) = &mut self.state.path {
            fix(path);
        }
        // The keys and the database password may come from systemd (`LoadCredential=`, named
        // "$CREDENTIALS_DIRECTORY/<name>"): how two nodes get the same keys.
        connector_api::resolve_optional_path(dir, &mut self.state.db_password_file);
        let key = self.identity.id_key_file.get_or_insert_with(|| PathBuf::from(DEFAULT_ID_KEY));
        connector_api::resolve_path(dir, key);
        let key = self.state.password_key_file.get_or_insert_with(|| PathBuf::from(DEFAULT_PASSWORD_KEY));
        connector_api::resolve_path(dir, key);
        if let Some(server) = &mut self.server {
            server.resolve_paths(dir);
        }
        // Each connector knows which of its keys are paths.
        for s in self.sources.values_mut() {
            s.connector.resolve_paths(dir);
        }
        for t in self.targets.values_mut() {
            t.connector.resolve_paths(dir);
        }
    }

    /// Checks what needs no network.
    pub fn validate(&self) -> Result<(), String> {
        if self.sources.is_empty() {
            return Err("no [sources.<id>] table; enid needs at least one source".into());
        }
        if self.targets.is_empty() {
            return Err("no [targets.<id>] table; enid needs at least one target".into());
        }
        if let Some(server) = &self.server {
            server.validate()?;
        }
        self.state.validate()?;
        for id in self.sources.keys().chain(self.targets.keys()) {
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(format!("id {id:?}: use letters, digits, '-' and '_' only"));
            }
        }
        self.lifecycle.model()?;
        // Shorter than a day is a slip of the unit ("180s" for "180d"): it would remove the log
        // of the run that just ended.
        if self.state.keep_log_for.as_secs() < 86_400 {
            return Err(format!(
                "[state] keep_log_for = \"{}\" is shorter than a day; write days, such as \"180d\"",
                self.state.keep_log_for
            ));
        }
        for (attr, s) in self.identity.authority.all() {
            if !self.sources.contains_key(s) {
                return Err(format!("[identity.authority] {attr} names source {s:?}, which is not configured"));
            }
        }
        self.namer().map_err(|e| format!("[naming] {e}"))?;
        for (id, s) in &self.sources {
            s.connector.validate().map_err(|e| format!("[sources.{id}] {e}"))?;
            s.policy.validate().map_err(|e| format!("[sources.{id}.policy] {e}"))?;
        }
        for (id, t) in &self.targets {
            t.connector.validate().map_err(|e| format!("[targets.{id}] {e}"))?;
            t.policy.validate().map_err(|e| format!("[targets.{id}.policy] {e}"))?;
            check_policy(id, t)?;
            let caps = t.connector.capabilities();
            crate::core::mapping::Mapping::new(&mapping_templates(&caps, &t.policy))
                .map_err(|e| format!("[targets.{id}.policy.attributes] {e}"))?;
            if let Some(g) = &t.policy.groups {
                crate::core::mapping::GroupNamer::new(&g.name, &g.school_name, &g.members, &g.types)
                    .map_err(|e| format!("[targets.{id}.policy.groups] {e}"))?;
            }
        }
        Ok(())
    }
}

/// For a serde "invalid type/value" message about the table that starts at `start`: the key in
/// that table (or its sub-tables) whose value is the one the message quotes, and the offset of
/// its line. `None` when the message quotes no value or no line has it.
fn key_with_bad_value(text: &str, start: usize, msg: &str) -> Option<(String, usize)> {
    let rest = msg.strip_prefix("invalid type: ").or_else(|| msg.strip_prefix("invalid value: "))?;
    let (kind, lit) = rest.split_once(' ').unwrap_or((rest, ""));
    let kind = kind.trim_end_matches(',');
    let wanted: Vec<String> = if kind == "sequence" {
        vec!["[".into()]
    } else if kind == "map" {
        vec!["{".into()]
    } else if let Some(s) = lit.strip_prefix('"') {
        let v = &s[..s.find('"')?];
        vec![format!("\"{v}\""), format!("'{v}'")]
    } else {
        let s = lit.strip_prefix('`')?;
        vec![s[..s.find('`')?].to_string()]
    };
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let header = text[line_start..].lines().next()?.trim();
    let table = header.strip_prefix('[')?.strip_suffix(']')?.trim().to_string();
    let mut pos = line_start;
    // A sub-table may stand anywhere later in the file (`[sources.sis.policy]` after the
    // targets): lines of other tables are skipped, not the end of the search.
    let mut inside = true;
    for (i, l) in text[line_start..].split_inclusive('\n').enumerate() {
        let here = pos;
        pos += l.len();
        let t = l.trim();
        if i > 0 && t.starts_with('[') {
            let name = t.trim_start_matches('[').trim_end_matches(']').trim();
            inside = name.starts_with(&format!("{table}."));
            continue;
        }
        if !inside {
            continue;
        }
        let Some((key, value)) = t.split_once('=') else { continue };
        let value = value.split(" #").next().unwrap_or("").trim();
        let by_kind = matches!(kind, "sequence" | "map") && wanted.iter().any(|w| value.starts_with(w.as_str()));
        if by_kind || wanted.iter().any(|w| w == value) {
            return Some((key.trim().to_string(), here));
        }
    }
    None
}

#[cfg(test)]
mod tests;
