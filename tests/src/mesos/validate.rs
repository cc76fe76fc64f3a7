//! The agent's checks on `POST /api/v1/executor`, in the agent's order
//! (apache/mesos src/slave/http.cpp `Http::executor`, src/common/validation.cpp
//! `executor::call::validate`). Pure functions, so each rule is unit-tested.

use base64::Engine as _;
use serde_json::Value;

use super::proto;
use super::schema;

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
    /// What the agent's parse silently dropped (unknown names of optional enums): the
    /// call is accepted, the double records each as a violation.
    pub dropped: Vec<String>,
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
    /// The agent restarted and did not recover this framework (checkpointing off): it
    /// knows neither the framework nor its executor any more.
    pub forgot_framework: bool,
    /// The executor missed its reregistration timeout after an agent restart and was
    /// shut down: the agent no longer accepts it.
    pub executor_gone: bool,
}

/// True when an Accept header value allows JSON (libprocess
/// `Request::acceptsMediaType`: a range with `q=0` is not acceptable).
fn accepts_json(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let m = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q_zero = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f64>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        !q_zero && (m == "application/json" || m == "application/*" || m == "*/*")
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
    // The agent compares the whole header value: parameters such as
    // `; charset=utf-8` make it a different media type (415).
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
    let dropped = proto::parse(&call, proto::CALL, "").map_err(|m| {
        refuse(
            400,
            format!("Failed to convert JSON into Call protobuf: {m}"),
        )
    })?;
    let mut dropped = dropped;
    if let Err(e) = schema::parse(schema::CALL, &call) {
        dropped.push(format!("what does not fit: {e}"));
    }
    let kind = validate_call(&call)
        .map_err(|m| refuse(400, format!("Failed to validate Executor::Call: {m}")))?;
    if kind == "SUBSCRIBE" {
        if let Some(accept) = req.header("accept") {
            if !accepts_json(accept) {
                return Err(refuse(
                    406,
                    "Expecting 'Accept' to allow application/json or application/x-protobuf",
                ));
            }
        }
    }
    // The agent looks the framework and executor up only after the Accept check.
    if view.forgot_framework
        || id_of(&call, "framework_id").ok() != Some(view.framework_id.as_str())
    {
        return Err(refuse(400, "Framework cannot be found"));
    }
    if view.executor_gone || id_of(&call, "executor_id").ok() != Some(view.executor_id.as_str()) {
        return Err(refuse(400, "Executor cannot be found"));
    }
    if kind != "SUBSCRIBE" && !view.subscribed {
        return Err(refuse(403, "Executor is not subscribed"));
    }
    if kind == "UNKNOWN" {
        return Err(refuse(501, "Received 'UNKNOWN' call"));
    }
    Ok(ValidCall {
        kind,
        call,
        dropped,
    })
}

fn id_of<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    v.get(field)
        .ok_or_else(|| format!("Expecting '{field}' to be present"))?
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("'{field}.value' must be a string"))
}

/// `executor::call::validate` (src/common/validation.cpp), after the parse: the call's
/// `type` (an unknown name was dropped by the parse, so it is "not present"), the ids,
/// the body of its type, and for UPDATE the status checks.
pub fn validate_call(call: &Value) -> Result<String, String> {
    let kind = call
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| proto::CALL_TYPES.contains(t))
        .ok_or("Expecting 'type' to be present")?
        .to_string();
    let executor = id_of(call, "executor_id")?;
    let framework = id_of(call, "framework_id")?;
    let present = |field: &str| {
        call.get(field)
            .filter(|v| !v.is_null())
            .ok_or(format!("Expecting '{field}' to be present"))
    };
    match kind.as_str() {
        "SUBSCRIBE" => {
            let sub = present("subscribe")?;
            // The agent itself does not look into the resent updates here; the double
            // holds them to the UPDATE rules (a resent update must have been valid).
            let updates = sub.get("unacknowledged_updates").and_then(Value::as_array);
            for entry in updates.into_iter().flatten() {
                let status = entry
                    .get("status")
                    .ok_or("'unacknowledged_updates' entry lacks 'status'")?;
                validate_status(status, executor, framework)?;
            }
        }
        "UPDATE" => {
            let upd = present("update")?;
            validate_status(
                upd.get("status")
                    .ok_or("Expecting 'update.status' to be present")?,
                executor,
                framework,
            )?;
        }
        "MESSAGE" => {
            present("message")?;
        }
        _ => {}
    }
    Ok(kind)
}

/// The agent's checks of an executor's TaskStatus (after the parse), in its order,
/// with its messages; `executor` and `framework` are the call's ids.
pub fn validate_status(status: &Value, executor: &str, framework: &str) -> Result<(), String> {
    proto::parse(status, proto::TASK_STATUS, "status")?;
    let uuid = status
        .get("uuid")
        .and_then(Value::as_str)
        .ok_or("Expecting 'uuid' to be present")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(uuid)
        .map_err(|_| "Not a valid UUID")?;
    // stout `UUID::fromBytes`: 16 bytes of an RFC 4122 UUID (version 1..=5).
    if raw.len() != 16 {
        return Err(format!(
            "Not a valid UUID: 'uuid' must be 16 bytes, got {}",
            raw.len()
        ));
    }
    if !(1..=5).contains(&(raw[6] >> 4)) {
        return Err(format!(
            "Not a valid UUID: version {}, not 1..=5",
            raw[6] >> 4
        ));
    }
    if let Some(e) = status.get("executor_id").filter(|e| !e.is_null()) {
        let e = e.get("value").and_then(Value::as_str).unwrap_or("");
        if e != executor {
            return Err(format!(
                "ExecutorID in Call: {executor} does not match ExecutorID in TaskStatus: {e}"
            ));
        }
    }
    // An unknown source name was dropped by the parse: the same as none.
    if status.get("source").and_then(Value::as_str) != Some("SOURCE_EXECUTOR") {
        return Err(format!(
            "Received Call from executor {executor} of framework {framework} with invalid source, expecting 'SOURCE_EXECUTOR'"
        ));
    }
    if status.get("state").and_then(Value::as_str) == Some("TASK_STAGING") {
        return Err(format!(
            "Received TASK_STAGING from executor {executor} of framework {framework} which is not allowed"
        ));
    }
    if let Some(cs) = status.get("check_status").filter(|c| !c.is_null()) {
        let kind = cs.get("type").and_then(Value::as_str);
        let needs = match kind {
            Some("COMMAND") => "command",
            Some("HTTP") => "http",
            Some("TCP") => "tcp",
            Some(other) => return Err(format!("'{other}' is not a valid check's status type")),
            None => return Err("CheckStatusInfo must specify 'type'".into()),
        };
        if cs.get(needs).is_none_or(Value::is_null) {
            let what = kind.unwrap_or_default();
            return Err(format!(
                "Expecting '{needs}' to be set for {what} check's status"
            ));
        }
    }
    check_addresses(status)
}

/// `container_status.network_infos[].ip_addresses[]`: Marathon keeps these as the task's
/// addresses, so each must be an IP of the family its `protocol` names. (The agent's
/// parse only checks the shape; the double is stricter, as Marathon parses them.)
fn check_addresses(status: &Value) -> Result<(), String> {
    let infos = status["container_status"]["network_infos"].as_array();
    for (i, info) in infos.into_iter().flatten().enumerate() {
        let addrs = info["ip_addresses"].as_array();
        for (j, a) in addrs.into_iter().flatten().enumerate() {
            let at = format!("container_status.network_infos[{i}].ip_addresses[{j}]");
            let text = a["ip_address"]
                .as_str()
                .ok_or(format!("'{at}.ip_address' is missing"))?;
            let ip: std::net::IpAddr = text
                .parse()
                .map_err(|_| format!("'{at}.ip_address' {text:?} is not an IP address"))?;
            let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
            // An unknown protocol name was dropped by the parse: as if absent.
            if let Some(p) = a["protocol"]
                .as_str()
                .filter(|p| *p == "IPv4" || *p == "IPv6")
            {
                if p != family {
                    return Err(format!("'{at}': {text} is not an {p} address"));
                }
            }
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

/// States only Mesos itself sends (mesos.proto `TaskState`), never an executor; the
/// agent's validation lets them through (it refuses only TASK_STAGING), so the double
/// records an executor that sends one as a violation:
/// - TASK_DROPPED: "the task's executor never started running" -- an executor that got
///   the LAUNCH is running; a task it never started because a KILL or SHUTDOWN came first
///   ends TASK_KILLED (REASON_TASK_KILLED_DURING_LAUNCH), as the agent's own does.
/// - TASK_GONE: the agent was terminated with its tasks, or an agent/containerizer error;
///   a task whose resources vanished under the executor (its volume, its container) is
///   TASK_FAILED with the cause in the message.
/// - TASK_LOST, TASK_UNREACHABLE, TASK_GONE_BY_OPERATOR, TASK_UNKNOWN: the master's view
///   of partitioned or forgotten agents.
pub const MESOS_ONLY_STATES: &[&str] = &[
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_LOST",
    "TASK_UNREACHABLE",
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FW: &str = "fw";
    const EX: &str = "ex";

    fn view() -> AgentView {
        AgentView {
            subscribed: true,
            framework_id: FW.into(),
            executor_id: EX.into(),
            ..AgentView::default()
        }
    }

    fn req(headers: &[(&str, &str)], call: &Value) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            path: "/api/v1/executor".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: call.to_string().into_bytes(),
        }
    }

    fn subscribe(fw: &str, ex: &str, tasks: Value) -> Value {
        json!({"type":"SUBSCRIBE","executor_id":{"value":ex},"framework_id":{"value":fw},
               "subscribe":{"unacknowledged_tasks":tasks,"unacknowledged_updates":[]}})
    }

    fn status(uuid: &str) -> Value {
        json!({"task_id":{"value":"t"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR",
               "uuid":uuid})
    }

    #[test]
    fn content_type_with_parameters_is_415() {
        let call = subscribe(FW, EX, json!([]));
        let r = check(
            &req(
                &[("Content-Type", "application/json; charset=utf-8")],
                &call,
            ),
            &view(),
        );
        assert_eq!(r.unwrap_err().status, 415);
        assert!(check(
            &req(&[("Content-Type", "application/json")], &call),
            &view()
        )
        .is_ok());
    }

    #[test]
    fn uuid_needs_a_known_version() {
        // 16 zero bytes: version nibble 0.
        let zero = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
        let err = validate_status(&status(&zero), EX, FW).unwrap_err();
        assert!(err.contains("version"), "{err}");
        let mut v4 = [0u8; 16];
        v4[6] = 0x40;
        let v4 = base64::engine::general_purpose::STANDARD.encode(v4);
        assert!(validate_status(&status(&v4), EX, FW).is_ok());
        let mut v6 = [0u8; 16];
        v6[6] = 0x60;
        let v6 = base64::engine::general_purpose::STANDARD.encode(v6);
        assert!(validate_status(&status(&v6), EX, FW).is_err());
    }

    #[test]
    fn accept_is_checked_before_framework_and_executor_lookup() {
        let ct = ("Content-Type", "application/json");
        let unknown_fw = subscribe("other-fw", EX, json!([]));
        let r = check(&req(&[ct, ("Accept", "text/html")], &unknown_fw), &view());
        assert_eq!(r.unwrap_err().status, 406);
        let r = check(
            &req(&[ct, ("Accept", "application/json")], &unknown_fw),
            &view(),
        );
        assert_eq!(r.unwrap_err(), refuse(400, "Framework cannot be found"),);
        let unknown_ex = subscribe(FW, "other-ex", json!([]));
        let r = check(&req(&[ct], &unknown_ex), &view());
        assert_eq!(r.unwrap_err(), refuse(400, "Executor cannot be found"));
    }

    #[test]
    fn accept_with_q_zero_is_not_acceptable() {
        assert!(!accepts_json("application/json;q=0"));
        assert!(!accepts_json("application/json; q=0.0, text/html"));
        assert!(accepts_json("text/html, */*;q=0.1"));
        assert!(accepts_json("application/json"));
        let call = subscribe(FW, EX, json!([]));
        let r = check(
            &req(
                &[
                    ("Content-Type", "application/json"),
                    ("Accept", "application/json;q=0"),
                ],
                &call,
            ),
            &view(),
        );
        assert_eq!(r.unwrap_err().status, 406);
    }

    #[test]
    fn unacknowledged_tasks_need_name_task_id_and_agent_id() {
        let full = json!({"name":"n","task_id":{"value":"t"},"agent_id":{"value":"a"}});
        let ct = [("Content-Type", "application/json")];
        assert!(check(&req(&ct, &subscribe(FW, EX, json!([full]))), &view()).is_ok());
        for missing in ["name", "task_id", "agent_id"] {
            let mut t = full.clone();
            t.as_object_mut().unwrap().remove(missing);
            let err = check(&req(&ct, &subscribe(FW, EX, json!([t]))), &view()).unwrap_err();
            assert_eq!(err.status, 400);
            let want = format!(
                "Failed to convert JSON into Call protobuf: Missing required fields: \
                 subscribe.unacknowledged_tasks[0].{missing}"
            );
            assert_eq!(err.message, want);
        }
    }
}
