//! The update store: every status update stays here until the agent ACKNOWLEDGEs it, so
//! a resubscription can send it again with the same uuid, and the executor knows when it
//! may exit (every task's terminal update acknowledged).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::json::Bytes;
use super::types::{Id, Source, TaskState, TaskStatus};

/// What the store remembers of one task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The TaskInfo exactly as LAUNCH gave it.
    pub raw: serde_json::Value,
    /// Some update of this task has been acknowledged.
    pub any_acked: bool,
    /// The terminal update of this task has been acknowledged.
    pub terminal_acked: bool,
    /// The last state sent.
    pub last_state: Option<TaskState>,
}

/// Unacknowledged updates (in the order sent) and the launched tasks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateStore {
    pending: Vec<TaskStatus>,
    tasks: BTreeMap<String, TaskRecord>,
}

/// A fresh random (version 4) UUID as the 16 raw bytes the agent expects.
pub fn new_uuid() -> Bytes {
    Bytes(uuid::Uuid::new_v4().as_bytes().to_vec())
}

/// Seconds since the epoch, as `TaskStatus.timestamp` wants it.
pub fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A status with everything the agent validates filled in: a new uuid, the source, the
/// executor id, a timestamp.
pub fn stamp(mut status: TaskStatus, executor_id: &Id) -> TaskStatus {
    status.uuid = Some(new_uuid());
    status.source = Some(Source::SourceExecutor);
    status.executor_id = Some(executor_id.clone());
    status.timestamp = Some(now_seconds());
    status
}

impl UpdateStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers a launched task.
    pub fn add_task(&mut self, task_id: &str, raw: serde_json::Value) {
        self.tasks.entry(task_id.to_string()).or_insert(TaskRecord {
            raw,
            any_acked: false,
            terminal_acked: false,
            last_state: None,
        });
    }

    pub fn knows_task(&self, task_id: &str) -> bool {
        self.tasks.contains_key(task_id)
    }

    pub fn task(&self, task_id: &str) -> Option<&TaskRecord> {
        self.tasks.get(task_id)
    }

    /// Adds a stamped status (it must carry a uuid).
    pub fn push(&mut self, status: TaskStatus) {
        if let Some(t) = self.tasks.get_mut(&status.task_id.value) {
            t.last_state = Some(status.state);
        }
        self.pending.push(status);
    }

    /// Handles ACKNOWLEDGED; returns the acknowledged status, `None` for an unknown uuid
    /// (a duplicate acknowledgement is harmless).
    pub fn acknowledge(&mut self, task_id: &Id, uuid: &Bytes) -> Option<TaskStatus> {
        let i = self
            .pending
            .iter()
            .position(|s| s.task_id == *task_id && s.uuid.as_ref() == Some(uuid))?;
        let status = self.pending.remove(i);
        if let Some(t) = self.tasks.get_mut(&task_id.value) {
            t.any_acked = true;
            if status.state.is_terminal() {
                t.terminal_acked = true;
            }
        }
        Some(status)
    }

    /// Updates not yet acknowledged, oldest first.
    pub fn unacknowledged_updates(&self) -> &[TaskStatus] {
        &self.pending
    }

    /// Tasks with no acknowledged update, as LAUNCH gave them.
    pub fn unacknowledged_tasks(&self) -> Vec<serde_json::Value> {
        self.tasks
            .values()
            .filter(|t| !t.any_acked)
            .map(|t| t.raw.clone())
            .collect()
    }

    /// At least one task was launched and every task's terminal update is acknowledged.
    pub fn all_done(&self) -> bool {
        !self.tasks.is_empty() && self.tasks.values().all(|t| t.terminal_acked)
    }

    /// The task ids whose last sent state is not terminal.
    pub fn live_tasks(&self) -> Vec<String> {
        self.tasks
            .iter()
            .filter(|(_, t)| !t.last_state.is_some_and(TaskState::is_terminal))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(task: &str, state: TaskState) -> TaskStatus {
        stamp(
            TaskStatus {
                task_id: Id::new(task),
                state,
                source: None,
                reason: None,
                message: None,
                uuid: None,
                timestamp: None,
                healthy: None,
                executor_id: None,
                agent_id: None,
                container_status: None,
                data: None,
                labels: None,
            },
            &Id::new("e"),
        )
    }

    #[test]
    fn stamp_fills_what_the_agent_validates() {
        let s = status("t", TaskState::TaskRunning);
        let uuid = s.uuid.unwrap().0;
        assert_eq!(uuid.len(), 16);
        assert_eq!(uuid[6] >> 4, 4, "version 4");
        assert_eq!(uuid[8] & 0xc0, 0x80, "RFC 4122 variant");
        assert_eq!(s.source, Some(Source::SourceExecutor));
        assert!(s.timestamp.unwrap() > 1e9);
    }

    #[test]
    fn keeps_updates_until_acknowledged() {
        let mut st = UpdateStore::new();
        st.add_task("t", serde_json::json!({"task_id":{"value":"t"}}));
        let a = status("t", TaskState::TaskStarting);
        let b = status("t", TaskState::TaskRunning);
        st.push(a.clone());
        st.push(b.clone());
        assert_eq!(st.unacknowledged_tasks().len(), 1);
        assert_eq!(st.unacknowledged_updates().len(), 2);
        assert!(st
            .acknowledge(&Id::new("t"), b.uuid.as_ref().unwrap())
            .is_some());
        assert!(
            st.acknowledge(&Id::new("t"), b.uuid.as_ref().unwrap())
                .is_none(),
            "dup ack"
        );
        assert_eq!(
            st.unacknowledged_updates(),
            &[a.clone()][..],
            "same uuid kept for resend"
        );
        assert!(st.unacknowledged_tasks().is_empty());
        assert!(!st.all_done());
        let c = status("t", TaskState::TaskKilled);
        st.push(c.clone());
        assert!(st.live_tasks().is_empty());
        st.acknowledge(&Id::new("t"), c.uuid.as_ref().unwrap());
        assert!(st.all_done());
    }

    #[test]
    fn survives_a_json_round_trip() {
        let mut st = UpdateStore::new();
        st.add_task("t", serde_json::json!({"task_id":{"value":"t"}}));
        st.push(status("t", TaskState::TaskStarting));
        let back: UpdateStore = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
        // The uuid (what the agent deduplicates on) and the state survive exactly; the
        // timestamp may differ in its last bit (serde_json's float parsing).
        let (a, b) = (
            &back.unacknowledged_updates()[0],
            &st.unacknowledged_updates()[0],
        );
        assert_eq!(
            (&a.uuid, a.state, &a.task_id),
            (&b.uuid, b.state, &b.task_id)
        );
        assert!((a.timestamp.unwrap() - b.timestamp.unwrap()).abs() < 1e-3);
        assert_eq!(back.unacknowledged_tasks(), st.unacknowledged_tasks());
    }
}
