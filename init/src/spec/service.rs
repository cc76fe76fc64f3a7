//! One service of the full format, with its health check, hooks and log handling.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::command::Command;
use super::duration::Dur;
use crate::backoff::BackoffPolicy;
use crate::health::HealthTiming;

/// A TCP port, 1-65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        match u16::try_from(v) {
            Ok(p) if p != 0 => Ok(Port(p)),
            _ => Err(de::Error::custom(format_args!(
                "port {v} out of range: valid ports are 1-65535"
            ))),
        }
    }
}

/// A signal by name (`TERM`, `SIGTERM`) or number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalName(pub nix::sys::signal::Signal);

impl<'de> Deserialize<'de> for SignalName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use nix::sys::signal::Signal;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i32),
            S(String),
        }
        let bad = |s: &dyn fmt::Display| {
            de::Error::custom(format_args!("unknown signal {s}: valid are names such as TERM, SIGINT, QUIT, HUP, USR1 or numbers 1-31"))
        };
        match Raw::deserialize(d)? {
            Raw::N(n) => Signal::try_from(n).map(SignalName).map_err(|_| bad(&n)),
            Raw::S(s) => {
                let up = s.to_ascii_uppercase();
                let full = if up.starts_with("SIG") {
                    up
                } else {
                    format!("SIG{up}")
                };
                full.parse::<Signal>().map(SignalName).map_err(|_| bad(&s))
            }
        }
    }
}

/// When to restart a service whose process (group) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Always, whatever the exit status.
    #[default]
    Always,
    /// Only when it failed (non-zero exit, a signal, or a tracked daemon group vanished).
    OnFailure,
    /// Never; a failure of a required service then shuts the app down.
    Never,
}

/// Exponential backoff as written.
#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BackoffSpec {
    initial: Option<Dur>,
    max: Option<Dur>,
    reset_after: Option<Dur>,
}

/// HTTP check: GET http://127.0.0.1:PORT/PATH, success is 200-399.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// Defaults to the app's first `service[].port`.
    pub port: Option<Port>,
    /// Defaults to `/`.
    #[serde(default = "slash")]
    pub path: String,
}

fn slash() -> String {
    "/".into()
}

/// TCP check: connect to 127.0.0.1:PORT.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    /// Defaults to the app's first `service[].port`.
    pub port: Option<Port>,
}

/// A health check as written: exactly one of `cmd`, `http`, `tcp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    /// A command; exit 0 is healthy.
    pub cmd: Option<Command>,
    /// An HTTP GET.
    pub http: Option<HttpCheck>,
    /// A TCP connect.
    pub tcp: Option<TcpCheck>,
    delay: Option<Dur>,
    interval: Option<Dur>,
    timeout: Option<Dur>,
    grace_period: Option<Dur>,
    consecutive_failures: Option<u32>,
}

/// What a check does, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Run a command in the service's environment.
    Cmd(Command),
    /// GET 127.0.0.1:port path.
    Http { port: u16, path: String },
    /// Connect to 127.0.0.1:port.
    Tcp { port: u16 },
}

impl HealthSpec {
    /// Timing with Mesos's defaults for what is not written.
    pub fn timing(&self) -> HealthTiming {
        let d = HealthTiming::default();
        HealthTiming {
            delay: self.delay.map_or(d.delay, |x| x.0),
            interval: self.interval.map_or(d.interval, |x| x.0),
            timeout: self.timeout.map_or(d.timeout, |x| x.0),
            grace_period: self.grace_period.map_or(d.grace_period, |x| x.0),
            consecutive_failures: self.consecutive_failures.unwrap_or(d.consecutive_failures),
        }
    }

    /// The probe, with ports defaulted from the app's ports.
    pub fn probe(&self, app_ports: &[u16]) -> Result<Probe, String> {
        let default_port = |p: Option<Port>| {
            p.map(|p| p.0)
                .or_else(|| app_ports.first().copied())
                .ok_or_else(|| {
                    "no port: give `port:` or list the app's ports under `service: [{port: N}]`"
                        .to_string()
                })
        };
        match (&self.cmd, &self.http, &self.tcp) {
            (Some(c), None, None) => Ok(Probe::Cmd(c.clone())),
            (None, Some(h), None) => Ok(Probe::Http {
                port: default_port(h.port)?,
                path: h.path.clone(),
            }),
            (None, None, Some(t)) => Ok(Probe::Tcp {
                port: default_port(t.port)?,
            }),
            _ => Err("give exactly one of `cmd`, `http`, `tcp`".into()),
        }
    }
}

/// A hook: a command with a timeout, as a plain command or `{cmd, timeout}`.
#[derive(Debug, Clone)]
pub struct HookSpec {
    /// What to run.
    pub cmd: Command,
    /// Killed (its group) after this; default 30 s.
    pub timeout: Duration,
}

impl<'de> Deserialize<'de> for HookSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            cmd: Command,
            timeout: Option<Dur>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Full(Full),
            Cmd(Command),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            de::Error::custom(
                "a hook is a command (string or list) or {cmd: COMMAND, timeout: DURATION}",
            )
        })?;
        Ok(match raw {
            Raw::Full(f) => HookSpec {
                cmd: f.cmd,
                timeout: f.timeout.map_or(Duration::from_secs(30), |t| t.0),
            },
            Raw::Cmd(cmd) => HookSpec {
                cmd,
                timeout: Duration::from_secs(30),
            },
        })
    }
}

/// The four hooks of a service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksSpec {
    /// Before the service starts; a failure counts as a failed start.
    pub pre_start: Option<HookSpec>,
    /// After the service started.
    pub post_start: Option<HookSpec>,
    /// Before the stop signal.
    pub pre_stop: Option<HookSpec>,
    /// After the service's group is gone.
    pub post_stop: Option<HookSpec>,
}

/// Where a service's stdout/stderr go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogSpec {
    /// Init's own stdout/stderr (the container log).
    #[default]
    Inherit,
    /// A file, rotated when it passes `max_size` bytes, keeping `keep` old files.
    File {
        path: PathBuf,
        max_size: u64,
        keep: u32,
    },
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("bad size {s:?}: valid forms are 1048576, 512K, 10M, 1G"))?;
    let mul = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("bad size unit in {s:?}: valid are K, M, G")),
    };
    Ok(n * mul)
}

impl<'de> Deserialize<'de> for LogSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            file: PathBuf,
            max_size: Option<serde_yaml::Value>,
            keep: Option<u32>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            File(File),
        }
        let bad = "log is `inherit` or {file: PATH, max_size: SIZE (e.g. 10M), keep: N}";
        match Raw::deserialize(d).map_err(|_| de::Error::custom(bad))? {
            Raw::Word(w) if w == "inherit" => Ok(LogSpec::Inherit),
            Raw::Word(_) => Err(de::Error::custom(bad)),
            Raw::File(f) => {
                let max_size = match f.max_size {
                    None => 10 << 20,
                    Some(serde_yaml::Value::Number(n)) => {
                        n.as_u64().ok_or_else(|| de::Error::custom(bad))?
                    }
                    Some(serde_yaml::Value::String(s)) => {
                        parse_size(&s).map_err(de::Error::custom)?
                    }
                    Some(_) => return Err(de::Error::custom(bad)),
                };
                Ok(LogSpec::File {
                    path: f.file,
                    max_size,
                    keep: f.keep.unwrap_or(3),
                })
            }
        }
    }
}

/// One named service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Filled from the map key.
    #[serde(skip)]
    pub name: String,
    /// Made from a legacy `entry` line: the next entry starts once this one's main
    /// process exited 0 (it daemonized or completed) or ran for a moment in the foreground.
    #[serde(skip)]
    pub entry: bool,
    /// What to run.
    pub command: Command,
    /// Run as this user (name or uid).
    pub user: Option<String>,
    /// Run as this group (name or gid); defaults to the user's group.
    pub group: Option<String>,
    /// Working directory.
    pub workdir: Option<PathBuf>,
    /// Added to the app's `env` and init's own environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Restart policy.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Restart delays.
    #[serde(default)]
    backoff: BackoffSpec,
    /// Restarts in a row without a stable run before the service is failed (0 = no limit).
    crash_loop_limit: Option<u32>,
    /// Services that must be running (and healthy, if checked) before this one starts.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Signal sent to the group to stop; default TERM.
    pub stop_signal: Option<SignalName>,
    /// Wait after the stop signal before SIGKILL of the group; default 10 s.
    pub stop_timeout: Option<Dur>,
    /// A failure of a required service (crash-loop limit, or exit under `restart: never`)
    /// shuts the app down unless in debug mode. Default true.
    #[serde(default = "yes")]
    pub required: bool,
    /// Health check.
    pub health: Option<HealthSpec>,
    /// Hooks.
    #[serde(default)]
    pub hooks: HooksSpec,
    /// Log handling.
    #[serde(default)]
    pub log: LogSpec,
    /// LVS registration (see [`super::lvs`]).
    pub lvs: Option<super::lvs::LvsSpec>,
    /// The only capabilities the service may hold (see [`super::caps`]).
    pub capabilities: Option<super::caps::CapSet>,
}

fn yes() -> bool {
    true
}

impl ServiceSpec {
    /// A service made from a legacy `entry` line.
    pub fn from_entry(name: String, command: Command, after: Option<String>) -> Self {
        ServiceSpec {
            name,
            entry: true,
            command,
            user: None,
            group: None,
            workdir: None,
            env: BTreeMap::new(),
            restart: RestartPolicy::OnFailure,
            backoff: BackoffSpec::default(),
            crash_loop_limit: None,
            depends_on: after.into_iter().collect(),
            stop_signal: None,
            stop_timeout: None,
            required: true,
            health: None,
            hooks: HooksSpec::default(),
            log: LogSpec::Inherit,
            lvs: None,
            capabilities: None,
        }
    }

    /// Backoff with defaults filled in.
    pub fn backoff_policy(&self) -> BackoffPolicy {
        let d = BackoffPolicy::default();
        BackoffPolicy {
            initial: self.backoff.initial.map_or(d.initial, |x| x.0),
            max: self.backoff.max.map_or(d.max, |x| x.0),
            reset_after: self.backoff.reset_after.map_or(d.reset_after, |x| x.0),
            crash_loop_limit: self.crash_loop_limit.unwrap_or(d.crash_loop_limit),
        }
    }

    /// The stop signal (default TERM).
    pub fn stop_signal(&self) -> nix::sys::signal::Signal {
        self.stop_signal
            .map_or(nix::sys::signal::Signal::SIGTERM, |s| s.0)
    }

    /// The stop timeout (default 10 s).
    pub fn stop_timeout(&self) -> Duration {
        self.stop_timeout.map_or(Duration::from_secs(10), |d| d.0)
    }
}
