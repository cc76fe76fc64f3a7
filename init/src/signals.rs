//! The init's signal plumbing: remember what it inherited, block everything, read signals
//! from a `signalfd`, and give a freshly forked child back exactly the inherited state.
//!
//! The sequence every mode follows:
//!
//! 1. [`InheritedSignals::capture`] before anything touches signals: the mask and the set
//!    of ignored signals the init was started with. Then [`reset_to_default`] of SIGCHLD
//!    (an inherited `SIG_IGN` makes the kernel reap the init's children behind its back).
//! 2. [`block_all`]: every signal becomes pending instead of being delivered. A blocked
//!    signal is queued even for PID 1 of a namespace (the kernel drops only signals that
//!    are unblocked *and* left at the default action there), so nothing is lost and no
//!    handler runs at a bad moment. Call it before starting any thread: threads inherit
//!    the mask of the thread that creates them.
//! 3. [`SignalFd::new`] and read it (blocking, or from a poll loop when non-blocking).
//! 4. In every forked child, [`InheritedSignals::restore_in_child`] just before `exec`.
//!
//! Faults the init itself causes (SIGSEGV, SIGBUS, ...) still kill it while blocked: the
//! kernel unblocks a synchronous fault signal it must deliver.

use std::borrow::Cow;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Highest signal number on Linux (`SIGRTMAX`).
pub const MAX_SIGNAL: i32 = 64;

/// A failed signal syscall.
#[derive(Debug, thiserror::Error)]
#[error("{op} failed")]
pub struct SignalError {
    /// The call that failed (`sigprocmask`, `signalfd`, ...).
    pub op: &'static str,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl SignalError {
    #[link_section = ".text.berth_tini"]
    fn last(op: &'static str) -> Self {
        Self {
            op,
            source: io::Error::last_os_error(),
        }
    }
}

/// The signal mask and ignored signals the init inherited from whoever started it.
#[derive(Clone, Copy)]
pub struct InheritedSignals {
    mask: libc::sigset_t,
    /// Bit `n - 1` set when signal `n` was `SIG_IGN`.
    ignored: u64,
}

impl std::fmt::Debug for InheritedSignals {
    #[link_section = ".text.berth_tini"]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InheritedSignals")
            .field("blocked", &format_args!("{:#018x}", self.blocked_bits()))
            .field("ignored", &format_args!("{:#018x}", self.ignored))
            .finish()
    }
}

impl InheritedSignals {
    /// Reads the calling thread's mask and which signals are ignored. Call it first
    /// thing, before [`block_all`] or any `sigaction`.
    ///
    /// The ignored set comes from `/proc/thread-self/status` (`SigIgn`, one read, and the
    /// only way to see glibc's two reserved signals); without /proc, from one
    /// `sigaction` query per signal.
    #[link_section = ".text.berth_tini"]
    pub fn capture() -> Result<Self, SignalError> {
        let mut mask = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: a null new-set only queries; `mask` is valid for writing.
        if unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), mask.as_mut_ptr()) }
            != 0
        {
            return Err(SignalError::last("pthread_sigmask"));
        }
        // SAFETY: pthread_sigmask succeeded and filled the set.
        let mask = unsafe { mask.assume_init() };
        let ignored = proc_ignored_set().unwrap_or_else(query_ignored_set);
        Ok(Self { mask, ignored })
    }

    /// Whether `signo` was blocked when the init started.
    #[link_section = ".text.berth_tini"]
    pub fn was_blocked(&self, signo: i32) -> bool {
        // SAFETY: `self.mask` is an initialised sigset_t; sigismember only reads it.
        unsafe { libc::sigismember(&self.mask, signo) == 1 }
    }

    /// Whether `signo` was ignored (`SIG_IGN`) when the init started.
    #[link_section = ".text.berth_tini"]
    pub fn was_ignored(&self, signo: i32) -> bool {
        (1..=MAX_SIGNAL).contains(&signo) && self.ignored & (1 << (signo - 1)) != 0
    }

    #[link_section = ".text.berth_tini"]
    fn blocked_bits(&self) -> u64 {
        (1..=MAX_SIGNAL)
            .filter(|&s| self.was_blocked(s))
            .fold(0, |acc, s| acc | 1 << (s - 1))
    }

    /// Puts the inherited state back: the disposition of every signal whose "ignored"
    /// state differs from the inherited one (to `SIG_IGN` or `SIG_DFL`), then the
    /// inherited mask (last, so nothing is delivered while dispositions change).
    ///
    /// Meant for a forked child right before `exec`: it only makes async-signal-safe
    /// calls (`open`/`read` of /proc/thread-self/status, `sigaction`, `sigprocmask`) and
    /// does not allocate. Handlers need no reset (`exec` resets them to `SIG_DFL`); what
    /// must be fixed is `SIG_IGN`, which survives `exec`. Signals inherited ignored are
    /// set to `SIG_IGN` again in case the parent installed a handler since. Without
    /// /proc every signal is set. Failures are ignored: nothing can be reported from
    /// there, and SIGKILL, SIGSTOP and glibc's reserved signals cannot be changed.
    #[link_section = ".text.berth_tini"]
    pub fn restore_in_child(&self) {
        let differs = match proc_ignored_set() {
            Some(current) => (current ^ self.ignored) | self.ignored,
            None => u64::MAX,
        };
        for signo in 1..=MAX_SIGNAL {
            if differs & (1 << (signo - 1)) == 0 || signo == libc::SIGKILL || signo == libc::SIGSTOP
            {
                continue;
            }
            let handler = if self.was_ignored(signo) {
                libc::SIG_IGN
            } else {
                libc::SIG_DFL
            };
            // SAFETY: a zeroed sigaction is valid (empty sa_mask, no flags); we only set
            // the handler to one of the two constant dispositions.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handler;
                libc::sigaction(signo, &action, std::ptr::null_mut());
            }
        }
        // SAFETY: `self.mask` is a valid, initialised sigset_t.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.mask, std::ptr::null_mut());
        }
    }
}

/// The ignored set of the calling thread from `/proc/thread-self/status`, or `None`
/// without /proc. Async-signal-safe: a stack buffer, `open`, `read`, `close`.
#[link_section = ".text.berth_tini"]
fn proc_ignored_set() -> Option<u64> {
    let mut buf = [0u8; 4096];
    // SAFETY: the path is NUL-terminated; O_CLOEXEC so no child ever inherits it.
    let fd = unsafe {
        libc::open(
            c"/proc/thread-self/status".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let mut len = 0;
    while len < buf.len() {
        // SAFETY: reading into the unfilled tail of `buf`.
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    status_field(&buf[..len], b"SigIgn:")
}

/// Parses a hexadecimal mask line such as `SigIgn:\t0000000000001000` out of a
/// /proc/PID/status text (no allocation).
#[link_section = ".text.berth_tini"]
fn status_field(text: &[u8], name: &[u8]) -> Option<u64> {
    let start = text.windows(name.len()).position(|w| w == name)? + name.len();
    let mut value: u64 = 0;
    let mut digits = 0;
    for &b in text[start..].iter().skip_while(|b| b.is_ascii_whitespace()) {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => break,
        };
        value = value.checked_mul(16)? | u64::from(d);
        digits += 1;
    }
    (digits > 0).then_some(value)
}

/// The ignored set by asking `sigaction` about each signal (glibc refuses its two
/// reserved signals; they count as not ignored).
#[link_section = ".text.berth_tini"]
fn query_ignored_set() -> u64 {
    let mut ignored = 0u64;
    for signo in 1..=MAX_SIGNAL {
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: a null new action only queries; `old` is valid for writing.
        let rc = unsafe { libc::sigaction(signo, std::ptr::null(), old.as_mut_ptr()) };
        // SAFETY: zero-initialised and, on success, filled by the kernel.
        if rc == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN {
            ignored |= 1 << (signo - 1);
        }
    }
    ignored
}

/// Sets the disposition of `signo` to `SIG_DFL` in the init itself.
///
/// For SIGCHLD after [`InheritedSignals::capture`]: an init started with SIGCHLD ignored
/// would have its children reaped by the kernel (no zombie, no SIGCHLD) and never learn
/// that its command ended. The child still gets the inherited disposition back from
/// [`InheritedSignals::restore_in_child`].
#[link_section = ".text.berth_tini"]
pub fn reset_to_default(signo: i32) -> Result<(), SignalError> {
    // SAFETY: a zeroed sigaction is valid (empty sa_mask, no flags, SIG_DFL); the old
    // action is not requested.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(signo, &action, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(SignalError::last("sigaction"));
    }
    Ok(())
}

/// Blocks every signal in the calling thread (SIGKILL and SIGSTOP cannot be blocked; the
/// kernel ignores them in the set). Afterwards signals wait in the pending set until
/// read from a [`SignalFd`].
#[link_section = ".text.berth_tini"]
pub fn block_all() -> Result<(), SignalError> {
    let set = full_set();
    // SAFETY: `set` is an initialised sigset_t; the old mask is not requested.
    if unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) } != 0 {
        return Err(SignalError::last("pthread_sigmask"));
    }
    Ok(())
}

#[link_section = ".text.berth_tini"]
fn full_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises the whole set.
    unsafe {
        libc::sigfillset(set.as_mut_ptr());
        set.assume_init()
    }
}

/// One signal read from a [`SignalFd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The signal number.
    pub signo: i32,
    /// The sender's pid as the init sees it (0 when the kernel sent it).
    pub sender: u32,
    /// `si_code` (`SI_USER`, `SI_KERNEL`, `CLD_EXITED`, ...).
    pub code: i32,
}

/// A `signalfd` for every signal, opened close-on-exec so no child inherits it.
///
/// Standard signals coalesce: two SIGCHLDs before a read give one [`Received`]. Whoever
/// reads a SIGCHLD must therefore reap in a loop until nothing is left (see
/// [`crate::reaper::drain`]).
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// Opens the signalfd. With `nonblocking`, [`SignalFd::read`] returns an empty batch
    /// instead of waiting (for use from `poll`/`epoll`). Call [`block_all`] first, or the
    /// signals are delivered normally and never show up here.
    #[link_section = ".text.berth_tini"]
    pub fn new(nonblocking: bool) -> Result<Self, SignalError> {
        let set = full_set();
        let mut flags = libc::SFD_CLOEXEC;
        if nonblocking {
            flags |= libc::SFD_NONBLOCK;
        }
        // SAFETY: -1 asks for a new fd; `set` is initialised.
        let fd = unsafe { libc::signalfd(-1, &set, flags) };
        if fd < 0 {
            return Err(SignalError::last("signalfd"));
        }
        // SAFETY: `fd` was just returned by signalfd and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Reads the pending signals (up to 32 per call) into `out`, which is cleared first.
    /// Blocks until at least one is pending unless the fd is non-blocking. Retries on
    /// EINTR. Returns how many were read.
    #[link_section = ".text.berth_tini"]
    pub fn read(&mut self, out: &mut Vec<Received>) -> Result<usize, SignalError> {
        const BATCH: usize = 32;
        out.clear();
        let mut buf = [MaybeUninit::<libc::signalfd_siginfo>::uninit(); BATCH];
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let n = loop {
            // SAFETY: `buf` is writable for BATCH * size bytes; the fd is a signalfd.
            let n =
                unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), BATCH * size) };
            if n >= 0 {
                break n as usize;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(0),
                _ => {
                    return Err(SignalError {
                        op: "read(signalfd)",
                        source: err,
                    })
                }
            }
        };
        for slot in buf.iter().take(n / size) {
            // SAFETY: the kernel wrote `n` bytes, whole records only.
            let info = unsafe { slot.assume_init_ref() };
            out.push(Received {
                signo: info.ssi_signo as i32,
                sender: info.ssi_pid,
                code: info.ssi_code,
            });
        }
        Ok(out.len())
    }
}

impl AsFd for SignalFd {
    #[link_section = ".text.berth_tini"]
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for SignalFd {
    #[link_section = ".text.berth_tini"]
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Whether an init should pass `signo` on to its child: everything but SIGCHLD (the
/// init's own business) and the two signals nobody can catch.
#[link_section = ".text.berth_tini"]
pub fn is_forwardable(signo: i32) -> bool {
    !matches!(signo, libc::SIGCHLD | libc::SIGKILL | libc::SIGSTOP)
}

const NAMES: &[(&str, i32)] = &[
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGILL", libc::SIGILL),
    ("SIGTRAP", libc::SIGTRAP),
    ("SIGABRT", libc::SIGABRT),
    ("SIGIOT", libc::SIGIOT),
    ("SIGBUS", libc::SIGBUS),
    ("SIGFPE", libc::SIGFPE),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGSEGV", libc::SIGSEGV),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGPIPE", libc::SIGPIPE),
    ("SIGALRM", libc::SIGALRM),
    ("SIGTERM", libc::SIGTERM),
    ("SIGSTKFLT", libc::SIGSTKFLT),
    ("SIGCHLD", libc::SIGCHLD),
    ("SIGCONT", libc::SIGCONT),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGTSTP", libc::SIGTSTP),
    ("SIGTTIN", libc::SIGTTIN),
    ("SIGTTOU", libc::SIGTTOU),
    ("SIGURG", libc::SIGURG),
    ("SIGXCPU", libc::SIGXCPU),
    ("SIGXFSZ", libc::SIGXFSZ),
    ("SIGVTALRM", libc::SIGVTALRM),
    ("SIGPROF", libc::SIGPROF),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGIO", libc::SIGIO),
    ("SIGPOLL", libc::SIGPOLL),
    ("SIGPWR", libc::SIGPWR),
    ("SIGSYS", libc::SIGSYS),
];

/// The name of a signal: `SIGTERM`, `SIGRTMIN+3`, or `signal 99` for nonsense.
#[link_section = ".text.berth_tini"]
pub fn name(signo: i32) -> Cow<'static, str> {
    if let Some((name, _)) = NAMES.iter().find(|(_, n)| *n == signo) {
        return Cow::Borrowed(name);
    }
    let rtmin = libc::SIGRTMIN();
    if (rtmin..=libc::SIGRTMAX()).contains(&signo) {
        return Cow::Owned(format!("SIGRTMIN+{}", signo - rtmin));
    }
    Cow::Owned(format!("signal {signo}"))
}

/// Parses a signal given by a user: `SIGKILL` (tini's form), `KILL`, `sigkill`,
/// `SIGRTMIN+2`, or a number from 1 to 64.
#[link_section = ".text.berth_tini"]
pub fn parse(text: &str) -> Option<i32> {
    if let Ok(n) = text.parse::<i32>() {
        return (1..=MAX_SIGNAL).contains(&n).then_some(n);
    }
    let upper = text.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if let Some((_, n)) = NAMES.iter().find(|(name, _)| *name == full) {
        return Some(*n);
    }
    let (base, offset) = match full.split_once('+') {
        Some((base, off)) => (base, off.parse::<i32>().ok()?),
        None => (full.as_str(), 0),
    };
    let n = match base {
        "SIGRTMIN" => libc::SIGRTMIN() + offset,
        "SIGRTMAX" if offset == 0 => libc::SIGRTMAX(),
        _ => return None,
    };
    (n <= libc::SIGRTMAX()).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tini_and_short_forms() {
        assert_eq!(parse("SIGKILL"), Some(libc::SIGKILL));
        assert_eq!(parse("KILL"), Some(libc::SIGKILL));
        assert_eq!(parse("sigterm"), Some(libc::SIGTERM));
        assert_eq!(parse("15"), Some(15));
        assert_eq!(parse("SIGRTMIN+2"), Some(libc::SIGRTMIN() + 2));
        assert_eq!(parse("SIGRTMAX"), Some(libc::SIGRTMAX()));
        assert_eq!(parse("0"), None);
        assert_eq!(parse("65"), None);
        assert_eq!(parse("SIGFOO"), None);
        assert_eq!(parse("SIGRTMIN+99"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn names_round_trip() {
        for signo in 1..=MAX_SIGNAL {
            if (32..libc::SIGRTMIN()).contains(&signo) {
                continue; // glibc-reserved, no name
            }
            assert_eq!(parse(&name(signo)), Some(signo), "{}", name(signo));
        }
        assert_eq!(name(99), "signal 99");
    }

    #[test]
    fn parses_status_masks() {
        let text = b"Name:\tx\nSigBlk:\t0000000000010000\nSigIgn:\t0000000180001001\nSigCgt:\t0\n";
        assert_eq!(status_field(text, b"SigIgn:"), Some(0x1_8000_1001));
        assert_eq!(status_field(text, b"SigBlk:"), Some(0x10000));
        assert_eq!(status_field(text, b"SigPnd:"), None);
        assert_eq!(status_field(b"SigIgn:\t\n", b"SigIgn:"), None);
        assert_eq!(
            status_field(b"SigIgn:\tfffffffffffffffff\n", b"SigIgn:"),
            None
        );
    }

    #[test]
    fn proc_and_sigaction_agree_on_the_ignored_set() {
        // Outside glibc's reserved signals, both ways read the same dispositions.
        let reserved = 0b11u64 << 31;
        let from_proc = proc_ignored_set().expect("/proc is mounted");
        assert_eq!(from_proc & !reserved, query_ignored_set() & !reserved);
    }

    #[test]
    fn forwards_all_but_chld_kill_stop() {
        assert!(is_forwardable(libc::SIGTERM));
        assert!(is_forwardable(libc::SIGWINCH));
        assert!(is_forwardable(libc::SIGTTIN));
        assert!(is_forwardable(libc::SIGRTMIN()));
        assert!(!is_forwardable(libc::SIGCHLD));
        assert!(!is_forwardable(libc::SIGKILL));
        assert!(!is_forwardable(libc::SIGSTOP));
    }
}
