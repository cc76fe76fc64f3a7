//! berth-init supervising 10 `sleep` services vs supervisord and s6-svscan supervising the
//! same 10: total RSS of the supervision tree, CPU used over an idle window, and the time
//! from SIGTERM to everything exited. Each runs as PID 1 of its own PID namespace
//! (`unshare --pid --fork --mount-proc`); the three idle side by side in one window.
//!
//! Run (root): `cargo build --release -p berth-init && cargo bench -p berth-tests --bench init_sup`
//! Options (environment): BERTH_BENCH_IDLE_SECS (default 60), BERTH_INIT_BIN (default
//! target/release/berth-init, else target/debug/berth-init).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVICES: usize = 10;
const SLEEP_ARG: &str = "100000";

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn geteuid() -> u32;
    fn sysconf(name: i32) -> i64;
}
const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;
const SC_CLK_TCK: i32 = 2;

fn tick_hz() -> u64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { sysconf(SC_CLK_TCK) }.max(1) as u64
}

fn send(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a pid this bench started; no memory is involved.
    unsafe { kill(pid, sig) };
}

struct Tree {
    name: &'static str,
    unshare: Child,
    pid1: i32,
    _dir: PathBuf,
}

impl Drop for Tree {
    fn drop(&mut self) {
        if self.unshare.try_wait().ok().flatten().is_none() {
            send(self.pid1, SIGKILL);
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
        }
    }
}

fn start(name: &'static str, dir: PathBuf, argv: &[String]) -> Tree {
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let upid = unshare.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid1 = loop {
        let c = std::fs::read_to_string(format!("/proc/{upid}/task/{upid}/children"))
            .unwrap_or_default();
        if let Some(p) = c.split_whitespace().next() {
            break p.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "{name} did not start");
        std::thread::sleep(Duration::from_millis(5));
    };
    Tree {
        name,
        unshare,
        pid1,
        _dir: dir,
    }
}

/// (pid, comm, rss KiB, cpu ticks) of every process in pid1's namespace.
fn members(pid1: i32) -> Vec<(i32, String, u64, u64)> {
    let Ok(ns) = std::fs::read_link(format!("/proc/{pid1}/ns/pid")) else {
        return vec![];
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
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
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let comm = stat[stat.find('(').unwrap() + 1..stat.rfind(')').unwrap()].to_string();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        // CPU time in ns: schedstat's run time (precise), else utime+stime ticks.
        let cpu = std::fs::read_to_string(format!("/proc/{p}/schedstat"))
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or_else(|| {
                (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) * 1_000_000_000
                    / tick_hz()
            });
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        let rss = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        out.push((p, comm, rss, cpu));
    }
    out
}

/// The supervision tree: everything in the namespace except the services themselves.
fn supervision(pid1: i32) -> Vec<(i32, String, u64, u64)> {
    members(pid1)
        .into_iter()
        .filter(|m| m.1 != "sleep")
        .collect()
}

fn sleeps(pid1: i32) -> usize {
    members(pid1).iter().filter(|m| m.1 == "sleep").count()
}

fn berth(dir: &Path, bin: &Path) -> Tree {
    let mut spec = String::from("services:\n");
    for i in 0..SERVICES {
        writeln!(spec, "  s{i}:\n    command: [sleep, '{SLEEP_ARG}']").unwrap();
    }
    std::fs::write(dir.join("app.yaml"), spec).unwrap();
    let argv = vec![
        bin.display().to_string(),
        "--spec".into(),
        dir.join("app.yaml").display().to_string(),
        "--socket".into(),
        dir.join("init.sock").display().to_string(),
    ];
    start("berth-init", dir.into(), &argv)
}

fn supervisord(dir: &Path) -> Tree {
    let d = dir.display();
    let mut conf = format!(
        "[supervisord]\nnodaemon=true\nlogfile={d}/supervisord.log\npidfile={d}/supervisord.pid\nuser=root\n"
    );
    for i in 0..SERVICES {
        writeln!(conf, "[program:s{i}]\ncommand=sleep {SLEEP_ARG}\nautorestart=true\nstdout_logfile=NONE\nstderr_logfile=NONE").unwrap();
    }
    std::fs::write(dir.join("supervisord.conf"), conf).unwrap();
    let argv = vec![
        "supervisord".into(),
        "-n".into(),
        "-c".into(),
        dir.join("supervisord.conf").display().to_string(),
    ];
    start("supervisord", dir.into(), &argv)
}

fn s6(dir: &Path) -> Tree {
    use std::os::unix::fs::PermissionsExt;
    let scan = dir.join("scan");
    for i in 0..SERVICES {
        let svc = scan.join(format!("s{i}"));
        std::fs::create_dir_all(&svc).unwrap();
        std::fs::write(
            svc.join("run"),
            format!("#!/bin/sh\nexec sleep {SLEEP_ARG}\n"),
        )
        .unwrap();
        std::fs::set_permissions(svc.join("run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let argv = vec!["s6-svscan".into(), scan.display().to_string()];
    start("s6-svscan", dir.into(), &argv)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.3}x", a / b)
    } else {
        "n/a".into()
    }
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { geteuid() };
    assert_eq!(
        euid, 0,
        "the benchmark makes PID namespaces: run it as root"
    );
    let idle: u64 = std::env::var("BERTH_BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = std::env::var_os("BERTH_INIT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let release = root.join("target/release/berth-init");
            if release.exists() {
                release
            } else {
                root.join("target/debug/berth-init")
            }
        });
    assert!(
        bin.exists(),
        "build berth-init first: cargo build --release -p berth-init"
    );
    let tmp = std::env::temp_dir().join(format!("berth-bench-init-sup-{}", std::process::id()));
    let dirs: Vec<PathBuf> = ["berth", "supervisord", "s6"]
        .iter()
        .map(|n| tmp.join(n))
        .collect();
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    println!(
        "init_sup: {SERVICES} sleep services each; berth-init = {}",
        bin.display()
    );
    let mut trees = vec![berth(&dirs[0], &bin), supervisord(&dirs[1]), s6(&dirs[2])];
    for t in &trees {
        let deadline = Instant::now() + Duration::from_secs(30);
        while sleeps(t.pid1) < SERVICES {
            assert!(
                Instant::now() < deadline,
                "{}: services did not all start",
                t.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Let start-up settle before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let rss: Vec<u64> = trees
        .iter()
        .map(|t| supervision(t.pid1).iter().map(|m| m.2).sum())
        .collect();
    let procs: Vec<usize> = trees.iter().map(|t| supervision(t.pid1).len()).collect();
    let cpu0: Vec<u64> = trees
        .iter()
        .map(|t| supervision(t.pid1).iter().map(|m| m.3).sum())
        .collect();
    std::thread::sleep(Duration::from_secs(idle));
    let cpu1: Vec<u64> = trees
        .iter()
        .map(|t| supervision(t.pid1).iter().map(|m| m.3).sum())
        .collect();
    let cpu_ms: Vec<f64> = cpu0
        .iter()
        .zip(&cpu1)
        .map(|(a, b)| (b - a) as f64 / 1e6)
        .collect();

    let mut stop_ms = Vec::new();
    for t in &mut trees {
        let t0 = Instant::now();
        send(t.pid1, SIGTERM);
        let deadline = t0 + Duration::from_secs(60);
        loop {
            if t.unshare.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop within 60 s",
                t.name
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        stop_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    drop(trees);
    let _ = std::fs::remove_dir_all(&tmp);

    println!(
        "{:<12} {:>10} {:>6} {:>14} {:>14}",
        "",
        "RSS KiB",
        "procs",
        format!("CPU ms/{idle}s"),
        "SIGTERM->exit ms"
    );
    for (i, name) in ["berth-init", "supervisord", "s6-svscan"]
        .iter()
        .enumerate()
    {
        println!(
            "{:<12} {:>10} {:>6} {:>14.2} {:>14.1}",
            name, rss[i], procs[i], cpu_ms[i], stop_ms[i]
        );
    }
    for (i, name) in [(1, "supervisord"), (2, "s6-svscan")] {
        println!(
            "berth-init / {name}: RSS {}, CPU {}, stop time {}",
            ratio(rss[0] as f64, rss[i] as f64),
            ratio(cpu_ms[0], cpu_ms[i]),
            ratio(stop_ms[0], stop_ms[i])
        );
    }
}
