//! The service: reconcile, then serve the API, sweep periodically, until shutdown.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::authority::{Authority, RevokeError};
use super::config::Config;
use super::store::{Store, StoreError};
use super::tasks::Tasks;
use crate::error_chain;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reconcile at start")]
    Reconcile(#[source] RevokeError),
}

/// Runs dbauth on `listener` until `shutdown` completes.
pub async fn run<T: Tasks>(
    cfg: Config,
    tasks: T,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let store = Store::open(&cfg.state)?;
    let sweep_every = cfg.sweep;
    let auth = Arc::new(Authority::new(cfg, tasks, store));
    let dropped = auth.reconcile().await.map_err(RunError::Reconcile)?;
    tracing::info!(
        dropped,
        "reconciled the recorded grants with the database and Marathon"
    );
    let sweeper = {
        let auth = auth.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(sweep_every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match auth.sweep().await {
                    Ok(n) if n > 0 => tracing::info!(dropped = n, "sweep"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("sweep failed: {}", error_chain(&e)),
                }
            }
        })
    };
    let handler = move |req, peer| super::api::handle(auth.clone(), req, peer);
    berth_http::server::serve(listener, None, handler, shutdown).await;
    sweeper.abort();
    Ok(())
}
