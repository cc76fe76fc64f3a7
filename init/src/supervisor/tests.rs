//! The engine with a recording fake system: no processes.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::engine::{Engine, EngineConfig};
use super::os::{Launch, Os};
use crate::exit_status::ExitKind;
use crate::spec::{AppSpec, Probe};
use crate::status::Request;

/// Also the fake of the LVS hook's tests (`lvs_tests.rs`).
#[derive(Default)]
pub(super) struct FakeOs {
    next_pid: i32,
    pub(super) spawned: Vec<(i32, String)>,
    pub(super) signals: Vec<(i32, Signal)>,
    pub(super) alive: HashSet<i32>,
    pub(super) probes: Vec<(usize, u64)>,
}

impl Os for FakeOs {
    fn spawn(&mut self, launch: &Launch) -> std::io::Result<i32> {
        self.next_pid += 1;
        let pid = 100 + self.next_pid;
        self.spawned.push((pid, launch.label.clone()));
        self.alive.insert(pid);
        Ok(pid)
    }
    fn signal_group(&mut self, pgid: i32, sig: Signal) {
        self.signals.push((pgid, sig));
    }
    fn group_alive(&mut self, pgid: i32) -> bool {
        self.alive.contains(&pgid)
    }
    fn start_probe(&mut self, service: usize, generation: u64, _probe: &Probe, _timeout: Duration) {
        self.probes.push((service, generation));
    }
}

pub(super) fn engine(yaml: &str) -> Engine<FakeOs> {
    let spec = AppSpec::parse(yaml, Path::new("/app.yaml")).unwrap();
    let cfg = EngineConfig {
        spec,
        debug: false,
        inherited_env: vec![],
        service_ids: vec![],
        cron_ids: vec![],
    };
    Engine::new(cfg, FakeOs::default(), 1000.0)
}

fn pid_of(e: &Engine<FakeOs>, label: &str) -> i32 {
    e.os()
        .spawned
        .iter()
        .rev()
        .find(|(_, l)| l == label)
        .map(|(p, _)| *p)
        .unwrap()
}

fn labels(e: &Engine<FakeOs>) -> Vec<String> {
    e.os().spawned.iter().map(|(_, l)| l.clone()).collect()
}

const TWO: &str = "services:
  db:
    command: /db
    health: {tcp: {port: 5432}, delay: 0s, interval: 1s}
  web:
    command: /web
    depends_on: [db]
";

#[test]
fn dependents_wait_for_health_and_stop_first() {
    let t0 = Instant::now();
    let mut e = engine(TWO);
    e.tick(t0, 1000.0);
    assert_eq!(labels(&e), ["db"]);
    assert_eq!(e.os().probes.len(), 1, "first check at once (delay 0)");
    let (svc, generation) = e.os().probes[0];
    e.on_probe(svc, generation, true, t0);
    e.tick(t0, 1000.0);
    assert_eq!(labels(&e), ["db", "web"]);
    assert_eq!(e.status().state, crate::status::AppState::Running);

    let (db, web) = (pid_of(&e, "db"), pid_of(&e, "web"));
    e.on_shutdown_signal(t0);
    assert_eq!(
        e.os()
            .signals
            .iter()
            .filter(|(_, s)| *s == Signal::SIGTERM)
            .collect::<Vec<_>>(),
        [&(web, Signal::SIGTERM)]
    );
    // web's main exits and its group empties: then db is stopped.
    e.os.alive.remove(&web);
    e.on_reaped(
        web,
        ExitKind::Signaled {
            signo: 15,
            core_dumped: false,
        },
        t0,
    );
    e.tick(t0, 1000.0);
    assert!(e.os().signals.contains(&(db, Signal::SIGTERM)));
    e.os.alive.remove(&db);
    e.on_reaped(db, ExitKind::Exited(0), t0);
    e.tick(t0, 1000.0);
    assert_eq!(e.finished(), Some(0));
}

#[test]
fn daemonizing_entry_is_tracked_by_group_then_restarted() {
    let t0 = Instant::now();
    let mut e = engine("entry:\n  - /daemon start\n");
    e.tick(t0, 1000.0);
    let pid = pid_of(&e, "entry-1");
    // Main exits 0 but a forked child keeps the group alive.
    e.on_reaped(pid, ExitKind::Exited(0), t0);
    assert_eq!(e.status().services[0].state, "running");
    assert_eq!(e.status().services[0].pid, Some(pid));
    // An orphan nobody owns: reaped, nothing changes.
    e.on_reaped(4242, ExitKind::Exited(1), t0);
    assert_eq!(e.status().services[0].state, "running");
    // The group empties: a failure, restarted after the backoff (default 1 s).
    e.os.alive.remove(&pid);
    e.tick(t0 + Duration::from_millis(10), 1000.0);
    assert_eq!(e.status().services[0].state, "backoff");
    e.tick(t0 + Duration::from_millis(500), 1000.0);
    assert_eq!(labels(&e).len(), 1);
    e.tick(t0 + Duration::from_millis(1011), 1000.0);
    assert_eq!(labels(&e), ["entry-1", "entry-1"]);
    assert_eq!(e.status().services[0].restarts, 1);
}

#[test]
fn one_shot_entry_that_exits_zero_completes() {
    let t0 = Instant::now();
    let mut e = engine("entry:\n  - /setup\n  - /server\n");
    e.tick(t0, 1000.0);
    assert_eq!(labels(&e), ["entry-1"]);
    e.tick(t0 + Duration::from_millis(900), 1000.0);
    assert_eq!(labels(&e), ["entry-1"], "entries run one after the other");
    let pid = pid_of(&e, "entry-1");
    e.os.alive.remove(&pid);
    e.on_reaped(pid, ExitKind::Exited(0), t0);
    e.tick(t0, 1000.0);
    assert_eq!(e.status().services[0].state, "exited", "{:?}", e.status());
    assert_eq!(
        labels(&e),
        ["entry-1", "entry-2"],
        "the next entry starts after the first completed"
    );
}

#[test]
fn requests_stop_and_start() {
    let t0 = Instant::now();
    let mut e = engine("services:\n  a:\n    command: /a\n    stop_signal: INT\n");
    e.tick(t0, 1000.0);
    let pid = pid_of(&e, "a");
    let answer = e.handle_request(
        &Request::Stop {
            service: "a".into(),
        },
        t0,
    );
    assert!(answer.contains(r#""state":"stopping""#), "{answer}");
    assert!(e.os().signals.contains(&(pid, Signal::SIGINT)));
    // Stop timeout (default 10 s): SIGKILL to the group.
    e.tick(t0 + Duration::from_secs(10), 1000.0);
    assert!(e.os().signals.contains(&(pid, Signal::SIGKILL)));
    e.os.alive.remove(&pid);
    e.on_reaped(
        pid,
        ExitKind::Signaled {
            signo: 9,
            core_dumped: false,
        },
        t0 + Duration::from_secs(10),
    );
    assert_eq!(e.status().services[0].state, "stopped");
    let answer = e.handle_request(
        &Request::Start {
            service: "a".into(),
        },
        t0,
    );
    assert!(answer.contains(r#""state":"running""#), "{answer}");
    let answer = e.handle_request(
        &Request::Start {
            service: "zz".into(),
        },
        t0,
    );
    assert!(answer.contains(r#""ok":false"#), "{answer}");
}

#[test]
fn a_foreground_entry_does_not_block_the_next_for_long() {
    let t0 = Instant::now();
    let mut e = engine("entry:\n  - /server --foreground\n  - /other\n");
    e.tick(t0, 1000.0);
    assert_eq!(labels(&e), ["entry-1"]);
    assert!(e.next_deadline(t0, 1000.0).unwrap() <= t0 + super::service::ENTRY_SETTLE);
    e.tick(t0 + super::service::ENTRY_SETTLE, 1000.0);
    assert_eq!(labels(&e), ["entry-1", "entry-2"]);
}

fn engine_debug(yaml: &str, debug: bool) -> Engine<FakeOs> {
    let spec = AppSpec::parse(yaml, Path::new("/app.yaml")).unwrap();
    let cfg = EngineConfig {
        spec,
        debug,
        inherited_env: vec![],
        service_ids: vec![],
        cron_ids: vec![],
    };
    Engine::new(cfg, FakeOs::default(), 1000.0)
}

/// Runs the only service of `yaml` to `exit` and returns what the engine says then.
fn run_once(yaml: &str, debug: bool, exit: ExitKind) -> Engine<FakeOs> {
    let t0 = Instant::now();
    let mut e = engine_debug(yaml, debug);
    e.tick(t0, 1000.0);
    let pid = e.os().spawned[0].0;
    e.os.alive.remove(&pid);
    e.on_reaped(pid, exit, t0);
    e.tick(t0, 1000.0);
    e
}

const ONCE: &str = "services:\n  main:\n    command: [/bin/sh, -c, x]\n    restart: never\n";

#[test]
fn init_ends_once_every_service_has_completed() {
    assert_eq!(
        run_once(ONCE, false, ExitKind::Exited(0)).finished(),
        Some(0)
    );
    assert_eq!(
        run_once(ONCE, false, ExitKind::Exited(3)).finished(),
        Some(3)
    );
    let killed = ExitKind::Signaled {
        signo: 9,
        core_dumped: false,
    };
    assert_eq!(run_once(ONCE, false, killed).finished(), Some(137));
    // An optional service that failed has completed too: its code is the exit code.
    let optional = "services:\n  main:\n    command: /x\n    restart: never\n    required: false\n";
    assert_eq!(
        run_once(optional, false, ExitKind::Exited(4)).finished(),
        Some(4)
    );
    // on-failure and a success: completed.
    let on_failure = "services:\n  main:\n    command: /x\n    restart: on-failure\n";
    assert_eq!(
        run_once(on_failure, false, ExitKind::Exited(0)).finished(),
        Some(0)
    );
}

#[test]
fn init_stays_up_while_something_may_still_run() {
    // Debug mode keeps init up whatever happened.
    let e = run_once(ONCE, true, ExitKind::Exited(0));
    assert_eq!(e.finished(), None);
    assert_eq!(e.status().services[0].state, "exited");
    // A cron job may still fire.
    let cron = "services:\n  main:\n    command: /x\n    restart: never\ncron:\n  - name: c\n    schedule: '* * * * *'\n    command: /c\n";
    assert_eq!(run_once(cron, false, ExitKind::Exited(0)).finished(), None);
    // Another service still runs.
    let two =
        "services:\n  main:\n    command: /x\n    restart: never\n  other:\n    command: /y\n";
    assert_eq!(run_once(two, false, ExitKind::Exited(0)).finished(), None);
    // A service restarted after its exit (always) is not completed.
    let always = "services:\n  main:\n    command: /x\n";
    let e = run_once(always, false, ExitKind::Exited(0));
    assert_eq!(e.finished(), None);
    assert_eq!(e.status().services[0].state, "backoff");
}

#[test]
fn an_operator_stop_keeps_init_up() {
    let t0 = Instant::now();
    let mut e = engine("services:\n  a:\n    command: /a\n    restart: never\n  b:\n    command: /b\n    restart: never\n");
    e.tick(t0, 1000.0);
    let (a, b) = (pid_of(&e, "a"), pid_of(&e, "b"));
    e.handle_request(
        &Request::Stop {
            service: "a".into(),
        },
        t0,
    );
    e.os.alive.remove(&a);
    e.on_reaped(
        a,
        ExitKind::Signaled {
            signo: 15,
            core_dumped: false,
        },
        t0,
    );
    e.tick(t0, 1000.0);
    assert_eq!(e.status().services[0].state, "stopped");
    e.os.alive.remove(&b);
    e.on_reaped(b, ExitKind::Exited(0), t0);
    e.tick(t0, 1000.0);
    assert_eq!(e.status().services[1].state, "exited");
    assert_eq!(e.finished(), None, "a stopped service can be started again");
}
