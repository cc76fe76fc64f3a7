//! The URL fetcher of login sources: berth-http (rustls, the system's roots), blocking,
//! on a current-thread runtime of its own per fetch. Fetches are rare (one per refresh
//! interval) and run on the refresh thread, so nothing of it touches PID 1's loop.

use std::time::Duration;

use berth_http::client::{Client, Options, Request};
use berth_http::url::Url;
use berth_http::{Bytes, Method};

use super::store::Fetch;
use crate::log::chain;

/// The most a CA key list or KRL may be (the store caps what it installs too).
const LIMIT: usize = 1 << 20;

pub struct HttpFetch;

impl Fetch for HttpFetch {
    fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let parsed = Url::parse(url).map_err(|e| e.to_string())?;
        send(url, Request::get(parsed))
    }

    fn post(&self, url: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        let parsed = Url::parse(url).map_err(|e| e.to_string())?;
        let mut req = Request::get(parsed).header("content-type", "text/plain");
        req.method = Method::POST;
        req.body = Bytes::copy_from_slice(body);
        send(url, req)
    }
}

fn send(url: &str, req: Request) -> Result<Vec<u8>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("{url}: cannot start the fetch: {e}"))?;
    rt.block_on(async {
        let client = Client::new(Options {
            response_timeout: Duration::from_secs(15),
            ..Options::default()
        })
        .map_err(|e| chain(&e))?;
        let resp = client
            .send(req)
            .await
            .map_err(|e| format!("{url}: {}", chain(&e)))?;
        if !resp.status.is_success() {
            return Err(format!("{url}: HTTP {}", resp.status));
        }
        let body = resp
            .bytes(LIMIT)
            .await
            .map_err(|e| format!("{url}: {}", chain(&e)))?;
        Ok(body.to_vec())
    })
}
