//! Egress and ingress limits on a container link, applied inside its netns.
//!
//! Egress: root tbf (handle 1:) on the link. Ingress: `ingress` qdisc (ffff:) on the link,
//! a match-everything u32 filter (pref 1, protocol all, `match u32 0 0`; u32 rather than
//! matchall because cls_matchall is missing on some kernels, this one included) whose
//! mirred action redirects every packet to an ifb in the same netns, and a root tbf on
//! the ifb. The CNI bandwidth plugin cannot do
//! this for macvlan (it shapes the host-side veth peer, which macvlan has not); here both
//! directions are shaped from inside the container netns, so nothing on the host changes.
//!
//! All functions take a handle in the container netns (see [`crate::netns::run_in`]).
//! `apply` uses create-or-replace, so calling it again changes the limits live.

use futures::{StreamExt, TryStreamExt};
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, Nla, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirrorOption, TcActionOption, TcActionType, TcAttribute,
    TcFilterMatchAllOption, TcFilterU32Option, TcHandle, TcMessage, TcMirror, TcMirrorActionType,
    TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::{Handle, LinkIfb, LinkUnspec};

use super::tbf::{decode, Tbf, TbfReadback};
use super::TcError;
use crate::conn::{errno, link_by_name};
use crate::names::{alias_for, IfName};

const ETH_P_ALL: u16 = 0x0003;
const INGRESS_PARENT: TcHandle = TcHandle {
    major: 0xffff,
    minor: 0,
};

/// Limits for both directions; `None` = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub egress: Option<Tbf>,
    pub ingress: Option<Tbf>,
}

/// What the kernel reports for a link's limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsReadback {
    pub egress: Option<TbfReadback>,
    pub ingress: Option<TbfReadback>,
    /// ifindex the ingress matchall/mirred filter redirects to, if any.
    pub redirect_to: Option<u32>,
}

/// The ifb used for `dev`'s ingress: `ifb-eth0` for eth0, a derived name otherwise.
pub fn ifb_name(dev: &IfName) -> IfName {
    IfName::new(&format!("ifb-{dev}")).unwrap_or_else(|_| {
        IfName::derived('i', dev.as_str()).expect("an interface name has usable characters")
    })
}

async fn send(h: &Handle, msg: RouteNetlinkMessage, flags: u16) -> Result<(), rtnetlink::Error> {
    let mut req = NetlinkMessage::from(msg);
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    let mut resp = h.clone().request(req)?;
    while let Some(m) = resp.next().await {
        if let NetlinkPayload::Error(e) = m.payload {
            if e.code.is_some() {
                return Err(rtnetlink::Error::NetlinkError(e));
            }
        }
    }
    Ok(())
}

fn tbf_message(index: u32, tbf: &Tbf) -> TcMessage {
    let mut m = TcMessage::with_index(index as i32);
    m.header.handle = TcHandle { major: 1, minor: 0 };
    m.header.parent = TcHandle::ROOT;
    m.attributes.push(TcAttribute::Kind("tbf".into()));
    m.attributes.push(TcAttribute::Options(tbf.options()));
    m
}

/// The u32 match-all + mirred-redirect filter message (`tc filter add dev D parent ffff:
/// protocol all pref 1 u32 match u32 0 0 action mirred egress redirect dev IFB`).
pub fn redirect_filter(dev_index: u32, ifb_index: u32) -> TcMessage {
    let mut m = TcMessage::with_index(dev_index as i32);
    m.header.parent = INGRESS_PARENT;
    m.header.info = (1u32 << 16) | u32::from(ETH_P_ALL.to_be());
    let mut mirror = TcMirror::default();
    mirror.generic.action = TcActionType::Stolen;
    mirror.eaction = TcMirrorActionType::EgressRedir;
    mirror.ifindex = ifb_index;
    let mut action = TcAction::default();
    action.attributes = vec![
        TcActionAttribute::Kind("mirred".into()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
            mirror,
        ))]),
    ];
    let mut sel = TcU32Selector::default();
    sel.flags = TcU32SelectorFlags::Terminal;
    sel.nkeys = 1;
    sel.keys = vec![TcU32Key::default()];
    m.attributes.push(TcAttribute::Kind("u32".into()));
    m.attributes.push(TcAttribute::Options(vec![
        TcOption::U32(TcFilterU32Option::Selector(sel)),
        TcOption::U32(TcFilterU32Option::Action(vec![action])),
    ]));
    m
}

async fn index_of(h: &Handle, name: &str) -> Result<u32, TcError> {
    link_by_name(h, name)
        .await
        .map_err(|err| TcError::Netlink {
            what: "look up link",
            dev: name.into(),
            err,
        })?
        .map(|l| l.header.index)
        .ok_or_else(|| TcError::NoLink { name: name.into() })
}

async fn del_qdisc(h: &Handle, index: u32, parent: TcHandle, dev: &str) -> Result<(), TcError> {
    let mut m = TcMessage::with_index(index as i32);
    m.header.parent = parent;
    match send(h, RouteNetlinkMessage::DelQueueDiscipline(m), 0).await {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                errno(&e),
                Some(libc::ENOENT) | Some(libc::EINVAL) | Some(libc::ENODEV)
            ) =>
        {
            Ok(())
        }
        Err(err) => Err(TcError::Netlink {
            what: "delete qdisc",
            dev: dev.into(),
            err,
        }),
    }
}

/// Apply (create or change) `limits` on `dev`. A direction set to `None` is removed.
pub async fn apply(h: &Handle, dev: &IfName, limits: &Limits) -> Result<(), TcError> {
    let d = dev.as_str();
    let index = index_of(h, d).await?;
    let nl = |what, err| TcError::Netlink {
        what,
        dev: d.into(),
        err,
    };
    match &limits.egress {
        Some(t) => send(
            h,
            RouteNetlinkMessage::NewQueueDiscipline(tbf_message(index, t)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await
        .map_err(|e| nl("set egress tbf", e))?,
        None => del_qdisc(h, index, TcHandle::ROOT, d).await?,
    }
    match &limits.ingress {
        Some(t) => apply_ingress(h, dev, index, t).await,
        None => remove_ingress(h, dev, index).await,
    }
}

async fn apply_ingress(h: &Handle, dev: &IfName, index: u32, tbf: &Tbf) -> Result<(), TcError> {
    let d = dev.as_str();
    let ifb = ifb_name(dev);
    let nl = |what, err| TcError::Netlink {
        what,
        dev: d.into(),
        err,
    };
    let ifb_index = match link_by_name(h, ifb.as_str())
        .await
        .map_err(|e| nl("look up ifb", e))?
    {
        Some(l) => l.header.index,
        None => {
            let msg = LinkIfb::new(ifb.as_str()).build();
            if let Err(e) = h.link().add(msg).execute().await {
                if errno(&e) != Some(libc::EEXIST) {
                    return Err(nl("create ifb", e));
                }
            }
            index_of(h, ifb.as_str()).await?
        }
    };
    h.link()
        .set(
            LinkUnspec::new_with_index(ifb_index)
                .alias(alias_for(&format!("ifb:{d}")))
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(|e| nl("bring up ifb", e))?;
    send(
        h,
        RouteNetlinkMessage::NewQueueDiscipline(tbf_message(ifb_index, tbf)),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
    .await
    .map_err(|e| nl("set ingress tbf on the ifb", e))?;
    let mut q = TcMessage::with_index(index as i32);
    q.header.parent = TcHandle::INGRESS;
    q.header.handle = INGRESS_PARENT;
    q.attributes.push(TcAttribute::Kind("ingress".into()));
    match send(
        h,
        RouteNetlinkMessage::NewQueueDiscipline(q),
        NLM_F_CREATE | NLM_F_EXCL,
    )
    .await
    {
        Ok(()) => {}
        Err(e) if errno(&e) == Some(libc::EEXIST) => {}
        Err(e) => return Err(nl("add ingress qdisc", e)),
    }
    if read_redirect(h, index)
        .await?
        .is_some_and(|to| to == ifb_index)
    {
        return Ok(());
    }
    send(
        h,
        RouteNetlinkMessage::NewTrafficFilter(redirect_filter(index, ifb_index)),
        NLM_F_CREATE | NLM_F_EXCL,
    )
    .await
    .map_err(|e| nl("add redirect filter", e))
}

async fn remove_ingress(h: &Handle, dev: &IfName, index: u32) -> Result<(), TcError> {
    del_qdisc(h, index, TcHandle::INGRESS, dev.as_str()).await?;
    let ifb = ifb_name(dev);
    if let Some(l) = link_by_name(h, ifb.as_str())
        .await
        .map_err(|err| TcError::Netlink {
            what: "look up ifb",
            dev: dev.to_string(),
            err,
        })?
    {
        if let Err(e) = h.link().del(l.header.index).execute().await {
            if errno(&e) != Some(libc::ENODEV) {
                return Err(TcError::Netlink {
                    what: "delete ifb",
                    dev: dev.to_string(),
                    err: e,
                });
            }
        }
    }
    Ok(())
}

/// Remove both limits (idempotent).
pub async fn remove(h: &Handle, dev: &IfName) -> Result<(), TcError> {
    match link_by_name(h, dev.as_str()).await {
        Ok(Some(l)) => apply(h, dev, &Limits::default()).await.map(|_| drop(l)),
        Ok(None) => Ok(()),
        Err(err) => Err(TcError::Netlink {
            what: "look up link",
            dev: dev.to_string(),
            err,
        }),
    }
}

async fn root_tbf(h: &Handle, index: u32) -> Result<Option<TbfReadback>, rtnetlink::Error> {
    let all: Vec<TcMessage> = h
        .qdisc()
        .get()
        .index(index as i32)
        .execute()
        .try_collect()
        .await?;
    Ok(all
        .iter()
        .filter(|m| m.header.index == index as i32 && m.header.parent == TcHandle::ROOT)
        .filter(|m| {
            m.attributes
                .iter()
                .any(|a| matches!(a, TcAttribute::Kind(k) if k == "tbf"))
        })
        .find_map(|m| {
            m.attributes.iter().find_map(|a| match a {
                TcAttribute::Options(o) => o.iter().find_map(|o| match o {
                    TcOption::Other(nla) => {
                        let mut v = vec![0u8; nla.value_len()];
                        nla.emit_value(&mut v);
                        decode(&v)
                    }
                    _ => None,
                }),
                _ => None,
            })
        }))
}

async fn read_redirect(h: &Handle, index: u32) -> Result<Option<u32>, TcError> {
    let r: Result<Vec<TcMessage>, _> = h
        .traffic_filter(index as i32)
        .get()
        .ingress()
        .execute()
        .try_collect()
        .await;
    let filters = match r {
        Ok(f) => f,
        Err(e) if matches!(errno(&e), Some(libc::EINVAL) | Some(libc::ENOENT)) => return Ok(None),
        Err(err) => {
            return Err(TcError::Netlink {
                what: "dump ingress filters",
                dev: index.to_string(),
                err,
            })
        }
    };
    for f in &filters {
        for a in &f.attributes {
            let TcAttribute::Options(opts) = a else {
                continue;
            };
            for o in opts {
                let acts = match o {
                    TcOption::MatchAll(TcFilterMatchAllOption::Action(a)) => a,
                    TcOption::U32(TcFilterU32Option::Action(a)) => a,
                    _ => continue,
                };
                for act in acts {
                    for aa in &act.attributes {
                        let TcActionAttribute::Options(aopts) = aa else {
                            continue;
                        };
                        for ao in aopts {
                            if let TcActionOption::Mirror(TcActionMirrorOption::Parms(p)) = ao {
                                return Ok(Some(p.ifindex));
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(None)
}

/// Read the limits on `dev` back from the kernel.
pub async fn read(h: &Handle, dev: &IfName) -> Result<LimitsReadback, TcError> {
    let d = dev.as_str();
    let index = index_of(h, d).await?;
    let nl = |what, err| TcError::Netlink {
        what,
        dev: d.into(),
        err,
    };
    let egress = root_tbf(h, index).await.map_err(|e| nl("dump qdiscs", e))?;
    let redirect_to = read_redirect(h, index).await?;
    let ingress = match redirect_to {
        Some(ifb) => root_tbf(h, ifb)
            .await
            .map_err(|e| nl("dump ifb qdiscs", e))?,
        None => None,
    };
    Ok(LimitsReadback {
        egress,
        ingress,
        redirect_to,
    })
}
