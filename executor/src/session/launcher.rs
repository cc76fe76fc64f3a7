//! The seam between the protocol session and whatever runs tasks (runc containers in
//! production, a fake in unit tests).

use std::collections::BTreeMap;
use std::path::PathBuf;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::mesos::types::{FrameworkInfo, Reason, TaskInfo, TaskState};

/// A state change of a task, reported by its runner.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    pub task_id: String,
    pub state: TaskState,
    pub reason: Option<Reason>,
    pub message: Option<String>,
    pub healthy: Option<bool>,
    /// The container's IPv4 address, once known.
    pub ip: Option<String>,
    /// Not a status: the runner asks the session to kill the task (failed health
    /// checks), so the kill takes the session's path (TASK_KILLING when the framework
    /// has TASK_KILLING_STATE, one deadline for every kill).
    pub kill_request: bool,
}

impl TaskEvent {
    pub fn new(task_id: &str, state: TaskState) -> Self {
        TaskEvent {
            task_id: task_id.to_string(),
            state,
            reason: None,
            message: None,
            healthy: None,
            ip: None,
            kill_request: false,
        }
    }
    /// A request to kill the task through the session (see `kill_request`).
    pub fn kill_request(task_id: &str) -> Self {
        TaskEvent {
            kill_request: true,
            ..TaskEvent::new(task_id, TaskState::TaskKilling)
        }
    }
    pub fn reason(mut self, r: Reason) -> Self {
        self.reason = Some(r);
        self
    }
    pub fn message(mut self, m: impl Into<String>) -> Self {
        self.message = Some(m.into());
        self
    }
}

/// Everything a runner gets for one task.
#[derive(Debug)]
pub struct LaunchRequest {
    pub task: TaskInfo,
    pub framework: FrameworkInfo,
    /// Variables for the task (Marathon's and the app's), see `ExecutorEnv::task_vars`.
    pub env: BTreeMap<String, String>,
    /// The sandbox on the host (stdout/stderr of the task go there).
    pub sandbox: PathBuf,
    /// Events to the session; the last one is terminal.
    pub events: mpsc::UnboundedSender<TaskEvent>,
    /// `Some(deadline)` once the task must stop: SIGTERM now, SIGKILL at the deadline.
    /// The deadline only moves earlier.
    pub kill: watch::Receiver<Option<Instant>>,
    /// The executor restarted: re-attach to the task's container or undo its preparation.
    pub recover: bool,
}

/// Starts tasks. `launch` must return quickly and run the task in the background.
pub trait Launcher: Send + Sync + 'static {
    fn launch(&self, req: LaunchRequest);
}
