//! The supervisor's hook for `login:`: prepare sshd before any service starts, add it as a
//! supervised service, refresh its lists on a thread, and show its state on the socket.
//! Nothing here runs when the spec has no `login` section.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::login::http::HttpFetch;
use crate::login::refresh::{self, LoginStatus};
use crate::login::setup::{self, Prepared};
use crate::login::LoginError;
use crate::spec::AppSpec;

/// Login after start-up: the status, and the lists to refresh once signals are blocked.
pub(super) struct Login {
    pub status: Arc<Mutex<LoginStatus>>,
    prepared: Option<Prepared>,
    interval: std::time::Duration,
}

/// Prepares login (the login dir next to the status socket) and appends the sshd service
/// to `spec.services`. A failure fails start-up only with `login.required: true`; otherwise
/// it is logged and shown as `failed` on the status socket.
pub(super) fn prepare(spec: &mut AppSpec, socket: &Path) -> Result<Option<Login>, LoginError> {
    let Some(ls) = spec.login.clone() else {
        return Ok(None);
    };
    let dir = socket
        .parent()
        .unwrap_or(Path::new("/run/berth"))
        .join("login");
    let app_id = std::env::var("MARATHON_APP_ID").ok();
    let got = setup::prepare(&ls, &dir, app_id.as_deref(), std::env::vars(), &HttpFetch);
    let (status, prepared) = match got {
        Ok(p) => {
            tracing::info!(port = ls.port(), ca_keys = p.ca_keys, dir = %dir.display(), "login: sshd prepared");
            spec.services.push(p.service.clone());
            let st = LoginStatus {
                state: "ready".into(),
                port: ls.port(),
                ca_keys: p.ca_keys,
                host_certificate: p.host_cert.clone().map(|r| match r {
                    Ok(()) => "installed".to_string(),
                    Err(e) => format!("failed: {e}"),
                }),
                ..Default::default()
            };
            (st, Some(p))
        }
        Err(e) if ls.required => return Err(e),
        Err(e) => {
            tracing::warn!("login failed (login.required is false, the app goes on): {e}");
            (LoginStatus::failed(ls.port(), e.to_string()), None)
        }
    };
    Ok(Some(Login {
        status: Arc::new(Mutex::new(status)),
        prepared,
        interval: ls.refresh(),
    }))
}

impl Login {
    /// Starts the refresh thread (call with every signal blocked: the thread inherits the
    /// mask, so no signal is ever delivered to it instead of the signalfd).
    pub fn start_refresh(&mut self) -> std::io::Result<()> {
        match self.prepared.take() {
            Some(p) => refresh::spawn(
                p.ca,
                p.revoked,
                self.interval,
                Box::new(HttpFetch),
                self.status.clone(),
            ),
            None => Ok(()),
        }
    }

    /// The `login` object of the status.
    pub fn json(&self) -> serde_json::Value {
        match self.status.lock() {
            Ok(s) => serde_json::to_value(&*s).unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    }
}
