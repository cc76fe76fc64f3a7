//! Container preparation as a list of steps, each recorded in a checkpoint before and
//! after it runs, each with an undo.
//!
//! [`prepare`] runs the steps in order; if one fails, it undoes that step (which may have
//! half-run) and every step before it, in reverse, and reports everything. [`undo_all`]
//! does the same from a checkpoint after an executor crash. Other crates plug their own
//! steps in (the /home volume, the network) by implementing [`Step`]; steps hand results
//! to later ones (a netns path, a volume mount) through [`Outputs`], which the checkpoint
//! keeps.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::config::RunConfig;
use super::plan::Plan;

/// What a step failed at.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct StepError {
    pub step: String,
    pub message: String,
}

impl StepError {
    pub fn new(step: &str, message: impl Into<String>) -> Self {
        StepError {
            step: step.into(),
            message: message.into(),
        }
    }
    pub fn io(step: &str, what: &str, path: &Path, err: std::io::Error) -> Self {
        StepError::new(step, format!("{what} {}: {err}", path.display()))
    }
}

/// Results steps hand to later steps and to the runner; kept in the checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Outputs {
    /// A network namespace to join (from the network step).
    pub netns: Option<PathBuf>,
    /// The container's IPv4 address, when the network step knows it.
    pub ip: Option<String>,
    /// Extra bind mounts: (host source, container destination, read-only).
    pub binds: Vec<(PathBuf, String, bool)>,
    /// The pid of the runtime wrapper (the container step).
    pub wrapper_pid: Option<u32>,
    /// The image's directory used as the overlay's lower layer (the image step).
    #[serde(default)]
    pub image: Option<PathBuf>,
}

/// Everything a step may look at.
pub struct StepCtx {
    pub plan: Plan,
    pub cfg: RunConfig,
    /// The host sandbox (MESOS_DIRECTORY).
    pub sandbox: PathBuf,
    pub outputs: Mutex<Outputs>,
}

impl StepCtx {
    pub fn state_dir(&self) -> PathBuf {
        self.plan.state_dir(&self.cfg)
    }
    pub fn run_dir(&self) -> PathBuf {
        self.plan.run_dir(&self.cfg)
    }
    pub fn bundle_dir(&self) -> PathBuf {
        super::plan::bundle_dir(&self.state_dir())
    }
    pub fn exit_file(&self) -> PathBuf {
        self.state_dir().join("exit")
    }
    pub fn outputs(&self) -> Outputs {
        self.outputs.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

/// One preparation step. `undo` must be idempotent and must cope with a half-done `run`.
pub trait Step: Send + Sync {
    fn name(&self) -> &'static str;
    fn run(&self, ctx: &StepCtx) -> Result<(), StepError>;
    fn undo(&self, ctx: &StepCtx) -> Result<(), StepError>;
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Started,
    Done,
}

/// The checkpoint of one container's preparation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub container_id: String,
    pub steps: Vec<(String, Phase)>,
    pub outputs: Outputs,
}

impl Checkpoint {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("checkpoint.json")
    }

    pub fn load(state_dir: &Path) -> Option<Checkpoint> {
        let data = std::fs::read(Self::path(state_dir)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// Writes atomically (temporary file + rename).
    pub fn save(&self, state_dir: &Path) -> Result<(), StepError> {
        let path = Self::path(state_dir);
        let tmp = path.with_extension("tmp");
        let data = serde_json::to_vec_pretty(self)
            .map_err(|e| StepError::new("checkpoint", e.to_string()))?;
        std::fs::write(&tmp, data)
            .map_err(|e| StepError::io("checkpoint", "cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| StepError::io("checkpoint", "cannot rename", &path, e))
    }

    fn mark(&mut self, name: &str, phase: Phase) {
        match self.steps.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = phase,
            None => self.steps.push((name.to_string(), phase)),
        }
    }

    pub fn phase(&self, name: &str) -> Option<Phase> {
        self.steps.iter().find(|(n, _)| n == name).map(|(_, p)| *p)
    }
}

/// Runs every step; on failure undoes what was done and returns every error (the cause
/// first, then any undo failures).
pub fn prepare(steps: &[Box<dyn Step>], ctx: &StepCtx) -> Result<(), Vec<StepError>> {
    match prepare_unless(steps, ctx, &|| false)? {
        Prepared::Done => Ok(()),
        Prepared::Stopped(errs) => Err(errs),
    }
}

/// How [`prepare_unless`] ended when no step failed.
#[derive(Debug)]
pub enum Prepared {
    /// Every step ran.
    Done,
    /// `stop` said so between two steps: what was done is undone (these are the undo
    /// failures; the state dir is kept if there are any).
    Stopped(Vec<StepError>),
}

/// [`prepare`], asking `stop` before each step (a KILL during the launch): if it says
/// so, what was done is undone and no further step runs.
///
/// A container of the same id found on the host (its state dir, or the runtime's record
/// under the runtime root) is refused before anything is made or touched: it is another
/// executor's container or a leftover of a crashed one, and launching over it would
/// overwrite its checkpoint and mount a second root over its own.
pub fn prepare_unless(
    steps: &[Box<dyn Step>],
    ctx: &StepCtx,
    stop: &dyn Fn() -> bool,
) -> Result<Prepared, Vec<StepError>> {
    let state = ctx.state_dir();
    let known = ctx.cfg.runtime_root.join(&ctx.plan.container_id);
    let left: Vec<String> = [
        (state.symlink_metadata().is_ok(), "a state dir", &state),
        (
            known.symlink_metadata().is_ok(),
            "the runtime's record",
            &known,
        ),
    ]
    .into_iter()
    .filter(|(found, _, _)| *found)
    .map(|(_, what, path)| format!("{what} at {}", path.display()))
    .collect();
    if !left.is_empty() {
        return Err(vec![StepError::new(
            "state",
            format!(
                "container {} already exists ({}): refusing to launch over it (another executor's container, or a leftover to clean up)",
                ctx.plan.container_id,
                left.join(", ")
            ),
        )]);
    }
    if let Some(parent) = state.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| vec![StepError::io("state", "cannot create", parent, e)])?;
    }
    if let Err(e) = std::fs::create_dir(&state) {
        return Err(vec![if e.kind() == std::io::ErrorKind::AlreadyExists {
            StepError::new(
                "state",
                format!(
                    "a state dir of container {} is left at {}: refusing to launch over it (another executor's container, or a leftover to clean up)",
                    ctx.plan.container_id,
                    state.display()
                ),
            )
        } else {
            StepError::io("state", "cannot create", &state, e)
        }]);
    }
    let mut cp = Checkpoint {
        container_id: ctx.plan.container_id.clone(),
        ..Default::default()
    };
    cp.save(&state).map_err(|e| vec![e])?;
    for (i, step) in steps.iter().enumerate() {
        if stop() {
            return Ok(Prepared::Stopped(undo_steps(&steps[..i], ctx)));
        }
        cp.mark(step.name(), Phase::Started);
        let mut result = cp.save(&state);
        if result.is_ok() {
            result = step.run(ctx);
        }
        if result.is_ok() && ctx.cfg.crash_step.as_deref() == Some(step.name()) {
            tracing::warn!(
                step = step.name(),
                "BERTH_EXECUTOR_CRASH_STEP: killing the executor"
            );
            // SAFETY: kill(2) of this very process; no memory is passed.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        if result.is_ok() && ctx.cfg.fail_step.as_deref() == Some(step.name()) {
            result = Err(StepError::new(
                step.name(),
                "failure injected by BERTH_EXECUTOR_FAIL_STEP",
            ));
        }
        if let Err(e) = result {
            let mut errors = vec![e];
            errors.extend(undo_steps(&steps[..=i], ctx));
            return Err(errors);
        }
        cp.outputs = ctx.outputs();
        cp.mark(step.name(), Phase::Done);
        if let Err(e) = cp.save(&state) {
            let mut errors = vec![e];
            errors.extend(undo_steps(&steps[..=i], ctx));
            return Err(errors);
        }
    }
    if stop() {
        return Ok(Prepared::Stopped(undo_steps(steps, ctx)));
    }
    Ok(Prepared::Done)
}

/// Undoes the given steps in reverse, continuing past failures; then removes the state
/// dir (with the checkpoint) if everything succeeded. Returns the failures.
pub fn undo_steps(steps: &[Box<dyn Step>], ctx: &StepCtx) -> Vec<StepError> {
    let mut errors = Vec::new();
    for step in steps.iter().rev() {
        if let Err(e) = step.undo(ctx) {
            tracing::error!(error = %e, "undo failed");
            errors.push(e);
        }
    }
    if errors.is_empty() {
        let state = ctx.state_dir();
        if let Err(e) = std::fs::remove_dir_all(&state) {
            if e.kind() != std::io::ErrorKind::NotFound {
                errors.push(StepError::io("state", "cannot remove", &state, e));
            }
        }
    }
    errors
}

/// Undoes every step the checkpoint shows as started or done (after an executor crash).
pub fn undo_all(steps: &[Box<dyn Step>], ctx: &StepCtx, cp: &Checkpoint) -> Vec<StepError> {
    if let Ok(mut o) = ctx.outputs.lock() {
        *o = cp.outputs.clone();
    }
    let n = steps
        .iter()
        .rposition(|s| cp.phase(s.name()).is_some())
        .map_or(0, |i| i + 1);
    undo_steps(&steps[..n], ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::plan::Mode;
    use std::sync::Arc;

    struct Rec {
        name: &'static str,
        fail: bool,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Step for Rec {
        fn name(&self) -> &'static str {
            self.name
        }
        fn run(&self, _: &StepCtx) -> Result<(), StepError> {
            self.log.lock().unwrap().push(format!("run {}", self.name));
            if self.fail {
                Err(StepError::new(self.name, "boom"))
            } else {
                Ok(())
            }
        }
        fn undo(&self, _: &StepCtx) -> Result<(), StepError> {
            self.log.lock().unwrap().push(format!("undo {}", self.name));
            Ok(())
        }
    }

    fn ctx(dir: &Path, fail_step: Option<&str>) -> StepCtx {
        StepCtx {
            plan: Plan {
                task_id: "t".into(),
                container_id: "berth-t".into(),
                hostname: "t".into(),
                cpus: 0.0,
                mem_mb: 0.0,
                disk_mb: 0.0,
                ports: vec![],
                home_mb: 0.0,
                bandwidth_mbit: 0.0,
                image: "/".into(),
                mode: Mode::Command("true".into()),
                env: vec![],
                health: None,
            },
            cfg: RunConfig {
                runtime: "runc".into(),
                runtime_root: dir.join("root"),
                init: "/bin/true".into(),
                images: dir.into(),
                state_dir: dir.join("state"),
                run_dir: dir.join("run"),
                cgroup_parent: "berth".into(),
                fail_step: fail_step.map(str::to_string),
                ..RunConfig::default()
            },
            sandbox: dir.into(),
            outputs: Mutex::new(Outputs::default()),
        }
    }

    fn steps(log: &Arc<Mutex<Vec<String>>>, fail: Option<&'static str>) -> Vec<Box<dyn Step>> {
        ["a", "b", "c"]
            .into_iter()
            .map(|n| {
                Box::new(Rec {
                    name: n,
                    fail: Some(n) == fail,
                    log: log.clone(),
                }) as Box<dyn Step>
            })
            .collect()
    }

    #[test]
    fn all_steps_run_and_are_checkpointed() {
        let d = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(vec![]));
        let c = ctx(d.path(), None);
        prepare(&steps(&log, None), &c).unwrap();
        assert_eq!(*log.lock().unwrap(), ["run a", "run b", "run c"]);
        let cp = Checkpoint::load(&c.state_dir()).unwrap();
        assert_eq!(cp.phase("c"), Some(Phase::Done));
    }

    #[test]
    fn a_failure_undoes_everything_in_reverse() {
        let d = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(vec![]));
        let c = ctx(d.path(), None);
        let errs = prepare(&steps(&log, Some("b")), &c).unwrap_err();
        assert_eq!(errs[0].to_string(), "b: boom");
        assert_eq!(*log.lock().unwrap(), ["run a", "run b", "undo b", "undo a"]);
        assert!(
            !c.state_dir().exists(),
            "state dir removed after a clean undo"
        );
    }

    #[test]
    fn a_leftover_state_dir_or_runtime_container_is_refused_untouched() {
        let d = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(vec![]));
        let c = ctx(d.path(), None);
        std::fs::create_dir_all(c.state_dir()).unwrap();
        std::fs::write(Checkpoint::path(&c.state_dir()), b"old").unwrap();
        let errs = prepare(&steps(&log, None), &c).unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .contains(&c.state_dir().display().to_string()),
            "{}",
            errs[0]
        );
        assert!(log.lock().unwrap().is_empty(), "no step ran nor was undone");
        assert_eq!(
            std::fs::read(Checkpoint::path(&c.state_dir())).unwrap(),
            b"old"
        );
        std::fs::remove_dir_all(c.state_dir()).unwrap();
        let known = c.cfg.runtime_root.join("berth-t");
        std::fs::create_dir_all(&known).unwrap();
        let errs = prepare(&steps(&log, None), &c).unwrap_err();
        assert!(
            errs[0].to_string().contains("the runtime's record at"),
            "{}",
            errs[0]
        );
        assert!(log.lock().unwrap().is_empty());
        assert!(!c.state_dir().exists());
    }

    #[test]
    fn a_stop_between_steps_undoes_what_was_done() {
        let d = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(vec![]));
        let c = ctx(d.path(), None);
        let l2 = log.clone();
        let stop = move || l2.lock().unwrap().len() >= 2;
        let r = prepare_unless(&steps(&log, None), &c, &stop).unwrap();
        assert!(
            matches!(r, Prepared::Stopped(ref e) if e.is_empty()),
            "{r:?}"
        );
        assert_eq!(*log.lock().unwrap(), ["run a", "run b", "undo b", "undo a"]);
        assert!(!c.state_dir().exists());
    }

    #[test]
    fn injected_failure_and_recovery_undo() {
        let d = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(vec![]));
        let c = ctx(d.path(), Some("c"));
        let errs = prepare(&steps(&log, None), &c).unwrap_err();
        assert!(errs[0].to_string().contains("injected"));
        assert_eq!(
            *log.lock().unwrap(),
            ["run a", "run b", "run c", "undo c", "undo b", "undo a"]
        );
        // A half-prepared container found after a crash: undo what the checkpoint shows.
        let log = Arc::new(Mutex::new(vec![]));
        let c = ctx(d.path(), None);
        std::fs::create_dir_all(c.state_dir()).unwrap();
        let cp = Checkpoint {
            container_id: "berth-t".into(),
            steps: vec![("a".into(), Phase::Done), ("b".into(), Phase::Started)],
            outputs: Outputs::default(),
        };
        assert!(undo_all(&steps(&log, None), &c, &cp).is_empty());
        assert_eq!(*log.lock().unwrap(), ["undo b", "undo a"]);
    }
}
