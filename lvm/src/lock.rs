//! Per-volume locks between processes: `flock` on `<dir>/<name>.lock`.
//!
//! Whoever builds, resizes or removes a volume holds its lock, so two processes creating one
//! name serialize (the second then finds the first's volume), and a volume that is
//! incomplete while its lock is free was left by a process that died: safe to remove. The
//! kernel drops a flock when its holder dies, so a crash never leaves a stale lock.
//!
//! A volume's removal also removes its lock file ([`VolumeLock::retire`]), so lock files do
//! not pile up over thousands of tasks. It is unlinked while held; a process that was
//! waiting on the old file then holds a lock on an inode no longer at the path, which it
//! notices (the path is missing or another inode) and it locks the path afresh.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::name::VolumeName;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("opening lock file {path}")]
    Open {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("locking {path}")]
    Flock {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
}

/// An exclusive `flock` on a file at a path, which can be retired (the file removed while
/// held). Used for volumes here and for the executor's image cache entries.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    pub path: PathBuf,
}

impl FileLock {
    /// Waits for the lock on `path` (created if missing).
    pub fn lock(path: &Path) -> std::io::Result<FileLock> {
        loop {
            if let Some(l) = Self::take(path, libc::LOCK_EX)? {
                return Ok(l);
            }
        }
    }

    /// Takes the lock on `path` if free; `None` if another process holds it.
    pub fn try_lock(path: &Path) -> std::io::Result<Option<FileLock>> {
        loop {
            match Self::take(path, libc::LOCK_EX | libc::LOCK_NB) {
                Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => return Ok(None),
                Err(e) => return Err(e),
                Ok(Some(l)) => return Ok(Some(l)),
                // Locked a retired file: try the path again.
                Ok(None) => continue,
            }
        }
    }

    /// Whether another process holds the lock on `path` now; a missing file is not held
    /// (and is not created: unlike [`FileLock::try_lock`], a question leaves no file).
    pub fn is_held(path: &Path) -> std::io::Result<bool> {
        let file = match OpenOptions::new().write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        loop {
            // SAFETY: flock on a descriptor we own; closing it (at the end of this
            // function) drops the lock if we took it.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if r == 0 {
                return Ok(false);
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) => return Ok(true),
                Some(libc::EINTR) => continue,
                _ => return Err(err),
            }
        }
    }

    /// One attempt: the lock, or `None` when the file locked is no longer at the path.
    fn take(path: &Path, how: libc::c_int) -> std::io::Result<Option<FileLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        loop {
            // SAFETY: flock on a descriptor we own.
            let r = unsafe { libc::flock(file.as_raw_fd(), how) };
            if r == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        let l = FileLock {
            file,
            path: path.to_path_buf(),
        };
        Ok(l.still_at_path()?.then_some(l))
    }

    /// Whether the path still names the file held (it may have been retired meanwhile).
    pub fn still_at_path(&self) -> std::io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let held = self.file.metadata()?;
        match std::fs::metadata(&self.path) {
            Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes the lock file, then releases the lock. A missing file is fine; other errors
    /// are only logged: a leftover lock file is harmless.
    pub fn retire(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove lock file");
            }
        }
    }
}

/// A held volume lock; released on drop (or when the process dies).
#[derive(Debug)]
pub struct VolumeLock {
    inner: FileLock,
    pub path: PathBuf,
}

impl VolumeLock {
    /// Same as [`lock`].
    pub fn wait(dir: &Path, name: &VolumeName) -> Result<VolumeLock, LockError> {
        lock(dir, name)
    }

    /// Removes the lock file, then releases the lock (the volume is gone).
    pub fn retire(self) {
        self.inner.retire();
    }
}

fn lock_path(dir: &Path, name: &VolumeName) -> Result<PathBuf, LockError> {
    std::fs::create_dir_all(dir).map_err(|err| LockError::Open {
        path: dir.into(),
        err,
    })?;
    Ok(dir.join(format!("{name}.lock")))
}

fn volume_lock(inner: FileLock) -> VolumeLock {
    VolumeLock {
        path: inner.path.clone(),
        inner,
    }
}

/// Waits for the lock of `name`.
pub fn lock(dir: &Path, name: &VolumeName) -> Result<VolumeLock, LockError> {
    let path = lock_path(dir, name)?;
    FileLock::lock(&path)
        .map(volume_lock)
        .map_err(|err| LockError::Flock { path, err })
}

/// Takes the lock of `name` if free; `None` if another process holds it.
pub fn try_lock(dir: &Path, name: &VolumeName) -> Result<Option<VolumeLock>, LockError> {
    let path = lock_path(dir, name)?;
    FileLock::try_lock(&path)
        .map(|l| l.map(volume_lock))
        .map_err(|err| LockError::Flock { path, err })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_held_asks_without_taking_or_creating() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.lock");
        assert!(!FileLock::is_held(&p).unwrap());
        assert!(!p.exists(), "a question made the file");
        let held = FileLock::lock(&p).unwrap();
        assert!(FileLock::is_held(&p).unwrap());
        assert!(FileLock::is_held(&p).unwrap(), "the question took the lock");
        drop(held);
        assert!(!FileLock::is_held(&p).unwrap());
        assert!(
            FileLock::try_lock(&p).unwrap().is_some(),
            "the question kept the lock"
        );
    }

    #[test]
    fn second_holder_is_refused_until_release() {
        let dir = tempfile::tempdir().unwrap();
        let n = VolumeName::new("berth-home-x").unwrap();
        let held = lock(dir.path(), &n).unwrap();
        assert!(try_lock(dir.path(), &n).unwrap().is_none());
        drop(held);
        assert!(try_lock(dir.path(), &n).unwrap().is_some());
    }

    #[test]
    fn a_retired_lock_file_is_gone_and_a_waiter_relocks_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let n = VolumeName::new("berth-home-y").unwrap();
        let held = lock(dir.path(), &n).unwrap();
        let path = held.path.clone();
        let d = dir.path().to_path_buf();
        let n2 = n.clone();
        // A waiter blocks on the old inode while the holder retires it.
        let waiter = std::thread::spawn(move || {
            let l = lock(&d, &n2).unwrap();
            let at_path = l.inner.still_at_path().unwrap();
            (l, at_path)
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        held.retire();
        let (l, at_path) = waiter.join().unwrap();
        assert!(at_path, "the waiter holds the file now at the path");
        assert!(path.exists(), "the waiter made a new lock file");
        // While the waiter holds it, nobody else gets it.
        assert!(try_lock(dir.path(), &n).unwrap().is_none());
        l.retire();
        assert!(!path.exists());
    }
}
