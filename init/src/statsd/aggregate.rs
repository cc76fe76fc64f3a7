//! Aggregation of one step: counters (count and rate per second), timers (count, min,
//! mean, p50, p99, max over a bounded reservoir), gauges (last value, kept across steps as
//! statsd does), sets (distinct members). Memory is bounded: at most `max_keys` keys and
//! [`RESERVOIR`] observations per timer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use super::parse::{Kind, Sample};

/// Timer observations kept per key and step (uniform reservoir sample beyond that).
pub const RESERVOIR: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    name: String,
    tags: Vec<String>,
}

#[derive(Debug)]
enum Acc {
    Counter(f64),
    Timer {
        seen: u64,
        sum: f64,
        min: f64,
        max: f64,
        kept: Vec<f64>,
    },
    Set(HashSet<String>),
}

/// One aggregated metric of a step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregate {
    /// Metric name as the app sent it.
    pub name: String,
    /// Its tags, sorted.
    pub tags: Vec<String>,
    /// `counter`, `timer`, `gauge` or `set`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Counter: sum of `value/rate`; timer: observations; set: distinct members.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<f64>,
    /// Counter: `count` per second of the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Gauge value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Timer statistics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl Aggregate {
    fn new(k: &Key, kind: &'static str) -> Self {
        Aggregate {
            name: k.name.clone(),
            tags: k.tags.clone(),
            kind,
            count: None,
            rate: None,
            value: None,
            min: None,
            mean: None,
            p50: None,
            p99: None,
            max: None,
        }
    }
}

/// The step being aggregated.
#[derive(Debug)]
pub struct Aggregator {
    max_keys: usize,
    step: HashMap<Key, Acc>,
    gauges: BTreeMap<Key, f64>,
    /// Samples dropped because `max_keys` keys were already in use.
    pub dropped: u64,
    rng: u64,
}

/// Nearest-rank percentile of sorted `v` (non-empty).
fn percentile(v: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

impl Aggregator {
    /// An empty step with a key limit.
    pub fn new(max_keys: usize) -> Self {
        Aggregator {
            max_keys,
            step: HashMap::new(),
            gauges: BTreeMap::new(),
            dropped: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn keys(&self) -> usize {
        self.step.len() + self.gauges.len()
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64: reservoir slots only, nothing security-related.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Adds a sample.
    pub fn add(&mut self, s: &Sample<'_>) {
        let mut tags: Vec<String> = s.tags.iter().map(|t| t.to_string()).collect();
        tags.sort();
        let key = Key {
            name: s.name.to_string(),
            tags,
        };
        if let Kind::Gauge { delta } = s.kind {
            if !self.gauges.contains_key(&key) && self.keys() >= self.max_keys {
                self.dropped += 1;
                return;
            }
            let g = self.gauges.entry(key).or_insert(0.0);
            *g = if delta { *g + s.value } else { s.value };
            return;
        }
        if !self.step.contains_key(&key) && self.keys() >= self.max_keys {
            self.dropped += 1;
            return;
        }
        let r = self.next_rand();
        let acc = self.step.entry(key).or_insert_with(|| match s.kind {
            Kind::Counter => Acc::Counter(0.0),
            Kind::Set => Acc::Set(HashSet::new()),
            _ => Acc::Timer {
                seen: 0,
                sum: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                kept: Vec::new(),
            },
        });
        match (acc, s.kind) {
            (Acc::Counter(c), Kind::Counter) => *c += s.value / s.rate,
            (Acc::Set(m), Kind::Set) => {
                if m.len() < RESERVOIR {
                    m.insert(s.member.to_string());
                }
            }
            (
                Acc::Timer {
                    seen,
                    sum,
                    min,
                    max,
                    kept,
                },
                Kind::Timer,
            ) => {
                *seen += 1;
                *sum += s.value;
                *min = min.min(s.value);
                *max = max.max(s.value);
                if kept.len() < RESERVOIR {
                    kept.push(s.value);
                } else {
                    let slot = (r % *seen) as usize;
                    if slot < RESERVOIR {
                        kept[slot] = s.value;
                    }
                }
            }
            // The same name sent with another type: a second key would be ambiguous.
            _ => self.dropped += 1,
        }
    }

    /// Ends the step: its aggregates (sorted by name and tags), gauges included; the
    /// next step starts empty except for the gauges.
    pub fn flush(&mut self, step: Duration) -> Vec<Aggregate> {
        let secs = step.as_secs_f64().max(1e-3);
        let mut out: Vec<Aggregate> = Vec::new();
        let mut step_keys: Vec<(Key, Acc)> = self.step.drain().collect();
        step_keys.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, acc) in step_keys {
            match acc {
                Acc::Counter(c) => {
                    let mut a = Aggregate::new(&k, "counter");
                    a.count = Some(c);
                    a.rate = Some(c / secs);
                    out.push(a);
                }
                Acc::Set(m) => {
                    let mut a = Aggregate::new(&k, "set");
                    a.count = Some(m.len() as f64);
                    out.push(a);
                }
                Acc::Timer {
                    seen,
                    sum,
                    min,
                    max,
                    mut kept,
                } => {
                    kept.sort_by(f64::total_cmp);
                    let mut a = Aggregate::new(&k, "timer");
                    a.count = Some(seen as f64);
                    a.min = Some(min);
                    a.max = Some(max);
                    a.mean = Some(sum / seen as f64);
                    a.p50 = Some(percentile(&kept, 50.0));
                    a.p99 = Some(percentile(&kept, 99.0));
                    out.push(a);
                }
            }
        }
        for (k, v) in &self.gauges {
            let mut a = Aggregate::new(k, "gauge");
            a.value = Some(*v);
            out.push(a);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::line;
    use super::*;

    fn feed(a: &mut Aggregator, lines: &[String]) {
        for l in lines {
            a.add(&line(l).unwrap());
        }
    }

    #[test]
    fn a_step() {
        let mut a = Aggregator::new(100);
        let mut lines: Vec<String> = (1..=100).map(|i| format!("lat:{i}|ms")).collect();
        lines.extend((0..50).map(|_| "req:1|c|@0.5|#b:2,a:1".to_string()));
        lines.extend(["q:5|g", "q:+2|g", "u:x|s", "u:y|s", "u:x|s"].map(String::from));
        feed(&mut a, &lines);
        let out = a.flush(Duration::from_secs(10));
        let lat = out.iter().find(|m| m.name == "lat").unwrap();
        assert_eq!(
            (lat.count, lat.p50, lat.p99, lat.max, lat.min),
            (Some(100.0), Some(50.0), Some(99.0), Some(100.0), Some(1.0))
        );
        assert_eq!(lat.mean, Some(50.5));
        let req = out.iter().find(|m| m.name == "req").unwrap();
        assert_eq!((req.count, req.rate), (Some(100.0), Some(10.0)));
        assert_eq!(req.tags, ["a:1", "b:2"]);
        assert_eq!(out.iter().find(|m| m.name == "q").unwrap().value, Some(7.0));
        assert_eq!(out.iter().find(|m| m.name == "u").unwrap().count, Some(2.0));
        // Next step: counters and timers start over, the gauge stays.
        let next = a.flush(Duration::from_secs(10));
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].kind, "gauge");
    }

    #[test]
    fn bounded() {
        let mut a = Aggregator::new(3);
        let lines: Vec<String> = (0..10).map(|i| format!("k{i}:1|c")).collect();
        feed(&mut a, &lines);
        assert_eq!(a.dropped, 7);
        assert_eq!(a.flush(Duration::from_secs(1)).len(), 3);
        let many: Vec<String> = (0..20_000).map(|i| format!("t:{}|ms", i % 1000)).collect();
        feed(&mut a, &many);
        let t = a.flush(Duration::from_secs(1));
        assert_eq!(t[0].count, Some(20_000.0));
        let p50 = t[0].p50.unwrap();
        assert!((400.0..600.0).contains(&p50), "{p50}");
        // A name reused with another type is dropped, not merged.
        feed(&mut a, &["m:1|c".to_string(), "m:1|ms".to_string()]);
        assert_eq!(a.dropped, 8);
    }
}
