//! App metrics: the aggregates of berth-init's statsd listener (the `statsd` object of its
//! status socket, init/src/statsd), as the agent exports them with the container's tags.
//!
//! Each aggregate is one statsd key of init's last completed step: a counter (`count` in
//! the step and its `rate` per second: the seed's PROC QPS), a timer (`count`, and
//! `min`/`mean`/`p50`/`p99`/`max` in the milliseconds the app sent: PROC DELAY), a gauge
//! (`value`) or a set (`count` of distinct members). Names and tags are the app's: they go
//! into label values (Prometheus) and metric names and tag values (Falcon) only, sanitized
//! there, never into label names.

use serde::Deserialize;

/// The `statsd` object of init's status.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
pub struct Statsd {
    /// Steps init completed.
    #[serde(default)]
    pub steps: u64,
    /// Lines parsed, dropped as malformed, dropped over the key limit, since init started.
    #[serde(default)]
    pub received: u64,
    #[serde(default)]
    pub malformed: u64,
    #[serde(default)]
    pub dropped: u64,
    /// The last completed step's aggregates.
    #[serde(default)]
    pub metrics: Vec<Aggregate>,
}

/// One key of a step.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
pub struct Aggregate {
    pub name: String,
    /// `key:value` (or bare) statsd tags, sorted.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `counter`, `timer`, `gauge` or `set`.
    #[serde(rename = "type")]
    pub kind: String,
    pub count: Option<f64>,
    pub rate: Option<f64>,
    pub value: Option<f64>,
    pub min: Option<f64>,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// One exported value of an aggregate: the suffix of its Falcon name (`rate`, `p99`, ...;
/// empty for a gauge), the statistic, and the value in the unit the app sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub suffix: &'static str,
    pub value: f64,
}

impl Aggregate {
    /// Its values, by kind (an unknown kind has none).
    pub fn values(&self) -> Vec<Value> {
        let v = |suffix, x: Option<f64>| x.map(|value| Value { suffix, value });
        let all = match self.kind.as_str() {
            "counter" => vec![v("count", self.count), v("rate", self.rate)],
            "timer" => vec![
                v("count", self.count),
                v("min", self.min),
                v("mean", self.mean),
                v("p50", self.p50),
                v("p99", self.p99),
                v("max", self.max),
            ],
            "gauge" => vec![v("", self.value)],
            "set" => vec![v("count", self.count)],
            _ => Vec::new(),
        };
        all.into_iter().flatten().collect()
    }

    /// The tags as one label value: `route:/api,code:200`.
    pub fn tags_label(&self) -> String {
        self.tags.join(",")
    }

    /// The tags as Falcon `k=v` pairs (a bare tag `t` becomes `t=true`), through `clean`.
    pub fn falcon_tags(&self, clean: impl Fn(&str) -> String) -> String {
        self.tags
            .iter()
            .map(|t| match t.split_once(':') {
                Some((k, v)) if !k.is_empty() && !v.is_empty() => {
                    format!("{}={}", clean(k), clean(v))
                }
                _ => format!("{}=true", clean(t.trim_end_matches(':'))),
            })
            .filter(|kv| !kv.starts_with('='))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_s_object_parses_and_each_kind_has_its_values() {
        let st: Statsd = serde_json::from_str(
            r#"{"port":8125,"step_s":2.0,"steps":3,"last_step_end":1,"received":253,"malformed":6,"dropped":8,
            "metrics":[{"name":"web.req","tags":["route:/api"],"type":"counter","count":200.0,"rate":100.0},
            {"name":"web.delay","tags":[],"type":"timer","count":100.0,"min":1.0,"mean":50.5,"p50":50.0,"p99":99.0,"max":100.0},
            {"name":"q","tags":["blue"],"type":"gauge","value":10.0},{"name":"u","tags":[],"type":"set","count":3.0},
            {"name":"new","tags":[],"type":"histogram"}]}"#,
        )
        .unwrap();
        assert_eq!((st.received, st.malformed, st.dropped), (253, 6, 8));
        let m = &st.metrics;
        let sfx = |a: &Aggregate| a.values().iter().map(|v| v.suffix).collect::<Vec<_>>();
        assert_eq!(sfx(&m[0]), ["count", "rate"]);
        assert_eq!(sfx(&m[1]), ["count", "min", "mean", "p50", "p99", "max"]);
        assert_eq!(
            m[2].values(),
            [Value {
                suffix: "",
                value: 10.0
            }]
        );
        assert_eq!(sfx(&m[3]), ["count"]);
        assert!(m[4].values().is_empty());
        assert_eq!(m[0].tags_label(), "route:/api");
        let clean = |s: &str| s.replace(',', "_");
        assert_eq!(m[0].falcon_tags(clean), "route=/api");
        assert_eq!(m[2].falcon_tags(clean), "blue=true");
    }
}
