//! Helpers shared by the privileged integration tests.
#![allow(dead_code)]

use std::path::Path;

use berth_netcfg::conn;
use berth_netcfg::link::macvlan::{create_macvlan, MacvlanInfo, MacvlanSpec};
use berth_netcfg::names::IfName;
use berth_netcfg::netns::{self, Netns};
use berth_tests::lab::{Lab, Ns};

/// Put a bridge-mode macvlan named eth0 (parent = the lab's NIC) into `c`.
pub async fn macvlan_into(lab: &Lab, c: &Ns, identity: &str) -> MacvlanInfo {
    let host = Netns::open(&lab.host.path()).expect("open host netns");
    let cns = Netns::open(&c.path()).expect("open container netns");
    let spec = MacvlanSpec::new(IfName::new(&lab.parent).unwrap(), identity);
    netns::run_in(&host, move || async move {
        let h = conn::connect().expect("netlink");
        create_macvlan(&h, &cns, &spec).await
    })
    .await
    .expect("run in host netns")
    .expect("create macvlan")
}

/// Does `path` exist?
pub fn exists(p: &Path) -> bool {
    p.exists()
}

use berth_netcfg::dhcp::{Client, ClientConfig, DhcpError, Lease, Status};
use tokio::sync::{oneshot, watch};

/// A DHCP client running inside a container netns on its own thread.
pub struct RunningClient {
    stop: Option<oneshot::Sender<bool>>,
    pub status: watch::Receiver<Status>,
    done: Option<tokio::task::JoinHandle<Result<(), DhcpError>>>,
}

impl RunningClient {
    /// Stop keeping the lease; `release` sends RELEASE and deconfigures, otherwise the
    /// client just vanishes (like a crash).
    pub async fn stop(mut self, release: bool) -> Result<(), DhcpError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(release);
        }
        self.done.take().unwrap().await.expect("client task")
    }

    /// Wait until `pred(status)` or `timeout`.
    pub async fn wait(
        &mut self,
        timeout: std::time::Duration,
        pred: impl Fn(&Status) -> bool,
    ) -> bool {
        tokio::time::timeout(timeout, self.status.wait_for(|s| pred(s)))
            .await
            .is_ok()
    }
}

impl Drop for RunningClient {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(false);
        }
    }
}

/// Start a client for eth0 in `c`: acquire (within `timeout`), then keep the lease.
pub async fn start_client(
    c: &Ns,
    cfg: ClientConfig,
    timeout: std::time::Duration,
) -> Result<(RunningClient, Lease), DhcpError> {
    let ns = Netns::open(&c.path()).expect("open container netns");
    let (stop_tx, stop_rx) = oneshot::channel::<bool>();
    let (ready_tx, ready_rx) =
        oneshot::channel::<Result<(Lease, watch::Receiver<Status>), DhcpError>>();
    let done = tokio::spawn(async move {
        netns::run_in(&ns, move || async move {
            let mut client = match Client::new(cfg).await {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Ok(());
                }
            };
            match client.acquire(timeout).await {
                Ok(l) => {
                    let _ = ready_tx.send(Ok((l, client.status())));
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Ok(());
                }
            }
            let (rel_tx, rel_rx) = oneshot::channel::<bool>();
            client
                .keep(async move {
                    let r = stop_rx.await.unwrap_or(false);
                    let _ = rel_tx.send(r);
                })
                .await?;
            if rel_rx.await.unwrap_or(false) {
                client.release().await?;
            }
            Ok(())
        })
        .await
        .expect("run in container netns")
    });
    let (lease, status) = ready_rx.await.expect("client reported")?;
    Ok((
        RunningClient {
            stop: Some(stop_tx),
            status,
            done: Some(done),
        },
        lease,
    ))
}
