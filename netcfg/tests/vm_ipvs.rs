//! VM tier (needs ip_vs, which the host kernel lacks): the IPVS table of a fresh netns
//! driven over generic netlink: services and real servers added, changed, listed and
//! removed, idempotence of NEW/DEL, a diff-based sync that leaves a foreign service alone,
//! and `ipvsadm -Ln` as a cross-check of what the kernel holds. Run by scripts/vm-tier.sh.

use std::collections::BTreeMap;

use berth_netcfg::ipvs::diff::{sync, Op, Wanted};
use berth_netcfg::ipvs::*;
use berth_netcfg::netns::{self, Netns};
use berth_tests::lab::{require_root, unique, Ns};

fn dk(last: u8) -> DestKey {
    DestKey {
        addr: format!("10.77.0.{last}").parse().unwrap(),
        port: 8080,
    }
}

fn ipvsadm(ns: &Ns) -> String {
    let out = ns.exec_ok(&["ipvsadm", "-Ln"]);
    println!("ipvsadm -Ln:\n{out}");
    out
}

#[tokio::test]
async fn ipvs_table_over_generic_netlink() {
    require_root();
    let ns = Ns::new(&unique("vi"));
    // Real servers must be unicast by the netns' routing (ip_vs_new_dest checks the address
    // type): a LAN-side link with an address gives the netns its local and main tables.
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
    ]);
    ns.ip(&["addr", "add", "10.77.0.254/24", "dev", "lan0"]);
    ns.ip(&["link", "set", "lan0", "up"]);
    ns.ip(&["link", "set", "lan1", "up"]);
    let handle = Netns::open(&ns.path()).unwrap();
    let key: ServiceKey = "10.77.0.1:80/tcp".parse().unwrap();
    let foreign: ServiceKey = "10.77.0.2:53/udp".parse().unwrap();

    netns::run_in(&handle, move || async move {
        let mut h = Ipvs::open().expect("IPVS family (ip_vs loaded in the VM)");
        assert_ne!(h.family(), 0);
        assert_eq!(
            h.add_service(&Service::new(key, "wrr")).unwrap(),
            Outcome::Done
        );
        assert_eq!(
            h.add_service(&Service::new(key, "wrr")).unwrap(),
            Outcome::Already
        );
        assert_eq!(
            h.add_service(&Service::new(foreign, "rr")).unwrap(),
            Outcome::Done
        );
        h.add_dest(
            &foreign,
            &Dest::new(
                DestKey {
                    addr: "10.77.0.99".parse().unwrap(),
                    port: 53,
                },
                FwdMethod::Masq,
                1,
            ),
        )
        .unwrap();
        for i in [11, 12] {
            assert_eq!(
                h.add_dest(&key, &Dest::new(dk(i), FwdMethod::Masq, 1))
                    .unwrap(),
                Outcome::Done
            );
        }
        assert_eq!(
            h.add_dest(&key, &Dest::new(dk(11), FwdMethod::Masq, 1))
                .unwrap(),
            Outcome::Already
        );
        h.set_dest(&key, &Dest::new(dk(12), FwdMethod::Masq, 0))
            .unwrap();

        let svcs = h.services().unwrap();
        let s = svcs
            .iter()
            .find(|s| s.key == key)
            .expect("our service listed");
        assert_eq!(s, &Service::new(key, "wrr"));
        let d: BTreeMap<_, _> = h
            .dests(&key)
            .unwrap()
            .into_iter()
            .map(|d| (d.dest.key, d.dest.weight))
            .collect();
        assert_eq!(d, [(dk(11), 1), (dk(12), 0)].into());

        // The kernel's own bytes, printed as fixtures for tests/ipvs_wire.rs.
        for (what, k) in [("services", None), ("dests", Some(&key))] {
            for d in h.capture_dump(k).unwrap() {
                let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
                println!("capture {what}: {hex}");
            }
        }
        assert_eq!(h.del_dest(&key, &dk(12)).unwrap(), Outcome::Done);
        assert_eq!(h.del_dest(&key, &dk(12)).unwrap(), Outcome::Already);
    })
    .await
    .unwrap();
    let out = ipvsadm(&ns);
    assert!(out.contains("TCP  10.77.0.1:80 wrr"), "{out}");
    assert!(out.contains("10.77.0.11:8080"), "{out}");
    assert!(!out.contains("10.77.0.12:8080"), "{out}");

    // A sync to {13 (weight 2), 11 (DR)}: a SET, an ADD, nothing else; the foreign service
    // and its real server stay as they are.
    let ops = netns::run_in(&handle, move || async move {
        let mut h = Ipvs::open().unwrap();
        let dests = [
            Dest::new(dk(11), FwdMethod::Route, 1),
            Dest::new(dk(13), FwdMethod::Masq, 2),
        ];
        let w = Wanted {
            service: Service::new(key, "wrr"),
            dests: dests.iter().map(|d| (d.key, *d)).collect(),
        };
        let wanted: BTreeMap<_, _> = [(key, w)].into();
        let ops = sync(&mut h, &wanted).unwrap();
        // A second sync finds nothing to do.
        assert_eq!(sync(&mut h, &wanted).unwrap(), vec![]);
        let d: Vec<_> = h.dests(&key).unwrap().into_iter().map(|d| d.dest).collect();
        assert_eq!(d.len(), 2);
        assert!(d.contains(&Dest::new(dk(11), FwdMethod::Route, 1)), "{d:?}");
        ops
    })
    .await
    .unwrap();
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert!(
        ops.iter()
            .all(|o| matches!(o, Op::SetDest(..) | Op::AddDest(..))),
        "{ops:?}"
    );
    let out = ipvsadm(&ns);
    assert!(out.contains("UDP  10.77.0.2:53 rr"), "{out}");
    assert!(out.contains("10.77.0.99:53"), "{out}");
    assert!(out.contains("10.77.0.13:8080"), "{out}");

    netns::run_in(&handle, move || async move {
        let mut h = Ipvs::open().unwrap();
        assert_eq!(h.del_service(&key).unwrap(), Outcome::Done);
        assert_eq!(h.del_service(&key).unwrap(), Outcome::Already);
        assert_eq!(h.del_dest(&key, &dk(11)).unwrap(), Outcome::Already);
        assert!(h.services().unwrap().iter().all(|s| s.key != key));
    })
    .await
    .unwrap();
}
