//! `berth-agent dbauth` against a real MariaDB, with callers in their own netns so their
//! source addresses differ:
//!
//! ```text
//!  [cli_a netns] a0 10.99.1.2 --veth-- s1 10.99.1.1 [srv netns] mariadbd :3306, dbauth :9380,
//!  [cli_b netns] b0 10.99.2.2 --veth-- s2 10.99.2.1              the Marathon double
//! ```
//!
//! Marathon is the strict double (tests/src/marathon), listening in the server netns; the
//! test adds and ends its tasks, and its `/v2/events` stream tells dbauth. Requests are
//! made with berth-http's client from inside the caller's netns.

use std::process::Stdio;

use berth_tests::dbauth::{self, access, accounts, refused, select, wait_until, Settings};
use berth_tests::lab::{require_root, unique, Ns};
use berth_tests::marathon::{MarathonDouble, Options};
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

const SERVICE: &str = "http://10.99.1.1:9380";

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

#[test]
fn grants_refusals_revocation_and_reconcile() {
    require_root();
    let n = net();
    let dir = tempfile::tempdir().unwrap();
    let db = MariaDb::start(&n.srv, 3306);
    dbauth::prepare(&db);
    // The double listens on the server netns' loopback, as Marathon would next to dbauth.
    let m = n.srv.run_in(|| MarathonDouble::start(Options::default()));
    m.add_task("/shop/web", "shop_web.1", ip("10.99.1.2"), &[]);
    m.add_task("/other", "other.1", ip("10.99.2.2"), &[]);
    let settings = Settings::new(&m.url, "10.99.1.1");
    let d = dbauth::start(&n.srv, dir.path(), &settings);
    assert!(
        m.wait(std::time::Duration::from_secs(5), |st| st
            .streams
            .iter()
            .any(|s| !s.tx.is_closed())),
        "dbauth does not follow /v2/events"
    );

    // A task of /shop/web asks from its own address: working credentials.
    let (code, c) = access(
        &n.cli_a,
        SERVICE,
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
    assert!(refused(&e), "{e}");

    // From cli_b, claiming cli_a's address: the claim is ignored, the peer is not a task.
    let (code, c) = access(
        &n.cli_b,
        "http://10.99.2.1:9380",
        r#"{"app":"/shop/web","databases":["shop"],"ip":"10.99.1.2"}"#,
    );
    assert_eq!(code, 403, "{c}");
    assert!(c["error"].as_str().unwrap().contains("10.99.2.2"), "{c}");
    // A task of another app asks for shop: the table says no.
    let (code, c) = access(
        &n.cli_b,
        "http://10.99.2.1:9380",
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
        let (code, c) = access(&n.cli_a, SERVICE, body);
        assert_eq!(code, 400, "{body}: {c}");
    }
    let q = db.queries();
    assert!(
        !q.contains("DROP USER 'admin'") && !q.contains("DROP DATABASE"),
        "{q}"
    );
    assert_eq!(db.sql("SELECT COUNT(*) FROM shop.t").trim(), "1");
    let audit = d.log();
    assert!(
        audit.contains("granted") && audit.contains("denied"),
        "{audit}"
    );
    assert!(
        !audit.contains(pw) && !audit.contains(dbauth::ADMIN_PASSWORD),
        "a password in the log: {audit}"
    );
    assert_eq!(accounts(&db), format!("{user}@10.99.1.2"));

    // berth-init's pre-start step, from the task's address: the file, then the service.
    let out = dir.path().join("select.out");
    let cnf = dir.path().join("secret/db.cnf");
    let spec = dir.path().join("app.yaml");
    std::fs::write(
        &spec,
        format!(
            "dbauth:\n  url: {SERVICE}\n  databases: [shop]\n  credentials: {cnf}\n  deadline: 5s\nservices:\n  main:\n    command: [/bin/sh, -c, \"mariadb --defaults-extra-file={cnf} -N -B -e 'SELECT x FROM shop.t' > {out}\"]\n    restart: never\n",
            cnf = cnf.display(),
            out = out.display()
        ),
    )
    .unwrap();
    let init_with = |ns: &Ns, app: &str, spec: &std::path::Path| {
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
    let init = |ns: &Ns, app: &str| init_with(ns, app, &spec);
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

    // Marathon's event stream: TASK_KILLED drops the account at once (no sweep for an
    // hour; the grant above re-keyed the same account).
    m.kill_task("shop_web.1");
    wait_until("the TASK_KILLED event drops the account", 5, || {
        accounts(&db).is_empty()
    });
    assert!(refused(
        &select(&n.cli_a, "10.99.1.1", user, pw, "SELECT 1").unwrap_err()
    ));
    wait_until("the audit line of the revocation", 5, || {
        d.log().contains("reason=\"Marathon event TASK_KILLED\"")
    });

    // A new task; kill -9 of dbauth; meanwhile the task ends (the event is missed); back
    // up, reconcile drops its account before dbauth answers.
    m.add_task("/shop/web", "shop_web.2", ip("10.99.1.2"), &[]);
    let (code, c) = access(
        &n.cli_a,
        SERVICE,
        r#"{"app":"/shop/web","databases":["shop"]}"#,
    );
    assert_eq!((code, c["task"].as_str()), (200, Some("shop_web.2")), "{c}");
    let user2 = c["user"].as_str().unwrap().to_string();
    assert_ne!(user2, user);
    drop(d);
    m.kill_task("shop_web.2");
    let fast = Settings {
        sweep_secs: 1,
        ..settings.clone()
    };
    let d = dbauth::start(&n.srv, dir.path(), &fast);
    assert_eq!(accounts(&db), "", "after reconcile");

    // A third task vanishes from Marathon without any event: the sweep drops it.
    m.add_task("/shop/web", "shop_web.3", ip("10.99.1.2"), &[]);
    let (code, c) = access(
        &n.cli_a,
        SERVICE,
        r#"{"app":"/shop/web","databases":["shop"]}"#,
    );
    assert_eq!(code, 200, "{c}");
    let (user3, pw3) = (
        c["user"].as_str().unwrap().to_string(),
        c["password"].as_str().unwrap().to_string(),
    );
    assert!(select(&n.cli_a, "10.99.1.1", &user3, &pw3, "SELECT x FROM shop.t").is_ok());
    m.remove_task("shop_web.3");
    wait_until("the sweep drops the vanished task's account", 10, || {
        accounts(&db).is_empty()
    });
    assert!(select(&n.cli_a, "10.99.1.1", &user3, &pw3, "SELECT 1").is_err());
    wait_until("the audit line of the sweep", 5, || {
        d.log()
            .contains("reason=\"sweep: Marathon no longer lists the task as live\"")
    });

    // TLS on the API: init verifies dbauth against the CA its spec names; a plain-HTTP
    // request and an init trusting another CA get nothing.
    drop(d);
    let pki = dbauth::Pki::new(dir.path(), &["10.99.1.1", "10.99.2.1"]);
    let with_tls = Settings {
        tls: Some(pki.clone()),
        ..fast
    };
    let _d = dbauth::start(&n.srv, dir.path(), &with_tls);
    m.add_task("/shop/web", "shop_web.4", ip("10.99.1.2"), &[]);
    let tls_spec = |ca: &std::path::Path, name: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                "dbauth:\n  url: https://10.99.1.1:9380\n  ca_file: {ca}\n  databases: [shop]\n  credentials: {cnf}\n  deadline: 2s\nservices:\n  main:\n    command: [/bin/sh, -c, \"mariadb --defaults-extra-file={cnf} -N -B -e 'SELECT x FROM shop.t' > {out}\"]\n    restart: never\n",
                ca = ca.display(),
                cnf = cnf.display(),
                out = out.display()
            ),
        )
        .unwrap();
        p
    };
    let o = init_with(&n.cli_a, "/shop/web", &tls_spec(&pki.ca, "tls.yaml"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "42");
    assert!(accounts(&db).contains("@10.99.1.2"), "{}", accounts(&db));
    let (code, _) = access(
        &n.cli_a,
        SERVICE,
        r#"{"app":"/shop/web","databases":["shop"]}"#,
    );
    assert_eq!(code, 0, "plain HTTP answered on the TLS port");
    std::fs::remove_file(&out).unwrap();
    let o = init_with(
        &n.cli_a,
        "/shop/web",
        &tls_spec(&pki.wrong_ca, "wrong.yaml"),
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(77), "{err}");
    assert!(
        err.lines().last().is_some_and(
            |l| l.contains("unreachable until the deadline") && l.contains("certificate")
        ),
        "{err}"
    );
    assert!(
        !out.exists(),
        "a service started without verified credentials"
    );
}
