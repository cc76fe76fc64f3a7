//! `berth-agent resources`.

use std::process::ExitCode;

/// Options of `berth-agent resources`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    super::not_built("resources")
}
