//! The supervisor's command line, beside the tini-compatible one in [`crate::cli`]:
//!
//! - `berth-init [--spec PATH] [--socket PATH] [--check]`: supervisor mode. Without
//!   `--spec` and without a command, the default spec `/etc/berth/app.yaml` is used.
//! - `berth-init ctl [--socket PATH] status|restart NAME|stop NAME|start NAME`.
//! - Anything with a command (`berth-init [OPTIONS] [--] CMD ...`) stays the tini mode.
//!
//! [`dispatch`] decides and runs; it returns None to let the tini mode parse the line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::status::Request;
use crate::supervisor::{self, Options, DEFAULT_SOCKET, DEFAULT_SPEC};

/// Supervisor mode.
#[derive(Debug, Parser)]
#[command(
    name = "berth-init",
    about = "PID 1 for berth containers: runs the app spec's services (supervisor mode)",
    after_help = "Without --spec and without a command, /etc/berth/app.yaml is used.\n\
                  With a command (berth-init [OPTIONS] [--] CMD [ARGS...]) berth-init acts like tini.\n\
                  BERTH_DEBUG=1 turns on debug mode (a failed service keeps init up); \
                  BERTH_LOG sets the log filter (e.g. debug)."
)]
pub struct SupArgs {
    /// The app spec (YAML).
    #[arg(long, value_name = "PATH")]
    pub spec: Option<PathBuf>,
    /// The status socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Only validate the spec, print "ok" and exit (0, or 2 with the error).
    #[arg(long)]
    pub check: bool,
}

/// `berth-init ctl`.
#[derive(Debug, Parser)]
#[command(
    name = "berth-init ctl",
    about = "Ask a running berth-init for its status or act on one service; prints the JSON answer (exit 0 if ok, 1 otherwise)"
)]
pub struct CtlArgs {
    /// The status socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub cmd: CtlCmd,
}

/// A ctl request.
#[derive(Debug, Subcommand)]
pub enum CtlCmd {
    /// Print the status JSON (services with name, state, pid, restarts, healthy).
    Status,
    /// Stop then start one service.
    Restart {
        /// Service name.
        name: String,
    },
    /// Stop one service (it stays stopped until `start`).
    Stop {
        /// Service name.
        name: String,
    },
    /// Start a stopped or failed service.
    Start {
        /// Service name.
        name: String,
    },
}

const SUP_FLAGS: [&str; 3] = ["--spec", "--socket", "--check"];

fn is_sup_flag(a: &str) -> bool {
    SUP_FLAGS
        .iter()
        .any(|f| a == *f || a.starts_with(&format!("{f}=")))
}

/// Which mode the arguments (after argv\[0\]) ask for.
#[derive(Debug, PartialEq, Eq)]
pub enum Mode {
    /// `ctl ...`.
    Ctl,
    /// Supervisor mode.
    Supervisor,
    /// Supervisor mode by default, but there is no default spec.
    NothingToRun,
    /// The tini mode (a command is given, or -h/--version/-l).
    Tini,
}

/// Decides the mode; `default_spec_exists` is asked only when needed.
pub fn mode(args: &[OsString], default_spec_exists: impl Fn() -> bool) -> Mode {
    let strs: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if strs.first().is_some_and(|a| a == "ctl") {
        return Mode::Ctl;
    }
    let mut has_command = false;
    let mut sup = false;
    let mut i = 0;
    while i < strs.len() {
        let a = &strs[i];
        if a == "--" {
            has_command = i + 1 < strs.len();
            break;
        }
        if is_sup_flag(a) {
            sup = true;
            // --spec PATH / --socket PATH take a value.
            if !a.contains('=') && a != "--check" {
                i += 1;
            }
        } else if matches!(a.as_str(), "-h" | "--help" | "--version" | "-l") {
            return if sup { Mode::Supervisor } else { Mode::Tini };
        } else if !a.starts_with('-') || a == "-" {
            has_command = true;
            break;
        } else if a == "-e" || a == "-p" {
            i += 1;
        }
        i += 1;
    }
    if sup {
        Mode::Supervisor
    } else if has_command {
        Mode::Tini
    } else if default_spec_exists() {
        Mode::Supervisor
    } else {
        Mode::NothingToRun
    }
}

fn init_tracing(debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = std::env::var("BERTH_LOG").unwrap_or_else(|_| default.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn run_ctl(args: &[OsString]) -> i32 {
    let parsed = match CtlArgs::try_parse_from(
        std::iter::once(OsString::from("berth-init ctl")).chain(args[1..].iter().cloned()),
    ) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let req = match parsed.cmd {
        CtlCmd::Status => Request::Status,
        CtlCmd::Restart { name } => Request::Restart { service: name },
        CtlCmd::Stop { name } => Request::Stop { service: name },
        CtlCmd::Start { name } => Request::Start { service: name },
    };
    match crate::ctl::call(&parsed.socket, &req) {
        Ok((answer, ok)) => {
            println!("{answer}");
            if ok {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("berth-init ctl: {}", crate::log::chain(&e));
            1
        }
    }
}

fn run_supervisor(args: &[OsString]) -> i32 {
    let parsed = match SupArgs::try_parse_from(
        std::iter::once(OsString::from("berth-init")).chain(args.iter().cloned()),
    ) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let opts = Options {
        spec: parsed.spec.unwrap_or_else(|| PathBuf::from(DEFAULT_SPEC)),
        socket: parsed.socket,
    };
    let spec = match supervisor::load(&opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth-init: {}", crate::log::chain(&e));
            return i32::from(e.exit_code());
        }
    };
    if parsed.check {
        println!("ok");
        return 0;
    }
    init_tracing(spec.debug || supervisor::debug_env());
    if std::process::id() != 1 {
        if let Err(e) = crate::subreaper::set_child_subreaper() {
            tracing::warn!(error = %e, "not PID 1 and cannot become a subreaper: orphans will not be reaped");
        }
    }
    match supervisor::run(&opts, spec) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{}", crate::log::chain(&e));
            i32::from(e.exit_code())
        }
    }
}

/// Runs `ctl` or supervisor mode if the arguments ask for it; None means "tini mode".
pub fn dispatch(args: &[OsString]) -> Option<i32> {
    match mode(args, || Path::new(DEFAULT_SPEC).exists()) {
        Mode::Tini => None,
        Mode::Ctl => Some(run_ctl(args)),
        Mode::Supervisor => Some(run_supervisor(args)),
        Mode::NothingToRun => {
            eprintln!(
                "berth-init: nothing to run: no app spec at {DEFAULT_SPEC} and no command.\n\
                 Give an app spec with `berth-init --spec PATH`, or a command with `berth-init [OPTIONS] -- CMD [ARGS...]`."
            );
            Some(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(args: &[&str], exists: bool) -> Mode {
        let v: Vec<OsString> = args.iter().map(OsString::from).collect();
        mode(&v, || exists)
    }

    #[test]
    fn picks_the_mode() {
        assert_eq!(m(&["ctl", "status"], false), Mode::Ctl);
        assert_eq!(m(&["--spec", "/x.yaml"], false), Mode::Supervisor);
        assert_eq!(
            m(&["--spec=/x.yaml", "--socket", "/s"], false),
            Mode::Supervisor
        );
        assert_eq!(m(&[], true), Mode::Supervisor);
        assert_eq!(m(&[], false), Mode::NothingToRun);
        assert_eq!(m(&["-v"], false), Mode::NothingToRun);
        assert_eq!(m(&["--", "sleep", "1"], true), Mode::Tini);
        assert_eq!(m(&["-s", "sleep", "1"], true), Mode::Tini);
        assert_eq!(m(&["-e", "3", "--", "x"], false), Mode::Tini);
        assert_eq!(m(&["-h"], true), Mode::Tini);
        assert_eq!(m(&["--version"], false), Mode::Tini);
    }
}
