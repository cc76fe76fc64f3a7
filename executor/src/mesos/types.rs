//! The parts of Mesos' protobuf messages the executor reads or writes, in Mesos' JSON
//! mapping (snake_case names, enums by name). Unknown fields are ignored; fields the
//! executor never reads are left out.

use serde::{Deserialize, Serialize};

use super::json::{int64, Bytes};

/// `FrameworkID`, `AgentID`, `TaskID`, `ExecutorID`, `ContainerID`: `{"value": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Id {
    pub value: String,
}

impl Id {
    pub fn new(value: impl Into<String>) -> Self {
        Id {
            value: value.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    TaskStaging,
    TaskStarting,
    TaskRunning,
    TaskKilling,
    TaskFinished,
    TaskFailed,
    TaskKilled,
    TaskError,
    TaskLost,
    TaskDropped,
    TaskUnreachable,
    TaskGone,
    TaskGoneByOperator,
    TaskUnknown,
}

impl TaskState {
    /// Terminal states end the task (Mesos' `protobuf::isTerminalState`).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::TaskFinished
                | TaskState::TaskFailed
                | TaskState::TaskKilled
                | TaskState::TaskError
                | TaskState::TaskLost
                | TaskState::TaskDropped
                | TaskState::TaskGone
                | TaskState::TaskGoneByOperator
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Source {
    SourceMaster,
    SourceAgent,
    SourceExecutor,
}

/// The `TaskStatus.reason` values berth sends (and the agent's, for reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    ReasonCommandExecutorFailed,
    ReasonContainerLaunchFailed,
    ReasonContainerLimitation,
    ReasonContainerLimitationMemory,
    ReasonExecutorTerminated,
    ReasonExecutorUnregistered,
    ReasonTaskHealthCheckStatusUpdated,
    ReasonTaskGroupInvalid,
    ReasonTaskInvalid,
    ReasonTaskKilledDuringLaunch,
    ReasonTaskUnknown,
    ReasonAgentRestarted,
    #[serde(other)]
    ReasonOther,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    pub ip_address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkInfo {
    #[serde(default)]
    pub ip_addresses: Vec<IpAddress>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<Id>,
    #[serde(default)]
    pub network_infos: Vec<NetworkInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    #[serde(default)]
    pub labels: Vec<Label>,
}

impl Labels {
    /// The value of the first label with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.key == key)
            .map(|l| l.value.as_deref().unwrap_or(""))
    }
}

/// `TaskStatus`: what an UPDATE carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task_id: Id,
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_status: Option<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

/// `DurationInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationInfo {
    #[serde(with = "int64")]
    pub nanoseconds: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<DurationInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variable {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    #[serde(default)]
    pub variables: Vec<Variable>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Mesos' default is `true`: `value` is run with `/bin/sh -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<bool>,
    #[serde(default)]
    pub arguments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scalar {
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Range {
    #[serde(with = "u64_as_i64")]
    pub begin: u64,
    #[serde(with = "u64_as_i64")]
    pub end: u64,
}

/// Range bounds are `uint64`: numbers or strings, never negative.
mod u64_as_i64 {
    use serde::{de, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let v = super::int64::deserialize(d)?;
        u64::try_from(v).map_err(|_| de::Error::custom("negative range bound"))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ranges {
    #[serde(default)]
    pub range: Vec<Range>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Ranges>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpCheck {
    pub port: u32,
}

/// `HealthCheck`; absent numbers take Mesos' defaults (see `health` in the task module).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<f64>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    #[serde(default)]
    pub executor_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameworkInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<bool>,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

impl FrameworkInfo {
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c.kind == name)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    #[serde(default)]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
}

/// `TaskInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    #[serde(default)]
    pub name: String,
    pub task_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Bytes>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_info_tolerates_unknown_fields_and_string_int64() {
        let t: TaskInfo = serde_json::from_str(
            r#"{"name":"web","task_id":{"value":"web.1"},"agent_id":{"value":"a"},
            "discovery":{"visibility":"FRAMEWORK"},"future_field":[1,2],
            "resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5},"role":"*"},
              {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":"31000","end":31001}]}}],
            "kill_policy":{"grace_period":{"nanoseconds":"2000000000"}},
            "labels":{"labels":[{"key":"berth.image","value":"busybox"}]}}"#,
        )
        .unwrap();
        assert_eq!(t.task_id.value, "web.1");
        assert_eq!(
            t.kill_policy.unwrap().grace_period.unwrap().nanoseconds,
            2_000_000_000
        );
        assert_eq!(
            t.resources[1].ranges.as_ref().unwrap().range[0].begin,
            31000
        );
        assert_eq!(t.labels.unwrap().get("berth.image"), Some("busybox"));
    }

    #[test]
    fn status_serializes_enums_by_name() {
        let s = TaskStatus {
            task_id: Id::new("t"),
            state: TaskState::TaskRunning,
            source: Some(Source::SourceExecutor),
            reason: Some(Reason::ReasonTaskHealthCheckStatusUpdated),
            message: None,
            uuid: Some(Bytes(vec![0; 16])),
            timestamp: Some(1.5),
            healthy: Some(true),
            executor_id: None,
            agent_id: None,
            container_status: None,
            data: None,
            labels: None,
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["state"], "TASK_RUNNING");
        assert_eq!(v["source"], "SOURCE_EXECUTOR");
        assert_eq!(v["reason"], "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED");
        assert_eq!(v["uuid"], "AAAAAAAAAAAAAAAAAAAAAA==");
        assert!(v.get("message").is_none());
    }

    #[test]
    fn terminal_states() {
        assert!(TaskState::TaskKilled.is_terminal());
        assert!(TaskState::TaskFinished.is_terminal());
        assert!(!TaskState::TaskKilling.is_terminal());
        assert!(!TaskState::TaskRunning.is_terminal());
    }
}
