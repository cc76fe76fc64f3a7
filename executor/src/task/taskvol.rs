//! A task volume: what the home step (`super::volume`, `/home`) and the scratch step
//! (`super::scratch`, the writable layer on the task's `disk`) share. Both make a volume of
//! the configured berth-lvm backend, named from the task id and owned by the task, mount it
//! on the host at `<state dir>/<kind>` (`nosuid,nodev`) and undo it the same way: unmount,
//! remove unless kept, then remove the mount point (never recursively).
//!
//! What differs is a [`Kind`]: the step's name, the mount point and the names in messages as
//! data, how the volume is made before it is mounted (home: kept and grown; scratch: always
//! fresh) and what follows the mount (home: a bind on `/home`; scratch: nothing, the
//! `rootfs` step finds the mount).

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use berth_lvm::{Backend, Bytes, CreateRequest, Filesystem, MountOptions, VolumeKind, VolumeName};

use super::config::volume::{chain, owner_for_task, Opener, Retain};
use super::plan::PlanError;
use super::steps::{Checkpoint, Phase, Step, StepCtx, StepError};

/// Host mount options of every task volume: nothing the task writes there is a device or a
/// setuid program on the host side (the home bind adds its own `nosuid,nodev` too).
const MOUNT_EXTRA: [&str; 2] = ["nosuid", "nodev"];

/// What a kind of task volume is: its names as data, and the two places its step differs.
pub trait Kind: Sized + Send + Sync + 'static {
    /// The step's name (also what `BERTH_EXECUTOR_FAIL_STEP` names).
    const STEP: &'static str;
    /// The mount point's name in the state dir, and the volume's name in messages
    /// (`home volume removed`).
    const LABEL: &'static str;
    /// The task resource that sizes the volume (named by a plan error).
    const RESOURCE: &'static str;
    /// The volume name's kind.
    const VOLUME: VolumeKind;
    /// The type's name in `Debug`.
    const TYPE: &'static str;
    /// Whether the retention setting applies (shown in `Debug`).
    const RETAINS: bool;

    /// Makes the volume ready to mount at `target` (which exists).
    fn make(v: &TaskVolume<Self>, b: &dyn Backend, target: &Path) -> Result<(), StepError>;

    /// After the volume is mounted at `target`.
    fn mounted(v: &TaskVolume<Self>, ctx: &StepCtx, target: PathBuf);
}

/// The preparation step of a task volume of kind `K`.
pub struct TaskVolume<K: Kind> {
    pub req: CreateRequest,
    /// Always [`Retain::Never`] for a kind the retention does not apply to.
    pub retain: Retain,
    /// `loopfile` or `lvm` (for messages).
    pub backend: String,
    open: Opener,
    kind: PhantomData<fn() -> K>,
}

impl<K: Kind> fmt::Debug for TaskVolume<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct(K::TYPE);
        d.field("req", &self.req);
        if K::RETAINS {
            d.field("retain", &self.retain);
        }
        d.field("backend", &self.backend).finish()
    }
}

impl<K: Kind> TaskVolume<K> {
    /// The step from its parts.
    pub(super) fn from_parts(
        req: CreateRequest,
        retain: Retain,
        backend: &str,
        open: Opener,
    ) -> Self {
        TaskVolume {
            req,
            retain,
            backend: backend.into(),
            open,
            kind: PhantomData,
        }
    }

    /// The task's step once its settings are checked: the volume's name and owner from the
    /// task id (an id that cannot name a volume is the resource's fault).
    pub(super) fn for_task(
        task_id: &str,
        size: Bytes,
        fs: Filesystem,
        retain: Retain,
        backend: &str,
        open: Opener,
    ) -> Result<Self, PlanError> {
        let name = VolumeName::for_task(K::VOLUME, task_id).map_err(|e| PlanError::Resource {
            name: K::RESOURCE.into(),
            why: format!("no volume name for this task id: {e}"),
        })?;
        let owner = owner_for_task(task_id, &name);
        let req = CreateRequest {
            name,
            size,
            fs,
            owner,
        };
        Ok(Self::from_parts(req, retain, backend, open))
    }

    /// Where the volume is mounted on the host.
    pub fn mount_point(ctx: &StepCtx) -> PathBuf {
        ctx.state_dir().join(K::LABEL)
    }

    /// A step error naming the volume and its backend.
    pub(super) fn err(&self, what: &str, e: &dyn std::error::Error) -> StepError {
        StepError::new(
            K::STEP,
            format!(
                "{what} {} ({} backend): {}",
                self.req.name,
                self.backend,
                chain(e)
            ),
        )
    }

    /// Whether undo keeps the volume: retention `always` and the container was started (the
    /// checkpoint shows the `container` step done); a failed launch never keeps it.
    fn keep(&self, ctx: &StepCtx) -> bool {
        self.retain == Retain::Always
            && Checkpoint::load(&ctx.state_dir())
                .is_some_and(|cp| cp.phase("container") == Some(Phase::Done))
    }
}

fn mount_options() -> MountOptions {
    MountOptions {
        read_only: false,
        extra: MOUNT_EXTRA.iter().map(|s| s.to_string()).collect(),
    }
}

impl<K: Kind> Step for TaskVolume<K> {
    fn name(&self) -> &'static str {
        K::STEP
    }

    fn run(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let b = (self.open)().map_err(|e| self.err("opening the backend for", &e))?;
        let target = Self::mount_point(ctx);
        std::fs::create_dir_all(&target)
            .map_err(|e| StepError::io(K::STEP, "cannot create", &target, e))?;
        K::make(self, &*b, &target)?;
        b.mount(&self.req.name, &target, &mount_options())
            .map_err(|e| self.err("mounting", &e))?;
        K::mounted(self, ctx, target);
        Ok(())
    }

    fn undo(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let target = Self::mount_point(ctx);
        let b = (self.open)().map_err(|e| self.err("opening the backend for", &e))?;
        b.unmount(&target).map_err(|e| self.err("unmounting", &e))?;
        if self.keep(ctx) {
            tracing::info!(volume = %self.req.name, owner = %self.req.owner,
                "retention always: volume unmounted and kept");
        } else {
            match b.remove(&self.req.name) {
                Ok(true) => tracing::info!(volume = %self.req.name, "{} volume removed", K::LABEL),
                Ok(false) => {}
                Err(e) => return Err(self.err("removing", &e)),
            }
        }
        // Never recursive: a mount point still mounted fails here (EBUSY) instead of losing
        // the volume's files with the state dir.
        match std::fs::remove_dir(&target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StepError::io(K::STEP, "cannot remove", &target, e)),
        }
    }
}

/// The step for settings checked into `r`: none, the volume, or (when the settings cannot
/// make one) a step that fails its run with the reason, before anything is made, and fails
/// its undo if the volume's mount point exists (so the state dir is kept for the operator).
pub(super) fn into_step<K: Kind>(
    r: Result<Option<TaskVolume<K>>, PlanError>,
) -> Option<Box<dyn Step>> {
    match r {
        Ok(Some(v)) => Some(Box::new(v)),
        Ok(None) => None,
        Err(e) => Some(Box::new(Unusable::<K>(e.to_string(), PhantomData))),
    }
}

/// The step of kind `K` when the settings cannot make one (see [`into_step`]).
struct Unusable<K: Kind>(String, PhantomData<fn() -> K>);

impl<K: Kind> Step for Unusable<K> {
    fn name(&self) -> &'static str {
        K::STEP
    }
    fn run(&self, _: &StepCtx) -> Result<(), StepError> {
        Err(StepError::new(K::STEP, self.0.clone()))
    }
    fn undo(&self, ctx: &StepCtx) -> Result<(), StepError> {
        if TaskVolume::<K>::mount_point(ctx).exists() {
            return Err(StepError::new(
                K::STEP,
                format!("cannot undo the {} volume: {}", K::LABEL, self.0),
            ));
        }
        Ok(())
    }
}
