//! The director's run loop (`berth_agent::lvs::run`) against the Marathon double, over
//! real HTTP, with a recording in-memory kernel table (this host's kernel lacks IP_VS; the
//! VM tier runs the netlink side): registrations, Marathon events, the periodic listing,
//! and a restart that rebuilds from Marathon alone.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_agent::lvs::config::Config;
use berth_agent::lvs::run::{run, Kernel};
use berth_agent::marathon::Marathon;
use berth_http::client::{Client, Options as HttpOptions, Request};
use berth_http::url::Url;
use berth_http::Method;
use berth_netcfg::ipvs::diff::{diff, Current, Op, Wanted};
use berth_netcfg::ipvs::{IpvsError, ServiceKey};
use berth_tests::marathon::{MarathonDouble, Options};
use serde_json::{json, Value};

/// The kernel's table as the loop left it, and the services each sync brought.
#[derive(Clone, Default)]
struct Fake(
    Arc<Mutex<BTreeMap<ServiceKey, Current>>>,
    Arc<Mutex<Vec<Vec<ServiceKey>>>>,
);

impl Kernel for Fake {
    fn sync(&mut self, wanted: &BTreeMap<ServiceKey, Wanted>) -> Result<Vec<Op>, IpvsError> {
        self.1
            .lock()
            .unwrap()
            .push(wanted.keys().copied().collect());
        let mut t = self.0.lock().unwrap();
        let ops = diff(wanted, &t);
        for (k, w) in wanted {
            t.insert(
                *k,
                Current {
                    service: w.service.clone(),
                    dests: w.dests.clone(),
                },
            );
        }
        Ok(ops)
    }
}

impl Fake {
    fn servers(&self) -> Vec<(IpAddr, u16, u32)> {
        self.0
            .lock()
            .unwrap()
            .values()
            .flat_map(|c| c.dests.values())
            .map(|d| (d.key.addr, d.key.port, d.weight))
            .collect()
    }

    fn wait(&self, want: &[(&str, u16, u32)]) {
        let want: Vec<(IpAddr, u16, u32)> = want
            .iter()
            .map(|(a, p, w)| (a.parse().unwrap(), *p, *w))
            .collect();
        let end = Instant::now() + Duration::from_secs(2);
        while self.servers() != want {
            assert!(
                Instant::now() < end,
                "within 2 s: want {want:?}, have {:?}",
                self.servers()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

struct Director {
    api: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Director {
    fn start(marathon: &str, kernel: Fake, reconcile_secs: u64) -> Director {
        Director::start_with(marathon, kernel, reconcile_secs, "")
    }

    /// With `more` config appended (more services).
    fn start_with(marathon: &str, kernel: Fake, reconcile_secs: u64, more: &str) -> Director {
        let text = format!(
            "listen = \"127.0.0.1:0\"\n[marathon]\nurl = \"{marathon}\"\nretry_min_ms = 20\n\
             reconcile_secs = {reconcile_secs}\n[[service]]\nvip = \"10.0.0.100:80/tcp\"\n\
             app = \"/shop/web\"\nweight = 1\n{more}"
        );
        let cfg = Config::parse(&text, std::path::Path::new("lvs.toml")).unwrap();
        let m = Marathon::new(cfg.marathon().unwrap()).unwrap();
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_l.set_nonblocking(true).unwrap();
        let api = format!("http://{}", std_l.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(std_l).unwrap();
                run(&cfg.services, m, Box::new(kernel), l, None, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        Director {
            api,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn call(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = Client::new(HttpOptions::default()).unwrap();
            let url = Url::parse(&format!("{}{path}", self.api)).unwrap();
            let req = if method == Method::GET {
                Request::get(url)
            } else {
                Request::json(method, url, &body).unwrap()
            };
            let r = c.send(req).await.unwrap();
            let s = r.status.as_u16();
            (s, r.json(1 << 20).await.unwrap())
        })
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn registrations_and_marathon_agree_on_the_table() {
    let m = MarathonDouble::start(Options::default());
    m.add_app("/shop/web");
    let k = Fake::default();
    let d = Director::start(&m.url, k.clone(), 3600);
    // The owned service exists at once, empty.
    let end = Instant::now() + Duration::from_secs(2);
    while k.0.lock().unwrap().len() != 1 {
        assert!(Instant::now() < end, "the owned service was not made");
        std::thread::sleep(Duration::from_millis(10));
    }
    k.wait(&[]);

    // init registers (the caller is 127.0.0.1), twice: idempotent.
    let reg = json!({"vip":"10.0.0.100:80","proto":"tcp","port":8080,"weight":2});
    let (s, v) = d.call(Method::PUT, "/v1/real-servers", reg.clone());
    assert_eq!(
        (s, v["changed"].clone(), v["ip"].clone()),
        (200, json!(true), json!("127.0.0.1"))
    );
    assert_eq!(
        d.call(Method::PUT, "/v1/real-servers", reg.clone()).1["changed"],
        false
    );
    k.wait(&[("127.0.0.1", 8080, 2)]);
    // Refusals over HTTP.
    let mut foreign = reg.clone();
    foreign["ip"] = json!("10.9.9.9");
    assert_eq!(d.call(Method::PUT, "/v1/real-servers", foreign).0, 403);
    let mut other = reg.clone();
    other["vip"] = json!("10.0.0.101:80");
    assert_eq!(d.call(Method::PUT, "/v1/real-servers", other).0, 404);
    let mut bad = reg.clone();
    bad["vip"] = json!("10.0.0.100");
    assert_eq!(d.call(Method::PUT, "/v1/real-servers", bad).0, 400);

    // Marathon: a running task appears by its event, its health and death take it out.
    m.add_task("/shop/web", "shop_web.a2", ip("10.9.0.2"), &[8080]);
    k.wait(&[("10.9.0.2", 8080, 1), ("127.0.0.1", 8080, 2)]);
    m.set_health("shop_web.a2", false);
    k.wait(&[("127.0.0.1", 8080, 2)]);
    m.set_health("shop_web.a2", true);
    k.wait(&[("10.9.0.2", 8080, 1), ("127.0.0.1", 8080, 2)]);
    m.kill_task("shop_web.a2");
    k.wait(&[("127.0.0.1", 8080, 2)]);

    // The registered task's init dies by SIGKILL: Marathon's TASK_KILLED removes it.
    m.add_task("/shop/web", "shop_web.a1", ip("127.0.0.1"), &[8080]);
    m.kill_task("shop_web.a1");
    k.wait(&[]);
    let (s, v) = d.call(Method::GET, "/v1/services", Value::Null);
    assert_eq!(s, 200);
    assert_eq!(v["services"][0]["real_servers"], json!([]));
    // Deregistering what is gone: a success.
    let del = json!({"vip":"10.0.0.100:80","proto":"tcp","port":8080});
    assert_eq!(d.call(Method::DELETE, "/v1/real-servers", del).0, 200);
}

#[test]
fn a_restart_rebuilds_from_marathon_and_the_listing_catches_missed_events() {
    let m = MarathonDouble::start(Options::default());
    m.add_task("/shop/web", "shop_web.b1", ip("10.9.0.11"), &[8080]);
    m.set_health("shop_web.b1", true);
    m.add_task("/shop/web", "shop_web.b2", ip("10.9.0.12"), &[8080]);
    m.status("/shop/web", "shop_web.b3", "TASK_STAGING", None, &[8080]);
    let k = Fake::default();
    let d = Director::start(&m.url, k.clone(), 1);
    k.wait(&[("10.9.0.11", 8080, 1), ("10.9.0.12", 8080, 1)]);
    // A task vanishes without an event: the next listing (every second) drops it.
    m.remove_task("shop_web.b2");
    let end = Instant::now() + Duration::from_secs(3);
    while k.servers().len() != 1 {
        assert!(Instant::now() < end, "{:?}", k.servers());
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(d);
    // The director restarts with an empty view: Marathon alone rebuilds the table.
    let k2 = Fake::default();
    let _d = Director::start(&m.url, k2.clone(), 3600);
    k2.wait(&[("10.9.0.11", 8080, 1)]);
}

/// A registration or an event brings only its own service to the kernel (the dumps of
/// one service, not of every one); the start and the listing bring them all.
#[test]
fn a_change_syncs_only_its_own_service() {
    let m = MarathonDouble::start(Options::default());
    m.add_app("/shop/web");
    m.add_app("/shop/api");
    let k = Fake::default();
    let d = Director::start_with(
        &m.url,
        k.clone(),
        3600,
        "[[service]]\nvip = \"10.0.0.101:80/tcp\"\napp = \"/shop/api\"\n",
    );
    let web: ServiceKey = "10.0.0.100:80/tcp".parse().unwrap();
    let api: ServiceKey = "10.0.0.101:80/tcp".parse().unwrap();
    // At start, then after the first listing (once the event stream is up): both.
    let end = Instant::now() + Duration::from_secs(5);
    while k.1.lock().unwrap().iter().filter(|s| s.len() == 2).count() < 2 {
        assert!(Instant::now() < end, "syncs: {:?}", k.1.lock().unwrap());
        std::thread::sleep(Duration::from_millis(10));
    }
    k.1.lock().unwrap().clear();
    let reg = json!({"vip":"10.0.0.100:80","proto":"tcp","port":8080,"weight":2});
    assert_eq!(d.call(Method::PUT, "/v1/real-servers", reg).0, 200);
    k.wait(&[("127.0.0.1", 8080, 2)]);
    assert_eq!(*k.1.lock().unwrap(), vec![vec![web]]);
    k.1.lock().unwrap().clear();
    m.add_task("/shop/api", "shop_api.a1", ip("10.9.0.3"), &[8080]);
    k.wait(&[("127.0.0.1", 8080, 2), ("10.9.0.3", 8080, 1)]);
    let syncs = k.1.lock().unwrap().clone();
    assert!(
        !syncs.is_empty() && syncs.iter().all(|s| *s == vec![api]),
        "{syncs:?}"
    );
}
