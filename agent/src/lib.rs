//! # berth-agent
//!
//! One binary, several roles, each a subcommand with its own module under [`cmd`]:
//!
//! - `serve`: the node service next to `mesos-agent` (metrics, periodic GC);
//! - `resources`: the node's extended Mesos resources;
//! - `gc`: garbage collection of what dead tasks left behind;
//! - `ps`: a table of this node's containers;
//! - `lvs`: the LVS director role (IPVS from berth-init registrations and Marathon);
//! - `dbauth`: the central database-authorization service.
//!
//! # Layout
//! - [`cmd`]: one file per verb; each parses nothing itself (clap did) and calls the
//!   library modules that do the work.
//! - [`lvs`]: the LVS director's real-server table and its reentrancy rules.
//! - [`marathon`]: the Marathon client (tasks of an app, typed events).

pub mod cmd;
pub mod lvs;
pub mod marathon;
