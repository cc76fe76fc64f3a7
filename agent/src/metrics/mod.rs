//! Per-container metrics: collected from the host each step, served to Prometheus and
//! pushed to Open-Falcon.
//!
//! # Layout (data passes down once; each file imports only those above it)
//! - [`cgroup`]: a cgroup's CPU, memory, block I/O and process counters, v1 or v2.
//! - [`task`]: this node's containers and their tags, from the executor's state dir.
//! - [`app`]: app metrics, the aggregates of berth-init's statsd listener.
//! - [`init`]: berth-init's status socket (app and service states, restarts, health, the
//!   [`app`] metrics).
//! - [`collect`]: one collection of every container ([`collect::Snapshot`]), with eth0
//!   counters read in the container's netns (berth-netcfg) and /home usage (statvfs).
//! - [`prom`]: the Prometheus text exposition of a snapshot.
//! - [`falcon`]: the Open-Falcon items of a snapshot.
//! - [`push`]: the bounded Falcon buffer and the pusher task (retry with backoff).
//! - [`service`]: what `serve` runs: a step (collect, push) and the `/metrics` handler.

pub mod app;
pub mod cgroup;
pub mod collect;
pub mod falcon;
pub mod init;
pub mod prom;
pub mod push;
pub mod service;
pub mod task;
