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
    #[error("the API's TLS")]
    Tls(#[from] berth_http::tls::TlsError),
}

/// Runs dbauth on `listener` until `shutdown` completes.
pub async fn run<T: Tasks>(
    cfg: Config,
    tasks: T,
    events: Option<crate::marathon::EventStream>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let tls = cfg.tls.as_ref().map(|t| t.config()).transpose()?;
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
    let follower = events.map(|ev| tokio::spawn(super::marathon::follow(auth.clone(), ev)));
    let handler = move |req, peer| super::api::handle(auth.clone(), req, peer);
    berth_http::server::serve(listener, tls, handler, shutdown).await;
    sweeper.abort();
    if let Some(f) = follower {
        f.abort();
    }
    Ok(())
}
