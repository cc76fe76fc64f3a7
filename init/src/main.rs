//! berth-init's entry point: parse the command line, run the mode it asks for, turn the
//! outcome into the exit code.
//!
//! `no_main`: the C `main` below replaces Rust's runtime start-up, which would set
//! SIGPIPE to ignored (and so hand an ignored SIGPIPE to the child, unlike tini) and
//! reopen closed stdio descriptors. Arguments still come from `std::env::args_os`, which
//! glibc targets fill before `main`.
#![no_main]

use std::ffi::{c_char, c_int};
use std::io::Write;

use berth_init::cli::{self, Action};
use berth_init::log::{self, Log};
use berth_init::single;

#[no_mangle]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let args: Vec<std::ffi::OsString> = args.collect();
    // Supervisor mode and `ctl` (init-sup); None = the tini mode below.
    if let Some(code) = berth_init::sup_cli::dispatch(&args) {
        return code;
    }
    let action = match cli::parse(args, |name| std::env::var_os(name)) {
        Ok(action) => action,
        Err(err) => {
            eprintln!("berth-init: {err}\nTry 'berth-init -h' for help.");
            return c_int::from(cli::USAGE_EXIT);
        }
    };
    let text = match action {
        Action::Run(config) => {
            let log = Log::new(config.verbosity);
            return match single::run(&config, &log) {
                Ok(code) => c_int::from(code),
                Err(err) => {
                    log.fatal(format_args!("{}", log::chain(&err)));
                    c_int::from(err.exit_code())
                }
            };
        }
        Action::Help => cli::usage(),
        Action::Version => cli::version_line(&argv0) + "\n",
        Action::License => format!("{}\n", cli::LICENSE),
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
