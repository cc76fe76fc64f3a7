//! What the periodic GC of `serve` did so far, for `GET /metrics` (and the log: each run
//! logs its removals as they happen, see [`super::run`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use super::report::{Kind, Report};
use crate::metrics::prom::{write_family, Family, Kind as PromKind};

#[derive(Debug, Default, Clone)]
struct Totals {
    runs: u64,
    removed: BTreeMap<Kind, u64>,
    failures: u64,
    live: u64,
    last_run: Option<SystemTime>,
}

/// Totals over the service's GC runs.
#[derive(Debug, Default)]
pub struct Stats(Mutex<Totals>);

impl Stats {
    /// Counts one finished run.
    pub fn record(&self, r: &Report) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        t.runs += 1;
        for k in Kind::ALL {
            *t.removed.entry(k).or_default() += r.removed(k) as u64;
        }
        t.failures += r.errors() as u64;
        t.live = r.live as u64;
        t.last_run = Some(SystemTime::now());
    }

    /// Runs so far.
    pub fn runs(&self) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).runs
    }

    /// The Prometheus families (nothing before the first run).
    pub fn prom(&self) -> String {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = String::new();
        let Some(last) = t.last_run else {
            return out;
        };
        let one = Family::single;
        write_family(
            &mut out,
            &one(
                "berth_agent_gc_runs_total",
                "Garbage-collection runs.",
                PromKind::Counter,
                t.runs as f64,
            ),
        );
        write_family(
            &mut out,
            &Family {
                name: "berth_agent_gc_removed_total",
                help: "Leftovers of dead tasks removed, by kind (container, cgroup, mount, netns, volume, rundir, statedir, lockfile).",
                kind: PromKind::Counter,
                rows: t
                    .removed
                    .iter()
                    .map(|(k, n)| (vec![("kind", k.as_str().to_string())], *n as f64))
                    .collect(),
            },
        );
        write_family(
            &mut out,
            &one(
                "berth_agent_gc_failures_total",
                "Leftovers GC could not remove (retried next run).",
                PromKind::Counter,
                t.failures as f64,
            ),
        );
        write_family(
            &mut out,
            &one(
                "berth_agent_gc_live_containers",
                "Containers the last GC run left alone: their executor holds the task lock.",
                PromKind::Gauge,
                t.live as f64,
            ),
        );
        let secs = last
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        write_family(
            &mut out,
            &one(
                "berth_agent_gc_last_run_timestamp_seconds",
                "When the last GC run ended (Unix time).",
                PromKind::Gauge,
                secs.floor(),
            ),
        );
        out
    }
}
