//! Container roots on devicemapper thin: a base thin volume per image, filled once from the
//! image's root filesystem and then made read-only, and a thin snapshot of it per container,
//! grown to the task's root size. A snapshot costs a metadata update, so a root is ready in
//! one `lvm` call (plus the report that finds the base) whatever the image size.
//!
//! A snapshot at the base's size is made complete by its `lvcreate` (one atomic metadata
//! commit: nothing is left to do after it); one grown past the base is tagged incomplete
//! until `lvextend` and the filesystem grow are done, so a crash in between leaves a
//! volume GC takes and the next create rebuilds.
//!
//! A fresh root at the base's size whose base has a marker ([`super::ready`]) skips the
//! report too: device-mapper gives the pool's fill level for the floor, and the one
//! `lvcreate` is all (under emulation a report is about as slow as the `lvcreate`). Should
//! it fail (a leftover root of that name, a base removed behind berth's back), the full
//! path runs: report, clean up, rebuild.

use std::path::Path;

use super::backend::Reuse;
use super::cmd::TAG_IMAGE;
use super::ready;
use super::report::Vg;
use super::LvmBackend;
use crate::crash;
use crate::dm;
use crate::fs;
use crate::lock;
use crate::name::{Owner, VolumeKind, VolumeName};
use crate::size::Bytes;
use crate::volume::{CreateRequest, Filesystem, MountOptions, Volume, VolumeError, VolumeState};

/// Fills a freshly formatted, mounted image volume (e.g. unpacks layers into it).
pub type Fill<'a> = &'a dyn Fn(&Path) -> std::io::Result<()>;

/// An image base as [`LvmBackend::image_root`] makes it when it does not exist yet.
pub struct ImageSpec<'a> {
    /// The image's identity (a manifest digest): one base per id.
    pub id: &'a str,
    /// The base volume's size (the filesystem the image is filled into).
    pub size: Bytes,
    pub fs: Filesystem,
    pub fill: Fill<'a>,
}

/// The base volume's name of an image id (`berth-img-...`).
pub fn image_volume_name(image_id: &str) -> Result<VolumeName, VolumeError> {
    Ok(VolumeName::for_task(VolumeKind::Image, image_id)?)
}

impl LvmBackend {
    /// The base volume of `image_id`, created and filled by `fill` if it does not exist yet.
    /// Its owner is `image:<volume name>`; GC callers should keep image owners alive while
    /// the image is in use. Concurrent callers (threads or processes) serialize on the
    /// base's lock: one fills, the others find it complete.
    pub fn ensure_image(
        &self,
        image_id: &str,
        size: Bytes,
        fs: Filesystem,
        fill: Fill<'_>,
    ) -> Result<Volume, VolumeError> {
        let spec = ImageSpec {
            id: image_id,
            size,
            fs,
            fill,
        };
        let name = image_volume_name(image_id)?;
        let _lock = lock::lock(&self.cfg.lock_dir, &name)?;
        self.image_locked(&spec, &name, self.vg()?).map(|(v, _)| v)
    }

    /// A container root `name` as a thin snapshot of the image `image`'s base, which is made
    /// (once, whoever asks first) if it does not exist yet. Both locks are held throughout
    /// (the root's, then the base's), so GC cannot take the base between the two; one
    /// report serves both when the base exists. Idempotent like [`Self::snapshot_root`];
    /// with `fresh`, a volume of this name that exists already (berth's, unmounted) is
    /// removed first, so the root carries nothing of an earlier container.
    pub fn image_root(
        &self,
        image: &ImageSpec<'_>,
        name: &VolumeName,
        owner: &Owner,
        size: Bytes,
        fresh: bool,
    ) -> Result<Volume, VolumeError> {
        let base = image_volume_name(image.id)?;
        let _root = lock::lock(&self.cfg.lock_dir, name)?;
        let _base = lock::lock(&self.cfg.lock_dir, &base)?;
        if fresh {
            if let Some(v) = self.quick_root(&base, name, owner, size, image.fs)? {
                return Ok(v);
            }
        }
        let mut vg = self.vg()?;
        if let Some(lv) = vg.lvs.iter().find(|l| fresh && l.name == name.as_str()) {
            if Self::to_volume(lv).is_none() {
                return Err(VolumeError::NotOurs {
                    name: lv.name.clone(),
                });
            }
            self.refuse_if_mounted(name)?;
            tracing::warn!(volume = %name, "a leftover root volume was removed");
            self.destroy(name)?;
            vg = self.vg()?;
        }
        let (base_v, vg) = self.image_locked(image, &base, vg)?;
        self.snapshot_locked(vg, name, owner, &base_v, size)
    }

    /// Under both locks: the root `name` as a snapshot of `base` at its size, without a
    /// report, if `base`'s marker says it is complete and the pool is above the floor.
    /// `None`: take the full path (no marker, a root to grow, a pool device-mapper does not
    /// report, or a failed `lvcreate`, which changed nothing).
    fn quick_root(
        &self,
        base: &VolumeName,
        name: &VolumeName,
        owner: &Owner,
        size: Bytes,
        fs: Filesystem,
    ) -> Result<Option<Volume>, VolumeError> {
        let Some((base_size, base_fs)) = ready::read(&self.cfg.lock_dir, base) else {
            return Ok(None);
        };
        let Some(pool) = self.cfg.thin_pool.as_deref() else {
            return Ok(None);
        };
        // The base's size is whole extents: a larger root needs lvextend, the full path.
        if base_fs != fs || size > base_size {
            return Ok(None);
        }
        let status = self
            .run
            .dm_status(&dm::lvm_name(&self.cfg.vg, pool, "tpool"));
        let Some((data, meta)) = status.ok().and_then(|s| dm::thin_pool_percent(&s)) else {
            return Ok(None);
        };
        self.check_pool_use(pool, data, meta, name, size)?;
        let c = self
            .tool
            .create_snapshot(&self.cfg.vg, base, name, owner, fs, false);
        let out = self.run.run(&c)?;
        if !out.success() {
            tracing::info!(volume = %name, base = %base, error = %out.stderr_text(),
                "snapshot without a report failed; taking the full path");
            return Ok(None);
        }
        self.crash.step(crash::AFTER_SNAPSHOT);
        Ok(Some(Volume {
            name: name.clone(),
            owner: owner.clone(),
            size: base_size,
            fs,
            state: VolumeState::Complete,
            device: self.device(name),
            layout: "snapshot".into(),
        }))
    }

    /// Under the base's lock: the complete base `name` from `vg`, or made now; with a
    /// report that has it. Either way the base's marker is written.
    fn image_locked(
        &self,
        image: &ImageSpec<'_>,
        name: &VolumeName,
        vg: Vg,
    ) -> Result<(Volume, Vg), VolumeError> {
        let owner = Owner::new(&format!("{}{name}", crate::gc::IMAGE_OWNER_PREFIX))?;
        let req = CreateRequest {
            name: name.clone(),
            size: image.size,
            fs: image.fs,
            owner,
        };
        // A complete base is used as it is, active or not (a thin snapshot of an inactive
        // origin needs no suspend of it).
        let found = vg.lvs.iter().find(|l| l.name == name.as_str());
        if let Some(v) = found.and_then(Self::to_volume) {
            if v.state == VolumeState::Complete && v.owner == req.owner && v.fs == req.fs {
                ready::write(&self.cfg.lock_dir, name, v.size, v.fs);
                return Ok((v, vg));
            }
        }
        let vg = match self.reuse_or_clear(&req, vg)? {
            Reuse::Existing(v) => return Ok((v, self.vg()?)),
            Reuse::Absent(vg) => vg,
        };
        let v = self.build_image(&req, image.fill, &vg)?;
        ready::write(&self.cfg.lock_dir, name, v.size, v.fs);
        Ok((v, self.vg()?))
    }

    /// Creates, fills and completes the base `req` (absent from `vg`).
    fn build_image(
        &self,
        req: &CreateRequest,
        fill: Fill<'_>,
        vg: &Vg,
    ) -> Result<Volume, VolumeError> {
        let (name, fs) = (&req.name, req.fs);
        let size = req.size.round_up(vg.extent_size.0);
        self.check_thin_floor(vg, name, size)?;
        ready::clear(&self.cfg.lock_dir, name)
            .map_err(|e| VolumeError::io("removing the marker in", &self.cfg.lock_dir, e))?;
        let pool = self.cfg.thin_pool.as_deref().unwrap_or_default();
        self.lvm(
            &self
                .tool
                .create_thin(&self.cfg.vg, pool, name, size, &req.owner, fs, true),
        )?;
        self.crash.step(crash::AFTER_ALLOCATE);
        let dev = self.device(name);
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
        self.lvm(&self.tool.read_only(&self.cfg.vg, name))?;
        self.finish(req, size, "image")
    }

    /// A container root: a thin snapshot of the image base `base`, grown to `size` if that
    /// is larger than the image. Idempotent like [`crate::Backend::create`].
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
        self.snapshot_locked(vg, name, owner, &base_v, size)
    }

    /// Under the root's lock, with a report: the snapshot `name` of the complete base
    /// `base_v`.
    fn snapshot_locked(
        &self,
        vg: Vg,
        name: &VolumeName,
        owner: &Owner,
        base_v: &Volume,
        size: Bytes,
    ) -> Result<Volume, VolumeError> {
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
        let size = size.round_up(vg.extent_size.0);
        let grow = size > base_v.size;
        self.lvm(&self.tool.create_snapshot(
            &self.cfg.vg,
            &base_v.name,
            name,
            owner,
            base_v.fs,
            grow,
        ))?;
        self.crash.step(crash::AFTER_SNAPSHOT);
        if !grow {
            return Ok(Volume {
                name: name.clone(),
                owner: owner.clone(),
                size: base_v.size,
                fs: base_v.fs,
                state: VolumeState::Complete,
                device: self.device(name),
                layout: "snapshot".into(),
            });
        }
        self.lvm(&self.tool.extend(&self.cfg.vg, name, size))?;
        self.crash.step(crash::AFTER_EXTEND);
        fs::grow(
            self.run.as_ref(),
            &self.mountinfo,
            base_v.fs,
            &self.device(name),
        )?;
        self.finish(&req, size, "snapshot")
    }

    /// Mounts a root [`Self::image_root`] or [`Self::snapshot_root`] just returned (active,
    /// not mounted anywhere) at `target`, without another report.
    pub fn mount_new(
        &self,
        v: &Volume,
        target: &Path,
        opts: &MountOptions,
    ) -> Result<(), VolumeError> {
        let o = Self::mount_opts(v.fs, v.layout == "snapshot", opts.to_arg()?);
        Ok(fs::mount(self.run.as_ref(), v.fs, &v.device, target, &o)?)
    }
}
