//! The agent double rejects what the real agent rejects, with the same status codes in
//! the same order (REFERENCE.md section 1). Hand-written calls over raw TCP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use berth_tests::mesos::AgentDouble;
use serde_json::{json, Value};

const FW: &str = "fw-double";
const EX: &str = "marathon-app.1";

/// Sends raw request bytes; returns (status, body-ish text).
fn raw(endpoint: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(endpoint).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read the head (and whatever follows it at once).
    loop {
        let n = s.read(&mut chunk).unwrap_or(0);
        buf.extend_from_slice(&chunk[..n]);
        if n == 0 || buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn post(endpoint: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut req = format!("POST /api/v1/executor HTTP/1.1\r\nHost: {endpoint}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    raw(endpoint, &req)
}

const JSON: &[(&str, &str)] = &[
    ("Content-Type", "application/json"),
    ("Accept", "application/json"),
];

fn subscribe_body() -> String {
    json!({"type":"SUBSCRIBE","executor_id":{"value":EX},"framework_id":{"value":FW},
           "subscribe":{"unacknowledged_tasks":[],"unacknowledged_updates":[]}})
    .to_string()
}

fn update_body(status: Value) -> String {
    json!({"type":"UPDATE","executor_id":{"value":EX},"framework_id":{"value":FW},"update":{"status":status}}).to_string()
}

fn good_status() -> Value {
    json!({"task_id":{"value":"app.1"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR",
           "uuid":"AAECAwQFRgcICQoLDA0ODw==","timestamp":1.0,"executor_id":{"value":EX}})
}

/// Keeps a SUBSCRIBE stream open in a thread; returns its first bytes.
fn subscribe(endpoint: &str) -> (TcpStream, String) {
    let body = subscribe_body();
    let mut s = TcpStream::connect(endpoint).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "POST /api/v1/executor HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = vec![0u8; 8192];
    let mut text = String::new();
    while !text.contains("SUBSCRIBED") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream closed: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    (s, text)
}

#[test]
fn order_of_refusals_before_subscription() {
    let d = AgentDouble::start(FW, EX);
    let e = d.endpoint.clone();
    // 405 before anything about the body.
    let (st, _) = raw(
        &e,
        "GET /api/v1/executor HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n",
    );
    assert_eq!(st, 405);
    // 400: no Content-Type.
    assert_eq!(
        post(&e, &[("Accept", "application/json")], &subscribe_body()).0,
        400
    );
    // 415: other Content-Type, even with a broken body.
    assert_eq!(post(&e, &[("Content-Type", "text/plain")], "{").0, 415);
    // 400: bad JSON.
    assert_eq!(post(&e, JSON, "{").0, 400);
    // 400: validation (no executor_id) comes before 406.
    let no_exec =
        json!({"type":"SUBSCRIBE","framework_id":{"value":FW},"subscribe":{}}).to_string();
    assert_eq!(
        post(
            &e,
            &[
                ("Content-Type", "application/json"),
                ("Accept", "text/html")
            ],
            &no_exec
        )
        .0,
        400
    );
    // 406: SUBSCRIBE that does not accept JSON.
    assert_eq!(
        post(
            &e,
            &[
                ("Content-Type", "application/json"),
                ("Accept", "text/html")
            ],
            &subscribe_body()
        )
        .0,
        406
    );
    // 403: UPDATE before SUBSCRIBE.
    let (st, text) = post(&e, JSON, &update_body(good_status()));
    assert_eq!(st, 403);
    assert!(text.contains("Executor is not subscribed"), "{text}");
    // 403 for HEARTBEAT and MESSAGE too.
    let hb = json!({"type":"HEARTBEAT","executor_id":{"value":EX},"framework_id":{"value":FW}})
        .to_string();
    assert_eq!(post(&e, JSON, &hb).0, 403);
    // Every refusal was recorded as a violation.
    assert_eq!(d.violations().len(), 8, "{:?}", d.violations());
}

#[test]
fn recovering_agent_answers_503_first() {
    let d = AgentDouble::start(FW, EX);
    d.state().recovering_until = Some(std::time::Instant::now() + Duration::from_secs(60));
    assert_eq!(
        raw(
            &d.endpoint,
            "GET /api/v1/executor HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .0,
        503
    );
    assert_eq!(post(&d.endpoint, JSON, &subscribe_body()).0, 503);
    assert!(d.violations().is_empty(), "503 is not the executor's fault");
}

#[test]
fn token_is_required_when_set() {
    let d = AgentDouble::start(FW, EX);
    d.require_token("t0k");
    assert_eq!(post(&d.endpoint, JSON, &subscribe_body()).0, 401);
    assert_eq!(
        post(
            &d.endpoint,
            &[JSON[0], JSON[1], ("Authorization", "Bearer wrong")],
            &subscribe_body()
        )
        .0,
        401
    );
}

#[test]
fn subscribe_streams_subscribed_then_launch_and_updates_are_validated() {
    let d = AgentDouble::start(FW, EX);
    d.launch_on_subscribe(
        json!({"name":"app","task_id":{"value":"app.1"},"agent_id":{"value":"agent-double-S0"}}),
    );
    let (mut stream, first) = subscribe(&d.endpoint);
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert!(first
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    assert!(first.find("SUBSCRIBED").unwrap() < first.find("LAUNCH").unwrap_or(usize::MAX));
    let e = d.endpoint.clone();

    // Each broken rule of an UPDATE -> 400.
    let bad: Vec<(&str, Value)> = vec![
        ("37-byte uuid", {
            let mut s = good_status();
            s["uuid"] = json!("NGY1ZmU2ZTEtMzc5Ny00ZWJkLWE2YjQtZWY1ZjkzMDMwZmFhCg==");
            s
        }),
        ("no uuid", {
            let mut s = good_status();
            s.as_object_mut().unwrap().remove("uuid");
            s
        }),
        ("no source", {
            let mut s = good_status();
            s.as_object_mut().unwrap().remove("source");
            s
        }),
        ("master source", {
            let mut s = good_status();
            s["source"] = json!("SOURCE_MASTER");
            s
        }),
        ("staging", {
            let mut s = good_status();
            s["state"] = json!("TASK_STAGING");
            s
        }),
        ("foreign executor", {
            let mut s = good_status();
            s["executor_id"] = json!({"value":"other"});
            s
        }),
    ];
    for (what, status) in &bad {
        assert_eq!(
            post(&e, JSON, &update_body(status.clone())).0,
            400,
            "{what}"
        );
    }
    assert_eq!(d.violations().len(), bad.len());
    // A wrong framework id is refused too.
    let wrong_fw = json!({"type":"UPDATE","executor_id":{"value":EX},"framework_id":{"value":"x"},"update":{"status":good_status()}}).to_string();
    assert_eq!(post(&e, JSON, &wrong_fw).0, 400);

    // A good one -> 202, and the ACKNOWLEDGED event follows on the stream.
    assert_eq!(post(&e, JSON, &update_body(good_status())).0, 202);
    let mut buf = vec![0u8; 8192];
    let mut text = String::new();
    while !text.contains("ACKNOWLEDGED") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0);
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.contains("AAECAwQFRgcICQoLDA0ODw=="));
    // The same uuid again: re-acked, not recorded twice.
    assert_eq!(post(&e, JSON, &update_body(good_status())).0, 202);
    assert!(d.wait(Duration::from_secs(5), |st| st.uuids.values().all(|a| *a)));
    assert_eq!(d.state().updates.len(), 1);
    assert_eq!(d.state().states("app.1"), vec!["TASK_RUNNING".to_string()]);
    // HEARTBEAT and MESSAGE -> 202 once subscribed.
    let hb = json!({"type":"HEARTBEAT","executor_id":{"value":EX},"framework_id":{"value":FW}})
        .to_string();
    assert_eq!(post(&e, JSON, &hb).0, 202);
    let msg = json!({"type":"MESSAGE","executor_id":{"value":EX},"framework_id":{"value":FW},"message":{"data":"aGk="}}).to_string();
    assert_eq!(post(&e, JSON, &msg).0, 202);
    // An update for a task the agent never launched is a violation.
    let mut other = good_status();
    other["task_id"] = json!({"value":"nope"});
    other["uuid"] = json!("EBESExQVRhcYGRobHB0eHw==");
    assert_eq!(post(&e, JSON, &update_body(other)).0, 202);
    assert!(
        d.violations().iter().any(|v| v.contains("unknown task")),
        "{:?}",
        d.violations()
    );
}

#[test]
fn resubscription_must_carry_unacknowledged_updates() {
    let d = AgentDouble::start(FW, EX);
    d.launch_on_subscribe(json!({"name":"app","task_id":{"value":"app.1"}}));
    let (_s, _) = subscribe(&d.endpoint);
    d.state().drop_acks = 1;
    assert_eq!(post(&d.endpoint, JSON, &update_body(good_status())).0, 202);
    d.go_away();
    assert!(
        TcpStream::connect(&d.endpoint).is_err(),
        "connection refused while away"
    );
    d.come_back(Duration::from_millis(300));
    assert_eq!(
        post(&d.endpoint, JSON, &subscribe_body()).0,
        503,
        "recovering first"
    );
    std::thread::sleep(Duration::from_millis(350));
    // A resubscription without the dropped update is a violation, and so is leaving
    // out the launched task none of whose updates was acknowledged.
    let n = d.violations().len();
    let (_s2, _) = subscribe(&d.endpoint);
    let v = d.violations();
    assert_eq!(v.len(), n + 2, "{v:?}");
    assert!(v[n].contains("lacks unacknowledged update"), "{v:?}");
    assert!(v[n + 1].contains("lacks launched task app.1"), "{v:?}");
}

#[test]
fn accept_and_call_shapes() {
    let d = AgentDouble::start(FW, EX);
    // SUBSCRIBE without an Accept header is fine (the agent then answers JSON).
    let (st, text) = post(
        &d.endpoint,
        &[("Content-Type", "application/json")],
        &subscribe_body(),
    );
    assert_eq!(st, 200, "{text}");
    // The agent compares Content-Type exactly: parameters make it 415.
    let (st, _) = post(
        &d.endpoint,
        &[
            ("Content-Type", "application/json; charset=utf-8"),
            ("Accept", "application/json"),
        ],
        &subscribe_body(),
    );
    assert_eq!(st, 415);
    // Accept lists with a wildcard are fine too.
    let (st, _) = post(
        &d.endpoint,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "text/html, */*;q=0.1"),
        ],
        &subscribe_body(),
    );
    assert_eq!(st, 200);
    // Protobuf bodies are not spoken by the double: 400, not 415.
    assert_eq!(
        post(
            &d.endpoint,
            &[("Content-Type", "application/x-protobuf")],
            "\u{8}\u{1}"
        )
        .0,
        400
    );
    // Unknown call type, MESSAGE without base64 data, SUBSCRIBE without its body: 400.
    let unknown =
        json!({"type":"FLY","executor_id":{"value":EX},"framework_id":{"value":FW}}).to_string();
    assert_eq!(post(&d.endpoint, JSON, &unknown).0, 400);
    let msg = json!({"type":"MESSAGE","executor_id":{"value":EX},"framework_id":{"value":FW},"message":{"data":"%%"}}).to_string();
    assert_eq!(post(&d.endpoint, JSON, &msg).0, 400);
    let sub = json!({"type":"SUBSCRIBE","executor_id":{"value":EX},"framework_id":{"value":FW}})
        .to_string();
    assert_eq!(post(&d.endpoint, JSON, &sub).0, 400);
    // A resubscription whose updates break the rules is refused as a whole.
    let bad = json!({"type":"SUBSCRIBE","executor_id":{"value":EX},"framework_id":{"value":FW},
        "subscribe":{"unacknowledged_tasks":[],"unacknowledged_updates":[{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","uuid":"AAAA"}}]}}).to_string();
    assert_eq!(post(&d.endpoint, JSON, &bad).0, 400);
    // An update naming a foreign agent is silently dropped (202, not recorded as an
    // update) but is a violation; an agent_id without its required value does not even
    // parse (400).
    let before = d.violations().len();
    let mut foreign = good_status();
    foreign["agent_id"] = json!({"value": "another-agent"});
    assert_eq!(post(&d.endpoint, JSON, &update_body(foreign)).0, 202);
    let mut empty = good_status();
    empty["agent_id"] = json!({});
    let (st, text) = post(&d.endpoint, JSON, &update_body(empty));
    assert_eq!(st, 400, "{text}");
    assert!(
        text.contains("Missing required fields: update.status.agent_id.value"),
        "{text}"
    );
    assert!(d.state().updates.is_empty());
    let v = d.violations();
    assert_eq!(v.len(), before + 2, "{v:?}");
    assert!(v[before].contains("foreign agent_id"), "{v:?}");
}

#[test]
fn every_taskstatus_field_is_type_checked_like_the_agents_protobuf_parse() {
    let d = AgentDouble::start(FW, EX);
    d.launch_on_subscribe(
        json!({"name":"app","task_id":{"value":"app.1"},"agent_id":{"value":"agent-double-S0"}}),
    );
    let (_stream, _) = subscribe(&d.endpoint);
    let e = d.endpoint.clone();
    let with = |field: &str, v: Value| {
        let mut s = good_status();
        s[field] = v;
        s
    };
    let ip = |a: Value| json!({"network_infos": [{"ip_addresses": [a]}]});
    let parse = "Failed to convert JSON into Call protobuf: ";
    let valid = "Failed to validate Executor::Call: ";
    let cases: Vec<(&str, Value, String)> = vec![
        ("state name", with("state", json!("RUNNING")), format!("{parse}Failed to find enum for 'RUNNING'")),
        ("state number", with("state", json!(1)), format!("{parse}Not expecting a JSON number for field 'state'")),
        ("state missing", {
            let mut s = good_status();
            s.as_object_mut().unwrap().remove("state");
            s
        }, format!("{parse}Missing required fields: update.status.state")),
        ("staging", with("state", json!("TASK_STAGING")), format!("{valid}Received TASK_STAGING from executor {EX} of framework {FW} which is not allowed")),
        ("unknown source = none", with("source", json!("SOURCE_SLAVE")), format!("{valid}Received Call from executor {EX} of framework {FW} with invalid source, expecting 'SOURCE_EXECUTOR'")),
        ("source number", with("source", json!(2)), format!("{parse}Not expecting a JSON number for field 'source'")),
        ("reason number", with("reason", json!(29)), format!("{parse}Not expecting a JSON number for field 'reason'")),
        ("healthy word", with("healthy", json!("yes")), format!("{parse}Failed to parse 'yes' as a JSON boolean for field 'healthy'")),
        ("healthy number", with("healthy", json!(1)), format!("{parse}Not expecting a JSON number for field 'healthy'")),
        ("data", with("data", json!("not base64!")), format!("{parse}Failed to base64 decode bytes field 'data'")),
        ("data object", with("data", json!({})), format!("{parse}Not expecting a JSON object for field 'data'")),
        ("uuid base64", with("uuid", json!("!!")), format!("{parse}Failed to base64 decode bytes field 'uuid'")),
        ("uuid 15 bytes", with("uuid", json!("AAECAwQFRgcICQoLDA0O")), format!("{valid}Not a valid UUID")),
        ("uuid number", with("uuid", json!(16)), format!("{parse}Not expecting a JSON number for field 'uuid'")),
        ("timestamp word", with("timestamp", json!("now")), format!("{parse}Failed to parse 'now' as a JSON number for field 'timestamp'")),
        ("timestamp object", with("timestamp", json!({})), format!("{parse}Not expecting a JSON object for field 'timestamp'")),
        ("message array", with("message", json!(["a"])), format!("{parse}Not expecting a JSON array for field 'message'")),
        ("message number", with("message", json!(5)), format!("{parse}Not expecting a JSON number for field 'message'")),
        ("task_id string", with("task_id", json!("app.1")), format!("{parse}Not expecting a JSON string for field 'task_id'")),
        ("task_id missing", {
            let mut s = good_status();
            s.as_object_mut().unwrap().remove("task_id");
            s
        }, format!("{parse}Missing required fields: update.status.task_id")),
        ("task_id value", with("task_id", json!({})), format!("{parse}Missing required fields: update.status.task_id.value")),
        ("executor_id value", with("executor_id", json!({"value": 7})), format!("{parse}Not expecting a JSON number for field 'value'")),
        ("executor_id foreign", with("executor_id", json!({"value": "x"})), format!("{valid}ExecutorID in Call: {EX} does not match ExecutorID in TaskStatus: x")),
        ("agent_id value", with("agent_id", json!({})), format!("{parse}Missing required fields: update.status.agent_id.value")),
        ("labels array", with("labels", json!([{"key":"a"}])), format!("{parse}Not expecting a JSON array for field 'labels'")),
        ("label key", with("labels", json!({"labels":[{"value":"v"}]})), format!("{parse}Missing required fields: update.status.labels.labels[0].key")),
        ("label value", with("labels", json!({"labels":[{"key":"k","value":1}]})), format!("{parse}Not expecting a JSON number for field 'value'")),
        ("ip_address number", with("container_status", ip(json!({"ip_address": 10}))), format!("{parse}Not expecting a JSON number for field 'ip_address'")),
        ("ip address", with("container_status", ip(json!({"protocol":"IPv4","ip_address":"10.0.0.300"}))), "is not an IP address".into()),
        ("ip family", with("container_status", ip(json!({"protocol":"IPv6","ip_address":"10.0.0.3"}))), "is not an IPv6 address".into()),
        ("network_infos string", with("container_status", json!({"network_infos": "eth0"})), format!("{parse}Not expecting a JSON string for field 'network_infos'")),
        ("check_status type", with("check_status", json!({"command": {}})), format!("{valid}CheckStatusInfo must specify 'type'")),
        ("check_status body", with("check_status", json!({"type": "HTTP"})), format!("{valid}Expecting 'http' to be set for HTTP check's status")),
    ];
    for (what, status, want) in &cases {
        let (st, text) = post(&e, JSON, &update_body(status.clone()));
        assert_eq!(st, 400, "{what}: {text}");
        assert!(
            text.contains(want.as_str()),
            "{what}: want {want:?} in {text}"
        );
    }
    assert!(d.state().updates.is_empty(), "{:?}", d.state().updates);
    assert_eq!(d.violations().len(), cases.len(), "{:?}", d.violations());

    // What the agent accepts: unknown fields (at every level) are ignored, null is
    // "unset", numbers and booleans may be strings, a single value stands for a
    // repeated field, every field well typed.
    let mut ok = good_status();
    ok["reason"] = json!("REASON_TASK_HEALTH_CHECK_STATUS_UPDATED");
    ok["healthy"] = json!("false");
    ok["message"] = json!("fine");
    ok["data"] = json!("aGk=");
    ok["timestamp"] = json!("1700000000.25");
    ok["labels"] = json!({"labels":[{"key":"k","value":"v"},{"key":"only-key"}]});
    ok["container_status"] = json!({"network_infos":[{"ip_addresses":[
        {"protocol":"IPv4","ip_address":"10.1.2.3","zone":"future"},
        {"ip_address":"fd00::5"}]}, {"ip_addresses": {"ip_address": "10.1.2.4"}}]});
    ok["check_status"] = json!({"type":"COMMAND","command":{"exit_code":0}});
    ok["a_field_from_the_future"] = json!({"x": [1, "two"]});
    ok["agent_id"] = json!(null);
    let (st, text) = post(&e, JSON, &update_body(ok));
    assert_eq!(st, 202, "{text}");
    assert_eq!(d.state().states("app.1"), vec!["TASK_RUNNING".to_string()]);
    // Accepted as stout accepts it, but outside Apache Mesos' protos (unknown fields,
    // a single value for a repeated field): what the agent ignores is lost, so the
    // double records it once.
    let n = d.violations().len();
    assert_eq!(n, cases.len() + 1, "{:?}", d.violations());
    let last = d.violations().pop().unwrap_or_default();
    assert!(last.contains("Apache Mesos' protos"), "{last}");

    // Unknown names of optional enums: the agent's parse drops them and accepts the
    // call (202); the executor's information is lost, so the double records it.
    let mut dropped = good_status();
    dropped["uuid"] = json!("EBESExQVRhcYGRobHB0eHw==");
    dropped["reason"] = json!("REASON_BECAUSE");
    dropped["container_status"] = ip(json!({"protocol": "IPv5", "ip_address": "10.0.0.1"}));
    let (st, text) = post(&e, JSON, &update_body(dropped));
    assert_eq!(st, 202, "{text}");
    let v = d.violations();
    // The two drops, and the call outside the protos.
    assert_eq!(v.len(), n + 3, "{v:?}");
    assert!(v[n + 2].contains("Apache Mesos' protos"), "{v:?}");
    assert!(
        v[n].contains("update.status.reason: unknown enum value 'REASON_BECAUSE' dropped"),
        "{v:?}"
    );
    assert!(
        v[n + 1].contains("unknown enum value 'IPv5' dropped"),
        "{v:?}"
    );

    // Call level: an unknown type name is dropped, so the type is "not present"; the
    // ids are required; UNKNOWN itself is 501.
    let n = d.violations().len();
    let fly = json!({"type":"FLY","executor_id":{"value":EX},"framework_id":{"value":FW}});
    let (st, text) = post(&e, JSON, &fly.to_string());
    assert_eq!(st, 400);
    assert!(
        text.contains(&format!("{valid}Expecting 'type' to be present")),
        "{text}"
    );
    let (st, text) = post(
        &e,
        JSON,
        &json!({"type":"HEARTBEAT","framework_id":{"value":FW}}).to_string(),
    );
    assert_eq!(st, 400);
    assert!(
        text.contains(&format!("{parse}Missing required fields: executor_id")),
        "{text}"
    );
    let unknown = json!({"type":"UNKNOWN","executor_id":{"value":EX},"framework_id":{"value":FW}});
    assert_eq!(post(&e, JSON, &unknown.to_string()).0, 501);
    assert_eq!(d.violations().len(), n + 3, "{:?}", d.violations());
}

#[test]
fn the_executors_own_updates_pass_the_agents_parse_and_checks() {
    use berth_executor::mesos::types::{
        ContainerStatus, Id, IpAddress, NetworkInfo, Reason, TaskState, TaskStatus,
    };
    use berth_executor::mesos::updates::stamp;
    use berth_tests::mesos::validate::{check, AgentView, HttpRequest};
    let view = AgentView {
        subscribed: true,
        framework_id: FW.into(),
        executor_id: EX.into(),
        ..AgentView::default()
    };
    for (state, reason, healthy, ip) in [
        (TaskState::TaskStarting, None, None, None),
        (TaskState::TaskRunning, None, None, Some("10.9.8.7")),
        (
            TaskState::TaskRunning,
            Some(Reason::ReasonTaskHealthCheckStatusUpdated),
            Some(false),
            Some("10.9.8.7"),
        ),
        (TaskState::TaskKilling, None, None, None),
        (TaskState::TaskKilled, None, Some(false), None),
        (
            TaskState::TaskFailed,
            Some(Reason::ReasonContainerLaunchFailed),
            None,
            None,
        ),
        (
            TaskState::TaskFailed,
            Some(Reason::ReasonTaskGroupInvalid),
            None,
            None,
        ),
        (
            TaskState::TaskKilled,
            Some(Reason::ReasonTaskKilledDuringLaunch),
            None,
            None,
        ),
        (
            TaskState::TaskFailed,
            Some(Reason::ReasonTaskInvalid),
            None,
            None,
        ),
    ] {
        let status = stamp(
            TaskStatus {
                task_id: Id::new("app.1"),
                state,
                source: None,
                reason,
                message: Some("m".into()),
                uuid: None,
                timestamp: None,
                healthy,
                executor_id: None,
                agent_id: None,
                container_status: ip.map(|ip| ContainerStatus {
                    container_id: None,
                    network_infos: vec![NetworkInfo {
                        ip_addresses: vec![IpAddress {
                            protocol: Some("IPv4".into()),
                            ip_address: ip.into(),
                        }],
                    }],
                }),
                data: None,
                labels: None,
            },
            &Id::new(EX),
        );
        let call = berth_executor::mesos::call::Call::update(&Id::new(EX), &Id::new(FW), status);
        let v = serde_json::to_value(&call).unwrap();
        let dropped = berth_tests::mesos::proto::parse(&v, berth_tests::mesos::proto::CALL, "")
            .unwrap_or_else(|e| panic!("{state:?}/{reason:?}: {e}: {v}"));
        assert!(dropped.is_empty(), "{dropped:?}");
        let req = HttpRequest {
            method: "POST".into(),
            path: "/api/v1/executor".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(&call).unwrap(),
        };
        let ok = check(&req, &view).unwrap_or_else(|e| panic!("{state:?}/{reason:?}: {e:?}: {v}"));
        assert!(ok.dropped.is_empty(), "{:?}", ok.dropped);
    }
}

fn resubscribe_body() -> String {
    json!({"type":"SUBSCRIBE","executor_id":{"value":EX},"framework_id":{"value":FW},
           "subscribe":{"unacknowledged_tasks":[],"unacknowledged_updates":[]}})
    .to_string()
}

#[test]
fn after_an_agent_restart_a_checkpointing_executor_must_resubscribe_in_time() {
    // In time: accepted, no violation.
    let d = AgentDouble::start(FW, EX);
    d.state().reregistration_timeout = Duration::from_millis(400);
    let (_s, _) = subscribe(&d.endpoint);
    d.go_away();
    d.come_back(Duration::from_millis(100));
    std::thread::sleep(Duration::from_millis(150));
    let (_s2, text) = subscribe(&d.endpoint);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(d.violations().is_empty(), "{:?}", d.violations());

    // Too late: a violation, and the agent refuses the executor from then on.
    let d = AgentDouble::start(FW, EX);
    d.state().reregistration_timeout = Duration::from_millis(200);
    let (_s, _) = subscribe(&d.endpoint);
    d.go_away();
    d.come_back(Duration::from_millis(50));
    std::thread::sleep(Duration::from_millis(400));
    let (st, text) = post(&d.endpoint, JSON, &resubscribe_body());
    assert_eq!(st, 400, "{text}");
    assert!(text.contains("Executor cannot be found"), "{text}");
    let v = d.violations();
    assert!(
        v.iter()
            .any(|m| m.contains("executor reregistration timeout")),
        "{v:?}"
    );
}

#[test]
fn after_an_agent_restart_a_non_checkpointing_executor_is_not_taken_back() {
    let d = AgentDouble::start(FW, EX);
    d.state().checkpoint = false;
    let (_s, _) = subscribe(&d.endpoint);
    d.go_away();
    d.come_back(Duration::from_millis(50));
    std::thread::sleep(Duration::from_millis(100));
    let (st, text) = post(&d.endpoint, JSON, &resubscribe_body());
    assert_eq!(st, 400, "{text}");
    assert!(text.contains("Framework cannot be found"), "{text}");
    let v = d.violations();
    assert!(
        v.iter().any(|m| m.contains("non-checkpointing framework")),
        "{v:?}"
    );
}

#[test]
fn every_reason_the_executor_can_send_is_a_mesos_reason() {
    use berth_executor::mesos::types::Reason;
    use berth_tests::mesos::proto::REASONS;
    for r in [
        Reason::ReasonCommandExecutorFailed,
        Reason::ReasonContainerLaunchFailed,
        Reason::ReasonContainerLimitation,
        Reason::ReasonContainerLimitationMemory,
        Reason::ReasonExecutorTerminated,
        Reason::ReasonExecutorUnregistered,
        Reason::ReasonTaskHealthCheckStatusUpdated,
        Reason::ReasonTaskGroupInvalid,
        Reason::ReasonTaskInvalid,
        Reason::ReasonTaskKilledDuringLaunch,
        Reason::ReasonTaskUnknown,
        Reason::ReasonAgentRestarted,
    ] {
        let name = serde_json::to_value(r).unwrap();
        let name = name.as_str().unwrap();
        assert!(REASONS.contains(&name), "{name} is not a Mesos reason");
    }
    // `ReasonOther` only stands for reasons the executor reads and does not know; the
    // agent would refuse it, so it must never be sent.
    let other = serde_json::to_value(Reason::ReasonOther).unwrap();
    assert!(!REASONS.contains(&other.as_str().unwrap()));
}

#[test]
fn subscribed_carries_the_frameworks_real_checkpoint_setting() {
    for checkpoint in [false, true] {
        let d = AgentDouble::start(FW, EX);
        d.state().checkpoint = checkpoint;
        let (_s, text) = subscribe(&d.endpoint);
        assert!(
            text.contains(&format!("\"checkpoint\":{checkpoint}")),
            "{text}"
        );
    }
}

#[test]
fn an_acknowledgement_that_cannot_be_written_is_not_counted() {
    let d = AgentDouble::start(FW, EX);
    d.state().ack_delay = Duration::from_millis(100);
    // The task is known to the double (LAUNCH is not sent: nothing else is written).
    d.state().tasks.insert(
        "app.1".into(),
        berth_tests::mesos::state::TaskView {
            info: json!({"task_id": {"value": "app.1"}}),
            states: Vec::new(),
            terminal: false,
        },
    );
    let (s, _) = subscribe(&d.endpoint);
    // The executor's end of the stream goes away with a reset.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket this test owns, with a correctly sized linger.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    drop(s);
    std::thread::sleep(Duration::from_millis(50));
    let (status, _) = post(&d.endpoint, JSON, &update_body(good_status()));
    assert_eq!(status, 202);
    // The ACKNOWLEDGED write fails: the update stays unacknowledged and the stream is
    // gone.
    assert!(d.wait(Duration::from_secs(5), |st| st.stream.is_none()));
    std::thread::sleep(Duration::from_millis(100));
    let st = d.state();
    assert_eq!(
        st.uuids.get("AAECAwQFRgcICQoLDA0ODw=="),
        Some(&false),
        "{:?}",
        st.uuids
    );
}

#[test]
fn launch_carries_the_defaults_the_agent_writes() {
    let d = AgentDouble::start(FW, EX);
    let (mut s, _) = subscribe(&d.endpoint);
    d.launch(json!({
        "name": "app", "task_id": {"value": "app.1"}, "agent_id": {"value": "agent-double-S0"},
        "command": {"value": "sleep 1", "uris": [{"value": "http://x/y.tgz"}]},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
        "health_check": {"type": "COMMAND", "command": {"value": "true", "shell": false},
                         "interval_seconds": 2.0},
    }));
    let mut buf = vec![0u8; 8192];
    let mut text = String::new();
    while !text.contains("grace_period_seconds") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream closed: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let start = text
        .find("{\"launch\"")
        .or_else(|| text.find("{\"type\":\"LAUNCH\""))
        .unwrap_or(0);
    let launch = &text[start..];
    assert!(launch.contains("\"shell\":true"), "{launch}");
    assert!(launch.contains("\"extract\":true"), "{launch}");
    assert!(launch.contains("\"role\":\"*\""), "{launch}");
    assert!(launch.contains("\"timeout_seconds\":20.0"), "{launch}");
    assert!(launch.contains("\"consecutive_failures\":3"), "{launch}");
    // Values the framework set stay as they are.
    assert!(launch.contains("\"interval_seconds\":2.0"), "{launch}");
    assert!(launch.contains("\"shell\":false"), "{launch}");
}

#[test]
fn states_only_mesos_sends_are_accepted_like_the_agent_but_recorded() {
    for state in [
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_LOST",
        "TASK_UNREACHABLE",
        "TASK_GONE_BY_OPERATOR",
        "TASK_UNKNOWN",
    ] {
        let d = AgentDouble::start(FW, EX);
        d.launch_on_subscribe(json!({"name":"app","task_id":{"value":"app.1"}}));
        let (_s, _) = subscribe(&d.endpoint);
        let mut s = good_status();
        s["state"] = json!(state);
        // The agent's validation refuses only TASK_STAGING: 202.
        assert_eq!(post(&d.endpoint, JSON, &update_body(s)).0, 202, "{state}");
        let v = d.violations();
        assert!(
            v.len() == 1 && v[0].contains(state) && v[0].contains("only Mesos"),
            "{state}: {v:?}"
        );
    }
    // What an executor ends a task with is no violation.
    let d = AgentDouble::start(FW, EX);
    d.launch_on_subscribe(json!({"name":"app","task_id":{"value":"app.1"}}));
    let (_s, _) = subscribe(&d.endpoint);
    let mut s = good_status();
    s["state"] = json!("TASK_KILLED");
    s["reason"] = json!("REASON_TASK_KILLED_DURING_LAUNCH");
    assert_eq!(post(&d.endpoint, JSON, &update_body(s)).0, 202);
    assert!(d.violations().is_empty(), "{:?}", d.violations());
}
