//! Health checks from TaskInfo.health_check, with Mesos' defaults and rules.

use std::time::Duration;

use crate::mesos::types::HealthCheck;

/// What to check.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// A shell command run inside the container (`runc exec`, under berth-init's tini
    /// mode); on timeout it is killed with its whole process tree (`probe/command.rs`).
    Command(String),
    /// `GET http://127.0.0.1:<port><path>` in the task's network namespace; 200-399 is healthy.
    Http { port: u16, path: String },
    /// A TCP connect to 127.0.0.1:<port> in the task's network namespace.
    Tcp { port: u16 },
}

/// A health check with Mesos' defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSpec {
    pub probe: Probe,
    pub delay: Duration,
    pub interval: Duration,
    pub timeout: Duration,
    pub consecutive_failures: u32,
    pub grace_period: Duration,
}

fn secs(v: Option<f64>, default: f64, field: &str) -> Result<Duration, String> {
    let v = v.unwrap_or(default);
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{field} {v} is not a duration"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// A check timeout of 0 would fail every check at once (a connect or a command cannot
/// finish in no time): refused at validation, naming the field.
fn positive(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        return Err("timeout_seconds 0 is not allowed: every check would time out at once; leave it out for Mesos' default of 20 s".into());
    }
    Ok(d)
}

fn port(p: u32) -> Result<u16, String> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port {p} is invalid"))
}

impl HealthSpec {
    /// Mesos defaults: delay 15 s, interval 10 s, timeout 20 s, 3 failures, grace 10 s.
    pub fn from_proto(h: &HealthCheck) -> Result<HealthSpec, String> {
        let probe = match h.kind.as_deref() {
            Some("COMMAND") | None if h.command.is_some() => {
                let c = h
                    .command
                    .as_ref()
                    .and_then(|c| c.value.clone())
                    .ok_or("command.value is missing")?;
                Probe::Command(c)
            }
            Some("HTTP") => {
                let http = h.http.as_ref().ok_or("type HTTP without http")?;
                if http.scheme.as_deref().is_some_and(|s| s != "http") {
                    return Err("only the http scheme is supported".into());
                }
                let path = http.path.clone().unwrap_or_else(|| "/".into());
                if !path.starts_with('/')
                    || path.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(format!("http.path {path:?} is invalid"));
                }
                Probe::Http {
                    port: port(http.port)?,
                    path,
                }
            }
            Some("TCP") => Probe::Tcp {
                port: port(h.tcp.as_ref().ok_or("type TCP without tcp")?.port)?,
            },
            other => return Err(format!("unsupported type {other:?}")),
        };
        Ok(HealthSpec {
            probe,
            delay: secs(h.delay_seconds, 15.0, "delay_seconds")?,
            interval: secs(h.interval_seconds, 10.0, "interval_seconds")?,
            timeout: positive(secs(h.timeout_seconds, 20.0, "timeout_seconds")?)?,
            consecutive_failures: h.consecutive_failures.unwrap_or(3),
            grace_period: secs(h.grace_period_seconds, 10.0, "grace_period_seconds")?,
        })
    }
}

/// Mesos' rules for turning check results into updates.
#[derive(Debug, Default)]
pub struct HealthState {
    /// Some check has succeeded.
    pub ever_healthy: bool,
    pub failures: u32,
    /// The last reported value.
    pub reported: Option<bool>,
}

/// What a check result means for the task.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Nothing,
    /// Send TASK_RUNNING with this `healthy` value.
    Report(bool),
    /// Too many consecutive failures: send TASK_RUNNING with `healthy: false`, then
    /// kill the task.
    Kill,
}

impl HealthState {
    /// `in_grace`: the grace period since the task started has not passed.
    pub fn record(&mut self, ok: bool, in_grace: bool, spec: &HealthSpec) -> Verdict {
        if ok {
            self.failures = 0;
            self.ever_healthy = true;
            if self.reported != Some(true) {
                self.reported = Some(true);
                return Verdict::Report(true);
            }
            return Verdict::Nothing;
        }
        // Failures during the grace period are ignored until the first success.
        if in_grace && !self.ever_healthy {
            return Verdict::Nothing;
        }
        // Like Mesos, every counted failure is reported (healthy: false), including
        // the one that triggers the kill.
        self.failures += 1;
        self.reported = Some(false);
        if spec.consecutive_failures > 0 && self.failures >= spec.consecutive_failures {
            return Verdict::Kill;
        }
        Verdict::Report(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::types::{CommandInfo, TcpCheck};

    #[test]
    fn a_zero_timeout_is_refused_naming_the_field() {
        let h: HealthCheck = serde_json::from_value(serde_json::json!({
            "type": "TCP", "tcp": {"port": 8080}, "timeout_seconds": 0.0
        }))
        .unwrap();
        let err = HealthSpec::from_proto(&h).unwrap_err();
        assert!(err.contains("timeout_seconds"), "{err}");
        let ok: HealthCheck = serde_json::from_value(serde_json::json!({
            "type": "TCP", "tcp": {"port": 8080}, "timeout_seconds": 0.5
        }))
        .unwrap();
        assert_eq!(
            HealthSpec::from_proto(&ok).unwrap().timeout,
            Duration::from_millis(500)
        );
    }

    #[test]
    fn defaults_and_types() {
        let h = HealthCheck {
            kind: Some("TCP".into()),
            tcp: Some(TcpCheck { port: 80 }),
            ..Default::default()
        };
        let s = HealthSpec::from_proto(&h).unwrap();
        assert_eq!(s.probe, Probe::Tcp { port: 80 });
        assert_eq!(
            (s.delay, s.interval, s.timeout),
            (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(20)
            )
        );
        assert_eq!(s.consecutive_failures, 3);
        let h = HealthCheck {
            kind: Some("COMMAND".into()),
            command: Some(CommandInfo {
                value: Some("true".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            HealthSpec::from_proto(&h).unwrap().probe,
            Probe::Command("true".into())
        );
        assert!(HealthSpec::from_proto(&HealthCheck {
            kind: Some("TCP".into()),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn mesos_rules() {
        let spec = HealthSpec::from_proto(&HealthCheck {
            kind: Some("TCP".into()),
            tcp: Some(TcpCheck { port: 1 }),
            ..Default::default()
        })
        .unwrap();
        let mut st = HealthState::default();
        assert_eq!(
            st.record(false, true, &spec),
            Verdict::Nothing,
            "ignored in grace"
        );
        assert_eq!(st.record(true, true, &spec), Verdict::Report(true));
        assert_eq!(st.record(true, false, &spec), Verdict::Nothing);
        assert_eq!(
            st.record(false, true, &spec),
            Verdict::Report(false),
            "grace over after first success"
        );
        assert_eq!(
            st.record(false, false, &spec),
            Verdict::Report(false),
            "every counted failure is reported"
        );
        assert_eq!(
            st.record(true, false, &spec),
            Verdict::Report(true),
            "first success after failures"
        );
        assert_eq!(st.record(false, false, &spec), Verdict::Report(false));
        assert_eq!(st.record(false, false, &spec), Verdict::Report(false));
        assert_eq!(st.record(false, false, &spec), Verdict::Kill);
        assert_eq!(st.reported, Some(false));
    }
}
