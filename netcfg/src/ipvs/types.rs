//! The IPVS table as plain data: virtual services, their real servers (destinations), and
//! the typed errors of the `ipvs` module.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The IPPROTO_* number the kernel uses.
    pub fn number(self) -> u16 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// The protocol with IPPROTO_* number `n`, if IPVS supports it.
    pub fn from_number(n: u16) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

impl FromStr for Protocol {
    type Err = IpvsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(IpvsError::Parse(format!(
                "protocol {s:?} (expected tcp, udp or sctp)"
            ))),
        }
    }
}

/// How the director forwards packets to a real server (IP_VS_CONN_F_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FwdMethod {
    /// NAT (masquerading), ipvsadm `-m`.
    Masq,
    /// The director itself.
    Local,
    /// IP-in-IP tunnel, ipvsadm `-i`.
    Tunnel,
    /// Direct routing, ipvsadm `-g`.
    Route,
}

impl FwdMethod {
    pub fn number(self) -> u32 {
        match self {
            FwdMethod::Masq => 0,
            FwdMethod::Local => 1,
            FwdMethod::Tunnel => 2,
            FwdMethod::Route => 3,
        }
    }

    pub fn from_number(n: u32) -> Option<FwdMethod> {
        match n & 0x7 {
            0 => Some(FwdMethod::Masq),
            1 => Some(FwdMethod::Local),
            2 => Some(FwdMethod::Tunnel),
            3 => Some(FwdMethod::Route),
            _ => None,
        }
    }
}

impl FromStr for FwdMethod {
    type Err = IpvsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "nat" | "masq" => Ok(FwdMethod::Masq),
            "dr" | "route" => Ok(FwdMethod::Route),
            "tun" | "tunnel" => Ok(FwdMethod::Tunnel),
            _ => Err(IpvsError::Parse(format!(
                "forwarding method {s:?} (expected nat, dr or tun)"
            ))),
        }
    }
}

/// What identifies a (non-fwmark) virtual service: VIP, port, protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub addr: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for ServiceKey {
    /// `10.0.0.1:80/tcp`, `[fd00::1]:80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}/{}", self.port, self.protocol),
            IpAddr::V6(a) => write!(f, "[{a}]:{}/{}", self.port, self.protocol),
        }
    }
}

impl FromStr for ServiceKey {
    type Err = IpvsError;
    /// Parses `VIP:PORT/PROTO` (`/tcp` may be left out).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (sock, proto) = match s.rsplit_once('/') {
            Some((a, p)) => (a, p.parse()?),
            None => (s, Protocol::Tcp),
        };
        let sock: std::net::SocketAddr = sock.parse().map_err(|_| {
            IpvsError::Parse(format!("virtual service {s:?} (expected VIP:PORT/PROTO)"))
        })?;
        Ok(ServiceKey {
            addr: sock.ip(),
            port: sock.port(),
            protocol: proto,
        })
    }
}

/// A virtual service with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    /// Scheduler name: rr, wrr, lc, wlc, sh, mh, ...
    pub scheduler: String,
    /// IP_VS_SVC_F_* (PERSISTENT 0x1, ONEPACKET 0x4); HASHED (0x2) is masked off on read.
    pub flags: u32,
    /// Persistence timeout in seconds.
    pub timeout: u32,
    /// The persistence netmask (IPv4: a mask, e.g. 0xffffffff; IPv6: a prefix length).
    pub netmask: u32,
}

impl Service {
    /// A service with the kernel's defaults (no persistence, host netmask).
    pub fn new(key: ServiceKey, scheduler: &str) -> Service {
        let netmask = if key.addr.is_ipv4() { 0xffff_ffff } else { 128 };
        Service {
            key,
            scheduler: scheduler.to_string(),
            flags: 0,
            timeout: 0,
            netmask,
        }
    }
}

/// A real server's identity within a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DestKey {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for DestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", std::net::SocketAddr::new(self.addr, self.port))
    }
}

/// A real server with its settings (what NEW_DEST/SET_DEST carry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dest {
    pub key: DestKey,
    pub fwd: FwdMethod,
    pub weight: u32,
    pub u_thresh: u32,
    pub l_thresh: u32,
}

impl Dest {
    pub fn new(key: DestKey, fwd: FwdMethod, weight: u32) -> Dest {
        Dest {
            key,
            fwd,
            weight,
            u_thresh: 0,
            l_thresh: 0,
        }
    }
}

/// A real server as dumped: its settings and its connection counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestState {
    pub dest: Dest,
    pub active_conns: u32,
    pub inactive_conns: u32,
}

/// Errors of the IPVS module.
#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    #[error("cannot open a generic netlink socket")]
    Socket(#[source] std::io::Error),
    #[error("the generic netlink family \"IPVS\" does not exist (is the ip_vs module loaded? `modprobe ip_vs`)")]
    NoFamily,
    #[error("netlink {op} failed")]
    Kernel {
        op: &'static str,
        #[source]
        err: std::io::Error,
    },
    #[error("malformed netlink reply: {0}")]
    Decode(String),
    #[error("invalid {0}")]
    Parse(String),
}
