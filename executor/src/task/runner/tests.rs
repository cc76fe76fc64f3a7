use super::*;
use crate::mesos::types::TaskInfo;
use std::time::Duration;

fn plan(home_mb: f64, mode: Mode) -> Plan {
    Plan {
        task_id: "t".into(),
        container_id: "berth-t".into(),
        hostname: "t".into(),
        cpus: 0.0,
        mem_mb: 0.0,
        disk_mb: 0.0,
        ports: vec![],
        home_mb,
        bandwidth_mbit: 0.0,
        image: "/".into(),
        mode,
        env: vec![],
        health: None,
    }
}

#[test]
fn a_task_that_asks_for_everything_gets_every_step_in_the_published_order() {
    let task: TaskInfo = serde_json::from_value(serde_json::json!({
        "name": "t", "task_id": {"value": "t"}
    }))
    .unwrap();
    let net_cfg = network::NetConfig {
        parent: "eth9".into(),
        mode: "bridge".into(),
    };
    let net = network::from_task(&task, Some(&net_cfg), 0.0).unwrap();
    assert!(net.is_some());
    let cfg = RunConfig {
        disk: Some("enforce".into()),
        ..RunConfig::default()
    };
    let mut everything = plan(64.0, Mode::Command("true".into()));
    everything.disk_mb = 64.0;
    let full = task_steps(&everything, &cfg, net);
    let names: Vec<&str> = full.iter().map(|s| s.name()).collect();
    assert_eq!(names, STEP_ORDER);
    // The optional ones stay out, the others keep their order.
    let bare = task_steps(&plan(0.0, Mode::AppSpec), &cfg, None);
    let names: Vec<&str> = bare.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["rundir", "image", "rootfs", "bundle", "container"]);
}

#[test]
fn the_socket_is_tried_often_while_the_container_starts_then_less() {
    assert_eq!(socket_retry(Duration::ZERO), Duration::from_millis(2));
    assert_eq!(socket_retry(Duration::from_secs(5)), POLL);
}
