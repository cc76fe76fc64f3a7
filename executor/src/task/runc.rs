//! The OCI runtime (runc or crun), driven as a command.
//!
//! The container runs in the foreground under a small shell wrapper that writes the
//! runtime's exit status (the container process's, 128+N for a signal; runc and crun agree)
//! to a file, so the status survives an executor crash: a restarted executor finds the
//! file, or the container still running.
//!
//! Which runtime it is comes from `<runtime> --version` (probed once per binary and
//! executor process, and recorded on disk for later executors: see [`probe_recorded`]); the differences berth meets are capabilities of a [`Kind`], not string
//! matches on error messages:
//! - An unknown container: runc says "container does not exist", crun "error opening file
//!   .../status". Both keep a container's state in `<root>/<id>/`, so berth asks the
//!   state root ([`Runtime::known`]).
//! - A signal other than KILL to a created-but-not-started container: runc's `init` (Go,
//!   with handlers for every signal) dies of it; crun's waits as a PID 1 without handlers
//!   and the signal is lost. With crun (or a runtime berth does not know) such a signal
//!   is refused ([`RuncError::NotStarted`]) so that the caller retries once the container
//!   runs. Likewise a signal the container's PID 1 neither handles nor blocks yet, which
//!   the kernel would discard ([`RuncError::NotHandled`]), with either runtime.
//! - cgroups v1 "hybrid" hosts with a controller (e.g. hugetlb) left on the v2 hierarchy
//!   at `/sys/fs/cgroup/unified`: crun refuses to create containers there. berth then
//!   runs `crun run` in a private mount namespace where that hierarchy is detached, so
//!   crun sees a plain v1 host and uses the v1 controllers (as runc does on such a host).
//!   Both use the cgroupfs driver with the absolute `cgroupsPath` `/<parent>/<id>`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::Deserialize;

mod detect;
mod error;

pub use detect::{needs_v1_only_view, probe, probe_recorded, resolve, CgroupMode, Kind, Probe};
use error::HYBRID_UNIFIED;
pub use error::{RuncError, TOKEN_VAR};

/// `<runtime> state` output (the parts berth reads; runc and crun both use the OCI status
/// names `creating`, `created`, `running`, `stopped`, and crun adds fields berth ignores).
#[derive(Debug, Clone, Deserialize)]
pub struct ContainerState {
    pub status: String,
    #[serde(default)]
    pub pid: i64,
}

/// A runtime binary, its state root and what berth knows about it.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub kind: Kind,
    /// Run the container with `/sys/fs/cgroup/unified` detached (see the module doc).
    pub v1_only_view: bool,
}

impl Runtime {
    /// Probes the binary (cached) and the host's cgroups. A binary that does not probe is
    /// driven like runc: its commands then fail with the spawn error.
    pub fn new(binary: &Path, root: &Path) -> Runtime {
        let kind = probe(binary).map(|p| p.kind).unwrap_or(Kind::Other);
        Runtime {
            binary: binary.to_path_buf(),
            root: root.to_path_buf(),
            kind,
            v1_only_view: needs_v1_only_view(kind, CgroupMode::detect()),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.root);
        c.stdin(Stdio::null());
        c.env_remove(TOKEN_VAR);
        c
    }

    fn run_quiet(&self, verb: &str, args: &[&str]) -> Result<String, RuncError> {
        let t0 = std::time::Instant::now();
        let out = self
            .cmd()
            .arg(verb)
            .args(args)
            .output()
            .map_err(|err| RuncError::Spawn {
                runtime: self.binary.clone(),
                err,
            })?;
        tracing::trace!(
            verb,
            ?args,
            ms = t0.elapsed().as_secs_f64() * 1e3,
            ok = out.status.success(),
            "runtime command"
        );
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

    /// Whether the runtime has state for the container: both runc and crun keep it in
    /// `<root>/<id>/` from `create` until `delete`.
    pub fn known(&self, id: &str) -> bool {
        self.root.join(id).exists()
    }

    /// Starts `<runtime> run` in the foreground under the exit-status wrapper, in its own
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
            .arg("berth-runtime")
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
        if self.v1_only_view {
            // SAFETY: the closure runs in the forked child before exec and only makes raw
            // system calls (unshare, mount, umount2 with paths short enough for nix's
            // stack buffer): no allocation, no locks.
            unsafe { c.pre_exec(detach_unified_v2) };
        }
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
            // Without state in the root there is no container, whatever the runtime
            // says (or whether it runs at all).
            Err(RuncError::Failed { .. } | RuncError::Spawn { .. }) if !self.known(id) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends a signal to the container's init (`TERM`, `KILL`, ...). A signal other than
    /// KILL that would be lost is refused, so that the caller retries it: on a
    /// not-yet-started container of a runtime whose waiting init does not die of it
    /// ([`RuncError::NotStarted`]), and on an init that has no handler for it yet
    /// ([`RuncError::NotHandled`]: the kernel discards signals to a PID 1 without a handler,
    /// e.g. a TERM sent right after the container started, before berth-init set its own).
    pub fn kill(&self, id: &str, signal: &str) -> Result<(), RuncError> {
        let signo = signal_number(signal)?;
        if signo != libc::SIGKILL {
            if let Some(st) = self.state(id)? {
                let not_started = st.status == "created" || st.status == "creating";
                if not_started && !self.kind.signals_created_init() {
                    return Err(RuncError::NotStarted {
                        id: id.into(),
                        signal: signal.into(),
                    });
                }
                let status = std::fs::read_to_string(format!("/proc/{}/status", st.pid));
                if st.status == "running"
                    && st.pid > 0
                    && status.is_ok_and(|t| takes(&t, signo) == Some(false))
                {
                    return Err(RuncError::NotHandled {
                        id: id.into(),
                        pid: st.pid,
                        signal: signal.into(),
                    });
                }
            }
        }
        self.run_quiet("kill", &[id, signal]).map(drop)
    }

    /// Sends a signal to the container's init without asking the runtime for its state
    /// first: for a caller that knows init takes it (berth-init answered on its status
    /// socket, which it binds only after blocking every signal for its signalfd, so
    /// nothing it is sent is lost). Saves the `state` call [`Runtime::kill`] makes.
    pub fn kill_ready(&self, id: &str, signal: &str) -> Result<(), RuncError> {
        signal_number(signal)?;
        self.run_quiet("kill", &[id, signal]).map(drop)
    }

    /// Removes the container whatever its state; a missing container is not an error.
    pub fn delete(&self, id: &str) -> Result<(), RuncError> {
        match self.run_quiet("delete", &["--force", id]) {
            Ok(_) => Ok(()),
            Err(RuncError::Failed { .. } | RuncError::Spawn { .. }) if !self.known(id) => Ok(()),
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

/// A signal as the runtimes take it (`TERM`, `SIGTERM`, `15`) to its number.
pub fn signal_number(signal: &str) -> Result<i32, RuncError> {
    use std::str::FromStr;
    let bad = || RuncError::BadSignal {
        signal: signal.into(),
    };
    if let Ok(n) = signal.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .map(|s| s as i32)
            .map_err(|_| bad());
    }
    let name = if signal.starts_with("SIG") {
        signal.to_string()
    } else {
        format!("SIG{signal}")
    };
    nix::sys::signal::Signal::from_str(&name)
        .map(|s| s as i32)
        .map_err(|_| bad())
}

/// Whether a signal sent to a process that is PID 1 of its namespace reaches it, from its
/// `/proc/<pid>/status`: the kernel discards it unless the process has a handler for it
/// (`SigCgt`) or blocks it (`SigBlk`: it will read it, e.g. from a signalfd as berth-init
/// does, or set a handler before unblocking it).
fn takes(status: &str, signo: i32) -> Option<bool> {
    let mask = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
    };
    let any = mask("SigCgt:")? | mask("SigBlk:")?;
    Some((1..=64).contains(&signo) && any & (1u64 << (signo - 1)) != 0)
}

/// In a forked child: a mount namespace of its own (slave, so the host's later unmounts
/// still reach it) without the hybrid v2 hierarchy.
fn detach_unified_v2() -> std::io::Result<()> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let io = |e: nix::Error| std::io::Error::from_raw_os_error(e as i32);
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(io)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(io)?;
    umount2(HYBRID_UNIFIED, MntFlags::MNT_DETACH).map_err(io)
}

#[cfg(test)]
mod tests;
