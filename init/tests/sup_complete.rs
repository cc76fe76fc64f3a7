//! Outside debug mode, berth-init exits once every service has completed and no cron job
//! is scheduled: a lone `restart: never` service decides the exit code (0, its code, or
//! 128+N for signal N), as the tini mode would. A spec written as JSON (how the executor
//! generates one for a plain command) is read like YAML.

mod sup_common;

use std::time::Duration;

use sup_common::Pid1;

const T: Duration = Duration::from_secs(10);

fn once(cmd: &str) -> String {
    format!("services:\n  main:\n    command: [/bin/sh, -c, '{cmd}']\n    restart: never\n")
}

#[test]
fn a_lone_never_restarted_service_decides_the_exit_code() {
    for (cmd, code) in [
        ("echo done > @DIR@/out", 0),
        ("exit 5", 5),
        ("kill -KILL $$", 137),
        ("kill -USR1 $$", 128 + libc::SIGUSR1),
    ] {
        let mut p = Pid1::start(&once(cmd), &[]);
        assert_eq!(p.wait_exit(T), code, "{cmd}\n{}", p.log());
        if code == 0 {
            assert_eq!(
                std::fs::read_to_string(p.path("out")).unwrap_or_default(),
                "done\n"
            );
            assert!(
                p.log().contains("every service has completed"),
                "{}",
                p.log()
            );
        }
        assert!(!p.socket.exists(), "the socket is removed at exit");
    }
}

#[test]
fn debug_mode_and_cron_keep_init_up_after_the_services_completed() {
    let cron = format!(
        "{}cron:\n  - name: tick\n    schedule: '0 0 1 1 *'\n    command: /bin/true\n",
        once("exit 0")
    );
    for (spec, env) in [(once("exit 0"), vec![("BERTH_DEBUG", "1")]), (cron, vec![])] {
        let mut p = Pid1::start(&spec, &env);
        p.wait_status("the service exited", T, |s| {
            s["services"][0]["state"] == "exited"
        });
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            p.unshare.try_wait().unwrap().is_none(),
            "init exited: {}",
            p.log()
        );
        p.signal(libc::SIGTERM);
        assert_eq!(p.wait_exit(T), 0, "{}", p.log());
    }
}

#[test]
fn a_json_spec_runs_an_awkward_shell_command_verbatim() {
    // Quotes of both kinds, $VAR, a newline, `#`, `: ` and a backslash.
    let script = "printf '%s|' \"$AWK\" 'a: b' '#not a comment' \"d\\\"q\" 'back\\slash'\necho \"line2 $((1+2))\"";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let full = format!("({script}) > {}", out.display());
    let spec = serde_json::json!({
        "services": {"main": {"command": ["/bin/sh", "-c", full], "restart": "never"}}
    })
    .to_string();
    let mut p = Pid1::start(&spec, &[("AWK", "it's \"x\" # y: z")]);
    assert_eq!(p.wait_exit(T), 0, "{}", p.log());
    let got = std::fs::read_to_string(&out).unwrap();
    let host = std::process::Command::new("/bin/sh")
        .args(["-c", script])
        .env("AWK", "it's \"x\" # y: z")
        .output()
        .unwrap();
    assert_eq!(got, String::from_utf8_lossy(&host.stdout));
    assert!(got.contains("#not a comment|"), "{got}");
}
