//! `berth-agent resources`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Config;
use crate::resources::{self, render, Roots};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `cpus:4;mem:7000;ports:[31000-32000];home:...` (mesos-agent --resources=...)
    Text,
    /// A JSON array of Mesos `Resource` messages (mesos-agent --resources=file://...)
    Json,
}

/// Options of `berth-agent resources`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Prints this node's Mesos resources for mesos-agent --resources: \
    cpus, mem (minus the host reserve), disk, ports, home (MiB left for /home volumes: free \
    space of the VG, thin pool or loop-file dir minus the floor), bandwidth (Mbit/s of the \
    parent NIC minus the reserve) and vlans (the trunk's VLAN ids).\n\n\
    Exit 2 when a setting is wrong (the message names it), e.g. a NIC without a speed."
)]
pub struct Args {
    /// The config file ([resources] section).
    #[arg(long, default_value = crate::config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Output form.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub fn run(args: Args) -> ExitCode {
    let cfg = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-agent resources: {}", crate::error_chain(&e));
            return ExitCode::from(2);
        }
    };
    let s = &cfg.resources;
    let roots = Roots {
        proc: Path::new("/proc"),
        sys: Path::new("/sys"),
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    match resources::compute(s, &roots, cpus, &|| resources::open_backend(&s.home)) {
        Ok(rs) => {
            match args.format {
                Format::Text => println!("{}", render::text(&rs)),
                Format::Json => println!("{}", render::json(&rs)),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "berth-agent resources: {} (in {})",
                e,
                args.config.display()
            );
            ExitCode::from(2)
        }
    }
}
