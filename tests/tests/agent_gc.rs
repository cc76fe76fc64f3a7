//! `berth-agent gc` against real leftovers (root, runc, the lab, the Mesos agent double):
//!
//! - the executor SIGKILLed right after each preparation step (`BERTH_EXECUTOR_CRASH_STEP`,
//!   the steps from the executor's own `STEP_ORDER`, a task needing every one): `--dry-run`
//!   lists each kind of leftover that step leaves and removes nothing; `gc` removes it all
//!   (runc container and wrapper, cgroup, overlay, netns with its macvlan, /home and scratch
//!   volumes with their loop devices, run dir, state dir, lock file);
//! - what no state dir claims (a container whose state dir was lost, a netns pin, volumes, a
//!   lock file) is removed by `serve`'s periodic GC, and counted in its metrics, while a
//!   live container's parts (its task lock held) stay;
//! - GC running in a loop while 20 tasks launch and stop removes nothing: every task
//!   reaches TASK_RUNNING and TASK_KILLED cleanly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_executor::task::runner::STEP_ORDER;
use berth_lvm::{Backend, Bytes, CreateRequest, Filesystem, Owner, VolumeKind, VolumeName};
use berth_netcfg::names::NetnsName;
use berth_tests::agent::AgentServe;
use berth_tests::lab;
use berth_tests::mesos::harness::{binary, start_in, Lab};
use berth_tests::mesos::AgentDouble;

const T: Duration = Duration::from_secs(30);

/// The `[gc]` and `[resources.home]` sections for `lab`.
fn gc_sections(lab: &Lab, netns_dir: &Path, sweep: bool) -> String {
    format!(
        "[gc]\ninterval_secs = 1\ngrace_secs = 0\nruntime_root = \"{}\"\nrun_dir = \"{}\"\n\
         netns_dir = \"{}\"\nsweep_unowned = {sweep}\n[resources.home]\nloopfile_dir = \"{}\"\n",
        lab.runc_root.display(),
        lab.run.display(),
        netns_dir.display(),
        lab.volumes_dir().display()
    )
}

/// A config file for `berth-agent gc` on `lab`.
fn config(lab: &Lab, netns_dir: &Path, sweep: bool) -> PathBuf {
    let p = lab.dir.path().join("agent-gc.toml");
    let text = format!(
        "[serve]\nstate_dir = \"{}\"\n[metrics]\nlisten = \"\"\n[falcon]\nurl = \"\"\n{}",
        lab.state.display(),
        gc_sections(lab, netns_dir, sweep)
    );
    std::fs::write(&p, text).expect("write the config");
    p
}

/// `berth-agent gc [--dry-run]`: its exit code and output.
fn gc(cfg: &Path, dry: bool) -> (i32, String) {
    let mut c = Command::new(binary("berth-agent"));
    c.args(["gc", "--config"]).arg(cfg);
    if dry {
        c.arg("--dry-run");
    }
    let out = c.output().expect("berth-agent gc");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// Deletes a netns pin on drop, in case a failed run left it.
struct NetnsGuard(PathBuf);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Detaches the lab's loop devices (and its mounts, by the lab's Drop) if a test failed.
struct LoopGuard<'a>(&'a Lab);

impl Drop for LoopGuard<'_> {
    fn drop(&mut self) {
        self.0.tear_down_leftovers();
        self.0.detach_loop_devices();
    }
}

fn links(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show"])
        .output()
        .expect("ip link");
    let mut l: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    l.sort();
    l
}

/// The kinds of leftovers the executor's steps up to and including `step` make (with a
/// task that needs every step), as `gc` names them.
fn expected(step: &str) -> Vec<&'static str> {
    let at = STEP_ORDER.iter().position(|s| *s == step).expect("a step");
    let reached = |s: &str| {
        STEP_ORDER
            .iter()
            .position(|x| *x == s)
            .is_some_and(|i| i <= at)
    };
    let mut k = vec!["statedir", "volume berth-root-"];
    for (s, kind) in [
        ("volume", "volume berth-home-"),
        ("rundir", "rundir "),
        ("rootfs", "mount "),
        ("network", "netns "),
        ("container", "container "),
    ] {
        if reached(s) {
            k.push(kind);
        }
    }
    k
}

#[test]
fn kill_9_at_every_step_leaves_only_what_gc_removes() {
    lab::require_root();
    let net = lab::Lab::new();
    let lab = Lab::new("gc-kill9");
    let _guard = LoopGuard(&lab);
    let cfg = config(&lab, Path::new("/run/netns"), false);
    for step in STEP_ORDER {
        let tid = lab.task_id(step);
        let pin = Path::new("/run/netns").join(NetnsName::for_task(&tid).expect("netns").as_str());
        let _ns = NetnsGuard(pin.clone());
        let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
        spec.env.extend(lab.volume_env(None));
        spec.env
            .push(("BERTH_EXECUTOR_NET_PARENT".into(), net.parent.clone()));
        spec.env
            .push(("BERTH_EXECUTOR_CRASH_STEP".into(), step.into()));
        let mut task = lab.task_with_home(&tid, 16.0);
        task["resources"]
            .as_array_mut()
            .expect("resources")
            .push(serde_json::json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 32.0}}));
        let (_d, mut exec) = start_in(&net.host, spec, task);
        let st = exec
            .wait_exit(T)
            .unwrap_or_else(|| panic!("{step}: the executor did not die: {}", exec.log()));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(9), "{step}: {st:?}: {}", exec.log());
        // What it left: each kind listed by the dry run, nothing removed by it.
        let (code, dry) = gc(&cfg, true);
        assert_eq!(code, 0, "{step}: {dry}");
        for kind in expected(step) {
            assert!(
                dry.contains(&format!("would remove {kind}")),
                "{step}: no {kind:?} in:\n{dry}"
            );
        }
        let state = lab.state.join(format!("berth-{tid}"));
        assert!(state.is_dir(), "{step}: the dry run removed the state dir");
        assert!(
            !lab.volume_files().is_empty(),
            "{step}: the dry run removed volumes"
        );
        assert_eq!(
            pin.exists(),
            step == "network" || step == "bundle" || step == "container"
        );
        // The real run removes it all.
        let (code, out) = gc(&cfg, false);
        assert_eq!(code, 0, "{step}: {out}");
        for kind in expected(step) {
            assert!(
                out.contains(&format!("removed {kind}")),
                "{step}: no {kind:?} in:\n{out}"
            );
        }
        assert!(!out.contains("FAILED"), "{step}: {out}");
        assert!(!pin.exists(), "{step}: netns left");
        assert_eq!(links(net.host.name()), ["lo", "nic0"], "{step}: links left");
        lab.assert_no_volumes();
        lab.assert_clean();
        assert!(
            !lab.state.join(format!("berth-{tid}.lock")).exists(),
            "{step}: lock file left"
        );
        // A second run finds nothing.
        let (code, again) = gc(&cfg, false);
        assert!(
            code == 0 && again.starts_with("removed 0 item(s)"),
            "{step}: {again}"
        );
    }
}

/// A netns pinned at `path` (a bind mount of a new namespace, by `unshare`).
fn pin_netns(path: &Path) -> NetnsGuard {
    std::fs::write(path, "").expect("pin file");
    let st = Command::new("unshare")
        .arg(format!("--net={}", path.display()))
        .arg("true")
        .status()
        .expect("unshare");
    assert!(st.success());
    NetnsGuard(path.to_path_buf())
}

fn volume(b: &dyn Backend, kind: VolumeKind, task: &str) -> VolumeName {
    let name = VolumeName::for_task(kind, task).expect("name");
    b.create(&CreateRequest {
        name: name.clone(),
        size: Bytes::mib(8),
        fs: Filesystem::Ext4,
        owner: Owner::new(task).expect("owner"),
    })
    .expect("create");
    name
}

#[test]
fn serve_collects_what_nobody_claims_and_leaves_a_live_container() {
    lab::require_root();
    let lab = Lab::new("gc-unowned");
    let _guard = LoopGuard(&lab);
    let netns = lab.dir.path().join("netns");
    std::fs::create_dir_all(&netns).unwrap();
    // A container whose state dir was lost: the executor died at the container step, then
    // its state dir went (the overlay lazily unmounted first).
    let lost = lab.task_id("lost");
    let mut spec = lab.spec(&lost, Some("exec sleep 1000"));
    spec.env
        .push(("BERTH_EXECUTOR_CRASH_STEP".into(), "container".into()));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&lost));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    exec.wait_exit(T).expect("the executor died");
    let end = Instant::now() + T;
    while lab.runc_containers().is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(lab.runc_containers(), [format!("berth-{lost}")]);
    for m in lab.mounts() {
        let _ = Command::new("umount").args(["-l", &m]).status();
    }
    std::fs::remove_dir_all(lab.state.join(format!("berth-{lost}"))).unwrap();
    std::fs::remove_file(lab.state.join(format!("berth-{lost}.lock"))).unwrap();
    // Manufactured leftovers: a netns pin, a complete and an incomplete-free volume of tasks
    // that are gone, a stale lock file.
    let _orphan_ns = pin_netns(&netns.join(format!("berth-orphan-{}", std::process::id())));
    let b = berth_lvm::loopfile::LoopfileBackend::new(
        &lab.volumes_dir(),
        Box::new(berth_lvm::exec::SystemRunner::default()),
    )
    .expect("backend");
    let gone_vol = volume(&b, VolumeKind::Home, "gone.task");
    std::fs::write(lab.state.join("berth-stale.lock"), "stale\n").unwrap();
    // A live container: its lock held (by this test), its netns, volume and run dir claimed.
    let live = "live.task";
    let live_dir = lab.state.join("berth-live.task");
    std::fs::create_dir_all(&live_dir).unwrap();
    let lock_path = lab.state.join("berth-live.task.lock");
    let held = berth_lvm::lock::FileLock::lock(&lock_path).unwrap();
    std::fs::write(&lock_path, format!("{live}\n")).unwrap();
    let live_ns = netns.join(NetnsName::for_task(live).unwrap().as_str());
    let live_ns_pin = pin_netns(&live_ns);
    let live_vol = volume(&b, VolumeKind::Home, live);
    let live_run = lab.run.join("berth-live.task");
    std::fs::create_dir_all(&live_run).unwrap();

    let agent = AgentServe::start_with(
        lab.dir.path(),
        &lab.state,
        "",
        "",
        &gc_sections(&lab, &netns, true),
    );
    let metric = |text: &str, kind: &str| -> f64 {
        let l = format!("berth_agent_gc_removed_total{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|x| x.strip_prefix(&l)?.parse().ok())
            .unwrap_or(0.0)
    };
    let end = Instant::now() + T;
    let mut text = String::new();
    while Instant::now() < end {
        text = agent.scrape();
        if ["container", "rundir", "netns", "volume", "lockfile"]
            .iter()
            .all(|k| metric(&text, k) >= 1.0)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for k in ["container", "rundir", "netns", "volume", "lockfile"] {
        assert!(metric(&text, k) >= 1.0, "no {k} removed:\n{text}");
    }
    assert!(text.contains("berth_agent_gc_live_containers 1"), "{text}");
    assert!(text.contains("berth_agent_gc_failures_total 0"), "{text}");
    assert!(lab.runc_containers().is_empty());
    assert!(!lab.run.join(format!("berth-{lost}")).exists());
    assert!(b.get(&gone_vol).unwrap().is_none());
    assert!(!lab.state.join("berth-stale.lock").exists());
    assert!(berth_netcfg::netns::list_berths(&netns)
        .unwrap()
        .iter()
        .all(|n| netns.join(n.as_str()) == live_ns));
    // The live one: untouched.
    assert!(live_dir.is_dir() && live_run.is_dir() && live_ns.exists());
    assert!(b.get(&live_vol).unwrap().is_some());
    drop(agent);
    drop(live_ns_pin);
    drop(held);
    std::fs::remove_dir_all(&live_dir).unwrap();
    std::fs::remove_dir_all(&live_run).unwrap();
    std::fs::remove_file(&lock_path).unwrap();
    b.remove(&live_vol).unwrap();
    lab.assert_no_volumes();
    lab.assert_clean();
}

#[test]
fn gc_in_a_loop_never_touches_the_tasks_launching_and_stopping() {
    lab::require_root();
    let lab = Lab::new("gc-loop");
    let _guard = LoopGuard(&lab);
    let netns = lab.dir.path().join("netns");
    std::fs::create_dir_all(&netns).unwrap();
    let cfg = config(&lab, &netns, true);
    let stop = Arc::new(AtomicBool::new(false));
    let looper = {
        let (stop, cfg) = (stop.clone(), cfg.clone());
        std::thread::spawn(move || {
            let mut runs = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                runs.push(gc(&cfg, false));
            }
            runs
        })
    };
    let mut tasks = Vec::new();
    for i in 0..20 {
        let tid = lab.task_id(&format!("t{i}"));
        let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
        let task = if i % 4 == 0 {
            spec.env.extend(lab.volume_env(None));
            lab.task_with_home(&tid, 16.0)
        } else {
            lab.task(&tid)
        };
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        d.launch_on_subscribe(task);
        let exec = d.spawn_executor(&spec, Duration::from_secs(10));
        tasks.push((tid, d, exec));
        if tasks.len() >= 4 {
            // Stop the oldest while the others launch.
            let (tid, d, mut exec) = tasks.remove(0);
            stop_task(&tid, &d, &mut exec);
        }
    }
    for (tid, d, mut exec) in tasks {
        stop_task(&tid, &d, &mut exec);
    }
    stop.store(true, Ordering::SeqCst);
    let runs = looper.join().expect("the gc loop");
    assert!(runs.len() >= 5, "only {} gc runs", runs.len());
    for (code, out) in &runs {
        assert!(
            *code == 0 && out.starts_with("removed 0 item(s)"),
            "gc removed something: {out}"
        );
    }
    eprintln!("{} gc runs while 20 tasks launched and stopped", runs.len());
    lab.assert_no_volumes();
    lab.assert_clean();
}

fn stop_task(tid: &str, d: &AgentDouble, exec: &mut berth_tests::mesos::ExecutorProcess) {
    d.wait_state(tid, "TASK_RUNNING", T);
    d.kill(tid, None);
    d.wait_state(tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("{tid}: executor did not exit: {}", exec.log()));
    let states = d.state().states(tid);
    assert!(
        states.first().map(String::as_str) == Some("TASK_STARTING")
            && states.last().map(String::as_str) == Some("TASK_KILLED")
            && !states.iter().any(|s| s == "TASK_FAILED"),
        "{tid}: {states:?}"
    );
    assert!(d.violations().is_empty(), "{tid}: {:?}", d.violations());
}
