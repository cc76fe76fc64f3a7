//! A named network namespace (`ip netns add`), deleted on drop with the processes in it.

use std::process::{Command, Output, Stdio};

use super::proc::{run, ChildGuard};

/// Moves the calling thread into the netns pinned at `path` (a `/run/netns/<name>` file or
/// `/proc/<pid>/ns/net`); other threads keep theirs. Sockets made afterwards stay there.
pub fn enter_netns(path: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("lab: open the netns {}: {e}", path.display()));
    // SAFETY: setns(2) on a valid netns fd; it only changes the calling thread's netns.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// Runs `f` on a new thread that has joined the netns at `path`.
pub fn in_netns<R: Send>(path: &std::path::Path, f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        s.spawn(move || {
            enter_netns(path);
            f()
        })
        .join()
        .expect("netns thread")
    })
}

/// The pin of the netns `name` (`/run/netns/<name>`, where `ip netns` keeps them).
pub fn netns_pin(name: &str) -> std::path::PathBuf {
    std::path::Path::new("/run/netns").join(name)
}

/// A named netns under /run/netns, deleted on drop.
pub struct Ns {
    name: String,
}

impl Ns {
    /// `ip netns add <name>` (panics if it fails).
    pub fn new(name: &str) -> Self {
        run(&["ip", "netns", "add", name]);
        Self {
            name: name.to_string(),
        }
    }

    /// The netns name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pin path (`/run/netns/<name>`).
    pub fn path(&self) -> std::path::PathBuf {
        netns_pin(&self.name)
    }

    /// Runs `f` on a new thread inside this netns.
    pub fn run_in<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        in_netns(&self.path(), f)
    }

    /// `ip -n <ns> <args>`, panicking on failure.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut argv = vec!["ip", "-n", &self.name];
        argv.extend_from_slice(args);
        run(&argv)
    }

    /// A command that runs `argv` inside the netns.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Run `argv` inside the netns to completion (not checked).
    pub fn exec(&self, argv: &[&str]) -> Output {
        self.command(argv)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("lab: cannot run {argv:?} in {}: {e}", self.name))
    }

    /// Run `argv` inside the netns; panic with stderr unless it succeeds.
    pub fn exec_ok(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        assert!(
            out.status.success(),
            "lab: {argv:?} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Start `argv` inside the netns in the background, output discarded (a server that
    /// prints a lot can never block on a full pipe); killed when the guard drops.
    pub fn spawn(&self, argv: &[&str]) -> ChildGuard {
        let mut c = self.command(argv);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        ChildGuard::spawn(c, &format!("{argv:?} in {}", self.name))
    }

    /// Like [`Ns::spawn`] with stdout and stderr piped, for [`ChildGuard::wait_output`].
    pub fn spawn_piped(&self, argv: &[&str]) -> ChildGuard {
        let mut c = self.command(argv);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        ChildGuard::spawn(c, &format!("{argv:?} in {}", self.name))
    }

    /// The IPv4 addresses (with prefix) on `dev`, e.g. `["10.77.0.123/24"]`.
    pub fn addrs(&self, dev: &str) -> Vec<String> {
        let out = self.exec(&["ip", "-4", "-o", "addr", "show", "dev", dev]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                it.position(|w| w == "inet")?;
                it.next().map(str::to_string)
            })
            .collect()
    }

    /// `ip -4 route show` output.
    pub fn routes(&self) -> String {
        String::from_utf8_lossy(&self.exec(&["ip", "-4", "route", "show"]).stdout).into_owned()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        // Kill what still runs in it, then delete it.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(p) = pid.parse::<i32>() {
                    // SAFETY: kill(2) has no memory-safety preconditions; the pid is one
                    // the kernel just reported as living in our test netns.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A task's netns (named by the executor, `berth_netcfg::names::NetnsName::for_task`),
/// deleted on drop if it still exists: what a killed or failed executor left behind.
pub struct TaskNetns(String);

impl TaskNetns {
    pub fn new(task_id: &str) -> Self {
        let name = berth_netcfg::names::NetnsName::for_task(task_id).expect("netns name");
        Self(name.as_str().to_string())
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// Its pin, `/run/netns/<name>`.
    pub fn path(&self) -> std::path::PathBuf {
        netns_pin(&self.0)
    }
}

impl Drop for TaskNetns {
    fn drop(&mut self) {
        if self.path().exists() {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
}
