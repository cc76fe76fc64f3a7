//! One (service, director) pair: what init wants the director to hold for the service,
//! what the director last acknowledged, and when to try again.
//!
//! A call that failed may still have reached the director (a timeout after it applied
//! the change), so after any failure the acknowledged state is unknown and the next
//! wanted state is sent whatever it is (a DELETE after a failed PUT included). A change of
//! the wanted state is sent at once; a failure retries it with exponential backoff
//! (connection errors, 5xx) or slowly (a 4xx: the director refused it and will likely
//! refuse it again, so it is logged and shown rather than hammered).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::backoff::{Backoff, BackoffPolicy, Decision};

/// What a director should hold for the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Not a real server of the VIP.
    Absent,
    /// A real server with this weight (0: quiesced, no new connections).
    Weight(u32),
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200.
    Done,
    /// Connection error, timeout, 5xx, or an answer that is not the contract's.
    Transient(String),
    /// A 4xx: the director refused the call.
    Rejected(String),
}

/// Retry delay after a 4xx.
pub const REJECTED_RETRY: Duration = Duration::from_secs(30);

/// The retry backoff after transient failures.
pub const RETRY: BackoffPolicy = BackoffPolicy {
    initial: Duration::from_millis(250),
    max: Duration::from_secs(5),
    reset_after: Duration::MAX,
    crash_loop_limit: 0,
};

/// One link's state.
#[derive(Debug, Clone)]
pub struct Link {
    /// Wanted.
    pub want: Target,
    /// Acknowledged by the director; `None` = unknown (after a failed call).
    pub acked: Option<Target>,
    /// The call on its way.
    pub in_flight: Option<Target>,
    next_try: Instant,
    backoff: Backoff,
    /// Failed calls in a row.
    pub failures: u32,
    /// The last failure, until a call succeeds.
    pub error: Option<String>,
}

impl Link {
    /// Nothing registered yet (a new container's address is in no table).
    pub fn new(now: Instant) -> Link {
        Link {
            want: Target::Absent,
            acked: Some(Target::Absent),
            in_flight: None,
            next_try: now,
            backoff: Backoff::default(),
            failures: 0,
            error: None,
        }
    }

    /// Sets what is wanted; a change is sent at once (no waiting out an old backoff).
    pub fn set_want(&mut self, t: Target, now: Instant) {
        if self.want != t {
            self.want = t;
            self.next_try = now;
        }
    }

    /// The director holds what is wanted and no call is on its way.
    pub fn settled(&self) -> bool {
        self.in_flight.is_none() && self.acked == Some(self.want)
    }

    /// The call to make now, if any (then marked in flight).
    pub fn due(&mut self, now: Instant) -> Option<Target> {
        if self.in_flight.is_none() && self.acked != Some(self.want) && now >= self.next_try {
            self.in_flight = Some(self.want);
            return Some(self.want);
        }
        None
    }

    /// When [`Link::due`] may next return a call (`None`: nothing pending, or in flight).
    pub fn deadline(&self) -> Option<Instant> {
        (self.in_flight.is_none() && self.acked != Some(self.want)).then_some(self.next_try)
    }

    /// The call in flight ended.
    pub fn done(&mut self, outcome: Outcome, now: Instant) {
        let sent = self.in_flight.take();
        match outcome {
            Outcome::Done => {
                self.acked = sent;
                self.failures = 0;
                self.backoff.reset();
                self.error = None;
            }
            Outcome::Transient(e) => {
                self.fail(e);
                let delay = match self.backoff.on_exit(&RETRY, Duration::ZERO) {
                    Decision::RestartIn(d) => d,
                    Decision::GiveUp => RETRY.max,
                };
                self.next_try = now + delay;
            }
            Outcome::Rejected(e) => {
                self.fail(e);
                self.next_try = now + REJECTED_RETRY;
            }
        }
    }

    fn fail(&mut self, e: String) {
        self.acked = None;
        self.failures += 1;
        self.error = Some(e);
    }

    /// `registered` / `deregistered` when settled, else `pending`, or `error`.
    pub fn state(&self) -> &'static str {
        match (self.settled(), self.want, &self.error) {
            (true, Target::Weight(_), _) => "registered",
            (true, Target::Absent, _) => "deregistered",
            (false, _, Some(_)) => "error",
            (false, _, None) => "pending",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn registers_once_and_settles() {
        let t0 = Instant::now();
        let mut l = Link::new(t0);
        assert!(l.settled());
        assert_eq!(l.due(t0), None, "nothing to deregister at start");
        l.set_want(Target::Weight(3), t0);
        assert_eq!(l.due(t0), Some(Target::Weight(3)));
        assert_eq!(l.due(t0), None, "one call at a time");
        l.done(Outcome::Done, t0);
        assert!(l.settled());
        assert_eq!(l.state(), "registered");
        assert_eq!(l.deadline(), None);
    }

    #[test]
    fn transient_failures_back_off_and_make_the_state_unknown() {
        let t0 = Instant::now();
        let mut l = Link::new(t0);
        l.set_want(Target::Weight(1), t0);
        let mut at = t0;
        for want in [250, 500, 1000, 2000, 4000, 5000, 5000] {
            assert_eq!(l.due(at), Some(Target::Weight(1)));
            l.done(Outcome::Transient("connection refused".into()), at);
            assert_eq!(l.deadline(), Some(at + ms(want)));
            assert_eq!(l.due(at + ms(want - 1)), None);
            at += ms(want);
        }
        assert_eq!(l.acked, None);
        assert_eq!(l.state(), "error");
        assert_eq!(l.error.as_deref(), Some("connection refused"));
        // The director comes up: the next try succeeds and clears the error.
        assert_eq!(l.due(at), Some(Target::Weight(1)));
        l.done(Outcome::Done, at);
        assert_eq!(
            (l.state(), l.failures, l.error.clone()),
            ("registered", 0, None)
        );
        // A failed PUT may have landed: stopping then sends the DELETE.
        l.set_want(Target::Weight(0), at);
        assert_eq!(l.due(at), Some(Target::Weight(0)));
        l.done(Outcome::Transient("timeout".into()), at);
        l.set_want(Target::Absent, at);
        assert_eq!(
            l.due(at),
            Some(Target::Absent),
            "a change skips the backoff"
        );
    }

    #[test]
    fn a_4xx_retries_slowly() {
        let t0 = Instant::now();
        let mut l = Link::new(t0);
        l.set_want(Target::Weight(1), t0);
        l.due(t0);
        l.done(Outcome::Rejected("HTTP 404: unknown VIP".into()), t0);
        assert_eq!(l.deadline(), Some(t0 + REJECTED_RETRY));
        assert_eq!(l.state(), "error");
    }

    #[test]
    fn a_change_while_in_flight_is_sent_after() {
        let t0 = Instant::now();
        let mut l = Link::new(t0);
        l.set_want(Target::Weight(1), t0);
        l.due(t0);
        l.set_want(Target::Weight(0), t0);
        assert_eq!(l.due(t0), None);
        l.done(Outcome::Done, t0);
        assert_eq!(l.acked, Some(Target::Weight(1)));
        assert!(!l.settled());
        assert_eq!(l.due(t0), Some(Target::Weight(0)));
    }
}
