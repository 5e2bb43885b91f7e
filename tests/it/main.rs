//! End-to-end tests: the real `enid` binary against a real OpenLDAP slapd that
//! `tests/scripts/slapd.sh` starts privately on 127.0.0.1 for each test, the PyPI scim2-server
//! and a Samba AD domain controller (one each, shared by the tests that need them).
//!
//! One test binary (see ARCHITECTURE.md). Each test gets its own directory, slapd and state
//! database, so tests run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ad;
mod api16;
mod api16sweep;
mod civic_spellings;
mod cloud18;
mod conformance;
mod daemon16;
mod entra;
mod fault;
mod google;
mod groups;
mod handout;
mod harness;
mod identity;
mod identity_gaps;
mod incremental16;
mod incremental16ss;
mod lifecycle;
mod migration;
mod nodes19;
mod onboarding;
mod oneroster;
mod ops16;
mod permissions;
mod plan17;
mod postgres19;
mod postgres19diff;
mod progress17;
mod protected;
mod review;
mod review15;
mod review15b;
mod review16api;
mod review16inc;
mod review17;
mod review18;
mod review2;
mod review3;
mod review3_probes;
mod review4;
mod runs16;
mod safety_source;
mod safety_state;
mod safety_target;
mod scale19;
mod scim;
mod spine;
mod ss12000;
mod tls;
mod web17;
mod web17b;
