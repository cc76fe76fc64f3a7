//! The Prometheus text format 0.0.4: `# HELP`, `# TYPE`, then one line per sample, each
//! family's samples together; names `berth_`-prefixed, in base units (seconds, bytes),
//! counters ending `_total`. Every container's samples carry its `task_id`,
//! `framework_id`, `executor_id` and `app_id` labels.

use std::fmt::Write;

use super::collect::{Sample, Snapshot};

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// One metric family being written.
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub rows: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    /// A family of one unlabelled sample.
    pub fn single(name: &'static str, help: &'static str, kind: Kind, v: f64) -> Family {
        Family {
            name,
            help,
            kind,
            rows: vec![(Vec::new(), v)],
        }
    }
}

/// The agent's own counters, exported next to the containers'.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentCounters {
    pub falcon_buffered: u64,
    pub falcon_dropped: u64,
    pub falcon_pushed: u64,
    pub falcon_failures: u64,
}

type Rows = Vec<(Vec<(&'static str, String)>, f64)>;

/// A container family: its samples from each container (`None` = not known there).
struct Per {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    get: fn(&Sample) -> Rows,
}

fn one(v: Option<f64>) -> Rows {
    v.map(|v| vec![(Vec::new(), v)]).unwrap_or_default()
}

const NS: f64 = 1e9;

const FAMILIES: &[Per] = &[
    Per { name: "berth_container_info", help: "A container of this node (always 1), with its hostname, IP and state.", kind: Kind::Gauge,
        get: |s| vec![(vec![("hostname", s.task.hostname.clone()), ("ip", s.task.ip.clone().unwrap_or_default()), ("state", s.task.state.clone())], 1.0)] },
    Per { name: "berth_cpu_usage_seconds_total", help: "CPU time the container's processes used.", kind: Kind::Counter,
        get: |s| one(s.cgroup.as_ref().map(|c| c.cpu_usage_ns as f64 / NS)) },
    Per { name: "berth_cpu_mode_seconds_total", help: "CPU time the container's processes used, by mode (user, system).", kind: Kind::Counter,
        get: |s| s.cgroup.as_ref().map(|c| vec![(vec![("mode", "user".into())], c.cpu_user_ns as f64 / NS), (vec![("mode", "system".into())], c.cpu_system_ns as f64 / NS)]).unwrap_or_default() },
    Per { name: "berth_cpu_limit_cores", help: "The container's CPU quota in CPUs (absent without a quota).", kind: Kind::Gauge,
        get: |s| one(s.cgroup.as_ref().and_then(|c| c.cpu_limit)) },
    Per { name: "berth_cpu_periods_total", help: "CFS enforcement periods elapsed while the container had runnable processes.", kind: Kind::Counter,
        get: |s| one(s.cgroup.as_ref().map(|c| c.cpu_periods as f64)) },
    Per { name: "berth_cpu_throttled_periods_total", help: "CFS periods in which the container hit its CPU quota.", kind: Kind::Counter,
        get: |s| one(s.cgroup.as_ref().map(|c| c.cpu_throttled_periods as f64)) },
    Per { name: "berth_cpu_throttled_seconds_total", help: "Time the container's processes waited because of its CPU quota.", kind: Kind::Counter,
        get: |s| one(s.cgroup.as_ref().map(|c| c.cpu_throttled_ns as f64 / NS)) },
    Per { name: "berth_memory_usage_bytes", help: "Memory charged to the container (anonymous, page cache, kernel).", kind: Kind::Gauge,
        get: |s| one(s.cgroup.as_ref().map(|c| c.mem_usage as f64)) },
    Per { name: "berth_memory_rss_bytes", help: "Anonymous memory of the container's processes (not reclaimable without swap).", kind: Kind::Gauge,
        get: |s| one(s.cgroup.as_ref().map(|c| c.mem_rss as f64)) },
    Per { name: "berth_memory_cache_bytes", help: "Page cache charged to the container (reclaimable).", kind: Kind::Gauge,
        get: |s| one(s.cgroup.as_ref().map(|c| c.mem_cache as f64)) },
    Per { name: "berth_memory_limit_bytes", help: "The container's memory limit (absent when unlimited).", kind: Kind::Gauge,
        get: |s| one(s.cgroup.as_ref().and_then(|c| c.mem_limit.map(|l| l as f64))) },
    Per { name: "berth_memory_oom_kills_total", help: "Processes of the container killed by the kernel's OOM killer.", kind: Kind::Counter,
        get: |s| one(s.cgroup.as_ref().map(|c| c.oom_kills as f64)) },
    Per { name: "berth_blkio_read_bytes_total", help: "Bytes the container read from block devices.", kind: Kind::Counter,
        get: |s| one(s.cgroup.as_ref().map(|c| c.io_read_bytes as f64)) },
    Per { name: "berth_blkio_write_bytes_total", help: "Bytes the container wrote to block devices.", kind: Kind::Counter,
        get: |s| one(s.cgroup.as_ref().map(|c| c.io_write_bytes as f64)) },
    Per { name: "berth_blkio_read_ops_total", help: "Read requests the container issued to block devices.", kind: Kind::Counter,
        get: |s| one(s.cgroup.as_ref().map(|c| c.io_read_ops as f64)) },
    Per { name: "berth_blkio_write_ops_total", help: "Write requests the container issued to block devices.", kind: Kind::Counter,
        get: |s| one(s.cgroup.as_ref().map(|c| c.io_write_ops as f64)) },
    Per { name: "berth_processes", help: "Processes (tasks) in the container.", kind: Kind::Gauge,
        get: |s| one(s.cgroup.as_ref().map(|c| c.pids as f64)) },
    Per { name: "berth_network_receive_bytes_total", help: "Bytes received on the container's eth0.", kind: Kind::Counter,
        get: |s| one(s.net.map(|n| n.rx_bytes as f64)) },
    Per { name: "berth_network_transmit_bytes_total", help: "Bytes sent on the container's eth0.", kind: Kind::Counter,
        get: |s| one(s.net.map(|n| n.tx_bytes as f64)) },
    Per { name: "berth_network_receive_packets_total", help: "Packets received on the container's eth0.", kind: Kind::Counter,
        get: |s| one(s.net.map(|n| n.rx_packets as f64)) },
    Per { name: "berth_network_transmit_packets_total", help: "Packets sent on the container's eth0.", kind: Kind::Counter,
        get: |s| one(s.net.map(|n| n.tx_packets as f64)) },
    Per { name: "berth_network_receive_errors_total", help: "Receive errors on the container's eth0.", kind: Kind::Counter,
        get: |s| one(s.net.map(|n| n.rx_errors as f64)) },
    Per { name: "berth_network_transmit_errors_total", help: "Transmit errors on the container's eth0.", kind: Kind::Counter,
        get: |s| one(s.net.map(|n| n.tx_errors as f64)) },
    Per { name: "berth_network_receive_dropped_total", help: "Received packets dropped on the container's eth0 (tc ingress limit included).", kind: Kind::Counter,
        get: |s| one(s.net.map(|n| n.rx_dropped as f64)) },
    Per { name: "berth_network_transmit_dropped_total", help: "Packets to send dropped on the container's eth0.", kind: Kind::Counter,
        get: |s| one(s.net.map(|n| n.tx_dropped as f64)) },
    Per { name: "berth_home_used_bytes", help: "Bytes used on the container's /home volume.", kind: Kind::Gauge,
        get: |s| one(s.home.map(|h| h.used as f64)) },
    Per { name: "berth_home_size_bytes", help: "Size of the container's /home volume's filesystem.", kind: Kind::Gauge,
        get: |s| one(s.home.map(|h| h.size as f64)) },
    Per { name: "berth_app_state", help: "berth-init's overall state of the app (1 for the current state).", kind: Kind::Gauge,
        get: |s| s.init.as_ref().map(|i| vec![(vec![("state", i.state.clone())], 1.0)]).unwrap_or_default() },
    Per { name: "berth_service_state", help: "A service's state in berth-init (1 for the current state: running, backoff, failed, ...).", kind: Kind::Gauge,
        get: |s| services(s, |v| Some((vec![("state", v.state.clone())], 1.0))) },
    Per { name: "berth_service_restarts_total", help: "Times berth-init restarted the service.", kind: Kind::Counter,
        get: |s| services(s, |v| Some((Vec::new(), v.restarts as f64))) },
    Per { name: "berth_service_check_latency_seconds", help: "How long the service's last health check took (absent before the first one).", kind: Kind::Gauge,
        get: |s| services(s, |v| v.check_latency_us.map(|us| (Vec::new(), us as f64 / 1e6))) },
    Per { name: "berth_service_healthy", help: "1 when the service's last counted health check passed, 0 when it failed (absent without a check or result).", kind: Kind::Gauge,
        get: |s| services(s, |v| v.healthy.map(|h| (Vec::new(), if h { 1.0 } else { 0.0 }))) },
    Per { name: "berth_app_statsd_rate_per_second", help: "An app's statsd counter in berth-init's last step: per second (the seed's PROC QPS), by name and tags.", kind: Kind::Gauge,
        get: |s| app(s, "counter", &["rate"], 1.0) },
    Per { name: "berth_app_statsd_step_events", help: "An app's statsd counter in berth-init's last step: the count (sample rates applied).", kind: Kind::Gauge,
        get: |s| app(s, "counter", &["count"], 1.0) },
    Per { name: "berth_app_statsd_timer_seconds", help: "An app's statsd timer in berth-init's last step, by stat (min, mean, p50, p99, max; the seed's PROC DELAY).", kind: Kind::Gauge,
        get: |s| app(s, "timer", &["min", "mean", "p50", "p99", "max"], 1e-3) },
    Per { name: "berth_app_statsd_timer_observations", help: "Observations of an app's statsd timer in berth-init's last step.", kind: Kind::Gauge,
        get: |s| app(s, "timer", &["count"], 1.0) },
    Per { name: "berth_app_statsd_gauge", help: "An app's statsd gauge, as of berth-init's last step.", kind: Kind::Gauge,
        get: |s| app(s, "gauge", &[""], 1.0) },
    Per { name: "berth_app_statsd_set_members", help: "Distinct members of an app's statsd set in berth-init's last step.", kind: Kind::Gauge,
        get: |s| app(s, "set", &["count"], 1.0) },
    Per { name: "berth_app_statsd_lines_total", help: "statsd lines berth-init took (received), and dropped as malformed or over its key limit, since it started.", kind: Kind::Counter,
        get: |s| s.init.as_ref().and_then(|i| i.statsd.as_ref()).map(|st| vec![
            (vec![("result", "received".to_string())], st.received as f64),
            (vec![("result", "malformed".to_string())], st.malformed as f64),
            (vec![("result", "dropped".to_string())], st.dropped as f64),
        ]).unwrap_or_default() },
    Per { name: "berth_app_statsd_steps_total", help: "statsd steps berth-init completed (each replaces the app metrics above).", kind: Kind::Counter,
        get: |s| one(s.init.as_ref().and_then(|i| i.statsd.as_ref()).map(|st| st.steps as f64)) },
];

/// The rows of the app aggregates of `kind`: one per aggregate and statistic in `stats`
/// (a `stat` label when there are several), the value times `scale`.
fn app(s: &Sample, kind: &str, stats: &[&'static str], scale: f64) -> Rows {
    let Some(st) = s.init.as_ref().and_then(|i| i.statsd.as_ref()) else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for a in st.metrics.iter().filter(|a| a.kind == kind) {
        for v in a.values().into_iter().filter(|v| stats.contains(&v.suffix)) {
            let mut l = vec![("name", a.name.clone()), ("tags", a.tags_label())];
            if stats.len() > 1 {
                l.push(("stat", v.suffix.to_string()));
            }
            rows.push((l, v.value * scale));
        }
    }
    rows
}

fn services(
    s: &Sample,
    f: impl Fn(&super::init::Service) -> Option<(Vec<(&'static str, String)>, f64)>,
) -> Rows {
    let Some(i) = &s.init else {
        return Vec::new();
    };
    i.services
        .iter()
        .filter_map(|v| {
            let (mut l, x) = f(v)?;
            l.insert(0, ("service", v.name.clone()));
            Some((l, x))
        })
        .collect()
}

fn task_labels(s: &Sample) -> Vec<(&'static str, String)> {
    vec![
        ("task_id", s.task.task_id.clone()),
        ("framework_id", s.task.framework_id.clone()),
        ("executor_id", s.task.executor_id.clone()),
        ("app_id", s.task.app_id.clone()),
    ]
}

/// The whole exposition: every container family, then the agent's own.
pub fn render(snap: &Snapshot, agent: &AgentCounters) -> String {
    let mut out = String::new();
    for f in FAMILIES {
        let mut rows = Vec::new();
        for s in &snap.samples {
            let base = task_labels(s);
            for (extra, v) in (f.get)(s) {
                let mut l = base.clone();
                l.extend(extra);
                rows.push((l, v));
            }
        }
        write_family(
            &mut out,
            &Family {
                name: f.name,
                help: f.help,
                kind: f.kind,
                rows,
            },
        );
    }
    let g = Family::single;
    write_family(
        &mut out,
        &g(
            "berth_agent_containers",
            "Containers found in the executor's state dir.",
            Kind::Gauge,
            snap.samples.len() as f64,
        ),
    );
    write_family(
        &mut out,
        &Family {
            name: "berth_agent_collect_errors",
            help: "Parts of containers the last collection could not read, by kind (cgroup, net, home, init).",
            kind: Kind::Gauge,
            rows: snap.errors.iter().map(|(w, n)| (vec![("part", w.to_string())], *n as f64)).collect(),
        },
    );
    write_family(
        &mut out,
        &g(
            "berth_agent_falcon_buffered_items",
            "Open-Falcon items waiting to be pushed.",
            Kind::Gauge,
            agent.falcon_buffered as f64,
        ),
    );
    write_family(
        &mut out,
        &g(
            "berth_agent_falcon_dropped_items_total",
            "Open-Falcon items dropped, oldest first, because the buffer was full.",
            Kind::Counter,
            agent.falcon_dropped as f64,
        ),
    );
    write_family(
        &mut out,
        &g(
            "berth_agent_falcon_pushed_items_total",
            "Open-Falcon items the Falcon agent accepted.",
            Kind::Counter,
            agent.falcon_pushed as f64,
        ),
    );
    write_family(
        &mut out,
        &g(
            "berth_agent_falcon_push_failures_total",
            "Failed pushes to the Open-Falcon agent (each retried with backoff).",
            Kind::Counter,
            agent.falcon_failures as f64,
        ),
    );
    out
}

/// Writes one family; a family without samples is left out entirely.
pub fn write_family(out: &mut String, f: &Family) {
    if f.rows.is_empty() {
        return;
    }
    let kind = match f.kind {
        Kind::Gauge => "gauge",
        Kind::Counter => "counter",
    };
    let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
    let _ = writeln!(out, "# TYPE {} {kind}", f.name);
    for (labels, v) in &f.rows {
        out.push_str(f.name);
        if !labels.is_empty() {
            out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{k}=\"{}\"", escape_label(val));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {}", number(*v));
    }
}

fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
#[path = "prom_tests.rs"]
mod tests;
