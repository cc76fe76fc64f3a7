//! `berth-init ctl` against a running init: status, stop, start, restart, errors; the raw
//! one-line protocol; log files.

mod sup_common;

use std::process::Command;
use std::time::Duration;

use sup_common::{Pid1, BIN};

fn ctl(p: &Pid1, args: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(BIN)
        .arg("ctl")
        .arg("--socket")
        .arg(&p.socket)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().count(),
        1,
        "one JSON line: {text:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap(),
        serde_json::from_str(text.trim()).unwrap(),
    )
}

#[test]
fn ctl_acts_on_one_service() {
    let spec = "require: centos:6.3
services:
  a:
    command: /bin/sleep 1000
  b:
    command: [/bin/sh, -c, 'echo hello from b; echo oops >&2; exec sleep 1000']
    log: {file: '@DIR@/logs/b.log', max_size: 1M, keep: 2}
";
    let p = Pid1::start(spec, &[]);
    p.wait_status("running", Duration::from_secs(10), |s| {
        s["state"] == "running"
    });
    let (code, st) = ctl(&p, &["status"]);
    assert_eq!(code, 0);
    assert_eq!(st["ok"], true);
    assert_eq!(st["require"], "centos:6.3");
    assert_eq!(st["network"], serde_json::Value::Null);
    for s in st["services"].as_array().unwrap() {
        for key in ["name", "state", "pid", "restarts", "healthy"] {
            assert!(s.get(key).is_some(), "{key} missing in {s}");
        }
    }
    let pid_a = st["services"][0]["pid"].as_i64().unwrap();

    let (code, st) = ctl(&p, &["stop", "a"]);
    assert_eq!(code, 0, "{st}");
    p.wait_status("a stopped", Duration::from_secs(10), |s| {
        s["services"][0]["state"] == "stopped"
    });
    assert_eq!(p.service("a")["pid"], serde_json::Value::Null);
    let (code, st) = ctl(&p, &["stop", "a"]);
    assert_eq!((code, st["ok"].clone()), (1, serde_json::json!(false)));
    assert!(st["error"].as_str().unwrap().contains("already stopped"));

    let (code, _) = ctl(&p, &["start", "a"]);
    assert_eq!(code, 0);
    let st = p.wait_status("a running", Duration::from_secs(10), |s| {
        s["services"][0]["state"] == "running"
    });
    assert_ne!(st["services"][0]["pid"].as_i64().unwrap(), pid_a);

    let (code, _) = ctl(&p, &["restart", "a"]);
    assert_eq!(code, 0);
    p.wait_status("a restarted", Duration::from_secs(10), |s| {
        s["services"][0]["state"] == "running" && s["services"][0]["restarts"] == 1
    });

    let (code, st) = ctl(&p, &["restart", "nope"]);
    assert_eq!(code, 1);
    assert!(
        st["error"]
            .as_str()
            .unwrap()
            .contains("no service \"nope\"; services are: a, b"),
        "{st}"
    );

    let bad = p.request(r#"{"cmd":"explode"}"#);
    assert_eq!(bad["ok"], false);
    assert!(bad["error"].as_str().unwrap().contains("bad request"));

    // b's stdout and stderr went to its log file.
    sup_common::wait_until("b's log", Duration::from_secs(5), || {
        std::fs::read_to_string(p.path("logs/b.log")).unwrap_or_default() == "hello from b\noops\n"
    });
}

#[test]
fn ctl_without_a_server_fails_clearly() {
    let out = Command::new(BIN)
        .args(["ctl", "--socket", "/nonexistent/berth.sock", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot talk to berth-init at /nonexistent/berth.sock"));
}
