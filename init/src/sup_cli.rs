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

use crate::status::Request;
use crate::supervisor::{self, Options, DEFAULT_SOCKET, DEFAULT_SPEC};

/// Help for supervisor mode.
pub const SUP_USAGE: &str = "\
berth-init: PID 1 for berth containers; runs the app spec's services (supervisor mode)

Usage: berth-init [--spec PATH] [--socket PATH] [--check]
       berth-init ctl [--socket PATH] status | restart NAME | stop NAME | start NAME
       berth-init [OPTIONS] [--] CMD [ARGS...]      (tini mode; see berth-init -h)

Options:
      --spec PATH    The app spec (YAML) [default: /etc/berth/app.yaml]
      --socket PATH  The status socket [default: /run/berth/init.sock]
      --check        Only validate the spec, print \"ok\" and exit (0, or 2 with the error)
  -h, --help         Print this help

Without --spec and without a command, /etc/berth/app.yaml is used.
Outside debug mode, init exits once every service has completed (exited, or failed and
not required) and no cron job is scheduled: 0, or the first failure's code.
BERTH_DEBUG=1 turns on debug mode (a failed service keeps init up);
BERTH_LOG sets the log level (error, warn, info, debug, trace).
";

/// Help for `ctl`.
pub const CTL_USAGE: &str = "\
berth-init ctl: ask a running berth-init for its status or act on one service;
prints the JSON answer (exit 0 if ok, 1 otherwise)

Usage: berth-init ctl [--socket PATH] COMMAND

Commands:
  status        Print the status JSON (services with name, state, pid, restarts, healthy)
  restart NAME  Stop then start one service
  stop NAME     Stop one service (it stays stopped until `start`)
  start NAME    Start a stopped or failed service

Options:
      --socket PATH  The status socket [default: /run/berth/init.sock]
  -h, --help         Print this help
";

/// Supervisor mode's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupArgs {
    /// The app spec.
    pub spec: Option<PathBuf>,
    /// The status socket.
    pub socket: PathBuf,
    /// Validate only.
    pub check: bool,
}

/// What a parsed line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// Run with these arguments.
    Run(T),
    /// Print the help.
    Help,
}

/// `--name VALUE` or `--name=VALUE` at `args[*i]`; advances `i` past the value.
fn value(args: &[String], i: &mut usize, name: &str) -> Result<Option<String>, String> {
    let a = &args[*i];
    if let Some(v) = a.strip_prefix(&format!("{name}=")) {
        return Ok(Some(v.to_string()));
    }
    if a != name {
        return Ok(None);
    }
    *i += 1;
    args.get(*i)
        .cloned()
        .map(Some)
        .ok_or_else(|| format!("{name} needs a value"))
}

/// Parses supervisor mode's arguments (after argv\[0\]).
pub fn parse_sup(args: &[String]) -> Result<Parsed<SupArgs>, String> {
    let mut out = SupArgs {
        spec: None,
        socket: PathBuf::from(DEFAULT_SOCKET),
        check: false,
    };
    let mut i = 0;
    while i < args.len() {
        if let Some(v) = value(args, &mut i, "--spec")? {
            out.spec = Some(v.into());
        } else if let Some(v) = value(args, &mut i, "--socket")? {
            out.socket = v.into();
        } else {
            match args[i].as_str() {
                "--check" => out.check = true,
                "-h" | "--help" => return Ok(Parsed::Help),
                other => return Err(format!("unexpected argument '{other}' in supervisor mode")),
            }
        }
        i += 1;
    }
    Ok(Parsed::Run(out))
}

/// Parses `ctl`'s arguments (after `ctl`): the socket and the request.
pub fn parse_ctl(args: &[String]) -> Result<Parsed<(PathBuf, Request)>, String> {
    let mut socket = PathBuf::from(DEFAULT_SOCKET);
    let mut words = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if let Some(v) = value(args, &mut i, "--socket")? {
            socket = v.into();
        } else if args[i] == "-h" || args[i] == "--help" {
            return Ok(Parsed::Help);
        } else if args[i].starts_with('-') {
            return Err(format!("unexpected option '{}'", args[i]));
        } else {
            words.push(args[i].clone());
        }
        i += 1;
    }
    let req = match words.as_slice() {
        [c] if c == "status" => Request::Status,
        [c, name] if c == "restart" => Request::Restart {
            service: name.clone(),
        },
        [c, name] if c == "stop" => Request::Stop {
            service: name.clone(),
        },
        [c, name] if c == "start" => Request::Start {
            service: name.clone(),
        },
        [c] if c == "help" => return Ok(Parsed::Help),
        _ => {
            return Err(format!(
                "expected status, restart NAME, stop NAME or start NAME; got '{}'",
                words.join(" ")
            ))
        }
    };
    Ok(Parsed::Run((socket, req)))
}

const SUP_FLAGS: [&[u8]; 3] = [b"--spec", b"--socket", b"--check"];

#[link_section = ".text.berth_tini"]
fn is_sup_flag(a: &[u8]) -> bool {
    SUP_FLAGS
        .iter()
        .any(|f| a == *f || (a.starts_with(f) && a.get(f.len()) == Some(&b'=')))
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
///
/// On the arguments' bytes, without allocating: it runs first in every start of the
/// tini mode (see `lib.rs`, "The tini mode's footprint"). Every word it looks for is
/// ASCII, so bytes decide exactly as the UTF-8 text would.
#[link_section = ".text.berth_tini"]
pub fn mode(args: &[OsString], default_spec_exists: impl Fn() -> bool) -> Mode {
    if args.first().is_some_and(|a| a.as_encoded_bytes() == b"ctl") {
        return Mode::Ctl;
    }
    let mut has_command = false;
    let mut sup = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_encoded_bytes();
        if a == b"--" {
            has_command = i + 1 < args.len();
            break;
        }
        if is_sup_flag(a) {
            sup = true;
            // --spec PATH / --socket PATH take a value.
            if !a.contains(&b'=') && a != b"--check" {
                i += 1;
            }
        } else if matches!(a, b"-h" | b"--help" | b"--version" | b"-l") {
            return if sup { Mode::Supervisor } else { Mode::Tini };
        } else if !a.starts_with(b"-") || a == b"-" {
            has_command = true;
            break;
        } else if a == b"-e" || a == b"-p" {
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

fn strings(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

fn run_ctl(args: &[OsString]) -> i32 {
    let (socket, req) = match parse_ctl(&strings(&args[1..])) {
        Ok(Parsed::Run(r)) => r,
        Ok(Parsed::Help) => {
            print!("{CTL_USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("berth-init ctl: {e}\nTry 'berth-init ctl --help' for help.");
            return 2;
        }
    };
    match crate::ctl::call(&socket, &req) {
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
    let parsed = match parse_sup(&strings(args)) {
        Ok(Parsed::Run(p)) => p,
        Ok(Parsed::Help) => {
            print!("{SUP_USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("berth-init: {e}\nTry 'berth-init --spec PATH --help' for help.");
            return 2;
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
    crate::sup_log::init(spec.debug || supervisor::debug_env());
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
#[link_section = ".text.berth_tini"]
pub fn dispatch(args: &[OsString]) -> Option<i32> {
    match mode(args, || Path::new(DEFAULT_SPEC).exists()) {
        Mode::Tini => None,
        Mode::Ctl => Some(run_ctl(args)),
        Mode::Supervisor => Some(run_supervisor(args)),
        Mode::NothingToRun => {
            // Other mistakes on the line (`-e` without its value...) are the tini
            // parser's to report.
            match crate::cli::parse(args.iter().cloned(), crate::cli::env_var) {
                Err(crate::cli::CliError::NoCommand) => {}
                _ => return None,
            }
            eprintln!(
                "berth-init: no command given and no app spec at {DEFAULT_SPEC}.\n\
                 Give an app spec with `berth-init --spec PATH`, or a command with `berth-init [OPTIONS] -- CMD [ARGS...]`.\n\
                 Try 'berth-init -h' for help."
            );
            Some(i32::from(crate::cli::USAGE_EXIT))
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

#[cfg(test)]
mod parse_tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn supervisor_arguments() {
        let Parsed::Run(a) =
            parse_sup(&v(&["--spec", "/a.yaml", "--socket=/s", "--check"])).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            a,
            SupArgs {
                spec: Some("/a.yaml".into()),
                socket: "/s".into(),
                check: true
            }
        );
        let Parsed::Run(a) = parse_sup(&[]).unwrap() else {
            panic!()
        };
        assert_eq!(a.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(parse_sup(&v(&["--spec", "x", "-h"])).unwrap(), Parsed::Help);
        assert!(parse_sup(&v(&["--spec"]))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse_sup(&v(&["--spec", "x", "-v"]))
            .unwrap_err()
            .contains("'-v'"));
    }

    #[test]
    fn ctl_arguments() {
        let Parsed::Run((s, r)) =
            parse_ctl(&v(&["--socket", "/x.sock", "restart", "web"])).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (s, r),
            (
                PathBuf::from("/x.sock"),
                Request::Restart {
                    service: "web".into()
                }
            )
        );
        let Parsed::Run((_, r)) = parse_ctl(&v(&["status"])).unwrap() else {
            panic!()
        };
        assert_eq!(r, Request::Status);
        assert!(parse_ctl(&v(&["stop"])).is_err());
        assert!(parse_ctl(&v(&["frob", "x"])).is_err());
        assert_eq!(parse_ctl(&v(&["--help"])).unwrap(), Parsed::Help);
    }
}
