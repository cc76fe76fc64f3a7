//! The client's two side effects behind small traits, so the state machine can be unit
//! tested with a scripted server and paused time: the wire ([`Transport`], real:
//! [`super::socket::DhcpSocket`]) and the interface ([`Configurator`], real:
//! [`NetlinkConfigurator`]).

use std::future::Future;
use std::net::Ipv4Addr;

use rtnetlink::Handle;
use tokio::time::Instant;

use super::apply::{apply, deconfigure};
use super::lease::Lease;
use super::DhcpError;
use crate::names::IfName;

/// Sends and receives DHCP datagrams.
pub trait Transport {
    /// Send to `dst`:67 (255.255.255.255 = broadcast).
    fn send(&self, bytes: &[u8], dst: Ipv4Addr) -> impl Future<Output = Result<(), DhcpError>>;
    /// The next datagram for port 68, or `None` once `deadline` has passed.
    fn recv(&self, deadline: Instant) -> impl Future<Output = Option<Vec<u8>>>;
}

/// Puts a lease on the interface and takes it off.
pub trait Configurator {
    /// Configure address, routes, MTU (idempotent).
    fn apply(&self, lease: &Lease) -> impl Future<Output = Result<(), DhcpError>>;
    /// Remove every IPv4 address (and so its routes).
    fn deconfigure(&self) -> impl Future<Output = Result<(), DhcpError>>;
}

/// The real configurator: rtnetlink in the current netns.
pub struct NetlinkConfigurator {
    pub handle: Handle,
    pub iface: IfName,
}

impl Configurator for NetlinkConfigurator {
    async fn apply(&self, lease: &Lease) -> Result<(), DhcpError> {
        apply(&self.handle, &self.iface, lease).await
    }
    async fn deconfigure(&self) -> Result<(), DhcpError> {
        deconfigure(&self.handle, &self.iface).await
    }
}
