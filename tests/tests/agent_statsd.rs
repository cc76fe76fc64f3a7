//! The app's statsd metrics through the agent: a real container (berth-executor, runc,
//! berth-init with a `statsd:` section) receives one step's worth of counters and timers
//! on its loopback; `berth-agent serve` exports init's aggregates in Prometheus (checked
//! by promtool) and pushes them to the strict Open-Falcon double, tagged with the task.

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::agent::AgentServe;
use berth_tests::falcon::FalconDouble;
use berth_tests::mesos::harness::Lab;
use berth_tests::mesos::AgentDouble;

const T: Duration = Duration::from_secs(30);

/// A sample's value: the line of `name` with every label in `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn init_s_statsd_aggregates_reach_prometheus_and_falcon() {
    let lab = Lab::new("agent-statsd");
    let img = lab.images.join("busybox");
    std::fs::create_dir_all(img.join("etc/berth")).unwrap();
    std::fs::write(
        img.join("etc/berth/app.yaml"),
        "services:\n  idle: {command: [sleep, \"3600\"]}\nstatsd: {port: 8125, step: 2s}\n",
    )
    .unwrap();
    let tid = lab.task_id("app");
    let spec = lab.spec(&tid, None);
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    let st = Command::new("runc")
        .arg("--root")
        .arg(&lab.runc_root)
        .args(["state", &format!("berth-{tid}")])
        .output()
        .expect("runc state");
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).expect("runc state json");
    let pid = st["pid"].as_i64().expect("pid");
    let sock =
        berth_tests::lab::in_netns(std::path::Path::new(&format!("/proc/{pid}/ns/net")), || {
            UdpSocket::bind("127.0.0.1:0").unwrap()
        });

    let falcon = FalconDouble::start();
    let agent = AgentServe::start(lab.dir.path(), &lab.state, "step_secs = 1\n", &falcon.url());
    let task = format!("task_id=\"{tid}\"");
    let steps = |text: &str| sample(text, "berth_app_statsd_steps_total", &[&task]);
    // Right after a step boundary, one step's worth: 100 requests, timers 1..=100 ms.
    let end = Instant::now() + T;
    let first = loop {
        if let Some(s) = steps(&agent.scrape()) {
            break s;
        }
        assert!(Instant::now() < end, "no statsd steps: {}", agent.scrape());
        std::thread::sleep(Duration::from_millis(50));
    };
    while steps(&agent.scrape()) == Some(first) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..100 {
        sock.send_to(b"web.req:1|c|#route:/api", "127.0.0.1:8125")
            .unwrap();
    }
    let timers: String = (1..=100).map(|i| format!("web.delay:{i}|ms\n")).collect();
    sock.send_to(timers.as_bytes(), "127.0.0.1:8125").unwrap();
    sock.send_to(b"not a line", "127.0.0.1:8125").unwrap();
    let req = [task.as_str(), "name=\"web.req\"", "tags=\"route:/api\""];
    let text = loop {
        let text = agent.scrape();
        if sample(&text, "berth_app_statsd_step_events", &req).is_some() {
            break text;
        }
        assert!(Instant::now() < end, "no web.req:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        sample(&text, "berth_app_statsd_step_events", &req),
        Some(100.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "berth_app_statsd_rate_per_second", &req),
        Some(50.0),
        "{text}"
    );
    let delay = [task.as_str(), "name=\"web.delay\""];
    let stat = |s: &str| {
        let l = format!("stat=\"{s}\"");
        sample(
            &text,
            "berth_app_statsd_timer_seconds",
            &[delay[0], delay[1], &l],
        )
    };
    assert_eq!(
        (stat("p50"), stat("p99"), stat("max")),
        (Some(0.05), Some(0.099), Some(0.1)),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "berth_app_statsd_lines_total",
            &[&task, "result=\"malformed\""]
        ),
        Some(1.0),
        "{text}"
    );
    // promtool accepts it.
    let file = lab.dir.path().join("metrics.prom");
    std::fs::write(&file, &text).unwrap();
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool (Debian package prometheus)");
    assert!(
        check.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // Falcon: the app's names, its tags after the task's, valid for transfer.
    let tags = format!("app=/e2e/app,task={tid},route=/api");
    let got = falcon.wait(T, |r| {
        r.items.iter().any(|i| {
            i["metric"] == "web.req.rate" && i["tags"] == tags.as_str() && i["value"] == 50.0
        }) && r
            .items
            .iter()
            .any(|i| i["metric"] == "web.delay.p99" && i["value"] == 99.0)
    });
    assert!(
        got,
        "{:?}",
        falcon.with(|r| r
            .items
            .iter()
            .filter(|i| i["metric"].as_str().is_some_and(|m| m.starts_with("web.")))
            .cloned()
            .collect::<Vec<_>>())
    );
    assert!(
        falcon.with(|r| r.invalid.is_empty()),
        "{:?}",
        falcon.with(|r| r.invalid.clone())
    );

    d.kill(&tid, Some(Duration::from_secs(1)));
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    lab.assert_clean();
}
