//! `berth-agent ps`: one row per container of the state dir, from two collections half a
//! second apart (CPU% is the CPU time used between them).

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::metrics::collect::{collect, Sample, Snapshot, Sources};
use crate::metrics::task::StateDirError;

/// One container's row (also the `--json` object).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub task: String,
    pub app: String,
    pub state: String,
    pub ip: Option<String>,
    pub vlan: Option<u16>,
    /// Percent of one CPU over the sampling window.
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub home_used_bytes: Option<u64>,
    pub home_size_bytes: Option<u64>,
    pub bandwidth_mbit: Option<f64>,
    /// `healthy`, `unhealthy`, or none without health checks (or before the first result).
    pub health: Option<String>,
    pub uptime_secs: Option<u64>,
}

/// The window CPU% is measured over.
pub const WINDOW: Duration = Duration::from_millis(500);

/// Collects twice and makes the rows.
pub async fn rows(src: &Sources) -> Result<Vec<Row>, StateDirError> {
    let first = collect(src).await?;
    tokio::time::sleep(WINDOW).await;
    let second = collect(src).await?;
    Ok(second
        .samples
        .iter()
        .map(|s| row(s, &first, &second))
        .collect())
}

fn row(s: &Sample, first: &Snapshot, second: &Snapshot) -> Row {
    let secs = second
        .at
        .duration_since(first.at)
        .unwrap_or_default()
        .as_secs_f64();
    let before = first
        .samples
        .iter()
        .find(|b| b.task.container_id == s.task.container_id)
        .and_then(|b| b.cgroup.as_ref());
    let cpu = match (before, &s.cgroup) {
        (Some(b), Some(c)) if secs > 0.0 => {
            Some(c.cpu_usage_ns.saturating_sub(b.cpu_usage_ns) as f64 / 1e9 / secs * 100.0)
        }
        _ => None,
    };
    let health = s.init.as_ref().and_then(|i| {
        let checked: Vec<bool> = i.services.iter().filter_map(|v| v.healthy).collect();
        (!checked.is_empty()).then(|| {
            if checked.iter().all(|h| *h) {
                "healthy".to_string()
            } else {
                "unhealthy".to_string()
            }
        })
    });
    Row {
        task: s.task.task_id.clone(),
        app: s.task.app_id.clone(),
        state: s.task.state.clone(),
        ip: s.task.ip.clone(),
        vlan: s.task.vlan,
        cpu_percent: cpu,
        memory_bytes: s.cgroup.as_ref().map(|c| c.mem_usage),
        memory_limit_bytes: s.cgroup.as_ref().and_then(|c| c.mem_limit),
        home_used_bytes: s.home.map(|h| h.used),
        home_size_bytes: s.home.map(|h| h.size),
        bandwidth_mbit: s.task.bandwidth_mbit,
        health,
        uptime_secs: s
            .task
            .started
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .map(|d| d.as_secs()),
    }
}

fn size(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b}B")
    } else {
        format!("{v:.1}{}", U[i])
    }
}

fn uptime(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

/// The table: a header, then one aligned line per row; `-` where a value is unknown.
pub fn table(rows: &[Row]) -> String {
    let dash = || "-".to_string();
    let mut lines = vec![[
        "TASK",
        "APP",
        "STATE",
        "IP",
        "VLAN",
        "CPU%",
        "MEMORY",
        "HOME",
        "BANDWIDTH",
        "HEALTH",
        "UPTIME",
    ]
    .map(str::to_string)];
    for r in rows {
        let mem = match (r.memory_bytes, r.memory_limit_bytes) {
            (Some(m), Some(l)) => format!("{}/{}", size(m), size(l)),
            (Some(m), None) => size(m),
            _ => dash(),
        };
        let home = match (r.home_used_bytes, r.home_size_bytes) {
            (Some(u), Some(s)) => format!("{}/{}", size(u), size(s)),
            _ => dash(),
        };
        lines.push([
            r.task.clone(),
            if r.app.is_empty() {
                dash()
            } else {
                r.app.clone()
            },
            r.state.clone(),
            r.ip.clone().unwrap_or_else(dash),
            r.vlan.map_or_else(dash, |v| v.to_string()),
            r.cpu_percent.map_or_else(dash, |c| format!("{c:.1}")),
            mem,
            home,
            r.bandwidth_mbit.map_or_else(dash, |b| format!("{b}Mbit")),
            r.health.clone().unwrap_or_else(dash),
            r.uptime_secs.map_or_else(dash, uptime),
        ]);
    }
    let widths: Vec<usize> = (0..11)
        .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_and_shows_unknowns_as_dashes() {
        let r = Row {
            task: "web.1".into(),
            app: "/shop/web".into(),
            state: "TASK_RUNNING".into(),
            ip: Some("10.0.0.5".into()),
            vlan: None,
            cpu_percent: Some(12.345),
            memory_bytes: Some(50 << 20),
            memory_limit_bytes: Some(128 << 20),
            home_used_bytes: Some(1 << 20),
            home_size_bytes: Some(100 << 20),
            bandwidth_mbit: Some(100.0),
            health: Some("healthy".into()),
            uptime_secs: Some(3725),
        };
        let t = table(&[r]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("TASK   APP        STATE"), "{t}");
        assert_eq!(
            lines[1],
            "web.1  /shop/web  TASK_RUNNING  10.0.0.5  -     12.3  50.0MiB/128.0MiB  1.0MiB/100.0MiB  100Mbit    healthy  1h2m"
        );
    }
}
