//! [`Tasks`] by `crate::marathon`'s client, and the event loop that revokes on task ends.

use std::sync::Arc;
use std::time::Duration;

use berth_http::url::Url;

use super::authority::Authority;
use super::tasks::{LookupError, Tasks};
use crate::error_chain;
use crate::marathon::types::Task;
use crate::marathon::{Config, Error, EventStream, Item, Marathon};

/// A client for `url` with dbauth's timeout.
pub fn client(url: &str, timeout: Duration) -> Result<Marathon, String> {
    let url = Url::parse(url).map_err(|e| error_chain(&e))?;
    let mut cfg = Config::new(vec![url]);
    cfg.connect_timeout = timeout;
    cfg.request_timeout = timeout;
    Marathon::new(cfg).map_err(|e| error_chain(&e))
}

impl Tasks for Marathon {
    async fn app_tasks(&self, app: &str) -> Result<Vec<Task>, LookupError> {
        match self.tasks(app).await {
            Ok(t) => Ok(t),
            // An app Marathon does not know has no tasks.
            Err(Error::UnknownApp { .. }) => Ok(Vec::new()),
            Err(e) => Err(LookupError(error_chain(&e))),
        }
    }
}

/// Follows `/v2/events`: a status update ending a task revokes its account; after each
/// (re)connection, a sweep catches what was missed while disconnected.
pub async fn follow<T: Tasks>(auth: Arc<Authority<T>>, mut events: EventStream) {
    loop {
        match events.next().await {
            Ok(Item::Event(ev)) => auth.on_event(&ev).await,
            Ok(Item::Connected { url }) => {
                tracing::info!(%url, "following Marathon's events");
                if let Err(e) = auth.sweep().await {
                    tracing::warn!("sweep after (re)connecting failed: {}", error_chain(&e));
                }
            }
            Err(e) => tracing::warn!("Marathon events: {}", error_chain(&e)),
        }
    }
}
