//! The exposition of a snapshot made by hand, and the Falcon items of two of them.

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::metrics::cgroup::CgroupStats;
use crate::metrics::collect::{Sample, Snapshot, Usage};
use crate::metrics::falcon;
use crate::metrics::init::{InitStatus, Service};
use crate::metrics::task::Task;
use berth_netcfg::stats::LinkStats;

pub(super) fn snapshot(at_secs: u64, cpu_ns: u64) -> Snapshot {
    Snapshot {
        at: UNIX_EPOCH + Duration::from_secs(at_secs),
        samples: vec![Sample {
            task: Task {
                container_id: "berth-web.1".into(),
                task_id: "web.1".into(),
                app_id: "/shop/web".into(),
                framework_id: "fw-1".into(),
                executor_id: "marathon-web.1".into(),
                hostname: "web".into(),
                ip: Some("10.0.0.5".into()),
                state: "TASK_RUNNING".into(),
                cpus: Some(0.5),
                ..Task::default()
            },
            cgroup: Some(CgroupStats {
                cpu_usage_ns: cpu_ns,
                cpu_user_ns: cpu_ns / 2,
                mem_usage: 60 << 20,
                mem_rss: 50 << 20,
                mem_limit: Some(128 << 20),
                pids: 3,
                ..CgroupStats::default()
            }),
            net: Some(LinkStats {
                rx_bytes: 1000,
                tx_bytes: 10_000_000,
                ..LinkStats::default()
            }),
            home: Some(Usage {
                used: 1 << 20,
                size: 100 << 20,
            }),
            init: Some(InitStatus {
                state: "running".into(),
                services: vec![Service {
                    name: "web".into(),
                    state: "running".into(),
                    restarts: 2,
                    healthy: Some(true),
                    check_latency_us: Some(1500),
                }],
                statsd: Some(crate::metrics::app::Statsd {
                    steps: 3,
                    received: 10,
                    malformed: 1,
                    dropped: 0,
                    metrics: vec![
                        crate::metrics::app::Aggregate {
                            name: "web.req".into(),
                            tags: vec!["route:/api".into()],
                            kind: "counter".into(),
                            count: Some(200.0),
                            rate: Some(100.0),
                            ..Default::default()
                        },
                        crate::metrics::app::Aggregate {
                            name: "web.delay".into(),
                            kind: "timer".into(),
                            count: Some(4.0),
                            p99: Some(250.0),
                            ..Default::default()
                        },
                    ],
                }),
            }),
        }],
        errors: vec![("init", 1)],
    }
}

#[test]
fn families_have_help_type_base_units_and_the_task_labels() {
    let text = render(&snapshot(60, 2_000_000_000), &AgentCounters::default());
    let labels =
        r#"task_id="web.1",framework_id="fw-1",executor_id="marathon-web.1",app_id="/shop/web""#;
    for line in [
        "# HELP berth_cpu_usage_seconds_total CPU time the container's processes used.",
        "# TYPE berth_cpu_usage_seconds_total counter",
        &format!("berth_cpu_usage_seconds_total{{{labels}}} 2"),
        &format!("berth_memory_rss_bytes{{{labels}}} 52428800"),
        &format!("berth_memory_limit_bytes{{{labels}}} 134217728"),
        &format!("berth_network_transmit_bytes_total{{{labels}}} 10000000"),
        &format!("berth_home_size_bytes{{{labels}}} 104857600"),
        &format!("berth_service_restarts_total{{{labels},service=\"web\"}} 2"),
        &format!("berth_service_state{{{labels},service=\"web\",state=\"running\"}} 1"),
        &format!("berth_cpu_mode_seconds_total{{{labels},mode=\"user\"}} 1"),
        "berth_agent_collect_errors{part=\"init\"} 1",
        &format!("berth_service_check_latency_seconds{{{labels},service=\"web\"}} 0.0015"),
        "# TYPE berth_agent_falcon_dropped_items_total counter",
        &format!("berth_app_statsd_rate_per_second{{{labels},name=\"web.req\",tags=\"route:/api\"}} 100"),
        &format!("berth_app_statsd_step_events{{{labels},name=\"web.req\",tags=\"route:/api\"}} 200"),
        &format!("berth_app_statsd_timer_seconds{{{labels},name=\"web.delay\",tags=\"\",stat=\"p99\"}} 0.25"),
        &format!("berth_app_statsd_timer_observations{{{labels},name=\"web.delay\",tags=\"\"}} 4"),
        &format!("berth_app_statsd_lines_total{{{labels},result=\"malformed\"}} 1"),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // No quota in the sample: the family is left out, not written empty.
    assert!(!text.contains("berth_cpu_limit_cores"), "{text}");
}

#[test]
fn label_values_are_escaped() {
    let mut s = String::new();
    write_family(
        &mut s,
        &Family {
            name: "berth_x",
            help: "a\\b",
            kind: Kind::Gauge,
            rows: vec![(vec![("v", "a\"b\\c\nd".into())], 0.5)],
        },
    );
    assert_eq!(
        s,
        "# HELP berth_x a\\\\b\n# TYPE berth_x gauge\nberth_x{v=\"a\\\"b\\\\c\\nd\"} 0.5\n"
    );
}

#[test]
fn falcon_items_use_the_seed_names_hostname_endpoint_and_app_task_tags() {
    let prev = snapshot(60, 1_000_000_000);
    let cur = snapshot(70, 3_500_000_000);
    let items = falcon::items(Some(&prev), &cur, 10);
    let get = |m: &str| {
        items
            .iter()
            .find(|i| i.metric == m)
            .unwrap_or_else(|| panic!("{m}: {items:?}"))
    };
    // 2.5 s of CPU in 10 s on a 0.5-CPU task: 50 % of its CPUs.
    assert!((get("cpu.busy").value - 50.0).abs() < 1e-9);
    assert_eq!(get("cpu.busy").tags, "app=/shop/web,task=web.1");
    assert_eq!(get("cpu.busy").endpoint, "web");
    assert_eq!((get("cpu.busy").step, get("cpu.busy").timestamp), (10, 70));
    assert_eq!(get("mem.memused.hot").value, (50 << 20) as f64);
    assert_eq!(get("net.if.out.bytes").counter_type, "COUNTER");
    assert_eq!(
        get("net.if.out.bytes").tags,
        "app=/shop/web,task=web.1,iface=eth0"
    );
    assert_eq!(
        get("df.bytes.total").tags,
        "app=/shop/web,task=web.1,mount=/home"
    );
    assert_eq!(
        get("berth.service.restarts").tags,
        "app=/shop/web,task=web.1,service=web"
    );
    // The app's statsd aggregates: its names, its tags after the container's.
    assert_eq!(get("web.req.rate").value, 100.0);
    assert_eq!(
        get("web.req.rate").tags,
        "app=/shop/web,task=web.1,route=/api"
    );
    assert_eq!(get("web.delay.p99").value, 250.0);
    assert_eq!(get("web.delay.p99").tags, "app=/shop/web,task=web.1");
    assert_eq!(get("berth.statsd.malformed").counter_type, "COUNTER");
    // The first step has no rate.
    let first = falcon::items(None, &cur, 10);
    assert!(first.iter().all(|i| !i.metric.starts_with("cpu.")));
    assert!(first.iter().any(|i| i.metric == "mem.memused"));
    assert_eq!(falcon::tag_value("a,b=c d"), "a_b_c_d");
}
