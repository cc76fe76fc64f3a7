//! The lock of one cache entry: `flock` on `<cache>/.sha256-<hex>.lock`.
//!
//! Whoever unpacks or removes an entry holds its lock. The lock file goes with its entry:
//! [`EntryLock::retire`] unlinks it while it is held (after a prune removed the entry, or
//! after a first unpack failed), so lock files do not pile up. A process that was waiting on
//! the old file then holds a lock on an inode no longer at the path; it notices (the path is
//! missing, or names another inode: `fstat` vs `stat`, device and inode) and locks the path
//! afresh. The kernel drops a flock when its holder dies, so a crash never leaves a stale
//! lock, only at worst an empty file.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// A held lock; released on drop (or when the process dies).
#[derive(Debug)]
pub struct EntryLock {
    file: Flock<File>,
    pub path: PathBuf,
}

impl EntryLock {
    /// Waits for the lock at `path` (the file is made when missing).
    pub fn lock(path: &Path) -> io::Result<EntryLock> {
        Self::take(path, FlockArg::LockExclusive).map(|l| l.expect("a blocking lock"))
    }

    /// Takes the lock at `path` if free; `None` when another holds it.
    pub fn try_lock(path: &Path) -> io::Result<Option<EntryLock>> {
        Self::take(path, FlockArg::LockExclusiveNonblock)
    }

    fn take(path: &Path, how: FlockArg) -> io::Result<Option<EntryLock>> {
        loop {
            let f = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)?;
            let file = match Flock::lock(f, how) {
                Ok(l) => l,
                Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
                Err((_, Errno::EINTR)) => continue,
                Err((_, e)) => return Err(e.into()),
            };
            let l = EntryLock {
                file,
                path: path.to_path_buf(),
            };
            if l.still_at_path()? {
                return Ok(Some(l));
            }
            // Retired while we waited: lock the file now at the path.
        }
    }

    /// Whether the path still names the file this lock is on.
    pub fn still_at_path(&self) -> io::Result<bool> {
        let held = self.file.metadata()?;
        match std::fs::metadata(&self.path) {
            Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes the lock file, then releases the lock (its entry is gone). A missing file is
    /// fine; other errors are only logged: a leftover lock file is harmless.
    pub fn retire(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a cache lock file");
            }
        }
    }
}

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
