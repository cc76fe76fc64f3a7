//! The LVS lab (VM tier: needs the kernel's ip_vs): a director netns that routes between a
//! client netns and the real servers' LAN, with the VIP on its client side; the real
//! `berth-agent lvs` running in it; its IPVS table read over netlink (and `ipvsadm -Ln`
//! printed as a cross-check); a one-shot HTTP client for the VIP.
//!
//! ```text
//!  [client netns] cl0 10.88.0.2/24 --veth-- vc0 10.88.0.1/24 + VIP 10.88.0.100 [director]
//!                                                       ip_forward=1, IPVS NAT, the
//!                                                       real servers' default gateway
//! ```
//!
//! With NAT forwarding the director must be the real servers' gateway (their replies are
//! un-NATed on the way back), so the director netns is the lab's LAN netns (br0
//! 10.77.0.1, the router dnsmasq hands out). Everything is RAII: the client netns and the
//! director process go on drop; the director's IPVS table goes with its netns.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_netcfg::ipvs::{Ipvs, ServiceKey};

use crate::lab::{ChildGuard, Ns};

/// The VIP's address on the director, the client's address, the director's client side.
pub const VIP_ADDR: &str = "10.88.0.100";
pub const CLIENT_ADDR: &str = "10.88.0.2";
pub const DIRECTOR_CLIENT_SIDE: &str = "10.88.0.1";

/// Makes `director` a router with the VIP and returns the client netns behind it.
pub fn attach_client(director: &Ns, name: &str) -> Ns {
    let client = Ns::new(name);
    director.ip(&[
        "link",
        "add",
        "vc0",
        "type",
        "veth",
        "peer",
        "name",
        "cl0",
        "netns",
        client.name(),
    ]);
    director.ip(&[
        "addr",
        "add",
        &format!("{DIRECTOR_CLIENT_SIDE}/24"),
        "dev",
        "vc0",
    ]);
    director.ip(&["addr", "add", &format!("{VIP_ADDR}/32"), "dev", "vc0"]);
    director.ip(&["link", "set", "vc0", "up"]);
    director.exec_ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    client.ip(&["addr", "add", &format!("{CLIENT_ADDR}/24"), "dev", "cl0"]);
    client.ip(&["link", "set", "cl0", "up"]);
    client.ip(&["link", "set", "lo", "up"]);
    client
}

/// `ipvsadm -Ln` in `ns`, printed under `title` and returned.
pub fn ipvsadm(ns: &Ns, title: &str) -> String {
    let out = ns.exec_ok(&["ipvsadm", "-Ln"]);
    println!("== IPVS table: {title}\n{out}");
    out
}

/// The IPVS table of one netns, over generic netlink (the socket stays in the netns it
/// was opened in, whichever thread uses it).
pub struct Table {
    h: Ipvs,
}

impl Table {
    pub fn open(ns: &Ns) -> Table {
        let h = ns.run_in(|| Ipvs::open().expect("the IPVS family (modprobe ip_vs)"));
        Table { h }
    }

    /// Whether the virtual service exists.
    pub fn has(&mut self, key: &ServiceKey) -> bool {
        self.h
            .services()
            .expect("IPVS service dump")
            .iter()
            .any(|s| s.key == *key)
    }

    /// The real servers of `key`: IP -> (port, weight); empty if the service is absent.
    pub fn servers(&mut self, key: &ServiceKey) -> BTreeMap<IpAddr, (u16, u32)> {
        if !self.has(key) {
            return BTreeMap::new();
        }
        self.h
            .dests(key)
            .expect("IPVS dest dump")
            .into_iter()
            .map(|d| (d.dest.key.addr, (d.dest.key.port, d.dest.weight)))
            .collect()
    }

    /// How many real servers all services have.
    pub fn total_dests(&mut self) -> usize {
        let keys: Vec<ServiceKey> = self
            .h
            .services()
            .expect("IPVS service dump")
            .iter()
            .map(|s| s.key)
            .collect();
        keys.iter()
            .map(|k| self.h.dests(k).expect("IPVS dest dump").len())
            .sum()
    }

    /// Deletes the virtual service (a director's table wiped while it is down).
    pub fn delete(&mut self, key: &ServiceKey) {
        self.h.del_service(key).expect("IPVS DEL_SERVICE");
    }
}

/// How a [`Director`] is configured.
#[derive(Debug, Clone)]
pub struct DirectorConfig {
    /// Where the real-server API listens (inside the director netns).
    pub listen: SocketAddr,
    pub marathon_url: String,
    pub vip: String,
    pub app: String,
    pub reconcile_secs: u64,
}

/// The real `berth-agent lvs` in a netns, its config and log in a temp dir; killed on
/// drop, stopped by SIGTERM with [`Director::stop`].
pub struct Director {
    child: Option<ChildGuard>,
    dir: tempfile::TempDir,
    ns: String,
}

impl Director {
    pub fn start(ns: &Ns, binary: &std::path::Path, cfg: &DirectorConfig) -> Director {
        Director::start_with(ns, binary, cfg, "")
    }

    /// [`Director::start`] with more of the config file appended (other `[[service]]`s).
    pub fn start_with(
        ns: &Ns,
        binary: &std::path::Path,
        cfg: &DirectorConfig,
        extra: &str,
    ) -> Director {
        let dir = tempfile::Builder::new()
            .prefix("berth-lvs-director-")
            .tempdir()
            .expect("tempdir");
        std::fs::write(
            dir.path().join("lvs.toml"),
            format!(
                "listen = \"{}\"\n[marathon]\nurl = \"{}\"\nretry_min_ms = 50\n\
                 reconcile_secs = {}\n[[service]]\nvip = \"{}\"\nforward = \"nat\"\n\
                 app = \"{}\"\nweight = 1\n{extra}",
                cfg.listen, cfg.marathon_url, cfg.reconcile_secs, cfg.vip, cfg.app
            ),
        )
        .expect("lvs.toml");
        let mut d = Director {
            child: None,
            dir,
            ns: ns.name().to_string(),
        };
        d.spawn(binary, cfg.listen);
        d
    }

    fn spawn(&mut self, binary: &std::path::Path, listen: SocketAddr) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("director log");
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns])
            .arg(binary)
            .arg("lvs")
            .arg("--config")
            .arg(self.dir.path().join("lvs.toml"))
            .env("BERTH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        self.child = Some(ChildGuard::spawn(c, "berth-agent lvs"));
        let want = format!("lvs: API on {listen}");
        // Generous: a debug build read from the VM's 9p root under emulation.
        let end = Instant::now() + Duration::from_secs(120);
        while !self.log().contains(&want) {
            assert!(
                Instant::now() < end,
                "berth-agent lvs did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait (the IPVS table stays as it is).
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            c.terminate();
        }
    }

    /// Starts it again with the same config (after [`Director::stop`]).
    pub fn restart(&mut self, binary: &std::path::Path, listen: SocketAddr) {
        self.stop();
        self.spawn(binary, listen);
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("director.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

/// One HTTP/1.0 GET (a new TCP connection) from the calling thread's netns: the body of a
/// 200 answer, or what went wrong.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: vip\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("read: {e} (after {out:?})"))?;
    let first = out.lines().next().unwrap_or_default();
    if !first.contains(" 200 ") {
        return Err(format!("answer: {first:?}"));
    }
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// Connections the kernel scheduled to each real server (`ipvsadm -Ln --stats`, the
/// `Conns` column), over all services of `ns`.
pub fn conns(ns: &Ns) -> BTreeMap<IpAddr, u64> {
    parse_conns(&ns.exec_ok(&["ipvsadm", "-Ln", "--stats"]))
}

fn parse_conns(text: &str) -> BTreeMap<IpAddr, u64> {
    let mut by = BTreeMap::new();
    for l in text.lines() {
        let mut w = l.split_whitespace();
        if w.next() != Some("->") {
            continue;
        }
        let (Some(Ok(rs)), Some(Ok(n))) = (
            w.next().map(str::parse::<SocketAddr>),
            w.next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        *by.entry(rs.ip()).or_insert(0) += n;
    }
    by
}

#[cfg(test)]
mod tests {
    #[test]
    fn conns_from_ipvsadm_stats() {
        let t = "IP Virtual Server version 1.2.1 (size=4096)\n\
                 Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n\
                 \x20 -> RemoteAddress:Port\n\
                 TCP  10.88.0.100:80                     30      180      120    11502    14760\n\
                 \x20 -> 10.77.0.103:8080                   10       60       40     3834     4920\n\
                 \x20 -> 10.77.0.149:8080                   20      120       80     7668     9840\n";
        let c = super::parse_conns(t);
        assert_eq!(c.len(), 2);
        assert_eq!(c[&"10.77.0.149".parse().unwrap()], 20);
    }
}
