//! Database authorization with real tasks: berth-executor tasks launched through the
//! Mesos agent double on the lab's LAN, their berth-init (the static one) with a
//! `dbauth:` section, `berth-agent dbauth`, a real MariaDB and the Marathon double fed
//! from the agent doubles (as Marathon learns of the tasks' updates through Mesos).
//!
//! ```text
//!  [lan netns] br0 10.77.0.1: dnsmasq, mariadbd :3306, dbauth :9380, the Marathon double
//!      |
//!  [host netns] nic0 <- macvlan eth0 of each task (DHCP 10.77.0.1xx), the agent doubles,
//!                       the executors
//! ```
//!
//! The container's service runs the MariaDB client (copied into the image) with the
//! credentials file init wrote, from the task's own address.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use berth_tests::dbauth::{self, access, accounts, refused, select, wait_until, Feed, Settings};
use berth_tests::lab::{self, TaskNetns};
use berth_tests::marathon::{MarathonDouble, Options};
use berth_tests::mariadb::MariaDb;
use berth_tests::mesos::harness::{start_in, Lab as ExecLab};
use berth_tests::mesos::{AgentDouble, ExecutorProcess};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);
const SERVICE: &str = "http://10.77.0.1:9380";

/// The image's app spec: credentials before the service; the service SELECTs with them
/// and prints the file (the test reads the account from it), then stays up.
const APP_YAML: &str = r#"dbauth:
  url: http://10.77.0.1:9380
  databases: [shop]
  credentials: /run/db.cnf
  deadline: 10s
services:
  main:
    command: [/bin/sh, -c, "mariadb --defaults-extra-file=/run/db.cnf -N -B -e 'SELECT x FROM shop.t' && cat /run/db.cnf && exec sleep 1000"]
    restart: never
"#;

struct Task {
    id: String,
    d: Arc<AgentDouble>,
    exec: ExecutorProcess,
    _netns: TaskNetns,
}

struct World {
    net: lab::Lab,
    lab: ExecLab,
    feed: Feed,
}

impl World {
    /// A task of `app` launched with networking; its updates feed Marathon's `app`.
    fn launch(&self, app: &str, tag: &str) -> Task {
        let id = self.lab.task_id(tag);
        let netns = TaskNetns::new(&id);
        let mut spec = self.lab.spec(&id, None);
        spec.app_id = app.into();
        spec.env
            .push(("BERTH_EXECUTOR_NET_PARENT".into(), self.net.parent.clone()));
        let (d, exec) = start_in(&self.net.host, spec, self.lab.task(&id));
        let d = Arc::new(d);
        self.feed.add(d.clone(), app);
        Task {
            id,
            d,
            exec,
            _netns: netns,
        }
    }

    /// Waits until the task's service printed its SELECT and the credentials file;
    /// returns (user, password).
    fn credentials(&self, t: &Task) -> (String, String) {
        let out = || self.lab.sandbox_file(&t.id, "stdout");
        wait_until("the service's SELECT and credentials", 30, || {
            out().contains("port=")
        });
        let o = out();
        assert!(o.lines().next() == Some("42"), "the SELECT: {o}");
        let get = |k: &str| {
            o.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in {o}"))
                .to_string()
        };
        (get("user="), get("password="))
    }
}

/// The address of the task's TASK_RUNNING, after checking that a TASK_STARTING carried
/// the same one before it (what dbauth found the task by).
fn running_ip(t: &Task) -> String {
    t.d.wait_state(&t.id, "TASK_RUNNING", Duration::from_secs(45));
    let ups: Vec<Value> = t.d.state().updates.clone();
    let ip_of = |u: &Value| {
        u["container_status"]["network_infos"][0]["ip_addresses"][0]["ip_address"]
            .as_str()
            .map(str::to_string)
    };
    let running = ups
        .iter()
        .position(|u| u["state"] == "TASK_RUNNING")
        .expect("RUNNING");
    let ip = ip_of(&ups[running]).unwrap_or_else(|| panic!("RUNNING without an address: {ups:#?}"));
    assert!(
        ups[..running]
            .iter()
            .any(|u| u["state"] == "TASK_STARTING" && ip_of(u).as_deref() == Some(ip.as_str())),
        "no TASK_STARTING with {ip} before RUNNING: {ups:#?}"
    );
    // Exactly one: Marathon ignores a repeated state, and with it the address it carries.
    let starting = ups
        .iter()
        .filter(|u| u["task_id"]["value"] == t.id.as_str() && u["state"] == "TASK_STARTING")
        .count();
    assert_eq!(starting, 1, "{ups:#?}");
    ip
}

/// The pid of the container's init (`runc state`).
fn container_pid(lab: &ExecLab, tid: &str) -> i32 {
    let out = Command::new("runc")
        .arg("--root")
        .arg(&lab.runc_root)
        .args(["state", &format!("berth-{tid}")])
        .output()
        .expect("runc state");
    let v: Value = serde_json::from_slice(&out.stdout).expect("runc state JSON");
    v["pid"].as_i64().expect("pid") as i32
}

fn message(d: &AgentDouble, tid: &str, state: &str) -> String {
    d.state()
        .updates
        .iter()
        .find(|u| u["task_id"]["value"] == tid && u["state"] == state)
        .and_then(|u| u["message"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn real_tasks_get_grants_bound_to_their_address_and_lose_them_when_they_end() {
    lab::require_root();
    let net = lab::Lab::new();
    let lab = ExecLab::new("dbauth");
    let img = lab.images.join("busybox");
    std::fs::create_dir_all(img.join("etc/berth")).expect("etc/berth");
    std::fs::write(img.join("etc/berth/app.yaml"), APP_YAML).expect("app.yaml");
    dbauth::add_mariadb_client(&img);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = MariaDb::start(&net.lan, 3306);
    dbauth::prepare(&db);
    let m = Arc::new(net.lan.run_in(|| MarathonDouble::start(Options::default())));
    let mut settings = Settings::new(&m.url, "10.77.0.1");
    settings.task_wait_secs = 3;
    let svc = dbauth::start(&net.lan, dir.path(), &settings);
    let w = World {
        feed: Feed::start(m.clone()),
        net,
        lab,
    };

    // A task of /shop/web: credentials before its service, which SELECTs from its own
    // address; the account is bound to that address.
    let mut a = w.launch("/shop/web", "a");
    let ip = running_ip(&a);
    let (user, pw) = w.credentials(&a);
    assert_eq!(accounts(&db), format!("{user}@{ip}"));
    // The same credentials from another address (the LAN's 10.77.0.1): refused.
    let e = select(&w.net.lan, "10.77.0.1", &user, &pw, "SELECT x FROM shop.t").unwrap_err();
    assert!(refused(&e), "{e}");
    // A request from 10.77.0.1 naming the task's address: the claim is ignored.
    let (code, c) = access(
        &w.net.lan,
        SERVICE,
        &format!(r#"{{"app":"/shop/web","databases":["shop"],"ip":"{ip}"}}"#),
    );
    assert_eq!(code, 403, "{c}");
    assert!(
        c["error"]
            .as_str()
            .unwrap_or_default()
            .contains("10.77.0.1"),
        "{c}"
    );
    // Injection-shaped names: 400, and nothing of them reached the server.
    for body in [
        r#"{"app":"/shop/web'; DROP USER 'admin'@'127.0.0.1'; --","databases":["shop"]}"#,
        r#"{"app":"/shop/web","databases":["shop`.* TO 'x'@'%'; DROP DATABASE shop; --"]}"#,
    ] {
        let (code, c) = access(&w.net.lan, SERVICE, body);
        assert_eq!(code, 400, "{body}: {c}");
    }
    let q = db.queries();
    assert!(
        !q.contains("DROP USER 'admin'") && !q.contains("DROP DATABASE"),
        "{q}"
    );

    // A task of another app (same image, asking for shop): denied, its container exits
    // before any service, TASK_FAILED names the reason.
    let mut b = w.launch("/other", "b");
    b.d.wait_state(&b.id, "TASK_FAILED", Duration::from_secs(45));
    let msg = message(&b.d, &b.id, "TASK_FAILED");
    assert!(
        msg.contains("dbauth: denied") && msg.contains("app /other is not granted database shop"),
        "{msg}"
    );
    assert!(!w.lab.sandbox_file(&b.id, "stdout").contains("42"));
    assert_eq!(accounts(&db), format!("{user}@{ip}"));

    // TASK_KILLED (through Marathon's event stream): the account is gone.
    a.d.kill(&a.id, Some(Duration::from_secs(5)));
    a.d.wait_state(&a.id, "TASK_KILLED", T);
    wait_until("TASK_KILLED drops the account", 10, || {
        accounts(&db).is_empty()
    });
    wait_until("the audit line of the revocation", 5, || {
        svc.log().contains("reason=\"Marathon event TASK_KILLED\"")
    });

    // kill -9 of dbauth, then of a task's container while dbauth is down: once dbauth is
    // back, the account is gone (before it answers anything).
    let mut c = w.launch("/shop/web", "c");
    running_ip(&c);
    let (user_c, _) = w.credentials(&c);
    assert!(accounts(&db).starts_with(&user_c), "{}", accounts(&db));
    drop(svc);
    let pid = container_pid(&w.lab, &c.id);
    // SAFETY: kill(2) of the container's init, a process this test's executor started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    c.d.wait_state(&c.id, "TASK_FAILED", T);
    assert!(
        m.wait(Duration::from_secs(5), |st| st.apps["/shop/web"].is_empty()),
        "Marathon still lists the killed task"
    );
    assert!(
        accounts(&db).starts_with(&user_c),
        "dropped while dbauth was down?"
    );
    let svc = dbauth::start(&w.net.lan, dir.path(), &settings);
    assert_eq!(accounts(&db), "", "after dbauth came back: {}", svc.log());

    for t in [&mut a, &mut b, &mut c] {
        t.exec
            .wait_exit(T)
            .unwrap_or_else(|| panic!("executor did not exit: {}", t.exec.log()));
        assert!(t.d.violations().is_empty(), "{:?}", t.d.violations());
    }
    w.lab.assert_clean();
}
