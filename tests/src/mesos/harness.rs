//! End-to-end harness: a per-test directory with a busybox image, the executor's state
//! and run dirs, its own runc root and cgroup parent, the executor environment, and the
//! checks that nothing is left behind. Names include the pid and a counter so parallel
//! tests never collide; `Drop` removes whatever a failed test left.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use super::ExecutorSpec;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub const FRAMEWORK: &str = "marathon-fw-0001";

/// Where cargo put the workspace's binaries (target/debug, next to the test's deps dir).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// A binary built by `cargo build --workspace --bins`.
pub fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// The static berth-init (musl target, same profile as the tests) that every lab mounts:
/// the executor refuses a dynamically linked init.
pub fn static_init() -> PathBuf {
    let dir = bin_dir();
    let profile = dir.file_name().expect("profile dir").to_owned();
    let p = dir
        .parent()
        .expect("target dir")
        .join(STATIC_TARGET)
        .join(profile)
        .join("berth-init");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --target {STATIC_TARGET} -p berth-init` first",
        p.display()
    );
    p
}

/// The target berth-init is built for, static (scripts/test.sh, scripts/package.sh).
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";

pub fn assert_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this end-to-end test runs runc containers and must run as root"
    );
}

/// Single-quotes a string for `sh` (Marathon appends the app's `cmd` to a shell line).
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One test's world.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub images: PathBuf,
    pub state: PathBuf,
    pub run: PathBuf,
    pub runc_root: PathBuf,
    pub cgroup_parent: String,
    pub executor: PathBuf,
    pub init: PathBuf,
}

impl Lab {
    pub fn new(test: &str) -> Lab {
        assert_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("{test}-{}-{n}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix(&format!("berth-e2e-{name}-"))
            .tempdir()
            .expect("tempdir");
        let executor = binary("berth-executor");
        let init = static_init();
        let images = dir.path().join("images");
        crate::rootfs::busybox(&images.join("busybox"), &[&init]).expect("busybox rootfs");
        let lab = Lab {
            images,
            state: dir.path().join("state"),
            run: dir.path().join("run"),
            runc_root: dir.path().join("runc"),
            cgroup_parent: format!("berth-test-{name}"),
            executor,
            init,
            name,
            dir,
        };
        std::fs::create_dir_all(&lab.runc_root).expect("runc root");
        lab
    }

    /// The executor as Marathon's agent would start it for `task_id`.
    pub fn spec(&self, task_id: &str, cmd: Option<&str>) -> ExecutorSpec {
        let sandbox = self.dir.path().join("sandboxes").join(task_id);
        let mut s = ExecutorSpec::new(&self.executor, FRAMEWORK, task_id, "/e2e/app", &sandbox);
        s.cmd = cmd.map(sh_quote);
        s.env = self.executor_env();
        s
    }

    /// BERTH_EXECUTOR_* settings pointing at this lab.
    pub fn executor_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "BERTH_EXECUTOR_INIT".into(),
                self.init.display().to_string(),
            ),
            (
                "BERTH_EXECUTOR_IMAGES".into(),
                self.images.display().to_string(),
            ),
            (
                "BERTH_EXECUTOR_STATE_DIR".into(),
                self.state.display().to_string(),
            ),
            (
                "BERTH_EXECUTOR_RUN_DIR".into(),
                self.run.display().to_string(),
            ),
            (
                "BERTH_EXECUTOR_RUNTIME_ROOT".into(),
                self.runc_root.display().to_string(),
            ),
            (
                "BERTH_EXECUTOR_CGROUP_PARENT".into(),
                self.cgroup_parent.clone(),
            ),
        ]
    }

    /// A TaskInfo as Marathon sends it for an app with `"executor"` (the command is on
    /// the executor's command line, not in the TaskInfo).
    pub fn task(&self, task_id: &str) -> Value {
        json!({
            "name": "e2e-app",
            "task_id": {"value": task_id},
            "agent_id": {"value": "agent-double-S0"},
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.2}, "role": "*"},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 64.0}, "role": "*"},
                {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31000}]}, "role": "*"}
            ],
            "executor": {
                "executor_id": {"value": format!("marathon-{task_id}")},
                "framework_id": {"value": FRAMEWORK},
                "command": {"value": format!("chmod ug+rx '{0}' && exec '{0}'", self.executor.display()), "shell": true},
                "resources": []
            },
            "labels": {"labels": [{"key": "berth.image", "value": "busybox"}]},
            "discovery": {"visibility": "FRAMEWORK", "name": "e2e-app"}
        })
    }

    /// Containers runc still knows in this lab's root.
    pub fn runc_containers(&self) -> Vec<String> {
        let out = Command::new("runc")
            .arg("--root")
            .arg(&self.runc_root)
            .args(["list", "-q"])
            .output()
            .expect("runc list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Mount points under this lab's directory.
    pub fn mounts(&self) -> Vec<String> {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let base = self.dir.path().display().to_string();
        text.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&base))
            .map(str::to_string)
            .collect()
    }

    /// cgroup directories of this lab's containers.
    pub fn cgroups(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let Ok(ctrls) = std::fs::read_dir("/sys/fs/cgroup") else {
            return found;
        };
        for c in ctrls.flatten() {
            for base in [
                c.path().join(&self.cgroup_parent),
                PathBuf::from("/sys/fs/cgroup").join(&self.cgroup_parent),
            ] {
                if let Ok(children) = std::fs::read_dir(&base) {
                    for ch in children.flatten() {
                        if ch.path().is_dir() {
                            found.push(ch.path());
                        }
                    }
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }

    /// Processes whose environment names one of this lab's containers.
    pub fn processes(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return pids;
        };
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(env) = std::fs::read(p.path().join("environ")) {
                let env = String::from_utf8_lossy(&env);
                if env.contains(&format!(
                    "BERTH_EXECUTOR_CGROUP_PARENT={}",
                    self.cgroup_parent
                )) || env
                    .split('\0')
                    .any(|kv| kv.starts_with("BERTH_CONTAINER_ID=") && self.is_ours(kv))
                {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    fn is_ours(&self, kv: &str) -> bool {
        // Task ids in tests contain the lab name.
        kv.contains(&self.name)
    }

    /// Asserts that runc, cgroups, mounts, processes and state dirs are all gone.
    pub fn assert_clean(&self) {
        // The executor may still be exiting: give it a moment.
        let mut left = String::new();
        for _ in 0..100 {
            left.clear();
            let c = self.runc_containers();
            let m = self.mounts();
            let g = self.cgroups();
            let p = self.processes();
            let s: Vec<_> = std::fs::read_dir(&self.state)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.path())
                        .filter(|p| !p.ends_with("executors"))
                        .collect()
                })
                .unwrap_or_default();
            let r: Vec<_> = std::fs::read_dir(&self.run)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            if c.is_empty()
                && m.is_empty()
                && g.is_empty()
                && p.is_empty()
                && s.is_empty()
                && r.is_empty()
            {
                return;
            }
            left = format!(
                "runc {c:?}, mounts {m:?}, cgroups {g:?}, processes {p:?}, state {s:?}, run {r:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("left behind: {left}");
    }

    /// A unique task id for this lab.
    pub fn task_id(&self, what: &str) -> String {
        format!("{what}.{}", self.name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in self.runc_containers() {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&self.runc_root)
                .args(["kill", &c, "KILL"])
                .status();
            std::thread::sleep(Duration::from_millis(100));
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&self.runc_root)
                .args(["delete", "--force", &c])
                .status();
        }
        for pid in self.processes() {
            // SAFETY: kill(2) with a pid we found; at worst the process is already gone.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
        for g in self.cgroups() {
            let _ = std::fs::remove_dir(&g);
        }
        if let Ok(ctrls) = std::fs::read_dir("/sys/fs/cgroup") {
            for c in ctrls.flatten() {
                let _ = std::fs::remove_dir(c.path().join(&self.cgroup_parent));
            }
        }
        let _ = std::fs::remove_dir(PathBuf::from("/sys/fs/cgroup").join(&self.cgroup_parent));
    }
}

// ---- Runtime-aware labs: the same scenarios under runc and under crun ----

/// The OCI runtime an end-to-end test runs its containers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestRuntime {
    Runc,
    Crun,
}

impl TestRuntime {
    /// The binary (looked up in PATH by the executor and by the checks).
    pub fn binary(self) -> &'static str {
        match self {
            TestRuntime::Runc => "runc",
            TestRuntime::Crun => "crun",
        }
    }
}

/// A [`Lab`] whose executor runs containers with `runtime`: its checks and its cleanup
/// ask that runtime (both keep one state directory per container under the lab's root).
pub struct RuntimeLab {
    pub lab: Lab,
    pub runtime: TestRuntime,
}

impl std::ops::Deref for RuntimeLab {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

impl RuntimeLab {
    pub fn new(test: &str, runtime: TestRuntime) -> RuntimeLab {
        RuntimeLab {
            lab: Lab::new(&format!("{test}-{}", runtime.binary())),
            runtime,
        }
    }

    /// `<runtime> --root <the lab's root>`.
    pub fn runtime_cmd(&self) -> Command {
        let mut c = Command::new(self.runtime.binary());
        c.arg("--root").arg(&self.lab.runc_root);
        c
    }

    /// BERTH_EXECUTOR_* settings pointing at this lab, with BERTH_EXECUTOR_RUNTIME.
    pub fn executor_env(&self) -> Vec<(String, String)> {
        let mut env = self.lab.executor_env();
        env.push((
            "BERTH_EXECUTOR_RUNTIME".into(),
            self.runtime.binary().into(),
        ));
        env
    }

    /// The executor as Marathon's agent would start it, running `runtime`.
    pub fn spec(&self, task_id: &str, cmd: Option<&str>) -> ExecutorSpec {
        let mut s = self.lab.spec(task_id, cmd);
        s.env = self.executor_env();
        s
    }

    /// Containers the runtime lists in this lab's root.
    pub fn containers(&self) -> Vec<String> {
        let out = self
            .runtime_cmd()
            .args(["list", "-q"])
            .output()
            .expect("runtime list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Entries in the runtime's state root (one directory per container it knows).
    pub fn state_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.lab.runc_root)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// The runtime's containers and state dirs, then everything [`Lab::assert_clean`]
    /// checks (cgroups under the lab's parent, mounts, processes, berth's state).
    pub fn assert_clean(&self) {
        let mut left = String::new();
        for _ in 0..100 {
            let (c, s) = (self.containers(), self.state_dirs());
            if c.is_empty() && s.is_empty() {
                return self.lab.assert_clean();
            }
            left = format!("{} containers {c:?}, state {s:?}", self.runtime.binary());
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("left behind: {left}");
    }
}

impl Drop for RuntimeLab {
    fn drop(&mut self) {
        // The lab's own Drop (after this) removes mounts, processes and cgroups.
        for c in self.containers() {
            let _ = self.runtime_cmd().args(["kill", &c, "KILL"]).status();
            std::thread::sleep(Duration::from_millis(100));
            let _ = self.runtime_cmd().args(["delete", "--force", &c]).status();
        }
    }
}

/// The /home volume (the executor's `volume` step, loopfile backend) in a lab.
impl Lab {
    /// The loopfile backend's directory of this lab.
    pub fn volumes_dir(&self) -> PathBuf {
        self.dir.path().join("volumes")
    }

    /// BERTH_EXECUTOR_VOLUME_* settings: the loopfile backend in this lab, `retain` if given.
    pub fn volume_env(&self, retain: Option<&str>) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "BERTH_EXECUTOR_VOLUME_BACKEND".to_string(),
                "loopfile".to_string(),
            ),
            (
                "BERTH_EXECUTOR_VOLUME_DIR".to_string(),
                self.volumes_dir().display().to_string(),
            ),
        ];
        if let Some(r) = retain {
            env.push(("BERTH_EXECUTOR_VOLUME_RETAIN".into(), r.into()));
        }
        env
    }

    /// [`Lab::task`] with the `home` resource (MB).
    pub fn task_with_home(&self, task_id: &str, home_mb: f64) -> Value {
        let mut t = self.task(task_id);
        t["resources"].as_array_mut().expect("resources").push(
            json!({"name": "home", "type": "SCALAR", "scalar": {"value": home_mb}, "role": "*"}),
        );
        t
    }

    /// A file the task wrote in its sandbox (`stdout`, `stderr`).
    pub fn sandbox_file(&self, task_id: &str, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("sandboxes").join(task_id).join(name))
            .unwrap_or_default()
    }

    /// Loop devices whose backing file is in this lab's directory.
    pub fn loop_devices(&self) -> Vec<String> {
        let base = self.dir.path().display().to_string();
        let Ok(rd) = std::fs::read_dir("/sys/block") else {
            return Vec::new();
        };
        let mut devs: Vec<String> = rd
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("loop"))
            .filter(|e| {
                std::fs::read_to_string(e.path().join("loop/backing_file"))
                    .is_ok_and(|b| b.trim().starts_with(&base))
            })
            .map(|e| format!("/dev/{}", e.file_name().to_string_lossy()))
            .collect();
        devs.sort();
        devs
    }

    /// Volume files (`<name>.img`, `<name>.json`) in this lab's loopfile directory.
    pub fn volume_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.volumes_dir())
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.extension()
                            .is_some_and(|x| x == "img" || x == "json" || x == "tmp")
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Lock files go with their volume (berth-lvm retires them on removal).
        if let Ok(d) = std::fs::read_dir(self.volumes_dir().join(".locks")) {
            files.extend(d.flatten().map(|e| e.path()));
        }
        files.sort();
        files
    }

    /// Asserts that no volume file, loop device or mount of this lab is left (waiting a
    /// moment: the kernel frees an autoclear loop device after the last unmount).
    pub fn assert_no_volumes(&self) {
        let mut left = String::new();
        for _ in 0..100 {
            let (f, l, m) = (self.volume_files(), self.loop_devices(), self.mounts());
            if f.is_empty() && l.is_empty() && m.is_empty() {
                return;
            }
            left = format!("volume files {f:?}, loop devices {l:?}, mounts {m:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("volumes left behind: {left}");
    }

    /// Detaches this lab's loop devices (cleanup after a failed test; lazy-unmount first).
    pub fn detach_loop_devices(&self) {
        for dev in self.loop_devices() {
            let _ = Command::new("losetup").args(["-d", &dev]).status();
        }
    }
}

/// The task's `disk` (the executor's `scratch` step: the writable layer on a volume).
impl Lab {
    /// [`Lab::task`] with the `disk` resource (MB).
    pub fn task_with_disk(&self, task_id: &str, disk_mb: f64) -> Value {
        let mut t = self.task(task_id);
        t["resources"].as_array_mut().expect("resources").push(
            json!({"name": "disk", "type": "SCALAR", "scalar": {"value": disk_mb}, "role": "*"}),
        );
        t
    }
}

impl Lab {
    /// Removes what an executor killed by the test left: the runtime's containers (killed
    /// and deleted), this lab's processes, mounts (deepest first), cgroups, and every
    /// state and run dir entry except the executors' records (task lock files included). Then `assert_clean` holds.
    pub fn tear_down_leftovers(&self) {
        for c in self.runc_containers() {
            let runc = |args: &[&str]| {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(&self.runc_root)
                    .args(args)
                    .status();
            };
            runc(&["kill", &c, "KILL"]);
            std::thread::sleep(Duration::from_millis(200));
            runc(&["delete", "--force", &c]);
        }
        for pid in self.processes() {
            // SAFETY: kill(2) with a pid we found; at worst the process is already gone.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
        for g in self.cgroups() {
            let _ = std::fs::remove_dir(&g);
        }
        for dir in [&self.state, &self.run] {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.path().ends_with("executors") {
                    continue;
                }
                // Container dirs, and the task lock files next to them.
                if e.path().is_dir() {
                    let _ = std::fs::remove_dir_all(e.path());
                } else {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Scaffolding shared by the volume tests (e2e_volume: `/home`; e2e_disk: the scratch volume).
/// Starts the double and the executor on a thread inside `ns` (the lab's "host" netns,
/// where the macvlan parent is), with `task` launched on subscribe.
pub fn start_in(
    ns: &crate::lab::Ns,
    spec: ExecutorSpec,
    task: Value,
) -> (super::AgentDouble, super::process::ExecutorProcess) {
    ns.run_in(move || {
        let d = super::AgentDouble::start(&spec.framework_id, &spec.executor_id);
        d.launch_on_subscribe(task);
        let exec = d.spawn_executor(&spec, Duration::from_secs(10));
        (d, exec)
    })
}

pub mod volumes {
    use std::ops::Deref;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use super::Lab;
    use crate::mesos::{AgentDouble, ExecutorProcess};

    /// A lab that also frees its loop devices when a test fails half way (the lab's own
    /// cleanup then unmounts, which frees them); [`VolumeLab::unmounting`] first lazily
    /// unmounts what is under the lab's state dir (an overlay on a volume).
    pub struct VolumeLab {
        lab: Lab,
        unmount_state: bool,
    }

    impl VolumeLab {
        pub fn new(test: &str) -> VolumeLab {
            VolumeLab {
                lab: Lab::new(test),
                unmount_state: false,
            }
        }

        pub fn unmounting(test: &str) -> VolumeLab {
            VolumeLab {
                lab: Lab::new(test),
                unmount_state: true,
            }
        }
    }

    impl Deref for VolumeLab {
        type Target = Lab;
        fn deref(&self) -> &Lab {
            &self.lab
        }
    }

    impl Drop for VolumeLab {
        fn drop(&mut self) {
            if self.unmount_state {
                let state = self.lab.state.display().to_string();
                let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
                    .filter(|m| m.starts_with(&state))
                    .collect();
                mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
                for m in mounts {
                    let _ = Command::new("umount").args(["-l", &m]).status();
                }
            }
            self.lab.detach_loop_devices();
        }
    }

    /// The last status update the agent double received (`null` when none).
    pub fn last_update(d: &AgentDouble) -> Value {
        d.state().updates.last().cloned().unwrap_or_default()
    }

    /// Waits up to `timeout` until the task's stdout has `DONE`; returns it.
    pub fn wait_done(lab: &Lab, tid: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let out = lab.sandbox_file(tid, "stdout");
            if out.contains("DONE") {
                return out;
            }
            assert!(
                Instant::now() < end,
                "the task never printed DONE: stdout {out:?}, stderr {:?}",
                lab.sandbox_file(tid, "stderr")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `script` with `/bin/sh -c` in the lab's (last) runc container: stdout, stderr.
    pub fn runc_exec(lab: &Lab, script: &str) -> (String, String) {
        let cid = lab.runc_containers().pop().expect("a container");
        let out = Command::new("runc")
            .arg("--root")
            .arg(&lab.runc_root)
            .args(["exec", &cid, "/bin/sh", "-c", script])
            .output()
            .expect("runc exec");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The executor exits within `timeout` and the double saw no protocol violation.
    pub fn assert_exits_cleanly(d: &AgentDouble, exec: &mut ExecutorProcess, timeout: Duration) {
        exec.wait_exit(timeout)
            .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
        assert!(d.violations().is_empty(), "{:?}", d.violations());
    }

    /// KILLs the task: TASK_KILLED, then the executor exits cleanly.
    pub fn kill_until_exit(
        d: &AgentDouble,
        exec: &mut ExecutorProcess,
        tid: &str,
        timeout: Duration,
    ) {
        d.kill(tid, None);
        d.wait_state(tid, "TASK_KILLED", timeout);
        assert_exits_cleanly(d, exec, timeout);
    }

    /// Waits for TASK_FAILED with reason `REASON_CONTAINER_LAUNCH_FAILED` (`what` names the
    /// case in the assertion); returns the update.
    pub fn wait_launch_failed(d: &AgentDouble, tid: &str, what: &str, timeout: Duration) -> Value {
        d.wait_state(tid, "TASK_FAILED", timeout);
        let u = last_update(d);
        assert_eq!(u["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{what}: {u}");
        u
    }

    /// The update's message, or "" when it has none.
    pub fn message(u: &Value) -> &str {
        u["message"].as_str().unwrap_or("")
    }

    /// Waits until the task was reported TASK_RUNNING twice (a new executor re-attached).
    pub fn wait_running_twice(
        d: &AgentDouble,
        tid: &str,
        exec: &ExecutorProcess,
        timeout: Duration,
    ) {
        assert!(
            d.wait(timeout, |st| st
                .states(tid)
                .iter()
                .filter(|s| *s == "TASK_RUNNING")
                .count()
                == 2),
            "{}",
            exec.log()
        );
    }
}

/// Starting a task with volumes (e2e_volume, e2e_disk).
pub mod volume_launch {
    use std::time::Duration;

    use serde_json::Value;

    use super::Lab;
    use crate::mesos::{AgentDouble, ExecutorProcess, ExecutorSpec};

    /// The lab's executor spec running `cmd`, with its loopfile volume settings (`retain`).
    pub fn volume_spec(lab: &Lab, tid: &str, cmd: &str, retain: Option<&str>) -> ExecutorSpec {
        let mut spec = lab.spec(tid, Some(cmd));
        spec.env.extend(lab.volume_env(retain));
        spec
    }

    /// An agent double that launches `task` when the executor of `spec` subscribes, and that
    /// executor (given 10 s to start).
    pub fn start(spec: &ExecutorSpec, task: Value) -> (AgentDouble, ExecutorProcess) {
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        d.launch_on_subscribe(task);
        let exec = d.spawn_executor(spec, Duration::from_secs(10));
        (d, exec)
    }
}

/// The running and stopping halves of a volume test's task (e2e_volume, e2e_disk).
pub mod volume_task {
    use std::time::Duration;

    use super::volumes::{assert_exits_cleanly, last_update, message, wait_done};
    use super::Lab;
    use crate::mesos::{AgentDouble, ExecutorProcess};

    /// Waits for TASK_RUNNING, the task's `DONE` and every update acknowledged; returns its
    /// stdout.
    pub fn wait_running_done(d: &AgentDouble, lab: &Lab, tid: &str, timeout: Duration) -> String {
        d.wait_state(tid, "TASK_RUNNING", timeout);
        let out = wait_done(lab, tid, timeout);
        assert!(d.wait(timeout, |st| st.uuids.values().all(|a| *a)));
        out
    }

    /// KILLs the task: TASK_KILLED without teardown errors, then the executor exits cleanly.
    pub fn kill_without_teardown_errors(
        d: &AgentDouble,
        exec: &mut ExecutorProcess,
        tid: &str,
        timeout: Duration,
    ) {
        d.kill(tid, None);
        d.wait_state(tid, "TASK_KILLED", timeout);
        let u = last_update(d);
        assert!(!message(&u).contains("teardown errors"), "{u}");
        assert_exits_cleanly(d, exec, timeout);
    }
}

/// An executor dying while it makes a task's volume, and the one that replaces it
/// (e2e_volume, e2e_disk).
pub mod volume_crash {
    use std::fmt::Display;
    use std::time::Duration;

    use serde_json::Value;

    use super::volumes::last_update;
    use super::Lab;
    use crate::mesos::{AgentDouble, ExecutorProcess, ExecutorSpec};

    /// Starts an executor (with the lab's volume settings, running `exec sleep 1000`) that
    /// aborts at berth-lvm crash point `at` while making the volume of `task`; `prepare` runs
    /// on the agent double before the launch. Returns the spec without the crash point (for
    /// the next executor), the double and the aborted executor.
    pub fn crash_while_making(
        lab: &Lab,
        tid: &str,
        task: Value,
        at: &str,
        timeout: Duration,
        prepare: impl FnOnce(&AgentDouble),
    ) -> (ExecutorSpec, AgentDouble, ExecutorProcess) {
        let mut spec = lab.spec(tid, Some("exec sleep 1000"));
        spec.env.extend(lab.volume_env(None));
        let mut crashing = spec.clone();
        crashing
            .env
            .push(("BERTH_EXECUTOR_VOLUME_CRASH_AT".into(), at.into()));
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        prepare(&d);
        d.launch_on_subscribe(task);
        let mut exec = d.spawn_executor(&crashing, Duration::from_secs(10));
        let status = exec
            .wait_exit(timeout)
            .unwrap_or_else(|| panic!("the executor did not abort: {}", exec.log()));
        assert!(!status.success());
        (spec, d, exec)
    }

    /// The volume `name`'s image file is in the lab's volumes dir.
    pub fn assert_volume_image(lab: &Lab, name: &impl Display, exec: &ExecutorProcess) {
        assert!(
            lab.volumes_dir().join(format!("{name}.img")).is_file(),
            "{:?}: {}",
            lab.volume_files(),
            exec.log()
        );
    }

    /// A new executor with `spec` fails the task with `REASON_EXECUTOR_TERMINATED` and exits;
    /// returns the update.
    pub fn replacement_fails_the_task(
        d: &AgentDouble,
        spec: &ExecutorSpec,
        tid: &str,
        timeout: Duration,
    ) -> Value {
        let mut exec2 = d.spawn_executor(spec, Duration::from_secs(10));
        d.wait_state(tid, "TASK_FAILED", timeout);
        let u = last_update(d);
        assert_eq!(u["reason"], "REASON_EXECUTOR_TERMINATED", "{u}");
        exec2
            .wait_exit(timeout)
            .unwrap_or_else(|| panic!("executor did not exit: {}", exec2.log()));
        u
    }
}
