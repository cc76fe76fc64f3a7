//! One cron job's runs: fire on schedule, never two runs at once, kill a run at its timeout.

use std::time::Duration;

use super::Schedule;

/// What the supervisor should do for a job now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronTick {
    /// Nothing due.
    Idle,
    /// Start a run.
    Start,
    /// A tick came while the previous run was still going: skipped (no overlap).
    SkippedOverlap,
    /// The running run passed its timeout: kill its process group.
    Timeout,
}

/// Bookkeeping for one job; times are seconds since the epoch (wall clock, UTC).
#[derive(Debug, Clone)]
pub struct CronJobState {
    schedule: Schedule,
    timeout: Option<Duration>,
    next: Option<u64>,
    running_since: Option<f64>,
    timed_out: bool,
    /// Runs started so far.
    pub runs: u64,
    /// Ticks skipped because a run was still going.
    pub skipped: u64,
}

impl CronJobState {
    /// A job whose first firing is the first schedule time after `now`.
    pub fn new(schedule: Schedule, timeout: Option<Duration>, now: f64) -> Self {
        let next = schedule.next_after(now as u64);
        CronJobState {
            schedule,
            timeout,
            next,
            running_since: None,
            timed_out: false,
            runs: 0,
            skipped: 0,
        }
    }

    /// The next instant (epoch seconds) at which `tick` has something to do.
    pub fn deadline(&self) -> Option<f64> {
        let fire = self.next.map(|n| n as f64);
        let kill = match (self.running_since, self.timeout) {
            (Some(t0), Some(to)) if !self.timed_out => Some(t0 + to.as_secs_f64()),
            _ => None,
        };
        match (fire, kill) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advances to `now` and says what to do.
    pub fn tick(&mut self, now: f64) -> CronTick {
        if let (Some(t0), Some(to)) = (self.running_since, self.timeout) {
            if !self.timed_out && now >= t0 + to.as_secs_f64() {
                self.timed_out = true;
                return CronTick::Timeout;
            }
        }
        match self.next {
            Some(n) if now >= n as f64 => {
                self.next = self.schedule.next_after(now as u64);
                if self.running_since.is_some() {
                    self.skipped += 1;
                    CronTick::SkippedOverlap
                } else {
                    CronTick::Start
                }
            }
            _ => CronTick::Idle,
        }
    }

    /// The supervisor started a run at `now`.
    pub fn started(&mut self, now: f64) {
        self.running_since = Some(now);
        self.timed_out = false;
        self.runs += 1;
    }

    /// The run ended (exited, or its group was killed and reaped).
    pub fn finished(&mut self) {
        self.running_since = None;
        self.timed_out = false;
    }

    /// Whether a run is going.
    pub fn running(&self) -> bool {
        self.running_since.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_overlap_and_timeout() {
        let s: Schedule = "*/2 * * * * *".parse().unwrap();
        let mut j = CronJobState::new(s, Some(Duration::from_secs(3)), 100.0);
        assert_eq!(j.deadline(), Some(102.0));
        assert_eq!(j.tick(101.0), CronTick::Idle);
        assert_eq!(j.tick(102.0), CronTick::Start);
        j.started(102.0);
        assert_eq!(j.deadline(), Some(104.0));
        assert_eq!(j.tick(104.0), CronTick::SkippedOverlap);
        assert_eq!(j.deadline(), Some(105.0));
        assert_eq!(j.tick(105.0), CronTick::Timeout);
        assert_eq!(j.tick(105.5), CronTick::Idle);
        j.finished();
        assert_eq!(j.tick(106.0), CronTick::Start);
        assert_eq!((j.runs, j.skipped), (1, 1));
    }
}
