//! The volume step: the task's sized `/home` (berth-lvm), the first preparation step after
//! `scratch` (see `super::scratch`, which shares this module's backend settings).
//!
//! A task whose resources ask for `home` (MB) gets its own volume, named from the task id by
//! [`VolumeName::for_task`](berth_lvm::VolumeName::for_task), owned by the task ([`owner_for_task`]), formatted ext4 (or xfs),
//! mounted on the host at `<state dir>/home` (`nosuid,nodev`) and handed to the bundle as a
//! read-write bind mount on `/home` through [`Outputs::binds`](super::steps::Outputs). A task
//! without `home` has no volume step: the image's `/home` is used.
//!
//! The executor's settings ([`VolumeConfig`], `BERTH_EXECUTOR_VOLUME_*`) choose the backend
//! (`loopfile` or `lvm`), the filesystem and the retention; they are checked together with the
//! task's size before anything is made ([`HomeVolume::from_settings`], called by the plan).
//!
//! Undo unmounts, then removes the volume unless the retention says to keep it: with
//! `always`, a volume whose container was started is unmounted and kept (owner-tagged, for the
//! operator and berth's GC); a volume of a launch that failed is always removed. Undo is
//! idempotent, works from the task id alone (after an executor crash), and never deletes a
//! directory recursively (a mount point that is still mounted makes it fail, so the runner
//! keeps the state dir).

use std::path::{Path, PathBuf};

use berth_lvm::{Backend, CreateRequest, VolumeKind};

use super::config::volume::home_settings;
use super::config::RunConfig;
use super::plan::{Plan, PlanError};
use super::steps::{Step, StepCtx, StepError};
use super::taskvol::{into_step, Kind, TaskVolume};

pub use super::config::volume::{
    owner_for_task, HomeSettings, Opener, Retain, VolumeConfig, DEFAULT_LOOPFILE_DIR,
    DEFAULT_LVM_CONFIG, ENV_BACKEND, ENV_CRASH_AT, ENV_DIR, ENV_FS, ENV_LVM_CONFIG, ENV_RETAIN,
};

/// The step's name (also what `BERTH_EXECUTOR_FAIL_STEP=volume` names).
pub const STEP: &str = "volume";
/// Where the volume appears in the container.
pub const HOME: &str = "/home";

/// The home volume's kind: a volume kept and grown across runs of the task id (retention
/// applies), bound on `/home` in the container.
#[derive(Debug)]
pub struct Home;

/// The preparation step `volume`.
pub type HomeVolume = TaskVolume<Home>;

impl Kind for Home {
    const STEP: &'static str = STEP;
    const LABEL: &'static str = "home";
    const RESOURCE: &'static str = berth_lvm::resource::HOME;
    const VOLUME: VolumeKind = VolumeKind::Home;
    const TYPE: &'static str = "HomeVolume";
    const RETAINS: bool = true;

    fn make(v: &HomeVolume, b: &dyn Backend, _: &Path) -> Result<(), StepError> {
        let made = b.create(&v.req).map_err(|e| v.err("creating", &e))?;
        // A volume kept from an earlier run of this task id may be smaller: grow it.
        if made.size < v.req.size {
            b.resize(&v.req.name, v.req.size)
                .map_err(|e| v.err("growing", &e))?;
        }
        Ok(())
    }

    fn mounted(v: &HomeVolume, ctx: &StepCtx, target: PathBuf) {
        tracing::info!(volume = %v.req.name, size = %v.req.size, fs = %v.req.fs,
            at = %target.display(), "home volume mounted");
        if let Ok(mut o) = ctx.outputs.lock() {
            if !o.binds.iter().any(|(_, dst, _)| dst == HOME) {
                o.binds.push((target, HOME.to_string(), false));
            }
        }
    }
}

impl HomeVolume {
    /// The task's volume step, or `None` when it asks for no `home`. Checks the executor's
    /// settings and the size before anything is made; errors name `resources.home` or the
    /// setting at fault.
    pub fn from_settings(
        task_id: &str,
        home_mb: f64,
        cfg: &VolumeConfig,
    ) -> Result<Option<HomeVolume>, PlanError> {
        let Some(s) = home_settings(task_id, home_mb, cfg)? else {
            return Ok(None);
        };
        HomeVolume::for_task(task_id, s.size, s.fs, s.retain, &s.backend, s.open).map(Some)
    }

    /// A step on a backend of the caller's (tests, other tools).
    pub fn with_backend(req: CreateRequest, retain: Retain, backend: &str, open: Opener) -> Self {
        HomeVolume::from_parts(req, retain, backend, open)
    }
}

/// The volume step for a validated plan, if it asks for `home`. The plan checked the
/// settings already; should they fail now (changed under a restarted executor), the step
/// fails its run and its undo with the reason, so nothing is made and the state dir (with a
/// possibly mounted volume in it) is kept for the operator.
pub fn step_for(plan: &Plan, cfg: &RunConfig) -> Option<Box<dyn Step>> {
    into_step(HomeVolume::from_settings(
        &plan.task_id,
        plan.home_mb,
        &cfg.volume,
    ))
}
#[cfg(test)]
pub(super) mod tests;
