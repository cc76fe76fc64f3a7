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

/// CAP_NET_ADMIN.
pub const CAP_NET_ADMIN: u32 = 12;
/// CAP_NET_RAW.
pub const CAP_NET_RAW: u32 = 13;
/// What services lose.
pub const DROPPED: [u32; 2] = [CAP_NET_ADMIN, CAP_NET_RAW];

const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn in_bounding(cap: u32) -> bool {
    // SAFETY: PR_CAPBSET_READ only reads the calling thread's bounding set.
    unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) == 1 }
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
            // SAFETY: as above.
            let r =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
            if r != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EPERM) {
                    return Err(e);
                }
                tracing::debug!(cap, "no CAP_SETPCAP: the bounding set keeps the capability");
            }
        }
    }
    let mut hdr = Header {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget fills two Data structs for version 3; both live on this stack.
    if unsafe { libc::syscall(libc::SYS_capget, &mut hdr as *mut Header, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mask = DROPPED.iter().fold(0u32, |m, c| m | (1 << c));
    data[0].effective &= !mask;
    data[0].permitted &= !mask;
    data[0].inheritable &= !mask;
    // SAFETY: capset reads the header and two Data structs; pid 0 = the calling thread.
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
