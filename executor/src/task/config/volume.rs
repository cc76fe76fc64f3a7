//! The volume settings (`BERTH_EXECUTOR_VOLUME_*`) and their check with a task's size:
//! what the home (`volume`) and `scratch` steps share, below the plan that checks them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use berth_lvm::exec::SystemRunner;
use berth_lvm::loopfile::LoopfileBackend;
use berth_lvm::lvm::{LvmBackend, LvmConfig};
use berth_lvm::{Backend, Bytes, Filesystem, Owner, VolumeError, VolumeKind, VolumeName};

use super::super::error::PlanError;

/// The settings' variables.
pub const ENV_BACKEND: &str = "BERTH_EXECUTOR_VOLUME_BACKEND";
pub const ENV_DIR: &str = "BERTH_EXECUTOR_VOLUME_DIR";
pub const ENV_LVM_CONFIG: &str = "BERTH_EXECUTOR_VOLUME_LVM_CONFIG";
pub const ENV_FS: &str = "BERTH_EXECUTOR_VOLUME_FS";
pub const ENV_RETAIN: &str = "BERTH_EXECUTOR_VOLUME_RETAIN";
pub const ENV_ROOT: &str = "BERTH_EXECUTOR_VOLUME_ROOT";
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
    /// The root filesystem: `overlay` (default) or `snapshot` (`BERTH_EXECUTOR_VOLUME_ROOT`,
    /// see `task::rootsnap`).
    pub root: Option<String>,
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
            root: var(ENV_ROOT),
        }
    }
}

/// Whether `value` (of [`ENV_ROOT`]) asks for thin snapshot roots; an error says what is
/// wrong.
pub fn parse_root_mode(value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("overlay") => Ok(false),
        Some("snapshot") => Ok(true),
        Some(other) => Err(format!(
            "{other:?} is not a root mode: use overlay or snapshot"
        )),
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
pub(in crate::task) fn mb_to_bytes(mb: f64) -> Bytes {
    Bytes::mib(mb.ceil() as u64)
}

/// The error and its sources, on one line.
pub(in crate::task) fn chain(e: &dyn std::error::Error) -> String {
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

pub(in crate::task) fn config_err(setting: &str, why: impl Into<String>) -> PlanError {
    PlanError::Config {
        setting: setting.into(),
        why: why.into(),
    }
}

/// Opens the configured backend `backend` (`loopfile` or `lvm`) with the executor's settings;
/// shared by the home volume and the scratch volume (`super::scratch`). Errors name the
/// setting at fault.
pub(in crate::task) fn opener(backend: &str, cfg: &VolumeConfig) -> Result<Opener, PlanError> {
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

/// The lvm backend of the executor's settings (for the thin root snapshots, which need its
/// image calls beyond [`Backend`]).
pub(in crate::task) fn lvm_backend(cfg: &VolumeConfig) -> Result<LvmBackend, PlanError> {
    let lvm = read_lvm_config(&cfg.lvm_config)?;
    LvmBackend::new(lvm).map_err(|e| config_err(ENV_LVM_CONFIG, chain(&e)))
}

fn read_lvm_config(path: &Path) -> Result<LvmConfig, PlanError> {
    let bad = |why: String| config_err(ENV_LVM_CONFIG, format!("{}: {why}", path.display()));
    let data = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let cfg: LvmConfig = serde_json::from_slice(&data).map_err(|e| bad(e.to_string()))?;
    cfg.validate().map_err(|e| bad(chain(&e)))?;
    Ok(cfg)
}

/// The home volume's settings, checked with the task's size (what the plan checks before
/// anything is made, and the `volume` step is made of).
pub struct HomeSettings {
    pub size: Bytes,
    pub fs: Filesystem,
    pub retain: Retain,
    pub backend: String,
    pub open: Opener,
}

/// The home volume's settings for a task asking `home_mb` of `/home`, or `None` when it asks
/// for none. Errors name `resources.home` or the setting at fault.
pub fn home_settings(
    task_id: &str,
    home_mb: f64,
    cfg: &VolumeConfig,
) -> Result<Option<HomeSettings>, PlanError> {
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
    // The name the step will give the volume (an id that cannot name one is the resource's).
    VolumeName::for_task(VolumeKind::Home, task_id).map_err(|e| PlanError::Resource {
        name: "home".into(),
        why: format!("no volume name for this task id: {e}"),
    })?;
    Ok(Some(HomeSettings {
        size,
        fs,
        retain,
        backend: backend.to_string(),
        open,
    }))
}
