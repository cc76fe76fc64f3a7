//! The executor's own settings (not the task's): where runc, berth-init, images and state
//! are. From `BERTH_EXECUTOR_*` variables under Mesos, or command-line options.

use std::path::PathBuf;

/// Settings for running task containers. `Default` is all-empty (for tests); real
/// settings come from [`RunConfig::from_env`].
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// The OCI runtime binary (runc; crun takes the same commands).
    pub runtime: PathBuf,
    /// The runtime's state root (`runc --root`).
    pub runtime_root: PathBuf,
    /// berth-init on the host, bind-mounted read-only into every container.
    pub init: PathBuf,
    /// Where `berth.image` names are looked up (`<images>/<name>` is a root filesystem).
    pub images: PathBuf,
    /// Per-container state: bundle, overlay dirs, checkpoints.
    pub state_dir: PathBuf,
    /// Per-container run dirs on the host, mounted at `/run/berth` in the container.
    pub run_dir: PathBuf,
    /// Parent of the containers' cgroups.
    pub cgroup_parent: String,
    /// Test hook: make the preparation step of this name fail (see README).
    pub fail_step: Option<String>,
    /// Container networking (the network step); `None` = a private netns with only lo.
    pub net: Option<super::network::NetConfig>,
    /// Where OCI images are unpacked (`<cache>/sha256-<manifest hex>/rootfs`), shared by
    /// every task of the machine.
    pub image_cache: PathBuf,
    /// The task's sized `/home` (the volume step): backend, filesystem, retention
    /// (`BERTH_EXECUTOR_VOLUME_*`, checked when a task asks for `home`).
    pub volume: super::volume::VolumeConfig,
    /// What a task's `disk` does (`BERTH_EXECUTOR_DISK`: `auto`, `enforce`, `ignore`; unset =
    /// `auto`): the scratch step (see `scratch`), checked when a task has `disk` > 0.
    pub disk: Option<String>,
}

impl RunConfig {
    /// Defaults, overridden by `BERTH_EXECUTOR_*` variables.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let path = |k: &str, d: &str| PathBuf::from(var(k).unwrap_or_else(|| d.to_string()));
        let init_default = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("berth-init")))
            .unwrap_or_else(|| PathBuf::from("/usr/bin/berth-init"));
        RunConfig {
            runtime: path("BERTH_EXECUTOR_RUNTIME", "runc"),
            runtime_root: path("BERTH_EXECUTOR_RUNTIME_ROOT", "/run/berth/runc"),
            init: var("BERTH_EXECUTOR_INIT")
                .map(PathBuf::from)
                .unwrap_or(init_default),
            images: path("BERTH_EXECUTOR_IMAGES", "/var/lib/berth/images"),
            state_dir: path("BERTH_EXECUTOR_STATE_DIR", "/var/lib/berth/containers"),
            run_dir: path("BERTH_EXECUTOR_RUN_DIR", "/run/berth/tasks"),
            cgroup_parent: var("BERTH_EXECUTOR_CGROUP_PARENT").unwrap_or_else(|| "berth".into()),
            fail_step: var("BERTH_EXECUTOR_FAIL_STEP"),
            net: var("BERTH_EXECUTOR_NET_PARENT").map(|parent| super::network::NetConfig {
                parent,
                mode: var("BERTH_EXECUTOR_NET_MODE").unwrap_or_else(|| "bridge".into()),
            }),
            image_cache: path("BERTH_EXECUTOR_IMAGE_CACHE", "/var/lib/berth/image-cache"),
            volume: super::volume::VolumeConfig::from_env(),
            disk: var(super::scratch::ENV_DISK),
        }
    }
}
