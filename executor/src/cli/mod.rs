//! The command line. Under Mesos (MESOS_EXECUTOR_ID is set) every argument is the app's
//! `cmd` that Marathon appended to the executor's command line; otherwise the subcommands
//! of [`Cli`] apply.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::mesos::env::ExecutorEnv;
use crate::mesos::types::{Reason, TaskState};
use crate::session::{Exit, LaunchRequest, Launcher, Session, TaskEvent};

/// berth-executor: runs Marathon tasks as runc containers with berth-init as PID 1.
///
/// Under a Mesos agent it needs no arguments: it reads the MESOS_* environment. Settings
/// come from BERTH_EXECUTOR_* variables (see the README).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the settings taken from BERTH_EXECUTOR_* variables.
    Config,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    init_logging();
    if std::env::var_os("MESOS_EXECUTOR_ID").is_some() {
        return mesos_mode();
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Config => {
            println!("{:#?}", crate::task::config::RunConfig::from_env());
            ExitCode::SUCCESS
        }
    }
}

/// Refuses tasks with a clear message until the container runner is built in.
struct NotBuilt;

impl Launcher for NotBuilt {
    fn launch(&self, req: LaunchRequest) {
        let _ = req.events.send(
            TaskEvent::new(&req.task.task_id.value, TaskState::TaskFailed)
                .reason(Reason::ReasonContainerLaunchFailed)
                .message("berth-executor: the container runner is not built into this version"),
        );
    }
}

fn mesos_mode() -> ExitCode {
    let env = match ExecutorEnv::from_process() {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "bad Mesos environment");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::from(1);
        }
    };
    let exit = rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            loop {
                tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                let _ = stop_tx.send(()).await;
            }
        });
        Session::run(env, Arc::new(NotBuilt), None, stop_rx).await
    });
    match exit {
        Ok(Exit::Done) | Ok(Exit::Shutdown) => ExitCode::SUCCESS,
        Ok(other) => {
            tracing::error!(?other, "executor ended");
            ExitCode::from(1)
        }
        Err(e) => {
            tracing::error!(error = %crate::session::connection::error_chain(&e), "executor failed");
            ExitCode::from(1)
        }
    }
}
