//! `berth-agent serve`.

use std::process::ExitCode;

/// Options of `berth-agent serve`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    super::not_built("serve")
}
