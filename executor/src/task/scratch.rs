//! The scratch step: the task's `disk` enforced. The container's writable layer (the
//! overlay's upper and work dirs, see the `rootfs` step) lives on a volume of the task's
//! `disk` size instead of the host's state dir, so writes to `/` beyond it get ENOSPC and a
//! task cannot fill the host's disk.
//!
//! The volume is made by the configured berth-lvm backend (the home volume's settings,
//! `BERTH_EXECUTOR_VOLUME_*`), named [`VolumeName::for_task`] with the root kind, owned by the
//! task ([`owner_for_task`]), always ext4 (whatever `BERTH_EXECUTOR_VOLUME_FS` says for
//! `/home`), at least 8 MiB (ext4's minimum), mounted on the host at `<state dir>/scratch`
//! with `nosuid,nodev`. The `rootfs` step puts `upper` and `work` on it when it is mounted
//! ([`layer_base`]). It is always fresh (a leftover of that name is removed first) and always
//! removed with the container: the home volume's retention does not apply.
//!
//! `BERTH_EXECUTOR_DISK` ([`DiskMode`]) says what happens to a task with `disk` > 0:
//! `auto` (default) enforces it when a volume backend is configured and otherwise logs a
//! warning and runs the task unenforced, as before; `enforce` refuses such a task when no
//! backend is configured; `ignore` never enforces (the task only sees `BERTH_DISK_MB`).
//! The step comes first in the list, so a setting that refuses the task fails before
//! anything is made.

use std::path::{Path, PathBuf};

use berth_lvm::{Backend, CreateRequest, Filesystem, VolumeKind};

use super::config::volume::{
    config_err, mb_to_bytes, opener, Opener, Retain, VolumeConfig, ENV_BACKEND,
};
use super::config::RunConfig;
use super::plan::{Plan, PlanError};
use super::steps::{Checkpoint, Step, StepCtx, StepError};
use super::taskvol::{into_step, Kind, TaskVolume};

pub use super::config::disk::{DiskMode, ENV_DISK};

/// The step's name (also what `BERTH_EXECUTOR_FAIL_STEP=scratch` names).
pub const STEP: &str = "scratch";
/// The scratch volume's filesystem (overlay upper dirs need `d_type`; small minimum).
pub const FS: Filesystem = Filesystem::Ext4;

/// The scratch volume's kind: always fresh, always removed (retention does not apply),
/// mounted for the `rootfs` step's upper dir rather than bound into the container.
#[derive(Debug)]
pub struct Scratch;

/// The preparation step `scratch`.
pub type ScratchVolume = TaskVolume<Scratch>;

impl Kind for Scratch {
    const STEP: &'static str = STEP;
    const LABEL: &'static str = "scratch";
    const RESOURCE: &'static str = "disk";
    const VOLUME: VolumeKind = VolumeKind::Root;
    const TYPE: &'static str = "ScratchVolume";
    const RETAINS: bool = false;

    fn make(v: &ScratchVolume, b: &dyn Backend, target: &Path) -> Result<(), StepError> {
        // Always fresh: a volume of this name left from an earlier life of the task id
        // (whatever its size) would carry that container's writes.
        b.unmount(target).map_err(|e| v.err("unmounting", &e))?;
        if b.remove(&v.req.name)
            .map_err(|e| v.err("removing the leftover", &e))?
        {
            tracing::warn!(volume = %v.req.name, "a leftover scratch volume was removed");
        }
        b.create(&v.req).map_err(|e| v.err("creating", &e))?;
        Ok(())
    }

    fn mounted(v: &ScratchVolume, _: &StepCtx, target: PathBuf) {
        tracing::info!(volume = %v.req.name, size = %v.req.size,
            at = %target.display(), "scratch volume mounted: resources.disk enforced");
    }
}

impl ScratchVolume {
    /// The task's scratch step, or `None` when its `disk` is not enforced (0, `ignore`, or
    /// `auto` without a backend: then a warning is logged). Errors name the setting at
    /// fault (`BERTH_EXECUTOR_DISK`, or a `BERTH_EXECUTOR_VOLUME_*` one).
    pub fn from_settings(
        task_id: &str,
        disk_mb: f64,
        mode: Option<&str>,
        cfg: &VolumeConfig,
    ) -> Result<Option<ScratchVolume>, PlanError> {
        if disk_mb <= 0.0 {
            return Ok(None);
        }
        let mode: DiskMode = match mode {
            None => DiskMode::Auto,
            Some(v) => v.parse().map_err(|e: String| config_err(ENV_DISK, e))?,
        };
        if mode == DiskMode::Ignore {
            return Ok(None);
        }
        let Some(backend) = cfg.backend.as_deref() else {
            if mode == DiskMode::Enforce {
                return Err(config_err(
                    ENV_DISK,
                    format!(
                        "enforce: resources.disk asks for {disk_mb} MB, but no volume backend \
                         is configured on this executor (set {ENV_BACKEND} to loopfile or lvm, \
                         or {ENV_DISK} to auto or ignore)"
                    ),
                ));
            }
            tracing::warn!(task = %task_id, disk_mb,
                "resources.disk is not enforced: no volume backend is configured ({ENV_BACKEND}); \
                 the task's writable layer is on the host's state dir");
            return Ok(None);
        };
        let open = opener(backend, cfg)?;
        let mut size = mb_to_bytes(disk_mb);
        if size < FS.min_size() {
            tracing::info!(task = %task_id, disk_mb, min = %FS.min_size(),
                "resources.disk is below the ext4 minimum: the scratch volume gets the minimum");
            size = FS.min_size();
        }
        ScratchVolume::for_task(task_id, size, FS, Retain::Never, backend, open).map(Some)
    }

    /// A step on a backend of the caller's (tests, other tools).
    pub fn with_backend(req: CreateRequest, backend: &str, open: Opener) -> Self {
        ScratchVolume::from_parts(req, Retain::Never, backend, open)
    }
}

/// Where the `rootfs` step puts the overlay's `upper` and `work` dirs: on the scratch volume
/// when the scratch step mounted one, else in the state dir (the task's `disk` unenforced).
pub fn layer_base(ctx: &StepCtx) -> PathBuf {
    let scratch = ScratchVolume::mount_point(ctx);
    if is_mount_point(&scratch) {
        scratch
    } else {
        ctx.state_dir()
    }
}

fn is_mount_point(path: &std::path::Path) -> bool {
    let Ok(canon) = path.canonicalize() else {
        return false;
    };
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| {
            berth_lvm::fs::parse_mountinfo(&t)
                .iter()
                .any(|m| m.target == canon)
        })
        .unwrap_or(false)
}

/// The scratch step for a validated plan, if its `disk` is enforced. A container whose
/// checkpoint shows a scratch step gets one too (so that a restarted executor undoes it even
/// if its settings no longer enforce `disk`). Settings that refuse the task (or that cannot
/// open the backend) give a step that fails its run with the reason, before anything is
/// made (the step comes first), and fails its undo if the volume's mount point exists.
pub fn step_for(plan: &Plan, cfg: &RunConfig) -> Option<Box<dyn Step>> {
    // A thin snapshot root is the writable layer, sized to `disk` itself.
    if super::rootsnap::applies(plan, cfg) {
        return None;
    }
    let mode = cfg.disk.as_deref();
    match ScratchVolume::from_settings(&plan.task_id, plan.disk_mb, mode, &cfg.volume) {
        Ok(None) => {}
        made_or_refused => return into_step(made_or_refused),
    }
    let recorded =
        Checkpoint::load(&plan.state_dir(cfg)).is_some_and(|cp| cp.phase(STEP).is_some());
    if !recorded {
        return None;
    }
    let mb = plan.disk_mb.max(1.0);
    into_step(ScratchVolume::from_settings(
        &plan.task_id,
        mb,
        Some("enforce"),
        &cfg.volume,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::steps::{Checkpoint, Phase};
    use crate::task::volume::tests::{
        busy_fake, ctx, log, loopfile as lf, opener_of, run_created_and_mounted,
        undo_fails_keeping_both, undo_removes_idempotently, Fake,
    };
    use berth_lvm::{Backend, Bytes, VolumeName};

    fn step(fake: &Fake) -> ScratchVolume {
        let v = ScratchVolume::from_settings("web.1", 64.0, None, &lf())
            .unwrap()
            .unwrap();
        ScratchVolume::with_backend(v.req, "fake", opener_of(fake))
    }

    #[test]
    fn modes_decide_whether_disk_is_enforced() {
        let none = VolumeConfig::default();
        let get = |mb: f64, mode: Option<&str>, cfg: &VolumeConfig| {
            ScratchVolume::from_settings("t", mb, mode, cfg)
        };
        // disk 0: never a step, whatever the settings (even a bad mode).
        for mode in [None, Some("enforce"), Some("bogus")] {
            assert!(get(0.0, mode, &none).unwrap().is_none());
        }
        // No backend: auto runs unenforced, ignore too, enforce refuses naming both.
        assert!(get(64.0, None, &none).unwrap().is_none());
        assert!(get(64.0, Some("auto"), &none).unwrap().is_none());
        assert!(get(64.0, Some("ignore"), &none).unwrap().is_none());
        let e = get(64.0, Some("enforce"), &none).unwrap_err().to_string();
        assert!(
            e.contains(ENV_DISK) && e.contains("resources.disk") && e.contains(ENV_BACKEND),
            "{e}"
        );
        // A backend: auto and enforce make a step, ignore does not.
        assert!(get(64.0, None, &lf()).unwrap().is_some());
        assert!(get(64.0, Some("enforce"), &lf()).unwrap().is_some());
        assert!(get(64.0, Some("ignore"), &lf()).unwrap().is_none());
        // Bad settings name themselves.
        let e = get(64.0, Some("strict"), &lf()).unwrap_err().to_string();
        assert!(e.contains(ENV_DISK) && e.contains("strict"), "{e}");
        let zfs = VolumeConfig {
            backend: Some("zfs".into()),
            ..lf()
        };
        let e = get(64.0, None, &zfs).unwrap_err().to_string();
        assert!(e.contains(ENV_BACKEND), "{e}");
        let rel = VolumeConfig {
            loopfile_dir: "rel".into(),
            ..lf()
        };
        let e = get(64.0, None, &rel).unwrap_err().to_string();
        assert!(e.contains(crate::task::volume::ENV_DIR), "{e}");
    }

    #[test]
    fn sizes_names_owners_and_the_filesystem() {
        let xfs = VolumeConfig {
            fs: Some("xfs".into()),
            retain: Some("always".into()),
            ..lf()
        };
        let v = ScratchVolume::from_settings("web.1", 63.5, None, &xfs)
            .unwrap()
            .unwrap();
        assert_eq!(v.req.size, Bytes::mib(64));
        // Always ext4, whatever /home's filesystem is.
        assert_eq!(v.req.fs, Filesystem::Ext4);
        assert_eq!(v.req.owner.as_str(), "web.1");
        assert!(
            v.req.name.as_str().starts_with("berth-root-web-1-"),
            "{}",
            v.req.name
        );
        assert_eq!(
            v.req.name,
            VolumeName::for_task(VolumeKind::Root, "web.1").unwrap()
        );
        // Below ext4's minimum: the minimum (never refused: `disk` of a few MB is common).
        let v = ScratchVolume::from_settings("web.1", 2.0, None, &lf())
            .unwrap()
            .unwrap();
        assert_eq!(v.req.size, Bytes::mib(8));
        // An id an owner cannot hold: the volume name is the owner.
        let v = ScratchVolume::from_settings("a b/c", 16.0, None, &lf())
            .unwrap()
            .unwrap();
        assert_eq!(v.req.owner.as_str(), v.req.name.as_str());
    }

    #[test]
    fn run_mounts_fresh_and_undo_removes_idempotently() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        let fake = Fake::default();
        let s = step(&fake);
        let (mp, l) = run_created_and_mounted(&s, &c, &fake, "berth-root-web-1-");
        assert_eq!(mp, c.state_dir().join("scratch"));
        assert_eq!(l.len(), 2, "{l:?}");
        // No bind into the container: the rootfs step uses the mount.
        assert!(c.outputs().binds.is_empty());
        undo_removes_idempotently(&s, &c, &fake);
        assert!(fake.list().unwrap().is_empty());
    }

    #[test]
    fn a_leftover_volume_is_removed_before_the_new_one() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        let fake = Fake::default();
        let s = step(&fake);
        let mut old = s.req.clone();
        old.size = Bytes::mib(512);
        fake.create(&old).unwrap();
        log(&fake);
        s.run(&c).unwrap();
        let l = log(&fake);
        assert_eq!(l[0], format!("remove {}", s.req.name), "{l:?}");
        assert!(
            l[1].starts_with("create ") && l[1].contains(" 64MiB "),
            "{l:?}"
        );
        assert_eq!(fake.list().unwrap()[0].size, Bytes::mib(64));
    }

    #[test]
    fn an_unmount_failure_keeps_the_volume_and_the_mount_point() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        let fake = busy_fake();
        let s = step(&fake);
        std::fs::create_dir_all(ScratchVolume::mount_point(&c)).unwrap();
        fake.create(&s.req).unwrap();
        undo_fails_keeping_both(&s, &c, &fake, "scratch: unmounting berth-root-web-1-");
    }

    #[test]
    fn without_a_mount_the_layer_stays_in_the_state_dir() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        std::fs::create_dir_all(ScratchVolume::mount_point(&c)).unwrap();
        // A directory that is not a mount point does not count.
        assert_eq!(layer_base(&c), c.state_dir());
    }

    #[test]
    fn step_for_follows_settings_and_the_checkpoint() {
        let d = tempfile::tempdir().unwrap();
        let mut c = ctx(d.path());
        c.plan.disk_mb = 64.0;
        // No backend (auto): no step.
        assert!(step_for(&c.plan, &c.cfg).is_none());
        // A backend: the step.
        c.cfg.volume = lf();
        assert_eq!(step_for(&c.plan, &c.cfg).unwrap().name(), STEP);
        // ignore: none, unless the checkpoint shows one was made (a restarted executor
        // with other settings still undoes it).
        c.cfg.disk = Some("ignore".into());
        assert!(step_for(&c.plan, &c.cfg).is_none());
        std::fs::create_dir_all(c.state_dir()).unwrap();
        let cp = Checkpoint {
            container_id: "berth-web.1".into(),
            steps: vec![(STEP.into(), Phase::Done)],
            ..Checkpoint::default()
        };
        cp.save(&c.state_dir()).unwrap();
        assert_eq!(step_for(&c.plan, &c.cfg).unwrap().name(), STEP);
        // Recorded, but no backend any more: a step whose undo is fine while nothing is
        // mounted and fails (keeping the state dir) when the mount point is there.
        c.cfg.volume = VolumeConfig::default();
        let s = step_for(&c.plan, &c.cfg).unwrap();
        s.undo(&c).unwrap();
        std::fs::create_dir_all(ScratchVolume::mount_point(&c)).unwrap();
        let e = s.undo(&c).unwrap_err().to_string();
        assert!(e.contains("cannot undo the scratch volume"), "{e}");
        // enforce without a backend: a step that fails its run naming the setting.
        std::fs::remove_dir_all(c.state_dir()).unwrap();
        c.cfg.disk = Some("enforce".into());
        let e = step_for(&c.plan, &c.cfg)
            .unwrap()
            .run(&c)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("scratch: ") && e.contains(ENV_DISK), "{e}");
    }
}
