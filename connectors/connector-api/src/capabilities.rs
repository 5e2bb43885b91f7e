//! What a target declares about itself, so the engine reads facts instead of special-casing a
//! connector type: which attribute carries enid's owner marker, whether it has groups and how
//! groups name their members, whether a rename or a disable changes an account's key, how it
//! compares names and keys, how many operations it takes at once, and what usernames it accepts.

/// How a group names its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberForm {
    /// By the member account's key (LDAP `member` DNs, SCIM `members[].value` ids).
    Key,
    /// By the member's username (LDAP `posixGroup` `memberUid`).
    Username,
}

/// How the target disables an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableKind {
    /// A flag or attribute on the account (SCIM `active`, AD `userAccountControl`, an LDAP
    /// attribute): the key stays.
    Flag,
    /// A move to another container (an LDAP disabled OU): disable and enable change the key.
    Move,
}

/// What a username held on the target by an account enid does not own (and that carries no
/// owner marker) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingUsernames {
    /// Someone else's: the name is never given, a new person gets another (LDAP: a directory
    /// holds many hand-made entries, and a name is just a name).
    Avoid,
    /// Perhaps this person's, made before enid: the person with that username is blocked (no
    /// second account for them) until an operator decides (SCIM by default).
    Block,
    /// This person's, made before enid: claimed, and given the owner marker (SCIM
    /// `adopt_by_username = true`).
    Adopt,
}

/// The first password a target wants on every account it creates (AD enables no account
/// without one). The engine makes it from the OS random source before the create is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordRules {
    /// Characters; every password holds upper and lower case letters, digits and symbols.
    pub length: usize,
    /// Kept, encrypted, for a school admin to hand out (`enid passwords show`); otherwise
    /// nobody ever sees it (single sign-on accounts).
    pub handed_out: bool,
}

/// Where to look with [`crate::Target::find_outside_scope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Accounts whose owner attribute holds one of the values (enid ids).
    Owner,
    /// Accounts whose anchor is one of the values.
    Anchor,
    /// Entries holding one of the values as their username (AD: `sAMAccountName` or the UPN it
    /// gives), of any kind: what a new username must not collide with.
    Username,
    /// Entries holding the account name a new group of one of these names would get, of any
    /// kind (AD: the group's `sAMAccountName`, one namespace with users and computers, so the
    /// UPN does not count): what a new group must not collide with. The matched value is the
    /// group name asked about.
    GroupName,
}

/// The facts a target declares. Built by the connector from its settings; the engine reads them
/// and never asks which connector type it has.
///
/// A connector sets what it knows and takes [`Capabilities::default`] for the rest
/// (`..Capabilities::default()`): each field's default, said on the field, is the most
/// conservative reading, the one under which the engine assumes least (no groups, one operation
/// at a time, strings only, keys that change, nothing outside the scope). Only
/// `owner_attribute` has no safe default: it is empty, and enid refuses a target that declares
/// none.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// The attribute that carries the enid id on every account enid creates: its owner marker
    /// (LDAP: a configured attribute, `employeeNumber` by default; SCIM: `externalId`). The
    /// engine maps it to `{{ id }}`, and a policy can never map it to anything else.
    /// Default: empty, which enid refuses (a target must declare its own).
    pub owner_attribute: String,
    /// Attribute → template: what accounts carry unless the target's policy says otherwise.
    /// Default: none.
    pub default_attributes: Vec<(String, String)>,
    /// The attributes a person with protected personal data gets unless the policy says
    /// otherwise: those needed to log in and to recognise the account. Default: none.
    pub protected_attributes: Vec<String>,
    /// Groups and how they name members; `None` (the default): the target has no groups (or
    /// none configured).
    pub groups: Option<MemberForm>,
    /// A group's member values follow an account that is renamed or moved, the target keeping
    /// them (AD's linked attributes): a move changes no membership to be made. Default: `false`,
    /// enid changes the member values itself.
    pub members_follow_moves: bool,
    /// Where accounts live, as a template of enid's (`OU={{ school_unit | dn }},OU=Elever,DC=...`),
    /// for a target that places accounts; `None` (the default): it does not.
    pub placement: Option<String>,
    /// Where a person with protected personal data lives instead (a neutral container that
    /// says nothing of their school). Default: `None`.
    pub protected_placement: Option<String>,
    /// Why the target cannot hold accounts at a rendered placement, when it cannot (AD: an OU
    /// name that is empty or over 64 characters): the persons placed there are held, reported,
    /// instead of a create the server refuses on every run. `None` (the default): every
    /// placement will do.
    pub placement_problem: Option<fn(&str) -> Option<String>>,
    /// A rename keeps the account's key (SCIM ids); `false` (the default): the key changes (an
    /// LDAP DN carries the username), and the engine takes the key the target reports.
    pub rename_keeps_key: bool,
    /// How accounts are disabled. Default: [`DisableKind::Move`], the reading under which a
    /// disable or an enable may change the key.
    pub disable: DisableKind,
    /// Usernames and group names compare without case on the target. Default: `true`, so two
    /// names that differ only in case are never taken for two.
    pub case_insensitive_names: bool,
    /// The target takes booleans and complex values ([`crate::Value`]); `false` (the default):
    /// texts only (LDAP), and a policy that maps anything else is a config error.
    pub typed_values: bool,
    /// Operations the target takes at once. Default: 1.
    pub max_in_flight: usize,
    /// Operations the target takes in one request ([`crate::Target::apply_batch`]: a SCIM
    /// `/Bulk` request); 1 (the default): one at a time.
    pub max_batch: usize,
    /// Requests per second the connector sends at most (its own limit); `None` (the default):
    /// no limit of its own.
    pub max_requests_per_second: Option<f64>,
    /// The longest username the target accepts, when it has a limit (AD `sAMAccountName`: 20).
    /// Default: `None`, no limit beyond `[naming] max_length`.
    pub max_username_length: Option<usize>,
    /// Characters a username may not contain on the target. Default: none beyond the control
    /// characters, which no target takes.
    pub username_forbidden: &'static str,
    /// An update of this attribute renames the entry, changing its key (AD: a new
    /// `displayName` renames the `cn`): the account's member values are given at apply then.
    /// Default: `None`.
    pub renamed_by_attribute: Option<&'static str>,
    /// The target can search outside the scope it observes ([`crate::Target::find_outside_scope`]).
    /// Default: `false`.
    pub finds_outside_scope: bool,
    /// The server refuses a username that any entry holds, in the scope or not (AD:
    /// `sAMAccountName` is unique in the domain, the UPN in the forest): a new username is
    /// looked up on the whole server ([`Lookup::Username`]) before it is given. Group names
    /// share that namespace (AD: a group's `sAMAccountName`), so the name of a group to create
    /// is looked up too ([`Lookup::GroupName`]). Default: `false` (it needs
    /// `finds_outside_scope`).
    pub usernames_unique_server_wide: bool,
    /// What an account that enid does not own, carrying no owner marker at all, means for a
    /// person whose username it holds. Default: [`ExistingUsernames::Block`], the person waits
    /// for an operator.
    pub existing_usernames: ExistingUsernames,
    /// A first password on every account the target creates; `None` (the default): the target
    /// sets none.
    pub initial_password: Option<PasswordRules>,
    /// Two keys that name the same account fold to the same string (LDAP DNs: without case and
    /// spaces around separators; SCIM ids: exactly). Default: [`exact`], keys are opaque.
    pub fold_key: fn(&str) -> String,
    /// Two group names that the target holds to be the same fold to the same string (LDAP:
    /// without case and with runs of spaces as one). Default: [`lowercase`], matching
    /// `case_insensitive_names`.
    pub fold_group_name: fn(&str) -> String,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            owner_attribute: String::new(),
            default_attributes: Vec::new(),
            protected_attributes: Vec::new(),
            groups: None,
            members_follow_moves: false,
            placement: None,
            protected_placement: None,
            placement_problem: None,
            rename_keeps_key: false,
            disable: DisableKind::Move,
            case_insensitive_names: true,
            typed_values: false,
            max_in_flight: 1,
            max_batch: 1,
            max_requests_per_second: None,
            max_username_length: None,
            username_forbidden: "",
            renamed_by_attribute: None,
            finds_outside_scope: false,
            usernames_unique_server_wide: false,
            existing_usernames: ExistingUsernames::Block,
            initial_password: None,
            fold_key: exact,
            fold_group_name: lowercase,
        }
    }
}

impl Capabilities {
    /// A key as it compares on this target.
    pub fn key(&self, key: &str) -> String {
        (self.fold_key)(key)
    }

    /// A group name as it compares on this target.
    pub fn group_name(&self, name: &str) -> String {
        (self.fold_group_name)(name)
    }

    /// Whether a username is one the target accepts: the first forbidden character if not.
    pub fn username_problem(&self, username: &str) -> Option<String> {
        if let Some(max) = self.max_username_length.filter(|m| username.chars().count() > *m) {
            return Some(format!("longer than {max} characters"));
        }
        username
            .chars()
            .find(|c| self.username_forbidden.contains(*c) || c.is_control())
            .map(|c| format!("contains {c:?}"))
    }
}

/// Keys compared exactly (server-assigned ids).
pub fn exact(s: &str) -> String {
    s.to_string()
}

/// Names compared without case.
pub fn lowercase(s: &str) -> String {
    s.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_username_the_target_refuses_says_why() {
        let caps = Capabilities {
            owner_attribute: "x".into(),
            max_username_length: Some(5),
            username_forbidden: "@+",
            ..Capabilities::default()
        };
        assert_eq!(caps.username_problem("anna"), None);
        assert_eq!(caps.username_problem("annika").as_deref(), Some("longer than 5 characters"));
        assert_eq!(caps.username_problem("a@b").as_deref(), Some("contains '@'"));
        assert_eq!(caps.key("AbC"), "AbC");
        assert_eq!(caps.group_name("7A"), "7a");
    }

    /// What a connector does not declare is read the way under which the engine assumes least.
    #[test]
    fn what_a_target_does_not_declare_is_the_conservative_reading() {
        let c = Capabilities::default();
        assert_eq!(c.owner_attribute, "", "no owner attribute: enid refuses such a target");
        assert!(c.default_attributes.is_empty() && c.protected_attributes.is_empty());
        assert_eq!(c.groups, None);
        assert!(!c.members_follow_moves && !c.rename_keeps_key && !c.typed_values);
        assert_eq!((c.placement.as_deref(), c.protected_placement.as_deref()), (None, None));
        assert!(c.placement_problem.is_none());
        assert_eq!(c.disable, DisableKind::Move);
        assert!(c.case_insensitive_names);
        assert_eq!((c.max_in_flight, c.max_batch, c.max_requests_per_second), (1, 1, None));
        assert_eq!((c.max_username_length, c.username_forbidden), (None, ""));
        assert_eq!(c.renamed_by_attribute, None);
        assert!(!c.finds_outside_scope && !c.usernames_unique_server_wide);
        assert_eq!(c.existing_usernames, ExistingUsernames::Block);
        assert_eq!(c.initial_password, None);
        assert_eq!((c.key("AbC"), c.group_name("AbC")), ("AbC".to_string(), "abc".to_string()));
        assert_eq!(c.username_problem("a\u{7}"), Some("contains '\\u{7}'".to_string()));
    }
}
