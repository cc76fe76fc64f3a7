//! COMMAND health checks, run inside the container:
//! `runc exec --pid-file F --process P <id>` of `/.berth/init -s -g -- /bin/sh -c <command>`.
//!
//! The process file P is the container's own process (env, cwd, user, rlimits; from the
//! bundle's `config.json`, which the executor wrote) with the services' capabilities: a
//! check never gets what berth-init keeps for itself (NET_ADMIN, NET_RAW for DHCP). The
//! container's seccomp profile applies to it as to every process of the container.
//!
//! Killing the `runc exec` client does not kill what it started in the container: the
//! exec'd process is not its child in any way a signal follows. So a check that times
//! out (or is abandoned: its future dropped) is killed from the host, with its whole
//! tree:
//! - runc makes the exec'd process (berth-init's tini mode) a session leader, and its
//!   host pid is in the pid file;
//! - berth-init `-s` is a subreaper, so whatever the check orphans stays beneath it, and
//!   `-g` runs the shell in its own process group;
//! - the kill takes every descendant of that init, every process of their process
//!   groups and every process of init's session (SIGKILL, a few passes, so a fork that
//!   races one pass is caught by the next), then init itself; `runc exec` then returns.
//!
//! A check that ends by itself in time is left alone (nothing to kill: its shell is
//! gone, and init exits with it).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::task::bundle::check_process;
use crate::task::runc::{Runtime, TOKEN_VAR};

/// Where the executor bind-mounts berth-init in every container.
pub const INIT_IN_CONTAINER: &str = "/.berth/init";

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Runs one COMMAND check; `Ok` = exit status 0 within `timeout`.
pub async fn run(
    rt: &Runtime,
    container: &str,
    bundle: &Path,
    cmd: &str,
    timeout: Duration,
) -> Result<(), String> {
    let pid_file = std::env::temp_dir().join(format!(
        "berth-check-{}-{}-{}.pid",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        container
    ));
    let process_file = pid_file.with_extension("json");
    write_process(bundle, cmd, &process_file)?;
    let _process_file = RemoveOnDrop(process_file.clone());
    let mut guard = TreeGuard {
        pid_file: pid_file.clone(),
        armed: true,
    };
    let mut c = tokio::process::Command::new(&rt.binary);
    c.env_remove(TOKEN_VAR)
        .arg("--root")
        .arg(&rt.root)
        .arg("exec")
        .arg("--pid-file")
        .arg(&pid_file)
        .arg("--process")
        .arg(&process_file)
        .arg(container)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = match c.spawn() {
        Ok(child) => child,
        Err(e) => {
            guard.disarm();
            return Err(format!("cannot run {}: {e}", rt.binary.display()));
        }
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => {
            guard.disarm();
            let st = status.map_err(|e| e.to_string())?;
            if st.success() {
                Ok(())
            } else {
                Err(format!("exit status {}", st.code().unwrap_or(-1)))
            }
        }
        Err(_) => {
            let pid_file = guard.take();
            let left = tokio::task::spawn_blocking(move || kill_check(&pid_file))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            let _ = child.kill().await;
            match left {
                Ok(()) => Err(format!("timed out after {timeout:?}")),
                Err(e) => Err(format!(
                    "timed out after {timeout:?}; killing the check failed: {e}"
                )),
            }
        }
    }
}

/// Removes a file when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes the check's process file: the container's process (its bundle's `config.json`)
/// running the check with the services' capabilities.
fn write_process(bundle: &Path, cmd: &str, out: &Path) -> Result<(), String> {
    let config_path = bundle.join("config.json");
    let config: serde_json::Value = std::fs::read(&config_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("cannot read {}: {e}", config_path.display()))?;
    let process = check_process(
        &config["process"],
        &[INIT_IN_CONTAINER, "-s", "-g", "--", "/bin/sh", "-c", cmd],
    );
    // 0600: it holds the task's environment.
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out)
        .and_then(|mut f| f.write_all(process.to_string().as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))
}

/// Kills the check's tree when dropped armed (an abandoned check).
struct TreeGuard {
    pid_file: PathBuf,
    armed: bool,
}

impl TreeGuard {
    fn disarm(&mut self) {
        self.armed = false;
        let _ = std::fs::remove_file(&self.pid_file);
    }

    /// Hands the kill over to the caller.
    fn take(&mut self) -> PathBuf {
        self.armed = false;
        self.pid_file.clone()
    }
}

impl Drop for TreeGuard {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = kill_check(&self.pid_file) {
                tracing::warn!(error = %e, "cannot kill an abandoned health check");
            }
        }
    }
}

/// Reads the exec'd init's pid (runc writes it once the process runs), kills its tree
/// and removes the pid file.
fn kill_check(pid_file: &Path) -> Result<(), String> {
    let mut leader = None;
    for _ in 0..20 {
        if let Some(p) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|p| *p > 1)
        {
            leader = Some(p);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(pid_file);
    let Some(leader) = leader else {
        // runc never started the process: killing the client is all there is to do.
        return Ok(());
    };
    kill_tree(Path::new("/proc"), leader, &mut |pid| {
        // SAFETY: kill(2) with a pid read from /proc just now; at worst it is gone.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    Ok(())
}

/// `pid -> (ppid, pgrp, session)` of every process under `proc_root`.
fn processes(proc_root: &Path) -> HashMap<i32, (i32, i32, i32)> {
    let mut all = HashMap::new();
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return all;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp session ...": comm may hold spaces and parens.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<i32> = rest
            .split_whitespace()
            .skip(1)
            .take(3)
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [ppid, pgrp, sid] = f[..] {
            all.insert(pid, (ppid, pgrp, sid));
        }
    }
    all
}

/// The check's processes other than `leader`: its descendants, their process groups'
/// members and the members of its session.
pub fn victims(proc_root: &Path, leader: i32) -> BTreeSet<i32> {
    let all = processes(proc_root);
    let mut tree = BTreeSet::from([leader]);
    loop {
        let more: Vec<i32> = all
            .iter()
            .filter(|(pid, (ppid, _, _))| tree.contains(ppid) && !tree.contains(*pid))
            .map(|(pid, _)| *pid)
            .collect();
        if more.is_empty() {
            break;
        }
        tree.extend(more);
    }
    let groups: BTreeSet<i32> = tree
        .iter()
        .filter(|p| **p != leader)
        .filter_map(|p| all.get(p).map(|(_, g, _)| *g))
        .collect();
    let mut out: BTreeSet<i32> = all
        .iter()
        .filter(|(_, (_, g, s))| *s == leader || groups.contains(g))
        .map(|(pid, _)| *pid)
        .collect();
    out.extend(tree);
    out.remove(&leader);
    out
}

/// Kills the victims (several passes, until none is left), then the leader.
fn kill_tree(proc_root: &Path, leader: i32, kill: &mut dyn FnMut(i32)) {
    for _ in 0..10 {
        let v = victims(proc_root, leader);
        if v.is_empty() {
            break;
        }
        for pid in v {
            kill(pid);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    kill(leader);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc_entry(root: &Path, pid: i32, comm: &str, ppid: i32, pgrp: i32, sid: i32) {
        let d = root.join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("stat"),
            format!("{pid} ({comm}) S {ppid} {pgrp} {sid} 0 -1 4194560 0 0"),
        )
        .unwrap();
    }

    #[test]
    fn victims_are_the_tree_its_groups_and_its_session() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        proc_entry(r, 1, "systemd", 0, 1, 1);
        proc_entry(r, 90, "runc", 1, 90, 90);
        proc_entry(r, 100, "init", 90, 100, 100); // the exec'd berth-init, a session leader
        proc_entry(r, 101, "sh", 100, 101, 100); // its child, own group (-g)
        proc_entry(r, 102, "sleep 1000", 101, 101, 100);
        // Orphaned into the container's init (not under 100) but still in group 101.
        proc_entry(r, 103, "bg) (x", 7, 101, 100);
        // Orphaned, own group, same session.
        proc_entry(r, 104, "daemon", 7, 104, 100);
        // setsid'd below the tree: caught as a descendant.
        proc_entry(r, 105, "escaped", 102, 105, 105);
        proc_entry(r, 7, "container-init", 1, 7, 7);
        proc_entry(r, 200, "unrelated", 1, 200, 200);
        std::fs::create_dir_all(r.join("self")).unwrap();
        let v = victims(r, 100);
        assert_eq!(v, BTreeSet::from([101, 102, 103, 104, 105]));
        let mut killed = Vec::new();
        // A fake kill that removes the process: passes end when nothing is left.
        kill_tree(r, 100, &mut |pid| {
            killed.push(pid);
            let _ = std::fs::remove_dir_all(r.join(pid.to_string()));
        });
        assert_eq!(killed, [101, 102, 103, 104, 105, 100], "the leader last");
        assert!(r.join("200").exists() && r.join("7").exists());
    }

    /// Alive and not a zombie.
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_string()))
            .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
    }

    #[test]
    fn an_abandoned_check_is_killed_with_its_tree() {
        use std::os::unix::process::CommandExt;
        // A real tree on the host: a shell (own process group, blocked on its stdin so
        // it outlives its children) with two children.
        let mut leader = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 1000 & sleep 1000 & read x"])
            .stdin(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        // Whatever happens, the test's group dies with it.
        struct Group(i32);
        impl Drop for Group {
            fn drop(&mut self) {
                // SAFETY: kill(2) on the process group this test made.
                unsafe { libc::kill(-self.0, libc::SIGKILL) };
            }
        }
        let _group = Group(leader.id() as i32);
        let t = tempfile::tempdir().unwrap();
        let pid_file = t.path().join("check.pid");
        std::fs::write(&pid_file, leader.id().to_string()).unwrap();
        let mut kids = Vec::new();
        for _ in 0..100 {
            kids = victims(Path::new("/proc"), leader.id() as i32)
                .into_iter()
                .collect();
            if kids.len() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(kids.len(), 2, "{kids:?}");
        // Dropped while armed, as when the check's future is dropped.
        drop(TreeGuard {
            pid_file: pid_file.clone(),
            armed: true,
        });
        let status = leader.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        for _ in 0..100 {
            if kids.iter().all(|k| !alive(*k as u32)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(kids.iter().all(|k| !alive(*k as u32)), "left: {kids:?}");
        assert!(!pid_file.exists(), "the pid file is removed");
    }

    #[test]
    fn a_missing_pid_file_kills_nothing() {
        let t = tempfile::tempdir().unwrap();
        assert!(kill_check(&t.path().join("none.pid")).is_ok());
    }
}
