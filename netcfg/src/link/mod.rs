//! Links berth creates: the container's macvlan (`macvlan`), VLAN sub-interfaces of a
//! trunk (`vlan`), and their idempotent teardown (`teardown`).

pub mod macvlan;
pub mod teardown;
pub mod vlan;

use std::path::PathBuf;

/// Errors of link setup.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("netlink connection")]
    Connect(#[source] std::io::Error),
    #[error("parent interface {parent} does not exist")]
    NoParent { parent: String },
    #[error("MTU {mtu} is larger than the parent {parent}'s MTU {parent_mtu}")]
    MtuTooLarge {
        mtu: u32,
        parent: String,
        parent_mtu: u32,
    },
    #[error("failed to {what} {name}")]
    Netlink {
        what: &'static str,
        name: String,
        #[source]
        err: rtnetlink::Error,
    },
    #[error("link {name} vanished right after it was created")]
    Vanished { name: String },
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error("failed to {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("invalid VLAN id {vid}: must be 1..=4094")]
    BadVid { vid: u16 },
    #[error("unknown macvlan mode {0:?} (bridge, private, vepa, passthru)")]
    BadMode(String),
}
