//! `berth-agent dbauth`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::dbauth::config::{Config, DEFAULT_PATH};
use crate::dbauth::marathon::HttpTasks;
use crate::error_chain;

/// Options of `berth-agent dbauth`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Runs the database-authorization service (agent/DBAUTH.md).\n\n\
    berth-init in a container POSTs {\"app\", \"databases\"} to /v1/access; dbauth takes the \
    TCP peer address as the caller, asks Marathon whether a live task of that app has it, \
    checks the config's grant table, creates a per-task account bound to that address on \
    the database and answers with its credentials. Accounts are dropped when Marathon \
    reports the task ended, by a periodic sweep, and at start (reconcile).\n\n\
    Exit 2: the config file is unreadable or has an unknown key or a bad value (the message \
    names the file and the key). Exit 1: the grant record or the database is unusable at \
    start. Audit lines have the target `audit`. Log level: BERTH_LOG (e.g. debug)."
)]
pub struct Args {
    /// The config file (every key documented in packaging/dbauth.toml).
    #[arg(long, default_value = DEFAULT_PATH)]
    pub config: PathBuf,
    /// Check the config file and exit (0: valid).
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: Args) -> ExitCode {
    crate::log::init();
    let cfg = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{}", error_chain(&e));
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("ok");
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r: Result<(), String> = rt.block_on(async {
        let tasks = HttpTasks::new(&cfg.marathon_url, cfg.marathon_timeout)
            .map_err(|e| format!("{}: marathon.url: {e}", args.config.display()))?;
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
        tracing::info!(listen = %cfg.listen, "dbauth listening");
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            tracing::info!("stopping");
        };
        crate::dbauth::run::run(cfg, tasks, listener, shutdown)
            .await
            .map_err(|e| error_chain(&e))
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
