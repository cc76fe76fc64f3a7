//! Privileged: netns creation, macvlan inside a container netns, teardown.

mod common;

use std::path::Path;

use berth_netcfg::conn;
use berth_netcfg::link::macvlan::{create_macvlan, MacvlanMode, MacvlanSpec};
use berth_netcfg::link::teardown::teardown_container;
use berth_netcfg::names::{format_mac, stable_mac, IfName, NetnsName};
use berth_netcfg::netns::{self, Netns, NETNS_RUN_DIR};
use berth_tests::lab::{require_root, unique, Lab};

/// Deletes a netns made by berth_netcfg::netns::create, even on panic.
struct NsCleanup(NetnsName);
impl Drop for NsCleanup {
    fn drop(&mut self) {
        let _ = netns::delete(Path::new(NETNS_RUN_DIR), &self.0);
    }
}

#[tokio::test]
async fn create_netns_macvlan_and_teardown() {
    require_root();
    let lab = Lab::new();
    let task = unique("task.");
    let name = NetnsName::for_task(&task).unwrap();
    let _cleanup = NsCleanup(name.clone());
    let run_dir = Path::new(NETNS_RUN_DIR);
    let ns = netns::create(run_dir, &name).await.expect("create netns");
    assert!(matches!(
        netns::create(run_dir, &name).await,
        Err(netns::NetnsError::Exists { .. })
    ));
    let listed = berth_tests::lab::run(&["ip", "netns", "list"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(name.as_str()),
        "ip netns list sees it"
    );
    assert!(netns::list_berths(run_dir).unwrap().contains(&name));

    let host = Netns::open(&lab.host.path()).unwrap();
    let mut spec = MacvlanSpec::new(IfName::new(&lab.parent).unwrap(), &task);
    spec.mode = MacvlanMode::Private;
    spec.mtu = Some(1400);
    let cns = ns.try_clone().unwrap();
    let info = netns::run_in(&host, move || async move {
        let h = conn::connect().unwrap();
        create_macvlan(&h, &cns, &spec).await
    })
    .await
    .unwrap()
    .expect("macvlan");
    assert_eq!(info.mac, stable_mac(&task));
    assert_eq!(info.mtu, 1400);

    let show = String::from_utf8_lossy(
        &berth_tests::lab::run(&["ip", "-n", name.as_str(), "-d", "link", "show", "eth0"]).stdout,
    )
    .into_owned();
    assert!(show.contains(&format_mac(&stable_mac(&task))), "{show}");
    assert!(show.contains("macvlan mode private"), "{show}");
    assert!(show.contains("mtu 1400"), "{show}");
    assert!(show.contains("state UP") || show.contains(",UP"), "{show}");
    assert!(show.contains("alias berth:"), "{show}");
    // The host netns has no eth0 of ours: it was created directly inside.
    assert!(!lab
        .host
        .exec(&["ip", "link", "show", "eth0"])
        .status
        .success());

    // A too-large MTU is refused with a message.
    let host2 = Netns::open(&lab.host.path()).unwrap();
    let cns = ns.try_clone().unwrap();
    let mut bad = MacvlanSpec::new(IfName::new(&lab.parent).unwrap(), "x");
    bad.mtu = Some(9000);
    let err = netns::run_in(&host2, move || async move {
        let h = conn::connect().unwrap();
        create_macvlan(&h, &cns, &bad).await
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(err.to_string().contains("larger than the parent"), "{err}");

    drop(ns);
    teardown_container(run_dir, &name).await.expect("teardown");
    assert!(!run_dir.join(name.as_str()).exists());
    teardown_container(run_dir, &name)
        .await
        .expect("teardown again is a no-op");
    assert!(!netns::list_berths(run_dir).unwrap().contains(&name));
}

#[tokio::test]
async fn two_macvlans_reach_each_other_and_the_lan() {
    require_root();
    let lab = Lab::new();
    let a = lab.container("a");
    let b = lab.container("b");
    let ia = common::macvlan_into(&lab, &a, "app.a").await;
    let ib = common::macvlan_into(&lab, &b, "app.b").await;
    assert_ne!(ia.mac, ib.mac);
    a.ip(&["addr", "add", "10.77.0.21/24", "dev", "eth0"]);
    b.ip(&["addr", "add", "10.77.0.22/24", "dev", "eth0"]);
    a.exec_ok(&["busybox", "ping", "-c1", "-W2", "10.77.0.22"]);
    b.exec_ok(&["busybox", "ping", "-c1", "-W2", "10.77.0.1"]);
}

#[tokio::test]
async fn teardown_removes_a_half_made_netns_and_is_idempotent() {
    require_root();
    let run_dir = Path::new(NETNS_RUN_DIR);
    let name = NetnsName::for_task(&unique("half.")).unwrap();
    let _cleanup = NsCleanup(name.clone());
    // A crash between "create the pin file" and "bind-mount the netns" leaves this.
    std::fs::create_dir_all(run_dir).unwrap();
    std::fs::write(run_dir.join(name.as_str()), b"").unwrap();
    teardown_container(run_dir, &name)
        .await
        .expect("teardown of a half-made netns");
    assert!(!run_dir.join(name.as_str()).exists());
    teardown_container(run_dir, &name)
        .await
        .expect("absent is success");
}
