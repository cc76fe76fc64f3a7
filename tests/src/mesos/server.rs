//! The double's server loop: accepts connections while "up", checks each request
//! (validate.rs), streams events to the subscribed executor and acknowledges updates.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use serde_json::{json, Value};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::http::{read_request, respond, start_stream, write_record};
use super::state::{Answer, State};
use super::validate::check;

pub type Shared = Arc<(Mutex<State>, Condvar)>;

/// Commands from the test thread to the server's runtime.
#[derive(Debug)]
pub enum Command {
    GoAway,
    ComeBack,
}

pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    mut cmds: mpsc::UnboundedReceiver<Command>,
) {
    let addr = listener.local_addr().expect("local addr");
    let mut listener = Some(listener);
    let mut conns: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    loop {
        let accept = async {
            match &listener {
                Some(l) => l.accept().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            c = accept => {
                if let Some((sock, _)) = c {
                    conns.retain(|h| !h.is_finished());
                    conns.push(tokio::spawn(connection(sock, shared.clone())));
                }
            }
            cmd = cmds.recv() => match cmd {
                None => return,
                Some(Command::GoAway) => {
                    listener = None;
                    for h in conns.drain(..) { h.abort(); }
                    let (m, cv) = &*shared;
                    let mut st = m.lock().unwrap();
                    st.up = false;
                    st.stream = None;
                    st.view.subscribed = false;
                    cv.notify_all();
                }
                Some(Command::ComeBack) => {
                    // The port was ours a moment ago; retry briefly in case it lingers.
                    for _ in 0..50 {
                        match TcpListener::bind(addr).await {
                            Ok(l) => { listener = Some(l); break; }
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
}

fn answer(shared: &Shared, kind: &str, status: u16, message: &str) {
    let (m, cv) = &**shared;
    let mut st = m.lock().unwrap();
    st.answers.push(Answer {
        kind: kind.into(),
        status,
        message: message.into(),
    });
    if (400..500).contains(&status) || status == 501 {
        st.violation(format!("{kind} answered {status}: {message}"));
    }
    cv.notify_all();
}

async fn connection(sock: TcpStream, shared: Shared) {
    let mut reader = BufReader::new(sock);
    loop {
        let req = match read_request(&mut reader).await {
            Ok(Some(r)) => r,
            _ => return,
        };
        let view = {
            let (m, _) = &*shared;
            let mut st = m.lock().unwrap();
            if st.recovering_until.is_some_and(|t| Instant::now() >= t) {
                st.recovering_until = None;
            }
            st.reregistration_expired(Instant::now());
            if st.view.forgot_framework && req.body.windows(9).any(|w| w == b"SUBSCRIBE") {
                st.violation(
                    "an executor of a non-checkpointing framework tried to resubscribe after an agent restart (the agent does not recover it)",
                );
            }
            let mut v = st.view.clone();
            v.recovering = st.recovering_until.is_some();
            v
        };
        let sock = reader.get_mut();
        if req.path != "/api/v1/executor" {
            answer(&shared, "?", 404, &req.path);
            let _ = respond(sock, 404, "Not Found").await;
            return;
        }
        let call = match check(&req, &view) {
            Ok(c) => c,
            Err(r) => {
                let kind = serde_json::from_slice::<Value>(&req.body)
                    .ok()
                    .and_then(|v| v["type"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "?".into());
                answer(&shared, &kind, r.status, &r.message);
                let _ = respond(sock, r.status, &r.message).await;
                continue;
            }
        };
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
            "SUBSCRIBE" => {
                let sock = reader.into_inner();
                subscribe(sock, call.call, shared.clone()).await;
                return;
            }
            "UPDATE" => {
                answer(&shared, "UPDATE", 202, "");
                update(&call.call["update"]["status"], &shared);
                let _ = respond(sock, 202, "").await;
            }
            kind => {
                answer(&shared, kind, 202, "");
                {
                    let (m, cv) = &*shared;
                    let mut st = m.lock().unwrap();
                    if kind == "HEARTBEAT" {
                        st.heartbeats += 1;
                    } else {
                        st.messages.push(call.call["message"].clone());
                    }
                    cv.notify_all();
                }
                let _ = respond(sock, 202, "").await;
            }
        }
    }
}

/// The stream: SUBSCRIBED first, then whatever the test sends.
async fn subscribe(mut sock: TcpStream, call: Value, shared: Shared) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (pieces, first, resend) = {
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
        st.answers.push(Answer {
            kind: "SUBSCRIBE".into(),
            status: 200,
            message: String::new(),
        });
        // Updates resent in SUBSCRIBE are processed like UPDATE calls.
        let resend: Vec<Value> = call["subscribe"]["unacknowledged_updates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|u| u["status"].clone())
            .collect();
        let _ = tx.send(subscribed_event(&st));
        if first {
            for task in st.launch_on_subscribe.clone() {
                launch_into(&mut st, task);
            }
        }
        cv.notify_all();
        (st.pieces, first, resend)
    };
    let _ = first;
    for status in resend {
        update(&status, &shared);
    }
    if start_stream(&mut sock).await.is_err() {
        return;
    }
    while let Some(record) = rx.recv().await {
        if write_record(&mut sock, &record, pieces).await.is_err() {
            break;
        }
    }
}

pub fn subscribed_event(st: &State) -> Vec<u8> {
    let caps: Vec<Value> = st
        .framework_capabilities
        .iter()
        .map(|c| json!({"type": c}))
        .collect();
    serde_json::to_vec(&json!({
        "type": "SUBSCRIBED",
        "subscribed": {
            "executor_info": {
                "executor_id": {"value": st.view.executor_id},
                "framework_id": {"value": st.view.framework_id},
                "command": {"value": "berth-executor", "shell": true},
                "resources": [],
            },
            "framework_info": {
                "id": {"value": st.view.framework_id},
                "name": "marathon",
                "user": "root",
                "checkpoint": true,
                "failover_timeout": 604800.0,
                "capabilities": caps,
            },
            "agent_info": {"hostname": "double.local", "id": {"value": st.agent_id}, "port": 5051, "resources": []},
            "container_id": {"value": format!("cid-{}", st.view.executor_id)},
        }
    }))
    .expect("json")
}

/// Sends LAUNCH and remembers the task.
pub fn launch_into(st: &mut State, task: Value) {
    let id = task["task_id"]["value"].as_str().unwrap_or("").to_string();
    st.tasks.insert(
        id,
        super::state::TaskView {
            info: task.clone(),
            states: Vec::new(),
            terminal: false,
        },
    );
    send_event(st, json!({"type": "LAUNCH", "launch": {"task": task}}));
}

pub fn send_event(st: &mut State, event: Value) {
    match &st.stream {
        Some((_, tx)) => {
            let _ = tx.send(serde_json::to_vec(&event).expect("json"));
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
        st.uuids.insert(uuid.clone(), true);
        send_event(
            &mut st,
            json!({"type": "ACKNOWLEDGED", "acknowledged": {"task_id": task_id, "uuid": uuid}}),
        );
        cv.notify_all();
    });
}
