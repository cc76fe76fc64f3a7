//! Requests to Marathon: the tasks of an app, with failover across the configured URLs,
//! and the request a [`super::events::EventStream`] opens.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use berth_http::client::{Client, Options, Request};
use berth_http::url::Url;
use berth_http::StatusCode;

use super::config::Config;
use super::types::{self, DecodeError, Task};

/// The largest `/v2/apps/{id}/tasks` answer read (thousands of tasks fit).
const TASKS_LIMIT: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{url}")]
    Http {
        url: String,
        #[source]
        err: berth_http::client::Error,
    },
    #[error("{url}: Marathon refused the credentials (HTTP {status})")]
    Unauthorized { url: String, status: u16 },
    #[error("{url}: no such app")]
    UnknownApp { url: String },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}")]
    Decode {
        url: String,
        #[source]
        err: DecodeError,
    },
    #[error("{url}: the event stream is not text/event-stream ({content_type:?})")]
    NotEventStream { url: String, content_type: String },
    #[error("{url}: the event stream ended")]
    Ended { url: String },
    #[error("{url}: the event stream was silent for {after:?}")]
    Silent {
        url: String,
        after: std::time::Duration,
    },
    #[error("{url}")]
    Framing {
        url: String,
        #[source]
        err: berth_http::sse::TooLarge,
    },
    #[error("app id {0:?} is not /group/name")]
    BadAppId(String),
    #[error("HTTP client settings")]
    Setup(#[source] berth_http::client::Error),
}

impl Error {
    /// Whether another Marathon URL may answer better (transport errors, 5xx).
    fn try_next(&self) -> bool {
        match self {
            Error::Http { .. } => true,
            Error::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// A Marathon client; cheap to clone (clones share the preferred URL).
#[derive(Debug, Clone)]
pub struct Marathon {
    cfg: Arc<Config>,
    http: Client,
    /// The URL that answered last; requests start there.
    preferred: Arc<AtomicUsize>,
}

impl Marathon {
    /// A client; TLS files are read now, so a bad CA file fails at start.
    pub fn new(cfg: Config) -> Result<Marathon, Error> {
        let http = Client::new(Options {
            tls: cfg.tls.clone(),
            connect_timeout: cfg.connect_timeout,
            response_timeout: cfg.request_timeout,
            keepalive: Some(cfg.idle_timeout.max(std::time::Duration::from_secs(1))),
        })
        .map_err(Error::Setup)?;
        Ok(Marathon {
            cfg: Arc::new(cfg),
            http,
            preferred: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub(super) fn http(&self) -> &Client {
        &self.http
    }

    pub(super) fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Relaxed) % self.cfg.urls.len()
    }

    pub(super) fn prefer(&self, i: usize) {
        self.preferred.store(i, Ordering::Relaxed);
    }

    /// A request to `path` (starting with `/v2/`) on URL number `i`, with credentials.
    pub(super) fn request(&self, i: usize, path: &str) -> Request {
        let base = &self.cfg.urls[i % self.cfg.urls.len()];
        let url: Url = base.with_path(&format!("{}{path}", base.path.trim_end_matches('/')));
        let req = Request::get(url);
        match &self.cfg.auth {
            Some(a) => req.header("authorization", a.header()),
            None => req,
        }
    }

    /// `GET /v2/apps/{app}/tasks`: all tasks of the app, in any state. Tries each URL,
    /// starting with the one that answered last, while the failure is one another
    /// instance may not have (unreachable, 5xx); 401/403/404 are answers.
    pub async fn tasks(&self, app: &str) -> Result<Vec<Task>, Error> {
        let id = app
            .strip_prefix('/')
            .filter(|s| !s.is_empty() && !s.contains(['?', '#', ' ', '%']))
            .ok_or_else(|| Error::BadAppId(app.into()))?;
        let path = format!("/v2/apps/{id}/tasks");
        let n = self.cfg.urls.len();
        let start = self.preferred();
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            match self.tasks_at(i, &path).await {
                Ok(t) => {
                    self.prefer(i);
                    return Ok(t);
                }
                Err(e) if e.try_next() && k + 1 < n => {
                    tracing::warn!("marathon: {}", crate::error_chain(&e));
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::BadAppId(app.into())))
    }

    async fn tasks_at(&self, i: usize, path: &str) -> Result<Vec<Task>, Error> {
        let req = self.request(i, path).header("accept", "application/json");
        let url = req.url.to_string();
        let http = |err| Error::Http {
            url: url.clone(),
            err,
        };
        let resp = self.http.send(req).await.map_err(http)?;
        let status = resp.status;
        let body = resp.bytes(TASKS_LIMIT).await.map_err(http)?;
        check_status(&url, status, &body)?;
        types::tasks(&body).map_err(|err| Error::Decode { url, err })
    }
}

/// Marathon's status codes as errors.
pub(super) fn check_status(url: &str, status: StatusCode, body: &[u8]) -> Result<(), Error> {
    let url = url.to_string();
    match status.as_u16() {
        200..=299 => Ok(()),
        s @ (401 | 403) => Err(Error::Unauthorized { url, status: s }),
        404 => Err(Error::UnknownApp { url }),
        s => Err(Error::Status {
            url,
            status: s,
            body: String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_string(),
        }),
    }
}
