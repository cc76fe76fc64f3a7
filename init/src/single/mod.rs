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
use crate::log::Log;
use crate::reaper::{self, ReapError, Reaped, SysWait, WaitAny};
use crate::signals::{self, InheritedSignals, Received, SignalError, SignalFd};
use crate::spawn::{Spawn, SpawnError};
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
pub fn run(config: &Config, log: &Log) -> Result<u8, SingleError> {
    let inherited = InheritedSignals::capture()?;
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
    let child = spawn.spawn(&inherited)?;
    log.info(format_args!(
        "Spawned child process '{}' with pid '{child}'",
        spawn.program()
    ));

    let mut os = SysOs { signal_fd };
    supervise(&mut os, child, config, log)
}

/// What the tini loop needs from the kernel, so the loop itself is unit-tested with a
/// scripted fake (see `tests.rs`).
pub trait Os: WaitAny {
    /// Blocks until signals are pending and reads them into `out`.
    fn read_signals(&mut self, out: &mut Vec<Received>) -> Result<(), SignalError>;
    /// `kill(target, signo)`.
    fn kill(&mut self, target: i32, signo: i32) -> std::io::Result<()>;
}

/// The real kernel: the blocking signalfd, `kill`, `waitpid(-1, WNOHANG)`.
struct SysOs {
    signal_fd: SignalFd,
}

impl WaitAny for SysOs {
    fn wait_any(&mut self) -> Result<Option<Reaped>, ReapError> {
        SysWait.wait_any()
    }
}

impl Os for SysOs {
    fn read_signals(&mut self, out: &mut Vec<Received>) -> Result<(), SignalError> {
        self.signal_fd.read(out).map(drop)
    }

    fn kill(&mut self, target: i32, signo: i32) -> std::io::Result<()> {
        // SAFETY: kill has no memory-safety preconditions.
        if unsafe { libc::kill(target, signo) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The loop once `child` runs: forwards every signal (to `-child` with `-g`), reaps on
/// SIGCHLD until nothing is left, and returns the exit code when `child` was reaped.
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
            } else if signals::is_forwardable(signal.signo) {
                forward(os, target, signal.signo, log);
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

/// Sends `signo` to the child (or its group, for a negative `target`). A child that is
/// already gone (ESRCH) is not an error: its SIGCHLD is on the way.
fn forward<O: Os>(os: &mut O, target: i32, signo: i32, log: &Log) {
    log.debug(format_args!("Passing signal: '{}'", signals::name(signo)));
    if let Err(err) = os.kill(target, signo) {
        if err.raw_os_error() != Some(libc::ESRCH) {
            log.warn(format_args!(
                "Unexpected error when forwarding signal: {err}"
            ));
        }
    }
}

#[cfg(test)]
mod tests;
