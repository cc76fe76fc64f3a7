//! The task runner: plan, prepare, start, wait until running, watch health, kill, tear
//! down, report. One tokio task per task; it talks to the session only through
//! [`TaskEvent`]s and the kill deadline.

use std::sync::{Arc, Mutex};

use crate::mesos::types::{Reason, TaskState};
use crate::session::{LaunchRequest, Launcher, TaskEvent};

use super::appspec;
use super::builtin::{default_steps, Container, RUNTIME_SETTING};
use super::config::RunConfig;
use super::network;
use super::plan::{Mode, Plan};
use super::runc::{self};
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

pub mod failure;
mod supervise;
mod watch;

use supervise::supervise;
use watch::*;

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

/// [`run_locked`] under the task lock (see `super::lock`): held from before anything is
/// made until the teardown is done, so berth-agent's GC never touches a live task.
async fn run_task(cfg: RunConfig, executor_cmd: Option<String>, req: LaunchRequest) {
    let id = req.task.task_id.value.clone();
    let cid = super::names::container_id(&id);
    let state = cfg.state_dir.clone();
    let (s, c, t) = (state.clone(), cid.clone(), id.clone());
    let lock = match blocking(move || super::lock::hold(&s, &c, &t)).await {
        Ok(l) => l,
        Err(e) => {
            let p = super::lock::path(&state, &cid);
            tracing::error!(task = %id, error = %e, lock = %p.display(), "cannot take the task lock");
            send(
                &req,
                TaskEvent::new(&id, TaskState::TaskFailed)
                    .reason(Reason::ReasonContainerLaunchFailed)
                    .message(format!(
                        "state: cannot take the task lock {}: {e}",
                        p.display()
                    )),
            );
            return;
        }
    };
    run_locked(cfg, executor_cmd, req).await;
    blocking(move || super::lock::release(lock, &state, &cid)).await;
}

async fn run_locked(cfg: RunConfig, executor_cmd: Option<String>, req: LaunchRequest) {
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
                    .message(failure::bounded(&format!("invalid task: {e}"))),
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
                    .message(failure::bounded(&format!(
                        "runtime: executor setting {RUNTIME_SETTING}: {e}"
                    ))),
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
                        .message(failure::preparation(&errs)),
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

#[cfg(test)]
mod tests;
