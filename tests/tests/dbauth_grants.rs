//! `berth-agent dbauth` against a real MariaDB, with callers in their own netns so their
//! source addresses differ:
//!
//! ```text
//!  [cli_a netns] a0 10.99.1.2 --veth-- s1 10.99.1.1 [srv netns] mariadbd :3306, dbauth :9380,
//!  [cli_b netns] b0 10.99.2.2 --veth-- s2 10.99.2.1              Marathon stand-in :8080
//! ```
//!
//! The Marathon stand-in serves `/v2/apps/{id}/tasks` from files the test writes
//! (python3's http.server), until the strict Marathon double is merged.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_tests::lab::{require_root, unique, ChildGuard, Ns};
use berth_tests::mariadb::MariaDb;
use berth_tests::mesos::harness::binary;

struct Net {
    cli_a: Ns,
    cli_b: Ns,
    srv: Ns,
}

fn net() -> Net {
    let srv = Ns::new(&unique("dbs"));
    let cli_a = Ns::new(&unique("dba"));
    let cli_b = Ns::new(&unique("dbb"));
    srv.ip(&["link", "set", "lo", "up"]);
    for (cli, dev, peer, n) in [(&cli_a, "a0", "s1", 1), (&cli_b, "b0", "s2", 2)] {
        srv.ip(&[
            "link",
            "add",
            peer,
            "type",
            "veth",
            "peer",
            "name",
            dev,
            "netns",
            cli.name(),
        ]);
        srv.ip(&["addr", "add", &format!("10.99.{n}.1/24"), "dev", peer]);
        srv.ip(&["link", "set", peer, "up"]);
        cli.ip(&["addr", "add", &format!("10.99.{n}.2/24"), "dev", dev]);
        cli.ip(&["link", "set", dev, "up"]);
        cli.ip(&["link", "set", "lo", "up"]);
    }
    // cli_b reaches the server's first address too (as another host on the LAN would).
    cli_b.ip(&["route", "add", "10.99.1.1/32", "via", "10.99.2.1"]);
    Net { cli_a, cli_b, srv }
}

fn tasks_json(tasks: &[(&str, &str, &str, &str)]) -> String {
    let t: Vec<String> = tasks
        .iter()
        .map(|(app, id, state, ip)| {
            format!(r#"{{"appId":"{app}","id":"{id}","host":"node1","state":"{state}","ports":[],"ipAddresses":[{{"ipAddress":"{ip}","protocol":"IPv4"}}]}}"#)
        })
        .collect();
    format!(r#"{{"tasks":[{}]}}"#, t.join(","))
}

/// Marathon's answer for `app` from now on.
fn set_tasks(root: &Path, app: &str, tasks: &[(&str, &str, &str, &str)]) {
    let dir = root.join(format!("v2/apps{app}"));
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join("tasks.tmp");
    std::fs::write(&tmp, tasks_json(tasks)).unwrap();
    std::fs::rename(tmp, dir.join("tasks")).unwrap();
}

struct Dbauth {
    _proc: ChildGuard,
    log: PathBuf,
}

fn start_dbauth(n: &Net, dir: &Path, sweep_secs: u64) -> Dbauth {
    let cfg = dir.join("dbauth.toml");
    std::fs::write(dir.join("admin.password"), "adminpw\n").unwrap();
    std::fs::write(
        &cfg,
        format!(
            r#"listen = "0.0.0.0:9380"
state = "{state}"
sweep_secs = {sweep_secs}
[marathon]
url = "http://127.0.0.1:8080"
timeout_secs = 2
[database]
host = "127.0.0.1"
admin_user = "admin"
admin_password_file = "{pw}"
client_host = "10.99.1.1"
[[grant]]
app = "/shop/web"
database = "shop"
privileges = ["SELECT"]
[[grant]]
app = "/other"
database = "other"
privileges = ["SELECT"]
"#,
            state = dir.join("grants.sqlite").display(),
            pw = dir.join("admin.password").display()
        ),
    )
    .unwrap();
    let log = dir.join(format!("dbauth-{}.log", unique("l")));
    let mut c = n.srv.command(&[
        binary("berth-agent").to_str().unwrap(),
        "dbauth",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let proc = ChildGuard::spawn(c, "berth-agent dbauth");
    let start = Instant::now();
    loop {
        let (code, _) = curl(&n.srv, "GET", "http://127.0.0.1:9380/v1/health", None);
        if code == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "dbauth did not come up: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Dbauth { _proc: proc, log }
}

/// (HTTP status, body) of a request made from inside `ns`.
fn curl(ns: &Ns, method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let mut argv = vec![
        "curl",
        "-s",
        "-m",
        "10",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ];
    if let Some(b) = body {
        argv.extend(["-H", "content-type: application/json", "-d", b]);
    }
    argv.push(url);
    let out = ns.exec(&argv);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn access(ns: &Ns, server: &str, body: &str) -> (u16, serde_json::Value) {
    let (code, b) = curl(
        ns,
        "POST",
        &format!("http://{server}:9380/v1/access"),
        Some(body),
    );
    (
        code,
        serde_json::from_str(&b).unwrap_or(serde_json::Value::Null),
    )
}

/// `SELECT` as `user` from inside `ns` to `host`: the rows, or the client's error.
fn select(ns: &Ns, host: &str, user: &str, pw: &str, sql: &str) -> Result<String, String> {
    let out = ns.exec(&[
        "mariadb",
        "--no-defaults",
        "-h",
        host,
        "-P",
        "3306",
        "-u",
        user,
        &format!("-p{pw}"),
        "--connect-timeout=5",
        "-N",
        "-B",
        "-e",
        sql,
    ]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn accounts(db: &MariaDb) -> String {
    db.sql(r"SELECT CONCAT(User, '@', Host) FROM mysql.user WHERE User LIKE 'bt\_%' ORDER BY 1")
        .trim()
        .to_string()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn grants_refusals_revocation_and_reconcile() {
    require_root();
    let n = net();
    let dir = tempfile::tempdir().unwrap();
    let db = MariaDb::start(&n.srv, 3306);
    db.sql(
        "CREATE USER 'admin'@'127.0.0.1' IDENTIFIED BY 'adminpw';
         GRANT ALL ON *.* TO 'admin'@'127.0.0.1' WITH GRANT OPTION;
         CREATE DATABASE shop; CREATE TABLE shop.t (x INT); INSERT INTO shop.t VALUES (42);
         CREATE DATABASE other;",
    );
    let marathon = dir.path().join("marathon");
    std::fs::create_dir_all(&marathon).unwrap();
    let _marathon = n.srv.spawn(&[
        "python3",
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        "--directory",
        marathon.to_str().unwrap(),
        "8080",
    ]);
    set_tasks(
        &marathon,
        "/shop/web",
        &[("/shop/web", "shop_web.1", "TASK_RUNNING", "10.99.1.2")],
    );
    set_tasks(
        &marathon,
        "/other",
        &[("/other", "other.1", "TASK_RUNNING", "10.99.2.2")],
    );
    wait_until("the Marathon stand-in", 20, || {
        curl(
            &n.srv,
            "GET",
            "http://127.0.0.1:8080/v2/apps/other/tasks",
            None,
        )
        .0 == 200
    });
    let d = start_dbauth(&n, dir.path(), 3600);

    // A task of /shop/web asks from its own address: working credentials.
    let (code, c) = access(
        &n.cli_a,
        "10.99.1.1",
        r#"{"app":"/shop/web","databases":["shop"]}"#,
    );
    assert_eq!(code, 200, "{c}");
    let (user, pw) = (c["user"].as_str().unwrap(), c["password"].as_str().unwrap());
    assert_eq!(c["task"], "shop_web.1");
    assert_eq!(
        select(&n.cli_a, "10.99.1.1", user, pw, "SELECT x FROM shop.t"),
        Ok("42".into())
    );
    // Granted SELECT on shop only.
    assert!(select(
        &n.cli_a,
        "10.99.1.1",
        user,
        pw,
        "INSERT INTO shop.t VALUES (1)"
    )
    .is_err());
    // The same credentials from another address: MariaDB refuses them.
    let e = select(&n.cli_b, "10.99.2.1", user, pw, "SELECT x FROM shop.t").unwrap_err();
    assert!(
        e.contains("is not allowed to connect") || e.contains("Access denied"),
        "{e}"
    );

    // From cli_b, claiming cli_a's address: the claim is ignored, the peer is not a task.
    let (code, c) = access(
        &n.cli_b,
        "10.99.2.1",
        r#"{"app":"/shop/web","databases":["shop"],"ip":"10.99.1.2"}"#,
    );
    assert_eq!(code, 403, "{c}");
    assert!(c["error"].as_str().unwrap().contains("10.99.2.2"), "{c}");
    // A task of another app asks for shop: the table says no.
    let (code, c) = access(
        &n.cli_b,
        "10.99.2.1",
        r#"{"app":"/other","databases":["shop"]}"#,
    );
    assert_eq!(code, 403, "{c}");
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .contains("not granted database shop"),
        "{c}"
    );
    // Injection-shaped names: rejected, and no statement with them reached the server.
    for body in [
        r#"{"app":"/shop/web'; DROP USER 'admin'@'127.0.0.1'; --","databases":["shop"]}"#,
        r#"{"app":"/shop/web","databases":["shop`.* TO 'x'@'%'; DROP DATABASE shop; --"]}"#,
    ] {
        let (code, c) = access(&n.cli_a, "10.99.1.1", body);
        assert_eq!(code, 400, "{body}: {c}");
    }
    let q = db.queries();
    assert!(
        !q.contains("DROP USER 'admin'") && !q.contains("DROP DATABASE"),
        "{q}"
    );
    assert_eq!(db.sql("SELECT COUNT(*) FROM shop.t").trim(), "1");
    let audit = std::fs::read_to_string(&d.log).unwrap();
    assert!(
        audit.contains("granted") && audit.contains("denied"),
        "{audit}"
    );
    assert!(
        !audit.contains(pw) && !audit.contains("adminpw"),
        "a password in the log: {audit}"
    );
    let first = format!("{user}@10.99.1.2");
    assert_eq!(accounts(&db), first);

    // berth-init's pre-start step, from the task's address: the file, then the service.
    let out = dir.path().join("select.out");
    let cnf = dir.path().join("secret/db.cnf");
    let spec = dir.path().join("app.yaml");
    std::fs::write(
        &spec,
        format!(
            "dbauth:\n  url: http://10.99.1.1:9380\n  databases: [shop]\n  credentials: {cnf}\n  deadline: 5s\nservices:\n  main:\n    command: [/bin/sh, -c, \"mariadb --defaults-extra-file={cnf} -N -B -e 'SELECT x FROM shop.t' > {out}\"]\n    restart: never\n",
            cnf = cnf.display(),
            out = out.display()
        ),
    )
    .unwrap();
    let init = |ns: &Ns, app: &str| {
        let mut c = ns.command(&[
            binary("berth-init").to_str().unwrap(),
            "--spec",
            spec.to_str().unwrap(),
            "--socket",
            dir.path()
                .join(format!("init-{}.sock", unique("s")))
                .to_str()
                .unwrap(),
        ]);
        c.env("MARATHON_APP_ID", app).stdin(Stdio::null());
        c.output().unwrap()
    };
    let o = init(&n.cli_a, "/shop/web");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "42");
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&cnf).unwrap().mode() & 0o777, 0o600);
    }
    let log = String::from_utf8_lossy(&o.stderr).into_owned();
    let file = std::fs::read_to_string(&cnf).unwrap();
    let secret = file
        .lines()
        .find_map(|l| l.strip_prefix("password="))
        .unwrap();
    assert!(!log.contains(secret), "the password in init's log: {log}");
    // A task of another app asking for shop: init exits 77, the reason on its last line.
    std::fs::remove_file(&out).unwrap();
    let o = init(&n.cli_b, "/other");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(77), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.contains("dbauth: denied") && last.contains("not granted database shop"),
        "{err}"
    );
    assert!(!out.exists(), "a service started after a denial");

    // kill -9 of dbauth; meanwhile the task ends; back up, reconcile drops its account.
    drop(d);
    set_tasks(
        &marathon,
        "/shop/web",
        &[("/shop/web", "shop_web.1", "TASK_KILLED", "10.99.1.2")],
    );
    let d = start_dbauth(&n, dir.path(), 1);
    assert_eq!(accounts(&db), "", "after reconcile");
    assert!(select(&n.cli_a, "10.99.1.1", user, pw, "SELECT 1").is_err());

    // A new task; when Marathon stops listing it as running, the sweep drops it.
    set_tasks(
        &marathon,
        "/shop/web",
        &[("/shop/web", "shop_web.2", "TASK_RUNNING", "10.99.1.2")],
    );
    let (code, c) = access(
        &n.cli_a,
        "10.99.1.1",
        r#"{"app":"/shop/web","databases":["shop"]}"#,
    );
    assert_eq!(code, 200, "{c}");
    let (user2, pw2) = (
        c["user"].as_str().unwrap().to_string(),
        c["password"].as_str().unwrap().to_string(),
    );
    assert_ne!(user2, user);
    assert!(select(&n.cli_a, "10.99.1.1", &user2, &pw2, "SELECT x FROM shop.t").is_ok());
    set_tasks(
        &marathon,
        "/shop/web",
        &[("/shop/web", "shop_web.2", "TASK_FINISHED", "10.99.1.2")],
    );
    wait_until("the sweep drops the ended task's account", 10, || {
        accounts(&db).is_empty()
    });
    assert!(select(&n.cli_a, "10.99.1.1", &user2, &pw2, "SELECT 1").is_err());
    let audit = std::fs::read_to_string(&d.log).unwrap();
    assert!(
        audit.contains("revoked") && audit.contains("sweep"),
        "{audit}"
    );
}
