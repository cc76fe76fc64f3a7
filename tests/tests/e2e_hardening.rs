//! The container's hardening, checked from inside a task (agent double, the real
//! executor, berth-init, a busybox image), under runc and under crun:
//! - seccomp filter mode (`Seccomp: 2`), `unshare -U` refused with EPERM, a normal app
//!   (and a COMMAND health check) still runs;
//! - its own cgroup namespace (not the host's);
//! - Docker's masked paths unreadable (`/proc/kcore`, `/proc/interrupts`, powercap);
//! - RLIMIT_NOFILE 65536 and RLIMIT_CORE 0 (not the agent's), memory+swap limited to
//!   the memory limit (memory.memsw) where the host accounts swap;
//! - `BERTH_EXECUTOR_SECCOMP=unconfined` turns the filter off.
//!
//! And with networking (berth-init keeps NET_ADMIN/NET_RAW for DHCP): a COMMAND health
//! check runs with the services' capabilities, without NET_ADMIN/NET_RAW.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_tests::lab::{self, TaskNetns};
use berth_tests::mesos::harness::{Lab as ExecLab, RuntimeLab, TestRuntime};
use berth_tests::mesos::process::{ExecutorProcess, ExecutorSpec};
use berth_tests::mesos::AgentDouble;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;

macro_rules! under_each_runtime {
    ($($scenario:ident),* $(,)?) => {
        mod runc {
            $(#[test] fn $scenario() { super::$scenario(super::TestRuntime::Runc) })*
        }
        mod crun {
            $(#[test] fn $scenario() { super::$scenario(super::TestRuntime::Crun) })*
        }
    };
}

under_each_runtime!(a_task_is_confined_and_still_runs, seccomp_can_be_turned_off);

/// What the task records about itself in the sandbox, then it keeps running.
const PROBE: &str = r#"S=/mnt/mesos/sandbox
grep -E '^(Seccomp|CapEff):' /proc/self/status > $S/status
unshare -U true 2> $S/unshare.err; echo $? > $S/unshare.rc
readlink /proc/self/ns/cgroup > $S/cgroupns
cat /proc/self/cgroup > $S/cgroup
ulimit -n > $S/nofile; ulimit -c > $S/core
for p in /proc/kcore /proc/interrupts /proc/keys /proc/timer_list; do
  if [ -s $p ] || head -c1 $p 2>/dev/null | grep -q .; then echo "$p readable"; fi
done > $S/masked
ls -A /sys/devices/virtual/powercap 2>/dev/null | wc -l > $S/powercap
echo > $S/ready
exec sleep 1000"#;

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .trim()
        .to_string()
}

/// Launches a task running `cmd` with a COMMAND health check and waits until it is
/// healthy and has written its `ready` file.
fn launch(
    lab: &RuntimeLab,
    tid: &str,
    cmd: &str,
    env: &[(&str, &str)],
) -> (AgentDouble, ExecutorProcess, ExecutorSpec) {
    let mut spec = lab.spec(tid, Some(cmd));
    for (k, v) in env {
        spec.env.push((k.to_string(), v.to_string()));
    }
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    let mut task = lab.task(tid);
    task["health_check"] = json!({"type": "COMMAND", "command": {"value": "test -e /mnt/mesos/sandbox/ready"},
        "delay_seconds": 0.0, "interval_seconds": 1.0, "grace_period_seconds": 10.0, "timeout_seconds": 5.0});
    d.launch_on_subscribe(task);
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec), "log: {}", exec.log());
    d.wait_state(tid, "TASK_RUNNING", T);
    let ready = spec.sandbox.join("ready");
    assert!(
        d.wait(T, |_| ready.exists()),
        "the task never got ready: {:#?}\n{}",
        d.state().updates,
        exec.log()
    );
    let healthy = d.wait(T, |st| st.updates.iter().any(|u| u["healthy"] == true));
    assert!(
        healthy,
        "no healthy update: {:#?}\n{}",
        d.state().updates,
        exec.log()
    );
    (d, exec, spec)
}

fn stop(lab: &RuntimeLab, d: &AgentDouble, mut exec: ExecutorProcess, tid: &str) {
    d.kill(tid, Some(Duration::from_secs(2)));
    d.wait_state(tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}

fn a_task_is_confined_and_still_runs(rt: TestRuntime) {
    lab::require_root();
    let lab = RuntimeLab::new("harden", rt);
    let tid = lab.task_id("app");
    let (d, exec, spec) = launch(&lab, &tid, PROBE, &[]);
    let sb = &spec.sandbox;

    // seccomp: filter mode, and no new user namespace.
    let status = read(sb, "status");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    assert_ne!(read(sb, "unshare.rc"), "0", "unshare -U succeeded");
    let err = read(sb, "unshare.err");
    assert!(err.contains("Operation not permitted"), "{err}");

    // Its own cgroup namespace, where its cgroup is the root.
    let host_ns = std::fs::read_link("/proc/self/ns/cgroup").unwrap();
    let ns = read(sb, "cgroupns");
    assert!(ns.starts_with("cgroup:["), "{ns}");
    assert_ne!(Path::new(&ns), host_ns, "the host's cgroup namespace");
    let cg = read(sb, "cgroup");
    assert!(
        !cg.contains(&lab.cgroup_parent),
        "the host's cgroup tree is visible: {cg}"
    );

    // Masked paths.
    assert_eq!(read(sb, "masked"), "", "readable masked paths");
    assert_eq!(read(sb, "powercap"), "0", "powercap is visible");

    // rlimits: 65536 open files (capped at the executor's own hard limit where it
    // cannot raise it: no CAP_SYS_RESOURCE, as in some CI sandboxes), no core files.
    assert_eq!(read(sb, "nofile"), expected_nofile().to_string());
    assert_eq!(read(sb, "core"), "0");

    // memory+swap = memory (64 MB) where the host accounts swap.
    let groups = lab.cgroups();
    let memsw: Vec<String> = groups
        .iter()
        .map(|g| g.join("memory.memsw.limit_in_bytes"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|v| v.trim().to_string())
        .collect();
    if Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
        assert!(
            memsw.iter().any(|l| l == "67108864"),
            "{memsw:?} in {groups:?}"
        );
    }
    let swap_max: Vec<String> = groups
        .iter()
        .map(|g| g.join("memory.swap.max"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|v| v.trim().to_string())
        .collect();
    assert!(swap_max.iter().all(|v| v == "0"), "{swap_max:?}");

    // The config the runtime got carries the profile (the check above proves it applies).
    let container = &lab.containers()[0];
    let out = lab
        .runtime_cmd()
        .args(["state", container])
        .output()
        .unwrap();
    let state: Value = serde_json::from_slice(&out.stdout).expect("state");
    let config: Value = serde_json::from_slice(
        &std::fs::read(Path::new(state["bundle"].as_str().unwrap()).join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["linux"]["seccomp"]["defaultAction"],
        "SCMP_ACT_ALLOW"
    );

    stop(&lab, &d, exec, &tid);
}

fn seccomp_can_be_turned_off(rt: TestRuntime) {
    lab::require_root();
    let lab = RuntimeLab::new("unconf", rt);
    let tid = lab.task_id("app");
    let (d, exec, spec) = launch(
        &lab,
        &tid,
        PROBE,
        &[("BERTH_EXECUTOR_SECCOMP", "unconfined")],
    );
    let status = read(&spec.sandbox, "status");
    assert!(status.contains("Seccomp:\t0"), "{status}");
    stop(&lab, &d, exec, &tid);
}

/// RLIMIT_NOFILE the executor (started by this test) gives its tasks.
fn expected_nofile() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .map(cap_mask)
        .unwrap();
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) fills the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    if eff & (1 << 24) != 0 {
        65536
    } else {
        65536.min(r.rlim_max)
    }
}

/// Bits of a `CapEff:` line's hex mask.
fn cap_mask(line: &str) -> u64 {
    let hex = line
        .split_whitespace()
        .last()
        .unwrap_or_else(|| panic!("not a caps line: {line}"));
    u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("not hex: {line}"))
}

#[test]
fn a_health_check_runs_without_init_s_network_capabilities() {
    lab::require_root();
    let net = lab::Lab::new();
    let lab = ExecLab::new("hcaps");
    let tid = lab.task_id("web");
    let _guard = TaskNetns::new(&tid);
    let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
    spec.env
        .push(("BERTH_EXECUTOR_NET_PARENT".into(), net.parent.clone()));
    let mut task = lab.task(&tid);
    task["health_check"] = json!({"type": "COMMAND",
        "command": {"value": "grep -E '^Cap(Eff|Bnd):' /proc/self/status > /mnt/mesos/sandbox/check-caps"},
        "delay_seconds": 0.0, "interval_seconds": 1.0, "grace_period_seconds": 10.0, "timeout_seconds": 5.0});
    let (d, mut exec) = net.host.run_in(|| {
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        d.launch_on_subscribe(task);
        let exec = d.spawn_executor(&spec, Duration::from_secs(10));
        (d, exec)
    });
    d.wait_state(&tid, "TASK_RUNNING", T);
    let healthy = d.wait(T, |st| st.updates.iter().any(|u| u["healthy"] == true));
    assert!(
        healthy,
        "no healthy update: {:#?}\n{}",
        d.state().updates,
        exec.log()
    );
    // The container has the network capabilities (berth-init's DHCP needs them)...
    let out = Command::new("runc")
        .arg("--root")
        .arg(&lab.runc_root)
        .args(["state", &format!("berth-{tid}")])
        .output()
        .expect("runc state");
    let state: Value = serde_json::from_slice(&out.stdout).expect("runc state");
    let config: Value = serde_json::from_slice(
        &std::fs::read(Path::new(state["bundle"].as_str().unwrap()).join("config.json")).unwrap(),
    )
    .unwrap();
    let eff = config["process"]["capabilities"]["effective"].clone();
    assert!(
        eff.as_array().unwrap().contains(&json!("CAP_NET_ADMIN")),
        "{eff}"
    );
    // ... the check does not.
    let caps = std::fs::read_to_string(spec.sandbox.join("check-caps")).expect("check-caps");
    for line in caps.lines() {
        let m = cap_mask(line);
        assert_eq!(m & (1 << CAP_NET_ADMIN), 0, "NET_ADMIN in {line}");
        assert_eq!(m & (1 << CAP_NET_RAW), 0, "NET_RAW in {line}");
        assert_ne!(m & (1 << 5), 0, "CAP_KILL missing in {line}");
    }
    assert_eq!(caps.lines().count(), 2, "{caps}");
    d.kill(&tid, Some(Duration::from_secs(2)));
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}
