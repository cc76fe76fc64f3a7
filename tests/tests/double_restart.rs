//! The agent's restart behaviour, end to end with the real executor, runc and the
//! double (root): with checkpointing off the agent does not recover the executor, so the
//! executor must leave at once when the agent goes away, its container cleaned up; with
//! checkpointing on it must resubscribe within the agent's executor reregistration
//! timeout after recovery, and the double shuts down one that does not.

use std::time::{Duration, Instant};

use berth_tests::mesos::harness::Lab;
use berth_tests::mesos::AgentDouble;

const T: Duration = Duration::from_secs(30);

#[test]
fn without_checkpointing_the_executor_exits_promptly_and_is_not_taken_back() {
    let lab = Lab::new("rst-nockpt");
    let tid = lab.task_id("app");
    let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
    spec.checkpoint = false;
    spec.shutdown_grace = "3secs".into();
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec), "{}", exec.log());
    d.wait_state(&tid, "TASK_RUNNING", T);
    assert!(d.wait(T, |st| st.uuids.values().all(|a| *a)));
    let t0 = Instant::now();
    d.go_away();
    // "At once": no backoff, no recovery timeout; only the kill and teardown (within
    // the shutdown grace period).
    let status = exec
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("executor stayed: {}", exec.log()));
    let took = t0.elapsed();
    assert!(!status.success(), "losing the agent is an error exit");
    assert!(
        took < Duration::from_secs(4),
        "exit took {took:?}: {}",
        exec.log()
    );
    lab.assert_clean();
    // The agent comes back without the framework: nobody tries to resubscribe.
    d.come_back(Duration::from_millis(100));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.state().subscriptions.len(), 1);
    assert!(d.violations().is_empty(), "{:?}", d.violations());
}

#[test]
fn with_checkpointing_a_timely_resubscription_is_accepted() {
    let lab = Lab::new("rst-intime");
    let tid = lab.task_id("app");
    let spec = lab.spec(&tid, Some("exec sleep 1000"));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    assert!(d.wait(T, |st| st.uuids.values().all(|a| *a)));
    let container = lab.runc_containers();
    d.go_away();
    std::thread::sleep(Duration::from_millis(500));
    // Mesos' default --executor_reregistration_timeout is 2secs.
    assert_eq!(d.state().reregistration_timeout, Duration::from_secs(2));
    d.come_back(Duration::from_millis(500));
    assert!(
        d.enforce_reregistration(&mut exec),
        "not resubscribed in time: {:?}\n{}",
        d.violations(),
        exec.log()
    );
    assert_eq!(lab.runc_containers(), container, "the task kept running");
    d.kill(&tid, None);
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}

#[test]
fn with_checkpointing_a_late_executor_is_shut_down_and_recorded() {
    let lab = Lab::new("rst-late");
    let tid = lab.task_id("app");
    let spec = lab.spec(&tid, Some("exec sleep 1000"));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.state().reregistration_timeout = Duration::from_millis(800);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    assert!(d.wait(T, |st| st.uuids.values().all(|a| *a)));
    // A hung executor: stopped through the agent's restart.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(exec.pid() as i32, libc::SIGSTOP) };
    d.go_away();
    d.come_back(Duration::from_millis(200));
    let t0 = Instant::now();
    assert!(
        !d.enforce_reregistration(&mut exec),
        "a stopped executor cannot have resubscribed"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t0.elapsed()
    );
    assert!(
        exec.wait_exit(Duration::from_secs(1)).is_some(),
        "the double shuts the executor down"
    );
    let v = d.violations();
    assert!(
        v.iter()
            .any(|m| m.contains("executor reregistration timeout")),
        "{v:?}"
    );
    // From then on the agent refuses this executor.
    assert!(d.state().view.executor_gone);
    // (Lab's drop removes the orphaned container, as the agent's containerizer would.)
}
