//! Kill grace: which grace period applies and how a repeated KILL changes it.

use std::time::Duration;

use super::types::KillPolicy;

/// Grace when neither the KILL nor the task says otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);

fn grace_of(p: Option<&KillPolicy>) -> Option<Duration> {
    let ns = p?.grace_period?.nanoseconds;
    Some(Duration::from_nanos(ns.max(0) as u64))
}

/// Grace = the KILL's kill_policy, else the TaskInfo's, else 3 s.
pub fn grace(kill: Option<&KillPolicy>, task: Option<&KillPolicy>) -> Duration {
    grace_of(kill)
        .or_else(|| grace_of(task))
        .unwrap_or(DEFAULT_GRACE)
}

/// The deadline after a (possibly repeated) KILL: a repeated KILL may only shorten it.
pub fn next_deadline<T: Ord + Copy>(current: Option<T>, proposed: T) -> T {
    match current {
        Some(c) if c <= proposed => c,
        _ => proposed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::types::DurationInfo;

    fn p(secs: i64) -> KillPolicy {
        KillPolicy {
            grace_period: Some(DurationInfo {
                nanoseconds: secs * 1_000_000_000,
            }),
        }
    }

    #[test]
    fn precedence() {
        assert_eq!(grace(Some(&p(1)), Some(&p(9))), Duration::from_secs(1));
        assert_eq!(grace(None, Some(&p(9))), Duration::from_secs(9));
        assert_eq!(
            grace(Some(&KillPolicy { grace_period: None }), Some(&p(9))),
            Duration::from_secs(9)
        );
        assert_eq!(grace(None, None), DEFAULT_GRACE);
        assert_eq!(grace(Some(&p(0)), None), Duration::ZERO);
    }

    #[test]
    fn repeated_kill_only_shortens() {
        assert_eq!(next_deadline(None, 10), 10);
        assert_eq!(next_deadline(Some(5), 10), 5);
        assert_eq!(next_deadline(Some(10), 5), 5);
    }
}
