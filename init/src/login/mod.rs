//! Passwordless login (the `login:` section): the container's own sshd, trusting only
//! certificates from the company's user CA.
//!
//! # Layout (data passes through once, top to bottom)
//! - [`principals`]: default principals from the Marathon app id.
//! - [`keys`]: what a CA key list and a KRL may contain (garbage never gets installed).
//! - [`store`]: fetch a source (file, or URL through a [`store::Fetch`]), install
//!   atomically, keep the last good copy.
//! - [`http`]: the URL fetcher (berth-http) for sources that are URLs.
//! - [`config`]: the certificates-only sshd config and the sessions' environment.
//! - [`hostcert`]: the optional host certificate from the host CA's signing endpoint.
//! - [`setup`]: start-up (host key, principals files, first fetch, `sshd -t`, the service).
//! - [`refresh`]: the refresh thread and the `login` object of the status.

pub mod config;
pub mod hostcert;
pub mod http;
pub mod keys;
pub mod principals;
pub mod refresh;
pub mod setup;
pub mod store;

use std::path::PathBuf;

/// Why login could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The image has no sshd where the spec says.
    #[error("no sshd at {0} (install openssh-server in the image or set login.sshd)")]
    NoSshd(PathBuf),
    /// The first fetch of the CA keys failed: sshd is never started with an empty trust list.
    #[error("no CA keys: {0}")]
    NoCaKeys(String),
    /// The first fetch of the revocation list failed.
    #[error("no revoked-keys list: {0}")]
    NoRevoked(String),
    /// A user without principals and no app id to derive them from.
    #[error("login.users.{0}: no principals and no MARATHON_APP_ID to derive them from")]
    NoPrincipals(String),
    /// A bad `MARATHON_APP_ID`.
    #[error("{0}")]
    AppId(String),
    /// A file in the login dir.
    #[error("login: {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        err: std::io::Error,
    },
    /// ssh-keygen or `sshd -t` failed.
    #[error("{what} failed: {detail}")]
    Run {
        /// Which command.
        what: String,
        /// Its status and stderr.
        detail: String,
    },
    /// The host CA's signing endpoint gave no usable certificate (`required: true`).
    #[error("no host certificate: {0}")]
    HostCert(String),
    /// A bug.
    #[error("internal: {0}")]
    Internal(String),
}
