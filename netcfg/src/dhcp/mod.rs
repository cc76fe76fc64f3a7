//! DHCPv4 client for a container's eth0, written on `dhcproto` (see README for why not
//! `mozim`). Runs inside the container netns (berth-init is PID 1 there).
//!
//! - `lease`: the lease (address, routes, DNS, times) and its persisted file.
//! - `msg`: pure builders/parsers of DISCOVER, REQUEST (selecting, INIT-REBOOT, renew,
//!   rebind), RELEASE, and OFFER/ACK/NAK replies.
//! - `socket`: UDP port 68 bound to the interface (SO_BINDTODEVICE, broadcast).
//! - `io`: the wire and the interface behind traits (fakes in the unit tests).
//! - `apply`: put a lease on the interface over netlink (address, default route, option
//!   121 routes, MTU) and into resolv.conf; take it off again.
//! - `client`: the state machine: [`Client::acquire`], [`Client::keep`] (renew at T1 by
//!   unicast to the server identifier, rebind at T2 by broadcast, expiry -> deconfigure
//!   and start over, NAK -> start over), [`Client::release`], and a status snapshot.

pub mod apply;
pub mod client;
pub mod io;
pub mod lease;
pub mod msg;
pub mod socket;

#[cfg(test)]
mod client_tests;

pub use client::{Client, ClientConfig, Phase, Status};
pub use lease::Lease;

use std::path::PathBuf;

/// Errors of the DHCP client.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    #[error("no DHCP lease on {iface} within {secs} s (sent {tried})")]
    Timeout {
        iface: String,
        secs: u64,
        tried: String,
    },
    #[error("DHCP socket on {iface}")]
    Socket {
        iface: String,
        #[source]
        err: std::io::Error,
    },
    #[error("failed to encode a DHCP message: {0}")]
    Encode(String),
    #[error("failed to {what} {path}")]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("lease file {path} is not valid")]
    LeaseFile {
        path: PathBuf,
        #[source]
        err: serde_json::Error,
    },
    #[error("netlink connection")]
    Connect(#[source] std::io::Error),
    #[error("interface {iface} does not exist")]
    NoLink { iface: String },
    #[error("failed to {what} on {iface}")]
    Netlink {
        what: &'static str,
        iface: String,
        #[source]
        err: rtnetlink::Error,
    },
    #[error("the server refused the address (DHCPNAK): {0}")]
    Nak(String),
}
