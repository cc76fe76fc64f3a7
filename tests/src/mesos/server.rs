//! The double's server loop: serves HTTP (berth-http, plain or TLS) while "up", checks
//! each request (validate.rs), streams events to the subscribed executor and
//! acknowledges updates.

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use berth_http::server::Body;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::http::{read_request, record_chunks, respond, stream};
use super::schema;
pub use super::state::Outgoing;
use super::state::{Answer, State};
use super::validate::{check, MESOS_ONLY_STATES};

pub type Shared = Arc<(Mutex<State>, Condvar)>;

/// Commands from the test thread to the server's runtime.
#[derive(Debug)]
pub enum Command {
    GoAway,
    ComeBack,
}

/// Serves until the command channel closes. `GoAway` stops accepting (connection
/// refused) and ends the event stream; `ComeBack` listens on the same address again.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Shared,
    mut cmds: mpsc::UnboundedReceiver<Command>,
) {
    let addr = listener.local_addr().expect("local addr");
    let mut listener = Some(listener);
    // The accept loop and its stop (dropping the sender stops it).
    let mut running: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)> = None;
    loop {
        if let Some(l) = listener.take() {
            let (tx, rx) = oneshot::channel::<()>();
            let sh = shared.clone();
            let handler = move |req, peer: SocketAddr| handle(req, peer, sh.clone());
            let task = tokio::spawn(berth_http::server::serve(l, tls.clone(), handler, async {
                let _ = rx.await;
            }));
            running = Some((tx, task));
        }
        match cmds.recv().await {
            None => return,
            Some(Command::GoAway) => {
                if let Some((stop, task)) = running.take() {
                    drop(stop);
                    // The listener is closed once the loop has returned.
                    let _ = task.await;
                }
                let (m, cv) = &*shared;
                let mut st = m.lock().unwrap();
                st.up = false;
                // Dropping the stream's sender ends the executor's event stream.
                st.stream = None;
                st.view.subscribed = false;
                cv.notify_all();
            }
            Some(Command::ComeBack) if running.is_some() => {}
            Some(Command::ComeBack) => {
                // The port was ours a moment ago; retry briefly in case it lingers.
                for _ in 0..50 {
                    match TcpListener::bind(addr).await {
                        Ok(l) => {
                            listener = Some(l);
                            break;
                        }
                        Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                    }
                }
                let (m, cv) = &*shared;
                let mut st = m.lock().unwrap();
                st.up = listener.is_some();
                cv.notify_all();
            }
        }
    }
}

fn answer(shared: &Shared, kind: &str, status: u16, message: &str) {
    let (m, cv) = &**shared;
    let mut st = m.lock().unwrap();
    st.answers.push(Answer::new(kind, status, message));
    // A process with the id of an executor that ended (not one the agent launched) is
    // refused as unknown: that is the expected answer, not the executor's fault.
    let refused_after_end = st.executor_exited && status == 400 && st.view.executor_gone;
    if ((400..500).contains(&status) || status == 501) && !refused_after_end {
        st.violation(format!("{kind} answered {status}: {message}"));
    }
    cv.notify_all();
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    shared: Shared,
) -> hyper::Response<Body> {
    let req = match read_request(req).await {
        Ok(r) => r,
        Err((status, why)) => return respond(status, &why),
    };
    let view = {
        let (m, _) = &*shared;
        let mut st = m.lock().unwrap();
        if st.recovering_until.is_some_and(|t| Instant::now() >= t) {
            st.recovering_until = None;
        }
        st.reregistration_expired(Instant::now());
        if st.registration_expired(Instant::now()) {
            if let Some(pid) = st.executor_pid {
                // SAFETY: kill(2) of the executor the double launched.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
        if st.view.forgot_framework && req.body.windows(9).any(|w| w == b"SUBSCRIBE") {
            st.violation(
                "an executor of a non-checkpointing framework tried to resubscribe after an agent restart (the agent does not recover it)",
            );
        }
        let mut v = st.view.clone();
        v.recovering = st.recovering_until.is_some();
        v
    };
    if req.path != "/api/v1/executor" {
        answer(&shared, "?", 404, &req.path);
        return respond(404, "Not Found");
    }
    let is_subscribe = req.body.windows(9).any(|w| w == b"SUBSCRIBE");
    let not_found = {
        let (m, _) = &*shared;
        let st = m.lock().unwrap();
        st.not_found_until.is_some_and(|t| Instant::now() < t)
    };
    if is_subscribe && not_found && !view.recovering {
        // Not a violation: the executor is told to retry.
        let (m, cv) = &*shared;
        let mut st = m.lock().unwrap();
        st.answers.push(Answer::new("SUBSCRIBE", 404, "Not Found"));
        cv.notify_all();
        return respond(404, "Not Found");
    }
    let call = match check(&req, &view) {
        Ok(c) => c,
        Err(r) => {
            let kind = serde_json::from_slice::<Value>(&req.body)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_string))
                .unwrap_or_else(|| "?".into());
            answer(&shared, &kind, r.status, &r.message);
            return respond(r.status, &r.message);
        }
    };
    shared
        .0
        .lock()
        .unwrap()
        .peers
        .push((call.kind.clone(), peer));
    if !call.dropped.is_empty() {
        let (m, _) = &*shared;
        let mut st = m.lock().unwrap();
        for d in &call.dropped {
            st.violation(format!(
                "{} accepted, but the agent's parse dropped {d}",
                call.kind
            ));
        }
    }
    match call.kind.as_str() {
        "SUBSCRIBE" => subscribe(call.call, shared),
        "UPDATE" => {
            answer(&shared, "UPDATE", 202, "");
            update(&call.call["update"]["status"], &shared);
            respond(202, "")
        }
        kind => {
            answer(&shared, kind, 202, "");
            let (m, cv) = &*shared;
            let mut st = m.lock().unwrap();
            if kind == "HEARTBEAT" {
                st.heartbeats += 1;
            } else {
                st.messages.push(call.call["message"].clone());
            }
            cv.notify_all();
            respond(202, "")
        }
    }
}

/// The stream: SUBSCRIBED first, then whatever the test sends.
fn subscribe(call: Value, shared: Shared) -> hyper::Response<Body> {
    let (tx, rx) = mpsc::unbounded_channel::<Outgoing>();
    let (pieces, resend, stream_id) = {
        let (m, cv) = &*shared;
        let mut st = m.lock().unwrap();
        st.check_subscribe(&call);
        st.subscriptions.push(call.clone());
        let id = st.next_stream;
        st.next_stream += 1;
        st.stream = Some((id, tx.clone()));
        st.view.subscribed = true;
        st.register_by = None;
        st.reregister_by = None;
        let first = !st.subscribed_once;
        st.subscribed_once = true;
        st.answers.push(Answer::new("SUBSCRIBE", 200, ""));
        // Updates resent in SUBSCRIBE are processed like UPDATE calls.
        let resend: Vec<Value> = call["subscribe"]["unacknowledged_updates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|u| u["status"].clone())
            .collect();
        let _ = tx.send((subscribed_event(&st), None));
        if first {
            for task in st.launch_on_subscribe.clone() {
                launch_into(&mut st, task);
            }
        }
        cv.notify_all();
        (st.pieces, resend, id)
    };
    drop(tx);
    for status in resend {
        update(&status, &shared);
    }
    let (body_tx, body) = berth_http::server::channel(1);
    tokio::spawn(pump(rx, body_tx, pieces, stream_id, shared));
    stream(body)
}

/// Writes queued events into the stream's body until the stream is replaced or dropped
/// (the double's sender goes) or the executor's connection closes (the body goes).
async fn pump(
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    body: mpsc::Sender<berth_http::Bytes>,
    pieces: usize,
    stream_id: u64,
    shared: Shared,
) {
    while let Some(first) = rx.recv().await {
        let pack = {
            let (m, _) = &*shared;
            m.lock().unwrap().pack.max(1)
        };
        // Several queued events in one chunk when asked to (`pack`).
        let mut batch = vec![first];
        while batch.len() < pack {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        let records: Vec<&[u8]> = batch.iter().map(|(r, _)| r.as_slice()).collect();
        let mut written = true;
        for chunk in record_chunks(&records, pieces) {
            if body.send(chunk).await.is_err() {
                written = false;
                break;
            }
        }
        let (m, cv) = &*shared;
        let mut st = m.lock().unwrap();
        if !written {
            // The agent notices the broken connection: no stream to this executor any
            // more (it still accepts its calls, as the agent does until it resubscribes).
            if st.stream.as_ref().map(|s| s.0) == Some(stream_id) {
                st.stream = None;
            }
            cv.notify_all();
            return;
        }
        if batch.len() > 1 {
            st.packed_writes += 1;
        }
        // An acknowledgement counts once it is handed to the connection, not when it
        // was queued.
        for (_, acked) in batch {
            if let Some(uuid) = acked {
                st.uuids.insert(uuid, true);
            }
        }
        cv.notify_all();
    }
}

pub fn subscribed_event(st: &State) -> Vec<u8> {
    let caps: Vec<Value> = st
        .framework_capabilities
        .iter()
        .map(|c| json!({"type": c}))
        .collect();
    let (framework_id, executor_id) = st
        .subscribed_as
        .clone()
        .unwrap_or_else(|| (st.view.framework_id.clone(), st.view.executor_id.clone()));
    let event = json!({
        "type": "SUBSCRIBED",
        "subscribed": {
            "executor_info": {
                "executor_id": {"value": executor_id},
                "framework_id": {"value": framework_id},
                "command": {"value": "berth-executor", "shell": true},
                "resources": [],
            },
            "framework_info": {
                "id": {"value": framework_id},
                "name": "marathon",
                "user": "root",
                "checkpoint": st.checkpoint,
                "failover_timeout": 604800.0,
                "capabilities": caps,
            },
            "agent_info": {"hostname": "double.local", "id": {"value": st.agent_id}, "port": 5051, "resources": []},
            "container_id": {"value": format!("cid-{executor_id}")},
        }
    });
    schema::assert_event(&event);
    serde_json::to_vec(&event).expect("json")
}

/// The agent serializes TaskInfo with stout's `JSON::protobuf`, which writes every unset
/// field that has an explicit `[default = ...]` in mesos.proto: fills those of the fields
/// the double knows (CommandInfo.shell, CommandInfo.URI.extract, Resource.role,
/// HealthCheck's timings and its command's shell), leaving set values alone.
pub fn with_agent_defaults(mut task: Value) -> Value {
    fn fill(v: &mut Value, key: &str, default: Value) {
        if let Some(o) = v.as_object_mut() {
            if o.get(key).is_none_or(Value::is_null) {
                o.insert(key.into(), default);
            }
        }
    }
    fn command(c: &mut Value) {
        fill(c, "shell", json!(true));
        if let Some(uris) = c.get_mut("uris").and_then(Value::as_array_mut) {
            for u in uris {
                fill(u, "extract", json!(true));
            }
        }
    }
    if let Some(c) = task.get_mut("command").filter(|c| c.is_object()) {
        command(c);
    }
    if let Some(rs) = task.get_mut("resources").and_then(Value::as_array_mut) {
        for r in rs {
            fill(r, "role", json!("*"));
        }
    }
    if let Some(h) = task.get_mut("health_check").filter(|h| h.is_object()) {
        fill(h, "delay_seconds", json!(15.0));
        fill(h, "interval_seconds", json!(10.0));
        fill(h, "timeout_seconds", json!(20.0));
        fill(h, "consecutive_failures", json!(3));
        fill(h, "grace_period_seconds", json!(10.0));
        if let Some(c) = h.get_mut("command").filter(|c| c.is_object()) {
            command(c);
        }
    }
    task
}

/// Sends LAUNCH (with the fields the agent fills in) and remembers the task.
pub fn launch_into(st: &mut State, task: Value) {
    let event = record_launch(st, task);
    send_event(st, event);
}

/// LAUNCH of a TaskInfo outside the protos (the executor's robustness to what no agent
/// sends): recorded like any launch, sent unchecked.
pub fn launch_unchecked_into(st: &mut State, task: Value) {
    let event = record_launch(st, task);
    send_unchecked(st, event);
}

fn record_launch(st: &mut State, task: Value) -> Value {
    let task = with_agent_defaults(task);
    let id = task["task_id"]["value"].as_str().unwrap_or("").to_string();
    st.tasks.insert(
        id,
        super::state::TaskView {
            info: task.clone(),
            states: Vec::new(),
            terminal: false,
        },
    );
    json!({"type": "LAUNCH", "launch": {"task": task}})
}

/// Sends an event built by the double (checked against the Mesos protos).
pub fn send_event(st: &mut State, event: Value) {
    send_marked(st, event, None);
}

/// Sends a test's event as it is (unknown types and fields on purpose).
pub fn send_unchecked(st: &mut State, event: Value) {
    send_record(st, event, None);
}

/// Sends an event; `acks`: the uuid it acknowledges, marked so once it is written.
fn send_marked(st: &mut State, event: Value, acks: Option<String>) {
    schema::assert_event(&event);
    send_record(st, event, acks);
}

fn send_record(st: &mut State, event: Value, acks: Option<String>) {
    match &st.stream {
        Some((_, tx)) => {
            let _ = tx.send((serde_json::to_vec(&event).expect("json"), acks));
        }
        None => st.violation(format!(
            "test error: no subscribed executor to send {} to",
            event["type"]
        )),
    }
}

/// Accepts one status (from UPDATE or a resubscription): record, dedup, "persist", ack.
fn update(status: &Value, shared: &Shared) {
    let (m, cv) = &**shared;
    let mut st = m.lock().unwrap();
    if let Some(a) = status.get("agent_id").filter(|a| !a.is_null()) {
        if a["value"].as_str() != Some(st.agent_id.as_str()) {
            // The real agent silently drops such updates (202, no ack); the executor
            // must never send one, so the double records it.
            st.violation(format!("UPDATE names a foreign agent_id {a}"));
            return;
        }
    }
    if let Some(state) = status["state"]
        .as_str()
        .filter(|s| MESOS_ONLY_STATES.contains(s))
    {
        st.violation(format!(
            "the executor sent {state}, a state only Mesos sends (see validate::MESOS_ONLY_STATES)"
        ));
    }
    let uuid = status["uuid"].as_str().unwrap_or("").to_string();
    let task_id = status["task_id"].clone();
    let new = st.record_update(status);
    let acked = st.uuids.get(&uuid).copied().unwrap_or(false);
    cv.notify_all();
    if new && st.drop_acks > 0 {
        st.drop_acks -= 1;
        return;
    }
    if !new && !acked && st.stream.is_none() {
        return;
    }
    let Some((stream_id, _)) = st.stream.clone() else {
        return;
    };
    let delay = st.ack_delay;
    drop(st);
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let (m, cv) = &*shared;
        let mut st = m.lock().unwrap();
        if st.stream.as_ref().map(|s| s.0) != Some(stream_id) {
            return; // The agent went away before it persisted.
        }
        send_marked(
            &mut st,
            json!({"type": "ACKNOWLEDGED", "acknowledged": {"task_id": task_id, "uuid": uuid}}),
            Some(uuid.clone()),
        );
        cv.notify_all();
    });
}
