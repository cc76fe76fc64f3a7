//! The container's macvlan: created directly inside the container netns (IFLA_NET_NS_FD
//! on RTM_NEWLINK from the host netns), named `eth0` (or as configured), with a MAC derived
//! from the task identity, MTU from the parent unless configured, alias `berth:<owner>`.
//!
//! Note (kernel behaviour): a macvlan child cannot reach its own parent's addresses. If
//! the host must talk to its containers, give the host a macvlan of its own in bridge mode
//! on the same parent and move the host address there.

use std::str::FromStr;

use netlink_packet_route::link::MacVlanMode as NlMode;
use rtnetlink::{Handle, LinkMacVlan, LinkUnspec};

use super::LinkError;
use crate::conn::{connect, link_by_name, mac_of, mtu_of};
use crate::names::{alias_for, stable_mac, IfName};
use crate::netns::{run_in, Netns};

/// macvlan modes berth supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacvlanMode {
    Bridge,
    Private,
    Vepa,
    Passthru,
}

impl FromStr for MacvlanMode {
    type Err = LinkError;
    fn from_str(s: &str) -> Result<Self, LinkError> {
        Ok(match s {
            "bridge" => Self::Bridge,
            "private" => Self::Private,
            "vepa" => Self::Vepa,
            "passthru" => Self::Passthru,
            other => return Err(LinkError::BadMode(other.to_string())),
        })
    }
}

impl From<MacvlanMode> for NlMode {
    fn from(m: MacvlanMode) -> Self {
        match m {
            MacvlanMode::Bridge => NlMode::Bridge,
            MacvlanMode::Private => NlMode::Private,
            MacvlanMode::Vepa => NlMode::Vepa,
            MacvlanMode::Passthru => NlMode::Passthrough,
        }
    }
}

/// What to create.
#[derive(Debug, Clone)]
pub struct MacvlanSpec {
    /// The host interface (or VLAN sub-interface) the macvlan hangs off.
    pub parent: IfName,
    /// Name inside the container netns (usually `eth0`).
    pub name: IfName,
    pub mode: MacvlanMode,
    /// Task/app-instance identity: the MAC is derived from it unless `mac` is set.
    pub identity: String,
    pub mac: Option<[u8; 6]>,
    /// MTU; `None` = the parent's.
    pub mtu: Option<u32>,
}

impl MacvlanSpec {
    /// Bridge mode, `eth0`, derived MAC, parent's MTU.
    pub fn new(parent: IfName, identity: &str) -> Self {
        Self {
            parent,
            name: IfName::new("eth0").expect("eth0 is valid"),
            mode: MacvlanMode::Bridge,
            identity: identity.to_string(),
            mac: None,
            mtu: None,
        }
    }
}

/// What was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvlanInfo {
    /// ifindex inside the container netns.
    pub index: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
}

/// Create the macvlan of `spec` inside `ns`, using `host` (a handle in the parent's netns).
/// The link is brought up inside the netns.
pub async fn create_macvlan(
    host: &Handle,
    ns: &Netns,
    spec: &MacvlanSpec,
) -> Result<MacvlanInfo, LinkError> {
    let parent_name = spec.parent.as_str().to_string();
    let parent = link_by_name(host, &parent_name)
        .await
        .map_err(|err| LinkError::Netlink {
            what: "look up parent",
            name: parent_name.clone(),
            err,
        })?
        .ok_or_else(|| LinkError::NoParent {
            parent: parent_name.clone(),
        })?;
    let parent_mtu = mtu_of(&parent).unwrap_or(1500);
    let mtu = match spec.mtu {
        Some(m) if m > parent_mtu => {
            return Err(LinkError::MtuTooLarge {
                mtu: m,
                parent: parent_name,
                parent_mtu,
            })
        }
        Some(m) => m,
        None => parent_mtu,
    };
    let mac = spec.mac.unwrap_or_else(|| stable_mac(&spec.identity));
    let mut b = LinkMacVlan::new(spec.name.as_str(), parent.header.index, spec.mode.into())
        .setns_by_fd(ns.raw_fd())
        .mtu(mtu);
    if spec.mode != MacvlanMode::Passthru {
        b = b.address(mac.to_vec());
    }
    host.link()
        .add(b.build())
        .execute()
        .await
        .map_err(|err| LinkError::Netlink {
            what: "create macvlan",
            name: spec.name.to_string(),
            err,
        })?;

    let name = spec.name.to_string();
    let alias = alias_for(&spec.identity);
    run_in(ns, move || async move {
        let h = connect().map_err(LinkError::Connect)?;
        let link = link_by_name(&h, &name)
            .await
            .map_err(|err| LinkError::Netlink {
                what: "look up",
                name: name.clone(),
                err,
            })?
            .ok_or_else(|| LinkError::Vanished { name: name.clone() })?;
        let index = link.header.index;
        h.link()
            .set(LinkUnspec::new_with_index(index).alias(alias).up().build())
            .execute()
            .await
            .map_err(|err| LinkError::Netlink {
                what: "set alias and up on",
                name: name.clone(),
                err,
            })?;
        let got = mac_of(&link).unwrap_or(&[0; 6]);
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&got[..6.min(got.len())]);
        Ok(MacvlanInfo {
            index,
            mac,
            mtu: mtu_of(&link).unwrap_or(mtu),
        })
    })
    .await?
}
