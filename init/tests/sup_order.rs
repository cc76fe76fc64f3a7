//! Dependency order on start (gated on health) and reverse order on stop, hooks in order,
//! a hook timeout, SIGTERM exit codes, and the second SIGTERM.

mod sup_common;

use std::time::{Duration, Instant};

use sup_common::{lines, wait_until, Pid1};

fn service(name: &str, extra: &str) -> String {
    let ev = |what: &str| format!("[/bin/sh, -c, 'echo {what} {name} >> @DIR@/events']");
    format!(
        "  {name}:
    command: [/bin/sh, -c, 'echo start {name} >> @DIR@/events; trap \"echo stop {name} >> @DIR@/events; exit 0\" TERM; while :; do sleep 0.05; done']
    stop_timeout: 5s
    hooks:
      pre_start: {}
      post_start: {}
      pre_stop: {}
      post_stop: {}
{extra}",
        ev("pre_start"),
        ev("post_start"),
        ev("pre_stop"),
        ev("post_stop")
    )
}

#[test]
fn start_in_dependency_order_gated_on_health_and_stop_in_reverse() {
    let spec = format!(
        "services:\n{}{}{}",
        service("worker", "    depends_on: [web]\n"),
        service("web", "    depends_on: [db]\n"),
        service(
            "db",
            "    health: {cmd: [/bin/sh, -c, 'test -f @DIR@/db-ready'], delay: 0s, interval: 200ms, timeout: 1s, grace_period: 60s}\n"
        ),
    );
    let mut p = Pid1::start(&spec, &[]);
    wait_until("db started", Duration::from_secs(10), || {
        lines(&p.path("events")).contains(&"post_start db".to_string())
    });
    std::thread::sleep(Duration::from_millis(800));
    let st = p.status();
    assert_eq!(st["state"], "starting");
    assert_eq!(
        st["services"][2]["healthy"],
        serde_json::Value::Null,
        "failures in the grace period are not counted"
    );
    assert_eq!(
        st["services"][1]["state"], "waiting",
        "web waits for db to be healthy: {st}"
    );
    assert_eq!(st["services"][0]["state"], "waiting");
    std::fs::write(p.path("db-ready"), "").unwrap();
    p.wait_status("all running", Duration::from_secs(10), |s| {
        s["state"] == "running"
    });
    wait_until("post_start hooks", Duration::from_secs(5), || {
        lines(&p.path("events")).len() == 9
    });
    let started = lines(&p.path("events"));
    let pos = |e: &str| {
        started
            .iter()
            .position(|l| l == e)
            .unwrap_or_else(|| panic!("no {e}: {started:?}"))
    };
    assert!(pos("pre_start db") < pos("start db"));
    assert!(pos("pre_start web") < pos("start web"));
    assert!(pos("pre_start worker") < pos("start worker"));
    // A dependent's start (its pre_start hook) comes after its dependency was started, as
    // init logged it (the services' own echo lines race with the next hook).
    let log = p.log();
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in {log}"))
    };
    assert!(
        at("healthy service=db") < at("running hook service=web hook=\"pre_start\""),
        "{log}"
    );
    assert!(
        at("service started service=web") < at("running hook service=worker hook=\"pre_start\""),
        "{log}"
    );

    std::fs::remove_file(p.path("events")).unwrap();
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(20)), 0, "{}", p.log());
    let stopped = lines(&p.path("events"));
    let expected: Vec<String> = ["worker", "web", "db"]
        .iter()
        .flat_map(|n| {
            [
                format!("pre_stop {n}"),
                format!("stop {n}"),
                format!("post_stop {n}"),
            ]
        })
        .collect();
    assert_eq!(stopped, expected);
}

#[test]
fn hook_timeout_kills_the_hook_and_goes_on() {
    let spec = "services:
  svc:
    command: /bin/sleep 1000
    hooks:
      pre_stop: {cmd: [/bin/sh, -c, 'echo $$ > @DIR@/hook; exec sleep 1000'], timeout: 500ms}
";
    let mut p = Pid1::start(spec, &[]);
    p.wait_status("running", Duration::from_secs(10), |s| {
        s["state"] == "running"
    });
    let t0 = Instant::now();
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(10)), 0, "{}", p.log());
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(p.log().contains("hook timed out"), "{}", p.log());
    assert!(p.path("hook").exists());
}

const STUBBORN: &str =
    "#!/bin/sh\ntrap '' TERM\ntouch @DIR@/ready-stubborn\nwhile :; do sleep 0.05; done\n";
const BAD: &str =
    "#!/bin/sh\ntrap 'exit 5' TERM\ntouch @DIR@/ready-bad\nwhile :; do sleep 0.05; done\n";

fn wait_ready(p: &Pid1, names: &[&str]) {
    wait_until("services set their traps", Duration::from_secs(10), || {
        names.iter().all(|n| p.path(&format!("ready-{n}")).exists())
    });
}

#[test]
fn exit_code_is_the_first_failed_service() {
    let spec = "services:
  stubborn:
    command: '@DIR@/stubborn.sh'
    stop_timeout: 300ms
  bad:
    command: '@DIR@/bad.sh'
";
    let mut p = Pid1::start_with(spec, &[], &[("stubborn.sh", STUBBORN), ("bad.sh", BAD)]);
    wait_ready(&p, &["stubborn", "bad"]);
    p.signal(libc::SIGTERM);
    // Both stop at once (no dependency); bad exits 5 at once, stubborn needs SIGKILL
    // (137) later: the first failure wins.
    assert_eq!(p.wait_exit(Duration::from_secs(10)), 5, "{}", p.log());
}

#[test]
fn unclean_stop_exits_137_and_second_sigterm_kills_at_once() {
    let spec = "services:
  stubborn:
    command: '@DIR@/stubborn.sh'
    stop_timeout: 300ms
";
    let mut p = Pid1::start_with(spec, &[], &[("stubborn.sh", STUBBORN)]);
    wait_ready(&p, &["stubborn"]);
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(10)), 137, "{}", p.log());

    let slow = "services:
  stubborn:
    command: '@DIR@/stubborn.sh'
    stop_timeout: 60s
";
    let mut p = Pid1::start_with(slow, &[], &[("stubborn.sh", STUBBORN)]);
    wait_ready(&p, &["stubborn"]);
    p.signal(libc::SIGTERM);
    p.wait_status("stopping", Duration::from_secs(5), |s| {
        s["state"] == "stopping"
    });
    let t0 = Instant::now();
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(5)), 137, "{}", p.log());
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "second SIGTERM took {:?}",
        t0.elapsed()
    );
}
