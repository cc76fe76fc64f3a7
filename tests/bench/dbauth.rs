//! What database authorization adds to a container's start: LAUNCH-to-TASK_RUNNING of a
//! networked berth task (macvlan + DHCP on the lab's LAN) whose app spec has a `dbauth:`
//! section, against the same task without it, interleaved task by task (the order
//! alternating) so that load from elsewhere falls on both alike. The difference is the
//! auth step: the executor's TASK_STARTING with the address reaching Marathon (the
//! double, fed from the agent double every 2 ms), init's request, dbauth's Marathon
//! lookup, the record, `CREATE USER`/`GRANT` on a real MariaDB, the credentials file.
//! Two intervals: LAUNCH -> TASK_RUNNING (the whole start; DHCP's variance included) and
//! first update with the address -> TASK_RUNNING (from the lease on: the auth step and
//! the service's start, without DHCP's variance). Printed (p50/p99 of each and the
//! differences), never asserted.
//!
//! Run (root): `cargo build --release -p berth-executor -p berth-agent --bins &&
//! cargo build --release --target x86_64-unknown-linux-musl -p berth-init &&
//! cargo bench -p berth-tests --bench dbauth` (BERTH_BENCH_TASKS overrides 50; with
//! `--profile dev` it runs the debug binaries of `cargo build --workspace --bins`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_tests::dbauth::{self, Feed, Settings};
use berth_tests::lab;
use berth_tests::marathon::{MarathonDouble, Options};
use berth_tests::mariadb::MariaDb;
use berth_tests::mesos::harness::Lab as ExecLab;
use berth_tests::mesos::AgentDouble;

const T: Duration = Duration::from_secs(60);

const PLAIN: &str = "services:\n  main:\n    command: [/bin/sleep, \"1000\"]\n";
const WITH_DBAUTH: &str = "dbauth:\n  url: http://10.77.0.1:9380\n  databases: [shop]\n  credentials: /run/db.cnf\nservices:\n  main:\n    command: [/bin/sleep, \"1000\"]\n";

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// One task of `app` on image `image`, then killed: (LAUNCH -> TASK_RUNNING, first update
/// with the address -> TASK_RUNNING), in ms.
fn once(
    net: &lab::Lab,
    lab: &ExecLab,
    feed: &Feed,
    image: &str,
    app: &str,
    tag: &str,
) -> (f64, f64) {
    let tid = lab.task_id(tag);
    let mut spec = lab.spec(&tid, None);
    spec.app_id = app.into();
    spec.env
        .push(("BERTH_EXECUTOR_NET_PARENT".into(), net.parent.clone()));
    let mut task = lab.task(&tid);
    task["labels"]["labels"][0]["value"] = image.into();
    let (d, mut exec) = net.host.run_in(|| {
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        d.state().ack_delay = Duration::from_millis(0);
        let exec = d.spawn_executor(&spec, Duration::from_secs(10));
        (d, exec)
    });
    assert!(d.enforce_registration(&mut exec));
    assert!(d.wait(T, |st| st.stream.is_some()));
    let d = Arc::new(d);
    feed.add(d.clone(), app);
    let t0 = Instant::now();
    d.launch(task);
    // Polled every 1 ms: when the first update with the address came, when RUNNING did.
    let (mut addressed, mut running) = (None, None);
    while running.is_none() {
        assert!(t0.elapsed() < T, "no TASK_RUNNING: {}", exec.log());
        {
            let st = d.state();
            for u in st.updates.iter() {
                let ip = !u["container_status"]["network_infos"].is_null();
                if ip && addressed.is_none() {
                    addressed = Some(t0.elapsed());
                }
                if u["state"] == "TASK_RUNNING" {
                    running = Some(t0.elapsed());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let running = running.unwrap_or_default();
    let out = (ms(running), ms(running - addressed.unwrap_or(running)));
    d.kill(&tid, Some(Duration::from_secs(5)));
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    feed.remove(&d);
    out
}

fn main() {
    lab::require_root();
    let n: usize = std::env::var("BERTH_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let net = lab::Lab::new();
    let lab = ExecLab::new("dbbench");
    let plain = lab.images.join("busybox");
    let db_img = lab.images.join("busydb");
    lab::run(&[
        "cp",
        "-a",
        plain.to_str().expect("path"),
        db_img.to_str().expect("path"),
    ]);
    for (img, yaml) in [(&plain, PLAIN), (&db_img, WITH_DBAUTH)] {
        std::fs::create_dir_all(img.join("etc/berth")).expect("etc/berth");
        std::fs::write(img.join("etc/berth/app.yaml"), yaml).expect("app.yaml");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = MariaDb::start(&net.lan, 3306);
    dbauth::prepare(&db);
    let m = Arc::new(net.lan.run_in(|| MarathonDouble::start(Options::default())));
    let mut settings = Settings::new(&m.url, "10.77.0.1");
    settings.task_wait_secs = 10;
    let _svc = dbauth::start(&net.lan, dir.path(), &settings);
    let feed = Feed::start(m.clone());
    // One of each first, not counted (caches, the first DHCP exchange, the pool).
    once(&net, &lab, &feed, "busybox", "/shop/web", "w0");
    once(&net, &lab, &feed, "busydb", "/shop/web", "w1");
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for i in 0..n {
        let mut run = |db: bool| {
            if db {
                with.push(once(
                    &net,
                    &lab,
                    &feed,
                    "busydb",
                    "/shop/web",
                    &format!("d{i}"),
                ));
            } else {
                without.push(once(
                    &net,
                    &lab,
                    &feed,
                    "busybox",
                    "/shop/web",
                    &format!("p{i}"),
                ));
            }
        };
        let first = i % 2 == 0;
        run(first);
        run(!first);
    }
    assert!(
        dbauth::accounts(&db).is_empty(),
        "accounts left: {}",
        dbauth::accounts(&db)
    );
    let stats = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        let mut x: Vec<f64> = v.iter().map(pick).collect();
        (pct(&mut x, 0.5), pct(&mut x, 0.99))
    };
    println!("dbauth: a networked task (macvlan + DHCP), {n} starts each, interleaved");
    for (what, pick) in [
        (
            "LAUNCH -> TASK_RUNNING",
            (|t: &(f64, f64)| t.0) as fn(&(f64, f64)) -> f64,
        ),
        ("address -> TASK_RUNNING", |t: &(f64, f64)| t.1),
    ] {
        let (a50, a99) = stats(&without, pick);
        let (b50, b99) = stats(&with, pick);
        println!("  {what}:");
        println!("    without dbauth:          p50 {a50:8.1} ms   p99 {a99:8.1} ms");
        println!("    with dbauth:             p50 {b50:8.1} ms   p99 {b99:8.1} ms");
        println!(
            "    added by the auth step:  p50 {:+8.1} ms   p99 {:+8.1} ms",
            b50 - a50,
            b99 - a99
        );
    }
}
