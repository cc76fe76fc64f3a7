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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

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
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const HYBRID_UNIFIED: &str = "/sys/fs/cgroup/unified";

/// `<runtime> state` output (the parts berth reads; runc and crun both use the OCI status
/// names `creating`, `created`, `running`, `stopped`, and crun adds fields berth ignores).
#[derive(Debug, Clone, Deserialize)]
pub struct ContainerState {
    pub status: String,
    #[serde(default)]
    pub pid: i64,
}

/// The runtimes berth knows the differences of; anything else is driven like runc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Runc,
    Crun,
    Other,
}

impl Kind {
    /// From the first line of `<runtime> --version` (`runc version 1.1.5`, `crun version
    /// 1.8.1`); `None` if it does not look like an OCI runtime's answer at all.
    pub fn from_version(output: &str) -> Option<Kind> {
        let first = output.lines().next()?.trim();
        let (name, rest) = first.split_once(' ')?;
        if !rest.trim_start().starts_with("version") {
            return None;
        }
        Some(match name {
            "runc" => Kind::Runc,
            "crun" => Kind::Crun,
            _ => Kind::Other,
        })
    }

    /// Whether a signal other than KILL reaches a created-but-not-started container's
    /// init (runc's Go init handles every signal; crun's waits as a bare PID 1; for an
    /// unknown runtime berth assumes the safe answer: wait until it runs).
    pub fn signals_created_init(self) -> bool {
        self == Kind::Runc
    }

    /// Whether the runtime refuses a hybrid host whose v2 hierarchy holds controllers.
    pub fn refuses_hybrid_with_v2_controllers(self) -> bool {
        self == Kind::Crun
    }
}

/// How the host's cgroups are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// cgroup2 at `/sys/fs/cgroup`.
    Unified,
    /// cgroup v1 hierarchies, plus cgroup2 at `/sys/fs/cgroup/unified` (with or without
    /// controllers on it).
    Hybrid { v2_controllers: bool },
    /// cgroup v1 only.
    Legacy,
}

impl CgroupMode {
    /// Reads the mounts under `/sys/fs/cgroup`.
    pub fn detect() -> CgroupMode {
        use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
        let is_v2 = |p: &str| statfs(p).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC);
        if is_v2(CGROUP_ROOT) {
            CgroupMode::Unified
        } else if is_v2(HYBRID_UNIFIED) {
            let ctrls = std::fs::read_to_string(format!("{HYBRID_UNIFIED}/cgroup.controllers"))
                .unwrap_or_default();
            CgroupMode::Hybrid {
                v2_controllers: !ctrls.trim().is_empty(),
            }
        } else {
            CgroupMode::Legacy
        }
    }
}

/// What berth knows about a runtime binary after probing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The binary, resolved through PATH when given as a bare name.
    pub path: PathBuf,
    pub kind: Kind,
    /// The first line of `--version`.
    pub version: String,
}

/// Resolves a runtime setting (a path, or a bare name looked up in PATH) to an
/// executable file.
pub fn resolve(binary: &Path) -> Result<PathBuf, RuncError> {
    use std::os::unix::fs::PermissionsExt;
    let candidates: Vec<PathBuf> = if binary.components().count() > 1 || binary.is_absolute() {
        vec![binary.to_path_buf()]
    } else {
        let path = std::env::var_os("PATH").unwrap_or_else(|| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
        });
        std::env::split_paths(&path)
            .map(|d| d.join(binary))
            .collect()
    };
    let mut not_executable = None;
    for c in candidates {
        match std::fs::metadata(&c) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(c),
            Ok(_) => not_executable = not_executable.or(Some(c)),
            Err(_) => {}
        }
    }
    Err(match not_executable {
        Some(runtime) => RuncError::NotExecutable { runtime },
        None => RuncError::NotFound {
            runtime: binary.to_path_buf(),
        },
    })
}

/// Resolves the binary and asks it `--version`; the answer is cached per setting for the
/// executor's life (a failure is not: a runtime installed later is found). Concurrent
/// callers wait for one probe instead of each running `--version`.
pub fn probe(binary: &Path) -> Result<Probe, RuncError> {
    probe_recorded(binary, None)
}

/// [`probe`], also keeping the answer on disk in `record_dir` for the next executors (one
/// executor runs one task, so the process cache alone would still ask `--version`, 3-6
/// ms, at every launch). A record counts only for the very file it was made from: same
/// resolved path, device, inode, size, modification and change times (replacing or
/// rewriting the binary changes its ctime, which nothing but the clock can set back);
/// anything else, or a record that does not read, means asking `--version` again.
pub fn probe_recorded(binary: &Path, record_dir: Option<&Path>) -> Result<Probe, RuncError> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Probe>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = match cache.lock() {
        Ok(c) => c,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(p) = cache.get(binary) {
        return Ok(p.clone());
    }
    let p = probe_via_record(resolve(binary)?, record_dir)?;
    cache.insert(binary.to_path_buf(), p.clone());
    Ok(p)
}

/// The probe of a resolved binary, from its record when that matches the file.
fn probe_via_record(path: PathBuf, record_dir: Option<&Path>) -> Result<Probe, RuncError> {
    let record = record_dir.and_then(|dir| {
        let id = FileId::of(&path)?;
        Some((dir.join(record_name(&path)), id))
    });
    let recorded = record
        .as_ref()
        .and_then(|(file, id)| ProbeRecord::load(file).filter(|r| r.path == path && r.id == *id));
    if let Some(r) = recorded {
        tracing::trace!(runtime = %path.display(), "runtime probe from its record");
        return Ok(Probe {
            path,
            kind: r.kind,
            version: r.version,
        });
    }
    let p = probe_uncached(path)?;
    if let Some((file, id)) = &record {
        ProbeRecord {
            path: p.path.clone(),
            id: *id,
            kind: p.kind,
            version: p.version.clone(),
        }
        .save(file);
    }
    Ok(p)
}

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
    }
}

/// A probe kept on disk (see [`probe_recorded`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeRecord {
    path: PathBuf,
    id: FileId,
    kind: Kind,
    version: String,
}

/// `runtime-<resolved path, / and other characters as ->.json`.
fn record_name(path: &Path) -> String {
    let flat: String = path
        .to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("runtime{flat}.json")
}

impl ProbeRecord {
    fn load(file: &Path) -> Option<ProbeRecord> {
        serde_json::from_slice(&std::fs::read(file).ok()?).ok()
    }

    /// Best effort, atomically (temporary file + rename): a missing record only costs the
    /// next executor a `--version`.
    fn save(&self, file: &Path) {
        let Ok(data) = serde_json::to_vec(self) else {
            return;
        };
        let mut tmp = file.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let saved = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, data))
            .and_then(|()| std::fs::rename(&tmp, file));
        if let Err(e) = saved {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(error = %e, file = %file.display(), "cannot keep the runtime probe");
        }
    }
}

fn probe_uncached(path: PathBuf) -> Result<Probe, RuncError> {
    let t0 = std::time::Instant::now();
    let out = Command::new(&path)
        .arg("--version")
        .env_remove(TOKEN_VAR)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| RuncError::Spawn {
            runtime: path.clone(),
            err,
        })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let kind = Kind::from_version(&text)
        .filter(|_| out.status.success())
        .ok_or_else(|| RuncError::NotARuntime {
            runtime: path.clone(),
            output: format!(
                "{} {}",
                text.lines().next().unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .trim()
            .to_string(),
        })?;
    tracing::trace!(
        runtime = %path.display(),
        ms = t0.elapsed().as_secs_f64() * 1e3,
        "runtime probed"
    );
    Ok(Probe {
        version: text.lines().next().unwrap_or_default().trim().to_string(),
        path,
        kind,
    })
}

/// Whether `run` must hide the hybrid v2 hierarchy from the runtime.
pub fn needs_v1_only_view(kind: Kind, mode: CgroupMode) -> bool {
    kind.refuses_hybrid_with_v2_controllers()
        && mode
            == CgroupMode::Hybrid {
                v2_controllers: true,
            }
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
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_kind_comes_from_the_version_line() {
        let runc = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n";
        let crun = "crun version 1.8.1\ncommit: f8a096be\nrundir: /run/crun\n";
        assert_eq!(Kind::from_version(runc), Some(Kind::Runc));
        assert_eq!(Kind::from_version(crun), Some(Kind::Crun));
        assert_eq!(
            Kind::from_version("youki version 0.3.0\n"),
            Some(Kind::Other)
        );
        assert_eq!(Kind::from_version("Usage: foo [options]\n"), None);
        assert_eq!(Kind::from_version(""), None);
    }

    #[test]
    fn only_crun_on_a_hybrid_host_with_v2_controllers_gets_the_v1_only_view() {
        let hybrid = CgroupMode::Hybrid {
            v2_controllers: true,
        };
        assert!(needs_v1_only_view(Kind::Crun, hybrid));
        assert!(!needs_v1_only_view(Kind::Runc, hybrid));
        assert!(!needs_v1_only_view(Kind::Other, hybrid));
        for mode in [
            CgroupMode::Unified,
            CgroupMode::Legacy,
            CgroupMode::Hybrid {
                v2_controllers: false,
            },
        ] {
            assert!(!needs_v1_only_view(Kind::Crun, mode), "{mode:?}");
        }
        assert!(Kind::Runc.signals_created_init());
        assert!(!Kind::Crun.signals_created_init() && !Kind::Other.signals_created_init());
    }

    #[test]
    fn a_missing_or_non_executable_runtime_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            probe(&missing),
            Err(RuncError::NotFound { runtime }) if runtime == missing
        ));
        assert!(matches!(
            resolve(Path::new("berth-no-such-runtime-anywhere")),
            Err(RuncError::NotFound { .. })
        ));
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = probe(&plain).unwrap_err();
        assert!(matches!(e, RuncError::NotExecutable { .. }), "{e}");
        assert!(e.to_string().contains("not an executable"), "{e}");
        assert!(matches!(
            probe(dir.path()),
            Err(RuncError::NotExecutable { .. })
        ));
    }

    #[test]
    fn a_program_that_is_no_runtime_is_refused_and_a_fake_runc_is_probed() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        // A test thread forking while another has a script open for writing makes exec
        // fail with ETXTBSY for a moment: retry that.
        let probe_retrying = |p: &Path| loop {
            match probe(p) {
                Err(RuncError::Spawn { err, .. }) if err.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                r => break r,
            }
        };
        let not = write("true-ish", "#!/bin/sh\necho hello\n");
        assert!(matches!(
            probe_retrying(&not),
            Err(RuncError::NotARuntime { .. })
        ));
        let fake = write("fake-crun", "#!/bin/sh\necho 'crun version 9.9'\n");
        let p = probe_retrying(&fake).unwrap();
        assert_eq!(
            (p.kind, p.version.as_str()),
            (Kind::Crun, "crun version 9.9")
        );
        assert_eq!(p.path, fake);
    }

    #[test]
    fn a_probe_record_serves_only_the_file_it_was_made_from() {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("records");
        let bin = dir.path().join("fake-runc");
        let file = records.join(record_name(&bin));
        assert!(record_name(&bin).starts_with("runtime-") && !record_name(&bin).contains('/'));
        // A new file each time, as an upgrade installs one (new inode and ctime).
        let install = |body: &str| {
            let tmp = dir.path().join("new");
            std::fs::write(&tmp, body).unwrap();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::rename(&tmp, &bin).unwrap();
        };
        // See `a_program_that_is_no_runtime_is_refused_and_a_fake_runc_is_probed`.
        let probe = || loop {
            match probe_via_record(bin.clone(), Some(&records)) {
                Err(RuncError::Spawn { err, .. }) if err.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                r => break r.unwrap(),
            }
        };
        install("#!/bin/sh\necho 'runc version 1.0'\n");
        let p = probe();
        assert_eq!(
            (p.kind, p.version.as_str()),
            (Kind::Runc, "runc version 1.0")
        );
        let mut rec = ProbeRecord::load(&file).expect("record written");
        assert_eq!((rec.path.as_path(), rec.kind), (bin.as_path(), Kind::Runc));
        assert_eq!(Some(rec.id), FileId::of(&bin));
        // While the file is the same, the record answers (no `--version`: a record
        // altered by hand shows it).
        rec.version = "from the record".into();
        rec.save(&file);
        assert_eq!(probe().version, "from the record");
        // The binary replaced: the record no longer matches and is made again.
        install("#!/bin/sh\necho 'crun version 2.0'\n");
        let p = probe();
        assert_eq!(
            (p.kind, p.version.as_str()),
            (Kind::Crun, "crun version 2.0")
        );
        assert_eq!(ProbeRecord::load(&file).unwrap().kind, Kind::Crun);
        // A record that does not read is ignored (and replaced).
        std::fs::write(&file, "{not json").unwrap();
        assert_eq!(probe().kind, Kind::Crun);
        assert!(ProbeRecord::load(&file).is_some());
        // A binary that is gone is not found, whatever its record says.
        std::fs::remove_file(&bin).unwrap();
        assert!(matches!(
            probe_recorded(&bin, Some(&records)),
            Err(RuncError::NotFound { .. })
        ));
    }

    #[test]
    fn signals_are_named_as_the_runtimes_take_them() {
        assert_eq!(signal_number("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(signal_number("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(signal_number("9").unwrap(), libc::SIGKILL);
        assert!(matches!(
            signal_number("NOPE"),
            Err(RuncError::BadSignal { .. })
        ));
        assert!(signal_number("0").is_err());
    }

    #[test]
    fn a_signal_reaches_an_init_that_catches_or_blocks_it() {
        // TERM (15) is bit 14: 0x4000; INT (2) is bit 1; HUP (1) bit 0; USR1 (10) bit 9.
        let status = "Name:\tberth-init\nSigBlk:\t0000000000000200\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000004002\n";
        assert_eq!(takes(status, libc::SIGTERM), Some(true));
        assert_eq!(takes(status, libc::SIGINT), Some(true));
        assert_eq!(takes(status, libc::SIGUSR1), Some(true));
        assert_eq!(takes(status, libc::SIGHUP), Some(false));
        assert_eq!(takes("Name:\tx\n", libc::SIGTERM), None);
    }

    #[test]
    fn unknown_containers_are_asked_of_the_state_root() {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime {
            binary: "/bin/false".into(),
            root: dir.path().to_path_buf(),
            kind: Kind::Crun,
            v1_only_view: false,
        };
        // `false` fails every verb: without state in the root the container is unknown.
        assert!(rt.state("c1").unwrap().is_none());
        assert!(rt.delete("c1").is_ok());
        // Nor does a runtime that does not run know it.
        let gone = Runtime {
            binary: dir.path().join("no-such-runtime"),
            ..rt.clone()
        };
        assert!(gone.state("c1").unwrap().is_none() && gone.delete("c1").is_ok());
        std::fs::create_dir(dir.path().join("c1")).unwrap();
        assert!(matches!(rt.state("c1"), Err(RuncError::Failed { .. })));
        assert!(rt.delete("c1").is_err());
        assert!(rt.kill("c1", "TERM").is_err());
    }
}
