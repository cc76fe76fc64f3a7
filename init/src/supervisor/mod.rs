//! Supervisor mode: runs the app spec's services as process groups, with health checks,
//! hooks, cron, restart backoff, ordered start and stop, and the status socket.
//!
//! Everything is validated and prepared (spec, users, `add` copies, socket) before the
//! first process starts, so a bad spec starts nothing.

mod add;
pub mod caps;
mod checks;
mod cronrun;
pub mod engine;
mod health_http;
mod lifecycle;
mod logfile;
mod login;
mod lvs;
pub mod network;
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
use crate::spec::{AppSpec, NetworkSpec, SpecError};

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
    /// DHCP could not get a lease (or could not start).
    #[error(transparent)]
    Network(#[from] network::NetworkError),
    /// The network capabilities could not be dropped for the services.
    #[error("cannot drop CAP_NET_ADMIN/CAP_NET_RAW for the services")]
    Caps(#[source] std::io::Error),
    /// `login.required` and login could not be set up.
    #[error("login")]
    Login(#[from] crate::login::LoginError),
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
            SupervisorError::Spec(_)
            | SupervisorError::Ids(_)
            | SupervisorError::Network(network::NetworkError::Env(_)) => 2,
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
pub fn run(opts: &Options, mut spec: AppSpec) -> Result<i32, SupervisorError> {
    let mut login = login::prepare(&mut spec, &opts.socket)?;
    let statsd = match &spec.statsd {
        Some(s) => Some(crate::statsd::bind(s).map_err(|err| SupervisorError::Io {
            what: format!("statsd: UDP 127.0.0.1:{}", s.port()),
            err,
        })?),
        None => None,
    };
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
    // Started with SIGCHLD ignored, the kernel would reap our children itself and no exit
    // would ever reach the reaper: undo that for init (children still inherit it).
    signals::reset_to_default(libc::SIGCHLD)?;
    signals::block_all()?;
    let mut sigfd = SignalFd::new(true)?;
    if let Some(l) = login.as_mut() {
        l.start_refresh().map_err(|err| SupervisorError::Io {
            what: "the login refresh thread".into(),
            err,
        })?;
    }

    let statsd_status = match statsd {
        Some(s) => {
            let st = s.status.clone();
            s.start().map_err(|err| SupervisorError::Io {
                what: "the statsd thread".into(),
                err,
            })?;
            Some(st)
        }
        None => None,
    };

    add::run_all(&spec.adds)?;
    let io = |what: String| move |err| SupervisorError::Io { what, err };
    let listener = socket::bind(&opts.socket)
        .map_err(io(format!("the status socket {}", opts.socket.display())))?;
    let (waker, inbox) = wake::channel().map_err(io("the wake pipe".into()))?;
    // DHCP before any service (and before the health port), on its own thread; then the
    // main thread, which forks every service, gives up the network capabilities.
    let net_spec = NetworkSpec::merge_env(
        spec.network.clone(),
        std::env::var("BERTH_DHCP_IFACE").ok().as_deref(),
    )
    .map_err(network::NetworkError::Env);
    let net = match net_spec {
        Ok(Some(ns)) => {
            let cfg = network::NetConfig::resolve(
                &ns,
                &opts.socket,
                |k| std::env::var(k).ok(),
                hostname(),
            );
            tracing::info!(iface = %cfg.iface, identity = %cfg.identity, timeout_secs = cfg.timeout.as_secs(), "acquiring a DHCP lease");
            let mut got = Vec::new();
            let sigfd = &mut sigfd;
            let abort = move || {
                got.clear();
                let _ = sigfd.read(&mut got);
                got.iter()
                    .any(|r| r.signo == libc::SIGTERM || r.signo == libc::SIGINT)
            };
            match network::Network::start(cfg, waker.clone(), abort) {
                Ok(n) => Some(n),
                Err(e @ network::NetworkError::Aborted(_)) => {
                    tracing::info!("{e}: nothing was started");
                    let _ = std::fs::remove_file(&opts.socket);
                    return Ok(0);
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&opts.socket);
                    return Err(e.into());
                }
            }
        }
        Ok(None) => None,
        Err(e) => {
            let _ = std::fs::remove_file(&opts.socket);
            return Err(e.into());
        }
    };
    caps::drop_for_children().map_err(SupervisorError::Caps)?;
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
    let lvs_hook = lvs::LvsHook::new(
        &cfg.spec,
        lvs::LvsHook::grace_from_env(std::env::var("BERTH_KILL_GRACE_MS").ok().as_deref()),
        std::time::Instant::now(),
    );
    let mut engine = Engine::new(cfg, os, runloop::wall_now());
    if let Some(hook) = lvs_hook {
        let lease = net.as_ref().map(|n| n.watch());
        let w = waker.clone();
        hook.worker(
            Box::new(move || w.send(wake::Msg::Lvs)),
            Box::new(move || {
                let l = lease.as_ref()?;
                let ip = l
                    .borrow()
                    .lease
                    .as_ref()
                    .map(|l| std::net::IpAddr::V4(l.address));
                ip
            }),
        )
        .spawn()
        .map_err(io("the LVS thread".into()))?;
        engine.set_lvs(hook);
    }
    if let Some(n) = &net {
        let rx = n.watch();
        engine.set_network_status(move || {
            network::status_json(&rx.borrow(), berth_netcfg::dhcp::lease::now_secs())
        });
    }
    if let Some(l) = login {
        engine.set_login_status(move || l.json());
    }
    if let Some(st) = statsd_status {
        engine.set_statsd_status(move || crate::statsd::json(&st));
    }
    let code = runloop::Loop {
        engine,
        sigfd,
        listener,
        inbox,
        waker,
        snapshot,
    }
    .run();
    // Services are down: now give the address back.
    if let Some(n) = net {
        n.stop();
    }
    let _ = std::fs::remove_file(&opts.socket);
    Ok(code)
}

/// The container's hostname, if it has one.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let h = String::from_utf8_lossy(&buf[..end]).into_owned();
    (!h.is_empty()).then_some(h)
}

#[cfg(test)]
mod tests;
