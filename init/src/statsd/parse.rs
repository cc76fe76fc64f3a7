//! One statsd line: `name:value|type[|@rate][|#tag:value,tag]` with types `c` (counter),
//! `ms`/`h`/`d` (timer, histogram, distribution: all timers here), `g` (gauge; `+n`/`-n`
//! adjust it) and `s` (set). Anything else is malformed: counted and dropped by the caller.

/// What a sample is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Adds `value / rate` to the step's count.
    Counter,
    /// One observation (milliseconds for `ms`).
    Timer,
    /// Sets the gauge, or adjusts it when `delta`.
    Gauge {
        /// Written with a sign: adjust, do not set.
        delta: bool,
    },
    /// Counts distinct values per step.
    Set,
}

/// A parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// Metric name.
    pub name: &'a str,
    /// Numeric value (for sets: 0; see `member`).
    pub value: f64,
    /// The set member, for sets.
    pub member: &'a str,
    /// Type.
    pub kind: Kind,
    /// Sample rate in (0, 1].
    pub rate: f64,
    /// `|#` tags, as written (`key:value` or `key`).
    pub tags: Vec<&'a str>,
}

/// Longest name, tag or set member accepted.
pub const MAX_TOKEN: usize = 200;

fn token_ok(s: &str, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TOKEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b) || extra.contains(&b))
}

/// Parses one line (without its newline), or says why not.
pub fn line(l: &str) -> Result<Sample<'_>, &'static str> {
    let (name, rest) = l.split_once(':').ok_or("no ':'")?;
    if !token_ok(name, b"") {
        return Err("bad name");
    }
    let mut parts = rest.split('|');
    let value = parts.next().unwrap_or_default();
    let kind = parts.next().ok_or("no type")?;
    let kind = match kind {
        "c" => Kind::Counter,
        "ms" | "h" | "d" => Kind::Timer,
        "g" => Kind::Gauge {
            delta: value.starts_with(['+', '-']),
        },
        "s" => Kind::Set,
        _ => return Err("unknown type"),
    };
    let mut rate = 1.0;
    let mut tags = Vec::new();
    for p in parts {
        if let Some(r) = p.strip_prefix('@') {
            rate = r.parse::<f64>().map_err(|_| "bad rate")?;
            if !(rate > 0.0 && rate <= 1.0) {
                return Err("bad rate");
            }
        } else if let Some(t) = p.strip_prefix('#') {
            for tag in t.split(',') {
                if !token_ok(tag, b":/") {
                    return Err("bad tag");
                }
                tags.push(tag);
            }
        } else {
            return Err("unknown field");
        }
    }
    let (value, member) = if kind == Kind::Set {
        if !token_ok(value, b":/") {
            return Err("bad set member");
        }
        (0.0, value)
    } else {
        let v: f64 = value.parse().map_err(|_| "bad value")?;
        if !v.is_finite() || (kind == Kind::Timer && v < 0.0) {
            return Err("bad value");
        }
        (v, "")
    };
    Ok(Sample {
        name,
        value,
        member,
        kind,
        rate,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_lines() {
        let s = line("web.req:1|c|@0.5|#route:/api,canary").unwrap();
        assert_eq!(
            (s.name, s.value, s.kind, s.rate),
            ("web.req", 1.0, Kind::Counter, 0.5)
        );
        assert_eq!(s.tags, ["route:/api", "canary"]);
        assert_eq!(line("lat:12.5|ms").unwrap().kind, Kind::Timer);
        assert_eq!(line("q:-3|g").unwrap().kind, Kind::Gauge { delta: true });
        assert_eq!(line("q:3|g").unwrap().kind, Kind::Gauge { delta: false });
        assert_eq!(line("users:alice|s").unwrap().member, "alice");
    }

    #[test]
    fn malformed_lines() {
        for bad in [
            "",
            "noval",
            "a:1",
            "a:1|x",
            "a:x|c",
            "a:1|c|@0",
            "a:1|c|@2",
            "a:1|c|foo",
            "a b:1|c",
            "a:1|c|#bad tag",
            "a:-1|ms",
            "a:inf|c",
            "a:NaN|g",
            "\u{1b}[31m:1|c",
        ] {
            assert!(line(bad).is_err(), "{bad:?} parsed");
        }
        assert!(line(&format!("{}:1|c", "a".repeat(MAX_TOKEN + 1))).is_err());
    }
}
