//! `berth-agent serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::serve::ServeError;

/// Options of `berth-agent serve`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Runs the node service next to mesos-agent (systemd Type=notify).\n\n\
    Reads the config at start and again on SIGHUP (a bad file on reload is logged and the old \
    config kept); stops on SIGTERM. Exit 2: the config file is unreadable or has an unknown \
    key or a bad value (the message names the file and the key). Log level: BERTH_LOG \
    (e.g. debug)."
)]
pub struct Args {
    /// The config file (every key documented in packaging/agent.toml).
    #[arg(long, default_value = crate::config::DEFAULT_PATH)]
    pub config: PathBuf,
}

pub fn run(args: Args) -> ExitCode {
    crate::log::init();
    match crate::serve::run(args.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", crate::error_chain(&e));
            match e {
                ServeError::Config(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
