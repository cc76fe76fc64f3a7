//! The LVS hook with the engine on a recording fake system.

use std::path::Path;

use nix::sys::signal::Signal;

use super::*;
use crate::exit_status::ExitKind;
use crate::lvs::link::Outcome;
use crate::supervisor::tests::FakeOs;

const SPEC: &str = "services:
  web:
    command: /web
    health: {tcp: {port: 8080}, delay: 0s, interval: 1s, consecutive_failures: 9}
    lvs: {director: [http://192.0.2.1:9370, http://192.0.2.2:9370], vip: 10.0.0.100:80/tcp, port: 8080, weight: 2, drain: 2s}
";

fn engine(grace: Duration, t0: Instant) -> Engine<FakeOs> {
    let spec = AppSpec::parse(SPEC, Path::new("/app.yaml")).unwrap();
    let mut e = crate::supervisor::tests::engine(SPEC);
    e.set_lvs(LvsHook::new(&spec, Some(grace), t0).unwrap());
    e
}

fn wants(e: &Engine<FakeOs>) -> Vec<Target> {
    let t = e.lvs.as_ref().unwrap().table.lock().unwrap();
    t[0].as_ref().unwrap().iter().map(|l| l.want).collect()
}

/// Every director answers every call (the worker's part, by hand).
fn answer_all(e: &Engine<FakeOs>, now: Instant) {
    let mut t = e.lvs.as_ref().unwrap().table.lock().unwrap();
    for l in t[0].as_mut().unwrap() {
        if l.due(now).is_some() {
            l.done(Outcome::Done, now);
        }
    }
}

fn probe(e: &mut Engine<FakeOs>, ok: bool, now: Instant) {
    e.tick(now, 1000.0);
    let (svc, generation) = *e.os().probes.last().unwrap();
    e.on_probe(svc, generation, ok, now);
    e.tick(now, 1000.0);
}

fn terms(e: &Engine<FakeOs>) -> usize {
    e.os()
        .signals
        .iter()
        .filter(|(_, s)| *s == Signal::SIGTERM)
        .count()
}

#[test]
fn healthy_registers_failing_quiesces_stop_drains_then_deregisters() {
    let t0 = Instant::now();
    let mut e = engine(Duration::from_secs(10), t0);
    e.tick(t0, 1000.0);
    assert_eq!(wants(&e), [Target::Absent; 2], "not before it is healthy");
    probe(&mut e, true, t0);
    assert_eq!(wants(&e), [Target::Weight(2); 2], "every director");
    answer_all(&e, t0);
    let st = e.status();
    let lvs = st.services[0].lvs.as_ref().unwrap();
    assert_eq!(lvs["state"], "registered", "{lvs}");
    assert_eq!(lvs["weight"], 2, "{lvs}");

    let t1 = t0 + Duration::from_secs(1);
    probe(&mut e, false, t1);
    assert_eq!(wants(&e), [Target::Weight(0); 2]);
    answer_all(&e, t1);
    assert_eq!(
        e.status().services[0].lvs.as_ref().unwrap()["state"],
        "quiesced"
    );
    let t2 = t1 + Duration::from_secs(1);
    probe(&mut e, true, t2);
    assert_eq!(wants(&e), [Target::Weight(2); 2], "back once healthy");
    answer_all(&e, t2);

    // SIGTERM: weight 0 at once, the stop signal only after the drain.
    let t3 = t2 + Duration::from_secs(1);
    e.on_shutdown_signal(t3);
    e.tick(t3, 1000.0);
    assert_eq!(wants(&e), [Target::Weight(0); 2]);
    assert_eq!(terms(&e), 0, "drain first");
    assert_eq!(
        e.status().services[0].lvs.as_ref().unwrap()["state"],
        "draining"
    );
    assert_eq!(
        e.next_deadline(t3, 1000.0),
        Some(t3 + Duration::from_secs(2))
    );
    e.tick(t3 + Duration::from_millis(1999), 1000.0);
    assert_eq!(terms(&e), 0);
    let t4 = t3 + Duration::from_secs(2);
    e.tick(t4, 1000.0);
    assert_eq!(terms(&e), 1, "stop signal after the drain");
    assert_eq!(
        wants(&e),
        [Target::Weight(0); 2],
        "still in the table while stopping"
    );

    e.os.alive.clear();
    e.on_reaped(
        101,
        ExitKind::Signaled {
            signo: 15,
            core_dumped: false,
        },
        t4,
    );
    e.tick(t4, 1000.0);
    assert_eq!(wants(&e), [Target::Absent; 2], "DELETE once down");
    assert_eq!(e.finished(), None, "waits for the DELETEs");
    answer_all(&e, t4);
    e.tick(t4, 1000.0);
    assert_eq!(e.finished(), Some(0));
}

#[test]
fn the_drain_fits_the_grace_and_a_dead_director_does_not_hold_the_exit() {
    let t0 = Instant::now();
    let mut e = engine(Duration::from_millis(1500), t0);
    probe(&mut e, true, t0);
    answer_all(&e, t0);
    e.on_shutdown_signal(t0);
    e.tick(t0, 1000.0);
    // drain 2 s > grace 1.5 s - 0.75 s of room: cut to 0.75 s.
    assert_eq!(
        e.next_deadline(t0, 1000.0),
        Some(t0 + Duration::from_millis(750))
    );
    e.tick(t0 + Duration::from_millis(750), 1000.0);
    assert_eq!(terms(&e), 1);
    e.os.alive.clear();
    e.on_reaped(101, ExitKind::Exited(0), t0);
    e.tick(Instant::now(), 1000.0);
    // The directors never answer: init exits at shutdown + grace - margin.
    assert_eq!(e.finished(), None);
    let exit_by = t0 + Duration::from_millis(1200);
    assert!(e.next_deadline(Instant::now(), 1000.0) <= Some(exit_by));
    std::thread::sleep(exit_by.saturating_duration_since(Instant::now()));
    assert_eq!(e.finished(), Some(0));
}

#[test]
fn a_service_that_never_got_healthy_stops_without_a_drain() {
    let t0 = Instant::now();
    let mut e = engine(Duration::from_secs(10), t0);
    e.tick(t0, 1000.0);
    e.on_shutdown_signal(t0);
    assert_eq!(terms(&e), 1);
    assert_eq!(wants(&e), [Target::Absent; 2]);
}

#[test]
fn grace_from_env() {
    assert_eq!(
        LvsHook::grace_from_env(Some("2500")),
        Some(Duration::from_millis(2500))
    );
    assert_eq!(LvsHook::grace_from_env(Some("soon")), None);
    assert_eq!(LvsHook::grace_from_env(None), None);
}
