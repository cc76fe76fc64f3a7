//! Mesos' own duration text (stout `Duration`): a number and a unit, e.g. `5secs`,
//! `2.5secs`, `15mins`, `100ms`. The agent writes durations into the executor's
//! environment in this form (`MESOS_RECOVERY_TIMEOUT=15mins`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration parsed from (and printed as) stout's text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoutDuration(pub Duration);

/// Why a duration text was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("duration {text:?} has no unit (expected ns, us, ms, secs, mins, hrs, days or weeks)")]
    NoUnit { text: String },
    #[error("duration {text:?} has an unknown unit {unit:?}")]
    Unit { text: String, unit: String },
    #[error("duration {text:?} has no valid number")]
    Number { text: String },
    #[error("duration {text:?} is negative or too large")]
    Range { text: String },
}

/// Nanoseconds per unit, in stout's spelling.
const UNITS: &[(&str, f64)] = &[
    ("ns", 1.0),
    ("us", 1e3),
    ("ms", 1e6),
    ("secs", 1e9),
    ("mins", 60e9),
    ("hrs", 3600e9),
    ("days", 86400e9),
    ("weeks", 604800e9),
];

impl FromStr for StoutDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let split = text
            .find(|c: char| c.is_ascii_alphabetic())
            .ok_or_else(|| DurationError::NoUnit {
                text: s.to_string(),
            })?;
        let (num, unit) = text.split_at(split);
        let per = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, n)| *n)
            .ok_or_else(|| DurationError::Unit {
                text: s.to_string(),
                unit: unit.to_string(),
            })?;
        let value: f64 = num.trim().parse().map_err(|_| DurationError::Number {
            text: s.to_string(),
        })?;
        let nanos = value * per;
        if !nanos.is_finite() || nanos < 0.0 || nanos > u64::MAX as f64 {
            return Err(DurationError::Range {
                text: s.to_string(),
            });
        }
        Ok(StoutDuration(Duration::from_nanos(nanos.round() as u64)))
    }
}

impl fmt::Display for StoutDuration {
    /// Prints the largest unit that divides the value exactly (stout prints like this too,
    /// with fractional values where needed; exact units are easier to read and re-parse).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        for (unit, per) in UNITS.iter().rev() {
            let per = *per as u128;
            if nanos >= per && nanos.is_multiple_of(per) {
                return write!(f, "{}{}", nanos / per, unit);
            }
        }
        write!(f, "{nanos}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Duration {
        s.parse::<StoutDuration>().unwrap().0
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(d("5secs"), Duration::from_secs(5));
        assert_eq!(d("2.5secs"), Duration::from_millis(2500));
        assert_eq!(d("15mins"), Duration::from_secs(900));
        assert_eq!(d("100ms"), Duration::from_millis(100));
        assert_eq!(d("7us"), Duration::from_micros(7));
        assert_eq!(d("9ns"), Duration::from_nanos(9));
        assert_eq!(d("1hrs"), Duration::from_secs(3600));
        assert_eq!(d("2days"), Duration::from_secs(172800));
        assert_eq!(d("1weeks"), Duration::from_secs(604800));
        assert_eq!(d(" 3secs "), Duration::from_secs(3));
    }

    #[test]
    fn refuses_bad_text() {
        assert!(matches!(
            "5".parse::<StoutDuration>(),
            Err(DurationError::NoUnit { .. })
        ));
        assert!(matches!(
            "5s".parse::<StoutDuration>(),
            Err(DurationError::Unit { .. })
        ));
        assert!(matches!(
            "5seconds".parse::<StoutDuration>(),
            Err(DurationError::Unit { .. })
        ));
        assert!(matches!(
            "secs".parse::<StoutDuration>(),
            Err(DurationError::Number { .. })
        ));
        assert!(matches!(
            "-1secs".parse::<StoutDuration>(),
            Err(DurationError::Range { .. })
        ));
    }

    #[test]
    fn prints_and_reparses() {
        for s in ["5secs", "15mins", "2500ms", "3hrs", "1weeks", "7ns"] {
            assert_eq!(s.parse::<StoutDuration>().unwrap().to_string(), s);
        }
    }
}
