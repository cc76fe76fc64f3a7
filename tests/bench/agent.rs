//! berth-agent's collector vs a shell collector, side by side in one run: 50 runc
//! containers laid out as berth tasks (a state dir with each container's checkpoint and
//! bundle, the executor's layout; a cgroup under one parent; a netns with a veth `eth0` each),
//! collected every 10 s for 6 steps by
//! - `berth-agent serve` (step_secs = 10, GC off, pushing to an Open-Falcon double), and
//! - a POSIX shell collector reading the same files the way the seed's collector did (per
//!   container: cpuacct usage and stat, cpu.stat throttling, memory usage/limit/stat, blkio
//!   bytes, cgroup.procs, `/proc/<pid>/net/dev`), building the Falcon JSON and POSTing it
//!   with curl to the same double.
//!
//! Printed: the CPU time (user + system, the process and all it reaped, from wait4) and
//! the peak RSS of each, and the ratios (goal: agent CPU <= 0.1x the shell's, agent RSS
//! <= 20 MiB). Nothing is asserted but that both delivered items for all 50 containers.
//!
//! Run (root, cgroup v1 hybrid or v2 host with runc):
//! `cargo build --release -p berth-agent && BERTH_BENCH_AGENT=target/release/berth-agent cargo bench -p berth-tests --bench agent --profile dev`
//! (without BERTH_BENCH_AGENT the agent next to the bench's deps dir is measured;
//! BERTH_BENCH_CONTAINERS and BERTH_BENCH_STEPS override 50 and 6).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::falcon::FalconDouble;
use berth_tests::mesos::harness::binary;
use serde_json::{json, Value};

const STEP: u64 = 10;

fn env_num(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything made, removed on drop.
struct World {
    dir: tempfile::TempDir,
    root: PathBuf,
    parent: String,
    ids: Vec<String>,
    netns: Vec<String>,
}

impl World {
    fn runc(&self) -> Command {
        let mut c = Command::new("runc");
        c.arg("--root").arg(&self.root);
        c
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.runc().args(["delete", "--force", id]).status();
        }
        for n in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
        if let Ok(ctrls) = std::fs::read_dir("/sys/fs/cgroup") {
            for c in ctrls.flatten() {
                let _ = std::fs::remove_dir(c.path().join(&self.parent));
            }
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&self.parent));
    }
}

/// `n` sleeping containers, each laid out as the executor lays out a running task.
fn world(n: usize) -> World {
    let dir = tempfile::Builder::new()
        .prefix("berth-bench-agent-")
        .tempdir()
        .expect("tempdir");
    let rootfs = dir.path().join("rootfs");
    berth_tests::rootfs::busybox(&rootfs, &[]).expect("busybox rootfs");
    let pid = std::process::id();
    let mut w = World {
        root: dir.path().join("runc"),
        parent: format!("berth-bench-{pid}"),
        ids: Vec::new(),
        netns: Vec::new(),
        dir,
    };
    let state = w.dir.path().join("state");
    let base = w.dir.path().join("base");
    std::fs::create_dir_all(&base).unwrap();
    run(Command::new("runc").args(["spec", "--bundle"]).arg(&base));
    let template: Value =
        serde_json::from_slice(&std::fs::read(base.join("config.json")).unwrap()).unwrap();
    for i in 0..n {
        let id = format!("berth-bench-{pid}-{i}");
        let ns = format!("berth-bench-{pid}-{i}");
        run(Command::new("ip").args(["netns", "add", &ns]));
        w.netns.push(ns.clone());
        run(Command::new("ip").args([
            "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
        ]));
        run(Command::new("ip").args(["-n", &ns, "link", "set", "eth0", "up"]));
        let pin = Path::new("/run/netns").join(&ns);
        let dir = state.join(&id);
        let bundle = dir.join("bundle");
        std::fs::create_dir_all(&bundle).unwrap();
        let mut spec = template.clone();
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(["sleep", "1000000"]);
        spec["process"]["env"] = json!([
            "PATH=/bin",
            format!("MESOS_TASK_ID=bench.{i}"),
            "MARATHON_APP_ID=/bench",
            "BERTH_CPUS=0.1"
        ]);
        spec["root"] = json!({"path": rootfs, "readonly": true});
        spec["hostname"] = json!(format!("bench-{i}"));
        spec["linux"]["cgroupsPath"] = json!(format!("/{}/{id}", w.parent));
        spec["linux"]["resources"] =
            json!({"memory": {"limit": 64 << 20}, "cpu": {"quota": 10000, "period": 100000}});
        let nss = spec["linux"]["namespaces"].as_array_mut().unwrap();
        nss.retain(|n| n["type"] != "network");
        nss.push(json!({"type": "network", "path": pin}));
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap(),
        )
        .unwrap();
        let cp = json!({"container_id": id, "steps": [["rundir", "done"], ["container", "done"]],
            "outputs": {"netns": pin, "ip": null, "binds": [], "wrapper_pid": null}});
        std::fs::write(dir.join("checkpoint.json"), cp.to_string()).unwrap();
        run(w
            .runc()
            .args(["run", "-d", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()));
        w.ids.push(id);
    }
    w
}

/// The seed's way: a shell loop over files, one Falcon POST per step.
const SHELL: &str = r#"
list=$1; url=$2; step=$3; steps=$4; n=0
while [ $n -lt $steps ]; do
  start=$(date +%s); body=""
  while read id cg pid; do
    c=/sys/fs/cgroup
    if [ -d $c/cpuacct$cg ]; then
      usage=$(cat $c/cpuacct$cg/cpuacct.usage)
      set -- $(cat $c/cpuacct$cg/cpuacct.stat); user=$2; sys=$4
      thr=$(awk '/^nr_throttled/{print $2}' $c/cpu$cg/cpu.stat)
      mem=$(cat $c/memory$cg/memory.usage_in_bytes)
      limit=$(cat $c/memory$cg/memory.limit_in_bytes)
      rss=$(awk '/^total_rss /{print $2}' $c/memory$cg/memory.stat)
      cache=$(awk '/^total_cache /{print $2}' $c/memory$cg/memory.stat)
      set -- $(awk '/Read/{r+=$3} /Write/{w+=$3} END{print r+0, w+0}' $c/blkio$cg/blkio.throttle.io_service_bytes); rd=$1; wr=$2
      procs=$(wc -l < $c/pids$cg/cgroup.procs)
    else
      usage=$(awk '/^usage_usec/{print $2*1000}' $c$cg/cpu.stat)
      user=$(awk '/^user_usec/{print $2}' $c$cg/cpu.stat); sys=$(awk '/^system_usec/{print $2}' $c$cg/cpu.stat)
      thr=$(awk '/^nr_throttled/{print $2}' $c$cg/cpu.stat)
      mem=$(cat $c$cg/memory.current); limit=$(cat $c$cg/memory.max)
      rss=$(awk '/^anon /{print $2}' $c$cg/memory.stat); cache=$(awk '/^file /{print $2}' $c$cg/memory.stat)
      rd=0; wr=0; procs=$(wc -l < $c$cg/cgroup.procs)
    fi
    set -- $(awk '/eth0:/{sub(/.*:/, ""); print $1, $2, $9, $10}' /proc/$pid/net/dev)
    ts=$(date +%s); t="app=/bench,task=$id"
    for kv in cpu.usage=$usage cpu.user=$user cpu.system=$sys cpu.throttled=$thr mem.memused=$mem \
      mem.memtotal=$limit mem.memused.hot=$rss mem.cache=$cache disk.io.read_bytes=$rd \
      disk.io.write_bytes=$wr proc.num=$procs net.if.in.bytes=$1 net.if.in.packets=$2 \
      net.if.out.bytes=$3 net.if.out.packets=$4; do
      body="$body{\"endpoint\":\"$id\",\"metric\":\"${kv%%=*}\",\"timestamp\":$ts,\"step\":$step,\"value\":${kv#*=},\"counterType\":\"GAUGE\",\"tags\":\"$t\"},"
    done
  done < $list
  curl -s -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "[${body%,}]" $url
  n=$((n+1)); left=$((step - ($(date +%s) - start)))
  [ $n -lt $steps ] && [ $left -gt 0 ] && sleep $left
done
"#;

/// wait4: (user + system CPU seconds of the child and what it reaped, its max RSS KiB).
fn wait_usage(child: &mut Child) -> (f64, i64) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid with valid pointers to locals.
    let r = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
    assert_eq!(r, child.id() as libc::pid_t, "wait4");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime) + secs(ru.ru_stime), ru.ru_maxrss)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .trim_end_matches(" kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "run the agent benchmark as root");
    let n = env_num("BERTH_BENCH_CONTAINERS", 50);
    let steps = env_num("BERTH_BENCH_STEPS", 6);
    let agent_bin = std::env::var_os("BERTH_BENCH_AGENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| binary("berth-agent"));
    let t0 = Instant::now();
    let w = world(n);
    eprintln!("{n} containers up in {:.1} s", t0.elapsed().as_secs_f64());
    let list = w.dir.path().join("containers.txt");
    let mut lines = String::new();
    for id in &w.ids {
        let st: Value = serde_json::from_str(&run(w.runc().args(["state", id]))).unwrap();
        lines.push_str(&format!("{id} /{}/{id} {}\n", w.parent, st["pid"]));
    }
    std::fs::write(&list, lines).unwrap();
    let (falcon_agent, falcon_shell) = (FalconDouble::start(), FalconDouble::start());
    let cfg = w.dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[serve]\nstep_secs = {STEP}\nstate_dir = \"{}\"\n[metrics]\nlisten = \"\"\n[falcon]\nurl = \"{}\"\n[gc]\ninterval_secs = 0\n",
            w.dir.path().join("state").display(),
            falcon_agent.url()
        ),
    )
    .unwrap();
    // Both start together and run the same number of steps.
    let mut agent = Command::new(&agent_bin)
        .args(["serve", "--config"])
        .arg(&cfg)
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("berth-agent serve");
    let mut shell = Command::new("/bin/sh")
        .arg("-c")
        .arg(SHELL)
        .arg("collector")
        .arg(&list)
        .arg(falcon_shell.url())
        .arg(STEP.to_string())
        .arg(steps.to_string())
        .spawn()
        .expect("sh");
    // The agent collects at 0, 10, ... s: stop it just after its last step.
    let run_for = Duration::from_secs(STEP * (steps as u64 - 1)) + Duration::from_secs(5);
    std::thread::sleep(run_for);
    let (rss, hwm) = (
        status_kib(agent.id(), "VmRSS:"),
        status_kib(agent.id(), "VmHWM:"),
    );
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(agent.id() as libc::pid_t, libc::SIGTERM) };
    let (agent_cpu, _) = wait_usage(&mut agent);
    let (shell_cpu, shell_rss) = wait_usage(&mut shell);
    let endpoints = |f: &FalconDouble| {
        f.with(|r| {
            let mut e: Vec<String> = r
                .items
                .iter()
                .filter_map(|i| i["endpoint"].as_str().map(str::to_string))
                .collect();
            e.sort();
            e.dedup();
            (e.len(), r.items.len(), r.pushes, r.invalid.len())
        })
    };
    let (ae, ai, ap, ainv) = endpoints(&falcon_agent);
    let (se, si, sp, sinv) = endpoints(&falcon_shell);
    println!("agent collector bench: {n} containers, {steps} steps of {STEP} s");
    println!("  berth-agent serve ({}): CPU {agent_cpu:.3} s, RSS {:.1} MiB (peak {:.1} MiB); {ae} endpoints, {ai} items in {ap} pushes, {ainv} invalid",
        agent_bin.display(), rss as f64 / 1024.0, hwm as f64 / 1024.0);
    println!("  shell collector: CPU {shell_cpu:.3} s, max RSS of one process {:.1} MiB; {se} endpoints, {si} items in {sp} pushes, {sinv} invalid",
        shell_rss as f64 / 1024.0);
    println!(
        "  ratio agent/shell CPU: {:.3}x (goal <= 0.1x); agent peak RSS {:.1} MiB (goal <= 20 MiB)",
        agent_cpu / shell_cpu.max(1e-9),
        hwm as f64 / 1024.0
    );
    assert!(
        ae >= n && se >= n,
        "not every container was collected: agent {ae}, shell {se}"
    );
    drop(w);
}
