//! `login:` end to end with the real OpenSSH: berth-init as PID 1 of new PID, mount and
//! network namespaces (the host's sshd and a test /etc/passwd bind-mounted in), a user CA
//! made here with ssh-keygen, and a non-interactive ssh client entering the netns.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::mesos::harness::{assert_root, binary};

fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A key pair made with ssh-keygen; `cert` signs its public key with a CA.
struct Key(PathBuf);

impl Key {
    fn new(dir: &Path, name: &str) -> Key {
        let p = dir.join(name);
        sh(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&p));
        Key(p)
    }
    fn public(&self) -> String {
        std::fs::read_to_string(self.0.with_extension("pub")).unwrap()
    }
    /// Signs `user`'s public key: principals, validity (`-V`).
    fn sign(&self, user: &Key, principals: &str, validity: &str) {
        sh(Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&self.0)
            .args(["-I", "test", "-n", principals, "-V", validity])
            .arg(user.0.with_extension("pub")));
    }
}

/// berth-init as PID 1 of its own namespaces; everything is killed on drop.
struct Container {
    dir: tempfile::TempDir,
    unshare: Child,
    pid1: i32,
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwork:x:1000:1000:work:/tmp:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n";
const SHADOW: &str = "root:*:19000:0:99999:7:::\nwork:*:19000:0:99999:7:::\n";
const GROUP: &str = "root:x:0:\nwork:x:1000:\nnogroup:x:65534:\n";

impl Container {
    /// `spec` with `@DIR@` replaced by the container's dir.
    fn start(spec: &str) -> Container {
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
             exec {bin} --spec {d}/app.yaml --socket {d}/run/init.sock",
            d = d.display(),
            bin = binary("berth-init").display()
        );
        let unshare = Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--mount-proc",
                "--net",
                "sh",
                "-c",
                &script,
            ])
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

    fn login_dir(&self) -> PathBuf {
        self.dir.path().join("run/login")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("err.log")).unwrap_or_default()
    }

    fn host_key(&self) -> String {
        std::fs::read_to_string(self.login_dir().join("ssh_host_ed25519_key.pub")).unwrap()
    }

    /// ssh into the container as `user` with `key` (and its certificate if signed),
    /// checking the host key; never prompts.
    fn ssh(&self, key: &Key, user: &str, cmd: &str, extra: &[&str]) -> Output {
        let kh = self.dir.path().join("known_hosts");
        std::fs::write(&kh, format!("127.0.0.1 {}", self.host_key())).unwrap();
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
    fn wait_login(&self, key: &Key) -> Duration {
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

    fn status(&self) -> serde_json::Value {
        let out = sh(Command::new(binary("berth-init"))
            .args(["ctl", "--socket"])
            .arg(self.dir.path().join("run/init.sock"))
            .arg("status"));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Pids of sshd processes that are children of PID 1 (the listener).
    fn sshd_pid(&self) -> Option<i32> {
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

fn spec(dir_ca: &str, extra: &str) -> String {
    format!("services:\n  idle: {{command: [sleep, \"3600\"]}}\nlogin:\n  ca: {dir_ca}\n  refresh: 1s\n  users:\n    work: {{}}\n{extra}")
}

fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "login should be refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn certificates_only_login() {
    let keys = tempfile::tempdir().unwrap();
    let ca = Key::new(keys.path(), "ca");
    let good = Key::new(keys.path(), "good");
    ca.sign(&good, "team", "+1h");
    let wrong = Key::new(keys.path(), "wrong");
    ca.sign(&wrong, "other-team", "+1h");
    let expired = Key::new(keys.path(), "expired");
    ca.sign(&expired, "team", "20200101:20200102");
    let bare = Key::new(keys.path(), "bare");
    let revoked = Key::new(keys.path(), "revoked");
    ca.sign(&revoked, "team/web", "+1h");
    let krl = keys.path().join("krl");
    sh(Command::new("ssh-keygen")
        .args(["-k", "-f"])
        .arg(&krl)
        .arg(revoked.0.with_extension("pub")));
    std::fs::copy(ca.0.with_extension("pub"), keys.path().join("ca-src")).unwrap();

    let c = Container::start(&spec(
        &keys.path().join("ca-src").display().to_string(),
        &format!("  revoked: {}\n", krl.display()),
    ));
    c.wait_login(&good);

    // The right principal runs a command, as the named user, with the executor's
    // non-secret environment.
    let out = c.ssh(&good, "work", "id -un; env", &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("work\n"), "{text}");
    assert!(text.contains("MARATHON_APP_ID=/team/web"), "{text}");
    assert!(text.contains("BERTH_MEM_MB=256"), "{text}");
    assert!(
        !text.contains("s3cret"),
        "a secret reached the session:\n{text}"
    );

    refused(&c.ssh(&wrong, "work", "true", &[]));
    refused(&c.ssh(&expired, "work", "true", &[]));
    refused(&c.ssh(&bare, "work", "true", &[]));
    refused(&c.ssh(&revoked, "work", "true", &[]));
    // A user outside login.users, even with a good certificate.
    refused(&c.ssh(&good, "root", "true", &[]));
    // Passwords are not even offered.
    let pw = refused(&c.ssh(
        &bare,
        "work",
        "true",
        &[
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        ],
    ));
    assert!(pw.contains("Permission denied (publickey)"), "{pw}");

    let st = c.status();
    assert_eq!(st["login"]["state"], "ready", "{st}");
    assert_eq!(st["login"]["ca_keys"], 1, "{st}");
    assert!(st["services"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "login-sshd" && s["state"] == "running"));
}

#[test]
fn ca_rotation_outage_and_garbage() {
    let keys = tempfile::tempdir().unwrap();
    let ca1 = Key::new(keys.path(), "ca1");
    let ca2 = Key::new(keys.path(), "ca2");
    let u1 = Key::new(keys.path(), "u1");
    ca1.sign(&u1, "team", "+1h");
    let u2 = Key::new(keys.path(), "u2");
    ca2.sign(&u2, "team", "+1h");
    let src = keys.path().join("ca-src");
    std::fs::write(&src, ca1.public()).unwrap();

    let c = Container::start(&spec(&src.display().to_string(), ""));
    c.wait_login(&u1);
    refused(&c.ssh(&u2, "work", "true", &[]));

    let settle = || std::thread::sleep(Duration::from_millis(2500));
    // Rotation: both CAs, then only the new one.
    std::fs::write(&src, format!("{}{}", ca1.public(), ca2.public())).unwrap();
    settle();
    assert!(c.ssh(&u1, "work", "true", &[]).status.success());
    assert!(c.ssh(&u2, "work", "true", &[]).status.success());
    std::fs::write(&src, ca2.public()).unwrap();
    settle();
    refused(&c.ssh(&u1, "work", "true", &[]));
    assert!(c.ssh(&u2, "work", "true", &[]).status.success());

    // The source goes down: the last good keys stay.
    std::fs::remove_file(&src).unwrap();
    settle();
    assert!(c.ssh(&u2, "work", "true", &[]).status.success());
    assert!(c.status()["login"]["last_error"].is_string());
    // Garbage (an error page), then an empty list: the last good keys stay.
    std::fs::write(&src, "<html>502 Bad Gateway</html>\n").unwrap();
    settle();
    assert!(c.ssh(&u2, "work", "true", &[]).status.success());
    std::fs::write(&src, "").unwrap();
    settle();
    assert!(c.ssh(&u2, "work", "true", &[]).status.success());
    refused(&c.ssh(&u1, "work", "true", &[]));
}

#[test]
fn fresh_host_keys_and_sshd_restarted() {
    let keys = tempfile::tempdir().unwrap();
    let ca = Key::new(keys.path(), "ca");
    let u = Key::new(keys.path(), "u");
    ca.sign(&u, "team/web", "+1h");
    let src = ca.0.with_extension("pub").display().to_string();
    let a = Container::start(&spec(&src, ""));
    let b = Container::start(&spec(&src, ""));
    a.wait_login(&u);
    b.wait_login(&u);
    assert_ne!(
        a.host_key(),
        b.host_key(),
        "two containers share a host key"
    );

    let old = a.sshd_pid().expect("sshd is a child of PID 1");
    // SAFETY: kill has no memory preconditions; `old` is the test container's sshd.
    unsafe { libc::kill(old, libc::SIGKILL) };
    let t0 = Instant::now();
    while a.sshd_pid().is_none_or(|p| p == old) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "sshd not restarted:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a.wait_login(&u);
    assert!(a.status()["services"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "login-sshd" && s["restarts"].as_u64() >= Some(1)));
}

#[test]
fn never_starts_with_an_empty_trust_list() {
    let keys = tempfile::tempdir().unwrap();
    let empty = keys.path().join("empty");
    std::fs::write(&empty, "# no keys yet\n").unwrap();
    // required: true -> init exits, nothing runs.
    let mut c = Container::start(&spec(&empty.display().to_string(), "  required: true\n"));
    let t0 = Instant::now();
    let code = loop {
        if let Some(s) = c.unshare.try_wait().unwrap() {
            break s.code();
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "init did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(1), "{}", c.log());
    assert!(c.log().contains("no CA keys"), "{}", c.log());
    // required: false -> the app runs, login is reported failed, no sshd.
    let c = Container::start(&spec(&empty.display().to_string(), ""));
    let t0 = Instant::now();
    while !c.dir.path().join("run/init.sock").exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", c.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = c.status();
    assert_eq!(st["login"]["state"], "failed", "{st}");
    assert!(
        st["login"]["reason"]
            .as_str()
            .unwrap()
            .contains("no CA keys"),
        "{st}"
    );
    assert!(c.sshd_pid().is_none());
}
