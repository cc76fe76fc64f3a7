//! tini-compatible command line: `berth-init [OPTIONS] [--] CMD [ARGS...]`.
//!
//! Parsed by hand rather than with clap: the grammar is getopt's (clustered flags such
//! as `-sgvv`, `-e3` and `-e 3`, repeatable options) and has to match tini 0.19 exactly,
//! and the tini mode is meant to stay a small binary. Option parsing stops at the first
//! argument that is not an option (as tini does with POSIXLY_CORRECT), so
//! `berth-init sh -c 'x' -v` passes `-v` to `sh`; `--` is accepted and dropped.
//!
//! The environment is read through a closure so unit tests pass a fake one. Variables,
//! as in tini: `TINI_SUBREAPER` (present, even empty = `-s`), `TINI_KILL_PROCESS_GROUP`
//! (present = `-g`), `TINI_VERBOSITY=N` (overrides `-v`; read like C's `atoi`, as tini
//! does: no number is 0, negative is 0, more than 4 is 4).

use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::exit_status::ExitRemap;
use crate::signals;

/// The tini release whose behaviour berth-init follows (and reports as `docker-init`).
pub const TINI_VERSION: &str = "0.19.0";

/// Exit code for a command line berth-init cannot use. tini exits 1 there; berth-init
/// uses the usual 2 ("usage error") so that a typo is not mistaken for a failing child
/// that exited 1.
pub const USAGE_EXIT: u8 = 2;

/// What the tini mode runs, parsed from the command line and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `-s` / `TINI_SUBREAPER`: register as a child subreaper.
    pub subreaper: bool,
    /// `-g` / `TINI_KILL_PROCESS_GROUP`: forward signals to the child's process group.
    pub kill_process_group: bool,
    /// `-e CODE` (repeatable): child exit codes reported as 0.
    pub remap: ExitRemap,
    /// `-p SIGNAL`: the init's own parent-death signal.
    pub parent_death_signal: Option<i32>,
    /// 0 = fatal errors only, 1 = warnings (default), 2 = info, 3 = debug, 4 = trace.
    pub verbosity: u8,
    /// `-w`: print a warning for every zombie reaped that was not the main child.
    pub warn_on_reap: bool,
    /// The command and its arguments (never empty).
    pub command: Vec<OsString>,
}

impl Default for Config {
    #[link_section = ".text.berth_tini"]
    fn default() -> Self {
        Self {
            subreaper: false,
            kill_process_group: false,
            remap: ExitRemap::new(),
            parent_death_signal: None,
            verbosity: 1,
            warn_on_reap: false,
            command: Vec::new(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run a command under the init.
    Run(Config),
    /// `-h` / `--help`: print [`usage`] on stdout, exit 0.
    Help,
    /// `--version`: print [`version_line`], exit 0.
    Version,
    /// `-l`: print the license, exit 0.
    License,
}

/// A command line berth-init refuses (exit [`USAGE_EXIT`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// An option that does not exist.
    #[error("unknown option '{0}'")]
    UnknownOption(String),
    /// `-e` or `-p` at the very end.
    #[error("option -{0} requires an argument")]
    MissingArgument(char),
    /// `-e` with something that is not 0..=255.
    #[error("not a valid exit code for -e: '{0}' (expected 0 to 255)")]
    BadExitCode(String),
    /// `-p` with something that is not a signal.
    #[error("not a valid signal for -p: '{0}' (expected a name such as SIGKILL, or a number)")]
    BadSignal(String),
    /// `--version` with other arguments (tini refuses that too).
    #[error("--version takes no other arguments")]
    VersionNotAlone,
    /// Options but no command.
    #[error("no command given")]
    NoCommand,
}

/// Parses the arguments after `argv[0]`, reading variables through `env`.
#[link_section = ".text.berth_tini"]
pub fn parse<I, F>(args: I, env: F) -> Result<Action, CliError>
where
    I: IntoIterator<Item = OsString>,
    F: Fn(&str) -> Option<OsString>,
{
    let mut config = Config::default();
    let mut args = args.into_iter();
    let mut v_count: u8 = 0;
    let mut first = true;
    while let Some(arg) = args.next() {
        let bytes = arg.as_encoded_bytes();
        if bytes == b"--" {
            break;
        }
        if bytes == b"--version" {
            // As tini: only `berth-init --version` alone.
            if !first || args.next().is_some() {
                return Err(CliError::VersionNotAlone);
            }
            return Ok(Action::Version);
        }
        first = false;
        if bytes == b"--help" {
            return Ok(Action::Help);
        }
        if bytes.starts_with(b"--") {
            return Err(CliError::UnknownOption(arg.to_string_lossy().into_owned()));
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            config.command.push(arg);
            break;
        }
        // A cluster of short options: -sgvv, -e3, -e 3, -pSIGKILL. Read as bytes (every
        // option letter is ASCII); text is made only for a value or an error.
        for (i, &c) in bytes.iter().enumerate().skip(1) {
            match c {
                b's' => config.subreaper = true,
                b'g' => config.kill_process_group = true,
                b'w' => config.warn_on_reap = true,
                b'v' => v_count = v_count.saturating_add(1),
                b'h' => return Ok(Action::Help),
                b'l' => return Ok(Action::License),
                b'e' | b'p' => {
                    let letter = char::from(c);
                    let rest = &bytes[i + 1..];
                    let value = if rest.is_empty() {
                        let next = args.next().ok_or(CliError::MissingArgument(letter))?;
                        next.to_string_lossy().into_owned()
                    } else {
                        String::from_utf8_lossy(rest).into_owned()
                    };
                    if c == b'e' {
                        let code = value
                            .parse::<u8>()
                            .map_err(|_| CliError::BadExitCode(value.clone()))?;
                        config.remap.insert(code);
                    } else {
                        let signo =
                            signals::parse(&value).ok_or(CliError::BadSignal(value.clone()))?;
                        config.parent_death_signal = Some(signo);
                    }
                    break;
                }
                _ => {
                    // The whole character (it may be more than one byte).
                    let other = String::from_utf8_lossy(&bytes[i..]);
                    let other = other.chars().next().unwrap_or(char::REPLACEMENT_CHARACTER);
                    return Err(CliError::UnknownOption(format!("-{other}")));
                }
            }
        }
    }
    config.command.extend(args);
    if config.command.is_empty() {
        return Err(CliError::NoCommand);
    }
    config.verbosity = config.verbosity.saturating_add(v_count);
    if env("TINI_SUBREAPER").is_some() {
        config.subreaper = true;
    }
    if env("TINI_KILL_PROCESS_GROUP").is_some() {
        config.kill_process_group = true;
    }
    if let Some(v) = env("TINI_VERBOSITY") {
        config.verbosity = verbosity_from_env(v.as_encoded_bytes());
    }
    Ok(Action::Run(config))
}

/// The environment variable `name` (`getenv`), for [`parse`] in the real process.
///
/// Not `std::env::var_os`: that takes std's environment lock and pulls in its own
/// code, and the tini mode reads its three variables before anything else runs, in a
/// single thread (see `lib.rs`, "The tini mode's footprint"). A name longer than 63
/// bytes or holding a NUL is never set.
#[link_section = ".text.berth_tini"]
pub fn env_var(name: &str) -> Option<OsString> {
    use std::os::unix::ffi::OsStrExt;
    let mut buf = [0u8; 64];
    if name.len() >= buf.len() || name.as_bytes().contains(&0) {
        return None;
    }
    buf[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `buf` holds a NUL-terminated name; getenv only reads it. The value it
    // returns is copied at once, before anything could change the environment (the
    // init is single-threaded here and never calls setenv).
    let value = unsafe { libc::getenv(buf.as_ptr().cast()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: a non-null getenv result is a NUL-terminated string in the environment.
    let bytes = unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes();
    Some(OsStr::from_bytes(bytes).to_owned())
}

/// Highest verbosity (trace); `TINI_VERBOSITY` above it means the same.
pub const MAX_VERBOSITY: u8 = 4;

/// `TINI_VERBOSITY` read like tini's `atoi`: leading blanks, an optional sign, the digits
/// up to the first other character; no digits or a negative number is 0 (fatal errors
/// only), anything above [`MAX_VERBOSITY`] is [`MAX_VERBOSITY`]. Never an error: tini
/// runs the command whatever the variable holds.
#[link_section = ".text.berth_tini"]
pub fn verbosity_from_env(text: &[u8]) -> u8 {
    // C's isspace: blank, \t, \n, \v, \f, \r.
    let start = text
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'..=b'\r'))
        .unwrap_or(text.len());
    let (negative, digits) = match &text[start..] {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        rest => (false, rest),
    };
    if negative {
        return 0;
    }
    let mut value: u8 = 0;
    for b in digits.iter().take_while(|b| b.is_ascii_digit()) {
        value = value.saturating_mul(10).saturating_add(b - b'0');
    }
    value.min(MAX_VERBOSITY)
}

/// The `--version` line. Invoked as `docker-init` (Docker's `--init`), it is tini's
/// format, `tini version 0.19.0 - git.berth-<version>`, which `docker info` parses;
/// otherwise `berth-init <version> (tini 0.19.0 compatible)`.
#[link_section = ".text.berth_tini"]
pub fn version_line(argv0: &OsStr) -> String {
    let invoked_as = Path::new(argv0).file_name().unwrap_or_default();
    let version = env!("BERTH_VERSION");
    if invoked_as == "docker-init" {
        format!("tini version {TINI_VERSION} - git.berth-{version}")
    } else {
        format!("berth-init {version} (tini {TINI_VERSION} compatible)")
    }
}

/// The `-h` text.
#[link_section = ".text.berth_tini"]
pub fn usage() -> String {
    format!(
        "berth-init {version}: PID 1 for containers, a drop-in for tini {TINI_VERSION}

Usage: berth-init [OPTIONS] [--] PROGRAM [ARGS...]
       berth-init --version | -h

Runs PROGRAM as its child, reaps every zombie (orphans included), forwards every
signal it gets to PROGRAM, and exits with PROGRAM's exit code (128+N if a signal N
killed it). Options stop at the first argument that is not an option.

Options:
  -s          Register as a child subreaper (needed when not PID 1).
  -g          Send forwarded signals to PROGRAM's whole process group.
  -e CODE     Exit 0 when PROGRAM's exit code is CODE (0-255). Repeatable.
  -p SIGNAL   Receive SIGNAL when berth-init's parent dies (e.g. -p SIGKILL).
  -v          More output on stderr; repeat up to -vvv.
  -w          Print a warning for every zombie reaped that was not PROGRAM.
  -l          Show the license and exit.
  -h, --help  Show this help and exit.
  --version   Show the version and exit.

Environment:
  TINI_SUBREAPER           Set (even empty): same as -s.
  TINI_KILL_PROCESS_GROUP  Set: same as -g.
  TINI_VERBOSITY=N         Verbosity: 0 errors only, 1 warnings (default), 2-4 more
                           (overrides -v; not a number counts as 0, as in tini).

Exit codes:
  PROGRAM's code, or 128+N for signal N (after -e remapping); 2 for a bad command
  line; 127 if PROGRAM is not found; 126 if it cannot be executed; 1 for any other
  failure of berth-init itself.
",
        version = env!("BERTH_VERSION"),
    )
}

/// The `-l` text.
pub const LICENSE: &str =
    "berth-init is part of berth, licensed under the Apache License, Version 2.0.";

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn run(args: &[&str]) -> Config {
        match parse(os(args), no_env) {
            Ok(Action::Run(c)) => c,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn plain_command_with_and_without_dashdash() {
        let c = run(&["sleep", "1"]);
        assert_eq!(c.command, os(&["sleep", "1"]));
        assert_eq!(
            c,
            Config {
                command: os(&["sleep", "1"]),
                ..Config::default()
            }
        );
        assert_eq!(run(&["--", "sleep", "1"]).command, os(&["sleep", "1"]));
        assert_eq!(
            run(&["-s", "--", "ls", "--", "-x"]).command,
            os(&["ls", "--", "-x"])
        );
    }

    #[test]
    fn stops_at_first_non_option() {
        let c = run(&["-s", "sh", "-c", "exit 3", "-v"]);
        assert!(c.subreaper);
        assert_eq!(c.verbosity, 1);
        assert_eq!(c.command, os(&["sh", "-c", "exit 3", "-v"]));
        // A lone "-" is an argument, not an option.
        assert_eq!(run(&["-"]).command, os(&["-"]));
    }

    #[test]
    fn flags_cluster_and_repeat() {
        let c = run(&["-sgw", "-vv", "-v", "true"]);
        assert!(c.subreaper && c.kill_process_group && c.warn_on_reap);
        assert_eq!(c.verbosity, 4);
    }

    #[test]
    fn exit_codes_attached_or_separate() {
        let c = run(&["-e", "3", "-e143", "-se", "0", "--", "true"]);
        assert!(c.remap.contains(3) && c.remap.contains(143) && c.remap.contains(0));
        assert!(!c.remap.contains(4));
        assert!(c.subreaper);
    }

    #[test]
    fn parent_death_signal_forms() {
        assert_eq!(
            run(&["-p", "SIGKILL", "x"]).parent_death_signal,
            Some(libc::SIGKILL)
        );
        assert_eq!(
            run(&["-pSIGTERM", "x"]).parent_death_signal,
            Some(libc::SIGTERM)
        );
        assert_eq!(
            run(&["-p", "usr1", "x"]).parent_death_signal,
            Some(libc::SIGUSR1)
        );
        assert_eq!(run(&["-p", "9", "x"]).parent_death_signal, Some(9));
    }

    #[test]
    fn bad_command_lines() {
        let err = |a: &[&str]| parse(os(a), no_env).unwrap_err();
        assert_eq!(err(&["-x", "true"]), CliError::UnknownOption("-x".into()));
        assert_eq!(err(&["-sx", "true"]), CliError::UnknownOption("-x".into()));
        assert_eq!(
            err(&["-s\u{e9}", "true"]),
            CliError::UnknownOption("-\u{e9}".into()),
            "a non-ASCII letter is named whole"
        );
        assert_eq!(
            err(&["--frobnicate", "true"]),
            CliError::UnknownOption("--frobnicate".into())
        );
        assert_eq!(err(&["-e"]), CliError::MissingArgument('e'));
        assert_eq!(err(&["-p"]), CliError::MissingArgument('p'));
        assert_eq!(
            err(&["-e", "256", "true"]),
            CliError::BadExitCode("256".into())
        );
        assert_eq!(
            err(&["-e", "-1", "true"]),
            CliError::BadExitCode("-1".into())
        );
        assert_eq!(err(&["-e", "x", "true"]), CliError::BadExitCode("x".into()));
        assert_eq!(
            err(&["-p", "SIGFOO", "true"]),
            CliError::BadSignal("SIGFOO".into())
        );
        assert_eq!(err(&[]), CliError::NoCommand);
        assert_eq!(err(&["-s", "--"]), CliError::NoCommand);
        assert!(err(&["-x"]).to_string().contains("unknown option '-x'"));
    }

    #[test]
    fn help_version_license() {
        assert_eq!(parse(os(&["-h"]), no_env), Ok(Action::Help));
        assert_eq!(parse(os(&["-s", "-h", "-x"]), no_env), Ok(Action::Help));
        assert_eq!(parse(os(&["--help"]), no_env), Ok(Action::Help));
        assert_eq!(parse(os(&["--version"]), no_env), Ok(Action::Version));
        // As tini: --version only alone.
        for args in [&["--version", "extra"][..], &["-s", "--version"][..]] {
            assert_eq!(
                parse(os(args), no_env),
                Err(CliError::VersionNotAlone),
                "{args:?}"
            );
        }
        assert_eq!(parse(os(&["-l"]), no_env), Ok(Action::License));
        // After the command, --version belongs to the command.
        assert_eq!(run(&["ls", "--version"]).command, os(&["ls", "--version"]));
    }

    #[test]
    fn environment_like_tini() {
        let env = |k: &str| match k {
            "TINI_SUBREAPER" => Some(OsString::new()),
            "TINI_KILL_PROCESS_GROUP" => Some(OsString::from("1")),
            "TINI_VERBOSITY" => Some(OsString::from("3")),
            _ => None,
        };
        let Ok(Action::Run(c)) = parse(os(&["-v", "true"]), env) else {
            panic!()
        };
        assert!(c.subreaper && c.kill_process_group);
        assert_eq!(c.verbosity, 3, "TINI_VERBOSITY overrides -v, as in tini");
        // Whatever the variable holds, the command runs (tini reads it with atoi).
        for (text, level) in [
            ("", 0),
            ("loud", 0),
            ("-2", 0),
            ("99999999999", 4),
            ("2x", 2),
        ] {
            let env = |k: &str| (k == "TINI_VERBOSITY").then(|| OsString::from(text));
            let Ok(Action::Run(c)) = parse(os(&["-vv", "true"]), env) else {
                panic!("TINI_VERBOSITY={text:?} refused")
            };
            assert_eq!(c.verbosity, level, "TINI_VERBOSITY={text:?}");
        }
    }

    #[test]
    fn verbosity_reads_like_atoi() {
        let cases: &[(&str, u8)] = &[
            ("0", 0),
            ("1", 1),
            ("4", 4),
            ("5", 4),
            ("300", 4),
            (" \t3", 3),
            ("+2", 2),
            ("-1", 0),
            ("3 4", 3),
            ("x3", 0),
            ("", 0),
            ("+", 0),
        ];
        for &(text, level) in cases {
            assert_eq!(verbosity_from_env(text.as_bytes()), level, "{text:?}");
        }
    }

    #[test]
    fn version_line_depends_on_name() {
        let docker = version_line(OsStr::new("/usr/bin/docker-init"));
        assert!(
            docker.starts_with("tini version 0.19.0 - git.berth-"),
            "{docker}"
        );
        let own = version_line(OsStr::new("berth-init"));
        assert!(
            own.starts_with("berth-init ") && own.contains("tini 0.19.0"),
            "{own}"
        );
    }

    #[test]
    fn usage_names_every_option() {
        // The option column of each line of the Options section, whole entries only (a
        // plain substring test would find "-v" inside "--version").
        let u = usage();
        let section = u
            .split_once("Options:\n")
            .and_then(|(_, rest)| rest.split_once("\n\n"))
            .map(|(options, _)| options)
            .expect("an Options section");
        let entries: Vec<&str> = section
            .lines()
            .filter_map(|line| line.trim_start().split_once("  "))
            .map(|(entry, _)| entry)
            .collect();
        assert_eq!(
            entries,
            [
                "-s",
                "-g",
                "-e CODE",
                "-p SIGNAL",
                "-v",
                "-w",
                "-l",
                "-h, --help",
                "--version"
            ]
        );
    }
}
