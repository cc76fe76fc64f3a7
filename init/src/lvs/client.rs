//! One call to a director over berth-http, classified for [`super::link`]: 200 is done,
//! a 4xx is rejected (the director's `{"error":...}` line kept), everything else
//! (connection errors, timeouts, 5xx, an answer not in the contract) is transient.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use berth_http::client::{Client, Options, Request};
use berth_http::url::Url;
use berth_http::Method;

use super::link::{Outcome, Target};
use super::wire::{self, Delete, ErrorBody, Put, Reply};
use crate::log::chain;
use crate::spec::lvs::LvsSpec;

/// The most a director's answer may be.
const LIMIT: usize = 64 * 1024;

/// The client of every call: short timeouts (a director answers from memory), so a
/// dead one costs little, and stop never waits long on it. It keeps its connection to
/// each director (HTTP/1.1 keep-alive) for the next call.
pub fn client() -> Result<Client, String> {
    Client::new(Options {
        connect_timeout: Duration::from_secs(1),
        response_timeout: Duration::from_secs(3),
        ..Options::default()
    })
    .map(Client::reusing)
    .map_err(|e| chain(&e))
}

/// Opens the connection to the director at `base` ahead of the first call, so the PUT
/// of a service that just turned healthy pays no TCP (or TLS) handshake, nor the first
/// run of the connect code: where the binary's pages are not in memory (the VM tier's
/// root over 9p keeps none), that first run is ~45 page faults, ~0.3 s under emulation.
/// A failure is left for the call to meet.
pub async fn warm(client: &Client, base: &str) {
    if let Ok(url) = Url::parse(&format!("{base}{}", wire::PATH)) {
        client.warm(&url).await;
    }
}

/// The source address the kernel picks towards `host:port` (a connected UDP socket sends
/// nothing): the TCP peer address the director will see.
pub fn route_source(host: &str, port: u16) -> Option<IpAddr> {
    let ip: IpAddr = host.parse().ok()?;
    let bind: SocketAddr = match ip {
        IpAddr::V4(_) => "0.0.0.0:0".parse().ok()?,
        IpAddr::V6(_) => "[::]:0".parse().ok()?,
    };
    let s = UdpSocket::bind(bind).ok()?;
    s.connect((ip, port)).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// Sends `target` for `spec` to the director at `base` (`ip`: the container's address).
pub async fn call(
    client: &Client,
    base: &str,
    spec: &LvsSpec,
    target: Target,
    ip: Option<IpAddr>,
) -> Outcome {
    let url = format!("{base}{}", wire::PATH);
    let parsed = match Url::parse(&url) {
        Ok(u) => u,
        Err(e) => return Outcome::Rejected(e.to_string()),
    };
    let vip = wire::vip_text(&spec.vip);
    let proto = spec.vip.protocol.to_string();
    let ip = ip
        .or_else(|| route_source(&parsed.host, parsed.port))
        .map(|a| a.to_string());
    let port = spec.port.0;
    let req = match target {
        Target::Weight(weight) => Request::json(
            Method::PUT,
            parsed,
            &Put {
                vip,
                proto,
                port,
                weight,
                ip,
            },
        ),
        Target::Absent => Request::json(
            Method::DELETE,
            parsed,
            &Delete {
                vip,
                proto,
                port,
                ip,
            },
        ),
    };
    let req = match req {
        Ok(r) => r,
        Err(e) => return Outcome::Rejected(e.to_string()),
    };
    let resp = match client.send(req).await {
        Ok(r) => r,
        Err(e) => return Outcome::Transient(chain(&e)),
    };
    let status = resp.status;
    let body = match resp.bytes(LIMIT).await {
        Ok(b) => b,
        Err(e) => return Outcome::Transient(chain(&e)),
    };
    if status.is_success() {
        return match serde_json::from_slice::<Reply>(&body) {
            Ok(_) => Outcome::Done,
            Err(e) => Outcome::Transient(format!("{url}: the answer is not the API's: {e}")),
        };
    }
    let why = serde_json::from_slice::<ErrorBody>(&body)
        .map(|b| b.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
    let line = format!("{url}: HTTP {}: {why}", status.as_u16());
    if status.is_client_error() {
        Outcome::Rejected(line)
    } else {
        Outcome::Transient(line)
    }
}
