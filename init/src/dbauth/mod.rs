//! The pre-start database-authorization step (`dbauth:`): ask `berth-agent dbauth` for
//! credentials, write them for the service's user, before any service starts. Any
//! failure is fatal: init exits with [`EXIT_CODE`] and one line naming the reason, which
//! the executor puts into TASK_FAILED's message (the tail of the container's stderr).
//!
//! # Layout
//! - [`request`]: the request, retried while the service is unreachable, until the deadline.
//! - [`write`]: the credentials file (0600, owned by the user, written atomically).

pub mod request;
pub mod write;

use std::path::PathBuf;

/// init's exit code when database authorization fails.
pub const EXIT_CODE: u8 = 77;

/// Why the step failed (each a one-line reason; never a password).
#[derive(Debug, thiserror::Error)]
pub enum DbAuthError {
    #[error("dbauth: no MARATHON_APP_ID in the environment: cannot say which app this is")]
    NoApp,
    #[error("dbauth: denied by {url}: {reason}")]
    Denied { url: String, reason: String },
    #[error("dbauth: {url} unreachable until the deadline ({secs} s): {last}")]
    Unreachable {
        url: String,
        secs: u64,
        last: String,
    },
    #[error("dbauth: cannot write the credentials to {path}: {err}")]
    Write { path: PathBuf, err: std::io::Error },
}

/// Runs the step: request, then write for `owner` (uid, gid).
pub fn run(
    spec: &crate::spec::dbauth::DbAuthSpec,
    app: Option<&str>,
    owner: (u32, u32),
) -> Result<(), DbAuthError> {
    let app = app.ok_or(DbAuthError::NoApp)?;
    let creds = request::acquire(
        &spec.url,
        spec.ca_file.as_deref(),
        app,
        &spec.databases,
        spec.deadline(),
    )?;
    write::credentials(&spec.credentials, &creds, owner).map_err(|err| DbAuthError::Write {
        path: spec.credentials.clone(),
        err,
    })?;
    tracing::info!(app, task = %creds.task, databases = %creds.databases.join(","),
        file = %spec.credentials.display(), "dbauth: database credentials written");
    Ok(())
}
