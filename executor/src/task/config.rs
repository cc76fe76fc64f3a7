//! The executor's own settings (not the task's): where runc, berth-init, images and state
//! are. From `BERTH_EXECUTOR_*` variables under Mesos, or command-line options.
//!
//! [`SETTINGS`] documents every variable (`berth-executor config` lists them);
//! [`check`] validates them: the executor refuses to start with a setting that is wrong
//! whatever the task ([`Problem::per_task`] false), and a task fails naming the setting
//! when the check depends on the machine at launch time (the runtime and berth-init
//! binaries, which may be installed after the executor started).

use std::path::{Path, PathBuf};

use super::volume::{self, VolumeConfig};
use crate::mesos::duration::StoutDuration;

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
    pub volume: VolumeConfig,
    /// The machine's size: upper bounds of a task's `cpus` and `mem`.
    pub host: HostLimits,
    /// What a task's `disk` does (`BERTH_EXECUTOR_DISK`: `auto`, `enforce`, `ignore`; unset =
    /// `auto`): the scratch step (see `scratch`), checked when a task has `disk` > 0.
    pub disk: Option<String>,
}

/// The machine's CPUs and memory (a task asking for more is refused).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostLimits {
    /// Online CPUs.
    pub cpus: f64,
    /// Physical memory, MB.
    pub mem_mb: f64,
}

impl HostLimits {
    /// This machine's (sysconf). A value the kernel does not give is unbounded.
    pub fn of_this_host() -> Self {
        let conf = |name| {
            // SAFETY: sysconf takes an integer and returns an integer; no memory is shared.
            let v = unsafe { libc::sysconf(name) };
            (v > 0).then_some(v as f64)
        };
        let cpus = conf(libc::_SC_NPROCESSORS_ONLN).unwrap_or(f64::INFINITY);
        let mem_mb = match (conf(libc::_SC_PHYS_PAGES), conf(libc::_SC_PAGESIZE)) {
            (Some(pages), Some(size)) => pages * size / (1024.0 * 1024.0),
            _ => f64::INFINITY,
        };
        HostLimits { cpus, mem_mb }
    }
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits::of_this_host()
    }
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
        super::scratch::ENV_DISK,
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
            net: var(NET_PARENT).map(|parent| super::network::NetConfig {
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
            },
            host: HostLimits::of_this_host(),
            disk: var(super::scratch::ENV_DISK),
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
    if let Some(v) = get(vars, super::scratch::ENV_DISK) {
        if let Err(e) = v.parse::<super::scratch::DiskMode>() {
            bad(super::scratch::ENV_DISK, e.to_string(), false);
        }
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
        if let Err(e) = volume::HomeVolume::from_settings("berth-config-check", 1024.0, &cfg.volume)
        {
            match e {
                super::plan::PlanError::Config { setting, why } => bad(&setting, why, false),
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
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    /// Settings that pass every check on this machine (sh as the "runtime", busybox-static as init).
    fn good() -> Vec<(&'static str, &'static str)> {
        vec![(RUNTIME, "/bin/sh"), (INIT, "/bin/busybox")]
    }

    #[test]
    fn defaults_and_good_settings_pass() {
        assert_eq!(check(&vars(&good())), vec![]);
        let mut v = good();
        v.extend([
            (NET_PARENT, "eth1"),
            (NET_MODE, "vepa"),
            (CGROUP_PARENT, "berth.slice/tasks"),
            (volume::ENV_BACKEND, "loopfile"),
            (volume::ENV_DIR, "/var/lib/x"),
            (volume::ENV_FS, "xfs"),
            (volume::ENV_RETAIN, "always"),
            (AGENT_TIMEOUT, "500ms"),
        ]);
        assert_eq!(check(&vars(&v)), vec![]);
    }

    #[test]
    fn each_bad_setting_is_named() {
        for (var, value, needle) in [
            (NET_MODE, "sideways", "bridge, private, vepa, passthru"),
            (CGROUP_PARENT, "../escape", "\"..\""),
            (CGROUP_PARENT, "/abs", "relative"),
            (CGROUP_PARENT, "a//b", "empty"),
            (STATE_DIR, "relative/dir", "absolute"),
            (volume::ENV_BACKEND, "zfs", "loopfile or lvm"),
            (AGENT_KEEPALIVE, "3", "not a duration"),
        ] {
            let mut v = good();
            v.push((var, value));
            if var == NET_MODE {
                v.push((NET_PARENT, "eth1"));
            }
            let p = check(&vars(&v));
            assert_eq!(p.len(), 1, "{var}={value}: {p:?}");
            assert_eq!(p[0].var, var);
            assert!(!p[0].per_task);
            assert!(p[0].to_string().contains(needle), "{}", p[0]);
        }
        // Volume settings parse together with the backend.
        let mut v = good();
        v.extend([(volume::ENV_BACKEND, "loopfile"), (volume::ENV_FS, "btrfs")]);
        let p = check(&vars(&v));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].var, volume::ENV_FS);
        // Missing binaries are per task.
        let d = tempfile::tempdir().unwrap();
        let plain = d.path().join("init");
        std::fs::write(&plain, "not a program").unwrap();
        let plain = plain.display().to_string();
        let p = check(&vars(&[(RUNTIME, "/nonexistent/runc"), (INIT, &plain)]));
        let names: Vec<&str> = p.iter().map(|p| p.var.as_str()).collect();
        assert_eq!(names, [RUNTIME, INIT]);
        assert!(p.iter().all(|p| p.per_task));
    }

    #[test]
    fn the_listing_has_one_line_per_setting_and_hides_unset_test_hooks() {
        let out = listing(&vars(&[(NET_MODE, "private")]));
        let names: Vec<&str> = SETTINGS
            .iter()
            .filter(|s| !s.hook)
            .map(|s| s.name)
            .collect();
        assert_eq!(out.lines().count(), names.len(), "{out}");
        for (line, name) in out.lines().zip(names) {
            assert!(line.starts_with(&format!("{name}=")), "{line}");
            assert!(line.contains("  # "), "{line}");
        }
        assert!(out.contains("BERTH_EXECUTOR_NET_MODE=private"), "{out}");
        let mode = out.lines().find(|l| l.contains("NET_MODE")).unwrap();
        assert!(mode.contains("(from env)"), "{mode}");
        let rt = out.lines().find(|l| l.contains("RUNTIME=")).unwrap();
        assert!(rt.contains("BERTH_EXECUTOR_RUNTIME=runc") && rt.contains("(default)"));
        assert!(!out.contains(FAIL_STEP) && !out.contains("TEST HOOK"));
        let out = listing(&vars(&[(FAIL_STEP, "bundle")]));
        let hook = out.lines().find(|l| l.contains(FAIL_STEP)).unwrap();
        assert!(
            hook.contains("TEST HOOK") && hook.contains("=bundle"),
            "{hook}"
        );
    }

    #[test]
    fn the_host_has_cpus_and_memory() {
        let h = HostLimits::of_this_host();
        assert!(h.cpus >= 1.0 && h.cpus < 1e6, "{h:?}");
        assert!(h.mem_mb > 64.0 && h.mem_mb < 1e12, "{h:?}");
    }
}

/// How far the containers are locked down beyond namespaces and capabilities (the
/// executor's `BERTH_EXECUTOR_SECCOMP`, `_RLIMIT_NOFILE`, `_RLIMIT_CORE` and `_SWAP`
/// settings; see the README). Read when a bundle is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hardening {
    /// `linux.seccomp`: berth's profile, none, or an operator's file.
    pub seccomp: super::bundle::seccomp::Seccomp,
    /// RLIMIT_NOFILE (soft, hard) of the container's processes.
    pub nofile: (u64, u64),
    /// RLIMIT_CORE (soft, hard).
    pub core: (u64, u64),
    /// Limit memory+swap to the memory limit (no swap beyond `mem`).
    pub no_swap: bool,
    /// The host's memory cgroup accounts swap (`memory.memsw.*` / `memory.swap.max`):
    /// without it the runtime refuses a swap limit, so none is set.
    pub swap_accounting: bool,
}

impl Default for Hardening {
    fn default() -> Self {
        Hardening {
            seccomp: super::bundle::seccomp::Seccomp::Default,
            nofile: (65536, 65536),
            core: (0, 0),
            no_swap: true,
            swap_accounting: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    #[error("{name}: {value:?} is not a limit (N or SOFT:HARD, SOFT <= HARD, or unlimited)")]
    Rlimit { name: &'static str, value: String },
    #[error("BERTH_EXECUTOR_SWAP: {0:?} is neither `none` nor `unlimited`")]
    Swap(String),
}

impl Hardening {
    /// Defaults, overridden by `BERTH_EXECUTOR_*` variables; probes the host's cgroups
    /// for swap accounting.
    pub fn from_env() -> Result<Self, HardeningError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let d = Hardening::default();
        let rlimit = |name: &'static str, default: (u64, u64)| match var(name) {
            None => Ok(default),
            Some(v) => parse_rlimit(&v).ok_or(HardeningError::Rlimit { name, value: v }),
        };
        let no_swap = match var("BERTH_EXECUTOR_SWAP").as_deref().map(str::trim) {
            None | Some("none") => true,
            Some("unlimited") => false,
            Some(v) => return Err(HardeningError::Swap(v.into())),
        };
        let swap_accounting = swap_accounting(std::path::Path::new("/sys/fs/cgroup"));
        if no_swap && !swap_accounting {
            tracing::info!(
                "the host's memory cgroup does not account swap (no memory.memsw.* nor \
                 memory.swap.max): tasks' swap is not limited"
            );
        }
        let want = rlimit("BERTH_EXECUTOR_RLIMIT_NOFILE", d.nofile)?;
        let nofile = clamp_rlimit(want, own_nofile_hard(), can_raise_rlimits());
        if nofile != want {
            tracing::warn!(
                ?want,
                ?nofile,
                "the executor cannot raise RLIMIT_NOFILE above its own hard limit \
                 (no CAP_SYS_RESOURCE): tasks get its own"
            );
        }
        Ok(Hardening {
            seccomp: super::bundle::seccomp::Seccomp::parse(
                &var(super::bundle::seccomp::SETTING).unwrap_or_default(),
            ),
            nofile,
            core: rlimit("BERTH_EXECUTOR_RLIMIT_CORE", d.core)?,
            no_swap,
            swap_accounting,
        })
    }
}

/// The executor's own hard RLIMIT_NOFILE.
fn own_nofile_hard() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) fills the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return u64::MAX;
    }
    r.rlim_max
}

/// Whether the executor has CAP_SYS_RESOURCE (needed to raise a hard limit; the runtime
/// sets the container's limits with the executor's privileges).
fn can_raise_rlimits() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .is_some_and(|m| m & (1 << CAP_SYS_RESOURCE) != 0)
}

/// `want`, or at most `hard` on both sides when hard limits cannot be raised.
pub fn clamp_rlimit(want: (u64, u64), hard: u64, can_raise: bool) -> (u64, u64) {
    if can_raise || want.1 <= hard {
        want
    } else {
        (want.0.min(hard), hard)
    }
}

/// `N`, `SOFT:HARD` or `unlimited` (either side).
pub fn parse_rlimit(v: &str) -> Option<(u64, u64)> {
    let one = |s: &str| match s.trim() {
        "unlimited" | "infinity" => Some(u64::MAX),
        s => s.parse::<u64>().ok(),
    };
    let (soft, hard) = match v.split_once(':') {
        Some((s, h)) => (one(s)?, one(h)?),
        None => (one(v)?, one(v)?),
    };
    (soft <= hard).then_some((soft, hard))
}

/// Whether the memory cgroup under `root` (the cgroup mount) accounts swap: cgroup v1's
/// `memory/memory.memsw.limit_in_bytes`, or v2's `memory.swap.max` in a child cgroup
/// (the root cgroup has none).
pub fn swap_accounting(root: &std::path::Path) -> bool {
    if root.join("memory/memory.memsw.limit_in_bytes").exists() {
        return true;
    }
    if root.join("memory").is_dir() {
        return false;
    }
    std::fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .any(|e| e.path().join("memory.swap.max").exists())
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod hardening_tests {
    use super::*;

    #[test]
    fn rlimits_parse() {
        assert_eq!(parse_rlimit("1024"), Some((1024, 1024)));
        assert_eq!(parse_rlimit("1024:4096"), Some((1024, 4096)));
        assert_eq!(parse_rlimit("0:unlimited"), Some((0, u64::MAX)));
        assert_eq!(parse_rlimit("4096:1024"), None);
        assert_eq!(parse_rlimit("lots"), None);
    }

    #[test]
    fn rlimits_are_clamped_when_they_cannot_be_raised() {
        assert_eq!(clamp_rlimit((65536, 65536), 20000, true), (65536, 65536));
        assert_eq!(clamp_rlimit((65536, 65536), 20000, false), (20000, 20000));
        assert_eq!(clamp_rlimit((1024, 65536), 20000, false), (1024, 20000));
        assert_eq!(clamp_rlimit((1024, 4096), 20000, false), (1024, 4096));
    }

    #[test]
    fn swap_accounting_is_probed_in_v1_and_v2_layouts() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("memory")).unwrap();
        assert!(!swap_accounting(r), "v1 without memsw");
        std::fs::write(r.join("memory/memory.memsw.limit_in_bytes"), "").unwrap();
        assert!(swap_accounting(r), "v1 with memsw");
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("system.slice")).unwrap();
        assert!(!swap_accounting(r), "v2 without swap");
        std::fs::write(r.join("system.slice/memory.swap.max"), "max").unwrap();
        assert!(swap_accounting(r), "v2 with swap");
    }
}
