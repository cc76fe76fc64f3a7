//! Reaping: orphans reparented to the init are all reaped (none left as zombies), and a
//! storm of signals during a storm of exits loses no exit.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{assert_root, kill, script, start, Mode, TIMEOUT};

/// Pids named in `-w` lines ("Reaped zombie process with pid=N").
fn reaped_pids(stderr: &str) -> BTreeSet<i32> {
    stderr
        .lines()
        .filter_map(|l| l.split("Reaped zombie process with pid=").nth(1))
        .map(|p| p.trim().parse().expect("pid"))
        .collect()
}

fn pid_file(path: &std::path::Path) -> BTreeSet<i32> {
    std::fs::read_to_string(path)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect()
}

#[test]
fn reaps_a_thousand_orphans_as_pid1() {
    assert_root();
    let dir = common::tempdir();
    let d = dir.path().display();
    // Each subshell starts a short sleep in the background and exits at once, so the
    // sleep is reparented to PID 1. At the end the child looks at the whole namespace.
    let child = script(
        dir.path(),
        "child.sh",
        &format!(
            "i=0\nwhile [ $i -lt 1000 ]; do ( sleep 0.2 & echo $! >> {d}/pids ); i=$((i+1)); done\n\
             sleep 1\n\
             cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == \"Z\"' | wc -l > {d}/zombies\n\
             cat /proc/[0-9]*/stat 2>/dev/null | awk '$2 == \"(sleep)\"' | wc -l > {d}/sleeps\n\
             exit 0"
        ),
    );
    let done = start(Mode::Pid1, &["-w", "--", child.to_str().unwrap()]).wait(TIMEOUT * 4);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let read = |name: &str| -> usize {
        std::fs::read_to_string(dir.path().join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(read("zombies"), 0, "zombies left in the namespace");
    assert_eq!(read("sleeps"), 0, "orphans still running");
    let orphans = pid_file(&dir.path().join("pids"));
    assert_eq!(orphans.len(), 1000);
    assert_eq!(
        reaped_pids(&done.stderr),
        orphans,
        "every orphan reaped by the init"
    );
}

#[test]
fn reaps_orphans_as_subreaper() {
    assert_root();
    let dir = common::tempdir();
    let d = dir.path().display();
    // Counts zombies whose parent is the init ($PPID of the child) before exiting.
    let child = script(
        dir.path(),
        "child.sh",
        &format!(
            "i=0\nwhile [ $i -lt 200 ]; do ( sleep 0.2 & echo $! >> {d}/pids ); i=$((i+1)); done\n\
             sleep 1\n\
             cat /proc/[0-9]*/stat 2>/dev/null | awk -v p=$PPID '$3 == \"Z\" && $4 == p' | wc -l > {d}/zombies\n\
             exit 5"
        ),
    );
    let done = start(Mode::Direct, &["-s", "-w", "--", child.to_str().unwrap()]).wait(TIMEOUT * 2);
    assert_eq!(done.code(), 5, "{}", done.stderr);
    let zombies: usize = std::fs::read_to_string(dir.path().join("zombies"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(zombies, 0);
    let orphans = pid_file(&dir.path().join("pids"));
    assert_eq!(orphans.len(), 200);
    assert_eq!(reaped_pids(&done.stderr), orphans);
    for pid in orphans {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "orphan {pid} left"
        );
    }
}

/// Signals the storm sends, alternating between two real-time signals (which queue: every
/// one sent is delivered, so the child's count must match exactly).
const STORM: usize = 2000;

#[test]
fn signal_storm_during_exit_storm_loses_nothing() {
    assert_root();
    let dir = common::tempdir();
    let d = dir.path().display();
    let (rt1, rt2) = (libc::SIGRTMIN() + 1, libc::SIGRTMIN() + 2);
    // 500 orphans blocked opening a FIFO; then the child becomes a Python counter that
    // blocks both real-time signals, says ready, and when the first forwarded one is
    // pending releases the orphans all at once (a burst of exits) while the test goes on
    // sending the init exactly STORM real-time signals to forward; once told the storm
    // is over, it takes every queued signal and counts it.
    let counter = script(
        dir.path(),
        "counter.py",
        &format!(
            "import os, signal, sys, time\n\
             d, sigs = sys.argv[1], {{{rt1}, {rt2}}}\n\
             signal.pthread_sigmask(signal.SIG_BLOCK, sigs)\n\
             open(d + '/ready', 'w').write('go')\n\
             while not signal.sigpending() & sigs:\n\
             \x20   time.sleep(0.001)\n\
             os.close(os.open(d + '/fifo', os.O_WRONLY))\n\
             while not os.path.exists(d + '/stopped'):\n\
             \x20   time.sleep(0.01)\n\
             n = 0\n\
             while signal.sigtimedwait(sigs, 2.0) is not None:\n\
             \x20   n += 1\n\
             time.sleep(0.5)\n\
             z = 0\n\
             for p in os.listdir('/proc'):\n\
             \x20   try:\n\
             \x20       z += p.isdigit() and open('/proc/' + p + '/stat').read().rsplit(')', 1)[1].split()[0] == 'Z'\n\
             \x20   except OSError:\n\
             \x20       pass\n\
             open(d + '/count', 'w').write(str(n))\n\
             open(d + '/zombies', 'w').write(str(z))\n\
             sys.exit(42)"
        ),
    );
    let child = script(
        dir.path(),
        "child.sh",
        &format!(
            "mkfifo {d}/fifo\n\
             i=0\nwhile [ $i -lt 500 ]; do ( {{ read x < {d}/fifo; }} & echo $! >> {d}/pids ); i=$((i+1)); done\n\
             sleep 0.5\n\
             exec python3 {counter} {d}",
            counter = counter.display()
        ),
    );
    let run = start(Mode::Pid1, &["-w", "--", child.to_str().unwrap()]);
    let init = run.init_pid();
    common::wait_for_file(&dir.path().join("ready"), TIMEOUT, |t| t.contains("go"));
    // The storm ends (and is joined) before the init can exit: the counter waits for
    // "stopped", so `init` cannot be a reused pid while signals are sent to it.
    let storm = std::thread::spawn(move || {
        for i in 0..STORM {
            kill(init, if i % 2 == 0 { rt1 } else { rt2 });
            if i % 16 == 15 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    });
    storm.join().unwrap();
    std::fs::write(dir.path().join("stopped"), "").unwrap();
    let done = run.wait(TIMEOUT * 4);
    assert_eq!(done.code(), 42, "{}", done.stderr);
    let orphans = pid_file(&dir.path().join("pids"));
    assert_eq!(orphans.len(), 500);
    assert_eq!(reaped_pids(&done.stderr), orphans, "every exit observed");
    let read = |name: &str| -> usize {
        std::fs::read_to_string(dir.path().join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(read("zombies"), 0);
    assert_eq!(
        read("count"),
        STORM,
        "every real-time signal sent to the init reached the child, once"
    );
}
