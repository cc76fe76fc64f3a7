//! DHCP messages as RFC 2131 section 4.3/4.4 wants them (pure: no I/O).
//!
//! | message          | ciaddr | option 50 | option 54 | sent to          |
//! |------------------|--------|-----------|-----------|------------------|
//! | DISCOVER         | 0      | hint      | -         | broadcast        |
//! | REQUEST select   | 0      | offered   | server    | broadcast        |
//! | REQUEST reboot   | 0      | previous  | -         | broadcast        |
//! | REQUEST renew    | addr   | -         | -         | server id, unicast |
//! | REQUEST rebind   | addr   | -         | -         | broadcast        |
//! | RELEASE          | addr   | -         | server    | server id, unicast |
//!
//! While ciaddr is 0 the broadcast flag is set, so the server's answer reaches a UDP
//! socket on an interface that has no address yet.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};

use super::lease::Lease;
use super::DhcpError;

/// Who the client is on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub mac: [u8; 6],
    /// Option 61, stable per app instance.
    pub client_id: Vec<u8>,
    /// Option 12.
    pub hostname: Option<String>,
}

/// Option 61 for an instance identity: type 0 (not a hardware address) + the identity.
pub fn client_id_for(identity: &str) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend(identity.as_bytes().iter().take(200));
    v
}

/// Which message to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Discover { hint: Option<Ipv4Addr> },
    Select { server: Ipv4Addr, addr: Ipv4Addr },
    InitReboot { addr: Ipv4Addr },
    Renew { addr: Ipv4Addr },
    Rebind { addr: Ipv4Addr },
    Release { server: Ipv4Addr, addr: Ipv4Addr },
}

impl Kind {
    /// Short name for logs and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Discover { .. } => "DISCOVER",
            Kind::Select { .. } => "REQUEST",
            Kind::InitReboot { .. } => "REQUEST(init-reboot)",
            Kind::Renew { .. } => "REQUEST(renew)",
            Kind::Rebind { .. } => "REQUEST(rebind)",
            Kind::Release { .. } => "RELEASE",
        }
    }
}

/// Build the message.
pub fn build(id: &Ident, xid: u32, kind: Kind) -> Message {
    let zero = Ipv4Addr::UNSPECIFIED;
    let ciaddr = match kind {
        Kind::Renew { addr } | Kind::Rebind { addr } | Kind::Release { addr, .. } => addr,
        _ => zero,
    };
    let mut m = Message::new_with_id(xid, ciaddr, zero, zero, zero, &id.mac);
    m.set_opcode(Opcode::BootRequest);
    if ciaddr.is_unspecified() {
        m.set_flags(Flags::default().set_broadcast());
    }
    let o = m.opts_mut();
    let mt = match kind {
        Kind::Discover { .. } => MessageType::Discover,
        Kind::Release { .. } => MessageType::Release,
        _ => MessageType::Request,
    };
    o.insert(DhcpOption::MessageType(mt));
    o.insert(DhcpOption::ClientIdentifier(id.client_id.clone()));
    match kind {
        Kind::Discover { hint: Some(a) } | Kind::InitReboot { addr: a } => {
            o.insert(DhcpOption::RequestedIpAddress(a));
        }
        Kind::Select { server, addr } => {
            o.insert(DhcpOption::RequestedIpAddress(addr));
            o.insert(DhcpOption::ServerIdentifier(server));
        }
        Kind::Release { server, .. } => {
            o.insert(DhcpOption::ServerIdentifier(server));
        }
        _ => {}
    }
    if !matches!(kind, Kind::Release { .. }) {
        if let Some(h) = &id.hostname {
            o.insert(DhcpOption::Hostname(h.clone()));
        }
        o.insert(DhcpOption::MaxMessageSize(1500));
        o.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
            OptionCode::DomainName,
            OptionCode::InterfaceMtu,
            OptionCode::ClasslessStaticRoute,
            OptionCode::AddressLeaseTime,
            OptionCode::Renewal,
            OptionCode::Rebinding,
        ]));
    }
    m
}

/// Encode to bytes.
pub fn encode(m: &Message) -> Result<Vec<u8>, DhcpError> {
    m.to_vec().map_err(|e| DhcpError::Encode(e.to_string()))
}

/// A server's answer to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Offer { addr: Ipv4Addr, server: Ipv4Addr },
    Ack(Lease),
    Nak(String),
}

/// Parse `bytes` as a reply to transaction `xid` for `mac`; `None` if it is not one.
pub fn parse_reply(bytes: &[u8], xid: u32, mac: &[u8; 6], now: u64) -> Option<Reply> {
    let m = Message::from_bytes(bytes).ok()?;
    if m.opcode() != Opcode::BootReply || m.xid() != xid || m.chaddr().get(..6) != Some(&mac[..]) {
        return None;
    }
    let o = m.opts();
    let server = match o.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => *s,
        _ => m.siaddr(),
    };
    match o.msg_type()? {
        MessageType::Offer => Some(Reply::Offer {
            addr: m.yiaddr(),
            server,
        }),
        MessageType::Nak => Some(Reply::Nak(match o.get(OptionCode::Message) {
            Some(DhcpOption::Message(s)) => s.clone(),
            _ => String::new(),
        })),
        MessageType::Ack => Some(Reply::Ack(lease_from(&m, server, now))),
        _ => None,
    }
}

fn lease_from(m: &Message, server: Ipv4Addr, now: u64) -> Lease {
    let o = m.opts();
    let prefix_len = match o.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => u32::from(*mask).count_ones() as u8,
        _ => 24,
    };
    let lease_secs = match o.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(s)) => *s,
        _ => 3600,
    };
    let t1_secs = match o.get(OptionCode::Renewal) {
        Some(DhcpOption::Renewal(s)) => *s,
        _ => lease_secs / 2,
    };
    let t2_secs = match o.get(OptionCode::Rebinding) {
        Some(DhcpOption::Rebinding(s)) => *s,
        _ => (u64::from(lease_secs) * 7 / 8) as u32,
    };
    let addrs = |code| match o.get(code) {
        Some(DhcpOption::Router(v)) | Some(DhcpOption::DomainNameServer(v)) => v.clone(),
        _ => Vec::new(),
    };
    let routes = match o.get(OptionCode::ClasslessStaticRoute) {
        Some(DhcpOption::ClasslessStaticRoute(v)) => v
            .iter()
            .map(|(net, gw)| (net.network(), net.prefix_len(), *gw))
            .collect(),
        _ => Vec::new(),
    };
    Lease {
        address: m.yiaddr(),
        prefix_len,
        server_id: server,
        routers: addrs(OptionCode::Router),
        routes,
        dns: addrs(OptionCode::DomainNameServer),
        domain: match o.get(OptionCode::DomainName) {
            Some(DhcpOption::DomainName(d)) => Some(d.clone()),
            _ => None,
        },
        mtu: match o.get(OptionCode::InterfaceMtu) {
            Some(DhcpOption::InterfaceMtu(v)) => Some(*v),
            _ => None,
        },
        lease_secs,
        t1_secs: t1_secs.min(t2_secs),
        t2_secs: t2_secs.min(lease_secs),
        acquired_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Ident {
        Ident {
            mac: [2, 1, 2, 3, 4, 5],
            client_id: client_id_for("app.1"),
            hostname: Some("app-1".into()),
        }
    }

    fn reparse(m: &Message) -> Message {
        Message::from_bytes(&encode(m).unwrap()).unwrap()
    }

    #[test]
    fn renew_is_unicast_shape_without_server_id() {
        let a = Ipv4Addr::new(10, 0, 0, 5);
        let m = reparse(&build(&id(), 7, Kind::Renew { addr: a }));
        assert_eq!(m.ciaddr(), a);
        assert!(!m.flags().broadcast());
        assert!(m.opts().get(OptionCode::ServerIdentifier).is_none());
        assert!(m.opts().get(OptionCode::RequestedIpAddress).is_none());
        assert_eq!(m.opts().msg_type(), Some(MessageType::Request));
    }

    #[test]
    fn init_reboot_and_select() {
        let a = Ipv4Addr::new(10, 0, 0, 5);
        let m = reparse(&build(&id(), 7, Kind::InitReboot { addr: a }));
        assert!(m.ciaddr().is_unspecified() && m.flags().broadcast());
        assert_eq!(
            m.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(a))
        );
        assert!(m.opts().get(OptionCode::ServerIdentifier).is_none());
        assert_eq!(
            m.opts().get(OptionCode::Hostname),
            Some(&DhcpOption::Hostname("app-1".into()))
        );
        assert_eq!(
            m.opts().get(OptionCode::ClientIdentifier),
            Some(&DhcpOption::ClientIdentifier(b"\0app.1".to_vec()))
        );
        let s = Ipv4Addr::new(10, 0, 0, 1);
        let m = reparse(&build(&id(), 7, Kind::Select { server: s, addr: a }));
        assert_eq!(
            m.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(s))
        );
        let m = reparse(&build(&id(), 7, Kind::Release { server: s, addr: a }));
        assert_eq!(m.opts().msg_type(), Some(MessageType::Release));
        assert_eq!(m.ciaddr(), a);
    }

    #[test]
    fn parse_ack_into_lease() {
        let mut m = Message::new_with_id(
            9,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(10, 0, 0, 9),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &id().mac,
        );
        m.set_opcode(Opcode::BootReply);
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(MessageType::Ack));
        o.insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 1)));
        o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 0, 0)));
        o.insert(DhcpOption::AddressLeaseTime(120));
        o.insert(DhcpOption::Renewal(10));
        o.insert(DhcpOption::InterfaceMtu(1400));
        o.insert(DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 0, 1)]));
        o.insert(DhcpOption::ClasslessStaticRoute(vec![(
            "10.99.0.0/16".parse().unwrap(),
            Ipv4Addr::new(10, 0, 0, 254),
        )]));
        let b = encode(&m).unwrap();
        assert_eq!(parse_reply(&b, 8, &id().mac, 5), None, "other xid");
        let Some(Reply::Ack(l)) = parse_reply(&b, 9, &id().mac, 5) else {
            panic!("not an ack")
        };
        assert_eq!(l.address, Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(l.prefix_len, 16);
        assert_eq!((l.lease_secs, l.t1_secs, l.t2_secs), (120, 10, 105));
        assert_eq!(l.mtu, Some(1400));
        assert_eq!(
            l.routes,
            vec![(
                Ipv4Addr::new(10, 99, 0, 0),
                16,
                Ipv4Addr::new(10, 0, 0, 254)
            )]
        );
        assert_eq!(l.acquired_at, 5);
    }
}
