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
    /// A LAUNCH whose TaskInfo does not decode but whose task_id does: the task gets
    /// TASK_FAILED (REASON_TASK_INVALID) naming the bad field.
    LaunchInvalid {
        task_id: Id,
        raw: serde_json::Value,
        why: String,
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
    kill: Option<serde_json::Value>,
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
                match serde_json::from_value::<TaskInfo>(raw.clone()) {
                    Ok(task) => Event::Launch {
                        task: Box::new(task),
                        raw,
                    },
                    Err(e) => {
                        // Still answerable when the task_id decodes.
                        let id: TaskIdOnly = serde_json::from_value(raw.clone()).map_err(|_| e)?;
                        let why = match bad_field(&raw) {
                            Some(f) => format!("TaskInfo field '{f}' is invalid"),
                            None => "TaskInfo is invalid".to_string(),
                        };
                        Event::LaunchInvalid {
                            task_id: id.task_id,
                            raw,
                            why,
                        }
                    }
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
                match serde_json::from_value::<KillWire>(k.clone()) {
                    Ok(k) => Event::Kill {
                        task_id: k.task_id,
                        kill_policy: k.kill_policy,
                    },
                    // A bad kill_policy: the kill still applies, by task_id alone.
                    Err(e) => Event::Kill {
                        task_id: serde_json::from_value::<TaskIdOnly>(k)
                            .map_err(|_| e)?
                            .task_id,
                        kill_policy: None,
                    },
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

/// The top-level TaskInfo field whose removal makes `raw` decode, if there is one.
fn bad_field(raw: &serde_json::Value) -> Option<String> {
    let obj = raw.as_object()?;
    obj.keys().find_map(|k| {
        let mut without = obj.clone();
        without.remove(k);
        serde_json::from_value::<TaskInfo>(serde_json::Value::Object(without))
            .ok()
            .map(|_| k.clone())
    })
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

    #[test]
    fn undecodable_launch_with_a_task_id_names_the_bad_field() {
        let e = Event::parse(
            br#"{"type":"LAUNCH","launch":{"task":{"name":"t","task_id":{"value":"t1"},"resources":"lots"}}}"#,
        )
        .unwrap();
        match e {
            Event::LaunchInvalid { task_id, why, .. } => {
                assert_eq!(task_id.value, "t1");
                assert!(why.contains("'resources'"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        // Without a task_id there is nobody to answer: still an error.
        assert!(
            Event::parse(br#"{"type":"LAUNCH","launch":{"task":{"resources":"lots"}}}"#).is_err()
        );
    }

    #[test]
    fn kill_with_a_bad_policy_applies_by_task_id() {
        let e = Event::parse(
            br#"{"type":"KILL","kill":{"task_id":{"value":"t1"},"kill_policy":{"grace_period":"soon"}}}"#,
        )
        .unwrap();
        match e {
            Event::Kill {
                task_id,
                kill_policy,
            } => {
                assert_eq!(task_id.value, "t1");
                assert!(kill_policy.is_none());
            }
            other => panic!("{other:?}"),
        }
    }
}
