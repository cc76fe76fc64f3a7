//! The not-PID-1 warning: printed when orphans would escape (neither PID 1 nor a
//! subreaper), not with `-s`, `TINI_SUBREAPER`, an inherited subreaper bit, as PID 1, or
//! at verbosity 0. And `-w`'s per-zombie lines.

mod common;

use std::os::unix::process::CommandExt;

use common::{assert_root, command, start, start_command, Mode, TIMEOUT};

const WARNING: &str = "zombie reaping won't work";

#[test]
fn warns_when_not_pid1_and_not_subreaper() {
    assert_root();
    let done = start(Mode::Direct, &["true"]).wait(TIMEOUT);
    assert_eq!(done.code(), 0);
    assert!(done.stderr.contains(WARNING), "{}", done.stderr);
    assert!(
        done.stderr.contains("[WARN  berth-init ("),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("use the -s option"), "{}", done.stderr);
}

#[test]
fn no_warning_when_orphans_are_reaped() {
    assert_root();
    let quiet = |done: common::Finished, why: &str| {
        assert_eq!(done.code(), 0, "{why}: {done:?}");
        assert!(!done.stderr.contains(WARNING), "{why}: {}", done.stderr);
    };
    quiet(start(Mode::Direct, &["-s", "true"]).wait(TIMEOUT), "-s");
    quiet(start(Mode::Pid1, &["true"]).wait(TIMEOUT), "PID 1");

    let (mut cmd, pid1) = command(Mode::Direct, common::BIN, &["true"]);
    cmd.env("TINI_SUBREAPER", "");
    quiet(
        start_command(cmd, pid1).wait(TIMEOUT),
        "TINI_SUBREAPER (empty)",
    );

    let (mut cmd, pid1) = command(Mode::Direct, common::BIN, &["true"]);
    cmd.env("TINI_VERBOSITY", "0");
    quiet(start_command(cmd, pid1).wait(TIMEOUT), "TINI_VERBOSITY=0");

    // The subreaper bit survives exec: a launcher that set it (like tini's test proxy)
    // counts, without -s.
    let (mut cmd, pid1) = command(Mode::Direct, common::BIN, &["true"]);
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong);
            Ok(())
        });
    }
    quiet(
        start_command(cmd, pid1).wait(TIMEOUT),
        "inherited subreaper bit",
    );
}

#[test]
fn reap_warnings_only_with_w() {
    assert_root();
    let body = ["sh", "-c", "( sleep 0.05 & ); sleep 0.3"];
    let done = start(Mode::Pid1, &body).wait(TIMEOUT);
    assert_eq!(done.code(), 0);
    assert!(!done.stderr.contains("Reaped zombie"), "{}", done.stderr);
    let mut args = vec!["-w"];
    args.extend(body);
    let done = start(Mode::Pid1, &args).wait(TIMEOUT);
    assert_eq!(done.code(), 0);
    assert!(
        done.stderr.contains("Reaped zombie process with pid="),
        "{}",
        done.stderr
    );
}

#[test]
fn verbose_levels_add_info_and_debug() {
    assert_root();
    let done = start(Mode::Direct, &["-s", "-vv", "true"]).wait(TIMEOUT);
    assert!(done.stderr.contains("[INFO  berth-init"), "{}", done.stderr);
    assert!(
        done.stderr.contains("Spawned child process 'true'"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("[DEBUG berth-init"), "{}", done.stderr);
    let done = start(Mode::Direct, &["-s", "true"]).wait(TIMEOUT);
    assert!(done.stderr.is_empty(), "quiet by default: {}", done.stderr);
}
