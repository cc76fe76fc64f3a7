//! The supervisor's logic, driven by the run loop: reaped statuses, signals, ctl
//! requests, probe results and the passing of time go in; process starts and group
//! signals go out through [`Os`]. No system call is made here directly.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::os::{Launch, Os};
use super::service::{AfterStop, Phase, ServiceRt};
use crate::cron::CronJobState;
use crate::exit_status::ExitKind;
use crate::spec::{AppSpec, CronSpec, HookSpec};
use crate::status::{AppState, ServiceStatus, Status};

/// Which hook of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookKind {
    /// Before start.
    PreStart,
    /// After start.
    PostStart,
    /// Before the stop signal.
    PreStop,
    /// After the group is gone.
    PostStop,
}

impl HookKind {
    /// Spec name.
    pub fn name(self) -> &'static str {
        match self {
            HookKind::PreStart => "pre_start",
            HookKind::PostStart => "post_start",
            HookKind::PreStop => "pre_stop",
            HookKind::PostStop => "post_stop",
        }
    }
}

/// Who owns a pid the reaper hands back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A service's main process.
    Main(usize),
    /// A hook of a service.
    Hook(usize, HookKind),
    /// A command health check (generation).
    Probe(usize, u64),
    /// A cron run.
    Cron(usize),
}

/// A hook that runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct HookRun {
    pub pid: i32,
    pub deadline: Instant,
    pub killed: bool,
}

/// A cron job at run time.
#[derive(Debug)]
pub(super) struct CronRt {
    pub spec: CronSpec,
    pub state: CronJobState,
    pub pid: Option<i32>,
    pub ids: Option<(u32, u32)>,
}

/// The supervisor's state.
pub struct Engine<O: Os> {
    pub(super) os: O,
    pub(super) services: Vec<ServiceRt>,
    pub(super) crons: Vec<CronRt>,
    pub(super) owners: HashMap<i32, Owner>,
    pub(super) hooks: HashMap<(usize, HookKind), HookRun>,
    pub(super) debug: bool,
    pub(super) require: Option<String>,
    pub(super) base_env: Vec<(String, String)>,
    pub(super) app_ports: Vec<u16>,
    /// Shutdown began (orderly).
    pub(super) shutting_down: bool,
    /// Second SIGTERM: everything was SIGKILLed.
    pub(super) hard: bool,
    pub(super) hard_deadline: Option<Instant>,
    /// Exit code of the first service that failed.
    pub(super) first_failure: Option<i32>,
    /// The `network` part of the status (the DHCP lease), when networking is configured.
    pub(super) network: Option<Box<dyn Fn() -> serde_json::Value>>,
    /// The `login` part of the status, when the spec has a `login` section.
    pub(super) login: Option<Box<dyn Fn() -> serde_json::Value>>,
    /// LVS registration, when a service has an `lvs` section.
    pub(super) lvs: Option<super::lvs::LvsHook>,
    /// The `statsd` part of the status, when the spec has a `statsd` section.
    pub(super) statsd: Option<Box<dyn Fn() -> serde_json::Value>>,
}

/// Everything the engine needs to start.
pub struct EngineConfig {
    /// The app.
    pub spec: AppSpec,
    /// Debug mode (spec or BERTH_DEBUG=1).
    pub debug: bool,
    /// init's own environment, under the spec's.
    pub inherited_env: Vec<(String, String)>,
    /// Resolved (uid, gid) per service, in spec order.
    pub service_ids: Vec<Option<(u32, u32)>>,
    /// Resolved (uid, gid) per cron job.
    pub cron_ids: Vec<Option<(u32, u32)>>,
}

fn merge_env(
    base: &[(String, String)],
    extra: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = base
        .iter()
        .filter(|(k, _)| !extra.contains_key(k))
        .cloned()
        .collect();
    env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// Exit code of a reaped status: the code, or 128+N for signal N.
pub fn code_of(exit: ExitKind) -> i32 {
    i32::from(exit.code())
}

impl<O: Os> Engine<O> {
    /// An engine with every service waiting.
    pub fn new(cfg: EngineConfig, os: O, wall_now: f64) -> Self {
        let base_env = merge_env(&cfg.inherited_env, &cfg.spec.env);
        let services = cfg
            .spec
            .services
            .into_iter()
            .zip(cfg.service_ids.into_iter().chain(std::iter::repeat(None)))
            .map(|(spec, ids)| ServiceRt {
                env: merge_env(&base_env, &spec.env),
                spec,
                ids,
                phase: Phase::Waiting,
                backoff: Default::default(),
                restarts: 0,
                health: None,
                probe_gen: 0,
                probe_pid: None,
                after_stop: AfterStop::Park,
                last_code: None,
            })
            .collect();
        let crons = cfg
            .spec
            .cron
            .into_iter()
            .zip(cfg.cron_ids.into_iter().chain(std::iter::repeat(None)))
            .map(|(spec, ids)| CronRt {
                state: CronJobState::new(spec.schedule.clone(), spec.timeout(), wall_now),
                spec,
                pid: None,
                ids,
            })
            .collect();
        Engine {
            os,
            services,
            crons,
            owners: HashMap::new(),
            hooks: HashMap::new(),
            debug: cfg.debug,
            require: cfg.spec.require,
            base_env,
            app_ports: cfg.spec.ports,
            shutting_down: false,
            hard: false,
            hard_deadline: None,
            first_failure: None,
            network: None,
            login: None,
            lvs: None,
            statsd: None,
        }
    }

    /// The system interface (for tests).
    pub fn os(&self) -> &O {
        &self.os
    }

    /// Index of a service by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.services.iter().position(|s| s.spec.name == name)
    }

    /// Starts `launch`, registering its pid for `owner`.
    pub(super) fn spawn_owned(&mut self, launch: &Launch, owner: Owner) -> Option<i32> {
        match self.os.spawn(launch) {
            Ok(pid) => {
                debug!(pid, what = %launch.label, "started");
                self.owners.insert(pid, owner);
                Some(pid)
            }
            Err(e) => {
                warn!(what = %launch.label, error = %e, "cannot start");
                None
            }
        }
    }

    pub(super) fn launch_for(&self, i: usize, argv: &[String], label: String) -> Launch {
        let s = &self.services[i];
        Launch {
            argv: argv.to_vec(),
            env: s.env.clone(),
            cwd: s.spec.workdir.clone(),
            ids: s.ids,
            log: s.spec.log.clone(),
            label,
            keep_caps: s.spec.capabilities.map(|c| c.0),
        }
    }

    /// Starts hook `kind` of service `i` if it has one; true if it runs.
    pub(super) fn start_hook(&mut self, i: usize, kind: HookKind, now: Instant) -> bool {
        let hooks = &self.services[i].spec.hooks;
        let hook: Option<&HookSpec> = match kind {
            HookKind::PreStart => hooks.pre_start.as_ref(),
            HookKind::PostStart => hooks.post_start.as_ref(),
            HookKind::PreStop => hooks.pre_stop.as_ref(),
            HookKind::PostStop => hooks.post_stop.as_ref(),
        };
        let Some(hook) = hook.cloned() else {
            return false;
        };
        let label = format!("{} {}", self.services[i].spec.name, kind.name());
        let launch = self.launch_for(i, &hook.cmd.0, label);
        info!(service = %self.services[i].spec.name, hook = kind.name(), "running hook");
        match self.spawn_owned(&launch, Owner::Hook(i, kind)) {
            Some(pid) => {
                self.hooks.insert(
                    (i, kind),
                    HookRun {
                        pid,
                        deadline: now + hook.timeout,
                        killed: false,
                    },
                );
                true
            }
            None => false,
        }
    }

    /// A pid was reaped.
    pub fn on_reaped(&mut self, pid: i32, exit: ExitKind, now: Instant) {
        match self.owners.remove(&pid) {
            Some(Owner::Main(i)) => self.main_exited(i, pid, exit, now),
            Some(Owner::Hook(i, kind)) => {
                let run = self.hooks.remove(&(i, kind));
                let ok = exit == ExitKind::Exited(0) && !run.is_some_and(|r| r.killed);
                if !ok {
                    warn!(service = %self.services[i].spec.name, hook = kind.name(), %exit, timed_out = run.is_some_and(|r| r.killed), "hook failed");
                } else {
                    debug!(service = %self.services[i].spec.name, hook = kind.name(), "hook done");
                }
                // The hook's group may hold leftovers.
                self.os.signal_group(pid, nix::sys::signal::Signal::SIGKILL);
                self.hook_done(i, kind, ok, now);
            }
            Some(Owner::Probe(i, generation)) => {
                self.os.signal_group(pid, nix::sys::signal::Signal::SIGKILL);
                let s = &mut self.services[i];
                if s.probe_pid == Some(pid) {
                    s.probe_pid = None;
                }
                self.on_probe(i, generation, exit == ExitKind::Exited(0), now);
            }
            Some(Owner::Cron(j)) => {
                self.os.signal_group(pid, nix::sys::signal::Signal::SIGKILL);
                let c = &mut self.crons[j];
                info!(job = %c.spec.name, %exit, "cron run ended");
                c.pid = None;
                c.state.finished();
            }
            None => debug!(pid, %exit, "reaped an orphan"),
        }
    }

    /// The earliest time something is due (the run loop sleeps until then at most).
    pub fn next_deadline(&self, now: Instant, wall_now: f64) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        let mut at = |t: Instant| best = Some(best.map_or(t, |b: Instant| b.min(t)));
        // Groups are polled while something waits for one to empty.
        let poll = now + Duration::from_millis(100);
        let daemon_poll = now + Duration::from_millis(500);
        for s in &self.services {
            match s.phase {
                Phase::Backoff { until } => at(until),
                Phase::Stopping {
                    deadline,
                    signalled,
                    ..
                } => {
                    if let Some(d) = deadline {
                        at(d)
                    }
                    if signalled {
                        at(poll)
                    }
                }
                Phase::Running { daemon, since, .. } => {
                    if daemon {
                        at(daemon_poll)
                    } else if s.spec.entry && now < since + super::service::ENTRY_SETTLE {
                        at(since + super::service::ENTRY_SETTLE)
                    }
                    if let Some(h) = &s.health {
                        at(h.deadline())
                    }
                }
                _ => {}
            }
        }
        for h in self.hooks.values() {
            if !h.killed {
                at(h.deadline)
            }
        }
        if !self.shutting_down {
            for c in &self.crons {
                if let Some(t) = c.state.deadline() {
                    at(now + Duration::from_secs_f64((t - wall_now).max(0.0)))
                }
            }
        }
        if let Some(d) = self.hard_deadline {
            at(d)
        }
        if let Some(d) = self.lvs_deadline() {
            at(d)
        }
        best
    }

    /// Advances every timer to `now`.
    pub fn tick(&mut self, now: Instant, wall_now: f64) {
        for (&(i, kind), run) in self.hooks.iter_mut() {
            if !run.killed && now >= run.deadline {
                warn!(service = %self.services[i].spec.name, hook = kind.name(), "hook timed out: killing its group");
                run.killed = true;
                self.os
                    .signal_group(run.pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        self.tick_services(now);
        if !self.shutting_down {
            self.end_if_all_completed();
        }
        if !self.shutting_down {
            self.start_ready(now);
        }
        self.tick_health(now);
        self.tick_lvs(now);
        if !self.shutting_down {
            self.tick_cron(wall_now);
        } else {
            self.advance_shutdown(now);
        }
    }

    /// Overall state.
    pub fn app_state(&self) -> AppState {
        if self.shutting_down {
            AppState::Stopping
        } else if self
            .services
            .iter()
            .any(|s| s.phase == Phase::Failed && s.spec.required)
        {
            AppState::Failed
        } else if self.services.iter().all(|s| {
            // An operator's stop, or a failed optional service, does not hold the app back.
            s.ready(Instant::now())
                || s.phase == Phase::Stopped
                || (!s.spec.required && s.phase == Phase::Failed)
        }) {
            AppState::Running
        } else {
            AppState::Starting
        }
    }

    /// The status answer.
    pub fn status(&self) -> Status {
        Status {
            ok: true,
            state: self.app_state(),
            services: self
                .services
                .iter()
                .enumerate()
                .map(|(i, s)| ServiceStatus {
                    name: s.spec.name.clone(),
                    state: s.phase.name().to_string(),
                    pid: s.pid(),
                    restarts: s.restarts,
                    healthy: s.health.as_ref().and_then(|h| h.healthy),
                    lvs: self.lvs_json(i),
                    check_latency_us: s
                        .health
                        .as_ref()
                        .and_then(|h| h.last_latency)
                        .map(|d| d.as_micros().min(u128::from(u64::MAX)) as u64),
                })
                .collect(),
            require: self.require.clone(),
            network: self.network.as_ref().map(|f| f()),
            login: self.login.as_ref().map(|f| f()),
            statsd: self.statsd.as_ref().map(|f| f()),
        }
    }

    /// Where the status's `network` object comes from (called at every `status`).
    pub fn set_network_status(&mut self, f: impl Fn() -> serde_json::Value + 'static) {
        self.network = Some(Box::new(f));
    }

    /// Where the status's `login` object comes from (called at every `status`).
    pub fn set_login_status(&mut self, f: impl Fn() -> serde_json::Value + 'static) {
        self.login = Some(Box::new(f));
    }

    /// Where the status's `statsd` object comes from (called at every `status`).
    pub fn set_statsd_status(&mut self, f: impl Fn() -> serde_json::Value + 'static) {
        self.statsd = Some(Box::new(f));
    }

    /// Whether every service that has a health check is healthy (for `GET /health`).
    pub fn all_healthy(&self) -> bool {
        self.services
            .iter()
            .filter(|s| s.spec.health.is_some())
            .all(|s| s.health.as_ref().and_then(|h| h.healthy) == Some(true))
    }

    /// Done: the exit code once shutdown finished.
    pub fn finished(&self) -> Option<i32> {
        if !self.shutting_down {
            return None;
        }
        let quiet = self.services.iter().all(|s| s.phase.is_terminal())
            && self.hooks.is_empty()
            && self.crons.iter().all(|c| c.pid.is_none())
            && self.lvs_settled(Instant::now());
        let hard_over = self.hard_deadline.is_some_and(|d| Instant::now() >= d);
        if quiet || hard_over {
            Some(
                self.first_failure
                    .unwrap_or(if self.hard { 137 } else { 0 }),
            )
        } else {
            None
        }
    }

    /// The second shutdown signal came (everything was SIGKILLed).
    pub fn was_hard_killed(&self) -> bool {
        self.hard
    }

    pub(super) fn record_failure(&mut self, code: i32) {
        let code = if code == 0 { 1 } else { code };
        self.first_failure.get_or_insert(code);
    }

    pub(super) fn base_env(&self) -> &[(String, String)] {
        &self.base_env
    }
}
