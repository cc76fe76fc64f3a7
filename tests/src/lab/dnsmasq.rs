//! A real dnsmasq DHCP server on the lab's bridge, with its own pid, lease and log files
//! in a temp dir. Its log is the tests' view of what the server saw.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::ns::Ns;
use super::proc::ChildGuard;

/// dnsmasq's DHCP settings for the lab.
#[derive(Debug, Clone)]
pub struct DhcpConfig {
    /// Lease time in seconds (dnsmasq's minimum is 120).
    pub lease_secs: u32,
    /// Renewal time T1 (option 58), seconds.
    pub t1: u32,
    /// Rebinding time T2 (option 59), seconds.
    pub t2: u32,
    /// Extra `--dhcp-option=` values, e.g. `option:classless-static-route,...`.
    pub extra_options: Vec<String>,
    /// Address pool (first, last).
    pub range: (String, String),
    /// Skip dnsmasq's ICMP probe of a new address before offering it (`--no-ping`).
    pub no_ping: bool,
}

impl Default for DhcpConfig {
    fn default() -> Self {
        Self {
            lease_secs: 120,
            t1: 4,
            t2: 7,
            extra_options: vec!["option:domain-name,lab.test".into()],
            range: ("10.77.0.100".into(), "10.77.0.199".into()),
            no_ping: false,
        }
    }
}

/// The running server; killed on drop. Stop and start it again with [`Dnsmasq::stop`] /
/// [`Dnsmasq::restart`] (leases persist in the lease file).
pub struct Dnsmasq {
    child: Option<ChildGuard>,
    dir: tempfile::TempDir,
    ns: String,
    cfg: DhcpConfig,
}

impl Dnsmasq {
    /// Start dnsmasq in `lan` on `br0`.
    pub fn start(lan: &Ns, cfg: DhcpConfig) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-lab-dnsmasq")
            .tempdir()
            .expect("tempdir");
        let mut me = Self {
            child: None,
            dir,
            ns: lan.name().to_string(),
            cfg,
        };
        me.spawn();
        me
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let c = &self.cfg;
        let mut args: Vec<String> = vec![
            "netns".into(),
            "exec".into(),
            self.ns.clone(),
            "dnsmasq".into(),
            "--keep-in-foreground".into(),
            "--conf-file=/dev/null".into(),
            "--port=0".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--user=root".into(),
            "--group=root".into(),
            "--interface=br0".into(),
            "--bind-interfaces".into(),
            "--dhcp-authoritative".into(),
            "--log-dhcp".into(),
            format!("--log-facility={}", d.join("log").display()),
            format!("--pid-file={}", d.join("pid").display()),
            format!("--dhcp-leasefile={}", d.join("leases").display()),
            format!(
                "--dhcp-range={},{},255.255.255.0,{}s",
                c.range.0, c.range.1, c.lease_secs
            ),
            "--dhcp-option=option:router,10.77.0.1".into(),
            "--dhcp-option=option:dns-server,10.77.0.1".into(),
            format!("--dhcp-option=option:T1,{}", c.t1),
            format!("--dhcp-option=option:T2,{}", c.t2),
        ];
        if c.no_ping {
            args.push("--no-ping".into());
        }
        for o in &c.extra_options {
            args.push(format!("--dhcp-option={o}"));
        }
        let mut cmd = std::process::Command::new("ip");
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        self.child = Some(ChildGuard::spawn(cmd, "dnsmasq"));
        // Ready when it has logged its start line.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains("DHCP, IP range") {
            assert!(
                Instant::now() < deadline,
                "lab: dnsmasq did not start; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the server (SIGTERM); the lease file stays.
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            c.terminate();
        }
    }

    /// Start it again after [`Dnsmasq::stop`].
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Path of the log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// How many log lines contain `needle` (e.g. `DHCPREQUEST(br0)`).
    pub fn count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Wait until `count(needle) >= n` or `timeout`; returns whether it happened.
    pub fn wait_for(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.count(needle) >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The lease file's content.
    pub fn leases(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("leases")).unwrap_or_default()
    }
}
