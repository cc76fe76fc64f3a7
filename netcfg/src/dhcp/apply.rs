//! Put a lease on the interface (over netlink, in the current netns) and into
//! resolv.conf, or take it off.
//!
//! Routes: option 121 when present (RFC 3442 says the client then ignores option 3),
//! otherwise a default route via the first router. A 121 entry with gateway 0.0.0.0 is an
//! on-link route. Option 26 sets the link MTU.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::route::RouteScope;
use netlink_packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use super::lease::Lease;
use super::DhcpError;
use crate::conn::{errno, link_by_name};
use crate::names::IfName;

async fn index_of(h: &Handle, iface: &IfName) -> Result<u32, DhcpError> {
    link_by_name(h, iface.as_str())
        .await
        .map_err(|err| DhcpError::Netlink {
            what: "look up",
            iface: iface.to_string(),
            err,
        })?
        .map(|l| l.header.index)
        .ok_or_else(|| DhcpError::NoLink {
            iface: iface.to_string(),
        })
}

/// The netlink messages of the IPv4 addresses on `iface`.
async fn ipv4_address_messages(
    h: &Handle,
    iface: &IfName,
) -> Result<Vec<AddressMessage>, DhcpError> {
    let index = index_of(h, iface).await?;
    let msgs: Vec<AddressMessage> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|err| DhcpError::Netlink {
            what: "list addresses",
            iface: iface.to_string(),
            err,
        })?;
    Ok(msgs
        .into_iter()
        .filter(|m| m.header.family == AddressFamily::Inet && m.header.index == index)
        .collect())
}

/// The IPv4 addresses on `iface`.
pub async fn addresses(h: &Handle, iface: &IfName) -> Result<Vec<(Ipv4Addr, u8)>, DhcpError> {
    Ok(ipv4_address_messages(h, iface)
        .await?
        .iter()
        .filter_map(|m| {
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(v))
                | AddressAttribute::Address(IpAddr::V4(v)) => Some((*v, m.header.prefix_len)),
                _ => None,
            })
        })
        .collect())
}

/// Remove every IPv4 address from `iface` (their routes go with them).
pub async fn deconfigure(h: &Handle, iface: &IfName) -> Result<(), DhcpError> {
    for m in ipv4_address_messages(h, iface).await? {
        if let Err(err) = h.address().del(m).execute().await {
            if !matches!(errno(&err), Some(libc::EADDRNOTAVAIL) | Some(libc::ENODEV)) {
                return Err(DhcpError::Netlink {
                    what: "delete address",
                    iface: iface.to_string(),
                    err,
                });
            }
        }
    }
    Ok(())
}

/// Configure `iface` from `lease` (idempotent: re-applying the same lease is a no-op).
pub async fn apply(h: &Handle, iface: &IfName, lease: &Lease) -> Result<(), DhcpError> {
    let index = index_of(h, iface).await?;
    let nl = |what, err| DhcpError::Netlink {
        what,
        iface: iface.to_string(),
        err,
    };
    let have = addresses(h, iface).await?;
    if have.iter().any(|(a, _)| *a != lease.address) {
        deconfigure(h, iface).await?;
    }
    if let Some(mtu) = lease.mtu.filter(|m| *m >= 576) {
        h.link()
            .set(
                LinkUnspec::new_with_index(index)
                    .mtu(u32::from(mtu))
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| nl("set MTU", e))?;
    }
    h.address()
        .add(index, IpAddr::V4(lease.address), lease.prefix_len)
        .replace()
        .execute()
        .await
        .map_err(|e| nl("add address", e))?;
    let routes: Vec<(Ipv4Addr, u8, Ipv4Addr)> = if !lease.routes.is_empty() {
        lease.routes.clone()
    } else {
        lease
            .routers
            .first()
            .map(|r| vec![(Ipv4Addr::UNSPECIFIED, 0, *r)])
            .unwrap_or_default()
    };
    // On-link routes first, so gateways of later routes are reachable.
    let (onlink, via): (Vec<_>, Vec<_>) = routes.into_iter().partition(|r| r.2.is_unspecified());
    for (dst, len, gw) in onlink.into_iter().chain(via) {
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dst, len)
            .output_interface(index);
        if gw.is_unspecified() {
            b = b.scope(RouteScope::Link);
        } else {
            b = b.gateway(gw);
        }
        h.route()
            .add(b.build())
            .replace()
            .execute()
            .await
            .map_err(|e| nl("add route", e))?;
    }
    Ok(())
}

/// The resolv.conf text for a lease (`None` if the lease has no DNS information).
pub fn resolv_conf(lease: &Lease) -> Option<String> {
    if lease.dns.is_empty() && lease.domain.is_none() {
        return None;
    }
    let mut s = String::from("# written by berth-netcfg's DHCP client\n");
    if let Some(d) = &lease.domain {
        s.push_str(&format!("search {d}\n"));
    }
    for n in lease.dns.iter().take(3) {
        s.push_str(&format!("nameserver {n}\n"));
    }
    Some(s)
}

/// Write resolv.conf at `path`: atomically by rename, or in place if `path` is a mount
/// point (a bind-mounted /etc/resolv.conf cannot be renamed over).
pub fn write_resolv_conf(path: &Path, lease: &Lease) -> Result<(), DhcpError> {
    let Some(text) = resolv_conf(lease) else {
        return Ok(());
    };
    let file_err = |what, err| DhcpError::File {
        what,
        path: path.to_path_buf(),
        err,
    };
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, &text).map_err(|e| file_err("write", e))?;
    if std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
        std::fs::write(path, &text).map_err(|e| file_err("write", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_text() {
        let mut l: Lease = serde_json::from_str(
            r#"{"address":"10.0.0.5","prefix_len":24,"server_id":"10.0.0.1","routers":[],"routes":[],
               "dns":["10.0.0.1","10.0.0.2"],"domain":"lab.test","mtu":null,"lease_secs":1,"t1_secs":1,
               "t2_secs":1,"acquired_at":0}"#,
        )
        .unwrap();
        let t = resolv_conf(&l).unwrap();
        assert!(
            t.contains("search lab.test\nnameserver 10.0.0.1\nnameserver 10.0.0.2\n"),
            "{t}"
        );
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("resolv.conf");
        write_resolv_conf(&p, &l).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), t);
        l.dns.clear();
        l.domain = None;
        assert_eq!(resolv_conf(&l), None);
    }
}
