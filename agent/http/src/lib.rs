//! # berth-http
//!
//! The workspace's one HTTP stack: hyper 1 over tokio, TLS by rustls (ring; no OpenSSL).
//! Every HTTP client and server in berth uses it (the executor's agent connection, the
//! agent's metrics endpoint and Falcon push, the LVS director, dbauth, init's clients).
//!
//! # Layout (each layer imports only those above it)
//! - [`url`]: `http(s)://host:port/path` parsed into what a connection needs.
//! - [`tls`]: rustls client and server configs from PEM files (CA file/dir, verify
//!   on/off, client certificates).
//! - [`client`]: one request per connection, with connect/response timeouts and TCP
//!   keepalive; the response body can be read whole (bounded) or as a stream.
//! - [`server`]: accept loop with the TCP peer address handed to the handler (callers
//!   authorize by it), optional TLS, graceful shutdown.
//! - [`sse`]: a `text/event-stream` parser (Marathon's `/v2/events`).

pub mod client;
pub mod server;
pub mod sse;
pub mod tls;
pub mod url;

pub use bytes::Bytes;
pub use hyper::body::Incoming;
pub use hyper::{header, HeaderMap, Method, Request, Response, StatusCode};
