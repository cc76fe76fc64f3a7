//! What the engine asks of the system, behind a trait so its logic is unit-tested with a
//! recording fake: start a process in its own group, signal a group, ask whether a group
//! still has members, and run a network probe whose result comes back later.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::spec::{LogSpec, Probe};

/// A process to start in a new process group (its pgid = its pid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Run as (uid, gid).
    pub ids: Option<(u32, u32)>,
    /// Where stdout/stderr go.
    pub log: LogSpec,
    /// Label for logs (`web`, `web pre_start`, `cron cleanup`).
    pub label: String,
    /// The only capabilities it may hold (bit n = capability n); `None`: what init's
    /// children get anyway.
    pub keep_caps: Option<u64>,
}

/// The system calls the engine makes.
pub trait Os {
    /// Starts `launch` in its own process group; returns its pid.
    fn spawn(&mut self, launch: &Launch) -> io::Result<i32>;
    /// Sends `sig` to the process group `pgid` (no error if it is gone).
    fn signal_group(&mut self, pgid: i32, sig: Signal);
    /// Whether the process group `pgid` still has a member.
    fn group_alive(&mut self, pgid: i32) -> bool;
    /// Starts a TCP or HTTP probe; its result comes back as
    /// [`super::Engine::on_probe`]`(service, generation, ok)`.
    fn start_probe(&mut self, service: usize, generation: u64, probe: &Probe, timeout: Duration);
}
