//! The containers' hardening settings (seccomp, rlimits, swap): read when a bundle is written.

/// How far the containers are locked down beyond namespaces and capabilities (the
/// executor's `BERTH_EXECUTOR_SECCOMP`, `_RLIMIT_NOFILE`, `_RLIMIT_CORE` and `_SWAP`
/// settings; see the README). Read when a bundle is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hardening {
    /// `linux.seccomp`: berth's profile, none, or an operator's file.
    pub seccomp: super::super::seccomp::Seccomp,
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
            seccomp: super::super::seccomp::Seccomp::Default,
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
            seccomp: super::super::seccomp::Seccomp::parse(
                &var(super::super::seccomp::SETTING).unwrap_or_default(),
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
