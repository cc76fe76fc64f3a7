//! The tini mode: run one command, reap everything, forward every signal, exit with the
//! command's status.
//!
//! No threads and no runtime: all signals are blocked and read from a blocking
//! `signalfd`, so the process sleeps in one `read` until something happens (tini wakes
//! up every second instead). Each wake-up forwards what arrived, in order, and on SIGCHLD
//! reaps until nothing is left (SIGCHLDs coalesce). The loop ends when the main child has
//! been reaped; orphans still running are then killed by the kernel when PID 1 exits (or
//! reparented, when berth-init is a subreaper), as with tini.

use crate::cli::Config;
use crate::exit_status::ExitKind;
use crate::log::{self, Level, Log};
use crate::reaper::{self, ReapError, Reaped, SysWait, WaitAny};
use crate::signals::{self, InheritedSignals, Received, SignalError, SignalFd};
use crate::spawn::{Spawn, SpawnError, Stage};
use crate::subreaper::{self, PrctlError};

/// Why the tini mode stopped without a child status to report.
#[derive(Debug, thiserror::Error)]
pub enum SingleError {
    /// Reading or changing signal state failed.
    #[error(transparent)]
    Signals(#[from] SignalError),
    /// `-s` or `-p` could not be applied.
    #[error(transparent)]
    Prctl(#[from] PrctlError),
    /// The command could not be started.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// Reaping failed.
    #[error(transparent)]
    Reap(#[from] ReapError),
}

impl SingleError {
    /// The init's exit code for this error: 127/126 when the command could not be
    /// executed (as tini), else 1.
    #[link_section = ".text.berth_tini"]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Spawn(e) => e.exit_code(),
            _ => 1,
        }
    }
}

/// Runs `config.command` under the init and returns the exit code to exit with (the
/// child's, 128+N for signal N, after `-e` remapping).
///
/// Must be called before anything else touches signal state (it captures what the init
/// inherited, to give exactly that to the child) and from a single-threaded process.
#[link_section = ".text.berth_tini"]
pub fn run(config: &Config, log: &Log) -> Result<u8, SingleError> {
    let inherited = InheritedSignals::capture()?;
    // Started with SIGCHLD ignored, the kernel would reap every child itself and the
    // loop would wait forever. The child still gets the inherited state back.
    signals::reset_to_default(libc::SIGCHLD)?;
    signals::block_all()?;
    let signal_fd = SignalFd::new(false)?;

    if let Some(signo) = config.parent_death_signal {
        subreaper::set_parent_death_signal(signo)?;
    }
    if config.subreaper {
        subreaper::set_child_subreaper()?;
        log.trace(format_args!("Registered as child subreaper"));
    }
    let is_subreaper = subreaper::is_child_subreaper().unwrap_or(false);
    if let Some(text) = subreaper::reaping_warning(std::process::id(), is_subreaper) {
        log.warn(format_args!("{text}"));
    }

    let spawn = Spawn::new(&config.command)?
        .process_group(true)
        .foreground(true);
    let child = match spawn.spawn(&inherited) {
        Ok(child) => child,
        // The command could not be executed: 127/126 as the child's exit code, remapped
        // by `-e` like any other (tini's child exits with it, then tini remaps).
        Err(
            err @ SpawnError::Child {
                stage: Stage::Exec, ..
            },
        ) => {
            log.fatal(format_args!("{}", log::chain(&err)));
            return Ok(config.remap.apply(err.exit_code()));
        }
        Err(err) => return Err(err.into()),
    };
    if log.enabled(Level::Info) {
        log.info(format_args!(
            "Spawned child process '{}' with pid '{child}'",
            spawn.program()
        ));
    }

    let mut os = SysOs {
        signal_fd,
        pid: std::process::id(),
    };
    let code = supervise(&mut os, child, config, log);
    // Not freed: the init exits right after, and its drop code is outside the tini
    // mode's section (freeing it before the loop would map those pages into the idle
    // init, freeing it here would cost page faults on the way out).
    std::mem::forget(spawn);
    code
}

/// What the tini loop needs from the kernel, so the loop itself is unit-tested with a
/// scripted fake (see `tests.rs`).
pub trait Os: WaitAny {
    /// Blocks until signals are pending and reads them into `out`.
    fn read_signals(&mut self, out: &mut Vec<Received>) -> Result<(), SignalError>;
    /// `kill(target, signo)`.
    fn kill(&mut self, target: i32, signo: i32) -> std::io::Result<()>;
    /// The init's own pid, as senders appear in [`Received::sender`].
    fn own_pid(&self) -> u32;
}

/// The real kernel: the blocking signalfd, `kill`, `waitpid(-1, WNOHANG)`.
struct SysOs {
    signal_fd: SignalFd,
    pid: u32,
}

impl WaitAny for SysOs {
    #[link_section = ".text.berth_tini"]
    fn wait_any(&mut self) -> Result<Option<Reaped>, ReapError> {
        SysWait.wait_any()
    }
}

impl Os for SysOs {
    #[link_section = ".text.berth_tini"]
    fn read_signals(&mut self, out: &mut Vec<Received>) -> Result<(), SignalError> {
        self.signal_fd.read(out).map(drop)
    }

    #[link_section = ".text.berth_tini"]
    fn kill(&mut self, target: i32, signo: i32) -> std::io::Result<()> {
        // SAFETY: kill has no memory-safety preconditions.
        if unsafe { libc::kill(target, signo) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    #[link_section = ".text.berth_tini"]
    fn own_pid(&self) -> u32 {
        self.pid
    }
}

/// Why the loop does not pass a signal on.
#[link_section = ".text.berth_tini"]
fn skip_reason(signal: &Received, own_pid: u32) -> Option<&'static str> {
    if !signals::is_forwardable(signal.signo) {
        Some("not forwardable")
    } else if signal.sender == own_pid {
        // Raised by the init itself, e.g. SIGPIPE from a log line written to a closed
        // pipe: the init's business, not the child's.
        Some("sent by the init itself")
    } else {
        None
    }
}

/// The loop once `child` runs: forwards every signal (to `-child` with `-g`), reaps on
/// SIGCHLD until nothing is left, and returns the exit code when `child` was reaped.
#[link_section = ".text.berth_tini"]
pub fn supervise<O: Os>(
    os: &mut O,
    child: i32,
    config: &Config,
    log: &Log,
) -> Result<u8, SingleError> {
    let target = if config.kill_process_group {
        -child
    } else {
        child
    };
    let mut received: Vec<Received> = Vec::with_capacity(32);
    loop {
        os.read_signals(&mut received)?;
        let mut sigchld = false;
        for signal in &received {
            if signal.signo == libc::SIGCHLD {
                sigchld = true;
            } else if let Some(reason) = skip_reason(signal, os.own_pid()) {
                if log.enabled(Level::Debug) {
                    log.debug(format_args!(
                        "Not passing signal '{}': {reason}",
                        signals::name(signal.signo)
                    ));
                }
            } else {
                // Arguments are evaluated even when the line is not printed: the name
                // lookup only when it is.
                if log.enabled(Level::Debug) {
                    log.debug(format_args!(
                        "Passing signal: '{}'",
                        signals::name(signal.signo)
                    ));
                }
                match forward(os, target, signal.signo) {
                    Forwarded::Sent => {}
                    Forwarded::ChildGone => {
                        log.warn(format_args!("{CHILD_GONE}"));
                    }
                    Forwarded::Failed(err) => {
                        log.warn(format_args!(
                            "Unexpected error when forwarding signal: {err}"
                        ));
                    }
                }
            }
        }
        if !sigchld {
            continue;
        }
        log.debug(format_args!("Received SIGCHLD"));
        let mut main_exit: Option<ExitKind> = None;
        reaper::drain(os, |reaped| {
            if reaped.pid == child {
                main_exit = Some(reaped.exit);
            } else if config.warn_on_reap {
                log.warn(format_args!(
                    "Reaped zombie process with pid={}",
                    reaped.pid
                ));
            } else {
                log.debug(format_args!(
                    "Reaped zombie process with pid={}",
                    reaped.pid
                ));
            }
        })?;
        if let Some(exit) = main_exit {
            let code = config.remap.apply(exit.code());
            log.info(format_args!(
                "Main child {exit}; exiting with status {code}"
            ));
            return Ok(code);
        }
    }
}

/// tini's warning when a signal finds the child already gone (printed at the default
/// verbosity, as tini does).
pub const CHILD_GONE: &str = "Child was dead when forwarding signal";

/// What became of one forwarded signal.
#[derive(Debug)]
pub enum Forwarded {
    /// Delivered.
    Sent,
    /// The child (or its group) is already gone (ESRCH): its SIGCHLD is on the way.
    ChildGone,
    /// Any other `kill` error.
    Failed(std::io::Error),
}

/// Sends `signo` to the child (or its group, for a negative `target`).
#[link_section = ".text.berth_tini"]
pub fn forward<O: Os>(os: &mut O, target: i32, signo: i32) -> Forwarded {
    match os.kill(target, signo) {
        Ok(()) => Forwarded::Sent,
        Err(err) if err.raw_os_error() == Some(libc::ESRCH) => Forwarded::ChildGone,
        Err(err) => Forwarded::Failed(err),
    }
}

#[cfg(test)]
mod tests;
