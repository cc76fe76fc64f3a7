//! Shared harness of the supervisor's integration tests: berth-init as PID 1 of a new PID
//! namespace (`unshare --pid --fork --mount-proc`), its own temp dir, spec and socket;
//! killed with its whole namespace on drop.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-init");

pub fn assert_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test runs berth-init as PID 1 of a new PID namespace and needs root"
    );
}

pub struct Pid1 {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub unshare: Child,
    /// berth-init's pid as seen from the host.
    pub pid: i32,
    pub exit: Option<i32>,
}

impl Pid1 {
    /// Writes `spec` (with `@DIR@` replaced by the temp dir) and starts berth-init on it.
    pub fn start(spec: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with(spec, env, &[])
    }

    /// Like `start`, writing `files` (relative to the temp dir, `@DIR@` replaced) first;
    /// a file starting with `#!` is made executable.
    pub fn start_with(spec: &str, env: &[(&str, &str)], files: &[(&str, &str)]) -> Self {
        assert_root();
        let dir = tempfile::Builder::new()
            .prefix("berth-sup-")
            .tempdir()
            .unwrap();
        let d = dir.path().display().to_string();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text.replace("@DIR@", &d)).unwrap();
            if text.starts_with("#!") {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        let spec_path = dir.path().join("app.yaml");
        std::fs::write(&spec_path, spec.replace("@DIR@", &d)).unwrap();
        let socket = dir.path().join("init.sock");
        let log = std::fs::File::create(dir.path().join("init.log")).unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(BIN)
            .arg("--spec")
            .arg(&spec_path)
            .arg("--socket")
            .arg(&socket)
            .env_remove("BERTH_DEBUG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut unshare = cmd.spawn().unwrap();
        let upid = unshare.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        // 0 when berth-init already exited before it could be seen (then never signalled).
        let pid = loop {
            let children = std::fs::read_to_string(format!("/proc/{upid}/task/{upid}/children"))
                .unwrap_or_default();
            if let Some(p) = children.split_whitespace().next() {
                break p.parse().unwrap();
            }
            if unshare.try_wait().unwrap().is_some() {
                break 0;
            }
            assert!(
                Instant::now() < deadline,
                "berth-init did not start under unshare"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        Pid1 {
            dir,
            socket,
            unshare,
            pid,
            exit: None,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("init.log")).unwrap_or_default()
    }

    /// One request on the socket; the answer as JSON.
    pub fn request(&self, line: &str) -> serde_json::Value {
        let mut s = UnixStream::connect(&self.socket)
            .unwrap_or_else(|e| panic!("connect: {e}\nlog:\n{}", self.log()));
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(line.as_bytes()).unwrap();
        s.write_all(b"\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(
            out.ends_with('\n') && out.trim().lines().count() == 1,
            "one line: {out:?}"
        );
        serde_json::from_str(out.trim()).unwrap()
    }

    pub fn status(&self) -> serde_json::Value {
        self.request(r#"{"cmd":"status"}"#)
    }

    pub fn service(&self, name: &str) -> serde_json::Value {
        let st = self.status();
        st["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {st}"))
    }

    /// Waits until `cond(status)` holds (the socket may not exist yet at first).
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if self.socket.exists() {
                let st = self.status();
                if cond(&st) {
                    return st;
                }
                if Instant::now() > deadline {
                    panic!(
                        "timed out waiting for {what}; status {st}\nlog:\n{}",
                        self.log()
                    );
                }
            } else if Instant::now() > deadline {
                panic!(
                    "timed out waiting for the socket ({what})\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: i32) {
        // Never kill(0 or -1): those would reach this test's group or every process.
        if self.pid > 1 {
            // SAFETY: plain kill(2) on the pid we started.
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    /// Waits for berth-init to exit; returns its exit code (unshare passes it on).
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.unshare.try_wait().unwrap() {
                let code = st.code().unwrap_or(
                    128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0),
                );
                self.exit = Some(code);
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "berth-init did not exit in {timeout:?}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// CPU time (user+system) of berth-init so far, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }
}

impl Drop for Pid1 {
    fn drop(&mut self) {
        if self.exit.is_none() {
            // SIGKILL to PID 1 of the namespace kills every process in it.
            self.signal(libc::SIGKILL);
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
        }
    }
}

/// Lines of a file (empty if missing).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether a host pid exists (not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s[s.rfind(')').unwrap() + 2..].starts_with('Z'),
        Err(_) => false,
    }
}

/// The host pid of the process that is `ns_pid` inside `init`'s PID namespace.
pub fn host_pid(init: i32, ns_pid: i32) -> Option<i32> {
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).ok()?;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{p}/ns/pid"))
            .ok()
            .as_ref()
            != Some(&ns)
        {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        let nspid = status
            .lines()
            .find(|l| l.starts_with("NSpid:"))
            .unwrap_or("");
        if nspid.split_whitespace().last() == Some(&ns_pid.to_string()) {
            return Some(p);
        }
    }
    None
}

/// Waits until `cond()` or panics after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
