//! Privileged: supervisor mode with `network: {dhcp: eth0}` against a real dnsmasq in
//! the berth-tests lab. berth-init is PID 1 of a new PID namespace inside a container
//! netns holding a macvlan eth0 on the lab's NIC.

mod sup_common;

use std::time::{Duration, Instant};

use berth_tests::lab::{unique, Lab, Ns};
use sup_common::{assert_root, Pid1};

/// Bits of CAP_NET_ADMIN (12) and CAP_NET_RAW (13).
const NET_CAPS: u64 = (1 << 12) | (1 << 13);

/// A macvlan named eth0 (bridge mode, parent = the lab's NIC) in `c`, up.
fn macvlan_eth0(lab: &Lab, c: &Ns) {
    macvlan_eth0_down(lab, c);
    c.ip(&["link", "set", "eth0", "up"]);
    c.ip(&["link", "set", "lo", "up"]);
}

/// The same, left down with lo, as some runtimes hand it over.
fn macvlan_eth0_down(lab: &Lab, c: &Ns) {
    let tmp = unique("mv");
    lab.host.ip(&[
        "link",
        "add",
        "link",
        &lab.parent,
        "name",
        &tmp,
        "type",
        "macvlan",
        "mode",
        "bridge",
    ]);
    lab.host.ip(&["link", "set", &tmp, "netns", c.name()]);
    c.ip(&["link", "set", &tmp, "name", "eth0"]);
}

/// Whether `dev` in `c` is administratively up.
fn is_up(c: &Ns, dev: &str) -> bool {
    let out = c.ip(&["-o", "link", "show", "dev", dev]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let flags = text
        .split('<')
        .nth(1)
        .and_then(|f| f.split('>').next())
        .unwrap_or("");
    flags.split(',').any(|f| f == "UP")
}

#[test]
fn interfaces_left_down_are_brought_up() {
    assert_root();
    let lab = Lab::new();
    let c = lab.container("d");
    macvlan_eth0_down(&lab, &c);
    assert!(!is_up(&c, "eth0") && !is_up(&c, "lo"));
    let p = Pid1::start_in(Some(c.name()), SPEC, &[], &[]);
    let st = p.wait_status("app running", Duration::from_secs(25), |s| {
        s["services"][0]["state"] == "running"
    });
    assert!(
        st["network"]["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("10.77.0.")),
        "{st}"
    );
    assert!(is_up(&c, "eth0"), "eth0 still down");
    assert!(is_up(&c, "lo"), "lo still down");
}

/// The hex capability field `name` (e.g. `CapBnd`) of a /proc status text.
fn cap_field(status: &str, name: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {status}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

fn wait_file(path: &std::path::Path, p: &Pid1) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if s.ends_with('\n') {
                return s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never written\nlog:\n{}",
            path.display(),
            p.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SPEC: &str = r#"
network:
  dhcp: eth0
  dhcp_timeout: 20s
  resolv_conf: @DIR@/resolv.conf
  hostname: berth-dhcp-app
services:
  app:
    command: [/bin/sh, -c, 'ip -4 -o addr show dev eth0 > @DIR@/addr.tmp; cp @DIR@/resolv.conf @DIR@/seen-resolv; grep ^Cap /proc/self/status > @DIR@/caps.tmp; mv @DIR@/caps.tmp @DIR@/caps; mv @DIR@/addr.tmp @DIR@/addr; exec sleep 1000']
"#;

#[test]
fn lease_before_services_renewed_shown_and_released() {
    assert_root();
    let lab = Lab::new();
    let c = lab.container("i");
    macvlan_eth0(&lab, &c);
    let task = unique("app.task-");
    let mut p = Pid1::start_in(Some(c.name()), SPEC, &[("BERTH_TASK_ID", &task)], &[]);

    // The status shows the lease (the executor's contract: network.iface/.address).
    let st = p.wait_status("app running", Duration::from_secs(25), |s| {
        s["services"][0]["state"] == "running"
    });
    let net = &st["network"];
    assert_eq!(net["iface"], "eth0", "{st}");
    let address = net["address"].as_str().unwrap_or_else(|| panic!("{st}"));
    assert!(address.starts_with("10.77.0."), "{st}");
    assert_eq!(net["prefix_len"], 24, "{st}");
    assert_eq!(net["gateway"], "10.77.0.1", "{st}");
    assert_eq!(net["server"], "10.77.0.1", "{st}");
    assert_eq!(net["lease_secs"], 120, "{st}");
    assert!(net["expires_in_secs"].as_u64().unwrap() <= 120, "{st}");
    assert!(
        ["bound", "renewing"].contains(&net["state"].as_str().unwrap()),
        "{st}"
    );
    assert!(
        p.path("dhcp-eth0.lease").exists(),
        "lease file next to the socket"
    );

    // The service started with the address on eth0 and resolv.conf written.
    let addr = wait_file(&p.path("addr"), &p);
    assert!(addr.contains(&format!("inet {address}/24")), "{addr}");
    let resolv = std::fs::read_to_string(p.path("seen-resolv")).unwrap();
    assert!(resolv.contains("nameserver 10.77.0.1"), "{resolv}");
    assert!(
        lab.dhcp.log().contains("berth-dhcp-app"),
        "hostname option 12"
    );

    // The service has neither NET_ADMIN nor NET_RAW, in any set.
    let caps = std::fs::read_to_string(p.path("caps")).unwrap();
    for set in ["CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(cap_field(&caps, set) & NET_CAPS, 0, "{set} in {caps}");
    }
    assert_ne!(
        cap_field(&caps, "CapBnd"),
        0,
        "other capabilities stay: {caps}"
    );
    // init's DHCP thread keeps them.
    let dhcp_thread = std::fs::read_dir(format!("/proc/{}/task", p.pid))
        .unwrap()
        .flatten()
        .map(|t| std::fs::read_to_string(t.path().join("status")).unwrap_or_default())
        .find(|s| s.starts_with("Name:\tberth-dhcp"))
        .expect("a berth-dhcp thread");
    assert_eq!(cap_field(&dhcp_thread, "CapEff") & NET_CAPS, NET_CAPS);

    // Renewal at T1 (4 s), unicast, seen by the server; the status counts it.
    let requests = lab.dhcp.count("DHCPREQUEST(br0)");
    let unicast = lab.unicast_dhcp_packets();
    let st = p.wait_status("a renewal", Duration::from_secs(15), |s| {
        s["network"]["renewals"].as_u64().unwrap_or(0) >= 1
    });
    assert_eq!(st["network"]["address"], address, "{st}");
    assert!(lab.dhcp.count("DHCPREQUEST(br0)") > requests);
    assert!(lab.unicast_dhcp_packets() > unicast, "renewal by unicast");

    // SIGTERM: the service stops, then the lease is released.
    p.signal(libc::SIGTERM);
    let code = p.wait_exit(Duration::from_secs(20));
    assert_eq!(code, 0, "{}", p.log());
    assert!(
        lab.dhcp.wait_for(
            &format!("DHCPRELEASE(br0) {address}"),
            1,
            Duration::from_secs(5)
        ),
        "no RELEASE: {}\ninit log:\n{}",
        lab.dhcp.log(),
        p.log()
    );
    assert!(
        !p.path("dhcp-eth0.lease").exists(),
        "released: lease file gone"
    );
}

#[test]
fn no_lease_within_the_timeout_exits_nonzero_naming_the_interface() {
    assert_root();
    // An interface with no DHCP server behind it (a veth whose peer nobody listens on;
    // this kernel has no dummy links).
    let c = Ns::new(&unique("bdhcp-none"));
    c.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ]);
    c.ip(&["link", "set", "eth0", "up"]);
    c.ip(&["link", "set", "peer0", "up"]);
    // BERTH_DHCP_IFACE wins over the spec's interface.
    let spec = "network:\n  dhcp: nothere0\n  dhcp_timeout: 2s\n  resolv_conf: @DIR@/resolv.conf\nservices:\n  app:\n    command: [/bin/touch, '@DIR@/started']\n";
    let started = Instant::now();
    let mut p = Pid1::start_in(Some(c.name()), spec, &[("BERTH_DHCP_IFACE", "eth0")], &[]);
    let code = p.wait_exit(Duration::from_secs(15));
    let log = p.log();
    assert_ne!(code, 0, "{log}");
    assert!(started.elapsed() >= Duration::from_secs(2), "{log}");
    assert!(
        log.contains("no DHCP lease on eth0 within 2 s") && log.contains("DISCOVER"),
        "{log}"
    );
    assert!(!p.path("started").exists(), "no service may start: {log}");
    assert!(!p.path("init.sock").exists(), "socket removed: {log}");
}

#[test]
fn services_lack_net_caps_even_without_network() {
    assert_root();
    let spec = "services:\n  app:\n    command: [/bin/sh, -c, 'grep ^Cap /proc/self/status > @DIR@/caps.tmp; mv @DIR@/caps.tmp @DIR@/caps; exec sleep 1000']\n";
    let mut p = Pid1::start(spec, &[]);
    let caps = wait_file(&p.path("caps"), &p);
    for set in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(cap_field(&caps, set) & NET_CAPS, 0, "{set} in {caps}");
    }
    let st = p.status();
    assert!(st["network"].is_null(), "{st}");
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(10)), 0, "{}", p.log());
}

#[test]
fn sigterm_while_waiting_for_a_lease_stops_promptly() {
    assert_root();
    let c = Ns::new(&unique("bdhcp-term"));
    c.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ]);
    c.ip(&["link", "set", "eth0", "up"]);
    c.ip(&["link", "set", "peer0", "up"]);
    let spec = "network:\n  dhcp: eth0\n  dhcp_timeout: 30s\n  resolv_conf: @DIR@/resolv.conf\nservices:\n  app:\n    command: [/bin/touch, '@DIR@/started']\n";
    let mut p = Pid1::start_in(Some(c.name()), spec, &[], &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.log().contains("acquiring a DHCP lease") {
        assert!(Instant::now() < deadline, "{}", p.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    p.signal(libc::SIGTERM);
    let code = p.wait_exit(Duration::from_secs(10));
    let log = p.log();
    assert_eq!(code, 0, "{log}");
    assert!(sent.elapsed() < Duration::from_secs(5), "{log}");
    assert!(
        log.contains("shutdown requested while waiting for a DHCP lease on eth0"),
        "{log}"
    );
    assert!(!p.path("started").exists(), "{log}");
}
