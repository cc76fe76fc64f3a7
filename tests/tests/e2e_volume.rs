//! The task's sized /home end to end, as root: the executor's `volume` step with the
//! loopfile backend (sparse file + real loop device + ext4), real runc and berth-init.
//! A task with `home` sees /home as its own ext4 volume of that size (ENOSPC beyond it);
//! after KILL the mount, the loop device and the volume files are gone; failures at the
//! volume step or a later one leave nothing; `home` without a backend is refused naming
//! `resources.home`; retention `always` keeps the volume; an executor SIGKILLed mid-task is
//! replaced by one that keeps the volume mounted and removes it at the end; one that dies in
//! the middle of making the volume is replaced by one that removes it.

use std::process::Command;
use std::time::Duration;

use berth_lvm::exec::SystemRunner;
use berth_lvm::loopfile::LoopfileBackend;
use berth_lvm::{Backend, VolumeKind, VolumeName};
use berth_tests::mesos::harness::volume_crash::{
    assert_volume_image, crash_while_making, replacement_fails_the_task,
};
use berth_tests::mesos::harness::volume_launch::{start, volume_spec};
use berth_tests::mesos::harness::volume_task::{kill_without_teardown_errors, wait_running_done};
use berth_tests::mesos::harness::volumes::{
    assert_exits_cleanly, kill_until_exit, message, runc_exec, wait_done, wait_launch_failed,
    wait_running_twice, VolumeLab,
};

const T: Duration = Duration::from_secs(30);

fn lab(name: &str) -> VolumeLab {
    VolumeLab::new(name)
}

fn home_name(tid: &str) -> VolumeName {
    VolumeName::for_task(VolumeKind::Home, tid).unwrap()
}

#[test]
fn home_is_a_sized_ext4_volume_and_goes_with_the_task() {
    let lab = lab("home");
    let tid = lab.task_id("app");
    let script = "grep ' /home ' /proc/mounts; busybox df -k /home; \
        echo hello > /home/hello && echo wrote=$(cat /home/hello); \
        busybox dd if=/dev/zero of=/home/big bs=1M count=100 2>&1; echo dd=$?; rm -f /home/big; \
        echo DONE; exec sleep 1000";
    let spec = volume_spec(&lab, &tid, script, None);
    let (d, mut exec) = start(&spec, lab.task_with_home(&tid, 64.0));
    assert!(d.enforce_registration(&mut exec), "{}", exec.log());
    d.wait_state(&tid, "TASK_RUNNING", T);
    let out = wait_done(&lab, &tid, T);

    // Inside: /home is its own ext4 mount, nosuid and nodev, of about 64 MB.
    let mount = out
        .lines()
        .find(|l| l.contains(" /home "))
        .unwrap_or_else(|| panic!("no /home mount in the container: {out}"));
    let fields: Vec<&str> = mount.split_whitespace().collect();
    assert!(fields[0].starts_with("/dev/loop"), "{mount}");
    assert_eq!(fields[2], "ext4", "{mount}");
    for o in ["rw", "nosuid", "nodev"] {
        assert!(fields[3].split(',').any(|x| x == o), "{o} in {mount}");
    }
    let df = out
        .lines()
        .find(|l| l.ends_with("/home") && !l.contains(" ext4 "))
        .unwrap_or_else(|| panic!("no df line: {out}"));
    // At least the 64 MB asked for is usable (the volume carries ext4's overhead on top),
    // and not much more.
    let kib: u64 = df.split_whitespace().nth(1).unwrap().parse().unwrap();
    let avail: u64 = df.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(
        avail >= 64 * 1024 && kib <= 72 * 1024,
        "df says {kib} KiB, {avail} KiB available for a 64 MB home: {df}"
    );
    assert!(out.contains("wrote=hello"), "{out}");
    assert!(out.contains("No space left on device"), "{out}");
    assert!(
        !out.contains("dd=0"),
        "writing 100 MB into 64 MB succeeded: {out}"
    );

    // On the host: one loop device, the volume files, owner = the task id, the mount under
    // the task's state dir.
    assert_eq!(lab.loop_devices().len(), 1, "{:?}", lab.loop_devices());
    let name = home_name(&tid);
    let meta = std::fs::read_to_string(lab.volumes_dir().join(format!("{name}.json"))).unwrap();
    assert!(meta.contains(&tid), "owner in {meta}");
    assert!(lab.volumes_dir().join(format!("{name}.img")).is_file());
    assert!(
        lab.mounts()
            .iter()
            .any(|m| m.starts_with(&lab.state.display().to_string()) && m.ends_with("/home")),
        "{:?}",
        lab.mounts()
    );

    kill_until_exit(&d, &mut exec, &tid, T);
    lab.assert_no_volumes();
    lab.assert_clean();
}

#[test]
fn failures_at_or_after_the_volume_step_leave_no_volume() {
    for step in ["volume", "bundle", "container"] {
        let lab = lab(&format!("volfail{step}"));
        let tid = lab.task_id("app");
        let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
        spec.env.extend(lab.volume_env(Some("always")));
        spec.env
            .push(("BERTH_EXECUTOR_FAIL_STEP".into(), step.into()));
        let (d, mut exec) = start(&spec, lab.task_with_home(&tid, 32.0));
        let u = wait_launch_failed(&d, &tid, step, T);
        assert!(
            message(&u).contains(&format!("{step}: failure injected")),
            "{u}"
        );
        assert_exits_cleanly(&d, &mut exec, T);
        // Even with retention `always`: a failed launch's volume is removed.
        lab.assert_no_volumes();
        lab.assert_clean();
    }
}

#[test]
fn home_without_a_backend_or_below_the_minimum_is_refused() {
    let lab = lab("volrefused");
    for (what, with_backend, mb, want) in [
        (
            "nobackend",
            false,
            64.0,
            &["resources.home", "BERTH_EXECUTOR_VOLUME_BACKEND"][..],
        ),
        ("toosmall", true, 2.0, &["resources.home", "minimum"][..]),
    ] {
        let tid = lab.task_id(what);
        let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
        if with_backend {
            spec.env.extend(lab.volume_env(None));
        }
        let (d, mut exec) = start(&spec, lab.task_with_home(&tid, mb));
        let u = wait_launch_failed(&d, &tid, what, T);
        let msg = message(&u);
        for w in want {
            assert!(msg.contains(w), "{what}: {w} in {msg}");
        }
        assert!(!d.state().states(&tid).iter().any(|s| s == "TASK_RUNNING"));
        assert_exits_cleanly(&d, &mut exec, T);
    }
    lab.assert_no_volumes();
    lab.assert_clean();
}

#[test]
fn retention_always_keeps_the_volume_with_its_data() {
    let lab = lab("volkeep");
    let tid = lab.task_id("app");
    let spec = volume_spec(
        &lab,
        &tid,
        "echo kept > /home/keep; echo DONE; exec sleep 1000",
        Some("always"),
    );
    let (d, mut exec) = start(&spec, lab.task_with_home(&tid, 32.0));
    d.wait_state(&tid, "TASK_RUNNING", T);
    wait_done(&lab, &tid, T);
    kill_until_exit(&d, &mut exec, &tid, T);
    // Unmounted, detached, everything else cleaned up; the volume stays, owned by the task.
    lab.assert_clean();
    let name = home_name(&tid);
    let img = lab.volumes_dir().join(format!("{name}.img"));
    assert!(
        lab.volume_files().contains(&img),
        "{:?}",
        lab.volume_files()
    );
    assert!(lab.loop_devices().is_empty(), "{:?}", lab.loop_devices());
    let backend =
        LoopfileBackend::new(&lab.volumes_dir(), Box::new(SystemRunner::default())).unwrap();
    let v = backend.get(&name).unwrap().expect("the kept volume");
    assert_eq!(v.owner.as_str(), tid);
    let cat = Command::new("debugfs")
        .args(["-R", "cat /keep"])
        .arg(&img)
        .output()
        .expect("debugfs");
    assert_eq!(String::from_utf8_lossy(&cat.stdout).trim(), "kept");
    // The operator (here the test) removes it.
    assert!(backend.remove(&name).unwrap());
    lab.assert_no_volumes();
}

#[test]
fn a_new_executor_keeps_the_volume_mounted_and_removes_it_at_the_end() {
    let lab = lab("volrecover");
    let tid = lab.task_id("app");
    let spec = volume_spec(
        &lab,
        &tid,
        "echo before > /home/marker; echo DONE; exec sleep 1000",
        None,
    );
    let (d, mut exec) = start(&spec, lab.task_with_home(&tid, 32.0));
    wait_running_done(&d, &lab, &tid, T);
    let container = lab.runc_containers();
    // Not what an agent does (it fails the task and never takes a dead executor back,
    // see e2e_recovery.rs): a test of the executor's re-attach code.
    d.state().accept_relaunch_after_death = true;
    exec.kill();
    std::thread::sleep(Duration::from_millis(300));
    let mut exec2 = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec2), "{}", exec2.log());
    wait_running_twice(&d, &tid, &exec2, T);
    assert_eq!(lab.runc_containers(), container);
    // The same volume, still mounted and writable in the container.
    let (seen, _) = runc_exec(
        &lab,
        "grep ' /home ' /proc/mounts; cat /home/marker; echo after > /home/x && cat /home/x",
    );
    assert!(seen.contains(" /home ext4 "), "{seen}");
    assert!(seen.contains("before") && seen.contains("after"), "{seen}");
    assert_eq!(lab.loop_devices().len(), 1);
    kill_without_teardown_errors(&d, &mut exec2, &tid, T);
    lab.assert_no_volumes();
    lab.assert_clean();
}

#[test]
fn a_volume_half_made_when_the_executor_died_is_removed_by_the_next() {
    let lab = lab("volcrash");
    let tid = lab.task_id("app");
    let (spec, d, exec) = crash_while_making(
        &lab,
        &tid,
        lab.task_with_home(&tid, 32.0),
        "after-mkfs",
        T,
        // Not what an agent does (it fails the task and never takes a dead executor back,
        // see e2e_recovery.rs): a test of the executor's re-attach code.
        |d| d.state().accept_relaunch_after_death = true,
    );
    // It died with an incomplete volume on disk.
    assert_volume_image(&lab, &home_name(&tid), &exec);
    assert!(d.state().states(&tid).iter().any(|s| s == "TASK_STARTING"));
    let u = replacement_fails_the_task(&d, &spec, &tid, T);
    assert!(message(&u).contains("preparation undone"), "{u}");
    lab.assert_no_volumes();
    lab.assert_clean();
}

/// A Marathon app cannot ask for the `home` resource: `berth.home` carves /home out of
/// its `disk`, and the writable layer gets the rest.
#[test]
fn the_berth_home_label_carves_home_out_of_disk() {
    let lab = lab("homelabel");
    let tid = lab.task_id("app");
    let script = "busybox df -k /home; echo home=$BERTH_HOME_MB disk=$BERTH_DISK_MB; \
        busybox dd if=/dev/zero of=/big bs=1M count=60 2>&1; echo dd=$?; rm -f /big; \
        echo DONE; exec sleep 1000";
    let spec = volume_spec(&lab, &tid, script, None);
    let mut task = lab.task(&tid);
    task["resources"].as_array_mut().expect("resources").push(
        serde_json::json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 100.0}, "role": "*"}),
    );
    task["labels"]["labels"]
        .as_array_mut()
        .expect("labels")
        .push(serde_json::json!({"key": "berth.home", "value": "64"}));
    let (d, mut exec) = start(&spec, task);
    assert!(d.enforce_registration(&mut exec), "{}", exec.log());
    d.wait_state(&tid, "TASK_RUNNING", T);
    let out = wait_done(&lab, &tid, T);
    assert!(out.contains("home=64 disk=36"), "{out}");
    let df = out
        .lines()
        .find(|l| l.ends_with("/home"))
        .unwrap_or_else(|| panic!("no df line for /home: {out}"));
    let avail: u64 = df.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(
        avail >= 64 * 1024,
        "{avail} KiB available for a 64 MB home: {df}"
    );
    // The writable layer is the 36 MB left of disk: 60 MB do not fit.
    assert!(
        out.contains("No space left on device") && !out.contains("dd=0"),
        "{out}"
    );
    assert_eq!(
        lab.loop_devices().len(),
        2,
        "home + scratch: {:?}",
        lab.loop_devices()
    );
    kill_until_exit(&d, &mut exec, &tid, T);
    lab.assert_no_volumes();
    lab.assert_clean();
}
