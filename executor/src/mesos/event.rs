//! Events the agent sends on the SUBSCRIBE stream.

use serde::Deserialize;

use super::json::Bytes;
use super::types::{AgentInfo, ExecutorInfo, FrameworkInfo, Id, KillPolicy, TaskInfo};

/// One event, decoded. Unknown event types become [`Event::Unknown`] and are ignored.
#[derive(Debug, Clone)]
pub enum Event {
    Subscribed(Box<Subscribed>),
    /// The task as parsed, and as received (resent verbatim on resubscription).
    Launch {
        task: Box<TaskInfo>,
        raw: serde_json::Value,
    },
    /// Refused by berth; the tasks (id and raw TaskInfo) get TASK_FAILED.
    LaunchGroup {
        tasks: Vec<(Id, serde_json::Value)>,
    },
    Kill {
        task_id: Id,
        kill_policy: Option<KillPolicy>,
    },
    Acknowledged {
        task_id: Id,
        uuid: Bytes,
    },
    Message {
        data: Bytes,
    },
    Error {
        message: String,
    },
    Shutdown,
    Heartbeat,
    Unknown {
        kind: String,
    },
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Subscribed {
    #[serde(default)]
    pub executor_info: ExecutorInfo,
    #[serde(default)]
    pub framework_info: FrameworkInfo,
    #[serde(default)]
    pub agent_info: AgentInfo,
    #[serde(default)]
    pub container_id: Option<Id>,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    subscribed: Option<Subscribed>,
    #[serde(default)]
    launch: Option<LaunchWire>,
    #[serde(default)]
    launch_group: Option<LaunchGroupWire>,
    #[serde(default)]
    kill: Option<KillWire>,
    #[serde(default)]
    acknowledged: Option<AckWire>,
    #[serde(default)]
    message: Option<MessageWire>,
    #[serde(default)]
    error: Option<ErrorWire>,
}

#[derive(Deserialize)]
struct LaunchWire {
    task: serde_json::Value,
}
#[derive(Deserialize)]
struct LaunchGroupWire {
    task_group: TaskGroupWire,
}
#[derive(Deserialize)]
struct TaskGroupWire {
    #[serde(default)]
    tasks: Vec<serde_json::Value>,
}
#[derive(Deserialize)]
struct TaskIdOnly {
    task_id: Id,
}
#[derive(Deserialize)]
struct KillWire {
    task_id: Id,
    #[serde(default)]
    kill_policy: Option<KillPolicy>,
}
#[derive(Deserialize)]
struct AckWire {
    task_id: Id,
    uuid: Bytes,
}
#[derive(Deserialize)]
struct MessageWire {
    data: Bytes,
}
#[derive(Deserialize)]
struct ErrorWire {
    message: String,
}

/// Why an event could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event is not valid JSON or has wrong field types")]
    Json(#[from] serde_json::Error),
    #[error("{kind} event has no {field:?} field")]
    Missing { kind: String, field: &'static str },
}

impl Event {
    /// Decodes one RecordIO record.
    pub fn parse(record: &[u8]) -> Result<Event, EventError> {
        let w: Wire = serde_json::from_slice(record)?;
        let missing = |field| EventError::Missing {
            kind: w.kind.clone(),
            field,
        };
        Ok(match w.kind.as_str() {
            "SUBSCRIBED" => {
                Event::Subscribed(Box::new(w.subscribed.clone().ok_or(missing("subscribed"))?))
            }
            "LAUNCH" => {
                let raw = w.launch.ok_or_else(|| missing("launch"))?.task;
                let task: TaskInfo = serde_json::from_value(raw.clone())?;
                Event::Launch {
                    task: Box::new(task),
                    raw,
                }
            }
            "LAUNCH_GROUP" => {
                let raws = w
                    .launch_group
                    .ok_or_else(|| missing("launch_group"))?
                    .task_group
                    .tasks;
                let mut tasks = Vec::new();
                for raw in raws {
                    let id: TaskIdOnly = serde_json::from_value(raw.clone())?;
                    tasks.push((id.task_id, raw));
                }
                Event::LaunchGroup { tasks }
            }
            "KILL" => {
                let k = w.kill.ok_or_else(|| missing("kill"))?;
                Event::Kill {
                    task_id: k.task_id,
                    kill_policy: k.kill_policy,
                }
            }
            "ACKNOWLEDGED" => {
                let a = w.acknowledged.ok_or_else(|| missing("acknowledged"))?;
                Event::Acknowledged {
                    task_id: a.task_id,
                    uuid: a.uuid,
                }
            }
            "MESSAGE" => Event::Message {
                data: w.message.ok_or_else(|| missing("message"))?.data,
            },
            "ERROR" => Event::Error {
                message: w.error.ok_or_else(|| missing("error"))?.message,
            },
            "SHUTDOWN" => Event::Shutdown,
            "HEARTBEAT" => Event::Heartbeat,
            other => Event::Unknown {
                kind: other.to_string(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_event_type() {
        let e = Event::parse(br#"{"type":"SUBSCRIBED","subscribed":{"executor_info":{"executor_id":{"value":"e"},"framework_id":{"value":"f"}},"framework_info":{"name":"marathon","user":"root","capabilities":[{"type":"TASK_KILLING_STATE"}]},"agent_info":{"hostname":"h","id":{"value":"a"}},"container_id":{"value":"c"}}}"#).unwrap();
        match e {
            Event::Subscribed(s) => {
                assert!(s.framework_info.has_capability("TASK_KILLING_STATE"));
                assert_eq!(s.agent_info.hostname, "h");
            }
            other => panic!("{other:?}"),
        }
        let e = Event::parse(
            br#"{"type":"LAUNCH","launch":{"task":{"name":"t","task_id":{"value":"t1"},"x":1}}}"#,
        )
        .unwrap();
        match e {
            Event::Launch { task, raw } => {
                assert_eq!(task.task_id.value, "t1");
                assert_eq!(raw["x"], 1, "the raw task keeps unknown fields");
            }
            other => panic!("{other:?}"),
        }
        let e = Event::parse(br#"{"type":"KILL","kill":{"task_id":{"value":"t1"},"kill_policy":{"grace_period":{"nanoseconds":1000}}}}"#).unwrap();
        assert!(matches!(
            e,
            Event::Kill {
                kill_policy: Some(_),
                ..
            }
        ));
        let e = Event::parse(br#"{"type":"ACKNOWLEDGED","acknowledged":{"task_id":{"value":"t1"},"uuid":"AAAAAAAAAAAAAAAAAAAAAA=="}}"#).unwrap();
        assert!(matches!(e, Event::Acknowledged { ref uuid, .. } if uuid.0.len() == 16));
        assert!(matches!(
            Event::parse(br#"{"type":"HEARTBEAT"}"#).unwrap(),
            Event::Heartbeat
        ));
        assert!(matches!(
            Event::parse(br#"{"type":"SHUTDOWN"}"#).unwrap(),
            Event::Shutdown
        ));
        assert!(matches!(
            Event::parse(br#"{"type":"ERROR","error":{"message":"m"}}"#).unwrap(),
            Event::Error { .. }
        ));
        assert!(matches!(
            Event::parse(br#"{"type":"MESSAGE","message":{"data":"aGk="}}"#).unwrap(),
            Event::Message { .. }
        ));
        let e = Event::parse(br#"{"type":"LAUNCH_GROUP","launch_group":{"executor":{},"task_group":{"tasks":[{"name":"a","task_id":{"value":"g1"}}]}}}"#).unwrap();
        assert!(matches!(e, Event::LaunchGroup { ref tasks } if tasks[0].0.value == "g1"));
        assert!(matches!(
            Event::parse(br#"{"type":"NEW_THING","new_thing":{}}"#).unwrap(),
            Event::Unknown { .. }
        ));
    }

    #[test]
    fn refuses_malformed_events() {
        assert!(Event::parse(b"{").is_err());
        assert!(matches!(
            Event::parse(br#"{"type":"KILL"}"#),
            Err(EventError::Missing { .. })
        ));
    }
}
