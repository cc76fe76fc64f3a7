//! Leftovers no container of the state dir claims (`sweep_unowned`): runtime containers
//! named by berth, run dirs, berth's netns pins, lock files, volumes and VLAN
//! sub-interfaces ([`super::vlans`]), the volumes through berth-lvm's own GC ([`berth_lvm::gc::collect`]: incomplete volumes nobody builds, and
//! volumes whose owner has no container). The executor makes a task's state dir (under the
//! task lock) before anything else of it, so whatever exists without a claiming state dir
//! was left behind; the claims are read again right before each removal (a task that
//! launched meanwhile claims its parts), and the grace period spares the newborn.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use berth_lvm::{Backend, VolumeKind, VolumeState};
use berth_netcfg::names::NetnsName;

use super::host;
use super::report::{Kind, Report};
use super::scan::{age_of, Claims};
use super::Settings;

const WHY: &str = "no container of the state dir claims it";
/// How long an empty task lock file is spared (see the lock-file sweep).
const EMPTY_LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

fn entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path())))
        .collect();
    v.sort();
    v
}

fn claims(s: &Settings) -> Option<Claims> {
    Claims::read(&s.state_dir).ok()
}

fn is_berths(name: &str) -> bool {
    name.starts_with("berth-") || name.starts_with("berth_")
}

/// Sweeps every kind; `backend` is the volume backend (if it opened).
pub async fn sweep(s: &Settings, backend: Option<&dyn Backend>, dry: bool, r: &mut Report) {
    // Runtime containers and run dirs: named by container id.
    for (dir, kind) in [
        (&s.runtime.root, Kind::Container),
        (&s.run_dir, Kind::RunDir),
    ] {
        for (name, path) in entries(dir) {
            if !is_berths(&name) || claims(s).is_none_or(|c| c.ids.contains(&name)) {
                continue;
            }
            // Gone since the listing: its owner's teardown finished in between.
            if path.symlink_metadata().is_err() {
                continue;
            }
            if age_of(std::slice::from_ref(&path)) < s.grace {
                r.young += 1;
                continue;
            }
            let res = match (dry, kind) {
                (true, _) => Ok(()),
                (false, Kind::Container) => s.runtime.delete(&name),
                (false, _) => host::remove_tree(&path),
            };
            let shown = if kind == Kind::Container {
                name
            } else {
                path.display().to_string()
            };
            r.add(kind, shown, WHY, res.err());
        }
    }
    // Netns pins.
    let pins = berth_netcfg::netns::list_berths(&s.netns_dir).unwrap_or_default();
    for name in pins {
        if claims(s).is_none_or(|c| c.netns.contains(name.as_str())) {
            continue;
        }
        let path = s.netns_dir.join(name.as_str());
        if age_of(std::slice::from_ref(&path)) < s.grace {
            r.young += 1;
            continue;
        }
        let res = if dry {
            Ok(())
        } else {
            teardown(&s.netns_dir, &name).await
        };
        r.add(Kind::Netns, path.display().to_string(), WHY, res.err());
    }
    // Task lock files without a container dir (nothing to do but the file).
    for (name, path) in entries(&s.state_dir) {
        let Some(id) = name.strip_suffix(".lock") else {
            continue;
        };
        let age = age_of(std::slice::from_ref(&path));
        // An empty lock file is an executor between creating it and writing its task id
        // under the lock (or one killed in that instant): spared for a while whatever the
        // grace, so that GC never races a launch for it.
        let empty = path.metadata().is_ok_and(|m| m.len() == 0);
        if s.state_dir.join(id).symlink_metadata().is_ok()
            || age < s.grace
            || (empty && age < EMPTY_LOCK_GRACE)
        {
            continue;
        }
        match berth_lvm::lock::FileLock::try_lock(&path) {
            Ok(Some(l)) if s.state_dir.join(id).symlink_metadata().is_err() => {
                if !dry {
                    l.retire();
                }
                r.add(Kind::LockFile, path.display().to_string(), WHY, None);
            }
            Ok(_) => {}
            Err(e) => r.add(
                Kind::LockFile,
                path.display().to_string(),
                WHY,
                Some(e.to_string()),
            ),
        }
    }
    if let Some(b) = backend {
        volumes(s, b, dry, r);
    }
    super::vlans::sweep(s, dry, r).await;
}

async fn teardown(dir: &Path, name: &NetnsName) -> Result<(), String> {
    berth_netcfg::link::teardown::teardown_container(dir, name)
        .await
        .map_err(|e| e.to_string())
}

/// Volumes through berth-lvm's GC. Owners that count as live: whatever a container of the
/// state dir claims (read afresh at each question), image bases (berth-lvm's
/// [`image_bases`](berth_lvm::gc::image_bases): shared by tasks, kept for reuse), and
/// with `retain_home` every complete /home volume (kept for the task's next run).
fn volumes(s: &Settings, b: &dyn Backend, dry: bool, r: &mut Report) {
    let listed = match b.list() {
        Ok(l) => l,
        Err(e) => {
            r.add(Kind::Volume, "(listing)", WHY, Some(crate::error_chain(&e)));
            return;
        }
    };
    let kept: HashSet<String> = listed
        .iter()
        .filter(|v| {
            let n = v.name.as_str();
            v.layout == "image"
                || berth_lvm::gc::is_image_owner(&v.owner)
                || (s.retain_home
                    && v.state == VolumeState::Complete
                    && n.starts_with(&format!("berth-{}-", VolumeKind::Home.as_str())))
        })
        .map(|v| v.owner.as_str().to_string())
        .collect();
    let is_live = |owner: &berth_lvm::Owner| {
        let o = owner.as_str();
        kept.contains(o) || claims(s).is_none_or(|c| c.owners.contains(o))
    };
    if dry {
        for v in listed {
            if v.state == VolumeState::Incomplete || !is_live(&v.owner) {
                r.add(Kind::Volume, v.name.as_str(), volume_why(v.state), None);
            }
        }
        return;
    }
    match berth_lvm::gc::collect(b, &is_live) {
        Ok(rep) => {
            for n in rep.removed {
                let st = listed.iter().find(|v| v.name == n).map(|v| v.state);
                r.add(
                    Kind::Volume,
                    n.as_str(),
                    volume_why(st.unwrap_or(VolumeState::Complete)),
                    None,
                );
            }
            for (n, e) in rep.errors {
                r.add(Kind::Volume, n.as_str(), WHY, Some(crate::error_chain(&e)));
            }
        }
        Err(e) => r.add(Kind::Volume, "(listing)", WHY, Some(crate::error_chain(&e))),
    }
}

fn volume_why(st: VolumeState) -> &'static str {
    if st == VolumeState::Incomplete {
        "incomplete and nobody builds it (its builder died)"
    } else {
        WHY
    }
}
