//! `berth-agent ps`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::metrics::collect::Sources;

/// Options of `berth-agent ps`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Lists this node's containers from the executor's state dir: task, Marathon \
    app, state, IP, VLAN, CPU% (over half a second), memory/limit, /home used/size, bandwidth \
    limit, health (berth-init's checks) and uptime; `-` where a value is unknown. Exit 1 with \
    a message when the state dir cannot be read (run as root)."
)]
pub struct Args {
    /// The executor's state dir (BERTH_EXECUTOR_STATE_DIR; `[serve] state_dir`).
    #[arg(long, default_value = "/var/lib/berth/containers")]
    pub state_dir: PathBuf,
    /// The host's cgroup mount.
    #[arg(long, default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,
    /// One JSON array of objects instead of the table (sizes in bytes, times in seconds).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> ExitCode {
    let src = Sources {
        state_dir: args.state_dir,
        cgroup_root: args.cgroup_root,
        proc_root: PathBuf::from("/proc"),
        interface: "eth0".into(),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-agent ps: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(crate::ps::rows(&src)) {
        Ok(rows) if args.json => match serde_json::to_string_pretty(&rows) {
            Ok(s) => {
                println!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("berth-agent ps: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(rows) => {
            print!("{}", crate::ps::table(&rows));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth-agent ps: {}", crate::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
