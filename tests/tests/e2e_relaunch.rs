//! A second launch over a leftover container of the same id (root, runc, the real
//! executor, standalone `run --task`): the first executor is SIGKILLed while its task
//! runs, the same task is run again. The second launch fails (TASK_FAILED,
//! REASON_CONTAINER_LAUNCH_FAILED, naming the leftover state dir) without touching the
//! first container: it keeps running, its checkpoint and mounts unchanged.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_tests::mesos::harness::{assert_root, Lab};
use serde_json::Value;

/// The standalone executor, killed on drop.
struct Exec(Child);

impl Drop for Exec {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(lab: &Lab, task: &Path, sandbox: &Path) -> Exec {
    Exec(
        Command::new(&lab.executor)
            .args(["run", "--task"])
            .arg(task)
            .arg("--sandbox")
            .arg(sandbox)
            .envs(lab.executor_env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Reads updates until `until` holds for one (or the output ends); kills the executor
/// after 60 s so a hang fails the test instead of blocking it.
fn updates(exec: &mut Exec, until: impl Fn(&Value) -> bool) -> Vec<Value> {
    let pid = exec.0.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            // SAFETY: kill(2) on our own child (at worst already exited, not reaped).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut seen = Vec::new();
    let out = exec.0.stdout.as_mut().unwrap();
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let done = until(&v);
        seen.push(v);
        if done {
            break;
        }
    }
    let _ = tx.send(());
    watchdog.join().unwrap();
    seen
}

#[test]
fn a_relaunch_over_a_leftover_container_fails_and_leaves_it_untouched() {
    assert_root();
    let lab = Lab::new("relaunch");
    let tid = lab.task_id("twice");
    let mut task = lab.task(&tid);
    task.as_object_mut().unwrap().remove("executor");
    task["command"] = serde_json::json!({"value": "exec sleep 1000"});
    let task_file = lab.dir.path().join("task.json");
    std::fs::write(&task_file, serde_json::to_vec(&task).unwrap()).unwrap();
    let sandbox = lab.dir.path().join("sb");
    std::fs::create_dir_all(&sandbox).unwrap();

    let mut first = start(&lab, &task_file, &sandbox);
    let seen = updates(&mut first, |v| v["state"] == "TASK_RUNNING");
    assert_eq!(
        seen.last().map(|v| v["state"].clone()),
        Some("TASK_RUNNING".into()),
        "{seen:?}"
    );
    // SIGKILL: the executor leaves its running container behind.
    drop(first);
    let containers = lab.runc_containers();
    assert_eq!(containers.len(), 1, "{containers:?}");
    let cid = containers[0].clone();
    let state_dir = lab.state.join(&cid);
    let checkpoint = std::fs::read(state_dir.join("checkpoint.json")).unwrap();
    let mounts = lab.mounts();
    assert!(
        !mounts.is_empty(),
        "the first container's rootfs is mounted"
    );

    let mut second = start(&lab, &task_file, &sandbox);
    let seen = updates(&mut second, |_| false);
    let status = second.0.wait().unwrap();
    let states: Vec<_> = seen.iter().map(|v| v["state"].clone()).collect();
    assert_eq!(states, ["TASK_STARTING", "TASK_FAILED"], "{seen:?}");
    let failed = &seen[1];
    assert_eq!(
        failed["reason"], "REASON_CONTAINER_LAUNCH_FAILED",
        "{failed}"
    );
    let msg = failed["message"].as_str().unwrap_or("");
    assert!(
        msg.contains(&state_dir.display().to_string()),
        "the leftover is not named: {failed}"
    );
    assert!(!status.success(), "{status:?}");

    // The first container is untouched.
    let st = Command::new("runc")
        .arg("--root")
        .arg(&lab.runc_root)
        .args(["state", &cid])
        .output()
        .unwrap();
    let st: Value = serde_json::from_slice(&st.stdout).unwrap_or_default();
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(
        std::fs::read(state_dir.join("checkpoint.json")).unwrap(),
        checkpoint
    );
    assert_eq!(lab.mounts(), mounts);

    lab.tear_down_leftovers();
    lab.assert_clean();
}
