//! Open-Falcon items (REFERENCE.md section 3): what the Falcon agent's `/v1/push` takes.
//!
//! Names follow the seed's container collector (micadvisor) where it had one: `cpu.busy`,
//! `cpu.user`, `cpu.system` (percent of the container's CPUs: its quota, else its
//! `BERTH_CPUS`, else one CPU), `mem.memused` (bytes charged), `mem.memused.hot`
//! (anonymous bytes), `mem.memtotal` (limit), `mem.memused.percent`,
//! `disk.io.read_bytes`/`write_bytes` (COUNTER), `net.if.{in,out}.{bytes,packets,errors,
//! dropped}` (COUNTER, tag `iface`); the Falcon agent's own names for the rest:
//! `df.bytes.used`/`df.bytes.total`/`df.bytes.used.percent` (tag `mount=/home`),
//! `proc.num`; berth's own under `berth.`; the app's statsd aggregates under the app's own
//! names (`web.req.rate`, `web.delay.p99`, see [`super::app`]). The endpoint is the container's hostname;
//! the tags `app=<Marathon app id>,task=<task id>` (micadvisor sent none, so its series
//! of two containers on one host could not be told apart).

use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::collect::{Sample, Snapshot};

/// One pushed value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub endpoint: String,
    pub metric: String,
    pub timestamp: i64,
    pub step: i64,
    pub value: f64,
    #[serde(rename = "counterType")]
    pub counter_type: String,
    pub tags: String,
}

/// Transfer refuses items whose metric and tags together are longer than this.
pub const MAX_METRIC_AND_TAGS: usize = 510;

/// A tag value Falcon can split back: `,` and `=` separate tags, so they (and spaces)
/// become `_`.
pub fn tag_value(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c == ',' || c == '=' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The items of `cur`; rates (`cpu.*`) need the container's sample in `prev` too and are
/// left out on its first step.
pub fn items(prev: Option<&Snapshot>, cur: &Snapshot, step: u64) -> Vec<Item> {
    let ts = cur
        .at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut out = Vec::new();
    for s in &cur.samples {
        let before = prev.and_then(|p| {
            p.samples
                .iter()
                .find(|b| b.task.container_id == s.task.container_id)
                .map(|b| {
                    (
                        b,
                        cur.at
                            .duration_since(p.at)
                            .unwrap_or_default()
                            .as_secs_f64(),
                    )
                })
        });
        container_items(s, before, ts, step as i64, &mut out);
    }
    out.retain(|i| i.metric.len() + i.tags.len() <= MAX_METRIC_AND_TAGS);
    out
}

fn container_items(
    s: &Sample,
    before: Option<(&Sample, f64)>,
    timestamp: i64,
    step: i64,
    out: &mut Vec<Item>,
) {
    let endpoint = if s.task.hostname.is_empty() {
        s.task.container_id.clone()
    } else {
        s.task.hostname.clone()
    };
    let mut tags = format!("task={}", tag_value(&s.task.task_id));
    if !s.task.app_id.is_empty() {
        tags = format!("app={},{tags}", tag_value(&s.task.app_id));
    }
    let mut push = |metric: &str, value: f64, counter: bool, extra: &str| {
        out.push(Item {
            endpoint: endpoint.clone(),
            metric: metric.to_string(),
            timestamp,
            step,
            value,
            counter_type: if counter { "COUNTER" } else { "GAUGE" }.into(),
            tags: if extra.is_empty() {
                tags.clone()
            } else {
                format!("{tags},{extra}")
            },
        })
    };
    if let Some(c) = &s.cgroup {
        if let Some((b, secs)) = before.and_then(|(b, t)| Some((b.cgroup.as_ref()?, t))) {
            if secs > 0.0 {
                let cpus = c
                    .cpu_limit
                    .or(s.task.cpus)
                    .filter(|c| *c > 0.0)
                    .unwrap_or(1.0);
                let pct = |now: u64, then: u64| {
                    now.saturating_sub(then) as f64 / 1e9 / secs / cpus * 100.0
                };
                push("cpu.busy", pct(c.cpu_usage_ns, b.cpu_usage_ns), false, "");
                push("cpu.user", pct(c.cpu_user_ns, b.cpu_user_ns), false, "");
                push(
                    "cpu.system",
                    pct(c.cpu_system_ns, b.cpu_system_ns),
                    false,
                    "",
                );
            }
        }
        push("mem.memused", c.mem_usage as f64, false, "");
        push("mem.memused.hot", c.mem_rss as f64, false, "");
        if let Some(l) = c.mem_limit {
            push("mem.memtotal", l as f64, false, "");
            push(
                "mem.memused.percent",
                c.mem_usage as f64 / l as f64 * 100.0,
                false,
                "",
            );
        }
        push("disk.io.read_bytes", c.io_read_bytes as f64, true, "");
        push("disk.io.write_bytes", c.io_write_bytes as f64, true, "");
        push("proc.num", c.pids as f64, false, "");
        push(
            "berth.cpu.throttled",
            c.cpu_throttled_periods as f64,
            true,
            "",
        );
        push("berth.mem.oom_kills", c.oom_kills as f64, true, "");
    }
    if let Some(n) = &s.net {
        let iface = "iface=eth0";
        for (m, v) in [
            ("net.if.in.bytes", n.rx_bytes),
            ("net.if.out.bytes", n.tx_bytes),
            ("net.if.in.packets", n.rx_packets),
            ("net.if.out.packets", n.tx_packets),
            ("net.if.in.errors", n.rx_errors),
            ("net.if.out.errors", n.tx_errors),
            ("net.if.in.dropped", n.rx_dropped),
            ("net.if.out.dropped", n.tx_dropped),
        ] {
            push(m, v as f64, true, iface);
        }
    }
    if let Some(h) = &s.home {
        push("df.bytes.used", h.used as f64, false, "mount=/home");
        push("df.bytes.total", h.size as f64, false, "mount=/home");
        if h.size > 0 {
            push(
                "df.bytes.used.percent",
                h.used as f64 / h.size as f64 * 100.0,
                false,
                "mount=/home",
            );
        }
    }
    if let Some(i) = &s.init {
        for v in &i.services {
            let t = format!("service={}", tag_value(&v.name));
            push(
                "berth.service.running",
                if v.state == "running" { 1.0 } else { 0.0 },
                false,
                &t,
            );
            push("berth.service.restarts", v.restarts as f64, false, &t);
            if let Some(us) = v.check_latency_us {
                push(
                    "berth.service.check_latency_ms",
                    us as f64 / 1000.0,
                    false,
                    &t,
                );
            }
            if let Some(h) = v.healthy {
                push(
                    "berth.service.healthy",
                    if h { 1.0 } else { 0.0 },
                    false,
                    &t,
                );
            }
        }
        // App metrics: `<name>.<stat>` (a gauge: `<name>`) in the app's units, its statsd
        // tags after the container's.
        if let Some(st) = &i.statsd {
            for a in &st.metrics {
                let name = tag_value(&a.name);
                let extra = a.falcon_tags(tag_value);
                for v in a.values() {
                    let metric = match v.suffix {
                        "" => name.clone(),
                        sfx => format!("{name}.{sfx}"),
                    };
                    push(&metric, v.value, false, &extra);
                }
            }
            push("berth.statsd.malformed", st.malformed as f64, true, "");
            push("berth.statsd.dropped", st.dropped as f64, true, "");
        }
    }
}
