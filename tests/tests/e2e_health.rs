//! COMMAND health checks end to end (root, runc, berth-init, the double): a check that
//! times out counts as a failure and is killed with its whole process tree inside the
//! container, while the task keeps running until `consecutive_failures` kill it.

use std::time::Duration;

use berth_tests::mesos::harness::Lab;
use berth_tests::mesos::AgentDouble;
use serde_json::json;

const T: Duration = Duration::from_secs(30);

/// Host pids of the processes in the pid namespace of `init_pid` whose command line is
/// `argv` (NUL-separated in /proc).
fn in_pidns(init_pid: i64, argv: &[&str]) -> Vec<u32> {
    let ns = std::fs::read_link(format!("/proc/{init_pid}/ns/pid")).expect("container pidns");
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read_link(e.path().join("ns/pid")).ok().as_ref() != Some(&ns) {
            continue;
        }
        if std::fs::read(e.path().join("cmdline")).ok().as_deref() == Some(&want[..]) {
            found.push(pid);
        }
    }
    found
}

fn container_pid(lab: &Lab, id: &str) -> i64 {
    let out = std::process::Command::new("runc")
        .arg("--root")
        .arg(&lab.runc_root)
        .args(["state", id])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["pid"].as_i64().unwrap()
}

#[test]
fn a_timed_out_command_check_is_killed_inside_the_container() {
    let lab = Lab::new("hc-timeout");
    let tid = lab.task_id("app");
    let spec = lab.spec(&tid, Some("exec sleep 2000"));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    let mut task = lab.task(&tid);
    // The check forks too: a background child of the shell, and one it orphans.
    task["health_check"] = json!({"type": "COMMAND",
        "command": {"value": "(sleep 1000 &) ; sleep 1000 & exec sleep 1000"},
        "delay_seconds": 0.0, "interval_seconds": 3.0, "timeout_seconds": 1.0,
        "grace_period_seconds": 0.0, "consecutive_failures": 2});
    d.launch_on_subscribe(task);
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec), "{}", exec.log());
    d.wait_state(&tid, "TASK_RUNNING", T);
    let cid = lab.runc_containers()[0].clone();
    let init = container_pid(&lab, &cid);
    // While a check runs, its processes are in the container.
    let running = d.wait(Duration::from_secs(10), |_| {
        in_pidns(init, &["sleep", "1000"]).len() >= 3
    });
    assert!(running, "the check never ran: {}", exec.log());
    // The first timeout: a counted failure (healthy:false) ...
    let failed = d.wait(T, |st| {
        st.updates
            .iter()
            .any(|u| u["healthy"] == false && u["state"] == "TASK_RUNNING")
    });
    assert!(failed, "{:#?}\n{}", d.state().updates, exec.log());
    // ... and nothing of that check is left (the next one starts 3 s after the last).
    let left = in_pidns(init, &["sleep", "1000"]);
    assert!(
        left.is_empty(),
        "the timed-out check left {left:?} in the container"
    );
    // It failed by timing out (the executor logs why).
    assert!(exec.log().contains("timed out after 1s"), "{}", exec.log());
    // The task itself keeps running meanwhile.
    assert_eq!(in_pidns(init, &["sleep", "2000"]).len(), 1, "the task died");
    // Two consecutive failures (consecutive_failures) kill the task, as Mesos does.
    d.wait_state(&tid, "TASK_KILLED", T);
    let fails = d
        .state()
        .updates
        .iter()
        .filter(|u| u["healthy"] == false && u["state"] == "TASK_RUNNING")
        .count();
    assert!(fails >= 2, "{:#?}", d.state().updates);
    // The terminal update says healthy:false and why, without a reason (as Mesos'
    // command executor).
    let killed = d
        .state()
        .updates
        .iter()
        .find(|u| u["state"] == "TASK_KILLED")
        .cloned()
        .unwrap();
    assert_eq!(killed["healthy"], false, "{killed}");
    assert!(killed["reason"].is_null(), "{killed}");
    assert!(
        killed["message"]
            .as_str()
            .unwrap_or("")
            .contains("failing its health checks"),
        "{killed}"
    );
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}
