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
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// The attribute that carries the enid id on every account enid creates: its owner marker
    /// (LDAP: a configured attribute, `employeeNumber` by default; SCIM: `externalId`). The
    /// engine maps it to `{{ id }}`, and a policy can never map it to anything else.
    pub owner_attribute: String,
    /// Attribute → template: what accounts carry unless the target's policy says otherwise.
    pub default_attributes: Vec<(String, String)>,
    /// The attributes a person with protected personal data gets unless the policy says
    /// otherwise: those needed to log in and to recognise the account.
    pub protected_attributes: Vec<String>,
    /// Groups and how they name members; `None`: the target has no groups (or none configured).
    pub groups: Option<MemberForm>,
    /// A group's member values follow an account that is renamed or moved, the target keeping
    /// them (AD's linked attributes): a move changes no membership to be made.
    pub members_follow_moves: bool,
    /// Where accounts live, as a template of enid's (`OU={{ school_unit | dn }},OU=Elever,DC=...`),
    /// for a target that places accounts; `None`: it does not.
    pub placement: Option<String>,
    /// Where a person with protected personal data lives instead (a neutral container that
    /// says nothing of their school).
    pub protected_placement: Option<String>,
    /// Why the target cannot hold accounts at a rendered placement, when it cannot (AD: an OU
    /// name that is empty or over 64 characters): the persons placed there are held, reported,
    /// instead of a create the server refuses on every run. `None`: every placement will do.
    pub placement_problem: Option<fn(&str) -> Option<String>>,
    /// A rename keeps the account's key (SCIM ids); `false`: the key changes (an LDAP DN
    /// carries the username).
    pub rename_keeps_key: bool,
    /// How accounts are disabled.
    pub disable: DisableKind,
    /// Usernames and group names compare without case on the target.
    pub case_insensitive_names: bool,
    /// The target takes booleans and complex values ([`crate::Value`]); `false`: texts only
    /// (LDAP), and a policy that maps anything else is a config error.
    pub typed_values: bool,
    /// Operations the target takes at once.
    pub max_in_flight: usize,
    /// Operations the target takes in one request ([`crate::Target::apply_batch`]: a SCIM
    /// `/Bulk` request); 1: one at a time.
    pub max_batch: usize,
    /// Requests per second the connector sends at most (its own limit); `None`: no limit.
    pub max_requests_per_second: Option<f64>,
    /// The longest username the target accepts, when it has a limit (AD `sAMAccountName`: 20).
    pub max_username_length: Option<usize>,
    /// Characters a username may not contain on the target.
    pub username_forbidden: &'static str,
    /// An update of this attribute renames the entry, changing its key (AD: a new
    /// `displayName` renames the `cn`): the account's member values are given at apply then.
    pub renamed_by_attribute: Option<&'static str>,
    /// The target can search outside the scope it observes ([`crate::Target::find_outside_scope`]).
    pub finds_outside_scope: bool,
    /// The server refuses a username that any entry holds, in the scope or not (AD:
    /// `sAMAccountName` is unique in the domain, the UPN in the forest): a new username is
    /// looked up on the whole server ([`Lookup::Username`]) before it is given. Group names
    /// share that namespace (AD: a group's `sAMAccountName`), so the name of a group to create
    /// is looked up too ([`Lookup::GroupName`]).
    pub usernames_unique_server_wide: bool,
    /// What an account that enid does not own, carrying no owner marker at all, means for a
    /// person whose username it holds.
    pub existing_usernames: ExistingUsernames,
    /// A first password on every account the target creates; `None`: the target sets none.
    pub initial_password: Option<PasswordRules>,
    /// Two keys that name the same account fold to the same string (LDAP DNs: without case and
    /// spaces around separators; SCIM ids: exactly).
    pub fold_key: fn(&str) -> String,
    /// Two group names that the target holds to be the same fold to the same string (LDAP:
    /// without case and with runs of spaces as one).
    pub fold_group_name: fn(&str) -> String,
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
            default_attributes: Vec::new(),
            protected_attributes: Vec::new(),
            groups: None,
            members_follow_moves: false,
            placement: None,
            protected_placement: None,
            placement_problem: None,
            rename_keeps_key: true,
            disable: DisableKind::Flag,
            case_insensitive_names: true,
            typed_values: true,
            max_in_flight: 1,
            max_batch: 1,
            max_requests_per_second: None,
            max_username_length: Some(5),
            username_forbidden: "@+",
            renamed_by_attribute: None,
            finds_outside_scope: false,
            usernames_unique_server_wide: false,
            existing_usernames: ExistingUsernames::Avoid,
            initial_password: None,
            fold_key: exact,
            fold_group_name: lowercase,
        };
        assert_eq!(caps.username_problem("anna"), None);
        assert_eq!(caps.username_problem("annika").as_deref(), Some("longer than 5 characters"));
        assert_eq!(caps.username_problem("a@b").as_deref(), Some("contains '@'"));
        assert_eq!(caps.key("AbC"), "AbC");
        assert_eq!(caps.group_name("7A"), "7a");
    }
}
