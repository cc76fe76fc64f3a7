//! Calls the executor makes: `POST /api/v1/executor` bodies.

use serde::Serialize;

use super::json::Bytes;
use super::types::{Id, TaskStatus};

/// A call, serialized as Mesos' `executor::Call` JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub executor_id: Id,
    pub framework_id: Id,
    #[serde(rename = "type")]
    pub kind: CallKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Subscribe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<Update>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallKind {
    Subscribe,
    Update,
    Message,
    Heartbeat,
}

#[derive(Debug, Clone, Serialize)]
pub struct Subscribe {
    /// Tasks that have no acknowledged update yet, exactly as LAUNCH gave them.
    pub unacknowledged_tasks: Vec<serde_json::Value>,
    pub unacknowledged_updates: Vec<Update>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Update {
    pub status: TaskStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub data: Bytes,
}

impl Call {
    fn new(executor_id: &Id, framework_id: &Id, kind: CallKind) -> Self {
        Call {
            executor_id: executor_id.clone(),
            framework_id: framework_id.clone(),
            kind,
            subscribe: None,
            update: None,
            message: None,
        }
    }

    pub fn subscribe(e: &Id, f: &Id, sub: Subscribe) -> Self {
        Call {
            subscribe: Some(sub),
            ..Call::new(e, f, CallKind::Subscribe)
        }
    }

    pub fn update(e: &Id, f: &Id, status: TaskStatus) -> Self {
        Call {
            update: Some(Update { status }),
            ..Call::new(e, f, CallKind::Update)
        }
    }

    pub fn message(e: &Id, f: &Id, data: Vec<u8>) -> Self {
        Call {
            message: Some(Message { data: Bytes(data) }),
            ..Call::new(e, f, CallKind::Message)
        }
    }

    pub fn heartbeat(e: &Id, f: &Id) -> Self {
        Call::new(e, f, CallKind::Heartbeat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::types::{Source, TaskState};

    #[test]
    fn subscribe_has_the_agent_field_names() {
        let c = Call::subscribe(
            &Id::new("e"),
            &Id::new("f"),
            Subscribe {
                unacknowledged_tasks: vec![serde_json::json!({"task_id":{"value":"t"}})],
                unacknowledged_updates: vec![],
            },
        );
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["type"], "SUBSCRIBE");
        assert_eq!(v["executor_id"]["value"], "e");
        assert_eq!(v["framework_id"]["value"], "f");
        assert_eq!(
            v["subscribe"]["unacknowledged_tasks"][0]["task_id"]["value"],
            "t"
        );
        assert!(v["subscribe"]["unacknowledged_updates"].is_array());
    }

    #[test]
    fn update_and_heartbeat() {
        let status = TaskStatus {
            task_id: Id::new("t"),
            state: TaskState::TaskStarting,
            source: Some(Source::SourceExecutor),
            reason: None,
            message: None,
            uuid: Some(Bytes(vec![1; 16])),
            timestamp: Some(2.0),
            healthy: None,
            executor_id: Some(Id::new("e")),
            agent_id: None,
            container_status: None,
            data: None,
            labels: None,
        };
        let v = serde_json::to_value(Call::update(&Id::new("e"), &Id::new("f"), status)).unwrap();
        assert_eq!(v["type"], "UPDATE");
        assert_eq!(v["update"]["status"]["state"], "TASK_STARTING");
        let v = serde_json::to_value(Call::heartbeat(&Id::new("e"), &Id::new("f"))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"executor_id":{"value":"e"},"framework_id":{"value":"f"},"type":"HEARTBEAT"})
        );
    }
}
