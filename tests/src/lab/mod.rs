//! A network lab in namespaces, for tests that need a real LAN and a real DHCP server.
//!
//! ```text
//!  [lan netns]  br0 10.77.0.1/24 + dnsmasq (DHCP, logs every DISCOVER/REQUEST/RELEASE)
//!      | lan0 (veth)
//!      | nic0 (veth)  <- plays the host's physical NIC: the macvlan parent
//!  [host netns]
//!  [container netns ...] made by `Lab::container`, empty until the code under test
//!                        puts a macvlan in them
//! ```
//!
//! Everything is RAII: dropping the [`Lab`] (also while unwinding from a panic) kills
//! dnsmasq and every process started with [`Ns::spawn`], and deletes the namespaces.
//! Names include the pid and a per-process counter ([`unique`]), so parallel tests and
//! other users of the machine never collide. The lab drives `ip` and `dnsmasq` as
//! subprocesses: it is a test harness, not product code.

mod dnsmasq;
mod ns;
mod proc;

pub use dnsmasq::{DhcpConfig, Dnsmasq};
pub use ns::{enter_netns, in_netns, netns_pin, Ns, TaskNetns};
pub use proc::{run, ChildGuard};

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

/// Panic with a clear message unless running as root (privileged tests never skip).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (netns, links, dnsmasq): run it as root"
    );
}

/// A short name unique to this process and call: `<tag><pid>x<n>`.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The lab. Fields drop in order: dnsmasq first, then the namespaces.
pub struct Lab {
    /// DHCP server (in `lan`).
    pub dhcp: Dnsmasq,
    /// The "host" netns; `parent` lives here.
    pub host: Ns,
    /// The LAN netns with the bridge `br0` and the gateway address.
    pub lan: Ns,
    /// Name of the macvlan parent in `host` (`nic0`).
    pub parent: String,
    /// The LAN's gateway/server address (on br0).
    pub gateway: Ipv4Addr,
    /// Base name of this lab's namespaces.
    pub name: String,
}

impl Lab {
    /// A lab with default DHCP settings (T1 4 s, T2 7 s, lease 120 s).
    pub fn new() -> Self {
        Self::with_dhcp(DhcpConfig::default())
    }

    /// A lab whose dnsmasq uses `cfg`.
    pub fn with_dhcp(cfg: DhcpConfig) -> Self {
        require_root();
        let name = unique("bl");
        let lan = Ns::new(&format!("{name}-lan"));
        let host = Ns::new(&format!("{name}-host"));
        let gateway = Ipv4Addr::new(10, 77, 0, 1);
        lan.ip(&["link", "add", "br0", "type", "bridge"]);
        lan.ip(&[
            "link",
            "add",
            "lan0",
            "type",
            "veth",
            "peer",
            "name",
            "nic0",
            "netns",
            host.name(),
        ]);
        lan.ip(&["link", "set", "lan0", "master", "br0", "up"]);
        lan.ip(&["addr", "add", "10.77.0.1/24", "dev", "br0"]);
        lan.ip(&["link", "set", "br0", "up"]);
        lan.ip(&["link", "set", "lo", "up"]);
        host.ip(&["link", "set", "nic0", "up"]);
        host.ip(&["link", "set", "lo", "up"]);
        // Count DHCP packets addressed to the server itself (unicast renewals/releases).
        lan.exec_ok(&[
            "iptables",
            "-w",
            "-I",
            "INPUT",
            "-d",
            "10.77.0.1",
            "-p",
            "udp",
            "--dport",
            "67",
        ]);
        let dhcp = Dnsmasq::start(&lan, cfg);
        Self {
            dhcp,
            host,
            lan,
            parent: "nic0".into(),
            gateway,
            name,
        }
    }

    /// How many DHCP packets reached the server by unicast (to 10.77.0.1:67).
    pub fn unicast_dhcp_packets(&self) -> u64 {
        let out = self
            .lan
            .exec_ok(&["iptables", "-w", "-n", "-v", "-x", "-L", "INPUT"]);
        out.lines()
            .find(|l| l.contains("10.77.0.1") && l.contains("dpt:67"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// A fresh, empty container netns (only `lo`, down) with a unique name.
    pub fn container(&self, tag: &str) -> Ns {
        Ns::new(&unique(&format!("{}-c{tag}", self.name)))
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}
