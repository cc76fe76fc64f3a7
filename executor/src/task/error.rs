//! The plan's error: what makes a task impossible, naming the field or setting at fault
//! (the bottom layer: every other layer may fail with it).

/// Every message is bounded (`capped`): it ends up in a Mesos status update, and a
/// task-supplied value in it (a label, a name) may be of any size.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("resources.{name}: {}", capped(why))]
    Resource { name: String, why: String },
    #[error("labels.{}: {}", capped(key), capped(why))]
    Label { key: String, why: String },
    #[error("command: {}", capped(why))]
    Command { why: String },
    /// A variable of the task's environment; `origin` says where it came from
    /// (`command.environment.variables[3].name`, the executor's environment, `--env`).
    #[error("{}: {}", capped(origin), capped(why))]
    Env { origin: String, why: String },
    #[error("health_check: {}", capped(why))]
    Health { why: String },
    /// The executor's own settings make the task impossible (not the task's fault).
    #[error("executor setting {setting}: {}", capped(why))]
    Config { setting: String, why: String },
}

/// A message part cut at 1000 characters (a safety net under [`shown`]).
fn capped(s: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 1000;
    match s.char_indices().nth(MAX) {
        None => s.into(),
        Some((at, _)) => format!("{}... ({} bytes)", &s[..at], s.len()).into(),
    }
}
