//! The task's `disk` enforced end to end, as root: the executor's `scratch` step with the
//! loopfile backend (sparse file + real loop device + ext4), real runc and berth-init. A task
//! with `disk` 64 has its writable layer (the overlay's upper and work dirs) on its own
//! 64 MiB volume: 10 MB written to /tmp fit, 100 MB get ENOSPC; after KILL no mount, loop
//! device, volume file or lock file is left; failures injected at `scratch` or a later step
//! leave nothing; an executor SIGKILLed mid-task is replaced by one that re-attaches with the
//! volume still in use and removes it at the end, and one that dies in the middle of making
//! the volume is replaced by one that removes it; `disk` 0, `ignore`, and `auto` without a
//! backend behave as before (the layer in the state dir), `enforce` without a backend is
//! refused naming the setting.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use berth_lvm::{VolumeKind, VolumeName};
use berth_tests::mesos::harness::volume_crash::{
    assert_volume_image, crash_while_making, replacement_fails_the_task,
};
use berth_tests::mesos::harness::volume_launch::{start, volume_spec};
use berth_tests::mesos::harness::volume_task::{kill_without_teardown_errors, wait_running_done};
use berth_tests::mesos::harness::volumes::{
    assert_exits_cleanly, kill_until_exit, message, runc_exec, wait_done, wait_launch_failed,
    wait_running_twice, VolumeLab,
};
use berth_tests::mesos::harness::Lab;
use berth_tests::mesos::AgentDouble;

const T: Duration = Duration::from_secs(30);

fn lab(name: &str) -> VolumeLab {
    VolumeLab::unmounting(name)
}

/// `runc exec` in the lab's container: stdout then stderr.
fn exec_out(lab: &Lab, script: &str) -> String {
    let (out, err) = runc_exec(lab, script);
    out + &err
}

fn root_name(tid: &str) -> VolumeName {
    VolumeName::for_task(VolumeKind::Root, tid).unwrap()
}

/// The state dir of the lab's one running container.
fn container_state(lab: &Lab) -> PathBuf {
    let cid = lab.runc_containers().pop().expect("a container");
    lab.state.join(cid)
}

fn mount_targets() -> Vec<(String, String)> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            Some((f.get(4)?.to_string(), f.get(dash + 1)?.to_string()))
        })
        .collect()
}

/// The 100 MB and 10 MB writes into the container's root filesystem (not /home).
const WRITES: &str = "busybox dd if=/dev/zero of=/tmp/small bs=1M count=10 2>/dev/null; \
    echo small=$?; \
    busybox dd if=/dev/zero of=/tmp/big bs=1M count=100 2>&1; echo big=$?; rm -f /tmp/big; \
    echo DONE; exec sleep 1000";

fn assert_enforced(out: &str) {
    assert!(out.contains("small=0"), "10 MB did not fit in 64: {out}");
    assert!(out.contains("No space left on device"), "{out}");
    assert!(
        !out.contains("big=0"),
        "writing 100 MB into a 64 MB disk succeeded: {out}"
    );
}

#[test]
fn disk_bounds_the_writable_layer_and_goes_with_the_task() {
    let lab = lab("disk");
    let tid = lab.task_id("app");
    let spec = volume_spec(&lab, &tid, WRITES, Some("always"));
    let (d, mut exec) = start(&spec, lab.task_with_disk(&tid, 64.0));
    assert!(d.enforce_registration(&mut exec), "{}", exec.log());
    d.wait_state(&tid, "TASK_RUNNING", T);
    let out = wait_done(&lab, &tid, T);
    assert_enforced(&out);

    // On the host: the scratch volume (ext4 on a loop device) is mounted under the task's
    // state dir, nosuid/nodev, holding the overlay's upper and work dirs; none in the state
    // dir itself.
    let state = container_state(&lab);
    let scratch = state.join("scratch");
    let (_, fstype) = mount_targets()
        .into_iter()
        .find(|(t, _)| *t == scratch.display().to_string())
        .unwrap_or_else(|| panic!("no scratch mount: {:?}", lab.mounts()));
    assert_eq!(fstype, "ext4");
    assert!(scratch.join("upper").is_dir() && scratch.join("work").is_dir());
    assert!(scratch.join("upper/tmp/small").is_file());
    assert!(!state.join("upper").exists() && !state.join("work").exists());
    assert_eq!(lab.loop_devices().len(), 1, "{:?}", lab.loop_devices());
    let name = root_name(&tid);
    let meta = std::fs::read_to_string(lab.volumes_dir().join(format!("{name}.json"))).unwrap();
    assert!(meta.contains(&tid), "owner in {meta}");
    let opts = Command::new("findmnt")
        .args(["-no", "OPTIONS"])
        .arg(&scratch)
        .output()
        .unwrap();
    let opts = String::from_utf8_lossy(&opts.stdout).into_owned();
    assert!(
        opts.contains("nosuid") && opts.contains("nodev"),
        "scratch mount options {opts}"
    );
    let env = exec_out(&lab, "echo disk=$BERTH_DISK_MB");
    assert!(env.contains("disk=64"), "{env}");

    kill_until_exit(&d, &mut exec, &tid, T);
    // Removed even with the home volume's retention `always`: it does not apply here.
    lab.assert_no_volumes();
    lab.assert_clean();
}

#[test]
fn failures_at_or_after_the_scratch_step_leave_nothing() {
    for step in ["scratch", "rootfs", "bundle", "container"] {
        let lab = lab(&format!("diskfail{step}"));
        let tid = lab.task_id("app");
        let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
        spec.env.extend(lab.volume_env(None));
        spec.env
            .push(("BERTH_EXECUTOR_FAIL_STEP".into(), step.into()));
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        // Both volumes: the scratch volume and /home.
        let mut task = lab.task_with_disk(&tid, 32.0);
        task["resources"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!(
                {"name": "home", "type": "SCALAR", "scalar": {"value": 16.0}, "role": "*"}
            ));
        d.launch_on_subscribe(task);
        let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
        let u = wait_launch_failed(&d, &tid, step, T);
        let msg = message(&u);
        assert!(
            msg.contains(&format!("{step}: failure injected")),
            "{step}: {u}"
        );
        assert!(!msg.contains("teardown"), "{u}");
        assert_exits_cleanly(&d, &mut exec, T);
        lab.assert_no_volumes();
        lab.assert_clean();
    }
}

#[test]
fn a_new_executor_reattaches_with_the_scratch_volume_and_removes_it_at_the_end() {
    let lab = lab("diskrecover");
    let tid = lab.task_id("app");
    let spec = volume_spec(
        &lab,
        &tid,
        "echo before > /marker; echo DONE; exec sleep 1000",
        None,
    );
    let (d, mut exec) = start(&spec, lab.task_with_disk(&tid, 48.0));
    wait_running_done(&d, &lab, &tid, T);
    let container = lab.runc_containers();
    let state = container_state(&lab);
    // Not what an agent does (it fails the task and never takes a dead executor back,
    // see e2e_recovery.rs): a test of the executor's re-attach code.
    d.state().accept_relaunch_after_death = true;
    exec.kill();
    std::thread::sleep(Duration::from_millis(300));
    // The executor is gone; the volume is still mounted and in use by the container.
    assert!(lab.mounts().iter().any(|m| m.ends_with("/scratch")));
    let mut exec2 = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec2), "{}", exec2.log());
    wait_running_twice(&d, &tid, &exec2, T);
    assert_eq!(lab.runc_containers(), container);
    // The same writable layer, still bounded.
    let seen = exec_out(
        &lab,
        "cat /marker; busybox dd if=/dev/zero of=/tmp/big bs=1M count=100 2>&1; \
         echo big=$?; rm -f /tmp/big",
    );
    assert!(seen.contains("before"), "{seen}");
    assert!(seen.contains("No space left on device"), "{seen}");
    assert!(!seen.contains("big=0"), "{seen}");
    assert!(state.join("scratch/upper/marker").is_file());
    assert_eq!(lab.loop_devices().len(), 1);
    kill_without_teardown_errors(&d, &mut exec2, &tid, T);
    lab.assert_no_volumes();
    lab.assert_clean();
}

/// Runs a task that writes 10 MB and 100 MB into /tmp with the given settings and `disk`:
/// both fit, its writable layer is in the state dir, no volume is made; then KILL.
fn unenforced(lab: &Lab, what: &str, disk: f64, env: &[(&str, &str)], backend: bool) {
    let tid = lab.task_id(what);
    let mut spec = lab.spec(&tid, Some(WRITES));
    if backend {
        spec.env.extend(lab.volume_env(None));
    }
    spec.env
        .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let (d, mut exec) = start(&spec, lab.task_with_disk(&tid, disk));
    d.wait_state(&tid, "TASK_RUNNING", T);
    let out = wait_done(lab, &tid, T);
    assert!(
        out.contains("small=0") && out.contains("big=0"),
        "{what}: {out}"
    );
    let state = container_state(lab);
    assert!(
        state.join("upper").is_dir(),
        "{what}: upper in the state dir"
    );
    assert!(!state.join("scratch").exists(), "{what}");
    assert!(lab.loop_devices().is_empty(), "{what}");
    assert!(lab.volume_files().is_empty(), "{what}");
    if what == "auto" {
        assert!(
            exec.log().contains("resources.disk is not enforced"),
            "{what}: no warning in {}",
            exec.log()
        );
    }
    kill_until_exit(&d, &mut exec, &tid, T);
    lab.assert_no_volumes();
    lab.assert_clean();
}

#[test]
fn disk_zero_ignore_and_auto_without_a_backend_run_as_before() {
    let lab = lab("diskoff");
    unenforced(&lab, "zero", 0.0, &[], true);
    unenforced(
        &lab,
        "ignore",
        64.0,
        &[("BERTH_EXECUTOR_DISK", "ignore")],
        true,
    );
    unenforced(&lab, "auto", 64.0, &[], false);
}

#[test]
fn enforce_without_a_backend_is_refused_naming_the_setting() {
    let lab = lab("diskrefused");
    let tid = lab.task_id("enforce");
    let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
    spec.env
        .push(("BERTH_EXECUTOR_DISK".into(), "enforce".into()));
    let (d, mut exec) = start(&spec, lab.task_with_disk(&tid, 64.0));
    let u = wait_launch_failed(&d, &tid, "enforce", T);
    let msg = message(&u);
    assert!(
        msg.contains("scratch: ") && msg.contains("BERTH_EXECUTOR_DISK"),
        "{msg}"
    );
    assert!(!d.state().states(&tid).iter().any(|s| s == "TASK_RUNNING"));
    assert_exits_cleanly(&d, &mut exec, T);
    lab.assert_no_volumes();
    lab.assert_clean();
}

#[test]
fn a_bad_disk_mode_stops_the_executor_before_it_subscribes() {
    let lab = lab("diskbadmode");
    let tid = lab.task_id("bad");
    let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
    spec.env.extend(lab.volume_env(None));
    spec.env
        .push(("BERTH_EXECUTOR_DISK".into(), "strict".into()));
    let (d, mut exec) = start(&spec, lab.task_with_disk(&tid, 64.0));
    let status = exec
        .wait_exit(T)
        .unwrap_or_else(|| panic!("the executor kept running: {}", exec.log()));
    assert_eq!(status.code(), Some(2), "{}", exec.log());
    let log = exec.log();
    assert!(
        log.contains("BERTH_EXECUTOR_DISK") && log.contains("auto, enforce or ignore"),
        "{log}"
    );
    assert!(d.state().states(&tid).is_empty(), "no task was started");
    lab.assert_no_volumes();
    lab.assert_clean();
}

#[test]
fn a_scratch_volume_half_made_when_the_executor_died_is_removed_by_the_next() {
    let lab = lab("diskcrash");
    let tid = lab.task_id("app");
    let (spec, d, exec) = crash_while_making(
        &lab,
        &tid,
        lab.task_with_disk(&tid, 32.0),
        "after-mkfs",
        T,
        // Not what an agent does (it fails the task and never takes a dead executor back,
        // see e2e_recovery.rs): a test of the executor's re-attach code.
        |d| d.state().accept_relaunch_after_death = true,
    );
    assert_volume_image(&lab, &root_name(&tid), &exec);
    let u = replacement_fails_the_task(&d, &spec, &tid, T);
    let msg = message(&u);
    assert!(
        msg.contains("preparation undone") && !msg.contains("undo errors"),
        "{u}"
    );
    lab.assert_no_volumes();
    lab.assert_clean();
}
