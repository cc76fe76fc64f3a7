//! The LVS director role: which real servers each virtual service should have, from
//! berth-init's registrations and Marathon's view of the tasks.
//!
//! # Layout
//! - [`config`]: `/etc/berth/lvs.toml` (API listener, Marathon, owned virtual services).
//! - [`table`]: one service's real servers as both writers left them, and the reentrancy
//!   rules that turn them into the wanted IPVS real servers.

pub mod config;
pub mod table;
