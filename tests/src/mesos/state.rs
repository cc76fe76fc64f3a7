//! What the double knows and records: its knobs, the calls it saw, the updates it
//! accepted, and every violation of the protocol.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use super::validate::{AgentView, TERMINAL_STATES};

/// One event on the stream, with the uuid it acknowledges (marked once written).
pub type Outgoing = (Vec<u8>, Option<String>);

/// 16 random bytes shaped as an RFC-4122 version 4 UUID.
fn random_uuid() -> [u8; 16] {
    use std::io::Read as _;
    let mut b = [0u8; 16];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    b
}

/// The double's view of one task.
#[derive(Debug, Clone)]
pub struct TaskView {
    pub info: Value,
    /// States received, in order (duplicates by uuid not repeated).
    pub states: Vec<String>,
    pub terminal: bool,
}

/// One response the double gave.
#[derive(Debug, Clone)]
pub struct Answer {
    pub kind: String,
    pub status: u16,
    pub message: String,
    /// When the double answered (the gaps between retries show the executor's backoff).
    pub at: Instant,
}

impl Answer {
    pub fn new(kind: &str, status: u16, message: &str) -> Self {
        Answer {
            kind: kind.into(),
            status,
            message: message.into(),
            at: Instant::now(),
        }
    }
}

#[derive(Debug)]
pub struct State {
    pub view: AgentView,
    pub agent_id: String,
    /// Listening (false: connection refused).
    pub up: bool,
    /// Answer 503 until then.
    pub recovering_until: Option<Instant>,
    /// The open event stream: its number and sender.
    pub stream: Option<(u64, UnboundedSender<Outgoing>)>,
    pub next_stream: u64,
    /// SUBSCRIBE calls received (whole bodies).
    pub subscriptions: Vec<Value>,
    /// Distinct statuses accepted, in arrival order.
    pub updates: Vec<Value>,
    /// uuid (base64) -> acknowledged?
    pub uuids: BTreeMap<String, bool>,
    pub answers: Vec<Answer>,
    /// Each valid call's type and the client address it came from (which connection).
    pub peers: Vec<(String, std::net::SocketAddr)>,
    pub violations: Vec<String>,
    pub tasks: BTreeMap<String, TaskView>,
    /// Wait this long ("persisting") before acknowledging.
    pub ack_delay: Duration,
    /// Drop the next N acknowledgements.
    pub drop_acks: usize,
    /// Split each event over this many chunks.
    pub pieces: usize,
    /// Tasks to LAUNCH right after the first SUBSCRIBED.
    pub launch_on_subscribe: Vec<Value>,
    /// SUBSCRIBED names these (framework id, executor id) instead of the executor's own,
    /// as an agent answering for another executor would.
    pub subscribed_as: Option<(String, String)>,
    pub framework_capabilities: Vec<String>,
    pub heartbeats: usize,
    pub messages: Vec<Value>,
    /// Registration deadline of the running executor.
    pub register_by: Option<Instant>,
    pub subscribed_once: bool,
    /// The framework checkpoints (MESOS_CHECKPOINT=1): an agent restart recovers its
    /// executor; without it the agent forgets the framework.
    pub checkpoint: bool,
    /// The agent's `--executor_reregistration_timeout` (Mesos' default 2secs): after a
    /// restart, the executor must resubscribe within it once recovery is over.
    pub reregistration_timeout: Duration,
    /// The running executor must resubscribe by then (set by a restart).
    pub reregister_by: Option<Instant>,
    /// The process id of the executor the double launched, while it runs.
    pub executor_pid: Option<u32>,
    /// The launched executor's process ended (killed or exited): like the agent, the
    /// double failed its non-terminal tasks and no longer knows the executor.
    pub executor_exited: bool,
    /// Updates the agent itself generated (source SOURCE_AGENT): TASK_FAILED /
    /// REASON_EXECUTOR_TERMINATED for each non-terminal task of an executor that ended.
    /// Their states also appear in [`TaskView::states`]: what Marathon would see.
    pub agent_updates: Vec<Value>,
    /// MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD of the launched executor.
    pub shutdown_grace: Duration,
    /// After SHUTDOWN: the executor must be gone by then (else violation and SIGKILL).
    pub shutdown_by: Option<Instant>,
    /// Answer SUBSCRIBE with 404 until then (an agent that does not know the executor
    /// yet, e.g. while it is still being launched: the executor must retry).
    pub not_found_until: Option<Instant>,
    /// Several records per chunk: the writer packs up to this many queued events into
    /// one HTTP chunk (1: one record per chunk).
    pub pack: usize,
    /// Chunks written that carried more than one record.
    pub packed_writes: usize,
    /// NOT what an agent does: a later `spawn_executor` with the same executor id after
    /// the executor died is accepted as if the agent had launched it again (no
    /// TASK_FAILED at its death). Only for tests of the executor's re-attach code.
    pub accept_relaunch_after_death: bool,
}

impl State {
    pub fn new(view: AgentView, agent_id: String) -> Self {
        State {
            view,
            agent_id,
            up: true,
            recovering_until: None,
            stream: None,
            next_stream: 1,
            subscriptions: Vec::new(),
            updates: Vec::new(),
            uuids: BTreeMap::new(),
            answers: Vec::new(),
            peers: Vec::new(),
            violations: Vec::new(),
            tasks: BTreeMap::new(),
            ack_delay: Duration::from_millis(5),
            drop_acks: 0,
            pieces: 1,
            launch_on_subscribe: Vec::new(),
            subscribed_as: None,
            framework_capabilities: Vec::new(),
            heartbeats: 0,
            messages: Vec::new(),
            register_by: None,
            subscribed_once: false,
            checkpoint: true,
            reregistration_timeout: Duration::from_secs(2),
            reregister_by: None,
            executor_pid: None,
            executor_exited: false,
            agent_updates: Vec::new(),
            shutdown_grace: Duration::from_secs(5),
            shutdown_by: None,
            not_found_until: None,
            pack: 1,
            packed_writes: 0,
            accept_relaunch_after_death: false,
        }
    }

    /// The launched executor's process ended. As the agent (`Slave::executorTerminated`,
    /// `sendExecutorTerminatedStatusUpdate`): every task whose last update the agent got
    /// is not terminal becomes TASK_FAILED with REASON_EXECUTOR_TERMINATED, source
    /// SOURCE_AGENT; the stream closes; the executor is forgotten, so any later call with
    /// its id is answered 400 "Executor cannot be found".
    pub fn executor_ended(&mut self) {
        self.executor_pid = None;
        self.register_by = None;
        self.reregister_by = None;
        self.shutdown_by = None;
        if self.accept_relaunch_after_death {
            return;
        }
        self.executor_exited = true;
        self.view.executor_gone = true;
        self.view.subscribed = false;
        self.stream = None;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let executor_id = self.view.executor_id.clone();
        let agent_id = self.agent_id.clone();
        for (id, t) in self.tasks.iter_mut().filter(|(_, t)| !t.terminal) {
            let uuid = random_uuid();
            let status = serde_json::json!({
                "task_id": {"value": id},
                "state": "TASK_FAILED",
                "source": "SOURCE_AGENT",
                "reason": "REASON_EXECUTOR_TERMINATED",
                "message": "Executor terminated",
                "executor_id": {"value": executor_id},
                "agent_id": {"value": agent_id},
                "uuid": base64::engine::general_purpose::STANDARD.encode(uuid),
                "timestamp": now,
            });
            t.states.push("TASK_FAILED".into());
            t.terminal = true;
            self.agent_updates.push(status);
        }
    }

    /// True once the launched executor missed its registration deadline: the first time,
    /// records the violation and forgets the executor (the agent destroys its container
    /// and refuses it from then on); the caller kills the process.
    pub fn registration_expired(&mut self, now: Instant) -> bool {
        match self.register_by {
            Some(by) if now >= by && !self.view.subscribed => {
                self.register_by = None;
                self.view.executor_gone = true;
                self.violation("executor did not subscribe within the registration timeout");
                true
            }
            _ => false,
        }
    }

    /// True once the executor outlived the shutdown grace period after SHUTDOWN (the
    /// first time: records the violation; the caller kills the process).
    pub fn shutdown_overrun(&mut self, now: Instant) -> bool {
        match self.shutdown_by {
            Some(by) if now >= by && self.executor_pid.is_some() => {
                self.shutdown_by = None;
                let g = self.shutdown_grace;
                self.violation(format!(
                    "executor still running {g:?} after SHUTDOWN (MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD); the agent kills it"
                ));
                true
            }
            _ => false,
        }
    }

    pub fn violation(&mut self, v: impl Into<String>) {
        let v = v.into();
        eprintln!("agent double: VIOLATION: {v}");
        self.violations.push(v);
    }

    /// After an agent restart: true once the executor missed its reregistration
    /// deadline. The first time, records the violation and marks the executor gone (the
    /// agent shuts it down and refuses it from then on).
    pub fn reregistration_expired(&mut self, now: Instant) -> bool {
        if self.view.executor_gone {
            return true;
        }
        match self.reregister_by {
            Some(by) if now >= by && !self.view.subscribed => {
                self.reregister_by = None;
                self.view.executor_gone = true;
                let t = self.reregistration_timeout;
                self.violation(format!(
                    "executor did not resubscribe within the executor reregistration timeout ({t:?}) after the agent restarted"
                ));
                true
            }
            _ => false,
        }
    }

    /// States received for a task.
    pub fn states(&self, task_id: &str) -> Vec<String> {
        self.tasks
            .get(task_id)
            .map(|t| t.states.clone())
            .unwrap_or_default()
    }

    /// Statuses received and not acknowledged (they must come back on resubscription).
    pub fn unacknowledged(&self) -> Vec<Value> {
        self.updates
            .iter()
            .filter(|u| {
                let id = u["uuid"].as_str().unwrap_or("");
                !self.uuids.get(id).copied().unwrap_or(false)
            })
            .cloned()
            .collect()
    }

    /// Checks a (re)subscription against what the double knows.
    pub fn check_subscribe(&mut self, call: &Value) {
        let sub = &call["subscribe"];
        let sent: HashSet<String> = sub["unacknowledged_updates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u["status"]["uuid"].as_str().map(str::to_string))
            .collect();
        for u in self.unacknowledged() {
            let uuid = u["uuid"].as_str().unwrap_or("").to_string();
            if !sent.contains(&uuid) {
                self.violation(format!(
                    "SUBSCRIBE lacks unacknowledged update {uuid} ({} of {})",
                    u["state"], u["task_id"]["value"]
                ));
            }
        }
        let tasks: HashSet<String> = sub["unacknowledged_tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["task_id"]["value"].as_str().map(str::to_string))
            .collect();
        // A listed task whose update the double did acknowledge is not a violation: the
        // real agent only uses the list to spare tasks from TASK_DROPPED, and an executor
        // that died between the ACKNOWLEDGED event going out and reading it cannot know.
        // A launched task the agent has no acknowledged update for must come back in
        // unacknowledged_tasks (else the agent takes it as lost).
        let launched: Vec<String> = self.tasks.keys().cloned().collect();
        for t in launched {
            if !self.acked_any(&t) && !tasks.contains(&t) {
                self.violation(format!(
                    "SUBSCRIBE lacks launched task {t} in unacknowledged_tasks (no update of it was acknowledged)"
                ));
            }
        }
    }

    /// True when at least one update of the task was acknowledged.
    fn acked_any(&self, task_id: &str) -> bool {
        self.updates.iter().any(|u| {
            u["task_id"]["value"] == task_id
                && self
                    .uuids
                    .get(u["uuid"].as_str().unwrap_or(""))
                    .copied()
                    .unwrap_or(false)
        })
    }

    /// Records an accepted status; returns true if it is new (not a resend of a uuid).
    pub fn record_update(&mut self, status: &Value) -> bool {
        let uuid = status["uuid"].as_str().unwrap_or("").to_string();
        if let Some(prev) = self.updates.iter().find(|u| u["uuid"] == uuid.as_str()) {
            if prev["state"] != status["state"] || prev["task_id"] != status["task_id"] {
                let msg = format!("uuid {uuid} reused for a different update");
                self.violation(msg);
            }
            return false;
        }
        let task_id = status["task_id"]["value"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let state = status["state"].as_str().unwrap_or("").to_string();
        match self.tasks.get_mut(&task_id) {
            None => {
                self.violation(format!("update for unknown task {task_id:?}"));
            }
            Some(t) if t.terminal => {
                self.violation(format!(
                    "update {state} for task {task_id} after its terminal update"
                ));
            }
            Some(t) => {
                t.states.push(state.clone());
                t.terminal = TERMINAL_STATES.contains(&state.as_str());
            }
        }
        self.uuids.insert(uuid, false);
        self.updates.push(status.clone());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn launched(st: &mut State, id: &str) {
        st.tasks.insert(
            id.into(),
            TaskView {
                info: json!({"task_id": {"value": id}}),
                states: Vec::new(),
                terminal: false,
            },
        );
    }

    fn resubscribe(tasks: Value) -> Value {
        json!({"subscribe": {"unacknowledged_tasks": tasks, "unacknowledged_updates": []}})
    }

    #[test]
    fn resubscribe_must_list_launched_tasks_without_an_acknowledged_update() {
        let mut st = State::new(AgentView::default(), "S0".into());
        launched(&mut st, "a");
        launched(&mut st, "b");
        // "b" has an acknowledged update: it need not (and must not) be listed.
        let u = json!({"task_id": {"value": "b"}, "uuid": "u1", "state": "TASK_RUNNING"});
        st.record_update(&u);
        st.uuids.insert("u1".into(), true);
        st.check_subscribe(&resubscribe(json!([{"task_id": {"value": "a"}}])));
        assert!(st.violations.is_empty(), "{:?}", st.violations);
        st.check_subscribe(&resubscribe(json!([])));
        assert_eq!(st.violations.len(), 1, "{:?}", st.violations);
        assert!(st.violations[0].contains("task a"), "{:?}", st.violations);
    }
}
