//! The Marathon app examples in packaging/examples/ (installed with the package under
//! /usr/share/doc/berth/examples/), each as berth-executor receives it: the app JSON made
//! into one task's LAUNCH by the Marathon double (`marathon::app::launch`: the TaskInfo,
//! the executor's command line and environment), the TaskInfo checked against Apache
//! Mesos' protos as the agent double does, then validated by the executor's own path
//! (`ExecutorEnv`, `Plan::from_task`, `network::from_task`). Each test asserts what the
//! executor would run. The app spec file itself is checked by berth-init's parser in
//! init/tests/examples.rs.
//!
//! Needs the static berth-init (`cargo build --target x86_64-unknown-linux-musl -p
//! berth-init`): the plan checks the configured init, as at every launch.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_executor::image::ImageSource;
use berth_executor::mesos::env::ExecutorEnv;
use berth_executor::mesos::types::TaskInfo;
use berth_executor::task::config::net::NetConfig;
use berth_executor::task::config::volume::VolumeConfig;
use berth_executor::task::config::{HostLimits, RunConfig};
use berth_executor::task::network;
use berth_executor::task::plan::{Mode, Plan};
use berth_netcfg::tc::units::Rate;
use berth_tests::marathon::app::{launch, Launch};
use berth_tests::mesos::harness::static_init;
use berth_tests::mesos::schema;
use berth_tests::oci::OciLayout;
use serde_json::{json, Value};

const PORTS: [u16; 3] = [31000, 31001, 31002];

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/examples")
        .canonicalize()
        .expect("packaging/examples")
}

fn app(name: &str) -> Value {
    let path = examples().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The executor's words after its path, as `sh` splits Marathon's
/// `exec '<executor>' <cmd>`, joined as berth-executor joins them.
fn executor_cmd(cmd: Option<&str>) -> Option<String> {
    let cmd = cmd?;
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("set -- {cmd}; printf '%s\\0' \"$@\""))
        .output()
        .expect("sh");
    assert!(out.status.success(), "sh could not split {cmd:?}");
    let words: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    Some(words.join(" ")).filter(|c| !c.trim().is_empty())
}

struct Checked {
    plan: Plan,
    net: Option<network::Network>,
    /// Marathon's variables as the executor passes them on.
    vars: std::collections::BTreeMap<String, String>,
}

/// The app's first task through the executor's validation, with `images` as its images.
fn through_the_executor(app: &Value, images: &Path) -> Checked {
    let dir = images.parent().expect("lab dir");
    let Launch { task, executor } = launch(
        app,
        "app.3f6a",
        &PORTS,
        Path::new("/usr/libexec/berth/berth-executor"),
        &dir.join("sandbox"),
    )
    .expect("the Marathon double takes the example");
    if let Err(e) = schema::parse("mesos.v1.TaskInfo", &task) {
        panic!("{e}\n{task:#}");
    }
    let task: TaskInfo = serde_json::from_value(task).expect("the executor's TaskInfo");
    let env = ExecutorEnv::from_vars(executor.environment("127.0.0.1:5051", "agent-double-S0"))
        .expect("the executor's environment");
    let cfg = RunConfig {
        init: static_init(),
        images: images.to_path_buf(),
        image_cache: dir.join("cache"),
        host: HostLimits {
            cpus: 64.0,
            mem_mb: 256.0 * 1024.0,
        },
        net: Some(NetConfig {
            parent: "eth0".into(),
            mode: "bridge".into(),
        }),
        // What a node with /home volumes has (the image app asks for one).
        volume: VolumeConfig {
            backend: Some("loopfile".into()),
            loopfile_dir: dir.join("volumes"),
            ..VolumeConfig::default()
        },
        ..RunConfig::default()
    };
    let vars = env.task_vars().clone();
    let cmd = executor_cmd(executor.cmd.as_deref());
    let plan = Plan::from_task(&task, &vars, cmd.as_deref(), &cfg)
        .unwrap_or_else(|e| panic!("invalid task: {e}"));
    let net = network::from_task(&task, cfg.net.as_ref(), plan.bandwidth_mbit)
        .unwrap_or_else(|e| panic!("invalid task: {e}"));
    Checked { plan, net, vars }
}

fn has_env(plan: &Plan, kv: &str) -> bool {
    plan.env.iter().any(|e| e == kv)
}

#[test]
fn a_plain_command_app() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images");
    std::fs::create_dir_all(images.join("centos6-resin/bin")).expect("image dir");
    let c = through_the_executor(&app("command-app.json"), &images);
    let p = &c.plan;
    assert_eq!(
        p.mode,
        Mode::Command("exec /home/work/bin/server --port $PORT0 --mode $APP_MODE".into())
    );
    assert_eq!(p.image, ImageSource::Dir(images.join("centos6-resin")));
    assert_eq!(p.hostname, "weather-api");
    assert_eq!((p.cpus, p.mem_mb, p.disk_mb), (0.5, 512.0, 0.0));
    assert_eq!(p.ports, [31000]);
    assert!(has_env(p, "APP_MODE=prod"), "{:?}", p.env);
    assert!(has_env(p, "PORT0=31000"), "{:?}", p.env);
    assert!(has_env(p, "MARATHON_APP_ID=/weather/api"), "{:?}", p.env);
    assert!(has_env(p, "BERTH_KILL_GRACE_MS=20000"), "{:?}", p.env);
    assert_eq!(
        c.vars.get("PORT_HTTP"),
        None,
        "Marathon names no port variables here"
    );
    let h = p.health.as_ref().expect("the app's health check");
    assert_eq!(h.kind.as_deref(), Some("HTTP"));
    let http = h.http.as_ref().expect("http");
    assert_eq!((http.port, http.path.as_deref()), (31000, Some("/health")));
    assert_eq!(
        (
            h.grace_period_seconds,
            h.interval_seconds,
            h.consecutive_failures
        ),
        (Some(30.0), Some(10.0), Some(3))
    );
    // Networking is configured on this executor, without limits for this app.
    let net = c.net.expect("a macvlan eth0");
    assert_eq!((net.spec.egress, net.spec.ingress), (None, None));
}

#[test]
fn an_image_app_with_home_and_bandwidth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images");
    let mut layout = OciLayout::create(&images.join("shop-frontend")).expect("layout");
    let layer = layout
        .layer(&[berth_tests::oci::Entry::Dir("srv", 0o755)])
        .expect("layer");
    layout
        .add_image(
            "2.4",
            &[layer],
            json!({
                "Env": ["PATH=/usr/bin:/bin", "SHOP_ENV=image-default"],
                "WorkingDir": "/srv",
                "Entrypoint": ["/srv/frontend"],
                "Cmd": ["--listen", "8080"],
            }),
        )
        .expect("image");
    let c = through_the_executor(&app("image-app.json"), &images);
    let p = &c.plan;
    // No `cmd`: the image's Entrypoint + Cmd.
    assert_eq!(p.mode, Mode::Command("/srv/frontend --listen 8080".into()));
    assert!(matches!(p.image, ImageSource::Oci { .. }), "{:?}", p.image);
    // `berth.home` carves a 1024 MB /home out of the 3072 MB `disk`.
    assert_eq!(
        (p.cpus, p.mem_mb, p.home_mb, p.disk_mb),
        (1.0, 1024.0, 1024.0, 2048.0)
    );
    assert!(has_env(p, "BERTH_HOME_MB=1024"), "{:?}", p.env);
    assert!(
        has_env(p, "SHOP_ENV=staging"),
        "the app's env over the image's"
    );
    assert!(has_env(p, "BERTH_LOG=warn"), "{:?}", p.env);
    let h = p.health.as_ref().expect("the app's health check");
    assert_eq!(h.kind.as_deref(), Some("TCP"));
    assert_eq!(h.tcp.as_ref().map(|t| t.port), Some(31000));
    let net = c.net.expect("a macvlan eth0");
    assert_eq!(net.spec.egress, Some(Rate::from_bits(100_000_000)));
    assert_eq!(net.spec.ingress, Some(Rate::from_bits(200_000_000)));
    assert!(has_env(p, "BERTH_KILL_GRACE_MS=30000"), "{:?}", p.env);
}

#[test]
fn an_app_spec_app() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images");
    let etc = images.join("weather-backend/etc/berth");
    std::fs::create_dir_all(&etc).expect("image dir");
    std::fs::create_dir_all(images.join("weather-backend/bin")).expect("image dir");
    std::fs::copy(examples().join("spec-app.yaml"), etc.join("app.yaml")).expect("app spec");
    let c = through_the_executor(&app("spec-app.json"), &images);
    let p = &c.plan;
    assert_eq!(p.mode, Mode::AppSpec);
    assert_eq!(p.hostname, "weather-backend");
    assert_eq!(p.ports, [31000, 31001]);
    assert!(p.health.is_none(), "the spec's own checks: no Mesos check");
    for kv in [
        "WEATHER_REGION=north",
        "PORT0=31000",
        "PORT1=31001",
        "PORTS=31000,31001",
        "BERTH_KILL_GRACE_MS=40000",
    ] {
        assert!(has_env(p, kv), "{kv} in {:?}", p.env);
    }
    // Without the spec in the image, the same app has nothing to run.
    std::fs::remove_file(etc.join("app.yaml")).expect("rm");
    let Launch { task, executor } = launch(
        &app("spec-app.json"),
        "app.3f6b",
        &PORTS,
        Path::new("/usr/libexec/berth/berth-executor"),
        &dir.path().join("sandbox"),
    )
    .expect("launch");
    let task: TaskInfo = serde_json::from_value(task).expect("TaskInfo");
    let cfg = RunConfig {
        init: static_init(),
        images: images.clone(),
        image_cache: dir.path().join("cache"),
        ..RunConfig::default()
    };
    let env = ExecutorEnv::from_vars(executor.environment("127.0.0.1:5051", "a")).expect("env");
    let err = Plan::from_task(&task, env.task_vars(), None, &cfg).unwrap_err();
    assert!(err.to_string().contains("etc/berth/app.yaml"), "{err}");
}
