//! The executor's own settings (not the task's): where runc, berth-init, images and state
//! are. From `BERTH_EXECUTOR_*` variables under Mesos, or command-line options.
//!
//! [`SETTINGS`] documents every variable (`berth-executor config` lists them);
//! [`check`] validates them: the executor refuses to start with a setting that is wrong
//! whatever the task ([`Problem::per_task`] false), and a task fails naming the setting
//! when the check depends on the machine at launch time (the runtime and berth-init
//! binaries, which may be installed after the executor started).

use std::path::{Path, PathBuf};

pub mod disk;
pub mod hardening;
pub mod host;
pub mod net;
pub mod volume;

use crate::mesos::duration::StoutDuration;
pub use hardening::{clamp_rlimit, parse_rlimit, swap_accounting, Hardening, HardeningError};
pub use host::HostLimits;
use net::NetConfig;
use volume::VolumeConfig;

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
    /// Test hook: SIGKILL the executor right after the step of this name ran, before its
    /// checkpoint says done (what `kill -9` in the middle of a launch leaves; GC tests).
    pub crash_step: Option<String>,
    /// Container networking (the network step); `None` = a private netns with only lo.
    pub net: Option<NetConfig>,
    /// Where OCI images are unpacked (`<cache>/sha256-<manifest hex>/rootfs`), shared by
    /// every task of the machine.
    pub image_cache: PathBuf,
    /// The task's sized `/home` (the volume step): backend, filesystem, retention
    /// (`BERTH_EXECUTOR_VOLUME_*`, checked when a task asks for `home`).
    pub volume: VolumeConfig,
    /// The machine's size: upper bounds of a task's `cpus` and `mem`.
    pub host: HostLimits,
    /// What a task's `disk` does (`BERTH_EXECUTOR_DISK`: `auto`, `enforce`, `ignore`; unset =
    /// `auto`): the scratch step (see `scratch`), checked when a task has `disk` > 0.
    pub disk: Option<String>,
}

/// One `BERTH_EXECUTOR_*` setting, as documented by `berth-executor config`.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    /// The default as shown (`None`: unset).
    pub default: Option<&'static str>,
    pub meaning: &'static str,
    /// A test hook: listed only when set.
    pub hook: bool,
}

const fn s(name: &'static str, default: Option<&'static str>, meaning: &'static str) -> Setting {
    Setting {
        name,
        default,
        meaning,
        hook: false,
    }
}

pub const RUNTIME: &str = "BERTH_EXECUTOR_RUNTIME";
pub const RUNTIME_ROOT: &str = "BERTH_EXECUTOR_RUNTIME_ROOT";
pub const INIT: &str = "BERTH_EXECUTOR_INIT";
pub const IMAGES: &str = "BERTH_EXECUTOR_IMAGES";
pub const IMAGE_CACHE: &str = "BERTH_EXECUTOR_IMAGE_CACHE";
pub const STATE_DIR: &str = "BERTH_EXECUTOR_STATE_DIR";
pub const RUN_DIR: &str = "BERTH_EXECUTOR_RUN_DIR";
pub const CGROUP_PARENT: &str = "BERTH_EXECUTOR_CGROUP_PARENT";
pub const NET_PARENT: &str = "BERTH_EXECUTOR_NET_PARENT";
pub const NET_MODE: &str = "BERTH_EXECUTOR_NET_MODE";
pub const AGENT_KEEPALIVE: &str = "BERTH_EXECUTOR_AGENT_KEEPALIVE";
pub const AGENT_TIMEOUT: &str = "BERTH_EXECUTOR_AGENT_TIMEOUT";
pub const STREAM_SILENCE: &str = "BERTH_EXECUTOR_STREAM_SILENCE";
pub const FAIL_STEP: &str = "BERTH_EXECUTOR_FAIL_STEP";
pub const CRASH_STEP: &str = "BERTH_EXECUTOR_CRASH_STEP";

/// The macvlan modes `BERTH_EXECUTOR_NET_MODE` takes.
pub const NET_MODES: [&str; 4] = ["bridge", "private", "vepa", "passthru"];

/// Every setting, in the order `berth-executor config` prints them.
pub const SETTINGS: &[Setting] = &[
    s(
        RUNTIME,
        Some("runc"),
        "OCI runtime binary, a path or a program in PATH (runc or crun)",
    ),
    s(
        RUNTIME_ROOT,
        Some("/run/berth/runc"),
        "the runtime's --root (absolute)",
    ),
    s(
        INIT,
        None,
        "berth-init on the host, bind-mounted into every container (default: next to the executor)",
    ),
    s(
        IMAGES,
        Some("/var/lib/berth/images"),
        "where berth.image names are looked up (absolute)",
    ),
    s(
        IMAGE_CACHE,
        Some("/var/lib/berth/image-cache"),
        "where OCI images are unpacked (absolute)",
    ),
    s(
        STATE_DIR,
        Some("/var/lib/berth/containers"),
        "bundles, overlays, checkpoints (absolute)",
    ),
    s(
        RUN_DIR,
        Some("/run/berth/tasks"),
        "per-task host dirs mounted at /run/berth (absolute)",
    ),
    s(
        CGROUP_PARENT,
        Some("berth"),
        "cgroup parent of the containers: a relative path of plain names",
    ),
    s(
        NET_PARENT,
        None,
        "host NIC of the containers' macvlan eth0 (unset: only lo)",
    ),
    s(
        NET_MODE,
        Some("bridge"),
        "macvlan mode: bridge, private, vepa or passthru",
    ),
    s(
        volume::ENV_BACKEND,
        None,
        "/home volumes: loopfile or lvm (unset: tasks asking for home are refused)",
    ),
    s(
        volume::ENV_DIR,
        Some(volume::DEFAULT_LOOPFILE_DIR),
        "the loopfile backend's directory (absolute)",
    ),
    s(
        volume::ENV_LVM_CONFIG,
        Some(volume::DEFAULT_LVM_CONFIG),
        "the lvm backend's JSON config",
    ),
    s(
        volume::ENV_FS,
        Some("ext4"),
        "filesystem of /home volumes: ext4 or xfs",
    ),
    s(
        volume::ENV_RETAIN,
        Some("never"),
        "keep a task's volume after it ends: never or always",
    ),
    s(
        volume::ENV_ROOT,
        Some("overlay"),
        "the root filesystem of OCI images: overlay (on the image cache) or snapshot (thin snapshot of a per-image base; lvm backend with thin_pool)",
    ),
    s(
        AGENT_KEEPALIVE,
        Some("30secs"),
        "TCP keepalive idle time of the connections to the agent (stout duration)",
    ),
    s(
        AGENT_TIMEOUT,
        Some("30secs"),
        "timeout of a call to the agent (stout duration)",
    ),
    s(
        STREAM_SILENCE,
        Some("65mins"),
        "the event stream is dead after this long without a byte (stout duration)",
    ),
    s(
        disk::ENV_DISK,
        Some("auto"),
        "the task's disk: auto (enforced on a volume when a backend is set), enforce (refuse it without one) or ignore",
    ),
    s(
        "BERTH_EXECUTOR_SECCOMP",
        Some("default"),
        "seccomp: default (berth's profile), unconfined, or a path to a JSON LinuxSeccomp",
    ),
    s(
        "BERTH_EXECUTOR_SWAP",
        Some("none"),
        "swap beyond mem: none (memory+swap = mem, where the host accounts swap) or unlimited",
    ),
    s(
        "BERTH_EXECUTOR_RLIMIT_NOFILE",
        Some("65536"),
        "RLIMIT_NOFILE of the container's processes: N, SOFT:HARD or unlimited",
    ),
    s(
        "BERTH_EXECUTOR_RLIMIT_CORE",
        Some("0"),
        "RLIMIT_CORE of the container's processes: N, SOFT:HARD or unlimited",
    ),
    Setting {
        name: FAIL_STEP,
        default: None,
        meaning: "TEST HOOK: make this preparation step fail after running",
        hook: true,
    },
    Setting {
        name: CRASH_STEP,
        default: None,
        meaning: "TEST HOOK: SIGKILL the executor right after this preparation step ran",
        hook: true,
    },
    Setting {
        name: volume::ENV_CRASH_AT,
        default: None,
        meaning: "TEST HOOK: abort the executor at this berth-lvm crash point",
        hook: true,
    },
];

/// A setting that is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{var}: {why}")]
pub struct Problem {
    pub var: String,
    pub why: String,
    /// Depends on the machine at launch time: each task fails naming it, the executor
    /// still starts.
    pub per_task: bool,
}

/// A set value: `None` when unset or empty.
fn get(vars: &dyn Fn(&str) -> Option<String>, k: &str) -> Option<String> {
    vars(k).filter(|v| !v.is_empty())
}

/// The process environment as a lookup.
pub fn process_vars(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

impl RunConfig {
    /// Defaults, overridden by `BERTH_EXECUTOR_*` variables.
    pub fn from_env() -> Self {
        Self::from_vars(&process_vars)
    }

    /// Defaults, overridden by the variables `vars` gives.
    pub fn from_vars(vars: &dyn Fn(&str) -> Option<String>) -> Self {
        let var = |k: &str| get(vars, k);
        let path = |k: &str, d: &str| PathBuf::from(var(k).unwrap_or_else(|| d.to_string()));
        let init_default = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("berth-init")))
            .unwrap_or_else(|| PathBuf::from("/usr/bin/berth-init"));
        RunConfig {
            runtime: path(RUNTIME, "runc"),
            runtime_root: path(RUNTIME_ROOT, "/run/berth/runc"),
            init: var(INIT).map(PathBuf::from).unwrap_or(init_default),
            images: path(IMAGES, "/var/lib/berth/images"),
            state_dir: path(STATE_DIR, "/var/lib/berth/containers"),
            run_dir: path(RUN_DIR, "/run/berth/tasks"),
            cgroup_parent: var(CGROUP_PARENT).unwrap_or_else(|| "berth".into()),
            fail_step: var(FAIL_STEP),
            crash_step: var(CRASH_STEP),
            net: var(NET_PARENT).map(|parent| NetConfig {
                parent,
                mode: var(NET_MODE).unwrap_or_else(|| "bridge".into()),
            }),
            image_cache: path(IMAGE_CACHE, "/var/lib/berth/image-cache"),
            volume: VolumeConfig {
                backend: var(volume::ENV_BACKEND),
                loopfile_dir: path(volume::ENV_DIR, volume::DEFAULT_LOOPFILE_DIR),
                lvm_config: path(volume::ENV_LVM_CONFIG, volume::DEFAULT_LVM_CONFIG),
                fs: var(volume::ENV_FS),
                retain: var(volume::ENV_RETAIN),
                crash_at: var(volume::ENV_CRASH_AT),
                root: var(volume::ENV_ROOT),
            },
            host: HostLimits::of_this_host(),
            disk: var(disk::ENV_DISK),
        }
    }
}

/// A cgroup parent: a relative path of plain names (`berth`, `berth.slice/tasks`).
fn plain_relative_path(v: &str) -> Result<(), String> {
    if v.starts_with('/') {
        return Err("must be relative (it is placed under the cgroup root)".into());
    }
    for c in v.split('/') {
        let plain = !c.is_empty()
            && c != "."
            && c != ".."
            && c.len() <= 255
            && c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-' | '@'));
        if !plain {
            return Err(format!(
                "{:?} is not a plain name ([A-Za-z0-9_.@-], not `.` or `..`, no empty part)",
                c
            ));
        }
    }
    Ok(())
}

/// Checks every setting; returns each problem, naming its variable.
pub fn check(vars: &dyn Fn(&str) -> Option<String>) -> Vec<Problem> {
    let cfg = RunConfig::from_vars(vars);
    let mut out = Vec::new();
    let mut bad = |var: &str, why: String, per_task: bool| {
        out.push(Problem {
            var: var.to_string(),
            why,
            per_task,
        })
    };
    for (var, p) in [
        (RUNTIME_ROOT, &cfg.runtime_root),
        (IMAGES, &cfg.images),
        (IMAGE_CACHE, &cfg.image_cache),
        (STATE_DIR, &cfg.state_dir),
        (RUN_DIR, &cfg.run_dir),
    ] {
        if !p.is_absolute() {
            bad(
                var,
                format!("{} is not an absolute path", p.display()),
                false,
            );
        }
    }
    if let Err(why) = plain_relative_path(&cfg.cgroup_parent) {
        bad(CGROUP_PARENT, why, false);
    }
    for var in ["BERTH_EXECUTOR_RLIMIT_NOFILE", "BERTH_EXECUTOR_RLIMIT_CORE"] {
        if let Some(v) = get(vars, var) {
            if parse_rlimit(&v).is_none() {
                bad(
                    var,
                    format!("{v:?} is not a limit (N, SOFT:HARD with SOFT <= HARD, or unlimited)"),
                    false,
                );
            }
        }
    }
    if let Some(v) = get(vars, disk::ENV_DISK) {
        if let Err(e) = v.parse::<disk::DiskMode>() {
            bad(disk::ENV_DISK, e.to_string(), false);
        }
    }
    if let Err(e) = volume::parse_root_mode(cfg.volume.root.as_deref()) {
        bad(volume::ENV_ROOT, e, false);
    }
    if let Some(v) = get(vars, "BERTH_EXECUTOR_SWAP") {
        if !matches!(v.trim(), "none" | "unlimited") {
            bad(
                "BERTH_EXECUTOR_SWAP",
                format!("{v:?} is neither `none` nor `unlimited`"),
                false,
            );
        }
    }
    match &cfg.net {
        Some(n) => {
            if let Err(e) = berth_netcfg::names::IfName::new(&n.parent) {
                bad(NET_PARENT, e.to_string(), false);
            }
            if !NET_MODES.contains(&n.mode.as_str()) {
                bad(
                    NET_MODE,
                    format!("{:?} is not one of {}", n.mode, NET_MODES.join(", ")),
                    false,
                );
            }
        }
        None => {
            if let Some(m) = get(vars, NET_MODE) {
                if !NET_MODES.contains(&m.as_str()) {
                    bad(
                        NET_MODE,
                        format!("{m:?} is not one of {}", NET_MODES.join(", ")),
                        false,
                    );
                }
            }
        }
    }
    // The volume settings, as a task asking for a 1 GiB /home would check them.
    if cfg.volume.backend.is_some() {
        if let Err(e) = volume::home_settings("berth-config-check", 1024.0, &cfg.volume) {
            match e {
                super::error::PlanError::Config { setting, why } => bad(&setting, why, false),
                other => bad(volume::ENV_BACKEND, other.to_string(), false),
            }
        }
    }
    for var in [AGENT_KEEPALIVE, AGENT_TIMEOUT, STREAM_SILENCE] {
        if let Some(v) = get(vars, var) {
            if let Err(e) = v.parse::<StoutDuration>() {
                bad(
                    var,
                    format!("{v:?} is not a duration (5secs, 500ms): {e}"),
                    false,
                );
            }
        }
    }
    // Binaries: checked here and again for each task (they may be installed later).
    if let Err(e) = super::runc::resolve(&cfg.runtime) {
        bad(RUNTIME, e.to_string(), true);
    }
    if let Err(why) = crate::init_check::check(&cfg.init) {
        bad(INIT, why, true);
    }
    out
}

/// A file that exists and has an execute bit.
pub fn executable(p: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(format!("{} is not an executable file", p.display())),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

/// `berth-executor config`: one line per setting,
/// `NAME=value  (default|from env)  # meaning`; test hooks only when set.
pub fn listing(vars: &dyn Fn(&str) -> Option<String>) -> String {
    let cfg = RunConfig::from_vars(vars);
    let mut lines = Vec::new();
    for st in SETTINGS {
        let set = get(vars, st.name);
        if st.hook && set.is_none() {
            continue;
        }
        let (value, origin) = match set {
            Some(v) => (v, "from env"),
            None if st.name == INIT => (cfg.init.display().to_string(), "default"),
            None => (st.default.unwrap_or("").to_string(), "default"),
        };
        let origin = if st.default.is_none() && origin == "default" && st.name != INIT {
            "unset"
        } else {
            origin
        };
        lines.push((format!("{}={value}", st.name), origin, st.meaning));
    }
    let width = lines.iter().map(|l| l.0.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (kv, origin, meaning) in lines {
        let origin = format!("({origin})");
        out.push_str(&format!("{kv:width$}  {origin:<10}  # {meaning}\n"));
    }
    out
}

#[cfg(test)]
mod tests;
