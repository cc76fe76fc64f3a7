//! `berth-executor run --task task.json`: one task, no Mesos, updates as JSON lines.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::mesos::types::{FrameworkInfo, TaskInfo, TaskState};
use crate::mesos::updates::now_seconds;
use crate::session::{LaunchRequest, Launcher};
use crate::task::config::RunConfig;
use crate::task::runner::ContainerLauncher;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A TaskInfo in Mesos' JSON form (task_id, resources, command, labels with
    /// berth.image, optional health_check and kill_policy).
    #[arg(long)]
    pub task: PathBuf,
    /// The sandbox directory (the task's stdout and stderr go there).
    #[arg(long, default_value = ".")]
    pub sandbox: PathBuf,
    /// Extra environment for the task, NAME=value (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
}

pub fn main(args: RunArgs) -> ExitCode {
    let task: TaskInfo = match std::fs::read(&args.task)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "berth-executor: cannot read the task {}: {e}",
                args.task.display()
            );
            return ExitCode::from(2);
        }
    };
    let mut env = BTreeMap::new();
    env.insert("MESOS_TASK_ID".to_string(), task.task_id.value.clone());
    for kv in &args.env {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                env.insert(k.to_string(), v.to_string());
            }
            _ => {
                eprintln!("berth-executor: --env {kv:?} is not NAME=value");
                return ExitCode::from(2);
            }
        }
    }
    let sandbox = match std::fs::canonicalize(&args.sandbox) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth-executor: sandbox {}: {e}", args.sandbox.display());
            return ExitCode::from(2);
        }
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-executor: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let (kill_tx, kill_rx) = watch::channel(None);
        let grace = crate::mesos::kill::grace(None, task.kill_policy.as_ref());
        let launcher = ContainerLauncher {
            cfg: RunConfig::from_env(),
            executor_cmd: None,
        };
        launcher.launch(LaunchRequest {
            task,
            framework: FrameworkInfo::default(),
            env,
            sandbox,
            events: events_tx,
            kill: kill_rx,
            recover: false,
        });
        let mut stop = super::stop_signals();
        let mut last = None;
        loop {
            tokio::select! {
                Some(()) = stop.recv() => {
                    let proposed = Instant::now() + grace;
                    let cur = *kill_tx.borrow();
                    kill_tx.send_replace(Some(crate::mesos::kill::next_deadline(cur, proposed)));
                }
                ev = events.recv() => {
                    let Some(ev) = ev else { break };
                    let line = json!({
                        "task_id": ev.task_id, "state": ev.state, "reason": ev.reason,
                        "message": ev.message, "healthy": ev.healthy, "ip": ev.ip,
                        "timestamp": now_seconds(),
                    });
                    println!("{line}");
                    let terminal = ev.state.is_terminal();
                    last = Some(ev.state);
                    if terminal { break; }
                }
            }
        }
        match last {
            Some(TaskState::TaskFinished) | Some(TaskState::TaskKilled) => ExitCode::SUCCESS,
            _ => ExitCode::from(1),
        }
    })
}
