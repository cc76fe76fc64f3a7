//! Mesos mode: the session with the container launcher.

use std::process::ExitCode;
use std::sync::Arc;

use crate::mesos::env::ExecutorEnv;
use crate::session::connection::error_chain;
use crate::session::{Exit, Session};
use crate::task::config::RunConfig;
use crate::task::runner::ContainerLauncher;

pub fn main(args: Vec<String>) -> ExitCode {
    let env = match ExecutorEnv::from_process() {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "bad Mesos environment");
            return ExitCode::from(2);
        }
    };
    let cfg = RunConfig::from_env();
    // The session checkpoint: one file per framework and executor.
    let dir = cfg.state_dir.join("executors");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::error!(error = %e, dir = %dir.display(), "cannot create the state directory");
        return ExitCode::from(1);
    }
    let name =
        crate::task::names::container_id(&format!("{}_{}", env.framework_id, env.executor_id));
    let checkpoint = dir.join(format!("{name}.json"));
    let executor_cmd = Some(args.join(" ")).filter(|c| !c.trim().is_empty());
    let launcher = Arc::new(ContainerLauncher { cfg, executor_cmd });
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::from(1);
        }
    };
    let ckpt = checkpoint.clone();
    let exit =
        rt.block_on(
            async move { Session::run(env, launcher, Some(ckpt), super::stop_signals()).await },
        );
    match exit {
        Ok(Exit::Done) | Ok(Exit::Shutdown) => {
            let _ = std::fs::remove_file(&checkpoint);
            ExitCode::SUCCESS
        }
        Ok(other) => {
            tracing::error!(?other, "executor ended");
            ExitCode::from(1)
        }
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "executor failed");
            ExitCode::from(1)
        }
    }
}
