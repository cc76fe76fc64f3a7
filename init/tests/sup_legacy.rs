//! The legacy spec running with a stand-in for resin (an entry that daemonizes), tracked
//! through its process group; `add` copies; group kill of grandchildren.

mod sup_common;

use std::time::Duration;

use sup_common::{alive, host_pid, wait_until, Pid1};

const LEGACY: &str = "require:
  centos:6.3+resin:4.0.41+scribed:2.0.65
service:
  - port: 8094
add:
  - weather-api-v2.xml @DIR@/home/work/resin/conf/
  - scribed.conf @DIR@/home/work/scribe/conf/
entry:
  - @DIR@/resin/bin/resin_control -conf @DIR@/home/work/resin/conf/weather-api-v2.xml server weather-api-v2 start
";

// Like resin_control ... start: checks its config, leaves a server running, exits 0.
const RESIN_CONTROL: &str = "#!/bin/sh
test -f \"$2\" || { echo \"no config $2\" >&2; exit 3; }
sleep 1000 &
echo $! > @DIR@/resin.pid
echo started >> @DIR@/starts
exit 0
";

fn daemon_host_pid(p: &Pid1) -> i32 {
    let ns: i32 = std::fs::read_to_string(p.path("resin.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    host_pid(p.pid, ns).expect("the daemon runs")
}

#[test]
fn legacy_spec_runs_and_tracks_the_daemon() {
    let mut p = Pid1::start_with(
        LEGACY,
        &[],
        &[
            ("weather-api-v2.xml", "<resin/>"),
            ("scribed.conf", "port=1463"),
            ("resin/bin/resin_control", RESIN_CONTROL),
        ],
    );
    let st = p.wait_status(
        "entry-1 running as a tracked daemon",
        Duration::from_secs(10),
        |s| s["state"] == "running" && p.log().contains("tracking the group"),
    );
    assert_eq!(st["require"], "centos:6.3+resin:4.0.41+scribed:2.0.65");
    assert_eq!(st["services"][0]["name"], "entry-1");
    assert_eq!(st["services"][0]["state"], "running");
    assert!(st["services"][0]["pid"].as_i64().unwrap() > 1);
    assert_eq!(
        std::fs::read_to_string(p.path("home/work/resin/conf/weather-api-v2.xml")).unwrap(),
        "<resin/>"
    );
    assert_eq!(
        std::fs::read_to_string(p.path("home/work/scribe/conf/scribed.conf")).unwrap(),
        "port=1463"
    );

    // The server dies: its group is empty, so the entry runs again.
    let first = daemon_host_pid(&p);
    // SAFETY: kill(2) on a process of this test's namespace.
    unsafe { libc::kill(first, libc::SIGKILL) };
    p.wait_status("entry-1 restarted", Duration::from_secs(10), |s| {
        s["services"][0]["restarts"] == 1 && s["services"][0]["state"] == "running"
    });
    wait_until("a second start", Duration::from_secs(5), || {
        sup_common::lines(&p.path("starts")).len() == 2
    });
    wait_until("the new daemon is tracked", Duration::from_secs(5), || {
        p.log().matches("tracking the group").count() == 2
    });
    let second = daemon_host_pid(&p);
    assert_ne!(first, second);
    assert!(alive(second));

    // SIGTERM: the daemon (a grandchild of init, outside the entry's main process) goes too.
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(15)), 0, "{}", p.log());
    assert!(!alive(second), "the daemonized server survived the stop");
}

#[test]
fn stopping_a_service_kills_its_whole_group() {
    // Two grandchildren in the service's group: one plain, one ignoring SIGTERM.
    let stubborn =
        "#!/bin/sh\ntrap '' TERM\necho $$ > @DIR@/stubborn\nwhile :; do sleep 0.1; done\n";
    let main = "#!/bin/sh\n@DIR@/stubborn.sh &\nsleep 1000 &\necho $! > @DIR@/plain\nwait\n";
    let spec = "services:
  svc:
    command: '@DIR@/main.sh'
    stop_timeout: 1s
";
    let p = Pid1::start_with(spec, &[], &[("stubborn.sh", stubborn), ("main.sh", main)]);
    p.wait_status("svc running", Duration::from_secs(10), |s| {
        s["services"][0]["state"] == "running"
    });
    wait_until("grandchildren started", Duration::from_secs(5), || {
        p.path("stubborn").exists() && p.path("plain").exists()
    });
    let read = |f: &str| -> i32 {
        std::fs::read_to_string(p.path(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let stubborn = host_pid(p.pid, read("stubborn")).unwrap();
    let plain = host_pid(p.pid, read("plain")).unwrap();
    let answer = p.request(r#"{"cmd":"stop","service":"svc"}"#);
    assert_eq!(answer["ok"], true, "{answer}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!alive(plain), "grandchild survived the stop signal");
    assert!(
        alive(stubborn),
        "the grandchild ignoring SIGTERM is still within the stop timeout"
    );
    p.wait_status("svc stopped", Duration::from_secs(10), |s| {
        s["services"][0]["state"] == "stopped"
    });
    assert!(
        !alive(stubborn),
        "grandchild ignoring SIGTERM survived the SIGKILL of the group"
    );
    assert!(
        p.log().contains("stop timeout: SIGKILL to the group"),
        "{}",
        p.log()
    );
}
