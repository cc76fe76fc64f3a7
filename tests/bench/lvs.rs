//! LVS benchmark (VM tier: needs ip_vs): how fast a change reaches the IPVS table, berth's
//! way against a keepalived-style full reload, side by side in one run, on equal tables
//! (the changed virtual service plus OTHER services of 3 real servers each).
//!
//! 1. "service healthy -> VIP serves it": berth-init (PID 1 of a PID namespace in the real
//!    server's netns, health `test -f healthy` every 100 ms) registers with the real
//!    `berth-agent lvs`, which applies the diff; timed from creating the health file (so
//!    berth's figure includes finding out by its own check) until the VIP serves: the real
//!    server is in the kernel's table with a weight and a new connection to the VIP from
//!    the client netns is answered (the same event for both sides: see `until_served` for
//!    why polling by connects alone would not be). The anchor learns "healthy" for free at t0,
//!    rewrites its whole keepalived.conf with the real server in it and sends SIGHUP.
//! 2. "SIGKILL -> real server gone": the service's process is SIGKILLed; once it is reaped
//!    (the executor's part), berth's Marathon double emits TASK_FAILED and the director
//!    removes the real server; the anchor rewrites its config without it and reloads.
//!    Timed until the real server is gone from the kernel's table (netlink dump).
//!
//! Run (root, in the VM): `cargo build --workspace --bins && scripts/bench-vm.sh lvs --profile dev`.
//! bench-vm.sh runs this bench, berth's binaries, keepalived and the tools both sides exec
//! from a tmpfs copy inside the VM (the VM's root is 9p without a page cache: a fresh
//! process would page-fault its code from the host at milliseconds a fault), so the
//! figures are those of a node whose binaries are in its page cache.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use berth_netcfg::ipvs::ServiceKey;
use berth_tests::lab::{self, Ns};
use berth_tests::lvs_lab::{self, Director, DirectorConfig, Table, VIP_ADDR};
use berth_tests::marathon::{MarathonDouble, Options};
use berth_tests::mesos::harness::binary;

const ROUNDS: usize = 10;
/// Other virtual services in both tables, 3 real servers each.
const OTHER: usize = 50;
const RS: &str = "10.66.0.2";
const API: &str = "10.66.0.1:9370";
const VIP: &str = "10.88.0.100:80/tcp";
const APP: &str = "/bench/web";

/// Director netns (routes client <-> real servers, holds the VIP), the real server's
/// netns behind it, and the client netns.
struct Triangle {
    client: Ns,
    rs: Ns,
    director: Ns,
}

impl Triangle {
    fn new(tag: &str) -> Triangle {
        let director = Ns::new(&lab::unique(&format!("lb{tag}d")));
        let rs = Ns::new(&lab::unique(&format!("lb{tag}r")));
        director.ip(&["link", "set", "lo", "up"]);
        director.ip(&[
            "link",
            "add",
            "rs0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            rs.name(),
        ]);
        director.ip(&["addr", "add", "10.66.0.1/16", "dev", "rs0"]);
        director.ip(&["link", "set", "rs0", "up"]);
        rs.ip(&["addr", "add", &format!("{RS}/16"), "dev", "eth0"]);
        rs.ip(&["link", "set", "eth0", "up"]);
        rs.ip(&["link", "set", "lo", "up"]);
        rs.ip(&["route", "add", "default", "via", "10.66.0.1"]);
        let client = lvs_lab::attach_client(&director, &lab::unique(&format!("lb{tag}c")));
        Triangle {
            client,
            rs,
            director,
        }
    }
}

/// The other services' VIPs and real servers (the same in both tables).
fn others() -> Vec<(String, Vec<String>)> {
    (0..OTHER)
        .map(|i| {
            let vip = format!("10.88.1.{}:{}", i / 200 + 1, 1000 + i);
            let rs = (0..3)
                .map(|j| format!("10.66.{}.{}", 1 + i / 80, 1 + (i % 80) * 3 + j))
                .collect();
            (vip, rs)
        })
        .collect()
}

/// Waits until the VIP serves: the real server is in the kernel's table with a weight
/// (netlink dump of the director's netns), then one new connection from the client netns is
/// answered (retried at once if refused). Both sides are timed to this same event. Only
/// connecting would not be fair: berth keeps the VIP's virtual service while it has no
/// real servers, so a connect meets ICMP port-unreachable, which the kernel rate-limits
/// (6, then 1 a second) and most tries wait out their timeout; keepalived deletes an empty
/// virtual service, so its tries are refused at once. Returns when the table had it.
fn until_served(client: &Ns, table: &mut Table, key: &ServiceKey) -> Instant {
    let rs: IpAddr = RS.parse().unwrap();
    until("the real server in the table", || {
        table.servers(key).get(&rs).is_some_and(|&(_, w)| w > 0)
    });
    let in_table = Instant::now();
    let path = client.path();
    lab::in_netns(&path, || {
        let vip = SocketAddr::new(key.addr, key.port);
        until("the VIP serves", || {
            lvs_lab::http_get(vip, "/", Duration::from_millis(1000)).is_ok()
        });
    });
    in_table
}

/// Waits until the real server's service answers on its own address (in its netns).
fn until_up(rs: &Ns) {
    let path = rs.path();
    lab::in_netns(&path, || {
        let addr = SocketAddr::new(RS.parse().unwrap(), 8080);
        until("the service answers", || {
            lvs_lab::http_get(addr, "/", Duration::from_millis(500)).is_ok()
        });
    });
}

fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < end, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn median_p90(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        ms(v[v.len() / 2]),
        ms(v[(v.len() * 9 / 10).min(v.len() - 1)]),
    )
}

// ---- berth ----

fn init_spec(dir: &str) -> String {
    format!(
        "services:\n  web:\n    command: [busybox, httpd, -f, -p, \"8080\", -h, {dir}/www]\n    \
         health: {{cmd: [test, -f, {dir}/healthy], delay: 0s, interval: 100ms, timeout: 2s, \
         grace_period: 0s, consecutive_failures: 1000}}\n    \
         lvs: {{director: [http://{API}], vip: {VIP}, port: 8080, weight: 1, drain: 0s}}\n"
    )
}

/// berth-init as PID 1 of a PID namespace in the real server's netns.
fn start_init(rs: &Ns, dir: &std::path::Path) -> Child {
    let _ = std::fs::remove_file(dir.join("healthy"));
    rs.command(&["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(binary("berth-init"))
        .arg("--spec")
        .arg(dir.join("app.yaml"))
        .arg("--socket")
        .arg(dir.join("init.sock"))
        .env("BERTH_KILL_GRACE_MS", "5000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("berth-init")
}

/// The pid of berth-init inside `unshare`.
fn inner_pid(unshare: &Child) -> i32 {
    let u = unshare.id();
    let mut pid = None;
    until("berth-init forked", || {
        pid = std::fs::read_to_string(format!("/proc/{u}/task/{u}/children"))
            .ok()
            .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()));
        pid.is_some()
    });
    pid.unwrap()
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a process this benchmark started.
    unsafe { libc::kill(pid, sig) };
}

fn berth(t: &Triangle) -> (Vec<Duration>, Vec<Duration>) {
    let m = t
        .director
        .run_in(|| MarathonDouble::start(Options::default()));
    // The other services' real servers come from Marathon, as in production.
    let mut cfg_extra = String::new();
    for (i, (vip, rs)) in others().iter().enumerate() {
        let app = format!("/bench/other-{i}");
        cfg_extra.push_str(&format!(
            "[[service]]\nvip = \"{vip}/tcp\"\nforward = \"nat\"\napp = \"{app}\"\n"
        ));
        for (j, ip) in rs.iter().enumerate() {
            m.add_task(
                &app,
                &format!("other-{i}.{j}"),
                ip.parse().unwrap(),
                &[8080],
            );
            m.set_health(&format!("other-{i}.{j}"), true);
        }
    }
    let key: ServiceKey = VIP.parse().unwrap();
    let mut dir_ = Director::start_with(
        &t.director,
        &binary("berth-agent"),
        &DirectorConfig {
            listen: API.parse().unwrap(),
            marathon_url: m.url.clone(),
            vip: VIP.into(),
            app: APP.into(),
            reconcile_secs: 3600,
        },
        &cfg_extra,
    );
    let mut table = Table::open(&t.director);
    until("the director's table", || {
        table.has(&key) && table.total_dests() == OTHER * 3
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/index.html"), "rs\n").unwrap();
    std::fs::write(
        dir.path().join("app.yaml"),
        init_spec(&dir.path().display().to_string()),
    )
    .unwrap();
    let rs: IpAddr = RS.parse().unwrap();

    let (mut healthy, mut to_table) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let mut init = start_init(&t.rs, dir.path());
        let pid = inner_pid(&init);
        // t0 once the service runs (its checks failing): init's own start is not the
        // figure, as keepalived's start is not the anchor's.
        until_up(&t.rs);
        let t0 = Instant::now();
        std::fs::write(dir.path().join("healthy"), "").unwrap();
        let in_table = until_served(&t.client, &mut table, &key);
        healthy.push(t0.elapsed());
        to_table.push(in_table - t0);
        signal(pid, libc::SIGTERM);
        init.wait().unwrap();
        until("deregistered", || !table.servers(&key).contains_key(&rs));
    }

    let mut killed = Vec::new();
    for round in 0..ROUNDS {
        let mut init = start_init(&t.rs, dir.path());
        let pid = inner_pid(&init);
        std::fs::write(dir.path().join("healthy"), "").unwrap();
        until_served(&t.client, &mut table, &key);
        let id = format!("web.{round}");
        m.add_task(APP, &id, rs, &[8080]);
        m.set_health(&id, true);
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        signal(pid, libc::SIGKILL);
        init.wait().unwrap();
        m.status(APP, &id, "TASK_FAILED", None, &[]);
        until("removed by the event", || {
            !table.servers(&key).contains_key(&rs)
        });
        killed.push(t0.elapsed());
    }
    dir_.stop();
    println!("berth: healthy -> in the table {:?}", median_p90(to_table));
    (healthy, killed)
}

// ---- the anchor: keepalived, whole config rewritten and reloaded (SIGHUP) ----

fn keepalived_conf(with_rs: bool) -> String {
    let vs = |vip: &str, port: &str, rs: &[String]| {
        let mut s = format!(
            "virtual_server {vip} {port} {{\n  lb_algo wrr\n  lb_kind NAT\n  protocol TCP\n"
        );
        for r in rs {
            s.push_str(&format!("  real_server {r} 8080 {{\n    weight 1\n  }}\n"));
        }
        s + "}\n"
    };
    let mut c = String::from("global_defs {\n  router_id bench\n}\n");
    let mine: Vec<String> = if with_rs { vec![RS.into()] } else { vec![] };
    c.push_str(&vs(VIP_ADDR, "80", &mine));
    for (vip, rs) in others() {
        let (a, p) = vip.split_once(':').unwrap();
        c.push_str(&vs(a, p, &rs));
    }
    c
}

fn anchor(t: &Triangle) -> (Vec<Duration>, Vec<Duration>) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("keepalived.conf");
    std::fs::create_dir_all(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/index.html"), "rs\n").unwrap();
    std::fs::write(&conf, keepalived_conf(false)).unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let mut ka = t
        .director
        .command(&["keepalived", "-n", "-l", "-C", "-f", &p("keepalived.conf")])
        .args(["-p", &p("k.pid"), "-c", &p("c.pid"), "-r", &p("v.pid")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("keepalived (apt-get install keepalived)");
    let key: ServiceKey = VIP.parse().unwrap();
    let mut table = Table::open(&t.director);
    // keepalived leaves out a virtual server without real servers: only the others exist.
    until("keepalived's table", || table.total_dests() == OTHER * 3);
    let rs: IpAddr = RS.parse().unwrap();
    let www = p("www");
    let httpd = |t: &Triangle| {
        t.rs.command(&["busybox", "httpd", "-f", "-p", "8080", "-h", &www])
            .stdin(Stdio::null())
            .spawn()
            .expect("httpd")
    };
    let reload = |with: bool| {
        std::fs::write(&conf, keepalived_conf(with)).unwrap();
        signal(ka.id() as i32, libc::SIGHUP);
    };

    let (mut healthy, mut to_table) = (Vec::new(), Vec::new());
    let mut h = httpd(t);
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        reload(true);
        let in_table = until_served(&t.client, &mut table, &key);
        healthy.push(t0.elapsed());
        to_table.push(in_table - t0);
        reload(false);
        until("removed", || !table.servers(&key).contains_key(&rs));
    }
    let _ = h.kill();
    let _ = h.wait();

    let mut killed = Vec::new();
    for _ in 0..ROUNDS {
        let mut h = httpd(t);
        reload(true);
        until_served(&t.client, &mut table, &key);
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        let _ = h.kill();
        let _ = h.wait();
        reload(false);
        until("removed", || !table.servers(&key).contains_key(&rs));
        killed.push(t0.elapsed());
    }
    signal(ka.id() as i32, libc::SIGTERM);
    let _ = ka.wait();
    println!(
        "keepalived: healthy -> in the table {:?}",
        median_p90(to_table)
    );
    (healthy, killed)
}

fn main() {
    lab::require_root();
    assert_eq!(
        std::env::var("BERTH_VM_TIER").as_deref(),
        Ok("1"),
        "the LVS bench needs ip_vs: run it with scripts/bench-vm.sh lvs --profile dev"
    );
    let b = Triangle::new("b");
    let (bh, bk) = berth(&b);
    drop(b);
    println!(
        "berth (median / p90 ms): healthy -> served {:?}, SIGKILL -> gone {:?}",
        median_p90(bh.clone()),
        median_p90(bk.clone())
    );
    let a = Triangle::new("a");
    let (ah, ak) = anchor(&a);
    drop(a);
    let rows: BTreeMap<&str, _> = [
        ("1 service healthy -> VIP serves it", (bh, ah)),
        ("2 SIGKILL -> real server gone", (bk, ak)),
    ]
    .into();
    println!(
        "\nLVS change latency, {ROUNDS} rounds each, tables of {} services (ms, median / p90)",
        OTHER + 1
    );
    println!(
        "{:<38} {:>18} {:>26} {:>8}",
        "", "berth (diff)", "keepalived (full reload)", "berth/anchor"
    );
    for (name, (b, a)) in rows {
        let (bm, b9) = median_p90(b);
        let (am, a9) = median_p90(a);
        println!(
            "{:<38} {:>8.1} / {:>7.1} {:>14.1} / {:>9.1} {:>7.2}x",
            &name[2..],
            bm,
            b9,
            am,
            a9,
            bm / am
        );
    }
}
