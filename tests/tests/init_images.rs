//! The static berth-init runs as PID 1 in any image (root: the real executor, runc, the
//! agent double): the same task reaches TASK_RUNNING and stops cleanly (TASK_KILLED, the
//! executor exits, nothing left) in
//! - a busybox-static-only root filesystem, with no libc at all;
//! - a Debian minbase root made by `debootstrap --variant=minbase` (cached under
//!   /var/tmp/berth-cache, keyed by date);
//! - an image whose libc is musl, not the host's glibc: busybox plus Debian's musl loader
//!   and a program linked against it (musl-gcc), which the task runs.
//!
//! And a dynamically linked init (the glibc build in target/debug) fails the task before
//! any container is made, naming the file and what is wrong.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_tests::mesos::harness::volumes::{assert_exits_cleanly, message, wait_launch_failed};
use berth_tests::mesos::harness::{binary, Lab};
use berth_tests::mesos::AgentDouble;
use berth_tests::minbase::{cp_tree, debian_minbase};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

/// Runs `cmd` in `image` (a directory under the lab's images): TASK_RUNNING with `marker`
/// on the task's stdout, then KILL -> TASK_KILLED, the executor exits, nothing is left.
fn runs_and_stops(lab: &Lab, image: &str, cmd: &str, marker: &str) {
    let tid = lab.task_id(image);
    let spec = lab.spec(&tid, Some(cmd));
    let mut task = lab.task(&tid);
    task["labels"] = json!({"labels": [{"key": "berth.image", "value": image}]});
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(task);
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    let end = std::time::Instant::now() + T;
    while !lab.sandbox_file(&tid, "stdout").contains(marker) {
        assert!(
            std::time::Instant::now() < end,
            "{image}: no {marker:?} on stdout: {:?}, stderr {:?}",
            lab.sandbox_file(&tid, "stdout"),
            lab.sandbox_file(&tid, "stderr")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d.kill(&tid, None);
    d.wait_state(&tid, "TASK_KILLED", T);
    assert_exits_cleanly(&d, &mut exec, T);
    lab.assert_clean();
}

/// No file of any libc (or loader) in the tree.
fn assert_no_libc(root: &Path, which: &str) {
    for lib in [
        "lib/x86_64-linux-gnu/libc.so.6",
        "lib64/ld-linux-x86-64.so.2",
        "usr/lib/x86_64-linux-gnu/libc.so.6",
    ] {
        assert!(!root.join(lib).exists(), "{which}: {lib} is in the image");
    }
}

#[test]
fn busybox_static_only() {
    let lab = Lab::new("img-busybox");
    let root = lab.images.join("busybox");
    assert_no_libc(&root, "busybox");
    assert!(
        !root.join("lib/ld-musl-x86_64.so.1").exists(),
        "busybox image has a musl loader"
    );
    runs_and_stops(
        &lab,
        "busybox",
        "echo in-busybox; exec sleep 1000",
        "in-busybox",
    );
}

#[test]
fn debian_minbase_root() {
    let lab = Lab::new("img-debian");
    let root = lab.images.join("debian");
    cp_tree(&debian_minbase(), &root);
    assert!(root.join("etc/debian_version").is_file());
    runs_and_stops(
        &lab,
        "debian",
        "echo in-debian $(cat /etc/debian_version); exec sleep 1000",
        "in-debian",
    );
}

#[test]
fn an_image_whose_libc_is_musl() {
    let lab = Lab::new("img-musl");
    let root = lab.images.join("musl");
    cp_tree(&lab.images.join("busybox"), &root);
    // Debian's musl: its loader (which is its libc) at the path musl programs name.
    std::fs::create_dir_all(root.join("lib")).expect("lib dir");
    std::fs::copy(
        std::fs::canonicalize("/lib/ld-musl-x86_64.so.1").expect("musl is installed"),
        root.join("lib/ld-musl-x86_64.so.1"),
    )
    .expect("copy the musl loader");
    // A program dynamically linked against musl, built here with musl-gcc.
    let src = lab.dir.path().join("hello.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\nint main(void){printf(\"hello-from-musl\\n\");return 0;}\n",
    )
    .expect("source");
    let prog = root.join("bin/hello-musl");
    let st = Command::new("musl-gcc")
        .arg("-o")
        .arg(&prog)
        .arg(&src)
        .status()
        .expect("musl-gcc (musl-tools)");
    assert!(st.success(), "musl-gcc failed");
    let interp = Command::new("readelf")
        .args(["-l"])
        .arg(&prog)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        interp.contains("/lib/ld-musl-x86_64.so.1"),
        "not linked against musl: {interp}"
    );
    assert_no_libc(&root, "musl");
    runs_and_stops(
        &lab,
        "musl",
        "/bin/hello-musl && exec sleep 1000",
        "hello-from-musl",
    );
}

#[test]
fn a_dynamic_init_fails_the_task_before_any_container() {
    let lab = Lab::new("img-dynamic");
    let tid = lab.task_id("dynamic");
    let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
    let dynamic = binary("berth-init");
    spec.env
        .push(("BERTH_EXECUTOR_INIT".into(), dynamic.display().to_string()));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    let u = wait_launch_failed(&d, &tid, "dynamic init", T);
    let msg = message(&u);
    assert!(
        msg.contains("BERTH_EXECUTOR_INIT")
            && msg.contains(&*dynamic.to_string_lossy())
            && msg.contains("is dynamically linked"),
        "{u}"
    );
    assert!(
        !d.state().states(&tid).iter().any(|s| s == "TASK_RUNNING"),
        "{u}"
    );
    assert_exits_cleanly(&d, &mut exec, T);
    assert!(lab.runc_containers().is_empty());
    lab.assert_clean();
}
