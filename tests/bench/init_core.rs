//! berth-init's tini mode (the static musl build, as the executor mounts it) against
//! tini, tini-static and dumb-init, side by side in one run:
//!
//! 1. RSS of the idle init (PID 1 of a new PID namespace) with one `sleep` child;
//! 2. time to reap a burst of 10,000 orphans (PID 1; released at once, timed until the
//!    init's children list holds only the workload again), and the CPU time the init
//!    itself spends on it (its schedstat run time: the init's own cost, which the wall
//!    time, dominated by 10,000 exits on the machine's cores, hides);
//! 3. start-to-exec latency: from spawning the init to its child running;
//! 4. SIGTERM-to-exit latency with a child (`sleep`) that dies at once;
//! 5. binary size.
//!
//! Run as root: `cargo bench -p berth-tests --bench init_core`. It builds berth-init in
//! release mode itself (`cargo build --release --target x86_64-unknown-linux-musl -p
//! berth-init`). The bench binary doubles
//! as the workload: `--burst N` (orphan generator) and `--stamp` (prints the monotonic
//! clock on start).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ORPHANS: usize = 10_000;
const STATIC_TARGET: &str = berth_tests::mesos::harness::STATIC_TARGET;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--burst") {
        burst(args[i + 1].parse().expect("--burst N"));
    }
    if args.iter().any(|a| a == "--stamp") {
        println!("{}", monotonic_ns());
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the init_core bench runs as root");

    let berth = build_berth_init();
    let inits = [
        Init {
            name: "berth-init",
            path: berth,
            subreaper: &["-s"],
        },
        Init {
            name: "tini",
            path: PathBuf::from("/usr/bin/tini"),
            subreaper: &["-s"],
        },
        Init {
            name: "tini-static",
            path: PathBuf::from("/usr/bin/tini-static"),
            subreaper: &["-s"],
        },
        Init {
            name: "dumb-init",
            path: PathBuf::from("/usr/bin/dumb-init"),
            subreaper: &[],
        },
    ];
    for init in &inits {
        assert!(
            init.path.exists(),
            "{} not found at {}",
            init.name,
            init.path.display()
        );
    }
    let me = std::env::current_exe().expect("current_exe");

    let mut rows: Vec<Row> = Vec::new();
    rows.push(Row::interleaved(
        "idle RSS, one sleep child (KiB, median of 3)",
        &inits,
        3,
        rss_kib,
    ));
    let reaps = Row::interleaved_pairs(
        [
            format!("reap a burst of {ORPHANS} orphans (ms, median of 9)"),
            "init CPU time while reaping (ms, median of 9)".to_string(),
        ],
        &inits,
        9,
        |i| reap_burst_ms(i, &me),
    );
    rows.extend(reaps);
    rows.push(Row::interleaved(
        "start-to-exec latency (us, median of 300)",
        &inits,
        300,
        |i| exec_latency_us(Some(i), &me),
    ));
    rows.push(Row::interleaved(
        "SIGTERM-to-exit latency (us, median of 100)",
        &inits,
        100,
        term_latency_us,
    ));
    rows.push(Row::new("binary size (KiB)", &inits, |i| {
        std::fs::metadata(&i.path).unwrap().len() as f64 / 1024.0
    }));

    println!();
    print!("{:<50}", "figure");
    for i in &inits {
        print!(" {:>12}", i.name);
    }
    println!(" {:>12} {:>12}", "berth/tini", "berth/t-stat");
    for row in &rows {
        print!("{:<50}", row.name);
        for v in &row.values {
            print!(" {v:>12.1}");
        }
        let b = row.values[0];
        println!(" {:>12.2} {:>12.2}", b / row.values[1], b / row.values[2]);
    }
    let baseline = median(300, || exec_latency_us(None, &me));
    println!("\nreference: spawning the probe directly (no init): {baseline:.1} us");
    println!("tini and dumb-init are Debian's dynamically linked builds (libc not counted).");
}

struct Init {
    name: &'static str,
    path: PathBuf,
    subreaper: &'static [&'static str],
}

struct Row {
    name: String,
    values: Vec<f64>,
}

/// "berth-init 1.0, tini 2.0, ..."
fn line(inits: &[Init], values: &[f64]) -> String {
    inits
        .iter()
        .zip(values)
        .map(|(i, v)| format!("{} {v:.1}", i.name))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Row {
    fn new(name: &str, inits: &[Init], f: impl Fn(&Init) -> f64) -> Self {
        let values: Vec<f64> = inits.iter().map(f).collect();
        println!("{name}: {}", line(inits, &values));
        Self {
            name: name.to_string(),
            values,
        }
    }
}

impl Row {
    /// Samples the inits in turn, `n` rounds, so load changes on the machine hit them
    /// alike, each round starting one init later (no init always follows the same one);
    /// reports each one's median.
    fn interleaved(name: &str, inits: &[Init], n: usize, f: impl Fn(&Init) -> f64) -> Self {
        Self::of_samples(name, inits, Self::rounds(inits, n, f))
    }

    /// As [`Self::interleaved`] for a measurement giving two figures at once.
    fn interleaved_pairs(
        names: [String; 2],
        inits: &[Init],
        n: usize,
        f: impl Fn(&Init) -> (f64, f64),
    ) -> [Self; 2] {
        let both = Self::rounds(inits, n, f);
        let pick = |second: bool| -> Vec<Vec<f64>> {
            both.iter()
                .map(|v| v.iter().map(|p| if second { p.1 } else { p.0 }).collect())
                .collect()
        };
        let [a, b] = names;
        [
            Self::of_samples(&a, inits, pick(false)),
            Self::of_samples(&b, inits, pick(true)),
        ]
    }

    /// `n` rounds of `f` over every init, round `r` starting at init `r mod len`; the
    /// samples per init, in the inits' order.
    fn rounds<T>(inits: &[Init], n: usize, f: impl Fn(&Init) -> T) -> Vec<Vec<T>> {
        let mut samples: Vec<Vec<T>> = (0..inits.len()).map(|_| Vec::new()).collect();
        for r in 0..n {
            for j in 0..inits.len() {
                let k = (r + j) % inits.len();
                samples[k].push(f(&inits[k]));
            }
        }
        samples
    }

    fn of_samples(name: &str, inits: &[Init], mut samples: Vec<Vec<f64>>) -> Self {
        let n = samples[0].len();
        for (k, v) in samples.iter_mut().enumerate() {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            if n <= 9 {
                println!("  {} samples: {v:.1?}", inits[k].name);
            } else {
                println!("  {} min {:.1} max {:.1}", inits[k].name, v[0], v[n - 1]);
            }
        }
        let values: Vec<f64> = samples.iter().map(|v| v[v.len() / 2]).collect();
        println!("{name}: {}", line(inits, &values));
        Self {
            name: name.to_string(),
            values,
        }
    }
}

fn median(n: usize, mut f: impl FnMut() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..n).map(|_| f()).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[n / 2]
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn build_berth_init() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            STATIC_TARGET,
            "-p",
            "berth-init",
        ])
        .current_dir(&root)
        .status()
        .expect("cargo build");
    assert!(
        status.success(),
        "cargo build --release --target {STATIC_TARGET} -p berth-init failed"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join(STATIC_TARGET).join("release/berth-init")
}

/// A started process tree killed (with every descendant) on drop.
struct Tree(Child);

impl Tree {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        for _ in 0..3 {
            let all = descendants(self.pid());
            if all.is_empty() {
                break;
            }
            for p in all {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for c in children(pid) {
        out.push(c);
        out.extend(descendants(c));
    }
    out
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// `unshare --pid --fork --mount-proc --kill-child INIT -- args`; returns the tree and
/// the init's pid.
fn start_pid1(init: &Init, args: &[&str], stdio_piped: bool) -> (Tree, i32) {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child", "--"])
        .arg(&init.path)
        .arg("--")
        .args(args);
    if stdio_piped {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    }
    let tree = Tree(cmd.spawn().expect("unshare"));
    let mut init_pid = 0;
    wait_until("the init to start", || {
        init_pid = children(tree.pid()).first().copied().unwrap_or(0);
        init_pid != 0 && comm(init_pid) != "unshare"
    });
    (tree, init_pid)
}

fn rss_kib(init: &Init) -> f64 {
    let (tree, pid) = start_pid1(init, &["sleep", "1000"], false);
    wait_until("the sleep child", || {
        children(pid).iter().any(|&c| comm(c) == "sleep")
    });
    std::thread::sleep(Duration::from_millis(200));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("VmRSS");
    drop(tree);
    rss
}

/// The wall time from releasing the burst until the init has reaped it (ms), and the CPU
/// time the init ran meanwhile (ms).
fn reap_burst_ms(init: &Init, me: &Path) -> (f64, f64) {
    let me = me.to_str().unwrap();
    let n = ORPHANS.to_string();
    let (mut tree, pid) = start_pid1(init, &[me, "--burst", &n], true);
    let mut stdin = tree.0.stdin.take().unwrap();
    let mut stdout = BufReader::new(tree.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "workload did not start");
    // All orphans are now children of the init, blocked on a pipe.
    let kids = children(pid).len();
    assert!(
        kids > ORPHANS,
        "only {kids} children reparented to {}",
        init.name
    );
    let cpu0 = run_ns(pid);
    let t0 = Instant::now();
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();
    let deadline = t0 + Duration::from_secs(120);
    loop {
        if at_most_one_child(pid) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not reap the burst",
            init.name
        );
        std::thread::sleep(Duration::from_micros(500));
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let cpu_ms = (run_ns(pid) - cpu0) as f64 / 1e6;
    drop(stdin);
    let mut rest = Vec::new();
    let _ = stdout.read_to_end(&mut rest);
    drop(tree);
    (ms, cpu_ms)
}

/// Whether `pid` has at most one child, from the first bytes of its children list: cheap
/// with 10,000 children (reading the whole list on every poll would compete with the
/// init's own wait calls for the kernel's time).
fn at_most_one_child(pid: i32) -> bool {
    let mut f = match std::fs::File::open(format!("/proc/{pid}/task/{pid}/children")) {
        Ok(f) => f,
        Err(_) => return true,
    };
    let mut buf = [0u8; 32];
    let n = f.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .count()
        <= 1
}

/// The time `pid` has run on a CPU so far (ns; the first field of its schedstat).
fn run_ns(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("schedstat")
}

fn exec_latency_us(init: Option<&Init>, me: &Path) -> f64 {
    let mut cmd = match init {
        Some(i) => {
            let mut c = Command::new(&i.path);
            c.args(i.subreaper).arg("--").arg(me);
            c
        }
        None => Command::new(me),
    };
    cmd.arg("--stamp")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let t0 = monotonic_ns();
    let out = cmd.output().expect("spawn");
    let stamp: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("stamp");
    (stamp - t0) as f64 / 1000.0
}

fn term_latency_us(init: &Init) -> f64 {
    let mut cmd = Command::new(&init.path);
    cmd.args(init.subreaper)
        .args(["--", "sleep", "1000"])
        .stderr(Stdio::null());
    let mut tree = Tree(cmd.spawn().expect("spawn"));
    let pid = tree.pid();
    wait_until("the sleep child", || {
        children(pid).iter().any(|&c| comm(c) == "sleep")
    });
    let t0 = Instant::now();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tree.0.wait().expect("wait");
    let us = t0.elapsed().as_secs_f64() * 1e6;
    assert_eq!(status.code(), Some(143), "{} after SIGTERM", init.name);
    us
}

/// Workload for (2): forks a middle process that forks `n` children and exits, so the
/// children are reparented to the init; they block reading a pipe. Prints "ready", waits
/// for a line on stdin, closes the pipe (every child exits at once), then waits for
/// stdin to close.
fn burst(n: usize) -> ! {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let [r, w] = fds;
    // SAFETY: the process is single-threaded here; children only call read/_exit.
    let middle = unsafe { libc::fork() };
    if middle == 0 {
        for _ in 0..n {
            // SAFETY: as above.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let mut b = [0u8; 1];
                // SAFETY: close/read/_exit on our own descriptors and buffer.
                unsafe {
                    libc::close(w);
                    libc::read(r, b.as_mut_ptr().cast(), 1);
                    libc::_exit(0);
                }
            }
            assert!(pid > 0, "fork failed");
        }
        // SAFETY: _exit has no preconditions.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(middle, &mut status, 0) };
    // SAFETY: the read end is only for the children.
    unsafe { libc::close(r) };
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    // SAFETY: closing our own write end releases every child.
    unsafe { libc::close(w) };
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    std::process::exit(0);
}
