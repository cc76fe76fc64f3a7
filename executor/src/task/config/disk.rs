//! `BERTH_EXECUTOR_DISK`: what the executor does with a task's `disk` (the scratch step).

use std::fmt;
use std::str::FromStr;

/// The setting: `auto`, `enforce` or `ignore`.
pub const ENV_DISK: &str = "BERTH_EXECUTOR_DISK";
/// What the executor does with a task's `disk` (`BERTH_EXECUTOR_DISK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiskMode {
    /// Enforced when a volume backend is configured; else unenforced with a warning.
    #[default]
    Auto,
    /// Enforced; a task with `disk` > 0 is refused when no backend is configured.
    Enforce,
    /// Never enforced (`BERTH_DISK_MB` only).
    Ignore,
}

impl FromStr for DiskMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DiskMode::Auto),
            "enforce" => Ok(DiskMode::Enforce),
            "ignore" => Ok(DiskMode::Ignore),
            other => Err(format!(
                "{other:?} is not a disk mode: use auto, enforce or ignore"
            )),
        }
    }
}

impl fmt::Display for DiskMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DiskMode::Auto => "auto",
            DiskMode::Enforce => "enforce",
            DiskMode::Ignore => "ignore",
        })
    }
}
