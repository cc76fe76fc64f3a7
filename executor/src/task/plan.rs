//! TaskInfo -> a validated [`Plan`]: everything needed to build the container, checked
//! before anything is created. Each error names the field at fault.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::mesos::types::{HealthCheck, Resource, TaskInfo};

use crate::image::{self, ImageSource};

use super::config::RunConfig;
use super::names;

/// Where init's status socket is, inside the container.
pub const INIT_SOCKET: &str = "/run/berth/init.sock";
/// Where berth-init is mounted in the container.
pub const INIT_PATH: &str = "/.berth/init";
/// The app spec berth-init reads by default.
pub const APP_SPEC: &str = "etc/berth/app.yaml";
/// The Mesos sandbox inside the container.
pub const SANDBOX: &str = "/mnt/mesos/sandbox";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("resources.{name}: {why}")]
    Resource { name: String, why: String },
    #[error("labels.{key}: {why}")]
    Label { key: String, why: String },
    #[error("command: {why}")]
    Command { why: String },
    #[error("health_check: {why}")]
    Health { why: String },
    /// The executor's own settings make the task impossible (not the task's fault).
    #[error("executor setting {setting}: {why}")]
    Config { setting: String, why: String },
}

/// How init runs the task.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// The image has an app spec: `berth-init --socket /run/berth/init.sock`.
    AppSpec,
    /// A plain command: `berth-init -- /bin/sh -c <cmd>` (no status socket).
    Command(String),
}

/// A validated task.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub task_id: String,
    pub container_id: String,
    pub hostname: String,
    pub cpus: f64,
    pub mem_mb: f64,
    pub disk_mb: f64,
    pub ports: Vec<u64>,
    /// berth's own resources.
    pub home_mb: f64,
    pub bandwidth_mbit: f64,
    /// The image: a root filesystem directory, or an OCI image unpacked by the image step.
    pub image: ImageSource,
    pub mode: Mode,
    /// `NAME=value` for the container.
    pub env: Vec<String>,
    pub health: Option<HealthCheck>,
}

fn scalar(resources: &[Resource], name: &str) -> Result<f64, PlanError> {
    let mut total = 0.0;
    for r in resources.iter().filter(|r| r.name == name) {
        let v = r
            .scalar
            .as_ref()
            .map(|s| s.value)
            .ok_or_else(|| PlanError::Resource {
                name: name.into(),
                why: "must be a SCALAR".into(),
            })?;
        if !v.is_finite() || v < 0.0 {
            return Err(PlanError::Resource {
                name: name.into(),
                why: format!("{v} is not a size"),
            });
        }
        total += v;
    }
    Ok(total)
}

/// A label value as a name: `[A-Za-z0-9_.-]`, 1..=128 characters, not `.`/`..`.
fn safe_name(key: &str, v: &str) -> Result<String, PlanError> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v != "."
        && v != ".."
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(v.to_string())
    } else {
        Err(PlanError::Label {
            key: key.into(),
            why: format!("{v:?} is not a plain name ([A-Za-z0-9_.-])"),
        })
    }
}

/// Environment variable names the task may set: POSIX-ish, no `=`.
fn valid_env_name(n: &str) -> bool {
    !n.is_empty()
        && !n.contains('=')
        && !n.contains('\0')
        && !n.starts_with(|c: char| c.is_ascii_digit())
}

impl Plan {
    /// Validates a task. `vars` are Marathon's variables from the executor's environment;
    /// `executor_cmd` is the app's `cmd` when Marathon appended it to the executor command.
    pub fn from_task(
        task: &TaskInfo,
        vars: &BTreeMap<String, String>,
        executor_cmd: Option<&str>,
        cfg: &RunConfig,
    ) -> Result<Plan, PlanError> {
        let mut resources = task.resources.clone();
        if let Some(e) = &task.executor {
            resources.extend(e.resources.iter().cloned());
        }
        let cpus = scalar(&resources, "cpus")?;
        let mem_mb = scalar(&resources, "mem")?;
        let disk_mb = scalar(&resources, "disk")?;
        let home_mb = scalar(&resources, "home")?;
        let bandwidth_mbit = scalar(&resources, "bandwidth")?;
        // The /home volume's settings and size, before anything is made.
        super::volume::HomeVolume::from_settings(&task.task_id.value, home_mb, &cfg.volume)?;
        if mem_mb > 0.0 && mem_mb < 4.0 {
            return Err(PlanError::Resource {
                name: "mem".into(),
                why: format!("{mem_mb} MB is too small (at least 4)"),
            });
        }
        let mut ports = Vec::new();
        for r in resources.iter().filter(|r| r.name == "ports") {
            let ranges = r.ranges.as_ref().ok_or_else(|| PlanError::Resource {
                name: "ports".into(),
                why: "must be RANGES".into(),
            })?;
            for range in &ranges.range {
                if range.begin > range.end || range.end > 65535 || range.end - range.begin > 65535 {
                    return Err(PlanError::Resource {
                        name: "ports".into(),
                        why: format!("bad range {}-{}", range.begin, range.end),
                    });
                }
                ports.extend(range.begin..=range.end);
            }
        }
        let labels = task.labels.clone().unwrap_or_default();
        let image_label = labels.get("berth.image").ok_or_else(|| PlanError::Label {
            key: "berth.image".into(),
            why: "missing: name a root filesystem or OCI image layout under the images directory"
                .into(),
        })?;
        let image_err = |e: image::ImageError| PlanError::Label {
            key: "berth.image".into(),
            why: format!("{image_label:?}: {e}"),
        };
        let image = image::lookup(&cfg.images, &cfg.image_cache, image_label).map_err(image_err)?;
        let image_config = image.config().cloned().unwrap_or_default();
        if !image_config.working_dir.is_empty()
            && (!image_config.working_dir.starts_with('/')
                || image_config.working_dir.contains('\0'))
        {
            return Err(PlanError::Label {
                key: "berth.image".into(),
                why: format!(
                    "the image's WorkingDir {:?} is not an absolute path",
                    image_config.working_dir
                ),
            });
        }
        let hostname = match labels.get("berth.hostname") {
            Some(h) => names::hostname(&safe_name("berth.hostname", h)?),
            None => names::hostname(
                task.container
                    .as_ref()
                    .and_then(|c| c.hostname.as_deref())
                    .unwrap_or(&task.name),
            ),
        };
        let command = task
            .command
            .as_ref()
            .and_then(|c| c.value.clone())
            .filter(|v| !v.trim().is_empty())
            .or_else(|| {
                executor_cmd
                    .map(str::to_string)
                    .filter(|v| !v.trim().is_empty())
            });
        let mode = match command {
            Some(c) => {
                if c.contains('\0') {
                    return Err(PlanError::Command { why: "contains a NUL byte".into() });
                }
                Mode::Command(c)
            }
            None if image.has_file(APP_SPEC).map_err(image_err)? => Mode::AppSpec,
            // An OCI image's Entrypoint + Cmd, each word shell-quoted.
            None => match image::command_line(&image_config) {
                Some(c) if !c.contains('\0') => Mode::Command(c),
                _ => {
                    return Err(PlanError::Command {
                        why: format!("no command (TaskInfo.command.value, the app's cmd or the image's Entrypoint/Cmd) and no /{APP_SPEC} in the image"),
                    })
                }
            },
        };
        if let Some(h) = &task.health_check {
            super::health::HealthSpec::from_proto(h).map_err(|why| PlanError::Health { why })?;
        }
        let container_id = names::container_id(&task.task_id.value);
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
        // The image's Env, under everything the task and berth set.
        for kv in &image_config.env {
            if let Some((k, v)) = kv.split_once('=').filter(|(k, _)| valid_env_name(k)) {
                env.insert(k.to_string(), v.to_string());
            }
        }
        for (k, v) in vars {
            env.insert(k.clone(), v.clone());
        }
        let cmd_vars = [
            task.executor.as_ref().and_then(|e| e.command.as_ref()),
            task.command.as_ref(),
        ];
        for c in cmd_vars.into_iter().flatten() {
            for v in c.environment.iter().flat_map(|e| e.variables.iter()) {
                if v.name.starts_with("MESOS_EXECUTOR_AUTHENTICATION") {
                    continue;
                }
                if !valid_env_name(&v.name) {
                    return Err(PlanError::Command {
                        why: format!("environment variable name {:?} is invalid", v.name),
                    });
                }
                env.insert(v.name.clone(), v.value.clone().unwrap_or_default());
            }
        }
        let ports_text: Vec<String> = ports.iter().map(u64::to_string).collect();
        let berth = [
            ("MESOS_TASK_ID", task.task_id.value.clone()),
            ("MESOS_SANDBOX", SANDBOX.to_string()),
            ("HOSTNAME", hostname.clone()),
            ("BERTH_TASK_ID", task.task_id.value.clone()),
            ("BERTH_CONTAINER_ID", container_id.clone()),
            ("BERTH_CPUS", format!("{cpus}")),
            ("BERTH_MEM_MB", format!("{mem_mb}")),
            ("BERTH_DISK_MB", format!("{disk_mb}")),
            ("BERTH_HOME_MB", format!("{home_mb}")),
            ("BERTH_BANDWIDTH_MBIT", format!("{bandwidth_mbit}")),
            ("BERTH_PORTS", ports_text.join(",")),
            ("BERTH_RUN_DIR", "/run/berth".to_string()),
        ];
        for (k, v) in berth {
            env.insert(k.to_string(), v);
        }
        for (k, v) in &env {
            if v.contains('\0') {
                return Err(PlanError::Command {
                    why: format!("environment variable {k} contains a NUL byte"),
                });
            }
        }
        Ok(Plan {
            task_id: task.task_id.value.clone(),
            container_id,
            hostname,
            cpus,
            mem_mb,
            disk_mb,
            ports,
            home_mb,
            bandwidth_mbit,
            image,
            mode,
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            health: task.health_check.clone(),
        })
    }

    /// The container's process: berth-init and its arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![INIT_PATH.to_string()];
        match &self.mode {
            Mode::AppSpec => a.extend(["--socket".to_string(), INIT_SOCKET.to_string()]),
            Mode::Command(c) => a.extend(["--".into(), "/bin/sh".into(), "-c".into(), c.clone()]),
        }
        a
    }

    /// The process's working directory: the image's WorkingDir, else `/`.
    pub fn cwd(&self) -> String {
        match self.image.config() {
            Some(c) if !c.working_dir.is_empty() => c.working_dir.clone(),
            _ => "/".to_string(),
        }
    }

    /// This task's state directory.
    pub fn state_dir(&self, cfg: &RunConfig) -> PathBuf {
        cfg.state_dir.join(&self.container_id)
    }

    /// This task's run dir on the host (`/run/berth` in the container).
    pub fn run_dir(&self, cfg: &RunConfig) -> PathBuf {
        cfg.run_dir.join(&self.container_id)
    }
}

/// The bundle directory inside a state dir.
pub fn bundle_dir(state: &Path) -> PathBuf {
    state.join("bundle")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::types::*;

    fn cfg(images: &Path) -> RunConfig {
        RunConfig {
            runtime: "runc".into(),
            runtime_root: "/tmp/r".into(),
            init: "/bin/true".into(),
            images: images.to_path_buf(),
            state_dir: "/tmp/s".into(),
            run_dir: "/tmp/run".into(),
            cgroup_parent: "berth".into(),
            volume: super::super::volume::VolumeConfig {
                backend: Some("loopfile".into()),
                loopfile_dir: "/tmp/v".into(),
                ..Default::default()
            },
            ..RunConfig::default()
        }
    }

    fn task() -> TaskInfo {
        serde_json::from_value(serde_json::json!({
            "name": "web", "task_id": {"value": "web.1"},
            "resources": [
                {"name":"cpus","type":"SCALAR","scalar":{"value":0.5}},
                {"name":"mem","type":"SCALAR","scalar":{"value":64}},
                {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31001}]}},
                {"name":"home","type":"SCALAR","scalar":{"value":1024}}
            ],
            "command": {"value": "echo hi", "environment": {"variables": [{"name":"APP","value":"1"}]}},
            "labels": {"labels": [{"key":"berth.image","value":"busybox"}]}
        }))
        .unwrap()
    }

    fn images() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("busybox/bin")).unwrap();
        d
    }

    #[test]
    fn a_good_task() {
        let d = images();
        let mut vars = BTreeMap::new();
        vars.insert("MARATHON_APP_ID".to_string(), "/web".to_string());
        let p = Plan::from_task(&task(), &vars, None, &cfg(d.path())).unwrap();
        assert_eq!(p.cpus, 0.5);
        assert_eq!(p.mem_mb, 64.0);
        assert_eq!(p.ports, vec![31000, 31001]);
        assert_eq!(p.home_mb, 1024.0);
        assert_eq!(p.mode, Mode::Command("echo hi".into()));
        assert_eq!(p.args(), vec![INIT_PATH, "--", "/bin/sh", "-c", "echo hi"]);
        for e in [
            "APP=1",
            "MARATHON_APP_ID=/web",
            "BERTH_MEM_MB=64",
            "BERTH_PORTS=31000,31001",
            "MESOS_TASK_ID=web.1",
        ] {
            assert!(p.env.iter().any(|x| x == e), "{e} in {:?}", p.env);
        }
        assert_eq!(p.hostname, "web");
    }

    #[test]
    fn bad_tasks_name_the_field() {
        let d = images();
        let c = cfg(d.path());
        let vars = BTreeMap::new();
        let mut t = task();
        t.labels = None;
        assert!(Plan::from_task(&t, &vars, None, &c)
            .unwrap_err()
            .to_string()
            .starts_with("labels.berth.image"));
        let mut t = task();
        t.labels.as_mut().unwrap().labels[0].value = Some("../etc".into());
        assert!(Plan::from_task(&t, &vars, None, &c)
            .unwrap_err()
            .to_string()
            .starts_with("labels.berth.image"));
        let mut t = task();
        t.labels.as_mut().unwrap().labels[0].value = Some("missing".into());
        assert!(Plan::from_task(&t, &vars, None, &c)
            .unwrap_err()
            .to_string()
            .contains("not a root filesystem"));
        let mut t = task();
        t.resources[1].scalar = Some(Scalar { value: -1.0 });
        assert!(Plan::from_task(&t, &vars, None, &c)
            .unwrap_err()
            .to_string()
            .starts_with("resources.mem"));
        let mut t = task();
        t.resources[2].ranges.as_mut().unwrap().range[0].end = 70000;
        assert!(Plan::from_task(&t, &vars, None, &c)
            .unwrap_err()
            .to_string()
            .starts_with("resources.ports"));
        let mut t = task();
        t.command = None;
        assert!(Plan::from_task(&t, &vars, None, &c)
            .unwrap_err()
            .to_string()
            .starts_with("command"));
        // ... but the app's cmd given to the executor works.
        assert!(Plan::from_task(&t, &vars, Some("sleep 1"), &c).is_ok());
        // home without a volume backend on the executor: refused, naming both.
        let none = RunConfig {
            volume: Default::default(),
            ..c.clone()
        };
        let e = Plan::from_task(&task(), &vars, None, &none)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("resources.home") && e.contains("BERTH_EXECUTOR_VOLUME_BACKEND"),
            "{e}"
        );
        let mut t = task();
        t.resources[3].scalar = Some(Scalar { value: 2.0 });
        assert!(Plan::from_task(&t, &vars, None, &c)
            .unwrap_err()
            .to_string()
            .starts_with("resources.home"));
    }

    #[test]
    fn an_oci_image_gives_env_cwd_and_command() {
        let d = tempfile::tempdir().unwrap();
        let layout = d.path().join("app");
        std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
        std::fs::write(
            layout.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        let blob = |data: &[u8], mt: &str| {
            let dg = crate::image::digest::Digest::of(data);
            std::fs::write(dg.blob_path(&layout), data).unwrap();
            serde_json::json!({"mediaType": mt, "digest": dg.as_str(), "size": data.len()})
        };
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        tar.append_data(&mut h, "bin", &b""[..]).unwrap();
        let layer = blob(
            &tar.into_inner().unwrap(),
            "application/vnd.oci.image.layer.v1.tar",
        );
        let config = serde_json::json!({"os": "linux", "architecture": crate::image::layout::host_architecture(),
            "config": {"Env": ["PATH=/app/bin", "APP=image", "IMG=1"], "WorkingDir": "/app",
                       "Entrypoint": ["/app/run"], "Cmd": ["--say", "a b"]}});
        let config = blob(
            &serde_json::to_vec(&config).unwrap(),
            "application/vnd.oci.image.config.v1+json",
        );
        let m = serde_json::json!({"schemaVersion": 2, "config": config, "layers": [layer],
            "mediaType": "application/vnd.oci.image.manifest.v1+json"});
        let mut m = blob(
            &serde_json::to_vec(&m).unwrap(),
            "application/vnd.oci.image.manifest.v1+json",
        );
        m["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "v1"});
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [m]});
        std::fs::write(
            layout.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        let c = RunConfig {
            image_cache: d.path().join("cache"),
            ..cfg(d.path())
        };
        let mut t = task();
        t.labels.as_mut().unwrap().labels[0].value = Some("app:v1".into());
        let p = Plan::from_task(&t, &BTreeMap::new(), None, &c).unwrap();
        // The task's own variables win over the image's.
        for e in ["PATH=/app/bin", "APP=1", "IMG=1"] {
            assert!(p.env.iter().any(|x| x == e), "{e} in {:?}", p.env);
        }
        assert_eq!(p.cwd(), "/app");
        assert_eq!(p.mode, Mode::Command("echo hi".into()));
        t.command = None;
        let p = Plan::from_task(&t, &BTreeMap::new(), None, &c).unwrap();
        assert_eq!(p.mode, Mode::Command("/app/run --say 'a b'".into()));
        t.labels.as_mut().unwrap().labels[0].value = Some("app:v2".into());
        let e = Plan::from_task(&t, &BTreeMap::new(), None, &c)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("labels.berth.image: \"app:v2\": no tag"),
            "{e}"
        );
    }
}
