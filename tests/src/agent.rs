//! `berth-agent serve` for the metrics tests: started on a free port with a config the test
//! names, scraped over `GET /metrics`, killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::mesos::harness::binary;

/// A running `berth-agent serve`.
pub struct AgentServe {
    child: Child,
    /// Its metrics port on 127.0.0.1.
    pub port: u16,
}

impl AgentServe {
    /// Writes `dir/agent.toml` for `state_dir` (`[serve]` gets `serve_extra` lines, the
    /// Falcon push goes to `falcon_url`, empty: none) and starts the agent with it.
    pub fn start(dir: &Path, state_dir: &Path, serve_extra: &str, falcon_url: &str) -> Self {
        Self::start_with(dir, state_dir, serve_extra, falcon_url, "")
    }

    /// [`AgentServe::start`] with more sections (`[gc]` ...) appended to the config.
    pub fn start_with(
        dir: &Path,
        state_dir: &Path,
        serve_extra: &str,
        falcon_url: &str,
        more: &str,
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cfg = dir.join("agent.toml");
        std::fs::write(
            &cfg,
            format!(
                "[serve]\n{serve_extra}state_dir = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n[falcon]\nurl = \"{falcon_url}\"\n{more}",
                state_dir.display()
            ),
        )
        .expect("write agent.toml");
        let child = Command::new(binary("berth-agent"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .stderr(Stdio::null())
            .spawn()
            .expect("berth-agent serve");
        AgentServe { child, port }
    }

    /// The `/metrics` text (empty while the agent is not answering).
    pub fn scrape(&self) -> String {
        let out = Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{}/metrics", self.port)])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `name` has a sample for `task`; its value.
    pub fn wait_value(&self, name: &str, task: &str, within: Duration) -> f64 {
        let end = Instant::now() + within;
        loop {
            if let Some(v) = value(&self.scrape(), name, task) {
                return v;
            }
            assert!(
                Instant::now() < end,
                "no {name} for {task}: {}",
                self.scrape()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for AgentServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of metric `name`'s sample labelled `task_id="<task>"`.
pub fn value(text: &str, name: &str, task: &str) -> Option<f64> {
    text.lines()
        .filter(|l| {
            l.starts_with(&format!("{name}{{")) && l.contains(&format!("task_id=\"{task}\""))
        })
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}
