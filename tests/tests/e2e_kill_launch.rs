//! KILL during the launch, end to end (root, runc, the real executor): LAUNCH and KILL
//! reach the executor in one chunk, so the KILL arrives while the task is being
//! prepared: TASK_KILLED, never TASK_RUNNING, and nothing is left (no container, state,
//! mount, cgroup or process), with REASON_TASK_KILLED_DURING_LAUNCH: the runner checks
//! for a KILL before its preparation and before each preparation step (the container
//! included), and undoes what was made.

use std::time::Duration;

use berth_tests::mesos::harness::Lab;
use berth_tests::mesos::server::{launch_into, send_event};
use berth_tests::mesos::AgentDouble;
use serde_json::json;

const T: Duration = Duration::from_secs(30);

#[test]
fn kill_during_launch_ends_killed_during_launch_and_leaves_nothing() {
    let lab = Lab::new("killlaunch");
    let tid = lab.task_id("app");
    let spec = lab.spec(&tid, Some("exec sleep 1000"));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec), "{}", exec.log());
    assert!(d.wait(T, |st| st.stream.is_some()));
    {
        // Both events queued at once and written as one chunk.
        let mut st = d.state();
        st.pack = 2;
        launch_into(&mut st, lab.task(&tid));
        send_event(
            &mut st,
            json!({"type": "KILL", "kill": {"task_id": {"value": tid}}}),
        );
    }
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    let st = d.state();
    assert!(st.packed_writes > 0, "LAUNCH and KILL went out separately");
    let killed = st
        .updates
        .iter()
        .find(|u| u["state"] == "TASK_KILLED")
        .cloned()
        .unwrap();
    assert!(
        killed["reason"] == "REASON_TASK_KILLED_DURING_LAUNCH",
        "{killed}: {}",
        exec.log()
    );
    assert!(
        !st.states(&tid).iter().any(|s| s == "TASK_RUNNING"),
        "{:?}",
        st.states(&tid)
    );
    drop(st);
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}
