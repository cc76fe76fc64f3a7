//! The LVS director role: which real servers each virtual service should have, from
//! berth-init's registrations and Marathon's view of the tasks.
//!
//! # Layout
//! - [`config`]: `/etc/berth/lvs.toml` (API listener, Marathon, owned virtual services).
//! - [`table`]: one service's real servers as both writers left them, and the reentrancy
//!   rules that turn them into the wanted IPVS real servers.
//! - [`wanted`]: all tables -> the wanted IPVS state of the owned services (netcfg's diff).
//! - [`director`]: the tables of all owned services, fed by Marathon listings and events.
//! - [`api`]: the real-server HTTP API (register, set weight, deregister) as a pure
//!   function over the director, authorized by the TCP peer address.
//! - [`run`]: the loop: API server, Marathon events + periodic listings, IPVS diffs,
//!   sd_notify, SIGTERM.

pub mod api;
pub mod config;
pub mod director;
pub mod run;
pub mod table;
pub mod wanted;
