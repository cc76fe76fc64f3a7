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

/// A held lock; released on drop (or when the process dies).
#[derive(Debug)]
pub struct VolumeLock {
    _file: File,
    pub path: PathBuf,
}

impl VolumeLock {
    /// Same as [`lock`].
    pub fn wait(dir: &Path, name: &VolumeName) -> Result<VolumeLock, LockError> {
        lock(dir, name)
    }

    /// Removes the lock file, then releases the lock (the volume is gone). A missing file is
    /// fine; other errors are only logged: a leftover lock file is harmless.
    pub fn retire(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove lock file");
            }
        }
    }
}

/// Whether `path` still names the file `f` is open on (it may have been retired meanwhile).
fn still_at_path(f: &File, path: &Path) -> Result<bool, LockError> {
    use std::os::unix::fs::MetadataExt;
    let held = f.metadata().map_err(|err| LockError::Open {
        path: path.into(),
        err,
    })?;
    match std::fs::metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(LockError::Open {
            path: path.into(),
            err,
        }),
    }
}

fn open(dir: &Path, name: &VolumeName) -> Result<(File, PathBuf), LockError> {
    let path = dir.join(format!("{name}.lock"));
    std::fs::create_dir_all(dir).map_err(|err| LockError::Open {
        path: dir.into(),
        err,
    })?;
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| LockError::Open {
            path: path.clone(),
            err,
        })?;
    Ok((f, path))
}

/// Waits for the lock of `name`.
pub fn lock(dir: &Path, name: &VolumeName) -> Result<VolumeLock, LockError> {
    loop {
        let (f, path) = open(dir, name)?;
        loop {
            // SAFETY: flock on a descriptor we own.
            let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(LockError::Flock { path, err });
            }
        }
        if still_at_path(&f, &path)? {
            return Ok(VolumeLock { _file: f, path });
        }
    }
}

/// Takes the lock of `name` if free; `None` if another process holds it.
pub fn try_lock(dir: &Path, name: &VolumeName) -> Result<Option<VolumeLock>, LockError> {
    loop {
        let (f, path) = open(dir, name)?;
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            return Err(LockError::Flock { path, err });
        }
        if still_at_path(&f, &path)? {
            return Ok(Some(VolumeLock { _file: f, path }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let at_path = still_at_path(&l._file, &l.path).unwrap();
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
