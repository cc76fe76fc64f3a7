//! `berth-agent gc`.

use std::process::ExitCode;

/// Options of `berth-agent gc`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    super::not_built("gc")
}
