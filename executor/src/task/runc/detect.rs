//! Which runtime a binary is and how the host's cgroups are mounted: probed once per binary
//! (and recorded on disk for later executors).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde::Deserialize;

use super::error::{RuncError, CGROUP_ROOT, HYBRID_UNIFIED, TOKEN_VAR};

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
pub(super) fn probe_via_record(
    path: PathBuf,
    record_dir: Option<&Path>,
) -> Result<Probe, RuncError> {
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
pub(super) struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileId {
    pub(super) fn of(path: &Path) -> Option<FileId> {
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
pub(super) struct ProbeRecord {
    pub(super) path: PathBuf,
    pub(super) id: FileId,
    pub(super) kind: Kind,
    pub(super) version: String,
}

/// `runtime-<resolved path, / and other characters as ->.json`.
pub(super) fn record_name(path: &Path) -> String {
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
    pub(super) fn load(file: &Path) -> Option<ProbeRecord> {
        serde_json::from_slice(&std::fs::read(file).ok()?).ok()
    }

    /// Best effort, atomically (temporary file + rename): a missing record only costs the
    /// next executor a `--version`.
    pub(super) fn save(&self, file: &Path) {
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
