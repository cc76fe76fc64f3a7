//! The app spec (`/etc/berth/app.yaml`): parsed and fully validated before anything runs.
//!
//! Two formats in one file: the legacy keys (`require`, `service: [{port}]`, `add`,
//! `entry`) and the full format (`services`, `cron`, `debug`, `env`, `health_port`, `network`).
//! `entry` lines become services named `entry-1`, `entry-2`, ..., each depending on the
//! one before, restarted on failure. Every error names the file, line, column and key.

pub mod caps;
pub mod command;
pub mod duration;
pub mod login;
pub mod lvs;
pub mod network;
pub mod service;
pub mod statsd;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use command::Command;
pub use login::LoginSpec;
pub use network::NetworkSpec;
pub use service::{HealthSpec, HookSpec, LogSpec, Port, Probe, RestartPolicy, ServiceSpec};

use crate::cron::Schedule;
use duration::Dur;

/// A spec that cannot be used; init exits 2 with it.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file cannot be read.
    #[error("cannot read the app spec {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        err: std::io::Error,
    },
    /// Syntax, an unknown key, a bad value: found by the parser.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The key and what is wrong, with what would be valid.
        message: String,
    },
}

/// One `add` line: copy `src` (relative to the spec's directory) to `dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddSpec {
    /// Source, resolved against the spec's directory.
    pub src: PathBuf,
    /// Destination; a trailing `/` or an existing directory means "into".
    pub dest: PathBuf,
    /// `dest` was written with a trailing `/`.
    pub into_dir: bool,
}

/// A cron job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronSpec {
    /// Name shown in logs.
    pub name: String,
    /// 5-field schedule (or 6 with seconds).
    pub schedule: Schedule,
    /// What to run.
    pub command: Command,
    /// Kill the run's group after this; default: none.
    pub timeout: Option<Dur>,
    /// Run as this user.
    pub user: Option<String>,
}

impl CronSpec {
    /// The timeout, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout.map(|d| d.0)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortEntry {
    port: Port,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    require: Option<String>,
    #[serde(default)]
    service: Vec<PortEntry>,
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    entry: Vec<Command>,
    #[serde(default)]
    services: validate::OrderedServices,
    #[serde(default)]
    cron: Vec<CronSpec>,
    #[serde(default)]
    debug: bool,
    #[serde(default)]
    env: BTreeMap<String, String>,
    health_port: Option<Port>,
    network: Option<NetworkSpec>,
    login: Option<LoginSpec>,
    statsd: Option<statsd::StatsdSpec>,
}

/// The validated app spec.
#[derive(Debug, Clone)]
pub struct AppSpec {
    /// Where it was read from.
    pub path: PathBuf,
    /// `require`, kept as metadata.
    pub require: Option<String>,
    /// The app's ports (`service[].port`).
    pub ports: Vec<u16>,
    /// Files to copy before anything starts.
    pub adds: Vec<AddSpec>,
    /// Services, legacy entries first, then named ones in file order.
    pub services: Vec<ServiceSpec>,
    /// Cron jobs.
    pub cron: Vec<CronSpec>,
    /// Debug mode as written (BERTH_DEBUG=1 also turns it on at run time).
    pub debug: bool,
    /// Environment for every service, hook, check and cron run.
    pub env: BTreeMap<String, String>,
    /// Port of the optional `GET /health` endpoint.
    pub health_port: Option<u16>,
    /// DHCP on an interface before services start (`network: {dhcp: eth0}`).
    pub network: Option<NetworkSpec>,
    /// SSH login with CA certificates (`login:`); none: no login machinery at all.
    pub login: Option<LoginSpec>,
    /// App metrics on a statsd UDP port (`statsd:`); none: no socket, no thread.
    pub statsd: Option<statsd::StatsdSpec>,
}

impl AppSpec {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|err| SpecError::Read {
            path: path.into(),
            err,
        })?;
        Self::parse(&text, path)
    }

    /// Validates `text`, read from `path` (used for messages and to resolve `add` sources).
    pub fn parse(text: &str, path: &Path) -> Result<Self, SpecError> {
        let de = serde_yaml::Deserializer::from_str(text);
        let raw: RawSpec = serde_path_to_error::deserialize(de)
            .map_err(|e| validate::from_yaml(path, text, &e))?;
        validate::build(raw, text, path)
    }
}

#[cfg(test)]
mod tests;
