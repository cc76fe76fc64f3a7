//! berth-init: PID 1 for berth containers.
//!
//! # Layout
//! - `spec`: the app spec (YAML), parsed and validated before anything runs.
//! - `cron`: 5-field schedules and per-job run bookkeeping.
//! - `backoff`: restart delays and the crash-loop limit.
//! - `health`: the Mesos-style health state machine and the network probes.
//! - `status`: the status socket's JSON protocol.

pub mod backoff;
pub mod cron;
pub mod health;
pub mod spec;
pub mod status;
