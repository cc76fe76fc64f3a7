//! `berth-agent serve` collecting a real runc container started by berth-executor through
//! the Mesos agent double: the memory the task allocates shows in `GET /metrics` (within
//! 10 %), the exposition passes `promtool check metrics`, and the strict Open-Falcon
//! double receives valid items for the container's hostname tagged with its app and task;
//! `berth-agent ps` lists the task (table and JSON) and fails on an unreadable state dir.

use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::agent::{value, AgentServe};
use berth_tests::falcon::FalconDouble;
use berth_tests::mesos::harness::volumes::runc_exec;
use berth_tests::mesos::harness::{binary, Lab};
use berth_tests::mesos::AgentDouble;
use serde_json::json;

const T: Duration = Duration::from_secs(30);
const MIB: f64 = 1048576.0;

#[test]
fn memory_of_a_real_container_in_prometheus_and_falcon() {
    let lab = Lab::new("agent-metrics");
    let tid = lab.task_id("mem");
    // Waits for /tmp/go, then holds 50 MiB: dd reads them into its buffer and blocks
    // writing to a pipe nobody reads.
    let spec = lab.spec(
        &tid,
        Some("while [ ! -e /tmp/go ]; do sleep 0.1; done; dd if=/dev/zero bs=50M count=1 2>/dev/null | sleep 1000"),
    );
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    let mut task = lab.task(&tid);
    task["resources"][1] =
        json!({"name": "mem", "type": "SCALAR", "scalar": {"value": 160.0}, "role": "*"});
    d.launch_on_subscribe(task);
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);

    let falcon = FalconDouble::start();
    let agent = AgentServe::start(lab.dir.path(), &lab.state, "step_secs = 1\n", &falcon.url());
    let before = agent.wait_value("berth_memory_rss_bytes", &tid, T);
    let end = Instant::now() + T;
    let (_, err) = runc_exec(&lab, "touch /tmp/go");
    assert!(err.is_empty(), "{err}");
    let mut text = String::new();
    let mut after = before;
    while Instant::now() < end && after - before < 45.0 * MIB {
        std::thread::sleep(Duration::from_millis(100));
        text = agent.scrape();
        after = value(&text, "berth_memory_rss_bytes", &tid).unwrap_or(before);
    }
    let grown = (after - before) / MIB;
    eprintln!(
        "rss before {:.1} MiB, after {:.1} MiB: +{grown:.2} MiB",
        before / MIB,
        after / MIB
    );
    assert!(
        (grown - 50.0).abs() <= 5.0,
        "rss grew {grown:.2} MiB, not 50 MiB within 10 %"
    );
    // Tagged from the state dir.
    let labels = format!(
        "task_id=\"{tid}\",framework_id=\"{}\",executor_id=\"{}\",app_id=\"/e2e/app\"",
        spec.framework_id, spec.executor_id
    );
    assert!(text.contains(&labels), "{labels} not in\n{text}");
    assert!(
        value(&text, "berth_processes", &tid).unwrap_or(0.0) >= 3.0,
        "{text}"
    );
    assert!(
        value(&text, "berth_cpu_usage_seconds_total", &tid).unwrap_or(0.0) > 0.0,
        "{text}"
    );
    assert!(
        text.contains("berth_app_state{"),
        "init's status missing:\n{text}"
    );

    // `ps` shows the task, as a table and as JSON.
    let ps = |args: &[&str]| {
        Command::new(binary("berth-agent"))
            .arg("ps")
            .args(args)
            .output()
            .expect("berth-agent ps")
    };
    let state = lab.state.display().to_string();
    let out = ps(&["--state-dir", &state, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ps --json");
    let row = &rows[0];
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(row["task"], tid.as_str(), "{row}");
    assert_eq!(row["app"], "/e2e/app", "{row}");
    assert_eq!(row["state"], "TASK_RUNNING", "{row}");
    assert!(
        row["memory_bytes"].as_f64().unwrap_or(0.0) >= 50.0 * MIB,
        "{row}"
    );
    assert_eq!(
        row["memory_limit_bytes"].as_f64(),
        Some(160.0 * MIB),
        "{row}"
    );
    assert!(
        row["cpu_percent"]
            .as_f64()
            .is_some_and(|c| (0.0..=200.0).contains(&c)),
        "{row}"
    );
    assert!(row["uptime_secs"].as_u64().is_some(), "{row}");
    let out = ps(&["--state-dir", &state]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("TASK") && lines[0].contains("UPTIME"),
        "{table}"
    );
    assert!(
        lines[1].starts_with(&tid) && lines[1].contains("/e2e/app  TASK_RUNNING"),
        "{table}"
    );
    let missing = lab.dir.path().join("no-such-state");
    let out = ps(&["--state-dir", &missing.display().to_string()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the state dir") && err.contains("no-such-state"),
        "{err}"
    );

    // promtool accepts the exposition.
    let file = lab.dir.path().join("metrics.prom");
    std::fs::write(&file, &text).unwrap();
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool (Debian package prometheus)");
    assert!(
        check.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // Falcon got valid items for the container, memory included.
    let got = falcon.wait(T, |r| {
        r.items.iter().any(|i| {
            i["metric"] == "mem.memused.hot"
                && i["tags"] == format!("app=/e2e/app,task={tid}").as_str()
                && i["value"].as_f64().unwrap_or(0.0) >= 50.0 * MIB
        })
    });
    assert!(got, "{:?}", falcon.with(|r| r.items.clone()));
    let hostnames: Vec<String> = falcon.with(|r| {
        r.items
            .iter()
            .map(|i| i["endpoint"].as_str().unwrap_or("").to_string())
            .collect()
    });
    assert!(hostnames.iter().all(|h| h == "e2e-app"), "{hostnames:?}");
    assert!(
        falcon.with(|r| r.invalid.is_empty()),
        "{:?}",
        falcon.with(|r| r.invalid.clone())
    );
    assert!(falcon.with(|r| r.items.iter().any(|i| i["metric"] == "cpu.busy")));

    d.kill(&tid, Some(Duration::from_secs(1)));
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    lab.assert_clean();
}
