//! The functional core: pure functions over values. Nothing here performs IO, reads the clock
//! (`now` and `today` are arguments) or knows a protocol: identities are resolved
//! ([`identity`]), named ([`naming`]), given the accounts they should have on each target in
//! enid's own vocabulary ([`desired`], [`mapping`]), and compared with what the targets hold
//! ([`plan`]). The engine feeds it and carries out what it decides.

pub mod desired;
pub mod id;
pub mod identity;
pub mod index;
pub mod mapping;
pub mod model;
pub mod names;
pub mod naming;
pub mod par;
pub mod plan;
pub mod policy;
