//! berth-agent: parse the command line and hand over to the role's module.

use clap::Parser;

fn main() -> std::process::ExitCode {
    berth_agent::cli::run(berth_agent::cli::Cli::parse())
}
