//! The executor's protocol session against the agent double, with fake launchers (no
//! containers, no root): updates made while SUBSCRIBE is on its way reach the agent at
//! once, an agent restart during SHUTDOWN does not lose TASK_KILLED, 404 on SUBSCRIBE
//! is retried, the 503 retries stay within MESOS_SUBSCRIPTION_BACKOFF_MAX, MESSAGE and
//! ERROR events leave the session working, and RecordIO survives any chunking.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_executor::mesos::env::ExecutorEnv;
use berth_executor::mesos::types::TaskState;
use berth_executor::mesos::updates::UpdateStore;
use berth_executor::session::{Exit, LaunchRequest, Launcher, Session, TaskEvent};
use berth_tests::mesos::state::TaskView;
use berth_tests::mesos::AgentDouble;
use serde_json::json;

const FW: &str = "fw-protocol";

/// STARTING (unless recovered) and RUNNING at once; after the first kill deadline,
/// KILLED after `kill_delay`.
struct Quick {
    kill_delay: Duration,
}

impl Launcher for Quick {
    fn launch(&self, mut req: LaunchRequest) {
        let delay = self.kill_delay;
        let id = req.task.task_id.value.clone();
        if !req.recover {
            let _ = req
                .events
                .send(TaskEvent::new(&id, TaskState::TaskStarting));
        }
        let _ = req.events.send(TaskEvent::new(&id, TaskState::TaskRunning));
        tokio::spawn(async move {
            while req.kill.changed().await.is_ok() {
                if req.kill.borrow().is_some() {
                    tokio::time::sleep(delay).await;
                    let _ = req.events.send(TaskEvent::new(&id, TaskState::TaskKilled));
                    return;
                }
            }
        });
    }
}

fn env(endpoint: &str, executor_id: &str, backoff: &str) -> ExecutorEnv {
    ExecutorEnv::from_vars([
        ("MESOS_FRAMEWORK_ID", FW),
        ("MESOS_EXECUTOR_ID", executor_id),
        ("MESOS_AGENT_ENDPOINT", endpoint),
        ("MESOS_DIRECTORY", "/tmp"),
        ("MESOS_CHECKPOINT", "1"),
        ("MESOS_SUBSCRIPTION_BACKOFF_MAX", backoff),
        ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "3secs"),
    ])
    .unwrap()
}

fn run(
    env: ExecutorEnv,
    launcher: Arc<dyn Launcher>,
    checkpoint: Option<PathBuf>,
) -> std::thread::JoinHandle<Exit> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (_stop_tx, stop_rx) = tokio::sync::mpsc::channel(1);
            Session::run(env, launcher, checkpoint, stop_rx)
                .await
                .unwrap()
        })
    })
}

fn task(id: &str) -> serde_json::Value {
    json!({"name": "p", "task_id": {"value": id}, "agent_id": {"value": "agent-double-S0"}})
}

/// Kills the task and waits for a clean end.
fn finish(d: &AgentDouble, id: &str, h: std::thread::JoinHandle<Exit>) {
    d.kill(id, Some(Duration::from_millis(500)));
    d.wait_state(id, "TASK_KILLED", Duration::from_secs(10));
    assert_eq!(h.join().unwrap(), Exit::Done);
    assert!(d.violations().is_empty(), "{:?}", d.violations());
}

#[test]
fn an_update_made_while_subscribing_reaches_the_agent_at_once() {
    // An executor restarted with a checkpointed task: the task's RUNNING (from the
    // recovered runner) is made after SUBSCRIBE left, so SUBSCRIBE does not carry it.
    let ex = "marathon-late.1";
    let d = AgentDouble::start(FW, ex);
    d.state().tasks.insert(
        "late.1".into(),
        TaskView {
            info: task("late.1"),
            states: Vec::new(),
            terminal: false,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("session.json");
    let mut store = UpdateStore::new();
    store.add_task("late.1", task("late.1"));
    std::fs::write(&ckpt, serde_json::to_vec(&store).unwrap()).unwrap();
    let h = run(
        env(&d.endpoint, ex, "100ms"),
        Arc::new(Quick {
            kill_delay: Duration::ZERO,
        }),
        Some(ckpt),
    );
    assert!(d.wait(Duration::from_secs(10), |st| st.stream.is_some()));
    let subscribed = Instant::now();
    d.wait_state("late.1", "TASK_RUNNING", Duration::from_secs(20));
    let latency = subscribed.elapsed();
    let sub = d.state().subscriptions[0].clone();
    assert_eq!(
        sub["subscribe"]["unacknowledged_updates"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "the scenario needs an update SUBSCRIBE did not carry: {sub}"
    );
    assert!(
        latency < Duration::from_secs(1),
        "TASK_RUNNING reached the agent {latency:?} after SUBSCRIBED"
    );
    finish(&d, "late.1", h);
}

#[test]
fn an_agent_restart_during_shutdown_does_not_lose_task_killed() {
    let ex = "marathon-shut.1";
    let d = AgentDouble::start(FW, ex);
    d.launch_on_subscribe(task("shut.1"));
    let h = run(
        env(&d.endpoint, ex, "100ms"),
        Arc::new(Quick {
            kill_delay: Duration::from_millis(600),
        }),
        None,
    );
    d.wait_state("shut.1", "TASK_RUNNING", Duration::from_secs(10));
    assert!(d.wait(Duration::from_secs(5), |st| st.uuids.values().all(|a| *a)));
    d.shutdown();
    // The agent goes away once SHUTDOWN is delivered, before the task is killed
    // (nothing is unacknowledged then).
    std::thread::sleep(Duration::from_millis(150));
    d.go_away();
    std::thread::sleep(Duration::from_millis(900));
    d.come_back(Duration::from_millis(200));
    d.wait_state("shut.1", "TASK_KILLED", Duration::from_secs(5));
    assert_eq!(h.join().unwrap(), Exit::Shutdown);
    assert!(d.violations().is_empty(), "{:?}", d.violations());
}

#[test]
fn an_agent_refusing_connections_at_start_is_retried_until_it_listens() {
    let ex = "marathon-cr.1";
    let d = AgentDouble::start(FW, ex);
    d.go_away();
    d.launch_on_subscribe(task("cr.1"));
    let h = run(
        env(&d.endpoint, ex, "100ms"),
        Arc::new(Quick {
            kill_delay: Duration::ZERO,
        }),
        None,
    );
    // Refused (nothing listens): the executor keeps trying, within the backoff.
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !h.is_finished(),
        "the executor gave up on a refused connection"
    );
    assert!(d.state().answers.is_empty());
    d.come_back(Duration::ZERO);
    d.wait_state("cr.1", "TASK_RUNNING", Duration::from_secs(10));
    assert_eq!(d.state().subscriptions.len(), 1);
    finish(&d, "cr.1", h);
}

#[test]
fn subscribe_answered_404_is_retried() {
    let ex = "marathon-nf.1";
    let d = AgentDouble::start(FW, ex);
    d.state().not_found_until = Some(Instant::now() + Duration::from_millis(800));
    d.launch_on_subscribe(task("nf.1"));
    let h = run(
        env(&d.endpoint, ex, "100ms"),
        Arc::new(Quick {
            kill_delay: Duration::ZERO,
        }),
        None,
    );
    d.wait_state("nf.1", "TASK_RUNNING", Duration::from_secs(10));
    let n404 = d.state().answers.iter().filter(|a| a.status == 404).count();
    assert!(n404 >= 2, "{:?}", d.state().answers);
    finish(&d, "nf.1", h);
}

#[test]
fn retries_against_a_recovering_agent_stay_within_the_backoff_max() {
    let ex = "marathon-bo.1";
    let d = AgentDouble::start(FW, ex);
    d.launch_on_subscribe(task("bo.1"));
    let h = run(
        env(&d.endpoint, ex, "200ms"),
        Arc::new(Quick {
            kill_delay: Duration::ZERO,
        }),
        None,
    );
    d.wait_state("bo.1", "TASK_RUNNING", Duration::from_secs(10));
    d.go_away();
    d.come_back(Duration::from_millis(2000));
    assert!(d.wait(Duration::from_secs(10), |st| st.subscriptions.len() == 2));
    let times: Vec<Instant> = d
        .state()
        .answers
        .iter()
        .filter(|a| a.status == 503)
        .map(|a| a.at)
        .collect();
    assert!(times.len() >= 4, "only {} retries in 2 s", times.len());
    // The delay is random in [0, 200ms]; a request takes a few ms on top (more on a
    // loaded machine).
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap <= Duration::from_millis(200 + 250),
            "gap {gap:?} > backoff max"
        );
    }
    finish(&d, "bo.1", h);
}

#[test]
fn message_and_error_events_leave_the_session_working() {
    let ex = "marathon-msg.1";
    let d = AgentDouble::start(FW, ex);
    d.launch_on_subscribe(task("msg.1"));
    let h = run(
        env(&d.endpoint, ex, "100ms"),
        Arc::new(Quick {
            kill_delay: Duration::ZERO,
        }),
        None,
    );
    d.wait_state("msg.1", "TASK_RUNNING", Duration::from_secs(10));
    d.send_raw(json!({"type": "MESSAGE", "message": {"data": "aGVsbG8gZXhlY3V0b3I="}}));
    d.send_raw(json!({"type": "ERROR", "error": {"message": "framework says hi"}}));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(d.state().subscriptions.len(), 1, "the stream was dropped");
    finish(&d, "msg.1", h);
}

#[test]
fn records_split_across_chunks_and_packed_decode() {
    let ex = "marathon-chunks.1";
    let d = AgentDouble::start(FW, ex);
    {
        let mut st = d.state();
        st.pieces = 3;
        st.pack = 4;
        st.framework_capabilities = vec!["TASK_KILLING_STATE".into()];
    }
    d.launch_on_subscribe(task("chunks.1"));
    d.launch_on_subscribe(task("chunks.2"));
    let h = run(
        env(&d.endpoint, ex, "100ms"),
        Arc::new(Quick {
            kill_delay: Duration::from_millis(100),
        }),
        None,
    );
    d.wait_state("chunks.1", "TASK_RUNNING", Duration::from_secs(10));
    d.wait_state("chunks.2", "TASK_RUNNING", Duration::from_secs(10));
    // SUBSCRIBED and both LAUNCHes were queued together: packed into chunks.
    assert!(d.state().packed_writes > 0, "nothing was packed");
    d.heartbeat();
    d.kill("chunks.1", Some(Duration::from_millis(500)));
    d.wait_state("chunks.1", "TASK_KILLING", Duration::from_secs(10));
    d.wait_state("chunks.1", "TASK_KILLED", Duration::from_secs(10));
    assert_eq!(d.state().subscriptions.len(), 1, "the stream broke");
    finish(&d, "chunks.2", h);
}
