//! The run loop: one `poll` over the signalfd, the status socket and the wake pipe,
//! sleeping until the engine's next deadline. SIGCHLD drains the one reaper and hands
//! each status to the engine, which knows every pid's owner.

use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tracing::{debug, warn};

use super::engine::Engine;
use super::health_http::Snapshot;
use super::os::Os;
use super::socket;
use super::wake::{Inbox, Msg, Waker};
use crate::reaper::{self, SysWait};
use crate::signals::SignalFd;
use crate::status::{AppState, Request, MAX_WAIT_MS};

/// A `wait` request held until the overall state changes or its time is up.
struct Waiter {
    /// The state the client saw: any other one answers it.
    state: AppState,
    until: Instant,
    reply: std::sync::mpsc::Sender<String>,
}

/// How long leftover processes get between SIGTERM and SIGKILL at the end of a shutdown.
const SWEEP_GRACE: Duration = Duration::from_secs(2);

/// Wall clock, seconds since the epoch.
pub fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The loop's handles.
pub struct Loop<O: Os> {
    /// The engine.
    pub engine: Engine<O>,
    /// Signals.
    pub sigfd: SignalFd,
    /// The status socket.
    pub listener: UnixListener,
    /// Thread messages.
    pub inbox: Inbox,
    /// For socket threads.
    pub waker: Waker,
    /// For `GET /health`.
    pub snapshot: Option<Arc<Mutex<Snapshot>>>,
}

impl<O: Os> Loop<O> {
    /// Runs until shutdown completes; returns the exit code.
    pub fn run(mut self) -> i32 {
        let mut received = Vec::new();
        let mut waiters: Vec<Waiter> = Vec::new();
        loop {
            let now = Instant::now();
            let wall = wall_now();
            self.engine.tick(now, wall);
            self.publish();
            let finished = self.engine.finished();
            self.answer_waiters(&mut waiters, now, finished.is_some());
            if let Some(code) = finished {
                if !self.engine.was_hard_killed() {
                    self.sweep(SWEEP_GRACE);
                }
                socket::flush(Duration::from_millis(500));
                return code;
            }
            let timeout = self
                .engine
                .next_deadline(now, wall)
                .into_iter()
                .chain(waiters.iter().map(|w| w.until))
                .min()
                .map_or(Duration::from_secs(60), |d| {
                    d.saturating_duration_since(Instant::now())
                })
                .min(Duration::from_secs(60));
            // Round up so a wake-up never lands just before its deadline.
            let ms = timeout.as_micros().div_ceil(1000).min(60_000) as u16;
            let (sig_ready, sock_ready, wake_ready) = {
                let mut fds = [
                    PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.inbox.fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::from(ms)) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        warn!(error = %e, "poll failed");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), ready(&fds[1]), ready(&fds[2]))
            };
            if sig_ready {
                received.clear();
                if let Err(e) = self.sigfd.read(&mut received) {
                    warn!(error = %e, "reading signals failed");
                }
                let mut child = false;
                for r in &received {
                    match r.signo {
                        libc::SIGCHLD => child = true,
                        libc::SIGTERM | libc::SIGINT => {
                            self.engine.on_shutdown_signal(Instant::now())
                        }
                        other => debug!(signal = other, "signal ignored in supervisor mode"),
                    }
                }
                if child {
                    self.reap();
                }
            }
            if sock_ready {
                socket::accept_all(&self.listener, &self.waker);
            }
            if wake_ready {
                for msg in self.inbox.drain() {
                    match msg {
                        // Held until the state changes (answered at the next round).
                        Msg::Ctl(Request::Wait { state, timeout_ms }, reply)
                            if self.engine.app_state() == state =>
                        {
                            let until =
                                Instant::now() + Duration::from_millis(timeout_ms.min(MAX_WAIT_MS));
                            waiters.push(Waiter {
                                state,
                                until,
                                reply,
                            });
                        }
                        Msg::Ctl(req, reply) => {
                            let answer = self.engine.handle_request(&req, Instant::now());
                            let _ = reply.send(answer);
                        }
                        Msg::Probe {
                            service,
                            generation,
                            ok,
                        } => self
                            .engine
                            .on_probe(service, generation, ok, Instant::now()),
                        // The next tick publishes the new lease (GET /health).
                        Msg::Network | Msg::Lvs => {}
                    }
                }
            }
        }
    }

    /// As PID 1, processes that left their service's group (setsid) are still around when
    /// the services are down; the kernel would SIGKILL them when init exits. Give them a
    /// SIGTERM and up to `grace` to exit first (then SIGKILL), reaping as they go.
    fn sweep(&mut self, grace: Duration) {
        if std::process::id() != 1 {
            return;
        }
        // SAFETY: kill(2) with pid -1 signals every process of this PID namespace but init.
        if unsafe { libc::kill(-1, libc::SIGTERM) } != 0 {
            return; // ESRCH: nobody left.
        }
        debug!("sweeping leftover processes");
        let deadline = Instant::now() + grace;
        let mut received = Vec::new();
        loop {
            self.reap();
            // SAFETY: as above, signal 0 only checks that some process is left.
            let left = unsafe { libc::kill(-1, 0) } == 0;
            if !left {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                warn!("leftover processes did not exit on SIGTERM: SIGKILL");
                // SAFETY: as above.
                unsafe { libc::kill(-1, libc::SIGKILL) };
                self.reap();
                return;
            }
            let ms = (deadline - now).as_millis().clamp(1, 100) as u16;
            let mut fds = [PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(ms));
            received.clear();
            let _ = self.sigfd.read(&mut received);
        }
    }

    /// Answers (with the status) every `wait` whose state changed or whose time is up;
    /// all of them when init is about to exit.
    fn answer_waiters(&self, waiters: &mut Vec<Waiter>, now: Instant, all: bool) {
        if waiters.is_empty() {
            return;
        }
        let state = self.engine.app_state();
        let mut line = None;
        waiters.retain(|w| {
            if !all && w.state == state && now < w.until {
                return true;
            }
            let answer = line.get_or_insert_with(|| {
                serde_json::to_string(&self.engine.status())
                    .unwrap_or_else(|e| crate::status::error_line(&e.to_string()))
            });
            let _ = w.reply.send(answer.clone());
            false
        });
    }

    fn reap(&mut self) {
        let mut reaped = Vec::new();
        if let Err(e) = reaper::drain(&mut SysWait, |r| reaped.push(r)) {
            warn!(error = %e, "reaping failed");
        }
        let now = Instant::now();
        for r in reaped {
            self.engine.on_reaped(r.pid, r.exit, now);
        }
    }

    fn publish(&self) {
        if let Some(snap) = &self.snapshot {
            let s = Snapshot {
                healthy: self.engine.all_healthy(),
                body: serde_json::to_string(&self.engine.status()).unwrap_or_default(),
            };
            if let Ok(mut guard) = snap.lock() {
                *guard = s;
            }
        }
    }
}
