//! [`Backend`] for [`LvmBackend`]: create, resize, mount, remove, list, capacity, health.

use std::path::Path;

use super::cmd::{TAG_INCOMPLETE, TAG_RESIZING};
use super::ready;
use super::report::{Lv, Vg};
use super::{Layout, LvmBackend};
use crate::crash;
use crate::exec::Cmd;
use crate::fs;
use crate::lock::{self, VolumeLock};
use crate::name::VolumeName;
use crate::size::Bytes;
use crate::volume::{
    Backend, Capacity, CreateRequest, Filesystem, Health, MountOptions, Resized, ThinUsage, Volume,
    VolumeError, VolumeState,
};

/// `lvm` exits 5 for "not found" (and other failures); only trust it with the text.
fn is_not_found(code: Option<i32>, stderr: &str) -> bool {
    code == Some(5) && (stderr.contains("not found") || stderr.contains("Failed to find"))
}

impl LvmBackend {
    /// `Mounted` when the volume's device is mounted anywhere (named by the first place).
    pub(super) fn refuse_if_mounted(&self, name: &VolumeName) -> Result<(), VolumeError> {
        match fs::mountpoints_of(&self.mountinfo, &self.device(name))?
            .into_iter()
            .next()
        {
            Some(at) => Err(VolumeError::Mounted {
                name: name.clone(),
                at,
            }),
            None => Ok(()),
        }
    }

    fn find_lv(&self, name: &VolumeName) -> Result<Option<Lv>, VolumeError> {
        Ok(self.vg()?.lvs.into_iter().find(|l| l.name == name.as_str()))
    }

    /// Runs a changing lvm command (errors carry its stderr).
    pub(crate) fn lvm(&self, c: &Cmd) -> Result<(), VolumeError> {
        self.run.check(c)?;
        Ok(())
    }

    pub(crate) fn ensure_active(&self, lv: &Lv) -> Result<(), VolumeError> {
        if !lv.attr.active {
            let name = VolumeName::new(&lv.name)?;
            self.lvm(&self.tool.activate(&self.cfg.vg, &name))?;
        }
        Ok(())
    }

    /// Mount options for a volume: xfs snapshots share their base's UUID, so they need
    /// `nouuid` to be mounted next to each other.
    pub(crate) fn mount_opts(fs: Filesystem, is_snapshot: bool, base: String) -> String {
        if fs == Filesystem::Xfs && is_snapshot {
            format!("{base},nouuid")
        } else {
            base
        }
    }

    /// Removes an LV that the caller holds the lock of and checked is berth's (an image
    /// base's marker first: [`super::ready`]).
    pub(crate) fn destroy(&self, name: &VolumeName) -> Result<bool, VolumeError> {
        ready::clear(&self.cfg.lock_dir, name)
            .map_err(|e| VolumeError::io("removing the marker in", &self.cfg.lock_dir, e))?;
        let out = self.run.run(&self.tool.remove(&self.cfg.vg, name))?;
        if out.success() {
            return Ok(true);
        }
        let stderr = out.stderr_text();
        if is_not_found(out.code, &stderr) {
            return Ok(false);
        }
        Err(crate::exec::ExecError::Failed {
            cmd: self.tool.remove(&self.cfg.vg, name).to_string(),
            code: out.code,
            stderr,
        }
        .into())
    }

    /// Shared by create, images and snapshot roots: what to do with an existing LV of this
    /// name, from one report. `Existing`: done, return it; `Absent`: go on creating, with the
    /// VG state (re-read if an incomplete leftover was removed).
    pub(crate) fn reuse_or_clear(&self, req: &CreateRequest, vg: Vg) -> Result<Reuse, VolumeError> {
        let Some(lv) = vg.lvs.iter().find(|l| l.name == req.name.as_str()).cloned() else {
            return Ok(Reuse::Absent(vg));
        };
        let Some(v) = Self::to_volume(&lv) else {
            return Err(VolumeError::NotOurs { name: lv.name });
        };
        if v.owner != req.owner {
            return Err(VolumeError::OwnedByOther {
                name: req.name.clone(),
                existing: v.owner,
                requested: req.owner.clone(),
            });
        }
        if v.state == VolumeState::Incomplete {
            tracing::info!(volume = %req.name, "removing incomplete volume left by a crash");
            self.destroy(&req.name)?;
            return Ok(Reuse::Absent(self.vg()?));
        }
        if v.fs != req.fs {
            return Err(VolumeError::FilesystemMismatch {
                name: req.name.clone(),
                existing: v.fs,
                requested: req.fs,
            });
        }
        self.ensure_active(&lv)?;
        Ok(Reuse::Existing(v))
    }

    /// Drops the incomplete marker: from here on the volume is complete.
    pub(crate) fn finish(
        &self,
        req: &CreateRequest,
        size: Bytes,
        layout: &str,
    ) -> Result<Volume, VolumeError> {
        self.lvm(&self.tool.del_tag(&self.cfg.vg, &req.name, TAG_INCOMPLETE))?;
        self.crash.step(crash::AFTER_COMPLETE);
        Ok(Volume {
            name: req.name.clone(),
            owner: req.owner.clone(),
            size,
            fs: req.fs,
            state: VolumeState::Complete,
            device: self.device(&req.name),
            layout: layout.into(),
        })
    }
}

/// What [`LvmBackend::reuse_or_clear`] found.
pub(crate) enum Reuse {
    Existing(Volume),
    Absent(Vg),
}

impl Backend for LvmBackend {
    fn create(&self, req: &CreateRequest) -> Result<Volume, VolumeError> {
        // The request is what the task may use; the LV carries the filesystem's overhead.
        let device = req.fs.device_size(req.size);
        if req.size < req.fs.min_size() {
            return Err(VolumeError::TooSmall {
                size: req.size,
                min: req.fs.min_size(),
                fs: req.fs,
            });
        }
        let _lock = lock::lock(&self.cfg.lock_dir, &req.name)?;
        let vg = match self.reuse_or_clear(req, self.vg()?)? {
            Reuse::Existing(v) => return Ok(v),
            Reuse::Absent(vg) => vg,
        };
        let size = device.round_up(vg.extent_size.0);
        let c = match self.cfg.home_layout {
            Layout::Linear => {
                self.check_linear_floor(&vg, &req.name, size)?;
                self.tool
                    .create_linear(&self.cfg.vg, &req.name, size, &req.owner, req.fs)
            }
            Layout::Thin => {
                self.check_thin_floor(&vg, &req.name, size)?;
                let pool = self.cfg.thin_pool.as_deref().unwrap_or_default();
                self.tool.create_thin(
                    &self.cfg.vg,
                    pool,
                    &req.name,
                    size,
                    &req.owner,
                    req.fs,
                    false,
                )
            }
        };
        self.lvm(&c)?;
        self.crash.step(crash::AFTER_ALLOCATE);
        fs::mkfs(self.run.as_ref(), req.fs, &self.device(&req.name))?;
        self.crash.step(crash::AFTER_MKFS);
        let layout = match self.cfg.home_layout {
            Layout::Linear => "linear",
            Layout::Thin => "thin",
        };
        self.finish(req, size, layout)
    }

    fn resize(&self, name: &VolumeName, size: Bytes) -> Result<Resized, VolumeError> {
        let _lock = lock::lock(&self.cfg.lock_dir, name)?;
        let vg = self.vg()?;
        let lv = vg
            .lvs
            .iter()
            .find(|l| l.name == name.as_str())
            .ok_or_else(|| VolumeError::NotFound(name.clone()))?;
        let v = Self::to_volume(lv).ok_or_else(|| VolumeError::NotOurs {
            name: lv.name.clone(),
        })?;
        if v.state == VolumeState::Incomplete {
            return Err(VolumeError::NotFound(name.clone()));
        }
        let fs = v.fs;
        let size = fs.device_size(size).round_up(vg.extent_size.0);
        if size < v.size {
            return Err(VolumeError::Shrink {
                name: name.clone(),
                current: v.size,
                requested: size,
            });
        }
        if size == v.size && v.state == VolumeState::Complete {
            return Ok(Resized::Unchanged);
        }
        self.ensure_active(lv)?;
        if v.state != VolumeState::Resizing {
            self.lvm(&self.tool.add_tag(&self.cfg.vg, name, TAG_RESIZING))?;
        }
        if size > v.size {
            self.lvm(&self.tool.extend(&self.cfg.vg, name, size))?;
        }
        self.crash.step(crash::AFTER_EXTEND);
        fs::grow(self.run.as_ref(), &self.mountinfo, v.fs, &self.device(name))?;
        self.lvm(&self.tool.del_tag(&self.cfg.vg, name, TAG_RESIZING))?;
        Ok(Resized::between(v.size, size))
    }

    fn mount(
        &self,
        name: &VolumeName,
        target: &Path,
        opts: &MountOptions,
    ) -> Result<(), VolumeError> {
        let o = opts.to_arg()?;
        let lv = self
            .find_lv(name)?
            .ok_or_else(|| VolumeError::NotFound(name.clone()))?;
        let v = Self::to_volume(&lv).ok_or_else(|| VolumeError::NotOurs {
            name: lv.name.clone(),
        })?;
        if v.state == VolumeState::Incomplete {
            return Err(VolumeError::NotFound(name.clone()));
        }
        self.ensure_active(&lv)?;
        let dev = self.device(name);
        let canon = target
            .canonicalize()
            .unwrap_or_else(|_| target.to_path_buf());
        if fs::mountpoints_of(&self.mountinfo, &dev)?.contains(&canon) {
            return Ok(());
        }
        let o = Self::mount_opts(v.fs, lv.origin.is_some(), o);
        Ok(fs::mount(self.run.as_ref(), v.fs, &dev, target, &o)?)
    }

    fn unmount(&self, target: &Path) -> Result<(), VolumeError> {
        Ok(fs::unmount(self.run.as_ref(), &self.mountinfo, target)?)
    }

    fn remove_locked(&self, name: &VolumeName, _lock: &VolumeLock) -> Result<bool, VolumeError> {
        let Some(lv) = self.find_lv(name)? else {
            return Ok(false);
        };
        if Self::to_volume(&lv).is_none() {
            return Err(VolumeError::NotOurs { name: lv.name });
        }
        self.refuse_if_mounted(name)?;
        self.destroy(name)
    }

    fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        let mut v: Vec<Volume> = self.vg()?.lvs.iter().filter_map(Self::to_volume).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    fn capacity(&self) -> Result<Capacity, VolumeError> {
        let vg = self.vg()?;
        let thin = match &self.cfg.thin_pool {
            Some(_) => {
                let p = self.pool(&vg)?;
                Some(ThinUsage {
                    pool_size: p.size,
                    data_percent: p.data_percent.unwrap_or(0.0),
                    metadata_percent: p.metadata_percent.unwrap_or(0.0),
                })
            }
            None => None,
        };
        Ok(Capacity {
            total: vg.size,
            free: vg.free,
            thin,
        })
    }

    fn health(&self) -> Result<Health, VolumeError> {
        let mut h = Health::default();
        if let Err(e) = self.run.check(&self.tool.version()) {
            h.problems.push(format!("lvm does not run: {e}"));
            return Ok(h);
        }
        let vg = match self.vg() {
            Ok(vg) => vg,
            Err(e) => {
                h.problems
                    .push(format!("volume group {}: {e}", self.cfg.vg));
                return Ok(h);
            }
        };
        if vg.partial {
            h.problems.push(format!(
                "volume group {} is missing a physical volume",
                vg.name
            ));
        }
        if self.cfg.thin_pool.is_some() {
            match self.pool(&vg) {
                Ok(p) => {
                    if !p.attr.active {
                        h.problems
                            .push(format!("thin pool {} is not active", p.name));
                    }
                    if !p.health.is_empty() {
                        h.problems
                            .push(format!("thin pool {} health: {}", p.name, p.health));
                    }
                    let limit = 100.0 - self.cfg.free_floor_percent;
                    let (d, m) = (
                        p.data_percent.unwrap_or(0.0),
                        p.metadata_percent.unwrap_or(0.0),
                    );
                    if d >= limit || m >= limit {
                        h.problems.push(format!("thin pool {} is {d:.2}% full, metadata {m:.2}%: new volumes are refused", p.name));
                    }
                }
                Err(e) => h.problems.push(e.to_string()),
            }
        }
        Ok(h)
    }

    fn get(&self, name: &VolumeName) -> Result<Option<Volume>, VolumeError> {
        Ok(self.find_lv(name)?.as_ref().and_then(Self::to_volume))
    }

    fn lock_dir(&self) -> &Path {
        &self.cfg.lock_dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_needs_code_and_text() {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/rmnotfound.stderr",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert!(is_not_found(Some(5), &text));
        assert!(!is_not_found(Some(3), &text));
        let dup = std::fs::read_to_string(format!(
            "{}/tests/fixtures/dup.stderr",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert!(
            !is_not_found(Some(5), &dup),
            "already exists is not 'not found'"
        );
    }

    #[test]
    fn xfs_snapshots_mount_with_nouuid() {
        assert_eq!(
            LvmBackend::mount_opts(Filesystem::Xfs, true, "rw".into()),
            "rw,nouuid"
        );
        assert_eq!(
            LvmBackend::mount_opts(Filesystem::Ext4, true, "rw".into()),
            "rw"
        );
        assert_eq!(
            LvmBackend::mount_opts(Filesystem::Xfs, false, "rw".into()),
            "rw"
        );
    }
}
