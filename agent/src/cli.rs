//! The command line: one subcommand per role, each handed to its module under [`crate::cmd`].
//! In the library (not main.rs) so the man pages and shell completions are generated from
//! these very definitions (packaging/gen-docs).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd;

/// berth's host agent: one binary for the node service and the platform's daemons.
#[derive(Debug, Parser)]
#[command(name = "berth-agent", version = env!("BERTH_VERSION"), about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node service next to mesos-agent: metrics and periodic garbage collection.
    Serve(cmd::serve::Args),
    /// Print this node's Mesos resources (cpus, mem, disk, ports, home, net_bandwidth, VLANs).
    Resources(cmd::resources::Args),
    /// Remove what dead tasks left behind (volumes, links, netns, containers, mounts).
    Gc(cmd::gc::Args),
    /// List this node's containers.
    Ps(cmd::ps::Args),
    /// Run the LVS director role: IPVS from berth-init registrations and Marathon.
    Lvs(cmd::lvs::Args),
    /// Run the database-authorization service.
    Dbauth(cmd::dbauth::Args),
}

/// Runs the subcommand `cli` names.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(a) => cmd::serve::run(a),
        Command::Resources(a) => cmd::resources::run(a),
        Command::Gc(a) => cmd::gc::run(a),
        Command::Ps(a) => cmd::ps::run(a),
        Command::Lvs(a) => cmd::lvs::run(a),
        Command::Dbauth(a) => cmd::dbauth::run(a),
    }
}
