//! Privileged: tc limits applied over netlink, read back, changed live, removed.

mod common;

use berth_netcfg::conn;
use berth_netcfg::names::IfName;
use berth_netcfg::netns::{self, Netns};
use berth_netcfg::tc::shape::{self, Limits};
use berth_netcfg::tc::tbf::Tbf;
use berth_netcfg::tc::units::{Rate, Size};
use berth_tests::lab::{require_root, Lab};

fn tbf(rate: &str, burst: Option<&str>) -> Tbf {
    Tbf::new(
        rate.parse().unwrap(),
        burst.map(|b| b.parse().unwrap()),
        1500,
    )
    .unwrap()
}

#[tokio::test]
async fn limits_read_back_change_and_remove() {
    require_root();
    let lab = Lab::new();
    let c = lab.container("tc");
    common::macvlan_into(&lab, &c, "app.tc").await;
    let ns = Netns::open(&c.path()).unwrap();
    let eth0 = IfName::new("eth0").unwrap();

    let limits = Limits {
        egress: Some(tbf("20mbit", Some("64kb"))),
        ingress: Some(tbf("10mbit", None)),
    };
    let dev = eth0.clone();
    let back = netns::run_in(&ns, move || async move {
        let h = conn::connect().unwrap();
        shape::apply(&h, &dev, &limits).await?;
        shape::apply(&h, &dev, &limits).await?; // idempotent
        shape::read(&h, &dev).await
    })
    .await
    .unwrap()
    .expect("apply + read");
    let eg = back.egress.expect("egress tbf");
    assert_eq!(eg.rate, Rate(2_500_000));
    assert!((eg.burst.0 as i64 - 65536).abs() < 64, "{eg:?}");
    let ing = back.ingress.expect("ingress tbf on the ifb");
    assert_eq!(ing.rate, Rate(1_250_000));
    assert!(back.redirect_to.is_some());
    // What tc itself sees.
    let q = c.exec_ok(&["tc", "qdisc", "show"]);
    assert!(
        q.contains("qdisc tbf 1: dev eth0 root") && q.contains("rate 20Mbit"),
        "{q}"
    );
    assert!(q.contains("qdisc ingress ffff: dev eth0"), "{q}");
    assert!(
        q.contains("dev ifb-eth0 root") && q.contains("rate 10Mbit"),
        "{q}"
    );
    let f = c.exec_ok(&["tc", "filter", "show", "dev", "eth0", "ingress"]);
    assert!(
        f.contains("u32") && f.contains("Egress Redirect to device ifb-eth0"),
        "{f}"
    );

    // Change live.
    let limits = Limits {
        egress: Some(tbf("5mbit", None)),
        ingress: Some(tbf("30mbit", None)),
    };
    let dev = eth0.clone();
    let back = netns::run_in(&ns, move || async move {
        let h = conn::connect().unwrap();
        shape::apply(&h, &dev, &limits).await?;
        shape::read(&h, &dev).await
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(back.egress.unwrap().rate, Rate(625_000));
    assert_eq!(back.ingress.unwrap().rate, Rate(3_750_000));
    let f = c.exec_ok(&["tc", "filter", "show", "dev", "eth0", "ingress"]);
    assert_eq!(f.matches("mirred").count(), 1, "one redirect only: {f}");

    // Remove (twice: idempotent).
    let dev = eth0.clone();
    let back = netns::run_in(&ns, move || async move {
        let h = conn::connect().unwrap();
        shape::remove(&h, &dev).await?;
        shape::remove(&h, &dev).await?;
        shape::read(&h, &dev).await
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(back, Default::default());
    assert!(!c.exec(&["ip", "link", "show", "ifb-eth0"]).status.success());
    let _ = Size(0);
}
