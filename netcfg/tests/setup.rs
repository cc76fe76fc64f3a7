//! Privileged: the executor's one-call setup with rollback, and its teardown.

mod common;

use std::path::Path;

use berth_netcfg::conn;
use berth_netcfg::names::{stable_mac, IfName, NetnsName};
use berth_netcfg::netns::{self, Netns, NetnsError, NETNS_RUN_DIR};
use berth_netcfg::setup::{setup, teardown, Dirs, NetInfo, NetSpec, SetupError};
use berth_netcfg::tc::shape;
use berth_netcfg::tc::units::Rate;
use berth_tests::lab::{require_root, unique, Lab};

struct NsCleanup(NetnsName);
impl Drop for NsCleanup {
    fn drop(&mut self) {
        let _ = netns::delete(Path::new(NETNS_RUN_DIR), &self.0);
    }
}

fn dirs() -> (Dirs, tempfile::TempDir) {
    let run = tempfile::tempdir().unwrap();
    (
        Dirs {
            netns: NETNS_RUN_DIR.into(),
            run: run.path().into(),
        },
        run,
    )
}

async fn in_host(lab: &Lab, dirs: &Dirs, spec: &NetSpec) -> Result<NetInfo, SetupError> {
    let host = Netns::open(&lab.host.path()).unwrap();
    let (d, s) = (dirs.clone(), spec.clone());
    netns::run_in(&host, move || async move {
        setup(&conn::connect().unwrap(), &d, &s).await
    })
    .await
    .unwrap()
}

async fn down(lab: &Lab, dirs: &Dirs, spec: &NetSpec) {
    let host = Netns::open(&lab.host.path()).unwrap();
    let (d, s) = (dirs.clone(), spec.clone());
    netns::run_in(&host, move || async move {
        teardown(&conn::connect().unwrap(), &d, &s).await
    })
    .await
    .unwrap()
    .expect("teardown");
}

#[tokio::test]
async fn setup_with_limits_then_teardown() {
    require_root();
    let lab = Lab::new();
    let (dirs, _run) = dirs();
    let task = unique("setup.");
    let _c = NsCleanup(NetnsName::for_task(&task).unwrap());
    let mut spec = NetSpec::new(&task, IfName::new(&lab.parent).unwrap());
    spec.egress = Some("30mbit".parse().unwrap());
    spec.ingress = Some("20mbit".parse().unwrap());
    let info = in_host(&lab, &dirs, &spec).await.expect("setup");
    assert_eq!(info.mac, stable_mac(&task));
    assert_eq!(info.mtu, 1500);
    let ns = Netns::open(&info.netns_path).unwrap();
    let back = netns::run_in(&ns, || async {
        shape::read(&conn::connect().unwrap(), &IfName::new("eth0").unwrap()).await
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(back.egress.unwrap().rate, Rate(3_750_000));
    assert_eq!(back.ingress.unwrap().rate, Rate(2_500_000));

    // A second setup of a live task fails and leaves the first one alone.
    let err = in_host(&lab, &dirs, &spec).await.unwrap_err();
    assert!(
        matches!(err, SetupError::Netns(NetnsError::Exists { .. })),
        "{err}"
    );
    assert!(info.netns_path.exists());

    drop(ns);
    down(&lab, &dirs, &spec).await;
    assert!(!info.netns_path.exists());
    down(&lab, &dirs, &spec).await;
}

#[tokio::test]
async fn failed_setup_rolls_back() {
    require_root();
    let lab = Lab::new();
    let (dirs, _run) = dirs();
    let task = unique("rollback.");
    let name = NetnsName::for_task(&task).unwrap();
    let _c = NsCleanup(name.clone());
    // Parent missing: fails after the netns was made.
    let spec = NetSpec::new(&task, IfName::new("nosuch0").unwrap());
    let err = in_host(&lab, &dirs, &spec).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("parent interface nosuch0 does not exist"),
        "{err}"
    );
    assert!(
        !Path::new(NETNS_RUN_DIR).join(name.as_str()).exists(),
        "netns rolled back"
    );
    // A rate too small for the MTU: fails after the macvlan was made.
    let mut spec = NetSpec::new(&task, IfName::new(&lab.parent).unwrap());
    spec.egress = Some("1kbit".parse().unwrap());
    let err = in_host(&lab, &dirs, &spec).await.unwrap_err();
    assert!(err.to_string().contains("too small for MTU 1500"), "{err}");
    assert!(
        !Path::new(NETNS_RUN_DIR).join(name.as_str()).exists(),
        "netns rolled back"
    );
}
