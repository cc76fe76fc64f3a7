//! The app spec generated for a plain command (`Mode::Command`): berth-init runs the
//! command in supervisor mode as the one service `main`, so a plain `cmd` task gets what
//! an app-spec task gets (DHCP on eth0 when networking is configured, the status socket
//! that tells the executor when it runs and with which address, the lease released at
//! stop).
//!
//! The service is `[/bin/sh, -c, CMD]` with `restart: never` (its exit ends init, with
//! its code: 128+N for signal N), required, `log: inherit` (the sandbox's stdout and
//! stderr), stop signal TERM to its process group and a long stop timeout, so that the
//! executor's kill grace, not init, decides when SIGKILL comes. The service inherits
//! init's environment (the task's) and working directory (the bundle's `/`).
//!
//! The file is JSON (which berth-init's YAML parser reads), written by a serializer:
//! the command is never spliced into text. The few characters a YAML reader would fold
//! or refuse in a quoted string, though JSON allows them raw (C1 controls and DEL, the
//! Unicode line and paragraph separators, BOM and non-characters), are written as
//! `\uXXXX` escapes, which both formats read back as the same character.
//!
//! The [`CommandSpec`] step writes it into the task's run dir (`/run/berth` in the
//! container) after `rundir`; its undo removes it.

use std::collections::BTreeMap;
use std::io;

use serde::Serialize;

use super::plan::{Mode, Plan};
use super::steps::{Step, StepCtx, StepError};

/// The file's name in the task's run dir.
pub const FILE_NAME: &str = "app.yaml";
pub use super::plan::CONTAINER_PATH;
/// The one service's name.
pub const SERVICE: &str = "main";
/// init's stop timeout for the service: longer than any kill grace, so that the
/// executor's SIGKILL at the end of the grace comes first (as with the tini mode, where
/// init never escalates).
pub const STOP_TIMEOUT: &str = "24h";

#[derive(Debug, thiserror::Error)]
pub enum AppSpecError {
    #[error("cannot serialize the app spec for the command")]
    Serialize(#[source] serde_json::Error),
}

#[derive(Serialize)]
struct Spec<'a> {
    services: BTreeMap<&'static str, Service<'a>>,
}

#[derive(Serialize)]
struct Service<'a> {
    command: [&'a str; 3],
    restart: &'static str,
    required: bool,
    log: &'static str,
    stop_signal: &'static str,
    stop_timeout: &'static str,
}

/// JSON whose strings a YAML 1.1 reader (libyaml) reads back unchanged: characters it
/// treats as line breaks or refuses raw are escaped (`\uXXXX`, all in the BMP and not
/// surrogates, so valid in both).
struct YamlSafe;

fn yaml_needs_escape(c: char) -> bool {
    matches!(
        u32::from(c),
        0x7F..=0x9F | 0x2028 | 0x2029 | 0xFEFF | 0xFFFE | 0xFFFF
    )
}

impl serde_json::ser::Formatter for YamlSafe {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if yaml_needs_escape(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04X}", u32::from(c))?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// The spec for `cmd`.
pub fn generate(cmd: &str) -> Result<Vec<u8>, AppSpecError> {
    let mut services = BTreeMap::new();
    services.insert(
        SERVICE,
        Service {
            command: ["/bin/sh", "-c", cmd],
            restart: "never",
            required: true,
            log: "inherit",
            stop_signal: "TERM",
            stop_timeout: STOP_TIMEOUT,
        },
    );
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, YamlSafe);
    Spec { services }
        .serialize(&mut ser)
        .map_err(AppSpecError::Serialize)?;
    out.push(b'\n');
    Ok(out)
}

/// The preparation step `appspec`: writes the generated spec into the run dir.
pub struct CommandSpec {
    pub command: String,
}

impl CommandSpec {
    /// The step for a plan that runs a plain command, `None` for an app-spec image.
    pub fn for_plan(plan: &Plan) -> Option<CommandSpec> {
        match &plan.mode {
            Mode::Command(c) => Some(CommandSpec { command: c.clone() }),
            Mode::AppSpec => None,
        }
    }
}

/// Inserts the `appspec` step right after `rundir` (which makes the directory) when the
/// plan runs a plain command.
pub fn insert_step(steps: &mut Vec<Box<dyn Step>>, plan: &Plan) {
    if let Some(s) = CommandSpec::for_plan(plan) {
        let at = steps
            .iter()
            .position(|s| s.name() == "rundir")
            .map_or(0, |i| i + 1);
        steps.insert(at, Box::new(s));
    }
}

impl Step for CommandSpec {
    fn name(&self) -> &'static str {
        "appspec"
    }

    fn run(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let data = generate(&self.command).map_err(|e| StepError::new("appspec", e.to_string()))?;
        let path = ctx.run_dir().join(FILE_NAME);
        std::fs::write(&path, data).map_err(|e| StepError::io("appspec", "cannot write", &path, e))
    }

    fn undo(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let path = ctx.run_dir().join(FILE_NAME);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(StepError::io("appspec", "cannot remove", &path, e))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn plan() -> Plan {
        Plan {
            mode: Mode::AppSpec,
            env: vec![],
            ..crate::task::bundle::tests::plan()
        }
    }

    fn parsed(cmd: &str) -> Value {
        serde_json::from_slice(&generate(cmd).unwrap()).unwrap()
    }

    #[test]
    fn one_never_restarted_service_running_the_command_through_sh() {
        let v = parsed("echo hi");
        let main = &v["services"][SERVICE];
        assert_eq!(
            main["command"],
            serde_json::json!(["/bin/sh", "-c", "echo hi"])
        );
        assert_eq!(main["restart"], "never");
        assert_eq!(main["required"], true);
        assert_eq!(main["log"], "inherit");
        assert_eq!(main["stop_signal"], "TERM");
        assert_eq!(main["stop_timeout"], STOP_TIMEOUT);
        assert_eq!(v["services"].as_object().unwrap().len(), 1);
        assert_eq!(v.as_object().unwrap().len(), 1, "nothing but the service");
    }

    #[test]
    fn awkward_commands_round_trip_exactly() {
        for cmd in [
            "echo 'single' \"double\" $HOME `id` \\n",
            "a: b\n# not a comment\n- not a list\n{not: a map}",
            "tab\there, cr\r, esc\u{1b}, del\u{7f}, nel\u{85}, c1\u{9b}",
            "line sep\u{2028}para sep\u{2029} bom\u{feff} nonchar\u{fffe}\u{ffff}",
            "astral \u{1F600} é ü 中文",
            "   leading and trailing spaces   ",
            "",
        ] {
            let bytes = generate(cmd).unwrap();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(v["services"][SERVICE]["command"][2], cmd, "{cmd:?}");
            let text = String::from_utf8(bytes).unwrap();
            assert!(
                !text
                    .chars()
                    .any(|c| yaml_needs_escape(c) || (c.is_control() && c != '\n')),
                "raw characters a YAML reader would change: {text:?}"
            );
            assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
        }
    }

    #[test]
    fn the_step_is_only_for_plain_commands_and_goes_after_rundir() {
        use crate::task::builtin::default_steps;
        let mut plan = plan();
        plan.mode = Mode::Command("sleep 1".into());
        let mut steps = default_steps();
        insert_step(&mut steps, &plan);
        let names: Vec<&str> = steps.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "rundir",
                "appspec",
                "image",
                "rootfs",
                "bundle",
                "container"
            ]
        );
        plan.mode = Mode::AppSpec;
        let mut steps = default_steps();
        insert_step(&mut steps, &plan);
        assert!(!steps.iter().any(|s| s.name() == "appspec"));
    }

    #[test]
    fn the_step_writes_and_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = plan();
        plan.mode = Mode::Command("exit 3".into());
        let cfg = crate::task::config::RunConfig {
            run_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let ctx = StepCtx {
            plan,
            cfg,
            sandbox: dir.path().to_path_buf(),
            outputs: Default::default(),
        };
        std::fs::create_dir_all(ctx.run_dir()).unwrap();
        let step = CommandSpec::for_plan(&ctx.plan).unwrap();
        step.run(&ctx).unwrap();
        let file = ctx.run_dir().join(FILE_NAME);
        let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(v["services"][SERVICE]["command"][2], "exit 3");
        step.undo(&ctx).unwrap();
        assert!(!file.exists());
        step.undo(&ctx).unwrap();
    }
}
