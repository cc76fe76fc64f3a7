//! The HTTP API (berth-http's server; the handler gets the TCP peer address):
//!
//! - `POST /v1/access` `{"app": "/shop/web", "databases": ["shop"]}` ->
//!   200 `{"task", "user", "password", "host", "port", "databases"}`,
//!   400 (malformed), 403 (denied), 503 (dbauth cannot decide now: retry);
//!   every error is `{"error": "one line"}`.
//! - `GET /v1/health` -> 200 `ok`.
//!
//! The caller is the peer address. A body's `ip` is audited and otherwise ignored.

use std::net::SocketAddr;
use std::sync::Arc;

use berth_http::server::{self, Body};
use berth_http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::authority::{AccessRequest, Authority, Denied};
use super::tasks::Tasks;

/// The largest request body read.
pub const BODY_LIMIT: usize = 4096;

fn error(status: StatusCode, msg: &str) -> Response<Body> {
    server::json(status, &serde_json::json!({ "error": msg }))
}

/// Answers one request.
pub async fn handle<T: Tasks>(
    auth: Arc<Authority<T>>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/v1/health") => server::respond(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::POST, "/v1/access") => {
            let body = match server::read_body(req, BODY_LIMIT).await {
                Ok(b) => b,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            let access: AccessRequest = match serde_json::from_slice(&body) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(target: "audit", peer = %peer.ip(), reason = %e, "denied: malformed request");
                    return error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}"));
                }
            };
            match auth.request(peer.ip(), &access).await {
                Ok(c) => server::json(StatusCode::OK, &c),
                Err(d @ Denied::BadRequest(_)) => error(StatusCode::BAD_REQUEST, &d.to_string()),
                Err(d @ Denied::Forbidden(_)) => error(StatusCode::FORBIDDEN, &d.to_string()),
                Err(d @ Denied::Unavailable(_)) => {
                    error(StatusCode::SERVICE_UNAVAILABLE, &d.to_string())
                }
            }
        }
        (_, "/v1/access" | "/v1/health") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}
