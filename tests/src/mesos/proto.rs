//! The agent's JSON -> protobuf parse of an `executor::Call`, as stout's
//! `protobuf::parse` does it (apache/mesos 3rdparty/stout/include/stout/protobuf.hpp,
//! `internal::Parser`), for the fields an executor sends. Runs before the semantic
//! checks of `validate`.
//!
//! What it does, like stout:
//! - unknown field names are ignored, at every level (REFERENCE.md section 1), and a
//!   JSON `null` leaves the field unset;
//! - a message field wants an object, a non-repeated field must not be an array ("Not
//!   expecting a JSON array for field 'x'"); a repeated field takes an array, or a single
//!   value as one element;
//! - string/bytes/enum fields want a JSON string (bytes: valid base64, "Failed to base64
//!   decode bytes field 'x'"); numbers want a number or a numeric string ("Failed to
//!   parse 'x' as a JSON number for field 'y'"), booleans a boolean or "true"/"false";
//!   anything else is "Not expecting a JSON <kind> for field 'x'";
//! - an enum name the proto does not know fails a *required* field ("Failed to find
//!   enum for 'X'", e.g. `state`) and is silently dropped from an optional one (proto2
//!   behaviour: `reason`, `source`, `protocol`, the call's `type`). The agent then acts
//!   as if the field were absent; the double reports each drop so it is recorded as a
//!   violation (the executor's information is lost);
//! - proto2 `required` fields must be present ("Missing required fields: a.b, c").
//!
//! `validate::check` prefixes errors with the agent's "Failed to convert JSON into Call
//! protobuf: ".

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
const CHECK_STATUS: &[Field] = &[
    opt("type", Kind::Enum(&["UNKNOWN", "COMMAND", "HTTP", "TCP"])),
    opt("command", Kind::Message(&[opt("exit_code", Kind::Int)])),
    opt("http", Kind::Message(&[opt("status_code", Kind::Int)])),
    opt("tcp", Kind::Message(&[opt("succeeded", Kind::Bool)])),
];

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
    opt("check_status", Kind::Message(CHECK_STATUS)),
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

/// What a parse left out without failing: unknown enum names of optional fields.
#[derive(Debug, Default)]
struct Walk {
    missing: Vec<String>,
    dropped: Vec<String>,
}

/// Parses `v` as a message of `schema`; `path` names it in "Missing required fields".
/// On success, returns the fields the parse dropped (unknown enum names of optional
/// fields), as `path: what`.
pub fn parse(v: &Value, schema: &[Field], path: &str) -> Result<Vec<String>, String> {
    let Value::Object(obj) = v else {
        return Err("Expecting a JSON object".into());
    };
    let mut walk = Walk::default();
    parse_message(obj, schema, path, &mut walk)?;
    if !walk.missing.is_empty() {
        return Err(format!(
            "Missing required fields: {}",
            walk.missing.join(", ")
        ));
    }
    Ok(walk.dropped)
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
    walk: &mut Walk,
) -> Result<(), String> {
    for f in schema {
        let here = join(path, f.name);
        let mut count = 0;
        match obj.get(f.name) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if f.repeated => {
                for item in items {
                    parse_element(item, f, &here, &mut count, walk)?;
                }
            }
            Some(Value::Array(_)) => return Err(not_expecting(&Value::Array(vec![]), f.name)),
            Some(v) if f.repeated => parse_element(v, f, &here, &mut count, walk)?,
            Some(v) => {
                if parse_value(v, f, &here, walk)? {
                    count = 1;
                }
            }
        }
        if f.required && count == 0 {
            walk.missing.push(here);
        }
    }
    Ok(())
}

/// One element of a repeated field (nested arrays are flattened, as stout does).
fn parse_element(
    v: &Value,
    f: &Field,
    here: &str,
    count: &mut usize,
    walk: &mut Walk,
) -> Result<(), String> {
    match v {
        Value::Array(items) => {
            for item in items {
                parse_element(item, f, here, count, walk)?;
            }
            Ok(())
        }
        Value::Null => Ok(()),
        v => {
            if parse_value(v, f, &format!("{here}[{count}]"), walk)? {
                *count += 1;
            }
            Ok(())
        }
    }
}

/// Parses one value; `Ok(false)` when it was dropped (an unknown optional enum).
fn parse_value(v: &Value, f: &Field, path: &str, walk: &mut Walk) -> Result<bool, String> {
    let nan = |s: &str, what: &str| {
        format!(
            "Failed to parse '{s}' as a JSON {what} for field '{}': not a JSON {what}",
            f.name
        )
    };
    match (f.kind, v) {
        (Kind::String, Value::String(_)) => Ok(true),
        (Kind::Bytes, Value::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(|_| true)
            .map_err(|e| format!("Failed to base64 decode bytes field '{}': {e}", f.name)),
        (Kind::Enum(names), Value::String(s)) => {
            if names.contains(&s.as_str()) {
                Ok(true)
            } else if f.required {
                Err(format!("Failed to find enum for '{s}'"))
            } else {
                walk.dropped
                    .push(format!("{path}: unknown enum value '{s}' dropped"));
                Ok(false)
            }
        }
        (Kind::Bool, Value::Bool(_)) => Ok(true),
        (Kind::Bool, Value::String(s)) => match s.as_str() {
            "true" | "false" => Ok(true),
            _ => Err(nan(s, "boolean")),
        },
        (Kind::Double | Kind::Int, Value::Number(_)) => Ok(true),
        (Kind::Double, Value::String(s))
            if s == "Infinity"
                || s == "-Infinity"
                || serde_json::from_str::<serde_json::Number>(s).is_ok() =>
        {
            Ok(true)
        }
        (Kind::Int, Value::String(s)) if serde_json::from_str::<serde_json::Number>(s).is_ok() => {
            Ok(true)
        }
        (Kind::Double | Kind::Int, Value::String(s)) => Err(nan(s, "number")),
        (Kind::Message(schema), Value::Object(obj)) => {
            parse_message(obj, schema, path, walk).map(|_| true)
        }
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
        assert!(parse(&status(), TASK_STATUS, "").unwrap().is_empty());
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
                "healthy",
                json!("yes"),
                "Failed to parse 'yes' as a JSON boolean for field 'healthy'",
            ),
            (
                "healthy",
                json!(0),
                "Not expecting a JSON number for field 'healthy'",
            ),
            (
                "data",
                json!("%%%"),
                "Failed to base64 decode bytes field 'data'",
            ),
            (
                "timestamp",
                json!("soon"),
                "Failed to parse 'soon' as a JSON number for field 'timestamp'",
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
                "message",
                json!(["a"]),
                "Not expecting a JSON array for field 'message'",
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
    fn like_stout_lenient_where_it_is_lenient() {
        // Unknown fields ignored at every level, null is unset, numbers and booleans
        // as strings, a single value for a repeated field.
        let mut s = with("some_future_field", json!({"x": [1, 2]}));
        s["container_status"] =
            json!({"network_infos":{"ip_addresses":[{"ip_address":"10.0.0.2","extra":1}]}});
        s["labels"] = json!(null);
        s["timestamp"] = json!("2.5");
        s["healthy"] = json!("true");
        assert!(parse(&s, TASK_STATUS, "").unwrap().is_empty());
        // An unknown name of an optional enum is dropped, not refused.
        let dropped = parse(&with("reason", json!("REASON_NOPE")), TASK_STATUS, "status").unwrap();
        assert_eq!(
            dropped,
            ["status.reason: unknown enum value 'REASON_NOPE' dropped"]
        );
    }

    #[test]
    fn required_fields_are_named_with_their_path() {
        let mut s = status();
        s.as_object_mut().unwrap().remove("state");
        s["task_id"] = json!({});
        s["labels"] = json!({"labels": [{"key": "a"}, {"value": "v"}]});
        let err = parse(&s, TASK_STATUS, "update.status").unwrap_err();
        assert_eq!(
            err,
            "Missing required fields: update.status.task_id.value, update.status.state, \
             update.status.labels.labels[1].key"
        );
        assert_eq!(
            parse(&json!([]), CALL, "").unwrap_err(),
            "Expecting a JSON object"
        );
    }
}
