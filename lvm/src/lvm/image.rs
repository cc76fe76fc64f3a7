//! Container roots on devicemapper thin: a base thin volume per image, filled once from the
//! image's root filesystem and then made read-only, and a thin snapshot of it per container,
//! grown to the task's root size. A snapshot costs a metadata update, so a root is ready in
//! milliseconds whatever the image size.

use std::path::Path;

use super::backend::Reuse;
use super::cmd::TAG_IMAGE;
use super::LvmBackend;
use crate::crash;
use crate::fs;
use crate::lock;
use crate::name::{Owner, VolumeKind, VolumeName};
use crate::size::Bytes;
use crate::volume::{CreateRequest, Filesystem, Volume, VolumeError, VolumeState};

/// Fills a freshly formatted, mounted image volume (e.g. unpacks layers into it).
pub type Fill<'a> = &'a dyn Fn(&Path) -> std::io::Result<()>;

impl LvmBackend {
    /// The base volume of `image_id`, created and filled by `fill` if it does not exist yet.
    /// Its owner is `image:<volume name>`; GC callers should keep image owners alive while
    /// the image is in use.
    pub fn ensure_image(
        &self,
        image_id: &str,
        size: Bytes,
        fs: Filesystem,
        fill: Fill<'_>,
    ) -> Result<Volume, VolumeError> {
        let name = VolumeName::for_task(VolumeKind::Image, image_id)?;
        let owner = Owner::new(&format!("image:{name}"))?;
        let req = CreateRequest {
            name: name.clone(),
            size,
            fs,
            owner: owner.clone(),
        };
        let _lock = lock::lock(&self.cfg.lock_dir, &name)?;
        let vg = match self.reuse_or_clear(&req, self.vg()?)? {
            Reuse::Existing(v) => return Ok(v),
            Reuse::Absent(vg) => vg,
        };
        let size = size.round_up(vg.extent_size.0);
        self.check_thin_floor(&vg, &name, size)?;
        let pool = self.cfg.thin_pool.as_deref().unwrap_or_default();
        self.lvm(
            &self
                .tool
                .create_thin(&self.cfg.vg, pool, &name, size, &owner, fs, true),
        )?;
        self.crash.step(crash::AFTER_ALLOCATE);
        let dev = self.device(&name);
        fs::mkfs(self.run.as_ref(), fs, &dev)?;
        self.crash.step(crash::AFTER_MKFS);
        let tmp = tempfile::Builder::new()
            .prefix("berth-image.")
            .tempdir()
            .map_err(|e| {
                VolumeError::io(
                    "creating a temporary directory in",
                    &std::env::temp_dir(),
                    e,
                )
            })?;
        fs::mount(self.run.as_ref(), fs, &dev, tmp.path(), "rw")?;
        let filled =
            fill(tmp.path()).map_err(|e| VolumeError::io("filling image volume at", tmp.path(), e));
        let unmounted = fs::unmount(self.run.as_ref(), &self.mountinfo, tmp.path());
        filled?;
        unmounted?;
        self.crash.step(crash::AFTER_FILL);
        self.lvm(&self.tool.read_only(&self.cfg.vg, &name))?;
        self.finish(&req, size, "image")
    }

    /// A container root: a thin snapshot of the image base `base`, grown to `size` if that
    /// is larger than the image. Idempotent like [`Backend::create`].
    pub fn snapshot_root(
        &self,
        name: &VolumeName,
        owner: &Owner,
        base: &VolumeName,
        size: Bytes,
    ) -> Result<Volume, VolumeError> {
        let _lock = lock::lock(&self.cfg.lock_dir, name)?;
        let vg = self.vg()?;
        let base_lv = vg
            .lvs
            .iter()
            .find(|l| l.name == base.as_str())
            .ok_or_else(|| VolumeError::NotFound(base.clone()))?;
        let base_v = Self::to_volume(base_lv).ok_or_else(|| VolumeError::NotOurs {
            name: base_lv.name.clone(),
        })?;
        if !base_lv.has_tag(TAG_IMAGE) || base_v.state != VolumeState::Complete {
            return Err(VolumeError::NotFound(base.clone()));
        }
        let req = CreateRequest {
            name: name.clone(),
            size,
            fs: base_v.fs,
            owner: owner.clone(),
        };
        let vg = match self.reuse_or_clear(&req, vg)? {
            Reuse::Existing(v) => return Ok(v),
            Reuse::Absent(vg) => vg,
        };
        self.check_thin_floor(&vg, name, size)?;
        self.lvm(
            &self
                .tool
                .create_snapshot(&self.cfg.vg, base, name, owner, base_v.fs),
        )?;
        self.crash.step(crash::AFTER_SNAPSHOT);
        let size = size.round_up(vg.extent_size.0);
        if size > base_v.size {
            self.lvm(&self.tool.extend(&self.cfg.vg, name, size))?;
            self.crash.step(crash::AFTER_EXTEND);
            fs::grow(
                self.run.as_ref(),
                &self.mountinfo,
                base_v.fs,
                &self.device(name),
            )?;
        }
        self.finish(&req, size.max(base_v.size), "snapshot")
    }
}
