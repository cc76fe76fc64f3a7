//! VM tier (needs 8021q, which the host kernel lacks): VLAN sub-interfaces on a trunk,
//! shared by two concurrent setups, a container macvlan on top, traffic over the VLAN,
//! and GC listing. Run by scripts/vm-tier.sh with `--features vm-tier`.

use std::path::Path;

use berth_netcfg::conn;
use berth_netcfg::link::macvlan::{create_macvlan, MacvlanSpec};
use berth_netcfg::link::vlan::{acquire_vlan, list_unused_vlans, release_vlan};
use berth_netcfg::names::IfName;
use berth_netcfg::netns::{self, Netns};
use berth_tests::lab::{require_root, unique, Ns};

fn work_dir() -> tempfile::TempDir {
    let base = std::env::var_os("BERTH_VM_WORK")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("vm-vlan")
        .tempdir_in(base)
        .unwrap()
}

async fn in_host<T: Send + 'static, F>(
    host: &Netns,
    f: impl FnOnce(rtnetlink::Handle) -> F + Send + 'static,
) -> T
where
    F: std::future::Future<Output = T>,
{
    netns::run_in(
        host,
        move || async move { f(conn::connect().unwrap()).await },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn vlan_shared_by_two_containers_then_collected() {
    require_root();
    let run = work_dir();
    let run_dir = run.path().to_path_buf();
    let base = unique("vv");
    let lan = Ns::new(&format!("{base}-lan"));
    let host_ns = Ns::new(&format!("{base}-host"));
    // The trunk: host's trk0 <-> lan's lan0; the LAN side has its own VLAN 100 with an address.
    lan.ip(&[
        "link",
        "add",
        "lan0",
        "type",
        "veth",
        "peer",
        "name",
        "trk0",
        "netns",
        host_ns.name(),
    ]);
    lan.ip(&["link", "set", "lan0", "up"]);
    lan.ip(&[
        "link", "add", "link", "lan0", "name", "lan0.100", "type", "vlan", "id", "100",
    ]);
    lan.ip(&["addr", "add", "10.88.0.1/24", "dev", "lan0.100"]);
    lan.ip(&["link", "set", "lan0.100", "up"]);
    host_ns.ip(&["link", "set", "trk0", "up"]);
    let host = Netns::open(&host_ns.path()).unwrap();
    let trunk = IfName::new("trk0").unwrap();

    // Two setups at once on the same VLAN: both succeed and share one sub-interface.
    let (h1, h2) = (
        Netns::open(&host_ns.path()).unwrap(),
        Netns::open(&host_ns.path()).unwrap(),
    );
    let (r1, r2, t1, t2) = (
        run_dir.clone(),
        run_dir.clone(),
        trunk.clone(),
        trunk.clone(),
    );
    let (a, b) = tokio::join!(
        in_host(&h1, move |h| async move {
            acquire_vlan(&h, &r1, &t1, 100, "task-a").await
        }),
        in_host(&h2, move |h| async move {
            acquire_vlan(&h, &r2, &t2, 100, "task-b").await
        }),
    );
    let (a, b) = (a.expect("setup a"), b.expect("setup b"));
    assert_eq!(a, b);
    assert_eq!(a.0.as_str(), "trk0.100");
    let show = host_ns.exec_ok(&["ip", "-d", "link", "show", "trk0.100"]);
    assert!(
        show.contains("vlan protocol 802.1Q id 100") && show.contains("alias berth:vlan"),
        "{show}"
    );

    // A container macvlan on the VLAN reaches the LAN's VLAN 100.
    let c = Ns::new(&format!("{base}-c"));
    let cns = Netns::open(&c.path()).unwrap();
    let spec = MacvlanSpec::new(a.0.clone(), "task-a");
    in_host(&host, move |h| async move {
        create_macvlan(&h, &cns, &spec).await
    })
    .await
    .expect("macvlan");
    c.ip(&["addr", "add", "10.88.0.5/24", "dev", "eth0"]);
    c.exec_ok(&["busybox", "ping", "-c1", "-W3", "10.88.0.1"]);

    let r = run_dir.clone();
    let unused = in_host(
        &host,
        move |h| async move { list_unused_vlans(&h, &r).await },
    )
    .await
    .unwrap();
    assert!(unused.is_empty(), "{unused:?}");
    // First user leaves: the link stays.
    let (r, t) = (run_dir.clone(), trunk.clone());
    in_host(&host, move |h| async move {
        release_vlan(&h, &r, &t, 100, "task-a").await
    })
    .await
    .unwrap();
    assert!(host_ns
        .exec(&["ip", "link", "show", "trk0.100"])
        .status
        .success());
    // Second leaves: gone; releasing again is a no-op.
    for _ in 0..2 {
        let (r, t) = (run_dir.clone(), trunk.clone());
        in_host(&host, move |h| async move {
            release_vlan(&h, &r, &t, 100, "task-b").await
        })
        .await
        .unwrap();
    }
    assert!(!host_ns
        .exec(&["ip", "link", "show", "trk0.100"])
        .status
        .success());

    // GC: a berth VLAN nobody holds is listed.
    let (r, t) = (run_dir.clone(), trunk.clone());
    in_host(&host, move |h| async move {
        acquire_vlan(&h, &r, &t, 200, "task-c").await
    })
    .await
    .unwrap();
    std::fs::remove_dir_all(Path::new(&run_dir).join("vlan/trk0.200")).unwrap();
    let r = run_dir.clone();
    let unused = in_host(
        &host,
        move |h| async move { list_unused_vlans(&h, &r).await },
    )
    .await
    .unwrap();
    assert_eq!(unused, vec![IfName::new("trk0.200").unwrap()]);
}

#[tokio::test]
async fn setup_on_a_vlan_and_teardown_releases_it() {
    use berth_netcfg::setup::{setup, teardown, Dirs, NetSpec};
    require_root();
    let run = work_dir();
    let base = unique("vs");
    let lan = Ns::new(&format!("{base}-lan"));
    let host_ns = Ns::new(&format!("{base}-host"));
    lan.ip(&[
        "link",
        "add",
        "lan0",
        "type",
        "veth",
        "peer",
        "name",
        "trk1",
        "netns",
        host_ns.name(),
    ]);
    lan.ip(&["link", "set", "lan0", "up"]);
    host_ns.ip(&["link", "set", "trk1", "up"]);
    let dirs = Dirs {
        netns: netns::NETNS_RUN_DIR.into(),
        run: run.path().into(),
    };
    let mut spec = NetSpec::new(&unique("vlan-task."), IfName::new("trk1").unwrap());
    spec.vlan = Some(300);
    spec.egress = Some("10mbit".parse().unwrap());
    let host = Netns::open(&host_ns.path()).unwrap();
    let (d, s) = (dirs.clone(), spec.clone());
    let info = in_host(&host, move |h| async move { setup(&h, &d, &s).await })
        .await
        .expect("setup");
    assert_eq!(info.vlan_link, Some(IfName::new("trk1.300").unwrap()));
    let show = host_ns.exec_ok(&["ip", "-d", "link", "show", "trk1.300"]);
    assert!(show.contains("id 300"), "{show}");
    let (d, s) = (dirs.clone(), spec.clone());
    in_host(&host, move |h| async move { teardown(&h, &d, &s).await })
        .await
        .expect("teardown");
    assert!(!info.netns_path.exists());
    assert!(
        !host_ns
            .exec(&["ip", "link", "show", "trk1.300"])
            .status
            .success(),
        "last user gone"
    );
}
