//! `berth-agent ps`.

use std::process::ExitCode;

/// Options of `berth-agent ps`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    super::not_built("ps")
}
