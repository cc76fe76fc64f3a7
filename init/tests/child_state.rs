//! What the child inherits: exactly the signal mask and ignored signals the init was
//! started with (tini's sigconf test), and no descriptor the init opened.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;

use common::{assert_root, start, Mode, TIMEOUT};

fn bit(signo: i32) -> u64 {
    1 << (signo - 1)
}

/// glibc's internal signals (32, 33): `posix_spawn` leaves them ignored in children of
/// threaded programs, and no libc call can read or change them, so berth-init passes
/// them through untouched like any inherited state; the tests look at the others.
const GLIBC_INTERNAL: u64 = 0b11 << 31;

/// Parses SigBlk and SigIgn out of a /proc/PID/status text, without glibc's signals.
fn parse_state(text: &str) -> (u64, u64) {
    let field = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).expect(name);
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    (
        field("SigBlk:") & !GLIBC_INTERNAL,
        field("SigIgn:") & !GLIBC_INTERNAL,
    )
}

/// Runs `program -s -- cat /proc/self/status` (cat, unlike grep, installs no handler) with TTIN, ILL and TERM
/// blocked and TTOU, SEGV and INT ignored (tini's sigconf setup); returns (blocked,
/// ignored) as the child saw them.
fn child_signal_state(program: &str) -> (u64, u64) {
    let mut cmd = Command::new(program);
    cmd.args(["-s", "--", "cat", "/proc/self/status"]);
    // SAFETY: only async-signal-safe calls (sigemptyset/sigaddset/sigprocmask/signal).
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGTTIN, libc::SIGILL, libc::SIGTERM] {
                libc::sigaddset(&mut set, s);
            }
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            for s in [libc::SIGTTOU, libc::SIGSEGV, libc::SIGINT] {
                libc::signal(s, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{program}: {out:?}");
    parse_state(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn child_gets_exactly_the_inherited_signal_state() {
    assert_root();
    let (blocked, ignored) = child_signal_state(common::BIN);
    assert_eq!(
        blocked,
        bit(libc::SIGTTIN) | bit(libc::SIGILL) | bit(libc::SIGTERM),
        "{blocked:#x}"
    );
    assert_eq!(
        ignored,
        bit(libc::SIGTTOU) | bit(libc::SIGSEGV) | bit(libc::SIGINT),
        "{ignored:#x}"
    );
    // And the same as tini 0.19, the reference.
    assert_eq!(child_signal_state("tini"), (blocked, ignored));
}

#[test]
fn child_gets_a_clean_state_from_a_clean_start() {
    assert_root();
    let done = start(Mode::Pid1, &["--", "cat", "/proc/self/status"]).wait(TIMEOUT);
    assert_eq!(done.code(), 0);
    assert_eq!(parse_state(&done.stdout), (0, 0), "{}", done.stdout);
}

fn fds_of(pid: i32) -> Vec<(String, String)> {
    let mut fds: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let target = std::fs::read_link(e.path()).map(|p| p.display().to_string());
            (
                e.file_name().to_string_lossy().into_owned(),
                target.unwrap_or_default(),
            )
        })
        .collect();
    fds.sort();
    fds
}

#[test]
fn child_inherits_no_descriptor_the_init_opened() {
    assert_root();
    for mode in [Mode::Pid1, Mode::Direct] {
        let (mut cmd, pid1) = common::command(mode, common::BIN, &["-s", "--", "sleep", "100"]);
        // Start from a clean table: whatever the test runner inherited without
        // close-on-exec is not the init's doing (and would pass through, as with tini).
        // SAFETY: close_range is async-signal-safe; CLOEXEC only marks descriptors.
        unsafe {
            cmd.pre_exec(|| {
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 4u32);
                Ok(())
            });
        }
        let run = common::start_command(cmd, pid1);
        let init = run.init_pid();
        let deadline = std::time::Instant::now() + TIMEOUT;
        let child = loop {
            let found = common::children(init).into_iter().find(|c| {
                std::fs::read_to_string(format!("/proc/{c}/comm"))
                    .unwrap_or_default()
                    .trim()
                    == "sleep"
            });
            if let Some(c) = found {
                break c;
            }
            assert!(std::time::Instant::now() < deadline, "sleep never started");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        // The init holds its signalfd ...
        let init_fds = fds_of(init);
        assert!(
            init_fds.iter().any(|(_, t)| t.contains("signalfd")),
            "init should hold a signalfd: {init_fds:?}"
        );
        // ... and the child has only stdin, stdout and stderr.
        let child_fds = fds_of(child);
        let names: Vec<&str> = child_fds.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["0", "1", "2"], "{child_fds:?}");
        drop(run);
    }
}

#[test]
fn init_is_one_thread_and_never_wakes_when_idle() {
    assert_root();
    let run = start(Mode::Direct, &["-s", "--", "sleep", "100"]);
    let init = run.init_pid();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while common::children(init).is_empty() {
        assert!(std::time::Instant::now() < deadline, "child never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
    assert!(status.lines().any(|l| l == "Threads:\t1"), "{status}");
    let tasks = std::fs::read_dir(format!("/proc/{init}/task"))
        .unwrap()
        .count();
    assert_eq!(tasks, 1);
    // Event-driven: once the child runs, the idle init does not wake up at all (no timed
    // poll), so its voluntary context switches stay put.
    while std::fs::read_to_string(format!("/proc/{}/comm", common::children(init)[0]))
        .unwrap_or_default()
        .trim()
        != "sleep"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "child never exec'd sleep"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let switches = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("voluntary_ctxt_switches:"))
            .unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let before = switches();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(switches(), before, "the idle init woke up");
    drop(run);
}
