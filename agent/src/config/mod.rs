//! `/etc/berth/agent.toml`: what the operator writes, parsed strictly.
//!
//! Every key is optional and has a default, so an empty file is a valid config; an unknown
//! key or a bad value is an error naming the file and the key (`packaging/agent.toml` is the
//! commented reference). The file is read once at start and again on SIGHUP.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod file;
pub use file::ConfigError;

/// Where `serve` and `resources` look when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/berth/agent.toml";

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub serve: Serve,
    pub metrics: Metrics,
    pub falcon: Falcon,
    pub resources: Resources,
    pub gc: Gc,
}

/// `[gc]`: garbage collection of what dead tasks left (`berth-agent gc`, and `serve` every
/// `interval_secs`). The paths are the executor's settings of the same meaning.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gc {
    /// Seconds between two GC runs inside `serve`; 0: no periodic GC.
    pub interval_secs: u64,
    /// A leftover is collected only once its newest file is older than this many seconds.
    pub grace_secs: u64,
    /// The OCI runtime binary (`BERTH_EXECUTOR_RUNTIME`).
    pub runtime: PathBuf,
    /// The runtime's state root (`BERTH_EXECUTOR_RUNTIME_ROOT`).
    pub runtime_root: PathBuf,
    /// The tasks' run dirs (`BERTH_EXECUTOR_RUN_DIR`).
    pub run_dir: PathBuf,
    /// Where task network namespaces are pinned.
    pub netns_dir: PathBuf,
    /// berth's host run dir (VLAN sub-interface users).
    pub berth_run_dir: PathBuf,
    /// Keep the /home volume of a dead task that had started (`BERTH_EXECUTOR_VOLUME_RETAIN`
    /// = always); false: removed with the rest.
    pub retain_home: bool,
    /// Also remove berth-named things no state dir claims (runtime containers, run dirs,
    /// netns, volumes). Turn off when other berth state dirs share this host.
    pub sweep_unowned: bool,
    /// The executor's unpacked-image cache (`BERTH_EXECUTOR_IMAGE_CACHE`).
    pub image_cache: PathBuf,
    /// The image cache's size budget in MiB: over it, images no task uses are removed
    /// least recently used first; 0: unlimited.
    pub image_cache_budget_mb: u64,
}

impl Default for Gc {
    fn default() -> Self {
        Gc {
            interval_secs: 300,
            grace_secs: 60,
            runtime: PathBuf::from("runc"),
            runtime_root: PathBuf::from("/run/berth/runc"),
            run_dir: PathBuf::from("/run/berth/tasks"),
            netns_dir: PathBuf::from("/run/netns"),
            berth_run_dir: PathBuf::from("/run/berth"),
            retain_home: false,
            sweep_unowned: true,
            image_cache: PathBuf::from("/var/lib/berth/image-cache"),
            image_cache_budget_mb: 10240,
        }
    }
}

/// `[serve]`: the service loop.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Serve {
    /// Seconds between two collections of every container's metrics.
    pub step_secs: u64,
    /// The executor's state dir (its `BERTH_EXECUTOR_STATE_DIR`): one sub-directory per
    /// container (bundle, checkpoint).
    pub state_dir: PathBuf,
}

impl Default for Serve {
    fn default() -> Self {
        Serve {
            step_secs: 60,
            state_dir: PathBuf::from("/var/lib/berth/containers"),
        }
    }
}

/// `[metrics]`: per-container collection and the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// `host:port` of `GET /metrics`; empty: no endpoint.
    pub listen: String,
    /// The host's cgroup mount (v1, hybrid or v2).
    pub cgroup_root: PathBuf,
    /// The container's interface whose counters are exported.
    pub interface: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            listen: "127.0.0.1:9108".into(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            interface: "eth0".into(),
        }
    }
}

/// `[falcon]`: the Open-Falcon push.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Falcon {
    /// The Falcon agent's push URL; empty: no push.
    pub url: String,
    /// Items kept while the Falcon agent is unreachable; past this the oldest are dropped.
    pub buffer_items: usize,
    /// Seconds a push may take (connect and answer).
    pub timeout_secs: u64,
}

impl Default for Falcon {
    fn default() -> Self {
        Falcon {
            url: "http://127.0.0.1:1988/v1/push".into(),
            buffer_items: 100_000,
            timeout_secs: 5,
        }
    }
}

/// `[resources]`: what `berth-agent resources` offers to Mesos.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Resources {
    /// CPUs offered; default: the CPUs this process may run on.
    pub cpus: Option<f64>,
    /// MiB of memory kept for the host (mesos-agent, berth-agent, the kernel).
    pub mem_reserve_mib: u64,
    /// The directory whose free space is offered as `disk` (Mesos sandboxes).
    pub disk_dir: PathBuf,
    /// Ports offered, as `begin-end` ranges.
    pub ports: Vec<String>,
    pub home: Home,
    pub net: Net,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpus: None,
            mem_reserve_mib: 1024,
            disk_dir: PathBuf::from("/var/lib/mesos"),
            ports: vec!["31000-32000".into()],
            home: Home::default(),
            net: Net::default(),
        }
    }
}

/// `[resources.home]`: where /home volumes come from (the executor's volume settings).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Home {
    /// `loopfile` or `lvm`, as the executor's `BERTH_VOLUME_BACKEND`.
    pub backend: String,
    /// The loop-file directory (backend `loopfile`).
    pub loopfile_dir: PathBuf,
    /// Percent of the directory's size never offered (backend `loopfile`); LVM uses the
    /// `free_floor_percent` of its own config file.
    pub free_floor_percent: f64,
    /// The executor's LVM config file (JSON, berth-lvm's `LvmConfig`; backend `lvm`).
    pub lvm_config: PathBuf,
    /// The filesystem of /home volumes (the executor's `BERTH_EXECUTOR_VOLUME_FS`): the
    /// `home` offered leaves room for its overhead.
    pub fs: String,
}

impl Default for Home {
    fn default() -> Self {
        Home {
            backend: "loopfile".into(),
            loopfile_dir: PathBuf::from("/var/lib/berth/volumes"),
            free_floor_percent: 5.0,
            lvm_config: PathBuf::from("/etc/berth/lvm.json"),
            fs: "ext4".into(),
        }
    }
}

/// `[resources.net]`: the parent NIC containers' macvlans hang from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Net {
    /// The host NIC (or bond) whose speed is sold as bandwidth.
    pub parent: String,
    /// Mbit/s of the NIC kept for the host; must be below the NIC's speed.
    pub reserve_mbit: f64,
    /// The NIC's speed in Mbit/s when the driver reports none (virtual NICs); default: read
    /// `/sys/class/net/<parent>/speed`.
    pub speed_mbit: Option<f64>,
    /// VLAN ids the switch port of `parent` carries (a trunk), as `id` or `begin-end`.
    pub vlans: Vec<String>,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            parent: "eth0".into(),
            reserve_mbit: 100.0,
            speed_mbit: None,
            vlans: Vec::new(),
        }
    }
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(path, &file::read(path)?)
    }

    /// Parses `text` (read from `path`, named in errors) and checks the values.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = file::parse_toml(path, text)?;
        cfg.check()
            .map_err(|(key, why)| file::invalid(path, key, why))?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.serve.step_secs == 0 || self.serve.step_secs > 3600 {
            return Err(("serve.step_secs", "must be between 1 and 3600".into()));
        }
        let m = &self.metrics;
        if !m.listen.is_empty() && m.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err((
                "metrics.listen",
                format!("{:?} is not host:port (an IP address and a port)", m.listen),
            ));
        }
        let i = &m.interface;
        if i.is_empty() || i.len() > 15 || i.contains('/') {
            return Err((
                "metrics.interface",
                format!("{i:?} is not an interface name"),
            ));
        }
        let f = &self.falcon;
        if !f.url.is_empty() {
            berth_http::url::Url::parse(&f.url).map_err(|e| ("falcon.url", e.to_string()))?;
        }
        if f.buffer_items == 0 {
            return Err(("falcon.buffer_items", "must be at least 1".into()));
        }
        if f.timeout_secs == 0 || f.timeout_secs > 600 {
            return Err(("falcon.timeout_secs", "must be between 1 and 600".into()));
        }
        let r = &self.resources;
        if let Some(c) = r.cpus {
            if !(c > 0.0 && c.is_finite()) {
                return Err(("resources.cpus", format!("{c} is not a positive number")));
            }
        }
        if !matches!(r.home.backend.as_str(), "loopfile" | "lvm") {
            return Err((
                "resources.home.backend",
                format!(
                    "{:?} is not a volume backend: use loopfile or lvm",
                    r.home.backend
                ),
            ));
        }
        if !matches!(r.home.fs.as_str(), "ext4" | "xfs") {
            return Err((
                "resources.home.fs",
                format!("{:?} is not a filesystem: use ext4 or xfs", r.home.fs),
            ));
        }
        let floor = r.home.free_floor_percent;
        if !(0.0..100.0).contains(&floor) {
            return Err((
                "resources.home.free_floor_percent",
                format!("{floor} is not in 0..100"),
            ));
        }
        if !(r.net.reserve_mbit >= 0.0 && r.net.reserve_mbit.is_finite()) {
            return Err((
                "resources.net.reserve_mbit",
                format!("{} is negative or not a number", r.net.reserve_mbit),
            ));
        }
        if let Some(s) = r.net.speed_mbit {
            if !(s > 0.0 && s.is_finite()) {
                return Err(("resources.net.speed_mbit", format!("{s} is not positive")));
            }
        }
        if r.net.parent.is_empty() || r.net.parent.len() > 15 || r.net.parent.contains('/') {
            return Err((
                "resources.net.parent",
                format!("{:?} is not an interface name", r.net.parent),
            ));
        }
        let g = &self.gc;
        if g.interval_secs > 86400 {
            return Err(("gc.interval_secs", "must be at most 86400 (0: off)".into()));
        }
        for (key, p) in [
            ("gc.runtime_root", &g.runtime_root),
            ("gc.run_dir", &g.run_dir),
            ("gc.netns_dir", &g.netns_dir),
            ("gc.berth_run_dir", &g.berth_run_dir),
            ("gc.image_cache", &g.image_cache),
        ] {
            if !p.is_absolute() {
                return Err((key, format!("{} is not an absolute path", p.display())));
            }
        }
        crate::resources::parse_ranges(&r.ports, 1, 65535)
            .map_err(|why| ("resources.ports", why))?;
        crate::resources::parse_ranges(&r.net.vlans, 1, 4094)
            .map_err(|why| ("resources.net.vlans", why))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/berth/agent.toml"), text)
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn the_packaged_reference_config_parses() {
        let text = include_str!("../../../packaging/agent.toml");
        let cfg = parse(text).unwrap();
        // Every key in the reference is commented out: it documents the defaults.
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let e = parse("[serve]\nstep_sec = 10\n").unwrap_err().to_string();
        assert!(e.contains("/etc/berth/agent.toml"), "{e}");
        assert!(e.contains("step_sec"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("[serve]\nstep_secs = 0", "serve.step_secs"),
            (
                "[resources.net]\nreserve_mbit = -1.0",
                "resources.net.reserve_mbit",
            ),
            (
                "[resources.home]\nbackend = \"zfs\"",
                "resources.home.backend",
            ),
            ("[resources]\nports = [\"32000-31000\"]", "resources.ports"),
            ("[resources.net]\nvlans = [\"4095\"]", "resources.net.vlans"),
            ("[resources.net]\nparent = \"../x\"", "resources.net.parent"),
            ("[metrics]\nlisten = \"localhost\"", "metrics.listen"),
            ("[metrics]\ninterface = \"\"", "metrics.interface"),
            ("[falcon]\nurl = \"ftp://x\"", "falcon.url"),
            ("[falcon]\nbuffer_items = 0", "falcon.buffer_items"),
            ("[gc]\nrun_dir = \"tasks\"", "gc.run_dir"),
            ("[resources.home]\nfs = \"zfs\"", "resources.home.fs"),
            ("[gc]\ninterval_secs = 100000", "gc.interval_secs"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn wrong_type_is_a_parse_error_naming_the_key() {
        let e = parse("[serve]\nstep_secs = \"10s\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("step_secs"), "{e}");
    }
}
