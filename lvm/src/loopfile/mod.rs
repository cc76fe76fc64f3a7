//! Backend `loopfile`: one sparse file per volume under a directory, formatted in place,
//! attached to a loop device when mounted. For hosts without LVM, and the demo.
//!
//! Files in the directory: `<name>.img` (the filesystem), `<name>.json` (owner, filesystem,
//! size, state; see [`meta`]), `.locks/<name>.lock`. `create` writes the metadata as
//! `incomplete` before it allocates anything and marks it `complete` only after mkfs, so a
//! crash at any point leaves something `list` shows.

pub mod device;
pub mod meta;

use std::path::{Path, PathBuf};

use crate::crash::{self, CrashPoints};
use crate::exec::Runner;
use crate::fs;
use crate::lock::{self, VolumeLock};
use crate::name::VolumeName;
use crate::size::{Bytes, MIB};
use crate::volume::{
    Backend, Capacity, CreateRequest, Health, MountOptions, Resized, Volume, VolumeError,
    VolumeState,
};
use meta::Meta;

/// Sizes are rounded up to whole MiB.
const ALIGN: u64 = MIB;

pub struct LoopfileBackend {
    pub dir: PathBuf,
    pub run: Box<dyn Runner>,
    pub mountinfo: PathBuf,
    pub sys_block: PathBuf,
    pub crash: CrashPoints,
    lock_dir: PathBuf,
}

impl LoopfileBackend {
    /// A backend on `dir` (created if missing) using the real system.
    pub fn new(dir: &Path, run: Box<dyn Runner>) -> Result<Self, VolumeError> {
        std::fs::create_dir_all(dir).map_err(|e| VolumeError::io("creating", dir, e))?;
        let dir = dir
            .canonicalize()
            .map_err(|e| VolumeError::io("resolving", dir, e))?;
        Ok(LoopfileBackend {
            lock_dir: dir.join(".locks"),
            dir,
            run,
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            sys_block: PathBuf::from("/sys/block"),
            crash: CrashPoints::default(),
        })
    }

    fn img(&self, name: &VolumeName) -> PathBuf {
        self.dir.join(format!("{name}.img"))
    }

    fn meta_path(&self, name: &VolumeName) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn lock(&self, name: &VolumeName) -> Result<VolumeLock, VolumeError> {
        Ok(lock::lock(&self.lock_dir, name)?)
    }

    fn volume(&self, name: &VolumeName, m: &Meta) -> Result<Volume, VolumeError> {
        Ok(Volume {
            name: name.clone(),
            owner: m.owner()?,
            size: Bytes(m.size),
            fs: m.fs()?,
            state: m.state()?,
            device: self.img(name),
            layout: "loopfile".into(),
        })
    }

    /// Mount points of the volume's loop devices.
    fn mounts_of(&self, name: &VolumeName) -> Result<Vec<(PathBuf, PathBuf)>, VolumeError> {
        let mut out = Vec::new();
        for dev in device::devices_for(&self.sys_block, &self.img(name)) {
            for mp in fs::mountpoints_of(&self.mountinfo, &dev)? {
                out.push((dev.clone(), mp));
            }
        }
        Ok(out)
    }

    /// Deletes the files of a volume (the lock must be held and nothing mounted).
    fn destroy(&self, name: &VolumeName) -> Result<(), VolumeError> {
        for dev in device::devices_for(&self.sys_block, &self.img(name)) {
            device::detach(self.run.as_ref(), &dev)?;
        }
        let img = self.img(name);
        match std::fs::remove_file(&img) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(VolumeError::io("removing", &img, e)),
        }
        let m = self.meta_path(name);
        match std::fs::remove_file(&m) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(VolumeError::io("removing", &m, e)),
        }
    }

    fn grow_fs(&self, name: &VolumeName, m: &Meta) -> Result<(), VolumeError> {
        let fsys = m.fs()?;
        let mounted = self.mounts_of(name)?;
        if let Some((dev, _)) = mounted.first() {
            device::refresh_capacity(self.run.as_ref(), dev)?;
            fs::grow(self.run.as_ref(), &self.mountinfo, fsys, dev)?;
            return Ok(());
        }
        let dev = device::attach(self.run.as_ref(), &self.img(name))?;
        let res = device::refresh_capacity(self.run.as_ref(), &dev)
            .and_then(|()| Ok(fs::grow(self.run.as_ref(), &self.mountinfo, fsys, &dev)?));
        let det = device::detach(self.run.as_ref(), &dev);
        res.and(det)
    }
}

impl Backend for LoopfileBackend {
    fn create(&self, req: &CreateRequest) -> Result<Volume, VolumeError> {
        // The request is what the task may use; the file carries the filesystem's overhead.
        let size = req.fs.device_size(req.size).round_up(ALIGN);
        if req.size < req.fs.min_size() {
            return Err(VolumeError::TooSmall {
                size: req.size,
                min: req.fs.min_size(),
                fs: req.fs,
            });
        }
        let _lock = self.lock(&req.name)?;
        let mpath = self.meta_path(&req.name);
        if let Some(m) = meta::read(&mpath)? {
            let owner = m.owner()?;
            if owner != req.owner {
                return Err(VolumeError::OwnedByOther {
                    name: req.name.clone(),
                    existing: owner,
                    requested: req.owner.clone(),
                });
            }
            match m.state()? {
                VolumeState::Incomplete => {
                    tracing::info!(volume = %req.name, "removing incomplete volume left by a crash");
                    self.destroy(&req.name)?;
                }
                _ => {
                    let fs = m.fs()?;
                    if fs != req.fs {
                        return Err(VolumeError::FilesystemMismatch {
                            name: req.name.clone(),
                            existing: fs,
                            requested: req.fs,
                        });
                    }
                    return self.volume(&req.name, &m);
                }
            }
        }
        meta::write_atomic(
            &mpath,
            &Meta::new(&req.owner, req.fs, size, VolumeState::Incomplete),
        )?;
        let img = self.img(&req.name);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&img)
            .map_err(|e| VolumeError::io("creating", &img, e))?;
        f.set_len(size.0)
            .map_err(|e| VolumeError::io("sizing", &img, e))?;
        drop(f);
        self.crash.step(crash::AFTER_ALLOCATE);
        fs::mkfs(self.run.as_ref(), req.fs, &img)?;
        self.crash.step(crash::AFTER_MKFS);
        let m = Meta::new(&req.owner, req.fs, size, VolumeState::Complete);
        meta::write_atomic(&mpath, &m)?;
        self.crash.step(crash::AFTER_COMPLETE);
        self.volume(&req.name, &m)
    }

    fn resize(&self, name: &VolumeName, size: Bytes) -> Result<Resized, VolumeError> {
        let _lock = self.lock(name)?;
        let mpath = self.meta_path(name);
        let mut m = meta::read(&mpath)?.ok_or_else(|| VolumeError::NotFound(name.clone()))?;
        let size = m.fs()?.device_size(size).round_up(ALIGN);
        let state = m.state()?;
        if state == VolumeState::Incomplete {
            return Err(VolumeError::NotFound(name.clone()));
        }
        let current = Bytes(m.size);
        if size < current {
            return Err(VolumeError::Shrink {
                name: name.clone(),
                current,
                requested: size,
            });
        }
        if size == current && state == VolumeState::Complete {
            return Ok(Resized::Unchanged);
        }
        m.state = meta::state_str(VolumeState::Resizing).into();
        m.size = size.0;
        meta::write_atomic(&mpath, &m)?;
        let img = self.img(name);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&img)
            .map_err(|e| VolumeError::io("opening", &img, e))?;
        f.set_len(size.0)
            .map_err(|e| VolumeError::io("growing", &img, e))?;
        f.sync_all()
            .map_err(|e| VolumeError::io("syncing", &img, e))?;
        drop(f);
        self.crash.step(crash::AFTER_EXTEND);
        self.grow_fs(name, &m)?;
        m.state = meta::state_str(VolumeState::Complete).into();
        meta::write_atomic(&mpath, &m)?;
        // After a crash mid-grow the metadata already has the new size: the redo is not a
        // grow from the caller's point of view.
        Ok(Resized::between(current, size))
    }

    fn mount(
        &self,
        name: &VolumeName,
        target: &Path,
        opts: &MountOptions,
    ) -> Result<(), VolumeError> {
        let o = opts.to_arg()?;
        let m = meta::read(&self.meta_path(name))?
            .ok_or_else(|| VolumeError::NotFound(name.clone()))?;
        if m.state()? == VolumeState::Incomplete {
            return Err(VolumeError::NotFound(name.clone()));
        }
        let canon = target
            .canonicalize()
            .unwrap_or_else(|_| target.to_path_buf());
        if self.mounts_of(name)?.iter().any(|(_, mp)| *mp == canon) {
            return Ok(());
        }
        let dev = device::attach(self.run.as_ref(), &self.img(name))?;
        let res = fs::mount(self.run.as_ref(), m.fs()?, &dev, target, &o);
        // Mounted: the detach only sets autoclear. Failed: it frees the device.
        let det = device::detach(self.run.as_ref(), &dev);
        res?;
        det
    }

    fn unmount(&self, target: &Path) -> Result<(), VolumeError> {
        Ok(fs::unmount(self.run.as_ref(), &self.mountinfo, target)?)
    }

    fn remove_locked(&self, name: &VolumeName, _lock: &VolumeLock) -> Result<bool, VolumeError> {
        let exists = self.meta_path(name).exists() || self.img(name).exists();
        if !exists {
            return Ok(false);
        }
        if let Some((_, at)) = self.mounts_of(name)?.into_iter().next() {
            return Err(VolumeError::Mounted {
                name: name.clone(),
                at,
            });
        }
        self.destroy(name)?;
        Ok(true)
    }

    fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        let rd =
            std::fs::read_dir(&self.dir).map_err(|e| VolumeError::io("listing", &self.dir, e))?;
        let mut out = Vec::new();
        for e in rd.flatten() {
            let fname = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = fname.strip_suffix(".json") else {
                continue;
            };
            if stem.starts_with('.') {
                continue;
            }
            let Ok(name) = VolumeName::new(stem) else {
                continue;
            };
            if let Some(m) = meta::read(&e.path())? {
                out.push(self.volume(&name, &m)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn capacity(&self) -> Result<Capacity, VolumeError> {
        let st = nix::sys::statvfs::statvfs(&self.dir)
            .map_err(|e| VolumeError::io("statvfs", &self.dir, std::io::Error::from(e)))?;
        let frsize = st.fragment_size();
        Ok(Capacity {
            total: Bytes(st.blocks() * frsize),
            free: Bytes(st.blocks_available() * frsize),
            thin: None,
        })
    }

    fn health(&self) -> Result<Health, VolumeError> {
        let mut h = Health::default();
        if !Path::new("/dev/loop-control").exists() {
            h.problems
                .push("/dev/loop-control is missing (modprobe loop)".into());
        }
        let probe = self.dir.join(".health-probe");
        match std::fs::write(&probe, b"ok") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => h
                .problems
                .push(format!("{} is not writable: {e}", self.dir.display())),
        }
        for tool in [
            "losetup",
            "mkfs.ext4",
            "mkfs.xfs",
            "resize2fs",
            "xfs_growfs",
            "mount",
            "umount",
        ] {
            let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                .iter()
                .any(|d| Path::new(d).join(tool).exists());
            if !found {
                h.problems.push(format!("{tool} is not installed"));
            }
        }
        Ok(h)
    }

    fn get(&self, name: &VolumeName) -> Result<Option<Volume>, VolumeError> {
        meta::read(&self.meta_path(name))?
            .map(|m| self.volume(name, &m))
            .transpose()
    }

    fn lock_dir(&self) -> &Path {
        &self.lock_dir
    }
}
