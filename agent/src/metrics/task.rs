//! This node's containers, read from the executor's state dir (never guessed).
//!
//! Per container `<state dir>/<container id>/` holds `checkpoint.json` (the preparation
//! steps and their outputs: netns, IP, bind mounts such as /home, the runtime wrapper's
//! pid) and `bundle/config.json` (the OCI spec: hostname, cgroupsPath, the task's
//! environment with `MESOS_TASK_ID`, `MARATHON_APP_ID`, `BERTH_*` sizes, and the run dir
//! bound on `/run/berth` where berth-init's status socket lives). The session
//! checkpoints `<state dir>/executors/*.json` keep each task's TaskInfo as LAUNCH gave it
//! (framework, executor, labels) and the last state sent; without framework
//! checkpointing they are absent and the framework and executor ids are read from the
//! environment of the executor process (the wrapper's parent).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

/// What the agent knows of one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Task {
    pub container_id: String,
    pub state_dir: PathBuf,
    pub task_id: String,
    /// Marathon's app id (`/group/app`); empty for a task not launched by Marathon.
    pub app_id: String,
    pub framework_id: String,
    pub executor_id: String,
    pub hostname: String,
    /// The OCI `cgroupsPath` (`/<parent>/<container id>`).
    pub cgroup: Option<String>,
    pub netns: Option<PathBuf>,
    pub ip: Option<String>,
    /// The host path of the /home volume's mount.
    pub home: Option<PathBuf>,
    /// berth-init's status socket on the host.
    pub init_socket: Option<PathBuf>,
    pub wrapper_pid: Option<u32>,
    /// The last state the executor reported (`TASK_RUNNING`, ...), from its session
    /// checkpoint; or `preparing`/`running`/`exited` from the state dir alone.
    pub state: String,
    pub vlan: Option<u16>,
    pub bandwidth_mbit: Option<f64>,
    pub cpus: Option<f64>,
    /// When the container was started (its bundle written).
    pub started: Option<SystemTime>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the state dir {path}")]
pub struct StateDirError {
    pub path: PathBuf,
    #[source]
    pub err: std::io::Error,
}

#[derive(Deserialize, Default)]
struct Checkpoint {
    #[serde(default)]
    container_id: String,
    #[serde(default)]
    steps: Vec<(String, String)>,
    #[serde(default)]
    outputs: Outputs,
}

#[derive(Deserialize, Default)]
struct Outputs {
    netns: Option<PathBuf>,
    ip: Option<String>,
    #[serde(default)]
    binds: Vec<(PathBuf, String, bool)>,
    wrapper_pid: Option<u32>,
}

/// What the session checkpoint says of one task.
#[derive(Debug, Clone, Default)]
struct Launched {
    framework_id: String,
    executor_id: String,
    labels: HashMap<String, String>,
    last_state: Option<String>,
}

/// Every container in `state_dir`, sorted by container id. `proc_root` is `/proc`.
/// Only an unreadable state dir is an error; a container whose files are half written
/// (a launch in progress) is listed with what is known.
pub fn discover(state_dir: &Path, proc_root: &Path) -> Result<Vec<Task>, StateDirError> {
    let rd = std::fs::read_dir(state_dir).map_err(|err| StateDirError {
        path: state_dir.to_owned(),
        err,
    })?;
    let launched = sessions(&state_dir.join("executors"));
    let mut out: Vec<Task> = rd
        .flatten()
        .filter(|e| e.file_name() != "executors")
        .filter_map(|e| read_one(&e.path(), &launched, proc_root))
        .collect();
    out.sort_by(|a, b| a.container_id.cmp(&b.container_id));
    Ok(out)
}

fn read_one(dir: &Path, launched: &HashMap<String, Launched>, proc_root: &Path) -> Option<Task> {
    let cp: Checkpoint =
        serde_json::from_slice(&std::fs::read(dir.join("checkpoint.json")).ok()?).ok()?;
    let bundle = dir.join("bundle").join("config.json");
    let spec: serde_json::Value = std::fs::read(&bundle)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let env: HashMap<&str, &str> = spec["process"]["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str()?.split_once('='))
                .collect()
        })
        .unwrap_or_default();
    let run_dir = spec["mounts"].as_array().and_then(|m| {
        m.iter()
            .find(|m| m["destination"] == "/run/berth")
            .and_then(|m| m["source"].as_str())
            .map(PathBuf::from)
    });
    let o = cp.outputs;
    let task_id = env
        .get("MESOS_TASK_ID")
        .or_else(|| env.get("BERTH_TASK_ID"))
        .map(|s| s.to_string())
        .unwrap_or_default();
    let from_session = launched.get(&task_id).cloned();
    let from_proc = || o.wrapper_pid.and_then(|p| executor_env(proc_root, p));
    let (framework_id, executor_id) = match (&from_session, from_proc()) {
        (Some(l), _) => (l.framework_id.clone(), l.executor_id.clone()),
        (None, Some(ids)) => ids,
        (None, None) => Default::default(),
    };
    let exited = dir.join("exit").exists();
    let container_done = cp
        .steps
        .iter()
        .any(|(n, p)| n == "container" && p == "done");
    let state = from_session
        .as_ref()
        .and_then(|l| l.last_state.clone())
        .unwrap_or_else(|| {
            match (container_done, exited) {
                (_, true) => "exited",
                (true, false) => "running",
                (false, false) => "preparing",
            }
            .to_string()
        });
    let label = |k: &str| from_session.as_ref().and_then(|l| l.labels.get(k).cloned());
    let num = |k: &str| env.get(k).and_then(|v| v.parse::<f64>().ok());
    Some(Task {
        container_id: if cp.container_id.is_empty() {
            dir.file_name()?.to_string_lossy().into_owned()
        } else {
            cp.container_id
        },
        state_dir: dir.to_owned(),
        app_id: env
            .get("MARATHON_APP_ID")
            .map(|s| s.to_string())
            .unwrap_or_default(),
        task_id,
        framework_id,
        executor_id,
        hostname: spec["hostname"].as_str().unwrap_or_default().to_string(),
        cgroup: spec["linux"]["cgroupsPath"].as_str().map(str::to_string),
        netns: o.netns,
        ip: o.ip,
        home: o
            .binds
            .iter()
            .find(|(_, dst, _)| dst == "/home")
            .map(|(src, _, _)| src.clone()),
        init_socket: run_dir.map(|d| d.join("init.sock")),
        wrapper_pid: o.wrapper_pid,
        state,
        vlan: label("berth.vlan").and_then(|v| v.parse().ok()),
        bandwidth_mbit: num("BERTH_BANDWIDTH_MBIT").filter(|b| *b > 0.0),
        cpus: num("BERTH_CPUS"),
        started: std::fs::metadata(&bundle).and_then(|m| m.modified()).ok(),
    })
}

/// task id → what the session checkpoints (`executors/*.json`) say of it.
fn sessions(dir: &Path) -> HashMap<String, Launched> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        if e.path().extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Some(v) = std::fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        else {
            continue;
        };
        let Some(tasks) = v["tasks"].as_object() else {
            continue;
        };
        for (id, rec) in tasks {
            let raw = &rec["raw"];
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            let labels = raw["labels"]["labels"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| Some((l["key"].as_str()?.into(), s(&l["value"]))))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(
                id.clone(),
                Launched {
                    framework_id: s(&raw["executor"]["framework_id"]["value"]),
                    executor_id: s(&raw["executor"]["executor_id"]["value"]),
                    labels,
                    last_state: rec["last_state"].as_str().map(str::to_string),
                },
            );
        }
    }
    out
}

/// (MESOS_FRAMEWORK_ID, MESOS_EXECUTOR_ID) from the environment of the executor, the
/// parent of the container's wrapper process.
fn executor_env(proc_root: &Path, wrapper: u32) -> Option<(String, String)> {
    let stat = std::fs::read_to_string(proc_root.join(wrapper.to_string()).join("stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
    let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
    let env = std::fs::read(proc_root.join(ppid).join("environ")).ok()?;
    let mut ids = (String::new(), String::new());
    for kv in env.split(|b| *b == 0) {
        let kv = String::from_utf8_lossy(kv);
        if let Some(v) = kv.strip_prefix("MESOS_FRAMEWORK_ID=") {
            ids.0 = v.to_string();
        } else if let Some(v) = kv.strip_prefix("MESOS_EXECUTOR_ID=") {
            ids.1 = v.to_string();
        }
    }
    (!ids.0.is_empty()).then_some(ids)
}

#[cfg(test)]
#[path = "task_tests.rs"]
mod tests;
