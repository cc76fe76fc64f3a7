//! Thin root snapshots: with `BERTH_EXECUTOR_VOLUME_ROOT=snapshot` (and the `lvm` volume
//! backend with a `thin_pool`), a task of an OCI image gets as its root filesystem a thin
//! snapshot of a base volume of that image instead of an overlay on the image cache.
//!
//! The base (`berth-img-<manifest digest>`) is made once per image, by the first task that
//! needs it: a thin LV sized for the unpacked image, filled with a copy of its cache entry
//! (`cp -a`), then read-only. A per-base lock serializes tasks of one image started at once:
//! one fills, the others wait and find it complete. Bases are kept for the next task of the
//! image (GC lists them: `berth_lvm::gc::image_bases`). Each task's root is a snapshot of the
//! base named like the scratch volume (`berth-root-...`, owned by the task), grown to the
//! task's `disk` when that is larger than the base (so `disk` is enforced and the scratch
//! step is not used), always fresh, mounted on the bundle's `rootfs`, and removed with the
//! container. The `rootfs` step calls [`make`] and [`remove`].

use std::path::Path;
use std::process::Command;

use berth_lvm::lvm::image::ImageSpec;
use berth_lvm::lvm::LvmBackend;
use berth_lvm::{Backend, Bytes, Filesystem, MountOptions, VolumeKind, VolumeName};

use super::config::volume::{
    chain, lvm_backend, mb_to_bytes, owner_for_task, parse_root_mode as parse_mode, ENV_BACKEND,
};
use super::config::RunConfig;
use super::plan::Plan;
use super::steps::{StepCtx, StepError};
use crate::image::ImageSource;

pub use super::config::volume::ENV_ROOT;
/// The step these functions serve (errors are its).
const STEP: &str = "rootfs";
/// The filesystem of image bases (and so of roots).
const FS: Filesystem = Filesystem::Ext4;

/// Whether this task's root is a thin snapshot: the setting asks for it (a bad value too:
/// then [`make`] fails with the reason) and the image is an OCI image (a root filesystem
/// directory has no identity to key a base on: it gets the overlay).
pub fn applies(plan: &Plan, cfg: &RunConfig) -> bool {
    matches!(plan.image, ImageSource::Oci { .. })
        && parse_mode(cfg.volume.root.as_deref()).unwrap_or(true)
}

fn err(why: impl Into<String>) -> StepError {
    StepError::new(STEP, why.into())
}

fn backend(cfg: &RunConfig) -> Result<LvmBackend, StepError> {
    let bad = |why: String| err(format!("{ENV_ROOT}=snapshot: {why}"));
    parse_mode(cfg.volume.root.as_deref()).map_err(|e| err(format!("{ENV_ROOT}: {e}")))?;
    if cfg.volume.backend.as_deref() != Some("lvm") {
        return Err(bad(format!("needs {ENV_BACKEND}=lvm with a thin_pool")));
    }
    let b = lvm_backend(&cfg.volume).map_err(|e| bad(e.to_string()))?;
    if b.cfg.thin_pool.is_none() {
        return Err(bad(format!(
            "the lvm configuration {} has no thin_pool",
            cfg.volume.lvm_config.display()
        )));
    }
    Ok(b)
}

/// The task's root volume name (the scratch volume's: a task has one or the other).
fn root_name(plan: &Plan) -> Result<VolumeName, StepError> {
    VolumeName::for_task(VolumeKind::Root, &plan.task_id)
        .map_err(|e| err(format!("no volume name for this task id: {e}")))
}

/// The bytes the files under `dir` take on ext4 (4 KiB blocks, one block per inode that
/// is not a regular file), without following symlinks.
fn tree_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0u64;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let m = e.metadata()?;
            total += if m.is_file() {
                m.len().div_ceil(4096) * 4096
            } else {
                4096
            };
            if m.is_dir() {
                todo.push(e.path());
            }
        }
    }
    Ok(total)
}

/// The base volume's size for an image of `content` bytes: the content plus a tenth and
/// 16 MiB of room (the inode tables of many small files, a task that writes a little with
/// `disk` 0), plus ext4's own overhead.
fn base_size(content: u64) -> Bytes {
    let usable = Bytes(content + content / 10 + (16 << 20)).round_up(1 << 20);
    FS.device_size(usable.max(FS.min_size()))
}

/// `cp -a <rootfs>/. <dir>`: ownership, modes, times, xattrs, links and devices as they are.
fn copy_tree(rootfs: &Path, dir: &Path) -> std::io::Result<()> {
    let out = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", rootfs.display()))
        .arg(dir)
        .output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "cp -a {} {}: {}",
        rootfs.display(),
        dir.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// Makes the task's root (the base first if this image has none yet) and mounts it at
/// `target`.
pub fn make(ctx: &StepCtx, target: &Path) -> Result<(), StepError> {
    let ImageSource::Oci { image, rootfs } = &ctx.plan.image else {
        return Err(err("a snapshot root needs an OCI image"));
    };
    let b = backend(&ctx.cfg)?;
    let name = root_name(&ctx.plan)?;
    let owner = owner_for_task(&ctx.plan.task_id, &name);
    let content = tree_bytes(rootfs).map_err(|e| StepError::io(STEP, "cannot read", rootfs, e))?;
    let fill = |dir: &Path| copy_tree(rootfs, dir);
    let spec = ImageSpec {
        id: image.manifest.digest.as_str(),
        size: base_size(content),
        fs: FS,
        fill: &fill,
    };
    let start = std::time::Instant::now();
    let size = mb_to_bytes(ctx.plan.disk_mb.max(0.0));
    let v = b
        .image_root(&spec, &name, &owner, size, true)
        .map_err(|e| err(format!("root snapshot {name}: {}", chain(&e))))?;
    b.mount_new(&v, target, &MountOptions::default())
        .map_err(|e| err(format!("mounting root snapshot {name}: {}", chain(&e))))?;
    tracing::info!(volume = %name, image = %image.reference, size = %v.size,
        ms = start.elapsed().as_millis() as u64, "root snapshot mounted");
    Ok(())
}

/// Unmounts `target` and removes the task's root snapshot (absent = done).
pub fn remove(ctx: &StepCtx, target: &Path) -> Result<(), StepError> {
    let b = backend(&ctx.cfg)?;
    let name = root_name(&ctx.plan)?;
    b.unmount(target)
        .map_err(|e| err(format!("unmounting root snapshot {name}: {}", chain(&e))))?;
    if b.remove(&name)
        .map_err(|e| err(format!("removing root snapshot {name}: {}", chain(&e))))?
    {
        tracing::info!(volume = %name, "root snapshot removed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_values() {
        assert_eq!(parse_mode(None), Ok(false));
        assert_eq!(parse_mode(Some("overlay")), Ok(false));
        assert_eq!(parse_mode(Some("snapshot")), Ok(true));
        let e = parse_mode(Some("thin")).unwrap_err();
        assert!(e.contains("overlay or snapshot"), "{e}");
    }

    #[test]
    fn base_fits_the_content_with_room() {
        let b = base_size(200 << 20);
        assert!(b.0 >= (220 << 20) + (16 << 20), "{b}");
        assert!(b.0 < 300 << 20, "{b}");
        assert!(base_size(0) >= FS.min_size());
    }

    #[test]
    fn tree_bytes_counts_blocks() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/a"), vec![0u8; 5000]).unwrap();
        std::fs::write(d.path().join("b"), b"x").unwrap();
        // sub (4096) + a (8192) + b (4096)
        assert_eq!(tree_bytes(d.path()).unwrap(), 16384);
    }
}
