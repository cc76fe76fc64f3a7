//! The lock of one cache entry: `flock` on `<cache>/.sha256-<hex>.lock`.
//!
//! Whoever unpacks or removes an entry holds its lock. The lock file goes with its entry:
//! [`EntryLock::retire`] unlinks it while it is held (after a prune removed the entry, or
//! after a first unpack failed), so lock files do not pile up. A process that was waiting on
//! the old file then holds a lock on an inode no longer at the path; it notices (the path is
//! missing, or names another inode: `fstat` vs `stat`, device and inode) and locks the path
//! afresh. The kernel drops a flock when its holder dies, so a crash never leaves a stale
//! lock, only at worst an empty file.

//! The mechanism is berth-lvm's [`FileLock`](berth_lvm::lock::FileLock), which volumes use too.

pub use berth_lvm::lock::FileLock as EntryLock;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_lock_file_is_gone_and_a_waiter_relocks_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".sha256-aa.lock");
        let held = EntryLock::lock(&path).unwrap();
        assert!(EntryLock::try_lock(&path).unwrap().is_none());
        let p = path.clone();
        // A waiter blocks on the old inode while the holder retires it.
        let waiter = std::thread::spawn(move || {
            let l = EntryLock::lock(&p).unwrap();
            let at = l.still_at_path().unwrap();
            (l, at)
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        held.retire();
        let (l, at) = waiter.join().unwrap();
        assert!(at, "the waiter holds the file now at the path");
        assert!(path.exists(), "the waiter made a new lock file");
        assert!(
            EntryLock::try_lock(&path).unwrap().is_none(),
            "while the waiter holds it, nobody else gets it"
        );
        l.retire();
        assert!(!path.exists());
        assert!(EntryLock::try_lock(&path).unwrap().is_some());
    }
}
