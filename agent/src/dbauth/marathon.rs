//! [`Tasks`] over HTTP: `GET {marathon}/v2/apps/{id}/tasks` through berth-http.
//! (Stand-in until `crate::marathon`'s client lands; then this file becomes its impl.)

use std::time::Duration;

use berth_http::client::{Client, Options, Request};
use berth_http::url::Url;

use super::tasks::{LookupError, Tasks};
use crate::error_chain;
use crate::marathon::types::{self, Task};

/// The most a task list may be.
const LIMIT: usize = 8 << 20;

pub struct HttpTasks {
    client: Client,
    base: Url,
}

impl HttpTasks {
    pub fn new(url: &str, timeout: Duration) -> Result<HttpTasks, LookupError> {
        let base = Url::parse(url).map_err(|e| LookupError(error_chain(&e)))?;
        let client = Client::new(Options {
            connect_timeout: timeout,
            response_timeout: timeout,
            ..Options::default()
        })
        .map_err(|e| LookupError(error_chain(&e)))?;
        Ok(HttpTasks { client, base })
    }
}

impl Tasks for HttpTasks {
    async fn app_tasks(&self, app: &str) -> Result<Vec<Task>, LookupError> {
        // `app` was validated (names::app_id): only a-z 0-9 - . / reach the path.
        let url = self.base.with_path(&format!("/v2/apps{app}/tasks"));
        let resp = self
            .client
            .send(Request::get(url).header("accept", "application/json"))
            .await
            .map_err(|e| LookupError(error_chain(&e)))?;
        if resp.status == berth_http::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !resp.status.is_success() {
            return Err(LookupError(format!(
                "GET /v2/apps{app}/tasks: HTTP {}",
                resp.status
            )));
        }
        let body = resp
            .bytes(LIMIT)
            .await
            .map_err(|e| LookupError(error_chain(&e)))?;
        types::tasks(&body).map_err(|e| LookupError(error_chain(&e)))
    }
}
