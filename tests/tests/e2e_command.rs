//! Plain-command tasks (Marathon's `cmd`) end to end, as root, with the agent double,
//! the real executor, runc and berth-init: the executor runs the command as berth-init's
//! one service (a generated app spec), and the command must behave exactly as
//! `/bin/sh -c CMD`: the same output for awkward text (quotes, `$`, newlines, `#`, `: `,
//! characters a YAML reader would fold), the same environment and working directory,
//! the exit code deciding TASK_FINISHED / TASK_FAILED (128+N for signal N), and a KILL
//! reaching the command's process group with SIGTERM.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::mesos::harness::Lab;
use berth_tests::mesos::process::{ExecutorProcess, ExecutorSpec};
use berth_tests::mesos::AgentDouble;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

/// Printed before and after the part of stdout a test compares.
const BEGIN: &str = "--begin--";
const END: &str = "--end--";

fn with_markers(cmd: &str) -> String {
    format!("echo {BEGIN}\n{cmd}\necho {END}")
}

/// The text between the markers in `out`, if both are there.
fn between_markers(out: &str) -> Option<String> {
    let start = out.find(&format!("{BEGIN}\n"))? + BEGIN.len() + 1;
    let end = start + out[start..].find(&format!("{END}\n"))?;
    Some(out[start..end].to_string())
}

/// Starts the executor for a plain-command task; `env` goes into the TaskInfo's
/// executor command environment (as Marathon's `env` does).
fn start(
    lab: &Lab,
    tid: &str,
    cmd: &str,
    env: &[(&str, &str)],
) -> (AgentDouble, ExecutorProcess, ExecutorSpec) {
    let spec = lab.spec(tid, Some(cmd));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    let mut task = lab.task(tid);
    let vars: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    task["executor"]["command"]["environment"] = json!({ "variables": vars });
    d.launch_on_subscribe(task);
    let exec = d.spawn_executor(&spec, Duration::from_secs(10));
    (d, exec, spec)
}

fn last_update(d: &AgentDouble) -> Value {
    d.state().updates.last().cloned().unwrap_or_default()
}

/// Waits for the executor to exit, checks the double saw no violation and nothing is
/// left behind.
fn finish(lab: &Lab, d: &AgentDouble, mut exec: ExecutorProcess) {
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}

fn stdout_of(sandbox: &Path) -> String {
    std::fs::read_to_string(sandbox.join("stdout")).unwrap_or_default()
}

/// The busybox the test image was made from: the container's `/bin/sh`.
fn host_busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox-static is installed")
}

#[test]
fn awkward_commands_print_what_sh_c_prints() {
    let lab = Lab::new("cmdtext");
    let tid = lab.task_id("text");
    // Quotes of both kinds, $HOME and other expansions, newlines, `#` (a comment and in
    // words), `: ` (YAML's mapping indicator), `- `, braces, a backslash, a tab, and
    // characters a YAML reader would fold or refuse raw (NEL, LINE SEPARATOR, DEL).
    let script = [
        r#"printf '%s|' 'single '"'"'quoted'"'"'' "double \"quoted\"" "$HOME" '#hash' 'a: b'"#,
        "# a whole comment line: key: value",
        r#"printf '%s|' "tab	x" 'back\slash' '- item' '{a: [b]}' "$((6 * 7))" '$HOME' # trailing"#,
        "printf '\\n%s\\n' \"multi",
        "line: $MARATHON_APP_ID\"",
        "printf '%s\\n' 'nel\u{85}ls\u{2028}ps\u{2029}del\u{7f}end' 'astral \u{1F600} é'",
    ]
    .join("\n");
    let home = "/home/o'brien \"q\" #x: y";
    let (d, exec, spec) = start(&lab, &tid, &with_markers(&script), &[("HOME", home)]);
    d.wait_state(&tid, "TASK_FINISHED", T);
    let got = between_markers(&stdout_of(&spec.sandbox))
        .unwrap_or_else(|| panic!("no output: {}", stdout_of(&spec.sandbox)));
    let host = Command::new(host_busybox())
        .args(["sh", "-c", &script])
        .env_clear()
        .env("HOME", home)
        .env("MARATHON_APP_ID", "/e2e/app")
        .output()
        .expect("busybox sh on the host");
    assert!(host.status.success());
    let want = String::from_utf8(host.stdout).expect("utf-8");
    assert_eq!(got, want);
    // And the checks above really looked at the awkward parts.
    assert!(want.contains(home) && want.contains("|42|$HOME|"), "{want}");
    assert!(want.contains("\nline: /e2e/app\n"), "{want}");
    assert!(want.contains("ls\u{2028}ps"), "{want}");
    finish(&lab, &d, exec);
}

#[test]
fn exit_codes_decide_finished_or_failed() {
    for (cmd, state, text) in [
        ("sleep 0.5; exit 0", "TASK_FINISHED", "exited with status 0"),
        ("sleep 0.5; exit 3", "TASK_FAILED", "exited with status 3"),
        (
            "sleep 0.5; kill -USR1 $$",
            "TASK_FAILED",
            "killed by signal 10",
        ),
        (
            "sleep 0.5; kill -KILL $$",
            "TASK_FAILED",
            "killed by signal 9",
        ),
        // At once: the code still comes through, whether or not RUNNING was seen.
        ("exit 4", "TASK_FAILED", "status 4"),
    ] {
        let lab = Lab::new("cmdexit");
        let tid = lab.task_id("code");
        let (d, exec, _) = start(&lab, &tid, cmd, &[]);
        d.wait_state(&tid, state, T);
        let last = last_update(&d);
        assert_eq!(last["state"], state, "{cmd}: {last}");
        assert!(
            last["message"].as_str().unwrap_or("").contains(text),
            "{cmd}: {last}"
        );
        if cmd.starts_with("sleep") {
            // It ran: RUNNING came first, and the failure is the command's, not a launch
            // failure.
            let states = d.state().states(&tid);
            assert_eq!(states, ["TASK_STARTING", "TASK_RUNNING", state], "{cmd}");
            assert_ne!(last["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{last}");
        }
        finish(&lab, &d, exec);
    }
}

#[test]
fn kill_sends_sigterm_to_the_commands_group_and_ends_killed() {
    let lab = Lab::new("cmdkill");
    let tid = lab.task_id("trap");
    // A background child in the same process group traps TERM too: both report it.
    let cmd = "(trap 'echo child got TERM; exit 0' TERM; while :; do sleep 0.1; done) &\n\
               trap 'echo shell got TERM; wait; exit 7' TERM\n\
               echo > /mnt/mesos/sandbox/ready\n\
               while :; do sleep 0.1; done";
    let (d, exec, spec) = start(&lab, &tid, cmd, &[]);
    d.wait_state(&tid, "TASK_RUNNING", T);
    let ready = spec.sandbox.join("ready");
    assert!(d.wait(T, |_| ready.exists()), "the command never got ready");
    let t0 = Instant::now();
    d.kill(&tid, Some(Duration::from_secs(20)));
    d.wait_state(&tid, "TASK_KILLED", T);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "ended by SIGKILL at the grace end, not by its TERM trap: {took:?}"
    );
    let last = last_update(&d);
    assert!(
        last["message"]
            .as_str()
            .unwrap_or("")
            .contains("exited with status 7"),
        "{last}"
    );
    let out = stdout_of(&spec.sandbox);
    assert!(
        out.contains("shell got TERM") && out.contains("child got TERM"),
        "{out}"
    );
    finish(&lab, &d, exec);
}

#[test]
fn the_command_sees_the_task_environment_and_working_directory() {
    let lab = Lab::new("cmdenv");
    let tid = lab.task_id("env");
    let (d, exec, spec) = start(
        &lab,
        &tid,
        &format!("{}\nexec sleep 1000", with_markers("pwd; env")),
        &[("APP_SETTING", "it's a: value")],
    );
    d.wait_state(&tid, "TASK_RUNNING", T);
    assert!(
        d.wait(T, |_| between_markers(&stdout_of(&spec.sandbox)).is_some()),
        "no output: {}",
        stdout_of(&spec.sandbox)
    );
    let out = between_markers(&stdout_of(&spec.sandbox)).expect("output");
    // The environment init was started with (the bundle's, plus HOME which runc adds
    // when the bundle has none), read from the running init itself.
    let state = Command::new("runc")
        .arg("--root")
        .arg(&lab.runc_root)
        .args(["state", &format!("berth-{tid}")])
        .output()
        .expect("runc state");
    let state: Value = serde_json::from_slice(&state.stdout).expect("runc state json");
    let pid = state["pid"].as_u64().expect("pid");
    let init_env: BTreeSet<String> = std::fs::read(format!("/proc/{pid}/environ"))
        .expect("init's environ")
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    d.kill(&tid, Some(Duration::from_secs(5)));
    d.wait_state(&tid, "TASK_KILLED", T);

    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("/"), "working directory: {out}");
    let env: BTreeSet<String> = lines.map(str::to_string).collect();
    for want in [
        "MARATHON_APP_ID=/e2e/app".to_string(),
        format!("MESOS_TASK_ID={tid}"),
        format!("BERTH_TASK_ID={tid}"),
        format!("BERTH_CONTAINER_ID=berth-{tid}"),
        "BERTH_MEM_MB=64".to_string(),
        "BERTH_PORTS=31000".to_string(),
        "BERTH_RUN_DIR=/run/berth".to_string(),
        "MESOS_SANDBOX=/mnt/mesos/sandbox".to_string(),
        "PORT0=31000".to_string(),
        "APP_SETTING=it's a: value".to_string(),
    ] {
        assert!(env.contains(&want), "{want} missing from {env:#?}");
    }
    // Exactly init's environment, plus what the shell itself exports.
    let own: BTreeSet<String> = env
        .iter()
        .filter(|e| !e.starts_with("SHLVL=") && !e.starts_with("PWD="))
        .cloned()
        .collect();
    assert_eq!(
        own, init_env,
        "the command's environment differs from the task's"
    );
    finish(&lab, &d, exec);
}

#[test]
fn a_failure_writing_the_spec_undoes_everything() {
    let lab = Lab::new("cmdfail");
    let tid = lab.task_id("app");
    let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
    spec.env
        .push(("BERTH_EXECUTOR_FAIL_STEP".into(), "appspec".into()));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_FAILED", T);
    let u = last_update(&d);
    assert_eq!(u["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{u}");
    assert!(
        u["message"]
            .as_str()
            .unwrap_or("")
            .contains("appspec: failure injected"),
        "{u}"
    );
    finish(&lab, &d, exec);
}

#[test]
fn a_container_from_an_older_executor_is_re_attached_without_a_status_socket() {
    // An executor from before the generated spec ran plain commands under init's tini
    // mode: no `appspec` step in its checkpoint and no status socket. A new executor that
    // re-attaches to such a container must still report RUNNING (from `runc state`) and
    // obey KILL. Simulated: the first executor is SIGKILLed, its checkpoint loses the
    // `appspec` step and the socket is unlinked (init keeps running, unreachable).
    let lab = Lab::new("cmdlegacy");
    let tid = lab.task_id("old");
    let spec = lab.spec(&tid, Some("exec sleep 1000"));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    assert!(d.wait(T, |st| st.uuids.values().all(|a| *a)));
    // Not what an agent does (it fails the task and never takes a dead executor back,
    // see e2e_recovery.rs): a test of the executor's re-attach code.
    d.state().accept_relaunch_after_death = true;
    exec.kill();
    let cid = format!("berth-{tid}");
    let cp_path = lab.state.join(&cid).join("checkpoint.json");
    let mut cp: Value =
        serde_json::from_slice(&std::fs::read(&cp_path).expect("checkpoint")).expect("json");
    let steps = cp["steps"].as_array_mut().expect("steps");
    let before = steps.len();
    steps.retain(|s| s[0] != "appspec");
    assert_eq!(steps.len(), before - 1, "{cp}");
    std::fs::write(&cp_path, serde_json::to_vec(&cp).expect("json")).expect("write");
    std::fs::remove_file(lab.run.join(&cid).join("init.sock")).expect("unlink the socket");

    let mut exec2 = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec2), "{}", exec2.log());
    assert!(
        d.wait(T, |st| st
            .states(&tid)
            .iter()
            .filter(|s| *s == "TASK_RUNNING")
            .count()
            == 2),
        "{}",
        exec2.log()
    );
    assert!(exec2.log().contains("tini mode"), "{}", exec2.log());
    d.kill(&tid, Some(Duration::from_secs(5)));
    d.wait_state(&tid, "TASK_KILLED", T);
    finish(&lab, &d, exec2);
}
