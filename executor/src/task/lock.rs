//! The task lock: a task is alive exactly while its executor holds an exclusive `flock` on
//! `<state dir>/<container id>.lock` (berth-lvm's [`FileLock`]). The executor takes it
//! before anything of the task is made (before its state dir exists) and holds it until the
//! task's teardown is done; the kernel drops it when the executor dies, even by SIGKILL.
//! berth-agent's GC takes the same lock before it removes anything of a container, so it
//! never touches a task that is launching, running or being torn down, and an executor
//! launching a task id waits while GC removes that id's leftovers.
//!
//! The file holds the task id (one line): GC derives the task's names from it (netns,
//! volumes) even when the executor died before its checkpoint knew anything. It is removed
//! ([`FileLock::retire`]) once the task's state dir is gone.

use std::path::{Path, PathBuf};

pub use berth_lvm::lock::FileLock as TaskLock;

/// The lock file of container `container_id` under the executor's state dir.
pub fn path(state_dir: &Path, container_id: &str) -> PathBuf {
    state_dir.join(format!("{container_id}.lock"))
}

/// Waits for the task's lock and records the task id in it.
pub fn hold(state_dir: &Path, container_id: &str, task_id: &str) -> std::io::Result<TaskLock> {
    std::fs::create_dir_all(state_dir)?;
    let p = path(state_dir, container_id);
    let lock = TaskLock::lock(&p)?;
    std::fs::write(&p, format!("{task_id}\n"))?;
    Ok(lock)
}

/// Releases the lock; its file goes too when the task left no state dir behind.
pub fn release(lock: TaskLock, state_dir: &Path, container_id: &str) {
    if state_dir.join(container_id).symlink_metadata().is_err() {
        lock.retire();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_until_released_and_names_the_task() {
        let d = tempfile::tempdir().unwrap();
        let l = hold(d.path(), "berth-t", "t").unwrap();
        let p = path(d.path(), "berth-t");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "t\n");
        assert!(TaskLock::try_lock(&p).unwrap().is_none(), "held");
        // A state dir left behind keeps the file (GC reads the task id from it).
        std::fs::create_dir(d.path().join("berth-t")).unwrap();
        release(l, d.path(), "berth-t");
        assert!(p.exists());
        let again = TaskLock::try_lock(&p).unwrap().expect("free once released");
        std::fs::remove_dir(d.path().join("berth-t")).unwrap();
        release(again, d.path(), "berth-t");
        assert!(!p.exists());
    }
}
