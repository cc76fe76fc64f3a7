//! Tasks from OCI image layouts, end to end with the agent double, the real executor,
//! runc and berth-init: a two-layer image (busybox, then a layer that deletes a file and
//! adds one) runs with the image's Env and WorkingDir, its Cmd when the task has none,
//! is unpacked once into the cache and reused; a corrupt blob or a missing tag is
//! TASK_FAILED naming labels.berth.image. Nothing is left behind but the cache.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_tests::mesos::harness::Lab;
use berth_tests::mesos::AgentDouble;
use berth_tests::oci::{Entry, OciLayout};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

/// `<images>/bb` with `bb:v1`: the lab's busybox tree, then a layer that removes
/// /etc/hosts and adds /opt/new.txt. Returns the layout and the manifest descriptor.
fn layered_image(lab: &Lab, cmd: Value) -> (OciLayout, Value) {
    let mut l = OciLayout::create(&lab.images.join("bb")).expect("layout");
    let base = l
        .layer_from_dir(&lab.images.join("busybox"))
        .expect("base layer");
    let top = l
        .layer(&[
            Entry::Whiteout("etc/hosts"),
            Entry::Dir("opt", 0o755),
            Entry::File("opt/new.txt", b"added-by-layer-2\n", 0o644),
        ])
        .expect("top layer");
    let config = json!({
        "Env": ["PATH=/bin:/usr/bin", "IMG_VAR=from-image", "APP_MODE=image-default"],
        "WorkingDir": "/opt",
        "Cmd": cmd,
    });
    let m = l.add_image("v1", &[base, top], config).expect("image");
    (l, m)
}

fn cache_dir(lab: &Lab) -> PathBuf {
    lab.dir.path().join("image-cache")
}

/// Runs one task to a terminal state; returns (last update, sandbox stdout, executor log).
fn run(
    lab: &Lab,
    what: &str,
    image: &str,
    cmd: Option<&str>,
    end: &str,
) -> (Value, String, String) {
    run_with(lab, what, image, cmd, end, &[])
}

/// The executor as the agent starts it for this lab, with the lab's image cache.
fn spec(lab: &Lab, tid: &str, cmd: Option<&str>) -> berth_tests::mesos::ExecutorSpec {
    let mut spec = lab.spec(tid, cmd);
    spec.env.push((
        "BERTH_EXECUTOR_IMAGE_CACHE".into(),
        cache_dir(lab).display().to_string(),
    ));
    spec.env.push(("APP_MODE".into(), "from-marathon".into()));
    spec
}

fn task(lab: &Lab, tid: &str, image: &str) -> Value {
    let mut task = lab.task(tid);
    task["labels"] = json!({"labels": [{"key": "berth.image", "value": image}]});
    // The app's env, where Marathon puts it (the executor's own env no longer reaches tasks).
    task["executor"]["command"]["environment"] =
        json!({"variables": [{"name": "APP_MODE", "value": "from-marathon"}]});
    task
}

fn run_with(
    lab: &Lab,
    what: &str,
    image: &str,
    cmd: Option<&str>,
    end: &str,
    env: &[(&str, &str)],
) -> (Value, String, String) {
    let tid = lab.task_id(what);
    let mut spec = spec(lab, &tid, cmd);
    for (k, v) in env {
        spec.env.push((k.to_string(), v.to_string()));
    }
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(task(lab, &tid, image));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec), "log: {}", exec.log());
    d.wait_state(&tid, end, T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    let last = d.state().updates.last().cloned().unwrap_or_default();
    let stdout = std::fs::read_to_string(spec.sandbox.join("stdout")).unwrap_or_default();
    (last, stdout, plain(&exec.log()))
}

/// The log without ANSI colours.
fn plain(log: &str) -> String {
    let mut out = String::new();
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn inode(p: &Path) -> u64 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .ino()
}

#[test]
fn a_layered_image_runs_and_its_unpack_is_cached() {
    let lab = Lab::new("img");
    let (_layout, m) = layered_image(
        &lab,
        json!(["/bin/sh", "-c", "echo from-image-cmd cwd=$(pwd) $IMG_VAR"]),
    );
    let (last, out, log) = run(
        &lab,
        "first",
        "bb:v1",
        Some("cat /opt/new.txt; test -e /etc/hosts && echo hosts-present || echo hosts-gone; echo cwd=$(pwd) img=$IMG_VAR mode=$APP_MODE"),
        "TASK_FINISHED",
    );
    assert_eq!(last["state"], "TASK_FINISHED", "{last}\n{log}");
    assert!(out.contains("added-by-layer-2"), "stdout: {out}\n{log}");
    assert!(out.contains("hosts-gone"), "stdout: {out}");
    // The image's Env and WorkingDir apply; Marathon's env wins over the image's.
    assert!(
        out.contains("cwd=/opt img=from-image mode=from-marathon"),
        "stdout: {out}"
    );
    assert!(log.contains("cache_hit=false"), "{log}");
    let hex = m["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let entry = cache_dir(&lab).join(format!("sha256-{hex}"));
    let rootfs = entry.join("rootfs");
    assert!(rootfs.join("opt/new.txt").is_file() && !rootfs.join("etc/hosts").exists());
    let before = (inode(&entry), inode(&rootfs.join("opt/new.txt")));
    lab.assert_clean();

    // A second task: found in the cache, not unpacked again; no cmd -> the image's Cmd.
    let (last, out, log) = run(&lab, "second", "bb:v1", None, "TASK_FINISHED");
    assert_eq!(last["state"], "TASK_FINISHED", "{last}\n{log}");
    assert!(
        out.contains("from-image-cmd cwd=/opt from-image"),
        "stdout: {out}\n{log}"
    );
    assert!(log.contains("cache_hit=true"), "{log}");
    assert_eq!(before, (inode(&entry), inode(&rootfs.join("opt/new.txt"))));
    let entries: Vec<_> = std::fs::read_dir(cache_dir(&lab))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(
        entries,
        [format!("sha256-{hex}")],
        "one cache entry, no temporaries"
    );
    lab.assert_clean();
    // The cache stays after the tasks (by design: shared, cleared by the operator).
    assert!(rootfs.join("bin/busybox").is_file());
}

#[test]
fn a_corrupt_blob_or_a_missing_tag_fails_naming_the_image() {
    let lab = Lab::new("imgbad");
    let (layout, m) = layered_image(&lab, json!(["true"]));
    // The top layer's blob is damaged on disk: found while unpacking it.
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(layout.blob_path(m["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let top = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut data = std::fs::read(layout.blob_path(&top)).unwrap();
    let n = data.len();
    data[n / 2] ^= 0x55;
    std::fs::write(layout.blob_path(&top), &data).unwrap();
    let (last, _, log) = run(&lab, "corrupt", "bb:v1", Some("true"), "TASK_FAILED");
    let msg = last["message"].as_str().unwrap_or_default();
    assert_eq!(last["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{last}");
    assert!(
        msg.contains("labels.berth.image") && msg.contains(&top) && msg.contains("does not match"),
        "{last}\n{log}"
    );
    // Nothing unpacked stays in the cache, not even the entry's lock file.
    let left: Vec<_> = std::fs::read_dir(cache_dir(&lab))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    lab.assert_clean();

    // A tag the layout does not have: refused in validation, listing the tags.
    let (last, _, _) = run(&lab, "notag", "bb:v9", Some("true"), "TASK_FAILED");
    let msg = last["message"].as_str().unwrap_or_default();
    assert_eq!(last["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{last}");
    assert!(
        msg.contains("labels.berth.image") && msg.contains("no tag \"v9\"") && msg.contains("v1"),
        "{last}"
    );
    lab.assert_clean();
}

#[test]
fn a_failure_at_the_image_or_rootfs_step_undoes_everything() {
    let lab = Lab::new("imgfail");
    layered_image(&lab, json!(["true"]));
    for step in ["image", "rootfs"] {
        let (last, _, log) = run_with(
            &lab,
            step,
            "bb:v1",
            Some("true"),
            "TASK_FAILED",
            &[("BERTH_EXECUTOR_FAIL_STEP", step)],
        );
        assert_eq!(last["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{last}");
        let msg = last["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(&format!("{step}: failure injected")),
            "{last}\n{log}"
        );
        lab.assert_clean();
    }
}

#[test]
fn a_new_executor_recovers_an_image_task_after_sigkill() {
    let lab = Lab::new("imgrecover");
    let (_layout, m) = layered_image(&lab, json!(["true"]));
    let tid = lab.task_id("app");
    let spec = spec(&lab, &tid, Some("exec sleep 1000"));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(task(&lab, &tid, "bb:v1"));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    assert!(d.wait(T, |st| st.uuids.values().all(|a| *a)));
    // The checkpoint names the cache entry the overlay stands on.
    let hex = m["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let cp_path = std::fs::read_dir(&lab.state)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("checkpoint.json"))
        .find(|p| p.is_file())
        .expect("a checkpoint");
    let cp: Value = serde_json::from_slice(&std::fs::read(&cp_path).unwrap()).unwrap();
    let lower = cache_dir(&lab).join(format!("sha256-{hex}")).join("rootfs");
    assert_eq!(cp["outputs"]["image"], json!(lower), "{cp}");
    let container = lab.runc_containers();
    // Not what an agent does (it fails the task and never takes a dead executor back,
    // see e2e_recovery.rs): a test of the executor's re-attach code.
    d.state().accept_relaunch_after_death = true;
    exec.kill();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lab.runc_containers(), container);
    let mut exec2 = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec2), "{}", exec2.log());
    assert!(
        d.wait(T, |st| st
            .states(&tid)
            .iter()
            .filter(|s| *s == "TASK_RUNNING")
            .count()
            == 2),
        "{}",
        exec2.log()
    );
    d.kill(&tid, None);
    d.wait_state(&tid, "TASK_KILLED", T);
    exec2
        .wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec2.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
    assert!(lower.join("opt/new.txt").is_file(), "the cache stays");
}

#[test]
fn two_executors_starting_one_image_at_once_unpack_it_once() {
    let lab = Lab::new("imgrace");
    let (_layout, m) = layered_image(&lab, json!(["true"]));
    let mut runs = Vec::new();
    // Both executors are started before either has unpacked anything: one unpacks under
    // the cache lock, the other waits for it and finds the entry made.
    for what in ["a", "b"] {
        let tid = lab.task_id(what);
        let spec = spec(&lab, &tid, Some("cat /opt/new.txt"));
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        d.launch_on_subscribe(task(&lab, &tid, "bb:v1"));
        let exec = d.spawn_executor(&spec, Duration::from_secs(10));
        runs.push((tid, spec, d, exec));
    }
    let mut hits = Vec::new();
    for (tid, spec, d, mut exec) in runs {
        d.wait_state(&tid, "TASK_FINISHED", T);
        exec.wait_exit(T)
            .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
        assert!(d.violations().is_empty(), "{:?}", d.violations());
        let out = std::fs::read_to_string(spec.sandbox.join("stdout")).unwrap_or_default();
        assert!(out.contains("added-by-layer-2"), "{tid}: {out}");
        let log = plain(&exec.log());
        hits.push(log.contains("cache_hit=true"));
        assert!(
            log.contains("cache_hit=true") != log.contains("cache_hit=false"),
            "{log}"
        );
    }
    hits.sort();
    assert_eq!(hits, [false, true], "unpacked exactly once");
    let hex = m["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let entries: Vec<_> = std::fs::read_dir(cache_dir(&lab))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(entries, [format!("sha256-{hex}")]);
    lab.assert_clean();
}

/// `berth-executor image ...` with this lab's directories; (success, stdout, stderr).
fn image_cmd(lab: &Lab, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(&lab.executor)
        .arg("image")
        .args(args)
        .env("BERTH_EXECUTOR_IMAGES", &lab.images)
        .env("BERTH_EXECUTOR_IMAGE_CACHE", cache_dir(lab))
        .env("BERTH_EXECUTOR_STATE_DIR", &lab.state)
        .env_remove("MESOS_EXECUTOR_ID")
        .output()
        .expect("berth-executor image");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn prune_removes_only_images_no_task_uses() {
    let lab = Lab::new("imgprune");
    let (mut layout, m1) = layered_image(&lab, json!(["true"]));
    let base = lab.images.join("busybox");
    let l2 = layout.layer_from_dir(&base).expect("layer");
    let m2 = layout
        .add_image("v2", &[l2], json!({"Env": ["V=2"]}))
        .expect("image v2");
    let entry = |m: &Value| {
        let hex = m["digest"].as_str().unwrap().trim_start_matches("sha256:");
        cache_dir(&lab).join(format!("sha256-{hex}"))
    };
    // inspect resolves without unpacking; --unpack fills the cache as a task would.
    let (ok, out, err) = image_cmd(&lab, &["inspect", "bb:v2"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("inspect prints JSON");
    assert_eq!(v["manifest"]["digest"], m2["digest"]);
    assert_eq!(v["cached"], false);
    assert_eq!(v["layers"].as_array().map(Vec::len), Some(1));
    let (ok, _, err) = image_cmd(&lab, &["inspect", "--unpack", "bb:v2"]);
    assert!(
        ok && entry(&m2).join("rootfs/bin/busybox").is_file(),
        "{err}"
    );

    // A running task on bb:v1.
    let tid = lab.task_id("app");
    let spec = spec(&lab, &tid, Some("exec sleep 1000"));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(task(&lab, &tid, "bb:v1"));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    // Used within the minimum age: nothing goes.
    let (ok, out, err) = image_cmd(&lab, &["prune"]);
    assert!(ok && out.is_empty(), "{out}\n{err}");
    // v2 is used by nothing; v1 is the running task's lower layer.
    let (ok, out, err) = image_cmd(&lab, &["prune", "--min-age-secs", "0"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("removed {}", entry(&m2).display()));
    assert!(entry(&m1).join("rootfs/opt/new.txt").is_file());
    d.kill(&tid, None);
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    lab.assert_clean();
    // No task left: the dry run names it, the prune removes it.
    let (ok, out, _) = image_cmd(&lab, &["prune", "--min-age-secs", "0", "--dry-run"]);
    assert!(
        ok && out.contains("would remove") && entry(&m1).exists(),
        "{out}"
    );
    let (ok, out, _) = image_cmd(&lab, &["prune", "--min-age-secs", "0"]);
    assert!(
        ok && out.contains(&entry(&m1).display().to_string()),
        "{out}"
    );
    assert!(!entry(&m1).exists());
    // The entries' lock files went with them.
    let left: Vec<_> = std::fs::read_dir(cache_dir(&lab))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_image_writing_through_its_own_symlinks_runs_and_size_limits_apply() {
    let lab = Lab::new("imglink");
    let mut l = OciLayout::create(&lab.images.join("bb")).expect("layout");
    let base = l
        .layer_from_dir(&lab.images.join("busybox"))
        .expect("base layer");
    // usrmerge-style `applib -> usr/applib`, Debian-style absolute `data/current -> /srv/v1`
    // (dangling until written through), and a chain `chain -> applib`.
    let links = l
        .layer(&[
            Entry::Dir("usr", 0o755),
            Entry::Dir("usr/applib", 0o755),
            Entry::Symlink("applib", "usr/applib"),
            Entry::Dir("data", 0o755),
            Entry::Symlink("data/current", "/srv/v1"),
            Entry::Symlink("chain", "applib"),
            Entry::Symlink("up", "../../.."),
        ])
        .expect("links layer");
    let files = l
        .layer(&[
            Entry::File("applib/libfoo.so", b"libfoo\n", 0o644),
            Entry::File("data/current/hello.txt", b"hello-srv\n", 0o644),
            Entry::File("chain/chained.so", b"chained\n", 0o644),
            Entry::File("up/etc/up.txt", b"up-inside\n", 0o644),
        ])
        .expect("files layer");
    l.add_image("v1", &[base, links, files], json!({"Env": ["PATH=/bin"]}))
        .expect("image");

    // Over BERTH_EXECUTOR_IMAGE_MAX_BYTES: refused, nothing cached.
    let (last, _, log) = run_with(
        &lab,
        "big",
        "bb:v1",
        Some("true"),
        "TASK_FAILED",
        &[("BERTH_EXECUTOR_IMAGE_MAX_BYTES", "100K")],
    );
    let msg = last["message"].as_str().unwrap_or_default();
    assert_eq!(last["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{last}");
    assert!(
        msg.contains("labels.berth.image")
            && msg.contains("more than 102400 bytes")
            && msg.contains("BERTH_EXECUTOR_IMAGE_MAX_BYTES"),
        "{last}\n{log}"
    );
    let left = std::fs::read_dir(cache_dir(&lab)).map_or(0, |d| d.count());
    assert_eq!(left, 0, "nothing cached");
    lab.assert_clean();

    let (last, out, log) = run(
        &lab,
        "links",
        "bb:v1",
        Some("cat /usr/applib/libfoo.so /srv/v1/hello.txt /data/current/hello.txt /usr/applib/chained.so /etc/up.txt"),
        "TASK_FINISHED",
    );
    assert_eq!(last["state"], "TASK_FINISHED", "{last}\n{log}");
    for want in ["libfoo", "hello-srv\nhello-srv", "chained", "up-inside"] {
        assert!(out.contains(want), "{want:?} in stdout: {out}\n{log}");
    }
    lab.assert_clean();
}
