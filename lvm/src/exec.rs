//! Running external tools (lvm, mkfs, mount, losetup) the careful way: a clean environment
//! with `LC_ALL=C`, no inherited descriptors, stdout and stderr read apart, and a deadline
//! after which the child's process group is killed (TopoLVM issue 1163: a hung `lvm` call
//! must not hang the agent).
//!
//! Commands are plain data ([`Cmd`]) built by pure functions, so unit tests check them
//! argument by argument; [`Runner`] executes them, and tests pass a recording fake.

use std::fmt;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A command line plus the extra environment it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Cmd {
    pub fn new(program: &str) -> Self {
        Cmd {
            program: program.to_string(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// What a finished command printed. `code` is `None` when a signal ended it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot start {cmd}")]
    Spawn {
        cmd: String,
        #[source]
        err: std::io::Error,
    },
    #[error("{cmd} did not finish within {after:?}; killed")]
    Timeout { cmd: String, after: Duration },
    #[error("{cmd} failed (exit {code:?}): {stderr}")]
    Failed {
        cmd: String,
        code: Option<i32>,
        stderr: String,
    },
    /// A system call made instead of a tool (named by the tool's command line) failed.
    #[error("{cmd} (as a system call) failed")]
    Syscall {
        cmd: String,
        #[source]
        err: std::io::Error,
    },
}

/// `mount -t <fstype> -o <options> <source> <target>` as data: [`Runner::mount`] runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountCall {
    pub fstype: String,
    pub source: PathBuf,
    pub target: PathBuf,
    /// mount(8)'s `-o` syntax: comma-separated words.
    pub options: String,
}

impl MountCall {
    /// The mount(8) command line of this call.
    pub fn cmd(&self) -> Cmd {
        Cmd::new("mount")
            .args(["-t", &self.fstype, "-o", &self.options])
            .arg(self.source.display().to_string())
            .arg(self.target.display().to_string())
    }

    /// Splits the options as mount(8) does before calling mount(2): the generic words
    /// become flags, mount(8)'s own words (`defaults`, `nofail`, `x-...`) are dropped, and
    /// the rest (filesystem options such as xfs's `nouuid`) go to the filesystem as data.
    pub fn flags_and_data(&self) -> (nix::mount::MsFlags, String) {
        use nix::mount::MsFlags as F;
        let mut flags = F::empty();
        let mut data: Vec<&str> = Vec::new();
        for o in self.options.split(',').filter(|o| !o.is_empty()) {
            let (set, clear) = match o {
                "ro" => (F::MS_RDONLY, F::empty()),
                "rw" => (F::empty(), F::MS_RDONLY),
                "nosuid" => (F::MS_NOSUID, F::empty()),
                "suid" => (F::empty(), F::MS_NOSUID),
                "nodev" => (F::MS_NODEV, F::empty()),
                "dev" => (F::empty(), F::MS_NODEV),
                "noexec" => (F::MS_NOEXEC, F::empty()),
                "exec" => (F::empty(), F::MS_NOEXEC),
                "sync" => (F::MS_SYNCHRONOUS, F::empty()),
                "async" => (F::empty(), F::MS_SYNCHRONOUS),
                "dirsync" => (F::MS_DIRSYNC, F::empty()),
                "noatime" => (F::MS_NOATIME, F::empty()),
                "atime" => (F::empty(), F::MS_NOATIME),
                "nodiratime" => (F::MS_NODIRATIME, F::empty()),
                "diratime" => (F::empty(), F::MS_NODIRATIME),
                "relatime" => (F::MS_RELATIME, F::empty()),
                "norelatime" => (F::empty(), F::MS_RELATIME),
                "strictatime" => (F::MS_STRICTATIME, F::empty()),
                "lazytime" => (F::MS_LAZYTIME, F::empty()),
                "silent" => (F::MS_SILENT, F::empty()),
                "defaults" | "auto" | "noauto" | "nofail" | "_netdev" | "user" | "nouser"
                | "users" | "owner" | "group" => (F::empty(), F::empty()),
                o if o.starts_with("x-") => (F::empty(), F::empty()),
                o => {
                    data.push(o);
                    (F::empty(), F::empty())
                }
            };
            flags = (flags - clear) | set;
        }
        (flags, data.join(","))
    }
}

/// Runs commands. The real one is [`SystemRunner`]; tests use fakes.
pub trait Runner: Send + Sync {
    /// Runs to completion; a non-zero exit is returned as `Ok` with its code (callers decide
    /// which codes mean what), only a failure to start or the deadline are errors.
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError>;

    /// Mounts a filesystem. This runs mount(8); [`SystemRunner`] calls mount(2) itself (the
    /// process and libmount's parsing are most of a mount's time: 0.3-0.7 s vs 0.02 s under
    /// the VM tier's emulation, where a snapshot root is otherwise ready in about 1 s).
    fn mount(&self, m: &MountCall) -> Result<(), ExecError> {
        self.check(&m.cmd()).map(drop)
    }

    /// The status of device-mapper device `name` as `dmsetup status --noflush` prints it.
    /// This runs dmsetup; [`SystemRunner`] asks the kernel itself ([`crate::dm::status`]).
    fn dm_status(&self, name: &str) -> Result<String, ExecError> {
        let out = self.check(&Cmd::new("dmsetup").args(["status", "--noflush", name]))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs and turns a non-zero exit into [`ExecError::Failed`].
    fn check(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        let out = self.run(cmd)?;
        if out.success() {
            Ok(out)
        } else {
            Err(ExecError::Failed {
                cmd: cmd.to_string(),
                code: out.code,
                stderr: out.stderr_text(),
            })
        }
    }
}

/// Runs commands for real with a deadline.
#[derive(Debug, Clone)]
pub struct SystemRunner {
    pub timeout: Duration,
}

impl Default for SystemRunner {
    fn default() -> Self {
        SystemRunner {
            timeout: Duration::from_secs(120),
        }
    }
}

impl Runner for SystemRunner {
    fn mount(&self, m: &MountCall) -> Result<(), ExecError> {
        let (flags, data) = m.flags_and_data();
        let shown = m.cmd().to_string();
        tracing::debug!(cmd = %shown, "mount(2)");
        nix::mount::mount(
            Some(m.source.as_path()),
            m.target.as_path(),
            Some(m.fstype.as_str()),
            flags,
            (!data.is_empty()).then_some(data.as_str()),
        )
        .map_err(|e| ExecError::Syscall {
            cmd: shown,
            err: e.into(),
        })
    }

    fn dm_status(&self, name: &str) -> Result<String, ExecError> {
        crate::dm::status(name).map_err(|err| ExecError::Syscall {
            cmd: format!("dmsetup status --noflush {name}"),
            err,
        })
    }

    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        let shown = cmd.to_string();
        tracing::debug!(cmd = %shown, "exec");
        let mut c = Command::new(&cmd.program);
        c.args(&cmd.args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LC_ALL", "C")
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: the closure runs between fork and exec and only makes raw syscalls
        // (close_range, fcntl), which are async-signal-safe; it touches no locks or memory
        // of the parent.
        unsafe {
            c.pre_exec(|| {
                mark_inherited_fds_cloexec();
                Ok(())
            });
        }
        let mut child = c.spawn().map_err(|err| ExecError::Spawn {
            cmd: shown.clone(),
            err,
        })?;
        let mut out_pipe = child.stdout.take();
        let mut err_pipe = child.stderr.take();
        let out_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(p) = out_pipe.as_mut() {
                let _ = p.read_to_end(&mut v);
            }
            v
        });
        let err_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(p) = err_pipe.as_mut() {
                let _ = p.read_to_end(&mut v);
            }
            v
        });
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if start.elapsed() >= self.timeout => {
                    let pgid = nix::unistd::Pid::from_raw(-(child.id() as i32));
                    let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGKILL);
                    let _ = child.wait();
                    return Err(ExecError::Timeout {
                        cmd: shown,
                        after: self.timeout,
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(err) => return Err(ExecError::Spawn { cmd: shown, err }),
            }
        };
        let stdout = out_t.join().unwrap_or_default();
        let stderr = err_t.join().unwrap_or_default();
        let code = status.code();
        if let Some(sig) = status.signal() {
            tracing::debug!(cmd = %shown, sig, "killed by signal");
        }
        Ok(Output {
            code,
            stdout,
            stderr,
        })
    }
}

/// Sets close-on-exec on every descriptor above stderr, so the tool inherits none of ours
/// (and `lvm` prints no "File descriptor leaked" warnings). Std's own exec-error pipe is
/// already close-on-exec, so marking rather than closing keeps it working.
fn mark_inherited_fds_cloexec() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags of this (child) process.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r != 0 {
        for fd in 3..1024 {
            // SAFETY: fcntl on a possibly-closed fd just fails with EBADF.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_streams_apart_and_reports_codes() {
        let r = SystemRunner::default();
        let out = r
            .run(&Cmd::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]))
            .unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.code, Some(3));
        let e = r
            .check(&Cmd::new("sh").args(["-c", "echo bad >&2; exit 5"]))
            .unwrap_err();
        assert!(
            e.to_string().contains("exit Some(5)") && e.to_string().contains("bad"),
            "{e}"
        );
    }

    #[test]
    fn environment_is_clean_and_c_locale() {
        std::env::set_var("BERTH_SECRET_TEST", "x");
        let out = SystemRunner::default()
            .check(&Cmd::new("env").env("A", "1"))
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("LC_ALL=C") && text.contains("A=1"), "{text}");
        assert!(!text.contains("BERTH_SECRET_TEST"), "{text}");
    }

    #[test]
    fn no_descriptor_is_inherited() {
        // A descriptor without CLOEXEC in this process, as a careless parent would leave us.
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        // SAFETY: clears FD_CLOEXEC on a descriptor we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        let out = SystemRunner::default()
            .check(&Cmd::new("ls").arg("/proc/self/fd"))
            .unwrap();
        let fds: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect();
        // 0,1,2 and the fd ls opened to read the directory.
        assert!(
            !fds.contains(&fd.to_string()) || fd == 3,
            "inherited fds: {fds:?} (leak {fd})"
        );
        assert!(fds.len() <= 4, "inherited fds: {fds:?}");
    }

    #[test]
    fn deadline_kills_the_child() {
        let r = SystemRunner {
            timeout: Duration::from_millis(200),
        };
        let t = Instant::now();
        let e = r
            .run(&Cmd::new("sh").args(["-c", "sleep 30 & sleep 30"]))
            .unwrap_err();
        assert!(matches!(e, ExecError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn mount_options_split_into_flags_and_data() {
        use nix::mount::MsFlags as F;
        let m = |o: &str| MountCall {
            fstype: "xfs".into(),
            source: "/dev/a".into(),
            target: "/m n".into(),
            options: o.into(),
        };
        assert_eq!(
            m("rw,nosuid,nodev,nouuid").flags_and_data(),
            (F::MS_NOSUID | F::MS_NODEV, "nouuid".to_string())
        );
        assert_eq!(
            m("ro,defaults,x-berth,noatime,errors=remount-ro,discard").flags_and_data(),
            (
                F::MS_RDONLY | F::MS_NOATIME,
                "errors=remount-ro,discard".to_string()
            )
        );
        // Later words win, as with mount(8).
        assert_eq!(m("ro,rw").flags_and_data(), (F::empty(), String::new()));
        assert_eq!(
            m("rw,noatime").cmd().args,
            vec!["-t", "xfs", "-o", "rw,noatime", "/dev/a", "/m n"]
        );
    }

    #[test]
    fn display_is_the_command_line() {
        let c = Cmd::new("lvm").args(["lvs", "vg/lv"]);
        assert_eq!(c.to_string(), "lvm lvs vg/lv");
    }
}
