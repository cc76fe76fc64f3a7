//! Interface counters over netlink (IFLA_STATS64), read inside a container's netns: what
//! the agent exports as the container's network traffic.

use std::path::Path;

use netlink_packet_route::link::LinkAttribute;

use crate::conn;
use crate::netns::{self, Netns, NetnsError};

/// The counters of one link, as the kernel keeps them (since the link was created).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("cannot open a netlink socket in netns {path}")]
    Connect {
        path: String,
        #[source]
        err: std::io::Error,
    },
    #[error("cannot read link {name} in netns {path}")]
    Get {
        name: String,
        path: String,
        #[source]
        err: rtnetlink::Error,
    },
}

/// The counters of the link `name` of the netns at `path` (a bind mount such as
/// `/run/netns/<name>` or `/proc/<pid>/ns/net`); `Ok(None)` when it has no such link or
/// the kernel sent no IFLA_STATS64.
pub async fn link_stats_in(path: &Path, name: &str) -> Result<Option<LinkStats>, StatsError> {
    let ns = Netns::open(path)?;
    let shown = path.display().to_string();
    let name = name.to_string();
    netns::run_in(&ns, move || async move {
        let h = conn::connect().map_err(|err| StatsError::Connect {
            path: shown.clone(),
            err,
        })?;
        let msg = conn::link_by_name(&h, &name)
            .await
            .map_err(|err| StatsError::Get {
                name: name.clone(),
                path: shown,
                err,
            })?;
        Ok(msg.and_then(|m| stats_of(&m.attributes)))
    })
    .await?
}

/// The IFLA_STATS64 of a link message's attributes.
pub fn stats_of(attrs: &[LinkAttribute]) -> Option<LinkStats> {
    attrs.iter().find_map(|a| match a {
        LinkAttribute::Stats64(s) => Some(LinkStats {
            rx_bytes: s.rx_bytes,
            tx_bytes: s.tx_bytes,
            rx_packets: s.rx_packets,
            tx_packets: s.tx_packets,
            rx_errors: s.rx_errors,
            tx_errors: s.tx_errors,
            rx_dropped: s.rx_dropped,
            tx_dropped: s.tx_dropped,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats64_maps_field_by_field_and_its_absence_is_none() {
        let mut s = netlink_packet_route::link::Stats64::default();
        s.rx_bytes = 1;
        s.tx_bytes = 2;
        s.rx_packets = 3;
        s.tx_packets = 4;
        s.rx_errors = 5;
        s.tx_errors = 6;
        s.rx_dropped = 7;
        s.tx_dropped = 8;
        let got = stats_of(&[LinkAttribute::Mtu(1500), LinkAttribute::Stats64(s)]).unwrap();
        assert_eq!(
            got,
            LinkStats {
                rx_bytes: 1,
                tx_bytes: 2,
                rx_packets: 3,
                tx_packets: 4,
                rx_errors: 5,
                tx_errors: 6,
                rx_dropped: 7,
                tx_dropped: 8,
            }
        );
        assert_eq!(stats_of(&[LinkAttribute::Mtu(1500)]), None);
    }
}
