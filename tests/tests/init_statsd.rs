//! `statsd:` end to end: berth-init as PID 1 of its own namespaces listens on the
//! container's loopback, aggregates what the app sends each step and shows it on the
//! status socket; malformed lines are counted, never fatal.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use berth_tests::login::Container;

/// A UDP socket made inside `pid`'s netns (the setns happens on a short-lived thread; the
/// socket stays in that netns).
fn socket_in(pid: i32) -> UdpSocket {
    berth_tests::lab::in_netns(std::path::Path::new(&format!("/proc/{pid}/ns/net")), || {
        UdpSocket::bind("127.0.0.1:0").unwrap()
    })
}

fn wait_step(c: &Container, steps: u64) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        if c.dir.path().join("run/init.sock").exists() {
            let st = c.status();
            if st["statsd"]["steps"].as_u64() >= Some(steps) {
                return st;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no step {steps}:\n{}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric<'a>(st: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    st["statsd"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no metric {name} in {st}"))
}

#[test]
fn aggregates_each_step_and_survives_garbage() {
    let c = Container::start(
        "services:\n  idle: {command: [sleep, \"3600\"]}\nstatsd:\n  port: 8125\n  step: 2s\n  max_keys: 5\n",
    );
    // Send right after a step boundary (steps are 2 s; sending takes milliseconds), so all
    // of it lands in one step.
    let first = wait_step(&c, 1)["statsd"]["steps"].as_u64().unwrap();
    let steps0 = wait_step(&c, first + 1)["statsd"]["steps"]
        .as_u64()
        .unwrap();
    let s = socket_in(c.pid1);
    // One step's worth: 200 requests (half of them sampled at 0.5), timers 1..=100 ms
    // in one multi-line packet, a gauge, tags, and garbage of every kind.
    for _ in 0..100 {
        s.send_to(b"web.req:1|c|#route:/api", "127.0.0.1:8125")
            .unwrap();
    }
    for _ in 0..50 {
        s.send_to(b"web.req:1|c|@0.5|#route:/api", "127.0.0.1:8125")
            .unwrap();
    }
    let timers: String = (1..=100).map(|i| format!("web.delay:{i}|ms\n")).collect();
    s.send_to(timers.as_bytes(), "127.0.0.1:8125").unwrap();
    s.send_to(b"web.queue:7|g\nweb.queue:+3|g", "127.0.0.1:8125")
        .unwrap();
    for junk in [
        &b"no colon"[..],
        b"x:1|zz",
        b"x:y|c",
        b"\xff\xfe:1|c",
        b"a b:1|c",
        &[0u8; 3000][..],
    ] {
        s.send_to(junk, "127.0.0.1:8125").unwrap();
    }
    // More distinct keys than max_keys (5): the extra ones are dropped and counted.
    for i in 0..10 {
        s.send_to(format!("k{i}:1|c").as_bytes(), "127.0.0.1:8125")
            .unwrap();
    }
    // The step that holds all of it (UDP on loopback: nothing is lost at this rate).
    let t0 = Instant::now();
    let st = loop {
        let st = wait_step(&c, steps0 + 1);
        if st["statsd"]["received"].as_u64() >= Some(253) {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{st}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let req = metric(&st, "web.req");
    assert_eq!(req["type"], "counter");
    assert_eq!(req["count"], 200.0, "{req}");
    assert_eq!(req["rate"], 100.0, "{req}");
    assert_eq!(req["tags"], serde_json::json!(["route:/api"]));
    let d = metric(&st, "web.delay");
    assert_eq!(
        (
            d["count"].as_f64(),
            d["p50"].as_f64(),
            d["p99"].as_f64(),
            d["max"].as_f64()
        ),
        (Some(100.0), Some(50.0), Some(99.0), Some(100.0)),
        "{d}"
    );
    assert_eq!(metric(&st, "web.queue")["value"], 10.0);
    assert_eq!(st["statsd"]["malformed"], 6, "{st}");
    assert_eq!(st["statsd"]["dropped"], 8, "{st}");
    // init and the app are still fine.
    assert_eq!(st["state"], "running", "{st}");
    // The next step starts over, the gauge stays.
    let next = wait_step(&c, st["statsd"]["steps"].as_u64().unwrap() + 1);
    assert!(
        next["statsd"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["name"] != "web.req"),
        "{next}"
    );
    assert_eq!(metric(&next, "web.queue")["value"], 10.0);
}

#[test]
fn a_taken_port_fails_start_up_clearly() {
    let c = Container::start(
        "services:\n  idle: {command: [sleep, \"3600\"]}\nstatsd: {port: 8125, step: 1s}\n",
    );
    wait_step(&c, 1);
    // A second init in the same netns cannot bind it: exit with the port named.
    let mut second = std::process::Command::new("nsenter")
        .args(["-t", &c.pid1.to_string(), "-n"])
        .arg(berth_tests::mesos::harness::binary("berth-init"))
        .arg("--spec")
        .arg(c.dir.path().join("app.yaml"))
        .arg("--socket")
        .arg(c.dir.path().join("second.sock"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while second.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = second.kill();
            panic!("a second init bound the taken port and kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = second.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("statsd: UDP 127.0.0.1:8125"), "{err}");
}
