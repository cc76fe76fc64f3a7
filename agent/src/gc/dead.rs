//! One dead container (its task lock free, taken by GC): every part the executor's steps
//! make, removed in the reverse of their order, each only if it is there:
//! `container` (the runtime's container and its wrapper, then its cgroup dirs), `rootfs`
//! (the overlay under the bundle), `network` (berth's links in the netns, the netns pin,
//! the task's use of VLAN sub-interfaces, [`super::vlans`]), `volume` and `scratch` (unmounted, then
//! removed; a started task's /home kept with `retain_home`), `rundir`, and last the state
//! dir and the lock file. A part that fails keeps the state dir (and so the lock file), so
//! the next run tries again; the rest still goes.

use std::path::Path;
use std::time::Duration;

use berth_lvm::{Backend, VolumeKind, VolumeName};
use berth_netcfg::names::NetnsName;

use super::host;
use super::report::{Kind, Report};
use super::scan::Found;
use super::Settings;

/// Removes (or with `dry`, lists) what is left of the dead container `f`. Returns whether
/// everything went.
pub async fn collect(
    s: &Settings,
    f: &Found,
    backend: Option<&dyn Backend>,
    dry: bool,
    r: &mut Report,
) -> bool {
    let why = if f.task_id.is_empty() {
        format!(
            "container {}: its executor is gone (task lock free)",
            f.container_id
        )
    } else {
        format!("task {}: its executor is gone (task lock free)", f.task_id)
    };
    let failed_before = r.errors();
    let note = |r: &mut Report, kind: Kind, name: String, res: Result<(), String>| {
        r.add(kind, name, &why, res.err());
    };
    let id = &f.container_id;
    let exit = f.dir.join("exit");
    // The container: its processes first, so nothing writes into what follows.
    if s.runtime.known(id) || host::wrapper(f.wrapper_pid, &exit).is_some() {
        let res = if dry {
            Ok(())
        } else {
            host::stop_container(
                &s.runtime,
                id,
                f.wrapper_pid,
                &exit,
                Duration::from_secs(10),
            )
        };
        note(r, Kind::Container, id.clone(), res);
    }
    if let Some(cg) = &f.cgroup {
        for d in host::cgroup_dirs(&s.cgroup_root, cg) {
            let res = if dry {
                Ok(())
            } else {
                host::remove_cgroup(&d, Duration::from_secs(5))
            };
            note(r, Kind::Cgroup, d.display().to_string(), res);
        }
    }
    // The overlay root (on top of the scratch volume, so before it).
    let rootfs = f.dir.join("bundle").join("rootfs");
    if host::mounts_under(&rootfs).contains(&rootfs) {
        let res = if dry { Ok(()) } else { host::unmount(&rootfs) };
        note(r, Kind::Mount, rootfs.display().to_string(), res);
    }
    // The network.
    if !f.task_id.is_empty() {
        if let Ok(name) = NetnsName::for_task(&f.task_id) {
            let dir = f
                .netns
                .as_deref()
                .and_then(Path::parent)
                .unwrap_or(&s.netns_dir)
                .to_path_buf();
            if dir.join(name.as_str()).symlink_metadata().is_ok() {
                let res = if dry {
                    Ok(())
                } else {
                    berth_netcfg::link::teardown::teardown_container(&dir, &name)
                        .await
                        .map_err(|e| e.to_string())
                };
                note(
                    r,
                    Kind::Netns,
                    dir.join(name.as_str()).display().to_string(),
                    res,
                );
            }
        }
        // Its use of VLAN sub-interfaces, found by its records (whatever the checkpoint got
        // to say).
        super::vlans::release_task(s, &f.task_id, &why, dry, r).await;
    }
    // The volumes: /home (kept when retained and the task had started), the scratch one.
    for (kind, label) in [(VolumeKind::Home, "home"), (VolumeKind::Root, "scratch")] {
        let mp = f.dir.join(label);
        let name = VolumeName::for_task(kind, &f.task_id).ok();
        let exists = match (backend, &name) {
            (Some(b), Some(n)) => b.get(n).ok().flatten().is_some(),
            _ => false,
        };
        let mounted = host::mounts_under(&mp).contains(&mp);
        let keep = kind == VolumeKind::Home && s.retain_home && f.started;
        if mounted && (keep || backend.is_none() || !exists) {
            let res = if dry { Ok(()) } else { host::unmount(&mp) };
            note(r, Kind::Mount, mp.display().to_string(), res);
        }
        if let (true, false, Some(b), Some(n)) = (exists, keep, backend, &name) {
            let res = if dry {
                Ok(())
            } else {
                b.unmount(&mp)
                    .and_then(|()| b.remove(n).map(|_| ()))
                    .map_err(|e| crate::error_chain(&e))
            };
            note(r, Kind::Volume, n.as_str().to_string(), res);
        }
    }
    let run = s.run_dir.join(id);
    if run.symlink_metadata().is_ok() {
        let res = if dry { Ok(()) } else { host::remove_tree(&run) };
        note(r, Kind::RunDir, run.display().to_string(), res);
    }
    if dry {
        note(r, Kind::StateDir, f.dir.display().to_string(), Ok(()));
        return r.errors() == failed_before;
    }
    if r.errors() == failed_before {
        let res = host::remove_tree(&f.dir);
        note(r, Kind::StateDir, f.dir.display().to_string(), res);
    }
    r.errors() == failed_before
}
