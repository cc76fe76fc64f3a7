//! Signal forwarding: every catchable signal sent to the init reaches the child (which
//! records it with a shell trap), `-g` reaches the child's whole group, SIGTERM to PID 1
//! ends the run with 143, and `-p` gives the init a parent-death signal.

mod common;

use std::time::Duration;

use common::{assert_root, kill, script, start, wait_for_file, Mode, TIMEOUT};

/// (trap name for dash, signal number)
fn signals_to_forward() -> Vec<(String, i32)> {
    let mut list: Vec<(String, i32)> = [
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
        ("PIPE", libc::SIGPIPE),
        ("ALRM", libc::SIGALRM),
        ("TERM", libc::SIGTERM),
        ("CONT", libc::SIGCONT),
        ("TSTP", libc::SIGTSTP),
        ("TTIN", libc::SIGTTIN),
        ("TTOU", libc::SIGTTOU),
        ("URG", libc::SIGURG),
        ("XCPU", libc::SIGXCPU),
        ("XFSZ", libc::SIGXFSZ),
        ("VTALRM", libc::SIGVTALRM),
        ("PROF", libc::SIGPROF),
        ("WINCH", libc::SIGWINCH),
        ("PWR", libc::SIGPWR),
        ("SYS", libc::SIGSYS),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    // Realtime signals, by number (dash traps numbers too).
    for rt in [libc::SIGRTMIN(), libc::SIGRTMIN() + 5, libc::SIGRTMAX()] {
        list.push((rt.to_string(), rt));
    }
    list
}

fn each_signal_reaches_the_child(mode: Mode) {
    let dir = common::tempdir();
    let log = dir.path().join("log");
    let signals = signals_to_forward();
    let traps: String = signals
        .iter()
        .map(|(name, _)| format!("trap 'echo got-{name} >> {}' {name}\n", log.display()))
        .collect();
    let body = format!(
        "{traps}echo ready >> {log}\nwhile [ ! -e {log}.done ]; do sleep 0.01; done\nexit 7",
        log = log.display()
    );
    let child = script(dir.path(), "child.sh", &body);
    let args = match mode {
        Mode::Pid1 => vec!["--", child.to_str().unwrap()],
        Mode::Direct => vec!["-s", "--", child.to_str().unwrap()],
    };
    let run = start(mode, &args);
    let init = run.init_pid();
    wait_for_file(&log, TIMEOUT, |t| t.contains("ready"));
    for (name, signo) in &signals {
        kill(init, *signo);
        let line = format!("got-{name}\n");
        wait_for_file(&log, Duration::from_secs(10), |t| t.contains(&line));
    }
    std::fs::write(dir.path().join("log.done"), "").unwrap();
    let done = run.wait(TIMEOUT);
    assert_eq!(done.code(), 7, "{done:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    for (name, _) in &signals {
        assert_eq!(
            text.matches(&format!("got-{name}\n")).count(),
            1,
            "{name} once: {text}"
        );
    }
}

#[test]
fn forwards_every_catchable_signal_as_pid1() {
    assert_root();
    each_signal_reaches_the_child(Mode::Pid1);
}

#[test]
fn forwards_every_catchable_signal_as_subreaper() {
    assert_root();
    each_signal_reaches_the_child(Mode::Direct);
}

#[test]
fn sigterm_to_pid1_ends_a_default_child_with_143() {
    assert_root();
    // `sleep` has no handler: SIGTERM kills it, and the init reports 128+15.
    let run = start(Mode::Pid1, &["sleep", "100"]);
    let init = run.init_pid();
    wait_for_child_exec(init, "sleep");
    kill(init, libc::SIGTERM);
    let done = run.wait(TIMEOUT);
    assert_eq!(done.code(), 143, "{done:?}");
}

/// Waits until `init` has a child that exec'd `comm`.
fn wait_for_child_exec(init: i32, comm: &str) -> i32 {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        for c in common::children(init) {
            if std::fs::read_to_string(format!("/proc/{c}/comm"))
                .unwrap_or_default()
                .trim()
                == comm
            {
                return c;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {comm} child of {init}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn group_run(group: bool) -> String {
    let dir = common::tempdir();
    let log = dir.path().join("log");
    let body = format!(
        "sh -c 'trap \"echo grandchild >> {log}; exit 0\" USR1; echo gready >> {log}; \
         while :; do sleep 0.01; done' &\n\
         trap 'echo main-got >> {log}' USR1\n\
         while ! grep -q gready {log} 2>/dev/null; do sleep 0.01; done\n\
         echo main-ready >> {log}\n\
         while [ ! -e {log}.done ]; do sleep 0.01; done\n\
         kill $! 2>/dev/null\n\
         exit 0",
        log = log.display()
    );
    let child = script(dir.path(), "child.sh", &body);
    let mut args = vec![];
    if group {
        args.push("-g");
    }
    args.extend(["--", child.to_str().unwrap()]);
    let run = start(Mode::Pid1, &args);
    let init = run.init_pid();
    wait_for_file(&log, TIMEOUT, |t| t.contains("main-ready\n"));
    kill(init, libc::SIGUSR1);
    wait_for_file(&log, TIMEOUT, |t| t.contains("main-got\n"));
    if group {
        wait_for_file(&log, TIMEOUT, |t| t.contains("grandchild\n"));
    } else {
        // Give a wrongly forwarded signal time to land before checking it did not.
        std::thread::sleep(Duration::from_millis(300));
    }
    std::fs::write(dir.path().join("log.done"), "").unwrap();
    let done = run.wait(TIMEOUT);
    assert_eq!(done.code(), 0, "{done:?}");
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn group_flag_reaches_a_grandchild() {
    assert_root();
    let with = group_run(true);
    assert!(
        with.contains("grandchild\n"),
        "-g must reach the grandchild: {with}"
    );
    let without = group_run(false);
    assert!(
        !without.contains("grandchild\n"),
        "without -g only the child: {without}"
    );
}

#[test]
fn group_flag_from_environment() {
    assert_root();
    let dir = common::tempdir();
    let log = dir.path().join("log");
    let body = format!(
        "sh -c 'trap \"echo grandchild >> {log}; exit 0\" TERM; echo gready >> {log}; \
         while :; do sleep 0.01; done' &\n\
         trap 'echo main-got >> {log}' TERM\n\
         while ! grep -q gready {log} 2>/dev/null; do sleep 0.01; done\n\
         echo main-ready >> {log}\n\
         wait $!; wait $!\n\
         exit 0",
        log = log.display()
    );
    let child = script(dir.path(), "child.sh", &body);
    let (mut cmd, pid1) = common::command(Mode::Pid1, common::BIN, &[child.to_str().unwrap()]);
    cmd.env("TINI_KILL_PROCESS_GROUP", "");
    let run = common::start_command(cmd, pid1);
    let init = run.init_pid();
    wait_for_file(&log, TIMEOUT, |t| t.contains("main-ready\n"));
    kill(init, libc::SIGTERM);
    let done = run.wait(TIMEOUT);
    assert_eq!(done.code(), 0, "{done:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("grandchild\n") && text.contains("main-got\n"),
        "{text}"
    );
}

#[test]
fn parent_death_signal_reaches_the_init() {
    assert_root();
    let dir = common::tempdir();
    let log = dir.path().join("log");
    let pidfile = dir.path().join("initpid");
    // The child records the init's pid, then waits for SIGUSR1, which the init gets from
    // the kernel when its parent (the middle shell) exits, and forwards.
    let child = script(
        dir.path(),
        "child.sh",
        &format!(
            "trap 'echo got-USR1 >> {log}; exit 0' USR1\necho $PPID > {pid}\necho ready >> {log}\n\
             while :; do sleep 0.01; done",
            log = log.display(),
            pid = pidfile.display()
        ),
    );
    let middle = script(
        dir.path(),
        "middle.sh",
        &format!(
            "{bin} -s -p SIGUSR1 -- {child} &\n\
             while ! grep -q ready {log} 2>/dev/null; do sleep 0.01; done\nexit 0",
            bin = common::BIN,
            child = child.display(),
            log = log.display()
        ),
    );
    let guard = InitByPidFile(pidfile.clone());
    let status = std::process::Command::new(&middle).status().unwrap();
    assert!(status.success());
    wait_for_file(&log, TIMEOUT, |t| t.contains("got-USR1"));
    // The child exited 0 on the signal, so the init exits too.
    let init: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while std::path::Path::new(&format!("/proc/{init}")).exists()
        && !is_zombie(init)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!std::path::Path::new(&format!("/proc/{init}")).exists() || is_zombie(init));
    drop(guard);
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Kills an init that is not our child (found through a pid file) and its descendants.
struct InitByPidFile(std::path::PathBuf);

impl Drop for InitByPidFile {
    fn drop(&mut self) {
        let Ok(text) = std::fs::read_to_string(&self.0) else {
            return;
        };
        let Ok(pid) = text.trim().parse::<i32>() else {
            return;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains("berth-init") {
            return;
        }
        for p in common::descendants(pid) {
            kill(p, libc::SIGKILL);
        }
        kill(pid, libc::SIGKILL);
    }
}
