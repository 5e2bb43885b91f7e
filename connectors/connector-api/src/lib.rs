//! The contract between enid's engine and its connectors.
//!
//! A *source* reads authoritative person records (a CSV export, later SS 12000 or OneRoster); a
//! *target* holds accounts (OpenLDAP, AD, SCIM; later Google, Entra). The engine knows connectors
//! only through the traits and value types here, and a connector crate depends on nothing of the
//! engine: Cargo enforces that a connector can never reach the state database or the planner.
//!
//! The vocabulary is enid's, not a protocol's: an account is an [`AccountSpec`] with typed
//! [`Value`]s, keys are opaque and assigned by the target, and a target declares what it
//! supports in [`Capabilities`] instead of the engine knowing its type.
//!
//! Every connector MUST:
//! - report bad input per record with its location (`file:line` or an id), never drop it silently;
//! - return errors typed by what the caller must do ([`SourceError`], [`TargetError`]), keeping
//!   the underlying error as their `source`;
//! - never log or print a [`Secret`] or an unmasked [`CivicNo`];
//! - for targets: treat `apply` as idempotent where the protocol allows it, and report exactly
//!   which entry an operation touched and the key it has now, so the engine can record
//!   ownership.
//!
//! A connector's config implements [`ConnectorConfig`] and [`SourceConnector`] or
//! [`TargetConnector`]: it checks itself, resolves its paths, reads its own secrets and builds
//! the connector, so enid registers a connector type with one line and knows none of its keys.
//! [`ConfigDuration`] is the type of config keys that hold a duration with its unit (`"1h"`).
//!
//! With the `testkit` feature, [`testkit`] holds the conformance scenarios every target passes
//! against a live server, and the fault-injecting TCP proxy they use.

pub mod attrs;
pub mod capabilities;
pub mod civic;
pub mod connector;
pub mod dn;
pub mod duration;
pub mod error;
pub mod fence;
pub mod lines;
pub mod packed;
pub mod secret;
pub mod source;
pub mod target;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod value;

pub use attrs::Name;
pub use capabilities::{Capabilities, DisableKind, ExistingUsernames, Lookup, MemberForm, PasswordRules};
pub use civic::{CivicNo, CivicNoError};
pub use connector::{ConnectorConfig, SourceConnector, TargetConnector, resolve_optional_path, resolve_path};
pub use dn::escape_dn_value;
pub use duration::ConfigDuration;
pub use error::{BoxError, one_line};
pub use lines::LineCounter;
pub use packed::{Joined, PackedAttrs, TextsOf};
pub use secret::{Secret, load_configured_secret, load_secret, load_secret_file, warn_unverified_tls};
pub use source::{
    Affiliation, AffiliationKind, BoxFuture, Extras, FetchContext, Fetched, GroupMembership, GroupType, Interner,
    PriorQuery, PriorRecords, Protection, Role, Roles, RowError, Shared, Source, SourceBatch, SourceChanges,
    SourceError, SourceRecord, StoredUnits, TieDetails,
};
pub use target::{
    AccountSpec, Field, FoundAnchor, ObservedAccount, ObservedGroup, OpOutcome, RejectKind, Target, TargetError,
    TargetOp,
};
pub use value::{ABSENT, AttrChange, Attrs, Fields, Texts, Value};
