//! Mesos mode: the session with the container launcher.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::mesos::env::ExecutorEnv;
use crate::mesos::http::AgentClient;
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
    if let Some(tls) = &env.tls {
        if !tls.verify {
            tracing::warn!(
                "TLS to the agent without verifying its certificate (LIBPROCESS_SSL_VERIFY_CERT is off): encrypted, not authenticated"
            );
        }
    }
    // TLS files are read now: a bad CA, certificate or key file is a setting error.
    if let Err(e) = AgentClient::new(&env) {
        tracing::error!(error = %error_chain(&e), "cannot set up the connection to the agent");
        return ExitCode::from(2);
    }
    // A setting wrong whatever the task: refuse to start (each problem logged, naming its
    // variable) rather than fail every task.
    if super::refuse_bad_settings() {
        return ExitCode::from(2);
    }
    let cfg = RunConfig::from_env();
    // The session checkpoint: one file per framework and executor.
    let dir = cfg.state_dir.join("executors");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::error!(error = %e, dir = %dir.display(), "cannot create the state directory");
        return ExitCode::from(1);
    }
    let name =
        crate::task::names::container_id(&format!("{}_{}", env.framework_id, env.executor_id));
    let checkpoint = checkpoint_path(&env, &dir.join(format!("{name}.json")));
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
        rt.block_on(async move { Session::run(env, launcher, ckpt, super::stop_signals()).await });
    finish(exit, checkpoint.as_deref())
}

/// The session file, or none when the framework does not checkpoint
/// (`MESOS_CHECKPOINT=0`: nothing may survive the executor).
fn checkpoint_path(env: &ExecutorEnv, file: &Path) -> Option<PathBuf> {
    env.checkpoint.then(|| file.to_path_buf())
}

/// The exit code. Once the session has ended (every path of `Ok`: the tasks are cleaned
/// up) the checkpoint is removed; after an error it is kept for a later recovery.
fn finish(exit: Result<Exit, crate::session::SessionError>, checkpoint: Option<&Path>) -> ExitCode {
    let code = match exit {
        Ok(Exit::Done) | Ok(Exit::Shutdown) => ExitCode::SUCCESS,
        Ok(other) => {
            tracing::error!(?other, "executor ended");
            ExitCode::from(1)
        }
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "executor failed");
            return ExitCode::from(1);
        }
    };
    if let Some(path) = checkpoint {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "cannot remove the checkpoint")
            }
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(checkpoint: &str) -> ExecutorEnv {
        ExecutorEnv::from_vars([
            ("MESOS_FRAMEWORK_ID", "fw"),
            ("MESOS_EXECUTOR_ID", "ex"),
            ("MESOS_AGENT_ENDPOINT", "127.0.0.1:5051"),
            ("MESOS_DIRECTORY", "/tmp"),
            ("MESOS_CHECKPOINT", checkpoint),
        ])
        .unwrap()
    }

    #[test]
    fn no_checkpoint_file_without_framework_checkpointing() {
        let f = Path::new("/nonexistent/x.json");
        assert_eq!(checkpoint_path(&env("0"), f), None);
        assert_eq!(checkpoint_path(&env("1"), f), Some(f.to_path_buf()));
    }

    #[test]
    fn every_ended_session_removes_the_checkpoint() {
        let dir = std::env::temp_dir().join(format!("berth-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("s.json");
        for exit in [
            Exit::Done,
            Exit::Shutdown,
            Exit::AgentLost("gone".into()),
            Exit::Refused("no".into()),
        ] {
            std::fs::write(&f, b"{}").unwrap();
            let _ = finish(Ok(exit.clone()), Some(&f));
            assert!(!f.exists(), "{exit:?} left the checkpoint");
        }
        // A session error keeps it (the tasks may still be running).
        std::fs::write(&f, b"{}").unwrap();
        let err = crate::session::SessionError::Checkpoint {
            path: f.clone(),
            err: std::io::Error::other("disk full"),
        };
        let _ = finish(Err(err), Some(&f));
        assert!(f.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
