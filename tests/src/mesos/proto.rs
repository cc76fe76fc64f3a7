//! The agent's JSON -> protobuf parse of an `executor::Call`, as stout's
//! `protobuf::parse` does it (apache/mesos 3rdparty/stout/include/stout/protobuf.hpp),
//! for the fields an executor sends. Runs before the semantic checks of `validate`.
//!
//! What it enforces, like the real parse:
//! - each known field has the JSON type of its proto type (object for a message, array
//!   for a repeated field, string for string/bytes/enum, boolean for bool, number for
//!   numbers; a number may also arrive as a numeric string, as stout accepts);
//! - enums by a known value name ("Failed to find enum for 'X'");
//! - `bytes` as valid base64;
//! - proto2 `required` fields present ("Missing required fields: a.b.c");
//! - unknown fields are ignored, at every level (REFERENCE.md section 1: "unknown fields
//!   ignored"), and so is `null` (stout leaves the field unset).
//!
//! Errors carry stout's wording; `validate::check` prefixes them with the agent's
//! "Failed to parse body into Call protobuf: ".

use base64::Engine as _;
use serde_json::Value;

/// A field's proto type.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    String,
    Bytes,
    Bool,
    Double,
    Int,
    Enum(&'static [&'static str]),
    Message(&'static [Field]),
}

/// A field of a message schema.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub repeated: bool,
}

const fn opt(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
        repeated: false,
    }
}

const fn req(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
        repeated: false,
    }
}

const fn rep(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
        repeated: true,
    }
}

/// `TaskStatus.Reason` names of mesos/v1/mesos.proto.
pub const REASONS: &[&str] = &[
    "REASON_COMMAND_EXECUTOR_FAILED",
    "REASON_CONTAINER_LAUNCH_FAILED",
    "REASON_CONTAINER_LIMITATION",
    "REASON_CONTAINER_LIMITATION_DISK",
    "REASON_CONTAINER_LIMITATION_MEMORY",
    "REASON_CONTAINER_PREEMPTED",
    "REASON_CONTAINER_UPDATE_FAILED",
    "REASON_MAX_COMPLETION_TIME_REACHED",
    "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
    "REASON_EXECUTOR_REREGISTRATION_TIMEOUT",
    "REASON_EXECUTOR_TERMINATED",
    "REASON_EXECUTOR_UNREGISTERED",
    "REASON_FRAMEWORK_REMOVED",
    "REASON_GC_ERROR",
    "REASON_INVALID_FRAMEWORKID",
    "REASON_INVALID_OFFERS",
    "REASON_IO_SWITCHBOARD_EXITED",
    "REASON_MASTER_DISCONNECTED",
    "REASON_RECONCILIATION",
    "REASON_RESOURCES_UNKNOWN",
    "REASON_AGENT_DISCONNECTED",
    "REASON_AGENT_REMOVED",
    "REASON_AGENT_REMOVED_BY_OPERATOR",
    "REASON_AGENT_REREGISTERED",
    "REASON_AGENT_RESTARTED",
    "REASON_AGENT_UNKNOWN",
    "REASON_TASK_KILLED_DURING_LAUNCH",
    "REASON_TASK_CHECK_STATUS_UPDATED",
    "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
    "REASON_TASK_GROUP_INVALID",
    "REASON_TASK_GROUP_UNAUTHORIZED",
    "REASON_TASK_INVALID",
    "REASON_TASK_UNAUTHORIZED",
    "REASON_TASK_UNKNOWN",
];

pub const SOURCES: &[&str] = &["SOURCE_MASTER", "SOURCE_AGENT", "SOURCE_EXECUTOR"];

pub const CALL_TYPES: &[&str] = &["UNKNOWN", "SUBSCRIBE", "UPDATE", "MESSAGE", "HEARTBEAT"];

pub const ID: &[Field] = &[req("value", Kind::String)];
const LABEL: &[Field] = &[req("key", Kind::String), opt("value", Kind::String)];
const LABELS: &[Field] = &[rep("labels", Kind::Message(LABEL))];
const IP_ADDRESS: &[Field] = &[
    opt("protocol", Kind::Enum(&["IPv4", "IPv6"])),
    opt("ip_address", Kind::String),
];
const NETWORK_INFO: &[Field] = &[
    rep("ip_addresses", Kind::Message(IP_ADDRESS)),
    opt("name", Kind::String),
    rep("groups", Kind::String),
    opt("labels", Kind::Message(LABELS)),
];
const CONTAINER_STATUS: &[Field] = &[
    opt("container_id", Kind::Message(ID)),
    rep("network_infos", Kind::Message(NETWORK_INFO)),
    opt("executor_pid", Kind::Int),
];
const TIME_INFO: &[Field] = &[req("nanoseconds", Kind::Int)];

/// `TaskStatus` (the fields an executor may send).
pub const TASK_STATUS: &[Field] = &[
    req("task_id", Kind::Message(ID)),
    req("state", Kind::Enum(super::validate::KNOWN_STATES)),
    opt("message", Kind::String),
    opt("source", Kind::Enum(SOURCES)),
    opt("reason", Kind::Enum(REASONS)),
    opt("data", Kind::Bytes),
    opt("agent_id", Kind::Message(ID)),
    opt("executor_id", Kind::Message(ID)),
    opt("timestamp", Kind::Double),
    opt("uuid", Kind::Bytes),
    opt("healthy", Kind::Bool),
    opt("labels", Kind::Message(LABELS)),
    opt("container_status", Kind::Message(CONTAINER_STATUS)),
    opt("unreachable_time", Kind::Message(TIME_INFO)),
];

/// `TaskInfo` as far as the agent's parse looks into an unacknowledged task (its
/// required fields; the rest of a TaskInfo is the task's business).
const TASK_INFO: &[Field] = &[
    req("name", Kind::String),
    req("task_id", Kind::Message(ID)),
    req("agent_id", Kind::Message(ID)),
    opt("labels", Kind::Message(LABELS)),
];
const UPDATE: &[Field] = &[req("status", Kind::Message(TASK_STATUS))];
const SUBSCRIBE: &[Field] = &[
    rep("unacknowledged_tasks", Kind::Message(TASK_INFO)),
    rep("unacknowledged_updates", Kind::Message(UPDATE)),
];
const MESSAGE: &[Field] = &[req("data", Kind::Bytes)];

/// `executor::Call`.
pub const CALL: &[Field] = &[
    req("executor_id", Kind::Message(ID)),
    req("framework_id", Kind::Message(ID)),
    opt("type", Kind::Enum(CALL_TYPES)),
    opt("subscribe", Kind::Message(SUBSCRIBE)),
    opt("update", Kind::Message(UPDATE)),
    opt("message", Kind::Message(MESSAGE)),
];

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn not_expecting(v: &Value, field: &str) -> String {
    format!("Not expecting a JSON {} for field '{field}'", json_kind(v))
}

/// Parses `v` as a message of `schema`; `path` names it in "Missing required fields".
pub fn parse(v: &Value, schema: &[Field], path: &str) -> Result<(), String> {
    let Value::Object(obj) = v else {
        return Err(format!(
            "Expecting a JSON object, got a JSON {}",
            json_kind(v)
        ));
    };
    let mut missing = Vec::new();
    parse_message(obj, schema, path, &mut missing)?;
    if !missing.is_empty() {
        return Err(format!("Missing required fields: {}", missing.join(", ")));
    }
    Ok(())
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn parse_message(
    obj: &serde_json::Map<String, Value>,
    schema: &[Field],
    path: &str,
    missing: &mut Vec<String>,
) -> Result<(), String> {
    for f in schema {
        let here = join(path, f.name);
        match obj.get(f.name) {
            None | Some(Value::Null) => {
                if f.required {
                    missing.push(here);
                }
            }
            Some(v) if f.repeated => {
                let Value::Array(items) = v else {
                    return Err(not_expecting(v, f.name));
                };
                for (i, item) in items.iter().enumerate() {
                    parse_value(item, f, &format!("{here}[{i}]"), missing)?;
                }
            }
            Some(v) => parse_value(v, f, &here, missing)?,
        }
    }
    Ok(())
}

fn parse_value(v: &Value, f: &Field, path: &str, missing: &mut Vec<String>) -> Result<(), String> {
    let numeric_string = |s: &str| s.trim().parse::<f64>().is_ok();
    match (f.kind, v) {
        (Kind::String, Value::String(_)) => Ok(()),
        (Kind::Bytes, Value::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(|_| ())
            .map_err(|e| format!("Failed to base64 decode bytes field '{}': {e}", f.name)),
        (Kind::Enum(names), Value::String(s)) => {
            if names.contains(&s.as_str()) {
                Ok(())
            } else {
                Err(format!("Failed to find enum for '{s}'"))
            }
        }
        (Kind::Bool, Value::Bool(_)) => Ok(()),
        (Kind::Double, Value::Number(_)) => Ok(()),
        (Kind::Int, Value::Number(n)) => {
            if n.is_i64() || n.is_u64() {
                Ok(())
            } else {
                Err(format!(
                    "Failed to convert value {n} for field '{}'",
                    f.name
                ))
            }
        }
        (Kind::Double, Value::String(s)) if numeric_string(s) => Ok(()),
        (Kind::Int, Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(()),
        (Kind::Double | Kind::Int, Value::String(s)) => Err(format!(
            "Failed to convert '{s}' to number for field '{}'",
            f.name
        )),
        (Kind::Message(schema), Value::Object(obj)) => parse_message(obj, schema, path, missing),
        _ => Err(not_expecting(v, f.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status() -> Value {
        json!({"task_id":{"value":"t"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR",
               "uuid":"AAECAwQFRgcICQoLDA0ODw==","timestamp":1.5})
    }

    fn with(field: &str, v: Value) -> Value {
        let mut s = status();
        s[field] = v;
        s
    }

    #[test]
    fn each_field_wants_its_json_type() {
        assert!(parse(&status(), TASK_STATUS, "").is_ok());
        let cases = [
            (
                "state",
                json!(1),
                "Not expecting a JSON number for field 'state'",
            ),
            (
                "state",
                json!("RUNNING"),
                "Failed to find enum for 'RUNNING'",
            ),
            (
                "reason",
                json!("REASON_NOPE"),
                "Failed to find enum for 'REASON_NOPE'",
            ),
            (
                "source",
                json!("SOURCE_SLAVE"),
                "Failed to find enum for 'SOURCE_SLAVE'",
            ),
            (
                "healthy",
                json!("true"),
                "Not expecting a JSON string for field 'healthy'",
            ),
            (
                "data",
                json!("%%%"),
                "Failed to base64 decode bytes field 'data'",
            ),
            (
                "timestamp",
                json!("soon"),
                "Failed to convert 'soon' to number",
            ),
            (
                "timestamp",
                json!(true),
                "Not expecting a JSON boolean for field 'timestamp'",
            ),
            (
                "message",
                json!(7),
                "Not expecting a JSON number for field 'message'",
            ),
            (
                "task_id",
                json!("t"),
                "Not expecting a JSON string for field 'task_id'",
            ),
            (
                "labels",
                json!([]),
                "Not expecting a JSON array for field 'labels'",
            ),
        ];
        for (field, v, want) in cases {
            let err = parse(&with(field, v.clone()), TASK_STATUS, "").unwrap_err();
            assert!(err.contains(want), "{field}={v}: {err}");
        }
    }

    #[test]
    fn unknown_fields_and_null_are_ignored_required_fields_are_not() {
        let mut s = with("some_future_field", json!({"x": [1, 2]}));
        s["container_status"] =
            json!({"network_infos":[{"ip_addresses":[{"ip_address":"10.0.0.2","extra":1}]}]});
        s["labels"] = json!(null);
        assert!(parse(&s, TASK_STATUS, "").is_ok());
        let mut s = status();
        s.as_object_mut().unwrap().remove("state");
        s["task_id"] = json!({});
        let err = parse(&s, TASK_STATUS, "update.status").unwrap_err();
        assert_eq!(
            err,
            "Missing required fields: update.status.task_id.value, update.status.state"
        );
        // Numbers may come as numeric strings, as stout parses them.
        assert!(parse(&with("timestamp", json!("2.5")), TASK_STATUS, "").is_ok());
    }
}
