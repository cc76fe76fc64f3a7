//! berth-init: PID 1 for berth containers, and a drop-in for tini.
//!
//! # Layout
//!
//! Primitives, shared by every mode (their APIs are meant to stay stable):
//! - [`signals`]: capture the inherited mask and ignored signals, block everything, read
//!   signals from a close-on-exec `signalfd`, restore the inherited state in a child.
//! - [`reaper`]: the one `waitpid(-1)` loop ([`reaper::drain`]) and the pid → owner
//!   table ([`reaper::ChildTable`]) that routes each status to whoever started the pid.
//! - [`spawn`]: fork + exec of a command with its own process group, the terminal's
//!   foreground, the inherited signal state, optional cwd/env/credentials/stdio.
//! - [`exit_status`]: how a child ended, 128+N mapping, `-e` remapping.
//! - [`subreaper`]: child-subreaper bit, parent-death signal, the not-PID-1 warning.
//! - [`log`]: tini-format messages on stderr by verbosity.
//!
//! Modes:
//! - [`cli`]: the tini-compatible command line, parsed into a plain [`cli::Config`].
//! - [`single`]: the tini mode's event loop (one command).

//! # The tini mode's footprint
//!
//! `berth-init -- CMD` must cost no more than tini-static although the same binary
//! carries the supervisor (async runtime, YAML, netlink, TLS). Nothing of those runs
//! in the tini mode: `main` decides the mode on the raw arguments ([`sup_cli::mode`],
//! no allocation) and the tini path uses none of them. What remains is which pages of
//! the binary get mapped: the kernel maps up to 16 cached pages around every page
//! fault, so a path spread over the 5 MB text would map most of it. Every function of
//! the tini path is therefore placed in one linker section, `.text.berth_tini`
//! (`#[link_section]`), and the path avoids std helpers that live elsewhere in the
//! text (`std::env::var_os` -> [`cli::env_var`], iterator adapters, lossy UTF-8 of
//! options, drop glue on the way out). The musl build is non-PIE (`.cargo/config.toml`)
//! so that no relocations are applied at start. The `init_core` bench shows the result
//! (init/README.md, "Benchmark").

pub mod capset;
pub mod cli;
pub mod exit_status;
pub mod log;
pub mod reaper;
pub mod signals;
pub mod single;
pub mod spawn;
pub mod subreaper;

// Supervisor mode (the app spec's services):
// - `spec`: the app spec (YAML), parsed and validated before anything runs.
// - `supervisor`: services as process groups, health checks, hooks, cron, status socket.
// - `cron`, `backoff`, `health`: the pure schedule, restart-delay and health machines.
// - `login`: SSH login with CA certificates (`login:`): sshd config, host key, CA/KRL refresh.
// - `lvs`: LVS registration (`lvs:`): the director API client and its retry machine.
// - `status`: the status socket's JSON protocol; `ctl`: its client; `sup_cli`: the
//   supervisor's command line (`--spec`, `--socket`, `ctl`); `sup_log`: its log lines.
pub mod backoff;
pub mod cron;
pub mod ctl;
pub mod dbauth;
pub mod health;
pub mod login;
pub mod lvs;
pub mod spec;
pub mod statsd;
pub mod status;
pub mod sup_cli;
pub mod sup_log;
pub mod supervisor;
