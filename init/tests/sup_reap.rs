//! Orphans reparented to berth-init are reaped and never confused with a service: a
//! service whose children outlive it (double fork) leaves no zombie, and the service's own
//! status is the one reported.

mod sup_common;

use std::time::Duration;

use sup_common::{wait_until, Pid1};

fn zombies(init: i32) -> usize {
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/ns/pid"))
                .ok()
                .as_ref()
                == Some(&ns)
        })
        .filter(|p| {
            let s = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            s.rfind(')').is_some_and(|i| s[i + 2..].starts_with('Z'))
        })
        .count()
}

#[test]
fn orphans_are_reaped_and_statuses_go_to_their_owner() {
    // Every 100 ms the spawner double-forks 5 short-lived children that get reparented to
    // init (setsid: they leave the service's group too) and exit with code 9.
    let spec = "services:
  spawner:
    command: [/bin/sh, -c, 'while :; do for i in 1 2 3 4 5; do (setsid sh -c \"sleep 0.2; exit 9\" &); done; sleep 0.1; done']
  finisher:
    command: [/bin/sh, -c, 'sleep 1; exit 4']
    restart: never
    required: false
";
    let p = Pid1::start(spec, &[("BERTH_LOG", "debug")]);
    let st = p.wait_status(
        "finisher failed with its own code",
        Duration::from_secs(10),
        |s| s["services"][1]["state"] == "failed",
    );
    assert_eq!(st["services"][0]["state"], "running", "{st}");
    assert_eq!(
        st["state"], "running",
        "a failed optional service does not hold the app back"
    );
    assert_eq!(
        st["services"][0]["restarts"], 0,
        "an orphan's exit was taken for the spawner's: {st}"
    );
    let log = p.log();
    assert!(
        log.lines()
            .any(|l| l.contains("reaped an orphan") && l.contains("exited with status 9")),
        "{log}"
    );
    // Orphans exit all the time; none stays a zombie for long.
    wait_until("no lingering zombies", Duration::from_secs(5), || {
        zombies(p.pid) <= 5
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(zombies(p.pid) <= 5, "zombies pile up: {}", zombies(p.pid));
    assert!(p.log().contains("service=finisher code=4"), "{}", p.log());
}

#[test]
fn processes_that_left_their_group_get_sigterm_before_init_exits() {
    // The service starts two processes in new sessions (out of its group): one records
    // SIGTERM and exits, one ignores it and must be SIGKILLed after the sweep's grace.
    let polite = "#!/bin/sh\ntrap 'echo got-term > @DIR@/escaped; exit 0' TERM\necho up > @DIR@/up1\nwhile :; do sleep 0.05; done\n";
    let stubborn = "#!/bin/sh\ntrap '' TERM\necho up > @DIR@/up2\nwhile :; do sleep 0.05; done\n";
    let spec = "services:
  svc:
    command: [/bin/sh, -c, 'setsid @DIR@/polite.sh & setsid @DIR@/stubborn.sh & exec sleep 1000']
";
    let mut p = Pid1::start_with(
        spec,
        &[],
        &[("polite.sh", polite), ("stubborn.sh", stubborn)],
    );
    wait_until("escaped processes up", Duration::from_secs(10), || {
        p.path("up1").exists() && p.path("up2").exists()
    });
    let t0 = std::time::Instant::now();
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(10)), 0, "{}", p.log());
    let took = t0.elapsed();
    assert_eq!(
        std::fs::read_to_string(p.path("escaped")).unwrap_or_default(),
        "got-term\n",
        "{}",
        p.log()
    );
    assert!(
        p.log()
            .contains("leftover processes did not exit on SIGTERM: SIGKILL"),
        "{}",
        p.log()
    );
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}
