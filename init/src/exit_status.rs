//! How a child ended, and how that becomes the init's own exit code.
//!
//! The mapping is tini's: a child that exited with code C gives C; a child killed by
//! signal N gives 128+N (the shell convention). [`ExitRemap`] then turns the codes given
//! with `-e CODE` into 0, after the mapping, so `-e 143` accepts "killed by SIGTERM".

use std::fmt;

/// How a reaped process ended (from `waitpid`'s status word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// It called `exit(code)` (or returned from main).
    Exited(u8),
    /// A signal killed it.
    Signaled {
        /// The signal number.
        signo: i32,
        /// Whether the kernel wrote a core dump.
        core_dumped: bool,
    },
}

impl ExitKind {
    /// Decodes a raw `waitpid` status word. `None` for "stopped" or "continued" states,
    /// which are not an end (the reaper never asks for them).
    #[link_section = ".text.berth_tini"]
    pub fn from_wait_status(status: i32) -> Option<Self> {
        if libc::WIFEXITED(status) {
            // WEXITSTATUS is already masked to 0..=255.
            Some(Self::Exited(libc::WEXITSTATUS(status) as u8))
        } else if libc::WIFSIGNALED(status) {
            Some(Self::Signaled {
                signo: libc::WTERMSIG(status),
                core_dumped: libc::WCOREDUMP(status),
            })
        } else {
            None
        }
    }

    /// The exit code an init reports for this ending: the code itself, or 128+N for a
    /// signal N (modulo 256, as tini does, so it always fits an exit status).
    #[link_section = ".text.berth_tini"]
    pub fn code(&self) -> u8 {
        match *self {
            Self::Exited(code) => code,
            Self::Signaled { signo, .. } => ((128 + signo) % 256) as u8,
        }
    }
}

impl fmt::Display for ExitKind {
    #[link_section = ".text.berth_tini"]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Exited(code) => write!(f, "exited with status {code}"),
            Self::Signaled { signo, core_dumped } => {
                write!(f, "killed by {}", crate::signals::name(signo))?;
                if core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

/// The set of exit codes that `-e CODE` maps to 0 (a 256-bit set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExitRemap {
    bits: [u64; 4],
}

impl ExitRemap {
    /// An empty set: every code is reported unchanged.
    #[link_section = ".text.berth_tini"]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `code` to the codes reported as 0.
    #[link_section = ".text.berth_tini"]
    pub fn insert(&mut self, code: u8) {
        self.bits[usize::from(code / 64)] |= 1 << (code % 64);
    }

    /// Whether `code` is reported as 0.
    #[link_section = ".text.berth_tini"]
    pub fn contains(&self, code: u8) -> bool {
        self.bits[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }

    /// The code to exit with for a child code `code`.
    #[link_section = ".text.berth_tini"]
    pub fn apply(&self, code: u8) -> u8 {
        if self.contains(code) {
            0
        } else {
            code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_pass_through() {
        for code in [0u8, 1, 2, 127, 255] {
            assert_eq!(ExitKind::Exited(code).code(), code);
        }
    }

    #[test]
    fn signals_map_to_128_plus_n() {
        let term = ExitKind::Signaled {
            signo: libc::SIGTERM,
            core_dumped: false,
        };
        assert_eq!(term.code(), 143);
        let kill = ExitKind::Signaled {
            signo: libc::SIGKILL,
            core_dumped: false,
        };
        assert_eq!(kill.code(), 137);
        // Realtime signals above 127 wrap like tini's `% 256`.
        let rt = ExitKind::Signaled {
            signo: 130,
            core_dumped: false,
        };
        assert_eq!(rt.code(), 2);
    }

    #[test]
    fn decodes_raw_wait_status() {
        // exit(3): status 3 << 8.
        assert_eq!(
            ExitKind::from_wait_status(3 << 8),
            Some(ExitKind::Exited(3))
        );
        // killed by SIGSEGV with a core dump: signo | 0x80.
        assert_eq!(
            ExitKind::from_wait_status(libc::SIGSEGV | 0x80),
            Some(ExitKind::Signaled {
                signo: libc::SIGSEGV,
                core_dumped: true
            })
        );
        // stopped by SIGSTOP: 0x7f | (SIGSTOP << 8).
        assert_eq!(
            ExitKind::from_wait_status(0x7f | (libc::SIGSTOP << 8)),
            None
        );
    }

    #[test]
    fn remap_turns_listed_codes_into_zero() {
        let mut remap = ExitRemap::new();
        remap.insert(3);
        remap.insert(143);
        remap.insert(255);
        assert_eq!(remap.apply(3), 0);
        assert_eq!(remap.apply(143), 0);
        assert_eq!(remap.apply(255), 0);
        assert_eq!(remap.apply(4), 4);
        assert_eq!(remap.apply(0), 0);
        assert!(!remap.contains(64));
        let term = ExitKind::Signaled {
            signo: libc::SIGTERM,
            core_dumped: false,
        };
        assert_eq!(remap.apply(term.code()), 0);
    }

    #[test]
    fn display_names_the_signal() {
        let segv = ExitKind::Signaled {
            signo: libc::SIGSEGV,
            core_dumped: true,
        };
        assert_eq!(segv.to_string(), "killed by SIGSEGV (core dumped)");
        assert_eq!(ExitKind::Exited(7).to_string(), "exited with status 7");
    }
}
