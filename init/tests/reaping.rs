//! Reaping: orphans reparented to the init are all reaped (none left as zombies), and a
//! storm of signals during a storm of exits loses no exit.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
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

#[test]
fn signal_storm_during_exit_storm_loses_nothing() {
    assert_root();
    let dir = common::tempdir();
    let d = dir.path().display();
    // 500 orphans blocked opening a FIFO, released all at once by opening and closing
    // its write end (a burst of exits), while the test floods the init with SIGUSR1 and
    // SIGUSR2 that it forwards to the child; the child counts the ones it saw.
    let child = script(
        dir.path(),
        "child.sh",
        &format!(
            "n=0\ntrap 'n=$((n+1))' USR1\ntrap 'n=$((n+1))' USR2\nmkfifo {d}/fifo\n\
             i=0\nwhile [ $i -lt 500 ]; do ( {{ read x < {d}/fifo; }} & echo $! >> {d}/pids ); i=$((i+1)); done\n\
             sleep 0.5\necho go > {d}/ready\nsleep 0.2\n\
             exec 3> {d}/fifo\nsleep 0.2\nexec 3>&-\n\
             sleep 0.5\n\
             echo $n > {d}/count\n\
             cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == \"Z\"' | wc -l > {d}/zombies\n\
             exit 42"
        ),
    );
    let run = start(Mode::Pid1, &["-w", "--", child.to_str().unwrap()]);
    let init = run.init_pid();
    common::wait_for_file(&dir.path().join("ready"), TIMEOUT, |t| t.contains("go"));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let storm = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                kill(
                    init,
                    if i & 1 == 0 {
                        libc::SIGUSR1
                    } else {
                        libc::SIGUSR2
                    },
                );
                i += 1;
                if i & 63 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            sent.store(i, Ordering::Relaxed);
        })
    };
    let done = run.wait(TIMEOUT * 4);
    stop.store(true, Ordering::Relaxed);
    storm.join().unwrap();
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
    assert!(
        sent.load(Ordering::Relaxed) > 100,
        "the storm really happened"
    );
    assert!(
        read("count") > 0,
        "forwarded signals reached the child during the storm"
    );
}
