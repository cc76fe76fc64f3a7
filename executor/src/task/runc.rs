//! The OCI runtime (runc, or crun with the same commands), driven as a command.
//!
//! The container runs in the foreground under a small shell wrapper that writes runc's
//! exit status (the container process's, 128+N for a signal) to a file, so the status
//! survives an executor crash: a restarted executor finds the file, or the container
//! still running.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::Deserialize;

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
}

/// The executor's secret never reaches the runtime's processes either.
pub const TOKEN_VAR: &str = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";

/// `runc state` output (the parts berth reads).
#[derive(Debug, Clone, Deserialize)]
pub struct ContainerState {
    pub status: String,
    #[serde(default)]
    pub pid: i64,
}

/// A runtime binary and its state root.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
}

impl Runtime {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.root);
        c.stdin(Stdio::null());
        c.env_remove(TOKEN_VAR);
        c
    }

    fn run_quiet(&self, verb: &str, args: &[&str]) -> Result<String, RuncError> {
        let out = self
            .cmd()
            .arg(verb)
            .args(args)
            .output()
            .map_err(|err| RuncError::Spawn {
                runtime: self.binary.clone(),
                err,
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(RuncError::Failed {
                runtime: self.binary.clone(),
                verb: verb.into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// Starts `runc run` in the foreground under the exit-status wrapper, in its own
    /// session so that signals to the executor's group do not reach it.
    pub fn run(
        &self,
        id: &str,
        bundle: &Path,
        stdout: &Path,
        stderr: &Path,
        exit_file: &Path,
    ) -> Result<Child, RuncError> {
        use std::os::unix::process::CommandExt;
        let script = r#"rt="$1"; root="$2"; bundle="$3"; id="$4"; out="$5"; err="$6"; ex="$7"
"$rt" --root "$root" run --bundle "$bundle" "$id" </dev/null >>"$out" 2>>"$err"
code=$?
echo "$code" >"$ex.tmp" && mv "$ex.tmp" "$ex""#;
        let mut c = Command::new("/bin/sh");
        c.env_remove(TOKEN_VAR);
        c.arg("-c")
            .arg(script)
            .arg("berth-runc")
            .arg(&self.binary)
            .arg(&self.root)
            .arg(bundle)
            .arg(id)
            .arg(stdout)
            .arg(stderr)
            .arg(exit_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        c.spawn().map_err(|err| RuncError::Spawn {
            runtime: PathBuf::from("/bin/sh"),
            err,
        })
    }

    /// The container's state, `None` when the runtime does not know it.
    pub fn state(&self, id: &str) -> Result<Option<ContainerState>, RuncError> {
        match self.run_quiet("state", &[id]) {
            Ok(out) => serde_json::from_str(&out)
                .map(Some)
                .map_err(|err| RuncError::State { id: id.into(), err }),
            Err(RuncError::Failed { stderr, .. })
                if stderr.contains("does not exist") || stderr.contains("not exist") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends a signal to the container's init (`TERM`, `KILL`, ...).
    pub fn kill(&self, id: &str, signal: &str) -> Result<(), RuncError> {
        self.run_quiet("kill", &[id, signal]).map(drop)
    }

    /// Removes the container whatever its state; a missing container is not an error.
    pub fn delete(&self, id: &str) -> Result<(), RuncError> {
        match self.run_quiet("delete", &["--force", id]) {
            Ok(_) => Ok(()),
            Err(RuncError::Failed { stderr, .. })
                if stderr.contains("does not exist") || stderr.contains("not exist") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Runs a command in the container; returns its exit code.
    pub fn exec(&self, id: &str, argv: &[&str]) -> Result<i32, RuncError> {
        let st = self
            .cmd()
            .arg("exec")
            .arg(id)
            .args(argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|err| RuncError::Spawn {
                runtime: self.binary.clone(),
                err,
            })?;
        Ok(st.code().unwrap_or(128))
    }
}
