//! netcfg benchmark, in the lab (run as root):
//!
//!   cargo bench -p berth-tests --bench netcfg
//!
//! 1. Time to give a fresh netns a macvlan + DHCP address + egress and ingress tc limits:
//!    berth-netcfg (netlink, in-process DHCP) vs the classic pipework way (a shell script
//!    running `ip`, `busybox udhcpc` and `tc`). Median of N runs each; ratio pipework/berth.
//! 2. TCP request/response latency and bulk throughput container -> LAN over macvlan vs
//!    over veth + bridge + NAT (iptables MASQUERADE). Ratios NAT/macvlan.
//! 3. Achieved rate vs configured limit over 10 s (iperf3, each direction, receiver side),
//!    and the overshoot in the first second.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_netcfg::conn;
use berth_netcfg::dhcp::{Client, ClientConfig};
use berth_netcfg::link::macvlan::{create_macvlan, MacvlanSpec};
use berth_netcfg::link::teardown::teardown_container;
use berth_netcfg::names::{IfName, NetnsName};
use berth_netcfg::netns::{self, Netns, NETNS_RUN_DIR};
use berth_netcfg::tc::shape::{self, Limits};
use berth_netcfg::tc::tbf::Tbf;
use berth_tests::lab::{require_root, unique, DhcpConfig, Lab, Ns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RUNS: usize = 10;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn limits(mtu: u32) -> Limits {
    Limits {
        egress: Some(Tbf::new("50mbit".parse().unwrap(), None, mtu).unwrap()),
        ingress: Some(Tbf::new("50mbit".parse().unwrap(), None, mtu).unwrap()),
    }
}

async fn berth_setup(lab: &Lab, host: &Netns, i: usize) -> f64 {
    let task = unique(&format!("bench.{i}."));
    let name = NetnsName::for_task(&task).unwrap();
    let run_dir = Path::new(NETNS_RUN_DIR);
    let t0 = Instant::now();
    let ns = netns::create(run_dir, &name).await.unwrap();
    let spec = MacvlanSpec::new(IfName::new(&lab.parent).unwrap(), &task);
    let cns = ns.try_clone().unwrap();
    let info = netns::run_in(host, move || async move {
        let h = conn::connect().unwrap();
        create_macvlan(&h, &cns, &spec).await
    })
    .await
    .unwrap()
    .unwrap();
    let id = task.clone();
    netns::run_in(&ns, move || async move {
        let eth0 = IfName::new("eth0").unwrap();
        let mut cfg = ClientConfig::new(eth0.clone(), &id);
        cfg.retransmit = Duration::from_secs(1);
        let mut c = Client::new(cfg).await.unwrap();
        c.acquire(Duration::from_secs(20)).await.unwrap();
        let h = conn::connect().unwrap();
        shape::apply(&h, &eth0, &limits(info.mtu)).await.unwrap();
    })
    .await
    .unwrap();
    let dt = t0.elapsed().as_secs_f64();
    drop(ns);
    teardown_container(run_dir, &name).await.unwrap();
    dt
}

const PIPEWORK: &str = r#"#!/bin/sh
# The classic pipework way: ip + busybox udhcpc + tc. $1 = netns, $2 = host netns, $3 = parent
set -e
NS=$1; HOST=$2; PARENT=$3; TMP=mv$$
ip netns add $NS
ip -n $HOST link add link $PARENT name $TMP type macvlan mode bridge
ip -n $HOST link set $TMP netns $NS
ip -n $NS link set $TMP name eth0
ip -n $NS link set eth0 up
ip netns exec $NS busybox udhcpc -i eth0 -n -q -f -t 20 -T 1 -s "$SCRIPT" >/dev/null 2>&1
ip netns exec $NS tc qdisc add dev eth0 root tbf rate 50mbit burst 62500 latency 50ms
ip -n $NS link add ifb0 type ifb
ip -n $NS link set ifb0 up
ip netns exec $NS tc qdisc add dev ifb0 root tbf rate 50mbit burst 62500 latency 50ms
ip netns exec $NS tc qdisc add dev eth0 ingress
ip netns exec $NS tc filter add dev eth0 parent ffff: protocol all u32 match u32 0 0 action mirred egress redirect dev ifb0
"#;

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
  bound|renew)
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    ;;
esac
exit 0
"#;

fn pipework_setup(lab: &Lab, dir: &Path, i: usize) -> f64 {
    let ns = unique(&format!("bpw{i}-"));
    let t0 = Instant::now();
    let st = std::process::Command::new("sh")
        .arg(dir.join("pipework.sh"))
        .args([&ns, lab.host.name(), &lab.parent])
        .env("SCRIPT", dir.join("udhcpc.sh"))
        .status()
        .unwrap();
    let dt = t0.elapsed().as_secs_f64();
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &ns])
        .status();
    assert!(st.success(), "pipework script failed");
    dt
}

async fn bench_setup() {
    let lab = Lab::with_dhcp(DhcpConfig {
        no_ping: true,
        ..DhcpConfig::default()
    });
    let host = Netns::open(&lab.host.path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pipework.sh"), PIPEWORK).unwrap();
    std::fs::write(dir.path().join("udhcpc.sh"), UDHCPC_SCRIPT).unwrap();
    berth_tests::lab::run(&[
        "chmod",
        "+x",
        dir.path().join("udhcpc.sh").to_str().unwrap(),
    ]);
    let mut b = Vec::new();
    let mut p = Vec::new();
    for i in 0..RUNS {
        b.push(berth_setup(&lab, &host, i).await);
        p.push(pipework_setup(&lab, dir.path(), i));
    }
    let (mb, mp) = (median(b), median(p));
    println!("(1) netns + macvlan + DHCP + tc both ways, median of {RUNS}:");
    println!("    berth-netcfg        {:8.1} ms", mb * 1e3);
    println!(
        "    pipework (ip/udhcpc/tc) {:8.1} ms   ratio pipework/berth = {:.2}",
        mp * 1e3,
        mp / mb
    );
}

/// TCP echo server on `addr:port` inside `ns` until the returned guard drops.
fn echo_server(ns: &Ns, addr: Ipv4Addr, port: u16) -> tokio::sync::oneshot::Sender<()> {
    let n = Netns::open(&ns.path()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    tokio::spawn(async move {
        netns::run_in(&n, move || async move {
            let l = tokio::net::TcpListener::bind((addr, port)).await.unwrap();
            ready_tx.send(()).unwrap();
            let serve = async {
                loop {
                    let (mut s, _) = l.accept().await.unwrap();
                    s.set_nodelay(true).unwrap();
                    tokio::spawn(async move {
                        let mut b = [0u8; 64];
                        while let Ok(n) = s.read(&mut b).await {
                            if n == 0 || s.write_all(&b[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            };
            tokio::select! { _ = rx => {}, _ = serve => {} }
        })
        .await
        .unwrap();
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    tx
}

/// Median and p99 round trip of 1-byte request/response, in microseconds.
async fn rr_latency(ns: &Ns, dst: Ipv4Addr, port: u16) -> (f64, f64) {
    let n = Netns::open(&ns.path()).unwrap();
    netns::run_in(&n, move || async move {
        let mut s = tokio::net::TcpStream::connect((dst, port)).await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut b = [0u8; 1];
        let mut v = Vec::with_capacity(5000);
        for i in 0..5200 {
            let t = Instant::now();
            s.write_all(&[1]).await.unwrap();
            s.read_exact(&mut b).await.unwrap();
            if i >= 200 {
                v.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (v[v.len() / 2], v[v.len() * 99 / 100])
    })
    .await
    .unwrap()
}

fn iperf(ns: &Ns, dst: &str, secs: u32, reverse: bool) -> serde_json::Value {
    let s = secs.to_string();
    let mut argv = vec!["iperf3", "-c", dst, "-t", &s, "-J", "--get-server-output"];
    if reverse {
        argv.push("-R");
    }
    serde_json::from_str(&ns.exec_ok(&argv)).unwrap()
}

async fn bench_macvlan_vs_nat() {
    let lab = Lab::new();
    // macvlan container
    let mv = lab.container("mv");
    let host = Netns::open(&lab.host.path()).unwrap();
    let cns = Netns::open(&mv.path()).unwrap();
    let spec = MacvlanSpec::new(IfName::new(&lab.parent).unwrap(), "bench.mv");
    netns::run_in(&host, move || async move {
        let h = conn::connect().unwrap();
        create_macvlan(&h, &cns, &spec).await
    })
    .await
    .unwrap()
    .unwrap();
    mv.ip(&["addr", "add", "10.77.0.70/24", "dev", "eth0"]);
    // veth + bridge + NAT container: the host gets an address on its NIC and masquerades.
    let nat = lab.container("nat");
    let h = &lab.host;
    h.ip(&["addr", "add", "10.77.0.2/24", "dev", "nic0"]);
    h.ip(&["link", "add", "natbr0", "type", "bridge"]);
    h.ip(&["addr", "add", "172.31.99.1/24", "dev", "natbr0"]);
    h.ip(&["link", "set", "natbr0", "up"]);
    h.ip(&[
        "link",
        "add",
        "vh0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        nat.name(),
    ]);
    h.ip(&["link", "set", "vh0", "master", "natbr0", "up"]);
    nat.ip(&["addr", "add", "172.31.99.2/24", "dev", "eth0"]);
    nat.ip(&["link", "set", "eth0", "up"]);
    nat.ip(&["link", "set", "lo", "up"]);
    nat.ip(&["route", "add", "default", "via", "172.31.99.1"]);
    h.exec_ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    h.exec_ok(&[
        "iptables",
        "-w",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-s",
        "172.31.99.0/24",
        "-o",
        "nic0",
        "-j",
        "MASQUERADE",
    ]);

    let gw = Ipv4Addr::new(10, 77, 0, 1);
    let _stop = echo_server(&lab.lan, gw, 7007);
    let _iperf = lab.lan.spawn(&["iperf3", "-s", "-B", "10.77.0.1"]);
    std::thread::sleep(Duration::from_millis(300));
    // Three alternating rounds, medians: the machine is shared, so interleave to spread
    // the noise over both paths.
    let bps = |v: serde_json::Value| {
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap()
    };
    let (mut m50, mut m99, mut n50, mut n99, mut mt, mut nt) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..3 {
        let (a, b) = rr_latency(&mv, gw, 7007).await;
        m50.push(a);
        m99.push(b);
        let (a, b) = rr_latency(&nat, gw, 7007).await;
        n50.push(a);
        n99.push(b);
        mt.push(bps(iperf(&mv, "10.77.0.1", 3, false)));
        nt.push(bps(iperf(&nat, "10.77.0.1", 3, false)));
    }
    let (m50, m99, n50, n99, mt, nt) = (
        median(m50),
        median(m99),
        median(n50),
        median(n99),
        median(mt),
        median(nt),
    );
    println!(
        "(2) container -> LAN, median of 3 rounds of 5000 1-byte TCP round trips and iperf3 3 s:"
    );
    println!(
        "    macvlan      p50 {m50:7.1} us  p99 {m99:7.1} us  throughput {:8.0} Mbit/s",
        mt / 1e6
    );
    println!(
        "    veth+NAT     p50 {n50:7.1} us  p99 {n99:7.1} us  throughput {:8.0} Mbit/s",
        nt / 1e6
    );
    println!(
        "    ratio NAT/macvlan: latency p50 {:.2}, p99 {:.2}; throughput {:.2}",
        n50 / m50,
        n99 / m99,
        nt / mt
    );
}

async fn bench_limit_accuracy() {
    let lab = Lab::new();
    let c = lab.container("acc");
    let host = Netns::open(&lab.host.path()).unwrap();
    let cns = Netns::open(&c.path()).unwrap();
    let spec = MacvlanSpec::new(IfName::new(&lab.parent).unwrap(), "bench.acc");
    let info = netns::run_in(&host, move || async move {
        let h = conn::connect().unwrap();
        create_macvlan(&h, &cns, &spec).await
    })
    .await
    .unwrap()
    .unwrap();
    c.ip(&["addr", "add", "10.77.0.80/24", "dev", "eth0"]);
    let l = limits(info.mtu);
    let n = Netns::open(&c.path()).unwrap();
    netns::run_in(&n, move || async move {
        let h = conn::connect().unwrap();
        shape::apply(&h, &IfName::new("eth0").unwrap(), &l)
            .await
            .unwrap()
    })
    .await
    .unwrap();
    let _iperf = lab.lan.spawn(&["iperf3", "-s", "-J", "-B", "10.77.0.1"]);
    std::thread::sleep(Duration::from_millis(300));
    let limit = 50e6;
    println!("(3) achieved rate vs configured limit 50 Mbit/s (default burst), iperf3 10 s:");
    for (dir, rev) in [("egress ", false), ("ingress", true)] {
        let v = iperf(&c, "10.77.0.1", 10, rev);
        let total = v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap();
        // The receiver's view: for egress that is the server (in the LAN), for ingress
        // (-R) the client; the sender's view also counts bytes still in socket buffers.
        let intervals = if rev {
            &v["intervals"]
        } else {
            &v["server_output_json"]["intervals"]
        };
        let first = intervals[0]["sum"]["bits_per_second"].as_f64().unwrap();
        println!(
            "    {dir}  10 s avg {:6.2} Mbit/s (ratio {:.3})  first second {:6.2} Mbit/s (overshoot {:+.1} %)",
            total / 1e6,
            total / limit,
            first / 1e6,
            (first / limit - 1.0) * 100.0
        );
    }
}

fn main() {
    require_root();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        bench_setup().await;
        bench_macvlan_vs_nat().await;
        bench_limit_accuracy().await;
    });
}
