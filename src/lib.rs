//! enid
