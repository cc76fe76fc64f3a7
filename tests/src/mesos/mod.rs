//! A Mesos agent double for the executor HTTP API, as strict as the real agent.
//!
//! It launches the executor with the real `MESOS_*` and Marathon environment
//! ([`ExecutorSpec`]), answers with the agent's status codes in the agent's order
//! ([`validate`]), sends SUBSCRIBED then LAUNCH, acknowledges each update after
//! "persisting" it, deduplicates by uuid, can delay or drop acknowledgements, go away
//! (connection refused) and come back answering 503 while "recovering", send KILL with or
//! without a kill policy (and repeat it like Marathon), SHUTDOWN, enforce a registration
//! timeout, and records every violation of the protocol ([`AgentDouble::violations`]).
//!
//! # Layout
//! - `proto`: the agent's JSON -> protobuf parse (types, enums, base64, required fields).
//! - `schema`: Apache Mesos' v1 protos (tests/proto): every Call must fit them (unknown
//!   fields are violations), every Event the double builds is checked against them.
//! - `validate`: the agent's request checks, pure functions.
//! - `tls`: certificates (rcgen) for a TLS double ([`AgentDouble::start_tls`]).
//! - `http`: the HTTP side on berth-http's server (requests, answers, RecordIO chunks).
//! - `state`: what the double records and checks across calls.
//! - `server`: the accept loop, the event stream, acknowledgements.
//! - `process`: starting the executor the way the agent and Marathon do.
//! - `harness`: the end-to-end lab (image, dirs, runc root, leftover checks).

pub mod harness;
pub mod http;
pub mod process;
pub mod proto;
pub mod schema;
pub mod server;
pub mod state;
pub mod tls;
pub mod validate;

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;

pub use process::{ExecutorProcess, ExecutorSpec};
use server::{send_event, Command, Shared};
use state::State;
use validate::AgentView;

/// A running double. Dropping it stops the server (the executor process is separate).
pub struct AgentDouble {
    shared: Shared,
    cmds: mpsc::UnboundedSender<Command>,
    pub endpoint: String,
    runtime: Option<std::thread::JoinHandle<()>>,
    /// The certificates of a TLS double.
    pub pki: Option<tls::Pki>,
}

impl AgentDouble {
    /// Starts a double on 127.0.0.1 with a free port, for one framework and executor.
    pub fn start(framework_id: &str, executor_id: &str) -> AgentDouble {
        AgentDouble::start_with(framework_id, executor_id, None)
    }

    /// A double serving TLS only (certificates from [`tls::Pki`]), requiring a client
    /// certificate. [`AgentDouble::spawn_executor`] gives the executor the agent's
    /// `LIBPROCESS_SSL_*` environment unless the spec sets `LIBPROCESS_SSL_ENABLED`.
    pub fn start_tls(framework_id: &str, executor_id: &str) -> AgentDouble {
        AgentDouble::start_with(framework_id, executor_id, Some(tls::Pki::new()))
    }

    fn start_with(framework_id: &str, executor_id: &str, pki: Option<tls::Pki>) -> AgentDouble {
        let view = AgentView {
            recovering: false,
            subscribed: false,
            framework_id: framework_id.into(),
            executor_id: executor_id.into(),
            token: None,
            forgot_framework: false,
            executor_gone: false,
        };
        let shared: Shared = Arc::new((
            Mutex::new(State::new(view, "agent-double-S0".into())),
            Condvar::new(),
        ));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the double");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let endpoint = std_listener.local_addr().expect("addr").to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        let sh = shared.clone();
        let server_tls = pki.as_ref().map(tls::Pki::server_config);
        let runtime = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                server::serve(listener, server_tls, sh, rx).await;
            });
        });
        AgentDouble {
            shared,
            cmds: tx,
            endpoint,
            runtime: Some(runtime),
            pki,
        }
    }

    /// The state, locked (read what was recorded, or change a knob).
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.shared.0.lock().unwrap()
    }

    /// Waits until `cond` holds or `timeout` passes; returns whether it held.
    pub fn wait(&self, timeout: Duration, mut cond: impl FnMut(&State) -> bool) -> bool {
        let end = Instant::now() + timeout;
        let (m, cv) = &*self.shared;
        let mut st = m.lock().unwrap();
        loop {
            if cond(&st) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            // Wake regularly too: some conditions depend on time or on other processes.
            st = cv
                .wait_timeout(st, (end - now).min(Duration::from_millis(100)))
                .unwrap()
                .0;
        }
    }

    /// Waits for a state of a task; panics with what was seen if it does not come.
    pub fn wait_state(&self, task_id: &str, state: &str, timeout: Duration) {
        let ok = self.wait(timeout, |st| st.states(task_id).iter().any(|s| s == state));
        if !ok {
            let st = self.state();
            panic!(
                "task {task_id} never reached {state} within {timeout:?}; states {:?}; updates {:#?}; violations {:?}",
                st.states(task_id),
                st.updates,
                st.violations
            );
        }
    }

    /// Requires the executor's authentication token on every call.
    pub fn require_token(&self, token: &str) {
        self.state().view.token = Some(token.to_string());
    }

    pub fn violations(&self) -> Vec<String> {
        self.state().violations.clone()
    }

    /// Sends LAUNCH now (the executor must be subscribed).
    pub fn launch(&self, task: Value) {
        let (m, cv) = &*self.shared;
        let mut st = m.lock().unwrap();
        server::launch_into(&mut st, task);
        cv.notify_all();
    }

    /// Sends LAUNCH of a TaskInfo that does not fit the Mesos protos (no agent sends
    /// one; for the executor's robustness).
    pub fn launch_unchecked(&self, task: Value) {
        let (m, cv) = &*self.shared;
        let mut st = m.lock().unwrap();
        server::launch_unchecked_into(&mut st, task);
        cv.notify_all();
    }

    /// LAUNCH this task right after the first SUBSCRIBED (like a real agent).
    pub fn launch_on_subscribe(&self, task: Value) {
        self.state().launch_on_subscribe.push(task);
    }

    /// KILL, with a kill policy grace period if given.
    pub fn kill(&self, task_id: &str, grace: Option<Duration>) {
        let mut kill = json!({"task_id": {"value": task_id}});
        if let Some(g) = grace {
            kill["kill_policy"] = json!({"grace_period": {"nanoseconds": g.as_nanos() as i64}});
        }
        send_event(&mut self.state(), json!({"type": "KILL", "kill": kill}));
    }

    /// KILL `times` times, `every` apart, as Marathon does while a task does not die.
    pub fn kill_like_marathon(
        &self,
        task_id: &str,
        grace: Option<Duration>,
        every: Duration,
        times: usize,
    ) {
        for i in 0..times {
            if i > 0 {
                std::thread::sleep(every);
            }
            if self.state().tasks.get(task_id).is_some_and(|t| t.terminal) {
                return;
            }
            self.kill(task_id, grace);
        }
    }

    /// SHUTDOWN; the executor must be gone within its shutdown grace period (the
    /// double's watcher records a violation and kills it otherwise, as the agent does).
    pub fn shutdown(&self) {
        let mut st = self.state();
        if st.executor_pid.is_some() {
            st.shutdown_by = Some(Instant::now() + st.shutdown_grace);
        }
        send_event(&mut st, json!({"type": "SHUTDOWN"}));
    }

    pub fn heartbeat(&self) {
        send_event(&mut self.state(), json!({"type": "HEARTBEAT"}));
    }

    /// Sends any event (for unknown types and fields).
    pub fn send_raw(&self, event: Value) {
        server::send_unchecked(&mut self.state(), event);
    }

    /// The agent stops: the stream closes, connections are refused.
    pub fn go_away(&self) {
        let _ = self.cmds.send(Command::GoAway);
        assert!(
            self.wait(Duration::from_secs(5), |st| !st.up),
            "the double did not go down"
        );
    }

    /// The agent is back on the same port, answering 503 for `recovering` first. Like
    /// the real agent's recovery: a checkpointing framework's executor must resubscribe
    /// within the reregistration timeout after that (else it is a violation, the
    /// executor is refused from then on and [`AgentDouble::enforce_reregistration`]
    /// kills it); a non-checkpointing framework is not recovered at all (its executor is
    /// refused as unknown, and trying is a violation).
    pub fn come_back(&self, recovering: Duration) {
        {
            let mut st = self.state();
            let back = Instant::now() + recovering;
            st.recovering_until = Some(back);
            if st.checkpoint {
                st.reregister_by = Some(back + st.reregistration_timeout);
            } else {
                st.view.forgot_framework = true;
            }
        }
        let _ = self.cmds.send(Command::ComeBack);
        assert!(
            self.wait(Duration::from_secs(5), |st| st.up),
            "the double could not listen again"
        );
    }

    /// Launches the executor with the agent's and Marathon's environment, and watches
    /// its process as the agent does: a missing SUBSCRIBE within `registration_timeout`
    /// is a violation and the executor is killed; after SHUTDOWN it must be gone within
    /// MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD (else violation and kill); when it ends, its
    /// non-terminal tasks become TASK_FAILED / REASON_EXECUTOR_TERMINATED and the
    /// executor id is refused from then on ([`state::State::executor_ended`]).
    ///
    /// An agent never launches an executor id again after it ended: once it has, this
    /// starts the process without the agent knowing it (its SUBSCRIBE is answered 400
    /// "Executor cannot be found"), unless `accept_relaunch_after_death` is set.
    pub fn spawn_executor(
        &self,
        spec: &ExecutorSpec,
        registration_timeout: Duration,
    ) -> ExecutorProcess {
        let launched = {
            let mut st = self.state();
            // The previous executor may have died a moment ago, before the watcher's
            // next look: the agent would have noticed first.
            if let Some(pid) = st.executor_pid {
                if !process_alive(pid, None).0 {
                    st.executor_ended();
                }
            }
            if st.executor_exited && !st.accept_relaunch_after_death {
                false
            } else {
                st.register_by = Some(Instant::now() + registration_timeout);
                st.view.subscribed = false;
                st.checkpoint = spec.checkpoint;
                st.shutdown_grace = spec
                    .shutdown_grace
                    .parse::<berth_executor::mesos::duration::StoutDuration>()
                    .map(|d| d.0)
                    .unwrap_or(Duration::from_secs(5));
                st.shutdown_by = None;
                // A new launch: the agent knows the framework and this executor (again).
                st.view.forgot_framework = false;
                st.view.executor_gone = false;
                st.reregister_by = None;
                true
            }
        };
        let mut spec = spec.clone();
        if let Some(pki) = &self.pki {
            if !spec.env.iter().any(|(k, _)| k == "LIBPROCESS_SSL_ENABLED") {
                spec.env.extend(pki.executor_env(&pki.ca));
            }
        }
        let exec = spec.spawn(&self.endpoint, &self.state().agent_id.clone());
        if launched {
            self.state().executor_pid = Some(exec.pid());
            watch_executor(&self.shared, exec.pid());
        }
        exec
    }

    /// Waits for a subscription until the registration deadline; on timeout records a
    /// violation and kills the executor, as the agent does (the double's watcher does
    /// this too, without being asked).
    pub fn enforce_registration(&self, exec: &mut ExecutorProcess) -> bool {
        let by = self.state().register_by;
        let Some(by) = by else {
            return self.state().view.subscribed;
        };
        let left = by.saturating_duration_since(Instant::now()) + Duration::from_millis(50);
        let n = self.state().subscriptions.len();
        let ok = self.wait(left, |st| {
            st.subscriptions.len() > n || st.register_by.is_none()
        }) && self.state().view.subscribed;
        if !ok {
            self.state()
                .registration_expired(Instant::now() + Duration::from_secs(3600));
            exec.kill();
        }
        ok
    }

    /// Updates the agent generated itself (TASK_FAILED after the executor ended).
    pub fn agent_updates(&self) -> Vec<Value> {
        self.state().agent_updates.clone()
    }
}

/// Whether a process is still running (not gone, not a zombie) and is the one that
/// started at `start` (its start time in clock ticks, /proc/<pid>/stat field 22).
fn process_alive(pid: u32, start: Option<u64>) -> (bool, Option<u64>) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (false, start);
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return (false, start);
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first().copied().unwrap_or("X");
    let started = fields.get(19).and_then(|f| f.parse::<u64>().ok());
    if start.is_some() && started != start {
        return (false, start);
    }
    (!matches!(state, "Z" | "X" | "x"), started)
}

fn sigkill(pid: u32) {
    // SAFETY: kill(2) with a pid the double started and still watches; no memory involved.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// The agent's watch over the executor it launched (a thread per executor, ending with
/// the process or the double).
fn watch_executor(shared: &Shared, pid: u32) {
    let weak = Arc::downgrade(shared);
    std::thread::spawn(move || {
        let (_, mut start) = process_alive(pid, None);
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let Some(shared) = weak.upgrade() else { return };
            let (alive, s) = process_alive(pid, start);
            start = s;
            let (m, cv) = &*shared;
            // A test that panicked while holding the lock poisons it; keep watching.
            let mut st = m.lock().unwrap_or_else(|e| e.into_inner());
            if st.executor_pid != Some(pid) {
                return;
            }
            if !alive {
                st.executor_ended();
                cv.notify_all();
                return;
            }
            let now = Instant::now();
            if st.registration_expired(now) || st.shutdown_overrun(now) {
                sigkill(pid);
                cv.notify_all();
            }
        }
    });
}

impl AgentDouble {
    /// After [`AgentDouble::come_back`]: waits for the resubscription until the
    /// reregistration deadline; when it does not come, records the violation and kills
    /// the executor, as the agent shuts down an executor that did not reregister.
    pub fn enforce_reregistration(&self, exec: &mut ExecutorProcess) -> bool {
        let by = self.state().reregister_by;
        let Some(by) = by else {
            return !self.state().view.executor_gone;
        };
        let left = by.saturating_duration_since(Instant::now()) + Duration::from_millis(50);
        let ok = self.wait(left, |st| st.view.subscribed);
        if !ok {
            self.state()
                .reregistration_expired(Instant::now() + Duration::from_millis(50));
            exec.kill();
        }
        ok
    }
}

impl Drop for AgentDouble {
    fn drop(&mut self) {
        let (tx, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.cmds, tx));
        if let Some(h) = self.runtime.take() {
            let _ = h.join();
        }
    }
}
