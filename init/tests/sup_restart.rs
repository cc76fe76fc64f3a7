//! Crash loops: restart delays grow, init's CPU stays low, the crash-loop limit fails the
//! service; without debug init exits with its code, with debug it stays up.

mod sup_common;

use std::time::Duration;

use sup_common::{lines, Pid1};

const CRASHER: &str = "services:
  crasher:
    command: [/bin/sh, -c, 'date +%s.%N >> @DIR@/starts; exit 3']
    backoff: {initial: 100ms, max: 800ms, reset_after: 30s}
    crash_loop_limit: 5
  steady:
    command: /bin/sleep 1000
";

fn intervals(starts: &[String]) -> Vec<f64> {
    let t: Vec<f64> = starts.iter().map(|l| l.parse().unwrap()).collect();
    t.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn backoff_grows_then_the_limit_shuts_down_with_the_code() {
    let mut p = Pid1::start(CRASHER, &[]);
    let code = p.wait_exit(Duration::from_secs(20));
    assert_eq!(code, 3, "exit code of the failed service\n{}", p.log());
    let starts = lines(&p.path("starts"));
    assert_eq!(starts.len(), 6, "1 start + 5 restarts: {starts:?}");
    let iv = intervals(&starts);
    // 100, 200, 400, 800, 800 ms (+ start latency).
    for (i, expected) in [0.1, 0.2, 0.4, 0.8, 0.8].iter().enumerate() {
        assert!(
            iv[i] >= expected - 0.01 && iv[i] < expected + 0.3,
            "interval {i}: {iv:?}"
        );
    }
    assert!(iv[3] > iv[0] * 4.0, "delays grow: {iv:?}");
    let log = p.log();
    assert!(log.contains("crash-loop limit reached"), "{log}");
    assert!(
        log.contains("a required service failed: shutting down"),
        "{log}"
    );
}

#[test]
fn debug_mode_stays_up_and_cpu_stays_low() {
    let p = Pid1::start(CRASHER, &[("BERTH_DEBUG", "1")]);
    let st = p.wait_status("crasher failed", Duration::from_secs(20), |s| {
        s["services"][0]["state"] == "failed"
    });
    assert_eq!(st["state"], "failed");
    assert_eq!(st["services"][0]["restarts"], 5);
    assert_eq!(st["services"][0]["pid"], serde_json::Value::Null);
    assert_eq!(st["services"][1]["state"], "running");
    // Still up, and idle: no spinning while the failed service sits there.
    let before = p.cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let st = p.status();
    assert_eq!(st["services"][1]["state"], "running");
    let used = p.cpu_ticks() - before;
    assert!(used <= 5, "init used {used} ticks of CPU in 2 s while idle");
    // An operator can start it again by hand.
    let answer = p.request(r#"{"cmd":"start","service":"crasher"}"#);
    assert_eq!(answer["ok"], true, "{answer}");
    p.wait_status("crasher retried", Duration::from_secs(10), |_| {
        lines(&p.path("starts")).len() >= 7
    });
}

#[test]
fn never_restart_policy_and_success_exit() {
    let spec = "services:
  once:
    command: /bin/true
    restart: never
  fails:
    command: [/bin/sh, -c, 'sleep 0.5; exit 7']
    restart: on-failure
    crash_loop_limit: 0
    backoff: {initial: 2s}
    required: false
";
    let p = Pid1::start(spec, &[]);
    let st = p.wait_status(
        "once exited, fails restarted",
        Duration::from_secs(10),
        |s| s["services"][0]["state"] == "exited" && s["services"][1]["restarts"] == 1,
    );
    assert_eq!(st["services"][0]["restarts"], 0);
}

#[test]
fn a_program_that_cannot_start_fails_with_127() {
    let spec = "services:
  ghost:
    command: /nonexistent/berth/prog
    restart: never
";
    let mut p = Pid1::start(spec, &[]);
    assert_eq!(p.wait_exit(Duration::from_secs(10)), 127, "{}", p.log());
    assert!(
        p.log()
            .contains("exec /nonexistent/berth/prog failed: No such file or directory"),
        "{}",
        p.log()
    );
}
