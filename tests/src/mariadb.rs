//! A real MariaDB for tests: `mariadb-install-db` into a temp datadir, `mariadbd` started
//! inside a netns (REFERENCE.md section 9), listening on all the netns' addresses and on a
//! socket under the temp dir, with the general query log on (tests read which statements
//! reached the server). Killed and removed on drop, also on a panic.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::lab::{run, ChildGuard, Ns};

pub struct MariaDb {
    _server: ChildGuard,
    pub socket: PathBuf,
    pub general_log: PathBuf,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl MariaDb {
    /// Installs and starts a server in `ns` on `port`; panics if it is not up in 60 s.
    pub fn start(ns: &Ns, port: u16) -> MariaDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let socket = dir.path().join("mysqld.sock");
        let general_log = dir.path().join("general.log");
        let d = data.to_string_lossy().into_owned();
        run(&[
            "mariadb-install-db",
            "--no-defaults",
            "--user=root",
            &format!("--datadir={d}"),
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ]);
        let argv = [
            "mariadbd".to_string(),
            "--no-defaults".into(),
            "--user=root".into(),
            format!("--datadir={d}"),
            format!("--socket={}", socket.display()),
            format!("--port={port}"),
            "--bind-address=0.0.0.0".into(),
            "--skip-name-resolve".into(),
            format!("--pid-file={}", dir.path().join("pid").display()),
            "--general-log=1".into(),
            format!("--general-log-file={}", general_log.display()),
            "--skip-log-bin".into(),
            format!("--log-error={}", dir.path().join("error.log").display()),
        ];
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let server = ns.spawn(&argv);
        let db = MariaDb {
            _server: server,
            socket,
            general_log,
            port,
            _dir: dir,
        };
        let start = Instant::now();
        while !db.ping() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "mariadbd did not come up: {}",
                std::fs::read_to_string(db._dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        db
    }

    fn ping(&self) -> bool {
        Command::new("mariadb-admin")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["--connect-timeout=1", "ping"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Runs `sql` as root over the socket; returns the rows (tab-separated, no header).
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-N", "-B", "-e", sql])
            .output()
            .expect("run mariadb");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The general query log so far.
    pub fn queries(&self) -> String {
        std::fs::read_to_string(&self.general_log).unwrap_or_default()
    }
}
