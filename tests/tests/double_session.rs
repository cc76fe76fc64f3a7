//! The executor's protocol session against the agent double, with a fake launcher (no
//! containers, no root): kill grace precedence and repeated KILL, TASK_KILLING with the
//! capability, exit once the terminal update is acknowledged, giving up at once without
//! checkpointing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_executor::mesos::env::ExecutorEnv;
use berth_executor::mesos::types::TaskState;
use berth_executor::session::{Exit, LaunchRequest, Launcher, Session, TaskEvent};
use berth_tests::mesos::AgentDouble;
use serde_json::json;
use tokio::time::Instant;

const FW: &str = "fw-session";
const EX: &str = "marathon-s.1";

/// Reports STARTING and RUNNING, records every kill deadline (as time left), and ends
/// KILLED after the second KILL.
struct Fake {
    seen: Arc<Mutex<Vec<Duration>>>,
}

impl Launcher for Fake {
    fn launch(&self, mut req: LaunchRequest) {
        let seen = self.seen.clone();
        tokio::spawn(async move {
            let id = req.task.task_id.value.clone();
            let _ = req
                .events
                .send(TaskEvent::new(&id, TaskState::TaskStarting));
            let _ = req.events.send(TaskEvent::new(&id, TaskState::TaskRunning));
            let mut n = 0;
            while req.kill.changed().await.is_ok() {
                let d = *req.kill.borrow();
                if let Some(d) = d {
                    seen.lock()
                        .unwrap()
                        .push(d.saturating_duration_since(Instant::now()));
                    n += 1;
                    if n == 2 {
                        let _ = req.events.send(TaskEvent::new(&id, TaskState::TaskKilled));
                        return;
                    }
                }
            }
        });
    }
}

fn env(endpoint: &str, checkpoint: bool) -> ExecutorEnv {
    ExecutorEnv::from_vars([
        ("MESOS_FRAMEWORK_ID", FW),
        ("MESOS_EXECUTOR_ID", EX),
        ("MESOS_AGENT_ENDPOINT", endpoint),
        ("MESOS_DIRECTORY", "/tmp"),
        ("MESOS_CHECKPOINT", if checkpoint { "1" } else { "0" }),
        ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "100ms"),
        ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "2secs"),
    ])
    .unwrap()
}

fn run_session(env: ExecutorEnv, launcher: Arc<dyn Launcher>) -> std::thread::JoinHandle<Exit> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (_stop_tx, stop_rx) = tokio::sync::mpsc::channel(1);
            Session::run(env, launcher, None, stop_rx).await.unwrap()
        })
    })
}

#[test]
fn kill_grace_precedence_repeated_kill_and_killing_state() {
    let d = AgentDouble::start(FW, EX);
    d.state().framework_capabilities = vec!["TASK_KILLING_STATE".into()];
    d.launch_on_subscribe(json!({"name": "s", "task_id": {"value": "s.1"},
        "kill_policy": {"grace_period": {"nanoseconds": 7_000_000_000i64}}}));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let h = run_session(
        env(&d.endpoint, true),
        Arc::new(Fake { seen: seen.clone() }),
    );
    d.wait_state("s.1", "TASK_RUNNING", Duration::from_secs(10));
    // The KILL's policy (2 s) beats the task's (7 s); a repeat with 10 s changes nothing.
    d.kill("s.1", Some(Duration::from_secs(2)));
    assert!(d.wait(Duration::from_secs(5), |_| seen.lock().unwrap().len() == 1));
    d.kill("s.1", Some(Duration::from_secs(10)));
    d.wait_state("s.1", "TASK_KILLED", Duration::from_secs(10));
    let exit = h.join().unwrap();
    assert_eq!(exit, Exit::Done, "exits once TASK_KILLED is acknowledged");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen[0] <= Duration::from_secs(2) && seen[0] > Duration::from_millis(1500),
        "{seen:?}"
    );
    assert!(
        seen[1] <= seen[0],
        "a repeated KILL must not extend the grace: {seen:?}"
    );
    let states = d.state().states("s.1");
    assert_eq!(
        states,
        [
            "TASK_STARTING",
            "TASK_RUNNING",
            "TASK_KILLING",
            "TASK_KILLED"
        ]
    );
    assert!(d.violations().is_empty(), "{:?}", d.violations());
}

#[test]
fn the_task_policy_applies_when_kill_has_none_and_killing_needs_the_capability() {
    let d = AgentDouble::start(FW, EX);
    d.launch_on_subscribe(json!({"name": "s", "task_id": {"value": "s.1"},
        "kill_policy": {"grace_period": {"nanoseconds": "4000000000"}}}));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let h = run_session(
        env(&d.endpoint, true),
        Arc::new(Fake { seen: seen.clone() }),
    );
    d.wait_state("s.1", "TASK_RUNNING", Duration::from_secs(10));
    d.kill("s.1", None);
    assert!(d.wait(Duration::from_secs(5), |_| seen.lock().unwrap().len() == 1));
    d.kill("s.1", None);
    d.wait_state("s.1", "TASK_KILLED", Duration::from_secs(10));
    assert_eq!(h.join().unwrap(), Exit::Done);
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen[0] > Duration::from_millis(3500) && seen[0] <= Duration::from_secs(4),
        "{seen:?}"
    );
    assert!(!d.state().states("s.1").iter().any(|s| s == "TASK_KILLING"));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
}

#[test]
fn without_checkpointing_a_lost_agent_ends_the_session_at_once() {
    let d = AgentDouble::start(FW, EX);
    d.launch_on_subscribe(json!({"name": "s", "task_id": {"value": "s.1"}}));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let h = run_session(
        env(&d.endpoint, false),
        Arc::new(Fake { seen: seen.clone() }),
    );
    d.wait_state("s.1", "TASK_RUNNING", Duration::from_secs(10));
    let t0 = std::time::Instant::now();
    d.go_away();
    let exit = h.join().unwrap();
    assert!(matches!(exit, Exit::AgentLost(_)), "{exit:?}");
    // The task was told to stop at once (no waiting for MESOS_RECOVERY_TIMEOUT).
    assert!(!seen.lock().unwrap().is_empty());
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

#[test]
fn shutdown_before_any_launch_exits_at_once() {
    let d = AgentDouble::start(FW, EX);
    let mut env = env(&d.endpoint, true);
    // A long grace period: waiting it out would be visible.
    env.shutdown_grace_period = Duration::from_secs(30);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let start = std::time::Instant::now();
    let h = run_session(env, Arc::new(Fake { seen }));
    assert!(d.wait(Duration::from_secs(10), |st| st.stream.is_some()));
    d.shutdown();
    let exit = h.join().unwrap();
    assert_eq!(exit, Exit::Shutdown);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "waited {:?} with no task to kill",
        start.elapsed()
    );
    assert!(d.violations().is_empty(), "{:?}", d.violations());
}

#[test]
fn an_undecodable_launch_fails_the_task_naming_the_field() {
    let d = AgentDouble::start(FW, EX);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let h = run_session(env(&d.endpoint, true), Arc::new(Fake { seen }));
    assert!(d.wait(Duration::from_secs(10), |st| st.stream.is_some()));
    d.launch_unchecked(json!({"name": "s", "task_id": {"value": "bad.1"},
        "agent_id": {"value": "agent-double-S0"}, "resources": "lots"}));
    d.wait_state("bad.1", "TASK_FAILED", Duration::from_secs(10));
    let st = d.state();
    let u = st
        .updates
        .iter()
        .find(|u| u["task_id"]["value"] == "bad.1")
        .unwrap()
        .clone();
    drop(st);
    assert_eq!(u["reason"], "REASON_TASK_INVALID", "{u}");
    assert!(
        u["message"].as_str().unwrap().contains("'resources'"),
        "{u}"
    );
    assert_eq!(h.join().unwrap(), Exit::Done);
    assert!(d.violations().is_empty(), "{:?}", d.violations());
}

/// Reports STARTING and RUNNING, then asks the session to kill it (as the runner does
/// on failed health checks) and ends KILLED once the kill deadline arrives.
struct SelfKilling;

impl Launcher for SelfKilling {
    fn launch(&self, mut req: LaunchRequest) {
        tokio::spawn(async move {
            let id = req.task.task_id.value.clone();
            let _ = req
                .events
                .send(TaskEvent::new(&id, TaskState::TaskStarting));
            let _ = req.events.send(TaskEvent::new(&id, TaskState::TaskRunning));
            let _ = req.events.send(TaskEvent::kill_request(&id));
            while req.kill.changed().await.is_ok() {
                if req.kill.borrow().is_some() {
                    let _ = req.events.send(TaskEvent::new(&id, TaskState::TaskKilled));
                    return;
                }
            }
        });
    }
}

#[test]
fn a_runner_kill_request_takes_the_session_kill_path() {
    let d = AgentDouble::start(FW, EX);
    d.state().framework_capabilities = vec!["TASK_KILLING_STATE".into()];
    d.launch_on_subscribe(json!({"name": "s", "task_id": {"value": "h.1"},
        "agent_id": {"value": "agent-double-S0"}}));
    let h = run_session(env(&d.endpoint, true), Arc::new(SelfKilling));
    d.wait_state("h.1", "TASK_KILLED", Duration::from_secs(10));
    assert_eq!(h.join().unwrap(), Exit::Done);
    assert_eq!(
        d.state().states("h.1"),
        [
            "TASK_STARTING",
            "TASK_RUNNING",
            "TASK_KILLING",
            "TASK_KILLED"
        ]
    );
    assert!(d.violations().is_empty(), "{:?}", d.violations());
}

#[test]
fn an_unacknowledged_update_is_posted_again_on_an_open_stream() {
    let d = AgentDouble::start(FW, EX);
    // The first acknowledgement is lost; the stream stays open.
    d.state().drop_acks = 1;
    d.launch_on_subscribe(json!({"name": "s", "task_id": {"value": "r.1"},
        "agent_id": {"value": "agent-double-S0"}}));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let h = run_session(
        env(&d.endpoint, true),
        Arc::new(Fake { seen: seen.clone() }),
    );
    d.wait_state("r.1", "TASK_RUNNING", Duration::from_secs(10));
    let retry = berth_executor::session::UPDATE_RETRY;
    let all_acked = d.wait(retry + Duration::from_secs(5), |st| {
        st.uuids.len() == 2 && st.uuids.values().all(|a| *a)
    });
    assert!(all_acked, "{:?}", d.state().uuids);
    assert_eq!(d.state().subscriptions.len(), 1, "no resubscription needed");
    d.kill("r.1", Some(Duration::from_secs(1)));
    assert!(d.wait(Duration::from_secs(5), |_| seen.lock().unwrap().len() == 1));
    d.kill("r.1", Some(Duration::from_secs(1)));
    d.wait_state("r.1", "TASK_KILLED", Duration::from_secs(10));
    assert_eq!(h.join().unwrap(), Exit::Done);
    assert!(d.violations().is_empty(), "{:?}", d.violations());
}

/// A SUBSCRIBED naming another executor or framework (an agent answering for someone
/// else): the session refuses it, runs nothing the stream sends, and exits naming both ids.
fn refuses_a_foreign_subscribed(framework_id: &str, executor_id: &str, names: &str, ours: &str) {
    let d = AgentDouble::start(FW, EX);
    d.state().subscribed_as = Some((framework_id.into(), executor_id.into()));
    d.launch_on_subscribe(json!({"name": "s", "task_id": {"value": "s.1"}}));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let launched = Arc::new(Mutex::new(0));
    let h = run_session(
        env(&d.endpoint, true),
        Arc::new(Counting {
            inner: Fake { seen: seen.clone() },
            launched: launched.clone(),
        }),
    );
    let t0 = std::time::Instant::now();
    while !h.is_finished() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the session kept a foreign subscription ({} launched)",
            launched.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let exit = h.join().unwrap();
    match &exit {
        Exit::Refused(why) => {
            assert!(why.contains(names) && why.contains(ours), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        *launched.lock().unwrap(),
        0,
        "a foreign stream's LAUNCH ran"
    );
    assert!(d.state().updates.is_empty(), "{:?}", d.state().updates);
    // Refused for good: no second SUBSCRIBE.
    assert_eq!(d.state().subscriptions.len(), 1);
}

struct Counting {
    inner: Fake,
    launched: Arc<Mutex<usize>>,
}

impl Launcher for Counting {
    fn launch(&self, req: LaunchRequest) {
        *self.launched.lock().unwrap() += 1;
        self.inner.launch(req);
    }
}

#[test]
fn a_subscribed_naming_another_executor_is_refused() {
    refuses_a_foreign_subscribed(FW, "marathon-other.1", "marathon-other.1", EX);
}

#[test]
fn a_subscribed_naming_another_framework_is_refused() {
    refuses_a_foreign_subscribed("fw-other", EX, "fw-other", FW);
}
