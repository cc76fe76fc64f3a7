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
use crate::task::network::NetConfig;
use crate::task::runner::ContainerLauncher;

const RUN_HELP: &str = "\
A minimal task.json (a Mesos TaskInfo in JSON):
  {
    \"name\": \"web\",
    \"task_id\": {\"value\": \"web.1\"},
    \"resources\": [
      {\"name\": \"cpus\", \"type\": \"SCALAR\", \"scalar\": {\"value\": 0.5}},
      {\"name\": \"mem\",  \"type\": \"SCALAR\", \"scalar\": {\"value\": 128}},
      {\"name\": \"home\", \"type\": \"SCALAR\", \"scalar\": {\"value\": 1024}}
    ],
    \"command\": {\"value\": \"exec httpd -f -p 8080\",
                \"environment\": {\"variables\": [{\"name\": \"GREETING\", \"value\": \"hi\"}]}},
    \"labels\": {\"labels\": [{\"key\": \"berth.image\", \"value\": \"busybox\"},
                          {\"key\": \"berth.bandwidth\", \"value\": \"100mbit\"}]}
  }
  berth-executor run --task task.json --sandbox /tmp/sb --env MODE=test

Resources (all optional, SCALAR unless said):
  cpus       CPU shares and quota; at most the host's CPUs
  mem        memory limit, MB; 4 MB to the host's memory
  disk       passed as BERTH_DISK_MB only; at most 16 TiB
  home       a sized /home volume, MB (needs BERTH_EXECUTOR_VOLUME_BACKEND); at most 16 TiB
  bandwidth  Mbit/s limit of eth0 both ways (needs networking); at most 400000
  ports      RANGES, passed as BERTH_PORTS
Labels:
  berth.image      required: a root filesystem dir or OCI layout under BERTH_EXECUTOR_IMAGES
                   (NAME, NAME:TAG, NAME@sha256:HEX)
  berth.hostname   the container's hostname (default: the task name)
  berth.home       a /home of that many MB carved out of disk (for Marathon apps)
  berth.bandwidth, berth.egress, berth.ingress   tc rates (100mbit), need networking
  berth.vlan       VLAN id 1-4094 of the macvlan (needs networking)
Without a command: the image's /etc/berth/app.yaml (berth-init's app spec), else its
Entrypoint and Cmd. Also read: health_check (COMMAND, HTTP, TCP), kill_policy.

The task's environment: PATH, the image's Env, --env, command.environment, then BERTH_*
(BERTH_TASK_ID, BERTH_CPUS, BERTH_MEM_MB, BERTH_HOME_MB, BERTH_PORTS, ...), MESOS_TASK_ID,
MESOS_SANDBOX, HOSTNAME. Nothing else of this shell's environment.

Settings that apply (environment, see `berth-executor config`): BERTH_EXECUTOR_RUNTIME,
BERTH_EXECUTOR_RUNTIME_ROOT, BERTH_EXECUTOR_INIT, BERTH_EXECUTOR_IMAGES,
BERTH_EXECUTOR_IMAGE_CACHE, BERTH_EXECUTOR_STATE_DIR, BERTH_EXECUTOR_RUN_DIR,
BERTH_EXECUTOR_CGROUP_PARENT, BERTH_EXECUTOR_NET_PARENT/NET_MODE (or the options below),
BERTH_EXECUTOR_VOLUME_*. A bad setting: exit 2 before anything runs.

Output: one JSON line per status update (TASK_STARTING, TASK_RUNNING with \"ip\", health,
then a terminal state); exit 0 after TASK_FINISHED or TASK_KILLED, 1 otherwise, 2 for bad
input.";

#[derive(Debug, Args)]
#[command(after_help = RUN_HELP)]
pub struct RunArgs {
    /// A TaskInfo in Mesos' JSON form (task_id, resources, command, labels with
    /// berth.image, optional health_check and kill_policy).
    #[arg(long)]
    pub task: PathBuf,
    /// The sandbox directory (the task's stdout and stderr go there).
    #[arg(long, default_value = ".")]
    pub sandbox: PathBuf,
    /// Extra environment for the task, NAME=value (repeatable; the task's own
    /// command.environment wins).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Give the task a network: a macvlan eth0 on this host NIC (or VLAN trunk) in its
    /// own netns, DHCP by berth-init (default: BERTH_EXECUTOR_NET_PARENT; unset = only lo).
    #[arg(long, value_name = "IFACE")]
    pub net_parent: Option<String>,
    /// macvlan mode: bridge, private, vepa or passthru (default: BERTH_EXECUTOR_NET_MODE,
    /// else bridge).
    #[arg(long, value_name = "MODE", requires = "net_parent",
          value_parser = crate::task::config::NET_MODES)]
    pub net_mode: Option<String>,
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
        match parse_env(kv) {
            Ok((k, v)) => {
                env.insert(k, v);
            }
            Err(e) => {
                eprintln!("berth-executor: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if super::refuse_bad_settings() {
        return ExitCode::from(2);
    }
    if let Some(parent) = &args.net_parent {
        if let Err(e) = berth_netcfg::names::IfName::new(parent) {
            eprintln!("berth-executor: --net-parent: {e}");
            return ExitCode::from(2);
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
        let mut cfg = RunConfig::from_env();
        if let Some(parent) = args.net_parent {
            let mode = args
                .net_mode
                .or_else(|| cfg.net.as_ref().map(|n| n.mode.clone()))
                .unwrap_or_else(|| "bridge".into());
            cfg.net = Some(NetConfig { parent, mode });
        }
        let launcher = ContainerLauncher {
            cfg,
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

/// One `--env NAME=value`, its name checked as the task's own would be.
fn parse_env(kv: &str) -> Result<(String, String), String> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| format!("--env {}: not NAME=value", crate::task::plan::shown(kv)))?;
    crate::task::plan::check_env_name("--env", k).map_err(|e| e.to_string())?;
    if v.contains('\0') {
        return Err(format!("--env {k}: the value contains a NUL byte"));
    }
    Ok((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn env_options_are_checked_like_the_tasks_own() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(
            parse_env("EMPTY=").unwrap(),
            ("EMPTY".into(), String::new())
        );
        for bad in ["1A=x", "=x", "NOEQUALS", "A B=x", "A\tB=x"] {
            let e = parse_env(bad).unwrap_err();
            assert!(e.contains("--env"), "{bad}: {e}");
        }
        assert!(parse_env("1A=x").unwrap_err().contains("\"1A\""));
    }

    #[test]
    fn run_help_teaches_the_task_format() {
        let mut cmd = crate::cli::Cli::command();
        let run = cmd.find_subcommand_mut("run").unwrap();
        let help = run.render_long_help().to_string();
        for needle in [
            "\"task_id\"",
            "berth.image",
            "berth.bandwidth",
            "berth.hostname",
            "\"home\"",
            "cpus",
            "BERTH_EXECUTOR_IMAGES",
            "BERTH_EXECUTOR_VOLUME_",
            "berth-executor config",
        ] {
            assert!(help.contains(needle), "{needle} in\n{help}");
        }
        // The example is a task berth accepts (as JSON).
        let start = help.find("  {").unwrap();
        let end = help[start..].find("\n  }").unwrap() + start + 4;
        let task: crate::mesos::types::TaskInfo =
            serde_json::from_str(&help[start..end]).expect("the example parses");
        assert_eq!(task.task_id.value, "web.1");
        let top = crate::cli::Cli::command().render_long_help().to_string();
        for needle in ["\"executor\"", "run --task", "config", "Exit codes"] {
            assert!(top.contains(needle), "{needle} in\n{top}");
        }
    }
}
