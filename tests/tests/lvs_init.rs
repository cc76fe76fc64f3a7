//! berth-init's LVS registration against the strict director double: berth-init is PID 1
//! of a new PID namespace (host network, so the double on 127.0.0.1 sees the peer address
//! init sends as `ip`); a shell service whose health is a file and which records when its
//! stop signal came.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_tests::lvs_director::{Call, Director};
use berth_tests::mesos::harness::{assert_root, binary};

const VIP: &str = "10.0.0.100:80/tcp";

fn spec(dir: &str, directors: &[String], drain: &str) -> String {
    let list = directors.join(", ");
    format!(
        r#"services:
  web:
    command: [/bin/sh, -c, 'trap "date +%s%N > {dir}/termed; exit 0" TERM; while :; do sleep 0.05; done']
    health: {{cmd: [test, -f, {dir}/healthy], delay: 0s, interval: 200ms, timeout: 2s, grace_period: 0s, consecutive_failures: 1000}}
    lvs: {{director: [{list}], vip: {VIP}, port: 8080, weight: 3, drain: {drain}}}
"#
    )
}

/// berth-init as PID 1 of its own PID namespace; killed on drop.
struct Init {
    dir: tempfile::TempDir,
    child: Child,
    exited: bool,
}

impl Init {
    fn start(directors: &[String], drain: &str, grace_ms: u64, healthy: bool) -> Init {
        assert_root();
        let dir = tempfile::Builder::new()
            .prefix(&format!("berth-lvs-{}-", std::process::id()))
            .tempdir()
            .unwrap();
        let d = dir.path().display().to_string();
        if healthy {
            std::fs::write(dir.path().join("healthy"), "").unwrap();
        }
        std::fs::write(dir.path().join("app.yaml"), spec(&d, directors, drain)).unwrap();
        let log = std::fs::File::create(dir.path().join("init.log")).unwrap();
        let child = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(binary("berth-init"))
            .arg("--spec")
            .arg(dir.path().join("app.yaml"))
            .arg("--socket")
            .arg(dir.path().join("init.sock"))
            .env("BERTH_KILL_GRACE_MS", grace_ms.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Init {
            dir,
            child,
            exited: false,
        }
    }

    fn path(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("init.log")).unwrap_or_default()
    }

    fn status(&self) -> Option<serde_json::Value> {
        let mut s = UnixStream::connect(self.path("init.sock")).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"{\"cmd\":\"status\"}\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        serde_json::from_str(out.trim()).ok()
    }

    fn lvs(&self) -> serde_json::Value {
        self.status()
            .map_or(serde_json::Value::Null, |s| s["services"][0]["lvs"].clone())
    }

    /// SIGTERM to berth-init (unshare forwards nothing: signal the namespace's PID 1).
    fn term(&self) {
        let upid = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{upid}/task/{upid}/children")).unwrap();
        let pid: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
        assert!(pid > 1);
        // SAFETY: kill(2) on the pid this test started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }

    fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                self.exited = true;
                return st.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "berth-init did not exit in {timeout:?}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Init {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_for(what: &str, init: &Init, timeout: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; lvs status {}\nlog:\n{}",
            init.lvs(),
            init.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The calls of `d` as (method, weight), answered 200.
fn seen(d: &Director) -> Vec<(String, Option<u32>)> {
    d.calls()
        .iter()
        .filter(|c| c.status == 200)
        .map(|c| (c.method.clone(), c.weight))
        .collect()
}

fn put(w: u32) -> (String, Option<u32>) {
    ("PUT".into(), Some(w))
}

fn wall(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

#[test]
fn healthy_registers_failing_quiesces_sigterm_drains_then_deletes_on_every_director() {
    let a = Director::start(0, &[VIP]);
    let b = Director::start(0, &[VIP]);
    let mut init = Init::start(&[a.url(), b.url()], "1s", 10_000, false);
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        a.calls().is_empty(),
        "nothing before healthy: {:?}",
        a.calls()
    );

    std::fs::write(init.path("healthy"), "").unwrap();
    for d in [&a, &b] {
        wait_for("PUT weight 3", &init, Duration::from_secs(10), || {
            seen(d) == [put(3)]
        });
        let c: &Call = &d.calls()[0];
        assert_eq!(c.ip.as_deref(), Some("127.0.0.1"), "ip is sent");
        assert_eq!(d.table().len(), 1);
        assert_eq!(d.table()[0].0 .3, 8080);
    }
    wait_for(
        "registered on the socket",
        &init,
        Duration::from_secs(5),
        || init.lvs()["state"] == "registered",
    );
    let st = init.lvs();
    assert_eq!(st["weight"], 3, "{st}");
    assert_eq!(st["directors"].as_array().unwrap().len(), 2, "{st}");

    std::fs::remove_file(init.path("healthy")).unwrap();
    for d in [&a, &b] {
        wait_for(
            "weight 0 on failing health",
            &init,
            Duration::from_secs(10),
            || seen(d) == [put(3), put(0)],
        );
    }
    assert_eq!(a.table()[0].1, 0, "still in the table, quiesced");
    std::fs::write(init.path("healthy"), "").unwrap();
    for d in [&a, &b] {
        wait_for("weight 3 again", &init, Duration::from_secs(10), || {
            seen(d) == [put(3), put(0), put(3)]
        });
    }

    let t0 = Instant::now();
    init.term();
    let code = init.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 0, "log:\n{}", init.log());
    let termed: u128 = std::fs::read_to_string(init.path("termed"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for d in [&a, &b] {
        assert_eq!(
            seen(d),
            [put(3), put(0), put(3), put(0), ("DELETE".into(), None)],
            "log:\n{}",
            init.log()
        );
        let calls = d.calls();
        let (quiesce, delete) = (&calls[3], &calls[4]);
        let drained_ms = (termed - wall(quiesce.at)) / 1_000_000;
        assert!(
            drained_ms >= 1000,
            "the service got its signal {drained_ms} ms after weight 0 (drain 1s)"
        );
        assert!(wall(delete.at) > termed, "DELETE after the stop");
        assert!(d.table().is_empty(), "{:?}", d.table());
    }
    println!("SIGTERM to exit with drain 1s: {:?}", t0.elapsed());
}

#[test]
fn director_down_at_start_then_up_registers_and_a_hung_director_does_not_hold_shutdown() {
    // A port with nobody on it yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut init = Init::start(&[url], "500ms", 2000, true);
    wait_for(
        "the error on the socket",
        &init,
        Duration::from_secs(10),
        || {
            let l = init.lvs();
            l["state"] == "error"
                && l["directors"][0]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("connect"))
        },
    );
    let st = init.status().unwrap();
    assert_eq!(
        st["services"][0]["state"], "running",
        "the service runs: {st}"
    );
    assert_eq!(st["services"][0]["healthy"], true, "{st}");

    let d = Director::start(port, &[VIP]);
    wait_for(
        "registration once it is up",
        &init,
        Duration::from_secs(10),
        || seen(&d) == [put(3)] && init.lvs()["state"] == "registered",
    );
    assert_eq!(init.lvs()["directors"][0]["error"], serde_json::Value::Null);
    drop(d);

    // The director hangs: connections are accepted by the kernel, never answered.
    let hung = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let t0 = Instant::now();
    init.term();
    let code = init.wait_exit(Duration::from_secs(10));
    let took = t0.elapsed();
    assert_eq!(code, 0, "log:\n{}", init.log());
    assert!(
        took < Duration::from_millis(2000),
        "shutdown took {took:?}, past the 2 s kill grace\nlog:\n{}",
        init.log()
    );
    assert!(
        init.log().contains("did not answer"),
        "log:\n{}",
        init.log()
    );
    drop(hung);
    println!("SIGTERM to exit with a hung director, grace 2 s: {took:?}");
}

#[test]
fn the_double_is_strict() {
    let d = Director::start(0, &[VIP]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let send = |method: berth_http::Method, body: &str| {
        let url = berth_http::url::Url::parse(&format!("{}/v1/real-servers", d.url())).unwrap();
        let req = berth_http::client::Request {
            method,
            url,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string().into(),
        };
        rt.block_on(async {
            let c = berth_http::client::Client::new(Default::default()).unwrap();
            c.send(req).await.unwrap().status.as_u16()
        })
    };
    use berth_http::Method;
    let ok = r#"{"vip":"10.0.0.100:80","proto":"tcp","port":8080,"weight":1,"ip":"127.0.0.1"}"#;
    assert_eq!(send(Method::PUT, ok), 200);
    assert_eq!(send(Method::PUT, &ok.replace("127.0.0.1", "10.9.9.9")), 403);
    assert_eq!(
        send(Method::PUT, &ok.replace("10.0.0.100", "10.0.0.101")),
        404
    );
    assert_eq!(
        send(Method::PUT, &ok.replace("\"weight\"", "\"wieght\"")),
        400
    );
    assert_eq!(send(Method::PUT, "{"), 400);
    assert_eq!(send(Method::POST, ok), 405);
    let del = r#"{"vip":"10.0.0.100:80","proto":"tcp","port":8080}"#;
    assert_eq!(send(Method::DELETE, del), 200);
    assert_eq!(send(Method::DELETE, del), 200, "absent is fine");
    assert!(d.table().is_empty());
}
