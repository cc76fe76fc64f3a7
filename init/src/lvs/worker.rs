//! The thread that drives every link: its own current-thread runtime, one task per call
//! (all directors in parallel, one call per link at a time), over connections kept
//! open: one to each director is opened at start ([`client::warm`]). The table is shared
//! with the supervisor, which sets what is wanted and pokes; every finished call wakes
//! the supervisor (`notify`) so the status and shutdown see it at once.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{info, warn};

use super::client;
use super::link::{Link, Outcome, Target};
use crate::spec::lvs::LvsSpec;

/// Per service (spec order), one link per director (`None`: the service has no `lvs`).
pub type Table = Arc<Mutex<Vec<Option<Vec<Link>>>>>;

/// What the thread needs.
pub struct Worker {
    /// The services' `lvs` sections, in spec order.
    pub specs: Vec<Option<LvsSpec>>,
    /// The shared table.
    pub table: Table,
    /// Poked by the supervisor when it changed what is wanted.
    pub poke: Arc<Notify>,
    /// Called after every call (wakes the run loop).
    pub notify: Box<dyn Fn() + Send>,
    /// The container's address (the DHCP lease), if known.
    pub ip: Box<dyn Fn() -> Option<IpAddr> + Send>,
}

/// An empty table for `specs`.
pub fn table(specs: &[Option<LvsSpec>], now: Instant) -> Table {
    Arc::new(Mutex::new(
        specs
            .iter()
            .map(|s| {
                s.as_ref()
                    .map(|s| s.director.iter().map(|_| Link::new(now)).collect())
            })
            .collect(),
    ))
}

impl Worker {
    /// Starts the thread (call with every signal blocked: the thread inherits the mask).
    pub fn spawn(self) -> std::io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("berth-lvs".into())
            .spawn(move || rt.block_on(self.run()))?;
        Ok(())
    }

    async fn run(self) {
        let client = match client::client() {
            Ok(c) => c,
            Err(e) => {
                warn!("lvs: cannot make the HTTP client: {e}");
                return;
            }
        };
        let notify: Arc<dyn Fn() + Send + Sync> = {
            let n = Mutex::new(self.notify);
            Arc::new(move || {
                if let Ok(f) = n.lock() {
                    f()
                }
            })
        };
        let mut bases: Vec<&str> = self
            .specs
            .iter()
            .flatten()
            .flat_map(|s| s.director.iter().map(|d| d.0.as_str()))
            .collect();
        bases.sort_unstable();
        bases.dedup();
        for base in bases {
            let (client, base) = (client.clone(), base.to_string());
            tokio::spawn(async move { client::warm(&client, &base).await });
        }
        let specs = Arc::new(self.specs);
        loop {
            let now = Instant::now();
            let mut calls: Vec<(usize, usize, Target)> = Vec::new();
            let mut next: Option<Instant> = None;
            if let Ok(mut t) = self.table.lock() {
                for (i, links) in t.iter_mut().enumerate() {
                    for (d, l) in links.iter_mut().flatten().enumerate() {
                        if let Some(target) = l.due(now) {
                            calls.push((i, d, target));
                        }
                        if let Some(at) = l.deadline() {
                            next = Some(next.map_or(at, |n| n.min(at)));
                        }
                    }
                }
            }
            let ip = (self.ip)();
            for (i, d, target) in calls {
                let (client, specs, table, poke, notify) = (
                    client.clone(),
                    specs.clone(),
                    self.table.clone(),
                    self.poke.clone(),
                    notify.clone(),
                );
                tokio::spawn(async move {
                    let Some(spec) = specs[i].as_ref() else {
                        return;
                    };
                    let base = &spec.director[d].0;
                    let outcome = client::call(&client, base, spec, target, ip).await;
                    match &outcome {
                        Outcome::Done => {
                            info!(director = %base, vip = %spec.vip, port = spec.port.0, ?target, "lvs: director updated")
                        }
                        Outcome::Transient(e) | Outcome::Rejected(e) => {
                            warn!(director = %base, vip = %spec.vip, ?target, "lvs: {e}")
                        }
                    }
                    if let Ok(mut t) = table.lock() {
                        if let Some(l) = t[i].as_mut().and_then(|v| v.get_mut(d)) {
                            l.done(outcome, Instant::now());
                        }
                    }
                    poke.notify_one();
                    notify();
                });
            }
            let sleep = next.map_or(Duration::from_secs(60), |n| {
                n.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                _ = self.poke.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }
}
