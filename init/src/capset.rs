//! The calling thread's capability sets, raw: `capget`/`capset` (version 3, 64 bits) and
//! the bounding set's `prctl`s. Async-signal-safe (no allocation, errors as errno), so the
//! spawn path's forked child can use it as well as the supervisor.

/// Effective, permitted and inheritable sets; bit n = capability n.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

const VERSION_3: u32 = 0x2008_0522;

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

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The calling thread's sets.
pub fn get() -> Result<Sets, i32> {
    let mut hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget fills two Data structs for version 3; both live on this stack.
    if unsafe { libc::syscall(libc::SYS_capget, &mut hdr as *mut Header, d.as_mut_ptr()) } != 0 {
        return Err(errno());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok(Sets {
        effective: join(d[0].effective, d[1].effective),
        permitted: join(d[0].permitted, d[1].permitted),
        inheritable: join(d[0].inheritable, d[1].inheritable),
    })
}

/// Sets the calling thread's sets (lowering is always allowed).
pub fn set(s: Sets) -> Result<(), i32> {
    let mut hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (e0, e1) = split(s.effective);
    let (p0, p1) = split(s.permitted);
    let (i0, i1) = split(s.inheritable);
    let d = [
        Data {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        Data {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: capset reads the header and two Data structs on this stack; pid 0 = the
    // calling thread.
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, d.as_ptr()) } != 0 {
        return Err(errno());
    }
    Ok(())
}

/// Whether `cap` is in the bounding set; `None` past the kernel's last capability.
pub fn in_bounding(cap: u32) -> Option<bool> {
    // SAFETY: PR_CAPBSET_READ only reads the calling thread's bounding set.
    match unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) } {
        r if r < 0 => None,
        r => Some(r == 1),
    }
}

/// Drops `cap` from the bounding set (needs CAP_SETPCAP).
pub fn drop_bounding(cap: u32) -> Result<(), i32> {
    // SAFETY: prctl with integer arguments; affects only the calling thread.
    if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } != 0 {
        return Err(errno());
    }
    Ok(())
}
