//! VM tier (needs ip_vs, which the host kernel lacks): LVS end to end. The real
//! `berth-agent lvs` owns a NAT virtual service on real IPVS in the director netns (the
//! LAN's gateway), fed by the Marathon double, which the Mesos agent doubles of three real
//! berth tasks feed (runc, macvlan, DHCP from the lab's dnsmasq, berth-init with an `lvs:`
//! section that registers the service once healthy). A client netns behind the director
//! sends requests to the VIP.
//!
//! Asserted: traffic through the VIP reaches all three; a rolling restart of the three
//! (one at a time, drain 2 s) under a client's bounded request loop loses no request;
//! `kill -9` of a container's init removes its real server through Marathon's event
//! within 2 s; a director restart on a wiped table rebuilds it from Marathon alone. The
//! IPVS table is printed (`ipvsadm -Ln`) at each step. Run by scripts/vm-tier.sh.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth_netcfg::ipvs::ServiceKey;
use berth_tests::lab::{self, enter_netns, Ns, TaskNetns};
use berth_tests::lvs_lab::{self, ipvsadm, Director, DirectorConfig, Table, VIP_ADDR};
use berth_tests::marathon::bridge::{self, Bridge};
use berth_tests::marathon::{MarathonDouble, Options};
use berth_tests::mesos::harness::{binary, Lab as ExecLab};
use berth_tests::mesos::{AgentDouble, ExecutorProcess};

const APP: &str = "/lvs/web";
const VIP: &str = "10.88.0.100:80/tcp";
const API: &str = "10.77.0.1:9370";
const BODY: &str = "served by a berth task\n";
/// Generous: the VM emulates its CPUs, on a host that may be busy.
const T: Duration = Duration::from_secs(240);

/// The image's app spec: busybox httpd serving /www.
fn app_yaml() -> String {
    format!(
        "services:\n  web:\n    command: [/bin/httpd, -f, -p, \"8080\", -h, /www]\n    \
         health: {{tcp: {{port: 8080}}, delay: 0s, interval: 300ms}}\n    \
         lvs: {{director: [http://{API}], vip: {VIP}, port: 8080, weight: 1, drain: 2s}}\n"
    )
}

/// Root, the VM, and temp dirs on the VM's tmpfs scratch (the VM's /tmp is an overlay on
/// the host's read-only root, no place for container roots).
fn vm_only() {
    lab::require_root();
    assert_eq!(
        std::env::var("BERTH_VM_TIER").as_deref(),
        Ok("1"),
        "vm_* tests need ip_vs: run them with scripts/vm-tier.sh"
    );
    let scratch = std::env::var("BERTH_VM_SCRATCH").expect("BERTH_VM_SCRATCH");
    std::env::set_var("TMPDIR", scratch);
}

type Bridges = Arc<Mutex<Vec<(Bridge, Arc<AgentDouble>)>>>;

/// Applies the agent doubles' updates to the Marathon double every 10 ms, as Marathon
/// learns them from its Mesos master.
struct Pump {
    list: Bridges,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pump {
    fn start(m: Arc<MarathonDouble>) -> Pump {
        let list: Bridges = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (list.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for (b, d) in l.lock().unwrap_or_else(|p| p.into_inner()).iter_mut() {
                    b.pump(d, &m);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Pump {
            list,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A task whose executor is starting.
struct Pending {
    tid: String,
    d: Arc<AgentDouble>,
    exec: ExecutorProcess,
    _netns: TaskNetns,
    at: Instant,
}

/// One berth task: its agent double, executor and netns (deleted on drop if left).
struct Running {
    tid: String,
    d: Arc<AgentDouble>,
    exec: ExecutorProcess,
    ip: IpAddr,
    _netns: TaskNetns,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Before the netns guard (fields drop after this).
        self.exec.kill();
    }
}

struct World {
    pump: Pump,
    marathon: Arc<MarathonDouble>,
    director: Director,
    table: Table,
    key: ServiceKey,
    lab: ExecLab,
    client: Ns,
    net: lab::Lab,
    agent_bin: PathBuf,
    executor: PathBuf,
    init: PathBuf,
    listen: SocketAddr,
}

impl World {
    fn new() -> World {
        let net = lab::Lab::with_dhcp(lab::DhcpConfig {
            no_ping: true,
            ..lab::DhcpConfig::default()
        });
        let client = lvs_lab::attach_client(&net.lan, &lab::unique("lvc"));
        let lab = ExecLab::new("lvs");
        let img = lab.images.join("busybox");
        std::fs::create_dir_all(img.join("etc/berth")).unwrap();
        std::fs::create_dir_all(img.join("www")).unwrap();
        std::fs::write(img.join("etc/berth/app.yaml"), app_yaml()).unwrap();
        std::fs::write(img.join("www/index.html"), BODY).unwrap();
        // The binaries on tmpfs: Marathon's executor command chmods the executor (the VM's
        // root is read-only), and every exec from the VM's 9p root reads it over again.
        let bin = lab.dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let executor = bin.join("berth-executor");
        std::fs::copy(&lab.executor, &executor).unwrap();
        let init = bin.join("berth-init");
        std::fs::copy(&lab.init, &init).unwrap();
        let agent_bin = bin.join("berth-agent");
        std::fs::copy(binary("berth-agent"), &agent_bin).unwrap();
        let marathon = Arc::new(net.lan.run_in(|| MarathonDouble::start(Options::default())));
        let listen: SocketAddr = API.parse().unwrap();
        let director = Director::start(
            &net.lan,
            &agent_bin,
            &DirectorConfig {
                listen,
                marathon_url: marathon.url.clone(),
                vip: VIP.into(),
                app: APP.into(),
                // No periodic listing: a removal in this test comes from an event.
                reconcile_secs: 3600,
            },
        );
        let table = Table::open(&net.lan);
        World {
            pump: Pump::start(marathon.clone()),
            marathon,
            director,
            table,
            key: VIP.parse().unwrap(),
            lab,
            client,
            net,
            agent_bin,
            executor,
            init,
            listen,
        }
    }

    fn servers(&mut self) -> BTreeMap<IpAddr, (u16, u32)> {
        self.table.servers(&self.key)
    }

    fn wait(&mut self, what: &str, timeout: Duration, mut cond: impl FnMut(&mut World) -> bool) {
        let end = Instant::now() + timeout;
        while !cond(self) {
            assert!(
                Instant::now() < end,
                "timed out ({timeout:?}) waiting for {what}; table {:?}\ndirector log:\n{}",
                self.servers(),
                self.director.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Launches task `n` and waits until its real server is in the table with weight 1.
    fn launch(&mut self, n: usize) -> Running {
        let p = self.spawn(n);
        self.registered(p)
    }

    /// Starts task `n`'s executor (with its bridge to Marathon).
    fn spawn(&mut self, n: usize) -> Pending {
        let tid = self.lab.task_id(&format!("web{n}"));
        let mut spec = self.lab.spec(&tid, None);
        spec.binary = self.executor.clone();
        for (k, v) in spec.env.iter_mut() {
            if k == "BERTH_EXECUTOR_INIT" {
                *v = self.init.display().to_string();
            }
        }
        spec.env
            .push(("BERTH_EXECUTOR_NET_PARENT".into(), self.net.parent.clone()));
        let task = self.lab.task(&tid);
        // Mesos' default executor_registration_timeout (1 min): starting a debug build
        // under emulation can take longer than the e2e tests' 10 s.
        let (d, exec) = self.net.host.run_in(move || {
            let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
            d.launch_on_subscribe(task);
            let exec = d.spawn_executor(&spec, Duration::from_secs(60));
            (d, exec)
        });
        let d = Arc::new(d);
        self.pump
            .list
            .lock()
            .unwrap()
            .push((Bridge::new(APP, &[8080]), d.clone()));
        let netns = TaskNetns::new(&tid);
        Pending {
            tid,
            d,
            exec,
            _netns: netns,
            at: Instant::now(),
        }
    }

    /// Waits until a started task is running and its real server in the table, weight 1.
    fn registered(&mut self, p: Pending) -> Running {
        let Pending {
            tid,
            d,
            exec,
            _netns,
            at,
        } = p;
        let end = Instant::now() + T;
        let ip = loop {
            if let Some(ip) = d.state().updates.iter().find_map(bridge::ip_of) {
                break ip;
            }
            assert!(
                Instant::now() < end,
                "{tid}: no TASK_RUNNING with an IP in {T:?}; updates {:#?}\nexecutor log:\n{}",
                d.state().updates,
                exec.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        self.wait(&format!("{tid} ({ip}) in the table"), T, |w| {
            w.servers().get(&ip) == Some(&(8080, 1))
        });
        println!("{tid}: launched -> in the table in {:?}", at.elapsed());
        Running {
            tid,
            d,
            exec,
            ip,
            _netns,
        }
    }

    /// `n` requests to the VIP from the client netns: the real servers the kernel sent
    /// them to (the growth of each one's connection count). The kernel folds its per-CPU
    /// counters into what `ipvsadm --stats` shows only at each estimator tick (every 2 s
    /// since Linux 6.2, later for a service just made), so this waits until the growth
    /// covers all `n` connections.
    fn requests(&self, n: usize) -> BTreeMap<IpAddr, u64> {
        let before = lvs_lab::conns(&self.net.lan);
        let r: Vec<Result<(), String>> = self
            .client
            .run_in(|| (0..n).map(|_| one_request()).collect());
        assert!(r.iter().all(Result::is_ok), "{r:?}");
        let growth = || {
            let mut by = lvs_lab::conns(&self.net.lan);
            for (ip, c) in by.iter_mut() {
                *c -= before.get(ip).copied().unwrap_or(0).min(*c);
            }
            by
        };
        let end = Instant::now() + Duration::from_secs(15);
        let mut by = growth();
        while by.values().sum::<u64>() < n as u64 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(250));
            by = growth();
        }
        println!("{n} requests: connections per real server {by:?}");
        by.retain(|_, n| *n > 0);
        by
    }
}

fn one_request() -> Result<(), String> {
    let vip = SocketAddr::new(VIP_ADDR.parse().unwrap(), 80);
    let body = lvs_lab::http_get(vip, "/index.html", Duration::from_secs(5))?;
    if body != BODY {
        return Err(format!("body {body:?}"));
    }
    Ok(())
}

/// Requests in a loop from the client netns until stopped (bounded: at most 20,000 or
/// 10 minutes), one new connection each, 20 ms apart.
struct Client {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Result<(), String>>>>,
}

impl Client {
    fn start(ns: &Ns) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, path) = (stop.clone(), ns.path());
        let thread = std::thread::spawn(move || {
            enter_netns(&path);
            let end = Instant::now() + Duration::from_secs(600);
            let mut out = Vec::new();
            while !s.load(Ordering::Relaxed) && out.len() < 20_000 && Instant::now() < end {
                out.push(one_request());
                std::thread::sleep(Duration::from_millis(20));
            }
            out
        });
        Client {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Result<(), String>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The host pid of the container's init (`runc state`).
fn init_pid(lab: &ExecLab, tid: &str) -> i32 {
    let out = Command::new("runc")
        .arg("--root")
        .arg(&lab.runc_root)
        .args(["state", &format!("berth-{tid}")])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["pid"].as_i64().expect("pid") as i32
}

/// Stops a task as Marathon does (KILL with a grace period); waits for its executor.
fn stop_task(w: &mut World, t: Running) {
    t.d.kill(&t.tid, Some(Duration::from_secs(10)));
    let ip = t.ip;
    w.wait(&format!("{ip} out of the table"), T, |w| {
        !w.servers().contains_key(&ip)
    });
    let mut t = t;
    assert!(
        t.d.wait(T, |st| st.states(&t.tid).iter().any(|s| s == "TASK_KILLED")),
        "{}",
        t.exec.log()
    );
    t.exec
        .wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", t.exec.log()));
    assert!(t.d.violations().is_empty(), "{:?}", t.d.violations());
}

#[test]
fn vm_lvs_three_tasks_behind_a_vip() {
    vm_only();
    let mut w = World::new();
    w.wait("the owned service", Duration::from_secs(10), |w| {
        w.table.has(&w.key)
    });
    ipvsadm(&w.net.lan, "director up, no real servers yet");

    // Three tasks; each registers once healthy.
    let t0 = Instant::now();
    let mut tasks: Vec<Running> = (0..3).map(|n| w.launch(n)).collect();
    println!("three tasks launched and registered in {:?}", t0.elapsed());
    ipvsadm(&w.net.lan, "three tasks registered");
    let ips: BTreeSet<IpAddr> = tasks.iter().map(|t| t.ip).collect();
    assert_eq!(ips.len(), 3, "{ips:?}");
    let by = w.requests(30);
    println!("30 requests through the VIP, connections per real server: {by:?}");
    assert_eq!(by.keys().copied().collect::<BTreeSet<_>>(), ips);

    // A rolling restart, one at a time, while the client sends requests.
    let client = Client::start(&w.client);
    std::thread::sleep(Duration::from_millis(500));
    for n in 3..6 {
        let old = tasks.remove(0);
        let (ip, t0) = (old.ip, Instant::now());
        old.d.kill(&old.tid, Some(Duration::from_secs(10)));
        w.wait(&format!("{ip} quiesced (weight 0)"), T, |w| {
            w.servers().get(&ip) == Some(&(8080, 0))
        });
        ipvsadm(&w.net.lan, &format!("{ip} draining (weight 0 for 2 s)"));
        stop_task(&mut w, old);
        println!("{ip}: drained, stopped and out in {:?}", t0.elapsed());
        let new = w.launch(n);
        ipvsadm(&w.net.lan, &format!("{ip} replaced by {}", new.ip));
        tasks.push(new);
    }
    std::thread::sleep(Duration::from_millis(500));
    let results = client.finish();
    let lost: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    println!(
        "rolling restart: {} requests, {} lost",
        results.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "lost requests: {lost:?}");
    assert!(results.len() >= 100, "only {} requests", results.len());

    // kill -9 of one container's init: no deregistration; Marathon's status event
    // (TASK_FAILED, from the executor's update) takes it out.
    let victim = tasks.remove(0);
    let listings = |w: &World| {
        w.marathon
            .state()
            .requests
            .iter()
            .filter(|r| r.path.ends_with("/tasks"))
            .count()
    };
    let before = listings(&w);
    let pid = init_pid(&w.lab, &victim.tid);
    let ip = victim.ip;
    let t0 = Instant::now();
    // SAFETY: kill(2) on the container's init, a process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    w.wait(&format!("{ip} gone after kill -9"), T, |w| {
        !w.servers().contains_key(&ip)
    });
    let took = t0.elapsed();
    ipvsadm(&w.net.lan, &format!("after kill -9 of {ip}'s init"));
    println!("kill -9 -> real server gone: {took:?}");
    let failed = w.marathon.state().events.iter().any(|(n, e)| {
        n == "status_update_event" && e["taskId"] == victim.tid && e["taskStatus"] == "TASK_FAILED"
    });
    assert!(failed, "no TASK_FAILED event for {}", victim.tid);
    assert_eq!(listings(&w), before, "removed by a listing, not the event");
    assert!(
        took < Duration::from_secs(2),
        "kill -9 -> real server gone took {took:?}"
    );
    let mut victim = victim;
    victim
        .exec
        .wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", victim.exec.log()));
    drop(victim);

    // The director restarts on a wiped table: Marathon alone rebuilds it (the inits do
    // not call again: their registrations are acknowledged).
    w.director.stop();
    w.table.delete(&w.key);
    ipvsadm(&w.net.lan, "director stopped, its service deleted");
    let log_before = w.director.log().len();
    let (bin, listen) = (w.agent_bin.clone(), w.listen);
    w.director.restart(&bin, listen);
    let want: BTreeMap<IpAddr, (u16, u32)> = tasks.iter().map(|t| (t.ip, (8080, 1))).collect();
    w.wait(
        "the table rebuilt from Marathon",
        Duration::from_secs(10),
        |w| w.servers() == want,
    );
    ipvsadm(&w.net.lan, "director restarted: rebuilt from Marathon");
    let since = w.director.log()[log_before..].to_string();
    assert!(!since.contains("api: PUT"), "an init registered: {since}");
    let by = w.requests(20);
    assert_eq!(
        by.keys().copied().collect::<BTreeSet<_>>(),
        want.keys().copied().collect::<BTreeSet<_>>()
    );

    for t in tasks.drain(..) {
        stop_task(&mut w, t);
    }
    ipvsadm(&w.net.lan, "all tasks stopped");
    assert!(w.servers().is_empty());
    w.lab.assert_clean();
}
