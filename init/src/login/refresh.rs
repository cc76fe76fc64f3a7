//! Keeping the trust list and KRL fresh, and the `login` object of the status socket.
//! sshd reads both files at every authentication, so an installed file takes effect at the
//! next login without a restart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::store::{Fetch, Refreshed, Store};

/// What the status socket shows under `login`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoginStatus {
    /// `ready` (sshd supervised) or `failed`.
    pub state: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// The port sshd listens on.
    pub port: u16,
    /// CA keys installed.
    pub ca_keys: usize,
    /// Refreshes done since start.
    pub refreshes: u64,
    /// The last refresh problem (the last good copy stayed), if the last refresh had one.
    pub last_error: Option<String>,
    /// `installed`, or why the host certificate could not be had; absent when the spec
    /// names no signing endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_certificate: Option<String>,
}

impl LoginStatus {
    /// Login could not be set up.
    pub fn failed(port: u16, reason: String) -> Self {
        LoginStatus {
            state: "failed".into(),
            reason: Some(reason),
            port,
            ..Default::default()
        }
    }
}

/// One refresh of both lists; updates `status`.
pub fn once(
    ca: &mut Store,
    revoked: Option<&mut Store>,
    http: &dyn Fetch,
    status: &Mutex<LoginStatus>,
) {
    let mut errors = Vec::new();
    match ca.refresh(http) {
        Refreshed::Installed { keys } => {
            tracing::info!(keys, source = %ca.source(), "login: new CA keys installed");
            if let Ok(mut s) = status.lock() {
                s.ca_keys = keys;
            }
        }
        Refreshed::Unchanged => {}
        Refreshed::Kept { reason, .. } => {
            tracing::warn!("login: CA keys not refreshed, the last good copy stays: {reason}");
            errors.push(reason);
        }
    }
    if let Some(r) = revoked {
        match r.refresh(http) {
            Refreshed::Installed { .. } => {
                tracing::info!(source = %r.source(), "login: new revoked-keys list installed")
            }
            Refreshed::Unchanged => {}
            Refreshed::Kept { reason, .. } => {
                tracing::warn!(
                    "login: revoked keys not refreshed, the last good copy stays: {reason}"
                );
                errors.push(reason);
            }
        }
    }
    if let Ok(mut s) = status.lock() {
        s.refreshes += 1;
        s.last_error = (!errors.is_empty()).then(|| errors.join("; "));
    }
}

/// Refreshes every `interval` on a thread of its own, for the life of init.
pub fn spawn(
    mut ca: Store,
    mut revoked: Option<Store>,
    interval: Duration,
    http: Box<dyn Fetch + Send>,
    status: Arc<Mutex<LoginStatus>>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("login-refresh".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            once(&mut ca, revoked.as_mut(), http.as_ref(), &status);
        })
        .map(|_| ())
}
