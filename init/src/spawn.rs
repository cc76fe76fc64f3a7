//! Starting a command as a child of the init: `fork`, set the child up, `exec`.
//!
//! [`Spawn`] is a plain description built before forking (all strings are converted up
//! front), so the child only makes async-signal-safe calls between `fork` and `exec`:
//! safe even when the parent has other threads. The child's setup, in order:
//!
//! 1. its own process group (`setpgid(0, 0)`) when [`Spawn::process_group`] is set;
//! 2. the terminal's foreground group when [`Spawn::foreground`] is set and stdin is a
//!    terminal (`tcsetpgrp`; done by the child itself while its signals are still
//!    blocked, so SIGTTOU cannot stop it, the way tini does it);
//! 3. stdio redirections, working directory, groups, gid, uid, parent-death signal;
//! 4. every descriptor above 2 marked close-on-exec when [`Spawn::close_other_fds`];
//! 5. the init's inherited signal state ([`InheritedSignals::restore_in_child`]);
//! 6. `execvp` (PATH search like a shell).
//!
//! A failure in any step travels back over a close-on-exec pipe, so [`Spawn::spawn`]
//! returns only after the child has exec'd (`Ok(pid)`) or failed
//! ([`SpawnError::Child`], the failed child already reaped by its pid). Descriptors the
//! init opens itself are close-on-exec (the Rust standard library and this crate open
//! everything that way), so they never reach the child; descriptors the init inherited
//! without close-on-exec pass through, as with tini.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use crate::signals::InheritedSignals;

/// The step of the child's setup that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stage {
    /// `setpgid(0, 0)`.
    ProcessGroup = 1,
    /// `tcsetpgrp` on stdin.
    Foreground = 2,
    /// `dup2` of a stdio redirection.
    Stdio = 3,
    /// `chdir`.
    Chdir = 4,
    /// `setgroups`.
    Groups = 5,
    /// `setgid`.
    Gid = 6,
    /// `setuid`.
    Uid = 7,
    /// `prctl(PR_SET_PDEATHSIG)`.
    ParentDeathSignal = 8,
    /// Marking descriptors close-on-exec.
    CloseFds = 9,
    /// `execvp` itself.
    Exec = 10,
    /// Dropping capabilities (`prctl(PR_CAPBSET_DROP)`, `capset`).
    Capabilities = 11,
}

impl Stage {
    #[link_section = ".text.berth_tini"]
    fn from_u32(n: u32) -> Option<Self> {
        Some(match n {
            1 => Self::ProcessGroup,
            2 => Self::Foreground,
            3 => Self::Stdio,
            4 => Self::Chdir,
            5 => Self::Groups,
            6 => Self::Gid,
            7 => Self::Uid,
            8 => Self::ParentDeathSignal,
            9 => Self::CloseFds,
            10 => Self::Exec,
            11 => Self::Capabilities,
            _ => return None,
        })
    }

    #[link_section = ".text.berth_tini"]
    fn describe(self) -> &'static str {
        match self {
            Self::ProcessGroup => "setpgid",
            Self::Foreground => "tcsetpgrp",
            Self::Stdio => "dup2",
            Self::Chdir => "chdir",
            Self::Groups => "setgroups",
            Self::Gid => "setgid",
            Self::Uid => "setuid",
            Self::ParentDeathSignal => "prctl(PR_SET_PDEATHSIG)",
            Self::CloseFds => "close_range",
            Self::Exec => "exec",
            Self::Capabilities => "dropping capabilities",
        }
    }
}

impl std::fmt::Display for Stage {
    #[link_section = ".text.berth_tini"]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// Why a command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The command line was empty.
    #[error("no command to run")]
    Empty,
    /// An argument, variable or path contained a NUL byte.
    #[error("{what} contains a NUL byte")]
    Nul {
        /// Which input.
        what: &'static str,
    },
    /// `pipe2` or `fork` failed in the init.
    #[error("{op} failed")]
    Os {
        /// The call.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The child failed while setting up or in `exec`; it has been reaped.
    #[error("{stage} {program} failed")]
    Child {
        /// The program (`argv[0]`).
        program: String,
        /// Which step failed.
        stage: Stage,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl SpawnError {
    /// The exit code an init reports for this failure, as tini 0.19 does: 127 when the
    /// command does not exist, 126 when it exists but cannot be executed, 1 otherwise.
    #[link_section = ".text.berth_tini"]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Child {
                stage: Stage::Exec,
                source,
                ..
            } => {
                if source.raw_os_error() == Some(libc::ENOENT) {
                    127
                } else {
                    126
                }
            }
            _ => 1,
        }
    }
}

/// User and groups the child runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User id (`setuid`).
    pub uid: u32,
    /// Primary group id (`setgid`).
    pub gid: u32,
    /// Supplementary groups (`setgroups`); empty drops them all.
    pub groups: Vec<u32>,
}

/// A command to start, with how to set its process up. Build it, then call
/// [`Spawn::spawn`] (any number of times).
///
/// ```no_run
/// use berth_init::signals::{self, InheritedSignals};
/// use berth_init::spawn::Spawn;
///
/// let inherited = InheritedSignals::capture()?;
/// signals::block_all()?;
/// let pid = Spawn::new(["nginx", "-g", "daemon off;"])?
///     .process_group(true)
///     .cwd("/srv/www")?
///     .spawn(&inherited)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Spawn {
    argv: Vec<CString>,
    env: Option<Vec<CString>>,
    cwd: Option<CString>,
    credentials: Option<Credentials>,
    process_group: bool,
    foreground: bool,
    stdio: [Option<RawFd>; 3],
    close_other_fds: bool,
    parent_death_signal: Option<i32>,
    keep_caps: Option<u64>,
}

#[link_section = ".text.berth_tini"]
fn cstring(bytes: &[u8], what: &'static str) -> Result<CString, SpawnError> {
    CString::new(bytes).map_err(|_| SpawnError::Nul { what })
}

impl Spawn {
    /// A command line: `argv[0]` is the program, looked up in `PATH` unless it contains
    /// a `/`. By default the child stays in the init's process group, inherits its
    /// environment, directory, credentials and descriptors.
    #[link_section = ".text.berth_tini"]
    pub fn new<I, S>(argv: I) -> Result<Self, SpawnError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        // A plain loop rather than `collect::<Result<..>>`: its adapter's code would sit
        // outside the tini mode's section (see `lib.rs`, "The tini mode's footprint").
        let mut args = Vec::new();
        for a in argv {
            args.push(cstring(a.as_ref().as_bytes(), "argument")?);
        }
        let argv = args;
        if argv.is_empty() {
            return Err(SpawnError::Empty);
        }
        Ok(Self {
            argv,
            env: None,
            cwd: None,
            credentials: None,
            process_group: false,
            foreground: false,
            stdio: [None; 3],
            close_other_fds: false,
            parent_death_signal: None,
            keep_caps: None,
        })
    }

    /// The program name (`argv[0]`), for messages.
    #[link_section = ".text.berth_tini"]
    pub fn program(&self) -> String {
        String::from_utf8_lossy(self.argv[0].as_bytes()).into_owned()
    }

    /// Puts the child in a new process group of its own (its pgid = its pid), so the
    /// init can signal the whole group with `kill(-pid, sig)`.
    #[link_section = ".text.berth_tini"]
    pub fn process_group(mut self, yes: bool) -> Self {
        self.process_group = yes;
        self
    }

    /// When stdin is a terminal, makes the child's process group the terminal's
    /// foreground group, so Ctrl-C and job control reach it. Only meaningful together
    /// with [`Spawn::process_group`]. "No terminal" is not an error.
    #[link_section = ".text.berth_tini"]
    pub fn foreground(mut self, yes: bool) -> Self {
        self.foreground = yes;
        self
    }

    /// Replaces the environment with exactly these `KEY=VALUE` entries.
    #[link_section = ".text.berth_tini"]
    pub fn env<I, K, V>(mut self, vars: I) -> Result<Self, SpawnError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut env = Vec::new();
        for (k, v) in vars {
            let mut entry = k.as_ref().as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_ref().as_bytes());
            env.push(cstring(&entry, "environment variable")?);
        }
        self.env = Some(env);
        Ok(self)
    }

    /// Working directory of the child.
    #[link_section = ".text.berth_tini"]
    pub fn cwd(mut self, dir: impl AsRef<OsStr>) -> Result<Self, SpawnError> {
        self.cwd = Some(cstring(dir.as_ref().as_bytes(), "working directory")?);
        Ok(self)
    }

    /// Runs the child as this user and these groups.
    #[link_section = ".text.berth_tini"]
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Makes `fd` the child's stdin (0), stdout (1) or stderr (2). `fd` must stay open
    /// until `spawn` returns and must be above 2 (dup it first otherwise).
    #[link_section = ".text.berth_tini"]
    pub fn stdio(mut self, target: usize, fd: RawFd) -> Self {
        assert!(target < 3, "stdio target must be 0, 1 or 2");
        self.stdio[target] = Some(fd);
        self
    }

    /// Marks every descriptor above 2 close-on-exec in the child, so even descriptors
    /// the init inherited without that flag do not reach it (tini passes those through,
    /// so the tini mode leaves this off).
    #[link_section = ".text.berth_tini"]
    pub fn close_other_fds(mut self, yes: bool) -> Self {
        self.close_other_fds = yes;
        self
    }

    /// Limits the child to the capabilities in `keep` (bit n = capability n): every other
    /// one leaves its bounding and inheritable sets before exec, so not even a setuid-root
    /// or file-capability binary gets it back. Fails the spawn when init cannot drop them
    /// (no CAP_SETPCAP): the child never runs with more than asked.
    #[link_section = ".text.berth_tini"]
    pub fn keep_capabilities(mut self, keep: u64) -> Self {
        self.keep_caps = Some(keep);
        self
    }

    /// Signal the child gets when the init dies (`PR_SET_PDEATHSIG`, set after the
    /// credentials change, which would clear it).
    #[link_section = ".text.berth_tini"]
    pub fn parent_death_signal(mut self, signo: Option<i32>) -> Self {
        self.parent_death_signal = signo;
        self
    }

    /// Forks and execs the command; returns the child's pid once `exec` succeeded.
    ///
    /// The caller must have blocked all signals ([`crate::signals::block_all`]) so the
    /// child starts with them blocked and restores `inherited` itself just before exec.
    /// The pid must then be reaped through the init's one reaper
    /// ([`crate::reaper::drain`]); register it in a [`crate::reaper::ChildTable`] before
    /// the next drain.
    #[link_section = ".text.berth_tini"]
    pub fn spawn(&self, inherited: &InheritedSignals) -> Result<i32, SpawnError> {
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let envp: Option<Vec<*const libc::c_char>> = self.env.as_ref().map(|env| {
            let mut p: Vec<_> = env.iter().map(|e| e.as_ptr()).collect();
            p.push(std::ptr::null());
            p
        });
        let groups: Vec<libc::gid_t> = self
            .credentials
            .as_ref()
            .map(|c| c.groups.clone())
            .unwrap_or_default();
        let (read_end, write_end) = error_pipe()?;

        // SAFETY: the child branch below only makes async-signal-safe calls on data
        // prepared above (no allocation, no locks) and ends in exec or _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(SpawnError::Os {
                op: "fork",
                source: io::Error::last_os_error(),
            });
        }
        if pid == 0 {
            drop(read_end);
            let (stage, errno) = self.child_setup(inherited, &groups, &argv, envp.as_deref());
            report_and_exit(write_end.as_raw_fd(), stage, errno);
        }
        drop(write_end);
        match read_report(&read_end) {
            None => Ok(pid),
            Some((stage, errno)) => {
                wait_for(pid);
                Err(SpawnError::Child {
                    program: self.program(),
                    stage,
                    source: io::Error::from_raw_os_error(errno),
                })
            }
        }
    }

    /// Runs in the forked child. Returns only on failure: which step and its errno.
    #[link_section = ".text.berth_tini"]
    fn child_setup(
        &self,
        inherited: &InheritedSignals,
        groups: &[libc::gid_t],
        argv: &[*const libc::c_char],
        envp: Option<&[*const libc::c_char]>,
    ) -> (Stage, i32) {
        // SAFETY: only async-signal-safe libc calls, on pointers to data that lives in
        // this (copied) address space until exec.
        unsafe {
            if self.process_group && libc::setpgid(0, 0) != 0 {
                return (Stage::ProcessGroup, errno());
            }
            if self.foreground
                && libc::isatty(libc::STDIN_FILENO) == 1
                && libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp()) != 0
            {
                let e = errno();
                // No controlling terminal (ENOTTY) or a hung-up one (ENXIO): fine.
                if e != libc::ENOTTY && e != libc::ENXIO {
                    return (Stage::Foreground, e);
                }
            }
            for (target, fd) in self.stdio.iter().enumerate() {
                if let Some(fd) = *fd {
                    if libc::dup2(fd, target as RawFd) < 0 {
                        return (Stage::Stdio, errno());
                    }
                }
            }
            if let Some(cwd) = &self.cwd {
                if libc::chdir(cwd.as_ptr()) != 0 {
                    return (Stage::Chdir, errno());
                }
            }
            if let Some(keep) = self.keep_caps {
                if let Err(e) = limit_capabilities(keep) {
                    return (Stage::Capabilities, e);
                }
            }
            if let Some(c) = &self.credentials {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
                    return (Stage::Groups, errno());
                }
                if libc::setgid(c.gid) != 0 {
                    return (Stage::Gid, errno());
                }
                if libc::setuid(c.uid) != 0 {
                    return (Stage::Uid, errno());
                }
            }
            if let Some(signo) = self.parent_death_signal {
                if libc::prctl(libc::PR_SET_PDEATHSIG, signo as libc::c_ulong) != 0 {
                    return (Stage::ParentDeathSignal, errno());
                }
            }
            if self.close_other_fds && !cloexec_from_3() {
                return (Stage::CloseFds, errno());
            }
            inherited.restore_in_child();
            match envp {
                Some(envp) => libc::execvpe(argv[0], argv.as_ptr(), envp.as_ptr()),
                None => libc::execvp(argv[0], argv.as_ptr()),
            };
            (Stage::Exec, errno())
        }
    }
}

/// Drops every capability outside `keep` from the calling thread's bounding set and
/// inheritable set (which also empties the ambient set of them). Async-signal-safe.
/// Returns the errno of the first failure.
#[link_section = ".text.berth_tini"]
fn limit_capabilities(keep: u64) -> Result<(), i32> {
    for cap in 0..64u32 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        match crate::capset::in_bounding(cap) {
            // Past the kernel's last capability: nothing more to drop.
            None => break,
            Some(true) => crate::capset::drop_bounding(cap)?,
            Some(false) => {}
        }
    }
    let mut sets = crate::capset::get()?;
    sets.inheritable &= keep;
    crate::capset::set(sets)
}

#[link_section = ".text.berth_tini"]
fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A close-on-exec pipe whose ends are both above fd 2, so a stdio `dup2` in the child
/// can never overwrite them (fd 0-2 may be closed when the init starts).
#[link_section = ".text.berth_tini"]
fn error_pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SpawnError::Os {
            op: "pipe2",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: pipe2 just returned these two descriptors, owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(r)?, above_stdio(w)?))
}

#[link_section = ".text.berth_tini"]
fn above_stdio(fd: OwnedFd) -> Result<OwnedFd, SpawnError> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new descriptor >= 3.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(SpawnError::Os {
            op: "fcntl(F_DUPFD_CLOEXEC)",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: `new` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Marks fds 3.. close-on-exec: `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`, or a loop on
/// kernels older than 5.11. Async-signal-safe.
#[link_section = ".text.berth_tini"]
fn cloexec_from_3() -> bool {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags of this process.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return true;
    }
    for fd in 3..nofile_limit().min(65_536) as RawFd {
        // SAFETY: fcntl on a possibly closed fd just fails with EBADF.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    true
}

#[link_section = ".text.berth_tini"]
fn nofile_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: 1024,
    };
    // SAFETY: `rl` is a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    rl.rlim_cur
}

/// In the child: writes (stage, errno) to the error pipe and exits without running any
/// destructor or atexit handler of the parent's copy.
#[link_section = ".text.berth_tini"]
fn report_and_exit(fd: RawFd, stage: Stage, errno: i32) -> ! {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: write and _exit are async-signal-safe; `msg` is valid for 8 bytes.
    unsafe {
        libc::write(fd, msg.as_ptr().cast(), msg.len());
        libc::_exit(if stage == Stage::Exec && errno == libc::ENOENT {
            127
        } else {
            126
        });
    }
}

/// In the parent: `None` when the pipe closed without a report (exec succeeded).
#[link_section = ".text.berth_tini"]
fn read_report(fd: &OwnedFd) -> Option<(Stage, i32)> {
    let mut msg = [0u8; 8];
    let mut got = 0;
    while got < msg.len() {
        // SAFETY: reading into the unfilled tail of `msg`.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                msg[got..].as_mut_ptr().cast(),
                msg.len() - got,
            )
        };
        if n == 0 {
            break;
        }
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            break;
        }
        got += n as usize;
    }
    if got < msg.len() {
        return None;
    }
    let stage = u32::from_ne_bytes(msg[..4].try_into().ok()?);
    let errno = i32::from_ne_bytes(msg[4..].try_into().ok()?);
    Some((Stage::from_u32(stage)?, errno))
}

/// Reaps the child that failed to exec, by pid. If another reaper already took it
/// (ECHILD), there is nothing left to do.
#[link_section = ".text.berth_tini"]
fn wait_for(pid: i32) {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc >= 0 || errno() != libc::EINTR {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_and_nul() {
        assert!(matches!(
            Spawn::new(Vec::<&str>::new()),
            Err(SpawnError::Empty)
        ));
        assert!(matches!(
            Spawn::new(["a\0b"]),
            Err(SpawnError::Nul { what: "argument" })
        ));
        let s = Spawn::new(["env"]).unwrap();
        assert!(matches!(s.env([("A\0", "b")]), Err(SpawnError::Nul { .. })));
    }

    #[test]
    fn exit_codes_follow_tini() {
        let err = |stage, errno| SpawnError::Child {
            program: "x".into(),
            stage,
            source: io::Error::from_raw_os_error(errno),
        };
        assert_eq!(err(Stage::Exec, libc::ENOENT).exit_code(), 127);
        assert_eq!(err(Stage::Exec, libc::EACCES).exit_code(), 126);
        assert_eq!(err(Stage::Exec, libc::ENOEXEC).exit_code(), 126);
        assert_eq!(err(Stage::Chdir, libc::ENOENT).exit_code(), 1);
        assert_eq!(err(Stage::Exec, libc::ENOENT).to_string(), "exec x failed");
    }

    #[test]
    fn stages_round_trip() {
        for n in 1..=10 {
            assert_eq!(Stage::from_u32(n).map(|s| s as u32), Some(n));
        }
        assert_eq!(Stage::from_u32(0), None);
    }
}
