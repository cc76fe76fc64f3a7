//! The LVS director role: which real servers each virtual service should have, from
//! berth-init's registrations and Marathon's view of the tasks.
//!
//! # Layout
//! - [`config`]: `/etc/berth/lvs.toml` (API listener, Marathon, owned virtual services).
//! - [`table`]: one service's real servers as both writers left them, and the reentrancy
//!   rules that turn them into the wanted IPVS real servers.
//! - [`wanted`]: all tables -> the wanted IPVS state of the owned services (netcfg's diff).

pub mod config;
pub mod table;
pub mod wanted;
