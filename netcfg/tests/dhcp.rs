//! Privileged: the DHCP client against a real dnsmasq in the lab.

mod common;

use std::time::Duration;

use berth_netcfg::dhcp::{ClientConfig, DhcpError, Phase};
use berth_netcfg::names::IfName;
use berth_tests::lab::{require_root, DhcpConfig, Lab};

fn cfg(identity: &str, dir: &std::path::Path) -> ClientConfig {
    let mut c = ClientConfig::new(IfName::new("eth0").unwrap(), identity);
    c.hostname = Some(identity.replace('.', "-"));
    c.lease_file = Some(dir.join("lease.json"));
    c.resolv_conf = Some(dir.join("resolv.conf"));
    c
}

fn in_pool(addr: &str) -> bool {
    let a: std::net::Ipv4Addr = addr.split('/').next().unwrap().parse().unwrap();
    let o = a.octets();
    o[..3] == [10, 77, 0] && (100..=199).contains(&o[3])
}

#[tokio::test]
async fn lease_applied_renewed_unicast_and_released() {
    require_root();
    let lab = Lab::new();
    let c = lab.container("d1");
    common::macvlan_into(&lab, &c, "app.one").await;
    let dir = tempfile::tempdir().unwrap();
    let (mut client, lease) =
        common::start_client(&c, cfg("app.one", dir.path()), Duration::from_secs(20))
            .await
            .expect("lease");

    let addrs = c.addrs("eth0");
    assert_eq!(addrs, vec![format!("{}/24", lease.address)]);
    assert!(in_pool(&addrs[0]), "{addrs:?}");
    assert!(
        c.routes().contains("default via 10.77.0.1 dev eth0"),
        "{}",
        c.routes()
    );
    let resolv = std::fs::read_to_string(dir.path().join("resolv.conf")).unwrap();
    assert!(
        resolv.contains("nameserver 10.77.0.1") && resolv.contains("search lab.test"),
        "{resolv}"
    );
    assert!(dir.path().join("lease.json").exists());
    let log = lab.dhcp.log();
    assert!(
        log.contains("DHCPDISCOVER(br0)") && log.contains("DHCPACK(br0)"),
        "{log}"
    );
    assert!(
        log.contains("app-one"),
        "hostname option 12 reached the server: {log}"
    );

    // Renewal at T1 (4 s): unicast to the server, seen by it, lease kept.
    let unicast_before = lab.unicast_dhcp_packets();
    let requests = lab.dhcp.count("DHCPREQUEST(br0)");
    assert!(
        client
            .wait(Duration::from_secs(15), |s| s.renewals >= 1)
            .await,
        "no renewal"
    );
    assert!(lab.dhcp.count("DHCPREQUEST(br0)") > requests);
    assert!(
        lab.unicast_dhcp_packets() > unicast_before,
        "renewal was not unicast to the server"
    );
    assert_eq!(client.status.borrow().phase, Phase::Bound);
    assert_eq!(c.addrs("eth0"), addrs);

    client.stop(true).await.expect("release");
    assert!(
        lab.dhcp
            .wait_for("DHCPRELEASE(br0)", 1, Duration::from_secs(5)),
        "{}",
        lab.dhcp.log()
    );
    assert!(c.addrs("eth0").is_empty());
    assert!(!dir.path().join("lease.json").exists());
}

#[tokio::test]
async fn same_address_after_restart_via_init_reboot() {
    require_root();
    let lab = Lab::new();
    let c = lab.container("d2");
    common::macvlan_into(&lab, &c, "app.two").await;
    let dir = tempfile::tempdir().unwrap();
    let (client, first) =
        common::start_client(&c, cfg("app.two", dir.path()), Duration::from_secs(20))
            .await
            .unwrap();
    client.stop(false).await.unwrap(); // crash: no RELEASE
    c.ip(&["addr", "flush", "dev", "eth0"]);
    let discovers = lab.dhcp.count("DHCPDISCOVER(br0)");
    let (client, second) =
        common::start_client(&c, cfg("app.two", dir.path()), Duration::from_secs(20))
            .await
            .unwrap();
    assert_eq!(second.address, first.address);
    assert_eq!(
        lab.dhcp.count("DHCPDISCOVER(br0)"),
        discovers,
        "INIT-REBOOT, not a new DISCOVER"
    );
    assert_eq!(c.addrs("eth0"), vec![format!("{}/24", first.address)]);
    client.stop(true).await.unwrap();
}

#[tokio::test]
async fn server_away_address_kept_then_rebind() {
    require_root();
    let mut lab = Lab::with_dhcp(DhcpConfig {
        t1: 2,
        t2: 4,
        ..DhcpConfig::default()
    });
    let c = lab.container("d3");
    common::macvlan_into(&lab, &c, "app.three").await;
    let dir = tempfile::tempdir().unwrap();
    let (mut client, lease) =
        common::start_client(&c, cfg("app.three", dir.path()), Duration::from_secs(20))
            .await
            .unwrap();
    lab.dhcp.stop();
    assert!(
        client
            .wait(Duration::from_secs(15), |s| s.phase == Phase::Rebinding)
            .await,
        "never rebinding"
    );
    assert_eq!(
        c.addrs("eth0"),
        vec![format!("{}/24", lease.address)],
        "address kept until expiry"
    );
    let renewals = client.status.borrow().renewals;
    lab.dhcp.restart();
    assert!(
        client
            .wait(Duration::from_secs(20), |s| s.renewals > renewals
                && s.phase == Phase::Bound)
            .await,
        "no rebind after the server came back: {}",
        lab.dhcp.log()
    );
    assert!(lab.dhcp.count("DHCPACK(br0)") >= 1);
    assert_eq!(
        client.status.borrow().lease.as_ref().unwrap().address,
        lease.address
    );
    client.stop(true).await.unwrap();
}

#[tokio::test]
async fn two_containers_classless_routes_mtu_and_reachability() {
    require_root();
    let lab = Lab::with_dhcp(DhcpConfig {
        extra_options: vec![
            "option:domain-name,lab.test".into(),
            "option:classless-static-route,10.99.0.0/16,10.77.0.1,0.0.0.0/0,10.77.0.1".into(),
            "option:mtu,1400".into(),
        ],
        ..DhcpConfig::default()
    });
    let a = lab.container("a");
    let b = lab.container("b");
    common::macvlan_into(&lab, &a, "app.a").await;
    common::macvlan_into(&lab, &b, "app.b").await;
    let da = tempfile::tempdir().unwrap();
    let db = tempfile::tempdir().unwrap();
    let (ca, la) = common::start_client(&a, cfg("app.a", da.path()), Duration::from_secs(20))
        .await
        .unwrap();
    let (cb, lb) = common::start_client(&b, cfg("app.b", db.path()), Duration::from_secs(20))
        .await
        .unwrap();
    assert_ne!(la.address, lb.address);
    let routes = a.routes();
    assert!(
        routes.contains("10.99.0.0/16 via 10.77.0.1 dev eth0"),
        "{routes}"
    );
    assert!(
        routes.contains("default via 10.77.0.1 dev eth0"),
        "{routes}"
    );
    let link = a.exec_ok(&["ip", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1400"), "{link}");
    a.exec_ok(&["busybox", "ping", "-c1", "-W2", &lb.address.to_string()]);
    b.exec_ok(&["busybox", "ping", "-c1", "-W2", &la.address.to_string()]);
    a.exec_ok(&["busybox", "ping", "-c1", "-W2", "10.77.0.1"]);
    ca.stop(true).await.unwrap();
    cb.stop(true).await.unwrap();
}

#[tokio::test]
async fn timeout_names_the_interface_and_what_was_tried() {
    require_root();
    let mut lab = Lab::new();
    lab.dhcp.stop();
    let c = lab.container("d5");
    common::macvlan_into(&lab, &c, "app.five").await;
    let dir = tempfile::tempdir().unwrap();
    let err = common::start_client(&c, cfg("app.five", dir.path()), Duration::from_secs(3))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, DhcpError::Timeout { .. }));
    let msg = err.to_string();
    assert!(msg.contains("eth0") && msg.contains("DISCOVER"), "{msg}");
}

#[tokio::test]
async fn nak_for_a_stale_lease_falls_back_to_discover() {
    require_root();
    let lab = Lab::new();
    let c = lab.container("d6");
    common::macvlan_into(&lab, &c, "app.six").await;
    let dir = tempfile::tempdir().unwrap();
    // A lease file from "another network": the server must refuse it.
    let stale = berth_netcfg::dhcp::Lease {
        address: "10.77.0.250".parse().unwrap(),
        prefix_len: 24,
        server_id: "10.77.0.1".parse().unwrap(),
        routers: vec![],
        routes: vec![],
        dns: vec![],
        domain: None,
        mtu: None,
        lease_secs: 600,
        t1_secs: 300,
        t2_secs: 500,
        acquired_at: berth_netcfg::dhcp::lease::now_secs(),
    };
    stale.save(&dir.path().join("lease.json")).unwrap();
    let (client, lease) =
        common::start_client(&c, cfg("app.six", dir.path()), Duration::from_secs(20))
            .await
            .unwrap();
    assert!(lab.dhcp.count("DHCPNAK(br0)") >= 1, "{}", lab.dhcp.log());
    assert!(in_pool(&lease.address.to_string()), "{lease:?}");
    assert_eq!(c.addrs("eth0"), vec![format!("{}/24", lease.address)]);
    client.stop(true).await.unwrap();
}

/// dnsmasq's shortest lease is 120 s, so this test takes about two minutes.
#[tokio::test]
async fn expiry_deconfigures_and_starts_over() {
    require_root();
    let mut lab = Lab::with_dhcp(DhcpConfig {
        t1: 2,
        t2: 3,
        ..DhcpConfig::default()
    });
    let c = lab.container("d7");
    common::macvlan_into(&lab, &c, "app.seven").await;
    let dir = tempfile::tempdir().unwrap();
    let (mut client, lease) =
        common::start_client(&c, cfg("app.seven", dir.path()), Duration::from_secs(20))
            .await
            .unwrap();
    assert_eq!(lease.lease_secs, 120);
    lab.dhcp.stop();
    assert!(
        client
            .wait(Duration::from_secs(150), |s| s.phase == Phase::Init
                && s.lease.is_none())
            .await,
        "lease never expired"
    );
    assert!(c.addrs("eth0").is_empty(), "address removed at expiry");
    assert!(!dir.path().join("lease.json").exists());
    lab.dhcp.restart();
    assert!(
        client
            .wait(Duration::from_secs(40), |s| s.phase == Phase::Bound)
            .await,
        "not bound again after the server returned"
    );
    assert_eq!(c.addrs("eth0").len(), 1);
    client.stop(true).await.unwrap();
}
