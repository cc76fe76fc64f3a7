//! Cron: fires on schedule, never overlaps a run of the same job, kills a run at its
//! timeout. Uses the 6-field form (leading seconds) to keep the test short.

mod sup_common;

use std::time::Duration;

use sup_common::{lines, Pid1};

#[test]
fn fires_on_schedule_without_overlap_and_with_timeout() {
    let spec = "services:
  idle:
    command: /bin/sleep 1000
cron:
  - name: quick
    schedule: '* * * * * *'
    command: [/bin/sh, -c, 'date +%s >> @DIR@/quick']
  - name: slow
    schedule: '* * * * * *'
    command: [/bin/sh, -c, 'echo \"start $(date +%s.%N)\" >> @DIR@/slow; sleep 2.5; echo \"end $(date +%s.%N)\" >> @DIR@/slow']
  - name: hung
    schedule: '*/2 * * * * *'
    timeout: 500ms
    command: [/bin/sh, -c, 'echo started >> @DIR@/hung; sleep 100; echo finished >> @DIR@/hung']
";
    let p = Pid1::start(spec, &[]);
    std::thread::sleep(Duration::from_millis(6500));
    // quick: once per second, on the second.
    let quick: Vec<u64> = lines(&p.path("quick"))
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!((5..=7).contains(&quick.len()), "{quick:?}");
    assert!(
        quick.windows(2).all(|w| w[1] == w[0] + 1),
        "one run per second: {quick:?}"
    );
    // slow: runs never overlap.
    let slow = lines(&p.path("slow"));
    let mut open = false;
    for l in &slow {
        if l.starts_with("start") {
            assert!(!open, "overlapping runs: {slow:?}");
            open = true;
        } else {
            open = false;
        }
    }
    assert!(
        slow.iter().filter(|l| l.starts_with("start")).count() >= 2,
        "{slow:?}"
    );
    assert!(p.log().contains("previous run still going"), "{}", p.log());
    // hung: started, killed at its timeout, never finished.
    let hung = lines(&p.path("hung"));
    assert!(
        hung.len() >= 2 && hung.iter().all(|l| l == "started"),
        "{hung:?}"
    );
    assert!(p.log().contains("cron run timed out"), "{}", p.log());
}
