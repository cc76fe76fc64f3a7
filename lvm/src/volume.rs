//! The volume API: one [`Backend`] trait that the `loopfile` and `lvm` backends implement,
//! and the types it speaks.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::name::{NameError, Owner, VolumeName};
use crate::size::Bytes;

/// Filesystems a volume can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filesystem {
    Ext4,
    Xfs,
}

impl Filesystem {
    pub fn as_str(self) -> &'static str {
        match self {
            Filesystem::Ext4 => "ext4",
            Filesystem::Xfs => "xfs",
        }
    }

    /// The device size that gives at least `usable` bytes free (as `df` shows them) on a new
    /// filesystem made by [`crate::fs::mkfs_cmd`]: the journal or log, inode tables,
    /// ext4's reserved clusters and metadata come on top. Measured on loop files from
    /// 64 MiB to 20 GiB (lvm/tests/loopfile.rs checks it); the waste is under 2 %.
    pub fn device_size(self, usable: Bytes) -> Bytes {
        const MIB: f64 = 1048576.0;
        let u = usable.0 as f64 / MIB;
        let overhead = |d: f64| match self {
            Filesystem::Ext4 => {
                // mkfs.ext4's default journal for a device of d MiB (4 KiB blocks).
                let journal = match d {
                    d if d < 128.0 => 4.0,
                    d if d < 1024.0 => 16.0,
                    d if d < 2048.0 => 32.0,
                    d if d < 16384.0 => 64.0,
                    d if d < 32768.0 => 128.0,
                    d if d < 65536.0 => 256.0,
                    d if d < 131072.0 => 512.0,
                    _ => 1024.0,
                };
                // inode tables (one 256-byte inode per 16 KiB), the reserved clusters
                // (2 %, at most 16 MiB), bitmaps/descriptors, slack.
                journal + d / 64.0 + (d / 50.0).min(16.0) + d / 200.0 + 4.0
            }
            Filesystem::Xfs => 80.0 + d / 40.0,
        };
        let mut d = u;
        for _ in 0..6 {
            d = u + overhead(d);
        }
        Bytes((d * MIB).ceil() as u64)
    }

    /// Smallest size a volume may be asked for (xfs refuses filesystems under 300 MiB).
    pub fn min_size(self) -> Bytes {
        match self {
            Filesystem::Ext4 => Bytes::mib(8),
            Filesystem::Xfs => Bytes::mib(300),
        }
    }
}

impl FromStr for Filesystem {
    type Err = VolumeError;
    fn from_str(s: &str) -> Result<Self, VolumeError> {
        match s {
            "ext4" => Ok(Filesystem::Ext4),
            "xfs" => Ok(Filesystem::Xfs),
            other => Err(VolumeError::BadFilesystem(other.to_string())),
        }
    }
}

impl fmt::Display for Filesystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a volume finished being built. `Incomplete` ones are left by a crash (or are being
/// built right now by a process that holds the volume's lock); GC removes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeState {
    Complete,
    /// Created but mkfs (or the image fill) has not finished.
    Incomplete,
    /// A grow was started and may not have reached the filesystem; the next resize redoes it.
    Resizing,
}

/// One volume berth made, as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: VolumeName,
    pub owner: Owner,
    /// The device's size: what was asked for plus the filesystem's overhead
    /// ([`Filesystem::device_size`]).
    pub size: Bytes,
    pub fs: Filesystem,
    pub state: VolumeState,
    /// The block device (LV path), or the backing file for `loopfile`.
    pub device: PathBuf,
    /// `linear`, `thin`, `snapshot`, `image` or `loopfile`.
    pub layout: String,
}

/// What `create` is asked to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub name: VolumeName,
    pub size: Bytes,
    pub fs: Filesystem,
    pub owner: Owner,
}

/// Outcome of a resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resized {
    Grown { from: Bytes, to: Bytes },
    Unchanged,
}

impl Resized {
    /// What a resize from `from` to `to` did: grown when `to` is larger, else unchanged
    /// (callers refuse shrinking before they get here).
    pub fn between(from: Bytes, to: Bytes) -> Self {
        if to > from {
            Resized::Grown { from, to }
        } else {
            Resized::Unchanged
        }
    }
}

/// Mount options; `extra` is a validated comma-free list (e.g. `noatime`, `nodev`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MountOptions {
    pub read_only: bool,
    pub extra: Vec<String>,
}

impl MountOptions {
    /// The `-o` argument, after checking each option is a plain word (no commas or spaces, so
    /// a task cannot smuggle `,dev,suid` in).
    pub fn to_arg(&self) -> Result<String, VolumeError> {
        let mut opts = vec![if self.read_only { "ro" } else { "rw" }.to_string()];
        for o in &self.extra {
            let ok = !o.is_empty()
                && o.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '=' | '.' | '-'));
            if !ok {
                return Err(VolumeError::BadMountOption(o.clone()));
            }
            opts.push(o.clone());
        }
        Ok(opts.join(","))
    }
}

/// Space of the backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    pub total: Bytes,
    pub free: Bytes,
    /// Thin pool data and metadata use in percent (LVM thin only).
    pub thin: Option<ThinUsage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ThinUsage {
    pub pool_size: Bytes,
    pub data_percent: f64,
    pub metadata_percent: f64,
}

/// Result of a health check: `problems` empty means healthy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Health {
    pub problems: Vec<String>,
}

impl Health {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("unknown filesystem {0:?}: use ext4 or xfs")]
    BadFilesystem(String),
    #[error("mount option {0:?} is not a plain word")]
    BadMountOption(String),
    #[error("volume {name} belongs to {existing}, not {requested}")]
    OwnedByOther {
        name: VolumeName,
        existing: Owner,
        requested: Owner,
    },
    #[error("volume {name} exists with filesystem {existing}, not {requested}")]
    FilesystemMismatch {
        name: VolumeName,
        existing: Filesystem,
        requested: Filesystem,
    },
    #[error("volume {0} does not exist")]
    NotFound(VolumeName),
    #[error("volume {name} is {current}; shrinking to {requested} is not supported (grow only)")]
    Shrink {
        name: VolumeName,
        current: Bytes,
        requested: Bytes,
    },
    #[error("size {size} is below the {min} minimum of {fs}")]
    TooSmall {
        size: Bytes,
        min: Bytes,
        fs: Filesystem,
    },
    #[error("refusing to create {name} ({size}): {why}")]
    BelowFloor {
        name: VolumeName,
        size: Bytes,
        why: String,
    },
    #[error("{name} is not a berth volume; refusing to touch it")]
    NotOurs { name: String },
    #[error("volume {name} is being built by another process (lock busy)")]
    Busy { name: VolumeName },
    #[error("volume {name} is mounted at {at}; unmount it first")]
    Mounted { name: VolumeName, at: PathBuf },
    #[error("{what} is not supported by the {backend} backend")]
    Unsupported {
        backend: &'static str,
        what: &'static str,
    },
    #[error("{what} returned data berth cannot read: {why}")]
    BadData { what: String, why: String },
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    #[error(transparent)]
    Fs(#[from] crate::fs::FsError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
}

impl VolumeError {
    pub fn io(op: &'static str, path: &Path, err: std::io::Error) -> Self {
        VolumeError::Io {
            op,
            path: path.to_path_buf(),
            err,
        }
    }
}

/// A place volumes live. Every operation is idempotent, and each leaves either nothing, a
/// complete volume, or one that [`Backend::list`] reports as [`VolumeState::Incomplete`] (so
/// [`crate::gc`] removes it) when the process dies in the middle.
pub trait Backend {
    /// Makes a formatted volume. The same name and owner again returns the existing volume
    /// (after finishing or rebuilding an incomplete one); another owner is an error.
    fn create(&self, req: &CreateRequest) -> Result<Volume, VolumeError>;
    /// Grows a volume and its filesystem, online. Shrinking is an error; the current size is
    /// a no-op.
    fn resize(&self, name: &VolumeName, size: Bytes) -> Result<Resized, VolumeError>;
    fn mount(
        &self,
        name: &VolumeName,
        target: &Path,
        opts: &MountOptions,
    ) -> Result<(), VolumeError>;
    /// Unmounts `target`; not mounted is a success.
    fn unmount(&self, target: &Path) -> Result<(), VolumeError>;
    /// Removes a volume; absent is a success (`Ok(false)`).
    fn remove(&self, name: &VolumeName) -> Result<bool, VolumeError> {
        let lock = crate::lock::VolumeLock::wait(self.lock_dir(), name)?;
        let removed = self.remove_locked(name, &lock)?;
        lock.retire();
        Ok(removed)
    }
    /// Removes a volume whose lock the caller holds (GC re-checks state under the lock).
    fn remove_locked(
        &self,
        name: &VolumeName,
        lock: &crate::lock::VolumeLock,
    ) -> Result<bool, VolumeError>;
    /// One volume, if berth made it.
    fn get(&self, name: &VolumeName) -> Result<Option<Volume>, VolumeError> {
        Ok(self.list()?.into_iter().find(|v| &v.name == name))
    }
    /// Only the volumes berth made, with their owner and state.
    fn list(&self) -> Result<Vec<Volume>, VolumeError>;
    fn capacity(&self) -> Result<Capacity, VolumeError>;
    fn health(&self) -> Result<Health, VolumeError>;
    /// Takes the volume's lock without waiting; `None` if another process holds it (GC skips
    /// volumes being built).
    fn try_lock(&self, name: &VolumeName) -> Result<Option<crate::lock::VolumeLock>, VolumeError> {
        Ok(crate::lock::try_lock(self.lock_dir(), name)?)
    }
    /// Where the per-volume lock files live.
    fn lock_dir(&self) -> &Path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_options_refuse_injection() {
        let o = MountOptions {
            read_only: false,
            extra: vec!["noatime".into(), "commit=30".into()],
        };
        assert_eq!(o.to_arg().unwrap(), "rw,noatime,commit=30");
        let ro = MountOptions {
            read_only: true,
            extra: vec![],
        };
        assert_eq!(ro.to_arg().unwrap(), "ro");
        for bad in ["dev,suid", "a b", "", "x;y"] {
            let o = MountOptions {
                read_only: false,
                extra: vec![bad.into()],
            };
            assert!(
                matches!(o.to_arg(), Err(VolumeError::BadMountOption(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn filesystems_parse() {
        assert_eq!("xfs".parse::<Filesystem>().unwrap(), Filesystem::Xfs);
        assert!("btrfs".parse::<Filesystem>().is_err());
    }
}
