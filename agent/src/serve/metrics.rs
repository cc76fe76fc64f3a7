//! Wiring the metrics into the service: the collector's sources and the Falcon buffer
//! from the config, the `/metrics` listener, the pusher task.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_http::client::{Client, Options};
use berth_http::url::Url;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::metrics::collect::Sources;
use crate::metrics::push::{self, Queue};
use crate::metrics::service::Metrics;

/// What the config says the collector reads.
pub fn sources(cfg: &Config) -> Sources {
    Sources {
        state_dir: cfg.serve.state_dir.clone(),
        cgroup_root: cfg.metrics.cgroup_root.clone(),
        proc_root: PathBuf::from("/proc"),
        interface: cfg.metrics.interface.clone(),
    }
}

fn falcon_target(cfg: &Config) -> Option<Url> {
    // Checked when the config was loaded.
    Some(&cfg.falcon.url)
        .filter(|u| !u.is_empty())
        .and_then(|u| Url::parse(u).ok())
}

/// The metrics of a service, its pusher task started.
pub fn start(cfg: &Config) -> Result<Arc<Metrics>, berth_http::client::Error> {
    let queue = Queue::new(cfg.falcon.buffer_items, falcon_target(cfg));
    let t = Duration::from_secs(cfg.falcon.timeout_secs);
    let client = Client::new(Options {
        connect_timeout: t,
        response_timeout: t,
        ..Options::default()
    })?;
    tokio::spawn(push::run(queue.clone(), client));
    Ok(Metrics::new(sources(cfg), queue))
}

/// A reloaded config: new sources and Falcon target (the listener stays where it is).
pub fn reload(m: &Metrics, cfg: &Config) {
    m.set_sources(sources(cfg));
    m.queue
        .configure(cfg.falcon.buffer_items, falcon_target(cfg));
}

/// Serves `GET /metrics` on `listen` until the task is dropped.
pub async fn listen(listen: &str, m: Arc<Metrics>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let l = TcpListener::bind(listen).await?;
    tracing::info!("metrics on http://{}/metrics", l.local_addr()?);
    Ok(tokio::spawn(berth_http::server::serve(
        l,
        None,
        move |req, peer| m.clone().handle(req, peer),
        std::future::pending::<()>(),
    )))
}
