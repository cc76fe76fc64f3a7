use super::*;
use crate::mesos::types::*;

fn cfg(images: &Path) -> RunConfig {
    RunConfig {
        runtime: "runc".into(),
        runtime_root: "/tmp/r".into(),
        init: "/bin/busybox".into(),
        images: images.to_path_buf(),
        state_dir: "/tmp/s".into(),
        run_dir: "/tmp/run".into(),
        cgroup_parent: "berth".into(),
        volume: super::super::volume::VolumeConfig {
            backend: Some("loopfile".into()),
            loopfile_dir: "/tmp/v".into(),
            ..Default::default()
        },
        host: super::super::config::HostLimits {
            cpus: 4.0,
            mem_mb: 8192.0,
        },
        ..RunConfig::default()
    }
}

fn err(t: &TaskInfo, vars: &BTreeMap<String, String>, c: &RunConfig) -> String {
    Plan::from_task(t, vars, None, c).unwrap_err().to_string()
}

fn with_scalar(name: &str, v: f64) -> TaskInfo {
    let mut t = task();
    t.resources.retain(|r| r.name != name);
    t.resources.push(
        serde_json::from_value(serde_json::json!(
            {"name": name, "type": "SCALAR", "scalar": {"value": v}}))
        .unwrap(),
    );
    t
}

#[test]
fn resources_have_upper_bounds() {
    let d = images();
    let c = cfg(d.path());
    let vars = BTreeMap::new();
    for (name, v, needle) in [
        ("mem", 1e300, "more than this host's memory (8192 MB)"),
        ("mem", 8193.0, "more than this host's memory"),
        ("cpus", 1e12, "more than this host's 4 CPUs"),
        ("cpus", 4.5, "at most 4"),
        ("home", 1e12, "16 TiB"),
        ("disk", 1e12, "16 TiB"),
        ("bandwidth", 1e7, "400000 Mbit/s"),
    ] {
        let e = err(&with_scalar(name, v), &vars, &c);
        assert!(e.starts_with(&format!("resources.{name}: ")), "{e}");
        assert!(e.contains(needle), "{name}={v}: {e}");
    }
    // At the bounds: accepted.
    for (name, v) in [("mem", 8192.0), ("cpus", 4.0), ("bandwidth", 400_000.0)] {
        assert!(Plan::from_task(&with_scalar(name, v), &vars, None, &c).is_ok());
    }
    // A host with more CPUs than cpu-shares allow: the shares bound applies.
    let big = RunConfig {
        host: super::super::config::HostLimits {
            cpus: 1024.0,
            mem_mb: 8192.0,
        },
        ..c.clone()
    };
    let e = err(&with_scalar("cpus", 300.0), &vars, &big);
    assert!(e.contains("at most 256"), "{e}");
    assert!(Plan::from_task(&with_scalar("cpus", 256.0), &vars, None, &big).is_ok());
}

#[test]
fn bad_variable_names_say_where_they_came_from() {
    let d = images();
    let c = cfg(d.path());
    let vars = BTreeMap::new();
    let var = |n: &str| -> Variable {
        serde_json::from_value(serde_json::json!({"name": n, "value": "x"})).unwrap()
    };
    let mut t = task();
    let env = &mut t
        .command
        .as_mut()
        .unwrap()
        .environment
        .as_mut()
        .unwrap()
        .variables;
    env.extend([var("OK1"), var("OK2"), var("1A")]);
    let e = err(&t, &vars, &c);
    assert!(
        e.starts_with("command.environment.variables[3].name: \"1A\" is not a valid"),
        "{e}"
    );
    let mut t = task();
    let exec: ExecutorInfo = serde_json::from_value(serde_json::json!({
        "executor_id": {"value": "e"},
        "command": {"value": "x", "environment": {"variables": [{"name": "A B", "value": "1"}]}}
    }))
    .unwrap();
    t.executor = Some(exec);
    let e = err(&t, &vars, &c);
    assert!(
        e.starts_with("executor.command.environment.variables[0].name: \"A B\""),
        "{e}"
    );
    // Executor settings in the app's env configure the executor, not the task.
    let mut t = task();
    let env = &mut t
        .command
        .as_mut()
        .unwrap()
        .environment
        .as_mut()
        .unwrap()
        .variables;
    env.push(var("BERTH_EXECUTOR_RUNTIME"));
    let p = Plan::from_task(&t, &vars, None, &c).unwrap();
    assert!(p.env.iter().any(|e| e == "APP=1"), "{:?}", p.env);
    assert!(
        !p.env.iter().any(|e| e.starts_with("BERTH_EXECUTOR_")),
        "{:?}",
        p.env
    );
    // The executor's own environment's names are checked too.
    let mut bad = BTreeMap::new();
    bad.insert("9LIVES".to_string(), "x".to_string());
    let e = err(&task(), &bad, &c);
    assert!(
        e.contains("executor's environment") && e.contains("9LIVES"),
        "{e}"
    );
    // NUL in a value: named by its field.
    let mut t = task();
    let env = &mut t
        .command
        .as_mut()
        .unwrap()
        .environment
        .as_mut()
        .unwrap()
        .variables;
    env[0].value = Some("a\0b".into());
    let e = err(&t, &vars, &c);
    assert!(
        e.starts_with("command.environment.variables[0].value"),
        "{e}"
    );
}

#[test]
fn label_values_are_shown_once_and_truncated() {
    let d = images();
    let c = cfg(d.path());
    let vars = BTreeMap::new();
    let mut t = task();
    t.labels.as_mut().unwrap().labels[0].value = Some("../images/bb".into());
    let e = err(&t, &vars, &c);
    assert_eq!(e.matches("../images/bb").count(), 1, "{e}");
    let huge = "x/".repeat(500_000);
    t.labels.as_mut().unwrap().labels[0].value = Some(huge.clone());
    let e = err(&t, &vars, &c);
    assert!(e.starts_with("labels.berth.image: "), "{}", &e[..200]);
    assert!(e.len() < 400, "{} bytes: {}", e.len(), &e[..400]);
    assert!(e.contains("(1000000 bytes)"), "{e}");
    let mut t = task();
    t.labels.as_mut().unwrap().labels.push(
        serde_json::from_value(serde_json::json!({"key": "berth.hostname", "value": huge}))
            .unwrap(),
    );
    let e = err(&t, &vars, &c);
    assert!(
        e.starts_with("labels.berth.hostname: ") && e.len() < 400,
        "{}",
        &e[..400.min(e.len())]
    );
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
    assert_eq!(
        p.args(),
        vec![
            INIT_PATH,
            "--socket",
            INIT_SOCKET,
            "--spec",
            super::super::appspec::CONTAINER_PATH
        ]
    );
    for e in [
        "APP=1",
        "MARATHON_APP_ID=/web",
        "BERTH_MEM_MB=64",
        "BERTH_PORTS=31000,31001",
        "BERTH_KILL_GRACE_MS=3000",
        "MESOS_TASK_ID=web.1",
    ] {
        assert!(p.env.iter().any(|x| x == e), "{e} in {:?}", p.env);
    }
    assert_eq!(p.hostname, "web");
}

#[test]
fn both_modes_run_init_in_supervisor_mode_with_its_socket() {
    let d = images();
    let mut p = Plan::from_task(&task(), &BTreeMap::new(), None, &cfg(d.path())).unwrap();
    p.mode = Mode::AppSpec;
    assert_eq!(p.args(), vec![INIT_PATH, "--socket", INIT_SOCKET]);
    p.mode = Mode::Command("echo hi; exit 3".into());
    let a = p.args();
    assert_eq!(a[1..3], ["--socket", INIT_SOCKET]);
    assert!(
        !a.iter().any(|x| x.contains("echo")),
        "the command is in the generated spec, not on init's command line: {a:?}"
    );
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
    // A missing berth-init fails the task naming the setting.
    let no_init = RunConfig {
        init: "/nonexistent/berth-init".into(),
        ..c.clone()
    };
    let e = Plan::from_task(&task(), &vars, None, &no_init)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("executor setting BERTH_EXECUTOR_INIT: /nonexistent/berth-init"),
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

#[test]
fn a_marathon_app_asks_for_home_with_a_label_out_of_its_disk() {
    let d = images();
    let mut t = with_scalar("disk", 1100.0);
    t.resources.retain(|r| r.name != "home");
    t.labels.as_mut().unwrap().labels.push(
        serde_json::from_value(serde_json::json!({"key": "berth.home", "value": "1024"})).unwrap(),
    );
    let p = Plan::from_task(&t, &BTreeMap::new(), None, &cfg(d.path())).unwrap();
    assert_eq!((p.home_mb, p.disk_mb), (1024.0, 76.0));
    assert!(
        p.env.contains(&"BERTH_HOME_MB=1024".to_string()),
        "{:?}",
        p.env
    );
    assert!(
        p.env.contains(&"BERTH_DISK_MB=76".to_string()),
        "{:?}",
        p.env
    );
    // With the `home` resource as well: refused, naming the label.
    t.resources.push(
        serde_json::from_value(serde_json::json!(
            {"name": "home", "type": "SCALAR", "scalar": {"value": 64}}))
        .unwrap(),
    );
    let e = err(&t, &BTreeMap::new(), &cfg(d.path()));
    assert!(e.starts_with("labels.berth.home: "), "{e}");
}
