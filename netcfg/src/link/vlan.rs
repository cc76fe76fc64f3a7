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
}
