//! One service's run-time record and its phases.

use std::time::{Duration, Instant};

/// How long a legacy entry runs in the foreground before the next entry starts anyway.
pub const ENTRY_SETTLE: Duration = Duration::from_secs(1);

use crate::backoff::Backoff;
use crate::health::HealthState;
use crate::spec::ServiceSpec;

/// What happens once a stop finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    /// Stay stopped (ctl stop, or shutdown).
    Park,
    /// Start again at once (ctl restart).
    Restart,
    /// The run failed (unhealthy): the restart policy decides, with this exit code.
    Failed(i32),
}

/// Where a service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started; starts once its dependencies are ready.
    Waiting,
    /// Its `pre_start` hook runs.
    PreStart,
    /// Running: the main process, or (`daemon`) the process group it left behind.
    Running {
        /// Main pid, or the group id once the main process exited after forking.
        pid: i32,
        /// When the run started.
        since: Instant,
        /// The main process exited 0 and the group is tracked instead.
        daemon: bool,
    },
    /// Waiting to restart.
    Backoff {
        /// Restart at.
        until: Instant,
    },
    /// `pre_stop` hook runs (`signalled` false) or the stop signal was sent.
    Stopping {
        /// The group.
        pgid: i32,
        /// The main process has not been reaped yet.
        main_alive: bool,
        /// The stop signal went out.
        signalled: bool,
        /// SIGKILL of the group at this time.
        deadline: Option<Instant>,
        /// SIGKILL was sent.
        killed: bool,
        /// When the run started (for the backoff's stable-run reset).
        since: Instant,
    },
    /// Its `post_stop` hook runs.
    PostStop,
    /// Stopped by an operator or by shutdown.
    Stopped,
    /// Ran to completion successfully and is not restarted.
    Exited,
    /// Failed for good (crash-loop limit, or failure without restart).
    Failed,
}

impl Phase {
    /// Name shown in status.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::PreStart => "starting",
            Phase::Running { .. } => "running",
            Phase::Backoff { .. } => "backoff",
            Phase::Stopping { .. } | Phase::PostStop => "stopping",
            Phase::Stopped => "stopped",
            Phase::Exited => "exited",
            Phase::Failed => "failed",
        }
    }

    /// Nothing of the service runs and nothing is pending.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Phase::Stopped | Phase::Exited | Phase::Failed)
    }
}

/// A service at run time.
#[derive(Debug)]
pub struct ServiceRt {
    /// Its spec.
    pub spec: ServiceSpec,
    /// Resolved (uid, gid).
    pub ids: Option<(u32, u32)>,
    /// Full environment.
    pub env: Vec<(String, String)>,
    /// Phase.
    pub phase: Phase,
    /// Restart streak.
    pub backoff: Backoff,
    /// Restarts so far.
    pub restarts: u32,
    /// Health of the current run.
    pub health: Option<HealthState>,
    /// Bumped at every probe start, so a late result of an abandoned probe is dropped.
    pub probe_gen: u64,
    /// pid of a running command probe.
    pub probe_pid: Option<i32>,
    /// What to do when the stop ends.
    pub after_stop: AfterStop,
    /// Exit code of the last run (128+N for signal N).
    pub last_code: Option<i32>,
}

impl ServiceRt {
    /// Ready for dependents: running (and healthy if checked), or completed.
    pub fn ready(&self, now: Instant) -> bool {
        match self.phase {
            Phase::Running {
                since,
                daemon: false,
                ..
            } if self.spec.entry && now < since + ENTRY_SETTLE => false,
            Phase::Running { .. } => match (&self.spec.health, &self.health) {
                (None, _) => true,
                (Some(_), Some(h)) => h.healthy == Some(true),
                (Some(_), None) => false,
            },
            Phase::Exited => true,
            _ => false,
        }
    }

    /// The pid shown in status.
    pub fn pid(&self) -> Option<i32> {
        match self.phase {
            Phase::Running { pid, .. } => Some(pid),
            Phase::Stopping { pgid, .. } => Some(pgid),
            _ => None,
        }
    }
}
