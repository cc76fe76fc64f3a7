//! The IPVS messages byte for byte: requests laid out as ipvsadm's libipvs and the kernel's
//! ip_vs_ctl.c policy expect them, and replies as the kernel's dump code writes them
//! (16-byte addresses, the HASHED flag, nested stats) parsed back.

use std::collections::BTreeMap;

use berth_netcfg::ipvs::diff::{diff, Current, Op, Wanted};
use berth_netcfg::ipvs::wire::{self, Cmd, Reply};
use berth_netcfg::ipvs::*;

const FAM: u16 = 0x25;

fn key() -> ServiceKey {
    "10.0.0.1:80/tcp".parse().unwrap()
}

fn rs(last: u8) -> DestKey {
    DestKey {
        addr: format!("10.0.0.{last}").parse().unwrap(),
        port: 8080,
    }
}

/// nlmsghdr + genlmsghdr for the tests' family (host order, as x86 and the kernel use).
fn head(len: u32, flags: u16, seq: u32, cmd: u8) -> Vec<u8> {
    let mut v = len.to_ne_bytes().to_vec();
    v.extend(FAM.to_ne_bytes());
    v.extend(flags.to_ne_bytes());
    v.extend(seq.to_ne_bytes());
    v.extend(0u32.to_ne_bytes());
    v.extend([cmd, 1, 0, 0]);
    v
}

fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut v = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
    v.extend(kind.to_ne_bytes());
    v.extend(value);
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
    v
}

fn svc_id_attrs() -> Vec<u8> {
    [
        attr(1, &2u16.to_ne_bytes()),
        attr(2, &6u16.to_ne_bytes()),
        attr(3, &[10, 0, 0, 1]),
        attr(4, &[0, 80]),
    ]
    .concat()
}

#[test]
fn family_request() {
    let m = wire::get_family("IPVS", 1);
    let mut want = 32u32.to_ne_bytes().to_vec();
    want.extend(0x10u16.to_ne_bytes()); // GENL_ID_CTRL
    want.extend(5u16.to_ne_bytes()); // REQUEST | ACK
    want.extend(1u32.to_ne_bytes());
    want.extend(0u32.to_ne_bytes());
    want.extend([3, 1, 0, 0]); // CTRL_CMD_GETFAMILY
    want.extend([9, 0, 2, 0, b'I', b'P', b'V', b'S', 0, 0, 0, 0]);
    assert_eq!(m, want);
}

#[test]
fn new_service_is_the_full_entry() {
    let m = wire::service(FAM, 7, Cmd::NewService, &Service::new(key(), "wrr"));
    let mut flags = 0u32.to_ne_bytes().to_vec();
    flags.extend(u32::MAX.to_ne_bytes());
    let inner = [
        svc_id_attrs(),
        attr(6, b"wrr\0"),
        attr(7, &flags),
        attr(8, &0u32.to_ne_bytes()),
        attr(9, &u32::MAX.to_ne_bytes()),
    ]
    .concat();
    assert_eq!(inner.len(), 68);
    let outer = attr(0x8001, &inner);
    let mut want = head(92, 5, 7, 1);
    want.extend(outer);
    assert_eq!(m, want);
}

#[test]
fn dest_requests() {
    let d = Dest::new(rs(11), FwdMethod::Route, 3);
    let m = wire::dest(FAM, 9, Cmd::NewDest, &key(), &d);
    let dest = [
        attr(1, &[10, 0, 0, 11]),
        attr(2, &8080u16.to_be_bytes()),
        attr(3, &3u32.to_ne_bytes()),
        attr(4, &3u32.to_ne_bytes()),
        attr(5, &0u32.to_ne_bytes()),
        attr(6, &0u32.to_ne_bytes()),
        attr(11, &2u16.to_ne_bytes()),
    ]
    .concat();
    let body = [attr(0x8001, &svc_id_attrs()), attr(0x8002, &dest)].concat();
    let mut want = head(20 + body.len() as u32, 5, 9, 5);
    want.extend(&body);
    assert_eq!(m, want);

    let m = wire::del_dest(FAM, 10, &key(), &rs(11));
    let body = [
        attr(0x8001, &svc_id_attrs()),
        attr(
            0x8002,
            &[attr(1, &[10, 0, 0, 11]), attr(2, &[0x1f, 0x90])].concat(),
        ),
    ]
    .concat();
    let mut want = head(20 + body.len() as u32, 5, 10, 7);
    want.extend(&body);
    assert_eq!(m, want);
}

#[test]
fn dumps() {
    assert_eq!(wire::get_services(FAM, 3), head(20, 0x301, 3, 4));
    let body = attr(0x8001, &svc_id_attrs());
    let mut want = head(20 + body.len() as u32, 0x301, 4, 8);
    want.extend(&body);
    assert_eq!(wire::get_dests(FAM, 4, &key()), want);
}

#[test]
fn ipv6_service_key() {
    let k: ServiceKey = "[fd00::1]:443/udp".parse().unwrap();
    assert_eq!(k.to_string(), "[fd00::1]:443/udp");
    let s = Service::new(k, "rr");
    assert_eq!(s.netmask, 128);
    let m = wire::service(FAM, 1, Cmd::NewService, &s);
    // AF_INET6 = 10, IPPROTO_UDP = 17, the full 16-byte address.
    let inner = &m[24..];
    let a: Vec<_> = wire::attrs(inner).collect();
    assert_eq!(a[0], (1, &10u16.to_ne_bytes()[..]));
    assert_eq!(a[1], (2, &17u16.to_ne_bytes()[..]));
    assert_eq!(a[2].1.len(), 16);
    assert!("10.0.0.1:80/icmp".parse::<ServiceKey>().is_err());
    assert!("10.0.0.300:80".parse::<ServiceKey>().is_err());
}

/// A kernel reply datagram: two services (one fwmark) in a dump, then DONE.
fn service_dump() -> Vec<u8> {
    let mut addr16 = vec![10, 0, 0, 1];
    addr16.resize(16, 0);
    let mut flags = 2u32.to_ne_bytes().to_vec(); // HASHED
    flags.extend(u32::MAX.to_ne_bytes());
    let stats = attr(
        0x800a,
        &[attr(1, &5u32.to_ne_bytes()), attr(2, &9u32.to_ne_bytes())].concat(),
    );
    let svc = [
        attr(1, &2u16.to_ne_bytes()),
        attr(2, &6u16.to_ne_bytes()),
        attr(3, &addr16),
        attr(4, &[0, 80]),
        attr(6, b"wlc\0"),
        attr(7, &flags),
        attr(8, &300u32.to_ne_bytes()),
        attr(9, &u32::MAX.to_ne_bytes()),
        stats,
    ]
    .concat();
    let fw = [
        attr(1, &2u16.to_ne_bytes()),
        attr(5, &7u32.to_ne_bytes()),
        attr(6, b"rr\0"),
        attr(7, &flags),
        attr(8, &0u32.to_ne_bytes()),
        attr(9, &u32::MAX.to_ne_bytes()),
    ]
    .concat();
    let mut out = Vec::new();
    for s in [svc, fw] {
        let body = attr(0x8001, &s);
        out.extend(head(20 + body.len() as u32, 2, 3, 1));
        out.extend(body);
    }
    let mut done = 20u32.to_ne_bytes().to_vec();
    done.extend(3u16.to_ne_bytes());
    done.extend(2u16.to_ne_bytes());
    done.extend(3u32.to_ne_bytes());
    done.extend([0; 8]);
    out.extend(done);
    out
}

#[test]
fn parse_service_dump() {
    let d = service_dump();
    let r = wire::parse(&d).unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[2], Reply::Done { seq: 3 });
    let Reply::Data { cmd: 1, attrs, .. } = r[0] else {
        panic!("{:?}", r[0])
    };
    let s = wire::service_of(attrs).unwrap().unwrap();
    assert_eq!(
        s,
        Service {
            key: key(),
            scheduler: "wlc".into(),
            flags: 0,
            timeout: 300,
            netmask: u32::MAX
        }
    );
    let Reply::Data { attrs, .. } = r[1] else {
        panic!()
    };
    assert_eq!(
        wire::service_of(attrs).unwrap(),
        None,
        "fwmark services are never berth's"
    );
}

#[test]
fn parse_dest_and_errors() {
    let mut a16 = vec![10, 0, 0, 12];
    a16.resize(16, 0);
    let dest = [
        attr(1, &a16),
        attr(2, &8080u16.to_be_bytes()),
        attr(3, &0u32.to_ne_bytes()),
        attr(4, &5u32.to_ne_bytes()),
        attr(5, &0u32.to_ne_bytes()),
        attr(6, &0u32.to_ne_bytes()),
        attr(7, &4u32.to_ne_bytes()),
        attr(8, &2u32.to_ne_bytes()),
        attr(9, &0u32.to_ne_bytes()),
        attr(11, &2u16.to_ne_bytes()),
    ]
    .concat();
    let d = wire::dest_of(&attr(0x8002, &dest), &key()).unwrap();
    assert_eq!(d.dest, Dest::new(rs(12), FwdMethod::Masq, 5));
    assert_eq!((d.active_conns, d.inactive_conns), (4, 2));

    // NLMSG_ERROR -17 (EEXIST) echoing the request header, and a plain ack.
    let mut e = 36u32.to_ne_bytes().to_vec();
    e.extend(2u16.to_ne_bytes());
    e.extend(0u16.to_ne_bytes());
    e.extend(8u32.to_ne_bytes());
    e.extend(0u32.to_ne_bytes());
    e.extend((-17i32).to_ne_bytes());
    e.extend(head(16, 5, 8, 5)[..16].iter());
    let mut ack = e.clone();
    ack[8..12].copy_from_slice(&9u32.to_ne_bytes());
    ack[16..20].copy_from_slice(&0i32.to_ne_bytes());
    e.extend(ack);
    assert_eq!(
        wire::parse(&e).unwrap(),
        vec![Reply::Error { seq: 8, errno: 17 }, Reply::Ack { seq: 9 }]
    );
    assert!(wire::parse(&e[..30]).is_err());
}

#[test]
fn diff_touches_only_owned_services() {
    let other: ServiceKey = "10.9.9.9:53/udp".parse().unwrap();
    let mut current = BTreeMap::new();
    let cur_dests: BTreeMap<_, _> = [11, 12, 13]
        .map(|i| (rs(i), Dest::new(rs(i), FwdMethod::Masq, 1)))
        .into();
    current.insert(
        key(),
        Current {
            service: Service::new(key(), "rr"),
            dests: cur_dests.clone(),
        },
    );
    current.insert(
        other,
        Current {
            service: Service::new(other, "rr"),
            dests: cur_dests,
        },
    );

    let mut w = BTreeMap::new();
    let dests: BTreeMap<_, _> = [(rs(11), 1), (rs(12), 0), (rs(14), 1)]
        .map(|(k, wt)| (k, Dest::new(k, FwdMethod::Masq, wt)))
        .into();
    w.insert(
        key(),
        Wanted {
            service: Service::new(key(), "wrr"),
            dests,
        },
    );
    let ops = diff(&w, &current);
    assert_eq!(
        ops,
        vec![
            Op::SetService(Service::new(key(), "wrr")),
            Op::SetDest(key(), Dest::new(rs(12), FwdMethod::Masq, 0)),
            Op::AddDest(key(), Dest::new(rs(14), FwdMethod::Masq, 1)),
            Op::DelDest(key(), rs(13)),
        ]
    );
    assert!(ops.iter().all(|o| !format!("{o:?}").contains("10.9.9.9")));

    // Missing service: created with all its real servers; equal tables: nothing.
    let ops = diff(&w, &BTreeMap::new());
    assert_eq!(ops.len(), 4);
    assert!(matches!(ops[0], Op::AddService(_)));
    let same: BTreeMap<_, _> = w
        .iter()
        .map(|(k, v)| {
            (
                *k,
                Current {
                    service: v.service.clone(),
                    dests: v.dests.clone(),
                },
            )
        })
        .collect();
    assert!(diff(&w, &same).is_empty());
}

/// Datagrams captured from a real kernel (see the fixtures' first line).
fn captured(name: &str) -> Vec<Vec<u8>> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn captured_service_dump() {
    let grams = captured("ipvs_services.hex");
    let mut services = Vec::new();
    let mut done = false;
    for g in &grams {
        for r in wire::parse(g).unwrap() {
            match r {
                Reply::Data { cmd, attrs, .. } => {
                    assert_eq!(cmd, Cmd::NewService as u8);
                    services.extend(wire::service_of(attrs).unwrap());
                }
                Reply::Done { .. } => done = true,
                other => panic!("{other:?}"),
            }
        }
    }
    assert!(done);
    assert_eq!(
        services,
        vec![
            Service::new("10.77.0.1:80/tcp".parse().unwrap(), "wrr"),
            Service::new("10.77.0.2:53/udp".parse().unwrap(), "rr")
        ]
    );
}

#[test]
fn captured_dest_dump() {
    let k: ServiceKey = "10.77.0.1:80/tcp".parse().unwrap();
    let key = |last: u8| DestKey {
        addr: format!("10.77.0.{last}").parse().unwrap(),
        port: 8080,
    };
    let mut dests = Vec::new();
    for g in captured("ipvs_dests.hex") {
        for r in wire::parse(&g).unwrap() {
            if let Reply::Data { attrs, .. } = r {
                dests.push(wire::dest_of(attrs, &k).unwrap().dest);
            }
        }
    }
    dests.sort_by_key(|d| d.key);
    assert_eq!(
        dests,
        vec![
            Dest::new(key(11), FwdMethod::Masq, 1),
            Dest::new(key(12), FwdMethod::Masq, 0)
        ]
    );
}
