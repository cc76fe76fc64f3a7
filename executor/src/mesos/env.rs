//! The executor's environment as the Mesos agent (and Marathon) set it.
//!
//! The agent describes the executor's situation with `MESOS_*` variables; Marathon adds
//! the task's own variables (`MESOS_TASK_ID`, `MARATHON_APP_*`, `PORT*`, `HOST`).
//! [`ExecutorEnv`] parses the first kind strictly and keeps the second, and only those
//! (an allowlist, [`for_the_task`]), for the container ([`ExecutorEnv::task_vars`]): the
//! executor inherits the agent's environment, whose secrets must not reach any task. The authentication token is kept in a [`Secret`] that never
//! prints and never reaches the task.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::duration::{DurationError, StoutDuration};
use super::link::Link;
use super::ssl::{AgentTls, SslError};

/// A value that must never be logged (the executor's authentication token).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    /// The value itself, for the one place that needs it (the Authorization header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why the environment could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{name} is not set (is this process started by a Mesos agent?)")]
    Missing { name: &'static str },
    #[error("{name}={value:?} is not \"1\" or \"0\"")]
    Bool { name: &'static str, value: String },
    #[error("{name} is not a valid duration")]
    Duration {
        name: &'static str,
        #[source]
        err: DurationError,
    },
    #[error("{name}={value:?} is not host:port")]
    Endpoint { name: &'static str, value: String },
    #[error(transparent)]
    Ssl(#[from] SslError),
}

/// Everything the executor reads from `MESOS_*`.
#[derive(Debug, Clone)]
pub struct ExecutorEnv {
    pub framework_id: String,
    pub executor_id: String,
    /// `ip:port` of the agent.
    pub agent_endpoint: String,
    /// The sandbox on the host.
    pub directory: PathBuf,
    /// The sandbox as the task sees it (same as `directory` without a container).
    pub sandbox: Option<PathBuf>,
    pub agent_id: Option<String>,
    pub checkpoint: bool,
    pub recovery_timeout: Duration,
    pub subscription_backoff_max: Duration,
    pub shutdown_grace_period: Duration,
    pub auth_token: Option<Secret>,
    /// Keepalive and timeouts of the connections to the agent (berth's own settings:
    /// `BERTH_EXECUTOR_AGENT_KEEPALIVE`, `BERTH_EXECUTOR_AGENT_TIMEOUT`,
    /// `BERTH_EXECUTOR_STREAM_SILENCE`, stout durations).
    pub link: Link,
    /// TLS to the agent, from `LIBPROCESS_SSL_*` ([`super::ssl`]); `None`: plain HTTP.
    pub tls: Option<AgentTls>,
    /// The variables meant for the task (see [`ExecutorEnv::task_vars`]).
    task_vars: BTreeMap<String, String>,
}

/// Defaults of the Mesos agent flags, used when a variable is absent.
pub const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(2);
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The variables Marathon puts into the executor's environment for the task (REFERENCE.md
/// section 2): `MESOS_TASK_ID`, `MARATHON_APP_*` (id, version, resources, labels as
/// `MARATHON_APP_LABEL_<NAME>`), `PORT`, `PORT0..N`, `PORTS`, `PORT_<NAME>`, `HOST`.
///
/// An allowlist: a Mesos executor inherits the agent's whole environment, so anything else
/// there (`AWS_SECRET_ACCESS_KEY`, `DB_PASSWORD`, `http_proxy`, `SSH_AUTH_SOCK`, ...) may be
/// the agent's and never reaches the task. The app's own `env` reaches it through the
/// TaskInfo (`executor.command.environment`, `command.environment`), where Marathon puts it
/// too; the plan reads it there.
pub fn for_the_task(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let port_name = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    match name {
        "MESOS_TASK_ID" | "PORT" | "PORTS" | "HOST" => true,
        _ => {
            if let Some(rest) = name.strip_prefix("MARATHON_APP_") {
                !rest.is_empty()
            } else if let Some(rest) = name.strip_prefix("PORT_") {
                port_name(rest)
            } else if let Some(rest) = name.strip_prefix("PORT") {
                digits(rest)
            } else {
                false
            }
        }
    }
}

impl ExecutorEnv {
    /// Reads the process environment.
    pub fn from_process() -> Result<Self, EnvError> {
        Self::from_vars(std::env::vars())
    }

    /// Parses a set of variables (the process environment, or a test's map).
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, EnvError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let all: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let req = |name: &'static str| {
            all.get(name)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or(EnvError::Missing { name })
        };
        let dur = |name: &'static str, default: Duration| match all.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<StoutDuration>()
                .map(|d| d.0)
                .map_err(|err| EnvError::Duration { name, err }),
        };
        // The agent always sets it; without it we cannot know whether to recover.
        let checkpoint = match all.get("MESOS_CHECKPOINT").map(String::as_str) {
            None => {
                return Err(EnvError::Missing {
                    name: "MESOS_CHECKPOINT",
                })
            }
            Some("0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(EnvError::Bool {
                    name: "MESOS_CHECKPOINT",
                    value: other.to_string(),
                })
            }
        };
        let agent_endpoint = req("MESOS_AGENT_ENDPOINT")?;
        let valid_endpoint = agent_endpoint
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !valid_endpoint {
            return Err(EnvError::Endpoint {
                name: "MESOS_AGENT_ENDPOINT",
                value: agent_endpoint,
            });
        }
        let task_vars = all
            .iter()
            .filter(|(k, _)| for_the_task(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let defaults = Link::default();
        let mut link = Link::with_keepalive(dur(
            "BERTH_EXECUTOR_AGENT_KEEPALIVE",
            defaults.keepalive_idle,
        )?);
        link.response_timeout = dur("BERTH_EXECUTOR_AGENT_TIMEOUT", defaults.response_timeout)?;
        link.stream_silence = dur("BERTH_EXECUTOR_STREAM_SILENCE", defaults.stream_silence)?;
        let tls = super::ssl::from_vars(&all)?;
        Ok(ExecutorEnv {
            link,
            tls,
            framework_id: req("MESOS_FRAMEWORK_ID")?,
            executor_id: req("MESOS_EXECUTOR_ID")?,
            agent_endpoint,
            directory: PathBuf::from(req("MESOS_DIRECTORY")?),
            sandbox: all.get("MESOS_SANDBOX").map(PathBuf::from),
            agent_id: all
                .get("MESOS_SLAVE_ID")
                .or(all.get("MESOS_AGENT_ID"))
                .cloned(),
            checkpoint,
            recovery_timeout: dur("MESOS_RECOVERY_TIMEOUT", DEFAULT_RECOVERY_TIMEOUT)?,
            subscription_backoff_max: dur("MESOS_SUBSCRIPTION_BACKOFF_MAX", DEFAULT_BACKOFF_MAX)?,
            shutdown_grace_period: dur(
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
                DEFAULT_SHUTDOWN_GRACE,
            )?,
            auth_token: all
                .get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN")
                .filter(|t| !t.is_empty())
                .map(|t| Secret::new(t.clone())),
            task_vars,
        })
    }

    /// Variables for the task's container: Marathon's only ([`for_the_task`]); nothing
    /// else of the executor's environment (the agent's, the token above all).
    pub fn task_vars(&self) -> &BTreeMap<String, String> {
        &self.task_vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("MESOS_FRAMEWORK_ID", "fw-1"),
            ("MESOS_EXECUTOR_ID", "marathon-app.1"),
            ("MESOS_AGENT_ENDPOINT", "127.0.0.1:5051"),
            ("MESOS_DIRECTORY", "/var/sandbox"),
            ("MESOS_SANDBOX", "/mnt/mesos/sandbox"),
            ("MESOS_SLAVE_ID", "agent-7"),
            ("MESOS_CHECKPOINT", "1"),
            ("MESOS_RECOVERY_TIMEOUT", "15mins"),
            ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "2.5secs"),
            ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "5secs"),
            ("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "s3cret"),
            ("MESOS_TASK_ID", "app.1"),
            ("MARATHON_APP_ID", "/app"),
            ("PORT0", "31000"),
            ("PORTS", "31000"),
            ("HOST", "node1"),
            ("PATH", "/usr/bin"),
            ("APP_SETTING", "x"),
        ]
    }

    #[test]
    fn parses_the_agent_environment() {
        let env = ExecutorEnv::from_vars(base()).unwrap();
        assert_eq!(env.framework_id, "fw-1");
        assert_eq!(env.executor_id, "marathon-app.1");
        assert!(env.checkpoint);
        assert_eq!(env.recovery_timeout, Duration::from_secs(900));
        assert_eq!(env.subscription_backoff_max, Duration::from_millis(2500));
        assert_eq!(env.shutdown_grace_period, Duration::from_secs(5));
        assert_eq!(env.agent_id.as_deref(), Some("agent-7"));
        assert_eq!(env.auth_token.as_ref().unwrap().expose(), "s3cret");
        assert_eq!(env.link, Link::default());
        let mut v = base();
        v.push(("BERTH_EXECUTOR_AGENT_KEEPALIVE", "3secs"));
        v.push(("BERTH_EXECUTOR_AGENT_TIMEOUT", "500ms"));
        v.push(("BERTH_EXECUTOR_STREAM_SILENCE", "2mins"));
        let env = ExecutorEnv::from_vars(v).unwrap();
        assert_eq!(env.link.keepalive_idle, Duration::from_secs(3));
        assert_eq!(env.link.response_timeout, Duration::from_millis(500));
        assert_eq!(env.link.stream_silence, Duration::from_secs(120));
        assert!(!env.task_vars().contains_key("BERTH_EXECUTOR_AGENT_TIMEOUT"));
    }

    #[test]
    fn token_never_prints_and_never_reaches_the_task() {
        let env = ExecutorEnv::from_vars(base()).unwrap();
        assert!(!format!("{env:?}").contains("s3cret"));
        let vars = env.task_vars();
        assert!(vars.values().all(|v| v != "s3cret"));
        assert!(vars
            .keys()
            .all(|k| !k.starts_with("MESOS_") || k == "MESOS_TASK_ID"));
        for k in ["MESOS_TASK_ID", "MARATHON_APP_ID", "PORT0", "PORTS", "HOST"] {
            assert!(vars.contains_key(k), "{k} must reach the task");
        }
        assert!(!vars.contains_key("PATH"));
    }

    #[test]
    fn only_marathons_variables_reach_the_task() {
        let mut v = base();
        v.extend([
            ("DB_PASSWORD", "s3cret"),
            ("AWS_SECRET_ACCESS_KEY", "k"),
            ("http_proxy", "http://proxy:3128"),
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("SSH_AUTH_SOCK", "/tmp/agent.sock"),
            ("MARATHON_APP_VERSION", "2026-01-01T00:00:00.000Z"),
            ("MARATHON_APP_RESOURCE_CPUS", "0.5"),
            ("MARATHON_APP_LABEL_TEAM", "web"),
            ("PORT", "31000"),
            ("PORT1", "31001"),
            ("PORT_HTTP", "31000"),
        ]);
        let env = ExecutorEnv::from_vars(v).unwrap();
        let keys: Vec<&str> = env.task_vars().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "HOST",
                "MARATHON_APP_ID",
                "MARATHON_APP_LABEL_TEAM",
                "MARATHON_APP_RESOURCE_CPUS",
                "MARATHON_APP_VERSION",
                "MESOS_TASK_ID",
                "PORT",
                "PORT0",
                "PORT1",
                "PORTS",
                "PORT_HTTP",
            ]
        );
        for (name, kept) in [
            ("APP_SETTING", false),
            ("MARATHON_APP_", false),
            ("MARATHON_OTHER", false),
            ("PORTX", false),
            ("PORT_", false),
            ("PORT_http", false),
            ("PORT12", true),
            ("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", false),
            ("LD_PRELOAD", false),
        ] {
            assert_eq!(for_the_task(name), kept, "{name}");
        }
    }

    #[test]
    fn checkpoint_is_one_or_zero_only() {
        let mut v = base();
        v.retain(|(k, _)| *k != "MESOS_CHECKPOINT");
        let err = ExecutorEnv::from_vars(v.clone()).unwrap_err();
        assert!(matches!(err, EnvError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("MESOS_CHECKPOINT"), "{err}");
        let mut zero = v.clone();
        zero.push(("MESOS_CHECKPOINT", "0"));
        assert!(!ExecutorEnv::from_vars(zero).unwrap().checkpoint);
        v.push(("MESOS_CHECKPOINT", "true"));
        assert!(matches!(
            ExecutorEnv::from_vars(v),
            Err(EnvError::Bool { .. })
        ));
    }

    #[test]
    fn missing_and_bad_values_are_named() {
        let mut v = base();
        v.retain(|(k, _)| *k != "MESOS_EXECUTOR_ID");
        let err = ExecutorEnv::from_vars(v).unwrap_err();
        assert!(err.to_string().contains("MESOS_EXECUTOR_ID"));
        let mut v = base();
        v.push(("MESOS_RECOVERY_TIMEOUT", "15"));
        let err = ExecutorEnv::from_vars(v).unwrap_err();
        assert!(err.to_string().contains("MESOS_RECOVERY_TIMEOUT"));
        let mut v = base();
        v.push(("MESOS_AGENT_ENDPOINT", "nohost"));
        assert!(matches!(
            ExecutorEnv::from_vars(v),
            Err(EnvError::Endpoint { .. })
        ));
    }
}
