//! The supervisor's hook for `lvs:`: what each director should hold for a service,
//! derived from its phase and health at every tick, the drain before the stop signal,
//! and the bound on how long shutdown waits for the DELETEs.
//!
//! - running and ready (healthy, or no health check) → weight N;
//! - running after that but unhealthy → weight 0 (it stays in the table);
//! - stop: weight 0, `drain` passes (connections finish), then `pre_stop` and the stop
//!   signal; once the service is down → DELETE;
//! - shutdown waits for the DELETEs, but not past the kill grace
//!   (`BERTH_KILL_GRACE_MS`, set by the executor from the task's kill policy; 3 s when
//!   missing, the executor's default), and the drain is cut to leave room for the stop.
//!
//! Nothing here runs when no service has an `lvs` section.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::engine::Engine;
use super::os::Os;
use super::service::Phase;
use crate::lvs::link::Target;
use crate::lvs::worker::{self, Table, Worker};
use crate::spec::lvs::LvsSpec;
use crate::spec::AppSpec;

/// The kill grace when the executor did not say (its own default).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);
/// What shutdown keeps of the grace for stopping and the DELETEs after a drain.
const STOP_ROOM: Duration = Duration::from_secs(1);
/// Init exits this long before the grace ends even if a director never answered.
const EXIT_MARGIN: Duration = Duration::from_millis(300);

/// One service's LVS side.
#[derive(Debug)]
pub(super) struct SvcLvs {
    spec: LvsSpec,
    /// Registered with weight N since its last start: a stop drains, a failing health
    /// check quiesces.
    engaged: bool,
    drain_until: Option<Instant>,
}

/// The hook's state in the engine.
pub struct LvsHook {
    table: Table,
    poke: Arc<Notify>,
    svcs: Vec<Option<SvcLvs>>,
    grace: Duration,
    shutdown_at: Option<Instant>,
}

impl LvsHook {
    /// The hook for `spec`; None when no service has `lvs`.
    pub fn new(spec: &AppSpec, grace: Option<Duration>, now: Instant) -> Option<LvsHook> {
        let specs: Vec<Option<LvsSpec>> = spec.services.iter().map(|s| s.lvs.clone()).collect();
        if specs.iter().all(Option::is_none) {
            return None;
        }
        Some(LvsHook {
            table: worker::table(&specs, now),
            poke: Arc::new(Notify::new()),
            svcs: specs
                .into_iter()
                .map(|s| {
                    s.map(|spec| SvcLvs {
                        spec,
                        engaged: false,
                        drain_until: None,
                    })
                })
                .collect(),
            grace: grace.unwrap_or(DEFAULT_GRACE),
            shutdown_at: None,
        })
    }

    /// The worker thread's side (`notify` wakes the run loop; `ip`: the container's
    /// address, if known).
    pub fn worker(
        &self,
        notify: Box<dyn Fn() + Send>,
        ip: Box<dyn Fn() -> Option<std::net::IpAddr> + Send>,
    ) -> Worker {
        Worker {
            specs: self
                .svcs
                .iter()
                .map(|s| s.as_ref().map(|s| s.spec.clone()))
                .collect(),
            table: self.table.clone(),
            poke: self.poke.clone(),
            notify,
            ip,
        }
    }

    /// `BERTH_KILL_GRACE_MS` of the environment.
    pub fn grace_from_env(v: Option<&str>) -> Option<Duration> {
        v?.trim().parse().ok().map(Duration::from_millis)
    }

    fn set_want(&self, i: usize, t: Target, now: Instant) {
        if let Ok(mut tab) = self.table.lock() {
            if let Some(links) = tab.get_mut(i).and_then(|l| l.as_mut()) {
                let changed = links.iter().any(|l| l.want != t);
                for l in links.iter_mut() {
                    l.set_want(t, now);
                }
                if changed {
                    self.poke.notify_one();
                }
            }
        }
    }

    fn settled(&self) -> bool {
        self.table
            .lock()
            .map(|t| t.iter().flatten().flatten().all(|l| l.settled()))
            .unwrap_or(true)
    }

    /// The latest time shutdown waits for the directors.
    fn exit_by(&self) -> Option<Instant> {
        self.shutdown_at
            .map(|t| t + self.grace.saturating_sub(EXIT_MARGIN))
    }
}

impl<O: Os> Engine<O> {
    /// Installs the hook.
    pub fn set_lvs(&mut self, hook: LvsHook) {
        self.lvs = Some(hook);
    }

    /// A running service `i` is being stopped: if it is registered, quiesce it and hold
    /// the stop signal for its drain time. True when the drain began.
    pub(super) fn lvs_drain(&mut self, i: usize, now: Instant) -> bool {
        let shutting_down = self.shutting_down;
        let Some(hook) = self.lvs.as_mut() else {
            return false;
        };
        let grace = hook.grace;
        let Some(Some(s)) = hook.svcs.get_mut(i) else {
            return false;
        };
        if !s.engaged {
            return false;
        }
        let mut drain = s.spec.drain();
        if shutting_down {
            let room = grace.saturating_sub(STOP_ROOM.min(grace / 2));
            if drain > room {
                warn!(service = %self.services[i].spec.name, drain_ms = drain.as_millis() as u64, grace_ms = grace.as_millis() as u64, "lvs: drain cut to fit the kill grace");
                drain = room;
            }
        }
        if drain.is_zero() {
            return false;
        }
        info!(service = %self.services[i].spec.name, drain_ms = drain.as_millis() as u64, "lvs: weight 0, draining before the stop signal");
        s.drain_until = Some(now + drain);
        hook.set_want(i, Target::Weight(0), now);
        true
    }

    /// Sets what every director should hold, and ends drains that are over.
    pub(super) fn tick_lvs(&mut self, now: Instant) {
        let Some(hook) = self.lvs.as_mut() else {
            return;
        };
        if self.shutting_down && hook.shutdown_at.is_none() {
            hook.shutdown_at = Some(now);
        }
        let mut drained = Vec::new();
        let mut wants = Vec::new();
        for (i, slot) in hook.svcs.iter_mut().enumerate() {
            let Some(s) = slot.as_mut() else { continue };
            let svc = &self.services[i];
            let holding = matches!(
                svc.phase,
                Phase::Stopping {
                    signalled: false,
                    ..
                }
            );
            if let Some(until) = s.drain_until {
                if !holding {
                    s.drain_until = None;
                } else if now >= until {
                    s.drain_until = None;
                    drained.push(i);
                }
            }
            let t = match svc.phase {
                Phase::Running { .. } if svc.ready(now) => {
                    s.engaged = true;
                    Target::Weight(s.spec.weight)
                }
                Phase::Running { .. } if s.engaged => Target::Weight(0),
                Phase::Stopping {
                    signalled: false, ..
                } if s.engaged => Target::Weight(0),
                _ => {
                    s.engaged = false;
                    Target::Absent
                }
            };
            wants.push((i, t));
        }
        for (i, t) in wants {
            hook.set_want(i, t, now);
        }
        for i in drained {
            info!(service = %self.services[i].spec.name, "lvs: drain over");
            self.stop_after_drain(i, now);
        }
    }

    /// The next drain end, or (shutting down, directors not settled) the exit bound.
    pub(super) fn lvs_deadline(&self) -> Option<Instant> {
        let hook = self.lvs.as_ref()?;
        let drains = hook.svcs.iter().flatten().filter_map(|s| s.drain_until);
        let exit = hook.exit_by().filter(|_| !hook.settled());
        drains.chain(exit).min()
    }

    /// Shutdown may end: every director holds what is wanted, or the bound passed.
    pub(super) fn lvs_settled(&self, now: Instant) -> bool {
        let Some(hook) = self.lvs.as_ref() else {
            return true;
        };
        if hook.settled() {
            return true;
        }
        let over = hook.exit_by().is_some_and(|t| now >= t);
        if over {
            warn!("lvs: a director did not answer before the kill grace ends: exiting anyway");
        }
        over
    }

    /// The `lvs` object of service `i`'s status.
    pub(super) fn lvs_json(&self, i: usize) -> Option<serde_json::Value> {
        let hook = self.lvs.as_ref()?;
        let s = hook.svcs.get(i)?.as_ref()?;
        let tab = hook.table.lock().ok()?;
        let links = tab.get(i)?.as_ref()?;
        let want = links.first().map_or(Target::Absent, |l| l.want);
        let directors: Vec<_> = s
            .spec
            .director
            .iter()
            .zip(links)
            .map(|(d, l)| {
                json!({
                    "url": d.0,
                    "state": l.state(),
                    "failures": l.failures,
                    "error": l.error,
                })
            })
            .collect();
        let all = |st: &str| links.iter().all(|l| l.state() == st);
        let state = if s.drain_until.is_some() {
            "draining"
        } else if links.iter().any(|l| l.state() == "error") {
            "error"
        } else if all("registered") {
            if want == Target::Weight(0) {
                "quiesced"
            } else {
                "registered"
            }
        } else if all("deregistered") {
            "deregistered"
        } else {
            "pending"
        };
        Some(json!({
            "state": state,
            "vip": s.spec.vip.to_string(),
            "port": s.spec.port.0,
            "weight": match want { Target::Weight(w) => Some(w), Target::Absent => None },
            "directors": directors,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use nix::sys::signal::Signal;

    use super::*;
    use crate::exit_status::ExitKind;
    use crate::lvs::link::Outcome;
    use crate::spec::Probe;
    use crate::supervisor::engine::EngineConfig;
    use crate::supervisor::os::Launch;

    #[derive(Default)]
    struct Fake {
        signals: Vec<(i32, Signal)>,
        alive: HashSet<i32>,
        probes: Vec<(usize, u64)>,
    }

    impl Os for Fake {
        fn spawn(&mut self, _: &Launch) -> std::io::Result<i32> {
            self.alive.insert(101);
            Ok(101)
        }
        fn signal_group(&mut self, pgid: i32, sig: Signal) {
            self.signals.push((pgid, sig));
        }
        fn group_alive(&mut self, pgid: i32) -> bool {
            self.alive.contains(&pgid)
        }
        fn start_probe(&mut self, service: usize, generation: u64, _: &Probe, _: Duration) {
            self.probes.push((service, generation));
        }
    }

    const SPEC: &str = "services:
  web:
    command: /web
    health: {tcp: {port: 8080}, delay: 0s, interval: 1s, consecutive_failures: 9}
    lvs: {director: [http://192.0.2.1:9370, http://192.0.2.2:9370], vip: 10.0.0.100:80/tcp, port: 8080, weight: 2, drain: 2s}
";

    fn engine(grace: Duration, t0: Instant) -> Engine<Fake> {
        let spec = AppSpec::parse(SPEC, Path::new("/app.yaml")).unwrap();
        let hook = LvsHook::new(&spec, Some(grace), t0).unwrap();
        let cfg = EngineConfig {
            spec,
            debug: false,
            inherited_env: vec![],
            service_ids: vec![],
            cron_ids: vec![],
        };
        let mut e = Engine::new(cfg, Fake::default(), 1000.0);
        e.set_lvs(hook);
        e
    }

    fn wants(e: &Engine<Fake>) -> Vec<Target> {
        let t = e.lvs.as_ref().unwrap().table.lock().unwrap();
        t[0].as_ref().unwrap().iter().map(|l| l.want).collect()
    }

    /// Every director answers every call (the worker's part, by hand).
    fn answer_all(e: &Engine<Fake>, now: Instant) {
        let mut t = e.lvs.as_ref().unwrap().table.lock().unwrap();
        for l in t[0].as_mut().unwrap() {
            if l.due(now).is_some() {
                l.done(Outcome::Done, now);
            }
        }
    }

    fn probe(e: &mut Engine<Fake>, ok: bool, now: Instant) {
        e.tick(now, 1000.0);
        let (svc, generation) = *e.os().probes.last().unwrap();
        e.on_probe(svc, generation, ok, now);
        e.tick(now, 1000.0);
    }

    fn terms(e: &Engine<Fake>) -> usize {
        e.os()
            .signals
            .iter()
            .filter(|(_, s)| *s == Signal::SIGTERM)
            .count()
    }

    #[test]
    fn healthy_registers_failing_quiesces_stop_drains_then_deregisters() {
        let t0 = Instant::now();
        let mut e = engine(Duration::from_secs(10), t0);
        e.tick(t0, 1000.0);
        assert_eq!(wants(&e), [Target::Absent; 2], "not before it is healthy");
        probe(&mut e, true, t0);
        assert_eq!(wants(&e), [Target::Weight(2); 2], "every director");
        answer_all(&e, t0);
        let st = e.status();
        let lvs = st.services[0].lvs.as_ref().unwrap();
        assert_eq!(lvs["state"], "registered", "{lvs}");
        assert_eq!(lvs["weight"], 2, "{lvs}");

        let t1 = t0 + Duration::from_secs(1);
        probe(&mut e, false, t1);
        assert_eq!(wants(&e), [Target::Weight(0); 2]);
        answer_all(&e, t1);
        assert_eq!(
            e.status().services[0].lvs.as_ref().unwrap()["state"],
            "quiesced"
        );
        let t2 = t1 + Duration::from_secs(1);
        probe(&mut e, true, t2);
        assert_eq!(wants(&e), [Target::Weight(2); 2], "back once healthy");
        answer_all(&e, t2);

        // SIGTERM: weight 0 at once, the stop signal only after the drain.
        let t3 = t2 + Duration::from_secs(1);
        e.on_shutdown_signal(t3);
        e.tick(t3, 1000.0);
        assert_eq!(wants(&e), [Target::Weight(0); 2]);
        assert_eq!(terms(&e), 0, "drain first");
        assert_eq!(
            e.status().services[0].lvs.as_ref().unwrap()["state"],
            "draining"
        );
        assert_eq!(
            e.next_deadline(t3, 1000.0),
            Some(t3 + Duration::from_secs(2))
        );
        e.tick(t3 + Duration::from_millis(1999), 1000.0);
        assert_eq!(terms(&e), 0);
        let t4 = t3 + Duration::from_secs(2);
        e.tick(t4, 1000.0);
        assert_eq!(terms(&e), 1, "stop signal after the drain");
        assert_eq!(
            wants(&e),
            [Target::Weight(0); 2],
            "still in the table while stopping"
        );

        e.os.alive.clear();
        e.on_reaped(
            101,
            ExitKind::Signaled {
                signo: 15,
                core_dumped: false,
            },
            t4,
        );
        e.tick(t4, 1000.0);
        assert_eq!(wants(&e), [Target::Absent; 2], "DELETE once down");
        assert_eq!(e.finished(), None, "waits for the DELETEs");
        answer_all(&e, t4);
        e.tick(t4, 1000.0);
        assert_eq!(e.finished(), Some(0));
    }

    #[test]
    fn the_drain_fits_the_grace_and_a_dead_director_does_not_hold_the_exit() {
        let t0 = Instant::now();
        let mut e = engine(Duration::from_millis(1500), t0);
        probe(&mut e, true, t0);
        answer_all(&e, t0);
        e.on_shutdown_signal(t0);
        e.tick(t0, 1000.0);
        // drain 2 s > grace 1.5 s - 0.75 s of room: cut to 0.75 s.
        assert_eq!(
            e.next_deadline(t0, 1000.0),
            Some(t0 + Duration::from_millis(750))
        );
        e.tick(t0 + Duration::from_millis(750), 1000.0);
        assert_eq!(terms(&e), 1);
        e.os.alive.clear();
        e.on_reaped(101, ExitKind::Exited(0), t0);
        e.tick(Instant::now(), 1000.0);
        // The directors never answer: init exits at shutdown + grace - margin.
        assert_eq!(e.finished(), None);
        let exit_by = t0 + Duration::from_millis(1200);
        assert!(e.next_deadline(Instant::now(), 1000.0) <= Some(exit_by));
        std::thread::sleep(exit_by.saturating_duration_since(Instant::now()));
        assert_eq!(e.finished(), Some(0));
    }

    #[test]
    fn a_service_that_never_got_healthy_stops_without_a_drain() {
        let t0 = Instant::now();
        let mut e = engine(Duration::from_secs(10), t0);
        e.tick(t0, 1000.0);
        e.on_shutdown_signal(t0);
        assert_eq!(terms(&e), 1);
        assert_eq!(wants(&e), [Target::Absent; 2]);
    }

    #[test]
    fn grace_from_env() {
        assert_eq!(
            LvsHook::grace_from_env(Some("2500")),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(LvsHook::grace_from_env(Some("soon")), None);
        assert_eq!(LvsHook::grace_from_env(None), None);
    }
}
