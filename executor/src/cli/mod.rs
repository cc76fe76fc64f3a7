//! The command line. Under Mesos (MESOS_EXECUTOR_ID is set) every argument is the app's
//! `cmd` that Marathon appended to the executor's command line; otherwise the subcommands
//! of [`Cli`] apply.

mod image;
mod mesos;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// berth-executor: runs Marathon tasks as runc containers with berth-init as PID 1.
///
/// Under a Mesos agent it takes no options: it reads the MESOS_* environment, and its
/// settings from BERTH_EXECUTOR_* variables (see the README); any arguments are the
/// app's `cmd`. Without Mesos, use `run` to run one task by hand.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one task without Mesos, printing each status update as a JSON line; SIGINT or
    /// SIGTERM kills the task (with its kill policy's grace) and waits for TASK_KILLED.
    Run(run::RunArgs),
    /// Print the settings taken from BERTH_EXECUTOR_* variables.
    Config,
    /// Inspect (and optionally unpack) an image as tasks see it; prune the unpack cache.
    Image(image::ImageArgs),
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
        let args: Vec<String> = std::env::args().skip(1).collect();
        return mesos::main(args);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::main(args),
        Command::Image(args) => image::main(args),
        Command::Config => {
            println!("{:#?}", crate::task::config::RunConfig::from_env());
            ExitCode::SUCCESS
        }
    }
}

/// A current-thread tokio runtime.
fn runtime() -> Result<tokio::runtime::Runtime, std::io::Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// A channel that receives one message per SIGTERM/SIGINT.
fn stop_signals() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        loop {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            if tx.send(()).await.is_err() {
                return;
            }
        }
    });
    rx
}
