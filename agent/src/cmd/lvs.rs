//! `berth-agent lvs`.

use std::process::ExitCode;

/// Options of `berth-agent lvs`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    super::not_built("lvs")
}
