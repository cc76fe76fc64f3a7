//! Helpers for berth-init's integration tests: they run the real binary as root, as PID 1
//! of a new PID namespace (`unshare --pid --fork --mount-proc`) or as a subreaper, and
//! kill every process they started when dropped, even on a failed assertion.
#![allow(dead_code)] // each test file uses a different subset

use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The berth-init binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_berth-init");

/// Privileged tests run as root, never silently skipped.
pub fn assert_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "berth-init's integration tests need root (PID namespaces, subreapers)"
    );
}

/// A fresh temporary directory (removed on drop).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-init-test-")
        .tempdir()
        .expect("tempdir")
}

/// Writes an executable shell script and returns its path.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    let mut perms = fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    fs::set_permissions(&path, perms).unwrap();
    path
}

/// The direct children of `pid` (from /proc/PID/task/PID/children).
pub fn children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Every descendant of `pid`, depth first.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for c in children(pid) {
        out.push(c);
        out.extend(descendants(c));
    }
    out
}

/// Sends `sig` to `pid`; panics on failure other than "no such process".
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        assert_eq!(
            err.raw_os_error(),
            Some(libc::ESRCH),
            "kill({pid}, {sig}): {err}"
        );
    }
}

/// How the process under test is started.
pub enum Mode {
    /// PID 1 of a new PID namespace, through `unshare --pid --fork --mount-proc`.
    Pid1,
    /// A direct child of the test (add `-s` yourself for a subreaper).
    Direct,
}

/// A started berth-init (or tini) that is killed with all its descendants on drop.
pub struct Running {
    child: Option<Child>,
    mode_pid1: bool,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

/// What a finished run produced.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code (panics if killed by a signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {self:?}"))
    }
}

/// Builds the command for `mode` running `program args...`.
pub fn command(mode: Mode, program: &str, args: &[&str]) -> (Command, bool) {
    match mode {
        Mode::Pid1 => {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc", "--kill-child", "--"])
                .arg(program)
                .args(args);
            (c, true)
        }
        Mode::Direct => {
            let mut c = Command::new(program);
            c.args(args);
            (c, false)
        }
    }
}

/// Starts berth-init in `mode` with `args`; stdin is /dev/null, stdout/stderr captured.
pub fn start(mode: Mode, args: &[&str]) -> Running {
    let (cmd, pid1) = command(mode, BIN, args);
    start_command(cmd, pid1)
}

/// Starts a prepared command (stdout/stderr captured, stdin /dev/null unless set).
pub fn start_command(mut cmd: Command, pid1: bool) -> Running {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if pid1 {
        // If the test process dies, take the namespace with it.
        // SAFETY: prctl is async-signal-safe and only changes the child's attributes.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().expect("spawn");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let stderr = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    Running {
        child: Some(child),
        mode_pid1: pid1,
        stdout: Some(stdout),
        stderr: Some(stderr),
    }
}

impl Running {
    /// The child's stdin, if the command was given `Stdio::piped()` for it.
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.as_mut().unwrap().stdin.take()
    }

    /// Pid of the started process (for Pid1: the `unshare` process).
    pub fn outer_pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Pid of the init itself, as the test sees it (for Pid1: unshare's child, waiting
    /// until it exists).
    pub fn init_pid(&self) -> i32 {
        if !self.mode_pid1 {
            return self.outer_pid();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(&pid) = children(self.outer_pid()).first() {
                return pid;
            }
            assert!(Instant::now() < deadline, "unshare never started its child");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits up to `timeout` for the process to end and returns its output; panics (and
    /// kills everything) on timeout.
    pub fn wait(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        self.child = None;
        let stdout = self.stdout.take().unwrap().join().unwrap();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        Finished {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Kill the whole tree: descendants first (they would be reparented otherwise).
        for _ in 0..3 {
            let tree = descendants(child.id() as i32);
            if tree.is_empty() {
                break;
            }
            for pid in tree {
                kill(pid, libc::SIGKILL);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Polls until `path` exists and `pred` holds for its content; panics after `timeout`.
pub fn wait_for_file(path: &Path, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = fs::read_to_string(path) {
            if pred(&text) {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never satisfied the condition; content: {:?}",
            path.display(),
            fs::read_to_string(path).ok()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The seconds most tests give a run before declaring it hung.
pub const TIMEOUT: Duration = Duration::from_secs(30);
