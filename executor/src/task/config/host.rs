//! The machine's size: the upper bounds of a task's `cpus` and `mem`.

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
