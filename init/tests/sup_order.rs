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
    assert!(pos("start db") < pos("pre_start web") && pos("pre_start web") < pos("start web"));
    assert!(
        pos("start web") < pos("pre_start worker") && pos("pre_start worker") < pos("start worker")
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

#[test]
fn exit_code_is_the_first_failed_service() {
    let spec = "services:
  stubborn:
    command: [/bin/sh, -c, 'trap \"\" TERM; while :; do sleep 0.05; done']
    stop_timeout: 300ms
  bad:
    command: [/bin/sh, -c, 'trap \"exit 5\" TERM; while :; do sleep 0.05; done']
";
    let mut p = Pid1::start(spec, &[]);
    p.wait_status("running", Duration::from_secs(10), |s| {
        s["state"] == "running"
    });
    p.signal(libc::SIGTERM);
    // bad stops first (reverse order) with 5; stubborn then needs SIGKILL (137).
    assert_eq!(p.wait_exit(Duration::from_secs(10)), 5, "{}", p.log());
}

#[test]
fn unclean_stop_exits_137_and_second_sigterm_kills_at_once() {
    let spec = "services:
  stubborn:
    command: [/bin/sh, -c, 'trap \"\" TERM; while :; do sleep 0.05; done']
    stop_timeout: 300ms
";
    let mut p = Pid1::start(spec, &[]);
    p.wait_status("running", Duration::from_secs(10), |s| {
        s["state"] == "running"
    });
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(10)), 137, "{}", p.log());

    let slow = "services:
  stubborn:
    command: [/bin/sh, -c, 'trap \"\" TERM; while :; do sleep 0.05; done']
    stop_timeout: 60s
";
    let mut p = Pid1::start(slow, &[]);
    p.wait_status("running", Duration::from_secs(10), |s| {
        s["state"] == "running"
    });
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
