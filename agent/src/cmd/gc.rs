//! `berth-agent gc`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

/// Options of `berth-agent gc`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Removes what dead tasks left behind: runtime containers and their processes, \
    cgroups, overlay and volume mounts, netns pins with berth's links (macvlan eth0, ifb, tc), \
    VLAN sub-interfaces no live task uses (or a dead task's record of using one), /home and \
    scratch volumes (LVs or loop files), run dirs (init's socket, DHCP lease), state dirs and \
    task lock files.\n\n\
    A task is alive while its executor holds its task lock (<state dir>/<container id>.lock): \
    nothing of it is touched. A leftover younger than [gc] grace_secs is spared. Prints one \
    line per thing removed with why; --dry-run prints what would be removed and removes \
    nothing. Exit 0: all removed; 1: some removal failed (the lines say which); 2: bad config."
)]
pub struct Args {
    /// The config file ([serve] state_dir, [gc], [resources.home]).
    #[arg(long, default_value = crate::config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// List what would be removed, and why; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: Args) -> ExitCode {
    crate::log::init();
    let cfg = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-agent gc: {}", crate::error_chain(&e));
            return ExitCode::from(2);
        }
    };
    let s = crate::gc::Settings::from_config(&cfg);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-agent gc: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(crate::gc::run(&s, args.dry_run)) {
        Ok(r) => {
            print!("{r}");
            if r.errors() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("berth-agent gc: {}", crate::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
