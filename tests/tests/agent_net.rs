//! The network counters `berth-agent serve` exports for a networked task (macvlan eth0
//! with a DHCP address from the lab's dnsmasq), read in the task's netns over netlink:
//! the container sends 10 MiB to the LAN and its transmit counter grows by that plus the
//! TCP/IP headers (within 10 %), and equals the kernel's own counter (within 1 %).

use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::agent::{value, AgentServe};
use berth_tests::lab;
use berth_tests::mesos::harness::start_in;
use berth_tests::mesos::harness::volumes::runc_exec;
use berth_tests::mesos::harness::Lab;
use serde_json::Value;

const T: Duration = Duration::from_secs(30);
const SENT: f64 = 10.0 * 1048576.0;

#[test]
fn ten_mib_sent_by_a_networked_task_show_in_its_transmit_counter() {
    lab::require_root();
    let net = lab::Lab::new();
    let lab = Lab::new("agent-net");
    let tid = lab.task_id("net");
    let sink = lab.dir.path().join("received");
    let _rx = net.lan.spawn(&[
        "socat",
        "-u",
        "TCP-LISTEN:5001,reuseaddr",
        &format!("CREATE:{}", sink.display()),
    ]);
    let mut spec = lab.spec(
        &tid,
        Some("while [ ! -e /tmp/go ]; do sleep 0.1; done; dd if=/dev/zero bs=1M count=10 2>/dev/null | nc 10.77.0.1 5001; exec sleep 1000"),
    );
    spec.env
        .push(("BERTH_EXECUTOR_NET_PARENT".into(), net.parent.clone()));
    let (d, mut exec) = start_in(&net.host, spec, lab.task(&tid));
    d.wait_state(&tid, "TASK_RUNNING", T);

    let agent = AgentServe::start(lab.dir.path(), &lab.state, "", "");
    let before = agent.wait_value("berth_network_transmit_bytes_total", &tid, T);
    let end = Instant::now() + T;
    let (_, err) = runc_exec(&lab, "touch /tmp/go");
    assert!(err.is_empty(), "{err}");
    while std::fs::metadata(&sink).map_or(0, |m| m.len()) < SENT as u64 {
        assert!(
            Instant::now() < end,
            "the LAN received {:?} bytes; stderr {}",
            std::fs::metadata(&sink).map(|m| m.len()),
            lab.sandbox_file(&tid, "stderr")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = agent.scrape();
    let after = value(&text, "berth_network_transmit_bytes_total", &tid).expect("tx counter");
    let sent = after - before;
    eprintln!(
        "eth0 tx grew by {sent} bytes for {SENT} bytes of payload ({:+.2} %)",
        (sent / SENT - 1.0) * 100.0
    );
    // The payload plus TCP/IP/Ethernet headers (66 of every 1514 bytes: 4.6 %) and the
    // odd retransmission: within 10 % of the payload ...
    assert!(
        (SENT..=SENT * 1.10).contains(&sent),
        "tx grew {sent}, not {SENT} + headers"
    );
    // ... and the exported counter is the kernel's own: within 1 % of what `ip -s` reads
    // a moment later (only ACK-sized traffic in between).
    let ns = berth_netcfg::names::NetnsName::for_task(&tid).expect("netns name");
    let out = Command::new("ip")
        .args(["-n", ns.as_str(), "-j", "-s", "link", "show", "eth0"])
        .output()
        .expect("ip -s link");
    let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j");
    let kernel = v[0]["stats64"]["tx"]["bytes"].as_f64().expect("tx bytes");
    assert!(
        (kernel - after).abs() <= kernel * 0.01,
        "exported {after}, kernel {kernel}"
    );
    assert!(
        value(&text, "berth_network_receive_packets_total", &tid).unwrap_or(0.0) > 0.0,
        "{text}"
    );

    d.kill(&tid, Some(Duration::from_secs(1)));
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    lab.assert_clean();
}
