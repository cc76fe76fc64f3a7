//! Starting, stopping, restarting and failing services; shutdown.

use std::time::Instant;

use nix::sys::signal::Signal;
use tracing::{error, info, warn};

use super::engine::{code_of, Engine, HookKind, Owner};
use super::os::Os;
use super::service::{AfterStop, Phase};
use crate::backoff::Decision;
use crate::exit_status::ExitKind;
use crate::health::HealthState;
use crate::spec::RestartPolicy;

impl<O: Os> Engine<O> {
    /// Starts every waiting service whose dependencies are ready, in spec order.
    pub(super) fn start_ready(&mut self, now: Instant) {
        for i in 0..self.services.len() {
            if self.services[i].phase != Phase::Waiting {
                continue;
            }
            let deps_ready = self.services[i].spec.depends_on.iter().all(|d| {
                self.index_of(d)
                    .is_some_and(|j| self.services[j].ready(now))
            });
            if deps_ready {
                self.start_service(i, now);
            }
        }
    }

    fn start_service(&mut self, i: usize, now: Instant) {
        if self.start_hook(i, HookKind::PreStart, now) {
            self.services[i].phase = Phase::PreStart;
        } else if self.services[i].spec.hooks.pre_start.is_some() {
            self.run_ended(i, 127, now, now);
        } else {
            self.spawn_main(i, now);
        }
    }

    fn spawn_main(&mut self, i: usize, now: Instant) {
        let name = self.services[i].spec.name.clone();
        let argv = self.services[i].spec.command.0.clone();
        let launch = self.launch_for(i, &argv, name.clone());
        match self.spawn_owned(&launch, Owner::Main(i)) {
            Some(pid) => {
                info!(service = %name, pid, "service started");
                let s = &mut self.services[i];
                s.phase = Phase::Running {
                    pid,
                    since: now,
                    daemon: false,
                };
                s.health = s
                    .spec
                    .health
                    .as_ref()
                    .map(|h| HealthState::new(h.timing(), now));
                self.start_hook(i, HookKind::PostStart, now);
            }
            None => self.run_ended(i, 127, now, now),
        }
    }

    pub(super) fn hook_done(&mut self, i: usize, kind: HookKind, ok: bool, now: Instant) {
        match kind {
            HookKind::PreStart if self.services[i].phase == Phase::PreStart => {
                if self.shutting_down {
                    self.services[i].phase = Phase::Stopped;
                } else if ok {
                    self.spawn_main(i, now);
                } else {
                    self.run_ended(i, 1, now, now);
                }
            }
            HookKind::PreStop => {
                if let Phase::Stopping {
                    signalled: false, ..
                } = self.services[i].phase
                {
                    self.send_stop_signal(i, now);
                }
            }
            HookKind::PostStop if self.services[i].phase == Phase::PostStop => {
                self.finish_stop(i, now)
            }
            _ => {}
        }
    }

    pub(super) fn main_exited(&mut self, i: usize, pid: i32, exit: ExitKind, now: Instant) {
        let name = self.services[i].spec.name.clone();
        let code = code_of(exit);
        self.services[i].last_code = Some(code);
        match self.services[i].phase {
            Phase::Running {
                since,
                daemon: false,
                ..
            } => {
                if exit == ExitKind::Exited(0) && self.os.group_alive(pid) {
                    info!(service = %name, pgid = pid, "main process exited 0 and left its group running: tracking the group");
                    self.services[i].phase = Phase::Running {
                        pid,
                        since,
                        daemon: true,
                    };
                    return;
                }
                info!(service = %name, pid, %exit, "service ended");
                self.os.signal_group(pid, Signal::SIGKILL);
                self.run_ended(i, code, since, now);
            }
            Phase::Stopping {
                pgid,
                signalled,
                deadline,
                killed,
                since,
                ..
            } => {
                let stop_sig = self.services[i].spec.stop_signal() as i32;
                let clean = !killed
                    && (exit == ExitKind::Exited(0)
                        || code == 128 + stop_sig
                        || matches!(exit, ExitKind::Signaled { signo, .. } if signo == stop_sig));
                if !clean && self.shutting_down {
                    warn!(service = %name, %exit, "service did not stop cleanly");
                    self.record_failure(code);
                }
                self.services[i].phase = Phase::Stopping {
                    pgid,
                    main_alive: false,
                    signalled,
                    deadline,
                    killed,
                    since,
                };
                self.tick_services(now);
            }
            _ => {}
        }
    }

    /// A run ended on its own (or its start failed) with `code`: apply the restart policy.
    pub(super) fn run_ended(&mut self, i: usize, code: i32, since: Instant, now: Instant) {
        let s = &mut self.services[i];
        s.health = None;
        s.probe_gen += 1;
        if self.shutting_down {
            s.phase = Phase::Stopped;
            return;
        }
        let failed = code != 0;
        let restart = match s.spec.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failed,
            RestartPolicy::Never => false,
        };
        if !restart {
            if failed {
                self.fail(i, code);
            } else {
                info!(service = %s.spec.name, "service completed");
                s.phase = Phase::Exited;
            }
            return;
        }
        let policy = s.spec.backoff_policy();
        match s
            .backoff
            .on_exit(&policy, now.saturating_duration_since(since))
        {
            Decision::RestartIn(d) => {
                info!(service = %s.spec.name, delay_ms = d.as_millis() as u64, "restarting after backoff");
                s.phase = Phase::Backoff { until: now + d };
            }
            Decision::GiveUp => {
                error!(service = %s.spec.name, limit = policy.crash_loop_limit, "crash-loop limit reached");
                self.fail(i, code);
            }
        }
    }

    fn fail(&mut self, i: usize, code: i32) {
        let s = &mut self.services[i];
        s.phase = Phase::Failed;
        error!(service = %s.spec.name, code, "service failed");
        let required = s.spec.required;
        self.record_failure(code);
        if required && !self.debug && !self.shutting_down {
            error!("a required service failed: shutting down");
            self.begin_shutdown();
        } else if required {
            warn!("debug mode: staying up with the failed service");
        }
    }

    /// Begins stopping service `i` (pre_stop hook, then the stop signal).
    pub(super) fn begin_stop(&mut self, i: usize, after: AfterStop, now: Instant) {
        self.services[i].after_stop = after;
        match self.services[i].phase {
            Phase::Running { pid, since, .. } => {
                info!(service = %self.services[i].spec.name, "stopping");
                let main_alive = self.owners.get(&pid) == Some(&Owner::Main(i));
                self.services[i].phase = Phase::Stopping {
                    pgid: pid,
                    main_alive,
                    signalled: false,
                    deadline: None,
                    killed: false,
                    since,
                };
                self.services[i].health = None;
                self.services[i].probe_gen += 1;
                if !self.lvs_drain(i, now) {
                    self.stop_after_drain(i, now);
                }
            }
            Phase::PreStart => {
                if let Some(run) = self.hooks.get(&(i, HookKind::PreStart)) {
                    self.os.signal_group(run.pid, Signal::SIGKILL);
                }
                self.services[i].phase = Phase::Stopped;
                self.finish_stop(i, now);
            }
            Phase::Waiting | Phase::Backoff { .. } | Phase::Exited | Phase::Failed => {
                self.services[i].phase = Phase::Stopped;
                self.finish_stop(i, now);
            }
            Phase::Stopping { .. } | Phase::PostStop | Phase::Stopped => {}
        }
    }

    /// The `pre_stop` hook if there is one, else the stop signal.
    pub(super) fn stop_after_drain(&mut self, i: usize, now: Instant) {
        if !self.start_hook(i, HookKind::PreStop, now) {
            self.send_stop_signal(i, now);
        }
    }

    fn send_stop_signal(&mut self, i: usize, now: Instant) {
        let sig = self.services[i].spec.stop_signal();
        let timeout = self.services[i].spec.stop_timeout();
        if let Phase::Stopping {
            pgid,
            main_alive,
            since,
            ..
        } = self.services[i].phase
        {
            info!(service = %self.services[i].spec.name, signal = %sig, "sending stop signal to the group");
            self.os.signal_group(pgid, sig);
            // A stopped group does not act on the signal until continued.
            self.os.signal_group(pgid, Signal::SIGCONT);
            self.services[i].phase = Phase::Stopping {
                pgid,
                main_alive,
                signalled: true,
                deadline: Some(now + timeout),
                killed: false,
                since,
            };
        }
    }

    /// Stops in progress, backoffs ending, daemon groups vanishing.
    pub(super) fn tick_services(&mut self, now: Instant) {
        for i in 0..self.services.len() {
            match self.services[i].phase {
                Phase::Backoff { until } if now >= until && !self.shutting_down => {
                    self.services[i].restarts += 1;
                    self.services[i].phase = Phase::Waiting;
                }
                Phase::Running {
                    pid,
                    since,
                    daemon: true,
                } if !self.os.group_alive(pid) => {
                    warn!(service = %self.services[i].spec.name, pgid = pid, "the daemon's process group is gone");
                    self.run_ended(i, 1, since, now);
                }
                Phase::Stopping {
                    pgid,
                    main_alive,
                    signalled: true,
                    deadline,
                    killed,
                    since,
                } => {
                    if !main_alive && !self.os.group_alive(pgid) {
                        self.stop_complete(i, now);
                    } else if !killed && deadline.is_some_and(|d| now >= d) {
                        warn!(service = %self.services[i].spec.name, "stop timeout: SIGKILL to the group");
                        self.os.signal_group(pgid, Signal::SIGKILL);
                        if self.shutting_down {
                            self.record_failure(137);
                        }
                        self.services[i].phase = Phase::Stopping {
                            pgid,
                            main_alive,
                            signalled: true,
                            deadline,
                            killed: true,
                            since,
                        };
                    }
                }
                _ => {}
            }
        }
    }

    fn stop_complete(&mut self, i: usize, now: Instant) {
        info!(service = %self.services[i].spec.name, "stopped");
        if self.start_hook(i, HookKind::PostStop, now) {
            self.services[i].phase = Phase::PostStop;
        } else {
            self.finish_stop(i, now);
        }
    }

    fn finish_stop(&mut self, i: usize, now: Instant) {
        let since = match self.services[i].phase {
            Phase::Stopping { since, .. } => since,
            _ => now,
        };
        let after = std::mem::replace(&mut self.services[i].after_stop, AfterStop::Park);
        if self.shutting_down {
            self.services[i].phase = Phase::Stopped;
            return;
        }
        match after {
            AfterStop::Park => self.services[i].phase = Phase::Stopped,
            AfterStop::Restart => {
                self.services[i].restarts += 1;
                self.services[i].phase = Phase::Waiting;
            }
            AfterStop::Failed(code) => {
                self.services[i].phase = Phase::Stopped;
                self.run_ended(i, code, since, now);
            }
        }
    }

    /// Outside debug mode, once every service has completed (`exited`, or `failed` and
    /// optional: nothing will start it again) and the spec has no cron job, nothing is
    /// left to do: shut down, exiting 0 or with the first failure's code. A service an
    /// operator stopped (`stopped`) may be started again, so it keeps init up.
    pub(super) fn end_if_all_completed(&mut self) {
        let completed = |s: &super::service::ServiceRt| {
            s.phase == Phase::Exited || (s.phase == Phase::Failed && !s.spec.required)
        };
        if self.debug
            || self.shutting_down
            || !self.crons.is_empty()
            || self.services.is_empty()
            || !self.services.iter().all(completed)
        {
            return;
        }
        info!("every service has completed and no cron job is scheduled: exiting");
        self.begin_shutdown();
    }

    /// SIGTERM/SIGINT: the first begins an orderly shutdown, the second kills everything.
    pub fn on_shutdown_signal(&mut self, now: Instant) {
        if self.shutting_down {
            self.hard_kill(now);
        } else {
            info!("shutdown requested");
            self.begin_shutdown();
            self.advance_shutdown(now);
        }
    }

    pub(super) fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        for c in &self.crons {
            if let Some(pid) = c.pid {
                self.os.signal_group(pid, Signal::SIGTERM);
            }
        }
    }

    /// Stops every service none of whose dependents still runs (reverse dependency order).
    pub(super) fn advance_shutdown(&mut self, now: Instant) {
        if self.hard {
            return;
        }
        loop {
            let mut progressed = false;
            for i in (0..self.services.len()).rev() {
                let phase = self.services[i].phase;
                if matches!(phase, Phase::Stopping { .. } | Phase::PostStop) || phase.is_terminal()
                {
                    continue;
                }
                let name = &self.services[i].spec.name;
                let dependents_running = self
                    .services
                    .iter()
                    .any(|s| s.spec.depends_on.iter().any(|d| d == name) && !s.phase.is_terminal());
                if !dependents_running {
                    self.begin_stop(i, AfterStop::Park, now);
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn hard_kill(&mut self, now: Instant) {
        warn!("second shutdown signal: SIGKILL to every group");
        self.hard = true;
        self.hard_deadline = Some(now + std::time::Duration::from_secs(2));
        let mut groups: Vec<i32> = self.services.iter().filter_map(|s| s.pid()).collect();
        groups.extend(self.hooks.values().map(|h| h.pid));
        groups.extend(self.crons.iter().filter_map(|c| c.pid));
        groups.extend(self.services.iter().filter_map(|s| s.probe_pid));
        for g in groups {
            self.os.signal_group(g, Signal::SIGKILL);
        }
        for s in &mut self.services {
            if !s.phase.is_terminal() {
                s.phase = Phase::Stopped;
            }
        }
        self.hooks.clear();
        for c in &mut self.crons {
            c.pid = None;
        }
    }
}
