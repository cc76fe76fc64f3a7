//! Each spec error: exit 2, the file, line, column, key and what is valid on stderr, and
//! nothing started (a marker command never runs).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_berth-init");

fn run_spec(text: &str) -> (i32, String, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("app.yaml");
    let marker = dir.path().join("started");
    std::fs::write(&spec, text.replace("@MARK@", &marker.display().to_string())).unwrap();
    let out = Command::new(BIN)
        .arg("--spec")
        .arg(&spec)
        .arg("--socket")
        .arg(dir.path().join("s.sock"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!marker.exists(), "something started despite the bad spec");
    assert!(
        !dir.path().join("s.sock").exists(),
        "the socket was created despite the bad spec"
    );
    (out.status.code().unwrap_or(-1), err, spec)
}

const GOOD: &str = "services:\n  ok:\n    command: [/bin/sh, -c, 'touch @MARK@; sleep 100']\n";

#[test]
fn unknown_key() {
    let (code, err, spec) = run_spec(&format!(
        "{GOOD}  bad:\n    command: /bin/true\n    restart_policy: always\n"
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{}:6:5:", spec.display())), "{err}");
    assert!(
        err.contains(
            "services.bad.restart_policy: unknown field `restart_policy`, expected one of"
        ),
        "{err}"
    );
    assert!(err.contains("`restart`"), "{err}");
}

#[test]
fn dependency_cycle() {
    let (code, err, spec) = run_spec(&format!(
        "{GOOD}  a:\n    command: /bin/true\n    depends_on: [b]\n  b:\n    command: /bin/true\n    depends_on: [a]\n"
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{}:6:5:", spec.display())), "{err}");
    assert!(
        err.contains("services.a.depends_on: dependency cycle a -> b -> a"),
        "{err}"
    );
}

#[test]
fn bad_schedule() {
    let (code, err, spec) = run_spec(&format!(
        "{GOOD}cron:\n  - name: x\n    schedule: '* * *'\n    command: /bin/true\n"
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{}:6:5:", spec.display())), "{err}");
    assert!(
        err.contains("cron[0].schedule: bad cron schedule \"* * *\": 3 fields; valid: 5 fields"),
        "{err}"
    );
}

#[test]
fn port_out_of_range() {
    let (code, err, spec) = run_spec(&format!("service:\n  - port: 65536\n{GOOD}"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "{}:2:5: service[0].port: port 65536 out of range: valid ports are 1-65535",
            spec.display()
        )),
        "{err}"
    );
}

#[test]
fn missing_command() {
    let (code, err, spec) = run_spec(&format!("{GOOD}  web:\n    user: root\n"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&spec.display().to_string())
            && err.contains("services.web: missing field `command`"),
        "{err}"
    );
}

#[test]
fn unreadable_spec() {
    let out = Command::new(BIN)
        .args(["--spec", "/nonexistent/berth/app.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the app spec /nonexistent/berth/app.yaml"),
        "{err}"
    );
}

#[test]
fn neither_spec_nor_command() {
    assert!(
        !std::path::Path::new("/etc/berth/app.yaml").exists(),
        "this test needs a machine without /etc/berth/app.yaml"
    );
    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--spec PATH") && err.contains("-- CMD"),
        "{err}"
    );
}

#[test]
fn check_only() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("app.yaml");
    std::fs::write(&spec, "entry:\n  - /bin/true\n").unwrap();
    let out = Command::new(BIN)
        .arg("--spec")
        .arg(&spec)
        .arg("--check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}

#[test]
fn unknown_user() {
    let (code, err, spec) = run_spec(&format!(
        "{GOOD}  web:\n    command: /bin/true\n    user: no-such-user-berth\n"
    ));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "{}: services.web: user \"no-such-user-berth\" does not exist",
            spec.display()
        )),
        "{err}"
    );
}
