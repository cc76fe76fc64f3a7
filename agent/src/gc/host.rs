//! The host operations GC needs, each idempotent (absent is success): the OCI runtime's
//! `delete --force`, the container's exit-status wrapper (found by the exit file on its
//! command line, as the executor finds it), mounts under a directory, cgroup dirs, and
//! removing directories that hold no mount.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The runtime binary and its state root.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
}

impl Runtime {
    /// Whether the runtime keeps state for `id` (runc and crun: `<root>/<id>/`).
    pub fn known(&self, id: &str) -> bool {
        self.root.join(id).exists()
    }

    /// `<runtime> --root R delete --force ID`: kills the container's processes and removes
    /// its state. A container already gone is fine.
    pub fn delete(&self, id: &str) -> Result<(), String> {
        let out = Command::new(&self.binary)
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        if out.status.success() || !self.known(id) {
            Ok(())
        } else {
            Err(format!(
                "{} delete --force {id}: {}",
                self.binary.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// Whether `pid` is a live (not zombie) process with `arg` on its command line.
pub fn has_arg(pid: u32, arg: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let target = arg.as_os_str().as_encoded_bytes();
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(')')?.1.trim_start().starts_with('Z')))
        .unwrap_or(true);
    cmdline.split(|b| *b == 0).any(|a| a == target) && !zombie
}

/// The live process writing the exit file `exit` (the container's wrapper), if any.
pub fn wrapper(recorded: Option<u32>, exit: &Path) -> Option<u32> {
    if let Some(p) = recorded.filter(|p| has_arg(*p, exit)) {
        return Some(p);
    }
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| has_arg(*p, exit))
}

/// Kills the container (if the runtime knows it) until its wrapper is gone, at most
/// `within`; the wrapper itself is SIGKILLed if it outlives that.
pub fn stop_container(
    rt: &Runtime,
    id: &str,
    pid: Option<u32>,
    exit: &Path,
    within: Duration,
) -> Result<(), String> {
    let end = Instant::now() + within;
    let mut last_err = None;
    loop {
        if rt.known(id) {
            last_err = rt.delete(id).err();
        }
        let w = wrapper(pid, exit);
        if w.is_none() && !rt.known(id) {
            return Ok(());
        }
        if Instant::now() >= end {
            if let Some(w) = w {
                // SAFETY: kill(2) of a pid just seen running the wrapper command line; no
                // memory is passed.
                unsafe { libc::kill(w as libc::pid_t, libc::SIGKILL) };
                std::thread::sleep(Duration::from_millis(100));
            }
            if rt.known(id) {
                return Err(last_err
                    .unwrap_or_else(|| format!("container {id} is still known to the runtime")));
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Mount points at or under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut m: Vec<PathBuf> = berth_lvm::fs::parse_mountinfo(&text)
        .into_iter()
        .map(|e| e.target)
        .filter(|t| t.starts_with(dir))
        .collect();
    m.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    m.dedup();
    m
}

/// Lazily unmounts `path` (absent or not a mount point: fine).
pub fn unmount(path: &Path) -> Result<(), String> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(e) => Err(format!("umount {}: {e}", path.display())),
    }
}

/// The cgroup dirs of `cgroups_path` under `root`: v2 (or the root itself) and each v1
/// controller.
pub fn cgroup_dirs(root: &Path, cgroups_path: &str) -> Vec<PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == "..") {
        return Vec::new();
    }
    let mut dirs = vec![root.join(rel)];
    if let Ok(ctrls) = std::fs::read_dir(root) {
        dirs.extend(ctrls.flatten().map(|c| c.path().join(rel)));
    }
    dirs.retain(|d| d.is_dir());
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Removes a dead container's cgroup dir (absent: fine). A process still in it (one the
/// runtime's kill has not reaped yet, or a `runc init` of a container never started) makes
/// rmdir fail with EBUSY: those are SIGKILLed and the rmdir tried again, for at most
/// `within`.
pub fn remove_cgroup(dir: &Path, within: Duration) -> Result<(), String> {
    let end = Instant::now() + within;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < end => {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    // SAFETY: kill(2) of a process in the dead container's own cgroup; no
                    // memory is passed.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("rmdir {}: {e}", dir.display())),
        }
    }
}

/// Removes a directory tree that holds no mount (a mount under it is an error: its files
/// are another filesystem's, never deleted through it). Absent is fine.
pub fn remove_tree(dir: &Path) -> Result<(), String> {
    if let Some(m) = mounts_under(dir).first() {
        return Err(format!("{} is still mounted", m.display()));
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_without_mounts_goes_and_absent_is_fine() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("a/b");
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(t.join("f"), "x").unwrap();
        remove_tree(&d.path().join("a")).unwrap();
        assert!(!d.path().join("a").exists());
        remove_tree(&d.path().join("a")).unwrap();
    }

    #[test]
    fn cgroup_paths_stay_under_the_root() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("memory/p/c")).unwrap();
        std::fs::create_dir_all(d.path().join("p/c")).unwrap();
        assert_eq!(cgroup_dirs(d.path(), "/p/c").len(), 2);
        assert!(cgroup_dirs(d.path(), "/../etc").is_empty());
        assert!(cgroup_dirs(d.path(), "/").is_empty());
    }

    #[test]
    fn the_wrapper_is_found_by_its_exit_file() {
        let d = tempfile::tempdir().unwrap();
        let exit = d.path().join("exit");
        let mut c = Command::new("/bin/sh")
            .args(["-c", "read x; true", "berth-runtime"])
            .arg(&exit)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while wrapper(None, &exit).is_none() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(wrapper(None, &exit), Some(c.id()));
        assert_eq!(wrapper(Some(c.id()), &d.path().join("other")), None);
        c.kill().unwrap();
        c.wait().unwrap();
        assert_eq!(wrapper(Some(c.id()), &exit), None);
    }
}
