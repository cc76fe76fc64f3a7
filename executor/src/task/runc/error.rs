//! The runtime's errors and the constants every part of `runc` shares.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuncError {
    #[error("cannot run {runtime}")]
    Spawn {
        runtime: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("{runtime} {verb} failed: {stderr}")]
    Failed {
        runtime: PathBuf,
        verb: String,
        stderr: String,
    },
    #[error("cannot read the state of container {id}")]
    State {
        id: String,
        #[source]
        err: serde_json::Error,
    },
    #[error("{runtime:?} is not found (neither a file nor a program in PATH)")]
    NotFound { runtime: PathBuf },
    #[error("{runtime:?} is not an executable file")]
    NotExecutable { runtime: PathBuf },
    #[error("{runtime:?} does not answer `--version` like an OCI runtime: {output}")]
    NotARuntime { runtime: PathBuf, output: String },
    #[error("container {id} is created but not started yet: signal {signal} not sent")]
    NotStarted { id: String, signal: String },
    #[error("container {id}'s init (pid {pid}) has no handler for {signal} yet: not sent")]
    NotHandled {
        id: String,
        pid: i64,
        signal: String,
    },
    #[error("{signal:?} is not a signal name")]
    BadSignal { signal: String },
}

/// The executor's secret never reaches the runtime's processes either.
pub const TOKEN_VAR: &str = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";

/// Where cgroups v1 hierarchies and the hybrid v2 one are mounted.
pub(super) const CGROUP_ROOT: &str = "/sys/fs/cgroup";
pub(super) const HYBRID_UNIFIED: &str = "/sys/fs/cgroup/unified";
