//! DHCP for the container: a dedicated thread with a tokio `current_thread` runtime
//! (started only when networking is configured, so the rest of init stays free of
//! tokio), running berth-netcfg's client: acquire before any service starts, keep the
//! lease renewed, release it after the services stopped.
//!
//! The thread must start after `signals::block_all` (it inherits the mask, so every
//! signal still lands in the run loop's signalfd) and before the main thread drops the
//! network capabilities (it keeps CAP_NET_ADMIN / CAP_NET_RAW; see `caps`).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use berth_netcfg::dhcp::{Client, ClientConfig, Phase, Status};
use berth_netcfg::names::IfName;
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};
use tracing::{error, info, warn};

use crate::spec::NetworkSpec;

/// How long the RELEASE may take at shutdown.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why networking could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// `BERTH_DHCP_IFACE` is not a valid interface name.
    #[error("{0}")]
    Env(String),
    /// The client failed (no lease within the timeout, no such interface, ...).
    #[error("DHCP on {iface} failed")]
    Dhcp {
        /// The interface.
        iface: String,
        /// The client's error (names what was sent).
        #[source]
        err: Box<berth_netcfg::dhcp::DhcpError>,
    },
    /// The thread or its runtime could not start, or died.
    #[error("the DHCP thread for {iface}: {what}")]
    Thread {
        /// The interface.
        iface: String,
        /// What went wrong.
        what: String,
    },
}

/// Everything the client needs, resolved from the spec and the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Interface.
    pub iface: String,
    /// Client identity (client-id is derived from it).
    pub identity: String,
    /// Option 12.
    pub hostname: Option<String>,
    /// Lease file (next to the status socket).
    pub lease_file: PathBuf,
    /// resolv.conf.
    pub resolv_conf: PathBuf,
    /// First-lease timeout.
    pub timeout: Duration,
}

impl NetConfig {
    /// Identity: `BERTH_TASK_ID`, else `MESOS_TASK_ID`, else the hostname. The lease
    /// file lives in the status socket's directory (`/run/berth`, shared with the host
    /// so a restarted container finds it).
    pub fn resolve(
        spec: &NetworkSpec,
        socket: &Path,
        env: impl Fn(&str) -> Option<String>,
        host: Option<String>,
    ) -> Self {
        let iface = spec.dhcp.0.clone();
        let identity = ["BERTH_TASK_ID", "MESOS_TASK_ID"]
            .iter()
            .find_map(|k| env(k).filter(|v| !v.is_empty()))
            .or_else(|| host.clone())
            .unwrap_or_else(|| "berth".into());
        let dir = socket.parent().unwrap_or(Path::new("/run/berth"));
        NetConfig {
            lease_file: dir.join(format!("dhcp-{iface}.lease")),
            iface,
            identity,
            hostname: spec.hostname.clone().or(host),
            resolv_conf: spec.resolv_conf(),
            timeout: spec.timeout(),
        }
    }
}

/// The running client: its status and how to stop it.
pub struct Network {
    iface: String,
    status: watch::Receiver<Status>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

type Started = Result<watch::Receiver<Status>, NetworkError>;

impl Network {
    /// Starts the thread and waits until the first lease is applied (or fails).
    pub fn start(cfg: NetConfig) -> Result<Self, NetworkError> {
        let iface = cfg.iface.clone();
        let thread_err = |what: String| NetworkError::Thread {
            iface: iface.clone(),
            what,
        };
        let (ready_tx, ready_rx) = mpsc::channel::<Started>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("berth-dhcp".into())
            .spawn(move || thread_main(cfg, ready_tx, stop_rx))
            .map_err(|e| thread_err(format!("cannot start: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(status)) => Ok(Network {
                iface,
                status,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(thread_err("ended before a lease".into()))
            }
        }
    }

    /// A receiver of the client's status (for `ctl status`).
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Stops renewing, releases the lease (RELEASE, address off) and waits for the
    /// thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                error!(iface = %self.iface, "the DHCP thread panicked");
            }
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn thread_main(cfg: NetConfig, ready: mpsc::Sender<Started>, mut stop: oneshot::Receiver<()>) {
    let iface = cfg.iface.clone();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(NetworkError::Thread {
                iface,
                what: format!("cannot build the runtime: {e}"),
            }));
            return;
        }
    };
    rt.block_on(async move {
        let dhcp_err = |err| NetworkError::Dhcp {
            iface: iface.clone(),
            err: Box::new(err),
        };
        let name = match IfName::new(&cfg.iface) {
            Ok(n) => n,
            Err(e) => {
                let _ = ready.send(Err(NetworkError::Env(e.to_string())));
                return;
            }
        };
        let mut cc = ClientConfig::new(name, &cfg.identity);
        cc.hostname = cfg.hostname.clone();
        cc.lease_file = Some(cfg.lease_file.clone());
        cc.resolv_conf = Some(cfg.resolv_conf.clone());
        let mut client = match Client::new(cc).await {
            Ok(c) => c,
            Err(e) => {
                let _ = ready.send(Err(dhcp_err(e)));
                return;
            }
        };
        match client.acquire(cfg.timeout).await {
            Ok(lease) => {
                info!(iface = %cfg.iface, address = %lease.address, prefix_len = lease.prefix_len,
                      server = %lease.server_id, lease_secs = lease.lease_secs, "DHCP lease acquired");
            }
            Err(e) => {
                let _ = ready.send(Err(dhcp_err(e)));
                return;
            }
        }
        if ready.send(Ok(client.status())).is_err() {
            return;
        }
        loop {
            match client.keep(async { let _ = (&mut stop).await; }).await {
                Ok(()) => break,
                Err(e) => {
                    warn!(iface = %cfg.iface, error = %crate::log::chain(&e), "DHCP client error; retrying in 1 s");
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        match tokio::time::timeout(RELEASE_TIMEOUT, client.release()).await {
            Ok(Ok(())) => info!(iface = %cfg.iface, "DHCP lease released"),
            Ok(Err(e)) => warn!(iface = %cfg.iface, error = %crate::log::chain(&e), "DHCP release failed"),
            Err(_) => warn!(iface = %cfg.iface, "DHCP release timed out"),
        }
    });
}

/// The status's `network` object: `iface`, `address` (the executor's contract),
/// `prefix_len`, `gateway`, `server`, `dns`, `domain`, `mtu`, `lease_secs`,
/// `acquired_at` / `renew_at` / `rebind_at` / `expires_at` (epoch seconds),
/// `renew_in_secs` / `expires_in_secs`, `state` and `renewals`. Without a lease (between
/// expiry and a new one) the lease keys are null.
pub fn status_json(s: &Status, now: u64) -> Value {
    let state = match s.phase {
        Phase::Init => "init",
        Phase::Bound => "bound",
        Phase::Renewing => "renewing",
        Phase::Rebinding => "rebinding",
        Phase::Released => "released",
    };
    let mut v = json!({
        "iface": s.iface,
        "state": state,
        "renewals": s.renewals,
        "address": null,
    });
    if let Some(l) = &s.lease {
        let at = |secs: u32| l.acquired_at + u64::from(secs);
        let obj = json!({
            "iface": s.iface,
            "state": state,
            "renewals": s.renewals,
            "address": l.address.to_string(),
            "prefix_len": l.prefix_len,
            "gateway": l.routers.first().map(|g| g.to_string()),
            "server": l.server_id.to_string(),
            "dns": l.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "domain": l.domain,
            "mtu": l.mtu,
            "lease_secs": l.lease_secs,
            "acquired_at": l.acquired_at,
            "renew_at": at(l.t1_secs),
            "rebind_at": at(l.t2_secs),
            "expires_at": at(l.lease_secs),
            "renew_in_secs": l.until_renew(now).as_secs(),
            "expires_in_secs": l.until_expiry(now).as_secs(),
        });
        v = obj;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::network::Iface;
    use berth_netcfg::dhcp::Lease;

    fn spec() -> NetworkSpec {
        NetworkSpec::for_iface(Iface::new("eth0").unwrap())
    }

    #[test]
    fn identity_prefers_task_ids_then_hostname() {
        let sock = Path::new("/run/berth/init.sock");
        let env = |k: &str| (k == "MESOS_TASK_ID").then(|| "app.1".to_string());
        let c = NetConfig::resolve(&spec(), sock, env, Some("h1".into()));
        assert_eq!(c.identity, "app.1");
        assert_eq!(c.lease_file, Path::new("/run/berth/dhcp-eth0.lease"));
        assert_eq!(c.resolv_conf, Path::new("/etc/resolv.conf"));
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.hostname.as_deref(), Some("h1"));
        let env = |k: &str| match k {
            "BERTH_TASK_ID" => Some("b.2".to_string()),
            "MESOS_TASK_ID" => Some("app.1".to_string()),
            _ => None,
        };
        assert_eq!(NetConfig::resolve(&spec(), sock, env, None).identity, "b.2");
        let c = NetConfig::resolve(&spec(), sock, |_| None, Some("h1".into()));
        assert_eq!(c.identity, "h1");
    }

    #[test]
    fn status_has_the_contract_keys() {
        let lease = Lease {
            address: "10.0.0.5".parse().unwrap(),
            prefix_len: 24,
            server_id: "10.0.0.1".parse().unwrap(),
            routers: vec!["10.0.0.1".parse().unwrap()],
            routes: vec![],
            dns: vec!["10.0.0.1".parse().unwrap()],
            domain: None,
            mtu: None,
            lease_secs: 120,
            t1_secs: 60,
            t2_secs: 105,
            acquired_at: 1000,
        };
        let s = Status {
            iface: "eth0".into(),
            phase: Phase::Bound,
            lease: Some(lease),
            renewals: 2,
        };
        let v = status_json(&s, 1010);
        assert_eq!(v["iface"], "eth0");
        assert_eq!(v["address"], "10.0.0.5");
        assert_eq!(v["prefix_len"], 24);
        assert_eq!(v["gateway"], "10.0.0.1");
        assert_eq!(v["state"], "bound");
        assert_eq!(v["renew_in_secs"], 50);
        assert_eq!(v["expires_in_secs"], 110);
        assert_eq!(v["expires_at"], 1120);
        let none = Status {
            iface: "eth0".into(),
            phase: Phase::Init,
            lease: None,
            renewals: 0,
        };
        let v = status_json(&none, 0);
        assert_eq!(v["iface"], "eth0");
        assert!(v["address"].is_null());
        assert_eq!(v["state"], "init");
    }
}
