//! The decisions: grant a caller access (names valid, the table allows it, Marathon has a
//! live task of the app at the caller's address), revoke a task's account, sweep and
//! reconcile. Every decision leaves one audit line (target `audit`): who, from where,
//! what, why; never a password.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::admin::{Admin, AdminError};
use super::config::Config;
use super::names;
use super::store::{Record, Store, StoreError};
use super::tasks::{self, LookupError, Tasks};
use crate::error_chain;
use crate::marathon::types::Event;

/// A request, as init sends it. `ip` is accepted so it can be audited, never used.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRequest {
    pub app: String,
    pub databases: Vec<String>,
    #[serde(default)]
    pub ip: Option<String>,
}

/// The answer to a granted request.
#[derive(Serialize, Deserialize)]
pub struct Credentials {
    pub task: String,
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub databases: Vec<String>,
}

/// Why a request was not granted.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// A malformed request (the caller's bug): HTTP 400.
    #[error("{0}")]
    BadRequest(String),
    /// The table or Marathon says no: HTTP 403.
    #[error("{0}")]
    Forbidden(String),
    /// dbauth could not decide or act (Marathon, the database, the record): HTTP 503,
    /// worth retrying.
    #[error("{0}")]
    Unavailable(String),
}

/// Marathon task states that end a task (its account is dropped).
pub const ENDED: &[&str] = &[
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_LOST",
    "TASK_ERROR",
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
];

/// How often a request waiting for its task asks Marathon again without an event.
pub const ASK_AGAIN: Duration = Duration::from_millis(250);

pub struct Authority<T> {
    cfg: Config,
    tasks: T,
    admin: Admin,
    store: Mutex<Store>,
    /// One decision at a time: a grant and a revoke of the same task never interleave.
    serial: tokio::sync::Mutex<()>,
    /// Woken at every status update from Marathon's event stream: requests waiting for
    /// their task to be listed ask again at once.
    news: tokio::sync::Notify,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl<T: Tasks> Authority<T> {
    pub fn new(cfg: Config, tasks: T, store: Store) -> Self {
        Authority {
            admin: Admin::new(&cfg.database),
            cfg,
            tasks,
            store: Mutex::new(store),
            serial: tokio::sync::Mutex::new(()),
            news: tokio::sync::Notify::new(),
        }
    }

    fn store<R>(&self, f: impl FnOnce(&Store) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    /// Decides `req` from `peer` (the TCP peer address; `req.ip` is ignored).
    pub async fn request(&self, peer: IpAddr, req: &AccessRequest) -> Result<Credentials, Denied> {
        let peer = tasks::canonical(peer);
        let claimed = req.ip.as_deref().unwrap_or("-");
        let r = self.decide(peer, req).await;
        match &r {
            Ok(c) => tracing::info!(target: "audit", app = %req.app, %peer, claimed_ip = claimed,
                task = %c.task, account = %c.user, databases = %c.databases.join(","), "granted"),
            Err(e) => tracing::warn!(target: "audit", app = %req.app.escape_debug(), %peer,
                claimed_ip = %claimed.escape_debug(), databases = %req.databases.join(",").escape_debug(),
                reason = %e, "denied"),
        }
        r
    }

    async fn decide(&self, peer: IpAddr, req: &AccessRequest) -> Result<Credentials, Denied> {
        names::app_id(&req.app).map_err(|e| Denied::BadRequest(e.to_string()))?;
        if req.databases.is_empty() {
            return Err(Denied::BadRequest("databases: name at least one".into()));
        }
        for d in &req.databases {
            names::database(d).map_err(|e| Denied::BadRequest(e.to_string()))?;
        }
        let grants = self.cfg.grants_for(&req.app, &req.databases).map_err(|d| {
            Denied::Forbidden(format!("app {} is not granted database {d}", req.app))
        })?;
        let task = self.await_task(peer, &req.app).await?;
        let _one = self.serial.lock().await;
        let unavailable = |e: &dyn std::error::Error| Denied::Unavailable(error_chain(e));
        let account = names::account(&task);
        let password = names::password().map_err(|e| unavailable(&e))?;
        let rec = Record {
            task_id: task.clone(),
            app: req.app.clone(),
            ip: peer,
            account: account.clone(),
            databases: req.databases.clone(),
            granted_at: now_ms(),
        };
        // The record first: whatever happens next, a restart knows this account may exist.
        self.store(|s| s.put(&rec)).map_err(|e| unavailable(&e))?;
        self.admin
            .create(&account, peer, &password, &grants)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(Credentials {
            task,
            user: account,
            password,
            host: self.cfg.database.client_host.clone(),
            port: self.cfg.database.client_port,
            databases: req.databases.clone(),
        })
    }

    /// The id of the live task of `app` at `peer`, asking Marathon again (for up to
    /// `task_wait`) while it lists none: init asks as soon as it holds its lease, and
    /// Marathon learns the address from the TASK_STARTING that follows. Asked again at
    /// each status update event, and every [`ASK_AGAIN`] without one.
    async fn await_task(&self, peer: IpAddr, app: &str) -> Result<String, Denied> {
        let end = tokio::time::Instant::now() + self.cfg.task_wait;
        loop {
            // Registered before the lookup: an event during it is not missed.
            let news = self.news.notified();
            tokio::pin!(news);
            news.as_mut().enable();
            let list = self
                .tasks
                .app_tasks(app)
                .await
                .map_err(|e| Denied::Unavailable(e.to_string()))?;
            if let Some(t) = tasks::find(&list, app, peer, &self.cfg.task_states) {
                return Ok(t.id.clone());
            }
            let now = tokio::time::Instant::now();
            if now >= end {
                return Err(Denied::Forbidden(format!(
                    "Marathon lists no task of app {app} in state {} with address {peer}",
                    self.cfg.task_states.join("/")
                )));
            }
            tokio::select! {
                _ = news => {}
                _ = tokio::time::sleep_until(end.min(now + ASK_AGAIN)) => {}
            }
        }
    }

    /// Drops the account of `task_id` if dbauth made one; `why` goes to the audit line.
    pub async fn revoke(&self, task_id: &str, why: &str) -> Result<bool, RevokeError> {
        let _one = self.serial.lock().await;
        self.revoke_locked(task_id, why).await
    }

    async fn revoke_locked(&self, task_id: &str, why: &str) -> Result<bool, RevokeError> {
        let Some(r) = self.store(|s| s.get(task_id))? else {
            return Ok(false);
        };
        self.admin.drop_account(&r.account, r.ip).await?;
        self.store(|s| s.delete(task_id))?;
        tracing::info!(target: "audit", app = %r.app, task = %r.task_id, ip = %r.ip,
            account = %r.account, reason = why, "revoked");
        Ok(true)
    }

    /// A Marathon event: any status update wakes the requests waiting for their task; one
    /// that ends a task revokes its account.
    pub async fn on_event(&self, ev: &Event) {
        if let Event::StatusUpdate(s) = ev {
            self.news.notify_waiters();
            if ENDED.contains(&s.task_status.as_str()) {
                let why = format!("Marathon event {}", s.task_status);
                if let Err(e) = self.revoke(&s.task_id, &why).await {
                    tracing::warn!(task = %s.task_id, "revoke failed (the sweep retries): {}", error_chain(&e));
                }
            }
        }
    }

    /// Drops the accounts of recorded tasks Marathon no longer lists as live. Records made
    /// after the listing started are left to the next sweep; an app Marathon cannot be
    /// asked about keeps its accounts (a Marathon outage must not cut off live tasks).
    pub async fn sweep(&self) -> Result<usize, RevokeError> {
        let started = now_ms();
        let records = self.store(Store::all)?;
        let mut by_app: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
        for r in &records {
            by_app.entry(r.app.as_str()).or_default().push(r);
        }
        let mut dropped = 0;
        for (app, recs) in by_app {
            let list = match self.tasks.app_tasks(app).await {
                Ok(l) => l,
                Err(LookupError(e)) => {
                    tracing::warn!(
                        app,
                        "sweep: cannot list the app's tasks, keeping its accounts: {e}"
                    );
                    continue;
                }
            };
            for r in recs {
                if r.granted_at < started && !tasks::alive(&list, &r.task_id, &self.cfg.task_states)
                {
                    let _one = self.serial.lock().await;
                    if self
                        .revoke_locked(
                            &r.task_id,
                            "sweep: Marathon no longer lists the task as live",
                        )
                        .await?
                    {
                        dropped += 1;
                    }
                }
            }
        }
        Ok(dropped)
    }

    /// At start: accounts with dbauth's prefix that no record names are dropped (left by
    /// a crash, or by a record lost with its disk), then a sweep.
    pub async fn reconcile(&self) -> Result<usize, RevokeError> {
        let records = self.store(Store::all)?;
        let mut dropped = 0;
        for (user, host) in self.admin.accounts().await? {
            let known = records
                .iter()
                .any(|r| r.account == user && r.ip.to_string() == host);
            if names::is_account(&user) && !known {
                if let Ok(ip) = host.parse::<IpAddr>() {
                    self.admin.drop_account(&user, ip).await?;
                    tracing::info!(target: "audit", account = %user, ip = %ip,
                        reason = "reconcile: no record of this account", "revoked");
                    dropped += 1;
                }
            }
        }
        Ok(dropped + self.sweep().await?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Admin(#[from] AdminError),
}
