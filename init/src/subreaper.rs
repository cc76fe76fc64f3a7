//! Who reaps orphans: PID 1 always does; any other init must register as a child
//! subreaper (`PR_SET_CHILD_SUBREAPER`) or orphans go to the real PID 1 and pile up as
//! zombies. Also the init's own parent-death signal (`-p`).

use std::io;

/// A failed `prctl`.
#[derive(Debug, thiserror::Error)]
#[error("prctl({op}) failed")]
pub struct PrctlError {
    /// Which prctl option.
    pub op: &'static str,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

#[link_section = ".text.berth_tini"]
fn prctl(op: &'static str, option: libc::c_int, arg: libc::c_ulong) -> Result<(), PrctlError> {
    // SAFETY: the options used here take one integer argument (or a pointer passed as an
    // integer by `is_child_subreaper`) and change only this process's attributes.
    if unsafe {
        libc::prctl(
            option,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    } != 0
    {
        return Err(PrctlError {
            op,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Registers the calling process as a child subreaper: orphaned descendants are
/// reparented to it instead of to PID 1.
#[link_section = ".text.berth_tini"]
pub fn set_child_subreaper() -> Result<(), PrctlError> {
    prctl("PR_SET_CHILD_SUBREAPER", libc::PR_SET_CHILD_SUBREAPER, 1)
}

/// Whether the calling process is a child subreaper. The bit survives `exec`, so an
/// init started by a subreaper-aware launcher may have it without `-s`.
#[link_section = ".text.berth_tini"]
pub fn is_child_subreaper() -> Result<bool, PrctlError> {
    let mut bit: libc::c_int = 0;
    prctl(
        "PR_GET_CHILD_SUBREAPER",
        libc::PR_GET_CHILD_SUBREAPER,
        &mut bit as *mut libc::c_int as libc::c_ulong,
    )?;
    Ok(bit != 0)
}

/// Asks the kernel to send `signo` to the calling process when its parent dies.
#[link_section = ".text.berth_tini"]
pub fn set_parent_death_signal(signo: i32) -> Result<(), PrctlError> {
    prctl(
        "PR_SET_PDEATHSIG",
        libc::PR_SET_PDEATHSIG,
        signo as libc::c_ulong,
    )
}

/// The warning an init prints when it cannot reap orphans (neither PID 1 nor a
/// subreaper), or `None` when it can. The text keeps tini's key phrase, "zombie reaping
/// won't work", which tini's own tests and users grep for.
#[link_section = ".text.berth_tini"]
pub fn reaping_warning(pid: u32, is_subreaper: bool) -> Option<&'static str> {
    if pid == 1 || is_subreaper {
        return None;
    }
    Some(
        "berth-init is not running as PID 1 and isn't registered as a child subreaper.\n\
         Zombie processes will not be re-parented to berth-init, so zombie reaping won't work.\n\
         To fix the problem, use the -s option or set the environment variable TINI_SUBREAPER \
         to register berth-init as a child subreaper, or run berth-init as PID 1.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_only_when_orphans_would_escape() {
        assert_eq!(reaping_warning(1, false), None);
        assert_eq!(reaping_warning(1234, true), None);
        let text = reaping_warning(1234, false).unwrap();
        assert!(text.contains("zombie reaping won't work"));
        assert!(text.contains("-s option") && text.contains("TINI_SUBREAPER"));
    }
}
