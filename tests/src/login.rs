//! The login lab: berth-init as PID 1 of new PID, mount and network namespaces (the host's
//! sshd and a test /etc/passwd bind-mounted in), user CA keys made with ssh-keygen, and a
//! non-interactive ssh client entering the netns (BatchMode, explicit known_hosts,
//! ConnectTimeout: nothing ever prompts or hangs).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::mesos::harness::{assert_root, binary};

/// Runs `cmd`, panicking with its stderr unless it succeeds.
pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A key pair made with ssh-keygen; `cert` signs its public key with a CA.
pub struct Key(pub PathBuf);

impl Key {
    /// A new ed25519 key `dir/name`.
    pub fn new(dir: &Path, name: &str) -> Key {
        let p = dir.join(name);
        sh(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&p));
        Key(p)
    }
    /// The public key line.
    pub fn public(&self) -> String {
        std::fs::read_to_string(self.0.with_extension("pub")).unwrap()
    }
    /// Signs `user`'s public key: principals, validity (`-V`).
    pub fn sign(&self, user: &Key, principals: &str, validity: &str) {
        sh(Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&self.0)
            .args(["-I", "test", "-n", principals, "-V", validity])
            .arg(user.0.with_extension("pub")));
    }
}

/// berth-init as PID 1 of its own namespaces; everything is killed on drop.
pub struct Container {
    /// Spec, logs, the run dir.
    pub dir: tempfile::TempDir,
    /// The unshare process.
    pub unshare: Child,
    /// berth-init's pid on the host.
    pub pid1: i32,
}

/// The container's users (bind-mounted over /etc/passwd).
pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwork:x:1000:1000:work:/tmp:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n";
/// Their shadow entries (`*`: no password, not locked).
pub const SHADOW: &str = "root:*:19000:0:99999:7:::\nwork:*:19000:0:99999:7:::\n";
/// Their groups.
pub const GROUP: &str = "root:x:0:\nwork:x:1000:\nnogroup:x:65534:\n";

impl Container {
    /// `spec` with `@DIR@` replaced by the container's dir.
    pub fn start(spec: &str) -> Container {
        Self::start_in(spec, None)
    }

    /// Like `start`, in the existing netns `ns` (a test's servers already listen there)
    /// instead of a new one.
    pub fn start_in(spec: &str, ns: Option<&crate::lab::Ns>) -> Container {
        Self::start_with(spec, ns, |d| {
            format!(
                "{} --spec {d}/app.yaml --socket {d}/run/init.sock",
                binary("berth-init").display()
            )
        })
    }

    /// Like `start`, but PID 1 is `exec(dir)` (a shell command line; the anchor runs a
    /// hand-configured sshd this way, its host key written to `<dir>/run/login/`).
    pub fn start_exec(spec: &str, exec: impl Fn(&str) -> String) -> Container {
        Self::start_with(spec, None, exec)
    }

    fn start_with(
        spec: &str,
        ns: Option<&crate::lab::Ns>,
        exec: impl Fn(&str) -> String,
    ) -> Container {
        assert_root();
        let dir = tempfile::Builder::new()
            .prefix(&format!("berth-login-{}-", std::process::id()))
            .tempdir()
            .unwrap();
        let d = dir.path();
        let spec = spec.replace("@DIR@", &d.display().to_string());
        std::fs::write(d.join("app.yaml"), spec).unwrap();
        for (n, t) in [("passwd", PASSWD), ("shadow", SHADOW), ("group", GROUP)] {
            std::fs::write(d.join(n), t).unwrap();
        }
        std::fs::create_dir(d.join("run")).unwrap();
        let script = format!(
            "set -e; ip link set lo up; for f in passwd shadow group; do mount --bind {d}/$f /etc/$f; done; \
             exec {exec}",
            d = d.display(),
            exec = exec(&d.display().to_string())
        );
        // `ip netns exec` execs unshare in place: the child is still unshare.
        let mut cmd = match ns {
            Some(ns) => ns.command(&["unshare", "--pid", "--fork", "--mount-proc"]),
            None => {
                let mut c = Command::new("unshare");
                c.args(["--pid", "--fork", "--mount-proc", "--net"]);
                c
            }
        };
        let unshare = cmd
            .args(["sh", "-c", &script])
            .env("MARATHON_APP_ID", "/team/web")
            .env("BERTH_MEM_MB", "256")
            .env("BERTH_EXECUTOR_TOKEN", "s3cret-token")
            .stdout(Stdio::from(
                std::fs::File::create(d.join("out.log")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(d.join("err.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let upid = unshare.id();
        let t0 = Instant::now();
        let pid1 = loop {
            let kids = std::fs::read_to_string(format!("/proc/{upid}/task/{upid}/children"))
                .unwrap_or_default();
            if let Some(p) = kids.split_whitespace().next() {
                break p.parse().unwrap();
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "no PID 1");
            std::thread::sleep(Duration::from_millis(10));
        };
        Container { dir, unshare, pid1 }
    }

    /// init's login dir (host key, config, lists).
    pub fn login_dir(&self) -> PathBuf {
        self.dir.path().join("run/login")
    }

    /// init's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("err.log")).unwrap_or_default()
    }

    /// The container's host public key.
    pub fn host_key(&self) -> String {
        std::fs::read_to_string(self.login_dir().join("ssh_host_ed25519_key.pub")).unwrap()
    }

    /// ssh into the container as `user` with `key` (and its certificate if signed),
    /// checking the host key; never prompts.
    pub fn ssh(&self, key: &Key, user: &str, cmd: &str, extra: &[&str]) -> Output {
        self.ssh_known(
            &format!("127.0.0.1 {}", self.host_key()),
            key,
            user,
            cmd,
            extra,
        )
    }

    /// Like `ssh`, checking the host against the known_hosts line `known` (e.g. an
    /// `@cert-authority` line).
    pub fn ssh_known(
        &self,
        known: &str,
        key: &Key,
        user: &str,
        cmd: &str,
        extra: &[&str],
    ) -> Output {
        let kh = self.dir.path().join("known_hosts");
        std::fs::write(&kh, known).unwrap();
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid1.to_string(), "-n", "ssh"])
            .args([
                "-F",
                "none",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
            ])
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", kh.display()))
            .arg("-i")
            .arg(&key.0)
            .args(extra)
            .arg(format!("{user}@127.0.0.1"))
            .arg(cmd)
            .stdin(Stdio::null());
        c.output().unwrap()
    }

    /// Waits until `key` logs in as work (sshd up): the time it took.
    pub fn wait_login(&self, key: &Key) -> Duration {
        let t0 = Instant::now();
        loop {
            if self.login_dir().join("ssh_host_ed25519_key.pub").exists()
                && self.ssh(key, "work", "true", &[]).status.success()
            {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no login within 20s; init log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `berth-init ctl status`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let out = sh(Command::new(binary("berth-init"))
            .args(["ctl", "--socket"])
            .arg(self.dir.path().join("run/init.sock"))
            .arg("status"));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Pids of sshd processes that are children of PID 1 (the listener).
    pub fn sshd_pid(&self) -> Option<i32> {
        let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.pid1))
            .unwrap_or_default();
        kids.split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sshd")
            })
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; pid1 is the namespace's init, whose
        // death kills every process of the namespace.
        unsafe { libc::kill(self.pid1, libc::SIGKILL) };
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}
