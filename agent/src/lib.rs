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
//! - [`cli`]: the clap definitions and the dispatch to [`cmd`].
//! - [`cmd`]: one file per verb; each parses nothing itself (clap did) and calls the
//!   library modules that do the work.
//! - [`config`]: `/etc/berth/agent.toml`, strict (unknown keys are errors).
//! - [`resources`]: the node's Mesos resources and their two textual forms.
//! - [`serve`]: the service loop: systemd notify/watchdog, SIGHUP reload, SIGTERM stop.
//! - [`metrics`]: per-container metrics (cgroups, netns counters, /home, berth-init) for
//!   Prometheus (`GET /metrics`) and Open-Falcon (push).
//! - [`ps`]: the rows and table of `berth-agent ps`.
//! - [`gc`]: garbage collection of dead tasks' leftovers (the task lock says who is alive).
//! - [`log`]: plain log lines on stderr (ANSI only on a terminal).
//! - [`lvs`]: the LVS director's real-server table and its reentrancy rules.
//! - [`marathon`]: the Marathon client (tasks of an app, typed events).
//! - [`dbauth`]: database authorization (grants per task, revoked when it ends).

pub mod cli;
pub mod cmd;
pub mod config;
pub mod dbauth;
pub mod gc;
pub mod log;
pub mod lvs;
pub mod marathon;
pub mod metrics;
pub mod ps;
pub mod resources;
pub mod serve;

/// `err: cause: cause` on one line (the chain printed once, at the top).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
