//! End to end with the agent double, the real executor, berth-init and a busybox image,
//! each scenario under runc and under crun (`runc::<scenario>`, `crun::<scenario>`):
//! LAUNCH -> STARTING -> RUNNING (healthy) -> KILL -> KILLING -> KILLED with nothing left
//! (the runtime's state, cgroups, mounts, processes); a task's own exit -> FINISHED /
//! FAILED with the code. Plus: a runtime setting that names no usable binary fails the
//! task naming the setting.

use std::time::Duration;

use berth_tests::mesos::harness::{RuntimeLab, TestRuntime};
use berth_tests::mesos::AgentDouble;
use serde_json::json;

const T: Duration = Duration::from_secs(30);

/// One `#[test]` per scenario and runtime, sharing the scenario's function.
macro_rules! under_each_runtime {
    ($($scenario:ident),* $(,)?) => {
        mod runc {
            $(#[test] fn $scenario() { super::$scenario(super::TestRuntime::Runc) })*
        }
        mod crun {
            $(#[test] fn $scenario() { super::$scenario(super::TestRuntime::Crun) })*
        }
    };
}

under_each_runtime!(
    launch_run_health_kill_leaves_nothing,
    sigterm_ignoring_task_is_killed_at_the_grace_end,
    the_task_exit_code_decides_finished_or_failed,
    shutdown_kills_and_exits_within_the_grace_period,
    kill_right_after_launch_ends_killed_and_clean,
    kill_right_after_running_stops_the_task_gracefully,
    the_runtime_module_refuses_a_signal_its_init_would_discard,
);

fn launch_run_health_kill_leaves_nothing(rt: TestRuntime) {
    let lab = RuntimeLab::new("kill", rt);
    let tid = lab.task_id("app");
    let mut spec = lab.spec(&tid, Some("echo started; exec sleep 1000"));
    // Unique per test: the runc and crun variants run at the same time.
    let token = format!("secret-token-{}", lab.name);
    spec.token = Some(token.clone());
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.require_token(&token);
    d.state().framework_capabilities = vec!["TASK_KILLING_STATE".into()];
    let mut task = lab.task(&tid);
    task["health_check"] = json!({"type": "COMMAND", "command": {"value": "test -d /run/berth"},
        "delay_seconds": 0.0, "interval_seconds": 1.0, "grace_period_seconds": 5.0, "timeout_seconds": 5.0});
    task["kill_policy"] = json!({"grace_period": {"nanoseconds": 5_000_000_000i64}});
    d.launch_on_subscribe(task);
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec), "log: {}", exec.log());
    d.wait_state(&tid, "TASK_RUNNING", T);
    // The first health result: TASK_RUNNING with healthy:true.
    let healthy = d.wait(T, |st| {
        st.updates.iter().any(|u| {
            u["healthy"] == true && u["reason"] == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
        })
    });
    assert!(
        healthy,
        "no healthy update: {:#?}\n{}",
        d.state().updates,
        exec.log()
    );
    // The runtime applied the task's memory limit (64 MB) in the lab's cgroup parent.
    let limits: Vec<String> = lab
        .cgroups()
        .iter()
        .flat_map(|g| ["memory.limit_in_bytes", "memory.max"].map(|f| g.join(f)))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|v| v.trim().to_string())
        .collect();
    assert!(limits.iter().any(|l| l == "67108864"), "{limits:?}");
    // The token never reaches the task.
    let env = lab
        .runtime_cmd()
        .args(["exec", &lab.containers()[0], "/bin/env"])
        .output()
        .unwrap();
    let env = String::from_utf8_lossy(&env.stdout);
    assert!(env.contains(&format!("MESOS_TASK_ID={tid}")), "{env}");
    assert!(
        env.contains("MARATHON_APP_ID=/e2e/app")
            && env.contains("PORT0=31000")
            && env.contains("BERTH_MEM_MB=64"),
        "{env}"
    );
    assert!(
        !env.contains(&token) && !env.contains("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"),
        "{env}"
    );
    // Nor any process the executor started (the runtime, its wrapper): only the executor has it.
    let holders: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|b| String::from_utf8_lossy(&b).contains(&token))
                .unwrap_or(false)
        })
        .collect();
    assert_eq!(holders, vec![exec.pid()], "processes holding the token");

    // KILL without a policy: the task's 5 s grace; sleep ignores nothing, SIGTERM ends it.
    d.kill(&tid, None);
    d.wait_state(&tid, "TASK_KILLED", T);
    let states = d.state().states(&tid);
    assert_eq!(states.first().map(String::as_str), Some("TASK_STARTING"));
    let pos = |s: &str| {
        states
            .iter()
            .position(|x| x == s)
            .unwrap_or_else(|| panic!("{s} missing in {states:?}"))
    };
    assert!(pos("TASK_STARTING") < pos("TASK_RUNNING"));
    assert!(pos("TASK_RUNNING") < pos("TASK_KILLING"));
    assert!(pos("TASK_KILLING") < pos("TASK_KILLED"));
    // It exits by itself once TASK_KILLED is acknowledged.
    let status = exec
        .wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(status.success(), "{status:?}: {}", exec.log());
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    assert!(std::fs::read_to_string(spec.sandbox.join("stdout"))
        .unwrap_or_default()
        .contains("started"));
    lab.assert_clean();
}

fn sigterm_ignoring_task_is_killed_at_the_grace_end(rt: TestRuntime) {
    let lab = RuntimeLab::new("grace", rt);
    let tid = lab.task_id("stubborn");
    let spec = lab.spec(
        &tid,
        Some("trap '' TERM; echo > /mnt/mesos/sandbox/ready; while true; do sleep 0.1; done"),
    );
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    // The shell must have set its trap before the KILL.
    let ready = spec.sandbox.join("ready");
    assert!(d.wait(T, |_| ready.exists()), "the task never got ready");
    // Without TASK_KILLING_STATE, no TASK_KILLING. Marathon repeats KILL; a repeated KILL
    // with a longer grace must not extend the first one (1 s).
    let t0 = std::time::Instant::now();
    d.kill(&tid, Some(Duration::from_secs(1)));
    std::thread::sleep(Duration::from_millis(200));
    d.kill(&tid, Some(Duration::from_secs(60)));
    d.wait_state(&tid, "TASK_KILLED", T);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the repeated KILL extended the grace: {took:?}"
    );
    assert!(
        took >= Duration::from_millis(900),
        "SIGKILL came before the grace end: {took:?}"
    );
    assert!(!d.state().states(&tid).iter().any(|s| s == "TASK_KILLING"));
    exec.wait_exit(T).expect("executor exits");
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}

fn the_task_exit_code_decides_finished_or_failed(rt: TestRuntime) {
    for (cmd, state, text) in [
        ("exit 0", "TASK_FINISHED", "status 0"),
        ("echo bad >&2; exit 3", "TASK_FAILED", "status 3"),
    ] {
        let lab = RuntimeLab::new("exit", rt);
        let tid = lab.task_id("once");
        let spec = lab.spec(&tid, Some(cmd));
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        d.launch_on_subscribe(lab.task(&tid));
        let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
        d.wait_state(&tid, state, T);
        let st = d.state();
        let last = st.updates.last().unwrap().clone();
        drop(st);
        assert!(
            last["message"].as_str().unwrap_or("").contains(text),
            "{last}"
        );
        exec.wait_exit(T)
            .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
        assert!(d.violations().is_empty(), "{:?}", d.violations());
        lab.assert_clean();
    }
}

fn shutdown_kills_and_exits_within_the_grace_period(rt: TestRuntime) {
    let lab = RuntimeLab::new("shutdown", rt);
    let tid = lab.task_id("svc");
    let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
    spec.shutdown_grace = "3secs".into();
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    let t0 = std::time::Instant::now();
    d.shutdown();
    let status = exec
        .wait_exit(Duration::from_secs(10))
        .expect("executor exits after SHUTDOWN");
    // MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD is a hard limit: the double (as the agent)
    // records a violation and kills an executor still there at its end.
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    assert!(status.success(), "{status:?}: {}", exec.log());
    assert!(d.state().states(&tid).iter().any(|s| s == "TASK_KILLED"));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}

fn kill_right_after_launch_ends_killed_and_clean(rt: TestRuntime) {
    let lab = RuntimeLab::new("earlykill", rt);
    let tid = lab.task_id("app");
    let spec = lab.spec(&tid, Some("exec sleep 1000"));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec));
    assert!(d.wait(T, |st| st.stream.is_some()));
    d.launch(lab.task(&tid));
    d.kill(&tid, Some(Duration::from_secs(2)));
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}

/// A KILL the moment TASK_RUNNING arrives: the container's init may not have set up its
/// signal handling yet, and a TERM it would discard must be retried, not lost until the
/// grace period's SIGKILL.
fn kill_right_after_running_stops_the_task_gracefully(rt: TestRuntime) {
    let lab = RuntimeLab::new("runkill", rt);
    for i in 0..3 {
        let tid = lab.task_id(&format!("app{i}"));
        let spec = lab.spec(&tid, Some("exec sleep 1000"));
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        d.launch_on_subscribe(lab.task(&tid));
        let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
        d.wait_state(&tid, "TASK_RUNNING", T);
        let t0 = std::time::Instant::now();
        d.kill(&tid, Some(Duration::from_secs(20)));
        d.wait_state(&tid, "TASK_KILLED", T);
        let took = t0.elapsed();
        let last = d.state().updates.last().unwrap().clone();
        assert!(
            took < Duration::from_secs(10),
            "TERM was lost, the task died at the grace end: {took:?} {last}"
        );
        let msg = last["message"].as_str().unwrap_or_default();
        assert!(!msg.contains("signal 9"), "{last}");
        exec.wait_exit(T)
            .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
        assert!(d.violations().is_empty(), "{:?}", d.violations());
        lab.assert_clean();
    }
}

/// berth's runtime module against the real runtime, with a PID 1 that never handles TERM
/// (busybox `sleep`): TERM is refused as one the kernel would discard, KILL works, the
/// exit-status wrapper records 137, delete leaves nothing, and a deleted container is
/// unknown (no error) whatever the runtime says about it.
fn the_runtime_module_refuses_a_signal_its_init_would_discard(rt: TestRuntime) {
    use berth_executor::task::runc::{Kind, RuncError, Runtime};
    let lab = RuntimeLab::new("module", rt);
    let runtime = Runtime::new(std::path::Path::new(rt.binary()), &lab.runc_root);
    let kind = match rt {
        TestRuntime::Runc => Kind::Runc,
        TestRuntime::Crun => Kind::Crun,
    };
    assert_eq!(runtime.kind, kind);
    let bundle = lab.dir.path().join("module-bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let st = std::process::Command::new("runc")
        .arg("spec")
        .current_dir(&bundle)
        .status()
        .unwrap();
    assert!(st.success());
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let id = format!("module-{}", lab.name);
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["/bin/sleep", "1000"]);
    config["root"] = json!({"path": lab.images.join("busybox"), "readonly": true});
    config["linux"]["cgroupsPath"] = json!(format!("/{}/{id}", lab.cgroup_parent));
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let (out, exit) = (
        lab.dir.path().join("module-out"),
        lab.dir.path().join("module-exit"),
    );
    let mut child = runtime.run(&id, &bundle, &out, &out, &exit).unwrap();
    let running = |r: &Runtime| matches!(r.state(&id), Ok(Some(s)) if s.status == "running");
    let t0 = std::time::Instant::now();
    while !running(&runtime) && t0.elapsed() < T {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        running(&runtime),
        "never running: {}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    let e = runtime.kill(&id, "TERM").unwrap_err();
    assert!(matches!(e, RuncError::NotHandled { .. }), "{e}");
    assert!(runtime.kill(&id, "NOPE").is_err());
    runtime.kill(&id, "KILL").unwrap();
    child.wait().unwrap();
    assert_eq!(std::fs::read_to_string(&exit).unwrap().trim(), "137");
    runtime.delete(&id).unwrap();
    assert!(runtime.state(&id).unwrap().is_none());
    runtime.delete(&id).unwrap();
    assert!(runtime.kill(&id, "TERM").is_err());
    lab.assert_clean();
}

#[test]
fn a_runtime_setting_naming_no_usable_binary_fails_the_task_naming_it() {
    let lab = RuntimeLab::new("badruntime", TestRuntime::Crun);
    let not_exec = lab.dir.path().join("crun-not-executable");
    std::fs::write(&not_exec, "#!/bin/sh\necho 'crun version 1'\n").unwrap();
    let missing = lab.dir.path().join("no-such-crun");
    for (i, (binary, why)) in [
        (&missing, "is not found"),
        (&not_exec, "is not an executable file"),
    ]
    .into_iter()
    .enumerate()
    {
        let tid = lab.task_id(&format!("rt{i}"));
        let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
        spec.env.push((
            "BERTH_EXECUTOR_RUNTIME".into(),
            binary.display().to_string(),
        ));
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        d.launch_on_subscribe(lab.task(&tid));
        let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
        d.wait_state(&tid, "TASK_FAILED", T);
        let last = d.state().updates.last().unwrap().clone();
        let msg = last["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("BERTH_EXECUTOR_RUNTIME") && msg.contains(&*binary.to_string_lossy()),
            "{last}"
        );
        assert!(msg.contains(why), "{last}");
        assert_eq!(last["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{last}");
        exec.wait_exit(T)
            .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
        assert!(d.violations().is_empty(), "{:?}", d.violations());
        lab.assert_clean();
    }
}
