//! What the runner watches a container with: its exit, init's answers, its address.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use crate::session::{LaunchRequest, TaskEvent};

use crate::task::init_client::{self, InitError, InitStatus};
use crate::task::runc::Runtime;
use crate::task::steps::{self, StepCtx};

/// How often RUNNING is asked of `runc state` (a container of init's tini mode, started
/// by an older executor) or of an older init that does not know the `wait` request.
pub(super) const POLL: Duration = Duration::from_millis(20);

/// The safety net: the exit file is read at least this often, whatever wakes the runner
/// (the wrapper's exit normally does at once, through its pidfd).
pub(super) const SAFETY_POLL: Duration = Duration::from_millis(250);

/// How soon a signal the runtime could not deliver yet (no container yet, or its init
/// without a handler for it) is tried again.
pub(super) const SIGNAL_RETRY: Duration = Duration::from_millis(10);

/// How long one `wait` request asks init to hold its answer.
pub(super) const INIT_WAIT: Duration = Duration::from_secs(10);

pub(super) fn send(req: &LaunchRequest, ev: TaskEvent) {
    let _ = req.events.send(ev);
}

pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// How often init's own health is read when the task has no health check.
pub(super) const INIT_HEALTH_EVERY: Duration = Duration::from_secs(2);

/// Names of services init reports as unhealthy, `None` if there are none.
pub(super) fn unhealthy_services(st: &init_client::InitStatus) -> Option<String> {
    let bad: Vec<&str> = st
        .services
        .iter()
        .filter(|s| s.healthy == Some(false))
        .map(|s| s.name.as_str())
        .collect();
    (!bad.is_empty()).then(|| bad.join(", "))
}

/// How the container ended.
pub(super) struct Ending {
    pub(super) code: Option<i32>,
    pub(super) killed: bool,
    pub(super) unhealthy: bool,
    pub(super) running_seen: bool,
}

pub(super) fn read_exit(path: &PathBuf) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// How soon the runner tries init's socket again while it does not answer: often while
/// the container starts (init binds it some 20-50 ms after the runtime started), then
/// every [`POLL`].
pub(super) fn socket_retry(since_start: Duration) -> Duration {
    if since_start < Duration::from_secs(2) {
        Duration::from_millis(2)
    } else {
        POLL
    }
}

/// The address init reported, cross-checked against the addresses on `eth0` in the
/// task's netns when the network step made one (the report comes from inside the
/// container): a fake or unreadable one is dropped with a warning.
pub(super) async fn checked_ip(ctx: &StepCtx, reported: Option<String>) -> Option<String> {
    let netns = ctx.outputs().netns?;
    let rep = reported.clone()?;
    let found =
        tokio::task::spawn_blocking(move || crate::task::network::container_addresses(&netns))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
    match found {
        Ok(on) => {
            let ok = crate::task::network::verified_ip(Some(&rep), &on);
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

/// Waits until `eth0` in the task's netns has an IPv4 address, i.e. berth-init holds its
/// DHCP lease (it applies the address before its pre-start steps, dbauth's among them,
/// and before any service starts), and returns it. Read from the kernel, not from the
/// container's word. Never ready without a netns.
pub(super) async fn lease_address(netns: Option<PathBuf>) -> String {
    let Some(netns) = netns else {
        return std::future::pending().await;
    };
    let start = Instant::now();
    loop {
        let ns = netns.clone();
        let found = blocking(move || crate::task::network::container_addresses(&ns)).await;
        match found {
            Ok(on) if !on.is_empty() => return on[0].to_string(),
            Ok(_) => {}
            Err(e) => tracing::trace!(error = %e, "the task's addresses (will retry)"),
        }
        let pause = if start.elapsed() < Duration::from_secs(5) {
            LEASE_POLL
        } else {
            POLL * 5
        };
        tokio::time::sleep(pause).await;
    }
}

/// How often eth0 is read for init's DHCP address while the container starts.
pub(super) const LEASE_POLL: Duration = Duration::from_millis(5);

/// Waits until berth-init says `running` and returns that status. Each `wait` request is
/// held by init until its state changes, so RUNNING follows init's own change at once;
/// `answered` is set at init's first answer (it binds its socket only after blocking
/// every signal for its signalfd: from then on a TERM is never lost). An older init
/// without `wait` is asked `status` every [`POLL`].
pub(super) async fn init_running(socket: PathBuf, answered: Arc<AtomicBool>) -> Option<InitStatus> {
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
pub(super) async fn runtime_running(rt: Runtime, cid: String) -> Option<InitStatus> {
    loop {
        let (r, c) = (rt.clone(), cid.clone());
        if matches!(blocking(move || r.state(&c)).await, Ok(Some(s)) if s.status == "running") {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

pub(super) type RunningWatch = Pin<Box<dyn Future<Output = Option<InitStatus>> + Send>>;

/// The watch's result; never ready without one.
pub(super) async fn running(watch: &mut Option<RunningWatch>) -> Option<InitStatus> {
    match watch {
        Some(w) => w.await,
        None => std::future::pending().await,
    }
}

/// Ready once the wrapper has exited; never without its pidfd.
pub(super) async fn wrapper_exited(fd: &Option<AsyncFd<OwnedFd>>) {
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

pub(super) fn join_errors(errs: &[steps::StepError]) -> String {
    errs.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
