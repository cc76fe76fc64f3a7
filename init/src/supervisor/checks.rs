//! Running health checks and acting on their results.

use std::time::Instant;

use nix::sys::signal::Signal;
use tracing::{info, warn};

use super::engine::{Engine, Owner};
use super::os::Os;
use super::service::{AfterStop, Phase};
use crate::health::HealthEvent;
use crate::spec::Probe;

impl<O: Os> Engine<O> {
    pub(super) fn tick_health(&mut self, now: Instant) {
        for i in 0..self.services.len() {
            if !matches!(self.services[i].phase, Phase::Running { .. }) {
                continue;
            }
            let Some(h) = &self.services[i].health else {
                continue;
            };
            if h.timed_out(now) {
                warn!(service = %self.services[i].spec.name, "health check timed out");
                if let Some(pid) = self.services[i].probe_pid.take() {
                    self.os.signal_group(pid, Signal::SIGKILL);
                }
                let generation = self.services[i].probe_gen;
                self.on_probe(i, generation, false, now);
                if !matches!(self.services[i].phase, Phase::Running { .. }) {
                    continue;
                }
            }
            let due = self.services[i].health.as_mut().is_some_and(|h| h.due(now));
            if due {
                self.start_check(i, now);
            }
        }
    }

    fn start_check(&mut self, i: usize, now: Instant) {
        let s = &mut self.services[i];
        s.probe_gen += 1;
        let generation = s.probe_gen;
        let Some(spec) = &s.spec.health else { return };
        let timeout = spec.timing().timeout;
        let probe = match spec.probe(&self.app_ports) {
            Ok(p) => p,
            Err(_) => return,
        };
        match probe {
            Probe::Cmd(cmd) => {
                let label = format!("{} health", s.spec.name);
                let launch = self.launch_for(i, &cmd.0, label);
                match self.spawn_owned(&launch, Owner::Probe(i, generation)) {
                    Some(pid) => self.services[i].probe_pid = Some(pid),
                    None => self.on_probe(i, generation, false, now),
                }
            }
            other => self.os.start_probe(i, generation, &other, timeout),
        }
    }

    /// A probe of service `i` ended; `generation` drops results of abandoned probes.
    pub fn on_probe(&mut self, i: usize, generation: u64, ok: bool, now: Instant) {
        let s = &mut self.services[i];
        if generation != s.probe_gen || !matches!(s.phase, Phase::Running { .. }) {
            return;
        }
        s.probe_gen += 1;
        let Some(h) = s.health.as_mut() else { return };
        if !h.in_flight() {
            return;
        }
        let name = s.spec.name.clone();
        match h.result(ok, now) {
            HealthEvent::Healthy => info!(service = %name, "healthy"),
            HealthEvent::Failed => {
                warn!(service = %name, failures = h.failures, "health check failed")
            }
            HealthEvent::IgnoredInGrace => {
                info!(service = %name, "health check failed (grace period)")
            }
            HealthEvent::Kill => {
                warn!(service = %name, failures = h.failures, "unhealthy: killing the service");
                self.begin_stop(i, AfterStop::Failed(1), now);
            }
            HealthEvent::None => {}
        }
    }
}
