//! One call for the executor: a task's whole network (netns, optional VLAN sub-interface,
//! macvlan eth0, tc limits) with rollback, and the matching teardown.
//!
//! `setup` records nothing itself; everything it makes is derived from the task id, so
//! `teardown` with the same spec finds it again (after an executor crash too).

use std::path::PathBuf;

use rtnetlink::Handle;

use crate::conn::connect;
use crate::link::macvlan::{create_macvlan, MacvlanMode, MacvlanSpec};
use crate::link::teardown::{teardown_container, TeardownErrors};
use crate::link::vlan::{acquire_vlan, release_vlan};
use crate::link::LinkError;
use crate::names::{IfName, NameError, NetnsName};
use crate::netns::{self, NetnsError};
use crate::tc::shape::{self, Limits};
use crate::tc::tbf::Tbf;
use crate::tc::units::{Rate, Size};
use crate::tc::TcError;

/// Where berth keeps its state.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// Named netns pins (`/run/netns`).
    pub netns: PathBuf,
    /// berth's run dir for VLAN locks and users (`/run/berth`).
    pub run: PathBuf,
}

impl Default for Dirs {
    fn default() -> Self {
        Self {
            netns: netns::NETNS_RUN_DIR.into(),
            run: "/run/berth".into(),
        }
    }
}

/// A task's network, as the executor derives it from the TaskInfo.
#[derive(Debug, Clone)]
pub struct NetSpec {
    /// Task (or app instance) id: names, MAC and ownership derive from it.
    pub task_id: String,
    /// Host NIC (or trunk when `vlan` is set).
    pub parent: IfName,
    /// VLAN id on the trunk `parent`.
    pub vlan: Option<u16>,
    pub mode: MacvlanMode,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    pub egress: Option<Rate>,
    pub ingress: Option<Rate>,
    /// Burst for both directions; `None` = default for the rate.
    pub burst: Option<Size>,
}

impl NetSpec {
    /// Bridge mode, no VLAN, no limits.
    pub fn new(task_id: &str, parent: IfName) -> Self {
        Self {
            task_id: task_id.into(),
            parent,
            vlan: None,
            mode: MacvlanMode::Bridge,
            mac: None,
            mtu: None,
            egress: None,
            ingress: None,
            burst: None,
        }
    }
}

/// What was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetInfo {
    pub netns: NetnsName,
    pub netns_path: PathBuf,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// The VLAN sub-interface the macvlan sits on.
    pub vlan_link: Option<IfName>,
}

/// Errors of [`setup`] (after a rollback).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Tc(#[from] TcError),
    #[error("{err} (and the rollback failed: {rollback})")]
    RolledBackBadly {
        #[source]
        err: Box<SetupError>,
        rollback: TeardownErrors,
    },
}

/// Make the task's network; on any failure undo what was made and return the error.
/// `host` is a handle in the parent's netns.
/// If the task's netns already exists, fails with [`NetnsError::Exists`] and touches
/// nothing (a live task's network is never rolled back by a second setup).
pub async fn setup(host: &Handle, dirs: &Dirs, spec: &NetSpec) -> Result<NetInfo, SetupError> {
    match try_setup(host, dirs, spec).await {
        Err(SetupError::Netns(e @ NetnsError::Exists { .. })) => Err(e.into()),
        Ok(info) => Ok(info),
        Err(err) => match teardown(host, dirs, spec).await {
            Ok(()) => Err(err),
            Err(rollback) => Err(SetupError::RolledBackBadly {
                err: Box::new(err),
                rollback,
            }),
        },
    }
}

async fn try_setup(host: &Handle, dirs: &Dirs, spec: &NetSpec) -> Result<NetInfo, SetupError> {
    let name = NetnsName::for_task(&spec.task_id)?;
    let ns = netns::create(&dirs.netns, &name).await?;
    let parent = match spec.vlan {
        Some(vid) => Some(
            acquire_vlan(host, &dirs.run, &spec.parent, vid, &spec.task_id)
                .await?
                .0,
        ),
        None => None,
    };
    let mut m = MacvlanSpec::new(
        parent.clone().unwrap_or_else(|| spec.parent.clone()),
        &spec.task_id,
    );
    m.mode = spec.mode;
    m.mac = spec.mac;
    m.mtu = spec.mtu;
    let made = create_macvlan(host, &ns, &m).await?;
    let tbf = |r: Option<Rate>| r.map(|r| Tbf::new(r, spec.burst, made.mtu)).transpose();
    let limits = Limits {
        egress: tbf(spec.egress)?,
        ingress: tbf(spec.ingress)?,
    };
    if limits != Limits::default() {
        let dev = m.name.clone();
        netns::run_in(&ns, move || async move {
            let h = connect().map_err(TcError::Connect)?;
            shape::apply(&h, &dev, &limits).await
        })
        .await??;
    }
    Ok(NetInfo {
        netns_path: dirs.netns.join(name.as_str()),
        netns: name,
        mac: made.mac,
        mtu: made.mtu,
        vlan_link: parent,
    })
}

/// Undo [`setup`] for `spec`: berth's links in the netns, the netns, this task's use of
/// the VLAN sub-interface. Idempotent; runs every step and returns every failure.
pub async fn teardown(host: &Handle, dirs: &Dirs, spec: &NetSpec) -> Result<(), TeardownErrors> {
    let mut errs = Vec::new();
    match NetnsName::for_task(&spec.task_id) {
        Ok(name) => {
            if let Err(TeardownErrors(mut e)) = teardown_container(&dirs.netns, &name).await {
                errs.append(&mut e);
            }
        }
        Err(e) => errs.push(e.into()),
    }
    if let Some(vid) = spec.vlan {
        if let Err(e) = release_vlan(host, &dirs.run, &spec.parent, vid, &spec.task_id).await {
            errs.push(e);
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(TeardownErrors(errs))
    }
}
