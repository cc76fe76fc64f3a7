//! Cron schedules: the classic 5 fields `minute hour day-of-month month day-of-week`, or 6
//! with a leading seconds field (an extension for short periods). Times are UTC.
//!
//! Each field takes `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n` and `a-b/n`;
//! month and weekday also take names (`jan`, `mon`). As in Vixie cron, when both the
//! day-of-month and the day-of-week are restricted, a day matching either one fires.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    seconds: u64, // bit set 0..59
    minutes: u64, // 0..59
    hours: u32,   // 0..23
    dom: u32,     // 1..31
    months: u16,  // 1..12
    dow: u8,      // 0..6, Sunday = 0
    dom_star: bool,
    dow_star: bool,
}

/// Why a schedule does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad cron schedule {text:?}: {why}; valid: 5 fields `minute hour day-of-month month day-of-week` (or 6 with leading seconds), each `*`, `N`, `A-B`, `A,B`, `*/N`")]
pub struct ScheduleError {
    /// The schedule as written.
    pub text: String,
    /// What is wrong.
    pub why: String,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

fn parse_value(f: &Field, s: &str) -> Result<u32, String> {
    if let Some(i) = f.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + f.min);
    }
    let v: u32 = s
        .parse()
        .map_err(|_| format!("{} field: {s:?} is not a number", f.name))?;
    // Weekday 7 is Sunday too.
    let v = if f.name == "day-of-week" && v == 7 {
        0
    } else {
        v
    };
    if v < f.min || v > f.max {
        return Err(format!(
            "{} field: {v} is outside {}-{}",
            f.name, f.min, f.max
        ));
    }
    Ok(v)
}

/// Parses one field into a bit set and whether it was `*`.
fn parse_field(f: &Field, text: &str) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("{} field: bad step {s:?}", f.name))?;
                if step == 0 {
                    return Err(format!("{} field: step 0", f.name));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (f.min, f.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (parse_value(f, a)?, parse_value(f, b)?);
            if a > b {
                return Err(format!("{} field: range {range:?} runs backwards", f.name));
            }
            (a, b)
        } else {
            let a = parse_value(f, range)?;
            (a, if step > 1 { f.max } else { a })
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, text == "*"))
}

impl FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(text: &str) -> Result<Self, ScheduleError> {
        let err = |why: String| ScheduleError {
            text: text.to_string(),
            why,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => return Err(err(format!("{n} fields"))),
        };
        let f = |name, min, max, names| Field {
            name,
            min,
            max,
            names,
        };
        let (seconds, _) = parse_field(&f("seconds", 0, 59, &[]), sec).map_err(err)?;
        let (minutes, _) = parse_field(&f("minute", 0, 59, &[]), rest[0]).map_err(err)?;
        let (hours, _) = parse_field(&f("hour", 0, 23, &[]), rest[1]).map_err(err)?;
        let (dom, dom_star) = parse_field(&f("day-of-month", 1, 31, &[]), rest[2]).map_err(err)?;
        let (months, _) = parse_field(&f("month", 1, 12, &MONTHS), rest[3]).map_err(err)?;
        let (mut dow, dow_star) =
            parse_field(&f("day-of-week", 0, 7, &DAYS), rest[4]).map_err(err)?;
        if dow & (1 << 7) != 0 {
            dow = (dow | 1) & 0x7f;
        }
        Ok(Schedule {
            text: text.to_string(),
            seconds,
            minutes,
            hours: hours as u32,
            dom: dom as u32,
            months: months as u16,
            dow: dow as u8,
            dom_star,
            dow_star,
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl Schedule {
    fn day_matches(&self, day: i64) -> bool {
        let (_, m, d) = civil_from_days(day);
        let wd = (day + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
        if self.months & (1 << m) == 0 {
            return false;
        }
        let dom_ok = self.dom & (1 << d) != 0;
        let dow_ok = self.dow & (1 << wd) != 0;
        match (self.dom_star, self.dow_star) {
            (false, false) => dom_ok || dow_ok,
            _ => dom_ok && dow_ok,
        }
    }

    /// The first firing time strictly after `after` (seconds since the epoch, UTC), or
    /// None if nothing matches within 5 years (e.g. `0 0 31 2 *`).
    pub fn next_after(&self, after: u64) -> Option<u64> {
        let start = after as i64 + 1;
        let first_day = start.div_euclid(86_400);
        for day in first_day..first_day + 366 * 5 {
            if !self.day_matches(day) {
                continue;
            }
            let base = day * 86_400;
            for h in 0..24 {
                if self.hours & (1 << h) == 0 || base + h * 3600 + 3599 < start {
                    continue;
                }
                for m in 0..60 {
                    if self.minutes & (1 << m) == 0 || base + h * 3600 + m * 60 + 59 < start {
                        continue;
                    }
                    for s in 0..60 {
                        let t = base + h * 3600 + m * 60 + s;
                        if self.seconds & (1 << s) != 0 && t >= start {
                            return Some(t as u64);
                        }
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-23 22:56:10 UTC (a Monday).
    const T: u64 = 1_795_474_570;

    #[test]
    fn every_minute_fires_at_the_next_minute() {
        let s: Schedule = "* * * * *".parse().unwrap();
        assert_eq!(s.next_after(T), Some(T - 10 + 60));
        assert_eq!(s.next_after(T - 10), Some(T - 10 + 60));
    }

    #[test]
    fn steps_ranges_lists_names() {
        let s: Schedule = "*/15 9-17 * * mon-fri".parse().unwrap();
        // Monday 22:56 -> Tuesday 09:00.
        let next = s.next_after(T).unwrap();
        assert_eq!(next, T - (22 * 3600 + 56 * 60 + 10) + 86_400 + 9 * 3600);
        let s: Schedule = "0 0 1 jan *".parse().unwrap();
        let (y, m, d) = civil_from_days(s.next_after(T).unwrap() as i64 / 86_400);
        assert_eq!((y, m, d), (2027, 1, 1));
    }

    #[test]
    fn dom_or_dow_when_both_restricted() {
        // The 1st of the month or any Sunday: next is Sunday 2026-11-29.
        let s: Schedule = "0 12 1 * 0".parse().unwrap();
        let (_, m, d) = civil_from_days(s.next_after(T).unwrap() as i64 / 86_400);
        assert_eq!((m, d), (11, 29));
        let s: Schedule = "0 12 1 * 7".parse().unwrap();
        let (_, m, d) = civil_from_days(s.next_after(T).unwrap() as i64 / 86_400);
        assert_eq!((m, d), (11, 29));
    }

    #[test]
    fn seconds_field_extension() {
        let s: Schedule = "*/2 * * * * *".parse().unwrap();
        assert_eq!(s.next_after(T), Some(T + 2));
        assert_eq!(s.next_after(T + 1), Some(T + 2));
    }

    #[test]
    fn impossible_date_never_fires() {
        let s: Schedule = "0 0 31 2 *".parse().unwrap();
        assert_eq!(s.next_after(T), None);
    }

    #[test]
    fn bad_schedules_explain() {
        for bad in [
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "* * * foo *",
        ] {
            let e = bad.parse::<Schedule>().unwrap_err().to_string();
            assert!(e.contains("valid: 5 fields"), "{bad}: {e}");
        }
    }
}
