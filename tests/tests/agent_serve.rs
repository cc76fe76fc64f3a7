//! `berth-agent serve` as systemd runs it: READY and WATCHDOG datagrams on $NOTIFY_SOCKET,
//! SIGHUP reload (a bad file keeps the old config), SIGTERM stop within 1 s, exit 2 on a bad
//! config naming the file and the key. `resources` against a real loop-file directory.

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::mesos::harness::binary;

/// The service child, killed if the test fails half way.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn recv(rx: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = rx
        .recv(&mut buf)
        .expect("a datagram from serve before the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0);
}

#[test]
fn serve_notifies_reloads_and_stops_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        "[serve]\nstep_secs = 1\n[metrics]\nlisten = \"127.0.0.1:0\"\n[falcon]\nurl = \"\"\n",
    )
    .unwrap();
    let sock = dir.path().join("notify");
    let rx = UnixDatagram::bind(&sock).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let child = Command::new(binary("berth-agent"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut svc = Service(child);
    assert_eq!(recv(&rx), "READY=1");
    // Watchdog every 100 ms: several pings in half a second.
    let mut pings = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(500) {
        assert_eq!(recv(&rx), "WATCHDOG=1");
        pings += 1;
    }
    assert!(pings >= 3, "{pings} watchdog pings in 500 ms");

    // A bad file on SIGHUP: refused, the service goes on.
    std::fs::write(&cfg, "[serve]\nbogus = 1\n").unwrap();
    signal(&svc.0, libc::SIGHUP);
    let mut seen = Vec::new();
    while seen.iter().filter(|s| *s == "READY=1").count() == 0 {
        seen.push(recv(&rx));
    }
    assert!(seen.contains(&"RELOADING=1".to_string()), "{seen:?}");
    assert!(
        svc.0.try_wait().unwrap().is_none(),
        "serve died on a bad reload"
    );
    assert_eq!(recv(&rx), "WATCHDOG=1");

    std::fs::write(&cfg, "[serve]\nstep_secs = 2\n").unwrap();
    signal(&svc.0, libc::SIGHUP);
    while recv(&rx) != "READY=1" {}
    let t = Instant::now();
    signal(&svc.0, libc::SIGTERM);
    let status = loop {
        if let Some(s) = svc.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "serve still running 1 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
    let mut log = String::new();
    std::io::Read::read_to_string(svc.0.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(
        log.contains("reload refused") && log.contains("bogus"),
        "{log}"
    );
    assert!(log.contains("reloaded"), "{log}");
    assert!(!log.contains('\x1b'), "ANSI escapes on a pipe: {log:?}");
}

#[test]
fn bad_config_exits_2_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    for (text, key) in [
        ("[serve]\nstep_sec = 10\n", "step_sec"),
        (
            "[resources.net]\nreserve_mbit = -5.0\n",
            "resources.net.reserve_mbit",
        ),
    ] {
        std::fs::write(&cfg, text).unwrap();
        for verb in ["serve", "resources"] {
            let out = Command::new(binary("berth-agent"))
                .args([verb, "--config"])
                .arg(&cfg)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{verb} {text}: {err}");
            assert!(
                err.contains(&*cfg.to_string_lossy()) && err.contains(key),
                "{verb}: {err}"
            );
        }
    }
    let missing = dir.path().join("nope.toml");
    let out = Command::new(binary("berth-agent"))
        .args(["serve", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.toml"));
}

#[test]
fn resources_in_both_forms_from_a_loopfile_dir() {
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("vol");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[resources]\ndisk_dir = {d:?}\nports = [\"31000-31999\"]\n\
             [resources.home]\nloopfile_dir = {v:?}\nfree_floor_percent = 0.0\n\
             [resources.net]\nparent = \"lo\"\nspeed_mbit = 1000.0\nreserve_mbit = 200.0\n\
             vlans = [\"100-101\"]\n",
            d = dir.path(),
            v = vol
        ),
    )
    .unwrap();
    let run = |format: &str| {
        let out = Command::new(binary("berth-agent"))
            .args(["resources", "--format", format, "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run("text");
    assert!(text.contains(";ports:[31000-31999];"), "{text}");
    assert!(text.contains(";bandwidth:800;vlans:[100-101]"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    let home = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "home")
        .expect("a home resource");
    assert_eq!(home["type"], "SCALAR");
    // The largest /home whose ext4 volume (the filesystem's overhead on top) fits in the
    // free space (give or take what others write meanwhile).
    let st = nix_free_mib(&vol);
    let got = home["scalar"]["value"].as_f64().unwrap();
    let device = |mib: f64| {
        berth_lvm::Filesystem::Ext4
            .device_size(berth_lvm::Bytes::mib(mib as u64))
            .0 as f64
            / 1048576.0
    };
    assert!(got < st, "home {got} MiB is not below the free {st} MiB");
    assert!(
        (device(got) - st).abs() <= 64.0,
        "home {got} MiB needs a {} MiB volume, statvfs says {st} MiB free",
        device(got)
    );
}

fn nix_free_mib(dir: &std::path::Path) -> f64 {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs fills the zeroed struct we own; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    (st.f_bavail as f64 * st.f_frsize as f64) / 1048576.0
}
