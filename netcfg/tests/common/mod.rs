//! Helpers shared by the privileged integration tests.
#![allow(dead_code)]

use std::path::Path;

use berth_netcfg::conn;
use berth_netcfg::link::macvlan::{create_macvlan, MacvlanInfo, MacvlanSpec};
use berth_netcfg::names::IfName;
use berth_netcfg::netns::{self, Netns};
use berth_tests::lab::{Lab, Ns};

/// Put a bridge-mode macvlan named eth0 (parent = the lab's NIC) into `c`.
pub async fn macvlan_into(lab: &Lab, c: &Ns, identity: &str) -> MacvlanInfo {
    let host = Netns::open(&lab.host.path()).expect("open host netns");
    let cns = Netns::open(&c.path()).expect("open container netns");
    let spec = MacvlanSpec::new(IfName::new(&lab.parent).unwrap(), identity);
    netns::run_in(&host, move || async move {
        let h = conn::connect().expect("netlink");
        create_macvlan(&h, &cns, &spec).await
    })
    .await
    .expect("run in host netns")
    .expect("create macvlan")
}

/// Does `path` exist?
pub fn exists(p: &Path) -> bool {
    p.exists()
}
