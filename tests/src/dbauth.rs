//! Scaffolding of the dbauth tests and benchmark: the admin account and databases on a
//! real [`MariaDb`], `berth-agent dbauth` started in a netns with a config written here,
//! HTTP requests made from inside a netns (berth-http's client, in-process), a MariaDB
//! client run from inside a netns (or copied into a container's root), the accounts
//! dbauth made, and the Marathon double fed from agent doubles as tasks start and end.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_http::client::{Client, Options, Request};
use berth_http::url::Url;
use berth_http::Method;
use serde_json::Value;

use crate::lab::{unique, ChildGuard, Ns};
use crate::marathon::bridge::Bridge;
use crate::marathon::MarathonDouble;
use crate::mariadb::MariaDb;
use crate::mesos::harness::binary;
use crate::mesos::tls::new_ca;
use crate::mesos::AgentDouble;

/// The admin account's password (the account is `admin`@`127.0.0.1`).
pub const ADMIN_PASSWORD: &str = "adminpw";

/// Makes the admin account dbauth connects as, database `shop` with table `t` holding
/// one row (42), and database `other`.
pub fn prepare(db: &MariaDb) {
    db.sql(&format!(
        "CREATE USER 'admin'@'127.0.0.1' IDENTIFIED BY '{ADMIN_PASSWORD}';
         GRANT ALL ON *.* TO 'admin'@'127.0.0.1' WITH GRANT OPTION;
         CREATE DATABASE shop; CREATE TABLE shop.t (x INT); INSERT INTO shop.t VALUES (42);
         CREATE DATABASE other;"
    ));
}

/// What a test's dbauth is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where it listens (`0.0.0.0:9380`).
    pub listen: String,
    /// Marathon's URL as seen from dbauth's netns.
    pub marathon: String,
    pub sweep_secs: u64,
    pub task_wait_secs: u64,
    /// What callers are told to connect to.
    pub client_host: String,
    /// (app, database, privileges as a TOML list).
    pub grants: Vec<(String, String, String)>,
    /// The API's TLS: a [`Pki`] whose certificate names `127.0.0.1` and the addresses
    /// callers use.
    pub tls: Option<Pki>,
}

/// A CA and a server certificate signed by it (PEM files in `dir`), and another CA.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub wrong_ca: PathBuf,
}

impl Pki {
    /// Files in `dir`; the certificate is for `ips` (and 127.0.0.1).
    pub fn new(dir: &Path, ips: &[&str]) -> Pki {
        let (ca, ca_key) = new_ca("dbauth test CA");
        let key = rcgen::KeyPair::generate().expect("key");
        let mut names: Vec<String> = ips.iter().map(|s| s.to_string()).collect();
        names.push("127.0.0.1".into());
        let cert = rcgen::CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &ca, &ca_key)
            .expect("sign");
        let (other, _) = new_ca("another CA");
        let w = |name: &str, pem: String| {
            let p = dir.join(name);
            std::fs::write(&p, pem).expect("write pem");
            p
        };
        Pki {
            ca: w("dbauth-ca.pem", ca.pem()),
            cert: w("dbauth.pem", cert.pem()),
            key: w("dbauth-key.pem", key.serialize_pem()),
            wrong_ca: w("other-ca.pem", other.pem()),
        }
    }
}

impl Settings {
    /// `/shop/web` may SELECT on `shop`, `/other` on `other`.
    pub fn new(marathon: &str, client_host: &str) -> Settings {
        Settings {
            listen: "0.0.0.0:9380".into(),
            marathon: marathon.into(),
            sweep_secs: 3600,
            task_wait_secs: 1,
            client_host: client_host.into(),
            grants: vec![
                ("/shop/web".into(), "shop".into(), "[\"SELECT\"]".into()),
                ("/other".into(), "other".into(), "[\"SELECT\"]".into()),
            ],
            tls: None,
        }
    }
}

/// A running `berth-agent dbauth` (SIGKILLed on drop) and its log (stderr).
pub struct Service {
    _proc: ChildGuard,
    pub log: PathBuf,
}

impl Service {
    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Writes `dir/dbauth.toml` from `s` and starts dbauth in `ns`; returns once
/// `/v1/health` answers from `ns` (reconcile done), panicking after 20 s. The grant
/// record (`dir/grants.sqlite`) survives restarts with the same `dir`.
pub fn start(ns: &Ns, dir: &Path, s: &Settings) -> Service {
    let cfg = dir.join("dbauth.toml");
    let pw = dir.join("admin.password");
    std::fs::write(&pw, format!("{ADMIN_PASSWORD}\n")).expect("password file");
    let mut text = format!(
        "listen = \"{listen}\"\nstate = \"{state}\"\nsweep_secs = {sweep}\ntask_wait_secs = {wait}\n\
         [marathon]\nurl = \"{marathon}\"\ntimeout_secs = 2\n\
         [database]\nhost = \"127.0.0.1\"\nadmin_user = \"admin\"\nadmin_password_file = \"{pw}\"\nclient_host = \"{client}\"\n",
        listen = s.listen,
        state = dir.join("grants.sqlite").display(),
        sweep = s.sweep_secs,
        wait = s.task_wait_secs,
        marathon = s.marathon,
        pw = pw.display(),
        client = s.client_host,
    );
    if let Some(p) = &s.tls {
        text.push_str(&format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            p.cert.display(),
            p.key.display()
        ));
    }
    for (app, db, privs) in &s.grants {
        text.push_str(&format!(
            "[[grant]]\napp = \"{app}\"\ndatabase = \"{db}\"\nprivileges = {privs}\n"
        ));
    }
    std::fs::write(&cfg, text).expect("dbauth.toml");
    let log = dir.join(format!("dbauth-{}.log", unique("l")));
    let mut c = ns.command(&[
        binary("berth-agent").to_str().expect("utf-8 path"),
        "dbauth",
        "--config",
        cfg.to_str().expect("utf-8 path"),
    ]);
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    let proc = ChildGuard::spawn(c, "berth-agent dbauth");
    let port = s.listen.rsplit(':').next().unwrap_or("9380");
    let scheme = if s.tls.is_some() { "https" } else { "http" };
    let health = format!("{scheme}://127.0.0.1:{port}/v1/health");
    let ca = s.tls.as_ref().map(|p| p.ca.as_path());
    let start = Instant::now();
    while request(ns, Method::GET, &health, None, ca).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "dbauth did not come up: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Service { _proc: proc, log }
}

/// (HTTP status, body) of a request made from inside `ns` (status 0: no answer).
pub fn http(ns: &Ns, method: Method, url: &str, body: Option<&str>) -> (u16, String) {
    request(ns, method, url, body, None)
}

/// [`http`], an `https://` URL verified against `ca` when given.
pub fn request(
    ns: &Ns,
    method: Method,
    url: &str,
    body: Option<&str>,
    ca: Option<&Path>,
) -> (u16, String) {
    let tls = ca.map(|c| berth_http::tls::ClientTls {
        ca_file: Some(c.to_path_buf()),
        ..berth_http::tls::ClientTls::system()
    });
    let url = Url::parse(url).expect("URL");
    let req = match body {
        Some(b) => {
            let v: Value = serde_json::from_str(b).expect("a JSON body");
            Request::json(method, url, &v).expect("request")
        }
        None => {
            let mut r = Request::get(url);
            r.method = method;
            r
        }
    };
    ns.run_in(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let client = Client::new(Options {
                tls,
                connect_timeout: Duration::from_secs(2),
                response_timeout: Duration::from_secs(20),
                ..Options::default()
            })
            .expect("client");
            let Ok(resp) = client.send(req).await else {
                return (0, String::new());
            };
            let status = resp.status.as_u16();
            match resp.bytes(1 << 16).await {
                Ok(b) => (status, String::from_utf8_lossy(&b).into_owned()),
                Err(_) => (0, String::new()),
            }
        })
    })
}

/// `POST {service}/v1/access` with `body` from inside `ns`: (status, JSON answer).
pub fn access(ns: &Ns, service: &str, body: &str) -> (u16, Value) {
    let (code, b) = http(
        ns,
        Method::POST,
        &format!("{service}/v1/access"),
        Some(body),
    );
    (code, serde_json::from_str(&b).unwrap_or(Value::Null))
}

/// Runs `sql` as `user` from inside `ns` against `host`:3306 with the host's MariaDB
/// client: the rows, or the client's error.
pub fn select(ns: &Ns, host: &str, user: &str, pw: &str, sql: &str) -> Result<String, String> {
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

/// Whether a MariaDB client error is the server refusing the account.
pub fn refused(err: &str) -> bool {
    err.contains("is not allowed to connect") || err.contains("Access denied")
}

/// dbauth's accounts on `db`, `user@host` sorted, one a line.
pub fn accounts(db: &MariaDb) -> String {
    db.sql(r"SELECT CONCAT(User, '@', Host) FROM mysql.user WHERE User LIKE 'bt\_%' ORDER BY 1")
        .trim()
        .to_string()
}

/// Waits until `f` holds (checked every 20 ms), panicking after `secs` naming `what`.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies the host's MariaDB client (`/usr/bin/mariadb`) and its shared libraries into
/// the root filesystem `root`, at the same paths: a real MySQL client inside the container.
pub fn add_mariadb_client(root: &Path) {
    let client = Path::new("/usr/bin/mariadb");
    let mut files = crate::rootfs::shared_libraries(client).expect("ldd mariadb");
    files.push(client.to_path_buf());
    for f in files {
        let to = root.join(f.strip_prefix("/").expect("absolute"));
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        if !to.exists() {
            std::fs::copy(&f, &to).unwrap_or_else(|e| panic!("copy {}: {e}", f.display()));
        }
    }
}

/// Feeds the Marathon double from agent doubles (one [`Bridge`] per task, its app
/// given) every 2 ms on a thread of its own, as Marathon learns of status updates
/// through Mesos; stopped on drop.
pub struct Feed {
    feeds: Feeds,
    marathon: Arc<MarathonDouble>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Feeds = Arc<Mutex<Vec<(Arc<AgentDouble>, Bridge)>>>;

impl Feed {
    pub fn start(m: Arc<MarathonDouble>) -> Feed {
        let feeds: Feeds = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s, marathon) = (feeds.clone(), stop.clone(), m.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for (d, b) in f.lock().expect("feeds").iter_mut() {
                    b.pump(d, &m);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Feed {
            feeds,
            marathon,
            stop,
            thread: Some(thread),
        }
    }

    /// Feeds the tasks of `d` into `app`.
    pub fn add(&self, d: Arc<AgentDouble>, app: &str) {
        self.feeds
            .lock()
            .expect("feeds")
            .push((d, Bridge::new(app, &[])));
    }

    /// Stops feeding the tasks of `d`, after feeding what it has so far.
    pub fn remove(&self, d: &Arc<AgentDouble>) {
        let mut feeds = self.feeds.lock().expect("feeds");
        for (x, b) in feeds.iter_mut().filter(|(x, _)| Arc::ptr_eq(x, d)) {
            b.pump(x, &self.marathon);
        }
        feeds.retain(|(x, _)| !Arc::ptr_eq(x, d));
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
