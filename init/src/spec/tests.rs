use std::path::Path;
use std::time::Duration;

use super::*;

const LEGACY: &str = "require:
  centos:6.3+resin:4.0.41+scribed:2.0.65
service:
  - port: 8094
add:
  - weather-api-v2.xml /home/work/resin/conf/
  - scribed.conf /home/work/scribe/conf/
entry:
  - /home/work/resin/bin/resin_control -conf /home/work/resin/conf/weather-api-v2.xml server weather-api-v2 start
";

fn parse(text: &str) -> Result<AppSpec, SpecError> {
    AppSpec::parse(text, Path::new("/etc/berth/app.yaml"))
}

fn err(text: &str) -> (usize, usize, String) {
    match parse(text).unwrap_err() {
        SpecError::Invalid {
            line,
            column,
            message,
            path,
        } => {
            assert_eq!(path, Path::new("/etc/berth/app.yaml"));
            (line, column, message)
        }
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn legacy_format_parses_exactly() {
    let s = parse(LEGACY).unwrap();
    assert_eq!(
        s.require.as_deref(),
        Some("centos:6.3+resin:4.0.41+scribed:2.0.65")
    );
    assert_eq!(s.ports, vec![8094]);
    assert_eq!(s.adds.len(), 2);
    assert_eq!(s.adds[0].src, Path::new("/etc/berth/weather-api-v2.xml"));
    assert_eq!(s.adds[0].dest, Path::new("/home/work/resin/conf/"));
    assert!(s.adds[0].into_dir);
    assert_eq!(s.services.len(), 1);
    let e = &s.services[0];
    assert_eq!(e.name, "entry-1");
    assert_eq!(e.command.0[0], "/home/work/resin/bin/resin_control");
    assert_eq!(e.command.0.len(), 6);
    assert_eq!(e.restart, RestartPolicy::OnFailure);
}

#[test]
fn entries_start_in_order() {
    let s = parse("entry:\n  - /bin/a\n  - /bin/b x\n  - \"/bin/c 'd e'\"\n").unwrap();
    let deps: Vec<_> = s
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.depends_on.clone()))
        .collect();
    assert_eq!(deps[0], ("entry-1", vec![]));
    assert_eq!(deps[1], ("entry-2", vec!["entry-1".to_string()]));
    assert_eq!(s.services[2].command.0, vec!["/bin/c", "d e"]);
}

const FULL: &str = r#"
debug: true
env: {APP: weather}
health_port: 9900
service:
  - port: 8080
services:
  db:
    command: ["/usr/bin/db", "--port", "5432"]
    user: work
    restart: on-failure
    stop_signal: INT
    stop_timeout: 3s
    health:
      tcp: {port: 5432}
      delay: 0s
      interval: 1s
      consecutive_failures: 2
  web:
    command: /usr/bin/web --listen 8080
    depends_on: [db]
    backoff: {initial: 100ms, max: 2s, reset_after: 30s}
    crash_loop_limit: 4
    health:
      http: {path: /health}
    hooks:
      pre_start: /bin/true
      pre_stop: {cmd: [/bin/sleep, "1"], timeout: 5s}
    log: {file: /var/log/web.log, max_size: 1M, keep: 2}
cron:
  - name: cleanup
    schedule: "*/5 * * * *"
    command: /usr/bin/cleanup
    timeout: 1m
"#;

#[test]
fn full_format() {
    let s = parse(FULL).unwrap();
    assert!(s.debug);
    assert_eq!(s.health_port, Some(9900));
    assert_eq!(s.env["APP"], "weather");
    let names: Vec<_> = s.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["db", "web"]);
    let db = &s.services[0];
    assert_eq!(db.stop_signal(), nix::sys::signal::Signal::SIGINT);
    assert_eq!(db.stop_timeout(), Duration::from_secs(3));
    let h = db.health.as_ref().unwrap();
    assert_eq!(h.probe(&s.ports).unwrap(), Probe::Tcp { port: 5432 });
    assert_eq!(h.timing().consecutive_failures, 2);
    assert_eq!(h.timing().timeout, Duration::from_secs(20), "Mesos default");
    let web = &s.services[1];
    assert_eq!(
        web.health.as_ref().unwrap().probe(&s.ports).unwrap(),
        Probe::Http {
            port: 8080,
            path: "/health".into()
        }
    );
    let b = web.backoff_policy();
    assert_eq!(
        (b.initial, b.max, b.crash_loop_limit),
        (Duration::from_millis(100), Duration::from_secs(2), 4)
    );
    assert_eq!(
        web.hooks.pre_stop.as_ref().unwrap().timeout,
        Duration::from_secs(5)
    );
    assert_eq!(
        web.hooks.pre_start.as_ref().unwrap().timeout,
        Duration::from_secs(30)
    );
    assert_eq!(
        web.log,
        LogSpec::File {
            path: "/var/log/web.log".into(),
            max_size: 1 << 20,
            keep: 2
        }
    );
    assert_eq!(s.cron[0].timeout(), Some(Duration::from_secs(60)));
}

#[test]
fn unknown_key_names_key_position_and_valid_keys() {
    let (line, col, msg) = err("services:\n  web:\n    command: /bin/true\n    comand: x\n");
    assert_eq!((line, col), (4, 5), "{msg}");
    assert!(msg.contains("services.web"), "{msg}");
    assert!(msg.contains("unknown field `comand`"), "{msg}");
    assert!(msg.contains("`command`"), "{msg}");
    let (line, _, msg) = err("entry: [/bin/true]\nentries: []\n");
    assert_eq!(line, 2);
    assert!(
        msg.contains("expected one of") && msg.contains("`entry`"),
        "{msg}"
    );
}

#[test]
fn port_out_of_range() {
    let (line, col, msg) = err("service:\n  - port: 70000\n");
    assert_eq!((line, col), (2, 5), "{msg}");
    assert!(
        msg.contains("service[0].port: port 70000 out of range: valid ports are 1-65535"),
        "{msg}"
    );
    let (_, _, msg) = err("health_port: 0\n");
    assert!(msg.contains("valid ports are 1-65535"), "{msg}");
}

#[test]
fn missing_command() {
    let (line, _, msg) = err("services:\n  web:\n    user: work\n");
    assert!(line >= 2, "{msg}");
    assert!(
        msg.contains("services.web") && msg.contains("missing field `command`"),
        "{msg}"
    );
    let (_, _, msg) = err("services:\n  web:\n    command: []\n");
    assert!(msg.contains("empty command"), "{msg}");
}

#[test]
fn dependency_cycle() {
    let text = "services:\n  a:\n    command: /bin/a\n    depends_on: [c]\n  b:\n    command: /bin/b\n    depends_on: [a]\n  c:\n    command: /bin/c\n    depends_on: [b]\n";
    let (line, col, msg) = err(text);
    assert_eq!((line, col), (4, 5), "{msg}");
    assert!(msg.contains("dependency cycle a -> c -> b -> a"), "{msg}");
}

#[test]
fn unknown_dependency() {
    let (line, _, msg) = err("services:\n  a:\n    command: /bin/a\n    depends_on: [nope]\n");
    assert_eq!(line, 4);
    assert!(
        msg.contains("unknown service \"nope\"") && msg.contains("valid are"),
        "{msg}"
    );
}

#[test]
fn bad_schedule() {
    let (line, _, msg) =
        err("cron:\n  - name: x\n    schedule: '61 * * * *'\n    command: /bin/x\n");
    assert_eq!(line, 3, "{msg}");
    assert!(
        msg.contains("cron[0].schedule: bad cron schedule \"61 * * * *\"")
            && msg.contains("valid: 5 fields"),
        "{msg}"
    );
}

#[test]
fn health_needs_exactly_one_probe_and_a_port() {
    let (_, _, msg) = err("services:\n  a:\n    command: /bin/a\n    health: {tcp: {}}\n");
    assert!(msg.contains("no port"), "{msg}");
    let (line, _, msg) = err("services:\n  a:\n    command: /bin/a\n    health:\n      cmd: /bin/true\n      tcp: {port: 1}\n");
    assert_eq!(line, 4);
    assert!(msg.contains("exactly one of"), "{msg}");
}

#[test]
fn bad_signal_and_duration_and_restart() {
    let (_, _, msg) = err("services:\n  a:\n    command: /bin/a\n    stop_signal: FOO\n");
    assert!(msg.contains("valid are names such as TERM"), "{msg}");
    let (_, _, msg) = err("services:\n  a:\n    command: /bin/a\n    stop_timeout: 3 weeks\n");
    assert!(msg.contains("valid units"), "{msg}");
    let (_, _, msg) = err("services:\n  a:\n    command: /bin/a\n    restart: sometimes\n");
    assert!(
        msg.contains("always") && msg.contains("on-failure"),
        "{msg}"
    );
}

#[test]
fn display_has_file_line_column() {
    let e = parse("service:\n  - port: 0\n").unwrap_err().to_string();
    assert!(
        e.starts_with("/etc/berth/app.yaml:2:5: service[0].port: port 0 out of range"),
        "{e}"
    );
}

#[test]
fn bad_env_name() {
    let (line, _, msg) = err("services:\n  a:\n    command: /bin/a\n    env: {'A=B': x}\n");
    assert_eq!(line, 4, "{msg}");
    assert!(
        msg.contains("services.a.env: bad variable name \"A=B\""),
        "{msg}"
    );
}

#[test]
fn nested_values_point_at_their_key() {
    let (line, col, msg) = err("services:\n  a:\n    command: /bin/a\n    health:\n      interval: 10 parsecs\n      tcp: {port: 1}\n");
    assert_eq!((line, col), (5, 7), "{msg}");
    assert!(
        msg.starts_with("services.a.health.interval: bad duration unit"),
        "{msg}"
    );
    // Flow style: the parser's own position is kept.
    let (line, col, msg) =
        err("services:\n  a:\n    command: /bin/a\n    health: {tcp: {port: 0}}\n");
    assert_eq!(line, 4, "{msg}");
    assert!(col > 5, "{msg}");
    assert!(
        msg.starts_with("services.a.health.tcp.port: port 0 out of range"),
        "{msg}"
    );
    // List items at the parent's indent.
    let (line, col, msg) = err("service:\n- port: 80\n- port: 0\n");
    assert_eq!((line, col), (3, 3), "{msg}");
    assert!(msg.starts_with("service[1].port: "), "{msg}");
}
