//! Recovery end to end: the agent restarts mid-task (the executor resubscribes with its
//! unacknowledged updates and the task keeps running: Mesos' real recovery); the
//! executor is SIGKILLed (the agent fails the task with REASON_EXECUTOR_TERMINATED and
//! never takes the executor back; a new executor process with the same environment is
//! refused and removes the orphaned container from the checkpoint); the agent never
//! comes back with checkpointing off (the executor gives up at once and cleans up).

use std::time::Duration;

use berth_tests::mesos::harness::{Lab, RuntimeLab, TestRuntime};
use berth_tests::mesos::AgentDouble;

const T: Duration = Duration::from_secs(30);

#[test]
fn after_sigkill_the_task_fails_and_a_new_executor_removes_the_container() {
    cleanup_after_sigkill(TestRuntime::Runc);
}

#[test]
fn after_sigkill_the_task_fails_and_a_new_executor_removes_the_crun_container() {
    cleanup_after_sigkill(TestRuntime::Crun);
}

#[test]
fn agent_restart_mid_task_resubscribes_with_unacknowledged_updates() {
    let lab = Lab::new("agentrestart");
    let tid = lab.task_id("app");
    let spec = lab.spec(&tid, Some("exec sleep 1000"));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    // The agent "persists" slowly: nothing gets acknowledged before it goes away.
    d.state().ack_delay = Duration::from_secs(3600);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    let container = lab.runc_containers();
    assert_eq!(container.len(), 1);
    d.go_away();
    std::thread::sleep(Duration::from_millis(800));
    d.state().ack_delay = Duration::from_millis(5);
    d.come_back(Duration::from_millis(1500));
    // The executor retries through the 503s and resubscribes.
    assert!(
        d.wait(T, |st| st.subscriptions.len() >= 2),
        "no resubscription: {}",
        exec.log()
    );
    let sub = d.state().subscriptions[1].clone();
    let updates = sub["subscribe"]["unacknowledged_updates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let states: Vec<&str> = updates
        .iter()
        .filter_map(|u| u["status"]["state"].as_str())
        .collect();
    assert_eq!(states, ["TASK_STARTING", "TASK_RUNNING"], "{sub}");
    let tasks = sub["subscribe"]["unacknowledged_tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(tasks.len(), 1, "the task had no acknowledged update: {sub}");
    assert_eq!(tasks[0]["task_id"]["value"], tid.as_str());
    // The resent updates get acknowledged; the task kept running in the same container.
    assert!(d.wait(T, |st| st.uuids.values().all(|a| *a)));
    assert_eq!(lab.runc_containers(), container);
    assert!(
        d.state().answers.iter().any(|a| a.status == 503),
        "the executor met the recovering agent"
    );
    d.kill(&tid, None);
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}

/// The executor is SIGKILLed with its container running: the agent reports the task
/// TASK_FAILED / REASON_EXECUTOR_TERMINATED (source SOURCE_AGENT) and forgets the
/// executor. A new executor process with the same environment finds the container in
/// the checkpoint, is refused by the agent ("Executor cannot be found"), and undoes the
/// container: nothing is left.
fn cleanup_after_sigkill(rt: TestRuntime) {
    let lab = RuntimeLab::new("execkill", rt);
    let tid = lab.task_id("app");
    let spec = lab.spec(&tid, Some("exec sleep 1000"));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    assert!(d.wait(T, |st| st.uuids.values().all(|a| *a)));
    let container = lab.containers();
    assert_eq!(container.len(), 1);
    exec.kill();
    // What Marathon sees: the agent fails the task.
    d.wait_state(&tid, "TASK_FAILED", T);
    let failed = d.agent_updates();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["task_id"]["value"], tid.as_str());
    assert_eq!(failed[0]["source"], "SOURCE_AGENT");
    assert_eq!(failed[0]["reason"], "REASON_EXECUTOR_TERMINATED");
    // The container survives its executor: an orphan.
    assert_eq!(lab.containers(), container);
    let mut exec2 = d.spawn_executor(&spec, Duration::from_secs(10));
    let status = exec2
        .wait_exit(T)
        .unwrap_or_else(|| panic!("the refused executor did not exit: {}", exec2.log()));
    assert!(!status.success(), "a refused executor exits with an error");
    let st = d.state();
    assert_eq!(
        st.subscriptions.len(),
        1,
        "the agent took the executor back"
    );
    assert!(
        st.answers.iter().any(|a| a.kind == "SUBSCRIBE"
            && a.status == 400
            && a.message.contains("Executor cannot be found")),
        "{:?}",
        st.answers
    );
    // No update reached the agent after the agent's TASK_FAILED.
    assert_eq!(
        st.states(&tid).last().map(String::as_str),
        Some("TASK_FAILED")
    );
    drop(st);
    assert!(
        exec2.log().contains("tearing their containers down"),
        "{}",
        exec2.log()
    );
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}

#[test]
fn without_checkpointing_a_lost_agent_means_cleanup_and_exit() {
    let lab = Lab::new("nockpt");
    let tid = lab.task_id("app");
    let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
    spec.checkpoint = false;
    spec.shutdown_grace = "3secs".into();
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    d.go_away();
    let status = exec
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("executor stayed: {}", exec.log()));
    assert!(!status.success(), "losing the agent is an error exit");
    lab.assert_clean();
}

#[test]
fn recovery_timeout_bounds_the_wait_for_the_agent() {
    let lab = Lab::new("recovto");
    let tid = lab.task_id("app");
    let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
    spec.recovery_timeout = "2secs".into();
    spec.shutdown_grace = "3secs".into();
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    let t0 = std::time::Instant::now();
    d.go_away();
    exec.wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("executor stayed: {}", exec.log()));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "gave up before MESOS_RECOVERY_TIMEOUT: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "{took:?}");
    lab.assert_clean();
}
