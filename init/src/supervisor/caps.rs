//! Services run without CAP_NET_ADMIN and CAP_NET_RAW, so the app cannot change or spoof
//! its address; init's DHCP thread keeps them.
//!
//! Capabilities (all five sets, the bounding set included) are per-thread on Linux and a
//! forked child copies its parent thread's. So the supervisor's main thread, which forks
//! every service, hook and cron run, drops the two from its own bounding, ambient,
//! inheritable, permitted and effective sets once the DHCP thread has started: every
//! child then starts without them and cannot get them back through exec (not even a
//! setuid-root or file-capability binary: the bounding set caps what exec may grant),
//! with no change to the fork/exec path. Threads the main thread starts later (probes,
//! log writers) need neither capability.

use std::io;

use crate::capset;

/// CAP_NET_ADMIN.
pub const CAP_NET_ADMIN: u32 = 12;
/// CAP_NET_RAW.
pub const CAP_NET_RAW: u32 = 13;
/// What services lose.
pub const DROPPED: [u32; 2] = [CAP_NET_ADMIN, CAP_NET_RAW];

fn in_bounding(cap: u32) -> bool {
    capset::in_bounding(cap) == Some(true)
}

/// Drops [`DROPPED`] from every capability set of the calling thread. Dropping from the
/// bounding set needs CAP_SETPCAP: without it (init not run as root) the capabilities
/// are not held anyway; the other sets can always be lowered.
pub fn drop_for_children() -> io::Result<()> {
    for cap in DROPPED {
        // SAFETY: prctl with integer arguments; affects only the calling thread.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_LOWER as libc::c_ulong,
                libc::c_ulong::from(cap),
                0,
                0,
            )
        };
        // EINVAL: a kernel without ambient capabilities (before 4.3): nothing to lower.
        if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return Err(io::Error::last_os_error());
        }
        if in_bounding(cap) {
            if let Err(e) = capset::drop_bounding(cap) {
                if e != libc::EPERM {
                    return Err(io::Error::from_raw_os_error(e));
                }
                tracing::debug!(cap, "no CAP_SETPCAP: the bounding set keeps the capability");
            }
        }
    }
    let mut sets = capset::get().map_err(io::Error::from_raw_os_error)?;
    let mask = DROPPED.iter().fold(0u64, |m, c| m | (1 << c));
    sets.effective &= !mask;
    sets.permitted &= !mask;
    sets.inheritable &= !mask;
    capset::set(sets).map_err(io::Error::from_raw_os_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_drops_them_and_its_children_inherit_that() {
        // On its own thread: the test harness's other threads keep theirs.
        std::thread::spawn(|| {
            drop_for_children().unwrap();
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            let field = |name: &str| {
                let line = status.lines().find(|l| l.starts_with(name)).unwrap();
                u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
            };
            let mask = (1u64 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW);
            assert_eq!(field("CapEff:") & mask, 0);
            assert_eq!(field("CapPrm:") & mask, 0);
            assert_eq!(field("CapInh:") & mask, 0);
            // SAFETY: geteuid cannot fail.
            if unsafe { libc::geteuid() } == 0 {
                assert_eq!(
                    field("CapBnd:") & mask,
                    0,
                    "root: the bounding set drops them"
                );
                assert!(!in_bounding(CAP_NET_ADMIN));
            }
        })
        .join()
        .unwrap();
        // This thread still has whatever it had.
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            assert!(in_bounding(CAP_NET_RAW));
        }
    }
}
