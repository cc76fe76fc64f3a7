//! The executor on an agent that serves TLS (LIBPROCESS_SSL_ENABLED=1, as a Mesos agent
//! passes it to its executors; certificates made in the test by rcgen): it subscribes,
//! runs a task to TASK_RUNNING and KILLED, presenting its client certificate. Trusting
//! the wrong CA, it fails at once with one clear line naming the agent and the TLS cause
//! and exits non-zero: no hang until MESOS_RECOVERY_TIMEOUT. Like Mesos' executor library,
//! it makes one TLS connection for SUBSCRIBE and one kept-alive for all its other calls.

use std::time::{Duration, Instant};

use berth_tests::mesos::harness::Lab;
use berth_tests::mesos::AgentDouble;

const T: Duration = Duration::from_secs(30);

#[test]
fn an_executor_subscribes_and_runs_a_task_over_tls() {
    let lab = Lab::new("tls");
    let tid = lab.task_id("app");
    let spec = lab.spec(&tid, Some("echo started; exec sleep 1000"));
    let d = AgentDouble::start_tls(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec), "log: {}", exec.log());
    d.wait_state(&tid, "TASK_RUNNING", T);
    d.kill(&tid, None);
    d.wait_state(&tid, "TASK_KILLED", T);
    let status = exec
        .wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(status.success(), "{status:?}: {}", exec.log());
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    let peers = d.state().peers.clone();
    let port = |kind: &str| -> Vec<u16> {
        peers
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, a)| a.port())
            .collect()
    };
    let (subscribe, updates) = (port("SUBSCRIBE"), port("UPDATE"));
    assert_eq!(subscribe.len(), 1, "{peers:?}");
    assert!(updates.len() >= 3, "STARTING, RUNNING, KILLED: {peers:?}");
    assert!(
        updates
            .iter()
            .all(|p| *p == updates[0] && *p != subscribe[0]),
        "the calls share one connection besides the stream: {peers:?}"
    );
    lab.assert_clean();
}

#[test]
fn a_wrong_ca_is_one_clear_line_and_a_prompt_exit() {
    let lab = Lab::new("tlsca");
    let tid = lab.task_id("app");
    let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
    let d = AgentDouble::start_tls(&spec.framework_id, &spec.executor_id);
    let pki = d.pki.as_ref().expect("a TLS double");
    spec.env.extend(pki.executor_env(&pki.wrong_ca));
    let t = Instant::now();
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    let status = exec
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("executor still running after 10 s: {}", exec.log()));
    let took = t.elapsed();
    assert!(!status.success(), "{status:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let log = exec.log();
    let line = log
        .lines()
        .find(|l| l.contains("cannot subscribe to the agent"))
        .unwrap_or_else(|| panic!("no failure line in {log}"));
    assert!(line.contains(&d.endpoint), "{line}");
    assert!(line.contains("TLS handshake"), "{line}");
    assert!(line.to_lowercase().contains("certificate"), "{line}");
    assert!(!line.contains('\x1b'), "{line:?}");
    assert!(d.state().subscriptions.is_empty());
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}
