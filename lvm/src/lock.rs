//! Per-volume locks between processes: `flock` on `<dir>/<name>.lock`.
//!
//! Whoever builds, resizes or removes a volume holds its lock, so two processes creating one
//! name serialize (the second then finds the first's volume), and a volume that is
//! incomplete while its lock is free was left by a process that died: safe to remove. The
//! kernel drops a flock when its holder dies, so a crash never leaves a stale lock. Lock files
//! are never deleted (deleting would race with a waiter holding the old inode).

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
    let (f, path) = open(dir, name)?;
    loop {
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if r == 0 {
            return Ok(VolumeLock { _file: f, path });
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(LockError::Flock { path, err });
        }
    }
}

/// Takes the lock of `name` if free; `None` if another process holds it.
pub fn try_lock(dir: &Path, name: &VolumeName) -> Result<Option<VolumeLock>, LockError> {
    let (f, path) = open(dir, name)?;
    // SAFETY: flock on a descriptor we own.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(Some(VolumeLock { _file: f, path }));
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(LockError::Flock { path, err })
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
}
