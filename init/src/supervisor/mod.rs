//! Supervisor mode: runs the app spec's services as process groups, with health checks,
//! hooks, cron, restart backoff, ordered start and stop, and the status socket.
//!
//! Everything is validated and prepared (spec, users, `add` copies, socket) before the
//! first process starts, so a bad spec starts nothing.

mod add;
mod checks;
mod cronrun;
pub mod engine;
mod health_http;
mod lifecycle;
mod logfile;
pub mod os;
mod requests;
mod runloop;
pub mod service;
mod socket;
mod sys;
mod users;
mod wake;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use engine::{Engine, EngineConfig};

use crate::signals::{self, InheritedSignals, SignalFd};
use crate::spec::{AppSpec, SpecError};

/// Default spec path.
pub const DEFAULT_SPEC: &str = "/etc/berth/app.yaml";
/// Default status socket.
pub const DEFAULT_SOCKET: &str = "/run/berth/init.sock";

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The app spec.
    pub spec: PathBuf,
    /// The status socket.
    pub socket: PathBuf,
}

/// Why supervisor mode could not start (its exit code: 2 for a bad spec, else 1).
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The spec is unusable.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A user or group does not exist.
    #[error("{0}")]
    Ids(String),
    /// An `add` copy failed.
    #[error(transparent)]
    Add(#[from] add::AddError),
    /// Signal setup failed.
    #[error(transparent)]
    Signals(#[from] signals::SignalError),
    /// The status socket or the health port cannot be set up.
    #[error("cannot set up {what}")]
    Io {
        /// What.
        what: String,
        /// Why.
        #[source]
        err: std::io::Error,
    },
}

impl SupervisorError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            SupervisorError::Spec(_) | SupervisorError::Ids(_) => 2,
            _ => 1,
        }
    }
}

/// Whether BERTH_DEBUG asks for debug mode.
pub fn debug_env() -> bool {
    std::env::var("BERTH_DEBUG").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Loads the spec (for `--check` and for `run`).
pub fn load(opts: &Options) -> Result<AppSpec, SupervisorError> {
    Ok(AppSpec::load(&opts.spec)?)
}

/// Runs the app until shutdown; returns the exit code.
pub fn run(opts: &Options, spec: AppSpec) -> Result<i32, SupervisorError> {
    let ids_err = |e: users::UnknownId, whose: &str| {
        SupervisorError::Ids(format!("{}: {whose}: {e}", opts.spec.display()))
    };
    let mut service_ids = Vec::new();
    for s in &spec.services {
        service_ids.push(
            users::resolve(s.user.as_deref(), s.group.as_deref())
                .map_err(|e| ids_err(e, &format!("services.{}", s.name)))?,
        );
    }
    let mut cron_ids = Vec::new();
    for c in &spec.cron {
        cron_ids.push(
            users::resolve(c.user.as_deref(), None)
                .map_err(|e| ids_err(e, &format!("cron {}", c.name)))?,
        );
    }

    let inherited = InheritedSignals::capture()?;
    signals::block_all()?;
    let sigfd = SignalFd::new(true)?;

    add::run_all(&spec.adds)?;
    let io = |what: String| move |err| SupervisorError::Io { what, err };
    let listener = socket::bind(&opts.socket)
        .map_err(io(format!("the status socket {}", opts.socket.display())))?;
    let (waker, inbox) = wake::channel().map_err(io("the wake pipe".into()))?;
    let snapshot = match spec.health_port {
        Some(port) => {
            let snap = Arc::new(Mutex::new(health_http::Snapshot::default()));
            health_http::start(port, snap.clone())
                .map_err(io(format!("the health port {port}")))?;
            Some(snap)
        }
        None => None,
    };

    let debug = spec.debug || debug_env();
    if debug {
        tracing::info!("debug mode: a failed service keeps init up");
    }
    let cfg = EngineConfig {
        spec,
        debug,
        inherited_env: std::env::vars().collect(),
        service_ids,
        cron_ids,
    };
    let os = sys::SysOs::new(inherited, waker.clone());
    let engine = Engine::new(cfg, os, runloop::wall_now());
    let code = runloop::Loop {
        engine,
        sigfd,
        listener,
        inbox,
        waker,
        snapshot,
    }
    .run();
    let _ = std::fs::remove_file(&opts.socket);
    Ok(code)
}

#[cfg(test)]
mod tests;
