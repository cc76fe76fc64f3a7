//! A failure at every preparation step -> TASK_FAILED (REASON_CONTAINER_LAUNCH_FAILED,
//! naming the step) and nothing left; an unusable runtime setting is refused before any
//! step runs; invalid tasks and task groups are refused clearly.
//!
//! The steps come from the executor itself (`runner::STEP_ORDER`), and the task is made to
//! need every one of them (a `home` volume with the loopfile backend, a plain command,
//! networking on a lab NIC), so a new step cannot be left out of this test.

use std::process::Command;
use std::time::Duration;

use berth_executor::task::runner::STEP_ORDER;
use berth_tests::lab::{self, TaskNetns};
use berth_tests::mesos::harness::start_in;
use berth_tests::mesos::harness::Lab;
use berth_tests::mesos::AgentDouble;
use serde_json::json;

const T: Duration = Duration::from_secs(30);

fn last_update(d: &AgentDouble) -> serde_json::Value {
    d.state().updates.last().cloned().unwrap_or_default()
}

/// Link names in a netns.
fn links(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show"])
        .output()
        .expect("ip link");
    let mut l: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    l.sort();
    l
}

/// Detaches the lab's loop devices if a failed run left some.
struct LoopGuard<'a>(&'a Lab);

impl Drop for LoopGuard<'_> {
    fn drop(&mut self) {
        self.0.detach_loop_devices();
    }
}

/// What Marathon's UI shows: one line, no ANSI escapes, at most 500 bytes.
fn assert_plain_line(msg: &str) {
    assert!(!msg.contains('\x1b'), "ANSI in {msg:?}");
    assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg:?}");
    assert!(msg.len() <= 500, "{} bytes: {msg}", msg.len());
    assert!(!msg.is_empty());
}

#[test]
fn a_failure_at_every_step_undoes_everything() {
    lab::require_root();
    let net = lab::Lab::new();
    let lab = Lab::new("failstep");
    let _loops = LoopGuard(&lab);
    assert_eq!(STEP_ORDER.len(), 9, "{STEP_ORDER:?}");
    for step in STEP_ORDER {
        let tid = lab.task_id(step);
        let guard = TaskNetns::new(&tid);
        let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
        spec.env.extend(lab.volume_env(None));
        spec.env
            .push(("BERTH_EXECUTOR_NET_PARENT".into(), net.parent.clone()));
        spec.env
            .push(("BERTH_EXECUTOR_FAIL_STEP".into(), step.into()));
        let mut task = lab.task_with_home(&tid, 16.0);
        // `disk` too: the scratch step (the writable layer's volume).
        task["resources"]
            .as_array_mut()
            .expect("resources")
            .push(serde_json::json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 32.0}}));
        let (d, mut exec) = start_in(&net.host, spec, task);
        d.wait_state(&tid, "TASK_FAILED", T);
        let u = last_update(&d);
        assert_eq!(u["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{step}: {u}");
        let msg = u["message"].as_str().unwrap_or("");
        // The step ran (the task needs every step) and its failure undid it cleanly;
        // the message is one plain line, the step and its cause first.
        assert!(
            msg.starts_with(&format!("{step}: failure injected")),
            "{step}: {u}"
        );
        assert_plain_line(msg);
        assert!(!msg.contains("undo"), "{step}: {u}");
        assert!(!d.state().states(&tid).iter().any(|s| s == "TASK_RUNNING"));
        exec.wait_exit(T)
            .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
        assert!(d.violations().is_empty(), "{:?}", d.violations());
        assert!(!guard.path().exists(), "{step}: netns left behind");
        assert_eq!(links(net.host.name()), ["lo", "nic0"], "{step}: links left");
        lab.assert_no_volumes();
        lab.assert_clean();
    }
}

#[test]
fn an_unusable_runtime_setting_fails_the_task_before_anything_is_made() {
    let lab = Lab::new("badrt");
    let tid = lab.task_id("rt");
    let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
    let missing = lab.dir.path().join("no-such-runc");
    // A run dir nobody made yet: the `rundir` step would create it.
    let run_dir = lab.dir.path().join("run-never");
    for (k, v) in spec.env.iter_mut() {
        if k == "BERTH_EXECUTOR_RUN_DIR" {
            *v = run_dir.display().to_string();
        }
    }
    spec.env.extend(lab.volume_env(None));
    spec.env.push((
        "BERTH_EXECUTOR_RUNTIME".into(),
        missing.display().to_string(),
    ));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task_with_home(&tid, 16.0));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_FAILED", T);
    let u = last_update(&d);
    assert_eq!(u["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{u}");
    let msg = u["message"].as_str().unwrap_or("");
    assert!(
        msg.starts_with("runtime: executor setting BERTH_EXECUTOR_RUNTIME: ")
            && msg.contains(&*missing.to_string_lossy())
            && msg.contains("is not found"),
        "{u}"
    );
    assert_plain_line(msg);
    assert_eq!(
        d.state().states(&tid),
        ["TASK_STARTING", "TASK_FAILED"],
        "{u}"
    );
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    // Nothing was made: no run dir (not even its parent), no volume, no container state
    // (the state dir holds only the executor's own session checkpoints).
    assert!(!run_dir.exists(), "the rundir step ran");
    assert!(lab.volume_files().is_empty() && lab.loop_devices().is_empty());
    let made: Vec<String> = std::fs::read_dir(&lab.state)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "executors")
                .collect()
        })
        .unwrap_or_default();
    assert!(made.is_empty(), "state made: {made:?}");
    assert!(!exec.log().contains("preparation failed"), "{}", exec.log());
    lab.assert_clean();
}

#[test]
fn invalid_tasks_fail_naming_the_field() {
    let lab = Lab::new("invalid");
    for (what, patch, field) in [
        (
            "image",
            json!({"labels": {"labels": [{"key": "berth.image", "value": "../../etc"}]}}),
            "labels.berth.image",
        ),
        (
            "no image",
            json!({"labels": {"labels": []}}),
            "labels.berth.image",
        ),
        (
            "mem",
            json!({"resources": [{"name": "mem", "type": "SCALAR", "scalar": {"value": -5.0}}]}),
            "resources.mem",
        ),
    ] {
        let tid = lab.task_id(&what.replace(' ', "-"));
        let spec = lab.spec(&tid, Some("exec sleep 1000"));
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        let mut task = lab.task(&tid);
        for (k, v) in patch.as_object().unwrap() {
            task[k] = v.clone();
        }
        d.launch_on_subscribe(task);
        let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
        d.wait_state(&tid, "TASK_FAILED", T);
        let u = last_update(&d);
        assert_eq!(u["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{what}: {u}");
        assert!(
            u["message"].as_str().unwrap_or("").contains(field),
            "{what}: {u}"
        );
        exec.wait_exit(T)
            .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
        assert!(d.violations().is_empty(), "{:?}", d.violations());
    }
    lab.assert_clean();
}

#[test]
fn launch_group_is_refused_clearly() {
    let lab = Lab::new("group");
    let tid = lab.task_id("g");
    let spec = lab.spec(&tid, None);
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec));
    assert!(d.wait(T, |st| st.stream.is_some()));
    let task = lab.task(&tid);
    d.state().tasks.insert(
        tid.clone(),
        berth_tests::mesos::state::TaskView {
            info: task.clone(),
            states: vec![],
            terminal: false,
        },
    );
    // Unknown events and fields are tolerated first.
    d.send_raw(json!({"type": "SOMETHING_NEW", "something_new": {"x": 1}}));
    d.heartbeat();
    d.send_raw(json!({"type": "LAUNCH_GROUP", "launch_group": {"executor": {}, "task_group": {"tasks": [task]}}}));
    d.wait_state(&tid, "TASK_FAILED", T);
    let u = last_update(&d);
    assert!(
        u["message"].as_str().unwrap_or("").contains("LAUNCH_GROUP"),
        "{u}"
    );
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}

#[test]
fn an_executor_that_never_subscribes_is_a_violation() {
    let lab = Lab::new("noreg");
    let tid = lab.task_id("x");
    let mut spec = lab.spec(&tid, None);
    // Pointing the executor at a port where nobody listens: it never reaches the double.
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    spec.env
        .push(("MESOS_AGENT_ENDPOINT".into(), "127.0.0.1:1".into()));
    let mut exec = d.spawn_executor(&spec, Duration::from_millis(1500));
    assert!(!d.enforce_registration(&mut exec));
    assert!(d
        .violations()
        .iter()
        .any(|v| v.contains("registration timeout")));
    assert!(
        exec.wait_exit(Duration::from_secs(1)).is_some(),
        "killed by the double"
    );
}

/// berth-init exits before the task runs (its app spec, a DHCP lease that does not come):
/// TASK_FAILED names init and init's own cause first, one plain line; the executor's
/// log lines (in the same sandbox stderr) stay out of it.
#[test]
fn init_failures_are_one_plain_line_with_inits_cause() {
    let cases = [
        (
            "spec",
            "services:\n  web:\n    command: [\"/bin/sleep\", \"1000\"]\n    bogus_key: 1\n",
            "bogus_key",
        ),
        (
            "dhcp",
            "network:\n  dhcp: eth9\n  dhcp_timeout: 1s\nservices:\n  web:\n    command: [\"/bin/sleep\", \"1000\"]\n",
            "DHCP on eth9",
        ),
    ];
    for (name, yaml, cause) in cases {
        let lab = Lab::new(&format!("initfail{name}"));
        let img = lab.images.join("busybox");
        std::fs::create_dir_all(img.join("etc/berth")).unwrap();
        std::fs::write(img.join("etc/berth/app.yaml"), yaml).unwrap();
        let tid = lab.task_id(name);
        let spec = lab.spec(&tid, None);
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        d.launch_on_subscribe(lab.task(&tid));
        let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
        d.wait_state(&tid, "TASK_FAILED", T);
        let u = last_update(&d);
        let msg = u["message"].as_str().unwrap_or("");
        assert!(msg.starts_with("init: "), "{name}: {u}\n{}", exec.log());
        assert!(msg.contains(cause), "{name}: {u}\n{}", exec.log());
        assert!(!msg.contains("berth_executor"), "{name}: {u}");
        assert_plain_line(msg);
        exec.wait_exit(T)
            .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
        assert!(d.violations().is_empty(), "{:?}", d.violations());
        lab.assert_clean();
    }
}
