//! `login:` end to end with the real OpenSSH: berth-init as PID 1 of new PID, mount and
//! network namespaces (the host's sshd and a test /etc/passwd bind-mounted in), a user CA
//! made here with ssh-keygen, and a non-interactive ssh client entering the netns.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth_tests::lab::Ns;
use berth_tests::login::{sh, Container, Key};
use berth_tests::login_ca::{cert_authority_line, describe, CaServer, Signing};

fn spec(dir_ca: &str, extra: &str) -> String {
    format!("services:\n  idle: {{command: [sleep, \"3600\"]}}\nlogin:\n  ca: {dir_ca}\n  refresh: 1s\n  users:\n    work: {{}}\n{extra}")
}

fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "login should be refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn certificates_only_login() {
    let keys = tempfile::tempdir().unwrap();
    let ca = Key::new(keys.path(), "ca");
    let good = Key::new(keys.path(), "good");
    ca.sign(&good, "team", "+1h");
    let wrong = Key::new(keys.path(), "wrong");
    ca.sign(&wrong, "other-team", "+1h");
    let expired = Key::new(keys.path(), "expired");
    ca.sign(&expired, "team", "20200101:20200102");
    let bare = Key::new(keys.path(), "bare");
    let revoked = Key::new(keys.path(), "revoked");
    ca.sign(&revoked, "team/web", "+1h");
    let krl = keys.path().join("krl");
    sh(Command::new("ssh-keygen")
        .args(["-k", "-f"])
        .arg(&krl)
        .arg(revoked.0.with_extension("pub")));
    std::fs::copy(ca.0.with_extension("pub"), keys.path().join("ca-src")).unwrap();

    let c = Container::start(&spec(
        &keys.path().join("ca-src").display().to_string(),
        &format!("  revoked: {}\n", krl.display()),
    ));
    c.wait_login(&good);

    // The right principal runs a command, as the named user, with the executor's
    // non-secret environment.
    let out = c.ssh(&good, "work", "id -un; env", &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("work\n"), "{text}");
    assert!(text.contains("MARATHON_APP_ID=/team/web"), "{text}");
    assert!(text.contains("BERTH_MEM_MB=256"), "{text}");
    assert!(
        !text.contains("s3cret"),
        "a secret reached the session:\n{text}"
    );

    // A session with a pty works with sshd's narrow capability set, which is exactly it.
    let tty = c.ssh(&good, "work", "tty", &["-tt"]);
    assert!(
        tty.status.success() && String::from_utf8_lossy(&tty.stdout).contains("/dev/pts/"),
        "{}{}",
        String::from_utf8_lossy(&tty.stdout),
        String::from_utf8_lossy(&tty.stderr)
    );
    let sshd = c.sshd_pid().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{sshd}/status")).unwrap();
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    // SETUID 7, SETGID 6, SYS_CHROOT 18, NET_BIND_SERVICE 10, CHOWN 0, FOWNER 3, KILL 5,
    // AUDIT_WRITE 29.
    let want: u64 = [7, 6, 18, 10, 0, 3, 5, 29].iter().map(|b| 1u64 << b).sum();
    assert_eq!(
        u64::from_str_radix(bnd, 16).unwrap(),
        want,
        "sshd CapBnd {bnd}"
    );

    refused(&c.ssh(&wrong, "work", "true", &[]));
    refused(&c.ssh(&expired, "work", "true", &[]));
    refused(&c.ssh(&bare, "work", "true", &[]));
    refused(&c.ssh(&revoked, "work", "true", &[]));
    // A user outside login.users, even with a good certificate.
    refused(&c.ssh(&good, "root", "true", &[]));
    // Passwords are not even offered.
    let pw = refused(&c.ssh(
        &bare,
        "work",
        "true",
        &[
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        ],
    ));
    assert!(pw.contains("Permission denied (publickey)"), "{pw}");

    let st = c.status();
    assert_eq!(st["login"]["state"], "ready", "{st}");
    assert_eq!(st["login"]["ca_keys"], 1, "{st}");
    assert!(st["services"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "login-sshd" && s["state"] == "running"));
}

#[test]
fn ca_rotation_outage_and_garbage() {
    let keys = tempfile::tempdir().unwrap();
    let ca1 = Key::new(keys.path(), "ca1");
    let ca2 = Key::new(keys.path(), "ca2");
    let u1 = Key::new(keys.path(), "u1");
    ca1.sign(&u1, "team", "+1h");
    let u2 = Key::new(keys.path(), "u2");
    ca2.sign(&u2, "team", "+1h");
    let src = keys.path().join("ca-src");
    std::fs::write(&src, ca1.public()).unwrap();

    let c = Container::start(&spec(&src.display().to_string(), ""));
    c.wait_login(&u1);
    refused(&c.ssh(&u2, "work", "true", &[]));

    let settle = || std::thread::sleep(Duration::from_millis(2500));
    // Rotation: both CAs, then only the new one.
    std::fs::write(&src, format!("{}{}", ca1.public(), ca2.public())).unwrap();
    settle();
    assert!(c.ssh(&u1, "work", "true", &[]).status.success());
    assert!(c.ssh(&u2, "work", "true", &[]).status.success());
    std::fs::write(&src, ca2.public()).unwrap();
    settle();
    refused(&c.ssh(&u1, "work", "true", &[]));
    assert!(c.ssh(&u2, "work", "true", &[]).status.success());

    // The source goes down: the last good keys stay.
    std::fs::remove_file(&src).unwrap();
    settle();
    assert!(c.ssh(&u2, "work", "true", &[]).status.success());
    assert!(c.status()["login"]["last_error"].is_string());
    // Garbage (an error page), then an empty list: the last good keys stay.
    std::fs::write(&src, "<html>502 Bad Gateway</html>\n").unwrap();
    settle();
    assert!(c.ssh(&u2, "work", "true", &[]).status.success());
    std::fs::write(&src, "").unwrap();
    settle();
    assert!(c.ssh(&u2, "work", "true", &[]).status.success());
    refused(&c.ssh(&u1, "work", "true", &[]));
}

#[test]
fn fresh_host_keys_and_sshd_restarted() {
    let keys = tempfile::tempdir().unwrap();
    let ca = Key::new(keys.path(), "ca");
    let u = Key::new(keys.path(), "u");
    ca.sign(&u, "team/web", "+1h");
    let src = ca.0.with_extension("pub").display().to_string();
    let a = Container::start(&spec(&src, ""));
    let b = Container::start(&spec(&src, ""));
    a.wait_login(&u);
    b.wait_login(&u);
    assert_ne!(
        a.host_key(),
        b.host_key(),
        "two containers share a host key"
    );

    let old = a.sshd_pid().expect("sshd is a child of PID 1");
    // SAFETY: kill has no memory preconditions; `old` is the test container's sshd.
    unsafe { libc::kill(old, libc::SIGKILL) };
    let t0 = Instant::now();
    while a.sshd_pid().is_none_or(|p| p == old) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "sshd not restarted:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a.wait_login(&u);
    assert!(a.status()["services"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "login-sshd" && s["restarts"].as_u64() >= Some(1)));
}

#[test]
fn never_starts_with_an_empty_trust_list() {
    let keys = tempfile::tempdir().unwrap();
    let empty = keys.path().join("empty");
    std::fs::write(&empty, "# no keys yet\n").unwrap();
    // required: true -> init exits, nothing runs.
    let mut c = Container::start(&spec(&empty.display().to_string(), "  required: true\n"));
    let t0 = Instant::now();
    let code = loop {
        if let Some(s) = c.unshare.try_wait().unwrap() {
            break s.code();
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "init did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(1), "{}", c.log());
    assert!(c.log().contains("no CA keys"), "{}", c.log());
    // required: false -> the app runs, login is reported failed, no sshd.
    let c = Container::start(&spec(&empty.display().to_string(), ""));
    let t0 = Instant::now();
    while !c.dir.path().join("run/init.sock").exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", c.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = c.status();
    assert_eq!(st["login"]["state"], "failed", "{st}");
    assert!(
        st["login"]["reason"]
            .as_str()
            .unwrap()
            .contains("no CA keys"),
        "{st}"
    );
    assert!(c.sshd_pid().is_none());
}

fn ca_netns(tag: &str) -> Ns {
    let ns = Ns::new(&format!("berth-lca{tag}-{}", std::process::id()));
    ns.ip(&["link", "set", "lo", "up"]);
    ns
}

#[test]
fn url_sources_and_a_host_certificate() {
    let keys = tempfile::tempdir().unwrap();
    let ca1 = Key::new(keys.path(), "ca1");
    let ca2 = Key::new(keys.path(), "ca2");
    let host_ca = Key::new(keys.path(), "host-ca");
    let u1 = Key::new(keys.path(), "u1");
    ca1.sign(&u1, "team", "+1h");
    let u2 = Key::new(keys.path(), "u2");
    ca2.sign(&u2, "team", "+1h");
    let ns = ca_netns("u");
    let srv = CaServer::start(&ns, &ca1.public(), &host_ca);
    let extra = format!("  host_certificate: {}\n", srv.url("/sign"));
    let c = Container::start_in(&spec(&srv.url("/ca.pub"), &extra), Some(&ns));
    c.wait_login(&u1);

    // The client pins no host key: it trusts the host CA, strictly, and gets in.
    let out = c.ssh_known(&cert_authority_line(&host_ca), &u1, "work", "true", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Trusting another host CA, the same client refuses the host (the check is real).
    let stranger = Key::new(keys.path(), "stranger-ca");
    let out = c.ssh_known(&cert_authority_line(&stranger), &u1, "work", "true", &[]);
    let err = refused(&out);
    assert!(err.contains("Host key verification failed"), "{err}");
    let cert = describe(&c.login_dir().join("ssh_host_ed25519_key-cert.pub"));
    assert!(cert.contains("host certificate"), "{cert}");
    assert_eq!(srv.state.lock().unwrap().signed, 1);
    let st = c.status();
    assert_eq!(st["login"]["host_certificate"], "installed", "{st}");

    // The CA keys come from the URL: a rotation is followed, an outage keeps the last good.
    let settle = || std::thread::sleep(Duration::from_millis(2500));
    srv.state.lock().unwrap().ca = Some(ca2.public());
    settle();
    refused(&c.ssh(&u1, "work", "true", &[]));
    assert!(c.ssh(&u2, "work", "true", &[]).status.success());
    srv.state.lock().unwrap().ca = None;
    settle();
    assert!(c.ssh(&u2, "work", "true", &[]).status.success());
    let st = c.status();
    let last = st["login"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(last.contains("503"), "{st}");
}

#[test]
fn a_bad_signing_endpoint_gives_no_certificate() {
    let keys = tempfile::tempdir().unwrap();
    let ca = Key::new(keys.path(), "ca");
    let host_ca = Key::new(keys.path(), "host-ca");
    let u = Key::new(keys.path(), "u");
    ca.sign(&u, "team", "+1h");
    let ns = ca_netns("b");
    let srv = CaServer::start(&ns, &ca.public(), &host_ca);
    let extra = format!("  host_certificate: {}\n", srv.url("/sign"));
    let ca_src = srv.url("/ca.pub");

    for bad in [Signing::User, Signing::Garbage] {
        srv.state.lock().unwrap().signing = bad;
        // required: false -> sshd runs with its bare host key, the status says why.
        let c = Container::start_in(&spec(&ca_src, &extra), Some(&ns));
        c.wait_login(&u);
        assert!(!c.login_dir().join("ssh_host_ed25519_key-cert.pub").exists());
        assert!(!c
            .login_dir()
            .join("ssh_host_ed25519_key-cert.pub.new")
            .exists());
        let st = c.status();
        let hc = st["login"]["host_certificate"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let why = if bad == Signing::User {
            "not a host certificate"
        } else {
            "not an ssh-ed25519-cert"
        };
        assert!(
            hc.starts_with("failed: ") && hc.contains(why),
            "{bad:?}: {st}"
        );
        let out = c.ssh_known(&cert_authority_line(&host_ca), &u, "work", "true", &[]);
        refused(&out);
    }

    // required: true -> init exits before any service starts, naming the cause.
    srv.state.lock().unwrap().signing = Signing::Garbage;
    let mut c = Container::start_in(
        &spec(&ca_src, &format!("{extra}  required: true\n")),
        Some(&ns),
    );
    let t0 = Instant::now();
    let code = loop {
        if let Some(s) = c.unshare.try_wait().unwrap() {
            break s.code();
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "init did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(1), "{}", c.log());
    assert!(c.log().contains("no host certificate"), "{}", c.log());
}
