//! Table changes as diffs: compare what berth wants for the services it owns with what the
//! kernel has, and produce the few NEW/SET/DEL operations between them. Services that are
//! not in the wanted set are never looked at, so other tools' services stay untouched; a
//! service is never flushed and refilled, so connections to unchanged real servers live on.

use std::collections::BTreeMap;

use super::socket::{Ipvs, Outcome};
use super::types::{Dest, DestKey, IpvsError, Service, ServiceKey};

/// What berth wants for one owned service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub service: Service,
    pub dests: BTreeMap<DestKey, Dest>,
}

/// What the kernel has for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub service: Service,
    pub dests: BTreeMap<DestKey, Dest>,
}

/// One change to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    AddService(Service),
    SetService(Service),
    AddDest(ServiceKey, Dest),
    SetDest(ServiceKey, Dest),
    DelDest(ServiceKey, DestKey),
}

/// The operations that turn `current` into `wanted` for the keys of `wanted` only.
pub fn diff(
    wanted: &BTreeMap<ServiceKey, Wanted>,
    current: &BTreeMap<ServiceKey, Current>,
) -> Vec<Op> {
    let mut ops = Vec::new();
    for (k, w) in wanted {
        let Some(c) = current.get(k) else {
            ops.push(Op::AddService(w.service.clone()));
            ops.extend(w.dests.values().map(|d| Op::AddDest(*k, *d)));
            continue;
        };
        if c.service != w.service {
            ops.push(Op::SetService(w.service.clone()));
        }
        for (dk, d) in &w.dests {
            match c.dests.get(dk) {
                None => ops.push(Op::AddDest(*k, *d)),
                Some(cd) if cd != d => ops.push(Op::SetDest(*k, *d)),
                Some(_) => {}
            }
        }
        ops.extend(
            c.dests
                .keys()
                .filter(|dk| !w.dests.contains_key(dk))
                .map(|dk| Op::DelDest(*k, *dk)),
        );
    }
    ops
}

/// Read the kernel's state of the services in `keys` (absent ones are left out).
pub fn read(
    h: &mut Ipvs,
    keys: impl IntoIterator<Item = ServiceKey>,
) -> Result<BTreeMap<ServiceKey, Current>, IpvsError> {
    let all: BTreeMap<ServiceKey, Service> =
        h.services()?.into_iter().map(|s| (s.key, s)).collect();
    let mut out = BTreeMap::new();
    for k in keys {
        if let Some(s) = all.get(&k) {
            let dests = h
                .dests(&k)?
                .into_iter()
                .map(|d| (d.dest.key, d.dest))
                .collect();
            out.insert(
                k,
                Current {
                    service: s.clone(),
                    dests,
                },
            );
        }
    }
    Ok(out)
}

/// Apply `ops` in order (each idempotent: a real server that appeared or vanished since
/// the read is not an error); returns how many changed the kernel.
pub fn apply(h: &mut Ipvs, ops: &[Op]) -> Result<usize, IpvsError> {
    let mut changed = 0;
    for op in ops {
        let o = match op {
            Op::AddService(s) => match h.add_service(s)? {
                // Someone made it since we read: bring its settings to ours.
                Outcome::Already => h.set_service(s)?,
                o => o,
            },
            Op::SetService(s) => h.set_service(s)?,
            Op::AddDest(k, d) => match h.add_dest(k, d)? {
                Outcome::Already => h.set_dest(k, d)?,
                o => o,
            },
            Op::SetDest(k, d) => h.set_dest(k, d)?,
            Op::DelDest(k, d) => h.del_dest(k, d)?,
        };
        if o == Outcome::Done {
            changed += 1;
        }
    }
    Ok(changed)
}

/// Read, diff and apply: make the owned services of the table what `wanted` says.
pub fn sync(h: &mut Ipvs, wanted: &BTreeMap<ServiceKey, Wanted>) -> Result<Vec<Op>, IpvsError> {
    let current = read(h, wanted.keys().copied())?;
    let ops = diff(wanted, &current);
    apply(h, &ops)?;
    Ok(ops)
}
