//! A state dir as the executor writes it, in a tempdir.

use super::*;
use serde_json::json;

fn state_dir(root: &Path, session: bool) -> PathBuf {
    let state = root.join("state");
    let c = state.join("berth-web.1");
    std::fs::create_dir_all(c.join("bundle")).unwrap();
    let cp = json!({"container_id": "berth-web.1",
        "steps": [["volume", "done"], ["network", "done"], ["bundle", "done"], ["container", "done"]],
        "outputs": {"netns": "/run/netns/berth-web", "ip": "10.0.0.5",
            "binds": [["/var/lib/berth/containers/berth-web.1/home", "/home", false]],
            "wrapper_pid": 4242, "image": null}});
    std::fs::write(c.join("checkpoint.json"), cp.to_string()).unwrap();
    let spec = json!({"hostname": "web",
        "process": {"env": ["MESOS_TASK_ID=web.1", "MARATHON_APP_ID=/shop/web",
            "BERTH_CPUS=0.5", "BERTH_BANDWIDTH_MBIT=100", "A=b=c"]},
        "mounts": [{"destination": "/run/berth", "source": "/run/berth/berth-web.1"}],
        "linux": {"cgroupsPath": "/berth/berth-web.1"}});
    std::fs::write(c.join("bundle/config.json"), spec.to_string()).unwrap();
    if session {
        std::fs::create_dir_all(state.join("executors")).unwrap();
        let s = json!({"pending": [], "tasks": {"web.1": {"raw": {
            "task_id": {"value": "web.1"},
            "executor": {"executor_id": {"value": "marathon-web.1"}, "framework_id": {"value": "fw-1"}},
            "labels": {"labels": [{"key": "berth.vlan", "value": "42"}]}},
            "any_acked": true, "terminal_acked": false, "last_state": "TASK_RUNNING"}}});
        std::fs::write(state.join("executors/berth-fw.json"), s.to_string()).unwrap();
    }
    state
}

#[test]
fn a_container_is_described_from_its_state_dir_and_session_checkpoint() {
    let t = tempfile::tempdir().unwrap();
    let state = state_dir(t.path(), true);
    let tasks = discover(&state, &t.path().join("proc")).unwrap();
    assert_eq!(tasks.len(), 1, "executors/ is not a container");
    let k = &tasks[0];
    assert_eq!(k.container_id, "berth-web.1");
    assert_eq!(k.task_id, "web.1");
    assert_eq!(k.app_id, "/shop/web");
    assert_eq!(
        (k.framework_id.as_str(), k.executor_id.as_str()),
        ("fw-1", "marathon-web.1")
    );
    assert_eq!(k.hostname, "web");
    assert_eq!(k.cgroup.as_deref(), Some("/berth/berth-web.1"));
    assert_eq!(k.netns.as_deref(), Some(Path::new("/run/netns/berth-web")));
    assert_eq!(k.ip.as_deref(), Some("10.0.0.5"));
    assert_eq!(
        k.home.as_deref(),
        Some(Path::new("/var/lib/berth/containers/berth-web.1/home"))
    );
    assert_eq!(
        k.init_socket.as_deref(),
        Some(Path::new("/run/berth/berth-web.1/init.sock"))
    );
    assert_eq!(k.state, "TASK_RUNNING");
    assert_eq!(k.vlan, Some(42));
    assert_eq!((k.bandwidth_mbit, k.cpus), (Some(100.0), Some(0.5)));
}

#[test]
fn without_a_session_checkpoint_the_ids_come_from_the_executor_process() {
    let t = tempfile::tempdir().unwrap();
    let state = state_dir(t.path(), false);
    let proc = t.path().join("proc");
    std::fs::create_dir_all(proc.join("4242")).unwrap();
    std::fs::create_dir_all(proc.join("77")).unwrap();
    std::fs::write(proc.join("4242/stat"), "4242 (sh (x) y) S 77 4242 1 0").unwrap();
    std::fs::write(
        proc.join("77/environ"),
        b"A=1\0MESOS_FRAMEWORK_ID=fw-2\0MESOS_EXECUTOR_ID=ex-2\0",
    )
    .unwrap();
    let k = &discover(&state, &proc).unwrap()[0];
    assert_eq!(
        (k.framework_id.as_str(), k.executor_id.as_str()),
        ("fw-2", "ex-2")
    );
    assert_eq!(k.state, "running");
    assert_eq!(k.vlan, None);
}

#[test]
fn an_unreadable_state_dir_is_an_error_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let e = discover(&t.path().join("none"), Path::new("/proc")).unwrap_err();
    assert!(e.to_string().contains("none"), "{e}");
}
