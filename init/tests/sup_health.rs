//! Health transitions: grace period, healthy, consecutive failures, restart on unhealthy;
//! TCP checks; the `health_port` endpoint (200 / 503).

mod sup_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sup_common::{lines, Pid1};

#[test]
fn unhealthy_service_is_killed_and_restarted() {
    // Healthy while the file `ok` exists.
    let spec = "services:
  app:
    command: [/bin/sh, -c, 'echo run >> @DIR@/runs; exec sleep 1000']
    backoff: {initial: 100ms}
    health:
      cmd: [/bin/sh, -c, 'echo check >> @DIR@/checks; test -f @DIR@/ok']
      delay: 0s
      interval: 200ms
      timeout: 1s
      grace_period: 60s
      consecutive_failures: 3
";
    let p = Pid1::start(spec, &[]);
    // Failing inside the grace period, before any success: ignored.
    sup_common::wait_until("a few checks", Duration::from_secs(10), || {
        lines(&p.path("checks")).len() >= 5
    });
    let s = p.service("app");
    assert_eq!(s["state"], "running");
    assert_eq!(s["healthy"], serde_json::Value::Null);
    assert_eq!(s["restarts"], 0);
    assert_eq!(p.status()["state"], "starting", "not running until healthy");

    std::fs::write(p.path("ok"), "").unwrap();
    p.wait_status("healthy", Duration::from_secs(5), |s| {
        s["services"][0]["healthy"] == true
    });
    assert_eq!(p.status()["state"], "running");
    // Each finished check's latency is shown (a shell that tests a file: well under 1 s).
    let us = p.service("app")["check_latency_us"]
        .as_u64()
        .expect("check_latency_us");
    assert!(us > 0 && us < 1_000_000, "{us}");

    // After the first success, failures count: 3 in a row kill it; it restarts.
    std::fs::remove_file(p.path("ok")).unwrap();
    p.wait_status("unhealthy", Duration::from_secs(5), |s| {
        s["services"][0]["healthy"] == false
    });
    let st = p.wait_status("restarted", Duration::from_secs(10), |s| {
        s["services"][0]["restarts"] == 1
    });
    // restarts counts the spawn; the new process writes its line a moment later.
    sup_common::wait_until("the restarted run's line", Duration::from_secs(5), || {
        lines(&p.path("runs")).len() >= 2
    });
    assert_eq!(lines(&p.path("runs")).len(), 2, "{st}");
    let log = p.log();
    assert!(log.contains("unhealthy: killing the service"), "{log}");
    assert!(log.contains("health check failed (grace period)"), "{log}");
}

fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tcp_check_and_health_endpoint() {
    let (app_port, health_port) = (free_port(), free_port());
    // The app listens only once the file `listen` exists (socat is the app).
    let spec = format!(
        "health_port: {health_port}
service:
  - port: {app_port}
services:
  app:
    command: [/bin/sh, -c, 'while ! test -f @DIR@/listen; do sleep 0.05; done; exec socat TCP-LISTEN:{app_port},bind=127.0.0.1,reuseaddr,fork SYSTEM:true']
    health: {{tcp: {{}}, delay: 0s, interval: 200ms, timeout: 1s}}
"
    );
    let p = Pid1::start(&spec, &[]);
    p.wait_status("running", Duration::from_secs(10), |s| {
        s["services"][0]["state"] == "running"
    });
    let (code, body) = get(health_port, "/health");
    assert_eq!(code, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["services"][0]["name"], "app");
    std::fs::write(p.path("listen"), "").unwrap();
    p.wait_status("healthy", Duration::from_secs(10), |s| {
        s["services"][0]["healthy"] == true
    });
    sup_common::wait_until("endpoint says 200", Duration::from_secs(5), || {
        get(health_port, "/health").0 == 200
    });
    assert_eq!(get(health_port, "/other").0, 404);
}
