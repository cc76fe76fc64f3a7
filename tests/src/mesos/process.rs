//! Starting the executor as the Mesos agent does for a Marathon app with `"executor"`:
//! `sh -c "chmod ug+rx '<path>' && exec '<path>' <cmd>"`, a clean environment with the
//! agent's `MESOS_*` variables and Marathon's task variables.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How to start one executor.
#[derive(Debug, Clone)]
pub struct ExecutorSpec {
    pub binary: PathBuf,
    pub framework_id: String,
    pub executor_id: String,
    pub task_id: String,
    pub app_id: String,
    /// The app's `cmd` (appended to the executor command line by Marathon).
    pub cmd: Option<String>,
    /// MESOS_DIRECTORY; the executor's stdout/stderr go there.
    pub sandbox: PathBuf,
    pub checkpoint: bool,
    pub recovery_timeout: String,
    pub backoff_max: String,
    pub shutdown_grace: String,
    pub token: Option<String>,
    pub ports: Vec<u16>,
    pub labels: Vec<(String, String)>,
    /// The app's `env` and anything else (e.g. BERTH_EXECUTOR_* settings).
    pub env: Vec<(String, String)>,
}

impl ExecutorSpec {
    pub fn new(
        binary: &Path,
        framework_id: &str,
        task_id: &str,
        app_id: &str,
        sandbox: &Path,
    ) -> Self {
        ExecutorSpec {
            binary: binary.to_path_buf(),
            framework_id: framework_id.into(),
            executor_id: format!("marathon-{task_id}"),
            task_id: task_id.into(),
            app_id: app_id.into(),
            cmd: None,
            sandbox: sandbox.to_path_buf(),
            checkpoint: true,
            recovery_timeout: "15mins".into(),
            backoff_max: "500ms".into(),
            shutdown_grace: "5secs".into(),
            token: None,
            ports: vec![31000],
            labels: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The executor's full environment, as the agent + Marathon build it.
    pub fn environment(&self, endpoint: &str, agent_id: &str) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            ("MESOS_FRAMEWORK_ID".into(), self.framework_id.clone()),
            ("MESOS_EXECUTOR_ID".into(), self.executor_id.clone()),
            ("MESOS_AGENT_ENDPOINT".into(), endpoint.into()),
            ("MESOS_DIRECTORY".into(), self.sandbox.display().to_string()),
            ("MESOS_SANDBOX".into(), self.sandbox.display().to_string()),
            ("MESOS_SLAVE_ID".into(), agent_id.into()),
            ("MESOS_SLAVE_PID".into(), format!("slave(1)@{endpoint}")),
            (
                "MESOS_CHECKPOINT".into(),
                if self.checkpoint { "1" } else { "0" }.into(),
            ),
            (
                "MESOS_RECOVERY_TIMEOUT".into(),
                self.recovery_timeout.clone(),
            ),
            (
                "MESOS_SUBSCRIPTION_BACKOFF_MAX".into(),
                self.backoff_max.clone(),
            ),
            (
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD".into(),
                self.shutdown_grace.clone(),
            ),
            ("MESOS_HTTP_COMMAND_EXECUTOR".into(), "0".into()),
            ("MESOS_TASK_ID".into(), self.task_id.clone()),
            ("MARATHON_APP_ID".into(), self.app_id.clone()),
            (
                "MARATHON_APP_VERSION".into(),
                "2026-11-23T22:00:00.000Z".into(),
            ),
            ("MARATHON_APP_DOCKER_IMAGE".into(), String::new()),
            ("MARATHON_APP_RESOURCE_CPUS".into(), "0.5".into()),
            ("MARATHON_APP_RESOURCE_MEM".into(), "64.0".into()),
            ("MARATHON_APP_RESOURCE_DISK".into(), "0.0".into()),
            ("MARATHON_APP_RESOURCE_GPUS".into(), "0".into()),
            ("HOST".into(), "double.local".into()),
        ];
        if let Some(t) = &self.token {
            v.push(("MESOS_EXECUTOR_AUTHENTICATION_TOKEN".into(), t.clone()));
        }
        let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        for (i, p) in ports.iter().enumerate() {
            v.push((format!("PORT{i}"), p.clone()));
        }
        if let Some(p) = ports.first() {
            v.push(("PORT".into(), p.clone()));
        }
        v.push(("PORTS".into(), ports.join(",")));
        for (k, val) in &self.labels {
            let name: String = k
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            v.push((format!("MARATHON_APP_LABEL_{name}"), val.clone()));
        }
        v.extend(self.env.iter().cloned());
        v
    }

    /// Starts the executor (stdout/stderr into the sandbox).
    pub fn spawn(&self, endpoint: &str, agent_id: &str) -> ExecutorProcess {
        std::fs::create_dir_all(&self.sandbox).expect("sandbox dir");
        let path = self.binary.display().to_string();
        let mut line = format!("chmod ug+rx '{path}' && exec '{path}'");
        if let Some(cmd) = &self.cmd {
            line.push(' ');
            line.push_str(cmd);
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.sandbox.join("stdout"))
            .expect("stdout");
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.sandbox.join("stderr"))
            .expect("stderr");
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(line)
            .env_clear()
            .envs(self.environment(endpoint, agent_id))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .current_dir(&self.sandbox)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn the executor");
        ExecutorProcess {
            child,
            sandbox: self.sandbox.clone(),
            status: None,
        }
    }
}

/// The executor process; killed (SIGKILL) on drop if still running.
pub struct ExecutorProcess {
    child: Child,
    sandbox: PathBuf,
    status: Option<ExitStatus>,
}

impl ExecutorProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Waits for the executor to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while self.status.is_none() && Instant::now() < end {
            self.status = self.child.try_wait().ok().flatten();
            if self.status.is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.status
    }

    /// The executor's log (its stderr in the sandbox).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.sandbox.join("stderr")).unwrap_or_default()
    }
}

impl Drop for ExecutorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
