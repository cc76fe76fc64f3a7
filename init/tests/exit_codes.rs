//! Exit codes: the child's own, 128+N for a signal, `-e` remapping; as PID 1 and as a
//! subreaper. Command-line errors and unrunnable commands.

mod common;

use common::{assert_root, start, Mode, TIMEOUT};

fn code(mode: Mode, args: &[&str]) -> i32 {
    let pid1 = matches!(mode, Mode::Pid1);
    let mut full = if pid1 { vec![] } else { vec!["-s"] };
    full.extend_from_slice(args);
    let done = start(mode, &full).wait(TIMEOUT);
    assert!(
        !done.stderr.contains("zombie reaping won't work"),
        "no warning expected as PID 1 or with -s: {}",
        done.stderr
    );
    done.code()
}

fn exit_codes_in(mode: fn() -> Mode) {
    assert_eq!(code(mode(), &["--", "sh", "-c", "exit 0"]), 0);
    assert_eq!(code(mode(), &["--", "sh", "-c", "exit 3"]), 3);
    assert_eq!(code(mode(), &["sh", "-c", "exit 255"]), 255);
    assert_eq!(
        code(mode(), &["sh", "-c", "kill -TERM $$"]),
        128 + libc::SIGTERM
    );
    assert_eq!(
        code(mode(), &["sh", "-c", "kill -KILL $$"]),
        128 + libc::SIGKILL
    );
    assert_eq!(
        code(mode(), &["sh", "-c", "kill -USR1 $$"]),
        128 + libc::SIGUSR1
    );
    // -e remaps after the 128+N mapping, like tini.
    assert_eq!(code(mode(), &["-e", "3", "--", "sh", "-c", "exit 3"]), 0);
    assert_eq!(code(mode(), &["-e", "3", "-e4", "sh", "-c", "exit 4"]), 0);
    assert_eq!(code(mode(), &["-e", "3", "sh", "-c", "exit 5"]), 5);
    assert_eq!(code(mode(), &["-e", "143", "sh", "-c", "kill -TERM $$"]), 0);
}

#[test]
fn exit_codes_as_pid1() {
    assert_root();
    exit_codes_in(|| Mode::Pid1);
}

#[test]
fn exit_codes_as_subreaper() {
    assert_root();
    exit_codes_in(|| Mode::Direct);
}

#[test]
fn unrunnable_commands_exit_127_and_126_like_tini() {
    assert_root();
    let dir = common::tempdir();
    let missing = dir.path().join("missing");
    let done = start(Mode::Direct, &["-s", missing.to_str().unwrap()]).wait(TIMEOUT);
    assert_eq!(done.code(), 127, "{done:?}");
    assert!(
        done.stderr.contains("No such file or directory"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("missing"), "{}", done.stderr);

    let done = start(Mode::Direct, &["-s", "berth-no-such-command-in-path"]).wait(TIMEOUT);
    assert_eq!(done.code(), 127, "{done:?}");

    let plain = dir.path().join("not-executable");
    std::fs::write(&plain, "data").unwrap();
    let done = start(Mode::Direct, &["-s", plain.to_str().unwrap()]).wait(TIMEOUT);
    assert_eq!(done.code(), 126, "{done:?}");
    assert!(done.stderr.contains("Permission denied"), "{}", done.stderr);

    // The same as tini 0.19 (the reference installed on the machine).
    for (path, expected) in [(&missing, 127), (&plain, 126)] {
        let tini = std::process::Command::new("tini")
            .args(["-s", "--"])
            .arg(path)
            .output()
            .expect("tini is installed (scripts/deps.sh)");
        assert_eq!(tini.status.code(), Some(expected), "tini reference changed");
    }
}

#[test]
fn bad_command_lines_exit_2_with_a_message() {
    assert_root();
    let cases: &[(&[&str], &str)] = &[
        (&["-x", "true"], "unknown option '-x'"),
        (&["-sz", "true"], "unknown option '-z'"),
        (&["--bogus", "true"], "unknown option '--bogus'"),
        (
            &["-e", "256", "true"],
            "not a valid exit code for -e: '256'",
        ),
        (
            &["-e", "nope", "true"],
            "not a valid exit code for -e: 'nope'",
        ),
        (
            &["-p", "SIGFOO", "true"],
            "not a valid signal for -p: 'SIGFOO'",
        ),
    ];
    for (args, message) in cases {
        let done = start(Mode::Direct, args).wait(TIMEOUT);
        assert_eq!(done.code(), 2, "{args:?}: {done:?}");
        assert!(done.stderr.contains(message), "{args:?}: {}", done.stderr);
        assert!(
            done.stderr.contains("berth-init -h"),
            "{args:?}: {}",
            done.stderr
        );
        assert!(
            done.stdout.is_empty(),
            "errors go to stderr only: {}",
            done.stdout
        );
    }
    // No command at all (and no app spec for the supervisor mode): a usage error too.
    for args in [&[][..], &["-s", "--"][..]] {
        let done = start(Mode::Direct, args).wait(TIMEOUT);
        assert_eq!(done.code(), 2, "{args:?}: {done:?}");
        assert!(
            done.stderr.contains("no command"),
            "{args:?}: {}",
            done.stderr
        );
    }
}

#[test]
fn help_version_and_license_exit_0() {
    assert_root();
    let done = start(Mode::Direct, &["-h"]).wait(TIMEOUT);
    assert_eq!(done.code(), 0);
    assert!(
        done.stdout.contains("Usage: berth-init [OPTIONS]"),
        "{}",
        done.stdout
    );
    let done = start(Mode::Direct, &["--version"]).wait(TIMEOUT);
    assert_eq!(done.code(), 0);
    assert!(done.stdout.starts_with("berth-init "), "{}", done.stdout);
    let done = start(Mode::Direct, &["-l"]).wait(TIMEOUT);
    assert_eq!(done.code(), 0);
    assert!(done.stdout.contains("Apache"), "{}", done.stdout);

    // Invoked as docker-init, the version line is the one `docker info` parses.
    let dir = common::tempdir();
    let link = dir.path().join("docker-init");
    std::os::unix::fs::symlink(common::BIN, &link).unwrap();
    let out = std::process::Command::new(&link)
        .arg("--version")
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.starts_with("tini version 0.19.0 - git.berth-"),
        "{line}"
    );
}
