//! The director's run loop: the real-server API, the Marathon event stream, a periodic
//! full listing of each app's tasks, and after every change a diff of the owned IPVS
//! services against the kernel ([`Kernel`]; `Ipvs` in production, a recording fake in
//! tests). On SIGTERM the loop ends and the IPVS table is left as it is, so real servers
//! keep serving while the director restarts (and rebuilds its view from Marathon).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use berth_http::server::{self, Body};
use berth_http::tls::{ServerTls, TlsError};
use berth_http::{Incoming, Request, Response, StatusCode};
use berth_netcfg::ipvs::diff::{self, Op, Wanted};
use berth_netcfg::ipvs::{Ipvs, IpvsError, ServiceKey};
use tokio::net::TcpListener;

use super::api;
use super::config::VirtualService;
use super::director::Director;
use crate::marathon::{Item, Marathon};
use crate::serve::notify::{watchdog_interval, Notifier};

/// Where the wanted table goes.
pub trait Kernel: Send {
    fn sync(&mut self, wanted: &BTreeMap<ServiceKey, Wanted>) -> Result<Vec<Op>, IpvsError>;
}

impl Kernel for Ipvs {
    fn sync(&mut self, wanted: &BTreeMap<ServiceKey, Wanted>) -> Result<Vec<Op>, IpvsError> {
        diff::sync(self, wanted)
    }
}

/// The largest API request body.
const BODY_LIMIT: usize = 16 << 10;

struct State {
    director: Director,
    kernel: Box<dyn Kernel>,
}

type Shared = Arc<Mutex<State>>;

impl State {
    /// Bring the kernel to the wanted table (diffs only; errors are logged and retried
    /// at the next change or listing).
    fn apply(&mut self) {
        let wanted = self.director.wanted();
        self.sync(&wanted);
    }

    /// Brings only the services whose wanted table differs from `before` (and `also`, the
    /// one an API call named: a repeated call repairs its service) to the kernel: one
    /// change costs the dumps of its own service, not of every service. The periodic
    /// listing still brings everything.
    fn apply_changed(&mut self, before: &BTreeMap<ServiceKey, Wanted>, also: Option<ServiceKey>) {
        let some: BTreeMap<ServiceKey, Wanted> = self
            .director
            .wanted()
            .into_iter()
            .filter(|(k, w)| Some(*k) == also || before.get(k) != Some(w))
            .collect();
        if !some.is_empty() {
            self.sync(&some);
        }
    }

    fn sync(&mut self, wanted: &BTreeMap<ServiceKey, Wanted>) {
        match self.kernel.sync(wanted) {
            Ok(ops) => {
                for op in ops {
                    tracing::info!("ipvs: {op:?}");
                }
            }
            Err(e) => tracing::warn!("ipvs: {}", crate::error_chain(&e)),
        }
    }
}

/// Runs until `shutdown` completes; fails only at start (the API's TLS files).
pub async fn run(
    services: &[VirtualService],
    marathon: Marathon,
    kernel: Box<dyn Kernel>,
    listener: TcpListener,
    tls: Option<ServerTls>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), TlsError> {
    let tls = tls.map(|t| t.config()).transpose()?;
    let shared: Shared = Arc::new(Mutex::new(State {
        director: Director::new(services),
        kernel,
    }));
    lock(&shared).apply();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sh = shared.clone();
    let server = tokio::spawn(server::serve(
        listener,
        tls,
        move |req, peer| handle(sh.clone(), req, peer),
        async {
            let _ = stop_rx.await;
        },
    ));
    let notify = Notifier::from_env();
    notify.send("READY=1");
    let mut watchdog = watchdog_interval().map(tokio::time::interval);
    let mut reconcile = tokio::time::interval(marathon.config().reconcile);
    let mut events = marathon.events(&[
        "status_update_event",
        "health_status_changed_event",
        "unhealthy_task_kill_event",
    ]);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = reconcile.tick() => reconcile_all(&shared, &marathon).await,
            _ = async { match &mut watchdog { Some(w) => { w.tick().await; } None => std::future::pending().await } } => {
                notify.send("WATCHDOG=1");
            }
            item = events.next() => match item {
                Ok(Item::Connected { url }) => {
                    tracing::info!("marathon: events from {url}");
                    reconcile_all(&shared, &marathon).await;
                }
                Ok(Item::Event(e)) => {
                    let mut st = lock(&shared);
                    let before = st.director.wanted();
                    st.director.event(&e);
                    st.apply_changed(&before, None);
                }
                Err(e) => tracing::warn!("marathon: {}", crate::error_chain(&e)),
            },
        }
    }
    notify.send("STOPPING=1");
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A full listing of every app; an app Marathon does not know has no tasks.
async fn reconcile_all(shared: &Shared, m: &Marathon) {
    let apps = lock(shared).director.apps();
    for app in apps {
        let tasks = match m.tasks(&app).await {
            Ok(t) => t,
            Err(crate::marathon::Error::UnknownApp { .. }) => Vec::new(),
            Err(e) => {
                tracing::warn!("marathon: {}", crate::error_chain(&e));
                continue;
            }
        };
        let mut st = lock(shared);
        let before = st.director.wanted();
        st.director.listing(&app, &tasks, Instant::now());
        st.apply_changed(&before, None);
    }
    // Then everything once: what drifted in the kernel meanwhile is repaired here.
    lock(shared).apply();
}

async fn handle(shared: Shared, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body = match server::read_body(req, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            return server::json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"error": e.to_string()}),
            )
        }
    };
    let mut st = lock(&shared);
    let before = st.director.wanted();
    let (status, value) = api::handle(
        &mut st.director,
        &method,
        &path,
        &body,
        peer.ip(),
        Instant::now(),
    );
    if status == StatusCode::OK && method != berth_http::Method::GET {
        tracing::info!("api: {method} {path} from {peer}: {value}");
        let key = format!(
            "{}/{}",
            value["vip"].as_str().unwrap_or(""),
            value["proto"].as_str().unwrap_or("")
        );
        st.apply_changed(&before, key.parse().ok());
    }
    server::json(status, &value)
}
