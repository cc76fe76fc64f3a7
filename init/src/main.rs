//! berth-init's entry point: parse the command line, run the mode it asks for, turn the
//! outcome into the exit code.
//!
//! `no_main`: the C `main` below replaces Rust's runtime start-up, which would set
//! SIGPIPE to ignored (and so hand an ignored SIGPIPE to the child, unlike tini) and
//! reopen closed stdio descriptors. Arguments are read from `argv` itself: with no Rust
//! `main`, `std::env::args_os` is empty on the musl target (the static build).
#![no_main]

use std::ffi::{c_char, c_int};
use std::io::Write;

use berth_init::cli::{self, Action};
use berth_init::log::{self, Log};
use berth_init::single;

#[no_mangle]
#[link_section = ".text.berth_tini"]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // SAFETY: the C runtime passes argc and argv as the kernel laid them out: argv holds
    // argc valid NUL-terminated strings that live for the whole process.
    let mut args = unsafe { arguments(argc, argv) }.into_iter();
    let argv0 = args.next().unwrap_or_default();
    let args: Vec<std::ffi::OsString> = args.collect();
    // Supervisor mode and `ctl` (init-sup); None = the tini mode below.
    if let Some(code) = berth_init::sup_cli::dispatch(&args) {
        return code;
    }
    let action = match cli::parse(args, cli::env_var) {
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

/// The process's arguments from the C `main`'s `argc`/`argv`.
///
/// # Safety
/// `argv` must point to `argc` valid NUL-terminated strings (or be null with `argc` 0).
#[link_section = ".text.berth_tini"]
unsafe fn arguments(argc: c_int, argv: *const *const c_char) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    let n = usize::try_from(argc).unwrap_or(0);
    if argv.is_null() {
        return Vec::new();
    }
    (0..n)
        .filter_map(|i| {
            // SAFETY: i < argc, so argv[i] is within the array (the caller's contract).
            let p = unsafe { *argv.add(i) };
            if p.is_null() {
                return None;
            }
            // SAFETY: each argv entry is a NUL-terminated string (the caller's contract).
            let s = unsafe { std::ffi::CStr::from_ptr(p) };
            Some(std::ffi::OsStr::from_bytes(s.to_bytes()).to_owned())
        })
        .collect()
}
