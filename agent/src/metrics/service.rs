//! The metrics part of `serve`: each step collects every container and offers the
//! Falcon items to the push buffer; `GET /metrics` collects afresh (a scrape sees the
//! values of that moment) and renders them with the agent's own counters.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use berth_http::server::{respond, Body};
use berth_http::{Method, StatusCode};
use hyper::body::Incoming;

use super::collect::{collect, Snapshot, Sources};
use super::falcon;
use super::prom::{self, AgentCounters};
use super::push::Queue;

/// Shared by the step and the HTTP handler.
pub struct Metrics {
    sources: Mutex<Sources>,
    pub queue: Arc<Queue>,
    last: Mutex<Option<Snapshot>>,
    /// The periodic GC's totals (exported after the containers' families).
    pub gc: Arc<crate::gc::stats::Stats>,
}

impl Metrics {
    pub fn new(sources: Sources, queue: Arc<Queue>) -> Arc<Metrics> {
        Arc::new(Metrics {
            sources: Mutex::new(sources),
            queue,
            last: Mutex::new(None),
            gc: Arc::default(),
        })
    }

    /// New sources after a config reload.
    pub fn set_sources(&self, s: Sources) {
        *self.sources.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    fn sources(&self) -> Sources {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One step: collect, hand the Falcon items to the buffer (never waiting on Falcon).
    pub async fn step(&self, step_secs: u64) {
        let snap = match collect(&self.sources()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("collection failed: {}", crate::error_chain(&e));
                return;
            }
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let items = falcon::items(last.as_ref(), &snap, step_secs);
        tracing::debug!(
            containers = snap.samples.len(),
            items = items.len(),
            "collected"
        );
        self.queue.offer(items);
        *last = Some(snap);
    }

    /// `GET /metrics`; anything else is 404 (405 for another method on `/metrics`).
    pub async fn handle(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
        _peer: SocketAddr,
    ) -> hyper::Response<Body> {
        if req.uri().path() != "/metrics" {
            return respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found: try GET /metrics\n",
            );
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
        }
        match collect(&self.sources()).await {
            Ok(snap) => {
                let c = self.queue.counters();
                let agent = AgentCounters {
                    falcon_buffered: c.buffered,
                    falcon_dropped: c.dropped,
                    falcon_pushed: c.pushed,
                    falcon_failures: c.failures,
                };
                let mut text = prom::render(&snap, &agent);
                text.push_str(&self.gc.prom());
                respond(StatusCode::OK, prom::CONTENT_TYPE, text)
            }
            Err(e) => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("{}\n", crate::error_chain(&e)),
            ),
        }
    }
}
