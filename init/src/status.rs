//! The status model and the socket protocol: one JSON line in, one JSON line out.
//!
//! Requests: `{"cmd":"status"}`, `{"cmd":"restart","service":"NAME"}`,
//! `{"cmd":"stop","service":"NAME"}`, `{"cmd":"start","service":"NAME"}`,
//! `{"cmd":"wait","state":"starting","timeout_ms":N}` (the status once the overall state
//! is no longer `state`, or after N ms: a client learns of a change without polling).
//! Answers: the [`Status`] object with `"ok":true`, or `{"ok":false,"error":"..."}`.

use serde::{Deserialize, Serialize};

/// A request from `berth-init ctl` or the executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// The whole status.
    Status,
    /// Stop then start one service.
    Restart {
        /// Service name.
        service: String,
    },
    /// Stop one service (it stays stopped until started).
    Stop {
        /// Service name.
        service: String,
    },
    /// Start one stopped or failed service.
    Start {
        /// Service name.
        service: String,
    },
    /// The whole status, once the overall state differs from `state` (at once if it
    /// already does), or after `timeout_ms` (capped at [`MAX_WAIT_MS`]) as it is then.
    Wait {
        /// The state the client last saw.
        state: AppState,
        /// How long to wait for a change.
        #[serde(default = "default_wait_ms")]
        timeout_ms: u64,
    },
}

/// The longest a `wait` request is held.
pub const MAX_WAIT_MS: u64 = 60_000;

fn default_wait_ms() -> u64 {
    10_000
}

impl Request {
    /// How long the run loop may take to answer (a `wait` is held up to its timeout).
    pub fn answer_within(&self) -> std::time::Duration {
        let held = match self {
            Request::Wait { timeout_ms, .. } => (*timeout_ms).min(MAX_WAIT_MS),
            _ => 0,
        };
        std::time::Duration::from_millis(held) + std::time::Duration::from_secs(10)
    }
}

/// Overall state of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppState {
    /// Not every service has started (or become healthy) yet.
    Starting,
    /// Every service started, and health-gated ones are healthy.
    Running,
    /// Shutting down.
    Stopping,
    /// A required service failed (debug mode keeps init up in this state).
    Failed,
}

/// One service's line in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Name (`entry-N` for legacy entry lines).
    pub name: String,
    /// `waiting`, `starting`, `running`, `backoff`, `stopping`, `stopped`, `exited`, `failed`.
    pub state: String,
    /// Main pid (for a daemonized entry, its process group id); null when not running.
    pub pid: Option<i32>,
    /// Restarts so far.
    pub restarts: u32,
    /// null without a health check or before the first counted result.
    pub healthy: Option<bool>,
    /// LVS registration state; absent without an `lvs` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lvs: Option<serde_json::Value>,
    /// How long the last finished health check took, microseconds; absent before one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_latency_us: Option<u64>,
}

/// The answer to `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Always true here.
    pub ok: bool,
    /// Overall state.
    pub state: AppState,
    /// Services in spec order.
    pub services: Vec<ServiceStatus>,
    /// The spec's `require` metadata.
    pub require: Option<String>,
    /// Network facts (DHCP lease); null until that feature exists.
    pub network: Option<serde_json::Value>,
    /// SSH login state; absent when the spec has no `login` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<serde_json::Value>,
    /// App metrics (the last statsd step); absent when the spec has no `statsd` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statsd: Option<serde_json::Value>,
}

/// Any answer: a status, a plain ok, or an error.
pub fn ok_line() -> String {
    r#"{"ok":true}"#.to_string()
}

/// An error answer.
pub fn error_line(error: &str) -> String {
    serde_json::json!({"ok": false, "error": error}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_match_the_contract() {
        let r: Request = serde_json::from_str(r#"{"cmd":"status"}"#).unwrap();
        assert_eq!(r, Request::Status);
        let r: Request = serde_json::from_str(r#"{"cmd":"restart","service":"web"}"#).unwrap();
        assert_eq!(
            r,
            Request::Restart {
                service: "web".into()
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"explode"}"#).is_err());
        let r: Request =
            serde_json::from_str(r#"{"cmd":"wait","state":"starting","timeout_ms":250}"#).unwrap();
        assert_eq!(
            r,
            Request::Wait {
                state: AppState::Starting,
                timeout_ms: 250
            }
        );
        assert_eq!(r.answer_within(), std::time::Duration::from_millis(10_250));
        let r: Request = serde_json::from_str(r#"{"cmd":"wait","state":"running"}"#).unwrap();
        assert_eq!(
            r,
            Request::Wait {
                state: AppState::Running,
                timeout_ms: 10_000
            }
        );
        let huge: Request =
            serde_json::from_str(r#"{"cmd":"wait","state":"failed","timeout_ms":999999999}"#)
                .unwrap();
        assert_eq!(huge.answer_within(), std::time::Duration::from_secs(70));
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"wait"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"wait","state":"sleepy"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"stop"}"#).is_err());
    }

    #[test]
    fn status_shape() {
        let s = Status {
            ok: true,
            state: AppState::Running,
            services: vec![ServiceStatus {
                name: "web".into(),
                state: "running".into(),
                pid: Some(7),
                restarts: 0,
                healthy: None,
                lvs: None,
                check_latency_us: None,
            }],
            require: Some("centos:6.3".into()),
            network: None,
            login: None,
            statsd: None,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"ok":true,"state":"running","services":[{"name":"web","state":"running","pid":7,"restarts":0,"healthy":null}],"require":"centos:6.3","network":null}"#
        );
        assert_eq!(
            error_line("no such service \"x\""),
            r#"{"error":"no such service \"x\"","ok":false}"#
        );
    }
}
