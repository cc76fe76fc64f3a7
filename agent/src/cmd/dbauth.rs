//! `berth-agent dbauth`.

use std::process::ExitCode;

/// Options of `berth-agent dbauth`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    super::not_built("dbauth")
}
