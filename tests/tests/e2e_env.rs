//! What of the executor's environment reaches the task: Marathon's variables and the app's
//! own `env` (carried by the TaskInfo), nothing else of the agent's environment (its
//! secrets, proxies, agent sockets). And the executor's own settings: `berth-executor
//! config` lists and checks them, the executor refuses to start with a bad one. Root:
//! runc, berth-init, the double.

use std::process::Command;
use std::time::Duration;

use berth_tests::mesos::harness::Lab;
use berth_tests::mesos::AgentDouble;
use serde_json::json;

const T: Duration = Duration::from_secs(30);

/// `NAME=value` lines of a NUL- or newline-separated environment dump.
fn names(dump: &str) -> Vec<String> {
    dump.split(['\0', '\n'])
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
        .collect()
}

#[test]
fn only_marathons_variables_and_the_apps_env_reach_the_task() {
    let lab = Lab::new("env");
    let tid = lab.task_id("app");
    let secret = format!("s3cret-{}-d1st1nct1ve", std::process::id());
    let mut spec = lab.spec(
        &tid,
        Some("env > /mnt/mesos/sandbox/task-env; cat /proc/1/environ > /mnt/mesos/sandbox/init-environ; echo ready; exec sleep 1000"),
    );
    // The agent's own environment, inherited by every executor it starts.
    for (k, v) in [
        ("DB_PASSWORD", secret.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("http_proxy", "http://proxy.internal:3128"),
        ("HTTPS_PROXY", "http://proxy.internal:3128"),
        ("SSH_AUTH_SOCK", "/tmp/ssh-agent.sock"),
    ] {
        spec.env.push((k.into(), v.into()));
    }
    spec.labels.push(("team".into(), "web".into()));
    // The app's `env`: Marathon puts it in executor.command.environment, and the agent
    // into the executor's environment.
    spec.env.push(("APP_MODE".into(), "from-marathon".into()));
    let mut task = lab.task(&tid);
    task["executor"]["command"]["environment"] =
        json!({"variables": [{"name": "APP_MODE", "value": "from-marathon"}]});
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(task);
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec), "{}", exec.log());
    d.wait_state(&tid, "TASK_RUNNING", T);
    // The needle is right: the executor itself has the agent's variables.
    let own = std::fs::read(format!("/proc/{}/environ", exec.pid())).unwrap();
    let own = String::from_utf8_lossy(&own).to_string();
    assert!(
        own.contains(&secret) && own.contains("http_proxy="),
        "{own}"
    );

    let wait_file = |name: &str| {
        let p = spec.sandbox.join(name);
        let t0 = std::time::Instant::now();
        while !p.is_file() || std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0) == 0 {
            assert!(t0.elapsed() < T, "{name} never written: {}", exec.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::read_to_string(&p).unwrap()
    };
    let command_env = wait_file("task-env");
    let init_env = wait_file("init-environ");
    for (what, dump) in [("the command", &command_env), ("/proc/1", &init_env)] {
        let got = names(dump);
        for absent in [
            "DB_PASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "http_proxy",
            "HTTPS_PROXY",
            "SSH_AUTH_SOCK",
            "MESOS_FRAMEWORK_ID",
            "MESOS_AGENT_ENDPOINT",
            "MESOS_SLAVE_PID",
            "BERTH_EXECUTOR_STATE_DIR",
            "RUST_LOG",
        ] {
            assert!(
                !got.iter().any(|k| k == absent),
                "{what} has {absent}: {dump}"
            );
        }
        assert!(!dump.contains(&secret), "{what} has the secret: {dump}");
        assert!(!dump.contains("proxy.internal"), "{what}: {dump}");
        for present in [
            "MESOS_TASK_ID",
            "MARATHON_APP_ID",
            "MARATHON_APP_VERSION",
            "MARATHON_APP_RESOURCE_CPUS",
            "MARATHON_APP_LABEL_TEAM",
            "PORT",
            "PORT0",
            "PORTS",
            "HOST",
            "APP_MODE",
            "BERTH_TASK_ID",
        ] {
            assert!(
                got.iter().any(|k| k == present),
                "{what} lacks {present}: {dump}"
            );
        }
    }
    assert!(
        command_env.contains(&format!("MESOS_TASK_ID={tid}\n")),
        "{command_env}"
    );
    assert!(command_env.contains("APP_MODE=from-marathon\n"));
    assert!(command_env.contains("MARATHON_APP_LABEL_TEAM=web\n"));
    d.kill(&tid, None);
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}

#[test]
fn the_executor_refuses_to_start_with_a_bad_setting() {
    let lab = Lab::new("badsetting");
    for (i, (var, value, needle)) in [
        (
            "BERTH_EXECUTOR_NET_MODE",
            "sideways",
            "bridge, private, vepa, passthru",
        ),
        ("BERTH_EXECUTOR_VOLUME_BACKEND", "zfs", "loopfile or lvm"),
    ]
    .into_iter()
    .enumerate()
    {
        let tid = lab.task_id(&format!("bad{i}"));
        let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
        spec.env.push((var.into(), value.into()));
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        d.launch_on_subscribe(lab.task(&tid));
        let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
        let status = exec
            .wait_exit(T)
            .unwrap_or_else(|| panic!("{var}: the executor kept running: {}", exec.log()));
        assert_eq!(status.code(), Some(2), "{var}: {}", exec.log());
        let log = exec.log();
        assert!(log.contains(var) && log.contains(needle), "{var}: {log}");
        // It never subscribed: no task was started.
        assert!(d.state().states(&tid).is_empty(), "{var}");
    }
    assert!(lab.runc_containers().is_empty());
    lab.assert_clean();
}

#[test]
fn config_lists_every_setting_and_names_each_bad_one() {
    let lab = Lab::new("config");
    let run = |env: &[(&str, &str)]| {
        let mut c = Command::new(&lab.executor);
        c.arg("config")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let init = lab.init.display().to_string();
    let out = run(&[("BERTH_EXECUTOR_INIT", &init)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in stdout.lines() {
        assert!(line.starts_with("BERTH_EXECUTOR_"), "{line}");
        assert!(
            line.contains("  (default)   # ")
                || line.contains("  (from env)  # ")
                || line.contains("  (unset)     # "),
            "{line}"
        );
    }
    assert!(stdout.contains("BERTH_EXECUTOR_RUNTIME=runc"), "{stdout}");
    assert!(stdout.contains(&format!("BERTH_EXECUTOR_INIT={init}")));
    assert!(!stdout.contains("FAIL_STEP") && !stdout.contains("CRASH_AT"));
    assert!(!stdout.contains("RunConfig"), "no Debug dump: {stdout}");

    let out = run(&[
        ("BERTH_EXECUTOR_INIT", &init),
        ("BERTH_EXECUTOR_NET_PARENT", "eth1"),
        ("BERTH_EXECUTOR_NET_MODE", "sideways"),
        ("BERTH_EXECUTOR_CGROUP_PARENT", "../escape"),
        ("BERTH_EXECUTOR_RUNTIME", "/nonexistent/runc"),
        ("BERTH_EXECUTOR_FAIL_STEP", "bundle"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    for var in [
        "BERTH_EXECUTOR_NET_MODE",
        "BERTH_EXECUTOR_CGROUP_PARENT",
        "BERTH_EXECUTOR_RUNTIME",
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("bad setting {var}:"))),
            "{var}: {stderr}"
        );
    }
    let hook = stdout.lines().find(|l| l.contains("FAIL_STEP")).unwrap();
    assert!(
        hook.contains("=bundle") && hook.contains("TEST HOOK"),
        "{hook}"
    );
}

#[test]
fn a_missing_init_fails_each_task_naming_the_setting() {
    let lab = Lab::new("noinit");
    let tid = lab.task_id("noinit");
    let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
    let missing = lab.dir.path().join("no-such-berth-init");
    spec.env
        .push(("BERTH_EXECUTOR_INIT".into(), missing.display().to_string()));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec), "{}", exec.log());
    d.wait_state(&tid, "TASK_FAILED", T);
    let last = d.state().updates.last().unwrap().clone();
    let msg = last["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("BERTH_EXECUTOR_INIT") && msg.contains(&*missing.to_string_lossy()),
        "{last}"
    );
    assert_eq!(last["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{last}");
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}
