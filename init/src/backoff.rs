//! Restart backoff: exponential delays between restarts, reset after a stable run, and a
//! crash-loop limit after which the service is marked failed.

use std::time::Duration;

/// Backoff parameters (from the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Delay before the first restart.
    pub initial: Duration,
    /// Ceiling of the delay.
    pub max: Duration,
    /// A run at least this long counts as stable and resets the delay and the count.
    pub reset_after: Duration,
    /// Restarts allowed in a row without a stable run; 0 = unlimited.
    pub crash_loop_limit: u32,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            reset_after: Duration::from_secs(60),
            crash_loop_limit: 10,
        }
    }
}

/// What to do after a run ended and the restart policy wants a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart after this delay.
    RestartIn(Duration),
    /// The crash-loop limit is reached: mark the service failed.
    GiveUp,
}

/// The running count of unstable restarts.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    /// Restarts in a row without a stable run.
    pub streak: u32,
}

impl Backoff {
    /// A run that lasted `ran` ended: decide the next step.
    pub fn on_exit(&mut self, policy: &BackoffPolicy, ran: Duration) -> Decision {
        if ran >= policy.reset_after {
            self.streak = 0;
        }
        if policy.crash_loop_limit != 0 && self.streak >= policy.crash_loop_limit {
            return Decision::GiveUp;
        }
        let factor = 1u32.checked_shl(self.streak.min(31)).unwrap_or(u32::MAX);
        let delay = policy.initial.saturating_mul(factor).min(policy.max);
        self.streak += 1;
        Decision::RestartIn(delay)
    }

    /// An operator started the service by hand: forget the streak.
    pub fn reset(&mut self) {
        self.streak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            reset_after: Duration::from_secs(10),
            crash_loop_limit: 6,
        }
    }

    #[test]
    fn grows_caps_and_gives_up() {
        let p = policy();
        let mut b = Backoff::default();
        let quick = Duration::from_millis(5);
        let delays: Vec<Decision> = (0..7).map(|_| b.on_exit(&p, quick)).collect();
        let ms = |m| Decision::RestartIn(Duration::from_millis(m));
        assert_eq!(
            delays,
            vec![
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000),
                Decision::GiveUp
            ]
        );
    }

    #[test]
    fn stable_run_resets() {
        let p = policy();
        let mut b = Backoff::default();
        b.on_exit(&p, Duration::ZERO);
        b.on_exit(&p, Duration::ZERO);
        assert_eq!(
            b.on_exit(&p, Duration::from_secs(11)),
            Decision::RestartIn(Duration::from_millis(100))
        );
    }

    #[test]
    fn unlimited_when_zero() {
        let p = BackoffPolicy {
            crash_loop_limit: 0,
            ..policy()
        };
        let mut b = Backoff::default();
        for _ in 0..100 {
            assert_ne!(b.on_exit(&p, Duration::ZERO), Decision::GiveUp);
        }
    }
}
