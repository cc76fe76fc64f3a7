//! The agent's checks on `POST /api/v1/executor`, in the agent's order
//! (apache/mesos src/slave/http.cpp `Http::executor`, src/common/validation.cpp
//! `executor::call::validate`). Pure functions, so each rule is unit-tested.

use base64::Engine as _;
use serde_json::Value;

/// The parts of an HTTP request the checks look at.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A refusal: the status code and the body text the agent would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// A call that passed every check.
#[derive(Debug, Clone)]
pub struct ValidCall {
    pub kind: String,
    pub call: Value,
}

/// What the agent knows when it checks a call.
#[derive(Debug, Clone, Default)]
pub struct AgentView {
    pub recovering: bool,
    pub subscribed: bool,
    pub framework_id: String,
    pub executor_id: String,
    /// `Some(token)`: the executor must send `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

fn media_type(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// True when an Accept header value allows JSON.
fn accepts_json(accept: &str) -> bool {
    accept.split(',').any(|m| {
        let m = media_type(m);
        m == "application/json" || m == "application/*" || m == "*/*"
    })
}

/// Checks one request like the agent does, in the agent's order.
pub fn check(req: &HttpRequest, view: &AgentView) -> Result<ValidCall, Refusal> {
    if let Some(token) = &view.token {
        let want = format!("Bearer {token}");
        if req.header("authorization") != Some(want.as_str()) {
            return Err(refuse(401, "Unauthorized"));
        }
    }
    if view.recovering {
        return Err(refuse(503, "Agent has not finished recovery"));
    }
    if req.method != "POST" {
        return Err(refuse(
            405,
            format!("Expecting 'POST', received '{}'", req.method),
        ));
    }
    let Some(ct) = req.header("content-type") else {
        return Err(refuse(400, "Expecting 'Content-Type' to be present"));
    };
    let ct = media_type(ct);
    if ct != "application/json" && ct != "application/x-protobuf" {
        return Err(refuse(415, format!("Expecting 'Content-Type' of application/json or application/x-protobuf; got '{ct}'")));
    }
    if ct == "application/x-protobuf" {
        return Err(refuse(
            400,
            "Failed to parse body into Call protobuf (the double speaks JSON only)",
        ));
    }
    let call: Value = serde_json::from_slice(&req.body)
        .map_err(|e| refuse(400, format!("Failed to parse body into JSON: {e}")))?;
    let kind = validate_call(&call, view)
        .map_err(|m| refuse(400, format!("Failed to validate executor::Call: {m}")))?;
    if kind == "SUBSCRIBE" {
        if let Some(accept) = req.header("accept") {
            if !accepts_json(accept) {
                return Err(refuse(
                    406,
                    "Expecting 'Accept' to allow application/json or application/x-protobuf",
                ));
            }
        }
    } else if !view.subscribed {
        return Err(refuse(403, "Executor is not subscribed"));
    }
    Ok(ValidCall { kind, call })
}

fn id_of<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    v.get(field)
        .ok_or_else(|| format!("Expecting '{field}' to be present"))?
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("'{field}.value' must be a string"))
}

/// `executor::call::validate` plus the update checks.
pub fn validate_call(call: &Value, view: &AgentView) -> Result<String, String> {
    let kind = call
        .get("type")
        .and_then(Value::as_str)
        .ok_or("Expecting 'type' to be present")?
        .to_string();
    let executor_id = id_of(call, "executor_id")?;
    let framework_id = id_of(call, "framework_id")?;
    if framework_id != view.framework_id {
        return Err(format!("Framework {framework_id} not found"));
    }
    if executor_id != view.executor_id {
        return Err(format!("Executor {executor_id} not found"));
    }
    match kind.as_str() {
        "SUBSCRIBE" => {
            let sub = call
                .get("subscribe")
                .ok_or("Expecting 'subscribe' to be present")?;
            for (field, item) in [
                ("unacknowledged_tasks", None),
                ("unacknowledged_updates", Some("status")),
            ] {
                if let Some(list) = sub.get(field) {
                    let list = list
                        .as_array()
                        .ok_or(format!("'{field}' must be an array"))?;
                    for entry in list {
                        match item {
                            None => {
                                id_of(entry, "task_id")?;
                            }
                            Some(f) => validate_status(
                                entry.get(f).ok_or(format!("'{field}' entry lacks '{f}'"))?,
                                view,
                            )?,
                        }
                    }
                }
            }
        }
        "UPDATE" => {
            let upd = call
                .get("update")
                .ok_or("Expecting 'update' to be present")?;
            validate_status(
                upd.get("status")
                    .ok_or("Expecting 'update.status' to be present")?,
                view,
            )?;
        }
        "MESSAGE" => {
            let msg = call
                .get("message")
                .ok_or("Expecting 'message' to be present")?;
            let data = msg
                .get("data")
                .and_then(Value::as_str)
                .ok_or("Expecting 'message.data' to be present")?;
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|_| "'message.data' is not base64")?;
        }
        "HEARTBEAT" => {}
        other => return Err(format!("Unknown call type '{other}'")),
    }
    Ok(kind)
}

/// The agent's TaskStatus checks for an executor's update.
pub fn validate_status(status: &Value, view: &AgentView) -> Result<(), String> {
    id_of(status, "task_id")?;
    let uuid = status
        .get("uuid")
        .and_then(Value::as_str)
        .ok_or("Expecting 'uuid' to be present")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(uuid)
        .map_err(|_| "'uuid' is not base64")?;
    if raw.len() != 16 {
        return Err(format!("'uuid' must be 16 bytes, got {}", raw.len()));
    }
    match status.get("source").and_then(Value::as_str) {
        Some("SOURCE_EXECUTOR") => {}
        Some(other) => return Err(format!("Received Call from executor with source '{other}'")),
        None => return Err("Expecting 'source' to be present".into()),
    }
    let state = status
        .get("state")
        .and_then(Value::as_str)
        .ok_or("Expecting 'state' to be present")?;
    if !KNOWN_STATES.contains(&state) {
        return Err(format!("Unknown state '{state}'"));
    }
    if state == "TASK_STAGING" {
        return Err("Received TASK_STAGING from executor".into());
    }
    if let Some(e) = status.get("executor_id") {
        let e = e.get("value").and_then(Value::as_str).unwrap_or("");
        if e != view.executor_id {
            return Err(format!(
                "ExecutorID '{e}' does not match '{}'",
                view.executor_id
            ));
        }
    }
    if let Some(t) = status.get("timestamp") {
        if !t.is_number() {
            return Err("'timestamp' must be a number".into());
        }
    }
    Ok(())
}

pub const KNOWN_STATES: &[&str] = &[
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_UNREACHABLE",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
];

pub const TERMINAL_STATES: &[&str] = &[
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
];
