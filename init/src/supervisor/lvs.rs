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
#[path = "lvs_tests.rs"]
mod tests;
