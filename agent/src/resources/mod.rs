//! The node's Mesos resources: what the host has, minus what it keeps.
//!
//! Facts come from files under roots passed in (`/proc`, `/sys`) and from the volume backend
//! (berth-lvm's capacity), so tests build them in a tempdir. [`render`] prints both forms
//! `mesos-agent --resources` accepts.

pub mod render;

use std::path::Path;

use berth_lvm::{resource, Backend, Bytes, Capacity, Filesystem};

use crate::config::Resources as Settings;

/// One resource: a scalar or a set of ranges.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    Ranges(Vec<(u64, u64)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: &'static str,
    pub value: Value,
}

/// A setting that cannot be turned into a resource; names the setting.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {why}")]
pub struct ResourceError {
    pub setting: &'static str,
    pub why: String,
}

fn err(setting: &'static str, why: impl Into<String>) -> ResourceError {
    ResourceError {
        setting,
        why: why.into(),
    }
}

/// Where the host facts are read from (`/proc`, `/sys` on a real host).
#[derive(Debug, Clone)]
pub struct Roots<'a> {
    pub proc: &'a Path,
    pub sys: &'a Path,
}

/// Computes every resource. `cpus_online` is the number of CPUs this process may use;
/// `volumes` opens the configured /home backend.
pub fn compute(
    s: &Settings,
    roots: &Roots,
    cpus_online: usize,
    volumes: &dyn Fn() -> Result<Box<dyn Backend>, ResourceError>,
) -> Result<Vec<Resource>, ResourceError> {
    let mut out = Vec::new();
    let cpus = s.cpus.unwrap_or(cpus_online as f64);
    out.push(scalar("cpus", cpus));
    let total = mem_total_mib(roots.proc)?;
    let mem = total.saturating_sub(s.mem_reserve_mib);
    if mem == 0 {
        return Err(err(
            "resources.mem_reserve_mib",
            format!("{} MiB is all of the host's {total} MiB", s.mem_reserve_mib),
        ));
    }
    out.push(scalar("mem", mem as f64));
    let disk = free_mib(&s.disk_dir).map_err(|e| err("resources.disk_dir", e))?;
    out.push(scalar("disk", disk as f64));
    let ports = parse_ranges(&s.ports, 1, 65535).map_err(|e| err("resources.ports", e))?;
    if !ports.is_empty() {
        out.push(ranges("ports", ports));
    }
    let backend = volumes()?;
    let cap = backend
        .capacity()
        .map_err(|e| err("resources.home", crate::error_chain(&e)))?;
    let floor = match s.home.backend.as_str() {
        "lvm" => lvm_floor(&s.home.lvm_config)?,
        _ => s.home.free_floor_percent,
    };
    let fs: Filesystem = s
        .home
        .fs
        .parse()
        .map_err(|e: berth_lvm::VolumeError| err("resources.home.fs", e.to_string()))?;
    let align = if s.home.backend == "lvm" {
        LVM_ALIGN
    } else {
        LOOPFILE_ALIGN
    };
    let left = home_mib(&cap, floor);
    out.push(scalar(resource::HOME, usable_mib(fs, left, align) as f64));
    let speed = match s.net.speed_mbit {
        Some(v) => v,
        None => nic_speed_mbit(roots.sys, &s.net.parent)?,
    };
    if s.net.reserve_mbit >= speed {
        return Err(err(
            "resources.net.reserve_mbit",
            format!(
                "{} Mbit/s is not below {}'s speed {speed} Mbit/s",
                s.net.reserve_mbit, s.net.parent
            ),
        ));
    }
    out.push(scalar(resource::BANDWIDTH, speed - s.net.reserve_mbit));
    let vlans = parse_ranges(&s.net.vlans, 1, 4094).map_err(|e| err("resources.net.vlans", e))?;
    if !vlans.is_empty() {
        out.push(ranges(resource::VLANS, vlans));
    }
    Ok(out)
}

fn scalar(name: &'static str, v: f64) -> Resource {
    Resource {
        name,
        value: Value::Scalar(v),
    }
}

fn ranges(name: &'static str, r: Vec<(u64, u64)>) -> Resource {
    Resource {
        name,
        value: Value::Ranges(r),
    }
}

/// MiB that may still go to /home volumes: free space minus `floor_percent` of the total
/// (for a thin pool: of the pool's data space).
pub fn home_mib(cap: &Capacity, floor_percent: f64) -> u64 {
    let (total, free) = match &cap.thin {
        Some(t) => {
            let size = t.pool_size.0 as f64;
            (size, size * (1.0 - t.data_percent / 100.0))
        }
        None => (cap.total.0 as f64, cap.free.0 as f64),
    };
    let left = free - total * floor_percent / 100.0;
    if left <= 0.0 {
        0
    } else {
        (left / (1024.0 * 1024.0)) as u64
    }
}

/// What a volume's size is rounded up to: the loop file's 1 MiB, LVM's default 4 MiB
/// extent (a VG with larger extents wastes up to one extent more per volume).
pub const LOOPFILE_ALIGN: u64 = 1 << 20;
pub const LVM_ALIGN: u64 = 4 << 20;

/// The largest `home` (MiB) a task may ask for when `left_mib` are free: its volume
/// carries the filesystem's overhead on top ([`Filesystem::device_size`], as the backends
/// size it, rounded up to `align`), so offering the raw free space would let Mesos hand
/// out more than fits. The overhead is mostly proportional (inode tables, reserved
/// clusters) plus a journal and a few MiB per volume: splitting the offer into many small
/// volumes costs those few MiB each, which the free floor covers.
pub fn usable_mib(fs: Filesystem, left_mib: u64, align: u64) -> u64 {
    let fits = |u: u64| fs.device_size(Bytes::mib(u)).round_up(align) <= Bytes::mib(left_mib);
    let (mut lo, mut hi) = (0u64, left_mib);
    if !fits(lo) {
        return 0;
    }
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

fn lvm_floor(path: &Path) -> Result<f64, ResourceError> {
    let cfg = read_lvm_config(path)?;
    Ok(cfg.free_floor_percent)
}

/// The executor's LVM config file (JSON); errors name `resources.home.lvm_config`.
pub fn read_lvm_config(path: &Path) -> Result<berth_lvm::lvm::LvmConfig, ResourceError> {
    let bad = |why: String| {
        err(
            "resources.home.lvm_config",
            format!("{}: {why}", path.display()),
        )
    };
    let data = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    serde_json::from_slice(&data).map_err(|e| bad(e.to_string()))
}

fn mem_total_mib(proc_root: &Path) -> Result<u64, ResourceError> {
    let path = proc_root.join("meminfo");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        err(
            "resources.mem_reserve_mib",
            format!("{}: {e}", path.display()),
        )
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .ok_or_else(|| {
            err(
                "resources.mem_reserve_mib",
                format!("no MemTotal in {}", path.display()),
            )
        })
}

fn free_mib(dir: &Path) -> Result<u64, String> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(st.blocks_available() * st.fragment_size() / (1024 * 1024))
}

/// The NIC's speed from `/sys/class/net/<nic>/speed`; absent, unreadable, `-1` (no link or
/// a virtual NIC) or 0 is an error that points at `resources.net.speed_mbit`.
pub fn nic_speed_mbit(sys_root: &Path, nic: &str) -> Result<f64, ResourceError> {
    let dir = sys_root.join("class/net").join(nic);
    if !dir.exists() {
        return Err(err(
            "resources.net.parent",
            format!("no interface {nic} ({} is missing)", dir.display()),
        ));
    }
    let path = dir.join("speed");
    let speed = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|&v| v > 0);
    match speed {
        Some(v) => Ok(v as f64),
        None => Err(err(
            "resources.net.speed_mbit",
            format!(
                "{nic} reports no speed in {}; set the speed in Mbit/s",
                path.display()
            ),
        )),
    }
}

/// Parses `id` or `begin-end` items into sorted, merged ranges within `min..=max`.
pub fn parse_ranges(items: &[String], min: u64, max: u64) -> Result<Vec<(u64, u64)>, String> {
    let mut out = Vec::new();
    for item in items {
        let num = |s: &str| {
            s.trim()
                .parse::<u64>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| format!("{item:?}: {s:?} is not a number in {min}..{max}"))
        };
        let (b, e) = match item.split_once('-') {
            Some((b, e)) => (num(b)?, num(e)?),
            None => (num(item)?, num(item)?),
        };
        if b > e {
            return Err(format!("{item:?}: begin is after end"));
        }
        out.push((b, e));
    }
    out.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (b, e) in out {
        match merged.last_mut() {
            Some(last) if b <= last.1 + 1 => last.1 = last.1.max(e),
            _ => merged.push((b, e)),
        }
    }
    Ok(merged)
}

/// Opens the /home backend the settings name, as the executor does.
pub fn open_backend(home: &crate::config::Home) -> Result<Box<dyn Backend>, ResourceError> {
    match home.backend.as_str() {
        "lvm" => {
            let cfg = read_lvm_config(&home.lvm_config)?;
            let b = berth_lvm::lvm::LvmBackend::new(cfg)
                .map_err(|e| err("resources.home.lvm_config", crate::error_chain(&e)))?;
            Ok(Box::new(b))
        }
        _ => {
            let run = Box::new(berth_lvm::exec::SystemRunner::default());
            let b = berth_lvm::loopfile::LoopfileBackend::new(&home.loopfile_dir, run)
                .map_err(|e| err("resources.home.loopfile_dir", crate::error_chain(&e)))?;
            Ok(Box::new(b))
        }
    }
}

#[cfg(test)]
mod tests;
