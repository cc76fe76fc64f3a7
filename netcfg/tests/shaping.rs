//! Privileged: iperf3 through the egress and ingress limits (real tbf, ifb, mirred).
//! Correctness bounds only (under limit + 10 %, above half the limit); how close the
//! rate gets is measured by the benchmark (tests/bench/netcfg.rs), not asserted here.

mod common;

use berth_netcfg::conn;
use berth_netcfg::names::IfName;
use berth_netcfg::netns::{self, Netns};
use berth_netcfg::tc::shape::{self, Limits};
use berth_netcfg::tc::tbf::Tbf;
use berth_tests::lab::{require_root, Lab, Ns};

fn iperf_bps(c: &Ns, reverse: bool) -> f64 {
    let mut argv = vec![
        "iperf3",
        "-c",
        "10.77.0.1",
        "-t",
        "4",
        "-J",
        "--connect-timeout",
        "3000",
    ];
    if reverse {
        argv.push("-R");
    }
    let out = c.exec_ok(&argv);
    let v: serde_json::Value = serde_json::from_str(&out).expect("iperf3 JSON");
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("bits_per_second")
}

#[tokio::test]
async fn iperf3_stays_within_each_limit() {
    require_root();
    let lab = Lab::new();
    let c = lab.container("bw");
    let info = common::macvlan_into(&lab, &c, "app.bw").await;
    c.ip(&["addr", "add", "10.77.0.60/24", "dev", "eth0"]);
    let _server = lab.lan.spawn(&["iperf3", "-s", "-B", "10.77.0.1"]);
    std::thread::sleep(std::time::Duration::from_millis(300));

    let egress = 20_000_000f64;
    let ingress = 10_000_000f64;
    let limits = Limits {
        egress: Some(Tbf::new("20mbit".parse().unwrap(), None, info.mtu).unwrap()),
        ingress: Some(Tbf::new("10mbit".parse().unwrap(), None, info.mtu).unwrap()),
    };
    let ns = Netns::open(&c.path()).unwrap();
    netns::run_in(&ns, move || async move {
        let h = conn::connect().unwrap();
        shape::apply(&h, &IfName::new("eth0").unwrap(), &limits).await
    })
    .await
    .unwrap()
    .expect("apply limits");

    let up = iperf_bps(&c, false);
    assert!(
        up < egress * 1.1 && up > egress / 2.0,
        "egress {up} bit/s vs limit {egress}"
    );
    let down = iperf_bps(&c, true);
    assert!(
        down < ingress * 1.1 && down > ingress / 2.0,
        "ingress {down} bit/s vs limit {ingress}"
    );
}
