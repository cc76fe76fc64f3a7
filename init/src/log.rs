//! Messages on stderr in tini's format, `[WARN  berth-init (PID)] text`, filtered by the
//! `-v` / `TINI_VERBOSITY` level.
//!
//! Not `tracing`: the tini mode prints a handful of lines, and a subscriber would add
//! more to the binary than the whole mode weighs. Each message is one `write` so lines
//! from concurrent processes do not interleave.

use std::fmt;
use std::io::Write;

/// Message levels; a message prints when its level is at most the verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Always printed (verbosity 0).
    Fatal = 0,
    /// Default (verbosity 1).
    Warn = 1,
    /// `-v`.
    Info = 2,
    /// `-vv`.
    Debug = 3,
    /// `-vvv`.
    Trace = 4,
}

impl Level {
    #[link_section = ".text.berth_tini"]
    fn tag(self) -> &'static str {
        match self {
            Self::Fatal => "FATAL",
            Self::Warn => "WARN ",
            Self::Info => "INFO ",
            Self::Debug => "DEBUG",
            Self::Trace => "TRACE",
        }
    }
}

/// A stderr logger at a fixed verbosity.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    verbosity: u8,
}

impl Log {
    /// A logger printing messages up to `verbosity` (see [`Level`]).
    #[link_section = ".text.berth_tini"]
    pub fn new(verbosity: u8) -> Self {
        Self { verbosity }
    }

    /// Whether messages of `level` are printed.
    #[link_section = ".text.berth_tini"]
    pub fn enabled(&self, level: Level) -> bool {
        level as u8 <= self.verbosity
    }

    /// Prints one message if `level` is enabled.
    #[link_section = ".text.berth_tini"]
    pub fn log(&self, level: Level, args: fmt::Arguments<'_>) {
        if self.enabled(level) {
            let line = format_line(level, std::process::id(), args);
            // Nothing useful can be done if stderr is gone; a closed pipe gives EPIPE here
            // (SIGPIPE is blocked, and the loop does not forward the init's own SIGPIPE).
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    /// [`Level::Fatal`].
    #[link_section = ".text.berth_tini"]
    pub fn fatal(&self, args: fmt::Arguments<'_>) {
        self.log(Level::Fatal, args);
    }

    /// [`Level::Warn`].
    #[link_section = ".text.berth_tini"]
    pub fn warn(&self, args: fmt::Arguments<'_>) {
        self.log(Level::Warn, args);
    }

    /// [`Level::Info`].
    #[link_section = ".text.berth_tini"]
    pub fn info(&self, args: fmt::Arguments<'_>) {
        self.log(Level::Info, args);
    }

    /// [`Level::Debug`].
    #[link_section = ".text.berth_tini"]
    pub fn debug(&self, args: fmt::Arguments<'_>) {
        self.log(Level::Debug, args);
    }

    /// [`Level::Trace`].
    #[link_section = ".text.berth_tini"]
    pub fn trace(&self, args: fmt::Arguments<'_>) {
        self.log(Level::Trace, args);
    }
}

#[link_section = ".text.berth_tini"]
fn format_line(level: Level, pid: u32, args: fmt::Arguments<'_>) -> String {
    format!("[{} berth-init ({pid})] {args}\n", level.tag())
}

/// Formats an error with its whole `source()` chain: `a: b: c`.
#[link_section = ".text.berth_tini"]
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_filter_by_verbosity() {
        let quiet = Log::new(0);
        assert!(quiet.enabled(Level::Fatal));
        assert!(!quiet.enabled(Level::Warn));
        let default = Log::new(1);
        assert!(default.enabled(Level::Warn) && !default.enabled(Level::Info));
        assert!(Log::new(4).enabled(Level::Trace));
    }

    #[test]
    fn line_format_matches_tini() {
        let line = format_line(
            Level::Warn,
            42,
            format_args!("Reaped zombie process with pid={}", 7),
        );
        assert_eq!(
            line,
            "[WARN  berth-init (42)] Reaped zombie process with pid=7\n"
        );
    }

    #[test]
    fn chain_joins_sources() {
        let inner = std::io::Error::from_raw_os_error(libc::ENOENT);
        let outer = crate::reaper::ReapError(inner);
        assert_eq!(
            chain(&outer),
            "waitpid(-1) failed: No such file or directory (os error 2)"
        );
    }
}
