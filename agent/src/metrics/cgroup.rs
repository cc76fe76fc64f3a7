//! A container's cgroup counters, from cgroup v1 (one hierarchy per controller, this
//! machine's hybrid layout) or v2 (one unified hierarchy), parsed by the same code.
//!
//! Both versions keep the same facts in differently named files with three shapes of
//! text: a single number (`memory.current`, `pids.current`), `key value` lines
//! (`cpu.stat`, `memory.stat`, `memory.events`, `memory.oom_control`) and per-device
//! I/O lines (`8:0 Read 4096` in v1, `8:0 rbytes=4096 wbytes=0 ...` in v2). [`Layout`]
//! says where each fact lives; the parsers below do not care which version wrote it.

use std::path::{Path, PathBuf};

/// The host's cgroup mount (default `/sys/fs/cgroup`).
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Which hierarchy a cgroup root holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One mount per controller under the root (`<root>/memory/<path>`, ...).
    V1(PathBuf),
    /// The unified hierarchy at the root (`<root>/<path>`).
    V2(PathBuf),
}

impl Layout {
    /// v1 when the root has a `memory` controller directory (v1 or hybrid), v2 otherwise.
    pub fn detect(root: &Path) -> Layout {
        if root.join("memory").join("memory.limit_in_bytes").exists() {
            Layout::V1(root.to_owned())
        } else {
            Layout::V2(root.to_owned())
        }
    }
}

/// The counters of one cgroup. Times in nanoseconds, sizes in bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupStats {
    pub cpu_usage_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    /// CFS enforcement periods elapsed, and those in which the cgroup was throttled.
    pub cpu_periods: u64,
    pub cpu_throttled_periods: u64,
    pub cpu_throttled_ns: u64,
    /// The CFS quota in CPUs (quota / period); `None` without a quota.
    pub cpu_limit: Option<f64>,
    /// Memory charged to the cgroup (anonymous + page cache + kernel).
    pub mem_usage: u64,
    /// Anonymous memory (v1 `total_rss`, v2 `anon`).
    pub mem_rss: u64,
    /// Page cache (v1 `total_cache`, v2 `file`).
    pub mem_cache: u64,
    /// The hard limit; `None` when unlimited.
    pub mem_limit: Option<u64>,
    /// Processes the kernel's OOM killer killed in this cgroup.
    pub oom_kills: u64,
    pub io_read_bytes: u64,
    pub io_write_bytes: u64,
    pub io_read_ops: u64,
    pub io_write_ops: u64,
    /// Processes (tasks) in the cgroup.
    pub pids: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}")]
pub struct CgroupError {
    pub path: PathBuf,
    #[source]
    pub err: std::io::Error,
}

/// Any v1 limit at or above this is "no limit" (the kernel shows PAGE_COUNTER_MAX pages).
const V1_UNLIMITED: u64 = 1 << 62;
/// USER_HZ: the unit of v1 `cpuacct.stat`.
const USER_HZ_NS: u64 = 10_000_000;

/// Reads the cgroup at `path` (as in an OCI `cgroupsPath`, e.g. `/berth/berth-web.1`).
/// Only the memory and CPU files are required; a missing optional file counts as zero.
pub fn read(layout: &Layout, path: &str) -> Result<CgroupStats, CgroupError> {
    let rel = path.trim_start_matches('/');
    match layout {
        Layout::V1(root) => read_v1(&|ctrl: &str, file: &str| root.join(ctrl).join(rel).join(file)),
        Layout::V2(root) => read_v2(&root.join(rel)),
    }
}

fn read_v1(at: &dyn Fn(&str, &str) -> PathBuf) -> Result<CgroupStats, CgroupError> {
    let mut s = CgroupStats {
        cpu_usage_ns: number(&text(&at("cpuacct", "cpuacct.usage"))?),
        ..CgroupStats::default()
    };
    let acct = keyed(&optional(&at("cpuacct", "cpuacct.stat")));
    s.cpu_user_ns = acct.get("user") * USER_HZ_NS;
    s.cpu_system_ns = acct.get("system") * USER_HZ_NS;
    let cpu = keyed(&optional(&at("cpu", "cpu.stat")));
    s.cpu_periods = cpu.get("nr_periods");
    s.cpu_throttled_periods = cpu.get("nr_throttled");
    s.cpu_throttled_ns = cpu.get("throttled_time");
    let quota = optional(&at("cpu", "cpu.cfs_quota_us"));
    let period = number(&optional(&at("cpu", "cpu.cfs_period_us")));
    s.cpu_limit = quota
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|q| *q > 0 && period > 0)
        .map(|q| q as f64 / period as f64);
    s.mem_usage = number(&text(&at("memory", "memory.usage_in_bytes"))?);
    let mem = keyed(&text(&at("memory", "memory.stat"))?);
    s.mem_rss = mem.first(&["total_rss", "rss"]);
    s.mem_cache = mem.first(&["total_cache", "cache"]);
    s.mem_limit = Some(number(&optional(&at("memory", "memory.limit_in_bytes"))))
        .filter(|l| *l > 0 && *l < V1_UNLIMITED);
    s.oom_kills = keyed(&optional(&at("memory", "memory.oom_control"))).get("oom_kill");
    let bytes = io_v1(&optional(&at("blkio", "blkio.throttle.io_service_bytes")));
    let ops = io_v1(&optional(&at("blkio", "blkio.throttle.io_serviced")));
    (s.io_read_bytes, s.io_write_bytes) = bytes;
    (s.io_read_ops, s.io_write_ops) = ops;
    s.pids = number(&optional(&at("pids", "pids.current")));
    Ok(s)
}

fn read_v2(dir: &Path) -> Result<CgroupStats, CgroupError> {
    let cpu = keyed(&text(&dir.join("cpu.stat"))?);
    let mem = keyed(&text(&dir.join("memory.stat"))?);
    let io = io_v2(&optional(&dir.join("io.stat")));
    Ok(CgroupStats {
        cpu_usage_ns: cpu.get("usage_usec") * 1000,
        cpu_user_ns: cpu.get("user_usec") * 1000,
        cpu_system_ns: cpu.get("system_usec") * 1000,
        cpu_periods: cpu.get("nr_periods"),
        cpu_throttled_periods: cpu.get("nr_throttled"),
        cpu_throttled_ns: cpu.get("throttled_usec") * 1000,
        cpu_limit: cpu_max(&optional(&dir.join("cpu.max"))),
        mem_usage: number(&text(&dir.join("memory.current"))?),
        mem_rss: mem.get("anon"),
        mem_cache: mem.get("file"),
        mem_limit: optional(&dir.join("memory.max")).trim().parse().ok(),
        oom_kills: keyed(&optional(&dir.join("memory.events"))).get("oom_kill"),
        io_read_bytes: io.0,
        io_write_bytes: io.1,
        io_read_ops: io.2,
        io_write_ops: io.3,
        pids: number(&optional(&dir.join("pids.current"))),
    })
}

fn text(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|err| CgroupError {
        path: path.to_owned(),
        err,
    })
}

/// A file a controller may lack (pids, blkio not enabled): empty when absent.
fn optional(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn number(s: &str) -> u64 {
    s.trim().parse().unwrap_or(0)
}

/// `key value` lines.
struct Keyed(Vec<(String, u64)>);

impl Keyed {
    fn get(&self, key: &str) -> u64 {
        self.0.iter().find(|(k, _)| k == key).map_or(0, |(_, v)| *v)
    }
    /// The first of `keys` present.
    fn first(&self, keys: &[&str]) -> u64 {
        keys.iter()
            .find_map(|k| self.0.iter().find(|(n, _)| n == k).map(|(_, v)| *v))
            .unwrap_or(0)
    }
}

fn keyed(s: &str) -> Keyed {
    Keyed(
        s.lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                Some((it.next()?.to_string(), it.next()?.parse().ok()?))
            })
            .collect(),
    )
}

/// v1 `blkio.throttle.*`: `MAJ:MIN Read|Write|Sync|Async|Discard|Total N` lines and a
/// final `Total N`; (read, write) summed over devices.
fn io_v1(s: &str) -> (u64, u64) {
    let mut rw = (0, 0);
    for l in s.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [_, op, n] = f[..] {
            let n: u64 = n.parse().unwrap_or(0);
            match op {
                "Read" => rw.0 += n,
                "Write" => rw.1 += n,
                _ => {}
            }
        }
    }
    rw
}

/// v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N wios=N ...`; (rbytes, wbytes, rios,
/// wios) summed over devices.
fn io_v2(s: &str) -> (u64, u64, u64, u64) {
    let mut t = (0, 0, 0, 0);
    for kv in s.lines().flat_map(|l| l.split_whitespace().skip(1)) {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        let v: u64 = v.parse().unwrap_or(0);
        match k {
            "rbytes" => t.0 += v,
            "wbytes" => t.1 += v,
            "rios" => t.2 += v,
            "wios" => t.3 += v,
            _ => {}
        }
    }
    t
}

/// v2 `cpu.max`: `max 100000` (no quota) or `QUOTA PERIOD`.
fn cpu_max(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let q: f64 = it.next()?.parse().ok()?;
    let p: f64 = it.next()?.parse().ok()?;
    (q > 0.0 && p > 0.0).then(|| q / p)
}

#[cfg(test)]
#[path = "cgroup_tests.rs"]
mod tests;
