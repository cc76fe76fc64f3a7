//! The health-check state machine, with Mesos semantics (REFERENCE.md section 1):
//! the first check runs `delay` after the service starts, then every `interval`; a check
//! that passes `timeout` is a failure; failures are ignored during `grace_period` until the
//! first success; `consecutive_failures` failures in a row mark the service unhealthy and
//! ask for it to be killed (the restart policy then applies).

use std::time::{Duration, Instant};

/// Check timing (from the spec; defaults are Mesos's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthTiming {
    /// Wait before the first check.
    pub delay: Duration,
    /// Time between the starts of two checks.
    pub interval: Duration,
    /// A check running longer fails.
    pub timeout: Duration,
    /// Failures in a row that make the service unhealthy and killed.
    pub consecutive_failures: u32,
    /// Failures in this window after start are ignored until the first success.
    pub grace_period: Duration,
}

impl Default for HealthTiming {
    fn default() -> Self {
        HealthTiming {
            delay: Duration::from_secs(15),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(20),
            consecutive_failures: 3,
            grace_period: Duration::from_secs(10),
        }
    }
}

/// A change the supervisor acts on or shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthEvent {
    /// Nothing changed.
    None,
    /// First success, or first success after failures.
    Healthy,
    /// A counted failure (healthy is now false), below the kill threshold.
    Failed,
    /// Ignored failure (in the grace period, before any success).
    IgnoredInGrace,
    /// `consecutive_failures` reached: kill the service.
    Kill,
}

/// One service's health state for one run of it.
#[derive(Debug, Clone)]
pub struct HealthState {
    timing: HealthTiming,
    started: Instant,
    next_check: Instant,
    in_flight: Option<Instant>,
    ever_ok: bool,
    /// Consecutive counted failures.
    pub failures: u32,
    /// None until the first counted result.
    pub healthy: Option<bool>,
    /// How long the last finished check took.
    pub last_latency: Option<Duration>,
}

impl HealthState {
    /// The service (re)started at `now`.
    pub fn new(timing: HealthTiming, now: Instant) -> Self {
        HealthState {
            timing,
            started: now,
            next_check: now + timing.delay,
            in_flight: None,
            ever_ok: false,
            failures: 0,
            healthy: None,
            last_latency: None,
        }
    }

    /// When the supervisor must next call `due` or `timed_out`.
    pub fn deadline(&self) -> Instant {
        match self.in_flight {
            Some(t0) => t0 + self.timing.timeout,
            None => self.next_check,
        }
    }

    /// Whether a check should start now; if so, records it as in flight.
    pub fn due(&mut self, now: Instant) -> bool {
        if self.in_flight.is_none() && now >= self.next_check {
            self.in_flight = Some(now);
            self.next_check = now + self.timing.interval;
            return true;
        }
        false
    }

    /// Whether the check in flight has passed its timeout (the caller kills it and then
    /// reports a failure with `result`).
    pub fn timed_out(&self, now: Instant) -> bool {
        self.in_flight
            .is_some_and(|t0| now >= t0 + self.timing.timeout)
    }

    /// Whether a check is running.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The check in flight ended with `ok` at `now`.
    pub fn result(&mut self, ok: bool, now: Instant) -> HealthEvent {
        if let Some(t) = self.in_flight.take() {
            self.last_latency = Some(now.saturating_duration_since(t));
        }
        if ok {
            self.failures = 0;
            self.ever_ok = true;
            let was = self.healthy.replace(true);
            return if was == Some(true) {
                HealthEvent::None
            } else {
                HealthEvent::Healthy
            };
        }
        if !self.ever_ok && now < self.started + self.timing.grace_period {
            return HealthEvent::IgnoredInGrace;
        }
        self.failures += 1;
        self.healthy = Some(false);
        if self.failures >= self.timing.consecutive_failures.max(1) {
            HealthEvent::Kill
        } else {
            HealthEvent::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> HealthTiming {
        HealthTiming {
            delay: Duration::from_secs(1),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            consecutive_failures: 2,
            grace_period: Duration::from_secs(10),
        }
    }

    #[test]
    fn delay_then_interval() {
        let t0 = Instant::now();
        let mut h = HealthState::new(timing(), t0);
        assert!(!h.due(t0));
        assert_eq!(h.deadline(), t0 + Duration::from_secs(1));
        assert!(h.due(t0 + Duration::from_secs(1)));
        assert!(!h.due(t0 + Duration::from_secs(1)), "one check at a time");
        assert!(h.timed_out(t0 + Duration::from_secs(2)));
        h.result(true, t0 + Duration::from_millis(1500));
        assert_eq!(h.deadline(), t0 + Duration::from_secs(3));
    }

    #[test]
    fn grace_ignores_failures_until_first_success() {
        let t0 = Instant::now();
        let mut h = HealthState::new(timing(), t0);
        let at = |s| t0 + Duration::from_secs(s);
        for s in [1, 3, 5, 7] {
            assert!(h.due(at(s)));
            assert_eq!(h.result(false, at(s)), HealthEvent::IgnoredInGrace);
        }
        assert_eq!(h.healthy, None);
        assert!(h.due(at(9)));
        assert_eq!(h.result(true, at(9)), HealthEvent::Healthy);
        // After the first success, failures count even inside the grace window.
        h.due(at(9));
        assert_eq!(h.result(false, at(9)), HealthEvent::Failed);
        assert_eq!(h.healthy, Some(false));
        assert_eq!(h.result(true, at(9)), HealthEvent::Healthy);
        assert_eq!(h.result(false, at(9)), HealthEvent::Failed);
        assert_eq!(h.result(false, at(9)), HealthEvent::Kill);
    }

    #[test]
    fn failures_after_grace_count() {
        let t0 = Instant::now();
        let mut h = HealthState::new(timing(), t0);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(h.result(false, at(11)), HealthEvent::Failed);
        assert_eq!(h.result(false, at(13)), HealthEvent::Kill);
        assert_eq!(h.healthy, Some(false));
    }
}
