//! The bytes: netlink + generic netlink headers and IPVS attributes, built and parsed
//! without I/O so every message is unit-tested byte for byte.
//!
//! Layout (include/uapi/linux/ip_vs.h, the same as ipvsadm's libipvs): integers are in host
//! order (`nla_put_u32`) except ports, which are big endian; addresses are 4 bytes (IPv4)
//! or 16 bytes (IPv6) on the way in, and the kernel answers with a 16-byte
//! `union nf_inet_addr` whose first 4 bytes hold an IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::types::{Dest, DestKey, DestState, FwdMethod, IpvsError, Protocol, Service, ServiceKey};

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

pub const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// IPVS_GENL_VERSION.
pub const IPVS_VERSION: u8 = 1;

/// IPVS_CMD_*.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Cmd {
    NewService = 1,
    SetService = 2,
    DelService = 3,
    GetService = 4,
    NewDest = 5,
    SetDest = 6,
    DelDest = 7,
    GetDest = 8,
}

const CMD_ATTR_SERVICE: u16 = 1;
const CMD_ATTR_DEST: u16 = 2;

const SVC_AF: u16 = 1;
const SVC_PROTOCOL: u16 = 2;
const SVC_ADDR: u16 = 3;
const SVC_PORT: u16 = 4;
const SVC_FWMARK: u16 = 5;
const SVC_SCHED_NAME: u16 = 6;
const SVC_FLAGS: u16 = 7;
const SVC_TIMEOUT: u16 = 8;
const SVC_NETMASK: u16 = 9;

const DEST_ADDR: u16 = 1;
const DEST_PORT: u16 = 2;
const DEST_FWD_METHOD: u16 = 3;
const DEST_WEIGHT: u16 = 4;
const DEST_U_THRESH: u16 = 5;
const DEST_L_THRESH: u16 = 6;
const DEST_ACTIVE_CONNS: u16 = 7;
const DEST_INACT_CONNS: u16 = 8;
const DEST_ADDR_FAMILY: u16 = 11;

/// IP_VS_SVC_F_HASHED: set by the kernel on every listed service, not a setting.
const SVC_F_HASHED: u32 = 0x2;

const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;

/// Attribute writer: appends `len, type, value` padded to 4 bytes.
#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn put(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = (4 + value.len()) as u16;
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }
    fn u16(&mut self, kind: u16, v: u16) -> &mut Self {
        self.put(kind, &v.to_ne_bytes())
    }
    fn u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.put(kind, &v.to_ne_bytes())
    }
    fn be16(&mut self, kind: u16, v: u16) -> &mut Self {
        self.put(kind, &v.to_be_bytes())
    }
    fn addr(&mut self, kind: u16, a: IpAddr) -> &mut Self {
        match a {
            IpAddr::V4(a) => self.put(kind, &a.octets()),
            IpAddr::V6(a) => self.put(kind, &a.octets()),
        }
    }
    fn nested(&mut self, kind: u16, inner: Attrs) -> &mut Self {
        self.put(kind | NLA_F_NESTED, &inner.0)
    }
}

fn af(a: IpAddr) -> u16 {
    if a.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}

/// A whole netlink message: nlmsghdr, genlmsghdr, attributes.
fn message(family: u16, flags: u16, seq: u32, cmd: u8, version: u8, attrs: &[u8]) -> Vec<u8> {
    let len = (16 + 4 + attrs.len()) as u32;
    let mut m = Vec::with_capacity(len as usize);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&family.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills ours in
    m.extend_from_slice(&[cmd, version, 0, 0]);
    m.extend_from_slice(attrs);
    m
}

/// CTRL_CMD_GETFAMILY for `name` (answered with the family id).
pub fn get_family(name: &str, seq: u32) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    let mut a = Attrs::default();
    a.put(CTRL_ATTR_FAMILY_NAME, &v);
    message(
        GENL_ID_CTRL,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        CTRL_CMD_GETFAMILY,
        1,
        &a.0,
    )
}

fn service_id(k: &ServiceKey) -> Attrs {
    let mut a = Attrs::default();
    a.u16(SVC_AF, af(k.addr))
        .u16(SVC_PROTOCOL, k.protocol.number())
        .addr(SVC_ADDR, k.addr)
        .be16(SVC_PORT, k.port);
    a
}

fn service_full(s: &Service) -> Attrs {
    let mut sched = s.scheduler.as_bytes().to_vec();
    sched.push(0);
    let mut flags = s.flags.to_ne_bytes().to_vec();
    flags.extend_from_slice(&u32::MAX.to_ne_bytes()); // mask: every flag is ours to set
    let mut a = service_id(&s.key);
    a.put(SVC_SCHED_NAME, &sched)
        .put(SVC_FLAGS, &flags)
        .u32(SVC_TIMEOUT, s.timeout)
        .u32(SVC_NETMASK, s.netmask);
    a
}

fn dest_attrs(d: &Dest) -> Attrs {
    let mut a = Attrs::default();
    a.addr(DEST_ADDR, d.key.addr)
        .be16(DEST_PORT, d.key.port)
        .u32(DEST_FWD_METHOD, d.fwd.number())
        .u32(DEST_WEIGHT, d.weight)
        .u32(DEST_U_THRESH, d.u_thresh)
        .u32(DEST_L_THRESH, d.l_thresh)
        .u16(DEST_ADDR_FAMILY, af(d.key.addr));
    a
}

fn ipvs(family: u16, flags: u16, seq: u32, cmd: Cmd, attrs: Attrs) -> Vec<u8> {
    message(family, flags, seq, cmd as u8, IPVS_VERSION, &attrs.0)
}

const ACKED: u16 = NLM_F_REQUEST | NLM_F_ACK;

/// NEW_SERVICE (`cmd` Set for SET_SERVICE) with the service's full settings.
pub fn service(family: u16, seq: u32, cmd: Cmd, s: &Service) -> Vec<u8> {
    let mut a = Attrs::default();
    a.nested(CMD_ATTR_SERVICE, service_full(s));
    ipvs(family, ACKED, seq, cmd, a)
}

/// DEL_SERVICE.
pub fn del_service(family: u16, seq: u32, k: &ServiceKey) -> Vec<u8> {
    let mut a = Attrs::default();
    a.nested(CMD_ATTR_SERVICE, service_id(k));
    ipvs(family, ACKED, seq, Cmd::DelService, a)
}

/// GET_SERVICE dump of every service.
pub fn get_services(family: u16, seq: u32) -> Vec<u8> {
    ipvs(
        family,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        Cmd::GetService,
        Attrs::default(),
    )
}

/// NEW_DEST or SET_DEST (`cmd`) of `d` in service `k`.
pub fn dest(family: u16, seq: u32, cmd: Cmd, k: &ServiceKey, d: &Dest) -> Vec<u8> {
    let mut a = Attrs::default();
    a.nested(CMD_ATTR_SERVICE, service_id(k))
        .nested(CMD_ATTR_DEST, dest_attrs(d));
    ipvs(family, ACKED, seq, cmd, a)
}

/// DEL_DEST of `d` in service `k`.
pub fn del_dest(family: u16, seq: u32, k: &ServiceKey, d: &DestKey) -> Vec<u8> {
    let mut inner = Attrs::default();
    inner.addr(DEST_ADDR, d.addr).be16(DEST_PORT, d.port);
    let mut a = Attrs::default();
    a.nested(CMD_ATTR_SERVICE, service_id(k))
        .nested(CMD_ATTR_DEST, inner);
    ipvs(family, ACKED, seq, Cmd::DelDest, a)
}

/// GET_DEST dump of the real servers of service `k`.
pub fn get_dests(family: u16, seq: u32, k: &ServiceKey) -> Vec<u8> {
    let mut a = Attrs::default();
    a.nested(CMD_ATTR_SERVICE, service_id(k));
    ipvs(family, NLM_F_REQUEST | NLM_F_DUMP, seq, Cmd::GetDest, a)
}

/// One parsed message of a reply datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// NLMSG_ERROR with 0: the ack of a request.
    Ack { seq: u32 },
    /// NLMSG_ERROR with a (positive) errno.
    Error { seq: u32, errno: i32 },
    /// NLMSG_DONE: the end of a dump.
    Done { seq: u32 },
    /// A generic netlink message: its command and attributes.
    Data { seq: u32, cmd: u8, attrs: &'a [u8] },
}

fn bad(what: &str) -> IpvsError {
    IpvsError::Decode(what.to_string())
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, IpvsError> {
    b.get(at..at + 2)
        .map(|s| u16::from_ne_bytes([s[0], s[1]]))
        .ok_or_else(|| bad("short u16"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, IpvsError> {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| bad("short u32"))
}

/// Split a datagram into its netlink messages.
pub fn parse(buf: &[u8]) -> Result<Vec<Reply<'_>>, IpvsError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32_at(buf, at)? as usize;
        if len < 16 || at + len > buf.len() {
            return Err(bad("netlink message length"));
        }
        let kind = u16_at(buf, at + 4)?;
        let seq = u32_at(buf, at + 8)?;
        let body = &buf[at + 16..at + len];
        out.push(match kind {
            NLMSG_ERROR => match u32_at(body, 0)? as i32 {
                0 => Reply::Ack { seq },
                e => Reply::Error { seq, errno: -e },
            },
            NLMSG_DONE => Reply::Done { seq },
            _ => {
                let cmd = *body.first().ok_or_else(|| bad("short genl header"))?;
                Reply::Data {
                    seq,
                    cmd,
                    attrs: body.get(4..).ok_or_else(|| bad("short genl header"))?,
                }
            }
        });
        at += len.next_multiple_of(4);
    }
    Ok(out)
}

/// Iterate `(type, value)` over an attribute block (the nested flag masked off).
pub fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let v = &b[4..len];
        b = &b[len.next_multiple_of(4).min(b.len())..];
        Some((kind, v))
    })
}

fn find(b: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(b).find(|(k, _)| *k == kind).map(|(_, v)| v)
}

fn need<'a>(b: &'a [u8], kind: u16, what: &str) -> Result<&'a [u8], IpvsError> {
    find(b, kind).ok_or_else(|| bad(&format!("missing {what}")))
}

/// The CTRL_ATTR_FAMILY_ID of a GETFAMILY answer.
pub fn family_id(attrs_: &[u8]) -> Result<u16, IpvsError> {
    u16_at(need(attrs_, CTRL_ATTR_FAMILY_ID, "family id")?, 0)
}

fn addr(v: &[u8], af: u16) -> Result<IpAddr, IpvsError> {
    match af {
        AF_INET => {
            let o: [u8; 4] = v
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| bad("short IPv4 address"))?;
            Ok(IpAddr::V4(Ipv4Addr::from(o)))
        }
        AF_INET6 => {
            let o: [u8; 16] = v
                .get(..16)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| bad("short IPv6 address"))?;
            Ok(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => Err(bad(&format!("address family {af}"))),
    }
}

fn be16(v: &[u8]) -> Result<u16, IpvsError> {
    v.get(..2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| bad("short port"))
}

/// The service of a NEW_SERVICE message in a GET_SERVICE dump; `None` for a fwmark service
/// or a protocol berth doesn't know (neither can be berth's).
pub fn service_of(msg: &[u8]) -> Result<Option<Service>, IpvsError> {
    let s = need(msg, CMD_ATTR_SERVICE, "service")?;
    if find(s, SVC_FWMARK).is_some_and(|v| v.iter().any(|b| *b != 0)) {
        return Ok(None);
    }
    let af = u16_at(need(s, SVC_AF, "service af")?, 0)?;
    let Some(protocol) = Protocol::from_number(u16_at(need(s, SVC_PROTOCOL, "protocol")?, 0)?)
    else {
        return Ok(None);
    };
    let key = ServiceKey {
        addr: addr(need(s, SVC_ADDR, "service address")?, af)?,
        port: be16(need(s, SVC_PORT, "port")?)?,
        protocol,
    };
    let sched = need(s, SVC_SCHED_NAME, "scheduler")?;
    let scheduler =
        String::from_utf8_lossy(sched.split(|b| *b == 0).next().unwrap_or_default()).into_owned();
    let flags = u32_at(need(s, SVC_FLAGS, "flags")?, 0)? & !SVC_F_HASHED;
    Ok(Some(Service {
        key,
        scheduler,
        flags,
        timeout: u32_at(need(s, SVC_TIMEOUT, "timeout")?, 0)?,
        netmask: u32_at(need(s, SVC_NETMASK, "netmask")?, 0)?,
    }))
}

/// The real server of a NEW_DEST message in a GET_DEST dump of a service of family `svc_af`.
pub fn dest_of(msg: &[u8], svc: &ServiceKey) -> Result<DestState, IpvsError> {
    let d = need(msg, CMD_ATTR_DEST, "dest")?;
    let af = match find(d, DEST_ADDR_FAMILY) {
        Some(v) => u16_at(v, 0)?,
        None => af(svc.addr),
    };
    let key = DestKey {
        addr: addr(need(d, DEST_ADDR, "dest address")?, af)?,
        port: be16(need(d, DEST_PORT, "dest port")?)?,
    };
    let u = |kind, what| -> Result<u32, IpvsError> { u32_at(need(d, kind, what)?, 0) };
    let fwd_n = u(DEST_FWD_METHOD, "forwarding method")?;
    let fwd =
        FwdMethod::from_number(fwd_n).ok_or_else(|| bad(&format!("forwarding method {fwd_n}")))?;
    Ok(DestState {
        dest: Dest {
            key,
            fwd,
            weight: u(DEST_WEIGHT, "weight")?,
            u_thresh: u(DEST_U_THRESH, "u_thresh")?,
            l_thresh: u(DEST_L_THRESH, "l_thresh")?,
        },
        active_conns: find(d, DEST_ACTIVE_CONNS)
            .map(|v| u32_at(v, 0))
            .transpose()?
            .unwrap_or(0),
        inactive_conns: find(d, DEST_INACT_CONNS)
            .map(|v| u32_at(v, 0))
            .transpose()?
            .unwrap_or(0),
    })
}
