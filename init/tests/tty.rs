//! The terminal case, under a pseudo-terminal made by `script`: the child's process group
//! becomes the terminal's foreground group, so Ctrl-C from the terminal reaches it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{assert_root, script, start_command, wait_for_file, TIMEOUT};

#[test]
fn child_is_the_foreground_group_and_gets_ctrl_c() {
    assert_root();
    let dir = common::tempdir();
    let out = dir.path().join("stat");
    // Fields 5 and 8 of /proc/PID/stat: the process group and the terminal's foreground
    // process group. Then sleep until Ctrl-C.
    let child = script(
        dir.path(),
        "child.sh",
        &format!(
            "set -- $(cat /proc/$$/stat)\necho \"$5 $8 $$\" > {out}.tmp && mv {out}.tmp {out}\nexec sleep 100",
            out = out.display()
        ),
    );
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c"])
        .arg(format!("{} -s -- {}", common::BIN, child.display()))
        .arg("/dev/null")
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::piped());
    let mut run = start_command(cmd, false);
    let mut stdin = run.take_stdin().unwrap();
    let text = wait_for_file(&out, TIMEOUT, |t| t.ends_with('\n'));
    let fields: Vec<i32> = text
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    let [pgrp, tpgid, pid] = fields[..] else {
        panic!("{text}")
    };
    assert_eq!(pgrp, pid, "the child leads its own process group");
    assert_eq!(
        tpgid, pgrp,
        "the child's group is the terminal's foreground group"
    );
    // Ctrl-C on the terminal: SIGINT to the foreground group, the sleep dies of it, and
    // berth-init exits 128+2 (script -e passes it on).
    stdin.write_all(b"\x03").unwrap();
    stdin.flush().unwrap();
    let done = run.wait(TIMEOUT);
    drop(stdin);
    assert_eq!(done.code(), 130, "{done:?}");
}
