//! The status socket's `wait` request: held while the overall state is the one the client
//! names, answered with the status as soon as it changes (or when its time is up), while
//! plain `status` requests keep being answered at once.

mod sup_common;

use std::time::{Duration, Instant};

use sup_common::Pid1;

const T: Duration = Duration::from_secs(10);

#[test]
fn a_wait_is_answered_when_the_state_changes_or_its_time_is_up() {
    // One service, gated on a health check that passes once the file `ready` exists.
    let spec = "services:
  web:
    command: [/bin/sh, -c, 'trap \"exit 0\" TERM; while :; do sleep 0.05; done']
    health: {cmd: [/bin/sh, -c, 'test -f @DIR@/ready'], delay: 0s, interval: 50ms, timeout: 1s, grace_period: 60s}
";
    let mut p = Pid1::start(spec, &[]);
    p.wait_status("the service running", T, |s| {
        s["services"][0]["state"] == "running"
    });
    assert_eq!(p.status()["state"], "starting");

    // Nothing changes: answered after its timeout, with the state as it is.
    let t0 = Instant::now();
    let st = p.request(r#"{"cmd":"wait","state":"starting","timeout_ms":300}"#);
    let took = t0.elapsed();
    assert_eq!(
        (st["ok"].as_bool(), st["state"].as_str()),
        (Some(true), Some("starting")),
        "{st}"
    );
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // A change answers a held wait; a status asked meanwhile is answered at once.
    std::thread::scope(|s| {
        let waiting = s.spawn(|| {
            let t0 = Instant::now();
            let st = p.request(r#"{"cmd":"wait","state":"starting","timeout_ms":30000}"#);
            (st, t0.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        let t1 = Instant::now();
        assert_eq!(p.status()["state"], "starting");
        assert!(
            t1.elapsed() < Duration::from_secs(2),
            "status held by a wait"
        );
        std::fs::write(p.path("ready"), "").unwrap();
        let (st, took) = waiting.join().unwrap();
        assert_eq!(st["state"], "running", "{st}");
        assert_eq!(st["services"][0]["healthy"], true, "{st}");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(10),
            "{took:?}"
        );
    });

    // Already different: answered at once.
    let t0 = Instant::now();
    let st = p.request(r#"{"cmd":"wait","state":"starting","timeout_ms":30000}"#);
    assert_eq!(st["state"], "running", "{st}");
    assert!(t0.elapsed() < Duration::from_secs(2));

    // A wait on `running` is answered by the shutdown (`stopping`, or the last status
    // before init exits).
    std::thread::scope(|s| {
        let waiting =
            s.spawn(|| p.request(r#"{"cmd":"wait","state":"running","timeout_ms":30000}"#));
        std::thread::sleep(Duration::from_millis(200));
        p.signal(libc::SIGTERM);
        let st = waiting.join().unwrap();
        assert_eq!(st["state"], "stopping", "{st}");
    });
    assert_eq!(p.wait_exit(T), 0, "{}", p.log());
}
