//! A failure at each preparation step -> TASK_FAILED (REASON_CONTAINER_LAUNCH_FAILED,
//! naming the step) and nothing left; invalid tasks and task groups are refused clearly.

use std::time::Duration;

use berth_tests::mesos::harness::Lab;
use berth_tests::mesos::AgentDouble;
use serde_json::json;

const T: Duration = Duration::from_secs(30);

fn last_update(d: &AgentDouble) -> serde_json::Value {
    d.state().updates.last().cloned().unwrap_or_default()
}

#[test]
fn a_failure_at_each_step_undoes_everything() {
    for step in ["rundir", "rootfs", "bundle", "container"] {
        let lab = Lab::new(&format!("fail{step}"));
        let tid = lab.task_id("app");
        let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
        spec.env
            .push(("BERTH_EXECUTOR_FAIL_STEP".into(), step.into()));
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        d.launch_on_subscribe(lab.task(&tid));
        let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
        d.wait_state(&tid, "TASK_FAILED", T);
        let u = last_update(&d);
        assert_eq!(u["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{u}");
        assert!(
            u["message"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("{step}: failure injected")),
            "{u}"
        );
        assert!(!d.state().states(&tid).iter().any(|s| s == "TASK_RUNNING"));
        exec.wait_exit(T)
            .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
        assert!(d.violations().is_empty(), "{:?}", d.violations());
        lab.assert_clean();
    }
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
