//! enid: one identity per person, provisioned to every system a school organisation runs.
//!
//! The crate is a functional core (`core`: identity, naming, mapping, plan; pure functions over
//! values, `now` an argument) inside an imperative shell (`engine`, `store`, `cli`). See
//! ARCHITECTURE.md for the map and the invariants.

pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod daemon;
pub mod engine;
pub mod http;
pub mod store;
