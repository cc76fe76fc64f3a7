//! The service loop of `berth-agent serve`.
//!
//! It tells systemd it is ready once the config is loaded, pings the watchdog at half the
//! period systemd asked for, re-reads the config on SIGHUP (a bad file is logged and the old
//! config kept, the service goes on) and stops on SIGTERM/SIGINT at once: nothing in the
//! loop blocks, so stopping takes well under a second. Each step it runs the collection
//! (metrics), every `[gc] interval_secs` a GC run on its own thread ([`gc`]), and it serves
//! `GET /metrics` on `[metrics] listen`.

pub mod gc;
pub mod metrics;
pub mod notify;

use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::config::{Config, ConfigError};
use notify::Notifier;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot start the service runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot listen on {listen} (metrics.listen)")]
    Listen {
        listen: String,
        #[source]
        err: std::io::Error,
    },
    #[error("cannot make the Open-Falcon client")]
    Falcon(#[source] berth_http::client::Error),
}

/// Runs until SIGTERM or SIGINT. The first config error is fatal (exit 2 in the caller).
pub fn run(config_path: PathBuf) -> Result<(), ServeError> {
    let cfg = Config::load(&config_path)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    rt.block_on(serve(config_path, cfg))
}

async fn serve(path: PathBuf, mut cfg: Config) -> Result<(), ServeError> {
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Runtime)?;
    let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Runtime)?;
    let notifier = Notifier::from_env();
    let watchdog = notify::watchdog_interval();
    // Without a watchdog the tick still fires (hourly) but sends nothing.
    let mut dog = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let m = metrics::start(&cfg).map_err(ServeError::Falcon)?;
    let _server = match cfg.metrics.listen.as_str() {
        "" => None,
        l => Some(
            metrics::listen(l, m.clone())
                .await
                .map_err(|err| ServeError::Listen {
                    listen: l.to_string(),
                    err,
                })?,
        ),
    };
    let mut step = tokio::time::interval(Duration::from_secs(cfg.serve.step_secs));
    step.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(
        "serving: config {}, step {} s, state dir {}",
        path.display(),
        cfg.serve.step_secs,
        cfg.serve.state_dir.display()
    );
    let mut running = None;
    let mut gc_every = gc::interval(&cfg);
    let mut gc_runs = gc::GcLoop::default();
    notifier.send("READY=1");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                notifier.send("RELOADING=1");
                match Config::load(&path) {
                    Ok(new) => {
                        if new.serve.step_secs != cfg.serve.step_secs {
                            step = tokio::time::interval(Duration::from_secs(new.serve.step_secs));
                            step.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        }
                        if new.gc.interval_secs != cfg.gc.interval_secs {
                            gc_every = gc::interval(&new);
                        }
                        if new.metrics.listen != cfg.metrics.listen {
                            tracing::warn!("metrics.listen changed: takes effect at the next restart");
                        }
                        metrics::reload(&m, &new);
                        cfg = new;
                        tracing::info!("reloaded {}", path.display());
                    }
                    Err(e) => tracing::error!("reload refused, keeping the old config: {}",
                        crate::error_chain(&e)),
                }
                notifier.send("READY=1");
            }
            _ = gc::tick(&mut gc_every) => gc_runs.start(&cfg, m.gc.clone()),
            _ = dog.tick() => {
                if watchdog.is_some() {
                    notifier.send("WATCHDOG=1");
                }
            }
            _ = step.tick() => {
                // On its own task, so a slow container (an init socket that does not
                // answer) never delays a signal; a step still running is not doubled.
                if running.as_ref().is_none_or(|h: &tokio::task::JoinHandle<()>| h.is_finished()) {
                    let (m, secs) = (m.clone(), cfg.serve.step_secs);
                    running = Some(tokio::spawn(async move { m.step(secs).await }));
                } else {
                    tracing::warn!("the previous collection is still running: step skipped");
                }
            }
        }
    }
    notifier.send("STOPPING=1");
    tracing::info!("stopping");
    Ok(())
}
