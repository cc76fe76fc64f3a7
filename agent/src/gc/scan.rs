//! What the executor's state dir says exists: one [`Found`] per container dir, with what
//! GC needs to find each of its parts again (the task id from the task lock file, else
//! from the bundle; the netns, wrapper and cgroup from the checkpoint and bundle, read by
//! the metrics' state-dir reader), and the names every present container claims.
//!
//! The task lock (the executor's `task::lock`): `<state dir>/<container id>.lock`, an
//! exclusive `flock` held by the executor from before the state dir exists until its
//! teardown is done, holding the task id.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use berth_lvm::{VolumeKind, VolumeName};
use berth_netcfg::names::NetnsName;

use crate::metrics::task;

/// One container dir of the state dir.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub container_id: String,
    pub dir: PathBuf,
    /// Empty when neither the lock file nor the bundle names it.
    pub task_id: String,
    /// The checkpoint shows the `container` step done (the task had started).
    pub started: bool,
    pub netns: Option<PathBuf>,
    pub wrapper_pid: Option<u32>,
    /// The OCI `cgroupsPath`.
    pub cgroup: Option<String>,
    /// Since its newest file (lock, checkpoint, dir) was written.
    pub age: Duration,
}

/// The task lock file of a container.
pub fn lock_path(state_dir: &Path, container_id: &str) -> PathBuf {
    state_dir.join(format!("{container_id}.lock"))
}

/// Container dirs: every directory of the state dir but the session records.
fn container_dirs(state_dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(state_dir)?
        .flatten()
        .filter(|e| e.file_name() != "executors" && e.path().is_dir())
        .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path())))
        .collect();
    out.sort();
    Ok(out)
}

/// The newest modification time among `paths`, as an age.
pub fn age_of(paths: &[PathBuf]) -> Duration {
    let newest = paths
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(p).and_then(|m| m.modified()).ok())
        .max();
    newest
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// Every container of `state_dir` (missing dir: none).
pub fn scan(state_dir: &Path) -> std::io::Result<Vec<Found>> {
    let dirs = match container_dirs(state_dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let known: HashMap<String, task::Task> = task::discover(state_dir, Path::new("/proc"))
        .map(|v| v.into_iter().map(|t| (t.container_id.clone(), t)).collect())
        .unwrap_or_default();
    Ok(dirs
        .into_iter()
        .map(|(id, dir)| {
            let lock = lock_path(state_dir, &id);
            let t = known.get(&id).cloned().unwrap_or_default();
            let from_lock = std::fs::read_to_string(&lock)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
            let cp = dir.join("checkpoint.json");
            Found {
                task_id: from_lock.unwrap_or(t.task_id),
                started: started(&cp),
                netns: t.netns,
                wrapper_pid: t.wrapper_pid,
                cgroup: t.cgroup,
                age: age_of(&[lock, cp, dir.clone()]),
                container_id: id,
                dir,
            }
        })
        .collect())
}

fn started(checkpoint: &Path) -> bool {
    let Some(v) = std::fs::read(checkpoint)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return false;
    };
    v["steps"]
        .as_array()
        .is_some_and(|s| s.iter().any(|st| st[0] == "container" && st[1] == "done"))
}

/// What the containers present in the state dir claim: their ids (runtime containers, run
/// dirs, lock files), their netns names and their volumes' owners and names.
#[derive(Debug, Default)]
pub struct Claims {
    pub ids: HashSet<String>,
    pub netns: HashSet<String>,
    pub owners: HashSet<String>,
}

impl Claims {
    /// Read afresh (a task launching now has its state dir before anything else).
    pub fn read(state_dir: &Path) -> std::io::Result<Claims> {
        let mut c = Claims::default();
        for f in scan(state_dir)? {
            if !f.task_id.is_empty() {
                for n in names_of(&f.task_id) {
                    c.owners.insert(n);
                }
                if let Ok(n) = NetnsName::for_task(&f.task_id) {
                    c.netns.insert(n.as_str().to_string());
                }
                c.owners.insert(f.task_id.clone());
            }
            if let Some(ns) = f.netns.as_ref().and_then(|p| p.file_name()) {
                c.netns.insert(ns.to_string_lossy().into_owned());
            }
            c.ids.insert(f.container_id);
        }
        // A held lock claims its container too: the executor removes the state dir during
        // its teardown and holds the lock until that is done, so the parts it has still to
        // remove are nobody's leftovers. (A lock file nobody holds claims nothing.)
        for e in std::fs::read_dir(state_dir).into_iter().flatten().flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
                continue;
            };
            if !berth_lvm::lock::FileLock::is_held(&e.path()).unwrap_or(true) {
                continue;
            }
            let task_id = std::fs::read_to_string(e.path()).unwrap_or_default();
            let task_id = task_id.trim();
            if !task_id.is_empty() {
                c.owners.extend(names_of(task_id));
                c.owners.insert(task_id.to_string());
                if let Ok(n) = NetnsName::for_task(task_id) {
                    c.netns.insert(n.as_str().to_string());
                }
            }
            c.ids.insert(id.to_string());
        }
        Ok(c)
    }
}

/// The names of a task's volumes (an owner is the task id or, for an id an owner cannot
/// hold, the volume's own name).
pub fn names_of(task_id: &str) -> Vec<String> {
    [VolumeKind::Home, VolumeKind::Root]
        .into_iter()
        .filter_map(|k| VolumeName::for_task(k, task_id).ok())
        .map(|n| n.as_str().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_their_task_ids_and_claims() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path();
        std::fs::create_dir_all(s.join("executors")).unwrap();
        std::fs::create_dir_all(s.join("berth-a")).unwrap();
        std::fs::write(lock_path(s, "berth-a"), "a\n").unwrap();
        std::fs::write(
            s.join("berth-a/checkpoint.json"),
            r#"{"container_id":"berth-a","steps":[["rundir","done"],["container","done"]],"outputs":{"netns":"/run/netns/x1"}}"#,
        )
        .unwrap();
        // Half made: no checkpoint, no lock file content.
        std::fs::create_dir_all(s.join("berth-b")).unwrap();
        let f = scan(s).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].task_id.as_str(), f[0].started), ("a", true));
        assert_eq!(f[0].netns.as_deref(), Some(Path::new("/run/netns/x1")));
        assert_eq!((f[1].task_id.as_str(), f[1].started), ("", false));
        assert!(f[0].age < Duration::from_secs(60));
        let c = Claims::read(s).unwrap();
        assert!(c.ids.contains("berth-a") && c.ids.contains("berth-b"));
        assert!(c.netns.contains("x1"));
        assert!(c.netns.contains(NetnsName::for_task("a").unwrap().as_str()));
        assert!(c.owners.contains("a"));
        assert!(names_of("a").iter().all(|n| c.owners.contains(n)));
        assert!(scan(&s.join("nope")).unwrap().is_empty());
    }
}
