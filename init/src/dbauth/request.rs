//! `POST {url}/v1/access` through berth-http: a 200 gives the credentials, a 400/403 is a
//! final "no", anything else (connection refused, 503, a timeout) is retried with backoff
//! until the deadline.

use std::time::{Duration, Instant};

use berth_http::client::{Client, Options, Request};
use berth_http::tls::ClientTls;
use berth_http::url::Url;
use berth_http::{Method, StatusCode};
use serde::Deserialize;

use super::DbAuthError;
use crate::log::chain;

/// The credentials dbauth answers with. No `Debug`: it holds the password.
#[derive(Deserialize)]
pub struct Credentials {
    pub task: String,
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub databases: Vec<String>,
}

const LIMIT: usize = 64 << 10;

enum Try {
    Got(Box<Credentials>),
    Final(String),
    Again(String),
}

async fn once(client: &Client, url: &Url, app: &str, databases: &[String]) -> Try {
    let body = serde_json::json!({ "app": app, "databases": databases });
    let req = match Request::json(Method::POST, url.clone(), &body) {
        Ok(r) => r,
        Err(e) => return Try::Final(e.to_string()),
    };
    let resp = match client.send(req).await {
        Ok(r) => r,
        Err(e) => return Try::Again(chain(&e)),
    };
    let status = resp.status;
    let bytes = match resp.bytes(LIMIT).await {
        Ok(b) => b,
        Err(e) => return Try::Again(chain(&e)),
    };
    if status == StatusCode::OK {
        return match serde_json::from_slice::<Credentials>(&bytes) {
            Ok(c) => Try::Got(Box::new(c)),
            Err(e) => Try::Final(format!("an answer that is not credentials: {e}")),
        };
    }
    let reason = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("HTTP {status}"));
    // One line, whatever the service said.
    let reason: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    if status == StatusCode::FORBIDDEN || status == StatusCode::BAD_REQUEST {
        Try::Final(reason)
    } else {
        Try::Again(format!("HTTP {status}: {reason}"))
    }
}

/// Asks for `databases` of `app`; blocking, on a runtime of its own. An `https://` base
/// is verified against `ca_file`, or the system's roots without one.
pub fn acquire(
    base: &str,
    ca_file: Option<&std::path::Path>,
    app: &str,
    databases: &[String],
    deadline: Duration,
) -> Result<Credentials, DbAuthError> {
    let unreachable = |last: String| DbAuthError::Unreachable {
        url: base.to_string(),
        secs: deadline.as_secs(),
        last,
    };
    let url = Url::parse(&format!("{}/v1/access", base.trim_end_matches('/')))
        .map_err(|e| unreachable(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| unreachable(format!("cannot start the request: {e}")))?;
    rt.block_on(async {
        let tls = ca_file.map(|ca| ClientTls {
            ca_file: Some(ca.to_path_buf()),
            ..ClientTls::system()
        });
        let client = Client::new(Options {
            tls,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(10),
            ..Options::default()
        })
        .map_err(|e| unreachable(chain(&e)))?;
        let end = Instant::now() + deadline;
        let mut pause = Duration::from_millis(100);
        loop {
            match once(&client, &url, app, databases).await {
                Try::Got(c) => return Ok(*c),
                Try::Final(reason) => {
                    return Err(DbAuthError::Denied {
                        url: base.to_string(),
                        reason,
                    })
                }
                Try::Again(last) => {
                    if Instant::now() + pause >= end {
                        return Err(unreachable(last));
                    }
                    tracing::warn!("dbauth: {base}: {last} (retrying)");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    })
}
