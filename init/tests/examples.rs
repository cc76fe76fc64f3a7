//! packaging/examples/spec-app.yaml (the app spec of the example app spec-app.json,
//! installed under /usr/share/doc/berth/examples/) through berth-init's own spec parser,
//! as `berth-init --check` and supervisor mode read it. The app JSON side is checked in
//! tests/tests/examples.rs.

use std::path::Path;
use std::time::Duration;

use berth_init::spec::{AppSpec, LogSpec, Probe, RestartPolicy};

#[test]
fn the_example_app_spec_parses_into_its_services_and_checks() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/examples/spec-app.yaml");
    let spec = AppSpec::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.health_port, Some(9900));
    assert_eq!(
        spec.env.get("APP").map(String::as_str),
        Some("weather-backend")
    );
    let names: Vec<&str> = spec.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["cache", "api"]);

    let cache = &spec.services[0];
    assert_eq!(cache.command.0[0], "/usr/bin/redis-server");
    assert_eq!(cache.restart, RestartPolicy::Always);
    let h = cache.health.as_ref().expect("cache's check");
    assert_eq!(h.probe(&spec.ports), Ok(Probe::Tcp { port: 6379 }));
    assert_eq!(h.timing().delay, Duration::from_secs(2));
    assert_eq!(h.timing().interval, Duration::from_secs(5));

    let api = &spec.services[1];
    assert_eq!(api.depends_on, ["cache"]);
    assert_eq!(api.restart, RestartPolicy::OnFailure);
    assert_eq!(
        api.command.0,
        [
            "/home/work/bin/weather-api",
            "--listen",
            "8094",
            "--cache",
            "127.0.0.1:6379"
        ]
    );
    assert_eq!(api.env.get("API_THREADS").map(String::as_str), Some("8"));
    let h = api.health.as_ref().expect("api's check");
    assert_eq!(
        h.probe(&spec.ports),
        Ok(Probe::Http {
            port: 8094,
            path: "/health".into()
        })
    );
    assert_eq!(h.timing().grace_period, Duration::from_secs(20));
    assert_eq!(h.timing().consecutive_failures, 3);
    let pre_stop = api.hooks.pre_stop.as_ref().expect("pre_stop");
    assert_eq!(pre_stop.cmd.0, ["/home/work/bin/drain", "--wait", "20"]);
    assert_eq!(pre_stop.timeout, Duration::from_secs(25));
    assert!(api.hooks.pre_start.is_some());
    assert!(matches!(
        &api.log,
        LogSpec::File { path, max_size, keep: 3 }
            if path == Path::new("/home/work/logs/api.log") && *max_size == 10 * 1024 * 1024
    ));

    assert_eq!(spec.cron.len(), 1);
    assert_eq!(spec.cron[0].name, "purge-cache");
    assert_eq!(spec.cron[0].timeout(), Some(Duration::from_secs(60)));
}
