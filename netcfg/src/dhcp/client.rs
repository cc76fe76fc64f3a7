//! The DHCP client state machine (RFC 2131 section 4.4), for use inside the container
//! netns from any tokio runtime (berth-init runs a current_thread one).
//!
//! ```no_run
//! # async fn f() -> Result<(), berth_netcfg::dhcp::DhcpError> {
//! use berth_netcfg::dhcp::{Client, ClientConfig};
//! use berth_netcfg::names::IfName;
//! let mut cfg = ClientConfig::new(IfName::new("eth0").unwrap(), "app.instance-1");
//! cfg.lease_file = Some("/run/berth/dhcp-eth0.json".into());
//! cfg.resolv_conf = Some("/etc/resolv.conf".into());
//! let mut client = Client::new(cfg).await?;
//! let lease = client.acquire(std::time::Duration::from_secs(30)).await?;
//! let status = client.status(); // watch::Receiver<Status> for `ctl status`
//! let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
//! client.keep(async { let _ = stop_rx.await; }).await?; // renews until stop_tx fires
//! client.release().await?;
//! # drop((lease, status, stop_tx)); Ok(()) }
//! ```

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::apply::write_resolv_conf;
use super::io::{Configurator, NetlinkConfigurator, Transport};
use super::lease::{now_secs, Lease};
use super::msg::{build, client_id_for, encode, parse_reply, Ident, Kind, Reply};
use super::socket::DhcpSocket;
use super::DhcpError;
use crate::conn::{connect, link_by_name, mac_of};
use crate::names::{fnv1a64, IfName};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub iface: IfName,
    /// App-instance identity: the client-id (option 61) is derived from it.
    pub identity: String,
    /// Option 12.
    pub hostname: Option<String>,
    /// Where the lease is persisted (INIT-REBOOT after a restart); `None` = not kept.
    pub lease_file: Option<PathBuf>,
    /// resolv.conf to write DNS servers and domain into; `None` = leave alone.
    pub resolv_conf: Option<PathBuf>,
    /// First retransmission interval (doubles up to 16 s).
    pub retransmit: Duration,
}

impl ClientConfig {
    /// Defaults: no lease file, no resolv.conf, retransmit after 1 s.
    pub fn new(iface: IfName, identity: &str) -> Self {
        Self {
            iface,
            identity: identity.to_string(),
            hostname: None,
            lease_file: None,
            resolv_conf: None,
            retransmit: Duration::from_secs(1),
        }
    }
}

/// Where the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Init,
    Bound,
    Renewing,
    Rebinding,
    Released,
}

/// Snapshot for status displays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub iface: String,
    pub phase: Phase,
    pub lease: Option<Lease>,
    /// Successful renewals/rebinds since start.
    pub renewals: u32,
}

/// The client, generic over the wire and the interface configurator (real ones by
/// default; tests pass fakes).
pub struct Client<T = DhcpSocket, C = NetlinkConfigurator> {
    cfg: ClientConfig,
    ident: Ident,
    wire: T,
    conf: C,
    lease: Option<Lease>,
    /// When the current lease's ACK arrived, on the monotonic clock (timers run from it;
    /// `Lease::acquired_at` is wall-clock, for the lease file and status).
    bound_at: Instant,
    status: watch::Sender<Status>,
    xid_seq: u32,
}

enum Outcome {
    Bound,
    Nak,
    NoAnswer,
}

impl Client {
    /// Set up on `cfg.iface` (must run inside its netns, on a tokio runtime).
    pub async fn new(cfg: ClientConfig) -> Result<Self, DhcpError> {
        let h = connect().map_err(DhcpError::Connect)?;
        let link = link_by_name(&h, cfg.iface.as_str())
            .await
            .map_err(|err| DhcpError::Netlink {
                what: "look up",
                iface: cfg.iface.to_string(),
                err,
            })?
            .ok_or_else(|| DhcpError::NoLink {
                iface: cfg.iface.to_string(),
            })?;
        // A runtime (Docker/Podman with a macvlan network, a hand-made netns) may leave the
        // interface and lo down; udhcpc and dhclient bring them up, and so does this.
        for (name, index) in [(cfg.iface.as_str(), link.header.index)].into_iter().chain(
            link_by_name(&h, "lo")
                .await
                .ok()
                .flatten()
                .map(|lo| ("lo", lo.header.index)),
        ) {
            h.link()
                .set(rtnetlink::LinkUnspec::new_with_index(index).up().build())
                .execute()
                .await
                .map_err(|err| DhcpError::Netlink {
                    what: "bring up",
                    iface: name.to_string(),
                    err,
                })?;
        }
        let mut mac = [0u8; 6];
        if let Some(m) = mac_of(&link).filter(|m| m.len() >= 6) {
            mac.copy_from_slice(&m[..6]);
        }
        let wire = DhcpSocket::bind(&cfg.iface)?;
        let conf = NetlinkConfigurator {
            handle: h,
            iface: cfg.iface.clone(),
        };
        Ok(Client::with_parts(cfg, mac, wire, conf))
    }
}

impl<T: Transport, C: Configurator> Client<T, C> {
    /// A client on the given wire and configurator, for hardware address `mac`.
    pub fn with_parts(cfg: ClientConfig, mac: [u8; 6], wire: T, conf: C) -> Self {
        let ident = Ident {
            mac,
            client_id: client_id_for(&cfg.identity),
            hostname: cfg.hostname.clone(),
        };
        let (status, _) = watch::channel(Status {
            iface: cfg.iface.to_string(),
            phase: Phase::Init,
            lease: None,
            renewals: 0,
        });
        Self {
            cfg,
            ident,
            wire,
            conf,
            lease: None,
            bound_at: Instant::now(),
            status,
            xid_seq: 0,
        }
    }

    /// A receiver of status snapshots (updated on every state change).
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// The current lease, if bound.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    fn xid(&mut self) -> u32 {
        self.xid_seq = self.xid_seq.wrapping_add(1);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let seed = format!(
            "{}:{}:{}:{}",
            std::process::id(),
            t.as_nanos(),
            self.xid_seq,
            self.cfg.identity
        );
        fnv1a64(seed.as_bytes()) as u32
    }

    fn set_phase(&self, phase: Phase) {
        self.status.send_modify(|s| {
            s.phase = phase;
            s.lease = self.lease.clone();
        });
    }

    async fn send(&self, xid: u32, kind: Kind, dst: Ipv4Addr) -> Result<(), DhcpError> {
        tracing::debug!(iface = %self.cfg.iface, msg = kind.name(), %dst, "dhcp send");
        self.wire
            .send(&encode(&build(&self.ident, xid, kind))?, dst)
            .await
    }

    /// Receive until `accept` takes a datagram or `deadline` passes.
    async fn recv_until<R>(
        &self,
        deadline: Instant,
        mut accept: impl FnMut(&[u8]) -> Option<R>,
    ) -> Option<R> {
        while let Some(b) = self.wire.recv(deadline).await {
            if let Some(r) = accept(&b) {
                return Some(r);
            }
        }
        None
    }

    /// Send `kind` (retransmitting with backoff) until an ACK/NAK for it or `until`.
    async fn request(
        &mut self,
        kind: Kind,
        dst: Ipv4Addr,
        until: Instant,
    ) -> Result<Outcome, DhcpError> {
        let xid = self.xid();
        let mut wait = self.cfg.retransmit;
        while Instant::now() < until {
            self.send(xid, kind, dst).await?;
            let deadline = (Instant::now() + wait).min(until);
            let mac = self.ident.mac;
            let got = self
                .recv_until(deadline, |b| match parse_reply(b, xid, &mac, now_secs()) {
                    Some(r @ (Reply::Ack(_) | Reply::Nak(_))) => Some(r),
                    _ => None,
                })
                .await;
            match got {
                Some(Reply::Ack(lease)) => {
                    self.bind(lease).await?;
                    return Ok(Outcome::Bound);
                }
                Some(Reply::Nak(why)) => {
                    tracing::warn!(iface = %self.cfg.iface, %why, "DHCPNAK");
                    self.drop_lease().await?;
                    return Ok(Outcome::Nak);
                }
                _ => wait = (wait * 2).min(Duration::from_secs(16)),
            }
        }
        Ok(Outcome::NoAnswer)
    }

    async fn bind(&mut self, lease: Lease) -> Result<(), DhcpError> {
        self.conf.apply(&lease).await?;
        if let Some(p) = &self.cfg.resolv_conf {
            write_resolv_conf(p, &lease)?;
        }
        if let Some(p) = &self.cfg.lease_file {
            lease.save(p)?;
        }
        tracing::info!(iface = %self.cfg.iface, address = %lease.address, server = %lease.server_id,
            lease_secs = lease.lease_secs, "DHCP lease bound");
        self.lease = Some(lease);
        self.bound_at = Instant::now();
        self.set_phase(Phase::Bound);
        Ok(())
    }

    async fn drop_lease(&mut self) -> Result<(), DhcpError> {
        self.lease = None;
        if let Some(p) = &self.cfg.lease_file {
            Lease::remove_file(p)?;
        }
        self.conf.deconfigure().await?;
        self.set_phase(Phase::Init);
        Ok(())
    }

    /// Get a lease within `timeout`: INIT-REBOOT with the lease file's address if it is
    /// still valid, else DISCOVER/OFFER/REQUEST/ACK.
    pub async fn acquire(&mut self, timeout: Duration) -> Result<Lease, DhcpError> {
        let until = Instant::now() + timeout;
        let mut tried: Vec<&str> = Vec::new();
        let prev = match &self.cfg.lease_file {
            Some(p) => Lease::load(p).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ignoring unreadable lease file");
                None
            }),
            None => None,
        };
        let mut hint = prev.as_ref().map(|l| l.address);
        if let Some(prev) = prev.filter(|l| !l.expired(now_secs())) {
            tried.push("REQUEST(init-reboot)");
            let reboot_until = (Instant::now() + self.cfg.retransmit * 3).min(until);
            match self
                .request(
                    Kind::InitReboot { addr: prev.address },
                    Ipv4Addr::BROADCAST,
                    reboot_until,
                )
                .await?
            {
                Outcome::Bound => return Ok(self.lease.clone().expect("bound")),
                Outcome::Nak => hint = None,
                Outcome::NoAnswer => {}
            }
        }
        let mut wait = self.cfg.retransmit;
        while Instant::now() < until {
            let xid = self.xid();
            if !tried.contains(&"DISCOVER") {
                tried.push("DISCOVER");
            }
            self.send(xid, Kind::Discover { hint }, Ipv4Addr::BROADCAST)
                .await?;
            let mac = self.ident.mac;
            let deadline = (Instant::now() + wait).min(until);
            let offer = self
                .recv_until(deadline, |b| match parse_reply(b, xid, &mac, now_secs()) {
                    Some(Reply::Offer { addr, server }) => Some((addr, server)),
                    _ => None,
                })
                .await;
            let Some((addr, server)) = offer else {
                wait = (wait * 2).min(Duration::from_secs(16));
                continue;
            };
            if !tried.contains(&"REQUEST") {
                tried.push("REQUEST");
            }
            let req_until = (Instant::now() + self.cfg.retransmit * 7).min(until);
            match self
                .request(
                    Kind::Select { server, addr },
                    Ipv4Addr::BROADCAST,
                    req_until,
                )
                .await?
            {
                Outcome::Bound => return Ok(self.lease.clone().expect("bound")),
                Outcome::Nak => hint = None,
                Outcome::NoAnswer => {}
            }
        }
        Err(DhcpError::Timeout {
            iface: self.cfg.iface.to_string(),
            secs: timeout.as_secs(),
            tried: if tried.is_empty() {
                "nothing".into()
            } else {
                tried.join(", ")
            },
        })
    }

    /// Keep the lease until `shutdown` resolves: renew at T1 (unicast to the server
    /// identifier), rebind at T2 (broadcast), on expiry deconfigure and acquire again,
    /// on NAK start over. Returns `Ok` on shutdown; does not release (call
    /// [`Client::release`]).
    pub async fn keep(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), DhcpError> {
        tokio::pin!(shutdown);
        loop {
            let step = self.step();
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                r = step => r?,
            }
        }
    }

    /// One step of the keep loop; cancelling it at any await leaves a consistent state
    /// (state changes only after a complete exchange).
    async fn step(&mut self) -> Result<(), DhcpError> {
        let Some(lease) = self.lease.clone() else {
            self.set_phase(Phase::Init);
            return match self.acquire(Duration::from_secs(60)).await {
                Ok(_) | Err(DhcpError::Timeout { .. }) => Ok(()),
                Err(e) => Err(e),
            };
        };
        let now = Instant::now();
        let at = |secs: u32| self.bound_at + Duration::from_secs(u64::from(secs));
        let (t1, t2, expiry) = (at(lease.t1_secs), at(lease.t2_secs), at(lease.lease_secs));
        if now >= expiry {
            tracing::warn!(iface = %self.cfg.iface, address = %lease.address, "DHCP lease expired");
            return self.drop_lease().await;
        }
        if now < t1 {
            tokio::time::sleep_until(t1).await;
            return Ok(());
        }
        let (kind, dst, phase, end) = if now < t2 {
            (
                Kind::Renew {
                    addr: lease.address,
                },
                lease.server_id,
                Phase::Renewing,
                t2,
            )
        } else {
            (
                Kind::Rebind {
                    addr: lease.address,
                },
                Ipv4Addr::BROADCAST,
                Phase::Rebinding,
                expiry,
            )
        };
        if self.status.borrow().phase != phase {
            self.set_phase(phase);
        }
        // RFC 2131: wait half the remaining time (at least 60 s on real networks; the
        // lab's T1/T2 are seconds, so the floor here is 1 s) before trying again.
        let left = end - now;
        let window = (left / 2)
            .clamp(Duration::from_secs(1), Duration::from_secs(60))
            .min(left);
        if let Outcome::Bound = self.request(kind, dst, now + window).await? {
            self.status.send_modify(|s| s.renewals += 1);
        }
        Ok(())
    }

    /// Release the lease (unicast RELEASE to the server), take the address off, forget
    /// the lease file. Idempotent.
    pub async fn release(&mut self) -> Result<(), DhcpError> {
        if let Some(l) = self.lease.clone() {
            let xid = self.xid();
            self.send(
                xid,
                Kind::Release {
                    server: l.server_id,
                    addr: l.address,
                },
                l.server_id,
            )
            .await?;
        }
        self.drop_lease().await?;
        self.set_phase(Phase::Released);
        Ok(())
    }
}
