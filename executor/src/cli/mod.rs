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
/// settings from BERTH_EXECUTOR_* variables; any arguments are the app's `cmd`. Without
/// Mesos, use `run` to run one task by hand.
#[derive(Debug, Parser)]
#[command(version, after_help = TOP_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one task without Mesos, printing each status update as a JSON line; SIGINT or
    /// SIGTERM kills the task (with its kill policy's grace) and waits for TASK_KILLED.
    Run(run::RunArgs),
    /// Print every BERTH_EXECUTOR_* setting (value, default or from env, meaning) and
    /// check them: exits 2 naming each bad variable.
    Config,
    /// Inspect (and optionally unpack) an image as tasks see it; prune the unpack cache.
    Image(image::ImageArgs),
}

const TOP_HELP: &str = "\
From Marathon (the executor is started by the Mesos agent, one per task):
  {\"id\": \"/web\", \"executor\": \"/usr/local/bin/berth-executor\", \"cmd\": \"exec httpd -f\",
   \"cpus\": 0.5, \"mem\": 128, \"labels\": {\"berth.image\": \"busybox\"}}
  The task gets Marathon's variables (MARATHON_APP_*, PORT*, HOST, MESOS_TASK_ID) and the
  app's env, never the rest of the agent's environment.

By hand:
  berth-executor config                      list and check the settings
  berth-executor run --task task.json        run one task (see `run --help`)
  berth-executor image inspect busybox       inspect an image as tasks see it

Settings (environment, see `berth-executor config`): BERTH_EXECUTOR_RUNTIME,
BERTH_EXECUTOR_INIT, BERTH_EXECUTOR_IMAGES, BERTH_EXECUTOR_STATE_DIR, BERTH_EXECUTOR_NET_*,
BERTH_EXECUTOR_VOLUME_*, ...; RUST_LOG for the log filter (logs go to stderr).

Exit codes: 0 done (every task ended and was acknowledged, or the task finished or was
killed under `run`); 1 failure; 2 bad usage, bad Mesos environment or bad setting.";

/// Plain lines on stderr; ANSI colour only when stderr is a terminal (under Mesos it is
/// the sandbox's `stderr` file, which operators read and tasks' messages quote).
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
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
        Command::Config => config(),
    }
}

/// `berth-executor config`: the listing, then each problem; exit 2 if any.
fn config() -> ExitCode {
    use crate::task::config::{check, listing, process_vars};
    print!("{}", listing(&process_vars));
    let problems = check(&process_vars);
    for p in &problems {
        let when = if p.per_task {
            " (each task would fail)"
        } else {
            " (the executor would refuse to start)"
        };
        eprintln!("berth-executor: bad setting {p}{when}");
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// The settings' problems that make the executor refuse to start (logged, each naming
/// its variable); the per-task ones are logged as warnings (each task fails naming them).
fn refuse_bad_settings() -> bool {
    let mut refuse = false;
    for p in crate::task::config::check(&crate::task::config::process_vars) {
        if p.per_task {
            tracing::warn!(setting = %p.var, "{p}: tasks will fail until it is fixed");
        } else {
            tracing::error!(setting = %p.var, "bad setting {p}");
            refuse = true;
        }
    }
    refuse
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
