//! The executor's authentication token (MESOS_EXECUTOR_AUTHENTICATION_TOKEN) is sent to
//! the agent and nowhere else: not in any file of the sandbox (the task's and the
//! executor's logs included), the executor's state dir (checkpoints, the bundle's
//! config.json, the overlay), its run dir, the runtime's state, nor in the environment
//! of any process of the task. Root: runc, berth-init, the double.

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_tests::mesos::harness::Lab;
use berth_tests::mesos::AgentDouble;
use serde_json::json;

const T: Duration = Duration::from_secs(30);

/// Every regular file under `dir` (symlinks not followed) that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8], scanned: &mut usize) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let p = e.path();
        if ft.is_dir() {
            hits.extend(files_containing(&p, needle, scanned));
        } else if ft.is_file() {
            if let Ok(data) = std::fs::read(&p) {
                *scanned += 1;
                if data.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

fn scan(what: &str, dirs: &[&Path], token: &str) -> usize {
    let mut scanned = 0;
    let mut hits = Vec::new();
    for d in dirs {
        hits.extend(files_containing(d, token.as_bytes(), &mut scanned));
    }
    assert!(hits.is_empty(), "{what}: the token leaked into {hits:?}");
    scanned
}

#[test]
fn the_token_is_in_no_file_log_or_task_environment() {
    let lab = Lab::new("secrets");
    let tid = lab.task_id("app");
    let token = format!("berth-TOKEN-{}-d1st1nct1ve", std::process::id());
    // The task writes its whole environment into the sandbox.
    let mut spec = lab.spec(
        &tid,
        Some("env > /mnt/mesos/sandbox/task-env; cat /proc/1/environ > /mnt/mesos/sandbox/init-environ; echo ready; exec sleep 1000"),
    );
    spec.token = Some(token.clone());
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.require_token(&token);
    let mut task = lab.task(&tid);
    task["health_check"] = json!({"type": "COMMAND", "command": {"value": "env > /tmp/check-env; test -s /mnt/mesos/sandbox/task-env"},
        "delay_seconds": 0.0, "interval_seconds": 1.0, "grace_period_seconds": 10.0, "timeout_seconds": 5.0});
    d.launch_on_subscribe(task);
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec), "{}", exec.log());
    d.wait_state(&tid, "TASK_RUNNING", T);
    let healthy = d.wait(T, |st| st.updates.iter().any(|u| u["healthy"] == true));
    assert!(healthy, "{:#?}\n{}", d.state().updates, exec.log());
    // The agent did get the token (every call was authorized), so the executor had it;
    // and the needle is right: the executor's own environment holds it (its shell
    // parent exec'd into it).
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    let own = std::fs::read(format!("/proc/{}/environ", exec.pid())).unwrap();
    assert!(String::from_utf8_lossy(&own).contains(&token));

    // While the task runs: sandbox, state dir (bundle config.json, checkpoints,
    // overlay), run dir, runc's state.
    let sandbox = spec.sandbox.clone();
    let bundles: Vec<PathBuf> = std::fs::read_dir(&lab.state)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("bundle").join("config.json"))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(
        bundles.len(),
        1,
        "one bundle config.json under {:?}",
        lab.state
    );
    let config = std::fs::read_to_string(&bundles[0]).unwrap();
    assert!(
        config.contains("MESOS_TASK_ID"),
        "the env is in config.json"
    );
    assert!(!config.contains(&token) && !config.contains("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"));
    let task_env = std::fs::read_to_string(sandbox.join("task-env")).unwrap();
    assert!(task_env.contains("MESOS_TASK_ID="), "{task_env}");
    let n = scan(
        "while running",
        &[&sandbox, &lab.state, &lab.run, &lab.runc_root],
        &token,
    );
    assert!(n >= 5, "only {n} files scanned");
    // The check's own environment (it runs through runc exec) holds no token either.
    let cid = lab.runc_containers()[0].clone();
    let out = std::process::Command::new("runc")
        .arg("--root")
        .arg(&lab.runc_root)
        .args(["exec", &cid, "/bin/cat", "/tmp/check-env"])
        .output()
        .unwrap();
    let check_env = String::from_utf8_lossy(&out.stdout);
    assert!(check_env.contains("MESOS_TASK_ID="), "{check_env}");
    assert!(!check_env.contains(&token), "{check_env}");
    // No process of the container, nor any runc process, has it in its environment.
    for pid in lab.processes() {
        if pid == exec.pid() {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&environ).contains(&token) || cmd.contains("berth-executor"),
            "process {pid} ({cmd:?}) has the token in its environment"
        );
    }

    // After the task: the logs (executor's stderr with debug logging, the task's output).
    d.kill(&tid, None);
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    let log = exec.log();
    assert!(
        log.contains("subscribed"),
        "the log is the executor's: {log}"
    );
    assert!(!log.contains(&token), "the executor logged its token");
    scan(
        "after the task",
        &[&sandbox, &lab.state, &lab.run, &lab.runc_root],
        &token,
    );
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}
