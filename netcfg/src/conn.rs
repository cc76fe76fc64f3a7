//! Netlink connections and small lookups shared by the link, tc and DHCP modules.

use futures::TryStreamExt;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
pub use rtnetlink::Handle;

/// Open an rtnetlink connection in the calling thread's netns; the connection task is
/// spawned on the current tokio runtime (current_thread is fine).
pub fn connect() -> std::io::Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The negative errno of a netlink error reply, if it is one.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// Look a link up by name; `Ok(None)` if absent.
pub async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>, rtnetlink::Error> {
    match h
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
    {
        Ok(m) => Ok(m),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// All links of the netns.
pub async fn all_links(h: &Handle) -> Result<Vec<LinkMessage>, rtnetlink::Error> {
    h.link().get().execute().try_collect().await
}

/// The IFLA_IFALIAS of a link, if set.
pub fn alias_of(m: &LinkMessage) -> Option<&str> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(s) => Some(s.as_str()),
        _ => None,
    })
}

/// The name of a link.
pub fn name_of(m: &LinkMessage) -> Option<&str> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(s) => Some(s.as_str()),
        _ => None,
    })
}

/// The MTU of a link.
pub fn mtu_of(m: &LinkMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(v) => Some(*v),
        _ => None,
    })
}

/// The hardware address of a link.
pub fn mac_of(m: &LinkMessage) -> Option<&[u8]> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(v) => Some(v.as_slice()),
        _ => None,
    })
}
