//! The volume step: the task's sized `/home` (berth-lvm), the first preparation step after
//! `scratch` (see `super::scratch`, which shares this module's backend settings).
//!
//! A task whose resources ask for `home` (MB) gets its own volume, named from the task id by
//! [`VolumeName::for_task`], owned by the task ([`owner_for_task`]), formatted ext4 (or xfs),
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

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use berth_lvm::exec::SystemRunner;
use berth_lvm::loopfile::LoopfileBackend;
use berth_lvm::lvm::{LvmBackend, LvmConfig};
use berth_lvm::{
    Backend, Bytes, CreateRequest, Filesystem, Owner, VolumeError, VolumeKind, VolumeName,
};

use super::config::RunConfig;
use super::plan::{Plan, PlanError};
use super::steps::{Step, StepCtx, StepError};
use super::taskvol::{into_step, Kind, TaskVolume};

/// The step's name (also what `BERTH_EXECUTOR_FAIL_STEP=volume` names).
pub const STEP: &str = "volume";
/// Where the volume appears in the container.
pub const HOME: &str = "/home";

/// The settings' variables.
pub const ENV_BACKEND: &str = "BERTH_EXECUTOR_VOLUME_BACKEND";
pub const ENV_DIR: &str = "BERTH_EXECUTOR_VOLUME_DIR";
pub const ENV_LVM_CONFIG: &str = "BERTH_EXECUTOR_VOLUME_LVM_CONFIG";
pub const ENV_FS: &str = "BERTH_EXECUTOR_VOLUME_FS";
pub const ENV_RETAIN: &str = "BERTH_EXECUTOR_VOLUME_RETAIN";
/// Test hook: make the loopfile backend abort the executor at a berth-lvm crash point
/// (`after-allocate`, `after-mkfs`, ...), as a SIGKILL in the middle of the step would.
pub const ENV_CRASH_AT: &str = "BERTH_EXECUTOR_VOLUME_CRASH_AT";

pub const DEFAULT_LOOPFILE_DIR: &str = "/var/lib/berth/volumes";
pub const DEFAULT_LVM_CONFIG: &str = "/etc/berth/lvm.json";

/// The executor's volume settings as given; checked when a task asks for a volume, so a bad
/// setting fails exactly the tasks that would use it, with a message naming the variable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeConfig {
    /// `loopfile` or `lvm`; `None` = no volumes (a task asking for `home` is refused).
    pub backend: Option<String>,
    /// The loopfile backend's directory (`<name>.img` + `<name>.json`).
    pub loopfile_dir: PathBuf,
    /// A JSON `LvmConfig` file for the lvm backend (unknown keys refused).
    pub lvm_config: PathBuf,
    /// `ext4` (default) or `xfs`.
    pub fs: Option<String>,
    /// `never` (default) or `always`.
    pub retain: Option<String>,
    /// Test hook (see [`ENV_CRASH_AT`]).
    pub crash_at: Option<String>,
}

impl VolumeConfig {
    /// From `BERTH_EXECUTOR_VOLUME_*` (empty = unset).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        VolumeConfig {
            backend: var(ENV_BACKEND),
            loopfile_dir: PathBuf::from(
                var(ENV_DIR).unwrap_or_else(|| DEFAULT_LOOPFILE_DIR.into()),
            ),
            lvm_config: PathBuf::from(
                var(ENV_LVM_CONFIG).unwrap_or_else(|| DEFAULT_LVM_CONFIG.into()),
            ),
            fs: var(ENV_FS),
            retain: var(ENV_RETAIN),
            crash_at: var(ENV_CRASH_AT),
        }
    }
}

/// What happens to a volume when its task ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retain {
    /// Removed with the task (default).
    Never,
    /// Unmounted and kept, owner-tagged (unless the launch failed: then removed).
    Always,
}

impl FromStr for Retain {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(Retain::Never),
            "always" => Ok(Retain::Always),
            other => Err(format!("{other:?} is not a retention: use never or always")),
        }
    }
}

impl fmt::Display for Retain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Retain::Never => "never",
            Retain::Always => "always",
        })
    }
}

/// Opens the configured backend (on each use: cheap, and keeps the step `Send + Sync`).
pub type Opener = Arc<dyn Fn() -> Result<Box<dyn Backend>, VolumeError> + Send + Sync>;

/// The owner recorded on a task's volume: the task id when it is a valid owner (Marathon's
/// ids are), else the volume name (unique per task id, always a valid owner). GC asks whether
/// a task with this owner is live, so whoever checks must derive it the same way.
pub fn owner_for_task(task_id: &str, name: &VolumeName) -> Owner {
    Owner::new(task_id)
        .unwrap_or_else(|_| Owner::new(name.as_str()).expect("a volume name is a valid owner"))
}

/// A MB resource as bytes, rounded up to whole MiB (Mesos' MB are MiB).
pub(super) fn mb_to_bytes(mb: f64) -> Bytes {
    Bytes::mib(mb.ceil() as u64)
}

/// The error and its sources, on one line.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

pub(super) fn config_err(setting: &str, why: impl Into<String>) -> PlanError {
    PlanError::Config {
        setting: setting.into(),
        why: why.into(),
    }
}

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
        if home_mb <= 0.0 {
            return Ok(None);
        }
        let backend = cfg.backend.as_deref().ok_or_else(|| {
            config_err(
                ENV_BACKEND,
                format!(
                    "resources.home asks for a {home_mb} MB /home volume, but no volume backend \
                     is configured on this executor (set {ENV_BACKEND} to loopfile or lvm)"
                ),
            )
        })?;
        let fs: Filesystem = match cfg.fs.as_deref() {
            None => Filesystem::Ext4,
            Some(v) => v
                .parse()
                .map_err(|e: VolumeError| config_err(ENV_FS, e.to_string()))?,
        };
        let retain: Retain = match cfg.retain.as_deref() {
            None => Retain::Never,
            Some(v) => v.parse().map_err(|e: String| config_err(ENV_RETAIN, e))?,
        };
        let open = opener(backend, cfg)?;
        let size = mb_to_bytes(home_mb);
        if size < fs.min_size() {
            return Err(PlanError::Resource {
                name: "home".into(),
                why: format!(
                    "{home_mb} MB is below the {fs} minimum of {}",
                    fs.min_size()
                ),
            });
        }
        HomeVolume::for_task(task_id, size, fs, retain, backend, open).map(Some)
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

/// Opens the configured backend `backend` (`loopfile` or `lvm`) with the executor's settings;
/// shared by the home volume and the scratch volume (`super::scratch`). Errors name the
/// setting at fault.
pub(super) fn opener(backend: &str, cfg: &VolumeConfig) -> Result<Opener, PlanError> {
    match backend {
        "loopfile" => {
            let dir = cfg.loopfile_dir.clone();
            if !dir.is_absolute() {
                return Err(config_err(
                    ENV_DIR,
                    format!("{} is not an absolute path", dir.display()),
                ));
            }
            let crash_at = cfg.crash_at.clone();
            Ok(Arc::new(move || {
                let mut b = LoopfileBackend::new(&dir, Box::new(SystemRunner::default()))?;
                b.crash.crash_at = crash_at.clone();
                Ok(Box::new(b) as Box<dyn Backend>)
            }))
        }
        "lvm" => {
            let lvm = read_lvm_config(&cfg.lvm_config)?;
            Ok(Arc::new(move || {
                Ok(Box::new(LvmBackend::new(lvm.clone())?) as Box<dyn Backend>)
            }))
        }
        other => Err(config_err(
            ENV_BACKEND,
            format!("{other:?} is not a volume backend: use loopfile or lvm"),
        )),
    }
}

fn read_lvm_config(path: &Path) -> Result<LvmConfig, PlanError> {
    let bad = |why: String| config_err(ENV_LVM_CONFIG, format!("{}: {why}", path.display()));
    let data = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let cfg: LvmConfig = serde_json::from_slice(&data).map_err(|e| bad(e.to_string()))?;
    cfg.validate().map_err(|e| bad(chain(&e)))?;
    Ok(cfg)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::task::plan::Mode;
    use crate::task::steps::{Checkpoint, Outputs, Phase};
    use berth_lvm::MountOptions;
    use berth_lvm::{Capacity, Health, Resized, Volume, VolumeState};
    use std::sync::Mutex;

    /// Records calls; volumes live in a list (also used by the scratch step's tests).
    #[derive(Default)]
    pub(in crate::task) struct FakeInner {
        pub(in crate::task) log: Mutex<Vec<String>>,
        pub(in crate::task) vols: Mutex<Vec<Volume>>,
        pub(in crate::task) mounted: Mutex<Vec<PathBuf>>,
        pub(in crate::task) fail_unmount: bool,
        pub(in crate::task) lock_dir: PathBuf,
    }

    #[derive(Clone, Default)]
    pub(in crate::task) struct Fake(pub(in crate::task) Arc<FakeInner>);

    impl std::ops::Deref for Fake {
        type Target = FakeInner;
        fn deref(&self) -> &FakeInner {
            &self.0
        }
    }

    impl Fake {
        fn record(&self, s: String) {
            self.0.log.lock().unwrap().push(s);
        }
    }

    impl Backend for Fake {
        fn create(&self, req: &CreateRequest) -> Result<Volume, VolumeError> {
            self.record(format!("create {} {} {}", req.name, req.size, req.owner));
            let mut vols = self.vols.lock().unwrap();
            if let Some(v) = vols.iter().find(|v| v.name == req.name) {
                return Ok(v.clone());
            }
            let v = Volume {
                name: req.name.clone(),
                owner: req.owner.clone(),
                size: req.size,
                fs: req.fs,
                state: VolumeState::Complete,
                device: "/dev/fake".into(),
                layout: "fake".into(),
            };
            vols.push(v.clone());
            Ok(v)
        }
        fn resize(&self, name: &VolumeName, size: Bytes) -> Result<Resized, VolumeError> {
            self.record(format!("resize {name} {size}"));
            let mut vols = self.vols.lock().unwrap();
            let v = vols.iter_mut().find(|v| &v.name == name).unwrap();
            let r = Resized::between(v.size, size);
            v.size = size;
            Ok(r)
        }
        fn mount(&self, name: &VolumeName, t: &Path, o: &MountOptions) -> Result<(), VolumeError> {
            self.record(format!("mount {name} {} {}", t.display(), o.to_arg()?));
            self.mounted.lock().unwrap().push(t.into());
            Ok(())
        }
        fn unmount(&self, t: &Path) -> Result<(), VolumeError> {
            if self.fail_unmount {
                return Err(VolumeError::io(
                    "umount",
                    t,
                    std::io::Error::from_raw_os_error(libc::EBUSY),
                ));
            }
            let was = {
                let mut m = self.mounted.lock().unwrap();
                let n = m.len();
                m.retain(|p| p != t);
                n != m.len()
            };
            if was {
                self.record(format!("unmount {}", t.display()));
            }
            Ok(())
        }
        fn remove(&self, name: &VolumeName) -> Result<bool, VolumeError> {
            let mut vols = self.vols.lock().unwrap();
            let n = vols.len();
            vols.retain(|v| &v.name != name);
            let gone = n != vols.len();
            if gone {
                self.record(format!("remove {name}"));
            }
            Ok(gone)
        }
        fn remove_locked(
            &self,
            name: &VolumeName,
            _: &berth_lvm::lock::VolumeLock,
        ) -> Result<bool, VolumeError> {
            self.remove(name)
        }
        fn list(&self) -> Result<Vec<Volume>, VolumeError> {
            Ok(self.vols.lock().unwrap().clone())
        }
        fn capacity(&self) -> Result<Capacity, VolumeError> {
            Err(VolumeError::Unsupported {
                backend: "fake",
                what: "capacity",
            })
        }
        fn health(&self) -> Result<Health, VolumeError> {
            Ok(Health::default())
        }
        fn lock_dir(&self) -> &Path {
            &self.lock_dir
        }
    }

    pub(in crate::task) fn ctx(dir: &Path) -> StepCtx {
        StepCtx {
            plan: Plan {
                task_id: "web.1".into(),
                container_id: "berth-web.1".into(),
                hostname: "web".into(),
                cpus: 0.0,
                mem_mb: 0.0,
                disk_mb: 0.0,
                ports: vec![],
                home_mb: 64.0,
                bandwidth_mbit: 0.0,
                image: "/".into(),
                mode: Mode::Command("true".into()),
                env: vec![],
                health: None,
            },
            cfg: RunConfig {
                state_dir: dir.join("state"),
                run_dir: dir.join("run"),
                ..RunConfig::default()
            },
            sandbox: dir.into(),
            outputs: Mutex::new(Outputs::default()),
        }
    }

    /// Settings with the loopfile backend in its default directory.
    pub(in crate::task) fn loopfile() -> VolumeConfig {
        VolumeConfig {
            backend: Some("loopfile".into()),
            loopfile_dir: DEFAULT_LOOPFILE_DIR.into(),
            ..VolumeConfig::default()
        }
    }

    /// Opens `fake` (for a step's `with_backend`).
    pub(in crate::task) fn opener_of(fake: &Fake) -> Opener {
        let f = fake.clone();
        Arc::new(move || Ok(Box::new(f.clone()) as Box<dyn Backend>))
    }

    fn step(fake: &Fake, retain: Retain) -> HomeVolume {
        let v = HomeVolume::from_settings("web.1", 64.0, &loopfile())
            .unwrap()
            .unwrap();
        HomeVolume::with_backend(v.req, retain, "fake", opener_of(fake))
    }

    pub(in crate::task) fn log(f: &Fake) -> Vec<String> {
        std::mem::take(&mut *f.log.lock().unwrap())
    }

    /// A fake that fails every unmount (EBUSY).
    pub(in crate::task) fn busy_fake() -> Fake {
        Fake(Arc::new(FakeInner {
            fail_unmount: true,
            ..FakeInner::default()
        }))
    }

    /// Runs `s`: its mount point is a directory, and the log starts with the volume created
    /// (`<name_prefix>...`, 64 MiB, owner web.1) then mounted `rw,nosuid,nodev` there.
    /// Returns the mount point and the whole log.
    pub(in crate::task) fn run_created_and_mounted<K: Kind>(
        s: &TaskVolume<K>,
        c: &StepCtx,
        fake: &Fake,
        name_prefix: &str,
    ) -> (PathBuf, Vec<String>) {
        s.run(c).unwrap();
        let mp = TaskVolume::<K>::mount_point(c);
        assert!(mp.is_dir());
        let l = log(fake);
        assert!(
            l[0].starts_with(&format!("create {name_prefix}")) && l[0].ends_with(" 64MiB web.1"),
            "{l:?}"
        );
        assert_eq!(
            l[1],
            format!("mount {} {} rw,nosuid,nodev", s.req.name, mp.display())
        );
        (mp, l)
    }

    /// Undo unmounts and removes the volume and its mount point; a second undo does nothing.
    pub(in crate::task) fn undo_removes_idempotently<K: Kind>(
        s: &TaskVolume<K>,
        c: &StepCtx,
        fake: &Fake,
    ) {
        let mp = TaskVolume::<K>::mount_point(c);
        s.undo(c).unwrap();
        assert_eq!(
            log(fake),
            [
                format!("unmount {}", mp.display()),
                format!("remove {}", s.req.name)
            ]
        );
        assert!(!mp.exists());
        s.undo(c).unwrap();
        assert!(log(fake).is_empty());
    }

    /// Undo fails (`want` starts the error) on an unmount failure, keeping the volume and
    /// the mount point.
    pub(in crate::task) fn undo_fails_keeping_both<K: Kind>(
        s: &TaskVolume<K>,
        c: &StepCtx,
        fake: &Fake,
        want: &str,
    ) {
        let e = s.undo(c).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e}");
        assert_eq!(fake.list().unwrap().len(), 1);
        assert!(TaskVolume::<K>::mount_point(c).is_dir());
    }

    #[test]
    fn no_home_no_step_and_settings_are_checked() {
        let none = VolumeConfig::default();
        assert!(HomeVolume::from_settings("t", 0.0, &none)
            .unwrap()
            .is_none());
        let e = HomeVolume::from_settings("t", 64.0, &none)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("resources.home") && e.contains(ENV_BACKEND),
            "{e}"
        );
        let lf = VolumeConfig {
            backend: Some("loopfile".into()),
            loopfile_dir: "/v".into(),
            ..VolumeConfig::default()
        };
        let bad = |patch: &dyn Fn(&mut VolumeConfig), want: &str| {
            let mut c = lf.clone();
            patch(&mut c);
            let e = HomeVolume::from_settings("t", 64.0, &c)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e} should name {want}");
        };
        bad(&|c| c.backend = Some("zfs".into()), ENV_BACKEND);
        bad(&|c| c.fs = Some("btrfs".into()), ENV_FS);
        bad(&|c| c.retain = Some("sometimes".into()), ENV_RETAIN);
        bad(&|c| c.loopfile_dir = "rel".into(), ENV_DIR);
        // Below the filesystem's minimum: the task's fault, naming resources.home.
        let e = HomeVolume::from_settings("t", 4.0, &lf)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("resources.home") && e.contains("minimum"),
            "{e}"
        );
        let xfs = VolumeConfig {
            fs: Some("xfs".into()),
            ..lf.clone()
        };
        let e = HomeVolume::from_settings("t", 64.0, &xfs)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("resources.home") && e.contains("xfs"), "{e}");
        let v = HomeVolume::from_settings("web.1", 63.5, &lf)
            .unwrap()
            .unwrap();
        assert_eq!(v.req.size, Bytes::mib(64));
        assert_eq!(v.req.fs, Filesystem::Ext4);
        assert_eq!(v.req.owner.as_str(), "web.1");
        assert!(v.req.name.as_str().starts_with("berth-home-web-1-"));
        assert_eq!(v.retain, Retain::Never);
    }

    #[test]
    fn lvm_settings_come_from_a_strict_json_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("lvm.json");
        let c = VolumeConfig {
            backend: Some("lvm".into()),
            lvm_config: path.clone(),
            ..VolumeConfig::default()
        };
        let e = HomeVolume::from_settings("t", 64.0, &c)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(ENV_LVM_CONFIG) && e.contains("cannot read"),
            "{e}"
        );
        std::fs::write(&path, r#"{"vg": "vg0", "colour": "blue"}"#).unwrap();
        let e = HomeVolume::from_settings("t", 64.0, &c)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field") && e.contains("colour"), "{e}");
        std::fs::write(&path, r#"{"vg": "vg0", "home_layout": "thin"}"#).unwrap();
        let e = HomeVolume::from_settings("t", 64.0, &c)
            .unwrap_err()
            .to_string();
        assert!(e.contains("thin_pool"), "{e}");
        std::fs::write(&path, r#"{"vg": "vg0"}"#).unwrap();
        let v = HomeVolume::from_settings("t", 64.0, &c).unwrap().unwrap();
        assert_eq!(v.backend, "lvm");
    }

    #[test]
    fn owners_are_task_ids_or_the_volume_name() {
        let n = VolumeName::for_task(VolumeKind::Home, "a b/c").unwrap();
        assert_eq!(owner_for_task("a b/c", &n).as_str(), n.as_str());
        let n = VolumeName::for_task(VolumeKind::Home, "web.2f4d").unwrap();
        assert_eq!(owner_for_task("web.2f4d", &n).as_str(), "web.2f4d");
    }

    #[test]
    fn run_mounts_and_binds_undo_removes_idempotently() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        let fake = Fake::default();
        let s = step(&fake, Retain::Never);
        let (mp, _) = run_created_and_mounted(&s, &c, &fake, "berth-home-web-1-");
        assert_eq!(
            c.outputs().binds,
            vec![(mp.clone(), "/home".to_string(), false)]
        );
        // Run again (a retried step): no second bind.
        s.run(&c).unwrap();
        assert_eq!(c.outputs().binds.len(), 1);
        log(&fake);
        // Idempotent, and fine when nothing was ever made (a half-done run).
        undo_removes_idempotently(&s, &c, &fake);
    }

    #[test]
    fn a_kept_volume_smaller_than_asked_is_grown() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        let fake = Fake::default();
        let mut s = step(&fake, Retain::Never);
        s.req.size = Bytes::mib(32);
        fake.create(&s.req).unwrap();
        s.req.size = Bytes::mib(64);
        log(&fake);
        s.run(&c).unwrap();
        let l = log(&fake);
        assert!(
            l[1].starts_with("resize ") && l[1].ends_with(" 64MiB"),
            "{l:?}"
        );
    }

    #[test]
    fn retention_keeps_only_volumes_of_started_containers() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        let fake = Fake::default();
        let s = step(&fake, Retain::Always);
        // A launch that failed before the container: removed despite `always`.
        s.run(&c).unwrap();
        let cp = Checkpoint {
            container_id: "berth-web.1".into(),
            steps: vec![
                ("volume".into(), Phase::Done),
                ("container".into(), Phase::Started),
            ],
            outputs: c.outputs(),
        };
        cp.save(&c.state_dir()).unwrap();
        s.undo(&c).unwrap();
        assert!(fake.list().unwrap().is_empty());
        // The container was started: unmounted and kept.
        s.run(&c).unwrap();
        let mut cp = cp;
        cp.steps[1].1 = Phase::Done;
        cp.save(&c.state_dir()).unwrap();
        log(&fake);
        s.undo(&c).unwrap();
        assert_eq!(
            log(&fake),
            [format!("unmount {}", HomeVolume::mount_point(&c).display())]
        );
        let kept = fake.list().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].owner.as_str(), "web.1");
    }

    #[test]
    fn an_unmount_failure_keeps_the_volume_and_the_mount_point() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        let fake = busy_fake();
        let s = step(&fake, Retain::Never);
        s.run(&c).unwrap();
        undo_fails_keeping_both(&s, &c, &fake, "volume: unmounting berth-home-web-1-");
    }
}
