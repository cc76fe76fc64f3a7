//! VLAN sub-interfaces `<trunk>.<vid>` of a trunk parent, shared by the containers on that
//! VLAN.
//!
//! Two setups on one VLAN must not race and the sub-interface must stay while any
//! container uses it. Users are recorded as files `<run_dir>/vlan/<link>/<owner>`; every
//! change happens under an exclusive `flock` on `<run_dir>/vlan/<link>.lock`, and the
//! create tolerates EEXIST (a sub-interface made by someone else with the same name is
//! reused only if it carries berth's alias). The last user to leave deletes the link.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use rtnetlink::{Handle, LinkUnspec, LinkVlan};

use super::LinkError;
use crate::conn::{alias_of, all_links, errno, link_by_name, name_of};
use crate::names::{fnv1a64, IfName};

/// The alias of VLAN sub-interfaces berth made.
pub const VLAN_ALIAS: &str = "berth:vlan";

/// The sub-interface name for `trunk` and `vid` (must fit IFNAMSIZ).
pub fn vlan_name(trunk: &IfName, vid: u16) -> Result<IfName, LinkError> {
    if !(1..=4094).contains(&vid) {
        return Err(LinkError::BadVid { vid });
    }
    Ok(IfName::new(&format!("{trunk}.{vid}"))?)
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LinkError + 'a {
    move |err| LinkError::Io {
        what,
        path: path.to_path_buf(),
        err,
    }
}

/// Take the per-link lock. Polls a non-blocking flock so that two setups awaiting on
/// one current_thread runtime cannot deadlock each other.
async fn lock(run_dir: &Path, link: &IfName) -> Result<Flock<File>, LinkError> {
    let dir = run_dir.join("vlan");
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let p = dir.join(format!("{link}.lock"));
    let mut f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(io("open", &p))?;
    loop {
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(l),
            Err((back, nix::Error::EWOULDBLOCK)) => {
                f = back;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err((_, e)) => {
                return Err(LinkError::Io {
                    what: "lock",
                    path: p.clone(),
                    err: e.into(),
                })
            }
        }
    }
}

fn users_dir(run_dir: &Path, link: &IfName) -> PathBuf {
    run_dir.join("vlan").join(link.as_str())
}

fn owner_file(run_dir: &Path, link: &IfName, owner: &str) -> PathBuf {
    users_dir(run_dir, link).join(format!("{:016x}", fnv1a64(owner.as_bytes())))
}

/// Create or reuse `<trunk>.<vid>` for `owner`; returns its name and ifindex.
pub async fn acquire_vlan(
    h: &Handle,
    run_dir: &Path,
    trunk: &IfName,
    vid: u16,
    owner: &str,
) -> Result<(IfName, u32), LinkError> {
    let name = vlan_name(trunk, vid)?;
    let _guard = lock(run_dir, &name).await?;
    let nl = |what, err| LinkError::Netlink {
        what,
        name: name.to_string(),
        err,
    };
    let parent = link_by_name(h, trunk.as_str())
        .await
        .map_err(|e| nl("look up trunk for", e))?
        .ok_or_else(|| LinkError::NoParent {
            parent: trunk.to_string(),
        })?;
    let existing = link_by_name(h, name.as_str())
        .await
        .map_err(|e| nl("look up", e))?;
    if existing.is_none() {
        let msg = LinkVlan::new(name.as_str(), parent.header.index, vid).build();
        if let Err(e) = h.link().add(msg).execute().await {
            if errno(&e) != Some(libc::EEXIST) {
                return Err(nl("create VLAN", e));
            }
        }
    }
    let link = link_by_name(h, name.as_str())
        .await
        .map_err(|e| nl("look up", e))?
        .ok_or_else(|| LinkError::Vanished {
            name: name.to_string(),
        })?;
    let index = link.header.index;
    h.link()
        .set(
            LinkUnspec::new_with_index(index)
                .alias(VLAN_ALIAS)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(|e| nl("set alias and up on", e))?;
    let users = users_dir(run_dir, &name);
    std::fs::create_dir_all(&users).map_err(io("create", &users))?;
    let of = owner_file(run_dir, &name, owner);
    std::fs::write(&of, owner).map_err(io("write", &of))?;
    Ok((name, index))
}

/// `owner` no longer uses `<trunk>.<vid>`; the last user deletes it. Idempotent.
pub async fn release_vlan(
    h: &Handle,
    run_dir: &Path,
    trunk: &IfName,
    vid: u16,
    owner: &str,
) -> Result<(), LinkError> {
    let name = vlan_name(trunk, vid)?;
    let _guard = lock(run_dir, &name).await?;
    let of = owner_file(run_dir, &name, owner);
    match std::fs::remove_file(&of) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove", &of)(e)),
    }
    if count_users(run_dir, &name) > 0 {
        return Ok(());
    }
    delete_if_berths(h, &name).await
}

fn count_users(run_dir: &Path, name: &IfName) -> usize {
    std::fs::read_dir(users_dir(run_dir, name))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

async fn delete_if_berths(h: &Handle, name: &IfName) -> Result<(), LinkError> {
    let nl = |what, err| LinkError::Netlink {
        what,
        name: name.to_string(),
        err,
    };
    if let Some(l) = link_by_name(h, name.as_str())
        .await
        .map_err(|e| nl("look up", e))?
    {
        if alias_of(&l) == Some(VLAN_ALIAS) {
            if let Err(e) = h.link().del(l.header.index).execute().await {
                if errno(&e) != Some(libc::ENODEV) {
                    return Err(nl("delete", e));
                }
            }
        }
    }
    Ok(())
}

/// berth's VLAN sub-interfaces that no user holds (for GC).
pub async fn list_unused_vlans(h: &Handle, run_dir: &Path) -> Result<Vec<IfName>, LinkError> {
    let links = all_links(h).await.map_err(|err| LinkError::Netlink {
        what: "list links",
        name: "host".into(),
        err,
    })?;
    let mut out = Vec::new();
    for l in &links {
        if alias_of(l) != Some(VLAN_ALIAS) {
            continue;
        }
        if let Some(n) = name_of(l).and_then(|n| IfName::new(n).ok()) {
            if count_users(run_dir, &n) == 0 {
                out.push(n);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `name` is one berth would give a sub-interface: `<trunk>.<vid>`.
pub fn is_vlan_name(name: &str) -> bool {
    let Some((trunk, vid)) = name.rsplit_once('.') else {
        return false;
    };
    match (IfName::new(trunk), vid.parse::<u16>()) {
        (Ok(t), Ok(v)) => vlan_name(&t, v).is_ok_and(|n| n.as_str() == name),
        _ => false,
    }
}

/// One of berth's VLAN sub-interfaces and what the run dir records of its users (for GC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanLink {
    pub name: IfName,
    /// Whoever acquired it and has not released it (a task id each).
    pub owners: Vec<String>,
    /// Its records that exist: the lock file, the users dir, each user file (their
    /// modification times say when a setup last touched it).
    pub records: Vec<PathBuf>,
}

/// The users `run_dir` records for `link`, and those records.
pub fn users_of(run_dir: &Path, link: &IfName) -> (Vec<String>, Vec<PathBuf>) {
    let dir = users_dir(run_dir, link);
    let mut records: Vec<PathBuf> = [
        run_dir.join("vlan").join(format!("{link}.lock")),
        dir.clone(),
    ]
    .into_iter()
    .filter(|p| p.symlink_metadata().is_ok())
    .collect();
    let mut owners = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for f in files {
        if let Ok(o) = std::fs::read_to_string(&f) {
            owners.push(o);
            records.push(f);
        }
    }
    owners.sort();
    owners.dedup();
    (owners, records)
}

/// Every VLAN sub-interface berth made (its alias and `<trunk>.<vid>` name), with its users.
pub async fn list_vlans(h: &Handle, run_dir: &Path) -> Result<Vec<VlanLink>, LinkError> {
    let links = all_links(h).await.map_err(|err| LinkError::Netlink {
        what: "list links",
        name: "host".into(),
        err,
    })?;
    let mut out: Vec<VlanLink> = links
        .iter()
        .filter(|l| alias_of(l) == Some(VLAN_ALIAS))
        .filter_map(|l| name_of(l).filter(|n| is_vlan_name(n)))
        .filter_map(|n| IfName::new(n).ok())
        .map(|name| {
            let (owners, records) = users_of(run_dir, &name);
            VlanLink {
                name,
                owners,
                records,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What [`collect_vlan`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// The users whose records went.
    pub dropped: Vec<String>,
    /// The sub-interface was deleted (no user left).
    pub deleted: bool,
}

/// GC of `link`: under its lock (so never while a setup acquires or releases it), drops
/// the users `is_live` says are gone, then deletes the link if it is berth's and no user
/// is left. `is_live` is asked under the lock: a task that acquired it meanwhile is seen.
pub async fn collect_vlan(
    h: &Handle,
    run_dir: &Path,
    link: &IfName,
    is_live: &mut dyn FnMut(&str) -> bool,
) -> Result<Collected, LinkError> {
    let _guard = lock(run_dir, link).await?;
    let mut done = Collected::default();
    let (owners, _) = users_of(run_dir, link);
    for o in owners {
        if is_live(&o) {
            continue;
        }
        let of = owner_file(run_dir, link, &o);
        match std::fs::remove_file(&of) {
            Ok(()) => done.dropped.push(o),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &of)(e)),
        }
    }
    if count_users(run_dir, link) == 0 {
        let there = link_by_name(h, link.as_str())
            .await
            .map_err(|err| LinkError::Netlink {
                what: "look up",
                name: link.to_string(),
                err,
            })?
            .is_some_and(|l| alias_of(&l) == Some(VLAN_ALIAS));
        if there {
            delete_if_berths(h, link).await?;
            done.deleted = true;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let t = IfName::new("eth1").unwrap();
        assert_eq!(vlan_name(&t, 100).unwrap().as_str(), "eth1.100");
        assert!(vlan_name(&t, 0).is_err());
        assert!(vlan_name(&t, 4095).is_err());
        let long = IfName::new("enp0s31f6abc").unwrap();
        assert!(vlan_name(&long, 4000).is_err());
    }

    #[test]
    fn berths_naming_only() {
        assert!(is_vlan_name("eth1.100") && is_vlan_name("bond0.4094"));
        for n in [
            "eth1",
            "eth1.0",
            "eth1.4095",
            "eth1.x",
            ".100",
            "eth1.0100",
            "a b.1",
        ] {
            assert!(!is_vlan_name(n), "{n}");
        }
    }

    #[test]
    fn users_and_their_records() {
        let d = tempfile::tempdir().unwrap();
        let link = IfName::new("eth1.7").unwrap();
        assert_eq!(users_of(d.path(), &link), (vec![], vec![]));
        std::fs::create_dir_all(users_dir(d.path(), &link)).unwrap();
        for o in ["task-b", "task-a"] {
            std::fs::write(owner_file(d.path(), &link, o), o).unwrap();
        }
        std::fs::write(d.path().join("vlan/eth1.7.lock"), "").unwrap();
        let (owners, records) = users_of(d.path(), &link);
        assert_eq!(owners, ["task-a", "task-b"]);
        assert_eq!(records.len(), 4, "{records:?}");
        assert!(records.iter().all(|r| r.exists()));
    }
}
