//! `berth-executor run --task task.json`: one task without Mesos, updates as JSON lines,
//! SIGTERM kills the task and the command ends after TASK_KILLED with nothing left.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::mesos::harness::Lab;

#[test]
fn run_prints_updates_and_stops_on_sigterm() {
    let lab = Lab::new("standalone");
    let tid = lab.task_id("demo");
    let mut task = lab.task(&tid);
    task.as_object_mut().unwrap().remove("executor");
    task["command"] = serde_json::json!({"value": "echo hi from $MESOS_TASK_ID; exec sleep 1000"});
    let task_file = lab.dir.path().join("task.json");
    std::fs::write(&task_file, serde_json::to_vec(&task).unwrap()).unwrap();
    let sandbox = lab.dir.path().join("sb");
    std::fs::create_dir_all(&sandbox).unwrap();
    let mut child = Command::new(&lab.executor)
        .args(["run", "--task"])
        .arg(&task_file)
        .arg("--sandbox")
        .arg(&sandbox)
        .envs(lab.executor_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut states = Vec::new();
    let t0 = Instant::now();
    while let Some(Ok(line)) = lines.next() {
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(v["task_id"], tid.as_str());
        let state = v["state"].as_str().unwrap().to_string();
        if state == "TASK_RUNNING" {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        states.push(state);
        assert!(t0.elapsed() < Duration::from_secs(30), "{states:?}");
    }
    let status = child.wait().unwrap();
    assert_eq!(states, ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"]);
    assert!(status.success());
    let out = std::fs::read_to_string(sandbox.join("stdout")).unwrap_or_default();
    assert!(out.contains(&format!("hi from {tid}")), "{out}");
    lab.assert_clean();
}
