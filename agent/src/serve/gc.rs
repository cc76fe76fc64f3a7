//! The periodic GC of `serve`: every `[gc] interval_secs` (the first at start), each run
//! on its own thread with its own runtime (GC waits on the runtime binary, mounts, netlink
//! and the volume backend; the service loop never waits), never two at once. Each run's
//! removals (and failures) are logged, one line each, and counted in the metrics.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::Config;
use crate::gc::stats::Stats;

/// The interval of the config's GC (`None`: off).
pub fn interval(cfg: &Config) -> Option<tokio::time::Interval> {
    (cfg.gc.interval_secs > 0).then(|| {
        let mut i = tokio::time::interval(Duration::from_secs(cfg.gc.interval_secs));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    })
}

/// Waits for the next tick of an optional interval (forever when off).
pub async fn tick(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The GC runs of one service.
#[derive(Default)]
pub struct GcLoop {
    running: Option<JoinHandle<()>>,
}

impl GcLoop {
    /// Starts a run with the config's settings, unless one is still running.
    pub fn start(&mut self, cfg: &Config, stats: Arc<Stats>) {
        if self.running.as_ref().is_some_and(|h| !h.is_finished()) {
            tracing::warn!("the previous GC run is still going: this one is skipped");
            return;
        }
        let s = crate::gc::Settings::from_config(cfg);
        let spawned = std::thread::Builder::new()
            .name("berth-gc".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("gc: cannot start a runtime: {e}");
                        return;
                    }
                };
                match rt.block_on(crate::gc::run(&s, false)) {
                    Ok(r) => {
                        for i in &r.items {
                            match &i.error {
                                None => tracing::info!(kind = i.kind.as_str(), name = %i.name, why = %i.why, "gc removed"),
                                Some(e) => tracing::warn!(kind = i.kind.as_str(), name = %i.name, error = %e, "gc could not remove"),
                            }
                        }
                        stats.record(&r);
                        let removed = r.items.len() - r.errors();
                        if removed > 0 || r.errors() > 0 {
                            tracing::info!(removed, failed = r.errors(), live = r.live, "gc run done");
                        } else {
                            tracing::debug!(live = r.live, "gc run done: nothing to remove");
                        }
                    }
                    Err(e) => tracing::warn!("gc: {}", crate::error_chain(&e)),
                }
            });
        match spawned {
            Ok(h) => self.running = Some(h),
            Err(e) => tracing::error!("gc: cannot start its thread: {e}"),
        }
    }
}
