//! The task runner: plan, prepare, start, wait until running, watch health, kill, tear
//! down, report. One tokio task per task; it talks to the session only through
//! [`TaskEvent`]s and the kill deadline.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use crate::mesos::types::{Reason, TaskState};
use crate::session::{LaunchRequest, Launcher, TaskEvent};

use super::appspec;
use super::builtin::{self, default_steps, Container, RUNTIME_SETTING};
use super::config::RunConfig;
use super::health::{HealthSpec, HealthState, Verdict};
use super::init_client::{self, InitError, InitStatus};
use super::network;
use super::plan::{Mode, Plan};
use super::runc::{self, Runtime};
use super::steps::{self, Checkpoint, Outputs, Phase, Step, StepCtx};

/// Runs tasks as runc containers.
pub struct ContainerLauncher {
    pub cfg: RunConfig,
    /// The app's `cmd` Marathon appended to the executor command line.
    pub executor_cmd: Option<String>,
}

impl Launcher for ContainerLauncher {
    fn launch(&self, req: LaunchRequest) {
        let cfg = self.cfg.clone();
        let cmd = self.executor_cmd.clone();
        tokio::spawn(async move { run_task(cfg, cmd, req).await });
    }
}

/// How often RUNNING is asked of `runc state` (a container of init's tini mode, started
/// by an older executor) or of an older init that does not know the `wait` request.
const POLL: Duration = Duration::from_millis(20);

/// The safety net: the exit file is read at least this often, whatever wakes the runner
/// (the wrapper's exit normally does at once, through its pidfd).
const SAFETY_POLL: Duration = Duration::from_millis(250);

/// How soon a signal the runtime could not deliver yet (no container yet, or its init
/// without a handler for it) is tried again.
const SIGNAL_RETRY: Duration = Duration::from_millis(10);

/// How long one `wait` request asks init to hold its answer.
const INIT_WAIT: Duration = Duration::from_secs(10);

/// Every preparation step, in the order they run. A task gets those its plan and the
/// executor's settings call for: `volume` with a `home` resource and a volume backend,
/// `appspec` for a plain command, `network` with BERTH_EXECUTOR_NET_PARENT; the others
/// always. (A test injects a failure at each one: see `tests/tests/e2e_prepare_failures.rs`.)
pub const STEP_ORDER: [&str; 9] = [
    "scratch",
    "volume",
    "rundir",
    "appspec",
    "image",
    "rootfs",
    "network",
    "bundle",
    "container",
];

/// The task's steps in [`STEP_ORDER`].
fn task_steps(plan: &Plan, cfg: &RunConfig, net: Option<network::Network>) -> Vec<Box<dyn Step>> {
    let mut steps = default_steps();
    // The /home volume first (DESIGN 2a), when the task asks for one.
    if let Some(v) = super::volume::step_for(plan, cfg) {
        steps.insert(0, v);
    }
    // The writable layer's volume (the task's `disk`) before everything else.
    if let Some(s) = super::scratch::step_for(plan, cfg) {
        steps.insert(0, s);
    }
    if let Some(n) = net {
        // After the root filesystem, before the bundle (which joins the netns).
        let at = steps
            .iter()
            .position(|s| s.name() == "bundle")
            .unwrap_or(steps.len());
        steps.insert(at, Box::new(n));
    }
    appspec::insert_step(&mut steps, plan);
    steps
}

fn send(req: &LaunchRequest, ev: TaskEvent) {
    let _ = req.events.send(ev);
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn join_errors(errs: &[steps::StepError]) -> String {
    errs.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn run_task(cfg: RunConfig, executor_cmd: Option<String>, req: LaunchRequest) {
    let id = req.task.task_id.value.clone();
    if !req.recover {
        send(&req, TaskEvent::new(&id, TaskState::TaskStarting));
    }
    let planned =
        Plan::from_task(&req.task, &req.env, executor_cmd.as_deref(), &cfg).and_then(|mut p| {
            let net = network::from_task(&req.task, cfg.net.as_ref(), p.bandwidth_mbit)?;
            if net.is_some() {
                // berth-init acquires a DHCP lease on eth0 before starting services (a
                // plain command included: it runs as init's one service, see `appspec`).
                p.env
                    .push(format!("BERTH_DHCP_IFACE={}", network::CONTAINER_IFACE));
            }
            Ok((p, net))
        });
    let (plan, net) = match planned {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(task = %id, error = %e, "invalid task");
            send(
                &req,
                TaskEvent::new(&id, TaskState::TaskFailed)
                    .reason(Reason::ReasonContainerLaunchFailed)
                    .message(format!("invalid task: {e}")),
            );
            return;
        }
    };
    let steps = task_steps(&plan, &cfg, net);
    let ctx = Arc::new(StepCtx {
        plan,
        cfg,
        sandbox: req.sandbox.clone(),
        outputs: Mutex::new(Outputs::default()),
    });
    let all: Arc<Vec<Box<dyn Step>>> = Arc::new(steps);
    let mut legacy_tini = false;
    if req.recover {
        let state = ctx.state_dir();
        let cp = Checkpoint::load(&state);
        let adopt = match &cp {
            Some(cp) if cp.phase("container") == Some(Phase::Done) => {
                if let Ok(mut o) = ctx.outputs.lock() {
                    *o = cp.outputs.clone();
                }
                let rt = Container::runtime(&ctx);
                let cid = ctx.plan.container_id.clone();
                let alive = blocking(move || rt.state(&cid))
                    .await
                    .ok()
                    .flatten()
                    .is_some();
                alive || ctx.exit_file().exists()
            }
            _ => false,
        };
        if !adopt {
            let msg = match cp {
                Some(cp) => {
                    let (c, a) = (ctx.clone(), all.clone());
                    let errs = blocking(move || steps::undo_all(&a, &c, &cp)).await;
                    let mut m = "the executor restarted while the container was being prepared or after it vanished; preparation undone".to_string();
                    if !errs.is_empty() {
                        m.push_str(&format!(" (undo errors: {})", join_errors(&errs)));
                    }
                    m
                }
                None => "the executor restarted before the container was prepared".to_string(),
            };
            send(
                &req,
                TaskEvent::new(&id, TaskState::TaskFailed)
                    .reason(Reason::ReasonExecutorTerminated)
                    .message(msg),
            );
            return;
        }
        tracing::info!(task = %id, "re-attached to the running container");
        // A plain command started by an executor from before the `appspec` step runs
        // under init's tini mode: no status socket, so RUNNING comes from `runc state`.
        let tini = matches!(ctx.plan.mode, Mode::Command(_))
            && cp.as_ref().is_some_and(|cp| cp.phase("appspec").is_none());
        if tini {
            tracing::info!(task = %id, "the container runs init's tini mode (started by an older executor)");
        }
        legacy_tini = tini;
    } else {
        if req.kill.borrow().is_some() {
            send(
                &req,
                TaskEvent::new(&id, TaskState::TaskKilled)
                    .reason(Reason::ReasonTaskKilledDuringLaunch),
            );
            return;
        }
        // The runtime setting is checked before anything is made (the probe is cached
        // for the container step and every later runtime command, and recorded next to
        // the session checkpoints for the next executors: see `runc::probe_recorded`).
        let binary = ctx.cfg.runtime.clone();
        let records = ctx.cfg.state_dir.join("executors");
        if let Err(e) = blocking(move || runc::probe_recorded(&binary, Some(&records))).await {
            tracing::warn!(task = %id, error = %e, "unusable runtime");
            send(
                &req,
                TaskEvent::new(&id, TaskState::TaskFailed)
                    .reason(Reason::ReasonContainerLaunchFailed)
                    .message(format!(
                        "invalid task: executor setting {RUNTIME_SETTING}: {e}"
                    )),
            );
            return;
        }
        let (c, a) = (ctx.clone(), all.clone());
        // A KILL arriving during the preparation stops it before the next step (the
        // container included): what was made is undone, TASK_KILLED during launch.
        let kill = req.kill.clone();
        let stop = move || kill.borrow().is_some();
        match blocking(move || steps::prepare_unless(&a, &c, &stop)).await {
            Err(errs) => {
                tracing::error!(task = %id, errors = %join_errors(&errs), "preparation failed");
                send(
                    &req,
                    TaskEvent::new(&id, TaskState::TaskFailed)
                        .reason(Reason::ReasonContainerLaunchFailed)
                        .message(format!(
                            "container preparation failed: {}",
                            join_errors(&errs)
                        )),
                );
                return;
            }
            Ok(steps::Prepared::Stopped(errs)) => {
                tracing::info!(task = %id, "killed during the launch: preparation undone");
                let mut ev = TaskEvent::new(&id, TaskState::TaskKilled)
                    .reason(Reason::ReasonTaskKilledDuringLaunch);
                if !errs.is_empty() {
                    ev = ev.message(format!(
                        "killed during the launch (undo errors: {})",
                        join_errors(&errs)
                    ));
                }
                send(&req, ev);
                return;
            }
            Ok(steps::Prepared::Done) => {}
        }
    }
    supervise(ctx, all, req, legacy_tini).await;
}

/// How often init's own health is read when the task has no health check.
const INIT_HEALTH_EVERY: Duration = Duration::from_secs(2);

/// Names of services init reports as unhealthy, `None` if there are none.
fn unhealthy_services(st: &init_client::InitStatus) -> Option<String> {
    let bad: Vec<&str> = st
        .services
        .iter()
        .filter(|s| s.healthy == Some(false))
        .map(|s| s.name.as_str())
        .collect();
    (!bad.is_empty()).then(|| bad.join(", "))
}

/// How the container ended.
struct Ending {
    code: Option<i32>,
    killed: bool,
    unhealthy: bool,
    running_seen: bool,
}

fn read_exit(path: &PathBuf) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn stderr_tail(sandbox: &std::path::Path) -> String {
    let text = std::fs::read_to_string(sandbox.join("stderr")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// How soon the runner tries init's socket again while it does not answer: often while
/// the container starts (init binds it some 20-50 ms after the runtime started), then
/// every [`POLL`].
fn socket_retry(since_start: Duration) -> Duration {
    if since_start < Duration::from_secs(2) {
        Duration::from_millis(2)
    } else {
        POLL
    }
}

/// The address init reported, cross-checked against the addresses on `eth0` in the
/// task's netns when the network step made one (the report comes from inside the
/// container): a fake or unreadable one is dropped with a warning.
async fn checked_ip(ctx: &StepCtx, reported: Option<String>) -> Option<String> {
    let netns = ctx.outputs().netns?;
    let rep = reported.clone()?;
    let found = tokio::task::spawn_blocking(move || super::network::container_addresses(&netns))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    match found {
        Ok(on) => {
            let ok = super::network::verified_ip(Some(&rep), &on);
            if ok.is_none() {
                tracing::warn!(reported = %rep, on_eth0 = ?on, "berth-init reported an address not on the task's eth0: not reported");
            }
            ok
        }
        Err(e) => {
            tracing::warn!(reported = %rep, error = %e, "cannot read the task's addresses: the address is not reported");
            None
        }
    }
}

/// Waits until berth-init says `running` and returns that status. Each `wait` request is
/// held by init until its state changes, so RUNNING follows init's own change at once;
/// `answered` is set at init's first answer (it binds its socket only after blocking
/// every signal for its signalfd: from then on a TERM is never lost). An older init
/// without `wait` is asked `status` every [`POLL`].
async fn init_running(socket: PathBuf, answered: Arc<AtomicBool>) -> Option<InitStatus> {
    let start = Instant::now();
    let mut since = "starting".to_string();
    let mut has_wait = true;
    loop {
        let r = if has_wait {
            init_client::wait_change(&socket, &since, INIT_WAIT).await
        } else {
            init_client::status(&socket, Duration::from_millis(500)).await
        };
        match r {
            Ok(st) => {
                answered.store(true, Ordering::Release);
                if st.state == "running" {
                    return Some(st);
                }
                if has_wait {
                    since = st.state;
                } else {
                    tokio::time::sleep(POLL).await;
                }
            }
            Err(InitError::Unsupported(e)) => {
                answered.store(true, Ordering::Release);
                tracing::debug!(error = %e, "berth-init without `wait`: polling its status");
                has_wait = false;
            }
            Err(e) => {
                tracing::trace!(error = %e, "berth-init not answering yet");
                tokio::time::sleep(socket_retry(start.elapsed())).await;
            }
        }
    }
}

/// Waits until the runtime says the container runs (init's tini mode: no socket).
async fn runtime_running(rt: Runtime, cid: String) -> Option<InitStatus> {
    loop {
        let (r, c) = (rt.clone(), cid.clone());
        if matches!(blocking(move || r.state(&c)).await, Ok(Some(s)) if s.status == "running") {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

type RunningWatch = Pin<Box<dyn Future<Output = Option<InitStatus>> + Send>>;

/// The watch's result; never ready without one.
async fn running(watch: &mut Option<RunningWatch>) -> Option<InitStatus> {
    match watch {
        Some(w) => w.await,
        None => std::future::pending().await,
    }
}

/// Ready once the wrapper has exited; never without its pidfd.
async fn wrapper_exited(fd: &Option<AsyncFd<OwnedFd>>) {
    match fd {
        Some(fd) => {
            if fd.readable().await.is_err() {
                // Not pollable after all: leave it to the safety poll.
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending().await,
    }
}

/// `legacy_tini`: the container runs `berth-init -- /bin/sh -c CMD` (re-attached after an
/// upgrade from an executor that ran plain commands that way): RUNNING from `runc state`.
///
/// Nothing here polls on a fixed beat: the runner wakes when the wrapper exits (its
/// pidfd), when init's held `wait` answers, at a KILL, at a health check's or the grace
/// period's time, or at the [`SAFETY_POLL`] that reads the exit file whatever happened.
async fn supervise(
    ctx: Arc<StepCtx>,
    all: Arc<Vec<Box<dyn Step>>>,
    mut req: LaunchRequest,
    legacy_tini: bool,
) {
    let id = req.task.task_id.value.clone();
    let rt = Container::runtime(&ctx);
    let cid = ctx.plan.container_id.clone();
    let socket = ctx.run_dir().join("init.sock");
    let started = Instant::now();
    let health = ctx
        .plan
        .health
        .as_ref()
        .and_then(|h| HealthSpec::from_proto(h).ok());
    let mut hstate = HealthState::default();
    let mut next_check = health.as_ref().map(|h| started + h.delay);
    let (probe_tx, mut probe_rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let mut probing = false;
    let mut ip = ctx.outputs().ip;
    let mut running_sent = false;
    let mut end = Ending {
        code: None,
        killed: false,
        unhealthy: false,
        running_seen: false,
    };
    let mut term_sent = false;
    let mut kill_sent = false;
    let mut self_deadline: Option<Instant> = None;
    let mut kill_open = true;
    let exit_file = ctx.exit_file();
    let mut init_next = Instant::now();
    let mut init_reported: Option<bool> = None;
    // init answered on its socket: its signals are blocked for its signalfd.
    let init_answered = Arc::new(AtomicBool::new(false));
    let mut running_watch: Option<RunningWatch> = Some(if legacy_tini {
        Box::pin(runtime_running(rt.clone(), cid.clone()))
    } else {
        Box::pin(init_running(socket.clone(), init_answered.clone()))
    });
    let mut exit_fd = builtin::wrapper_pidfd(&ctx).and_then(|fd| {
        // SAFETY: an OwnedFd is a valid open descriptor, owned by the AsyncFd from here
        // on and closed only when it is dropped; its as_raw_fd never changes.
        unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
    });
    loop {
        if let Some(code) = read_exit(&exit_file) {
            end.code = Some(code);
            break;
        }
        let deadline = (*req.kill.borrow()).into_iter().chain(self_deadline).min();
        let now = Instant::now();
        let mut wake = now + SAFETY_POLL;
        if let Some(d) = deadline {
            end.killed = true;
            running_watch = None;
            // A signal sent before the runtime has created the container fails, and one
            // init could lose is refused: either is retried until it lands (or the
            // container has exited). Once init has answered, the check is not needed.
            if !term_sent {
                let (r, c) = (rt.clone(), cid.clone());
                let ready = init_answered.load(Ordering::Acquire);
                let sent = blocking(move || {
                    if ready {
                        r.kill_ready(&c, "TERM")
                    } else {
                        r.kill(&c, "TERM")
                    }
                })
                .await;
                match sent {
                    Ok(()) => term_sent = true,
                    Err(e) => tracing::debug!(error = %e, "runc kill TERM (will retry)"),
                }
            }
            if now >= d && !kill_sent {
                tracing::info!(task = %id, "grace period over: SIGKILL");
                let (r, c) = (rt.clone(), cid.clone());
                match blocking(move || r.kill(&c, "KILL")).await {
                    Ok(()) => kill_sent = true,
                    Err(e) => tracing::debug!(error = %e, "runc kill KILL (will retry)"),
                }
            }
            if !kill_sent {
                wake = wake.min(d);
            }
            if !term_sent || (now >= d && !kill_sent) {
                wake = wake.min(now + SIGNAL_RETRY);
            }
        }
        // Health checks, one at a time, after RUNNING and before any kill.
        if let (Some(spec), Some(at)) = (&health, next_check) {
            if running_sent && !end.killed && !probing {
                if Instant::now() >= at {
                    probing = true;
                    let (spec2, r, c, tx) =
                        (spec.clone(), rt.clone(), cid.clone(), probe_tx.clone());
                    let sock = socket.clone();
                    let bundle = ctx.bundle_dir();
                    tokio::spawn(async move {
                        let mut res =
                            super::probe::run(&spec2.probe, &r, &c, &bundle, spec2.timeout).await;
                        // Combined with init's own view of its services' health.
                        if res.is_ok() {
                            if let Ok(st) = init_client::status(&sock, spec2.timeout).await {
                                if let Some(bad) = unhealthy_services(&st) {
                                    res = Err(format!(
                                        "berth-init reports unhealthy services: {bad}"
                                    ));
                                }
                            }
                        }
                        let _ = tx.send(res);
                    });
                } else {
                    wake = wake.min(at);
                }
            }
        }
        // Without a TaskInfo health check, init's own health of its services is reported
        // (each change as TASK_RUNNING with `healthy`); init restarts what fails itself.
        if health.is_none() && running_sent && !end.killed {
            if Instant::now() >= init_next {
                init_next = Instant::now() + INIT_HEALTH_EVERY;
                if let Ok(st) = init_client::status(&socket, Duration::from_millis(500)).await {
                    let h = if st.services.iter().any(|s| s.healthy.is_some()) {
                        Some(unhealthy_services(&st).is_none())
                    } else {
                        None
                    };
                    if h.is_some() && h != init_reported {
                        init_reported = h;
                        let mut ev = TaskEvent::new(&id, TaskState::TaskRunning)
                            .reason(Reason::ReasonTaskHealthCheckStatusUpdated);
                        ev.healthy = h;
                        ev.ip = ip.clone();
                        send(&req, ev);
                    }
                }
            }
            wake = wake.min(init_next);
        }
        tokio::select! {
            r = req.kill.changed(), if kill_open => { if r.is_err() { kill_open = false; } }
            // Both modes run init in supervisor mode (a plain command as its one
            // service): RUNNING when init says its services run, with the address of
            // its DHCP lease.
            st = running(&mut running_watch) => {
                running_watch = None;
                if ip.is_none() {
                    ip = checked_ip(&ctx, st.as_ref().and_then(InitStatus::ip)).await;
                }
                if !end.killed {
                    running_sent = true;
                    end.running_seen = true;
                    let mut ev = TaskEvent::new(&id, TaskState::TaskRunning);
                    ev.ip = ip.clone();
                    send(&req, ev);
                }
            }
            // The wrapper exited (the exit file is read at the top of the loop).
            _ = wrapper_exited(&exit_fd) => { exit_fd = None; }
            Some(res) = probe_rx.recv() => {
                probing = false;
                if let Some(spec) = &health {
                    next_check = Some(Instant::now() + spec.interval);
                    let in_grace = started.elapsed() < spec.grace_period;
                    if let Err(why) = &res {
                        tracing::info!(task = %id, %why, "health check failed");
                    }
                    match hstate.record(res.is_ok(), in_grace, spec) {
                        Verdict::Nothing => {}
                        Verdict::Report(h) if !end.killed => {
                            let mut ev = TaskEvent::new(&id, TaskState::TaskRunning).reason(Reason::ReasonTaskHealthCheckStatusUpdated);
                            ev.healthy = Some(h);
                            ev.ip = ip.clone();
                            send(&req, ev);
                        }
                        Verdict::Report(_) => {}
                        Verdict::Kill => {
                            if !end.killed {
                                // The failure that triggers the kill is reported too.
                                let mut ev = TaskEvent::new(&id, TaskState::TaskRunning).reason(Reason::ReasonTaskHealthCheckStatusUpdated);
                                ev.healthy = Some(false);
                                ev.ip = ip.clone();
                                send(&req, ev);
                            }
                            tracing::warn!(task = %id, "too many consecutive health check failures: killing");
                            end.unhealthy = true;
                            // Through the session: TASK_KILLING if the framework wants it.
                            send(&req, TaskEvent::kill_request(&id));
                            let grace = crate::mesos::kill::grace(None, req.task.kill_policy.as_ref());
                            self_deadline = Some(Instant::now() + grace);
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    // Teardown, then the terminal update.
    let (c, a) = (ctx.clone(), all.clone());
    let errs = blocking(move || steps::undo_steps(&a, &c)).await;
    let code = end.code.unwrap_or(-1);
    let describe = if code > 128 {
        format!("killed by signal {}", code - 128)
    } else {
        format!("exited with status {code}")
    };
    let mut ev = if end.killed {
        let mut e =
            TaskEvent::new(&id, TaskState::TaskKilled).message(format!("container {describe}"));
        if end.unhealthy {
            // As Mesos' command executor: healthy:false on the terminal update, no reason.
            e.healthy = Some(false);
            e = e.message("killed after failing its health checks");
        }
        e
    } else if code == 0 {
        TaskEvent::new(&id, TaskState::TaskFinished).message(format!("container {describe}"))
    } else if !end.running_seen {
        TaskEvent::new(&id, TaskState::TaskFailed)
            .reason(Reason::ReasonContainerLaunchFailed)
            .message(format!(
                "container failed to start ({describe}): {}",
                stderr_tail(&ctx.sandbox)
            ))
    } else {
        TaskEvent::new(&id, TaskState::TaskFailed).message(format!("container {describe}"))
    };
    if !errs.is_empty() {
        let m = format!(
            "{}; teardown errors: {}",
            ev.message.clone().unwrap_or_default(),
            join_errors(&errs)
        );
        ev.message = Some(m);
    }
    send(&req, ev);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::types::TaskInfo;

    fn plan(home_mb: f64, mode: Mode) -> Plan {
        Plan {
            task_id: "t".into(),
            container_id: "berth-t".into(),
            hostname: "t".into(),
            cpus: 0.0,
            mem_mb: 0.0,
            disk_mb: 0.0,
            ports: vec![],
            home_mb,
            bandwidth_mbit: 0.0,
            image: "/".into(),
            mode,
            env: vec![],
            health: None,
        }
    }

    #[test]
    fn a_task_that_asks_for_everything_gets_every_step_in_the_published_order() {
        let task: TaskInfo = serde_json::from_value(serde_json::json!({
            "name": "t", "task_id": {"value": "t"}
        }))
        .unwrap();
        let net_cfg = network::NetConfig {
            parent: "eth9".into(),
            mode: "bridge".into(),
        };
        let net = network::from_task(&task, Some(&net_cfg), 0.0).unwrap();
        assert!(net.is_some());
        let cfg = RunConfig {
            disk: Some("enforce".into()),
            ..RunConfig::default()
        };
        let mut everything = plan(64.0, Mode::Command("true".into()));
        everything.disk_mb = 64.0;
        let full = task_steps(&everything, &cfg, net);
        let names: Vec<&str> = full.iter().map(|s| s.name()).collect();
        assert_eq!(names, STEP_ORDER);
        // The optional ones stay out, the others keep their order.
        let bare = task_steps(&plan(0.0, Mode::AppSpec), &cfg, None);
        let names: Vec<&str> = bare.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["rundir", "image", "rootfs", "bundle", "container"]);
    }

    #[test]
    fn the_socket_is_tried_often_while_the_container_starts_then_less() {
        assert_eq!(socket_retry(Duration::ZERO), Duration::from_millis(2));
        assert_eq!(socket_retry(Duration::from_secs(5)), POLL);
    }
}
