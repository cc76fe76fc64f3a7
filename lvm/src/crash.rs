//! Named steps inside multi-step operations, where a crash-safety test can make the process
//! abort (as a power cut or SIGKILL would), to check that the next create or a GC cleans up.
//!
//! Backends call [`CrashPoints::step`] between their steps. It does nothing unless the
//! backend was configured with `crash_at` equal to the step's name: then the process aborts
//! at once, without unwinding or running destructors. The `berth-vol` tool sets it from the
//! `BERTH_VOL_CRASH_AT` environment variable; nothing else does.

/// Steps of `create`, in order.
pub const AFTER_ALLOCATE: &str = "after-allocate";
pub const AFTER_MKFS: &str = "after-mkfs";
pub const AFTER_COMPLETE: &str = "after-complete";
/// Steps of `resize`.
pub const AFTER_EXTEND: &str = "after-extend";
/// Steps of image and snapshot creation.
pub const AFTER_FILL: &str = "after-fill";
pub const AFTER_SNAPSHOT: &str = "after-snapshot";

pub const ALL: &[&str] = &[
    AFTER_ALLOCATE,
    AFTER_MKFS,
    AFTER_COMPLETE,
    AFTER_EXTEND,
    AFTER_FILL,
    AFTER_SNAPSHOT,
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashPoints {
    pub crash_at: Option<String>,
}

impl CrashPoints {
    pub fn step(&self, name: &str) {
        tracing::trace!(step = name, "step");
        if self.crash_at.as_deref() == Some(name) {
            eprintln!("berth-lvm: crash point {name}: aborting");
            std::process::abort();
        }
    }
}
