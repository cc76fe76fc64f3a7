//! The task runner: plan, prepare, start, wait until running, watch health, kill, tear
//! down, report. One tokio task per task; it talks to the session only through
//! [`TaskEvent`]s and the kill deadline.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::mesos::types::{Reason, TaskState};
use crate::session::{LaunchRequest, Launcher, TaskEvent};

use super::appspec;
use super::builtin::{default_steps, Container};
use super::config::RunConfig;
use super::health::{HealthSpec, HealthState, Verdict};
use super::init_client;
use super::network;
use super::plan::{Mode, Plan};
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

/// How often the runner looks at the exit file (and, before RUNNING, the container).
const POLL: Duration = Duration::from_millis(20);

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
    let ctx = Arc::new(StepCtx {
        plan,
        cfg,
        sandbox: req.sandbox.clone(),
        outputs: Mutex::new(Outputs::default()),
    });
    let mut steps = default_steps();
    // The /home volume first (DESIGN 2a), when the task asks for one.
    if let Some(v) = super::volume::step_for(&ctx.plan, &ctx.cfg) {
        steps.insert(0, v);
    }
    // The writable layer's volume (the task's `disk`) before everything else.
    if let Some(s) = super::scratch::step_for(&ctx.plan, &ctx.cfg) {
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
    appspec::insert_step(&mut steps, &ctx.plan);
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
        let (c, a) = (ctx.clone(), all.clone());
        if let Err(errs) = blocking(move || steps::prepare(&a, &c)).await {
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

/// `legacy_tini`: the container runs `berth-init -- /bin/sh -c CMD` (re-attached after an
/// upgrade from an executor that ran plain commands that way): RUNNING from `runc state`.
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
    loop {
        if let Some(code) = read_exit(&exit_file) {
            end.code = Some(code);
            break;
        }
        let deadline = (*req.kill.borrow()).into_iter().chain(self_deadline).min();
        if let Some(d) = deadline {
            end.killed = true;
            let now = Instant::now();
            // A signal sent before runc has created the container fails: it is retried
            // on the next round until it lands (or the container has exited).
            if !term_sent {
                let (r, c) = (rt.clone(), cid.clone());
                match blocking(move || r.kill(&c, "TERM")).await {
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
        }
        // Both modes run init in supervisor mode (a plain command as its one service):
        // RUNNING when init says its services run, with the address of its DHCP lease.
        if !running_sent && !end.killed {
            let ready = if legacy_tini {
                let (r, c) = (rt.clone(), cid.clone());
                matches!(blocking(move || r.state(&c)).await, Ok(Some(s)) if s.status == "running")
            } else {
                match init_client::status(&socket, Duration::from_millis(500)).await {
                    Ok(st) => {
                        if ip.is_none() {
                            ip = st.ip();
                        }
                        st.state == "running"
                    }
                    Err(_) => false,
                }
            };
            if ready {
                running_sent = true;
                end.running_seen = true;
                let mut ev = TaskEvent::new(&id, TaskState::TaskRunning);
                ev.ip = ip.clone();
                send(&req, ev);
            }
        }
        // Health checks, one at a time, after RUNNING and before any kill.
        if let (Some(spec), Some(at)) = (&health, next_check) {
            if running_sent && !end.killed && !probing && Instant::now() >= at {
                probing = true;
                let (spec2, r, c, tx) = (spec.clone(), rt.clone(), cid.clone(), probe_tx.clone());
                let sock = socket.clone();
                tokio::spawn(async move {
                    let mut res = super::probe::run(&spec2.probe, &r, &c, spec2.timeout).await;
                    // Combined with init's own view of its services' health.
                    if res.is_ok() {
                        if let Ok(st) = init_client::status(&sock, spec2.timeout).await {
                            if let Some(bad) = unhealthy_services(&st) {
                                res = Err(format!("berth-init reports unhealthy services: {bad}"));
                            }
                        }
                    }
                    let _ = tx.send(res);
                });
            }
        }
        // Without a TaskInfo health check, init's own health of its services is reported
        // (each change as TASK_RUNNING with `healthy`); init restarts what fails itself.
        if health.is_none() && running_sent && !end.killed && Instant::now() >= init_next {
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
        let sleep_for = if let Some(d) = deadline.filter(|_| !kill_sent) {
            POLL.min(
                d.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(5)),
            )
        } else {
            POLL
        };
        tokio::select! {
            r = req.kill.changed(), if kill_open => { if r.is_err() { kill_open = false; } }
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
            _ = tokio::time::sleep(sleep_for) => {}
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
            e.healthy = Some(false);
            e = e
                .reason(Reason::ReasonTaskHealthCheckStatusUpdated)
                .message("killed after failing its health checks");
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
