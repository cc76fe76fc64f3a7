//! The Debian package as an operator installs it (root): `scripts/package.sh --profile
//! dev` (the dev build: the release build is the expensive part of packaging, and what
//! is tested here is the package, not the optimizer; `BERTH_PACKAGE_PROFILE=release`
//! takes the release package that `scripts/package.sh` built) installed into a fresh Debian
//! minbase root with `dpkg -i`, apt resolving its dependencies from Debian's mirror
//! (downloaded .debs are cached under /var/tmp/berth-cache/apt-archives), then:
//! - every binary's `--version` runs in that root and names the package's version;
//! - `systemd-analyze verify` accepts every unit the package installed;
//! - the installed `berth-executor` runs a task on the lab with its default init (the
//!   installed static berth-init next to it): TASK_RUNNING, then SIGTERM -> TASK_KILLED.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::mesos::harness::{assert_root, Lab};
use berth_tests::minbase::{cp_tree, debian_minbase, CACHE};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Mounts in the root (proc, the apt archive cache), unmounted on drop, even on failure.
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn bind(&mut self, from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mount point");
        run(Command::new("mount").arg("--bind").arg(from).arg(to));
        self.0.push(to.to_path_buf());
    }

    fn proc(&mut self, to: &Path) {
        run(Command::new("mount").args(["-t", "proc", "proc"]).arg(to));
        self.0.push(to.to_path_buf());
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `scripts/package.sh --profile dev --no-build` into `out`; the .deb's path.
/// `BERTH_PACKAGE_PROFILE=release` installs the release build instead (what nodes get;
/// `scripts/package.sh` builds it first), so the same test checks the real package.
fn build_package(out: &Path) -> PathBuf {
    let profile = std::env::var("BERTH_PACKAGE_PROFILE").unwrap_or_else(|_| "dev".into());
    let o = run(Command::new(workspace().join("scripts/package.sh"))
        .args(["--profile", &profile, "--no-build", "--out"])
        .arg(out)
        .current_dir(workspace()));
    let deb = PathBuf::from(text(&o).lines().last().unwrap_or_default());
    assert!(deb.is_file(), "no .deb: {}", text(&o));
    deb
}

#[test]
fn the_package_installs_on_a_fresh_debian_and_runs_a_task() {
    assert_root();
    let lab = Lab::new("install-deb");
    let deb = build_package(&lab.dir.path().join("deb"));
    let root = lab.dir.path().join("root");
    cp_tree(&debian_minbase(), &root);
    std::fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf")).expect("resolv.conf");
    std::fs::copy(&deb, root.join("tmp/berth.deb")).expect("copy the .deb");
    let mut mounts = Mounts(Vec::new());
    mounts.proc(&root.join("proc"));
    let archives = Path::new(CACHE).join("apt-archives");
    std::fs::create_dir_all(archives.join("partial")).expect("apt cache");
    mounts.bind(&archives, &root.join("var/cache/apt/archives"));
    let chroot = |args: &[&str]| {
        let mut c = Command::new("chroot");
        c.arg(&root)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        c
    };

    // dpkg alone cannot: runc, lvm2 ... are not in a minbase root.
    let first = chroot(&["dpkg", "-i", "/tmp/berth.deb"])
        .output()
        .expect("dpkg");
    assert!(
        !first.status.success(),
        "dpkg -i found every dependency in minbase?"
    );
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("runc"),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    run(&mut chroot(&["apt-get", "update", "-qq"]));
    run(&mut chroot(&[
        "apt-get",
        "install",
        "-f",
        "-y",
        "-qq",
        "--no-install-recommends",
    ]));
    // What a node has besides: systemd (for the units' verification below).
    run(&mut chroot(&[
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "systemd",
    ]));
    let status = text(&run(&mut chroot(&[
        "dpkg-query",
        "-W",
        "-f",
        "${Status} ${Version}",
        "berth",
    ])));
    assert!(status.starts_with("install ok installed "), "{status}");
    let version = status.rsplit(' ').next().unwrap_or_default();
    let upstream = version.rsplit_once('-').map(|(v, _)| v).unwrap_or(version);
    for dep in ["runc", "lvm", "mkfs.ext4", "losetup"] {
        run(&mut chroot(&["sh", "-c", &format!("command -v {dep}")]));
    }

    for (bin, name) in [
        ("/usr/bin/berth-agent", "berth-agent"),
        ("/usr/libexec/berth/berth-executor", "berth-executor"),
        ("/usr/libexec/berth/berth-init", "berth-init"),
        ("/usr/sbin/berth-vol", "berth-vol"),
    ] {
        let line = text(&run(&mut chroot(&[bin, "--version"])));
        assert!(
            line.starts_with(&format!("{name} {upstream}")),
            "{bin} --version: {line:?}, package version {version}"
        );
    }
    assert!(root.join("etc/berth/agent.toml").is_file());
    let conffiles =
        std::fs::read_to_string(root.join("var/lib/dpkg/info/berth.conffiles")).expect("conffiles");
    for toml in std::fs::read_dir(workspace().join("packaging")).expect("packaging") {
        let name = toml
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".toml") {
            assert!(
                conffiles.contains(&format!("/etc/berth/{name}")),
                "{conffiles}"
            );
        }
    }
    assert!(root
        .join("usr/share/man/man8/berth-agent-serve.8.gz")
        .is_file());
    assert!(root
        .join("usr/share/bash-completion/completions/berth-agent")
        .is_file());
    // The Marathon app examples (tests/tests/examples.rs checks their content), each one.
    for f in std::fs::read_dir(workspace().join("packaging/examples")).expect("examples") {
        let name = f.expect("entry").file_name();
        let installed = root.join("usr/share/doc/berth/examples").join(&name);
        let same = std::fs::read(&installed).ok()
            == std::fs::read(workspace().join("packaging/examples").join(&name)).ok();
        assert!(same, "{} not installed as in the tree", installed.display());
    }

    let units_dir = root.join("lib/systemd/system");
    let mut units = Vec::new();
    for f in std::fs::read_dir(workspace().join("packaging/systemd")).expect("units") {
        let name = f.expect("entry").file_name();
        let installed = units_dir.join(&name);
        assert!(installed.is_file(), "{} not installed", installed.display());
        units.push(installed);
    }
    assert!(!units.is_empty());
    // In the node's own root, as systemd there would load them.
    let mut verify = chroot(&["systemd-analyze", "verify"]);
    verify.args(
        units
            .iter()
            .map(|u| Path::new("/").join(u.strip_prefix(&root).expect("in root"))),
    );
    let verify = verify.output().expect("systemd-analyze");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );

    drop(mounts);
    runs_a_task(&lab, &root.join("usr/libexec/berth/berth-executor"));
}

/// `berth-executor run --task` with the lab's settings but the executor's default init.
fn runs_a_task(lab: &Lab, executor: &Path) {
    let tid = lab.task_id("installed");
    let mut task = lab.task(&tid);
    task.as_object_mut().expect("task").remove("executor");
    task["command"] =
        serde_json::json!({"value": "echo installed $MESOS_TASK_ID; exec sleep 1000"});
    let task_file = lab.dir.path().join("task.json");
    std::fs::write(&task_file, serde_json::to_vec(&task).expect("json")).expect("task file");
    let sandbox = lab.dir.path().join("sb");
    std::fs::create_dir_all(&sandbox).expect("sandbox");
    let env: Vec<(String, String)> = lab
        .executor_env()
        .into_iter()
        .filter(|(k, _)| k != "BERTH_EXECUTOR_INIT")
        .collect();
    let log = lab.dir.path().join("executor.stderr");
    let mut child = Command::new(executor)
        .args(["run", "--task"])
        .arg(&task_file)
        .arg("--sandbox")
        .arg(&sandbox)
        .env_remove("BERTH_EXECUTOR_INIT")
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("installed berth-executor");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut states = Vec::new();
    let t0 = Instant::now();
    while let Some(Ok(line)) = lines.next() {
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let state = v["state"].as_str().unwrap_or_default().to_string();
        if state == "TASK_RUNNING" {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        states.push(state);
        assert!(t0.elapsed() < Duration::from_secs(30), "{states:?}");
    }
    let status = child.wait().expect("wait");
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        states,
        ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"],
        "{stderr}"
    );
    assert!(status.success(), "{status}: {stderr}");
    let stdout = std::fs::read_to_string(sandbox.join("stdout")).unwrap_or_default();
    assert!(stdout.contains(&format!("installed {tid}")), "{stdout}");
    lab.assert_clean();
}
