//! A started container's life: RUNNING, health, kills, the exit and the undo.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use crate::mesos::types::{Reason, TaskState};
use crate::session::{LaunchRequest, TaskEvent};

use crate::task::builtin::{self, Container};
use crate::task::health::{HealthSpec, HealthState, Verdict};
use crate::task::init_client::{self, InitStatus};
use crate::task::steps::{self, Step, StepCtx};

use super::watch::*;

/// `legacy_tini`: the container runs `berth-init -- /bin/sh -c CMD` (re-attached after an
/// upgrade from an executor that ran plain commands that way): RUNNING from `runc state`.
///
/// Nothing here polls on a fixed beat: the runner wakes when the wrapper exits (its
/// pidfd), when init's held `wait` answers, at a KILL, at a health check's or the grace
/// period's time, or at the [`SAFETY_POLL`] that reads the exit file whatever happened.
pub(super) async fn supervise(
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
    // TASK_STARTING again, with the address, once init holds its DHCP lease: Marathon
    // lists the task's address from then on, which dbauth needs before any service (and
    // so RUNNING) starts. Not after a re-attach: the task ran already.
    let mut lease_watch: Option<
        std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>,
    > = (!req.recover && ip.is_none()).then(|| Box::pin(lease_address(ctx.outputs().netns)) as _);
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
            lease_watch = None;
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
                            crate::task::probe::run(&spec2.probe, &r, &c, &bundle, spec2.timeout)
                                .await;
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
                lease_watch = None;
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
            a = async { match lease_watch.as_mut() { Some(w) => w.await, None => std::future::pending().await } } => {
                lease_watch = None;
                if !running_sent && !end.killed {
                    ip = Some(a);
                    let mut ev = TaskEvent::new(&id, TaskState::TaskStarting);
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
            .message(super::failure::init_failed(&ctx.sandbox, &describe))
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
