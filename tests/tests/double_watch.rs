//! The double watches the executor process it launched, as the agent does: an executor
//! that never subscribes is killed at the registration timeout (a violation) and a late
//! SUBSCRIBE is refused; one still running after SHUTDOWN's grace period is killed (a
//! violation); one that dies has its non-terminal tasks failed by the agent.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use berth_tests::mesos::{AgentDouble, ExecutorSpec};

/// An "executor" that is a shell script (never subscribes unless told to).
fn script_spec(dir: &std::path::Path, body: &str) -> ExecutorSpec {
    let bin = dir.join("fake-executor");
    std::fs::write(&bin, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut spec = ExecutorSpec::new(&bin, "fw-watch", "w.1", "/w", &dir.join("sandbox"));
    spec.shutdown_grace = "1secs".into();
    spec
}

fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
    }
}

#[test]
fn an_executor_that_never_subscribes_is_killed_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let spec = script_spec(dir.path(), "exec sleep 1000");
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    let t0 = Instant::now();
    let exec = d.spawn_executor(&spec, Duration::from_millis(500));
    let pid = exec.pid();
    // No enforce_registration call: the watch is always on.
    let end = Instant::now() + Duration::from_secs(5);
    while !gone(pid) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone(pid), "the executor outlived its registration timeout");
    assert!(t0.elapsed() >= Duration::from_millis(500));
    assert!(
        d.violations()
            .iter()
            .any(|v| v.contains("registration timeout")),
        "{:?}",
        d.violations()
    );
}

#[test]
fn a_late_subscribe_is_a_violation_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = script_spec(dir.path(), "exec sleep 1000");
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    let _exec = d.spawn_executor(&spec, Duration::from_millis(200));
    std::thread::sleep(Duration::from_millis(100));
    // The deadline passes; the watcher's tick may not have come yet: a SUBSCRIBE now
    // is checked against the deadline itself.
    d.state().register_by = Some(Instant::now());
    let body = serde_json::json!({"type":"SUBSCRIBE","executor_id":{"value":spec.executor_id},
        "framework_id":{"value":spec.framework_id},
        "subscribe":{"unacknowledged_tasks":[],"unacknowledged_updates":[]}})
    .to_string();
    let status = post_status(&d.endpoint, &body);
    assert_eq!(status, 400);
    let v = d.violations();
    assert!(
        v.iter().any(|v| v.contains("registration timeout")),
        "{v:?}"
    );
    assert!(d.state().subscriptions.is_empty());
}

fn post_status(endpoint: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(endpoint).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "POST /api/v1/executor HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}
