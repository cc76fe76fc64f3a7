//! berth-init in supervisor mode: the image's /etc/berth/app.yaml, TASK_RUNNING when init's
//! status socket says "running"; HTTP and TCP health checks run by the executor in the
//! container's network namespace; a task failing its checks is killed.

use std::time::Duration;

use berth_tests::mesos::harness::Lab;
use berth_tests::mesos::AgentDouble;
use serde_json::json;

const T: Duration = Duration::from_secs(40);

#[test]
fn app_spec_task_runs_when_init_says_so_and_passes_http_checks() {
    let lab = Lab::new("appspec");
    let img = lab.images.join("busybox");
    std::fs::create_dir_all(img.join("etc/berth")).unwrap();
    std::fs::create_dir_all(img.join("www")).unwrap();
    std::fs::write(img.join("www/index.html"), "hello\n").unwrap();
    std::fs::write(
        img.join("etc/berth/app.yaml"),
        "services:\n  web:\n    command: [\"/bin/httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n    health:\n      tcp: {port: 8080}\n      delay: 0s\n      interval: 1s\n",
    )
    .unwrap();
    let tid = lab.task_id("web");
    let spec = lab.spec(&tid, None);
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    let mut task = lab.task(&tid);
    task["health_check"] = json!({"type": "HTTP", "http": {"port": 8080, "path": "/index.html"},
        "delay_seconds": 0.0, "interval_seconds": 1.0, "grace_period_seconds": 10.0, "timeout_seconds": 2.0});
    d.launch_on_subscribe(task);
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    // init's socket answered from the host side of /run/berth.
    let socks: Vec<_> = std::fs::read_dir(&lab.run)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("init.sock"))
        .collect();
    assert!(
        socks.iter().any(|s| s.exists()),
        "no init.sock under {}",
        lab.run.display()
    );
    let healthy = d.wait(T, |st| st.updates.iter().any(|u| u["healthy"] == true));
    assert!(healthy, "{:#?}\n{}", d.state().updates, exec.log());
    d.kill(&tid, Some(Duration::from_secs(5)));
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}

#[test]
fn failing_tcp_checks_kill_the_task() {
    let lab = Lab::new("unhealthy");
    let tid = lab.task_id("app");
    let spec = lab.spec(&tid, Some("exec sleep 1000"));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    let mut task = lab.task(&tid);
    task["health_check"] = json!({"type": "TCP", "tcp": {"port": 9},
        "delay_seconds": 0.0, "interval_seconds": 0.3, "grace_period_seconds": 0.0,
        "timeout_seconds": 1.0, "consecutive_failures": 3});
    task["kill_policy"] = json!({"grace_period": {"nanoseconds": 1_000_000_000i64}});
    d.launch_on_subscribe(task);
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_KILLED", T);
    let st = d.state();
    let unhealthy = st
        .updates
        .iter()
        .find(|u| u["state"] == "TASK_RUNNING" && u["healthy"] == false);
    assert!(unhealthy.is_some(), "{:#?}", st.updates);
    let last = st.updates.last().unwrap().clone();
    drop(st);
    assert_eq!(last["healthy"], false, "{last}");
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}

#[test]
fn without_a_task_check_init_health_is_reported() {
    let lab = Lab::new("inithealth");
    let img = lab.images.join("busybox");
    std::fs::create_dir_all(img.join("etc/berth")).unwrap();
    std::fs::create_dir_all(img.join("www")).unwrap();
    std::fs::write(
        img.join("etc/berth/app.yaml"),
        "services:\n  web:\n    command: [\"/bin/httpd\", \"-f\", \"-p\", \"8081\", \"-h\", \"/www\"]\n    health:\n      tcp: {port: 8081}\n      delay: 0s\n      interval: 1s\n",
    )
    .unwrap();
    let tid = lab.task_id("web");
    let spec = lab.spec(&tid, None);
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    let healthy = d.wait(T, |st| {
        st.updates.iter().any(|u| {
            u["healthy"] == true && u["reason"] == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
        })
    });
    assert!(healthy, "{:#?}\n{}", d.state().updates, exec.log());
    d.kill(&tid, None);
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}
